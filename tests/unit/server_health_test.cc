// server_health: fall/rise counting, the passive revival rule and exactly-once transitions when
// several threads report at once.
#include "edgeproxy/server_health.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace edgeproxy {
namespace {

HealthCheck check_of(bool enabled, uint32_t fall, uint32_t rise, uint32_t interval_ms) {
  HealthCheck c;
  c.enabled = enabled;
  c.fall = fall;
  c.rise = rise;
  c.interval_ms = interval_ms;
  return c;
}

HealthCheck passive_check(uint32_t fall, uint32_t interval_ms) {
  return check_of(false, fall, 2, interval_ms);
}

HealthCheck active_check(uint32_t fall, uint32_t rise) {
  return check_of(true, fall, rise, 2000);
}

// Runs `body(thread_index)` on `n` threads released together.
template <class Body>
void run_together(int n, Body body) {
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      body(i);
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
}

TEST(ServerHealthTest, FallConsecutiveFailuresTakeItDownOnce) {
  ServerRuntime s;
  const HealthCheck c = passive_check(3, 1000);
  EXPECT_FALSE(on_connect_failure(s, c, 10));
  EXPECT_FALSE(on_connect_failure(s, c, 10));
  EXPECT_TRUE(s.up.load());
  EXPECT_TRUE(on_connect_failure(s, c, 10));
  EXPECT_FALSE(s.up.load());
  EXPECT_EQ(s.stats.downs.load(), 1u);
  EXPECT_FALSE(on_connect_failure(s, c, 20));  // already down: no second transition
  EXPECT_EQ(s.stats.downs.load(), 1u);
}

TEST(ServerHealthTest, SuccessResetsConsecutiveFailures) {
  ServerRuntime s;
  const HealthCheck c = passive_check(3, 1000);
  EXPECT_FALSE(on_connect_failure(s, c, 0));
  EXPECT_FALSE(on_connect_failure(s, c, 0));
  on_connect_success(s);
  EXPECT_EQ(s.failures.load(), 0u);
  EXPECT_FALSE(on_connect_failure(s, c, 0));
  EXPECT_FALSE(on_connect_failure(s, c, 0));
  EXPECT_TRUE(s.up.load());
}

TEST(ServerHealthTest, ConnectSuccessNeverBringsADownServerBack) {
  ServerRuntime s;
  const HealthCheck c = passive_check(1, 1000);
  ASSERT_TRUE(on_connect_failure(s, c, 0));
  on_connect_success(s);
  EXPECT_FALSE(s.up.load());
}

TEST(ServerHealthTest, ExactlyOneOfManyConcurrentFailuresTakesItDown) {
  for (int round = 0; round < 20; ++round) {
    ServerRuntime s;
    const HealthCheck c = passive_check(3, 1000);
    std::atomic<int> winners{0};
    run_together(8, [&](int) {
      for (int i = 0; i < 200; ++i) {
        if (on_connect_failure(s, c, 5)) winners.fetch_add(1);
      }
    });
    EXPECT_EQ(winners.load(), 1);
    EXPECT_EQ(s.stats.downs.load(), 1u);
    EXPECT_FALSE(s.up.load());
  }
}

TEST(ServerHealthTest, PassiveDownIsRetriedAfterItsInterval) {
  ServerRuntime s;
  const HealthCheck c = passive_check(2, 100);
  on_connect_failure(s, c, 1000);
  ASSERT_TRUE(on_connect_failure(s, c, 1000));
  EXPECT_EQ(s.retry_at_ms.load(), 1100);
  EXPECT_FALSE(revive_if_due(s, c, 1099));
  EXPECT_FALSE(s.up.load());
  EXPECT_TRUE(revive_if_due(s, c, 1100));
  EXPECT_TRUE(s.up.load());
  EXPECT_EQ(s.failures.load(), 1u);         // fall - 1
  EXPECT_FALSE(revive_if_due(s, c, 5000));  // up: nothing to do
  // One more failure is the one to spare.
  EXPECT_TRUE(on_connect_failure(s, c, 1200));
  EXPECT_EQ(s.stats.downs.load(), 2u);
  EXPECT_EQ(s.retry_at_ms.load(), 1300);
}

TEST(ServerHealthTest, NoPassiveRevivalWithActiveChecks) {
  ServerRuntime s;
  const HealthCheck c = active_check(1, 2);
  ASSERT_TRUE(on_connect_failure(s, c, 0));
  EXPECT_FALSE(revive_if_due(s, c, 1'000'000));
  EXPECT_FALSE(s.up.load());
}

TEST(ServerHealthTest, ExactlyOneOfManyConcurrentRevivers) {
  for (int round = 0; round < 20; ++round) {
    ServerRuntime s;
    const HealthCheck c = passive_check(1, 10);
    ASSERT_TRUE(on_connect_failure(s, c, 0));
    std::atomic<int> winners{0};
    run_together(8, [&](int) {
      for (int i = 0; i < 100; ++i) {
        if (revive_if_due(s, c, 10)) winners.fetch_add(1);
      }
    });
    EXPECT_EQ(winners.load(), 1);
    EXPECT_TRUE(s.up.load());
  }
}

TEST(ServerHealthTest, DownsAndRevivalsPairUpUnderContention) {
  ServerRuntime s;
  const HealthCheck c = passive_check(2, 0);
  std::atomic<uint64_t> downs{0};
  std::atomic<uint64_t> ups{0};
  run_together(4, [&](int t) {
    for (int64_t i = 0; i < 20'000; ++i) {
      if (t == 0) {
        if (revive_if_due(s, c, i)) ups.fetch_add(1);
      } else if (on_connect_failure(s, c, i)) {
        downs.fetch_add(1);
      }
    }
  });
  EXPECT_EQ(downs.load(), s.stats.downs.load());
  EXPECT_EQ(ups.load() + (s.up.load() ? 0u : 1u), downs.load());
}

TEST(ServerHealthTest, ActiveChecksFallThenRise) {
  ServerRuntime s;
  const HealthCheck c = active_check(2, 3);
  EXPECT_EQ(on_check_result(s, c, false, 0), HealthTransition::kNone);
  EXPECT_EQ(on_check_result(s, c, false, 0), HealthTransition::kDown);
  EXPECT_EQ(s.stats.downs.load(), 1u);
  EXPECT_EQ(on_check_result(s, c, false, 0), HealthTransition::kNone);
  EXPECT_EQ(on_check_result(s, c, true, 0), HealthTransition::kNone);
  EXPECT_EQ(on_check_result(s, c, true, 0), HealthTransition::kNone);
  EXPECT_EQ(on_check_result(s, c, false, 0), HealthTransition::kNone);  // successes restart
  EXPECT_EQ(on_check_result(s, c, true, 0), HealthTransition::kNone);
  EXPECT_EQ(on_check_result(s, c, true, 0), HealthTransition::kNone);
  EXPECT_FALSE(s.up.load());
  EXPECT_EQ(on_check_result(s, c, true, 0), HealthTransition::kUp);
  EXPECT_TRUE(s.up.load());
  EXPECT_EQ(s.failures.load(), 0u);
  EXPECT_EQ(s.successes.load(), 0u);
}

TEST(ServerHealthTest, PassiveAndActiveFailuresAddUp) {
  ServerRuntime s;
  const HealthCheck c = active_check(3, 1);
  EXPECT_FALSE(on_connect_failure(s, c, 0));
  EXPECT_EQ(on_check_result(s, c, false, 0), HealthTransition::kNone);
  EXPECT_TRUE(on_connect_failure(s, c, 0));
  EXPECT_EQ(on_check_result(s, c, true, 0), HealthTransition::kUp);
}

TEST(ServerHealthTest, PassingCheckOfAnUpServerResetsFailures) {
  ServerRuntime s;
  const HealthCheck c = active_check(2, 1);
  EXPECT_EQ(on_check_result(s, c, false, 0), HealthTransition::kNone);
  EXPECT_EQ(on_check_result(s, c, true, 0), HealthTransition::kNone);
  EXPECT_EQ(on_check_result(s, c, false, 0), HealthTransition::kNone);
  EXPECT_TRUE(s.up.load());
}

TEST(ServerHealthTest, ChecksTurnedOffWhileDownStillGetARetry) {
  ServerRuntime s;
  ASSERT_EQ(on_check_result(s, active_check(1, 2), false, 500), HealthTransition::kDown);
  HealthCheck off = active_check(1, 2);
  off.enabled = false;
  EXPECT_FALSE(revive_if_due(s, off, 500 + off.interval_ms - 1));
  EXPECT_TRUE(revive_if_due(s, off, 500 + off.interval_ms));
}

TEST(ServerHealthTest, ServersUpCountsRuntimes) {
  BackendSpec b;
  b.servers.resize(3);
  for (auto& s : b.servers) s.runtime = std::make_shared<ServerRuntime>();
  b.servers[1].runtime->up.store(false);
  EXPECT_EQ(servers_up(b), 2u);
}

// Issue 18: a passive retry is silent; the connect that decides it speaks, once.
TEST(ServerHealthTest, ARetriedServerIsOnProbationUntilAConnectSucceeds) {
  ServerRuntime s;
  const HealthCheck c = passive_check(1, 100);
  ASSERT_TRUE(on_connect_failure(s, c, 0));
  EXPECT_FALSE(s.probation.load());
  ASSERT_TRUE(revive_if_due(s, c, 100));
  EXPECT_TRUE(s.probation.load());
  EXPECT_TRUE(on_connect_success(s)) << "the first success ends the probation";
  EXPECT_FALSE(on_connect_success(s)) << "only once";
}

BackendSpec one_server_backend() {
  BackendSpec b;
  b.name = "app";
  ServerSpec sv;
  sv.name = "a";
  sv.endpoint.host = "127.0.0.1";
  sv.endpoint.port = 9;
  sv.runtime = std::make_shared<ServerRuntime>();
  b.servers.push_back(sv);
  return b;
}

TEST(ServerHealthTest, DownLinesAfterFailedRetriesAreRateLimitedAndCounted) {
  BackendSpec b = one_server_backend();
  const ServerSpec& sv = b.servers[0];
  ServerRuntime& s = *sv.runtime;
  const HealthCheck c = passive_check(1, 2000);
  testing::internal::CaptureStderr();
  ASSERT_TRUE(on_connect_failure(s, c, 0));
  log_transition(b, sv, HealthTransition::kDown, "connect: refused", 0);
  // Retries at 2 s and 4 s fail: held back (less than 10 s since the line).
  for (int64_t t : {2000, 4000}) {
    ASSERT_TRUE(revive_if_due(s, c, t));
    ASSERT_TRUE(on_connect_failure(s, c, t));
    log_transition(b, sv, HealthTransition::kDown, "connect: refused", t);
  }
  // The retry at 12 s fails: a line again, counting the two held back.
  ASSERT_TRUE(revive_if_due(s, c, 12000));
  ASSERT_TRUE(on_connect_failure(s, c, 12000));
  log_transition(b, sv, HealthTransition::kDown, "connect: refused", 12000);
  // The next retry succeeds: one UP line.
  ASSERT_TRUE(revive_if_due(s, c, 14000));
  ASSERT_TRUE(on_connect_success(s));
  log_transition(b, sv, HealthTransition::kUp, "a retried connect succeeded", 14000);
  const std::string log = testing::internal::GetCapturedStderr();
  size_t downs = 0;
  for (size_t at = log.find("is DOWN"); at != std::string::npos; at = log.find("is DOWN", at + 1)) {
    ++downs;
  }
  EXPECT_EQ(downs, 2u) << log;
  EXPECT_NE(log.find("server app/a (127.0.0.1:9) is DOWN (connect: refused), 0 of 1 up"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("(connect: refused; 2 more failed connects since the last report)"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("server app/a (127.0.0.1:9) is UP (a retried connect succeeded), 1 of 1 up"),
            std::string::npos)
      << log;
}

}  // namespace
}  // namespace edgeproxy
