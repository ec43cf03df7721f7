// Connection: one proxied client, its upstream, and where it is in its lifecycle. Lives in the
// Worker's Slab; reset to its default state when the slot is freed. Plain data: the relay
// (relay.h) decides, the Worker and the backend transport act.
#pragma once

#include <cstdint>

#include "edgeproxy/block_chain.h"
#include "edgeproxy/buffer.h"
#include "edgeproxy/end_reason.h"
#include "edgeproxy/pipe_pool.h"
#include "edgeproxy/slab.h"
#include "edgeproxy/wait_queue.h"

namespace edgeproxy {

// Lifecycle. Readiness and pause reasons are flags on a Side, never states.
//   kFree -> kAccepted -> [kInspecting ->] kRouting -> kConnecting -> kRelaying -> kDraining
//     -> kClosing -> kFree
//   (kRelaying or kDraining) -> kLingering -> kClosing when a side fails
// See docs/state-machine.md for every transition.
enum class State : uint8_t {
  kFree,        // slot unused
  kAccepted,    // client accepted, nothing decided yet
  kInspecting,  // reading the first bytes until a routing rule decides (docs/routing.md)
  kRouting,     // choosing a server of the backend and getting a socket for it
  kConnecting,  // non-blocking connect to the chosen backend in progress
  kRelaying,    // both directions open
  kDraining,    // one direction has finished (EOF propagated); the other still flows
  kLingering,   // a side failed and every byte it sent before failing was handed to the other
                // side, which is reset once it has acknowledged them (decision 0007)
  kClosing,     // both directions done, or an error/timeout: fds are about to be closed
};
const char* to_string(State state) noexcept;

// What the kernel has told us about one socket (cleared when a syscall says otherwise).
enum SideFlag : uint8_t {
  kReadReady = 1 << 0,   // may have bytes to read: read until EAGAIN or a short read
  kWriteReady = 1 << 1,  // send buffer has room: write until EAGAIN or a short write
  kPeerShut = 1 << 2,    // EPOLLRDHUP/HUP seen: keep reading past short reads to the end (epoll
                         // takes a short read as the end: relay::read_stopped_at_fin)
  kEof = 1 << 3,         // read() returned 0: no more bytes will come from this side
  kWriteShut = 1 << 4,   // we sent shutdown(SHUT_WR) to this side
  kFailed = 1 << 5,      // an error or reset was seen on this side: nothing more is written to
                         // it; what it sent before the error is still read (the kernel queues
                         // it ahead of the error), and its end is then abnormal (decision 0007)
  kBulk = 1 << 6,        // the last read filled a buffer, or a splice moved at least as much:
                         // more bytes were waiting than one buffer holds (--splice auto)
  kUrgent = 1 << 7,      // urgent (out-of-band) data may be in the socket, or a splice stopped
                         // without saying why: splice(2) stops at the urgent mark (0 or EAGAIN),
                         // read(2) steps over it, so the side reads through a buffer and a short
                         // read is no proof of a drained socket until a read says EAGAIN
};

// Why reading from a side is paused (a bitmask; reading resumes when it is back to 0).
enum PauseReason : uint8_t {
  kPauseBackpressure = 1 << 0,  // the buffer holding this side's bytes is full, or its pipe
                                // holds bytes (a pipe is filled by one splice, then drained)
  kPauseNoBuffer = 1 << 1,      // the buffer pool was empty when a read wanted a block
  kPauseReplay = 1 << 2,        // the client's first bytes (and a PROXY header) are being
                                // replayed to the upstream from the routing context: the
                                // client's own bytes wait behind them (decision 0009)
  kPauseRate = 1 << 3,          // the side's rate limit ran out of tokens: a timer resumes it
                                // (docs/limits.md)
  kPauseDetach = 1 << 4,        // a pooled upstream is being handed back to the pool (decision
                                // 0013): nothing new is started on its socket
};

// Which of its listener's limits a connection is subject to (docs/limits.md), set at accept and
// again at each reload. Zero for a connection without limits: nothing is checked for it.
enum LimitFlag : uint8_t {
  kLimitBytes = 1 << 0,     // max-lifetime, upload-limit or download-limit: checked after pumps
  kLimitRateUp = 1 << 1,    // rate-limit-up: reading from the client is metered, never spliced
  kLimitRateDown = 1 << 2,  // rate-limit-down: reading from the server is metered, never spliced
  kLimitUpload = 1 << 3,    // upload-limit: reading from the client is checked after each read
  kLimitDownload = 1 << 4,  // download-limit: reading from the server is checked after each read
};

inline constexpr uint32_t kOpenGate = UINT32_MAX;

struct Side {
  int fd = -1;
  uint8_t flags = 0;    // SideFlag bits
  uint8_t paused = 0;   // PauseReason bits
  uint8_t ops = 0;      // completion backends: operations in flight on this fd (their own bits)
  uint8_t hints = 0;    // backend-owned hints about the socket (their own bits)
  uint32_t events = 0;  // readiness backends: interest currently registered with the reactor
  Buffer in;            // bytes read from this side, not yet written to the other side
  // Spliced directions: the PipePool pipe holding this side's bytes (kNoPipe when none) and how
  // many bytes it holds. A direction's bytes are in `in` or in the pipe, never both at once.
  uint32_t pipe = kNoPipe;
  uint32_t piped = 0;
  uint32_t buffered = 0;  // bytes read from this side through `in` (saturates): --splice auto
  // How many bytes at the front of `in` may be written to the other side (decision 0010):
  // kOpenGate, all of them (TCP, tunnels); a finite gate holds back bytes the worker has not
  // approved yet (an HTTP head still to be checked and rewritten, the next request) and rules
  // out splice. Lowered by each write.
  uint32_t gate = kOpenGate;
  // Under a finite gate: how many of the bytes that follow in the socket the worker approved
  // unseen (decision 0015: the rest of a body of known length), which the direction may splice.
  // Lowered by each splice in; 0 (nothing spliced) with an open gate, which splices freely.
  uint32_t splice_left = 0;
  uint32_t asked = 0;  // completion backends: bytes the send in flight was asked to write
};

// Which way bytes move. The source side's `in` buffer holds the direction's bytes.
enum class Dir : uint8_t { kC2U, kU2C };

// The LimitFlag that meters reading the direction's source.
constexpr uint8_t rate_limit_flag(Dir d) noexcept {
  return d == Dir::kC2U ? kLimitRateUp : kLimitRateDown;
}

// The LimitFlags under which a pump reads the direction's source once: its limits, checked
// between pumps, are then never passed by more than one read (docs/limits.md).
constexpr uint8_t one_read_flags(Dir d) noexcept {
  return d == Dir::kC2U ? kLimitRateUp | kLimitUpload : kLimitRateDown | kLimitDownload;
}

// Connection::client_slot when the connection is not counted in a client table.
inline constexpr uint32_t kNoClientSlot = UINT32_MAX;

// Connection::server before a server is chosen; Connection::backend before routing chose one.
inline constexpr uint16_t kNoServer = UINT16_MAX;
inline constexpr uint16_t kNoBackend = UINT16_MAX;
// Connection::backend for a forward proxy's named destination (decision 0010): the addresses
// are the exchange's, and c.server stays kNoServer.
inline constexpr uint16_t kDirectBackend = UINT16_MAX - 1;

struct Connection {
  Side client;
  Side upstream;
  State state = State::kFree;
  bool touched = false;  // in the Worker's touched list this loop iteration
  bool more = false;     // the read budget ran out with bytes left: pump again next iteration
  bool pending = false;  // queued in the Worker's pending list (at most once)
  // The upstream finished both ways while bytes for the client were still held, and its socket
  // was closed early (decision 0011): upstream.fd is -1 from then on, its flags stay.
  bool upstream_released = false;
  // HTTP mode (decision 0013): the upstream is a pooled server connection whose lifetime is not
  // the client's. Neither side's end is passed on to the other, and an upstream error does not
  // end the connection: the worker decides. Cleared when the socket leaves the pool for good
  // (a tunnel, a close-delimited response, a truncated one); the relay is then a plain one.
  bool pooled = false;
  // HTTP mode: the upstream is being detached (kPauseDetach); `detach_keep` says whether its
  // socket goes back to the pool (else it is closed once nothing refers to it).
  bool detaching = false;
  bool detach_keep = false;
  uint8_t address = 0;  // index of the server address being tried or used
  uint8_t tried = 0;    // addresses of the current server tried so far
  uint8_t retries = 0;  // connects retried on another server so far
  uint8_t attempt = 0;  // connect attempts so far (wraps): names an attempt's operations
  uint8_t limits = 0;   // LimitFlag bits
  // How it ended: set once, by the first terminal cause (relay::set_end), for the access log.
  EndReason end = EndReason::kNone;
  uint16_t end_status = 0;  // kForwardError: the status the forward proxy answered
  // Where the connection belongs (decision 0008): the worker's topology version it was accepted
  // under, and indices into that version's listeners, backends and the backend's servers.
  uint16_t version = 0;
  uint16_t listener = 0;
  uint16_t backend = kNoBackend;
  uint16_t server = kNoServer;
  uint16_t last_server = kNoServer;  // the server chosen last, kept after leaving it (access log)
  // Slow-client acceleration (decision 0011): the most blocks the u2c direction may hold, `in`
  // included (0: off; copied from the listener at accept), and the blocks it holds beyond
  // upstream.in, written to the client before it. Changed only by relay functions.
  uint16_t accel_limit = 0;
  BlockChain accel;
  WaitLinks buffer_wait;  // in the Worker's queue of connections waiting for a pool buffer
  WaitLinks socket_wait;  // in the Worker's queue of connections waiting for a descriptor
  // HTTP mode: in its backend's pending queue (a request waiting for a pooled connection), or
  // in its server's list of parked connections (an idle keep-alive client holding an IDLE one).
  WaitLinks pool_wait;
  uint32_t client_slot = kNoClientSlot;  // its entry in the listener's client table
  // Unacknowledged bytes (both sides' send queues) at the last look: kLingering's progress, and
  // before an idle cut, whether a slow peer is still taking bytes written long ago.
  uint32_t linger_outq = 0;
  uint32_t linger_wait_ms = 0;  // kLingering: time until the next look (grows while none move)
  int64_t last_active_ms = 0;   // last time a byte moved either way
  // Loop clock (ns): when the client was accepted, and when the current connect attempt started
  // (the connect time and duration histograms, Stats).
  int64_t accepted_ns = 0;
  int64_t connect_start_ns = 0;
  // The access log's connect time: when the first connect attempt to a server started (loop
  // clock), and how long until a connect succeeded (-1: none did).
  int64_t connect_started_ms = 0;
  int32_t connect_ms = -1;
  // Bytes delivered to the upstream and to the client: added to the listener's, backend's and
  // server's counters at close (never per write: those are shared by every worker).
  uint64_t bytes_c2u = 0;
  uint64_t bytes_u2c = 0;
  // Acceleration-factor timestamps (ns, loop clock): first upstream byte read, upstream EOF,
  // last byte delivered to the client (client write side shut).
  int64_t u2c_first_ns = 0;
  int64_t u2c_eof_ns = 0;
  int64_t u2c_done_ns = 0;

  Side& source(Dir d) noexcept { return d == Dir::kC2U ? client : upstream; }
  Side& sink(Dir d) noexcept { return d == Dir::kC2U ? upstream : client; }
  const Side& source(Dir d) const noexcept { return d == Dir::kC2U ? client : upstream; }
  const Side& sink(Dir d) const noexcept { return d == Dir::kC2U ? upstream : client; }
};

}  // namespace edgeproxy
