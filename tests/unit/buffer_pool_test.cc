// BufferPool: fixed page-aligned blocks handed out LIFO; counts re-checked after every acquire
// and release.
#include "edgeproxy/buffer_pool.h"

#include <gtest/gtest.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <set>
#include <utility>
#include <vector>

namespace edgeproxy {
namespace {

::testing::AssertionResult Counts(const BufferPool& pool) {
  if (pool.available() + pool.in_use() != pool.capacity()) {
    return ::testing::AssertionFailure() << "available " << pool.available() << " + in_use "
                                         << pool.in_use() << " != capacity " << pool.capacity();
  }
  if (pool.in_use() > pool.high_water() || pool.high_water() > pool.capacity()) {
    return ::testing::AssertionFailure() << "in_use " << pool.in_use() << ", high_water "
                                         << pool.high_water() << ", capacity " << pool.capacity();
  }
  return ::testing::AssertionSuccess();
}

BufferPool MakePool(uint32_t count) {
  Result<BufferPool> r = BufferPool::create(count);
  if (!r.ok()) {
    ADD_FAILURE() << r.error();
    std::abort();
  }
  return std::move(r.value());
}

uintptr_t Address(const Buffer& b) {
  return reinterpret_cast<uintptr_t>(b.read_ptr());
}

TEST(BufferPoolTest, CreateZeroIsRefused) {
  const Result<BufferPool> r = BufferPool::create(0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("at least one"), std::string::npos) << r.error();
}

TEST(BufferPoolTest, NewPoolIsAllAvailable) {
  BufferPool pool = MakePool(5);
  EXPECT_TRUE(Counts(pool));
  EXPECT_EQ(pool.capacity(), 5u);
  EXPECT_EQ(pool.available(), 5u);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.high_water(), 0u);
}

TEST(BufferPoolTest, AcquireUntilEmptyThenRefuses) {
  BufferPool pool = MakePool(4);
  std::vector<Buffer> held(4);
  for (uint32_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(pool.acquire(held[i]));
    EXPECT_TRUE(Counts(pool));
    EXPECT_TRUE(held[i].attached());
    EXPECT_EQ(held[i].id(), i) << "ids are handed out lowest first";
    EXPECT_EQ(held[i].readable(), 0u);
    EXPECT_EQ(held[i].writable(), kBufferBytes);
    EXPECT_EQ(pool.in_use(), i + 1);
  }
  EXPECT_EQ(pool.available(), 0u);
  Buffer extra;
  EXPECT_FALSE(pool.acquire(extra));
  EXPECT_TRUE(Counts(pool));
  EXPECT_FALSE(extra.attached());
  EXPECT_EQ(pool.in_use(), 4u);
  for (Buffer& b : held) {
    pool.release(b);
    EXPECT_TRUE(Counts(pool));
    EXPECT_FALSE(b.attached());
  }
  EXPECT_EQ(pool.available(), 4u);
}

TEST(BufferPoolTest, ReleaseThenAcquireReusesSameBlock) {
  BufferPool pool = MakePool(8);
  Buffer a;
  Buffer b;
  Buffer c;
  ASSERT_TRUE(pool.acquire(a));
  ASSERT_TRUE(pool.acquire(b));
  ASSERT_TRUE(pool.acquire(c));
  const uint32_t b_id = b.id();
  const uintptr_t b_addr = Address(b);
  pool.release(b);
  EXPECT_TRUE(Counts(pool));
  Buffer again;
  ASSERT_TRUE(pool.acquire(again));
  EXPECT_TRUE(Counts(pool));
  EXPECT_EQ(again.id(), b_id);
  EXPECT_EQ(Address(again), b_addr);

  // LIFO across several: the last released comes back first.
  pool.release(a);
  pool.release(again);
  EXPECT_TRUE(Counts(pool));
  Buffer first;
  Buffer second;
  ASSERT_TRUE(pool.acquire(first));
  ASSERT_TRUE(pool.acquire(second));
  EXPECT_TRUE(Counts(pool));
  EXPECT_EQ(first.id(), b_id);
  EXPECT_EQ(second.id(), 0u);
  pool.release(first);
  pool.release(second);
  pool.release(c);
  EXPECT_TRUE(Counts(pool));
}

TEST(BufferPoolTest, HighWaterKeepsPeak) {
  BufferPool pool = MakePool(6);
  std::vector<Buffer> held(3);
  for (Buffer& b : held) ASSERT_TRUE(pool.acquire(b));
  EXPECT_EQ(pool.high_water(), 3u);
  for (Buffer& b : held) pool.release(b);
  EXPECT_TRUE(Counts(pool));
  EXPECT_EQ(pool.high_water(), 3u);
  Buffer one;
  ASSERT_TRUE(pool.acquire(one));
  EXPECT_EQ(pool.high_water(), 3u);
  std::vector<Buffer> more(4);
  for (Buffer& b : more) ASSERT_TRUE(pool.acquire(b));
  EXPECT_TRUE(Counts(pool));
  EXPECT_EQ(pool.high_water(), 5u);
  pool.release(one);
  for (Buffer& b : more) pool.release(b);
  EXPECT_EQ(pool.high_water(), 5u);
  EXPECT_TRUE(Counts(pool));
}

TEST(BufferPoolTest, AddressesAreBasePlusIdTimesBlockAndPageAligned) {
  constexpr uint32_t kCount = 16;
  BufferPool pool = MakePool(kCount);
  std::vector<Buffer> held(kCount);
  for (Buffer& b : held) ASSERT_TRUE(pool.acquire(b));
  const uintptr_t base = Address(held[0]);
  ASSERT_EQ(held[0].id(), 0u);
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  EXPECT_EQ(base % page, 0u);
  for (const Buffer& b : held) {
    EXPECT_EQ(Address(b), base + uintptr_t{b.id()} * kBufferBytes) << "id " << b.id();
    EXPECT_EQ(Address(b) % page, 0u) << "id " << b.id();
    EXPECT_EQ(Address(b) % kBufferBytes, base % kBufferBytes);
  }
  for (Buffer& b : held) pool.release(b);
}

TEST(BufferPoolTest, DistinctBlocksDoNotOverlap) {
  constexpr uint32_t kCount = 8;
  BufferPool pool = MakePool(kCount);
  std::vector<Buffer> held(kCount);
  std::set<uint32_t> ids;
  for (Buffer& b : held) {
    ASSERT_TRUE(pool.acquire(b));
    ids.insert(b.id());
  }
  EXPECT_EQ(ids.size(), kCount);
  // Fill every byte of every block with its id, then check no block was overwritten by another.
  for (Buffer& b : held) {
    const uint32_t n = b.writable();
    for (uint32_t i = 0; i < n; ++i) {
      b.write_ptr()[i] = static_cast<std::byte>(static_cast<uint8_t>(0xA0 + b.id()));
    }
    b.commit(n);
    EXPECT_TRUE(b.full());
  }
  for (const Buffer& b : held) {
    const auto expected = static_cast<std::byte>(static_cast<uint8_t>(0xA0 + b.id()));
    for (uint32_t i = 0; i < kBufferBytes; ++i) {
      ASSERT_EQ(b.read_ptr()[i], expected) << "block " << b.id() << " byte " << i;
    }
  }
  for (Buffer& b : held) pool.release(b);
  EXPECT_TRUE(Counts(pool));
}

TEST(BufferPoolTest, ReacquiredBlockStartsEmpty) {
  BufferPool pool = MakePool(1);
  Buffer b;
  ASSERT_TRUE(pool.acquire(b));
  b.commit(100);
  b.consume(10);
  pool.release(b);
  ASSERT_TRUE(pool.acquire(b));
  EXPECT_EQ(b.readable(), 0u);
  EXPECT_EQ(b.writable(), kBufferBytes);
  pool.release(b);
}

TEST(BufferPoolTest, ReleaseOfDetachedBufferIsNoOp) {
  BufferPool pool = MakePool(2);
  Buffer held;
  ASSERT_TRUE(pool.acquire(held));
  Buffer detached;
  pool.release(detached);
  EXPECT_TRUE(Counts(pool));
  EXPECT_EQ(pool.available(), 1u);
  EXPECT_EQ(pool.in_use(), 1u);
  // Releasing the same Buffer twice: the second release sees it detached.
  pool.release(held);
  pool.release(held);
  EXPECT_TRUE(Counts(pool));
  EXPECT_EQ(pool.available(), 2u);
  Buffer a;
  Buffer b;
  ASSERT_TRUE(pool.acquire(a));
  ASSERT_TRUE(pool.acquire(b));
  EXPECT_NE(a.id(), b.id()) << "a double release must not hand one block out twice";
  pool.release(a);
  pool.release(b);
}

TEST(BufferPoolTest, MoveTransfersBlocksAndEmptiesSource) {
  BufferPool original = MakePool(3);
  Buffer held;
  ASSERT_TRUE(original.acquire(held));
  BufferPool moved(std::move(original));
  EXPECT_EQ(moved.capacity(), 3u);
  EXPECT_EQ(moved.in_use(), 1u);
  EXPECT_EQ(moved.high_water(), 1u);
  EXPECT_TRUE(Counts(moved));
  EXPECT_EQ(original.capacity(), 0u);  // NOLINT(bugprone-use-after-move): moved-from state
  Buffer none;
  EXPECT_FALSE(original.acquire(none));
  moved.release(held);
  EXPECT_EQ(moved.available(), 3u);
}

TEST(BufferPoolTest, LargePoolCreatesWithoutTouchingPages) {
  // 16 Ki blocks = 128 MiB of address space; MAP_NORESERVE keeps it cheap.
  BufferPool pool = MakePool(16384);
  EXPECT_EQ(pool.capacity(), 16384u);
  Buffer b;
  ASSERT_TRUE(pool.acquire(b));
  b.write_ptr()[0] = std::byte{1};
  pool.release(b);
  EXPECT_TRUE(Counts(pool));
}

// --- chains (decision 0011) ------------------------------------------------------------------

// A buffer holding `bytes` bytes, `consumed` of them already written, each byte `fill + k`.
Buffer Filled(BufferPool& pool, uint32_t bytes, uint32_t consumed, uint8_t fill) {
  Buffer b;
  EXPECT_TRUE(pool.acquire(b));
  for (uint32_t k = 0; k < bytes; ++k) b.write_ptr()[k] = static_cast<std::byte>(fill + k);
  b.commit(bytes);
  b.consume(consumed);
  return b;
}

::testing::AssertionResult ChainIs(const BufferPool& pool, const BlockChain& chain,
                                   std::vector<size_t> lengths) {
  std::vector<iovec> iov(lengths.size() + 2);
  uint32_t bytes = 0;
  const uint32_t n = pool.chain_iov(chain, iov.data(), static_cast<uint32_t>(iov.size()), bytes);
  if (n != lengths.size() || n != chain.blocks) {
    return ::testing::AssertionFailure()
           << n << " iovecs, " << chain.blocks << " blocks, expected " << lengths.size();
  }
  uint32_t sum = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (iov[i].iov_len != lengths[i]) {
      return ::testing::AssertionFailure() << "iovec " << i << " has " << iov[i].iov_len;
    }
    sum += static_cast<uint32_t>(lengths[i]);
  }
  if (sum != bytes || bytes != chain.bytes) {
    return ::testing::AssertionFailure() << "bytes " << bytes << ", chain.bytes " << chain.bytes;
  }
  return Counts(pool);
}

