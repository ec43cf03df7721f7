// relay: the pure part of the connection state machine. Given a connection and the outcome of
// one I/O step it updates flags, buffers and lifecycle, and it says what each side should do
// next and which interest each side needs. No syscalls: tested directly, shared by backends.
#pragma once

#include <cstdint>

#include "edgeproxy/buffer_pool.h"
#include "edgeproxy/clock.h"
#include "edgeproxy/connection.h"
#include "edgeproxy/result.h"
#include "edgeproxy/stats.h"

namespace edgeproxy::relay {

enum class Step : uint8_t {
  kNone,      // nothing to do in this direction until an event arrives
  kRead,      // read from source into source.in
  kWrite,     // write source.in to sink
  kShutdown,  // source ended and everything was delivered: shutdown(SHUT_WR) the sink
};

// What the direction should do next. Writing comes before reading so buffers drain first.
Step next_step(const Connection& c, Dir d) noexcept;

// Makes sure the source has a block to read into. False when the pool is empty: the source is
// paused (kPauseNoBuffer) and a wait counted; the caller resumes it when a block returns.
bool prepare_read(Connection& c, Dir d, BufferPool& pool, Stats& stats) noexcept;

// Applies read(source, source.in.write_ptr(), asked). A short read clears kReadReady (the socket
// is drained) unless the peer has shut, in which case reading continues until read() == 0.
void on_read(Connection& c, Dir d, SysResult r, uint32_t asked, BufferPool& pool, Stats& stats,
             LoopTime now) noexcept;

// Applies send(sink, source.in.read_ptr(), asked). An emptied buffer goes back to the pool at
// once and a backpressure pause on the source is lifted.
void on_write(Connection& c, Dir d, SysResult r, uint32_t asked, BufferPool& pool, Stats& stats,
              LoopTime now) noexcept;

// Applies shutdown(sink, SHUT_WR); advances kRelaying -> kDraining -> kClosing.
void on_shutdown(Connection& c, Dir d, Stats& stats, LoopTime now) noexcept;

// Applies normalized readiness bits (event.h) reported for one side.
void on_ready(Connection& c, Side& side, uint32_t ready, Stats& stats) noexcept;

// The non-blocking connect finished successfully: the upstream becomes writable, relaying starts.
void on_connected(Connection& c) noexcept;

// Records an error on `side` and moves the connection to kClosing; the other side will be reset.
void fail(Connection& c, Side& side, Stats& stats) noexcept;

// The Interest bits (event.h) `side` needs registered now.
uint32_t wanted_interest(const Connection& c, const Side& side) noexcept;

// True when the source has ended, its bytes were all delivered and the sink's write side is shut.
bool direction_done(const Connection& c, Dir d) noexcept;

}  // namespace edgeproxy::relay
