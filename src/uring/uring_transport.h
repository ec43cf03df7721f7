// UringTransport: how the io_uring backend moves a connection's bytes. Completion-based: it
// submits at most one receive and one send per side, receives into blocks the kernel picks from
// a provided-buffer ring stocked by the BufferPool, applies completions through the same relay
// (relay.h) as the epoll backend, and on close cancels what is in flight: a slot is freed only
// when no operation refers to it. Single-threaded: owned by one Worker.
#pragma once

#include "edgeproxy/buffer_pool.h"
#include "edgeproxy/clock.h"
#include "edgeproxy/connection.h"
#include "edgeproxy/event.h"
#include "edgeproxy/net.h"
#include "edgeproxy/result.h"
#include "edgeproxy/slab.h"
#include "edgeproxy/stats.h"
#include "uring/buffer_ring.h"
#include "uring/uring_reactor.h"

namespace edgeproxy {

// What an event did to a connection's backend connect.
enum class ConnectOutcome : uint8_t { kNone, kConnected, kFailed };

// Side::ops bits: operations in flight on that side's fd.
enum UringSideOp : uint8_t {
  kOpRecv = 1 << 0,
  kOpSend = 1 << 1,
  kOpConnect = 1 << 2,
  kOpCancel = 1 << 3,
};

// Side::hints bits.
enum UringSideHint : uint8_t {
  kRecvDrained = 1 << 0,  // the last receive was short: the socket was empty after it
};

class UringTransport {
 public:
  // Provided-buffer ids are 16-bit.
  static constexpr uint32_t kMaxBuffers = UserData::kMaxBuffer + 1;
  // Most blocks lent to the kernel's ring at once (a prefetch; the rest stay in the pool).
  static constexpr uint32_t kRingEntries = 256;

  UringTransport(UringReactor& reactor, BufferPool& pool, Stats& stats) noexcept
      : reactor_(reactor), pool_(pool), stats_(stats) {}

  // Registers the provided-buffer ring and stocks it from the pool.
  Result<Ok> init() noexcept;

  // Submits the connect of c.upstream.fd (already created) to `to`. Returns EINPROGRESS.
  int connect(Connection& c, Handle h, const SocketAddress& to) noexcept;

  // Applies one completion for a side (`client` says which); says if it finished the connect.
  ConnectOutcome on_event(Connection& c, Handle h, bool client, const Event& ev,
                          LoopTime now) noexcept;

  // Submits whatever each direction can do next and is not already in flight.
  void pump(Connection& c, Handle h, LoopTime now) noexcept;

  // End of an iteration for a live connection: nothing to register with the kernel; records the
  // wanted interest (for the backpressure counter) and restocks the buffer ring.
  bool settle(Connection& c, Handle h) noexcept;

  // True when nothing is in flight for the connection; otherwise cancels what is (once) and the
  // completions will bring the connection back.
  bool quiesce(Connection& c, Handle h) noexcept;

  // Whether a receive that failed with ENOBUFS could get a block now.
  bool buffers_available() const noexcept { return ring_.held() > 0 || pool_.available() > 0; }

 private:
  UringReactor& reactor_;
  BufferPool& pool_;
  Stats& stats_;
  BufferRing ring_;
  // The address stays valid while a connect is in flight: one backend per worker for now.
  SocketAddress connect_to_;
};

}  // namespace edgeproxy
