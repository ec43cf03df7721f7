// LoopTime: the monotonic time read once per event-loop iteration and shared by everything that
// iteration does, so per-byte work never calls the clock.
#pragma once

#include <cstdint>
#include <ctime>

namespace edgeproxy {

struct LoopTime {
  int64_t ns = 0;
  int64_t ms = 0;

  static LoopTime now() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no syscall
    const int64_t ns = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    return LoopTime{ns, ns / 1'000'000};
  }
};

}  // namespace edgeproxy