TEST(BufferPoolTest, ChainPushDetachesAndKeepsEachBlocksRange) {
  BufferPool pool = MakePool(4);
  BlockChain chain;
  EXPECT_TRUE(ChainIs(pool, chain, {}));
  Buffer a = Filled(pool, kBufferBytes, 100, 1);
  const std::byte* a_first = a.read_ptr();
  pool.chain_push(chain, a);
  EXPECT_FALSE(a.attached());
  Buffer b = Filled(pool, 300, 0, 2);
  pool.chain_push(chain, b);
  EXPECT_EQ(pool.in_use(), 2u) << "chained blocks stay in use";
  EXPECT_TRUE(ChainIs(pool, chain, {kBufferBytes - 100, 300}));
  iovec iov[2];
  uint32_t bytes = 0;
  ASSERT_EQ(pool.chain_iov(chain, iov, 1, bytes), 1u) << "at most `max` iovecs";
  EXPECT_EQ(iov[0].iov_base, a_first) << "the head's range starts where its buffer was read to";
  EXPECT_EQ(bytes, kBufferBytes - 100);
  EXPECT_EQ(pool.chain_release(chain), 2u);
  EXPECT_TRUE(chain.empty());
  EXPECT_EQ(pool.available(), 4u);
}

TEST(BufferPoolTest, ChainConsumeFreesEmptiedBlocksAtEveryOffset) {
  // Three blocks (a partly written head, a full one, a short tail), consumed in two steps split at
  // every offset near the block boundaries and at a stride elsewhere.
  constexpr uint32_t kHead = kBufferBytes - 10;
  constexpr uint32_t kTotal = kHead + kBufferBytes + 77;
  for (uint32_t first = 0; first <= kTotal; ++first) {
    const uint32_t in_block = first % kBufferBytes;
    if (in_block > 12 && in_block < kBufferBytes - 12 && first % 509 != 0 && first != kTotal) {
      continue;
    }
    BufferPool pool = MakePool(3);
    BlockChain chain;
    for (Buffer b : {Filled(pool, kBufferBytes, 10, 0), Filled(pool, kBufferBytes, 0, 0),
                     Filled(pool, 77, 0, 0)}) {
      pool.chain_push(chain, b);
    }
    ASSERT_EQ(chain.bytes, kTotal);
    const uint32_t freed = pool.chain_consume(chain, first);
    const uint32_t expect_freed = first >= kTotal                 ? 3
                                  : first >= kHead + kBufferBytes ? 2
                                  : first >= kHead                ? 1
                                                                  : 0;
    ASSERT_EQ(freed, expect_freed) << "after " << first;
    ASSERT_EQ(chain.bytes, kTotal - first);
    ASSERT_EQ(pool.in_use(), 3 - freed);
    ASSERT_TRUE(Counts(pool));
    uint32_t bytes = 0;
    iovec iov[3];
    const uint32_t n = pool.chain_iov(chain, iov, 3, bytes);
    ASSERT_EQ(n, 3 - freed);
    ASSERT_EQ(bytes, kTotal - first) << "the ranges still cover exactly what is left";
    pool.chain_consume(chain, kTotal - first);
    ASSERT_TRUE(chain.empty());
    ASSERT_EQ(chain.head, kNoBuffer);
    ASSERT_EQ(pool.available(), 3u) << "every block back after " << first;
  }
}

TEST(BufferPoolTest, ChainKeepsFifoOrderAcrossReuse) {
  BufferPool pool = MakePool(3);
  BlockChain chain;
  for (uint8_t k = 0; k < 3; ++k) {
    Buffer b = Filled(pool, 1, 0, static_cast<uint8_t>(10 * k));
    pool.chain_push(chain, b);
  }
  pool.chain_consume(chain, 1);  // the head goes back and is pushed again, now at the tail
  Buffer again = Filled(pool, 1, 0, 99);
  pool.chain_push(chain, again);
  iovec iov[3];
  uint32_t bytes = 0;
  ASSERT_EQ(pool.chain_iov(chain, iov, 3, bytes), 3u);
  EXPECT_EQ(*static_cast<const std::byte*>(iov[0].iov_base), std::byte{10});
  EXPECT_EQ(*static_cast<const std::byte*>(iov[1].iov_base), std::byte{20});
  EXPECT_EQ(*static_cast<const std::byte*>(iov[2].iov_base), std::byte{99});
  EXPECT_EQ(pool.chain_release(chain), 3u);
  EXPECT_EQ(pool.available(), 3u);
}

}  // namespace
}  // namespace edgeproxy
