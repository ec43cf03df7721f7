// The failure path of EDGEPROXY_CHECK; see check.h.
#include "edgeproxy/check.h"

#include <cstdio>
#include <cstdlib>

namespace edgeproxy {

void check_failed(const char* condition, const char* file, int line) noexcept {
  std::fprintf(stderr, "edgeproxy: internal check failed: %s (%s:%d)\n", condition, file, line);
  std::abort();
}

}  // namespace edgeproxy
