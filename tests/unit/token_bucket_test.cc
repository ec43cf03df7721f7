// TokenBucket: the long-run rate, the burst, debt, resume times that never fire early, and
// arithmetic that survives huge rates, huge gaps, reloads and time going backwards.
#include "edgeproxy/token_bucket.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>

namespace edgeproxy {
namespace {

// Reads of random sizes as fast as the bucket allows for `duration_ms`: charge whenever
// may_read(), else advance to resume_at_ms() plus `late_ms` of timer lateness. Returns the bytes
// read.
uint64_t ReadFlatOut(const RateLimit& limit, int64_t duration_ms, int64_t late_ms, uint32_t seed) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<uint64_t> size(1, 2 * kBufferBytes);
  std::uniform_int_distribution<int64_t> late(0, late_ms);
  TokenBucket b;
  b.reset(0, limit);
  uint64_t total = 0;
  int64_t now = 0;
  while (now < duration_ms) {
    if (b.may_read(now, limit)) {
      const uint64_t n = size(random);
      b.charge(n, now, limit);
      total += n;
      continue;
    }
    const int64_t at = b.resume_at_ms(now, limit);
    EXPECT_GT(at, now);
    now = at + late(random);
  }
  return total;
}

TEST(TokenBucketTest, LongRunAverageIsTheRate) {
  constexpr int64_t kMinuteMs = 60'000;
  for (const uint64_t rate : {100'000ull, 1'000'000ull, 123'456'789ull}) {
    const RateLimit limit{rate, 0};
    const double expected = static_cast<double>(rate) * kMinuteMs / 1000;
    const double burst = static_cast<double>(limit.burst_bytes());
    // Whatever was read beyond the initial burst came from the rate.
    const double got = static_cast<double>(ReadFlatOut(limit, kMinuteMs, 0, 1)) - burst;
    EXPECT_NEAR(got, expected, expected / 100) << "rate " << rate;
  }
}

TEST(TokenBucketTest, LateTimersLoseNothingWhileTheBucketHasRoom) {
  // Default burst: 100 ms of 1 MB/s, resume at one block: a wake-up up to 20 ms late finds the
  // bucket still below its cap, so no refill is lost.
  const RateLimit limit{1'000'000, 0};
  const double expected = 60'000.0 * 1000;
  const double got =
      static_cast<double>(ReadFlatOut(limit, 60'000, 20, 7)) - static_cast<double>(100'000);
  EXPECT_NEAR(got, expected, expected / 100);
}

TEST(TokenBucketTest, DefaultBurstIsATenthOfASecondAndAtLeastTwoBlocks) {
  EXPECT_EQ((RateLimit{1'000'000, 0}.burst_bytes()), 100'000u);
  EXPECT_EQ((RateLimit{1000, 0}.burst_bytes()), 2 * kBufferBytes);
  EXPECT_EQ((RateLimit{1000, 500}.burst_bytes()), 500u);
  EXPECT_EQ(TokenBucket::resume_bytes(RateLimit{1000, 500}), 500u);
  EXPECT_EQ(TokenBucket::resume_bytes(RateLimit{1000, 0}), kBufferBytes);
}

TEST(TokenBucketTest, BurstIsHonoured) {
  const RateLimit limit{1000, 50'000};
  TokenBucket b;
  b.reset(0, limit);
  EXPECT_TRUE(b.holds(50'000, 0, limit));
  EXPECT_FALSE(b.holds(50'001, 0, limit));
  b.charge(50'000, 0, limit);
  EXPECT_EQ(b.balance_milli(0, limit), 0);
  // An hour idle refills the burst and no more.
  EXPECT_TRUE(b.full(3'600'000, limit));
  EXPECT_EQ(b.balance_milli(3'600'000, limit), 50'000'000);
  EXPECT_FALSE(b.holds(50'001, 3'600'000, limit));
}

TEST(TokenBucketTest, DebtIsRepaidBeforeResuming) {
  const RateLimit limit{1000, 10'000};  // resume at 8192 bytes
  TokenBucket b;
  b.reset(0, limit);
  b.charge(30'000, 0, limit);  // 20 000 bytes of debt
  EXPECT_EQ(b.balance_milli(0, limit), -20'000'000);
  EXPECT_FALSE(b.may_read(0, limit));
  // 20 s repay the debt, 8.192 s more reach the resume level.
  EXPECT_EQ(b.resume_at_ms(0, limit), 28'192);
  EXPECT_FALSE(b.may_read(28'191, limit));
  EXPECT_TRUE(b.may_read(28'192, limit));
}

TEST(TokenBucketTest, ResumeAtIsStrictlyInTheFutureWhenPaused) {
  // 3 bytes/s with a 2-byte burst: the resume level needs a fraction of a ms more than a whole
  // number of ms, so the answer must round up.
  const RateLimit limit{3, 2};
  TokenBucket b;
  b.reset(0, limit);
  b.charge(2, 0, limit);
  for (int64_t now = 0; now < 2000;) {
    if (b.may_read(now, limit)) {
      EXPECT_EQ(b.resume_at_ms(now, limit), now);
      b.charge(2, now, limit);
      continue;
    }
    const int64_t at = b.resume_at_ms(now, limit);
    ASSERT_GT(at, now);
    EXPECT_FALSE(b.may_read(at - 1, limit)) << "a timer armed for " << at << " is not late";
    now = at;
    EXPECT_TRUE(b.may_read(now, limit));
  }
}

TEST(TokenBucketTest, HugeRatesAndHugeGapsDoNotOverflow) {
  const RateLimit huge{uint64_t{1} << 40, 0};
  TokenBucket b;
  b.reset(0, huge);
  b.charge(UINT64_MAX, 0, huge);  // debt, clamped
  EXPECT_LT(b.balance_milli(0, huge), 0);
  EXPECT_FALSE(b.may_read(0, huge));
  const int64_t at = b.resume_at_ms(0, huge);
  EXPECT_GT(at, 0);
  EXPECT_TRUE(b.may_read(at, huge));
  // A gap of most of int64's range refills the burst exactly.
  EXPECT_EQ(b.balance_milli(INT64_MAX, huge), static_cast<int64_t>(huge.burst_bytes() * 1000));
  // Rates and bursts beyond the bounds act as the bounds.
  const RateLimit beyond{UINT64_MAX, UINT64_MAX};
  EXPECT_EQ(beyond.rate(), RateLimit::kMaxBytesPerS);
  EXPECT_EQ(beyond.burst_bytes(), RateLimit::kMaxBurst);
  b.reset(INT64_MAX - 1, beyond);
  EXPECT_TRUE(b.full(INT64_MAX, beyond));
  for (int i = 0; i < 4; ++i) b.charge(UINT64_MAX, INT64_MAX, beyond);
  EXPECT_FALSE(b.may_read(INT64_MAX, beyond));
  EXPECT_EQ(b.resume_at_ms(INT64_MAX, beyond), INT64_MAX) << "saturates, never wraps";
}

TEST(TokenBucketTest, RateChangedBetweenCallsAppliesFromTheNextCall) {
  TokenBucket b;
  const RateLimit slow{1000, 10'000};
  b.reset(0, slow);
  b.charge(10'000, 0, slow);
  // A reload: ten times the rate, the same burst.
  const RateLimit fast{10'000, 10'000};
  EXPECT_EQ(b.resume_at_ms(0, fast), 820);  // 8192 bytes at 10 bytes/ms
  EXPECT_TRUE(b.may_read(820, fast));
  // A reload that shrinks the burst caps what the bucket holds at once.
  const RateLimit small{10'000, 1000};
  EXPECT_EQ(b.balance_milli(5000, small), 1'000'000);
  // Disabled: everything allowed, nothing charged.
  const RateLimit off{};
  EXPECT_TRUE(b.may_read(0, off));
  EXPECT_EQ(b.resume_at_ms(0, off), 0);
  b.charge(1'000'000, 5000, off);
  EXPECT_TRUE(b.holds(1000, 5000, small));
}

TEST(TokenBucketTest, TimeGoingBackwardsIsNoTimeElapsed) {
  const RateLimit limit{1000, 10'000};
  TokenBucket b;
  b.reset(10'000, limit);
  b.charge(10'000, 10'000, limit);
  // An older time (another thread's loop time) refills nothing and charges still count.
  EXPECT_FALSE(b.may_read(5000, limit));
  b.charge(1000, 5000, limit);
  EXPECT_EQ(b.balance_milli(9000, limit), -1'000'000);
  // The time elapsed counts from the latest time seen, once.
  EXPECT_EQ(b.balance_milli(11'000, limit), 0);
  EXPECT_EQ(b.resume_at_ms(5000, limit), 10'000 + 1000 + 8192);
}

}  // namespace
}  // namespace edgeproxy
