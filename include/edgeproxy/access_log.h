// AccessLog: one worker's access-log ring, a fixed byte ring allocated at start and never grown
// (decision 0012). The worker appends whole lines at close; the writer thread (AccessLogWriter)
// takes whole lines out. One producer, one consumer, no lock: neither ever waits for the other.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace edgeproxy {

class AccessLog {
 public:
  // 256 KiB per worker: about 2 500 default lines of 100 bytes, 2.5 s of a worker closing 1 000
  // connections a second between two 100 ms drains many times over. The pages are touched only
  // as lines fill them.
  static constexpr uint32_t kRingBytes = 256 * 1024;

  // `wake_fd`: an eventfd the ring writes to when an append takes it past half full (-1: none).
  explicit AccessLog(int wake_fd);
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Worker thread. Appends the whole line line[0, n) (ending in a newline), or nothing when the
  // ring lacks room: false, and the caller counts the line dropped.
  bool append(const char* line, uint32_t n) noexcept;

  // Writer thread. Moves whole lines, oldest first, into out[0, cap) (cap at least the longest
  // line) and returns their bytes (0: the ring is empty).
  uint32_t take(char* out, uint32_t cap) noexcept;
  // Writer thread: `lines` taken could not be written (a failed write).
  void count_lost(uint64_t lines) noexcept { lost_.fetch_add(lines, std::memory_order_relaxed); }
  // Any thread: the lines count_lost() counted.
  uint64_t lost() const noexcept { return lost_.load(std::memory_order_relaxed); }
  // Any thread: bytes waiting to be taken.
  uint64_t used() const noexcept {
    return head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire);
  }

 private:
  std::unique_ptr<char[]> ring_;
  int wake_fd_;
  // Bytes appended and bytes taken since the start; the ring holds [tail, head) modulo its size.
  // Each written by one thread only, on separate cache lines.
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};
  std::atomic<uint64_t> lost_{0};
};

}  // namespace edgeproxy
