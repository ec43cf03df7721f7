// Per-worker pooled server connections of one backend; see server_pool.h.
#include "edgeproxy/server_pool.h"

#include <algorithm>

#include "edgeproxy/check.h"

namespace edgeproxy {

ServerPool::ServerPool(uint32_t servers, uint32_t size) : size_(size), servers_(servers) {
  for (Server& s : servers_) s.free = std::make_unique<Idle[]>(size);
}

void ServerPool::push_free(uint32_t s, int fd, uint8_t address, int64_t now_ms) noexcept {
  Server& server = servers_[s];
  // Every socket is counted in `open`, which never exceeds `size`: the free list has room.
  EDGEPROXY_CHECK(server.free_count < size_ && server.free_count < server.open);
  server.free[server.free_count++] = Idle{fd, address, now_ms};
}

bool ServerPool::pop_free(uint32_t s, Idle& out) noexcept {
  Server& server = servers_[s];
  if (server.free_count == 0) return false;
  out = server.free[--server.free_count];
  return true;
}

void ServerPool::mark_down(uint32_t s, int64_t now_ms) noexcept {
  Server& server = servers_[s];
  server.backoff_ms =
      server.backoff_ms == 0 ? kFirstBackoffMs : std::min(kMaxBackoffMs, server.backoff_ms * 2);
  server.down_until_ms = now_ms + server.backoff_ms;
}

}  // namespace edgeproxy
