// UringTransport: how the io_uring backend moves a connection's bytes. Completion-based: it
// submits per side at most one operation taking bytes in and one sending, receives into blocks
// the kernel picks from a provided-buffer ring stocked by the BufferPool or splices through a
// pipe from its PipePool, applies completions through the same relay (relay.h) as the epoll
// backend, and on close cancels what is in flight: a slot is freed only when no operation
// refers to it. Single-threaded: owned by one Worker.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

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
#include "edgeproxy/result.h"
#include "edgeproxy/slab.h"
#include "edgeproxy/stats.h"
#include "uring/buffer_ring.h"
#include "uring/uring_reactor.h"

namespace edgeproxy {

// Side::ops bits: operations in flight on that side's fd.
enum UringSideOp : uint8_t {
  kOpRecv = 1 << 0,
  kOpSend = 1 << 1,
  kOpConnect = 1 << 2,
  kOpCancel = 1 << 3,
  kOpSpliceIn = 1 << 4,   // splice from this side's socket into its pipe
  kOpSpliceOut = 1 << 5,  // splice from the peer's pipe into this side's socket
  kOpPollIn = 1 << 6,     // waiting for this socket to be readable before a splice in, or (its
                          // reading over) watching it for an error (UringSplice::kWatch)
  kOpPollOut = 1 << 7,    // waiting for room in this socket before a splice out
};

// Side::hints bits.
enum UringSideHint : uint8_t {
  // The last receive was short, or a splice found the socket empty: wait for data first.
  kRecvDrained = 1 << 0,
  kSendFull = 1 << 1,  // the last splice out stopped at a full send buffer: wait for room first
  // The cancel round of a closing side (kOpCancel, see UringTransport::quiesce()): the
  // reactor's dropped-completion count (mod 4) when it began (if it moved, the round's own
  // completion may be one of those dropped, and quiesce() begins another), whether a cancel found
  // nothing for the side's operation taking bytes in or for the one sending (or connecting), and
  // whether one found its operation running on an io-wq thread.
  kCancelDropMark = 3 << 2,
  kSuspectIn = 1 << 4,
  kSuspectOut = 1 << 5,
  kCancelRunning = 1 << 6,
  // The poll in flight on the side's input (kOpPollIn) is the watch of a side whose reading is
  // over (UringSplice::kWatch), not the poll before a splice.
  kWatching = 1 << 7,
};

class UringTransport {
 public:
  // Provided-buffer ids are 16-bit.
  static constexpr uint32_t kMaxBuffers = UserData::kMaxBuffer + 1;
  // Most blocks lent to the kernel's ring at once (a prefetch; the rest stay in the pool).
  static constexpr uint32_t kRingEntries = 256;
  // Blocks of an acceleration chain sent per IORING_OP_SENDMSG (decision 0011): 128 KiB.
  static constexpr uint32_t kChainIovecs = 16;

  UringTransport(UringReactor& reactor, BufferPool& pool, Stats& stats) noexcept
      : reactor_(reactor), pool_(pool), stats_(stats) {}

  // Registers the provided-buffer ring and stocks it from the pool; creates config.pipe_count()
  // pipes for splice (--splice); reserves a message header and kChainIovecs iovecs per slot
  // (config.max_connections) for sends of acceleration chains.
  Result<Ok> init(const Config& config);

  // Readies the accepted client: its first receive is submitted by the next pump(), before any
  // backend is chosen. c.accel_limit must be set already. Returns 0.
  int attach(Connection& c, Handle h) noexcept;

  // Submits the connect of c.upstream.fd (already created) to `to`, which must stay valid until
  // the connect completes (the worker's address list). Returns EINPROGRESS, or EAGAIN when the
  // kernel refused the submission queue (nothing submitted).
  int connect(Connection& c, Handle h, const SocketAddress& to) noexcept;

  // The connect's deadline passed: cancels it and returns false; its completion then reports a
  // failure with ETIMEDOUT (or the success that won the race), and the fd may be closed. True
  // when no connect is in flight any more (its completion was dropped): the fd may go now.
  bool abandon_connect(Connection& c, Handle h) noexcept;

