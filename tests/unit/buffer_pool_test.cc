// BufferPool: fixed page-aligned blocks handed out LIFO; counts re-checked after every acquire
// and release.
#include "edgeproxy/buffer_pool.h"

#include <gtest/gtest.h>
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

}  // namespace
}  // namespace edgeproxy
