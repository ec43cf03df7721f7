// random_seed: 64 unpredictable bits for keyed hashes (tables an attacker must not aim at).
#pragma once

#include <cstdint>

namespace edgeproxy {

// getrandom(2) without blocking; before the kernel's pool is ready (early boot), the clock and
// `salt` (an address), unpredictable enough to spoil precomputed collisions.
uint64_t random_seed(const void* salt) noexcept;

}  // namespace edgeproxy
