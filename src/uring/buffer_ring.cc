// Provided-buffer ring; see buffer_ring.h.
#include "uring/buffer_ring.h"

#include <sys/mman.h>

#include <cstring>
#include <string>

namespace edgeproxy {

BufferRing::~BufferRing() {
  if (br_ == nullptr) return;
  io_uring_unregister_buf_ring(ring_, kGroup);
  munmap(br_, entries_ * sizeof(io_uring_buf));
}

Result<Ok> BufferRing::init(io_uring* ring, uint32_t entries) {
  const size_t bytes = entries * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return Error{std::string("provided buffer ring: ") + std::strerror(errno)};
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = entries;
  reg.bgid = kGroup;
  if (const int rc = io_uring_register_buf_ring(ring, &reg, 0); rc != 0) {
    munmap(mem, bytes);
    return Error{std::string("io_uring: cannot register a provided buffer ring (kernel 5.19+): ") +
                 std::strerror(-rc)};
  }
  ring_ = ring;
  br_ = static_cast<io_uring_buf_ring*>(mem);
  entries_ = entries;
  io_uring_buf_ring_init(br_);
  return Ok{};
}

void BufferRing::refill(BufferPool& pool) noexcept {
  const int mask = io_uring_buf_ring_mask(entries_);
  int added = 0;
  uint32_t id = 0;
  while (held_ < entries_ && pool.take_id(id)) {
    io_uring_buf_ring_add(br_, pool.address(id), kBufferBytes, static_cast<uint16_t>(id), mask,
                          added++);
    ++held_;
  }
  // Publishes the new tail with a release store: the kernel sees complete entries only.
  if (added > 0) io_uring_buf_ring_advance(br_, added);
}

}  // namespace edgeproxy
