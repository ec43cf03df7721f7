// Completion-driven byte moving; see uring_transport.h.
#include "uring/uring_transport.h"

#include <sys/socket.h>

#include <algorithm>
#include <cassert>

#include "edgeproxy/relay.h"

namespace edgeproxy {
namespace {

SysResult from_cqe(int32_t res) noexcept {
  return res < 0 ? SysResult{-1, -res} : SysResult{res, 0};
}

// io_uring waits for readiness itself: a side is always worth a receive (until EOF) and a send.
void keep_ready(Side& s) noexcept {
  if (!(s.flags & (kEof | kFailed))) s.flags |= kReadReady;
  if (!(s.flags & (kWriteShut | kFailed))) s.flags |= kWriteReady;
}

}  // namespace

Result<Ok> UringTransport::init() noexcept {
  // A power of two no larger than the pool, so a small pool is not all lent out at once.
  uint32_t entries = 1;
  while (entries * 2 <= std::min(pool_.capacity(), kRingEntries)) entries *= 2;
  if (auto r = ring_.init(reactor_.ring(), entries); !r.ok()) return r;
  ring_.refill(pool_);
  return Ok{};
}

int UringTransport::connect(Connection& c, Handle h, const SocketAddress& to) noexcept {
  connect_to_ = to;
  keep_ready(c.client);
  c.state = State::kConnecting;
  io_uring_sqe* e = reactor_.sqe();
  io_uring_prep_connect(e, c.upstream.fd, connect_to_.get(), connect_to_.length);
  io_uring_sqe_set_data64(e, UserData::pack(UringOp::kConnect, h));
  c.upstream.ops |= kOpConnect;
  return EINPROGRESS;
}

ConnectOutcome UringTransport::on_event(Connection& c, Handle, bool client, const Event& ev,
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
        return ConnectOutcome::kNone;
      }
      if (ev.result == -ENOBUFS) {
        // The ring ran dry: wait (as a pool waiter) until blocks come back.
        side.paused |= kPauseNoBuffer;
        ++stats_.pool_waits;
        return ConnectOutcome::kNone;
      }
      relay::on_read(c, d, from_cqe(ev.result), kBufferBytes, pool_, stats_, now);
      // The relay clears kReadReady after a short read: the socket was drained.
      if (side.flags & kReadReady) {
        side.hints &= static_cast<uint8_t>(~kRecvDrained);
      } else {
        side.hints |= kRecvDrained;
      }
      keep_ready(side);
      return ConnectOutcome::kNone;
    }
    case UringOp::kSendClient:
    case UringOp::kSendUpstream: {
      side.ops &= static_cast<uint8_t>(~kOpSend);
      if (closing || ev.result == -ECANCELED) return ConnectOutcome::kNone;
      const Dir d = client ? Dir::kU2C : Dir::kC2U;
      // The buffer does not change while its send is in flight: what it holds is what was asked.
      assert(UringEventOp::buffer(ev.op) == static_cast<uint16_t>(c.source(d).in.id()));
      const uint32_t asked = c.source(d).in.readable();
      relay::on_write(c, d, from_cqe(ev.result), asked, pool_, stats_, now);
      keep_ready(side);
      return ConnectOutcome::kNone;
    }
    case UringOp::kConnect:
      c.upstream.ops &= static_cast<uint8_t>(~kOpConnect);
      if (closing) return ConnectOutcome::kNone;
      if (ev.result != 0) return ConnectOutcome::kFailed;
      relay::on_connected(c);
      keep_ready(c.upstream);
      return ConnectOutcome::kConnected;
    case UringOp::kCancelClient:
    case UringOp::kCancelUpstream:
      side.ops &= static_cast<uint8_t>(~kOpCancel);
      return ConnectOutcome::kNone;
    default:
      return ConnectOutcome::kNone;
  }
}

void UringTransport::pump(Connection& c, Handle h, LoopTime now) noexcept {
  c.more = false;
  if (c.state == State::kClosing) return;
  ring_.refill(pool_);
  for (const Dir d : {Dir::kC2U, Dir::kU2C}) {
    Side& src = c.source(d);
    Side& dst = c.sink(d);
    const bool to_client = &dst == &c.client;
    switch (relay::next_step(c, d)) {
      case relay::Step::kNone:
        break;
      case relay::Step::kWrite: {
        if (dst.ops & kOpSend) break;
        io_uring_sqe* e = reactor_.sqe();
        io_uring_prep_send(e, dst.fd, src.in.read_ptr(), src.in.readable(), MSG_NOSIGNAL);
        io_uring_sqe_set_data64(
            e, UserData::pack(to_client ? UringOp::kSendClient : UringOp::kSendUpstream, h,
                              static_cast<uint16_t>(src.in.id())));
        dst.ops |= kOpSend;
        break;
      }
      case relay::Step::kRead: {
        // The kernel picks the block, so a receive needs the side's buffer slot free: bytes
        // still held are on their way out and their send completion frees it.
        if ((src.ops & kOpRecv) || src.in.attached()) break;
        io_uring_sqe* e = reactor_.sqe();
        io_uring_prep_recv(e, src.fd, nullptr, kBufferBytes, 0);
        // After a short read the socket is empty: wait for data first instead of letting the
        // kernel try a receive that can only return EAGAIN.
        if (src.hints & kRecvDrained) e->ioprio |= IORING_RECVSEND_POLL_FIRST;
        e->flags |= IOSQE_BUFFER_SELECT;
        e->buf_group = BufferRing::kGroup;
        io_uring_sqe_set_data64(
            e, UserData::pack(to_client ? UringOp::kRecvUpstream : UringOp::kRecvClient, h));
        src.ops |= kOpRecv;
        break;
      }
      case relay::Step::kShutdown:
        // SHUT_WR only after every buffered byte was sent: the peer reads them, then EOF.
        sys::shutdown_write(dst.fd);
        relay::on_shutdown(c, d, stats_, now);
        break;
    }
    if (c.state == State::kClosing) return;
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

bool UringTransport::quiesce(Connection& c, Handle h) noexcept {
  constexpr uint8_t kInFlight = kOpRecv | kOpSend | kOpConnect | kOpCancel;
  if (((c.client.ops | c.upstream.ops) & kInFlight) == 0) return true;
  for (Side* side : {&c.client, &c.upstream}) {
    if (!(side->ops & (kOpRecv | kOpSend | kOpConnect)) || (side->ops & kOpCancel)) continue;
    io_uring_sqe* e = reactor_.sqe();
    io_uring_prep_cancel_fd(e, side->fd, IORING_ASYNC_CANCEL_ALL);
    const bool client = side == &c.client;
    io_uring_sqe_set_data64(
        e, UserData::pack(client ? UringOp::kCancelClient : UringOp::kCancelUpstream, h));
    side->ops |= kOpCancel;
  }
  return false;
}

}  // namespace edgeproxy