  // The kernel dropped completions (UringReactor::dropped_completions() moved): a closing
  // connection's cancel round may have lost its own, and nothing would end it. Forgets the
  // rounds in flight, so the next quiesce() starts new ones (harmless when none was lost).
  void restart_cancels(Connection& c) noexcept;

  // Applies one completion for a side (`client` says which); says if it finished the connect,
  // with the errno of a failure.
  ConnectResult on_event(Connection& c, Handle h, bool client, const Event& ev,
                         LoopTime now) noexcept;

  // Submits whatever each direction can do next and is not already in flight. An operation that
  // found no submission entry (UringReactor::sqe() is null) is left unsubmitted and c.more set:
  // the Worker pumps the connection again next iteration.
  void pump(Connection& c, Handle h, LoopTime now) noexcept;

  // End of an iteration for a live connection: nothing to register with the kernel; records the
  // wanted interest (for the backpressure counter) and restocks the buffer ring.
  bool settle(Connection& c, Handle h) noexcept;

  // True when the kernel holds nothing that names the connection's slot any more. Otherwise
  // begins, per side with operations in flight and no round under way (kOpCancel), a cancel
  // round: one cancel by user_data per operation; the completions bring the connection back.
  // When a cancel finds nothing while its operation is still recorded, a barrier (a timeout,
  // whose completion runs as task work after every completion already waiting as task work)
  // ends the round; an operation still recorded then had its completion dropped by the kernel
  // and is given up (lost_operations()), so a dropped completion neither leaks the slot nor
  // blocks a shutdown. A round with no submission entry sets c.more: the Worker comes back.
  bool quiesce(Connection& c, Handle h) noexcept;

  // A finished upstream (relay::upstream_finished) may be closed before the connection: true when
  // no operation refers to its fd; otherwise begins a cancel round on it, as quiesce() does, and
  // the completions bring the connection back.
  bool release_upstream(Connection& c, Handle h) noexcept;

  // HTTP mode (decision 0013): the pooled upstream leaves this slot, as release_upstream() (the
  // worker has paused it with kPauseDetach, so nothing new is submitted meanwhile). A receive
  // that completes with bytes during the round leaves them in upstream.in: the socket is then not
  // pooled. The upstream's pipe (decision 0015) is read by the client's splice out: false while
  // one is in flight (a splice never waits, so its completion comes back soon).
  bool detach_upstream(Connection& c, Handle h, bool /*ending*/) noexcept {
    if (c.upstream.pipe != kNoPipe && (c.client.ops & kOpSpliceOut)) return false;
    return release_upstream(c, h);
  }
  // A pooled socket (connected, idle, in c.upstream.fd) becomes the slot's upstream: relaying
  // starts as after a connect; the next pump submits its receive. 0.
  int adopt_upstream(Connection& c, Handle h) noexcept;

  // Decision 0020 is epoll's: io_uring registers no pooled socket (kServer cookies never come
  // from it), and the pool looks at a free socket (MSG_PEEK) before lending it.
  static std::optional<Handle> server_owner(Handle) noexcept { return std::nullopt; }
  static bool note_server_event(Handle) noexcept { return false; }
  static std::optional<bool> free_socket_alive(int) noexcept { return std::nullopt; }

  // A completion for a slot already freed (Worker::on_connection_event drops it): a block the
  // kernel picked for it goes back to the pool.
  void on_stale(const Event& ev) noexcept;

  // Operations given up at close because a cancel proved their completion dropped.
  uint64_t lost_operations() const noexcept { return lost_operations_; }

  // Whether a receive is in flight on `side`: its completion will bring a block into side.in,
  // which must stay free for it (routing's replay refills client.in only when this is false).
  static bool reading(const Side& side) noexcept { return (side.ops & kOpRecv) != 0; }

  // Whether a receive that failed with ENOBUFS could get a block now.
  bool buffers_available() const noexcept { return ring_.held() > 0 || pool_.available() > 0; }

