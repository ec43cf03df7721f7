// Slab: fixed slots with generations; a handle goes stale on release and stays stale after the
// slot is reused. Counts re-checked after every acquire and release.
#include "edgeproxy/slab.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "edgeproxy/connection.h"

namespace edgeproxy {
namespace {

template <class T>
::testing::AssertionResult Counts(const Slab<T>& slab) {
  uint32_t in_use = 0;
  for (uint32_t i = 0; i < slab.capacity(); ++i) in_use += slab.in_use(i) ? 1u : 0u;
  if (in_use != slab.used()) {
    return ::testing::AssertionFailure()
           << "in_use() is true for " << in_use << " slots, used() = " << slab.used();
  }
  if (slab.full() != (slab.used() == slab.capacity())) {
    return ::testing::AssertionFailure()
           << "full()=" << slab.full() << " used " << slab.used() << " of " << slab.capacity();
  }
  return ::testing::AssertionSuccess();
}

TEST(SlabTest, NewSlabIsEmpty) {
  Slab<int> slab(3);
  EXPECT_TRUE(Counts(slab));
  EXPECT_EQ(slab.capacity(), 3u);
  EXPECT_EQ(slab.used(), 0u);
  EXPECT_FALSE(slab.full());
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(slab.in_use(i));
    EXPECT_EQ(slab.handle_of(i), (Handle{i, 0}));
  }
}

TEST(SlabTest, AcquireUntilFullLowestIndexFirst) {
  Slab<int> slab(4);
  for (uint32_t i = 0; i < 4; ++i) {
    Handle h;
    int* p = slab.acquire(h);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(Counts(slab));
    EXPECT_EQ(h, (Handle{i, 0}));
    EXPECT_EQ(p, &slab.at(i));
    EXPECT_TRUE(slab.in_use(i));
    EXPECT_EQ(slab.used(), i + 1);
  }
  EXPECT_TRUE(slab.full());
  Handle untouched{77, 88};
  EXPECT_EQ(slab.acquire(untouched), nullptr);
  EXPECT_TRUE(Counts(slab));
  EXPECT_EQ(untouched, (Handle{77, 88})) << "a refused acquire leaves the handle alone";
}

TEST(SlabTest, SlotsAreValueInitialised) {
  Slab<Connection> slab(2);
  Handle h;
  Connection* c = slab.acquire(h);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->state, State::kFree);
  EXPECT_EQ(c->client.fd, -1);
  EXPECT_EQ(c->upstream.fd, -1);
  EXPECT_FALSE(c->client.in.attached());
}

TEST(SlabTest, ResolveFindsLiveHandle) {
  Slab<int> slab(2);
  Handle h;
  int* p = slab.acquire(h);
  ASSERT_NE(p, nullptr);
  *p = 5;
  EXPECT_EQ(slab.resolve(h), p);
  EXPECT_EQ(*slab.resolve(h), 5);
  EXPECT_EQ(slab.handle_of(h.index), h);
}

TEST(SlabTest, ReleaseBumpsGenerationAndStalesHandle) {
  Slab<int> slab(2);
  Handle h;
  ASSERT_NE(slab.acquire(h), nullptr);
  slab.release(h.index);
  EXPECT_TRUE(Counts(slab));
  EXPECT_FALSE(slab.in_use(h.index));
  EXPECT_EQ(slab.handle_of(h.index).generation, h.generation + 1);
  EXPECT_EQ(slab.resolve(h), nullptr);
  EXPECT_EQ(slab.used(), 0u);
}

TEST(SlabTest, StaleHandleStaysStaleAfterSlotIsReused) {
  Slab<int> slab(3);
  Handle old_handle;
  ASSERT_NE(slab.acquire(old_handle), nullptr);
  slab.release(old_handle.index);
  Handle new_handle;
  int* p = slab.acquire(new_handle);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(Counts(slab));
  EXPECT_EQ(new_handle.index, old_handle.index) << "the freed slot is reused first";
  EXPECT_NE(new_handle.generation, old_handle.generation);
  EXPECT_EQ(slab.resolve(old_handle), nullptr);
  EXPECT_EQ(slab.resolve(new_handle), p);
}

