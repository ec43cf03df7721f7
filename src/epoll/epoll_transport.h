// EpollTransport: how the epoll backend moves a connection's bytes. Readiness-based: registers
// both fds edge-triggered, runs the relay's steps (relay.h) as read/send/splice/shutdown syscalls
// until no direction can progress, and reconciles interest once per loop iteration.
// Single-threaded: owned by one Worker, like the reactor, pool and stats it refers to.
#pragma once

#include "edgeproxy/buffer_pool.h"
#include "edgeproxy/clock.h"
#include "edgeproxy/config.h"
#include "edgeproxy/connect_result.h"
#include "edgeproxy/connection.h"
#include "edgeproxy/event.h"
#include "edgeproxy/net.h"
#include "edgeproxy/pipe_pool.h"
#include "edgeproxy/relay.h"
#include "edgeproxy/slab.h"
#include "edgeproxy/stats.h"
#include "epoll/epoll_reactor.h"

namespace edgeproxy {

class EpollTransport {
 public:
  // Reads (or splices into a pipe) per direction per call, so one busy connection cannot starve
  // the others.
  static constexpr uint32_t kReadBudget = 16;
  // The budget of the pumps that follow, 1..kReadBudget: the worker lowers it while many
  // connections relay bulk data, so one iteration's relaying stays short (accept priority,
  // docs/limits.md), and raises it again for new clients.
  void set_read_budget(uint32_t reads) noexcept { read_budget_ = reads; }
  // Blocks of an acceleration chain written per writev (IOV_MAX is 1024): 512 KiB.
  static constexpr uint32_t kChainIovecs = 64;

  EpollTransport(EpollReactor& reactor, BufferPool& pool, Stats& stats) noexcept
      : reactor_(reactor), pool_(pool), stats_(stats) {}

  // Largest pool this backend can address (buffer ids are 32-bit).
  static constexpr uint32_t kMaxBuffers = UINT32_MAX;

  // Start-up work that can fail: creates config.pipe_count() pipes for splice (--splice).
  Result<Ok> init(const Config& config);

  // Registers the accepted client fd for reading, before any backend is chosen: its first bytes
  // are buffered while the backend is chosen and connected. 0 or the errno of epoll_ctl.
  int attach(Connection& c, Handle h) noexcept;

  // Starts the non-blocking connect of c.upstream.fd (already created) to `to` and registers
  // it. Returns 0 (connected at once), EINPROGRESS, or the errno of the failure (the caller
  // closes the fd).
  int connect(Connection& c, Handle h, const SocketAddress& to) noexcept;

  // The connect's deadline passed: true, the fd may be closed at once (nothing is in flight).
  bool abandon_connect(Connection&, Handle) noexcept { return true; }

  // Applies one event for a side (`client` says which). While connecting, an upstream event
  // finishes the connect (SO_ERROR) and says how, with the errno of a failure.
  ConnectResult on_event(Connection& c, Handle h, bool client, const Event& ev,
                         LoopTime now) noexcept;

  // Moves bytes both ways. Sets c.more when the read budget ran out with the socket still
  // readable (the caller pumps again next loop iteration: no new edge would come). Leaves the
  // connection lingering or closing when a side failed or both directions are done.
  void pump(Connection& c, Handle h, LoopTime now) noexcept;

  // End of an iteration for a live connection: one epoll_ctl(MOD) per side whose registered
  // interest must change, none otherwise. False if the kernel refused (the connection is
  // aborted).
  bool settle(Connection& c, Handle h) noexcept;

  // True when the connection may be closed now (epoll: always; nothing is in flight).
  bool quiesce(Connection&, Handle) noexcept { return true; }

  // True: a finished upstream's fd may be closed now (close() also drops its registration).
  bool release_upstream(Connection&, Handle) noexcept { return true; }

  // HTTP mode (decision 0013): the pooled upstream leaves this slot. True once nothing refers to
  // its fd; epoll: at once. When the connection stays (`ending` false: a keep-alive client whose
  // next request goes elsewhere), the registration is deleted, or the free socket's events would
  // reach this connection's next upstream under the same cookie. When the connection is ending
  // (the client's last request was answered, or it closes), the registration stays: an event
  // the free socket raises reaches this connection's empty upstream side (ignored: on_event)
  // until the slot is freed, then names a generation no connection has and is dropped as stale
  // (the pool's peek and sweep find a closed socket); the slot that adopts it next re-points it
  // with one EPOLL_CTL_MOD instead of a DEL here and an ADD there. Closing the socket ends the
  // registration (no descriptor is ever duplicated).
  bool detach_upstream(Connection& c, Handle, bool ending) noexcept {
    if (!ending && c.upstream.fd >= 0) reactor_.remove(c.upstream.fd);
    return true;
  }
  // A pooled socket (connected, idle, in c.upstream.fd) becomes the slot's upstream: relaying
  // starts as after a connect. 0 or the errno of epoll_ctl.
  int adopt_upstream(Connection& c, Handle h) noexcept;

  // Whether a read paused for want of a buffer could get one now.
  bool buffers_available() const noexcept { return pool_.available() > 0; }

  // At close: gives the connection's pipes back, an emptied one as it is, one still holding bytes
  // replaced by a fresh pipe (splice_pipes_dirty).
  void release_pipes(Connection& c) noexcept { pipes_.release_all(c, stats_); }
  // The same for one side: a pooled upstream leaving its connection (decision 0015).
  void release_pipe(Side& side) noexcept { pipes_.release_side(side, stats_); }
  // close() also removes the fd from the epoll set: no fd is ever dup'ed.
  void close_socket(int fd) noexcept { sys::close(fd); }

  const PipePool& pipes() const noexcept { return pipes_; }

 private:
  uint32_t read_budget_ = kReadBudget;

  // The interest a side's registration should hold: what it wants, plus what it no longer wants
  // but costs nothing to keep (settle: no epoll_ctl for it).
  static uint32_t registered_interest(const Connection& c, const Side& side) noexcept;
  // kShutdown: SHUT_WR only after every buffered byte was sent (the peer reads them, then EOF);
  // the last direction's FIN is the close's (relay::shutdown_is_last).
  void shut(Connection& c, Dir d, LoopTime now) noexcept;
  // kWrite toward the client of an accelerating connection: one writev of up to kChainIovecs
  // chain blocks, then upstream.in's bytes once the whole chain fits.
  void write_chain(Connection& c, LoopTime now) noexcept;

  EpollReactor& reactor_;
  BufferPool& pool_;
  Stats& stats_;
  PipePool pipes_;
  relay::SplicePolicy splice_;
};

}  // namespace edgeproxy
