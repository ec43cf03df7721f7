// ServerPool: per-worker pooled server connections of one backend (decision 0013).
#include "edgeproxy/server_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace edgeproxy {
namespace {

TEST(ServerPoolTest, MayOpenUpToSizeAndNotDuringBackoff) {
  ServerPool pool(2, 2);
  EXPECT_TRUE(pool.may_open(0, 0));
  pool.at(0).open = 2;
  EXPECT_FALSE(pool.may_open(0, 0));  // full
  EXPECT_TRUE(pool.may_open(1, 0));
  pool.mark_down(1, 1000);
  EXPECT_FALSE(pool.may_open(1, 1000));
  EXPECT_FALSE(pool.may_open(1, 1000 + ServerPool::kFirstBackoffMs - 1));
  EXPECT_TRUE(pool.may_open(1, 1000 + ServerPool::kFirstBackoffMs));
}

TEST(ServerPoolTest, BackoffDoublesToItsMaximumAndAConnectEndsIt) {
  ServerPool pool(1, 1);
  uint32_t expected = ServerPool::kFirstBackoffMs;
  for (int i = 0; i < 10; ++i) {
    pool.mark_down(0, 0);
    EXPECT_EQ(pool.at(0).backoff_ms, expected);
    expected = std::min(expected * 2, ServerPool::kMaxBackoffMs);
  }
  EXPECT_EQ(pool.at(0).backoff_ms, ServerPool::kMaxBackoffMs);
  pool.mark_up(0);
  pool.mark_down(0, 0);
  EXPECT_EQ(pool.at(0).backoff_ms, ServerPool::kFirstBackoffMs);
}

TEST(ServerPoolTest, FreeSocketsComeBackNewestFirst) {
  ServerPool pool(1, 3);
  pool.at(0).open = 3;
  pool.push_free(0, 10, 0, 1);
  pool.push_free(0, 11, 1, 2);
  pool.push_free(0, 12, 0, 3);
  EXPECT_EQ(pool.idle(0), 3u);
  ServerPool::Idle idle;
  ASSERT_TRUE(pool.pop_free(0, idle));
  EXPECT_EQ(idle.fd, 12);  // the warmest
  ASSERT_TRUE(pool.pop_free(0, idle));
  EXPECT_EQ(idle.fd, 11);
  EXPECT_EQ(idle.address, 1);
  ASSERT_TRUE(pool.pop_free(0, idle));
  EXPECT_FALSE(pool.pop_free(0, idle));
}

TEST(ServerPoolTest, SweepDropsWhatItIsToldAndKeepsTheOrderOfTheRest) {
  ServerPool pool(1, 4);
  pool.at(0).open = 4;
  for (int fd = 20; fd < 24; ++fd) pool.push_free(0, fd, 0, fd);
  std::vector<int> dropped;
  const uint32_t n = pool.sweep(0, [&](const ServerPool::Idle& i) {
    if (i.fd % 2 == 0) {
      dropped.push_back(i.fd);
      return true;
    }
    return false;
  });
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(dropped, (std::vector<int>{20, 22}));
  EXPECT_EQ(pool.at(0).open, 2u);  // closed sockets leave the count
  EXPECT_EQ(pool.at(0).free_count, 2u);
  ServerPool::Idle idle;
  ASSERT_TRUE(pool.pop_free(0, idle));
  EXPECT_EQ(idle.fd, 23);
  ASSERT_TRUE(pool.pop_free(0, idle));
  EXPECT_EQ(idle.fd, 21);
}

TEST(ServerPoolTest, IdleCountsParkedConnectionsAndRttAveragesAnEighth) {
  ServerPool pool(1, 4);
  pool.at(0).open = 2;
  pool.push_free(0, 5, 0, 0);
  pool.at(0).parked = 1;
  EXPECT_EQ(pool.idle(0), 2u);
  pool.observe_rtt(0, 800);
  EXPECT_EQ(pool.at(0).rtt_us, 800u);  // the first sample is the average
  pool.observe_rtt(0, 0);
  EXPECT_EQ(pool.at(0).rtt_us, 700u);
}

}  // namespace
}  // namespace edgeproxy
