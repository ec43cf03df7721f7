// Rate-limiter state with the rate passed to each call; see token_bucket.h.
#include "edgeproxy/token_bucket.h"

namespace edgeproxy {

namespace {

// Bounds that keep the arithmetic in int64: a balance never sinks below kMinBalanceMilli and
// never exceeds kMaxBurst * 1000 (< 2^60), so their difference plus one second of the largest
// rate (2^40 thousandths a millisecond) stays below 2^63.
constexpr int64_t kMinBalanceMilli = -(int64_t{1} << 62);
constexpr uint64_t kMaxChargeBytes = uint64_t{1} << 52;

int64_t burst_milli(const RateLimit& limit) noexcept {
  return static_cast<int64_t>(limit.burst_bytes() * 1000);
}

int64_t to_milli(uint64_t bytes) noexcept {
  return static_cast<int64_t>(std::min(bytes, kMaxChargeBytes) * 1000);
}

}  // namespace

int64_t TokenBucket::balance_milli(int64_t now_ms, const RateLimit& limit) const noexcept {
  const int64_t cap = burst_milli(limit);
  const int64_t balance = std::min(balance_milli_, cap);  // a reload may shrink the burst
  if (!limit.enabled() || now_ms <= last_ms_) return balance;
  // Unsigned: the difference of any two int64 times fits, and `room` is below 2^63.
  const uint64_t elapsed_ms = static_cast<uint64_t>(now_ms) - static_cast<uint64_t>(last_ms_);
  const uint64_t room = static_cast<uint64_t>(cap - balance);
  const uint64_t rate = limit.rate();
  // Any gap longer than the time to fill the bucket fills it: elapsed * rate is only computed
  // below that, where it is less than room + rate.
  if (elapsed_ms >= (room + rate - 1) / rate) return cap;
  return balance + static_cast<int64_t>(elapsed_ms * rate);
}

void TokenBucket::refill(int64_t now_ms, const RateLimit& limit) noexcept {
  balance_milli_ = balance_milli(now_ms, limit);
  last_ms_ = std::max(last_ms_, now_ms);
}

void TokenBucket::reset(int64_t now_ms, const RateLimit& limit) noexcept {
  balance_milli_ = burst_milli(limit);
  last_ms_ = now_ms;
}

void TokenBucket::charge(uint64_t bytes, int64_t now_ms, const RateLimit& limit) noexcept {
  if (!limit.enabled()) return;
  refill(now_ms, limit);
  const int64_t cost = to_milli(bytes);
  balance_milli_ =
      balance_milli_ - kMinBalanceMilli > cost ? balance_milli_ - cost : kMinBalanceMilli;
}

bool TokenBucket::holds(uint64_t bytes, int64_t now_ms, const RateLimit& limit) noexcept {
  if (!limit.enabled()) return true;
  refill(now_ms, limit);
  return balance_milli_ >= to_milli(bytes);
}

int64_t TokenBucket::resume_at_ms(int64_t now_ms, const RateLimit& limit) const noexcept {
  if (!limit.enabled()) return now_ms;
  const int64_t deficit = to_milli(resume_bytes(limit)) - balance_milli(now_ms, limit);
  if (deficit <= 0) return now_ms;
  const int64_t rate = static_cast<int64_t>(limit.rate());
  const int64_t wait_ms = (deficit + rate - 1) / rate;
  // The bucket refills from the later of now_ms and the latest time seen.
  const int64_t from_ms = std::max(now_ms, last_ms_);
  return from_ms <= INT64_MAX - wait_ms ? from_ms + wait_ms : INT64_MAX;
}

bool TokenBucket::full(int64_t now_ms, const RateLimit& limit) const noexcept {
  return !limit.enabled() || balance_milli(now_ms, limit) >= burst_milli(limit);
}

}  // namespace edgeproxy
