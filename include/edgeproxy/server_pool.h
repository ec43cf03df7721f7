// ServerPool: one worker's persistent connections to the servers of one backend, for HTTP
// listeners (decision 0013). Per server: the free IDLE sockets (owned by the pool, unwatched), how
// many sockets exist (connecting, attached to a client connection, free), the DOWN backoff and the
// moving average of response time. The backend's pending queue and the servers' lists of parked
// connections link slab slots (Connection::pool_wait) and live here too. Allocated when a topology
// version is installed; nothing here allocates afterwards. Single-threaded: owned by one Worker.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "edgeproxy/connection.h"
#include "edgeproxy/wait_queue.h"

namespace edgeproxy {

class ServerPool {
 public:
  using Queue = WaitQueue<Connection, &Connection::pool_wait>;

  // A free IDLE socket: connected to address `address` of its server, unused since `since_ms`.
  struct Idle {
    int fd = -1;
    uint8_t address = 0;
    int64_t since_ms = 0;
  };

  struct Server {
    std::unique_ptr<Idle[]> free;  // `size` entries; [0, free_count) hold sockets, newest last
    uint32_t free_count = 0;
    uint32_t open = 0;    // sockets that exist: connecting, attached (ACTIVE or parked), free
    uint32_t parked = 0;  // attached to an idle keep-alive client (IDLE, not free)
    Queue parked_list;
    // DOWN: no socket is opened before this time (a failed connect or a socket lost before its
    // response); the backoff doubles per failure from kFirstBackoffMs up to kMaxBackoffMs.
    int64_t down_until_ms = 0;
    uint32_t backoff_ms = 0;
    uint64_t rtt_us = 0;  // moving average (1/8 per sample) of the time to a response's first byte
  };

  static constexpr uint32_t kFirstBackoffMs = 100;
  static constexpr uint32_t kMaxBackoffMs = 5000;

  ServerPool(uint32_t servers, uint32_t size);

  uint32_t size() const noexcept { return size_; }
  uint32_t servers() const noexcept { return static_cast<uint32_t>(servers_.size()); }
  Server& at(uint32_t s) noexcept { return servers_[s]; }
  const Server& at(uint32_t s) const noexcept { return servers_[s]; }

  // Whether server `s` may open one more socket now: below `size` and not in backoff.
  bool may_open(uint32_t s, int64_t now_ms) const noexcept {
    return servers_[s].open < size_ && servers_[s].down_until_ms <= now_ms;
  }
  // IDLE sockets of `s`: free ones and parked ones.
  uint32_t idle(uint32_t s) const noexcept { return servers_[s].free_count + servers_[s].parked; }

  // Keeps a socket that served a request (or was just opened) as free IDLE; its server's count
  // of open sockets already includes it.
  void push_free(uint32_t s, int fd, uint8_t address, int64_t now_ms) noexcept;
  // The most recently used free socket of `s` (warm caches, and the oldest ones age out), or
  // false when there is none.
  bool pop_free(uint32_t s, Idle& out) noexcept;
  // Removes free sockets of `s` for which `drop(idle)` is true (it closes them), oldest first;
  // returns how many. Keeps the order of the others.
  template <class Drop>
  uint32_t sweep(uint32_t s, Drop drop) noexcept {
    Server& server = servers_[s];
    uint32_t kept = 0;
    for (uint32_t i = 0; i < server.free_count; ++i) {
      if (drop(server.free[i])) continue;
      server.free[kept++] = server.free[i];
    }
    const uint32_t dropped = server.free_count - kept;
    server.free_count = kept;
    server.open -= dropped;
    return dropped;
  }

  // A connect to `s` failed, or a socket of it was lost before its response: backoff.
  void mark_down(uint32_t s, int64_t now_ms) noexcept;
  // A connect to `s` succeeded.
  void mark_up(uint32_t s) noexcept { servers_[s].backoff_ms = 0; }
  // One response-time sample (microseconds) for `s`.
  void observe_rtt(uint32_t s, uint64_t us) noexcept {
    uint64_t& avg = servers_[s].rtt_us;
    avg = avg == 0 ? us : avg - avg / 8 + us / 8;
  }

  Queue pending;               // requests waiting for a socket of any server, oldest first
  uint32_t pending_count = 0;  // in `pending`
  uint32_t stealing = 0;       // parked sockets being detached for waiters

 private:
  uint32_t size_;
  std::vector<Server> servers_;
};

}  // namespace edgeproxy
