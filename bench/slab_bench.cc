// Slab micro benchmarks: slot acquire/release and the per-event handle resolve.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "edgeproxy/connection.h"
#include "edgeproxy/slab.h"

namespace edgeproxy {
namespace {

constexpr uint32_t kSlots = 4096;

void BM_SlabAcquireRelease(benchmark::State& state) {
  Slab<Connection> slab(kSlots);
  Handle h;
  for (auto _ : state) {
    Connection* c = slab.acquire(h);
    benchmark::DoNotOptimize(c);
    slab.release(h.index);
  }
}
BENCHMARK(BM_SlabAcquireRelease);

// resolve() of live handles spread over a full slab, as events for many connections arrive.
void BM_SlabResolve(benchmark::State& state) {
  Slab<Connection> slab(kSlots);
  std::vector<Handle> handles(kSlots);
  for (Handle& h : handles) slab.acquire(h);
  uint32_t i = 0;
  for (auto _ : state) {
    Connection* c = slab.resolve(handles[i]);
    benchmark::DoNotOptimize(c);
    i = (i + 1) & (kSlots - 1);
  }
}
BENCHMARK(BM_SlabResolve);

// resolve() of a stale handle (the slot was released and reused): the stale-event path.
void BM_SlabResolveStale(benchmark::State& state) {
  Slab<Connection> slab(kSlots);
  std::vector<Handle> stale(kSlots);
  for (Handle& h : stale) slab.acquire(h);
  for (uint32_t i = 0; i < kSlots; ++i) slab.release(i);
  Handle fresh;
  for (uint32_t i = 0; i < kSlots; ++i) slab.acquire(fresh);  // reused at the next generation
  uint32_t i = 0;
  for (auto _ : state) {
    Connection* c = slab.resolve(stale[i]);
    benchmark::DoNotOptimize(c);
    i = (i + 1) & (kSlots - 1);
  }
  if (slab.resolve(stale[0]) != nullptr) state.SkipWithError("stale handle resolved");
}
BENCHMARK(BM_SlabResolveStale);

}  // namespace
}  // namespace edgeproxy