  // At close, once quiesce() said nothing is in flight: gives the connection's pipes back, an
  // emptied one as it is, one still holding bytes replaced by a fresh pipe (splice_pipes_dirty).
  void release_pipes(Connection& c) noexcept { pipes_.release_all(c, stats_); }
  // The same for one side, once detach_upstream() said nothing refers to it (decision 0015).
  void release_pipe(Side& side) noexcept { pipes_.release_side(side, stats_); }
  // In the ring (IORING_OP_CLOSE), sent with the next submission instead of a system call of its
  // own; a close(2) when no submission entry is free. The descriptor stays allocated until then.
  void close_socket(int fd) noexcept;
  // setsockopt(IPPROTO_TCP, option, on) in the ring (SOCKET_URING_OP_SETSOCKOPT, 6.7+), sent
  // with the next submission and so before any operation queued after it on the socket (the
  // kernel runs it at once when it takes the entry); a system call on an older kernel, or unless
  // there is room for it and the connect that follows. As on epoll, a failure is ignored: these
  // options tune a socket.
  void set_tcp_option(int fd, int option, bool on) noexcept;
  // Whether set_tcp_option() uses the ring (the kernel takes socket commands).
  bool socket_commands() const noexcept { return socket_commands_; }

  const PipePool& pipes() const noexcept { return pipes_; }
  // Pool blocks lent to the kernel's provided-buffer ring and not yet filled: in use for the
  // pool, but holding no bytes.
  uint32_t lent_blocks() const noexcept { return ring_.held(); }

 private:
  // What a slot's send of an acceleration chain hands the kernel: stable until its completion
  // (at most one send per side is in flight, and only its completion consumes the chain).
  struct ChainSend {
    msghdr msg;
    iovec iov[kChainIovecs + 1];  // chain blocks, then upstream.in's bytes when the chain fits
    bool in_flight;               // the client's send in flight is this one (its user_data
                                  // names no block: upstream.in may change under it)
  };

  // kWrite toward the client of an accelerating connection: IORING_OP_SENDMSG over the chain.
  void submit_chain_send(io_uring_sqe* e, Connection& c, Handle h) noexcept;
  // quiesce() for one side: true when nothing is in flight on it, else a cancel round begins.
  bool quiesce_side(Connection& c, bool client, Handle h, uint8_t mark) noexcept;
  void on_splice(Connection& c, bool client, UringSplice kind, int32_t result, uint32_t cqe_flags,
                 LoopTime now) noexcept;
  // Each fills `e`, an entry from UringReactor::sqe().
  void submit_recv(io_uring_sqe* e, Side& src, Handle h, bool client) noexcept;
  void submit_splice(io_uring_sqe* e, int fd_in, int fd_out, uint32_t bytes, Handle h, bool client,
                     UringSplice kind) noexcept;
  void submit_poll(io_uring_sqe* e, int fd, unsigned events, Handle h, bool client,
                   UringSplice kind) noexcept;
  // The user_data of side `client`'s operation `op` (one UringSideOp bit), to cancel it.
  uint64_t op_data(const Connection& c, bool client, Handle h, uint8_t op) const noexcept;
  bool cancel_round(Connection& c, Side& side, bool client, Handle h, uint8_t mark) noexcept;
  void on_cancel(Connection& c, Handle h, bool client, uint16_t target, int32_t result) noexcept;

  UringReactor& reactor_;
  BufferPool& pool_;
  Stats& stats_;
  BufferRing ring_;
  PipePool pipes_;
  std::unique_ptr<ChainSend[]> chain_sends_;  // one per slot, default-initialised: untouched
                                              // pages of slots that never accelerate cost no RSS
  uint32_t slots_ = 0;
  relay::SplicePolicy splice_;
  uint64_t lost_operations_ = 0;
  // Whether this kernel runs setsockopt as a ring command on a socket (asked once per process).
  bool socket_commands_ = false;
};

}  // namespace edgeproxy
