// BufferPool: one anonymous mapping carved into kBufferBytes blocks; see buffer_pool.h.
#include "edgeproxy/buffer_pool.h"

#include <sys/mman.h>

#include <cstring>
#include <string>

#include "edgeproxy/check.h"

namespace edgeproxy {

namespace {

// Out of line: GCC 12 with LTO reports a false -Wstringop-overflow when a literal message is
// inlined into the variant constructor.
[[gnu::noinline]] Error pool_error(const char* what, uint32_t count, int err) {
  std::string m = std::string(what) + " (" + std::to_string(count) + " buffers)";
  if (err != 0) m += std::string(": ") + std::strerror(err);
  return Error{std::move(m)};
}

}  // namespace

Result<BufferPool> BufferPool::create(uint32_t count) {
  if (count == 0) return pool_error("the buffer pool needs at least one buffer", count, 0);
  const size_t bytes = size_t{count} * kBufferBytes;
  // MAP_NORESERVE: blocks become resident only when first written, so the pool's RSS follows
  // the peak number of buffers in use, not its size.
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return pool_error("cannot map the buffer pool", count, errno);
  auto free_ids = std::make_unique<uint32_t[]>(count);
  for (uint32_t i = 0; i < count; ++i) free_ids[i] = count - 1 - i;  // id 0 handed out first
  return BufferPool(static_cast<std::byte*>(base), count, std::move(free_ids));
}

BufferPool::BufferPool(std::byte* base, uint32_t count,
                       std::unique_ptr<uint32_t[]> free_ids) noexcept
    : base_(base), count_(count), free_(std::move(free_ids)), top_(count) {}

BufferPool::BufferPool(BufferPool&& other) noexcept
    : base_(other.base_),
      count_(other.count_),
      free_(std::move(other.free_)),
      top_(other.top_),
      high_water_(other.high_water_) {
  other.base_ = nullptr;
  other.count_ = 0;
  other.top_ = 0;
}

BufferPool::~BufferPool() {
  if (base_ != nullptr) munmap(base_, size_t{count_} * kBufferBytes);
}

bool BufferPool::acquire(Buffer& buffer) noexcept {
  EDGEPROXY_CHECK(!buffer.attached());
  uint32_t id = 0;
  if (!take_id(id)) return false;
  buffer.attach(address(id), id);
  return true;
}

bool BufferPool::take_id(uint32_t& id) noexcept {
  if (top_ == 0) return false;
  id = free_[--top_];
  if (count_ - top_ > high_water_) high_water_ = count_ - top_;
  return true;
}

void BufferPool::adopt(Buffer& buffer, uint32_t id) noexcept {
  EDGEPROXY_CHECK(id < count_ && !buffer.attached());
  buffer.attach(address(id), id);
}

void BufferPool::release(Buffer& buffer) noexcept {
  if (!buffer.attached()) return;
  const uint32_t id = buffer.detach();
  EDGEPROXY_CHECK(id < count_ && top_ < count_);
  free_[top_++] = id;
}

}  // namespace edgeproxy
