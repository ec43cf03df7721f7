// Buffer: offsets, rewinding and compaction of one 8 KiB view, with the invariant
// 0 <= rd <= wr <= cap re-checked after every mutating operation.
#include "edgeproxy/buffer.h"
#include "edgeproxy/buffer_pool.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace edgeproxy {
namespace {

// A block standing in for one pool buffer.
struct Block {
  alignas(64) std::array<std::byte, kBufferBytes> bytes{};
  std::byte* data() { return bytes.data(); }
};

// Recovers rd and wr from the public view (wr = cap - writable, rd = wr - readable) and checks
// 0 <= rd <= wr <= cap together with every relation the accessors promise.
::testing::AssertionResult Invariants(Buffer& b, const std::byte* block) {
  if (!b.attached()) {
    if (b.readable() != 0 || b.writable() != 0 || !b.empty() || b.full() || b.id() != kNoBuffer) {
      return ::testing::AssertionFailure()
             << "detached buffer: readable=" << b.readable() << " writable=" << b.writable()
             << " empty=" << b.empty() << " full=" << b.full() << " id=" << b.id();
    }
    return ::testing::AssertionSuccess();
  }
  const uint32_t readable = b.readable();
  const uint32_t writable = b.writable();
  if (writable > kBufferBytes) {
    return ::testing::AssertionFailure() << "writable " << writable << " > capacity";
  }
  const uint32_t wr = kBufferBytes - writable;
  if (readable > wr) {
    return ::testing::AssertionFailure() << "readable " << readable << " > wr " << wr;
  }
  const uint32_t rd = wr - readable;
  if (b.read_ptr() != block + rd) {
    return ::testing::AssertionFailure() << "read_ptr is not block + rd (" << rd << ")";
  }
  if (b.write_ptr() != block + wr) {
    return ::testing::AssertionFailure() << "write_ptr is not block + wr (" << wr << ")";
  }
  if (b.empty() != (readable == 0)) {
    return ::testing::AssertionFailure() << "empty()=" << b.empty() << " readable=" << readable;
  }
  if (b.full() != (writable == 0)) {
    return ::testing::AssertionFailure() << "full()=" << b.full() << " writable=" << writable;
  }
  if (b.empty() && rd != 0) {
    return ::testing::AssertionFailure() << "empty buffer not rewound: rd=" << rd;
  }
  return ::testing::AssertionSuccess();
}

// Uniform in [0, n).
uint32_t Uniform(std::mt19937& rng, uint32_t n) {
  return static_cast<uint32_t>(rng() % n);
}

void Fill(std::byte* p, uint32_t n, uint8_t seed) {
  for (uint32_t i = 0; i < n; ++i) p[i] = static_cast<std::byte>(static_cast<uint8_t>(seed + i));
}

TEST(BufferTest, DefaultIsDetached) {
  Buffer b;
  EXPECT_FALSE(b.attached());
  EXPECT_EQ(b.id(), kNoBuffer);
  EXPECT_EQ(b.readable(), 0u);
  EXPECT_EQ(b.writable(), 0u);
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(b.full());
  EXPECT_TRUE(Invariants(b, nullptr));
}

TEST(BufferTest, AttachGivesWholeBlock) {
  Block block;
  Buffer b;
  b.attach(block.data(), 7);
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_TRUE(b.attached());
  EXPECT_EQ(b.id(), 7u);
  EXPECT_EQ(b.readable(), 0u);
  EXPECT_EQ(b.writable(), kBufferBytes);
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(b.full());
  EXPECT_EQ(b.read_ptr(), block.data());
  EXPECT_EQ(b.write_ptr(), block.data());
}

TEST(BufferTest, CommitAndConsumeMoveOffsets) {
  Block block;
  Buffer b;
  b.attach(block.data(), 0);
  Fill(b.write_ptr(), 100, 1);
  b.commit(100);
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_EQ(b.readable(), 100u);
  EXPECT_EQ(b.writable(), kBufferBytes - 100);
  EXPECT_FALSE(b.empty());

  b.consume(30);
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_EQ(b.readable(), 70u);
  EXPECT_EQ(b.writable(), kBufferBytes - 100);  // consuming does not make room at the end
  EXPECT_EQ(b.read_ptr(), block.data() + 30);
  EXPECT_EQ(b.read_ptr()[0], static_cast<std::byte>(31));

  b.commit(0);
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_EQ(b.readable(), 70u);
  b.consume(0);
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_EQ(b.readable(), 70u);
}

TEST(BufferTest, ConsumeToEmptyRewindsToOffsetZero) {
  Block block;
  Buffer b;
  b.attach(block.data(), 0);
  b.commit(500);
  b.consume(200);
  EXPECT_TRUE(Invariants(b, block.data()));
  b.consume(300);
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.read_ptr(), block.data());
  EXPECT_EQ(b.write_ptr(), block.data());
  EXPECT_EQ(b.writable(), kBufferBytes);
}

