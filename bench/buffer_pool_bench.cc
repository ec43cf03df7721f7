// BufferPool micro benchmarks: the LIFO acquire/release pair every read of an idle side costs.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <utility>
#include <vector>

#include "edgeproxy/buffer_pool.h"

namespace edgeproxy {
namespace {

BufferPool MakePool(uint32_t count) {
  Result<BufferPool> r = BufferPool::create(count);
  if (!r.ok()) std::abort();
  return std::move(r.value());
}

// One acquire and one release with `range(0)` of 1024 blocks already handed out.
void BM_BufferPoolAcquireRelease(benchmark::State& state) {
  BufferPool pool = MakePool(1024);
  std::vector<Buffer> held(static_cast<size_t>(state.range(0)));
  for (Buffer& h : held) pool.acquire(h);
  Buffer b;
  for (auto _ : state) {
    const bool ok = pool.acquire(b);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(b);
    pool.release(b);
  }
  for (Buffer& h : held) pool.release(h);
}
BENCHMARK(BM_BufferPoolAcquireRelease)->Arg(0)->Arg(1000);

// acquire on an empty pool: the refusal path a paused reader hits.
void BM_BufferPoolAcquireEmpty(benchmark::State& state) {
  BufferPool pool = MakePool(1);
  Buffer held;
  pool.acquire(held);
  Buffer b;
  for (auto _ : state) {
    const bool ok = pool.acquire(b);
    benchmark::DoNotOptimize(ok);
  }
  pool.release(held);
}
BENCHMARK(BM_BufferPoolAcquireEmpty);

}  // namespace
}  // namespace edgeproxy
