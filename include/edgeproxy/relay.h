// relay: the pure part of the connection state machine. Given a connection and the outcome of
// one I/O step it updates flags, buffers and lifecycle, and it says what each side should do
// next and which interest each side needs. No syscalls: tested directly, shared by backends.
#pragma once

#include <cstdint>

#include "edgeproxy/buffer_pool.h"
#include "edgeproxy/clock.h"
#include "edgeproxy/config.h"
#include "edgeproxy/connection.h"
#include "edgeproxy/pipe_pool.h"
#include "edgeproxy/result.h"
#include "edgeproxy/stats.h"

namespace edgeproxy::relay {

enum class Step : uint8_t {
  kNone,       // nothing to do in this direction until an event arrives
  kRead,       // read from source into source.in
  kWrite,      // write source.in to sink (u2c: the acceleration chain first, then upstream.in)
  kShutdown,   // source ended and everything was delivered: shutdown(SHUT_WR) the sink
  kSpliceIn,   // splice from source into its pipe (prepare_splice first; read if it fails)
  kSpliceOut,  // splice source's pipe into sink
};

// When a direction moves its bytes through a pipe instead of a buffer (from the Config).
struct SplicePolicy {
  SpliceMode mode = SpliceMode::kNever;
  uint32_t threshold_bytes = 0;  // kAuto: bytes the source must have moved through buffers first
};

// What the direction should do next. Writing comes before reading so buffers and pipes drain
// first. A direction splices only once relaying (the bytes read while connecting, which
// content-aware routing will inspect, are buffered), only when `splice` says so (kAuto: while
// the source is kBulk), no urgent data may be pending (kUrgent), reading the source is not
// rate-limited (a pipe moves up to a gigabyte a call), its gate is open or the worker granted
// it a splice allowance (decision 0015), and only when its buffer is
// empty, so bytes never overtake each other between buffer and pipe. Nothing is read toward a
// failed sink, and a failed source's end is not passed on as a FIN, nor an end while the proxy
// still replays bytes it holds for the source (kPauseReplay). kNone once lingering.
Step next_step(const Connection& c, Dir d, SplicePolicy splice = {}) noexcept;

// Epoll's order for a source whose peer has shut (RDHUP seen, the rest of its bytes already in the
// socket): read it to its end (EOF) before writing what is held, while its block has room, so
// that the write knows it is the direction's last (last_write). False under a one-read limit
// (the pump reads such a source once) and when the sink failed. A completion backend cannot read
// into a block that holds bytes and never asks.
bool reads_to_end_first(const Connection& c, Dir d) noexcept;

// Epoll: whether a read that returned `r` for `asked` bytes stopped at the peer's FIN, so that
// the next read() would return 0 and need not be made. True for a short read of a source whose
// FIN was reported (RDHUP) before the read began: the FIN is queued behind every byte sent
// before it, and a read returns short only once it has taken all of them and reached the FIN.
// Not past an urgent mark (a read stops short before one), nor on a failed side (its next read
// may bring the error). Only a backend that reads after the readiness it learns of may ask: a
// receive submitted before the FIN arrived can return short with more bytes behind it.
bool read_stopped_at_fin(const Side& src, SysResult r, uint32_t asked) noexcept;

// Whether a write of `asked` bytes is the direction's last: the source's orderly end was read,
// the write empties what is held for it, and the kShutdown step follows. The transport sends it
// with MSG_MORE and passes the end on (shutdown(SHUT_WR), or close() when it is the last
// direction) right after it: the FIN is added to the unsent last segment instead of a segment of
// its own (tcp_send_fin), and the peer acknowledges both at once. A partial send is no risk: its
// queued tail goes out when the ACKs of the bytes in flight arrive, the socket being TCP_NODELAY.
bool last_write(const Connection& c, Dir d, uint32_t asked) noexcept;

// The bytes of `src.in` the next write may send: all of them, or up to the gate (decision 0010).
inline uint32_t writable(const Side& src) noexcept {
  const uint32_t n = src.in.readable();
  return n < src.gate ? n : src.gate;
}

// The length a kSpliceIn of `src` asks the kernel for: under a finite gate no more than the
// allowance (Side::splice_left), so nothing past a body's end is ever spliced (decision 0015).
inline uint32_t splice_ask(const Side& src) noexcept {
  if (src.gate == kOpenGate || src.splice_left > kSpliceAskBytes) return kSpliceAskBytes;
  return src.splice_left;
}

// Rate limits (docs/limits.md): reading `side` stops until resume_reading() lifts the pause.
inline void pause_reading(Side& side, PauseReason why) noexcept {
  side.paused |= why;
}
inline void resume_reading(Side& side, PauseReason why) noexcept {
  side.paused &= static_cast<uint8_t>(~why);
}

// For completion backends, which take one step per direction and so would start the next receive
// only after the send in flight: whether an accelerating u2c direction may also read now, its
// last block having gone to the chain (so `in` is free for the next one).
bool reads_beside_write(const Connection& c, Dir d) noexcept;

// Makes sure the source has a block to read into. False when the pool is empty: the source is
// paused (kPauseNoBuffer) and a wait counted; the caller resumes it when a block returns.
bool prepare_read(Connection& c, Dir d, BufferPool& pool, Stats& stats) noexcept;

// Applies read(source, source.in.write_ptr(), asked). A short read clears kReadReady (the socket
// is drained) unless the peer has shut, in which case reading continues until read() == 0, or
// urgent data may be pending (kUrgent: read() stops short before the mark), in which case it
// continues until EAGAIN. An error ends the source like EOF, but as a failure (fail()).
void on_read(Connection& c, Dir d, SysResult r, uint32_t asked, BufferPool& pool, Stats& stats,
             LoopTime now) noexcept;

// Applies send(sink, source.in.read_ptr(), asked), or for u2c a writev of the acceleration chain
// then upstream.in: the bytes written come off the chain first. An emptied buffer (and every
// emptied chain block) goes back to the pool at once and a backpressure pause on the source is
// lifted.
void on_write(Connection& c, Dir d, SysResult r, uint32_t asked, BufferPool& pool, Stats& stats,
              LoopTime now) noexcept;

// Slow-client acceleration (decision 0011). The reserve: acceleration takes a block only while
// more than max(capacity / 8, 2 x open connections) blocks are free.
uint32_t accel_reserve(uint32_t capacity, uint64_t open) noexcept;

// Moves upstream.in's block (holding bytes) to the tail of c.accel, so the next read takes a fresh
// block instead of pausing; lifts a backpressure pause. Call when upstream.in can take no more
// reads: full (readiness backends), or after any receive (completion backends: the kernel picks a
// fresh block per receive). Refused (false) when the connection does not accelerate, its gate is
// finite, the chain plus `in` and one fresh block would pass c.accel_limit, or `free_blocks` (the
// pool's, plus blocks lent to a kernel ring and unfilled) is at the reserve: then counted in
// accel_giveups, and the connection keeps ordinary backpressure with its one block.
bool accelerate(Connection& c, BufferPool& pool, Stats& stats, uint32_t free_blocks) noexcept;

// A failed client can never be sent what the chain holds: returns the chain to the pool. The
// caller makes sure no send to the client is in flight (a completion backend's kernel reads the
// blocks until the send completes).
void discard_undeliverable(Connection& c, BufferPool& pool, Stats& stats) noexcept;

// At close: both sides' buffers and the chain go back to the pool.
void release_buffers(Connection& c, BufferPool& pool, Stats& stats) noexcept;

// The upstream ended both ways in order (its EOF read, its write side shut after the client's end)
// while bytes for the client are still held: its socket may be closed now and its server left,
// before the client has drained (decision 0011).
bool upstream_finished(const Connection& c) noexcept;
// The worker closed the finished upstream's socket: upstream.fd becomes -1, its flags stay (the
// directions' ends still decide the close), and a client failure then closes at once.
void on_upstream_released(Connection& c) noexcept;

// Makes sure the source holds a pipe for kSpliceIn. False when the pipe pool is empty: counted
// in splice_pipe_waits, and the caller reads into a buffer instead (prepare_read, on_read).
bool prepare_splice(Connection& c, Dir d, PipePool& pipes, Stats& stats) noexcept;

// Applies splice(source, its pipe) = r. Under a finite gate the bytes come off the allowance
// (at most splice_ask() of them: checked). After bytes, reading pauses (kPauseBackpressure) until
// the pipe is drained, and the source stays readable: a splice stops at a full pipe as well as
// at an empty socket, and the two look alike, so the next splice (EAGAIN) tells. 0 is EOF or an
// urgent mark that splice cannot pass: the source is marked kUrgent, and the read that follows
// tells which. An empty pipe goes back to the pool at once.
void on_splice_in(Connection& c, Dir d, SysResult r, PipePool& pipes, Stats& stats,
                  LoopTime now) noexcept;

// Applies splice(source's pipe, sink, asked) = r. A short splice means the send buffer is full.
// The emptied pipe goes back to the pool at once and the pause on the source is lifted.
void on_splice_out(Connection& c, Dir d, SysResult r, uint32_t asked, PipePool& pipes, Stats& stats,
                   LoopTime now) noexcept;

// Applies shutdown(sink, SHUT_WR) = r; advances kRelaying -> kDraining -> kClosing. A refused
// shutdown (the sink was reset meanwhile) fails the sink.
void on_shutdown(Connection& c, Dir d, SysResult r, Stats& stats, LoopTime now) noexcept;

// Applies normalized readiness bits (event.h) reported for one side. kError fails the side and
// makes it readable: what it sent before the error is still read and delivered (fail()).
// kUrgentData marks it kUrgent.
void on_ready(Connection& c, Side& side, uint32_t ready, Stats& stats) noexcept;

// kFree -> kAccepted: a freshly acquired slot holds the accepted client `client_fd`, writable.
void on_client(Connection& c, int client_fd, LoopTime now) noexcept;
// kAccepted -> kRouting: the client is registered and a backend is being chosen.
void on_accepted(Connection& c) noexcept;
// kAccepted -> kInspecting: the client is registered and its first bytes are read (into
// client.in, which the worker empties into the routing context) until a rule decides.
// `bytes_waiting`: the listener accepts only once the first bytes arrived (TCP_DEFER_ACCEPT), so
// they are read at once. Otherwise the first read waits for the registration's edge, which
// EPOLL_CTL_ADD raises at once for bytes already there: under load a read right after the accept
// mostly finds nothing yet (an EAGAIN per connection).
void on_inspecting(Connection& c, bool bytes_waiting) noexcept;
// kInspecting -> kRouting: a rule chose the backend.
void on_routed(Connection& c) noexcept;
// The client's reading waits (kPauseReplay) while bytes the proxy holds for the upstream (the
// inspected bytes, a PROXY header) go first; released once they were all handed to client.in.
void hold_for_replay(Connection& c) noexcept;
void end_replay(Connection& c) noexcept;
// A routing rule (or a failed PROXY header) ends the connection before any server: kClosing.
// `reset`: with a reset (reject). Otherwise the proxy sent its last text and shut the client's
// write side, no upstream exists, and the close sends no reset (ends_cleanly()).
void on_refused(Connection& c, bool reset, EndReason why) noexcept;
// A forward proxy ends a relaying conversation itself (an answer sent, a request for another
// destination): nothing more goes to the upstream, and once the client has been sent every byte
// bound for it the connection lingers until it acknowledged them, then closes (decision 0010).
void finish(Connection& c) noexcept;
// kRouting -> kConnecting: a non-blocking connect is in progress.
void on_connecting(Connection& c) noexcept;
// The non-blocking connect finished successfully: the upstream becomes writable, relaying starts.
void on_connected(Connection& c) noexcept;
// kConnecting -> kRouting: the failed upstream socket was closed, another address may be tried.
void on_upstream_dropped(Connection& c) noexcept;
// HTTP mode (decision 0013): the pooled upstream left the connection (back to the pool, or
// closed) with nothing in flight on it: the upstream side is empty again and the connection reads
// its client's next request head (kInspecting).
void on_upstream_detached(Connection& c) noexcept;
// HTTP mode: the conversation ends with no upstream (detached): the client gets a FIN once every
// byte bound for it was written, and the connection closes cleanly once the client ends too
// (a released upstream, decision 0011). The worker drops what the client still sends.
// `client_over` (decision 0018): the client's last request asked to close and nothing past it
// was read, so nothing more is owed from it: its side counts as ended in order (kClientFin) and
// the connection closes once the client's bytes are out, without waiting for its FIN.
void end_client(Connection& c, bool client_over) noexcept;
// A released upstream's connection whose two directions are done closes (kClosing): after the
// client's end was read, or after the worker dropped bytes the client sent past its last request
// (what was held may have been all that kept the client's direction open).
void end_if_done(Connection& c) noexcept;

// Records an error on `side` (counted once per side; the end reason kClientReset or
// kServerReset if none was recorded). Nothing more is written to it; what it
// sent before the error is still read and handed to the other side, and then the connection
// lingers (kLingering) until the other side has acknowledged those bytes, which the worker
// checks, and is reset. With both sides failed, or before relaying began, it closes at once.
void fail(Connection& c, Side& side, Stats& stats) noexcept;

// Closes now (timeouts, failed connects, a forced shutdown, a refused epoll_ctl) for `why`:
// every side that did not fail itself is reset, since ends_cleanly() is false.
void abort(Connection& c, EndReason why) noexcept;

// Records how the connection ended, unless an earlier cause already did (the first one wins).
// `status`: the answer's status for kForwardError. Read ends (EOF, errors) record themselves.
void set_end(Connection& c, EndReason why, uint16_t status = 0) noexcept;

// kLingering -> kClosing: the surviving side acknowledged everything (or the worker gave up).
void on_acknowledged(Connection& c) noexcept;

// The side that did not fail: the one a lingering connection waits on.
Side& surviving_side(Connection& c) noexcept;

// For transports whose receive waits for data instead of saying EAGAIN (io_uring): a receive
// ended at the urgent mark or past it, and only a poll can tell which; kUrgent is dropped, and
// the poll before the next splice (POLLPRI) sets it again if urgent data is still pending.
void forget_urgent(Side& side) noexcept;

// The Interest bits (event.h) `side` needs registered now.
uint32_t wanted_interest(const Connection& c, const Side& side) noexcept;

// True when the source has ended, its bytes (buffer, pipe, acceleration chain) were all delivered
// and the sink's write side is shut.
bool direction_done(const Connection& c, Dir d) noexcept;

// True when Step::kShutdown for `d` would end the connection's last direction: the close that
// follows at once sends the FIN itself, so the transport may skip shutdown(). The sink's own
// direction is done (its EOF was read), so no unread byte turns that close into a reset.
bool shutdown_is_last(const Connection& c, Dir d) noexcept;

// Whether closing now may send FINs: both directions ended in order and were delivered.
// Otherwise every side that did not fail itself is reset (decision 0004: a FIN never lies).
bool ends_cleanly(const Connection& c) noexcept;

}  // namespace edgeproxy::relay
