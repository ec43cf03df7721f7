// TokenBucket: the state of one rate limiter (one direction of one connection's bytes, or one
// client's new connections), 16 bytes that live inside a preallocated object. The rate and the
// burst are passed to every call, never stored: a reload that changes them applies to an open
// connection at its next call. No syscalls, no allocation, integer arithmetic without drift.
#pragma once

#include <algorithm>
#include <cstdint>

#include "edgeproxy/buffer.h"

namespace edgeproxy {

// A rate and a burst, as a listener's settings give them. The unit is a byte for byte rates;
// ClientTable uses one unit per new connection.
struct RateLimit {
  // Larger values act as these: they keep every product of the arithmetic below 2^63.
  static constexpr uint64_t kMaxBytesPerS = uint64_t{1} << 40;
  static constexpr uint64_t kMaxBurst = uint64_t{1} << 50;

  uint64_t bytes_per_s = 0;  // 0: no limit
  uint64_t burst = 0;        // what a full bucket holds; 0: the default, see burst_bytes()

  bool enabled() const noexcept { return bytes_per_s != 0; }
  uint64_t rate() const noexcept { return std::min(bytes_per_s, kMaxBytesPerS); }
  // The burst in effect: `burst`, or by default max(rate / 10, 2 * kBufferBytes). A tenth of a
  // second of traffic absorbs the event loop's wake-up latency at high rates; two blocks keep
  // the resume level (one block) at most half the bucket, so a paused side whose timer fires
  // late by up to half the bucket's fill time still loses none of its rate.
  uint64_t burst_bytes() const noexcept {
    const uint64_t b = burst != 0 ? burst : std::max<uint64_t>(rate() / 10, 2 * kBufferBytes);
    return std::min(b, kMaxBurst);
  }
};

// Times are the caller's monotonic milliseconds (LoopTime::ms); a time earlier than one already
// seen (another thread's older loop time) counts as no time elapsed. Every call with a disabled
// limit is a no-op that allows everything. Not thread-safe: the owner serializes calls.
class TokenBucket {
 public:
  // A paused reader resumes once the bucket holds min(burst, kBufferBytes): each wake-up can
  // read a whole block, and a limited side wakes at most about rate / 8 KiB times a second.
  static uint64_t resume_bytes(const RateLimit& limit) noexcept {
    return std::min<uint64_t>(limit.burst_bytes(), kBufferBytes);
  }

  // A full bucket as of now_ms: a connection starts with its burst.
  void reset(int64_t now_ms, const RateLimit& limit) noexcept;
  // Refills for the time elapsed (never beyond the burst), then takes `bytes`. The balance may go
  // negative: bytes already read cannot be un-read, and the debt is repaid before a resume.
  void charge(uint64_t bytes, int64_t now_ms, const RateLimit& limit) noexcept;
  // Refills, then true when the bucket holds at least `bytes`.
  bool holds(uint64_t bytes, int64_t now_ms, const RateLimit& limit) noexcept;
  // holds(resume_bytes()): true when a paused reader may read again.
  bool may_read(int64_t now_ms, const RateLimit& limit) noexcept {
    return holds(resume_bytes(limit), now_ms, limit);
  }
  // The earliest time at which may_read() is true: now_ms when it is already, else a time
  // strictly after now_ms (rounded up), so a timer armed for it never fires early and spins.
  int64_t resume_at_ms(int64_t now_ms, const RateLimit& limit) const noexcept;
  // What the bucket holds at now_ms, in thousandths of a unit (negative in debt); changes
  // nothing.
  int64_t balance_milli(int64_t now_ms, const RateLimit& limit) const noexcept;
  // The bucket is full at now_ms: its history carries no information any more.
  bool full(int64_t now_ms, const RateLimit& limit) const noexcept;

 private:
  // Thousandths of a unit: a rate of r units/s refills exactly r thousandths a millisecond, so
  // no remainder is ever dropped.
  int64_t balance_milli_ = 0;
  int64_t last_ms_ = 0;  // the latest time seen

  void refill(int64_t now_ms, const RateLimit& limit) noexcept;
};

static_assert(sizeof(TokenBucket) <= 16, "a TokenBucket lives in every Connection");

}  // namespace edgeproxy
