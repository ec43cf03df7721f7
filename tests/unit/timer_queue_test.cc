// TimerQueue: the indexed min-heap against a std::multimap model, plus the epoll timeout rules.
#include "edgeproxy/timer_queue.h"

#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <iterator>
#include <map>
#include <random>
#include <vector>

namespace edgeproxy {
namespace {

TEST(TimerQueueTest, EmptyQueue) {
  TimerQueue q(4);
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.next_deadline(), TimerQueue::kNever);
  EXPECT_EQ(q.timeout_ms(0), -1);
  EXPECT_EQ(q.timeout_ms(1'000'000), -1);
  uint32_t id = 99;
  EXPECT_FALSE(q.pop_expired(INT64_MAX, id));
  EXPECT_EQ(id, 99u);
  for (uint32_t i = 0; i < 4; ++i) EXPECT_FALSE(q.armed(i));
}

TEST(TimerQueueTest, ArmCancelArmed) {
  TimerQueue q(4);
  q.arm(2, 100);
  EXPECT_TRUE(q.armed(2));
  EXPECT_FALSE(q.armed(1));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.next_deadline(), 100);
  q.cancel(2);
  EXPECT_FALSE(q.armed(2));
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.next_deadline(), TimerQueue::kNever);
  q.cancel(2);  // cancelling an unarmed id is a no-op
  q.cancel(4);  // so is an out-of-range id
  q.cancel(UINT32_MAX);
  EXPECT_EQ(q.size(), 0u);
}

TEST(TimerQueueTest, ReArmMovesDeadlineEitherWay) {
  TimerQueue q(3);
  q.arm(0, 100);
  q.arm(1, 200);
  q.arm(2, 300);
  q.arm(2, 50);  // earlier
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.next_deadline(), 50);
  q.arm(2, 500);  // later
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.next_deadline(), 100);
  q.arm(0, 100);  // same
  EXPECT_EQ(q.next_deadline(), 100);
  uint32_t id = 0;
  ASSERT_TRUE(q.pop_expired(1000, id));
  EXPECT_EQ(id, 0u);
  ASSERT_TRUE(q.pop_expired(1000, id));
  EXPECT_EQ(id, 1u);
  ASSERT_TRUE(q.pop_expired(1000, id));
  EXPECT_EQ(id, 2u);
  EXPECT_FALSE(q.pop_expired(1000, id));
}

TEST(TimerQueueTest, PopExpiredOnlyTakesDueTimers) {
  TimerQueue q(3);
  q.arm(0, 10);
  q.arm(1, 20);
  uint32_t id = 0;
  EXPECT_FALSE(q.pop_expired(9, id));
  ASSERT_TRUE(q.pop_expired(10, id)) << "a deadline equal to now is due";
  EXPECT_EQ(id, 0u);
  EXPECT_FALSE(q.armed(0));
  EXPECT_FALSE(q.pop_expired(19, id));
  EXPECT_TRUE(q.armed(1));
  ASSERT_TRUE(q.pop_expired(25, id));
  EXPECT_EQ(id, 1u);
  EXPECT_EQ(q.size(), 0u);
}

TEST(TimerQueueTest, TimeoutMs) {
  TimerQueue q(2);
  EXPECT_EQ(q.timeout_ms(0), -1);
  q.arm(0, 1000);
  EXPECT_EQ(q.timeout_ms(0), 1000);
  EXPECT_EQ(q.timeout_ms(999), 1);
  EXPECT_EQ(q.timeout_ms(1000), 0);
  EXPECT_EQ(q.timeout_ms(5000), 0) << "overdue is 0, never negative";
  q.arm(1, 400);
  EXPECT_EQ(q.timeout_ms(0), 400) << "the nearest deadline counts";
  q.cancel(1);
  q.cancel(0);
  EXPECT_EQ(q.timeout_ms(0), -1);
}

