// TimerQueue: the one timer facility of a worker loop. A binary min-heap of (deadline, id) with
// each id's heap position kept in an array, so arm/cancel are O(log n) with no allocation after
// construction. The loop sleeps until next_deadline(); nothing runs per byte and an empty queue
// means no wake-ups at all. Connection timers use lazy re-arming: activity only stores a
// timestamp, and an expired idle timer checks it and re-arms for the remainder.
#pragma once

#include <cstdint>
#include <memory>

namespace edgeproxy {

class TimerQueue {
 public:
  static constexpr int64_t kNever = INT64_MAX;

  // Ids are 0 .. capacity-1.
  explicit TimerQueue(uint32_t capacity);

  // Sets id's deadline (inserting or moving it).
  void arm(uint32_t id, int64_t deadline_ms) noexcept;
  void cancel(uint32_t id) noexcept;
  bool armed(uint32_t id) const noexcept { return id < capacity_ && pos_[id] != kNotQueued; }
  // id's deadline, kNever when it is not armed.
  int64_t deadline(uint32_t id) const noexcept {
    return armed(id) ? heap_[pos_[id]].deadline_ms : kNever;
  }

  int64_t next_deadline() const noexcept { return size_ == 0 ? kNever : heap_[0].deadline_ms; }
  // epoll-style timeout: -1 when empty, 0 when something is due, else ms until the next deadline.
  int timeout_ms(int64_t now_ms) const noexcept;
  // Removes and returns one id whose deadline is <= now_ms; false when none is due.
  bool pop_expired(int64_t now_ms, uint32_t& id) noexcept;

  uint32_t size() const noexcept { return size_; }

 private:
  struct Entry {
    int64_t deadline_ms;
    uint32_t id;
  };
  static constexpr uint32_t kNotQueued = UINT32_MAX;

  void place(uint32_t at, Entry e) noexcept;
  void sift_up(uint32_t at) noexcept;
  void sift_down(uint32_t at) noexcept;
  void remove_at(uint32_t at) noexcept;

  std::unique_ptr<Entry[]> heap_;
  std::unique_ptr<uint32_t[]> pos_;
  uint32_t capacity_;
  uint32_t size_ = 0;
};

}  // namespace edgeproxy
