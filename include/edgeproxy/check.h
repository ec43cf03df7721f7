// EDGEPROXY_CHECK: an assert that stays on in release builds, for the checks that guard memory
// (free stacks, list bounds, generations, buffer offsets). A failure prints the condition and
// where it failed, then aborts: corrupting memory quietly is worse than stopping. Checks too
// expensive for the data path use assert() and compile away with NDEBUG.
#pragma once

namespace edgeproxy {

[[noreturn]] void check_failed(const char* condition, const char* file, int line) noexcept;

}  // namespace edgeproxy

#define EDGEPROXY_CHECK(condition)                               \
  do {                                                           \
    if (__builtin_expect(!(condition), 0))                       \
      ::edgeproxy::check_failed(#condition, __FILE__, __LINE__); \
  } while (0)
