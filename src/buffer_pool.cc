// BufferPool: one anonymous mapping carved into kBufferBytes blocks; see buffer_pool.h.
#include "edgeproxy/buffer_pool.h"

#include <sys/uio.h>

#include <cstring>
#include <string>

#include "edgeproxy/check.h"
#include "edgeproxy/mapped_array.h"

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
  // Blocks become resident only when first written, so the pool's RSS follows the peak number
  // of buffers in use, not its size.
  void* base = map_unbacked(bytes);
  if (base == nullptr) return pool_error("cannot map the buffer pool", count, errno);
  auto free_ids = std::make_unique<uint32_t[]>(count);
  for (uint32_t i = 0; i < count; ++i) free_ids[i] = count - 1 - i;  // id 0 handed out first
  // Default-initialised: a link is written when its block is chained, so untouched pages of the
  // array cost no RSS.
  std::unique_ptr<Link[]> links(new Link[count]);
  return BufferPool(static_cast<std::byte*>(base), count, std::move(free_ids), std::move(links));
}

BufferPool::BufferPool(std::byte* base, uint32_t count, std::unique_ptr<uint32_t[]> free_ids,
                       std::unique_ptr<Link[]> links) noexcept
    : base_(base),
      count_(count),
      free_(std::move(free_ids)),
      links_(std::move(links)),
      top_(count) {}

BufferPool::BufferPool(BufferPool&& other) noexcept
    : base_(other.base_),
      count_(other.count_),
      free_(std::move(other.free_)),
      links_(std::move(other.links_)),
      top_(other.top_),
      high_water_(other.high_water_) {
  other.base_ = nullptr;
  other.count_ = 0;
  other.top_ = 0;
}

BufferPool::~BufferPool() {
  if (base_ != nullptr) unmap(base_, size_t{count_} * kBufferBytes);
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
  give_back(buffer.detach());
}

void BufferPool::give_back(uint32_t id) noexcept {
  EDGEPROXY_CHECK(id < count_ && top_ < count_);
  free_[top_++] = id;
}

void BufferPool::chain_push(BlockChain& chain, Buffer& buffer) noexcept {
  EDGEPROXY_CHECK(buffer.attached() && !buffer.empty());
  const auto begin = static_cast<uint16_t>(buffer.read_ptr() - address(buffer.id()));
  const auto end = static_cast<uint16_t>(begin + buffer.readable());
  const uint32_t bytes = buffer.readable();
  const uint32_t id = buffer.detach();
  EDGEPROXY_CHECK(id < count_);
  links_[id] = Link{kNoBuffer, begin, end};
  if (chain.blocks == 0) {
    chain.head = id;
  } else {
    links_[chain.tail].next = id;
  }
  chain.tail = id;
  ++chain.blocks;
  chain.bytes += bytes;
}

uint32_t BufferPool::chain_consume(BlockChain& chain, uint32_t n) noexcept {
  EDGEPROXY_CHECK(n <= chain.bytes);
  chain.bytes -= n;
  uint32_t freed = 0;
  while (n > 0) {
    Link& l = links_[chain.head];
    const uint32_t here = l.end - l.begin;
    if (n < here) {
      l.begin = static_cast<uint16_t>(l.begin + n);
      break;
    }
    n -= here;
    const uint32_t id = chain.head;
    chain.head = l.next;
    --chain.blocks;
    give_back(id);
    ++freed;
  }
  if (chain.blocks == 0) chain.head = chain.tail = kNoBuffer;
  EDGEPROXY_CHECK((chain.blocks == 0) == (chain.bytes == 0));
  return freed;
}

uint32_t BufferPool::chain_release(BlockChain& chain) noexcept {
  const uint32_t freed = chain.blocks;
  for (uint32_t id = chain.head; chain.blocks > 0; --chain.blocks) {
    const uint32_t next = links_[id].next;
    give_back(id);
    id = next;
  }
  chain = BlockChain{};
  return freed;
}

uint32_t BufferPool::chain_iov(const BlockChain& chain, iovec* iov, uint32_t max,
                               uint32_t& bytes) const noexcept {
  uint32_t n = 0;
  for (uint32_t id = chain.head; n < max && id != kNoBuffer; id = links_[id].next) {
    const Link& l = links_[id];
    iov[n].iov_base = address(id) + l.begin;
    iov[n].iov_len = size_t{l.end} - l.begin;
    bytes += l.end - l.begin;
    ++n;
  }
  return n;
}

}  // namespace edgeproxy
