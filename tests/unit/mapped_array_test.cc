// MappedArray: elements are value-initialised by reset(), pages are backed only when a slot is
// first written, and every page goes back to the kernel with the array (mincore(2) tells which
// pages of the mapping are resident).
#include "edgeproxy/mapped_array.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "edgeproxy/forward_exchange.h"
#include "edgeproxy/routing_context.h"

namespace edgeproxy {
namespace {

struct Slot {
  uint64_t a = 7;
  uint16_t b = UINT16_MAX;
  char bytes[4000];
};

size_t page() {
  return static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Pages of [base, base + bytes) resident now; -1 when mincore() refuses (the range unmapped).
long resident_pages(const void* base, size_t bytes) {
  const size_t pages = (bytes + page() - 1) / page();
  std::vector<unsigned char> vec(pages);
  if (mincore(const_cast<void*>(base), bytes, vec.data()) != 0) return errno == ENOMEM ? -1 : -2;
  long n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

TEST(MappedArrayTest, ResetValueInitialisesAndKeepsWrites) {
  MappedArray<Slot> slots(3);
  ASSERT_EQ(slots.size(), 3u);
  Slot& s = slots.reset(1);
  EXPECT_EQ(s.a, 7u);
  EXPECT_EQ(s.b, UINT16_MAX);
  s.a = 42;
  EXPECT_EQ(slots[1].a, 42u);
  EXPECT_EQ(&slots[1], &s);
  EXPECT_EQ(slots.reset(1).a, 7u) << "reset() must start the slot afresh";
}

TEST(MappedArrayTest, PagesAreBackedOnlyWhenASlotIsUsed) {
  constexpr size_t kCount = 1024;  // 4 MiB of Slot
  MappedArray<Slot> slots(kCount);
  const size_t bytes = kCount * sizeof(Slot);
  EXPECT_EQ(resident_pages(slots.data(), bytes), 0);
  slots.reset(500);
  const long used = resident_pages(slots.data(), bytes);
  EXPECT_GE(used, 1);
  EXPECT_LE(used, 2) << "one Slot spans at most two pages";
}

TEST(MappedArrayTest, DestructionGivesThePagesBack) {
  void* base = nullptr;
  size_t bytes = 0;
  {
    MappedArray<Slot> slots(256);
    for (size_t i = 0; i < slots.size(); ++i) slots.reset(i);
    base = slots.data();
    bytes = slots.size() * sizeof(Slot);
    EXPECT_EQ(resident_pages(base, bytes), static_cast<long>((bytes + page() - 1) / page()));
  }
  EXPECT_EQ(resident_pages(base, bytes), -1) << "the mapping outlived its array";
}

TEST(MappedArrayTest, MoveTransfersTheMapping) {
  MappedArray<Slot> a(4);
  a.reset(2).a = 9;
  Slot* data = a.data();
  MappedArray<Slot> b(std::move(a));
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(b[2].a, 9u);
  MappedArray<Slot> c;
  c = std::move(b);
  EXPECT_EQ(c[2].a, 9u);
  EXPECT_TRUE(b.empty());
}

// A topology version's areas touch nothing until a slot is used (they were value-initialised
// in full before: about 2 KiB per slot per worker at every reload with an HTTP listener).
TEST(MappedArrayTest, VersionAreasStartUnbacked) {
  ForwardArea forward(1024);
  EXPECT_EQ(forward.reset(3).http.chosen, UINT16_MAX) << "defaults apply at reset";
  RoutingArea routing(1024, kMaxForwardHeadBytes + 8192);
  RoutingContext& c = routing.reset(5);
  ASSERT_NE(c.region, nullptr);
  EXPECT_EQ(c.capacity, kMaxForwardHeadBytes + 8192);
  EXPECT_EQ(c.length, 0u);
  EXPECT_EQ(resident_pages(&routing.at(0), 1024 * sizeof(RoutingContext)), 1)
      << "only the page of slot 5's context";
}

}  // namespace
}  // namespace edgeproxy
