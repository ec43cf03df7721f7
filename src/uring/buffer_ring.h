// BufferRing: an io_uring provided-buffer ring stocked with blocks lent by the BufferPool. A
// receive names the ring instead of a buffer; the kernel picks a block only when bytes arrive, so
// a connection waiting for data holds no block. The ring holds at most `entries` blocks: a
// bounded prefetch from the pool, refilled from it as blocks are released.
// Single-threaded: owned by the worker's UringTransport.
#pragma once

#include <liburing.h>

#include <cstdint>

#include "edgeproxy/buffer_pool.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

class BufferRing {
 public:
  static constexpr uint16_t kGroup = 0;

  BufferRing() = default;
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;
  ~BufferRing();

  // Maps and registers a ring of `entries` (a power of two, <= 32768) with `ring`.
  Result<Ok> init(io_uring* ring, uint32_t entries);
  // Lends free pool blocks to the kernel until the ring is full or the pool is empty.
  void refill(BufferPool& pool) noexcept;
  // A completion reported that the kernel filled (consumed) one block.
  void consumed() noexcept { --held_; }
  uint32_t held() const noexcept { return held_; }

 private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  uint32_t entries_ = 0;
  uint32_t held_ = 0;
};

}  // namespace edgeproxy