TEST(SlabTest, ReleasedSlotIsReusedFirst) {
  Slab<int> slab(4);
  std::vector<Handle> hs(4);
  for (Handle& h : hs) ASSERT_NE(slab.acquire(h), nullptr);
  slab.release(2);
  slab.release(0);
  EXPECT_TRUE(Counts(slab));
  Handle a;
  Handle b;
  ASSERT_NE(slab.acquire(a), nullptr);
  ASSERT_NE(slab.acquire(b), nullptr);
  EXPECT_TRUE(Counts(slab));
  EXPECT_EQ(a.index, 0u);
  EXPECT_EQ(b.index, 2u);
  EXPECT_TRUE(slab.full());
}

TEST(SlabTest, ResolveRejectsOutOfRangeAndFreeSlots) {
  Slab<int> slab(2);
  EXPECT_EQ(slab.resolve(Handle{0, 0}), nullptr) << "free slot at its current generation";
  EXPECT_EQ(slab.resolve(Handle{2, 0}), nullptr);
  EXPECT_EQ(slab.resolve(Handle{UINT32_MAX, 0}), nullptr);
  EXPECT_FALSE(slab.in_use(2));
  EXPECT_FALSE(slab.in_use(UINT32_MAX));
  Handle h;
  ASSERT_NE(slab.acquire(h), nullptr);
  EXPECT_EQ(slab.resolve(Handle{h.index, h.generation + 1}), nullptr) << "future generation";
}

TEST(SlabTest, ResolveComparesOnly24GenerationBits) {
  // Handles travel through cookie.h, which keeps 24 bits of generation.
  Slab<int> slab(1);
  Handle h;
  int* p = slab.acquire(h);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(slab.resolve(Handle{h.index, h.generation | (kGenerationMask + 1)}), p);
  EXPECT_EQ(slab.resolve(Handle{h.index, 0xFF000000u | h.generation}), p);
}

TEST(SlabTest, ManyCyclesKeepCountsAndStaleness) {
  Slab<int> slab(8);
  std::vector<Handle> live;
  std::vector<Handle> dead;
  uint32_t seed = 12345;
  for (int step = 0; step < 5000; ++step) {
    seed = seed * 1103515245u + 12345u;
    const bool do_acquire = live.empty() || (!slab.full() && (seed >> 16) % 2 == 0);
    if (do_acquire) {
      Handle h;
      ASSERT_NE(slab.acquire(h), nullptr);
      live.push_back(h);
    } else {
      const size_t k = (seed >> 8) % live.size();
      slab.release(live[k].index);
      dead.push_back(live[k]);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    }
    ASSERT_TRUE(Counts(slab)) << "step " << step;
    ASSERT_EQ(slab.used(), live.size());
  }
  for (const Handle& h : live) EXPECT_NE(slab.resolve(h), nullptr);
  for (const Handle& h : dead) EXPECT_EQ(slab.resolve(h), nullptr);
}

// 2^24 acquire/release cycles of one slot: the generation wraps to 0 through kGenerationMask.
// About 33M cheap operations: well under a second in release, a few seconds under ASan.
TEST(SlabTest, GenerationWrapsAt24Bits) {
  Slab<int> slab(1);
  Handle first;
  ASSERT_NE(slab.acquire(first), nullptr);
  EXPECT_EQ(first.generation, 0u);
  slab.release(0);
  Handle h;
  for (uint32_t i = 1; i < kGenerationMask; ++i) {
    slab.acquire(h);
    slab.release(0);
  }
  ASSERT_NE(slab.acquire(h), nullptr);
  EXPECT_EQ(h.generation, kGenerationMask);
  EXPECT_NE(slab.resolve(h), nullptr);
  slab.release(0);
  EXPECT_EQ(slab.handle_of(0).generation, 0u) << "wraps to 0, never reaches bit 24";
  EXPECT_EQ(slab.resolve(h), nullptr);
  Handle wrapped;
  ASSERT_NE(slab.acquire(wrapped), nullptr);
  EXPECT_EQ(wrapped.generation, 0u);
  EXPECT_EQ(slab.resolve(h), nullptr);
  // After a full wrap the very first handle names the slot again: the ABA window is 2^24 reuses.
  EXPECT_EQ(slab.resolve(first), &slab.at(0));
}

// EDGEPROXY_CHECK: on in release builds too.
TEST(SlabTestDeath, ReleaseOfFreeSlotAsserts) {
  Slab<int> slab(2);
  EXPECT_DEATH(slab.release(0), "in_use_flag_");
}

}  // namespace
}  // namespace edgeproxy
