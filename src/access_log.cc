// The per-worker access-log ring; see access_log.h.
#include "edgeproxy/access_log.h"

#include <unistd.h>

#include <cstring>

namespace edgeproxy {

// Default-initialised: the pages stay untouched (and not resident) until lines reach them.
AccessLog::AccessLog(int wake_fd) : ring_(new char[kRingBytes]), wake_fd_(wake_fd) {}

bool AccessLog::append(const char* line, uint32_t n) noexcept {
  const uint64_t head = head_.load(std::memory_order_relaxed);
  const uint64_t used = head - tail_.load(std::memory_order_acquire);
  if (n > kRingBytes - used) return false;
  const auto at = static_cast<uint32_t>(head % kRingBytes);
  const uint32_t first = n < kRingBytes - at ? n : kRingBytes - at;
  std::memcpy(ring_.get() + at, line, first);
  std::memcpy(ring_.get(), line + first, n - first);
  head_.store(head + n, std::memory_order_release);
  // Crossing half full: the writer drains now instead of at its next 100 ms tick.
  if (wake_fd_ >= 0 && used < kRingBytes / 2 && used + n >= kRingBytes / 2) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t w = ::write(wake_fd_, &one, sizeof one);
  }
  return true;
}

uint32_t AccessLog::take(char* out, uint32_t cap) noexcept {
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  const uint64_t avail = head_.load(std::memory_order_acquire) - tail;
  if (avail == 0) return 0;
  auto n = static_cast<uint32_t>(avail < cap ? avail : cap);
  const auto at = static_cast<uint32_t>(tail % kRingBytes);
  const uint32_t first = n < kRingBytes - at ? n : kRingBytes - at;
  std::memcpy(out, ring_.get() + at, first);
  std::memcpy(out + first, ring_.get(), n - first);
  if (n < avail) {
    // Only whole lines leave the ring: the rest of a cut line stays for the next take.
    while (n > 0 && out[n - 1] != '\n') --n;
  }
  tail_.store(tail + n, std::memory_order_release);
  return n;
}

}  // namespace edgeproxy
