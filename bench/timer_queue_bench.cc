// TimerQueue micro benchmarks with 10 000 timers armed: arm, re-arm either way, cancel+arm.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "edgeproxy/timer_queue.h"

namespace edgeproxy {
namespace {

constexpr uint32_t kArmed = 10'000;
constexpr uint32_t kCapacity = kArmed + 1;

// Deadlines spread over an hour in ms, fixed seed.
std::vector<int64_t> Deadlines(uint32_t n) {
  std::mt19937_64 rng(99);
  std::vector<int64_t> d(n);
  for (int64_t& x : d) x = static_cast<int64_t>(rng() % 3'600'000);
  return d;
}

void FillQueue(TimerQueue& q, const std::vector<int64_t>& deadlines) {
  for (uint32_t i = 0; i < kArmed; ++i) q.arm(i, deadlines[i]);
}

// Arm one more timer into the 10 000 and cancel it again (insert + remove).
void BM_TimerQueueArmCancel(benchmark::State& state) {
  TimerQueue q(kCapacity);
  const std::vector<int64_t> deadlines = Deadlines(kArmed);
  FillQueue(q, deadlines);
  int64_t deadline = 0;
  for (auto _ : state) {
    q.arm(kArmed, deadline);
    q.cancel(kArmed);
    deadline = (deadline + 7919) % 3'600'000;
  }
}
BENCHMARK(BM_TimerQueueArmCancel);

// Re-arm an armed timer later: the idle-timer pattern (deadline moves to the back).
void BM_TimerQueueReArmLater(benchmark::State& state) {
  TimerQueue q(kCapacity);
  const std::vector<int64_t> deadlines = Deadlines(kArmed);
  FillQueue(q, deadlines);
  int64_t now = 3'600'000;
  uint32_t id = 0;
  for (auto _ : state) {
    q.arm(id, ++now);
    id = id + 1 == kArmed ? 0 : id + 1;
  }
}
BENCHMARK(BM_TimerQueueReArmLater);

// Re-arm an armed timer to a random deadline (earlier or later).
void BM_TimerQueueReArmRandom(benchmark::State& state) {
  TimerQueue q(kCapacity);
  const std::vector<int64_t> deadlines = Deadlines(kArmed);
  FillQueue(q, deadlines);
  const std::vector<int64_t> next = Deadlines(4096);
  uint32_t id = 0;
  uint32_t k = 0;
  for (auto _ : state) {
    q.arm(id, next[k]);
    id = id + 1 == kArmed ? 0 : id + 1;
    k = (k + 1) & 4095;
  }
}
BENCHMARK(BM_TimerQueueReArmRandom);

// Cancel an armed timer and arm it again at its old deadline (remove from the middle + insert).
void BM_TimerQueueCancelReArm(benchmark::State& state) {
  TimerQueue q(kCapacity);
  const std::vector<int64_t> deadlines = Deadlines(kArmed);
  FillQueue(q, deadlines);
  uint32_t id = 0;
  for (auto _ : state) {
    q.cancel(id);
    q.arm(id, deadlines[id]);
    id = id + 1 == kArmed ? 0 : id + 1;
  }
}
BENCHMARK(BM_TimerQueueCancelReArm);

// pop_expired + arm: the expiry path of a loop that re-arms what it pops.
void BM_TimerQueuePopAndReArm(benchmark::State& state) {
  TimerQueue q(kCapacity);
  FillQueue(q, Deadlines(kArmed));
  uint32_t id = 0;
  for (auto _ : state) {
    const int64_t due = q.next_deadline();
    if (!q.pop_expired(due, id)) {
      state.SkipWithError("nothing due");
      break;
    }
    q.arm(id, due + 3'600'000);
  }
}
BENCHMARK(BM_TimerQueuePopAndReArm);

}  // namespace
}  // namespace edgeproxy
