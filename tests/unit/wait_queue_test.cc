// WaitQueue: first in, first out through links in the slots themselves; a slot is queued at
// most once; removing from anywhere (or a slot not queued) keeps the links consistent.
#include "edgeproxy/wait_queue.h"

#include <gtest/gtest.h>

#include <vector>

namespace edgeproxy {
namespace {

struct Item {
  WaitLinks a;
  WaitLinks b;  // a second queue through the same slots
};

struct Slots {
  std::vector<Item> items = std::vector<Item>(8);
  Item& at(uint32_t i) { return items[i]; }
};

using QueueA = WaitQueue<Item, &Item::a>;
using QueueB = WaitQueue<Item, &Item::b>;

std::vector<uint32_t> Drain(QueueA& q, Slots& s) {
  std::vector<uint32_t> out;
  for (int guard = 0; !q.empty() && guard < 100; ++guard) {
    out.push_back(q.front());
    q.remove(s, q.front());
  }
  return out;
}

TEST(WaitQueueTest, FirstInFirstOut) {
  Slots s;
  QueueA q;
  EXPECT_TRUE(q.empty());
  for (uint32_t i : {3u, 1u, 7u}) q.push_back(s, i);
  EXPECT_EQ(Drain(q, s), (std::vector<uint32_t>{3, 1, 7}));
  EXPECT_TRUE(q.empty());
}

TEST(WaitQueueTest, ASlotIsQueuedOnce) {
  Slots s;
  QueueA q;
  q.push_back(s, 2);
  q.push_back(s, 5);
  q.push_back(s, 2);
  EXPECT_EQ(Drain(q, s), (std::vector<uint32_t>{2, 5}));
}

TEST(WaitQueueTest, RemoveFromHeadMiddleAndTail) {
  Slots s;
  QueueA q;
  for (uint32_t i = 0; i < 6; ++i) q.push_back(s, i);
  q.remove(s, 0);
  q.remove(s, 3);
  q.remove(s, 5);
  q.remove(s, 3);  // no longer queued: nothing happens
  EXPECT_FALSE(s.at(3).a.linked());
  q.push_back(s, 3);  // back, at the end
  EXPECT_EQ(Drain(q, s), (std::vector<uint32_t>{1, 2, 4, 3}));
  for (const Item& item : s.items) EXPECT_FALSE(item.a.linked());
}

TEST(WaitQueueTest, TwoQueuesThroughTheSameSlotsAreIndependent) {
  Slots s;
  QueueA qa;
  QueueB qb;
  qa.push_back(s, 1);
  qb.push_back(s, 1);
  qb.push_back(s, 2);
  qa.remove(s, 1);
  EXPECT_TRUE(qa.empty());
  EXPECT_TRUE(s.at(1).b.linked());
  EXPECT_EQ(qb.front(), 1u);
  qb.remove(s, 1);
  EXPECT_EQ(qb.front(), 2u);
}

}  // namespace
}  // namespace edgeproxy