TEST(BufferTest, FullAtCapacityAndStaysFullWhilePartlyConsumed) {
  Block block;
  Buffer b;
  b.attach(block.data(), 0);
  b.commit(kBufferBytes - 1);
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_FALSE(b.full());
  EXPECT_EQ(b.writable(), 1u);
  b.commit(1);
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_TRUE(b.full());
  EXPECT_EQ(b.writable(), 0u);
  EXPECT_EQ(b.readable(), kBufferBytes);
  b.consume(10);
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_TRUE(b.full());  // no room at the end until compacted or emptied
  EXPECT_EQ(b.readable(), kBufferBytes - 10);
  b.consume(kBufferBytes - 10);
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_FALSE(b.full());
  EXPECT_EQ(b.writable(), kBufferBytes);
}

TEST(BufferTest, CompactMovesReadableBytesToStart) {
  Block block;
  Buffer b;
  b.attach(block.data(), 0);
  Fill(b.write_ptr(), 1000, 0);
  b.commit(1000);
  b.consume(600);
  EXPECT_TRUE(Invariants(b, block.data()));
  b.compact();
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_EQ(b.readable(), 400u);
  EXPECT_EQ(b.writable(), kBufferBytes - 400);
  EXPECT_EQ(b.read_ptr(), block.data());
  for (uint32_t i = 0; i < 400; ++i) {
    ASSERT_EQ(b.read_ptr()[i], static_cast<std::byte>(static_cast<uint8_t>(600 + i))) << i;
  }
}

TEST(BufferTest, CompactOfFullPartlyConsumedBufferMakesRoom) {
  Block block;
  Buffer b;
  b.attach(block.data(), 0);
  Fill(b.write_ptr(), kBufferBytes, 3);
  b.commit(kBufferBytes);
  b.consume(kBufferBytes - 1);
  b.compact();
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_FALSE(b.full());
  EXPECT_EQ(b.readable(), 1u);
  EXPECT_EQ(b.writable(), kBufferBytes - 1);
  EXPECT_EQ(b.read_ptr()[0], static_cast<std::byte>(static_cast<uint8_t>(3 + kBufferBytes - 1)));
}

TEST(BufferTest, CompactAtOffsetZeroAndWhenEmptyChangesNothing) {
  Block block;
  Buffer b;
  b.attach(block.data(), 0);
  b.compact();
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_EQ(b.writable(), kBufferBytes);
  b.commit(10);
  b.compact();
  EXPECT_TRUE(Invariants(b, block.data()));
  EXPECT_EQ(b.readable(), 10u);
  EXPECT_EQ(b.read_ptr(), block.data());
}

TEST(BufferTest, DetachReturnsIdAndClearsView) {
  Block block;
  Buffer b;
  b.attach(block.data(), 42);
  b.commit(123);
  b.consume(3);
  EXPECT_EQ(b.detach(), 42u);
  EXPECT_TRUE(Invariants(b, nullptr));
  EXPECT_FALSE(b.attached());
  EXPECT_EQ(b.writable(), 0u);
  EXPECT_EQ(b.readable(), 0u);
  EXPECT_FALSE(b.full());
  EXPECT_EQ(b.id(), kNoBuffer);
}

TEST(BufferTest, ReattachStartsEmpty) {
  Block first;
  Block second;
  Buffer b;
  b.attach(first.data(), 1);
  b.commit(kBufferBytes);
  b.consume(5);
  b.detach();
  b.attach(second.data(), 2);
  EXPECT_TRUE(Invariants(b, second.data()));
  EXPECT_EQ(b.id(), 2u);
  EXPECT_EQ(b.readable(), 0u);
  EXPECT_EQ(b.writable(), kBufferBytes);
}

