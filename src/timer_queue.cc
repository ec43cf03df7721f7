// Indexed binary min-heap; see timer_queue.h.
#include "edgeproxy/timer_queue.h"

#include <climits>

#include "edgeproxy/check.h"

namespace edgeproxy {

TimerQueue::TimerQueue(uint32_t capacity)
    : heap_(std::make_unique<Entry[]>(capacity)),
      pos_(std::make_unique<uint32_t[]>(capacity)),
      capacity_(capacity) {
  for (uint32_t i = 0; i < capacity; ++i) pos_[i] = kNotQueued;
}

void TimerQueue::place(uint32_t at, Entry e) noexcept {
  heap_[at] = e;
  pos_[e.id] = at;
}

void TimerQueue::sift_up(uint32_t at) noexcept {
  const Entry e = heap_[at];
  while (at > 0) {
    const uint32_t parent = (at - 1) / 2;
    if (heap_[parent].deadline_ms <= e.deadline_ms) break;
    place(at, heap_[parent]);
    at = parent;
  }
  place(at, e);
}

void TimerQueue::sift_down(uint32_t at) noexcept {
  const Entry e = heap_[at];
  for (;;) {
    uint32_t child = 2 * at + 1;
    if (child >= size_) break;
    if (child + 1 < size_ && heap_[child + 1].deadline_ms < heap_[child].deadline_ms) ++child;
    if (e.deadline_ms <= heap_[child].deadline_ms) break;
    place(at, heap_[child]);
    at = child;
  }
  place(at, e);
}

void TimerQueue::remove_at(uint32_t at) noexcept {
  pos_[heap_[at].id] = kNotQueued;
  --size_;
  if (at == size_) return;
  const uint32_t moved = heap_[size_].id;
  place(at, heap_[size_]);
  sift_down(at);
  sift_up(pos_[moved]);
}

void TimerQueue::arm(uint32_t id, int64_t deadline_ms) noexcept {
  EDGEPROXY_CHECK(id < capacity_);
  if (pos_[id] != kNotQueued) {
    const uint32_t at = pos_[id];
    const int64_t old = heap_[at].deadline_ms;
    heap_[at].deadline_ms = deadline_ms;
    if (deadline_ms < old) {
      sift_up(at);
    } else {
      sift_down(at);
    }
    return;
  }
  place(size_, Entry{deadline_ms, id});
  sift_up(size_++);
}

void TimerQueue::cancel(uint32_t id) noexcept {
  if (id < capacity_ && pos_[id] != kNotQueued) remove_at(pos_[id]);
}

int TimerQueue::timeout_ms(int64_t now_ms) const noexcept {
  if (size_ == 0) return -1;
  const int64_t wait = heap_[0].deadline_ms - now_ms;
  if (wait <= 0) return 0;
  return wait > INT_MAX ? INT_MAX : static_cast<int>(wait);
}

bool TimerQueue::pop_expired(int64_t now_ms, uint32_t& id) noexcept {
  if (size_ == 0 || heap_[0].deadline_ms > now_ms) return false;
  id = heap_[0].id;
  remove_at(0);
  return true;
}

}  // namespace edgeproxy
