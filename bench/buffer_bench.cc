// Buffer micro benchmarks: the offset arithmetic of commit/consume and the memmove of compact.
#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>

#include "edgeproxy/buffer.h"

namespace edgeproxy {
namespace {

struct Block {
  alignas(4096) std::array<std::byte, kBufferBytes> bytes{};
};

// commit then consume everything: the emptied buffer rewinds to offset 0 each time.
void BM_BufferCommitConsume(benchmark::State& state) {
  Block block;
  Buffer b;
  b.attach(block.bytes.data(), 0);
  const auto n = static_cast<uint32_t>(state.range(0));
  for (auto _ : state) {
    b.commit(n);
    benchmark::DoNotOptimize(b);
    b.consume(n);
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(BM_BufferCommitConsume)->Arg(100)->Arg(kBufferBytes);

// Partial consumes, as short writes do: commit a full block, consume it in 8 pieces.
void BM_BufferConsumeInPieces(benchmark::State& state) {
  Block block;
  Buffer b;
  b.attach(block.bytes.data(), 0);
  constexpr uint32_t kPiece = kBufferBytes / 8;
  for (auto _ : state) {
    b.commit(kBufferBytes);
    for (int i = 0; i < 8; ++i) {
      benchmark::DoNotOptimize(b);
      b.consume(kPiece);
    }
    benchmark::DoNotOptimize(b);
  }
  state.SetItemsProcessed(state.iterations() * 8);
}
BENCHMARK(BM_BufferConsumeInPieces);

// compact() of a buffer holding `range(0)` readable bytes at the end of the block.
void BM_BufferCompact(benchmark::State& state) {
  Block block;
  Buffer b;
  b.attach(block.bytes.data(), 0);
  const auto keep = static_cast<uint32_t>(state.range(0));
  for (auto _ : state) {
    b.commit(kBufferBytes);
    b.consume(kBufferBytes - keep);
    benchmark::DoNotOptimize(b);
    b.compact();
    benchmark::ClobberMemory();
    b.consume(keep);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_BufferCompact)->Arg(16)->Arg(1024)->Arg(kBufferBytes / 2)->Arg(kBufferBytes - 1);

}  // namespace
}  // namespace edgeproxy
