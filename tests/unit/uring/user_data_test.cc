// UserData and UringEventOp: what the io_uring backend packs into a submission's user_data and an
// Event's op. Every field survives a round trip at its extremes, and no field leaks into another.
#include "uring/user_data.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>

namespace edgeproxy {
namespace {

constexpr UringOp kOps[] = {
    UringOp::kNone,           UringOp::kAccept,         UringOp::kPoll,
    UringOp::kListenerCancel, UringOp::kConnect,        UringOp::kRecvClient,
    UringOp::kRecvUpstream,   UringOp::kSendClient,     UringOp::kSendUpstream,
    UringOp::kCancelClient,   UringOp::kCancelUpstream,
};
constexpr uint32_t kIndexes[] = {0, 1, 0x5A5A5, UserData::kMaxIndex - 1, UserData::kMaxIndex};
constexpr uint32_t kGenerations[] = {0, 1, 0x5A5A5A, kGenerationMask - 1, kGenerationMask};
constexpr uint16_t kBuffers[] = {0, 1, 0x5A5A, 0xFFFE, 0xFFFF};

::testing::AssertionResult RoundTrips(UringOp op, Handle h, uint16_t buffer) {
  const uint64_t packed = UserData::pack(op, h, buffer);
  const UserData u = UserData::unpack(packed);
  if (u.op == op && u.handle == h && u.buffer == buffer) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "packed 0x" << std::hex << packed << std::dec << ": op " << static_cast<int>(op)
         << " -> " << static_cast<int>(u.op) << ", index " << h.index << " -> " << u.handle.index
         << ", generation " << h.generation << " -> " << u.handle.generation << ", buffer "
         << buffer << " -> " << u.buffer;
}

static_assert(UserData::kMaxIndex == 0xFFFFF);
static_assert(UserData::kMaxBuffer == 0xFFFF);
// The widest operation fits its 4 bits.
static_assert(static_cast<uint8_t>(UringOp::kCancelUpstream) < 16);
static_assert(UserData::unpack(UserData::pack(UringOp::kCancelUpstream,
                                              Handle{UserData::kMaxIndex, kGenerationMask}, 0xFFFF))
                  .handle.index == UserData::kMaxIndex);

TEST(UserDataTest, EveryOpRoundTripsWithExtremeFields) {
  for (const UringOp op : kOps) {
    for (const uint32_t index : kIndexes) {
      for (const uint32_t generation : kGenerations) {
        for (const uint16_t buffer : kBuffers) {
          ASSERT_TRUE(RoundTrips(op, Handle{index, generation}, buffer));
        }
      }
    }
  }
}

TEST(UserDataTest, AllZeroPacksToZeroAndAllMaxToAllOnes) {
  EXPECT_EQ(UserData::pack(UringOp::kNone, Handle{0, 0}, 0), 0u);
  const UserData zero = UserData::unpack(0);
  EXPECT_EQ(zero.op, UringOp::kNone);
  EXPECT_EQ(zero.handle, (Handle{0, 0}));
  EXPECT_EQ(zero.buffer, 0);
  // 4 + 24 + 16 + 20 bits: every bit of the 64 is used exactly once. Op 15 is not a UringOp, but
  // the field must still hold it.
  const auto op15 = static_cast<UringOp>(15);
  EXPECT_EQ(UserData::pack(op15, Handle{UserData::kMaxIndex, kGenerationMask}, 0xFFFF), ~0ull);
}

TEST(UserDataTest, EachFieldAtMaxLeavesTheOthersZero) {
  const auto op15 = static_cast<UringOp>(15);
  struct Case {
    UringOp op;
    Handle h;
    uint16_t buffer;
  };
  const Case cases[] = {
      {op15, Handle{0, 0}, 0},
      {UringOp::kNone, Handle{UserData::kMaxIndex, 0}, 0},
      {UringOp::kNone, Handle{0, kGenerationMask}, 0},
      {UringOp::kNone, Handle{0, 0}, 0xFFFF},
  };
  uint64_t seen_bits = 0;
  for (const Case& c : cases) {
    const uint64_t packed = UserData::pack(c.op, c.h, c.buffer);
    EXPECT_TRUE(RoundTrips(c.op, c.h, c.buffer));
    // The fields occupy disjoint bit ranges that together cover the word.
    EXPECT_EQ(seen_bits & packed, 0u) << std::hex << packed;
    seen_bits |= packed;
  }
  EXPECT_EQ(seen_bits, ~0ull);
}

TEST(UserDataTest, OutOfRangeIndexAndGenerationDoNotBleedIntoOtherFields) {
  // Bits above a field's width are dropped, never carried into the neighbouring field.
  const Handle wide{UserData::kMaxIndex + 1 + 7, kGenerationMask + 1 + 9};
  const UserData u = UserData::unpack(UserData::pack(UringOp::kSendUpstream, wide, 0x1234));
  EXPECT_EQ(u.op, UringOp::kSendUpstream);
  EXPECT_EQ(u.handle.index, 7u);
  EXPECT_EQ(u.handle.generation, 9u);
  EXPECT_EQ(u.buffer, 0x1234);
  // A generation with every high bit set still leaves op and buffer alone.
  const UserData g = UserData::unpack(UserData::pack(UringOp::kNone, Handle{0, ~0u}, 0));
  EXPECT_EQ(g.op, UringOp::kNone);
  EXPECT_EQ(g.handle.generation, kGenerationMask);
  EXPECT_EQ(g.buffer, 0);
  EXPECT_EQ(g.handle.index, 0u);
}

TEST(UserDataTest, RandomFieldsRoundTripAndChangeOnlyTheirOwnBits) {
  std::mt19937_64 rng(0x5EED'0BAD'F00Dull);
  std::uniform_int_distribution<int> op_dist(0, static_cast<int>(UringOp::kCancelUpstream));
  std::uniform_int_distribution<uint32_t> index_dist(0, UserData::kMaxIndex);
  std::uniform_int_distribution<uint32_t> gen_dist(0, kGenerationMask);
  std::uniform_int_distribution<uint32_t> buf_dist(0, 0xFFFF);
  for (int i = 0; i < 100000; ++i) {
    const auto op = static_cast<UringOp>(op_dist(rng));
    const Handle h{index_dist(rng), gen_dist(rng)};
    const auto buffer = static_cast<uint16_t>(buf_dist(rng));
    ASSERT_TRUE(RoundTrips(op, h, buffer)) << "iteration " << i;

    // Changing one field changes only that field after a round trip.
    const Handle other_index{index_dist(rng), h.generation};
    const UserData a = UserData::unpack(UserData::pack(op, other_index, buffer));
    ASSERT_EQ(a.op, op);
    ASSERT_EQ(a.handle.generation, h.generation);
    ASSERT_EQ(a.buffer, buffer);
    const Handle other_gen{h.index, gen_dist(rng)};
    const UserData b = UserData::unpack(UserData::pack(op, other_gen, buffer));
    ASSERT_EQ(b.op, op);
    ASSERT_EQ(b.handle.index, h.index);
    ASSERT_EQ(b.buffer, buffer);
    const auto other_buffer = static_cast<uint16_t>(buf_dist(rng));
    const UserData c = UserData::unpack(UserData::pack(op, h, other_buffer));
    ASSERT_EQ(c.op, op);
    ASSERT_EQ(c.handle, h);
    ASSERT_EQ(c.buffer, other_buffer);
  }
}

TEST(UserDataTest, EventOpRoundTripsEveryOpAndBuffer) {
  for (const UringOp op : kOps) {
    for (const uint16_t buffer : kBuffers) {
      const uint32_t v = UringEventOp::pack(op, buffer);
      EXPECT_EQ(UringEventOp::op(v), op) << "op " << static_cast<int>(op) << " buffer " << buffer;
      EXPECT_EQ(UringEventOp::buffer(v), buffer)
          << "op " << static_cast<int>(op) << " buffer " << buffer;
    }
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> op_dist(0, static_cast<int>(UringOp::kCancelUpstream));
  std::uniform_int_distribution<uint32_t> buf_dist(0, 0xFFFF);
  for (int i = 0; i < 10000; ++i) {
    const auto op = static_cast<UringOp>(op_dist(rng));
    const auto buffer = static_cast<uint16_t>(buf_dist(rng));
    const uint32_t v = UringEventOp::pack(op, buffer);
    ASSERT_EQ(UringEventOp::op(v), op);
    ASSERT_EQ(UringEventOp::buffer(v), buffer);
  }
}

TEST(UserDataTest, EventOpCarriesTheBufferOfAPackedUserData) {
  // The reactor moves op and buffer id from user_data to Event::op: the chain loses nothing.
  for (const UringOp op : kOps) {
    for (const uint16_t buffer : kBuffers) {
      const UserData u = UserData::unpack(
          UserData::pack(op, Handle{UserData::kMaxIndex, kGenerationMask}, buffer));
      const uint32_t v = UringEventOp::pack(u.op, u.buffer);
      EXPECT_EQ(UringEventOp::op(v), op);
      EXPECT_EQ(UringEventOp::buffer(v), buffer);
    }
  }
}

}  // namespace
}  // namespace edgeproxy
