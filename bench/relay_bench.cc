// relay micro benchmark: one full step cycle of the pure state machine for an 8 KiB chunk, with
// synthetic syscall results: next_step, prepare_read, on_read, next_step, on_write.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <utility>

#include "edgeproxy/event.h"
#include "edgeproxy/relay.h"

namespace edgeproxy {
namespace {

BufferPool MakePool(uint32_t count) {
  Result<BufferPool> r = BufferPool::create(count);
  if (!r.ok()) std::abort();
  return std::move(r.value());
}

void BM_RelayStepCycle8KiB(benchmark::State& state) {
  BufferPool pool = MakePool(4);
  Stats stats;
  Connection c;
  c.client.fd = 3;
  c.upstream.fd = 4;
  relay::on_connected(c);
  relay::on_ready(c, c.client, kReadable, stats);
  const LoopTime now{1'000'000'000, 1'000};
  const SysResult full{kBufferBytes, 0};
  for (auto _ : state) {
    // A full read leaves kReadReady set and a full write leaves kWriteReady set: steady state.
    if (relay::next_step(c, Dir::kC2U) != relay::Step::kRead) {
      state.SkipWithError("expected a read step");
      break;
    }
    if (!relay::prepare_read(c, Dir::kC2U, pool, stats)) {
      state.SkipWithError("pool empty");
      break;
    }
    relay::on_read(c, Dir::kC2U, full, c.client.in.writable(), pool, stats, now);
    if (relay::next_step(c, Dir::kC2U) != relay::Step::kWrite) {
      state.SkipWithError("expected a write step");
      break;
    }
    relay::on_write(c, Dir::kC2U, full, c.client.in.readable(), pool, stats, now);
    benchmark::DoNotOptimize(c);
  }
  if (pool.in_use() != 0) state.SkipWithError("a block was not returned");
  if (stats.bytes_c2u != uint64_t{kBufferBytes} * static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("bytes went missing");
  }
}
BENCHMARK(BM_RelayStepCycle8KiB);

// wanted_interest for both sides, as reconcile() does once per touched connection.
void BM_RelayWantedInterest(benchmark::State& state) {
  Connection c;
  relay::on_connected(c);
  for (auto _ : state) {
    benchmark::DoNotOptimize(c);
    benchmark::DoNotOptimize(relay::wanted_interest(c, c.client));
    benchmark::DoNotOptimize(relay::wanted_interest(c, c.upstream));
  }
}
BENCHMARK(BM_RelayWantedInterest);

}  // namespace
}  // namespace edgeproxy
