// Buffer: a view of one fixed 8 KiB block from the BufferPool, with read and write offsets.
// No syscalls, no allocation. Invariant: 0 <= rd <= wr <= kBufferBytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "edgeproxy/check.h"

namespace edgeproxy {

inline constexpr uint32_t kBufferBytes = 8192;
inline constexpr uint32_t kNoBuffer = UINT32_MAX;

class Buffer {
 public:
  bool attached() const noexcept { return data_ != nullptr; }
  uint32_t id() const noexcept { return id_; }

  // Takes a pool block; the buffer must be detached.
  void attach(std::byte* data, uint32_t id) noexcept {
    EDGEPROXY_CHECK(!attached() && data != nullptr);
    data_ = data;
    id_ = id;
    rd_ = wr_ = 0;
  }
  // Gives the block back to the caller (the pool) and returns its id.
  uint32_t detach() noexcept {
    const uint32_t id = id_;
    data_ = nullptr;
    id_ = kNoBuffer;
    rd_ = wr_ = 0;
    return id;
  }

  uint32_t readable() const noexcept { return wr_ - rd_; }
  uint32_t writable() const noexcept { return attached() ? kBufferBytes - wr_ : 0; }
  bool empty() const noexcept { return rd_ == wr_; }
  bool full() const noexcept { return attached() && wr_ == kBufferBytes; }

  const std::byte* read_ptr() const noexcept { return data_ + rd_; }
  std::byte* write_ptr() noexcept { return data_ + wr_; }

  // Marks n bytes after write_ptr() as filled. n <= writable().
  void commit(uint32_t n) noexcept {
    EDGEPROXY_CHECK(n <= writable());
    wr_ = static_cast<uint16_t>(wr_ + n);
  }
  // Drops n bytes from read_ptr(). n <= readable(). An emptied buffer rewinds to offset 0 so the
  // whole block is writable again without a copy.
  void consume(uint32_t n) noexcept {
    EDGEPROXY_CHECK(n <= readable());
    rd_ = static_cast<uint16_t>(rd_ + n);
    if (rd_ == wr_) rd_ = wr_ = 0;
  }
  // Replaces the `old_n` bytes at offset `at` of the readable bytes with the `n` bytes at `p`,
  // moving the bytes after them (compacting first when the block's end has no room). False, and
  // nothing changed, when the result does not fit the block. The caller makes sure nothing else
  // reads the block meanwhile (no send from it in flight) and that `p` is not inside it.
  bool replace(uint32_t at, uint32_t old_n, const std::byte* p, uint32_t n) noexcept {
    EDGEPROXY_CHECK(at + old_n <= readable());
    const uint32_t total = readable() - old_n + n;
    if (total > kBufferBytes) return false;
    if (rd_ + total > kBufferBytes) compact();
    std::byte* base = data_ + rd_;
    std::memmove(base + at + n, base + at + old_n, readable() - at - old_n);
    std::memcpy(base + at, p, n);
    wr_ = static_cast<uint16_t>(rd_ + total);
    return true;
  }
  // Moves the readable bytes to the start of the block so writable() is maximal.
  void compact() noexcept {
    if (rd_ == 0) return;
    const uint32_t n = readable();
    std::memmove(data_, data_ + rd_, n);
    rd_ = 0;
    wr_ = static_cast<uint16_t>(n);
  }

 private:
  std::byte* data_ = nullptr;
  uint32_t id_ = kNoBuffer;
  uint16_t rd_ = 0;  // 8192 fits: offsets are 16-bit to keep a side small
  uint16_t wr_ = 0;
};

static_assert(kBufferBytes <= UINT16_MAX);

}  // namespace edgeproxy
