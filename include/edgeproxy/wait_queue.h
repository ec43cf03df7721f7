// WaitQueue: an intrusive first-in first-out queue of slab slots, linked through a WaitLinks
// member of the slot's object, so queueing never allocates. A slot is in a given queue at most
// once; removing one that is not queued does nothing. Single-threaded: owned by one Worker.
#pragma once

#include <cstdint>

#include "edgeproxy/check.h"

namespace edgeproxy {

struct WaitLinks {
  static constexpr uint32_t kNone = UINT32_MAX;          // no neighbour: the head or the tail
  static constexpr uint32_t kUnlinked = UINT32_MAX - 1;  // `next` of a slot not in the queue
  uint32_t prev = kNone;
  uint32_t next = kUnlinked;
  bool linked() const noexcept { return next != kUnlinked; }
};

// `Links` names the member of T this queue links through; `at(index)` of the container gives
// the object of a slot.
template <class T, WaitLinks T::*Links>
class WaitQueue {
 public:
  bool empty() const noexcept { return head_ == WaitLinks::kNone; }
  // The oldest queued slot; the queue must not be empty.
  uint32_t front() const noexcept { return head_; }

  template <class Slots>
  void push_back(Slots& slots, uint32_t index) noexcept {
    WaitLinks& l = slots.at(index).*Links;
    if (l.linked()) return;
    l = WaitLinks{tail_, WaitLinks::kNone};
    if (tail_ == WaitLinks::kNone) {
      head_ = index;
    } else {
      (slots.at(tail_).*Links).next = index;
    }
    tail_ = index;
  }

  template <class Slots>
  void remove(Slots& slots, uint32_t index) noexcept {
    WaitLinks& l = slots.at(index).*Links;
    if (!l.linked()) return;
    EDGEPROXY_CHECK(head_ != WaitLinks::kNone);
    if (l.prev == WaitLinks::kNone) {
      head_ = l.next;
    } else {
      (slots.at(l.prev).*Links).next = l.next;
    }
    if (l.next == WaitLinks::kNone) {
      tail_ = l.prev;
    } else {
      (slots.at(l.next).*Links).prev = l.prev;
    }
    l = WaitLinks{};
  }

 private:
  uint32_t head_ = WaitLinks::kNone;
  uint32_t tail_ = WaitLinks::kNone;
};

}  // namespace edgeproxy
