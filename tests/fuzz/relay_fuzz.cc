// Fuzz target: the relay state machine (relay.h), driven as src/epoll/epoll_transport.cc drives it
// but with every kernel answer taken from the input: readiness events, read and splice results
// (bytes, EAGAIN, EOF, error), write results (full, partial, EAGAIN, error) and shutdown results,
// plus what the worker does between pumps (settle, pool pressure from other connections, rate
// pauses, gates, timeouts, linger acknowledgements, early upstream release, forward-proxy finish).
// Each source produces a counter pattern; each sink checks that the bytes it is given are the next
// ones of that pattern (nothing lost, duplicated or reordered between buffer, chain and pipe).
// After every step: pool blocks in use == blocks the connection and the other holders hold, pipe
// bytes as modelled, lifecycle transitions legal, no write past a gate, no FIN before every byte
// of its direction was delivered. At the end the connection is driven to its close and every
// buffer and pipe must be back.
//
// What cannot be driven this way: the byte counts the kernel acknowledges while lingering (the
// worker reads SIOCOUTQ; here the acknowledgement is an input step), io_uring's completion model
// (buffers lent to the kernel; src/uring has its own unit tests), and the routing replay
// (kPauseReplay and the routing context belong to the worker).
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

#include "edgeproxy/event.h"
#include "edgeproxy/relay.h"
#include "fuzz_util.h"

namespace {

using namespace edgeproxy;
using relay::Step;

constexpr uint32_t kPoolBlocks = 6;
constexpr uint32_t kPipes = 2;

// The pattern byte at offset `off` of direction `d`: a shift by any count of bytes mismatches.
// The per-byte loops over it are left out of the coverage instrumentation: they find nothing
// new, and with it they took three quarters of the target's time.
#if defined(__clang__)
#define EDGEPROXY_FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))
#else  // the replay build (GCC): no coverage instrumentation to leave out
#define EDGEPROXY_FUZZ_NO_COVERAGE __attribute__((noinline))
#endif
inline uint8_t pattern(Dir d, uint64_t off) {
  const uint64_t x = off ^ (off >> 8) ^ (off >> 16);
  return static_cast<uint8_t>(x * 167 + (d == Dir::kC2U ? 0 : 89));
}

EDGEPROXY_FUZZ_NO_COVERAGE void fill_pattern(Dir d, uint64_t off, std::byte* p, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) p[i] = std::byte{pattern(d, off + i)};
}

// True when the n bytes at `p` are the pattern's from offset `off`.
EDGEPROXY_FUZZ_NO_COVERAGE bool is_pattern(Dir d, uint64_t off, const std::byte* p, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) {
    if (static_cast<uint8_t>(p[i]) != pattern(d, off + i)) return false;
  }
  return true;
}

// One direction as the peers see it.
struct Flow {
  uint64_t taken = 0;              // bytes the proxy took from the source socket (read or spliced)
  uint64_t delivered = 0;          // bytes the sink socket accepted
  uint64_t dropped = 0;            // bytes given up for a failed sink (discard_undeliverable)
  uint64_t pipe_start = 0;         // stream offset of the first byte in the pipe
  uint64_t pipe_count = 0;         // bytes in the pipe
  uint64_t approved = UINT64_MAX;  // a finite gate: delivered may not pass this
  bool ended = false;              // a read or splice returned 0 after the mark, or an error
  bool errored = false;            // the source's socket returned an error
  bool sink_broken = false;        // a write to the sink failed: later ones fail too
  uint64_t spliceable = 0;         // a finite gate: taken may not pass this by a splice
};

struct Harness {
  Harness(BufferPool& p, PipePool& ps, fuzz::Input& input) : pool(p), pipes(ps), in(input) {}

