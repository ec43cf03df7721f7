// Completion-driven byte moving; see uring_transport.h.
#include "uring/uring_transport.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cassert>

#include "edgeproxy/relay.h"

namespace edgeproxy {
namespace {

SysResult from_cqe(int32_t res) noexcept {
  return res < 0 ? SysResult{-1, -res} : SysResult{res, 0};
}

// io_uring waits for readiness itself: a side is always worth a receive (until EOF: a failed
// side is still read for what it sent before the error) and a send (until shut or failed).
// (Splices do not wait: the kRecvDrained and kSendFull hints put a poll before them.)
void keep_ready(Side& s) noexcept {
  if (!(s.flags & kEof)) s.flags |= kReadReady;
  if (!(s.flags & (kWriteShut | kFailed))) s.flags |= kWriteReady;
}

// Operations that take bytes in from a side's socket, and that send to it: at most one of each.
constexpr uint8_t kInOps = kOpRecv | kOpSpliceIn | kOpPollIn;
constexpr uint8_t kOutOps = kOpSend | kOpSpliceOut | kOpPollOut;
// A connect is the only operation in flight on an upstream that connects: it counts as sending.
constexpr uint8_t kOutOrConnect = kOutOps | kOpConnect;

// What a transport cancel's user_data names in its buffer field: the connect of an attempt past
// its deadline (abandon_connect, the attempt's number above kAttemptShift), or in a closing
// side's round its operation taking bytes in, the one sending (or connecting), or the barrier;
// kRoundEnd marks a round's last cancel.
enum CancelTarget : uint16_t {
  kTargetConnect = 0,
  kTargetIn = 1,
  kTargetOut = 2,
  kTargetBarrier = 3,
  kTargetMask = 3,
  kRoundEnd = 1 << 4,
  kAttemptShift = 5,
};

// The barrier's timeouts: the kernel reads one when it takes the entry, maybe after the transport
// is gone (the reactor's destructor submits what is queued), hence static storage. Never written.
__kernel_timespec barrier_now{0, 0};
// After a cancel found its operation running on an io-wq thread (the thread was interrupted and
// completes it shortly): look again this much later, never in a busy loop.
__kernel_timespec barrier_later{0, 10'000'000};

// SOCKET_URING_OP_SETSOCKOPT of linux/io_uring.h (6.7+; liburing 2.3's headers predate it). The
// command's level and option name are the two halves of sqe->addr, its value's length is in
// sqe->optlen (splice_fd_in here) and its value's address in sqe->optval (addr3 here).
constexpr uint32_t kSocketSetOption = 3;

void prep_tcp_option(io_uring_sqe* e, int fd, int option, const int* value) noexcept {
  io_uring_prep_rw(IORING_OP_URING_CMD, e, fd, nullptr, 0, 0);
  e->cmd_op = kSocketSetOption;
  e->addr = uint64_t{IPPROTO_TCP} | (uint64_t{static_cast<uint32_t>(option)} << 32);
  e->splice_fd_in = sizeof(int);
  e->addr3 = reinterpret_cast<uintptr_t>(value);
}

// The values the kernel reads when it takes a queued command, maybe after the transport is gone
// (the reactor's destructor submits what is queued), hence static storage. Never written.
const int option_off = 0;
const int option_on = 1;

// Whether the kernel takes the command: asked once per process, on a ring and a socket of its
// own (a kernel without it completes the command with EOPNOTSUPP or EINVAL).
bool probe_socket_commands() noexcept {
  io_uring ring{};
  if (io_uring_queue_init(2, &ring, 0) != 0) return false;
  bool supported = false;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  io_uring_sqe* e = io_uring_get_sqe(&ring);
  if (fd >= 0 && e != nullptr) {
    prep_tcp_option(e, fd, TCP_NODELAY, &option_on);
    io_uring_cqe* cqe = nullptr;
    if (io_uring_submit_and_wait(&ring, 1) == 1 && io_uring_peek_cqe(&ring, &cqe) == 0) {
      int v = 0;
      socklen_t len = sizeof v;
      supported =
          cqe->res == 0 && ::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v == 1;
    }
  }
  if (fd >= 0) ::close(fd);
  io_uring_queue_exit(&ring);
  return supported;
}

// The kernel refused the submission queue: come back next iteration (the Worker queues c.more).
void retry_later(Connection& c) noexcept {
  c.more = true;
}

}  // namespace

Result<Ok> UringTransport::init(const Config& config) {
  // A power of two no larger than the pool, so a small pool is not all lent out at once.
  uint32_t entries = 1;
  while (entries * 2 <= std::min(pool_.capacity(), kRingEntries)) entries *= 2;
  if (auto r = ring_.init(reactor_.ring(), entries); !r.ok()) return r;
  ring_.refill(pool_);
  static const bool socket_commands = probe_socket_commands();  // thread-safe, once
  socket_commands_ = socket_commands;
  slots_ = config.max_connections;
  chain_sends_.reset(new ChainSend[slots_]);
  auto pipes = PipePool::create(config.pipe_count());
  if (!pipes.ok()) return Error{pipes.error()};
  pipes_ = std::move(pipes.value());
  if (pipes_.capacity() == 0) return Ok{};
  splice_ = relay::SplicePolicy{config.splice, config.splice_threshold_bytes};
  // The kernel runs every splice on an io-wq worker thread of this (the submitting) thread, from
  // its unbounded pool (sockets and pipes), starting a new worker whenever work is queued and
  // none is idle. A splice here never blocks, so workers beyond the CPUs this thread may run on
  // (its workers inherit its affinity) add threads, not throughput: cap them. A kernel without
  // the limit (before 5.15) keeps its default; nothing else changes.
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  if (sched_getaffinity(0, sizeof cpus, &cpus) == 0) {
    unsigned limits[2] = {0, static_cast<unsigned>(CPU_COUNT(&cpus))};  // 0: bounded pool as is
    io_uring_register_iowq_max_workers(reactor_.ring(), limits);
  }
  return Ok{};
}

int UringTransport::attach(Connection& c, Handle h) noexcept {
  keep_ready(c.client);
  // Only a slot whose connection may accelerate ever touches its ChainSend.
  if (c.accel_limit != 0) chain_sends_[h.index].in_flight = false;
  return 0;
}

int UringTransport::connect(Connection& c, Handle h, const SocketAddress& to) noexcept {
  io_uring_sqe* e = reactor_.sqe();
  if (e == nullptr) return EAGAIN;
  relay::on_connecting(c);
  io_uring_prep_connect(e, c.upstream.fd, to.get(), to.length);
  io_uring_sqe_set_data64(e, UserData::pack(UringOp::kConnect, h));
  c.upstream.ops |= kOpConnect;
  return EINPROGRESS;
}

int UringTransport::adopt_upstream(Connection& c, Handle) noexcept {
  relay::on_connected(c);
  keep_ready(c.upstream);
  return 0;
}

bool UringTransport::abandon_connect(Connection& c, Handle h) noexcept {
  Side& up = c.upstream;
  if (!(up.ops & kOpConnect)) return true;  // nothing in flight: the fd may go now
  if (up.hints & kSuspectOut) {
    // A cancel at an earlier deadline of this attempt found the connect gone, and a whole
    // deadline passed without its completion: it was dropped. Nothing refers to the fd now.
    up.ops &= static_cast<uint8_t>(~kOpConnect);
    up.hints &= static_cast<uint8_t>(~kSuspectOut);
    ++lost_operations_;
    return true;
  }
  if (up.ops & kOpCancel) return false;  // the previous deadline's cancel is still in flight
  // Not a round with a barrier (that is for closing sides, where nothing new is submitted): a
  // cancel of this attempt's connect alone. The connect's completion (-ECANCELED, or the result
  // that won the race) then decides; the cancel's own completion is matched to the attempt, since
  // the connection may have moved on to the next address by then.
  io_uring_sqe* e = reactor_.sqe();
  if (e == nullptr) return false;  // the worker's next deadline tries again
  io_uring_prep_cancel64(e, op_data(c, false, h, kOpConnect), 0);
  io_uring_sqe_set_data64(
      e, UserData::pack(UringOp::kCancelUpstream, h,
                        static_cast<uint16_t>(kTargetConnect | (c.attempt << kAttemptShift))));
  up.ops |= kOpCancel;
  return false;
}

void UringTransport::restart_cancels(Connection& c) noexcept {
  constexpr uint8_t kRound = kCancelDropMark | kSuspectIn | kSuspectOut | kCancelRunning;
  for (Side* side : {&c.client, &c.upstream}) {
    side->ops &= static_cast<uint8_t>(~kOpCancel);
    side->hints &= static_cast<uint8_t>(~kRound);
  }
}

ConnectResult UringTransport::on_event(Connection& c, Handle h, bool client, const Event& ev,
                                       LoopTime now) noexcept {
  Side& side = client ? c.client : c.upstream;
  const UringOp op = UringEventOp::op(ev.op);
  const bool closing = c.state == State::kClosing;
  switch (op) {
    case UringOp::kRecvClient:
    case UringOp::kRecvUpstream: {
      side.ops &= static_cast<uint8_t>(~kOpRecv);
      const Dir d = client ? Dir::kC2U : Dir::kU2C;
      if (ev.flags & IORING_CQE_F_BUFFER) {
        ring_.consumed();
        pool_.adopt(side.in, ev.flags >> IORING_CQE_BUFFER_SHIFT);
      }
      if (closing || ev.result == -ECANCELED) {
        if (side.in.empty()) pool_.release(side.in);
        return {};
      }
      if (ev.result == -ENOBUFS) {
        // The ring ran dry: wait (as a pool waiter) until blocks come back.
        side.paused |= kPauseNoBuffer;
        ++stats_.pool_waits;
        return {};
      }
      relay::on_read(c, d, from_cqe(ev.result), kBufferBytes, pool_, stats_, now);
      // The kernel picks a fresh block per receive: an accelerating connection chains every
      // block that holds bytes, so the next receive need not wait for this one's send.
      if (c.accel_limit != 0 && !client) {
        relay::accelerate(c, pool_, stats_, pool_.available() + ring_.held());
      }
      // The relay clears kReadReady after a short read: the socket was drained. A receive never
      // says EAGAIN (it waits), so the relay cannot end kUrgent here: the receive went up to
      // the urgent mark or past it, and the poll before the next splice asks again (POLLPRI).
      if ((side.flags & kReadReady) && !(side.flags & kUrgent)) {
        side.hints &= static_cast<uint8_t>(~kRecvDrained);
      } else {
        side.hints |= kRecvDrained;
      }
      relay::forget_urgent(side);
      keep_ready(side);
      return {};
    }
    case UringOp::kSendClient:
    case UringOp::kSendUpstream: {
      side.ops &= static_cast<uint8_t>(~kOpSend);
      if (closing || ev.result == -ECANCELED) return {};
      const Dir d = client ? Dir::kU2C : Dir::kC2U;
      if (client && c.accel_limit != 0 && chain_sends_[h.index].in_flight) {
        chain_sends_[h.index].in_flight = false;  // the chain's blocks stayed put until now
      } else {
        // The buffer stays attached while its send is in flight (its gate may open further).
        assert(UringEventOp::buffer(ev.op) == static_cast<uint16_t>(c.source(d).in.id()));
      }
      const uint32_t asked = c.source(d).asked;
      relay::on_write(c, d, from_cqe(ev.result), asked, pool_, stats_, now);
      keep_ready(side);
      return {};
    }
    case UringOp::kConnect:
      c.upstream.ops &= static_cast<uint8_t>(~kOpConnect);
      if (closing) return {};
      // A connect is cancelled only when its deadline passed (abandon_connect).
      if (ev.result == -ECANCELED) return {ConnectOutcome::kFailed, ETIMEDOUT};
      if (ev.result < 0) return {ConnectOutcome::kFailed, -ev.result};
      relay::on_connected(c);
      keep_ready(c.upstream);
      return {ConnectOutcome::kConnected, 0};
    case UringOp::kCancelClient:
    case UringOp::kCancelUpstream:
      on_cancel(c, h, client, UringEventOp::buffer(ev.op), ev.result);
      return {};
    case UringOp::kSpliceClient:
    case UringOp::kSpliceUpstream:
      on_splice(c, client, static_cast<UringSplice>(UringEventOp::buffer(ev.op)), ev.result,
                ev.flags, now);
      return {};
    default:
      return {};
  }
}

void UringTransport::on_splice(Connection& c, bool client, UringSplice kind, int32_t result,
                               uint32_t cqe_flags, LoopTime now) noexcept {
  Side& side = client ? c.client : c.upstream;
  const bool closing = c.state == State::kClosing;
  const bool cancelled = result == -ECANCELED;
  switch (kind) {
    case UringSplice::kIn: {  // `side` is the source
      side.ops &= static_cast<uint8_t>(~kOpSpliceIn);
      if (closing || cancelled) {
        // Bytes that reached the pipe stay counted: the close resets the peer and replaces it.
        if (result > 0) side.piped += static_cast<uint32_t>(result);
        return;
      }
      const SysResult r = from_cqe(result);
      relay::on_splice_in(c, client ? Dir::kC2U : Dir::kU2C, r, pipes_, stats_, now);
      if (r.would_block()) {
        side.hints |= kRecvDrained;
      } else {
        side.hints &= static_cast<uint8_t>(~kRecvDrained);
      }
      keep_ready(side);
      return;
    }
    case UringSplice::kOut: {  // `side` is the sink
      side.ops &= static_cast<uint8_t>(~kOpSpliceOut);
      const Dir d = client ? Dir::kU2C : Dir::kC2U;
      Side& src = c.source(d);
      if (closing || cancelled) {
        if (result > 0) src.piped -= std::min(src.piped, static_cast<uint32_t>(result));
        return;
      }
      // Nothing fills the pipe while it is being drained: what it holds is what was asked.
      const uint32_t asked = src.piped;
      relay::on_splice_out(c, d, from_cqe(result), asked, pipes_, stats_, now);
      // Unlike a send, a splice does not wait for room: after a short one, poll first.
      if (result == -EAGAIN || (result >= 0 && static_cast<uint32_t>(result) < asked)) {
        side.hints |= kSendFull;
      } else {
        side.hints &= static_cast<uint8_t>(~kSendFull);
      }
      keep_ready(side);
      return;
    }
    case UringSplice::kPollIn:
      side.ops &= static_cast<uint8_t>(~kOpPollIn);
      if (closing || cancelled) return;
      // Readable, or an error or hang-up that the next splice reports. Urgent data: splice(2)
      // stops at its mark, so the next bytes are read through a buffer (kUrgent).
      side.hints &= static_cast<uint8_t>(~kRecvDrained);
      if (result > 0 && (result & POLLPRI)) relay::on_ready(c, side, kUrgentData, stats_);
      return;
    case UringSplice::kWatch:
      // Multishot: armed until cancelled at close, or until the kernel ends it (no F_MORE).
      if (!(cqe_flags & IORING_CQE_F_MORE)) {
        side.ops &= static_cast<uint8_t>(~kOpPollIn);
        side.hints &= static_cast<uint8_t>(~kWatching);
      }
      if (closing || cancelled || result <= 0) return;
      // POLLERR: a reset. POLLHUP means both directions of the socket are shut, which with our
      // write side still open means it went away too. POLLRDHUP (the peer's FIN, reported at
      // once since io_uring always polls for it) is why this poll is multishot.
      if ((result & POLLERR) || ((result & POLLHUP) && !(side.flags & kWriteShut))) {
        relay::on_ready(c, side, kError, stats_);
      }
      return;
    case UringSplice::kPollOut:
      side.ops &= static_cast<uint8_t>(~kOpPollOut);
      if (!closing && !cancelled) side.hints &= static_cast<uint8_t>(~kSendFull);
      return;
  }
}

void UringTransport::submit_recv(io_uring_sqe* e, Side& src, Handle h, bool client) noexcept {
  io_uring_prep_recv(e, src.fd, nullptr, kBufferBytes, 0);
  // After a short read the socket is empty: wait for data first instead of letting the
  // kernel try a receive that can only return EAGAIN.
  if (src.hints & kRecvDrained) e->ioprio |= IORING_RECVSEND_POLL_FIRST;
  e->flags |= IOSQE_BUFFER_SELECT;
  e->buf_group = BufferRing::kGroup;
  io_uring_sqe_set_data64(
      e, UserData::pack(client ? UringOp::kRecvClient : UringOp::kRecvUpstream, h));
  src.ops |= kOpRecv;
}

void UringTransport::submit_splice(io_uring_sqe* e, int fd_in, int fd_out, uint32_t bytes, Handle h,
                                   bool client, UringSplice kind) noexcept {
  // The kernel runs a splice from an io-wq worker, without polling first: on a non-blocking
  // socket with nothing to read (or no room) it completes with -EAGAIN, never waits.
  io_uring_prep_splice(e, fd_in, -1, fd_out, -1, bytes, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
  io_uring_sqe_set_data64(
      e, UserData::pack(client ? UringOp::kSpliceClient : UringOp::kSpliceUpstream, h,
                        static_cast<uint16_t>(kind)));
}

void UringTransport::submit_poll(io_uring_sqe* e, int fd, unsigned events, Handle h, bool client,
                                 UringSplice kind) noexcept {
  io_uring_prep_poll_add(e, fd, events);
  io_uring_sqe_set_data64(
      e, UserData::pack(client ? UringOp::kSpliceClient : UringOp::kSpliceUpstream, h,
                        static_cast<uint16_t>(kind)));
}

void UringTransport::submit_chain_send(io_uring_sqe* e, Connection& c, Handle h) noexcept {
  ChainSend& s = chain_sends_[h.index];
  uint32_t asked = 0;
  uint32_t n = pool_.chain_iov(c.accel, s.iov, kChainIovecs, asked);
  // upstream.in stays attached (no receive) while a send covers it: only a receive's completion
  // moves a block into the chain.
  if (n == c.accel.blocks && !c.upstream.in.empty()) {
    s.iov[n].iov_base = const_cast<std::byte*>(c.upstream.in.read_ptr());
    s.iov[n].iov_len = c.upstream.in.readable();
    asked += c.upstream.in.readable();
    ++n;
  }
  s.msg = msghdr{};
  s.msg.msg_iov = s.iov;
  s.msg.msg_iovlen = n;
  s.in_flight = true;
  c.upstream.asked = asked;
  io_uring_prep_sendmsg(e, c.client.fd, &s.msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(e, UserData::pack(UringOp::kSendClient, h));
  c.client.ops |= kOpSend;
}

void UringTransport::pump(Connection& c, Handle h, LoopTime now) noexcept {
  c.more = false;
  if (c.state == State::kClosing) return;
  // A failed client's chain goes back once no send to it (reading the blocks) is in flight.
  if (c.accel.blocks != 0 && !(c.client.ops & kOutOps)) {
    relay::discard_undeliverable(c, pool_, stats_);
    if (c.state == State::kClosing) return;
  }
  ring_.refill(pool_);
  for (const Dir d : {Dir::kC2U, Dir::kU2C}) {
    Side& src = c.source(d);
    Side& dst = c.sink(d);
    const bool to_client = &dst == &c.client;
    // No submission entry (the kernel refuses the queue): nothing is submitted, the op bit stays
    // clear, and the Worker pumps the connection again next iteration (c.more).
    io_uring_sqe* e = nullptr;
    switch (relay::next_step(c, d, splice_)) {
      case relay::Step::kNone:
        break;
      case relay::Step::kWrite:
        // An accelerating direction receives its next block while the chain is being sent.
        if (to_client && c.accel_limit != 0 && !(src.ops & kInOps) &&
            relay::reads_beside_write(c, d)) {
          if ((e = reactor_.sqe()) == nullptr) return retry_later(c);
          submit_recv(e, src, h, false);
        }
        if (dst.ops & kOutOps) break;
        if ((e = reactor_.sqe()) == nullptr) return retry_later(c);
        if (to_client && c.accel.blocks != 0) {
          submit_chain_send(e, c, h);
          break;
        }
        src.asked = relay::writable(src);
        io_uring_prep_send(e, dst.fd, src.in.read_ptr(), src.asked, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(
            e, UserData::pack(to_client ? UringOp::kSendClient : UringOp::kSendUpstream, h,
                              static_cast<uint16_t>(src.in.id())));
        dst.ops |= kOpSend;
        break;
      case relay::Step::kRead:
        // The kernel picks the block, so a receive needs the side's buffer slot free: bytes
        // still held are on their way out and their send completion frees it.
        if ((src.ops & kInOps) || src.in.attached()) break;
        if ((e = reactor_.sqe()) == nullptr) return retry_later(c);
        submit_recv(e, src, h, !to_client);
        break;
      case relay::Step::kSpliceIn:
        if ((src.ops & kInOps) || src.in.attached()) break;
        if ((e = reactor_.sqe()) == nullptr) return retry_later(c);
        if (src.hints & kRecvDrained) {
          submit_poll(e, src.fd, POLLIN | POLLRDHUP | POLLPRI, h, !to_client, UringSplice::kPollIn);
          src.ops |= kOpPollIn;
          break;
        }
        if (!relay::prepare_splice(c, d, pipes_, stats_)) {
          submit_recv(e, src, h, !to_client);  // no pipe free: this read goes through a buffer
          break;
        }
        submit_splice(e, src.fd, pipes_.at(src.pipe).write_fd, relay::splice_ask(src), h,
                      !to_client, UringSplice::kIn);
        src.ops |= kOpSpliceIn;
        break;
      case relay::Step::kSpliceOut:
        if (dst.ops & kOutOps) break;
        if ((e = reactor_.sqe()) == nullptr) return retry_later(c);
        if (dst.hints & kSendFull) {
          submit_poll(e, dst.fd, POLLOUT, h, to_client, UringSplice::kPollOut);
          dst.ops |= kOpPollOut;
          break;
        }
        submit_splice(e, pipes_.at(src.pipe).read_fd, dst.fd, src.piped, h, to_client,
                      UringSplice::kOut);
        dst.ops |= kOpSpliceOut;
        break;
      case relay::Step::kShutdown:
        // SHUT_WR only after every buffered byte was sent: the peer reads them, then EOF.
        relay::on_shutdown(
            c, d, relay::shutdown_is_last(c, d) ? SysResult{} : sys::shutdown_write(dst.fd), stats_,
            now);
        break;
    }
    if (c.state == State::kClosing) return;
  }
  // A side whose reading is over has no receive in flight to report a reset (epoll always
  // reports EPOLLERR): watch it with a poll for nothing but the events io_uring always
  // reports. It is multishot because one of those, POLLRDHUP, is already set after the peer's
  // FIN: the first completion comes at once, the next only when the socket's state changes.
  // Not once its write side is shut too: then both directions are over.
  for (Side* side : {&c.client, &c.upstream}) {
    // Nor on a pooled upstream being detached (decision 0013): the detach cancels what is in
    // flight and waits for nothing to be left.
    if ((side->flags & (kEof | kFailed | kWriteShut)) != kEof || (side->ops & kInOps) ||
        c.state < State::kRelaying || (side->paused & kPauseDetach)) {
      continue;
    }
    io_uring_sqe* e = reactor_.sqe();
    if (e == nullptr) return retry_later(c);
    io_uring_prep_poll_multishot(e, side->fd, 0);
    io_uring_sqe_set_data64(
        e, UserData::pack(side == &c.client ? UringOp::kSpliceClient : UringOp::kSpliceUpstream, h,
                          static_cast<uint16_t>(UringSplice::kWatch)));
    side->ops |= kOpPollIn;
    side->hints |= kWatching;
  }
}

bool UringTransport::settle(Connection& c, Handle) noexcept {
  // Nothing to register, but the same interest bookkeeping as epoll keeps the backpressure
  // counter's meaning: reading stopped because the buffer was still full at the iteration's end.
  for (Side* side : {&c.client, &c.upstream}) {
    const uint32_t want = relay::wanted_interest(c, *side);
    if ((side->events & ~want & kWantRead) && (side->paused & kPauseBackpressure)) {
      ++stats_.backpressure_pauses;
    }
    side->events = want;
  }
  ring_.refill(pool_);
  return true;
}

void UringTransport::close_socket(int fd) noexcept {
  io_uring_sqe* e = reactor_.sqe();
  if (e == nullptr) {
    sys::close(fd);
    return;
  }
  io_uring_prep_close(e, fd);
  io_uring_sqe_set_data64(e, UserData::pack(UringOp::kUnreported, Handle{}));
  e->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

void UringTransport::set_tcp_option(int fd, int option, bool on) noexcept {
  // Room for the connect too: a connect the kernel refuses an entry closes its socket at once,
  // and an option queued for that descriptor number could reach the next socket given it.
  io_uring_sqe* e = socket_commands_ && reactor_.reserve(2) ? reactor_.sqe() : nullptr;
  if (e == nullptr) {
    sys::set_tcp_option(fd, option, on);
    return;
  }
  prep_tcp_option(e, fd, option, on ? &option_on : &option_off);
  io_uring_sqe_set_data64(e, UserData::pack(UringOp::kUnreported, Handle{}));
  e->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

bool UringTransport::quiesce(Connection& c, Handle h) noexcept {
  const auto mark = static_cast<uint8_t>((reactor_.dropped_completions() & 3) << 2);
  const bool client_idle = quiesce_side(c, true, h, mark);
  return quiesce_side(c, false, h, mark) && client_idle;
}

bool UringTransport::release_upstream(Connection& c, Handle h) noexcept {
  return quiesce_side(c, false, h, static_cast<uint8_t>((reactor_.dropped_completions() & 3) << 2));
}

bool UringTransport::quiesce_side(Connection& c, bool client, Handle h, uint8_t mark) noexcept {
  Side& side = client ? c.client : c.upstream;
  // The kernel dropped completions since this side's round began: one of the round's own may
  // be among them, and then nothing would ever end it. Another round is harmless.
  if ((side.ops & kOpCancel) && (side.hints & kCancelDropMark) != mark) {
    side.ops &= static_cast<uint8_t>(~kOpCancel);
  }
  if (side.ops == 0) return true;
  if (side.ops & kOpCancel) return false;
  if (!cancel_round(c, side, client, h, mark)) c.more = true;  // the Worker comes back
  return false;
}

uint64_t UringTransport::op_data(const Connection& c, bool client, Handle h,
                                 uint8_t op) const noexcept {
  const UringOp splice = client ? UringOp::kSpliceClient : UringOp::kSpliceUpstream;
  switch (op) {
    case kOpRecv:
      return UserData::pack(client ? UringOp::kRecvClient : UringOp::kRecvUpstream, h);
    case kOpSend:  // its user_data names the block it sends (the other side's), or none for a
                   // send of an acceleration chain
      if (client && c.accel_limit != 0 && chain_sends_[h.index].in_flight) {
        return UserData::pack(UringOp::kSendClient, h);
      }
      return UserData::pack(client ? UringOp::kSendClient : UringOp::kSendUpstream, h,
                            static_cast<uint16_t>((client ? c.upstream : c.client).in.id()));
    case kOpConnect:
      return UserData::pack(UringOp::kConnect, h);
    case kOpSpliceIn:
      return UserData::pack(splice, h, static_cast<uint16_t>(UringSplice::kIn));
    case kOpSpliceOut:
      return UserData::pack(splice, h, static_cast<uint16_t>(UringSplice::kOut));
    case kOpPollIn:
      return UserData::pack(
          splice, h,
          static_cast<uint16_t>(((client ? c.client : c.upstream).hints & kWatching)
                                    ? UringSplice::kWatch
                                    : UringSplice::kPollIn));
    case kOpPollOut:
      return UserData::pack(splice, h, static_cast<uint16_t>(UringSplice::kPollOut));
    default:
      return 0;
  }
}

bool UringTransport::cancel_round(Connection& c, Side& side, bool client, Handle h,
                                  uint8_t mark) noexcept {
  // One cancel by user_data (not IORING_ASYNC_CANCEL_ALL, which does not count an operation
  // running on an io-wq thread) per operation in flight: at most one taking bytes in and one
  // sending or connecting. Both entries or none.
  const auto in = static_cast<uint8_t>(side.ops & kInOps);
  const auto out = static_cast<uint8_t>(side.ops & kOutOrConnect);
  assert(std::popcount(unsigned{in}) <= 1 && std::popcount(unsigned{out}) <= 1);
  if (!reactor_.reserve((in != 0 ? 1u : 0u) + (out != 0 ? 1u : 0u))) return false;
  const UringOp cancel = client ? UringOp::kCancelClient : UringOp::kCancelUpstream;
  if (in != 0) {
    io_uring_sqe* e = reactor_.sqe();
    io_uring_prep_cancel64(e, op_data(c, client, h, in), 0);
    io_uring_sqe_set_data64(
        e,
        UserData::pack(cancel, h, static_cast<uint16_t>(kTargetIn | (out != 0 ? 0 : kRoundEnd))));
  }
  if (out != 0) {
    io_uring_sqe* e = reactor_.sqe();
    io_uring_prep_cancel64(e, op_data(c, client, h, out), 0);
    io_uring_sqe_set_data64(e, UserData::pack(cancel, h, kTargetOut | kRoundEnd));
  }
  side.ops |= kOpCancel;
  constexpr uint8_t kRound = kCancelDropMark | kSuspectIn | kSuspectOut | kCancelRunning;
  side.hints = static_cast<uint8_t>((side.hints & ~kRound) | mark);
  return true;
}

void UringTransport::on_cancel(Connection& c, Handle h, bool client, uint16_t target,
                               int32_t result) noexcept {
  Side& side = client ? c.client : c.upstream;
  if ((target & kTargetMask) == kTargetConnect) {
    side.ops &= static_cast<uint8_t>(~kOpCancel);
    // Found nothing, for the attempt still connecting: its completion was posted before this one
    // (and seen), or dropped; abandon_connect decides at the next deadline.
    if (result == -ENOENT && (target >> kAttemptShift) == c.attempt && (side.ops & kOpConnect)) {
      side.hints |= kSuspectOut;
    }
    return;
  }
  if ((target & kTargetMask) == kTargetBarrier) {
    // The barrier's completion ran as task work queued after every completion still waiting as
    // task work when the round's cancels ran (local task work runs in order). So an operation a
    // cancel did not find, still recorded now, will never complete: its completion was dropped.
    const auto give_up = [&](uint8_t suspect, uint8_t ops) {
      if (!(side.hints & suspect) || !(side.ops & ops)) return;
      ++lost_operations_;
      side.ops &= static_cast<uint8_t>(~ops);
    };
    give_up(kSuspectIn, kInOps);
    give_up(kSuspectOut, kOutOrConnect);
    side.hints &= static_cast<uint8_t>(~(kSuspectIn | kSuspectOut | kCancelRunning));
    side.ops &= static_cast<uint8_t>(~kOpCancel);
    return;
  }
  // 0: found and cancelled, its completion follows. -EALREADY: running on an io-wq thread, which
  // the cancel interrupted; its completion follows. -ENOENT: not in the kernel's hands any more:
  // its completion was posted already (and seen, completions come in order), or it finished on an
  // io-wq thread and its completion waits as task work (posted after this one), or it was
  // dropped. The barrier tells the last two apart.
  const bool in = (target & kTargetMask) == kTargetIn;
  if (result == -ENOENT) {
    if (side.ops & (in ? kInOps : kOutOrConnect)) side.hints |= in ? kSuspectIn : kSuspectOut;
  } else if (result != 0) {
    side.hints |= kCancelRunning;
  }
  if (!(target & kRoundEnd)) return;
  if (!(side.hints & (kSuspectIn | kSuspectOut | kCancelRunning))) {
    side.ops &=
        static_cast<uint8_t>(~kOpCancel);  // every operation found: their completions end it
    return;
  }
  io_uring_sqe* e = reactor_.sqe();
  if (e == nullptr) {
    side.ops &= static_cast<uint8_t>(~kOpCancel);  // quiesce() starts another round next iteration
    c.more = true;
    return;
  }
  io_uring_prep_timeout(e, (side.hints & kCancelRunning) ? &barrier_later : &barrier_now, 0, 0);
  io_uring_sqe_set_data64(
      e, UserData::pack(client ? UringOp::kCancelClient : UringOp::kCancelUpstream, h,
                        kTargetBarrier));
}

void UringTransport::on_stale(const Event& ev) noexcept {
  if (!(ev.flags & IORING_CQE_F_BUFFER)) return;
  ring_.consumed();
  Buffer block;
  pool_.adopt(block, ev.flags >> IORING_CQE_BUFFER_SHIFT);
  pool_.release(block);
}

}  // namespace edgeproxy
