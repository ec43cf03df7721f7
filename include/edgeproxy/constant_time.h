// Comparisons of secrets (password digests, cache keys) whose running time depends only on the
// sizes compared, never on where the bytes first differ.
#pragma once

#include <cstddef>

namespace edgeproxy {

// Whether the `size` bytes at `a` and `b` are equal, reading every byte of both whatever they
// hold (no early exit, no data-dependent branch). nullptr is allowed when size == 0.
bool constant_time_equal(const void* a, const void* b, size_t size) noexcept;

}  // namespace edgeproxy