// Random commit/consume/compact against a byte-queue model: same bytes, same order, and the
// invariant after every step.
TEST(BufferTest, RandomOperationsMatchQueueModel) {
  Block block;
  Buffer b;
  b.attach(block.data(), 0);
  std::deque<uint8_t> model;
  std::mt19937 rng(20240501);
  uint8_t next = 0;
  for (int step = 0; step < 20000; ++step) {
    const uint32_t op = Uniform(rng, 8);
    if (op < 4) {
      const uint32_t n = Uniform(rng, b.writable() + 1);
      for (uint32_t i = 0; i < n; ++i) {
        b.write_ptr()[i] = static_cast<std::byte>(next);
        model.push_back(next++);
      }
      b.commit(n);
    } else if (op < 7) {
      const uint32_t n = Uniform(rng, b.readable() + 1);
      for (uint32_t i = 0; i < n; ++i) {
        ASSERT_EQ(b.read_ptr()[i], static_cast<std::byte>(model.front())) << "step " << step;
        model.pop_front();
      }
      b.consume(n);
    } else {
      b.compact();
      ASSERT_EQ(b.read_ptr(), block.data());
    }
    ASSERT_TRUE(Invariants(b, block.data())) << "step " << step;
    ASSERT_EQ(b.readable(), model.size()) << "step " << step;
  }
}

// EDGEPROXY_CHECK: on in release builds too.
TEST(BufferTestDeath, CommitPastWritableAsserts) {
  Block block;
  Buffer b;
  b.attach(block.data(), 0);
  b.commit(kBufferBytes);
  EXPECT_DEATH(b.commit(1), "writable");
}

TEST(BufferTestDeath, ConsumePastReadableAsserts) {
  Block block;
  Buffer b;
  b.attach(block.data(), 0);
  b.commit(10);
  EXPECT_DEATH(b.consume(11), "readable");
}

TEST(BufferTestDeath, AttachTwiceAsserts) {
  Block block;
  Buffer b;
  b.attach(block.data(), 0);
  EXPECT_DEATH(b.attach(block.data(), 1), "attached");
}

}  // namespace
}  // namespace edgeproxy

namespace edgeproxy {
namespace {

TEST(BufferTest, ReplaceGrowsShrinksAndKeepsTheBytesAfter) {
  auto created = BufferPool::create(1);
  ASSERT_TRUE(created.ok());
  BufferPool pool = std::move(created.value());
  Buffer b;
  ASSERT_TRUE(pool.acquire(b));
  std::memcpy(b.write_ptr(), "xxHEADbody", 10);
  b.commit(10);
  b.consume(2);  // "HEADbody", not at offset 0
  const auto* longer = reinterpret_cast<const std::byte*>("LONGER-HEAD");
  ASSERT_TRUE(b.replace(0, 4, longer, 11));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.read_ptr()), b.readable()),
            "LONGER-HEADbody");
  ASSERT_TRUE(b.replace(0, 11, reinterpret_cast<const std::byte*>("H"), 1));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.read_ptr()), b.readable()), "Hbody");
  ASSERT_TRUE(b.replace(1, 4, reinterpret_cast<const std::byte*>("!"), 1));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.read_ptr()), b.readable()), "H!");
  pool.release(b);
}

TEST(BufferTest, ReplaceCompactsWhenTheEndHasNoRoomAndRefusesWhatCannotFit) {
  auto created = BufferPool::create(1);
  ASSERT_TRUE(created.ok());
  BufferPool pool = std::move(created.value());
  Buffer b;
  ASSERT_TRUE(pool.acquire(b));
  b.commit(kBufferBytes);
  b.consume(kBufferBytes - 8);  // 8 bytes readable at the block's end
  std::vector<std::byte> big(100, std::byte{'a'});
  ASSERT_TRUE(b.replace(0, 4, big.data(), 100));  // needs the room before the readable bytes
  EXPECT_EQ(b.readable(), 104u);
  EXPECT_EQ(b.read_ptr()[0], std::byte{'a'});
  std::vector<std::byte> huge(kBufferBytes, std::byte{'b'});
  EXPECT_FALSE(b.replace(0, 4, huge.data(), kBufferBytes));  // 100 + 8188 > 8192
  EXPECT_EQ(b.readable(), 104u);                             // unchanged
  pool.release(b);
}

}  // namespace
}  // namespace edgeproxy
