// Slab: a table of T allocated once at start-up, a stack of free indexes, and a generation per
// slot. A Handle names a slot at one generation; after release the generation moves on, so a
// late kernel event carrying an old handle resolves to nothing instead of to a reused slot.
// Single-threaded: owned by one Worker.
#pragma once

#include <cstdint>
#include <memory>

#include "edgeproxy/check.h"

namespace edgeproxy {

// Generations are 24 bits wide so a handle packs with an index and a tag into 64 bits (cookie.h).
inline constexpr uint32_t kGenerationMask = 0xFFFFFF;

struct Handle {
  uint32_t index = 0;
  uint32_t generation = 0;
  friend bool operator==(const Handle&, const Handle&) = default;
};

template <class T>
class Slab {
 public:
  // Allocates and value-initialises `capacity` slots (capacity > 0).
  explicit Slab(uint32_t capacity)
      : slots_(std::make_unique<T[]>(capacity)),
        generation_(std::make_unique<uint32_t[]>(capacity)),
        in_use_flag_(std::make_unique<bool[]>(capacity)),
        free_(std::make_unique<uint32_t[]>(capacity)),
        capacity_(capacity),
        top_(capacity) {
    // Lowest index on top: slots are handed out 0, 1, 2... so a small load touches few pages.
    for (uint32_t i = 0; i < capacity; ++i) free_[i] = capacity - 1 - i;
  }

  // Takes a free slot; nullptr when full. `handle` receives the slot's current handle.
  T* acquire(Handle& handle) noexcept {
    if (top_ == 0) return nullptr;
    const uint32_t index = free_[--top_];
    in_use_flag_[index] = true;
    handle = Handle{index, generation_[index]};
    return &slots_[index];
  }

  // Frees a slot that is in use and advances its generation, invalidating every handle to it.
  // The slot's contents are left for the caller to reset.
  void release(uint32_t index) noexcept {
    EDGEPROXY_CHECK(index < capacity_ && in_use_flag_[index]);
    in_use_flag_[index] = false;
    generation_[index] = (generation_[index] + 1) & kGenerationMask;
    free_[top_++] = index;
  }

  // The slot named by `handle`, or nullptr if the slot was freed or reused since.
  T* resolve(Handle handle) noexcept {
    if (handle.index >= capacity_ || !in_use_flag_[handle.index]) return nullptr;
    if (generation_[handle.index] != (handle.generation & kGenerationMask)) return nullptr;
    return &slots_[handle.index];
  }
  const T* resolve(Handle handle) const noexcept {
    return const_cast<Slab*>(this)->resolve(handle);
  }

  Handle handle_of(uint32_t index) const noexcept { return Handle{index, generation_[index]}; }
  bool in_use(uint32_t index) const noexcept { return index < capacity_ && in_use_flag_[index]; }
  T& at(uint32_t index) noexcept { return slots_[index]; }
  // The slot of an object this slab holds.
  uint32_t index_of(const T& slot) const noexcept {
    return static_cast<uint32_t>(&slot - slots_.get());
  }

  bool full() const noexcept { return top_ == 0; }
  uint32_t capacity() const noexcept { return capacity_; }
  uint32_t used() const noexcept { return capacity_ - top_; }

 private:
  std::unique_ptr<T[]> slots_;
  std::unique_ptr<uint32_t[]> generation_;
  std::unique_ptr<bool[]> in_use_flag_;
  std::unique_ptr<uint32_t[]> free_;
  uint32_t capacity_;
  uint32_t top_;
};

}  // namespace edgeproxy
