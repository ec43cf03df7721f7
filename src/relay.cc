// The pure connection state machine: see relay.h for the contract, docs/state-machine.md for
// the transitions.
#include "edgeproxy/relay.h"

#include "edgeproxy/check.h"
#include "edgeproxy/event.h"

namespace edgeproxy::relay {
namespace {

bool sink_open(const Connection& c, Dir d) noexcept {
  // The upstream cannot be written before its connect completes; a failed side takes nothing.
  return !(d == Dir::kC2U && c.state < State::kRelaying) && !(c.sink(d).flags & kFailed);
}

// Whether the source's end, once everything held for it is written, is passed on as a FIN. Only
// an orderly end is; a failed source's end is a reset (advance()). Bytes the proxy holds for the
// source (kPauseReplay: its first bytes, being replayed) come before its end. A pooled
// connection's ends are the worker's (decision 0013).
bool end_passes(const Connection& c, Dir d) noexcept {
  const Side& src = c.source(d);
  return (src.flags & kEof) && !(src.flags & kFailed) && sink_open(c, d) &&
         !(c.sink(d).flags & kWriteShut) && !(src.paused & kPauseReplay) && !c.pooled;
}

bool is_client(const Connection& c, const Side& s) noexcept {
  return &s == &c.client;
}

void count_read(Stats& stats, Dir d) noexcept {
  if (d == Dir::kC2U) {
    ++stats.reads_client;
  } else {
    ++stats.reads_upstream;
  }
}

void count_write(Connection& c, Stats& stats, Dir d, uint32_t n) noexcept {
  if (d == Dir::kC2U) {
    stats.bytes_c2u += n;
    c.bytes_c2u += n;
    ++stats.writes_upstream;
  } else {
    stats.bytes_u2c += n;
    c.bytes_u2c += n;
    ++stats.writes_client;
  }
}

void clear(Side& side, uint8_t flags) noexcept {
  side.flags &= static_cast<uint8_t>(~flags);
}

// Every byte read from the direction's source was handed to its sink (buffer, pipe and, for u2c,
// the acceleration chain are empty).
bool nothing_held(const Connection& c, Dir d) noexcept {
  const Side& src = c.source(d);
  return src.in.empty() && src.piped == 0 && (d == Dir::kC2U || c.accel.empty());
}

void set_bulk(Side& src, bool bulk) noexcept {
  src.flags = static_cast<uint8_t>(bulk ? src.flags | kBulk : src.flags & ~kBulk);
}

// --splice auto splices a direction only while it is bulk: a chatty connection (small requests
// and replies) never fills a buffer, and a splice costs a call more than a read per message
// (the EAGAIN that tells a drained socket from a full pipe).
bool splice_wanted(const Side& src, SplicePolicy splice) noexcept {
  switch (splice.mode) {
    case SpliceMode::kNever:
      return false;
    case SpliceMode::kAuto:
      return src.buffered >= splice.threshold_bytes && (src.flags & kBulk);
    case SpliceMode::kAlways:
      return true;
  }
  return false;
}

// After an error on a side, the connection ends once everything that side sent before it was
// handed to the other side: kLingering, where the other side is reset once it has acknowledged
// those bytes. When both sides failed, or one failed before relaying began, nothing is left to
// deliver: kClosing.
void advance(Connection& c) noexcept {
  if (!((c.client.flags | c.upstream.flags) & kFailed) || c.state == State::kClosing) return;
  // A released upstream (decision 0011) ended both ways in order: nothing is owed to it, and a
  // failed client leaves nothing to deliver.
  // A pooled upstream's failure is the worker's to handle (decision 0013); a failed client of a
  // pooled connection ends it at once: its request, if any, is incomplete.
  if (c.pooled && !(c.client.flags & kFailed)) return;
  if (c.state < State::kRelaying || (c.client.flags & c.upstream.flags & kFailed) ||
      c.upstream_released || c.pooled) {
    c.state = State::kClosing;  // also when the side a lingering connection waits on fails
    return;
  }
  if (c.state == State::kLingering) return;
  const bool client_failed = (c.client.flags & kFailed) != 0;
  const Side& failed = client_failed ? c.client : c.upstream;
  if ((failed.flags & kEof) && nothing_held(c, client_failed ? Dir::kC2U : Dir::kU2C)) {
    c.state = State::kLingering;
  }
}

// The end of a read or splice that brought no bytes: EOF, EAGAIN or an error. An error ends the
// side's bytes as EOF does, but abnormally (kFailed).
void on_no_bytes(Connection& c, Dir d, SysResult r, Stats& stats, LoopTime now) noexcept {
  Side& src = c.source(d);
  // EAGAIN: drained, and past any urgent mark (read() steps over it and only then says EAGAIN).
  clear(src, kReadReady | kUrgent);
  if (r.would_block()) return;
  src.flags |= kEof;
  if (r.ok()) {  // read() == 0: EOF, abnormal on a side that reported an error before
    count_read(stats, d);
    set_end(c, d == Dir::kC2U ? EndReason::kClientFin : EndReason::kServerFin);
    if (d == Dir::kU2C) {
      c.u2c_eof_ns = now.ns;
      // Not when the bytes are held only because the end was read before the last write
      // (reads_to_end_first): that write, of all of them, to a client that can take them.
      const bool read_first = (c.client.flags & kWriteReady) && last_write(c, d, writable(src));
      if (!(src.flags & kFailed) && !nothing_held(c, d) && !read_first) {
        ++stats.server_finished_first;
      }
    }
    end_if_done(c);
  } else {
    fail(c, src, stats);
  }
}

void release_pipe(Side& src, PipePool& pipes) noexcept {
  if (src.pipe == kNoPipe) return;
  pipes.release(src.pipe);
  src.pipe = kNoPipe;
}

}  // namespace

Step next_step(const Connection& c, Dir d, SplicePolicy splice) noexcept {
  if (c.state >= State::kLingering || c.state == State::kFree) return Step::kNone;
  const Side& src = c.source(d);
  const Side& dst = c.sink(d);
  const bool open = sink_open(c, d);
  const bool sink_ready = open && (dst.flags & kWriteReady) && !(dst.flags & kWriteShut);
  if ((writable(src) > 0 || (d == Dir::kU2C && c.accel.bytes > 0)) && sink_ready) {
    return Step::kWrite;
  }
  if (src.piped > 0 && sink_ready) return Step::kSpliceOut;
  // Bytes read toward a failed sink could never be delivered.
  if ((src.flags & kReadReady) && !(src.flags & kEof) && src.paused == 0 && src.piped == 0 &&
      !(dst.flags & kFailed)) {
    // An accelerating direction holds its bytes in blocks, never in a pipe (decision 0011).
    // Under a finite gate only the bytes the worker approved unseen may be spliced (decision
    // 0015).
    if (src.in.empty() && c.state >= State::kRelaying && !(src.flags & kUrgent) &&
        (src.gate == kOpenGate || src.splice_left > 0) && !(c.limits & rate_limit_flag(d)) &&
        splice_wanted(src, splice) && !(d == Dir::kU2C && c.accel_limit != 0)) {
      return Step::kSpliceIn;
    }
    if (!src.in.attached() || src.in.writable() > 0) return Step::kRead;
  }
  if (end_passes(c, d) && nothing_held(c, d)) return Step::kShutdown;
  return Step::kNone;
}

bool reads_to_end_first(const Connection& c, Dir d) noexcept {
  const Side& src = c.source(d);
  return (src.flags & (kPeerShut | kReadReady | kEof)) == (kPeerShut | kReadReady) &&
         src.paused == 0 && src.piped == 0 && src.in.attached() && src.in.writable() > 0 &&
         !(c.limits & one_read_flags(d)) && !(c.sink(d).flags & kFailed) && !c.pooled;
}

bool read_stopped_at_fin(const Side& src, SysResult r, uint32_t asked) noexcept {
  return r.ok() && r.value > 0 && static_cast<unsigned long>(r.value) < asked &&
         (src.flags & (kPeerShut | kUrgent | kFailed | kEof)) == kPeerShut;
}

bool last_write(const Connection& c, Dir d, uint32_t asked) noexcept {
  const Side& src = c.source(d);
  return end_passes(c, d) && asked == src.in.readable() && src.piped == 0 &&
         (d == Dir::kC2U || c.accel.empty());
}

bool reads_beside_write(const Connection& c, Dir d) noexcept {
  const Side& src = c.source(d);
  return d == Dir::kU2C && c.accel_limit != 0 && c.state >= State::kRelaying &&
         c.state < State::kLingering && (src.flags & kReadReady) && !(src.flags & kEof) &&
         src.paused == 0 && src.piped == 0 && !src.in.attached() && !(c.client.flags & kFailed);
}

bool prepare_read(Connection& c, Dir d, BufferPool& pool, Stats& stats) noexcept {
  Side& src = c.source(d);
  if (src.in.attached()) return true;
  if (pool.acquire(src.in)) return true;
  src.paused |= kPauseNoBuffer;
  ++stats.pool_waits;
  return false;
}

void on_read(Connection& c, Dir d, SysResult r, uint32_t asked, BufferPool& pool, Stats& stats,
             LoopTime now) noexcept {
  Side& src = c.source(d);
  if (r.ok() && r.value > 0) {
    const auto n = static_cast<uint32_t>(r.value);
    src.in.commit(n);
    src.buffered = src.buffered > UINT32_MAX - n ? UINT32_MAX : src.buffered + n;
    set_bulk(src, src.in.full());
    count_read(stats, d);
    c.last_active_ms = now.ms;
    if (d == Dir::kU2C && c.u2c_first_ns == 0) c.u2c_first_ns = now.ns;
    // ET rule: a short read drained the socket; the next arrival raises a new edge. A FIN that
    // arrived with the data raises no further edge, so after RDHUP keep reading to the end (0, or
    // read_stopped_at_fin); a read also stops short just before an urgent mark, so with kUrgent
    // keep reading until EAGAIN.
    if (n < asked && !(src.flags & (kPeerShut | kUrgent))) clear(src, kReadReady);
    if (src.in.full()) src.paused |= kPauseBackpressure;
    return;
  }
  on_no_bytes(c, d, r, stats, now);
  if (src.in.attached() && src.in.empty()) pool.release(src.in);
  advance(c);
}

void on_write(Connection& c, Dir d, SysResult r, uint32_t asked, BufferPool& pool, Stats& stats,
              LoopTime now) noexcept {
  Side& src = c.source(d);
  Side& dst = c.sink(d);
  if (r.ok() && r.value > 0) {
    const auto n = static_cast<uint32_t>(r.value);
    c.last_active_ms = now.ms;
    count_write(c, stats, d, n);
    uint32_t from_in = n;
    if (d == Dir::kU2C && c.accel.bytes > 0) {  // the chain's bytes went first (writev order)
      const uint32_t k = n < c.accel.bytes ? n : c.accel.bytes;
      stats.accel_blocks_held -= pool.chain_consume(c.accel, k);
      from_in -= k;
    }
    src.in.consume(from_in);
    if (src.gate != kOpenGate) src.gate -= from_in;
    // A short write means the send buffer is full; EPOLLOUT will say when it has room.
    if (n < asked) dst.flags &= static_cast<uint8_t>(~kWriteReady);
    if (src.in.empty()) {
      pool.release(src.in);
      src.paused &= static_cast<uint8_t>(~kPauseBackpressure);
      advance(c);
    }
    return;
  }
  if (r.would_block() || (r.ok() && r.value == 0)) {
    dst.flags &= static_cast<uint8_t>(~kWriteReady);
    return;
  }
  fail(c, dst, stats);
}

uint32_t accel_reserve(uint32_t capacity, uint64_t open) noexcept {
  const uint64_t per_connection = 2 * open;
  const uint64_t eighth = capacity / 8;
  const uint64_t r = per_connection > eighth ? per_connection : eighth;
  return r > capacity ? capacity : static_cast<uint32_t>(r);
}

bool accelerate(Connection& c, BufferPool& pool, Stats& stats, uint32_t free_blocks) noexcept {
  Side& src = c.upstream;
  // Held now: the chain and `in`; after the move, a fresh block for `in` makes one more.
  if (c.accel_limit == 0 || src.in.empty() || src.gate != kOpenGate ||
      c.accel.blocks + 2 > c.accel_limit) {
    return false;
  }
  if (free_blocks <= accel_reserve(pool.capacity(), stats.active)) {
    ++stats.accel_giveups;  // ordinary backpressure with the one block this connection has
    return false;
  }
  pool.chain_push(c.accel, src.in);
  if (++stats.accel_blocks_held > stats.accel_blocks_peak) {
    stats.accel_blocks_peak = stats.accel_blocks_held;
  }
  src.paused &= static_cast<uint8_t>(~kPauseBackpressure);
  return true;
}

void discard_undeliverable(Connection& c, BufferPool& pool, Stats& stats) noexcept {
  if (!(c.client.flags & kFailed) || c.accel.empty()) return;
  stats.accel_blocks_held -= pool.chain_release(c.accel);
  advance(c);
}

void release_buffers(Connection& c, BufferPool& pool, Stats& stats) noexcept {
  pool.release(c.client.in);
  pool.release(c.upstream.in);
  stats.accel_blocks_held -= pool.chain_release(c.accel);
}

bool upstream_finished(const Connection& c) noexcept {
  const uint8_t f = c.upstream.flags;
  return (c.state == State::kRelaying || c.state == State::kDraining) && !c.upstream_released &&
         c.upstream.fd >= 0 && (f & (kEof | kWriteShut | kFailed)) == (kEof | kWriteShut) &&
         !nothing_held(c, Dir::kU2C);
}

void on_upstream_released(Connection& c) noexcept {
  c.upstream.fd = -1;
  c.upstream.events = 0;
  c.upstream_released = true;
}

bool prepare_splice(Connection& c, Dir d, PipePool& pipes, Stats& stats) noexcept {
  Side& src = c.source(d);
  if (src.pipe != kNoPipe) return true;
  if (pipes.acquire(src.pipe)) return true;
  src.pipe = kNoPipe;
  ++stats.splice_pipe_waits;
  return false;
}

void on_splice_in(Connection& c, Dir d, SysResult r, PipePool& pipes, Stats& stats,
                  LoopTime now) noexcept {
  Side& src = c.source(d);
  if (r.ok() && r.value > 0) {
    src.piped += static_cast<uint32_t>(r.value);
    if (src.gate != kOpenGate) {
      // The kernel moves no more than it was asked (splice_ask()).
      EDGEPROXY_CHECK(static_cast<uint32_t>(r.value) <= src.splice_left);
      src.splice_left -= static_cast<uint32_t>(r.value);
    }
    set_bulk(src, r.value >= kBufferBytes);
    count_read(stats, d);
    c.last_active_ms = now.ms;
    if (d == Dir::kU2C && c.u2c_first_ns == 0) c.u2c_first_ns = now.ns;
    // kReadReady stays: the splice may have stopped at a full pipe with bytes left in the socket,
    // and with edge-triggered readiness no new edge would report them.
    src.paused |= kPauseBackpressure;
    return;
  }
  if (r.ok()) {
    // 0 is EOF, or the urgent mark once the peer's FIN is in: splice(2) cannot step over the
    // mark, and treating it as EOF would cut the stream there. read(2) tells the two apart.
    src.flags |= kUrgent;
  } else {
    on_no_bytes(c, d, r, stats, now);
  }
  if (src.piped == 0) release_pipe(src, pipes);
  advance(c);
}

void on_splice_out(Connection& c, Dir d, SysResult r, uint32_t asked, PipePool& pipes, Stats& stats,
                   LoopTime now) noexcept {
  Side& src = c.source(d);
  Side& dst = c.sink(d);
  if (r.ok() && r.value > 0) {
    const auto n = static_cast<uint32_t>(r.value);
    src.piped -= n;
    c.last_active_ms = now.ms;
    count_write(c, stats, d, n);
    stats.splice_bytes += n;
    if (n < asked) dst.flags &= static_cast<uint8_t>(~kWriteReady);
    if (src.piped == 0) {
      release_pipe(src, pipes);
      src.paused &= static_cast<uint8_t>(~kPauseBackpressure);
      advance(c);
    }
    return;
  }
  if (r.would_block() || (r.ok() && r.value == 0)) {
    dst.flags &= static_cast<uint8_t>(~kWriteReady);
    return;
  }
  fail(c, dst, stats);
}

void on_shutdown(Connection& c, Dir d, SysResult r, Stats& stats, LoopTime now) noexcept {
  if (!r.ok()) {  // ENOTCONN: the sink was reset meanwhile, and the FIN cannot be sent
    fail(c, c.sink(d), stats);
    return;
  }
  c.sink(d).flags |= kWriteShut;
  if (d == Dir::kU2C) c.u2c_done_ns = now.ns;
  if (d == Dir::kU2C && c.u2c_first_ns != 0 && c.u2c_eof_ns != 0) {
    stats.u2c_upstream_ns += static_cast<uint64_t>(c.u2c_eof_ns - c.u2c_first_ns);
    stats.u2c_client_ns += static_cast<uint64_t>(now.ns - c.u2c_first_ns);
  }
  if (direction_done(c, Dir::kC2U) && direction_done(c, Dir::kU2C)) {
    c.state = State::kClosing;
  } else if (c.state == State::kRelaying) {
    c.state = State::kDraining;
  }
}

void on_ready(Connection& c, Side& side, uint32_t ready, Stats& stats) noexcept {
  uint8_t add = 0;
  if (ready & kReadable) add |= kReadReady;
  if (ready & kWritable) add |= kWriteReady;
  // The peer shut its write side: read until read() == 0. (A full hang-up also arrives as
  // kWritable from the reactor, since writes then fail at once.)
  if (ready & kHangup) add |= kReadReady | kPeerShut;
  if (ready & kUrgentData) add |= kReadReady | kUrgent;
  side.flags |= add;
  // A reset: the bytes the peer sent before it are still queued ahead of the error, and reads
  // return them first, then the error (or 0 once a send has consumed it).
  if (ready & kError) fail(c, side, stats);
}

void on_client(Connection& c, int client_fd, LoopTime now) noexcept {
  c.client.fd = client_fd;
  // A just-accepted socket's send buffer is empty: the first write to the client goes out
  // without arming EPOLLOUT first (a write that does not fit clears kWriteReady, as always).
  c.client.flags = kWriteReady;
  c.state = State::kAccepted;
  c.last_active_ms = now.ms;
  c.accepted_ns = now.ns;
}

void on_accepted(Connection& c) noexcept {
  c.state = State::kRouting;
}

void on_inspecting(Connection& c, bool bytes_waiting) noexcept {
  c.state = State::kInspecting;
  if (bytes_waiting) c.client.flags |= kReadReady;
}

void on_routed(Connection& c) noexcept {
  c.state = State::kRouting;
}

void hold_for_replay(Connection& c) noexcept {
  c.client.paused |= kPauseReplay;
}

void end_replay(Connection& c) noexcept {
  c.client.paused &= static_cast<uint8_t>(~kPauseReplay);
}

void on_refused(Connection& c, bool reset, EndReason why) noexcept {
  set_end(c, why);
  if (!reset) {
    // Nothing more is read from the client nor will be written to it, and there is no
    // upstream: both directions are over, in order.
    c.client.flags |= kEof | kWriteShut;
    c.upstream.flags |= kEof | kWriteShut;
  }
  c.state = State::kClosing;
}

void finish(Connection& c) noexcept {
  // As if the upstream had ended abnormally: nothing more is read toward it, and once what it
  // sent was delivered the connection lingers, then closes (the client reset once it has
  // acknowledged everything, the upstream given a FIN).
  c.upstream.flags = static_cast<uint8_t>((c.upstream.flags | kFailed | kEof) & ~kReadReady);
  advance(c);
}

void on_connecting(Connection& c) noexcept {
  c.state = State::kConnecting;
}

void on_connected(Connection& c) noexcept {
  c.upstream.flags |= kWriteReady;
  c.state = State::kRelaying;
}

void on_upstream_detached(Connection& c) noexcept {
  const uint8_t ops = c.upstream.ops;
  c.upstream = Side{};
  c.upstream.ops = ops;
  c.upstream.gate = 0;
  c.detaching = false;
  c.state = State::kInspecting;
}

void end_if_done(Connection& c) noexcept {
  // A released upstream ended both ways already: the client's end may be the last one.
  if (c.upstream_released && direction_done(c, Dir::kC2U) && direction_done(c, Dir::kU2C)) {
    c.state = State::kClosing;
  }
}

void end_client(Connection& c, bool client_over) noexcept {
  // As a released upstream (decision 0011): ended both ways in order, so the client gets a FIN
  // once everything bound for it went out, and the connection closes cleanly at the client's end.
  c.pooled = false;
  c.upstream_released = true;
  c.upstream.flags = static_cast<uint8_t>(c.upstream.flags | kEof | kWriteShut);
  if (client_over && !(c.client.flags & kFailed)) {
    // Its FIN, when it comes, reaches a closed socket: the kernel takes it (decision 0018).
    c.client.flags = static_cast<uint8_t>((c.client.flags | kEof) & ~kReadReady);
    set_end(c, EndReason::kClientFin);
  }
  c.upstream.gate = kOpenGate;
  c.state = State::kRelaying;
  end_if_done(c);
}

void on_upstream_dropped(Connection& c) noexcept {
  // A completion backend may still have an operation (a cancel) in flight on the old fd: its
  // bit stays until that completes, so the slot is not freed under it.
  const uint8_t ops = c.upstream.ops;
  c.upstream = Side{};
  c.upstream.ops = ops;
  c.state = State::kRouting;
}

void fail(Connection& c, Side& side, Stats& stats) noexcept {
  if (!(side.flags & kFailed)) {
    // A failed socket never blocks a read again: it returns what was queued, then the error
    // or 0. Read it to that end.
    if (!(side.flags & kEof)) side.flags |= kReadReady | kPeerShut;
    side.flags |= kFailed;
    set_end(c, is_client(c, side) ? EndReason::kClientReset : EndReason::kServerReset);
    if (is_client(c, side)) {
      ++stats.resets_client;
    } else {
      ++stats.resets_upstream;
    }
  }
  advance(c);
}

void abort(Connection& c, EndReason why) noexcept {
  set_end(c, why);
  c.state = State::kClosing;
}

void set_end(Connection& c, EndReason why, uint16_t status) noexcept {
  if (c.end != EndReason::kNone) return;
  c.end = why;
  c.end_status = status;
}

void on_acknowledged(Connection& c) noexcept {
  if (c.state == State::kLingering) c.state = State::kClosing;
}

void forget_urgent(Side& side) noexcept {
  clear(side, kUrgent);
}

Side& surviving_side(Connection& c) noexcept {
  return (c.client.flags & kFailed) ? c.upstream : c.client;
}

uint32_t wanted_interest(const Connection& c, const Side& side) noexcept {
  if (c.state >= State::kLingering || c.state == State::kFree) return 0;
  const bool client = is_client(c, side);
  if (!client && c.state == State::kConnecting) return kWantWrite;  // connect completion
  const Side& peer = client ? c.upstream : c.client;
  uint32_t want = 0;
  // A failed side is still read to its end (what it sent before the error); nothing is read
  // toward a failed peer. The replay pause keeps the interest: with edge-triggered readiness an
  // arrival meanwhile only leaves kReadReady set, read once the pause lifts, so pausing and
  // resuming cost no epoll_ctl (next_step() is what holds the reads back).
  const uint8_t paused = static_cast<uint8_t>(side.paused & ~kPauseReplay);
  if (!(side.flags & kEof) && paused == 0 && !(peer.flags & kFailed)) want |= kWantRead;
  const bool chained = client && c.accel.bytes > 0;
  if ((writable(peer) > 0 || peer.piped > 0 || chained) &&
      !(side.flags & (kWriteReady | kFailed))) {
    want |= kWantWrite;
  }
  return want;
}

bool direction_done(const Connection& c, Dir d) noexcept {
  return (c.source(d).flags & kEof) && nothing_held(c, d) && (c.sink(d).flags & kWriteShut);
}

bool shutdown_is_last(const Connection& c, Dir d) noexcept {
  return direction_done(c, d == Dir::kC2U ? Dir::kU2C : Dir::kC2U);
}

bool ends_cleanly(const Connection& c) noexcept {
  return direction_done(c, Dir::kC2U) && direction_done(c, Dir::kU2C);
}

}  // namespace edgeproxy::relay