TEST(TimerQueueTest, TimeoutMsClampsToIntMax) {
  TimerQueue q(1);
  q.arm(0, int64_t{INT_MAX});
  EXPECT_EQ(q.timeout_ms(0), INT_MAX);
  q.arm(0, int64_t{INT_MAX} + 1);
  EXPECT_EQ(q.timeout_ms(0), INT_MAX);
  q.arm(0, TimerQueue::kNever);
  EXPECT_EQ(q.timeout_ms(0), INT_MAX);
  EXPECT_EQ(q.timeout_ms(1'000'000), INT_MAX);
  q.arm(0, int64_t{INT_MAX} + 500);
  EXPECT_EQ(q.timeout_ms(500), INT_MAX);
  EXPECT_EQ(q.timeout_ms(501), INT_MAX - 1);
}

TEST(TimerQueueTest, EqualDeadlinesAllPop) {
  TimerQueue q(8);
  for (uint32_t i = 0; i < 8; ++i) q.arm(i, 7);
  std::vector<bool> seen(8, false);
  uint32_t id = 0;
  for (int k = 0; k < 8; ++k) {
    ASSERT_TRUE(q.pop_expired(7, id));
    ASSERT_LT(id, 8u);
    EXPECT_FALSE(seen[id]) << "id " << id << " popped twice";
    seen[id] = true;
  }
  EXPECT_FALSE(q.pop_expired(7, id));
}

TEST(TimerQueueTest, FullCapacity) {
  constexpr uint32_t kCap = 100;
  TimerQueue q(kCap);
  for (uint32_t i = 0; i < kCap; ++i) q.arm(i, int64_t{kCap} - i);
  EXPECT_EQ(q.size(), kCap);
  uint32_t id = 0;
  for (uint32_t k = 0; k < kCap; ++k) {
    ASSERT_TRUE(q.pop_expired(1000, id));
    EXPECT_EQ(id, kCap - 1 - k);
  }
  EXPECT_EQ(q.size(), 0u);
}

// The model: id -> deadline, and deadline -> ids. Ties may pop in any order.
class Model {
 public:
  void arm(uint32_t id, int64_t deadline) {
    cancel(id);
    by_id_[id] = deadline;
    by_deadline_.emplace(deadline, id);
  }
  void cancel(uint32_t id) {
    const auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    auto [lo, hi] = by_deadline_.equal_range(it->second);
    for (auto j = lo; j != hi; ++j) {
      if (j->second == id) {
        by_deadline_.erase(j);
        break;
      }
    }
    by_id_.erase(it);
  }
  bool armed(uint32_t id) const { return by_id_.count(id) != 0; }
  int64_t deadline(uint32_t id) const { return by_id_.at(id); }
  int64_t next() const {
    return by_deadline_.empty() ? TimerQueue::kNever : by_deadline_.begin()->first;
  }
  size_t size() const { return by_id_.size(); }
  uint32_t nth_armed(size_t n) const {
    return std::next(by_id_.begin(), static_cast<long>(n))->first;
  }

 private:
  std::map<uint32_t, int64_t> by_id_;
  std::multimap<int64_t, uint32_t> by_deadline_;
};

::testing::AssertionResult Matches(const TimerQueue& q, const Model& m, uint32_t capacity,
                                   int64_t now) {
  if (q.size() != m.size()) {
    return ::testing::AssertionFailure() << "size " << q.size() << " vs model " << m.size();
  }
  if (q.next_deadline() != m.next()) {
    return ::testing::AssertionFailure()
           << "next_deadline " << q.next_deadline() << " vs model " << m.next();
  }
  for (uint32_t id = 0; id < capacity; ++id) {
    if (q.armed(id) != m.armed(id)) {
      return ::testing::AssertionFailure() << "armed(" << id << ") = " << q.armed(id);
    }
  }
  int expected_timeout = -1;
  if (m.size() != 0) {
    const int64_t wait = m.next() - now;
    expected_timeout = wait <= 0 ? 0 : (wait > INT_MAX ? INT_MAX : static_cast<int>(wait));
  }
  if (q.timeout_ms(now) != expected_timeout) {
    return ::testing::AssertionFailure()
           << "timeout_ms " << q.timeout_ms(now) << " vs " << expected_timeout;
  }
  return ::testing::AssertionSuccess();
}

