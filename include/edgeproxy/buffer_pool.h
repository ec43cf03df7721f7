// BufferPool: one page-aligned region of N fixed 8 KiB blocks and a LIFO stack of free ids, so the
// most recently released (cache-hot) block is reused first. Created once at start-up; never grows.
// Single-threaded: owned by one Worker.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "edgeproxy/block_chain.h"
#include "edgeproxy/buffer.h"
#include "edgeproxy/result.h"

struct iovec;

namespace edgeproxy {

class BufferPool {
 public:
  // Maps count * kBufferBytes of anonymous memory. Pages are not touched here, so an unused block
  // costs address space only, not RSS. Refuses count == 0.
  static Result<BufferPool> create(uint32_t count);

  BufferPool(BufferPool&& other) noexcept;
  BufferPool& operator=(BufferPool&&) = delete;
  BufferPool(const BufferPool&) = delete;
  ~BufferPool();

  // Attaches a free block to `buffer` (which must be detached). False when the pool is empty; the
  // caller pauses and waits for a release. Never allocates.
  bool acquire(Buffer& buffer) noexcept;
  // Returns the block held by `buffer` (if any) and leaves it detached.
  void release(Buffer& buffer) noexcept;

  // For backends whose kernel picks the block (io_uring provided buffers): take_id() lends a free
  // block out by id (it counts as in use), and adopt() later attaches exactly that block to a
  // buffer once the kernel reports it filled. A lent block comes back through release().
  bool take_id(uint32_t& id) noexcept;
  void adopt(Buffer& buffer, uint32_t id) noexcept;
  std::byte* address(uint32_t id) const noexcept { return base_ + size_t{id} * kBufferBytes; }

  // Chains (decision 0011): a block leaves a Buffer for the tail of a BlockChain and returns to the
  // free stack when the chain's writes have consumed it. Links and readable ranges live here, one
  // entry per block.
  // Moves the block of `buffer` (attached, holding bytes) to the tail of `chain`; `buffer` is left
  // detached.
  void chain_push(BlockChain& chain, Buffer& buffer) noexcept;
  // Drops n <= chain.bytes bytes from the head; emptied blocks go back to the free stack. Returns
  // how many blocks went back.
  uint32_t chain_consume(BlockChain& chain, uint32_t n) noexcept;
  // Returns every block of `chain` to the free stack and empties it; returns how many.
  uint32_t chain_release(BlockChain& chain) noexcept;
  // Fills up to `max` iovecs with the chain's readable ranges, head first; returns how many and
  // adds their bytes to `bytes`.
  uint32_t chain_iov(const BlockChain& chain, iovec* iov, uint32_t max,
                     uint32_t& bytes) const noexcept;

  uint32_t capacity() const noexcept { return count_; }
  uint32_t available() const noexcept { return top_; }
  uint32_t in_use() const noexcept { return count_ - top_; }
  uint32_t high_water() const noexcept { return high_water_; }

 private:
  // A chained block's successor (kNoBuffer at the tail) and readable range [begin, end).
  struct Link {
    uint32_t next;
    uint16_t begin;
    uint16_t end;
  };

  BufferPool(std::byte* base, uint32_t count, std::unique_ptr<uint32_t[]> free_ids,
             std::unique_ptr<Link[]> links) noexcept;
  void give_back(uint32_t id) noexcept;

  std::byte* base_;
  uint32_t count_;
  std::unique_ptr<uint32_t[]> free_;  // stack of free ids; free_[top_-1] is the next one handed out
  std::unique_ptr<Link[]> links_;     // per block; meaningful only while the block is chained
  uint32_t top_;
  uint32_t high_water_ = 0;
};

}  // namespace edgeproxy
