// EpollTransport: how the epoll backend moves a connection's bytes. Readiness-based: registers
// both fds edge-triggered, runs the relay's steps (relay.h) as read/send/splice/shutdown syscalls
// until no direction can progress, and reconciles interest once per loop iteration.
// Single-threaded: owned by one Worker, like the reactor, pool and stats it refers to.
#pragma once

#include <cstdlib>
#include <memory>
#include <optional>

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

  // HTTP mode (decisions 0013 and 0020): the pooled upstream leaves this slot. True once nothing
  // refers to its fd; epoll: at once. A pooled server socket is registered once, at its connect,
  // under a cookie of its own (CookieTag::kServer): leaving and joining a slot change its owner
  // in servers_, no registration. Its events while it has no owner mark it stirred (the server
  // closed it or sent bytes nobody asked for). A socket given back with its read interest
  // dropped (backpressure) gets it back here, so that a free socket is always watched.
  // A descriptor past the table (servers_) is registered under its slot's cookie instead: the
  // registration is deleted when the connection stays (`ending` false), or its events would
  // reach this connection's next upstream; kept when it ends (the next adopter re-points it
  // with one EPOLL_CTL_MOD).
  bool detach_upstream(Connection& c, Handle, bool ending) noexcept;
  // A pooled socket (connected, idle, in c.upstream.fd) becomes the slot's upstream: relaying
  // starts as after a connect. 0 or the errno of epoll_ctl.
  int adopt_upstream(Connection& c, Handle h) noexcept;

  // The events of a pooled server socket (a kServer cookie's handle): the connection whose
  // upstream it is, if any. Otherwise the event is one of a free socket.
  std::optional<Handle> server_owner(Handle socket) const noexcept;
  // Marks a free socket stirred, as soon as its event is in a batch and before any event of the
  // batch is handled: a client handled earlier in the same batch must not take it. False when
  // the handle is stale (the descriptor was closed, and its number registered again since).
  bool note_server_event(Handle socket) noexcept;
  // Whether the pool may take free socket `fd` without looking at it: true or false for a
  // watched one (not stirred), nothing for one past the table (the pool peeks).
  std::optional<bool> free_socket_alive(int fd) const noexcept;

  // Whether a read paused for want of a buffer could get one now.
  bool buffers_available() const noexcept { return pool_.available() > 0; }

  // At close: gives the connection's pipes back, an emptied one as it is, one still holding bytes
  // replaced by a fresh pipe (splice_pipes_dirty).
  void release_pipes(Connection& c) noexcept { pipes_.release_all(c, stats_); }
  // The same for one side: a pooled upstream leaving its connection (decision 0015).
  void release_pipe(Side& side) noexcept { pipes_.release_side(side, stats_); }
  // close() also removes the fd from the epoll set: no fd is ever dup'ed.
  void close_socket(int fd) noexcept { sys::close(fd); }
  // The connecting upstream's options (TCP_NODELAY, TCP_QUICKACK): a system call.
  void set_tcp_option(int fd, int option, bool on) noexcept { sys::set_tcp_option(fd, option, on); }

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

  // The cookie of a side's registration: kServer for a pooled server socket owned by `h`.
  uint64_t cookie_of(const Connection& c, const Side& side, Handle h) const noexcept;
  bool in_table(int fd) const noexcept {
    return fd >= 0 && static_cast<uint32_t>(fd) < servers_size_;
  }

  // Per descriptor number, its registration as a pooled server socket (decision 0020). Only
  // entries of descriptors registered as such are ever read.
  struct ServerSocket {
    uint32_t generation;  // bumped at each registration of this descriptor number
    uint32_t events;      // the registered interest
    Handle owner;         // the slot whose upstream it is, when `owned`
    bool owned;
    bool stirred;  // an event came while it had no owner, or while its owner was closing
                   // (cleared only by a new registration: a stirred socket is never lent)
  };
  struct FreeDeleter {
    void operator()(ServerSocket* p) const noexcept { std::free(p); }
  };

  EpollReactor& reactor_;
  BufferPool& pool_;
  Stats& stats_;
  PipePool pipes_;
  relay::SplicePolicy splice_;
  // calloc: the pages of descriptor numbers never registered are never touched (no RSS).
  std::unique_ptr<ServerSocket[], FreeDeleter> servers_;
  uint32_t servers_size_ = 0;
};

}  // namespace edgeproxy
