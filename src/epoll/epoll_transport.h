// EpollTransport: how the epoll backend moves a connection's bytes. Readiness-based: it runs the
// relay's steps (relay.h) as read/send/shutdown syscalls until no direction can progress.
#pragma once

#include "edgeproxy/buffer_pool.h"
#include "edgeproxy/clock.h"
#include "edgeproxy/connection.h"
#include "edgeproxy/stats.h"

namespace edgeproxy {

class EpollTransport {
 public:
  // Reads per direction per call: 16 x 8 KiB, so one busy connection cannot starve the others.
  static constexpr uint32_t kReadBudget = 16;

  // Moves bytes both ways. Sets c.more when the read budget ran out with the socket still
  // readable (the caller pumps again next loop iteration; no new edge would come). Leaves the
  // connection in kClosing on an error or when both directions are done.
  static void pump(Connection& c, BufferPool& pool, Stats& stats, LoopTime now) noexcept;
};

}  // namespace edgeproxy
