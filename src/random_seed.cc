// See random_seed.h.
#include "edgeproxy/random_seed.h"

#include <sys/random.h>

#include <ctime>

namespace edgeproxy {

uint64_t random_seed(const void* salt) noexcept {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof seed)) {
    return seed;
  }
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_nsec) ^ (static_cast<uint64_t>(ts.tv_sec) << 32) ^
         reinterpret_cast<uintptr_t>(salt);
}

}  // namespace edgeproxy
