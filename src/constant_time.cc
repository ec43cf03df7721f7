// Constant-time comparison; see constant_time.h.
#include "edgeproxy/constant_time.h"

#include <cstdint>

namespace edgeproxy {

bool constant_time_equal(const void* a, const void* b, size_t size) noexcept {
  const auto* x = static_cast<const uint8_t*>(a);
  const auto* y = static_cast<const uint8_t*>(b);
  uint32_t diff = 0;
  for (size_t i = 0; i < size; ++i) {
    diff |= static_cast<uint32_t>(x[i] ^ y[i]);
    // Hides `diff` from the optimiser, which could otherwise stop the loop once every bit is set.
    __asm__ __volatile__("" : "+r"(diff));
  }
  return diff == 0;
}

}  // namespace edgeproxy