  BufferPool& pool;
  PipePool& pipes;
  fuzz::Input& in;
  Connection c;
  Stats stats;
  Flow flow[2];
  std::vector<Buffer> others;  // blocks other connections hold
  relay::SplicePolicy splice;
  uint32_t read_budget = 16;
  bool draining = false;  // the end: every answer moves toward the close
  LoopTime now{1'000'000'000, 1000};

  Flow& f(Dir d) { return flow[d == Dir::kC2U ? 0 : 1]; }

  uint32_t held_blocks() const {
    return (c.client.in.attached() ? 1u : 0u) + (c.upstream.in.attached() ? 1u : 0u) +
           c.accel.blocks;
  }

  void check(State before) {
    FUZZ_CHECK(pool.in_use() == held_blocks() + others.size());
    FUZZ_CHECK(stats.accel_blocks_held == c.accel.blocks);
    for (const Dir d : {Dir::kC2U, Dir::kU2C}) {
      const Side& src = c.source(d);
      FUZZ_CHECK(src.piped == f(d).pipe_count);
      FUZZ_CHECK((src.pipe != kNoPipe) || src.piped == 0);
      // What the relay holds is exactly what was taken and not delivered.
      uint64_t held = src.in.readable() + src.piped;
      if (d == Dir::kU2C) held += c.accel.bytes;
      FUZZ_CHECK(f(d).taken - f(d).delivered - f(d).dropped == held);
      FUZZ_CHECK(f(d).delivered <= f(d).approved);
    }
    FUZZ_CHECK(pipes.in_use() ==
               (c.client.pipe != kNoPipe ? 1u : 0u) + (c.upstream.pipe != kNoPipe ? 1u : 0u));
    const State after = c.state;
    if (after != before) FUZZ_CHECK(legal(before, after));
    if (after >= State::kLingering) {
      FUZZ_CHECK(relay::next_step(c, Dir::kC2U, splice) == Step::kNone);
      FUZZ_CHECK(relay::next_step(c, Dir::kU2C, splice) == Step::kNone);
      FUZZ_CHECK(relay::wanted_interest(c, c.client) == 0);
    }
  }

  static bool legal(State from, State to) {
    if (to == State::kClosing) return from != State::kFree;
    switch (from) {
      case State::kConnecting:
        return to == State::kRelaying || to == State::kRouting;
      case State::kRouting:
        return to == State::kConnecting;
      case State::kRelaying:
        return to == State::kDraining || to == State::kLingering;
      case State::kDraining:
        return to == State::kLingering;
      default:
        return false;
    }
  }

  SysResult read_result(Dir d, uint32_t asked) {
    Flow& fl = f(d);
    if (fl.ended) return {0, 0};
    if (draining) {
      fl.ended = true;
      return {0, 0};
    }
    const uint8_t b = in.byte();
    switch (b & 3) {
      case 0:
        return {-1, EAGAIN};
      case 1:
        return {static_cast<long>(1 + in.u16() % asked), 0};
      case 2:
        return {static_cast<long>(asked), 0};
      default:
        fl.ended = true;
        if (b & 4) {
          fl.errored = true;
          return {-1, ECONNRESET};
        }
        return {0, 0};
    }
  }

  SysResult write_result(Dir d, uint32_t asked) {
    Flow& fl = f(d);
    if (fl.sink_broken) return {-1, EPIPE};
    if (draining) return {static_cast<long>(asked), 0};
    switch (in.byte() & 3) {
      case 0:
        return {-1, EAGAIN};
      case 1:
        return {static_cast<long>(asked), 0};
      case 2:
        return {static_cast<long>(asked > 1 ? 1 + in.u16() % (asked - 1) : asked), 0};
      default:
        fl.sink_broken = true;
        return {-1, EPIPE};
    }
  }

  // The sink accepted n bytes starting at `p`: they must be the next ones of the pattern.
  void deliver(Dir d, const std::byte* p, uint32_t n) {
    Flow& fl = f(d);
    FUZZ_CHECK(is_pattern(d, fl.delivered, p, n));
    fl.delivered += n;
  }

  void do_read(Dir d) {
    Side& src = c.source(d);
    FUZZ_CHECK(!(src.flags & kEof) && src.fd >= 0);
    if (!relay::prepare_read(c, d, pool, stats)) return;
    const uint32_t asked = src.in.writable();
    FUZZ_CHECK(asked > 0);
    const SysResult r = read_result(d, asked);
    if (r.ok() && r.value > 0) {
      fill_pattern(d, f(d).taken, src.in.write_ptr(), static_cast<uint32_t>(r.value));
      f(d).taken += static_cast<uint64_t>(r.value);
    }
    relay::on_read(c, d, r, asked, pool, stats, now);
    if (c.accel_limit != 0 && d == Dir::kU2C && src.in.full()) {
      relay::accelerate(c, pool, stats, pool.available());
    }
  }

  void do_splice_in(Dir d) {
    Side& src = c.source(d);
    FUZZ_CHECK(src.in.empty() && !(src.flags & kEof));
    // Under a finite gate only the allowance is spliced, and the kernel is asked for no more.
    const uint32_t ask = relay::splice_ask(src);
    const bool gated_splice = src.gate != kOpenGate;
    const uint32_t left_before = src.splice_left;
    FUZZ_CHECK(gated_splice ? ask > 0 && ask <= src.splice_left : ask == kSpliceAskBytes);
    if (!relay::prepare_splice(c, d, pipes, stats)) {
      // No pipe: through a buffer, as the transport does.
      do_read(d);
      return;
    }
    Flow& fl = f(d);
    SysResult r{0, 0};
    if (!fl.ended && !draining) {
      const uint8_t b = in.byte();
      switch (b & 3) {
        case 0:
          r = {-1, EAGAIN};
          break;
        case 1:
          r = {static_cast<long>(std::min<uint32_t>(ask, 1u + in.u16())), 0};
          break;
        case 2:
          r = {0, 0};  // EOF, or the urgent mark: the read that follows tells
          break;
        default:
          fl.ended = fl.errored = true;
          r = {-1, ECONNRESET};
          break;
      }
    } else if (!fl.ended) {
      fl.ended = true;  // draining: the source ends
    }
    if (gated_splice && r.ok() && r.value > 0) {
      FUZZ_CHECK(fl.taken + static_cast<uint64_t>(r.value) <= fl.spliceable);
    }
    if (r.ok() && r.value > 0) {
      if (fl.pipe_count == 0) fl.pipe_start = fl.taken;
      FUZZ_CHECK(fl.pipe_start + fl.pipe_count == fl.taken);
      fl.pipe_count += static_cast<uint64_t>(r.value);
      fl.taken += static_cast<uint64_t>(r.value);
    }
    relay::on_splice_in(c, d, r, pipes, stats, now);
    if (gated_splice) {
      FUZZ_CHECK(src.splice_left == left_before - (r.ok() ? static_cast<uint32_t>(r.value) : 0u));
    }
  }

  void do_splice_out(Dir d) {
    Side& src = c.source(d);
    const uint32_t asked = src.piped;
    const SysResult r = write_result(d, asked);
    if (r.ok() && r.value > 0) {
      Flow& fl = f(d);
      // The pipe's bytes go only when everything before them was delivered.
      FUZZ_CHECK(fl.delivered == fl.pipe_start);
      fl.delivered += static_cast<uint64_t>(r.value);
      fl.pipe_start += static_cast<uint64_t>(r.value);
      fl.pipe_count -= static_cast<uint64_t>(r.value);
    }
    relay::on_splice_out(c, d, r, asked, pipes, stats, now);
  }

  void do_write(Dir d) {
    Side& src = c.source(d);
    if (d == Dir::kU2C && c.accel.blocks != 0) {
      iovec iov[64 + 1];
      uint32_t asked = 0;
      uint32_t n = pool.chain_iov(c.accel, iov, 64, asked);
      if (n == c.accel.blocks && !c.upstream.in.empty()) {
        iov[n].iov_base = const_cast<std::byte*>(c.upstream.in.read_ptr());
        iov[n].iov_len = c.upstream.in.readable();
        asked += c.upstream.in.readable();
        ++n;
      }
      const SysResult r = write_result(d, asked);
      if (r.ok() && r.value > 0) {
        uint64_t left = static_cast<uint64_t>(r.value);
        for (uint32_t i = 0; i < n && left > 0; ++i) {
          const uint32_t k = static_cast<uint32_t>(left < iov[i].iov_len ? left : iov[i].iov_len);
          deliver(d, static_cast<const std::byte*>(iov[i].iov_base), k);
          left -= k;
        }
      }
      relay::on_write(c, d, r, asked, pool, stats, now);
      return;
    }
    const uint32_t asked = relay::writable(src);
    FUZZ_CHECK(asked > 0 && asked <= src.in.readable() && asked <= src.gate);
    const bool last = relay::last_write(c, d, asked);
    const SysResult r = write_result(d, asked);
    if (r.ok() && r.value > 0) deliver(d, src.in.read_ptr(), static_cast<uint32_t>(r.value));
    relay::on_write(c, d, r, asked, pool, stats, now);
    // The transport sends a last write with MSG_MORE: its bytes wait for the FIN that must
    // follow at once when all of them went.
    if (last && r.ok() && static_cast<uint32_t>(r.value) == asked) {
      FUZZ_CHECK(relay::next_step(c, d, splice) == Step::kShutdown);
      do_shutdown(d);
    }
  }

  void do_shutdown(Dir d) {
    Side& src = c.source(d);
    Side& dst = c.sink(d);
    // A FIN never lies: the source ended in order and every byte it sent was delivered.
    FUZZ_CHECK(!(dst.flags & kWriteShut) && !(dst.flags & kFailed) && !(src.flags & kFailed));
    FUZZ_CHECK(f(d).ended && !f(d).errored && f(d).delivered == f(d).taken);
    FUZZ_CHECK(dst.fd >= 0);
    // The transports skip the last direction's shutdown: the close that follows sends the FIN.
    const bool last = relay::shutdown_is_last(c, d);
    SysResult r{0, 0};
    if (!last && !draining && (in.byte() & 7) == 7) r = {-1, ENOTCONN};
    relay::on_shutdown(c, d, r, stats, now);
    if (last) FUZZ_CHECK(c.state == State::kClosing && relay::ends_cleanly(c));
  }

  // EpollTransport::pump(), with the answers above.
  void pump() {
    uint32_t reads[2] = {0, 0};
    c.more = false;
    if (c.accel.blocks != 0) {
      const uint32_t chained = c.accel.bytes;
      relay::discard_undeliverable(c, pool, stats);
      if (c.accel.blocks == 0) {
        FUZZ_CHECK(c.client.flags & kFailed);  // only bytes no one can receive are dropped
        f(Dir::kU2C).dropped += chained;
      }
    }
    bool progressed = true;
    uint32_t rounds = 0;
    while (progressed && c.state < State::kLingering) {
      FUZZ_CHECK(++rounds < 100000);  // a pump always ends
      progressed = false;
      for (const Dir d : {Dir::kC2U, Dir::kU2C}) {
        const State before = c.state;
        uint32_t& done = reads[static_cast<int>(d)];
        const uint32_t budget = (c.limits & one_read_flags(d)) ? 1u : read_budget;
        Step step = relay::next_step(c, d, splice);
        if (step == Step::kWrite && done < budget && relay::reads_to_end_first(c, d)) {
          FUZZ_CHECK(c.source(d).in.writable() > 0);
          step = Step::kRead;
        }
        switch (step) {
          case Step::kNone:
            break;
          case Step::kRead:
          case Step::kSpliceIn: {
            if (done == budget) {
              c.more = true;
              break;
            }
            if (step == Step::kSpliceIn) {
              do_splice_in(d);
            } else {
              do_read(d);
            }
            ++done;
            progressed = true;
            break;
          }
          case Step::kSpliceOut:
            do_splice_out(d);
            progressed = true;
            break;
          case Step::kWrite:
            FUZZ_CHECK(!(c.sink(d).flags & (kWriteShut | kFailed)) && c.sink(d).fd >= 0);
            do_write(d);
            progressed = true;
            break;
          case Step::kShutdown:
            do_shutdown(d);
            progressed = true;
            break;
        }
        check(before);
        if (c.state >= State::kLingering) break;
      }
    }
  }

  void event(bool client, uint32_t ready) {
    if (c.state == State::kClosing) return;
    if (!client && c.upstream_released) return;  // its fd was closed: no more events
    if (!client && c.state == State::kConnecting) {
      if (!(ready & (kWritable | kError | kHangup))) return;
      const uint8_t b = in.byte();
      if (draining || (b & 3) != 0) {
        relay::on_connected(c);
        relay::on_ready(c, c.upstream, ready, stats);
      } else if (b & 4) {
        relay::on_upstream_dropped(c);  // the worker closes it and tries another address
        c.upstream.fd = 11;             // with a new socket, and nothing approved on it yet
        f(Dir::kU2C).approved = UINT64_MAX;
        relay::on_connecting(c);
      } else {
        relay::abort(c, EndReason::kConnectFailed);
      }
      return;
    }
    if (!client && c.state < State::kConnecting) return;
    relay::on_ready(c, client ? c.client : c.upstream, ready, stats);
  }

  void settle() {
    for (Side* side : {&c.client, &c.upstream}) {
      if (side->fd < 0) continue;
      side->events = relay::wanted_interest(c, *side);
    }
  }

  void resume_waiters() {
    for (Side* side : {&c.client, &c.upstream}) {
      if ((side->paused & kPauseNoBuffer) && pool.available() > 0) {
        relay::resume_reading(*side, kPauseNoBuffer);
      }
    }
  }

  // Gives everything back; true when the connection closed.
  bool close_if_closing() {
    if (c.state != State::kClosing) return false;
    const bool clean = relay::ends_cleanly(c);
    if (clean) {
      for (const Dir d : {Dir::kC2U, Dir::kU2C}) {
        FUZZ_CHECK(f(d).ended && !f(d).errored && f(d).delivered == f(d).taken);
      }
    }
    relay::release_buffers(c, pool, stats);
    pipes.release_all(c, stats);
    for (Buffer& b : others) pool.release(b);
    others.clear();
    FUZZ_CHECK(pool.in_use() == 0 && stats.accel_blocks_held == 0);
    FUZZ_CHECK(pipes.in_use() == 0);
    return true;
  }

  void run() {
    const uint8_t setup = in.byte();
    switch (setup & 3) {
      case 0:
        splice = {SpliceMode::kNever, 0};
        break;
      case 1:
        splice = {SpliceMode::kAlways, 0};
        break;
      case 2:
        splice = {SpliceMode::kAuto, 1 + 4096u * ((setup >> 2) & 3)};
        break;
      default:
        splice = {SpliceMode::kNever, 0};
        c.accel_limit = 3 + ((setup >> 2) & 3);
        break;
    }
    read_budget = 1 + ((setup >> 4) % 16);
    const bool gated = c.accel_limit == 0;
    stats.active = 1;
    relay::on_client(c, 10, now);
    relay::on_accepted(c);
    c.upstream.fd = 11;
    relay::on_connecting(c);
    settle();

    while (in.remaining() > 0) {
      const State before = c.state;
      const uint8_t op = in.byte();
      switch (op % 13) {
        case 0:
        case 1:
          event(op % 13 == 0, in.byte() & (kReadable | kWritable | kHangup | kError | kUrgentData));
          break;
        case 2:
        case 3:
        case 4:
          pump();
          break;
        case 5:
          settle();
          break;
        case 6: {  // another connection takes a block, or gives one back
          if ((op & 0x10) && !others.empty()) {
            pool.release(others.back());
            others.pop_back();
          } else {
            Buffer b;
            if (pool.acquire(b)) others.push_back(b);
          }
          break;
        }
        case 7:
          resume_waiters();
          break;
        case 8: {  // a rate limit pauses or resumes a side
          Side& side = (op & 0x10) ? c.client : c.upstream;
          if (op & 0x20) {
            relay::pause_reading(side, kPauseRate);
          } else {
            relay::resume_reading(side, kPauseRate);
          }
          break;
        }
        case 9: {  // the worker approves bytes of a direction (forward and HTTP listeners)
          if (!gated) break;
          const Dir d = (op & 0x10) ? Dir::kC2U : Dir::kU2C;
          Side& src = c.source(d);
          if (op & 0x20) {
            src.gate = kOpenGate;
            f(d).approved = UINT64_MAX;
          } else if ((op & 0x40) && src.in.readable() == src.gate) {
            // Every byte taken is approved (the block's exactly, as the worker grants), and that
            // many that follow in the socket, unseen (decision 0015).
            src.splice_left = 1u + in.u16();
            f(d).spliceable = f(d).taken + src.splice_left;
            f(d).approved = f(d).spliceable;
          } else {
            // Approving bytes read through the block takes the allowance back (the worker).
            src.gate = in.byte();
            src.splice_left = 0;
            f(d).spliceable = f(d).taken;
            f(d).approved = f(d).delivered + src.piped + src.gate;
          }
          break;
        }
        case 10:
          if (c.state == State::kLingering) {
            relay::on_acknowledged(c);
          } else if ((op & 0xf0) == 0xf0 && c.state != State::kClosing) {
            relay::abort(c, EndReason::kIdleTimeout);
          }
          break;
        case 11:
          if (relay::upstream_finished(c)) relay::on_upstream_released(c);
          break;
        default:
          if ((op & 0xf0) == 0xf0 && c.state >= State::kRelaying && c.state < State::kClosing) {
            relay::finish(c);
          }
          break;
      }
      check(before);
      if (close_if_closing()) return;
    }

    // The end: the peers end both ways, every write succeeds, gates and pauses open, the
    // other holders give their blocks back; a connection that does not close then is aborted.
    draining = true;
    for (Buffer& b : others) pool.release(b);
    others.clear();
    for (const Dir d : {Dir::kC2U, Dir::kU2C}) {
      c.source(d).gate = kOpenGate;
      f(d).approved = UINT64_MAX;
    }
    for (int i = 0; i < 64 && c.state != State::kClosing; ++i) {
      const State before = c.state;
      relay::resume_reading(c.client, kPauseRate);
      relay::resume_reading(c.upstream, kPauseRate);
      resume_waiters();
      event(true, kReadable | kWritable | kHangup);
      event(false, kReadable | kWritable | kHangup);
      check(before);
      pump();
      settle();
      if (c.state == State::kLingering) relay::on_acknowledged(c);
      if (relay::upstream_finished(c)) relay::on_upstream_released(c);
    }
    if (c.state != State::kClosing) relay::abort(c, EndReason::kShutdownDeadline);
    FUZZ_CHECK(close_if_closing());
  }
};

BufferPool& the_pool() {
  static BufferPool* pool = [] {
    Result<BufferPool> r = BufferPool::create(kPoolBlocks);
    FUZZ_CHECK(r.ok());
    return new BufferPool(std::move(r.value()));
  }();
  return *pool;
}

PipePool& the_pipes() {
  static PipePool* pipes = [] {
    Result<PipePool> r = PipePool::create(kPipes, 0);
    FUZZ_CHECK(r.ok());
    return new PipePool(std::move(r.value()));
  }();
  return *pipes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  fuzz::Input in(data, size);
  Harness h(the_pool(), the_pipes(), in);
  h.run();
  return 0;
}