uint32_t Uniform(std::mt19937_64& rng, uint32_t n) {
  return static_cast<uint32_t>(rng() % n);
}

void RunRandomOperations(uint32_t capacity, int operations, uint64_t seed) {
  TimerQueue q(capacity);
  Model m;
  std::mt19937_64 rng(seed);
  int64_t now = 1'000;
  for (int step = 0; step < operations; ++step) {
    const uint32_t op = Uniform(rng, 100);
    if (op < 35) {  // arm (insert or move) a random id
      const uint32_t id = Uniform(rng, capacity);
      const int64_t deadline = now + Uniform(rng, 2'000);
      q.arm(id, deadline);
      m.arm(id, deadline);
    } else if (op < 55 && m.size() != 0) {  // re-arm an armed id earlier or later
      const uint32_t id = m.nth_armed(Uniform(rng, static_cast<uint32_t>(m.size())));
      const int64_t delta = static_cast<int64_t>(Uniform(rng, 1'000)) + 1;
      const int64_t deadline =
          Uniform(rng, 2) == 0 ? m.deadline(id) - delta : m.deadline(id) + delta;
      q.arm(id, deadline);
      m.arm(id, deadline);
    } else if (op < 70) {  // cancel an armed id (or, sometimes, an unarmed one)
      const uint32_t id = m.size() != 0 && Uniform(rng, 4) != 0
                              ? m.nth_armed(Uniform(rng, static_cast<uint32_t>(m.size())))
                              : Uniform(rng, capacity);
      q.cancel(id);
      m.cancel(id);
    } else if (op < 90) {  // time passes; pop everything due
      now += Uniform(rng, 300);
      uint32_t id = 0;
      while (q.pop_expired(now, id)) {
        ASSERT_TRUE(m.armed(id)) << "step " << step << ": popped unarmed id " << id;
        ASSERT_LE(m.deadline(id), now) << "step " << step << ": popped a timer not yet due";
        ASSERT_EQ(m.deadline(id), m.next()) << "step " << step << ": popped out of order";
        m.cancel(id);
        ASSERT_FALSE(q.armed(id));
      }
      ASSERT_TRUE(m.size() == 0 || m.next() > now) << "step " << step << ": due timer left";
    } else {  // pop just one
      uint32_t id = 0;
      const bool popped = q.pop_expired(now, id);
      ASSERT_EQ(popped, m.size() != 0 && m.next() <= now) << "step " << step;
      if (popped) {
        ASSERT_EQ(m.deadline(id), m.next()) << "step " << step;
        m.cancel(id);
      }
    }
    ASSERT_TRUE(Matches(q, m, capacity, now)) << "step " << step << " op " << op;
  }
  // Drain: everything comes out in non-decreasing deadline order.
  uint32_t id = 0;
  int64_t last = INT64_MIN;
  while (q.pop_expired(TimerQueue::kNever, id)) {
    ASSERT_TRUE(m.armed(id));
    ASSERT_GE(m.deadline(id), last);
    last = m.deadline(id);
    m.cancel(id);
  }
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(q.size(), 0u);
}

TEST(TimerQueueTest, RandomOperationsMatchMultimapModel) {
  RunRandomOperations(64, 5000, 0x5eed);
}

TEST(TimerQueueTest, RandomOperationsSmallQueue) {
  RunRandomOperations(3, 3000, 42);
}

TEST(TimerQueueTest, RandomOperationsLargeQueue) {
  RunRandomOperations(1000, 4000, 7);
}

}  // namespace
}  // namespace edgeproxy
