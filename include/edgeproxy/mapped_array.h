// MappedArray<T>: `count` elements of T in an anonymous private mapping of their own, for the
// per-slot state a topology version allocates (routing contexts and regions, forward/HTTP
// exchanges). The kernel backs a page only when a slot on it is first written, and every page
// goes back to the kernel when the array is destroyed (a version retired after a reload), where
// malloc would keep what a large block once touched in a thread's arena: with reloads every few
// seconds that was megabytes of a worker's RSS that never came back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

#include "edgeproxy/check.h"

namespace edgeproxy {

// `bytes` of zeroed anonymous memory that no page backs until it is written (MAP_NORESERVE:
// RSS follows what was used, not what was mapped); nullptr with errno set on failure. Behind
// MappedArray and the buffer pool.
void* map_unbacked(size_t bytes) noexcept;
void unmap(void* base, size_t bytes) noexcept;

template <class T>
class MappedArray {
  // Never destroyed one by one: the mapping goes whole.
  static_assert(std::is_trivially_destructible_v<T>);

 public:
  MappedArray() noexcept = default;
  // Aborts through EDGEPROXY_CHECK when the address space is exhausted, as the allocation it
  // replaces did.
  explicit MappedArray(size_t count) noexcept
      : base_(count == 0 ? nullptr : static_cast<T*>(map_unbacked(count * sizeof(T)))),
        count_(count) {
    EDGEPROXY_CHECK(count == 0 || base_ != nullptr);
  }
  MappedArray(MappedArray&& other) noexcept
      : base_(std::exchange(other.base_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  MappedArray& operator=(MappedArray&& other) noexcept {
    if (this != &other) {
      release();
      base_ = std::exchange(other.base_, nullptr);
      count_ = std::exchange(other.count_, 0);
    }
    return *this;
  }
  MappedArray(const MappedArray&) = delete;
  MappedArray& operator=(const MappedArray&) = delete;
  ~MappedArray() { release(); }

  // A fresh, value-initialised element at `index` (its page is backed now if it was not).
  T& reset(size_t index) noexcept {
    EDGEPROXY_CHECK(index < count_);
    return *std::construct_at(base_ + index);
  }
  // The element at `index`, as its last reset() and later writes left it. Contract: reset()
  // first; an element never reset reads as zero bytes.
  T& operator[](size_t index) noexcept { return base_[index]; }
  const T& operator[](size_t index) const noexcept { return base_[index]; }
  T* data() noexcept { return base_; }
  size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }

 private:
  void release() noexcept {
    if (base_ != nullptr) unmap(base_, count_ * sizeof(T));
    base_ = nullptr;
    count_ = 0;
  }

  T* base_ = nullptr;
  size_t count_ = 0;
};

}  // namespace edgeproxy
