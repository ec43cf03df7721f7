// relay: the pure connection state machine driven directly with synthetic syscall results, no
// sockets. Connection invariants are re-checked after every relay call; a scripted simulation of
// two edge-triggered sockets checks that every byte arrives, in order, in both directions.
#include "edgeproxy/relay.h"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "edgeproxy/event.h"

namespace edgeproxy::relay {

// Readable Step values in assertion messages (found by argument-dependent lookup).
static void PrintTo(Step s, std::ostream* os) {
  switch (s) {
    case Step::kNone:
      *os << "kNone";
      return;
    case Step::kRead:
      *os << "kRead";
      return;
    case Step::kWrite:
      *os << "kWrite";
      return;
    case Step::kShutdown:
      *os << "kShutdown";
      return;
    case Step::kSpliceIn:
      *os << "kSpliceIn";
      return;
    case Step::kSpliceOut:
      *os << "kSpliceOut";
      return;
  }
  *os << "Step(" << static_cast<int>(s) << ")";
}

}  // namespace edgeproxy::relay

namespace edgeproxy {
namespace {

using relay::Step;

constexpr Dir kDirs[] = {Dir::kC2U, Dir::kU2C};

const char* Name(Dir d) {
  return d == Dir::kC2U ? "c2u" : "u2c";
}

SysResult Bytes(long n) {
  return SysResult{n, 0};
}
SysResult Eof() {
  return SysResult{0, 0};
}
SysResult Errno(int err) {
  return SysResult{-1, err};
}

BufferPool MakePool(uint32_t count) {
  Result<BufferPool> r = BufferPool::create(count);
  if (!r.ok()) {
    ADD_FAILURE() << r.error();
    std::abort();
  }
  return std::move(r.value());
}

// Real pipes (the relay never touches their fds; it only hands ids out and back).
PipePool MakePipes(uint32_t count) {
  Result<PipePool> r = PipePool::create(count, 65536);
  if (!r.ok()) {
    ADD_FAILURE() << r.error();
    std::abort();
  }
  return std::move(r.value());
}

// The byte at offset k of direction d's stream.
std::byte Pattern(Dir d, uint64_t k) {
  return static_cast<std::byte>(static_cast<uint8_t>(k * 7 + (d == Dir::kC2U ? 0 : 101)));
}

// Everything that must hold between relay calls. `held` counts pool blocks held outside the
// connection; `transient_empty` allows an empty attached buffer (after prepare_read, before the
// read result is applied) or an empty pipe (after prepare_splice, before the splice result).
// With `pipes`, the pipes handed out must be exactly those the connection holds plus
// `pipes_held` held outside it.
::testing::AssertionResult Invariants(const Connection& c, const BufferPool& pool, uint32_t held,
                                      bool transient_empty = false, const PipePool* pipes = nullptr,
                                      uint32_t pipes_held = 0) {
  uint32_t attached = 0;
  uint32_t piped_sides = 0;
  for (const Dir d : kDirs) {
    const Side& src = c.source(d);
    const Side& dst = c.sink(d);
    const Buffer& in = src.in;
    if (in.attached()) {
      ++attached;
      if (in.readable() + in.writable() > kBufferBytes) {
        return ::testing::AssertionFailure() << Name(d) << ": readable + writable > capacity";
      }
      if (in.empty() && !transient_empty && c.state != State::kClosing) {
        return ::testing::AssertionFailure()
               << Name(d) << ": an empty buffer is held (must go back to the pool at once)";
      }
    } else if (in.readable() != 0 || in.writable() != 0) {
      return ::testing::AssertionFailure() << Name(d) << ": detached buffer with bytes or room";
    }
    if ((src.paused & kPauseBackpressure) && !in.full() && src.piped == 0) {
      return ::testing::AssertionFailure()
             << Name(d) << ": backpressure pause without a full buffer or a filled pipe";
    }
    if (src.pipe != kNoPipe) {
      ++piped_sides;
      if (src.piped == 0 && !transient_empty && c.state != State::kClosing) {
        return ::testing::AssertionFailure()
               << Name(d) << ": an empty pipe is held (must go back to the pool at once)";
      }
    } else if (src.piped != 0) {
      return ::testing::AssertionFailure() << Name(d) << ": bytes in a pipe nobody holds";
    }
    if (src.piped > 0 && !in.empty()) {
      return ::testing::AssertionFailure()
             << Name(d) << ": bytes in both the buffer and the pipe (they could overtake)";
    }
    const bool chained = d == Dir::kU2C && !c.accel.empty();
    // HTTP mode's end_client(): a detached upstream counts as ended both ways, though the client
    // may still send (its bytes are dropped by the worker).
    const bool detached_end = d == Dir::kC2U && c.upstream_released && c.upstream.fd < 0;
    if ((dst.flags & kWriteShut) && !detached_end &&
        !((src.flags & kEof) && in.empty() && src.piped == 0 && !chained)) {
      return ::testing::AssertionFailure()
             << Name(d) << ": sink shut before the source ended and its bytes were delivered";
    }
    if (c.state < State::kRelaying && d == Dir::kC2U && relay::next_step(c, d) == Step::kWrite) {
      return ::testing::AssertionFailure() << "write to the upstream before it is connected";
    }
  }
  if (pool.in_use() != attached + held + c.accel.blocks) {
    return ::testing::AssertionFailure()
           << "pool in_use " << pool.in_use() << " but " << attached << " attached + " << held
           << " held + " << c.accel.blocks << " chained";
  }
  if (!c.accel.empty()) {
    const uint32_t u2c_blocks = c.accel.blocks + (c.upstream.in.attached() ? 1u : 0u);
    if (c.accel_limit == 0 || u2c_blocks > c.accel_limit) {
      return ::testing::AssertionFailure()
             << "u2c holds " << u2c_blocks << " blocks, limit " << c.accel_limit;
    }
    if (c.upstream.piped != 0) {
      return ::testing::AssertionFailure() << "an accelerating direction holds a pipe";
    }
  }
  if (pipes != nullptr && pipes->in_use() != piped_sides + pipes_held) {
    return ::testing::AssertionFailure() << "pipes in_use " << pipes->in_use() << " but "
                                         << piped_sides << " held by sides + " << pipes_held;
  }
  if ((c.client.flags & c.upstream.flags & kFailed) && c.state != State::kClosing) {
    return ::testing::AssertionFailure()
           << "both sides failed but the state is " << to_string(c.state);
  }
  for (const Dir d : kDirs) {
    const Side& src = c.source(d);
    if (!(src.flags & kFailed)) continue;
    const bool handed = (src.flags & kEof) && src.in.empty() && src.piped == 0 &&
                        (d == Dir::kC2U || c.accel.empty());
    if (handed && c.state < State::kLingering && c.state >= State::kRelaying) {
      return ::testing::AssertionFailure()
             << Name(d) << ": the failed source's bytes were all handed over but the state is "
             << to_string(c.state);
    }
    if (relay::next_step(c, d) == Step::kShutdown) {
      return ::testing::AssertionFailure() << Name(d) << ": a FIN for a failed source";
    }
    const Dir back = d == Dir::kC2U ? Dir::kU2C : Dir::kC2U;
    const Step toward = relay::next_step(c, back);
    if (toward == Step::kWrite || toward == Step::kSpliceOut || toward == Step::kRead ||
        toward == Step::kSpliceIn) {
      return ::testing::AssertionFailure() << Name(back) << ": bytes moved toward a failed side";
    }
  }
  if (relay::direction_done(c, Dir::kC2U) && relay::direction_done(c, Dir::kU2C) &&
      c.state != State::kClosing) {
    return ::testing::AssertionFailure()
           << "both directions done but the state is " << to_string(c.state);
  }
  if (c.state == State::kDraining && !((c.client.flags | c.upstream.flags) & kWriteShut)) {
    return ::testing::AssertionFailure() << "draining without a shut write side";
  }
  if (c.state >= State::kLingering || c.state == State::kFree) {
    for (const Dir d : kDirs) {
      if (relay::next_step(c, d) != Step::kNone) {
        return ::testing::AssertionFailure() << Name(d) << ": a step after closing";
      }
    }
    if (relay::wanted_interest(c, c.client) != 0 || relay::wanted_interest(c, c.upstream) != 0) {
      return ::testing::AssertionFailure() << "interest wanted after closing";
    }
  }
  return ::testing::AssertionSuccess();
}

class RelayTest : public ::testing::Test {
 protected:
  explicit RelayTest(uint32_t blocks = 4) : pool_(MakePool(blocks)), pipes_(MakePipes(2)) {
    c_.client.fd = 10;
    c_.upstream.fd = 11;
    c_.state = State::kRelaying;
  }
  ~RelayTest() override {
    relay::release_buffers(c_, pool_, stats_);
    for (Buffer& b : held_) pool_.release(b);
    for (Side* side : {&c_.client, &c_.upstream}) {
      if (side->pipe != kNoPipe) pipes_.release(side->pipe);
    }
    for (const uint32_t id : pipes_held_) pipes_.release(id);
  }

  ::testing::AssertionResult Check(bool transient_empty = false) {
    return Invariants(c_, pool_, static_cast<uint32_t>(held_.size()), transient_empty, &pipes_,
                      static_cast<uint32_t>(pipes_held_.size()));
  }

  Step Next(Dir d) { return relay::next_step(c_, d, splice_); }

  // One splice into the source's pipe as the transport does it: prepare_splice, then the result.
  // False (nothing applied) when no pipe was free.
  bool SpliceIn(Dir d, SysResult r) {
    if (!relay::prepare_splice(c_, d, pipes_, stats_)) {
      EXPECT_TRUE(Check());
      return false;
    }
    EXPECT_TRUE(Check(/*transient_empty=*/true));
    relay::on_splice_in(c_, d, r, pipes_, stats_, now_);
    EXPECT_TRUE(Check());
    return true;
  }

  // One splice of everything the source's pipe holds into the sink, `r` being the result.
  void SpliceOut(Dir d, SysResult r) {
    const uint32_t asked = c_.source(d).piped;
    relay::on_splice_out(c_, d, r, asked, pipes_, stats_, now_);
    EXPECT_TRUE(Check());
  }

  // Takes every free pipe out of the pool.
  void DrainPipes() {
    uint32_t id = 0;
    while (pipes_.acquire(id)) pipes_held_.push_back(id);
  }

  // One read as the transport does it: prepare_read, then read into writable() bytes.
  bool Read(Dir d, SysResult r) {
    if (!relay::prepare_read(c_, d, pool_, stats_)) {
      EXPECT_TRUE(Check());
      return false;
    }
    EXPECT_TRUE(Check(/*transient_empty=*/true));
    const uint32_t asked = c_.source(d).in.writable();
    ReadAsked(d, r, asked);
    return true;
  }

  // on_read with an explicit `asked` (the buffer must be attached).
  void ReadAsked(Dir d, SysResult r, uint32_t asked) {
    Buffer& in = c_.source(d).in;
    uint64_t& produced = produced_[static_cast<int>(d)];
    if (r.ok() && r.value > 0) {
      for (long i = 0; i < r.value; ++i) in.write_ptr()[i] = Pattern(d, produced++);
    }
    relay::on_read(c_, d, r, asked, pool_, stats_, now_);
    EXPECT_TRUE(Check());
  }

  // One send of everything readable, `r` being what send() returned.
  void Write(Dir d, SysResult r) {
    const Buffer& in = c_.source(d).in;
    const uint32_t asked = in.readable();
    uint64_t& delivered = delivered_[static_cast<int>(d)];
    if (r.ok() && r.value > 0) {
      for (long i = 0; i < r.value; ++i) {
        EXPECT_EQ(in.read_ptr()[i], Pattern(d, delivered + static_cast<uint64_t>(i)))
            << Name(d) << " byte " << delivered + static_cast<uint64_t>(i);
      }
      delivered += static_cast<uint64_t>(r.value);
    }
    relay::on_write(c_, d, r, asked, pool_, stats_, now_);
    EXPECT_TRUE(Check());
  }

  void Shutdown(Dir d) {
    relay::on_shutdown(c_, d, SysResult{}, stats_, now_);
    EXPECT_TRUE(Check());
  }

  void Ready(Side& side, uint32_t bits) {
    relay::on_ready(c_, side, bits, stats_);
    EXPECT_TRUE(Check());
  }

  void Fail(Side& side) {
    relay::fail(c_, side, stats_);
    EXPECT_TRUE(Check());
  }

  uint32_t Want(const Side& side) const { return relay::wanted_interest(c_, side); }

  // Takes every free block out of the pool.
  void DrainPool() {
    while (pool_.available() > 0) {
      held_.emplace_back();
      ASSERT_TRUE(pool_.acquire(held_.back()));
    }
  }

  BufferPool pool_;
  PipePool pipes_;
  relay::SplicePolicy splice_;  // kNever unless a test sets it
  std::vector<uint32_t> pipes_held_;
  Stats stats_;
  Connection c_;
  LoopTime now_{5'000'000'000, 5'000};
  std::vector<Buffer> held_;
  uint64_t produced_[2] = {0, 0};
  uint64_t delivered_[2] = {0, 0};
};

// --- names ---------------------------------------------------------------------------------

TEST_F(RelayTest, ToStringNamesEveryState) {
  EXPECT_STREQ(to_string(State::kFree), "free");
  EXPECT_STREQ(to_string(State::kAccepted), "accepted");
  EXPECT_STREQ(to_string(State::kInspecting), "inspecting");
  EXPECT_STREQ(to_string(State::kRouting), "routing");
  EXPECT_STREQ(to_string(State::kConnecting), "connecting");
  EXPECT_STREQ(to_string(State::kRelaying), "relaying");
  EXPECT_STREQ(to_string(State::kDraining), "draining");
  EXPECT_STREQ(to_string(State::kClosing), "closing");
  EXPECT_STREQ(to_string(static_cast<State>(200)), "unknown");
}

// --- readiness -----------------------------------------------------------------------------

TEST_F(RelayTest, NothingToDoWithoutReadiness) {
  EXPECT_TRUE(Check());
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
  EXPECT_EQ(Want(c_.client), kWantRead);
  EXPECT_EQ(Want(c_.upstream), kWantRead);
}

TEST_F(RelayTest, OnReadyReadableAndWritable) {
  Ready(c_.client, kReadable);
  EXPECT_EQ(c_.client.flags, kReadReady);
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
  Ready(c_.upstream, kWritable);
  EXPECT_EQ(c_.upstream.flags, kWriteReady);
  Ready(c_.upstream, kReadable | kWritable);
  EXPECT_EQ(c_.upstream.flags, kReadReady | kWriteReady);
  EXPECT_EQ(c_.state, State::kRelaying);
}

// Regression: a half-close (EPOLLRDHUP) used to mark the side writable too, costing a send that
// could only return EAGAIN; the reactor reports a full hang-up as kHangup | kWritable instead.
TEST_F(RelayTest, OnReadyHangupSetsReadAndPeerShutOnly) {
  Ready(c_.client, kHangup);
  EXPECT_EQ(c_.client.flags, kReadReady | kPeerShut);
  EXPECT_EQ(c_.state, State::kRelaying);
  EXPECT_EQ(stats_.resets_client, 0u);
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead);
}

TEST_F(RelayTest, OnReadyErrorFailsTheSideAndReadsWhatItSentBefore) {
  Ready(c_.upstream, kError | kReadable | kWritable);
  EXPECT_TRUE(c_.upstream.flags & kFailed);
  EXPECT_TRUE(c_.upstream.flags & (kReadReady | kPeerShut)) << "its queued bytes are read";
  EXPECT_FALSE(c_.client.flags & kFailed);
  EXPECT_EQ(c_.state, State::kRelaying) << "its bytes are delivered before anything closes";
  EXPECT_EQ(Next(Dir::kU2C), Step::kRead);
  EXPECT_EQ(stats_.resets_upstream, 1u);
  EXPECT_EQ(stats_.resets_client, 0u);
}

TEST_F(RelayTest, OnReadyErrorOnClientCountsClient) {
  Ready(c_.client, kError | kHangup);
  EXPECT_TRUE(c_.client.flags & kFailed);
  EXPECT_EQ(stats_.resets_client, 1u);
  EXPECT_EQ(stats_.resets_upstream, 0u);
  EXPECT_EQ(c_.state, State::kRelaying);
}

// --- reading -------------------------------------------------------------------------------

TEST_F(RelayTest, ShortReadClearsReadReady) {
  Ready(c_.client, kReadable);
  ASSERT_EQ(Next(Dir::kC2U), Step::kRead);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(100)));
  EXPECT_FALSE(c_.client.flags & kReadReady) << "a short read drained the socket";
  EXPECT_EQ(c_.client.in.readable(), 100u);
  EXPECT_EQ(c_.client.paused, 0);
  EXPECT_EQ(stats_.reads_client, 1u);
  EXPECT_EQ(stats_.reads_upstream, 0u);
  EXPECT_EQ(c_.last_active_ms, now_.ms);
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << "upstream not writable, client drained";
  Ready(c_.upstream, kWritable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kWrite);
}

TEST_F(RelayTest, ReadOfAllAskedKeepsReadReady) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(relay::prepare_read(c_, Dir::kC2U, pool_, stats_));
  ReadAsked(Dir::kC2U, Bytes(200), 200);
  EXPECT_TRUE(c_.client.flags & kReadReady) << "more may be waiting";
  EXPECT_FALSE(c_.client.in.full());
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead);
}

TEST_F(RelayTest, ShortReadAfterPeerShutKeepsReadingUntilEof) {
  Ready(c_.client, kReadable | kHangup);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(100)));
  EXPECT_TRUE(c_.client.flags & kReadReady) << "no further edge will come after RDHUP";
  ASSERT_EQ(Next(Dir::kC2U), Step::kRead) << "the upstream is not writable: read on";
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  EXPECT_TRUE(c_.client.flags & kEof);
  EXPECT_FALSE(c_.client.flags & kReadReady);
  EXPECT_EQ(c_.client.in.readable(), 100u) << "EOF keeps the bytes still to deliver";
  EXPECT_EQ(stats_.reads_client, 2u);
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
}

// The server's response and FIN arrive together (RDHUP): epoll reads to the EOF before writing,
// so the write knows it is the direction's last and the FIN can leave with its bytes.
TEST_F(RelayTest, AShutPeerIsReadToItsEndBeforeTheLastWrite) {
  Ready(c_.client, kWritable);
  Ready(c_.upstream, kReadable | kHangup);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(138)));
  ASSERT_EQ(Next(Dir::kU2C), Step::kWrite);
  EXPECT_TRUE(relay::reads_to_end_first(c_, Dir::kU2C)) << "the end is in the socket already";
  EXPECT_FALSE(relay::last_write(c_, Dir::kU2C, 138)) << "not known to be the last yet";
  ASSERT_TRUE(Read(Dir::kU2C, Eof()));
  EXPECT_FALSE(relay::reads_to_end_first(c_, Dir::kU2C)) << "nothing left to read";
  ASSERT_EQ(Next(Dir::kU2C), Step::kWrite);
  EXPECT_TRUE(relay::last_write(c_, Dir::kU2C, 138));
  EXPECT_FALSE(relay::last_write(c_, Dir::kU2C, 100)) << "a write of part leaves bytes held";
  EXPECT_EQ(stats_.server_finished_first, 0u) << "held by the read order, not by the client";
  Write(Dir::kU2C, Bytes(138));
  EXPECT_EQ(Next(Dir::kU2C), Step::kShutdown) << "the FIN follows the last write at once";
}

// epoll: a short read after the peer's FIN was reported took every byte before it and reached
// the FIN, so the read() that would return 0 is not made; never past an urgent mark, on a
// failed side, without the report, or for a full read.
TEST_F(RelayTest, AShortReadAfterThePeersFinStoppedAtTheFin) {
  Side& s = c_.upstream;
  EXPECT_FALSE(relay::read_stopped_at_fin(s, Bytes(100), 8192)) << "no RDHUP: more may come";
  Ready(s, kReadable | kHangup);
  EXPECT_TRUE(relay::read_stopped_at_fin(s, Bytes(100), 8192));
  EXPECT_FALSE(relay::read_stopped_at_fin(s, Bytes(8192), 8192)) << "a full read: more may wait";
  EXPECT_FALSE(relay::read_stopped_at_fin(s, Eof(), 8192)) << "the end itself";
  EXPECT_FALSE(relay::read_stopped_at_fin(s, SysResult{-1, EAGAIN}, 8192));
  s.flags |= kUrgent;
  EXPECT_FALSE(relay::read_stopped_at_fin(s, Bytes(100), 8192)) << "stopped before an urgent mark";
  s.flags = static_cast<uint8_t>(s.flags & ~kUrgent);
  s.flags |= kFailed;
  EXPECT_FALSE(relay::read_stopped_at_fin(s, Bytes(100), 8192)) << "the error may come next";
}

TEST_F(RelayTest, NoReadingAheadWithoutThePeersEndOrRoom) {
  Ready(c_.client, kWritable);
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(kBufferBytes)));  // all asked: still readable
  ASSERT_EQ(Next(Dir::kU2C), Step::kWrite);
  EXPECT_FALSE(relay::reads_to_end_first(c_, Dir::kU2C)) << "no RDHUP: write first";
  Ready(c_.upstream, kHangup);
  EXPECT_FALSE(relay::reads_to_end_first(c_, Dir::kU2C)) << "a full block: write first";
  Write(Dir::kU2C, Bytes(kBufferBytes));
  EXPECT_EQ(Next(Dir::kU2C), Step::kRead) << "the emptied block went back: read on";
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(10)));
  EXPECT_TRUE(relay::reads_to_end_first(c_, Dir::kU2C));
  c_.limits |= kLimitRateDown;
  EXPECT_FALSE(relay::reads_to_end_first(c_, Dir::kU2C)) << "a one-read limit: write first";
  c_.limits = 0;
  c_.pooled = true;
  EXPECT_FALSE(relay::reads_to_end_first(c_, Dir::kU2C))
      << "a pooled upstream's end is the worker's";
  c_.pooled = false;
}

TEST_F(RelayTest, AnEndReadWithBytesHeldBehindAGateCountsAsTheServerFinishingFirst) {
  Ready(c_.client, kWritable);
  Ready(c_.upstream, kReadable | kHangup);
  c_.upstream.gate = 0;  // the worker has not approved the bytes yet (forward or HTTP mode)
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(50)));
  ASSERT_TRUE(Read(Dir::kU2C, Eof()));
  EXPECT_EQ(stats_.server_finished_first, 1u) << "held by the gate, not by the read order";
}

TEST_F(RelayTest, NoLastWriteWhenTheEndIsNotPassedOn) {
  Ready(c_.client, kWritable);
  Ready(c_.upstream, kReadable | kHangup);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(50)));
  ASSERT_TRUE(Read(Dir::kU2C, Eof()));
  ASSERT_TRUE(relay::last_write(c_, Dir::kU2C, 50));
  c_.pooled = true;
  EXPECT_FALSE(relay::last_write(c_, Dir::kU2C, 50)) << "HTTP mode: the worker ends the client";
  c_.pooled = false;
  c_.upstream.paused |= kPauseReplay;
  EXPECT_FALSE(relay::last_write(c_, Dir::kU2C, 50));
  c_.upstream.paused = 0;
  c_.upstream.gate = 20;
  EXPECT_FALSE(relay::last_write(c_, Dir::kU2C, relay::writable(c_.upstream)))
      << "bytes past the gate stay held";
  c_.upstream.gate = kOpenGate;
  EXPECT_EQ(stats_.server_finished_first, 0u) << "all 50 bytes were writable at the end";
  c_.upstream.flags |= kFailed;
  EXPECT_FALSE(relay::last_write(c_, Dir::kU2C, 50)) << "a failed source's end is a reset";
}

TEST_F(RelayTest, WouldBlockClearsReadReadyAndReturnsEmptyBuffer) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Errno(EAGAIN)));
  EXPECT_FALSE(c_.client.flags & kReadReady);
  EXPECT_FALSE(c_.client.in.attached()) << "an idle side holds no buffer";
  EXPECT_EQ(pool_.in_use(), 0u);
  EXPECT_EQ(stats_.reads_client, 0u);
  EXPECT_EQ(c_.state, State::kRelaying);
  EXPECT_EQ(Want(c_.client), kWantRead);
}

TEST_F(RelayTest, WouldBlockKeepsBufferWithBytes) {
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(relay::prepare_read(c_, Dir::kU2C, pool_, stats_));
  ReadAsked(Dir::kU2C, Bytes(300), 300);
  ASSERT_TRUE(Read(Dir::kU2C, Errno(EWOULDBLOCK)));
  EXPECT_FALSE(c_.upstream.flags & kReadReady);
  EXPECT_TRUE(c_.upstream.in.attached());
  EXPECT_EQ(c_.upstream.in.readable(), 300u);
}

TEST_F(RelayTest, ReadAppendsAfterPartialWrite) {
  Ready(c_.client, kReadable);
  Ready(c_.upstream, kWritable);
  ASSERT_TRUE(relay::prepare_read(c_, Dir::kC2U, pool_, stats_));
  ReadAsked(Dir::kC2U, Bytes(1000), 1000);
  Write(Dir::kC2U, Bytes(400));  // short: upstream send buffer full
  EXPECT_FALSE(c_.upstream.flags & kWriteReady);
  ASSERT_EQ(Next(Dir::kC2U), Step::kRead);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(50)));
  EXPECT_EQ(c_.client.in.readable(), 650u);
  Ready(c_.upstream, kWritable);
  Write(Dir::kC2U, Bytes(650));
  EXPECT_FALSE(c_.client.in.attached());
  EXPECT_EQ(delivered_[0], 1050u);
}

TEST_F(RelayTest, EofWithEmptyBufferReturnsIt) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  EXPECT_TRUE(c_.client.flags & kEof);
  EXPECT_FALSE(c_.client.in.attached());
  EXPECT_EQ(pool_.in_use(), 0u);
  EXPECT_EQ(stats_.reads_client, 1u);
  EXPECT_EQ(Want(c_.client), 0u) << "nothing more to read from an ended side";
}

// --- backpressure and the pool --------------------------------------------------------------

TEST_F(RelayTest, FullBufferPausesReadingForBackpressure) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(kBufferBytes)));
  EXPECT_TRUE(c_.client.in.full());
  EXPECT_EQ(c_.client.paused, kPauseBackpressure);
  EXPECT_TRUE(c_.client.flags & kReadReady) << "a full read does not prove the socket drained";
  EXPECT_FALSE(Want(c_.client) & kWantRead) << "a paused source drops read interest";
  EXPECT_EQ(Want(c_.upstream), kWantRead | kWantWrite) << "bytes wait for the upstream";
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
}

TEST_F(RelayTest, DrainingWriteReturnsBufferAndLiftsPause) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(kBufferBytes)));
  Ready(c_.upstream, kWritable);
  ASSERT_EQ(Next(Dir::kC2U), Step::kWrite);
  EXPECT_EQ(pool_.in_use(), 1u);
  Write(Dir::kC2U, Bytes(kBufferBytes));
  EXPECT_FALSE(c_.client.in.attached());
  EXPECT_EQ(pool_.in_use(), 0u);
  EXPECT_EQ(c_.client.paused, 0);
  EXPECT_TRUE(c_.upstream.flags & kWriteReady) << "a full write leaves the sink writable";
  EXPECT_TRUE(Want(c_.client) & kWantRead);
  EXPECT_EQ(Want(c_.upstream), kWantRead);
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead) << "kReadReady survived the pause";
  EXPECT_EQ(stats_.bytes_c2u, kBufferBytes);
  EXPECT_EQ(stats_.writes_upstream, 1u);
  EXPECT_EQ(stats_.writes_client, 0u);
}

TEST_F(RelayTest, PartialWriteKeepsPauseUntilEmpty) {
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(kBufferBytes)));
  Ready(c_.client, kWritable);
  Write(Dir::kU2C, Bytes(3000));
  EXPECT_FALSE(c_.client.flags & kWriteReady) << "a short write means the send buffer is full";
  EXPECT_EQ(c_.upstream.paused, kPauseBackpressure) << "resume only at empty (decision 0003)";
  EXPECT_EQ(c_.upstream.in.readable(), kBufferBytes - 3000);
  EXPECT_EQ(Want(c_.client), kWantRead | kWantWrite);
  EXPECT_EQ(Want(c_.upstream), 0u);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
  Ready(c_.client, kWritable);
  ASSERT_EQ(Next(Dir::kU2C), Step::kWrite);
  Write(Dir::kU2C, Bytes(kBufferBytes - 3000));
  EXPECT_EQ(c_.upstream.paused, 0);
  EXPECT_FALSE(c_.upstream.in.attached());
  EXPECT_EQ(stats_.bytes_u2c, kBufferBytes);
  EXPECT_EQ(stats_.writes_client, 2u);
}

TEST_F(RelayTest, WriteWouldBlockOrZeroClearsWriteReady) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(10)));
  Ready(c_.upstream, kWritable);
  Write(Dir::kC2U, Errno(EAGAIN));
  EXPECT_FALSE(c_.upstream.flags & kWriteReady);
  EXPECT_EQ(c_.client.in.readable(), 10u);
  EXPECT_EQ(c_.state, State::kRelaying);
  EXPECT_EQ(Want(c_.upstream), kWantRead | kWantWrite);
  Ready(c_.upstream, kWritable);
  Write(Dir::kC2U, Bytes(0));
  EXPECT_FALSE(c_.upstream.flags & kWriteReady);
  EXPECT_EQ(c_.state, State::kRelaying);
  EXPECT_EQ(stats_.writes_upstream, 0u);
  EXPECT_EQ(stats_.bytes_c2u, 0u);
}

TEST_F(RelayTest, EmptyPoolPausesReadAndCountsWait) {
  DrainPool();
  Ready(c_.client, kReadable);
  ASSERT_EQ(Next(Dir::kC2U), Step::kRead);
  EXPECT_FALSE(Read(Dir::kC2U, Bytes(1)));
  EXPECT_EQ(c_.client.paused, kPauseNoBuffer);
  EXPECT_EQ(stats_.pool_waits, 1u);
  EXPECT_FALSE(c_.client.in.attached());
  EXPECT_TRUE(c_.client.flags & kReadReady) << "nothing was read: the socket still has bytes";
  EXPECT_FALSE(Want(c_.client) & kWantRead);
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << "no busy loop on an empty pool";
  // A block comes back; the worker lifts the pause and the read goes ahead.
  pool_.release(held_.back());
  held_.pop_back();
  c_.client.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
  ASSERT_EQ(Next(Dir::kC2U), Step::kRead);
  EXPECT_TRUE(Read(Dir::kC2U, Bytes(1)));
  EXPECT_EQ(c_.client.in.readable(), 1u);
  EXPECT_EQ(stats_.pool_waits, 1u);
}

TEST_F(RelayTest, PrepareReadKeepsAnAttachedBuffer) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(relay::prepare_read(c_, Dir::kC2U, pool_, stats_));
  ReadAsked(Dir::kC2U, Bytes(5), 100);
  const uint32_t id = c_.client.in.id();
  DrainPool();
  EXPECT_TRUE(relay::prepare_read(c_, Dir::kC2U, pool_, stats_)) << "no new block is needed";
  EXPECT_TRUE(Check());
  EXPECT_EQ(c_.client.in.id(), id);
  EXPECT_EQ(c_.client.paused, 0);
  EXPECT_EQ(stats_.pool_waits, 0u);
}

// --- connecting ----------------------------------------------------------------------------

TEST_F(RelayTest, NoWriteToUpstreamWhileConnecting) {
  c_.state = State::kConnecting;
  EXPECT_EQ(Want(c_.upstream), kWantWrite) << "wait for the connect to complete";
  EXPECT_EQ(Want(c_.client), kWantRead);
  // Even a stray writable edge must not let bytes go before the connect completes.
  c_.upstream.flags |= kWriteReady;
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(100)));
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << "data read from the client is held";
  EXPECT_EQ(c_.client.in.readable(), 100u);
  EXPECT_EQ(Want(c_.upstream), kWantWrite);
  // The client ends while connecting: no shutdown of the upstream yet either.
  Ready(c_.client, kReadable | kHangup);
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
  EXPECT_EQ(stats_.bytes_c2u, 0u);

  relay::on_connected(c_);
  EXPECT_TRUE(Check());
  EXPECT_EQ(c_.state, State::kRelaying);
  EXPECT_TRUE(c_.upstream.flags & kWriteReady);
  ASSERT_EQ(Next(Dir::kC2U), Step::kWrite);
  Write(Dir::kC2U, Bytes(100));
  ASSERT_EQ(Next(Dir::kC2U), Step::kShutdown);
  Shutdown(Dir::kC2U);
  EXPECT_EQ(c_.state, State::kDraining);
}

TEST_F(RelayTest, EarlyStatesNeverWriteOrShutUpstream) {
  for (const State s : {State::kAccepted, State::kRouting, State::kConnecting}) {
    c_.state = s;
    c_.client.flags = kEof;
    c_.upstream.flags = kWriteReady;
    EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << to_string(s);
    c_.client.flags = kReadReady;
    EXPECT_EQ(Next(Dir::kC2U), Step::kRead) << to_string(s) << ": reading ahead is allowed";
  }
}

TEST_F(RelayTest, OnConnectedMakesUpstreamWritable) {
  c_.state = State::kConnecting;
  relay::on_connected(c_);
  EXPECT_TRUE(Check());
  EXPECT_EQ(c_.state, State::kRelaying);
  EXPECT_EQ(c_.upstream.flags, kWriteReady);
  EXPECT_EQ(Want(c_.upstream), kWantRead);
}

// --- end of stream -------------------------------------------------------------------------

TEST_F(RelayTest, EofShutsDownOnlyOnceBufferIsEmpty) {
  Ready(c_.client, kReadable | kHangup);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(100)));
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << "100 bytes still to deliver: no shutdown yet";
  EXPECT_FALSE(relay::direction_done(c_, Dir::kC2U));
  Ready(c_.upstream, kWritable);
  ASSERT_EQ(Next(Dir::kC2U), Step::kWrite);
  Write(Dir::kC2U, Bytes(60));
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << "40 bytes still to deliver";
  Ready(c_.upstream, kWritable);
  ASSERT_EQ(Next(Dir::kC2U), Step::kWrite);
  Write(Dir::kC2U, Bytes(40));
  ASSERT_EQ(Next(Dir::kC2U), Step::kShutdown);
  EXPECT_FALSE(relay::direction_done(c_, Dir::kC2U));
  Shutdown(Dir::kC2U);
  EXPECT_TRUE(c_.upstream.flags & kWriteShut);
  EXPECT_TRUE(relay::direction_done(c_, Dir::kC2U));
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << "shut once";
  EXPECT_EQ(c_.state, State::kDraining);
}

TEST_F(RelayTest, ShutdownNeedsNoWriteReadiness) {
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Eof()));
  EXPECT_FALSE(c_.client.flags & kWriteReady);
  EXPECT_EQ(Next(Dir::kU2C), Step::kShutdown);
}

TEST_F(RelayTest, FirstDirectionDoneDrainsSecondCloses) {
  // c2u ends first.
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  ASSERT_EQ(Next(Dir::kC2U), Step::kShutdown);
  EXPECT_FALSE(relay::shutdown_is_last(c_, Dir::kC2U)) << "u2c still flows: the FIN is needed now";
  Shutdown(Dir::kC2U);
  EXPECT_EQ(c_.state, State::kDraining);
  EXPECT_EQ(Want(c_.client), 0u);
  EXPECT_EQ(Want(c_.upstream), kWantRead) << "the other direction still flows";
  // u2c keeps flowing, then ends.
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(500)));
  Ready(c_.client, kWritable);
  ASSERT_EQ(Next(Dir::kU2C), Step::kWrite);
  Write(Dir::kU2C, Bytes(500));
  EXPECT_EQ(c_.state, State::kDraining);
  Ready(c_.upstream, kReadable | kHangup);
  ASSERT_TRUE(Read(Dir::kU2C, Eof()));
  ASSERT_EQ(Next(Dir::kU2C), Step::kShutdown);
  EXPECT_TRUE(relay::shutdown_is_last(c_, Dir::kU2C)) << "the close that follows sends the FIN";
  Shutdown(Dir::kU2C);
  EXPECT_TRUE(relay::direction_done(c_, Dir::kU2C));
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_FALSE((c_.client.flags | c_.upstream.flags) & kFailed) << "an orderly close";
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
  EXPECT_EQ(Want(c_.client), 0u);
  EXPECT_EQ(Want(c_.upstream), 0u);
  EXPECT_EQ(pool_.in_use(), 0u);
}

TEST_F(RelayTest, UpstreamEndsFirstThenClient) {
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Eof()));
  EXPECT_FALSE(relay::shutdown_is_last(c_, Dir::kU2C));
  Shutdown(Dir::kU2C);
  EXPECT_EQ(c_.state, State::kDraining);
  EXPECT_TRUE(c_.client.flags & kWriteShut);
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  ASSERT_EQ(Next(Dir::kC2U), Step::kShutdown);
  EXPECT_TRUE(relay::shutdown_is_last(c_, Dir::kC2U));
  Shutdown(Dir::kC2U);
  EXPECT_EQ(c_.state, State::kClosing);
}

TEST_F(RelayTest, DirectionDoneNeedsEofEmptyAndShut) {
  EXPECT_FALSE(relay::direction_done(c_, Dir::kC2U));
  c_.client.flags = kEof;
  EXPECT_FALSE(relay::direction_done(c_, Dir::kC2U)) << "sink not shut";
  c_.upstream.flags = kWriteShut;
  EXPECT_TRUE(relay::direction_done(c_, Dir::kC2U));
  ASSERT_TRUE(pool_.acquire(c_.client.in));
  c_.client.in.commit(1);
  EXPECT_FALSE(relay::direction_done(c_, Dir::kC2U)) << "bytes not delivered";
  c_.client.in.consume(1);
  c_.client.flags = 0;
  EXPECT_FALSE(relay::direction_done(c_, Dir::kC2U)) << "source not ended";
  EXPECT_FALSE(relay::direction_done(c_, Dir::kU2C));
}

// --- errors --------------------------------------------------------------------------------

TEST_F(RelayTest, ReadResetFailsClient) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Errno(ECONNRESET)));
  EXPECT_EQ(c_.state, State::kLingering) << "nothing of the client's left to deliver";
  EXPECT_TRUE(c_.client.flags & kFailed);
  EXPECT_TRUE(c_.client.flags & kEof) << "its bytes ended with the error";
  EXPECT_FALSE(c_.upstream.flags & kFailed);
  EXPECT_EQ(stats_.resets_client, 1u);
  EXPECT_EQ(stats_.resets_upstream, 0u);
  EXPECT_FALSE(c_.client.in.attached()) << "the empty block went back";
}

TEST_F(RelayTest, ReadErrorOnUpstreamCountsUpstream) {
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Errno(ETIMEDOUT)));
  EXPECT_EQ(c_.state, State::kLingering);
  EXPECT_TRUE(c_.upstream.flags & kFailed);
  EXPECT_EQ(stats_.resets_upstream, 1u);
  EXPECT_EQ(stats_.resets_client, 0u);
}

TEST_F(RelayTest, WriteErrorFailsTheSink) {
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(10)));
  Ready(c_.client, kWritable);
  Write(Dir::kU2C, Errno(EPIPE));
  EXPECT_TRUE(c_.client.flags & kFailed) << "the client could not be written";
  EXPECT_FALSE(c_.upstream.flags & kFailed);
  EXPECT_EQ(stats_.resets_client, 1u);
  EXPECT_EQ(stats_.resets_upstream, 0u);
  EXPECT_EQ(stats_.bytes_u2c, 0u);
  // What the client sent before is still read and delivered; nothing more toward it.
  EXPECT_EQ(c_.state, State::kRelaying);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone) << "no write, and no read, toward a failed sink";
  Ready(c_.client, kReadable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead);
}

TEST_F(RelayTest, WriteResetOnUpstreamCountsUpstream) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(10)));
  Ready(c_.upstream, kWritable);
  Write(Dir::kC2U, Errno(ECONNRESET));
  EXPECT_EQ(c_.state, State::kRelaying);
  EXPECT_TRUE(c_.upstream.flags & kFailed);
  EXPECT_EQ(stats_.resets_upstream, 1u);
}

TEST_F(RelayTest, FailCountsEachSideOnce) {
  Fail(c_.client);
  Fail(c_.client);
  EXPECT_EQ(stats_.resets_client, 1u);
  Fail(c_.upstream);
  EXPECT_EQ(stats_.resets_upstream, 1u);
  EXPECT_EQ(c_.state, State::kClosing);
}

TEST_F(RelayTest, FailWhileDrainingLingers) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  Shutdown(Dir::kC2U);
  ASSERT_EQ(c_.state, State::kDraining);
  Ready(c_.client, kError);
  EXPECT_EQ(c_.state, State::kLingering) << "the upstream is reset once it has acknowledged";
  EXPECT_EQ(stats_.resets_client, 1u);
  EXPECT_EQ(&relay::surviving_side(c_), &c_.upstream);
  relay::on_acknowledged(c_);
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_FALSE(relay::ends_cleanly(c_)) << "the upstream's bytes never reached the client";
}

TEST_F(RelayTest, BothSidesFailedCloseAtOnce) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(10)));
  Fail(c_.upstream);
  EXPECT_EQ(c_.state, State::kRelaying);
  Fail(c_.client);
  EXPECT_EQ(c_.state, State::kClosing) << "nothing can be delivered either way";
}

TEST_F(RelayTest, FailBeforeRelayingClosesAtOnce) {
  c_.state = State::kConnecting;
  Ready(c_.client, kError);
  EXPECT_EQ(c_.state, State::kClosing);
}

TEST_F(RelayTest, ClosingStopsEverything) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(10)));
  Ready(c_.upstream, kReadable | kWritable);
  relay::abort(c_, EndReason::kIdleTimeout);
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
  EXPECT_EQ(Want(c_.client), 0u);
  EXPECT_EQ(Want(c_.upstream), 0u);
  c_.state = State::kFree;
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
  EXPECT_EQ(Want(c_.client), 0u);
}

// --- a reset after bytes (issue 9, item 4): the bytes first, then the reset -----------------

TEST_F(RelayTest, ResetAfterBytesDeliversThemThenLingers) {
  Ready(c_.upstream, kReadable | kError | kHangup);
  ASSERT_EQ(Next(Dir::kU2C), Step::kRead) << "the bytes queued before the reset are read";
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(100)));
  Ready(c_.client, kWritable);
  ASSERT_EQ(Next(Dir::kU2C), Step::kWrite);
  Write(Dir::kU2C, Bytes(60));
  EXPECT_EQ(c_.state, State::kRelaying);
  Write(Dir::kU2C, Bytes(40));
  ASSERT_EQ(Next(Dir::kU2C), Step::kRead);
  ASSERT_TRUE(Read(Dir::kU2C, Errno(ECONNRESET)));
  EXPECT_EQ(stats_.resets_upstream, 1u) << "one reset, counted once";
  EXPECT_EQ(stats_.bytes_u2c, 100u);
  EXPECT_EQ(c_.state, State::kLingering) << "every byte handed over: reset once acknowledged";
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone) << "no FIN for an abnormal end";
  EXPECT_EQ(&relay::surviving_side(c_), &c_.client);
  relay::on_acknowledged(c_);
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_FALSE(relay::ends_cleanly(c_));
}

TEST_F(RelayTest, ResetWhoseErrorASendConsumedEndsAbnormallyAtZero) {
  // A send to the upstream took its error: reading it then gives what was queued, then 0.
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(10)));
  Ready(c_.upstream, kWritable);
  Write(Dir::kC2U, Errno(ECONNRESET));
  ASSERT_EQ(Next(Dir::kU2C), Step::kRead);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(5)));
  Ready(c_.client, kWritable);
  Write(Dir::kU2C, Bytes(5));
  ASSERT_TRUE(Read(Dir::kU2C, Eof()));
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone) << "0 after an error is no orderly end: no FIN";
  EXPECT_EQ(c_.state, State::kLingering);
}

TEST_F(RelayTest, RefusedShutdownFailsTheSink) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  ASSERT_EQ(Next(Dir::kC2U), Step::kShutdown);
  relay::on_shutdown(c_, Dir::kC2U, Errno(ENOTCONN), stats_, now_);
  EXPECT_TRUE(Check());
  EXPECT_TRUE(c_.upstream.flags & kFailed);
  EXPECT_FALSE(c_.upstream.flags & kWriteShut);
  EXPECT_EQ(stats_.resets_upstream, 1u);
}

TEST_F(RelayTest, AbortClosesWithResetsUnlessBothDirectionsEnded) {
  relay::abort(c_, EndReason::kIdleTimeout);
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_FALSE(relay::ends_cleanly(c_)) << "an idle cut in mid-stream is no clean end";
}

TEST_F(RelayTest, BothDirectionsDoneEndCleanly) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  Shutdown(Dir::kC2U);
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Eof()));
  Shutdown(Dir::kU2C);
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_TRUE(relay::ends_cleanly(c_));
}

TEST_F(RelayTest, UpstreamDroppedGoesBackToRouting) {
  c_.state = State::kConnecting;
  c_.upstream.ops = 0x8;  // a completion backend's cancel still in flight on the old fd
  c_.upstream.flags = kWriteReady;
  relay::on_upstream_dropped(c_);
  EXPECT_EQ(c_.state, State::kRouting);
  EXPECT_EQ(c_.upstream.fd, -1);
  EXPECT_EQ(c_.upstream.flags, 0);
  EXPECT_EQ(c_.upstream.ops, 0x8) << "the slot must not be freed under that cancel";
  relay::on_connecting(c_);
  EXPECT_EQ(c_.state, State::kConnecting);
}

// --- content-aware routing (issue 11): inspecting, replay, refusal ---------------------------

TEST_F(RelayTest, InspectingBehindADeferredAcceptReadsAtOnce) {
  c_.state = State::kAccepted;
  relay::on_inspecting(c_, true);
  EXPECT_EQ(relay::next_step(c_, Dir::kC2U), Step::kRead);
}

TEST_F(RelayTest, InspectingReadsTheClientButNeverWritesUpstream) {
  c_.state = State::kAccepted;
  relay::on_inspecting(c_, false);
  EXPECT_EQ(c_.state, State::kInspecting);
  EXPECT_EQ(relay::next_step(c_, Dir::kC2U), Step::kNone) << "the edge says when bytes came";
  Ready(c_.client, kReadable);
  EXPECT_EQ(relay::next_step(c_, Dir::kC2U), Step::kRead);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(100)));
  Ready(c_.client, kReadable);
  EXPECT_EQ(relay::next_step(c_, Dir::kC2U), Step::kRead) << "no upstream to write to yet";
  relay::on_routed(c_);
  EXPECT_EQ(c_.state, State::kRouting);
}

TEST_F(RelayTest, ReplayPauseStopsClientReadsButNotTheWriteOfWhatClientInHolds) {
  c_.state = State::kRelaying;
  c_.upstream.flags = kWriteReady;
  Ready(c_.client, kReadable);
  relay::hold_for_replay(c_);
  EXPECT_EQ(relay::next_step(c_, Dir::kC2U), Step::kNone);
  EXPECT_TRUE(Want(c_.client) & kWantRead) << "no epoll_ctl to pause and resume the replay";
  // The worker puts the held bytes in client.in: they are written like client bytes.
  ASSERT_TRUE(relay::prepare_read(c_, Dir::kC2U, pool_, stats_));
  ReadAsked(Dir::kC2U, Bytes(10), c_.client.in.writable());
  EXPECT_EQ(relay::next_step(c_, Dir::kC2U), Step::kWrite);
  Write(Dir::kC2U, Bytes(10));
  EXPECT_EQ(relay::next_step(c_, Dir::kC2U), Step::kNone);
  relay::end_replay(c_);
  Ready(c_.client, kReadable);
  EXPECT_EQ(relay::next_step(c_, Dir::kC2U), Step::kRead);
  EXPECT_TRUE(Want(c_.client) & kWantRead);
}

TEST_F(RelayTest, ARefusalWithAFinEndsCleanlyAndARejectResetsBoth) {
  c_.state = State::kInspecting;
  relay::on_refused(c_, false, EndReason::kRouteClose);
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_TRUE(relay::ends_cleanly(c_));
  Connection rejected;
  rejected.state = State::kInspecting;
  relay::on_refused(rejected, true, EndReason::kRouteReject);
  EXPECT_EQ(rejected.state, State::kClosing);
  EXPECT_FALSE(relay::ends_cleanly(rejected));
}

TEST_F(RelayTest, AClientThatFailsWhileInspectingClosesAtOnce) {
  c_.state = State::kInspecting;
  Fail(c_.client);
  EXPECT_EQ(c_.state, State::kClosing);
}

// --- urgent data (issue 9, item 1): splice stops at the mark, read steps over it ------------

TEST_F(RelayTest, UrgentDataReadsThroughABufferPastShortReads) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.client, kReadable | kUrgentData);
  EXPECT_TRUE(c_.client.flags & kUrgent);
  ASSERT_EQ(Next(Dir::kC2U), Step::kRead) << "splice cannot pass the urgent mark";
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(100)));  // read() stops short just before the mark
  EXPECT_TRUE(c_.client.flags & kReadReady) << "a short read at the mark is no drain";
  Ready(c_.upstream, kWritable);
  Write(Dir::kC2U, Bytes(100));
  ASSERT_EQ(Next(Dir::kC2U), Step::kRead);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(50)));  // past the mark (the urgent byte skipped)
  Write(Dir::kC2U, Bytes(50));
  ASSERT_TRUE(Read(Dir::kC2U, Errno(EAGAIN)));
  EXPECT_FALSE(c_.client.flags & (kUrgent | kReadReady)) << "EAGAIN: drained and past it";
  Ready(c_.client, kReadable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kSpliceIn) << "back to splicing";
}

TEST_F(RelayTest, SpliceZeroIsConfirmedByARead) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.client, kReadable | kHangup);
  ASSERT_TRUE(SpliceIn(Dir::kC2U, Bytes(1000)));
  Ready(c_.upstream, kWritable);
  SpliceOut(Dir::kC2U, Bytes(1000));
  ASSERT_TRUE(SpliceIn(Dir::kC2U, Eof()));  // at the urgent mark, the FIN already in
  EXPECT_FALSE(c_.client.flags & kEof);
  ASSERT_EQ(Next(Dir::kC2U), Step::kRead);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(700)));  // the bytes after the mark
  Write(Dir::kC2U, Bytes(700));
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  EXPECT_TRUE(c_.client.flags & kEof);
  EXPECT_EQ(Next(Dir::kC2U), Step::kShutdown);
  EXPECT_EQ(stats_.bytes_c2u, 1700u);
}

// --- interest ------------------------------------------------------------------------------

TEST_F(RelayTest, WantWriteOnlyWhenBytesWaitAndSideNotWritable) {
  EXPECT_FALSE(Want(c_.upstream) & kWantWrite) << "nothing to write";
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(10)));
  EXPECT_TRUE(Want(c_.upstream) & kWantWrite) << "bytes wait, upstream not known writable";
  EXPECT_FALSE(Want(c_.client) & kWantWrite) << "nothing waits for the client";
  Ready(c_.upstream, kWritable);
  EXPECT_FALSE(Want(c_.upstream) & kWantWrite) << "already writable: no EPOLLOUT needed";
  Write(Dir::kC2U, Bytes(10));
  EXPECT_FALSE(Want(c_.upstream) & kWantWrite);
}

TEST_F(RelayTest, WantReadDroppedAfterEofFailureOrPause) {
  c_.client.flags = kEof;
  EXPECT_FALSE(Want(c_.client) & kWantRead);
  c_.client.flags = 0;
  c_.client.paused = kPauseNoBuffer;
  EXPECT_FALSE(Want(c_.client) & kWantRead);
  c_.client.paused = 0;
  EXPECT_TRUE(Want(c_.client) & kWantRead);
  c_.upstream.flags = kFailed;
  EXPECT_TRUE(Want(c_.upstream) & kWantRead) << "a failed side is read to its end";
  EXPECT_FALSE(Want(c_.client) & kWantRead) << "nothing is read toward a failed side";
  c_.upstream.flags = kFailed | kEof;
  EXPECT_FALSE(Want(c_.upstream) & kWantRead);
}

TEST_F(RelayTest, NextStepWritesBeforeReading) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(relay::prepare_read(c_, Dir::kC2U, pool_, stats_));
  ReadAsked(Dir::kC2U, Bytes(10), 10);
  ASSERT_TRUE(c_.client.flags & kReadReady);
  Ready(c_.upstream, kWritable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kWrite);
}

TEST_F(RelayTest, NoWriteOrSecondShutdownToShutSink) {
  // Not reachable through the relay (a sink is shut only after its source ended and drained);
  // next_step still refuses to write to or shut a shut side.
  c_.upstream.flags = kWriteReady | kWriteShut;
  c_.client.flags = kReadReady;
  ASSERT_TRUE(pool_.acquire(c_.client.in));
  c_.client.in.commit(5);
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead);
  c_.client.flags = kEof;
  c_.client.in.consume(5);
  pool_.release(c_.client.in);
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
}

// --- statistics and acceleration-factor timestamps -----------------------------------------

TEST_F(RelayTest, StatsCountPerDirection) {
  Ready(c_.client, kReadable | kWritable);
  Ready(c_.upstream, kReadable | kWritable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(7)));
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(11)));
  ASSERT_TRUE(Read(Dir::kU2C, Errno(EAGAIN)));
  Write(Dir::kC2U, Bytes(7));
  Write(Dir::kU2C, Bytes(11));
  EXPECT_EQ(stats_.reads_client, 1u);
  EXPECT_EQ(stats_.reads_upstream, 1u);
  EXPECT_EQ(stats_.writes_upstream, 1u);
  EXPECT_EQ(stats_.writes_client, 1u);
  EXPECT_EQ(stats_.bytes_c2u, 7u);
  EXPECT_EQ(stats_.bytes_u2c, 11u);
}

TEST_F(RelayTest, LastActiveFollowsBytesOnly) {
  Ready(c_.client, kReadable);
  now_ = LoopTime{6'000'000'000, 6'000};
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(3)));
  EXPECT_EQ(c_.last_active_ms, 6'000);
  now_ = LoopTime{7'000'000'000, 7'000};
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Errno(EAGAIN)));
  EXPECT_EQ(c_.last_active_ms, 6'000) << "no byte moved";
  Ready(c_.upstream, kWritable);
  Write(Dir::kC2U, Bytes(3));
  EXPECT_EQ(c_.last_active_ms, 7'000);
}

TEST_F(RelayTest, AccelerationTimestampsAndStats) {
  Ready(c_.client, kWritable);
  Ready(c_.upstream, kReadable);
  now_ = LoopTime{1'000, 0};
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(kBufferBytes)));
  EXPECT_EQ(c_.u2c_first_ns, 1'000);
  now_ = LoopTime{2'000, 0};
  Write(Dir::kU2C, Bytes(kBufferBytes));
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(100)));
  EXPECT_EQ(c_.u2c_first_ns, 1'000) << "only the first byte stamps";
  now_ = LoopTime{5'000, 0};
  Ready(c_.upstream, kReadable | kHangup);
  ASSERT_TRUE(Read(Dir::kU2C, Eof()));
  EXPECT_EQ(c_.u2c_eof_ns, 5'000);
  EXPECT_EQ(stats_.u2c_upstream_ns, 0) << "nothing is summed before the client has it all";
  now_ = LoopTime{8'000, 0};
  Write(Dir::kU2C, Bytes(100));
  now_ = LoopTime{9'000, 0};
  ASSERT_EQ(Next(Dir::kU2C), Step::kShutdown);
  Shutdown(Dir::kU2C);
  EXPECT_EQ(stats_.u2c_upstream_ns, 4'000) << "first upstream byte to upstream EOF";
  EXPECT_EQ(stats_.u2c_client_ns, 8'000) << "first upstream byte to client write side shut";
  EXPECT_DOUBLE_EQ(stats_.acceleration_factor(), 2.0);
}

TEST_F(RelayTest, ClientDirectionDoesNotStampAcceleration) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(10)));
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  EXPECT_EQ(c_.u2c_first_ns, 0);
  EXPECT_EQ(c_.u2c_eof_ns, 0);
  Ready(c_.upstream, kWritable);
  Write(Dir::kC2U, Bytes(10));
  Shutdown(Dir::kC2U);
  EXPECT_EQ(stats_.u2c_upstream_ns, 0);
  EXPECT_EQ(stats_.u2c_client_ns, 0);
}

TEST_F(RelayTest, UpstreamEofWithoutBytesAddsNoAcceleration) {
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Eof()));
  Shutdown(Dir::kU2C);
  EXPECT_EQ(stats_.u2c_upstream_ns, 0);
  EXPECT_EQ(stats_.u2c_client_ns, 0);
  EXPECT_EQ(stats_.acceleration_factor(), 0.0);
}

// --- splice --------------------------------------------------------------------------------

TEST_F(RelayTest, NeverSplicesWithTheDefaultPolicy) {
  Ready(c_.client, kReadable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead);
  EXPECT_EQ(relay::next_step(c_, Dir::kC2U), Step::kRead);
  splice_.mode = SpliceMode::kNever;
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead);
}

TEST_F(RelayTest, AlwaysSplicesOnceRelayingOnly) {
  splice_.mode = SpliceMode::kAlways;
  c_.state = State::kConnecting;
  Ready(c_.client, kReadable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead) << "bytes read while connecting are buffered";
  relay::on_connected(c_);
  EXPECT_EQ(Next(Dir::kC2U), Step::kSpliceIn);
  Ready(c_.upstream, kReadable);
  EXPECT_EQ(Next(Dir::kU2C), Step::kSpliceIn);
  EXPECT_EQ(pipes_.in_use(), 0u) << "deciding takes no pipe; prepare_splice does";
}

TEST_F(RelayTest, ARateLimitedDirectionReadsThroughABufferAndPausesOnItsOwnReason) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.client, kReadable);
  Ready(c_.upstream, kReadable);
  c_.limits = kLimitRateDown;
  EXPECT_EQ(Next(Dir::kU2C), Step::kRead) << "a splice would move far past the bucket";
  EXPECT_EQ(Next(Dir::kC2U), Step::kSpliceIn) << "the other direction is not limited";
  relay::pause_reading(c_.upstream, kPauseRate);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
  EXPECT_EQ(relay::wanted_interest(c_, c_.upstream) & kWantRead, 0u)
      << "no read interest while paused: no wake-ups for arrivals";
  relay::resume_reading(c_.upstream, kPauseRate);
  EXPECT_EQ(Next(Dir::kU2C), Step::kRead);
}

TEST_F(RelayTest, AutoSplicesOnlyAfterTheThresholdAndAnEmptyBuffer) {
  splice_ = relay::SplicePolicy{SpliceMode::kAuto, 3 * kBufferBytes};
  Ready(c_.client, kReadable);
  Ready(c_.upstream, kWritable);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Next(Dir::kC2U), Step::kRead) << "read " << i;
    ASSERT_TRUE(Read(Dir::kC2U, Bytes(kBufferBytes)));
    EXPECT_EQ(c_.client.buffered, static_cast<uint32_t>(i + 1) * kBufferBytes);
    if (i < 2) {
      ASSERT_EQ(Next(Dir::kC2U), Step::kWrite);
      Write(Dir::kC2U, Bytes(kBufferBytes));
    }
  }
  // Past the threshold, but the buffer still holds bytes: they go first, by a write.
  Write(Dir::kC2U, Bytes(100));
  Ready(c_.upstream, 0);
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << "no splice while the buffer holds bytes";
  Ready(c_.upstream, kWritable);
  ASSERT_EQ(Next(Dir::kC2U), Step::kWrite);
  Write(Dir::kC2U, Bytes(kBufferBytes - 100));
  EXPECT_EQ(Next(Dir::kC2U), Step::kSpliceIn);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone) << "each direction counts its own bytes";
}

// A chatty connection (requests and replies smaller than a buffer) never splices, however many
// bytes it moves: a splice would cost a call more per message.
TEST_F(RelayTest, AutoNeverSplicesReadsThatDoNotFillABuffer) {
  splice_ = relay::SplicePolicy{SpliceMode::kAuto, 1000};
  Ready(c_.upstream, kWritable);
  for (int i = 0; i < 50; ++i) {
    Ready(c_.client, kReadable);
    ASSERT_EQ(Next(Dir::kC2U), Step::kRead) << "message " << i;
    ASSERT_TRUE(Read(Dir::kC2U, Bytes(300)));
    EXPECT_FALSE(c_.client.flags & kBulk);
    ASSERT_EQ(Next(Dir::kC2U), Step::kWrite);
    Write(Dir::kC2U, Bytes(300));
  }
  EXPECT_EQ(c_.client.buffered, 15000u);
  EXPECT_EQ(stats_.splice_bytes, 0u);
}

TEST_F(RelayTest, AutoGoesBackToBuffersAfterASmallSplice) {
  splice_ = relay::SplicePolicy{SpliceMode::kAuto, 0};
  Ready(c_.upstream, kReadable);
  Ready(c_.client, kWritable);
  ASSERT_EQ(Next(Dir::kU2C), Step::kRead) << "not bulk yet: nothing was read";
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(kBufferBytes)));
  EXPECT_TRUE(c_.upstream.flags & kBulk) << "a full buffer: more bytes were waiting";
  Write(Dir::kU2C, Bytes(kBufferBytes));
  ASSERT_EQ(Next(Dir::kU2C), Step::kSpliceIn);
  ASSERT_TRUE(SpliceIn(Dir::kU2C, Bytes(3 * kBufferBytes)));
  EXPECT_TRUE(c_.upstream.flags & kBulk);
  SpliceOut(Dir::kU2C, Bytes(3 * kBufferBytes));
  ASSERT_EQ(Next(Dir::kU2C), Step::kSpliceIn);
  ASSERT_TRUE(SpliceIn(Dir::kU2C, Bytes(100)));
  EXPECT_FALSE(c_.upstream.flags & kBulk) << "the burst is over";
  SpliceOut(Dir::kU2C, Bytes(100));
  EXPECT_EQ(Next(Dir::kU2C), Step::kRead) << "small bytes again: back to buffers";
  EXPECT_EQ(pipes_.in_use(), 0u);
}

TEST_F(RelayTest, SpliceInPausesTheSourceUntilThePipeIsDrained) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.client, kReadable);
  ASSERT_EQ(Next(Dir::kC2U), Step::kSpliceIn);
  ASSERT_TRUE(SpliceIn(Dir::kC2U, Bytes(100000)));
  EXPECT_NE(c_.client.pipe, kNoPipe);
  EXPECT_EQ(c_.client.piped, 100000u);
  EXPECT_EQ(c_.client.paused, kPauseBackpressure);
  EXPECT_TRUE(c_.client.flags & kReadReady) << "a splice may stop at a full pipe, not the socket";
  EXPECT_FALSE(c_.client.in.attached()) << "no buffer used";
  EXPECT_EQ(stats_.reads_client, 1u);
  EXPECT_EQ(c_.client.buffered, 0u);
  EXPECT_FALSE(Want(c_.client) & kWantRead);
  EXPECT_EQ(Want(c_.upstream), kWantRead | kWantWrite) << "bytes wait in the pipe";
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
  Ready(c_.upstream, kWritable);
  ASSERT_EQ(Next(Dir::kC2U), Step::kSpliceOut);
  SpliceOut(Dir::kC2U, Bytes(100000));
  EXPECT_EQ(c_.client.pipe, kNoPipe) << "an emptied pipe goes back at once";
  EXPECT_EQ(pipes_.in_use(), 0u);
  EXPECT_EQ(c_.client.paused, 0);
  EXPECT_EQ(stats_.bytes_c2u, 100000u);
  EXPECT_EQ(stats_.splice_bytes, 100000u);
  EXPECT_EQ(stats_.writes_upstream, 1u);
  EXPECT_EQ(Next(Dir::kC2U), Step::kSpliceIn) << "still readable: splice again";
}

TEST_F(RelayTest, SpliceInWouldBlockClearsReadReadyAndReturnsThePipe) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(SpliceIn(Dir::kU2C, Errno(EAGAIN)));
  EXPECT_FALSE(c_.upstream.flags & kReadReady);
  EXPECT_EQ(c_.upstream.pipe, kNoPipe);
  EXPECT_EQ(pipes_.in_use(), 0u);
  EXPECT_EQ(stats_.reads_upstream, 0u);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
  EXPECT_EQ(Want(c_.upstream), kWantRead);
}

TEST_F(RelayTest, PartialSpliceOutKeepsThePipeAndWaitsForRoom) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(SpliceIn(Dir::kU2C, Bytes(50000)));
  Ready(c_.client, kWritable);
  SpliceOut(Dir::kU2C, Bytes(20000));
  EXPECT_FALSE(c_.client.flags & kWriteReady) << "a short splice means the send buffer is full";
  EXPECT_EQ(c_.upstream.piped, 30000u);
  EXPECT_NE(c_.upstream.pipe, kNoPipe);
  EXPECT_EQ(c_.upstream.paused, kPauseBackpressure);
  EXPECT_EQ(Want(c_.client), kWantRead | kWantWrite);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
  Ready(c_.client, kWritable);
  SpliceOut(Dir::kU2C, Errno(EAGAIN));
  EXPECT_FALSE(c_.client.flags & kWriteReady);
  EXPECT_EQ(c_.upstream.piped, 30000u);
  Ready(c_.client, kWritable);
  SpliceOut(Dir::kU2C, Bytes(30000));
  EXPECT_EQ(c_.upstream.pipe, kNoPipe);
  EXPECT_EQ(stats_.bytes_u2c, 50000u);
  EXPECT_EQ(stats_.splice_bytes, 50000u);
  EXPECT_EQ(stats_.writes_client, 2u);
}

TEST_F(RelayTest, EmptyPipePoolFallsBackToABufferAndCounts) {
  splice_.mode = SpliceMode::kAlways;
  DrainPipes();
  Ready(c_.client, kReadable);
  ASSERT_EQ(Next(Dir::kC2U), Step::kSpliceIn);
  EXPECT_FALSE(SpliceIn(Dir::kC2U, Bytes(1)));
  EXPECT_EQ(stats_.splice_pipe_waits, 1u);
  EXPECT_EQ(c_.client.pipe, kNoPipe);
  EXPECT_EQ(c_.client.paused, 0) << "not paused: the read goes through a buffer instead";
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(500)));
  Ready(c_.upstream, kWritable);
  ASSERT_EQ(Next(Dir::kC2U), Step::kWrite);
  Write(Dir::kC2U, Bytes(500));
  // A pipe comes back: the next read splices.
  pipes_.release(pipes_held_.back());
  pipes_held_.pop_back();
  Ready(c_.client, kReadable);  // the short read above had drained the socket
  ASSERT_EQ(Next(Dir::kC2U), Step::kSpliceIn);
  ASSERT_TRUE(SpliceIn(Dir::kC2U, Bytes(700)));
  EXPECT_EQ(stats_.splice_pipe_waits, 1u);
  SpliceOut(Dir::kC2U, Bytes(700));
  EXPECT_EQ(stats_.bytes_c2u, 1200u);
  EXPECT_EQ(stats_.splice_bytes, 700u);
}

TEST_F(RelayTest, SplicedEofShutsDownOnlyOnceThePipeIsDrained) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.client, kReadable | kHangup);
  ASSERT_TRUE(SpliceIn(Dir::kC2U, Bytes(4000)));
  EXPECT_TRUE(c_.client.flags & kReadReady);
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
  Ready(c_.upstream, kWritable);
  SpliceOut(Dir::kC2U, Bytes(1000));
  EXPECT_FALSE(relay::direction_done(c_, Dir::kC2U));
  Ready(c_.upstream, kWritable);
  SpliceOut(Dir::kC2U, Bytes(3000));
  ASSERT_EQ(Next(Dir::kC2U), Step::kSpliceIn);
  ASSERT_TRUE(SpliceIn(Dir::kC2U, Eof()));
  EXPECT_FALSE(c_.client.flags & kEof) << "a splice's 0 may be an urgent mark: read() tells";
  EXPECT_TRUE(c_.client.flags & kUrgent);
  EXPECT_EQ(c_.client.pipe, kNoPipe);
  ASSERT_EQ(Next(Dir::kC2U), Step::kRead);
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  EXPECT_TRUE(c_.client.flags & kEof);
  EXPECT_FALSE(c_.client.flags & kUrgent);
  ASSERT_EQ(Next(Dir::kC2U), Step::kShutdown);
  Shutdown(Dir::kC2U);
  EXPECT_TRUE(relay::direction_done(c_, Dir::kC2U));
  EXPECT_EQ(c_.state, State::kDraining);
}

TEST_F(RelayTest, NoShutdownWhileThePipeHoldsBytes) {
  c_.client.flags |= kEof;
  ASSERT_TRUE(pipes_.acquire(c_.client.pipe));
  c_.client.piped = 10;
  c_.client.paused = kPauseBackpressure;
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);
  EXPECT_FALSE(relay::direction_done(c_, Dir::kC2U));
  c_.upstream.flags |= kWriteShut;
  EXPECT_FALSE(relay::direction_done(c_, Dir::kC2U)) << "bytes in the pipe were not delivered";
  c_.upstream.flags &= static_cast<uint8_t>(~kWriteShut);
  Ready(c_.upstream, kWritable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kSpliceOut);
  SpliceOut(Dir::kC2U, Bytes(10));
  EXPECT_EQ(Next(Dir::kC2U), Step::kShutdown);
}

TEST_F(RelayTest, SpliceErrorsFailTheRightSide) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.client, kReadable);
  ASSERT_TRUE(SpliceIn(Dir::kC2U, Bytes(10)));
  Ready(c_.upstream, kWritable);
  SpliceOut(Dir::kC2U, Errno(EPIPE));
  EXPECT_TRUE(c_.upstream.flags & kFailed);
  EXPECT_FALSE(c_.client.flags & kFailed);
  EXPECT_EQ(c_.state, State::kRelaying) << "the upstream's own bytes are still read";
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << "nothing more toward the failed upstream";
  EXPECT_EQ(c_.client.piped, 10u) << "undelivered: the close resets the client";
  EXPECT_EQ(stats_.resets_upstream, 1u);
}

TEST_F(RelayTest, SpliceInErrorFailsTheSourceAndReturnsThePipe) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(SpliceIn(Dir::kU2C, Errno(ECONNRESET)));
  EXPECT_TRUE(c_.upstream.flags & (kFailed | kEof));
  EXPECT_EQ(c_.state, State::kLingering) << "nothing of the upstream's left to deliver";
  EXPECT_EQ(c_.upstream.pipe, kNoPipe);
  EXPECT_EQ(pipes_.in_use(), 0u);
  EXPECT_EQ(stats_.resets_upstream, 1u);
}

TEST_F(RelayTest, SpliceStampsAccelerationLikeReads) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(SpliceIn(Dir::kU2C, Bytes(10)));
  EXPECT_EQ(c_.u2c_first_ns, now_.ns);
  EXPECT_EQ(c_.last_active_ms, now_.ms);
}

// --- two scripted edge-triggered sockets ----------------------------------------------------

// One peer behind one of the connection's sockets, with that socket's kernel queues.
struct Peer {
  uint64_t total = 0;     // bytes this peer sends over the whole run
  uint64_t queued = 0;    // bytes pushed into our receive queue so far
  uint64_t read = 0;      // bytes we have read from the receive queue
  bool fin = false;       // FIN queued behind the data
  uint64_t room = 0;      // free space in our send buffer towards this peer
  uint64_t received = 0;  // bytes this peer has received from us
  bool got_fin = false;   // we shut our write side towards this peer
  uint32_t registered = 0;
  uint32_t pending = 0;  // Ready bits reported at the next wait

  uint64_t rcvq() const { return queued - read; }
  // What epoll would report now for this socket under `interest`.
  uint32_t levels(uint32_t interest) const {
    uint32_t r = 0;
    if (interest & kWantRead) {
      if (rcvq() > 0 || fin) r |= kReadable;
      if (fin) r |= kHangup;
    }
    if ((interest & kWantWrite) && room > 0) r |= kWritable;
    return r;
  }
};

struct SimOptions {
  uint64_t seed = 1;
  uint32_t pool_blocks = 2;
  bool start_connecting = false;
  int error_per_mille = 0;  // chance of ECONNRESET/EPIPE per syscall
  relay::SplicePolicy splice;
  uint32_t pipes = 2;  // pipes in the pool (with splice)
};

struct SimOutcome {
  bool closed = false;
  bool failed = false;
  uint64_t sent[2] = {0, 0};
  uint64_t received[2] = {0, 0};
  bool fin_delivered[2] = {false, false};
  uint64_t pool_waits = 0;       // reads paused on an empty pool
  uint64_t backpressure = 0;     // reads that filled a buffer
  uint64_t connecting_held = 0;  // client bytes read while the upstream was connecting
  uint64_t spliced = 0;          // bytes delivered through pipes
  uint64_t pipe_waits = 0;       // splices that found no pipe free
};

// Runs one connection between two scripted peers, emulating the Worker, the epoll transport and
// edge-triggered epoll (an edge on each arrival, current levels reported on EPOLL_CTL_MOD).
void Simulate(const SimOptions& o, SimOutcome& out) {
  std::mt19937_64 rng(o.seed);
  auto uniform = [&rng](uint64_t n) { return rng() % n; };
  BufferPool pool = MakePool(o.pool_blocks);
  PipePool pipes = MakePipes(o.pipes);
  // Per direction, the stream offset of the first byte in its pipe: a pipe is a FIFO, so the
  // bytes it delivers must start exactly where the sink's stream stands.
  uint64_t pipe_start[2] = {0, 0};
  Stats stats;
  Connection c;
  c.client.fd = 3;
  c.upstream.fd = 4;
  Peer peers[2];  // [0] behind the client socket, [1] behind the upstream socket
  Peer& client = peers[0];
  Peer& upstream = peers[1];
  client.total = uniform(4) == 0 ? 0 : uniform(60'000);
  upstream.total = uniform(4) == 0 ? 0 : uniform(200'000);
  out.sent[0] = client.total;
  out.sent[1] = upstream.total;
  auto side_of = [&c](int i) -> Side& { return i == 0 ? c.client : c.upstream; };
  auto check = [&](const char* what, int iteration) {
    const ::testing::AssertionResult r = Invariants(c, pool, 0, false, &pipes);
    EXPECT_TRUE(r) << "seed " << o.seed << " iteration " << iteration << " after " << what;
    return static_cast<bool>(r);
  };
  int connect_at = o.start_connecting ? static_cast<int>(uniform(50)) : -1;
  if (o.start_connecting) {
    c.state = State::kConnecting;
  } else {
    relay::on_connected(c);
  }
  for (int s = 0; s < 2; ++s) {
    Side& side = side_of(s);
    side.events = relay::wanted_interest(c, side);
    peers[s].registered = side.events;
    peers[s].pending = peers[s].levels(side.events);  // EPOLL_CTL_ADD reports current levels
  }
  LoopTime now{1'000'000, 1};
  for (int it = 0; it < 200'000; ++it) {
    now.ns += 1'000;
    now.ms = now.ns / 1'000'000;
    const bool connecting = c.state == State::kConnecting;
    // The peers act: data and FINs arrive, send-buffer room opens.
    for (int s = 0; s < 2; ++s) {
      Peer& p = peers[s];
      if (s == 1 && connecting) continue;  // the backend does not exist yet
      uint32_t edge = 0;
      if (p.queued < p.total && uniform(3) == 0) {
        p.queued += std::min<uint64_t>(p.total - p.queued, 1 + uniform(20'000));
        edge |= kWantRead;
      }
      if (p.queued == p.total && !p.fin && uniform(4) == 0) {
        p.fin = true;
        edge |= kWantRead;
      }
      if (uniform(3) == 0) {
        p.room += uniform(30'000);
        edge |= kWantWrite;
      }
      if (edge & p.registered) p.pending |= p.levels(p.registered);
    }
    if (connecting && it >= connect_at) {
      upstream.room = 1 + uniform(30'000);
      upstream.pending |= upstream.levels(upstream.registered);  // EPOLLOUT: connected
    }
    // Dispatch: as Worker::on_connection_event.
    bool touched = false;
    for (int s = 0; s < 2; ++s) {
      Peer& p = peers[s];
      if (p.pending == 0) continue;
      const uint32_t ready = p.pending;
      p.pending = 0;
      touched = true;
      if (s == 1 && c.state == State::kConnecting) {
        relay::on_connected(c);
        if (!check("on_connected", it)) return;
      }
      relay::on_ready(c, side_of(s), ready, stats);
      if (!check("on_ready", it)) return;
    }
    // Buffer waiters resume when a block is free (Worker::wake_buffer_waiters).
    if (((c.client.paused | c.upstream.paused) & kPauseNoBuffer) && pool.available() > 0) {
      c.client.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
      c.upstream.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
      touched = true;
    }
    if (!touched) continue;
    // Pump: as EpollTransport::pump, with syscalls answered by the peers.
    bool progressed = true;
    for (int guard = 0; progressed && c.state < State::kLingering; ++guard) {
      if (guard > 10'000) {
        ADD_FAILURE() << "seed " << o.seed << ": pump does not converge";
        return;
      }
      progressed = false;
      for (const Dir d : kDirs) {
        const int si = d == Dir::kC2U ? 0 : 1;
        Peer& from = peers[si];
        Peer& to = peers[1 - si];
        Side& src = c.source(d);
        const Step step = relay::next_step(c, d, o.splice);
        if (step == Step::kSpliceIn && relay::prepare_splice(c, d, pipes, stats)) {
          SysResult r;
          if (uniform(1000) < static_cast<uint64_t>(o.error_per_mille)) {
            r = Errno(ECONNRESET);
          } else if (from.rcvq() > 0) {
            // The pipe's free slots limit a splice as much as the socket's bytes do.
            const uint64_t n = std::min<uint64_t>(1 + uniform(70'000), from.rcvq());
            pipe_start[si] = from.read;
            from.read += n;
            r = Bytes(static_cast<long>(n));
          } else if (from.fin) {
            r = Eof();
          } else {
            r = Errno(EAGAIN);
          }
          relay::on_splice_in(c, d, r, pipes, stats, now);
          if (!check("on_splice_in", it)) return;
          progressed = true;
        } else if (step == Step::kSpliceOut) {
          if (to.got_fin) {
            ADD_FAILURE() << "seed " << o.seed << ": splice after shutdown";
            return;
          }
          if (pipe_start[si] != to.received) {
            ADD_FAILURE() << "seed " << o.seed << ": " << Name(d) << " pipe starts at byte "
                          << pipe_start[si] << " but the sink stands at " << to.received;
            return;
          }
          const uint32_t asked = src.piped;
          SysResult r;
          if (uniform(1000) < static_cast<uint64_t>(o.error_per_mille)) {
            r = Errno(EPIPE);
          } else if (to.room == 0) {
            r = Errno(EAGAIN);
          } else {
            const uint64_t n = std::min<uint64_t>(asked, to.room);
            to.room -= n;
            to.received += n;
            pipe_start[si] += n;
            out.spliced += n;
            r = Bytes(static_cast<long>(n));
          }
          relay::on_splice_out(c, d, r, asked, pipes, stats, now);
          if (!check("on_splice_out", it)) return;
          progressed = true;
        } else if (step == Step::kRead || step == Step::kSpliceIn) {
          if (!relay::prepare_read(c, d, pool, stats)) {
            if (!check("prepare_read", it)) return;
            continue;
          }
          const uint32_t asked = src.in.writable();
          SysResult r;
          if (uniform(1000) < static_cast<uint64_t>(o.error_per_mille)) {
            r = Errno(ECONNRESET);
          } else if (from.rcvq() > 0) {
            const uint64_t n = std::min<uint64_t>(asked, from.rcvq());
            for (uint64_t i = 0; i < n; ++i) src.in.write_ptr()[i] = Pattern(d, from.read + i);
            from.read += n;
            r = Bytes(static_cast<long>(n));
          } else if (from.fin) {
            r = Eof();
          } else {
            r = Errno(EAGAIN);
          }
          relay::on_read(c, d, r, asked, pool, stats, now);
          if (!check("on_read", it)) return;
          if (src.paused & kPauseBackpressure) ++out.backpressure;
          if (c.state == State::kConnecting && r.value > 0) ++out.connecting_held;
          progressed = true;
        } else if (step == Step::kWrite) {
          if (to.got_fin) {
            ADD_FAILURE() << "seed " << o.seed << ": write after shutdown";
            return;
          }
          const uint32_t asked = src.in.readable();
          SysResult r;
          if (uniform(1000) < static_cast<uint64_t>(o.error_per_mille)) {
            r = Errno(EPIPE);
          } else if (to.room == 0) {
            r = Errno(EAGAIN);
          } else {
            const uint64_t n = std::min<uint64_t>(asked, to.room);
            for (uint64_t i = 0; i < n; ++i) {
              if (src.in.read_ptr()[i] != Pattern(d, to.received + i)) {
                ADD_FAILURE() << "seed " << o.seed << ": " << Name(d) << " byte " << to.received + i
                              << " corrupted";
                return;
              }
            }
            to.room -= n;
            to.received += n;
            r = Bytes(static_cast<long>(n));
          }
          relay::on_write(c, d, r, asked, pool, stats, now);
          if (!check("on_write", it)) return;
          progressed = true;
        } else if (step == Step::kShutdown) {
          if (to.got_fin) {
            ADD_FAILURE() << "seed " << o.seed << ": " << Name(d) << " shut twice";
            return;
          }
          to.got_fin = true;
          relay::on_shutdown(c, d, SysResult{}, stats, now);
          if (!check("on_shutdown", it)) return;
          progressed = true;
        }
      }
    }
    if (c.state == State::kLingering) {
      // Everything read from the failed side reached the other one before its reset.
      const int failed = (c.client.flags & kFailed) ? 0 : 1;
      EXPECT_EQ(peers[1 - failed].received, peers[failed].read)
          << "seed " << o.seed << ": bytes of the failed side were lost";
      relay::on_acknowledged(c);  // as Worker::check_linger once the peer acknowledged them
      if (!check("on_acknowledged", it)) return;
    }
    if (c.state == State::kClosing) break;
    // Reconcile interest once per iteration; EPOLL_CTL_MOD reports the current levels.
    for (int s = 0; s < 2; ++s) {
      Side& side = side_of(s);
      const uint32_t want = relay::wanted_interest(c, side);
      if (want == side.events) continue;
      side.events = want;
      peers[s].registered = want;
      peers[s].pending |= peers[s].levels(want);
    }
  }
  out.closed = c.state == State::kClosing;
  out.pool_waits = stats.pool_waits;
  out.pipe_waits = stats.splice_pipe_waits;
  EXPECT_EQ(stats.splice_bytes, out.spliced) << "seed " << o.seed;
  out.failed = ((c.client.flags | c.upstream.flags) & kFailed) != 0;
  out.received[0] = upstream.received;  // c2u bytes reach the upstream peer
  out.received[1] = client.received;
  out.fin_delivered[0] = upstream.got_fin;
  out.fin_delivered[1] = client.got_fin;
  if (out.closed && !out.failed) {
    EXPECT_EQ(pool.in_use(), 0u) << "seed " << o.seed << ": a finished connection holds blocks";
    EXPECT_EQ(stats.bytes_c2u, out.received[0]) << "seed " << o.seed;
    EXPECT_EQ(stats.bytes_u2c, out.received[1]) << "seed " << o.seed;
    if (upstream.total > 0) {
      // First byte and EOF may be read in the same loop iteration (same LoopTime): then 0.
      EXPECT_GE(stats.u2c_upstream_ns, 0) << "seed " << o.seed;
      EXPECT_GE(stats.u2c_client_ns, stats.u2c_upstream_ns) << "seed " << o.seed;
    }
  }
  if (out.failed) {
    EXPECT_EQ(stats.resets_client + stats.resets_upstream,
              static_cast<uint64_t>(((c.client.flags & kFailed) ? 1 : 0) +
                                    ((c.upstream.flags & kFailed) ? 1 : 0)))
        << "seed " << o.seed;
  }
  if (out.closed && !out.failed) {
    EXPECT_EQ(pipes.in_use(), 0u) << "seed " << o.seed << ": a finished connection holds pipes";
  }
  pool.release(c.client.in);  // what close_connection does
  pool.release(c.upstream.in);
  for (Side* side : {&c.client, &c.upstream}) {
    if (side->pipe != kNoPipe) pipes.release(side->pipe);
  }
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pipes.in_use(), 0u);
}

TEST_F(RelayTest, SimulatedSocketsDeliverEveryByteInOrder) {
  uint64_t pool_waits = 0;
  uint64_t backpressure = 0;
  uint64_t connecting_held = 0;
  for (uint64_t seed = 1; seed <= 400; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.pool_blocks = 1 + static_cast<uint32_t>(seed % 3);  // 1 block: the directions take turns
    o.start_connecting = seed % 2 == 0;
    SimOutcome out;
    Simulate(o, out);
    if (HasFailure()) return;
    ASSERT_TRUE(out.closed) << "seed " << seed << ": the connection stalled";
    ASSERT_FALSE(out.failed) << "seed " << seed;
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(out.received[i], out.sent[i]) << "seed " << seed << " " << Name(kDirs[i]);
      EXPECT_TRUE(out.fin_delivered[i]) << "seed " << seed << " " << Name(kDirs[i]);
    }
    pool_waits += out.pool_waits;
    backpressure += out.backpressure;
    connecting_held += out.connecting_held;
  }
  // The runs went through the paths they are meant to cover.
  EXPECT_GT(pool_waits, 0u);
  EXPECT_GT(backpressure, 0u);
  EXPECT_GT(connecting_held, 0u);
}

TEST_F(RelayTest, SimulatedSplicedSocketsDeliverEveryByteInOrder) {
  uint64_t spliced = 0;
  uint64_t pipe_waits = 0;
  uint64_t buffered = 0;
  for (uint64_t seed = 2000; seed < 2300; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.pool_blocks = 1 + static_cast<uint32_t>(seed % 3);
    o.start_connecting = seed % 2 == 0;
    // Always, or auto with a threshold below, around and above the transfer sizes; one pipe
    // for two directions now and then, so one of them falls back to buffers.
    o.splice.mode = seed % 4 == 0 ? SpliceMode::kAlways : SpliceMode::kAuto;
    o.splice.threshold_bytes = static_cast<uint32_t>((seed % 5) * 20'000);
    o.pipes = seed % 3 == 0 ? 1 : 2;
    SimOutcome out;
    Simulate(o, out);
    if (HasFailure()) return;
    ASSERT_TRUE(out.closed) << "seed " << seed << ": the connection stalled";
    ASSERT_FALSE(out.failed) << "seed " << seed;
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(out.received[i], out.sent[i]) << "seed " << seed << " " << Name(kDirs[i]);
      EXPECT_TRUE(out.fin_delivered[i]) << "seed " << seed << " " << Name(kDirs[i]);
    }
    spliced += out.spliced;
    pipe_waits += out.pipe_waits;
    buffered += out.received[0] + out.received[1] - out.spliced;
  }
  EXPECT_GT(spliced, 0u);
  EXPECT_GT(buffered, 0u);
  EXPECT_GT(pipe_waits, 0u);
}

TEST_F(RelayTest, SimulatedSplicedResetsCloseAndReturnPipes) {
  int failures = 0;
  for (uint64_t seed = 3000; seed < 3100; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.splice.mode = SpliceMode::kAlways;
    o.error_per_mille = 20;
    SimOutcome out;
    Simulate(o, out);
    if (HasFailure()) return;
    ASSERT_TRUE(out.closed) << "seed " << seed;
    failures += out.failed ? 1 : 0;
  }
  EXPECT_GT(failures, 10) << "the error injection should fail many runs";
}

TEST_F(RelayTest, SimulatedResetsCloseAndReturnBlocks) {
  int failures = 0;
  for (uint64_t seed = 1000; seed < 1100; ++seed) {
    SimOptions o;
    o.seed = seed;
    o.pool_blocks = 2;
    o.start_connecting = seed % 3 == 0;
    o.error_per_mille = 20;
    SimOutcome out;
    Simulate(o, out);
    if (HasFailure()) return;
    ASSERT_TRUE(out.closed) << "seed " << seed;
    if (out.failed) {
      ++failures;
    } else {
      EXPECT_EQ(out.received[0], out.sent[0]) << "seed " << seed;
      EXPECT_EQ(out.received[1], out.sent[1]) << "seed " << seed;
    }
  }
  EXPECT_GT(failures, 10) << "the error injection should fail many runs";
}

}  // namespace
}  // namespace edgeproxy

// --- gates and finish (decision 0010) ----------------------------------------------------------
namespace edgeproxy {
namespace {

TEST_F(RelayTest, AClosedGateHoldsBytesBackWhileReadingGoesOn) {
  c_.client.gate = 0;
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(100)));
  Ready(c_.upstream, kWritable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << "nothing approved, nothing written";
  EXPECT_EQ(relay::writable(c_.client), 0u);
  Ready(c_.client, kReadable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead) << "reading is not gated";
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(50)));
  c_.client.gate = 40;
  ASSERT_EQ(Next(Dir::kC2U), Step::kWrite);
  EXPECT_EQ(relay::writable(c_.client), 40u);
  relay::on_write(c_, Dir::kC2U, Bytes(40), 40, pool_, stats_, now_);
  EXPECT_TRUE(Check());
  EXPECT_EQ(c_.client.gate, 0u) << "each write lowers the gate";
  EXPECT_EQ(c_.client.in.readable(), 110u) << "unapproved bytes stay, in order";
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone) << "the short read drained the socket";
  c_.client.gate = kOpenGate;
  EXPECT_EQ(relay::writable(c_.client), 110u) << "an open gate lets everything through";
}

TEST_F(RelayTest, AClosedGateWantsNoWriteInterest) {
  c_.upstream.gate = 0;
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(10)));
  c_.client.flags &= static_cast<uint8_t>(~kWriteReady);
  EXPECT_FALSE(Want(c_.client) & kWantWrite) << "waiting for writability would wake for nothing";
  c_.upstream.gate = 10;
  EXPECT_TRUE(Want(c_.client) & kWantWrite);
}

TEST_F(RelayTest, AGatedDirectionWithoutAllowanceNeverSplices) {
  splice_.mode = SpliceMode::kAlways;
  c_.client.gate = 0;
  Ready(c_.client, kReadable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kRead) << "a pipe would carry bytes past the message's end";
  c_.client.gate = kOpenGate;
  EXPECT_EQ(Next(Dir::kC2U), Step::kSpliceIn);
}

// --- splice allowance under a finite gate (decision 0015) -----------------------------------

TEST_F(RelayTest, AnAllowanceSplicesAGatedDirectionUpToItAndNoFurther) {
  splice_.mode = SpliceMode::kAlways;
  c_.upstream.gate = 0;
  c_.upstream.splice_left = 5000;
  Ready(c_.upstream, kReadable);
  ASSERT_EQ(Next(Dir::kU2C), Step::kSpliceIn) << "bytes the worker approved unseen";
  EXPECT_EQ(relay::splice_ask(c_.upstream), 5000u) << "the kernel is asked for no more";
  ASSERT_TRUE(SpliceIn(Dir::kU2C, Bytes(3000)));
  EXPECT_EQ(c_.upstream.splice_left, 2000u) << "what was spliced comes off the allowance";
  EXPECT_EQ(c_.upstream.gate, 0u) << "the gate is the block's: a pipe's bytes need none";
  Ready(c_.client, kWritable);
  ASSERT_EQ(Next(Dir::kU2C), Step::kSpliceOut);
  SpliceOut(Dir::kU2C, Bytes(3000));
  ASSERT_EQ(Next(Dir::kU2C), Step::kSpliceIn);
  EXPECT_EQ(relay::splice_ask(c_.upstream), 2000u);
  ASSERT_TRUE(SpliceIn(Dir::kU2C, Bytes(2000)));
  SpliceOut(Dir::kU2C, Bytes(2000));
  EXPECT_EQ(c_.upstream.splice_left, 0u);
  EXPECT_EQ(Next(Dir::kU2C), Step::kRead)
      << "past the allowance the bytes are read through the block, for the worker to check";
}

TEST_F(RelayTest, AnAllowanceSplicesOnlyWithAnEmptyBlockAndAsThePolicySays) {
  splice_.mode = SpliceMode::kAlways;
  c_.upstream.gate = 0;
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(100)));
  c_.upstream.gate = 100;
  c_.upstream.splice_left = 1000;
  Ready(c_.upstream, kReadable);
  Ready(c_.client, kWritable);
  ASSERT_EQ(Next(Dir::kU2C), Step::kWrite) << "the block's bytes go first";
  relay::on_write(c_, Dir::kU2C, Bytes(100), 100, pool_, stats_, now_);
  EXPECT_TRUE(Check());
  EXPECT_EQ(Next(Dir::kU2C), Step::kSpliceIn);
  splice_.mode = SpliceMode::kNever;
  EXPECT_EQ(Next(Dir::kU2C), Step::kRead) << "--splice never: through the block";
  splice_.mode = SpliceMode::kAlways;
  c_.upstream.splice_left = 0;
  EXPECT_EQ(Next(Dir::kU2C), Step::kRead) << "no allowance: through the block";
}

TEST_F(RelayTest, AnOpenGateIgnoresTheAllowance) {
  splice_.mode = SpliceMode::kAlways;
  c_.upstream.splice_left = 10;
  Ready(c_.upstream, kReadable);
  ASSERT_EQ(Next(Dir::kU2C), Step::kSpliceIn);
  EXPECT_EQ(relay::splice_ask(c_.upstream), kSpliceAskBytes);
  ASSERT_TRUE(SpliceIn(Dir::kU2C, Bytes(4000)));
  EXPECT_EQ(c_.upstream.splice_left, 10u) << "nothing is counted against it";
}

TEST_F(RelayTest, FinishLingersOnceTheClientHasEverythingThenCloses) {
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(30)));
  relay::finish(c_);
  EXPECT_TRUE(Check());
  EXPECT_EQ(c_.state, State::kRelaying) << "bytes for the client are still held";
  Ready(c_.client, kReadable);
  EXPECT_NE(Next(Dir::kC2U), Step::kRead) << "nothing is read toward the ended upstream";
  Ready(c_.client, kWritable);
  ASSERT_EQ(Next(Dir::kU2C), Step::kWrite);
  Write(Dir::kU2C, Bytes(30));
  EXPECT_EQ(c_.state, State::kLingering) << "the client is reset only once it acknowledged";
  EXPECT_EQ(stats_.resets_upstream, 0u) << "nothing failed: finish counts no reset";
  relay::on_acknowledged(c_);
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_FALSE(relay::ends_cleanly(c_));
}

// --- slow-client acceleration (decision 0011) -------------------------------------------------

class RelayTestAccel : public RelayTest {
 protected:
  static constexpr uint32_t kBlocks = 64;  // reserve max(64 / 8, 2 x 1) = 8 with one connection

  RelayTestAccel() : RelayTest(kBlocks) {
    c_.accel_limit = 5;
    stats_.active = 1;
  }

  // One read from the upstream as the epoll transport does it: a full block joins the chain.
  bool ReadU2C(SysResult r) {
    const bool read = Read(Dir::kU2C, r);
    if (read && c_.upstream.in.full()) Accelerate();
    return read;
  }
  bool Accelerate() {
    const bool moved = relay::accelerate(c_, pool_, stats_, pool_.available());
    EXPECT_TRUE(Check());
    EXPECT_EQ(stats_.accel_blocks_held, c_.accel.blocks);
    return moved;
  }

  // One writev of the chain and then upstream.in, `r` being its result; the bytes it wrote are
  // checked against the stream.
  void WriteChain(SysResult r) {
    std::vector<iovec> iov(c_.accel.blocks + 1);
    uint32_t asked = 0;
    uint32_t n = pool_.chain_iov(c_.accel, iov.data(), c_.accel.blocks, asked);
    if (!c_.upstream.in.empty()) {
      iov[n].iov_base = const_cast<std::byte*>(c_.upstream.in.read_ptr());
      iov[n].iov_len = c_.upstream.in.readable();
      asked += c_.upstream.in.readable();
      ++n;
    }
    uint64_t& delivered = delivered_[static_cast<int>(Dir::kU2C)];
    long left = r.ok() ? r.value : 0;
    for (uint32_t i = 0; i < n && left > 0; ++i) {
      const auto* p = static_cast<const std::byte*>(iov[i].iov_base);
      for (size_t k = 0; k < iov[i].iov_len && left > 0; ++k, --left) {
        ASSERT_EQ(p[k], Pattern(Dir::kU2C, delivered)) << "u2c byte " << delivered;
        ++delivered;
      }
    }
    relay::on_write(c_, Dir::kU2C, r, asked, pool_, stats_, now_);
    EXPECT_TRUE(Check());
    EXPECT_EQ(stats_.accel_blocks_held, c_.accel.blocks);
  }

  uint32_t HeldU2C() const { return c_.accel.bytes + c_.upstream.in.readable(); }
};

TEST_F(RelayTestAccel, ReserveIsAnEighthOfThePoolOrTwoPerOpenConnection) {
  EXPECT_EQ(relay::accel_reserve(64, 1), 8u);
  EXPECT_EQ(relay::accel_reserve(64, 10), 20u);
  EXPECT_EQ(relay::accel_reserve(16, 100), 16u) << "never more than the pool";
  EXPECT_EQ(relay::accel_reserve(7, 0), 0u);
}

TEST_F(RelayTestAccel, FullBlocksJoinTheChainUpToTheLimitThenBackpressure) {
  Ready(c_.upstream, kReadable);
  c_.client.flags &= static_cast<uint8_t>(~kWriteReady);  // a slow client: nothing can be sent
  for (uint32_t k = 1; k <= 4; ++k) {
    ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
    ASSERT_EQ(Next(Dir::kU2C), Step::kRead) << "block " << k << ": reading goes on";
  }
  EXPECT_EQ(c_.accel.blocks, 4u);
  // A fifth full block: moving it would need a sixth for `in`, past the limit of five. It stays.
  ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
  EXPECT_EQ(c_.accel.blocks, 4u);
  EXPECT_TRUE(c_.upstream.in.full());
  EXPECT_TRUE(c_.upstream.paused & kPauseBackpressure);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
  EXPECT_EQ(stats_.accel_giveups, 0u) << "the limit is no give-way";
  EXPECT_EQ(stats_.accel_blocks_peak, 4u);
  EXPECT_TRUE(Want(c_.client) & kWantWrite) << "the chain's bytes wait for the client";
  EXPECT_EQ(Want(c_.upstream) & kWantRead, 0u);
  // The client takes everything in one writev: every block back, reading resumes.
  Ready(c_.client, kWritable);
  ASSERT_EQ(Next(Dir::kU2C), Step::kWrite);
  WriteChain(Bytes(5 * kBufferBytes));
  EXPECT_EQ(pool_.in_use(), 0u);
  EXPECT_EQ(Next(Dir::kU2C), Step::kRead);
}

TEST_F(RelayTestAccel, GivesWayAtTheReserveAndKeepsItsOneBlock) {
  // Leave 10 free blocks: the first fill may move (10 - 1 in use = 9 free > 8), the second not.
  while (pool_.available() > 10) {
    held_.emplace_back();
    ASSERT_TRUE(pool_.acquire(held_.back()));
  }
  Ready(c_.upstream, kReadable);
  c_.client.flags &= static_cast<uint8_t>(~kWriteReady);
  ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
  EXPECT_EQ(c_.accel.blocks, 1u);
  ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
  EXPECT_EQ(c_.accel.blocks, 1u) << "at the reserve: the full block stays in `in`";
  EXPECT_EQ(stats_.accel_giveups, 1u);
  EXPECT_TRUE(c_.upstream.paused & kPauseBackpressure) << "ordinary backpressure";
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
  Ready(c_.client, kWritable);
  WriteChain(Bytes(kBufferBytes + 5));
  EXPECT_TRUE(c_.upstream.paused & kPauseBackpressure) << "until `in` is written out (0003)";
  WriteChain(Bytes(kBufferBytes - 5));
  EXPECT_FALSE(c_.upstream.paused & kPauseBackpressure);
  EXPECT_EQ(pool_.in_use(), held_.size());
}

TEST_F(RelayTestAccel, OffOrGatedNeverChains) {
  Ready(c_.upstream, kReadable);
  c_.client.flags &= static_cast<uint8_t>(~kWriteReady);
  c_.accel_limit = 0;
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(kBufferBytes)));
  EXPECT_FALSE(Accelerate());
  c_.accel_limit = 5;
  c_.upstream.gate = 100;
  EXPECT_FALSE(Accelerate()) << "a finite gate approves bytes of `in` only";
  c_.upstream.gate = kOpenGate;
  EXPECT_EQ(stats_.accel_giveups, 0u);
  EXPECT_TRUE(Accelerate());
}

TEST_F(RelayTestAccel, WritesAcrossBlocksWithPartialWritesAtEveryOffset) {
  // Three chained blocks and half a block in `in`, written in two writes split at every offset
  // near a block boundary (and at a stride elsewhere): every byte once, in order, every block
  // back.
  constexpr uint32_t kTotal = 3 * kBufferBytes + kBufferBytes / 2;
  uint32_t runs = 0;
  for (uint32_t first = 1; first < kTotal; ++first) {
    const uint32_t in_block = first % kBufferBytes;
    if (in_block > 3 && in_block < kBufferBytes - 3 && first % 997 != 0) continue;
    SCOPED_TRACE(first);
    ++runs;
    c_ = Connection{};
    c_.client.fd = 10;
    c_.upstream.fd = 11;
    c_.state = State::kRelaying;
    c_.accel_limit = 5;
    produced_[1] = delivered_[1] = 0;
    Ready(c_.upstream, kReadable);
    c_.client.flags &= static_cast<uint8_t>(~kWriteReady);
    for (int k = 0; k < 3; ++k) ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
    ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes / 2)));
    ASSERT_EQ(c_.accel.blocks, 3u);
    ASSERT_EQ(HeldU2C(), kTotal);
    Ready(c_.client, kWritable);
    WriteChain(Bytes(first));
    ASSERT_EQ(HeldU2C(), kTotal - first);
    EXPECT_FALSE(c_.client.flags & kWriteReady) << "a short writev: the send buffer is full";
    EXPECT_TRUE(Want(c_.client) & kWantWrite);
    Ready(c_.client, kWritable);
    ASSERT_EQ(Next(Dir::kU2C), Step::kWrite);
    WriteChain(Bytes(kTotal - first));
    ASSERT_EQ(delivered_[1], kTotal);
    ASSERT_EQ(pool_.in_use(), 0u);
    ASSERT_EQ(stats_.accel_blocks_held, 0u);
  }
  EXPECT_GT(runs, 20u);
}

// Regression: on_write counted the chain's share of a writev as unwritten, so a writev that took
// everything cleared kWriteReady; no EPOLLOUT edge follows a send buffer that never filled, and
// the transfer stalled.
TEST_F(RelayTestAccel, AFullWritevOfTheChainKeepsTheClientWritable) {
  Ready(c_.upstream, kReadable);
  Ready(c_.client, kWritable);
  for (int k = 0; k < 2; ++k) ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(100)));
  ASSERT_EQ(c_.accel.blocks, 2u);
  WriteChain(Bytes(2 * kBufferBytes + 100));
  EXPECT_TRUE(c_.client.flags & kWriteReady) << "everything asked was written";
  EXPECT_EQ(Want(c_.client) & kWantWrite, 0u);
}

TEST_F(RelayTestAccel, ACompletionBackendReadsBesideTheChainsSend) {
  Ready(c_.upstream, kReadable);
  Ready(c_.client, kWritable);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(100)));
  EXPECT_FALSE(relay::reads_beside_write(c_, Dir::kU2C)) << "`in` still holds the block";
  ASSERT_TRUE(Accelerate());
  Ready(c_.upstream, kReadable);  // io_uring keeps a side readable: a receive waits for data
  EXPECT_EQ(Next(Dir::kU2C), Step::kWrite) << "the send goes first";
  EXPECT_TRUE(relay::reads_beside_write(c_, Dir::kU2C)) << "and the next receive beside it";
  EXPECT_FALSE(relay::reads_beside_write(c_, Dir::kC2U)) << "only the accelerating direction";
  c_.upstream.paused |= kPauseNoBuffer;
  EXPECT_FALSE(relay::reads_beside_write(c_, Dir::kU2C));
  c_.upstream.paused = 0;
  c_.accel_limit = 0;
  EXPECT_FALSE(relay::reads_beside_write(c_, Dir::kU2C));
  c_.accel_limit = 5;
  WriteChain(Bytes(100));
}

TEST_F(RelayTestAccel, NoSpliceWhileAccelerating) {
  splice_.mode = SpliceMode::kAlways;
  Ready(c_.upstream, kReadable);
  EXPECT_EQ(Next(Dir::kU2C), Step::kRead) << "an accelerating direction keeps its bytes in blocks";
  Ready(c_.client, kReadable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kSpliceIn) << "the other direction still splices";
}

TEST_F(RelayTestAccel, UpstreamEofWithAChainHeldIsDeliveredThenFinAndTheServerIsReleasedFirst) {
  Ready(c_.upstream, kReadable);
  c_.client.flags &= static_cast<uint8_t>(~kWriteReady);
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
  ASSERT_TRUE(ReadU2C(Bytes(100)));
  ASSERT_TRUE(ReadU2C(Eof()));
  EXPECT_EQ(stats_.server_finished_first, 1u) << "its EOF came with bytes still held";
  EXPECT_NE(Next(Dir::kU2C), Step::kShutdown) << "the FIN waits for the chain";
  EXPECT_FALSE(relay::upstream_finished(c_)) << "the client may still send to the server";
  // The client ends its side; its FIN reaches the server: the server has finished both ways.
  Ready(c_.client, kReadable | kHangup);
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  ASSERT_EQ(Next(Dir::kC2U), Step::kShutdown);
  Shutdown(Dir::kC2U);
  EXPECT_EQ(c_.state, State::kDraining);
  ASSERT_TRUE(relay::upstream_finished(c_));
  relay::on_upstream_released(c_);
  EXPECT_TRUE(Check());
  EXPECT_EQ(c_.upstream.fd, -1);
  EXPECT_FALSE(relay::upstream_finished(c_)) << "released once";
  EXPECT_EQ(Want(c_.upstream), 0u);
  // The client drains at its pace, then gets its FIN: a clean end.
  Ready(c_.client, kWritable);
  WriteChain(Bytes(kBufferBytes + 1));
  Ready(c_.client, kWritable);
  WriteChain(Bytes(2 * kBufferBytes + 99));
  ASSERT_EQ(Next(Dir::kU2C), Step::kShutdown);
  Shutdown(Dir::kU2C);
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_TRUE(relay::ends_cleanly(c_));
  EXPECT_EQ(pool_.in_use(), 0u);
}

TEST_F(RelayTestAccel, EofWithNothingHeldIsNoServerFinishedFirst) {
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(ReadU2C(Bytes(10)));
  WriteChain(Bytes(10));
  ASSERT_TRUE(ReadU2C(Eof()));
  EXPECT_EQ(stats_.server_finished_first, 0u);
}

TEST_F(RelayTestAccel, ClientFailureDiscardsTheChain) {
  Ready(c_.upstream, kReadable);
  c_.client.flags &= static_cast<uint8_t>(~kWriteReady);
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
  ASSERT_EQ(c_.accel.blocks, 3u);
  Ready(c_.client, kWritable);
  WriteChain(Errno(ECONNRESET));
  EXPECT_TRUE(c_.client.flags & kFailed);
  relay::discard_undeliverable(c_, pool_, stats_);
  EXPECT_TRUE(Check());
  EXPECT_TRUE(c_.accel.empty());
  EXPECT_EQ(stats_.accel_blocks_held, 0u);
  EXPECT_EQ(pool_.in_use(), 0u) << "every block back at once";
  EXPECT_NE(Next(Dir::kU2C), Step::kRead) << "nothing is read toward the failed client";
}

TEST_F(RelayTestAccel, ClientFailureAfterTheServerWasReleasedClosesAtOnce) {
  Ready(c_.upstream, kReadable);
  c_.client.flags &= static_cast<uint8_t>(~kWriteReady);
  ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
  ASSERT_TRUE(ReadU2C(Eof()));
  Ready(c_.client, kReadable | kHangup);
  ASSERT_TRUE(Read(Dir::kC2U, Eof()));
  Shutdown(Dir::kC2U);
  ASSERT_TRUE(relay::upstream_finished(c_));
  relay::on_upstream_released(c_);
  Ready(c_.client, kError);
  EXPECT_EQ(c_.state, State::kClosing) << "nothing is owed to the released server";
  EXPECT_FALSE(relay::ends_cleanly(c_));
  relay::release_buffers(c_, pool_, stats_);
  EXPECT_EQ(pool_.in_use(), 0u);
  EXPECT_EQ(stats_.accel_blocks_held, 0u);
}

TEST_F(RelayTestAccel, UpstreamResetDeliversTheChainBeforeLingering) {
  Ready(c_.upstream, kReadable);
  c_.client.flags &= static_cast<uint8_t>(~kWriteReady);
  for (int k = 0; k < 2; ++k) ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
  ASSERT_TRUE(ReadU2C(Errno(ECONNRESET)));
  EXPECT_EQ(stats_.server_finished_first, 0u) << "a reset is no finish";
  EXPECT_EQ(c_.state, State::kRelaying) << "the chain's bytes are still owed to the client";
  EXPECT_FALSE(relay::upstream_finished(c_));
  Ready(c_.client, kWritable);
  WriteChain(Bytes(kBufferBytes));
  EXPECT_EQ(c_.state, State::kRelaying);
  WriteChain(Bytes(kBufferBytes));
  EXPECT_EQ(c_.state, State::kLingering) << "every byte handed over: the reset follows";
  EXPECT_EQ(pool_.in_use(), 0u);
}

TEST_F(RelayTestAccel, AbortReturnsEveryBlock) {
  Ready(c_.upstream, kReadable);
  c_.client.flags &= static_cast<uint8_t>(~kWriteReady);
  for (int k = 0; k < 4; ++k) ASSERT_TRUE(ReadU2C(Bytes(kBufferBytes)));
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, Bytes(20)));
  relay::abort(c_, EndReason::kIdleTimeout);
  EXPECT_FALSE(relay::ends_cleanly(c_));
  relay::release_buffers(c_, pool_, stats_);
  EXPECT_TRUE(Check());
  EXPECT_EQ(pool_.in_use(), 0u);
  EXPECT_EQ(stats_.accel_blocks_held, 0u);
  EXPECT_EQ(stats_.accel_blocks_peak, 4u);
}

TEST_F(RelayTestAccel, AnyReceivedBlockJoinsTheChainOnCompletionBackends) {
  // io_uring: the kernel picks a block per receive, so a partly filled one is chained too.
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(100)));
  EXPECT_TRUE(Accelerate());
  EXPECT_FALSE(c_.upstream.in.attached()) << "the next receive can start";
  ASSERT_TRUE(Read(Dir::kU2C, Bytes(200)));
  EXPECT_TRUE(Accelerate());
  EXPECT_EQ(HeldU2C(), 300u);
  WriteChain(Bytes(300));
  EXPECT_EQ(pool_.in_use(), 0u);
}

}  // namespace
}  // namespace edgeproxy

namespace edgeproxy {
namespace {

// --- pooled upstreams (HTTP mode, decision 0013) ------------------------------------------------

using relay::Step;

class RelayTestPooled : public RelayTest {
 protected:
  RelayTestPooled() {
    c_.pooled = true;
    c_.client.flags = kWriteReady;
    c_.upstream.flags = kWriteReady;
  }
};

TEST_F(RelayTestPooled, AServerEndIsNotPassedToTheClient) {
  Ready(c_.upstream, kReadable);
  ASSERT_TRUE(Read(Dir::kU2C, SysResult{0}));  // the server closed its idle connection
  EXPECT_TRUE(c_.upstream.flags & kEof);
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);  // no FIN for the client: the worker decides
  EXPECT_EQ(c_.state, State::kRelaying);
}

TEST_F(RelayTestPooled, AClientEndIsNotPassedToTheServer) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, SysResult{0}));
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);  // the pooled connection is not shut
  EXPECT_EQ(c_.state, State::kRelaying);
}

TEST_F(RelayTestPooled, AServerErrorLeavesTheConnectionToTheWorker) {
  Fail(c_.upstream);
  EXPECT_TRUE(c_.upstream.flags & kFailed);
  EXPECT_EQ(c_.state, State::kRelaying);  // no linger, no close: another server may serve
  c_.pooled = false;                      // the worker let the socket go (a truncated response)
  Fail(c_.upstream);
  ASSERT_TRUE(Read(Dir::kU2C, SysResult{0}));  // what it sent before the error, then its end
  EXPECT_EQ(c_.state, State::kLingering);      // as any connection (decision 0007)
}

TEST_F(RelayTestPooled, AClientErrorClosesAtOnce) {
  Fail(c_.client);
  EXPECT_EQ(c_.state, State::kClosing);
}

TEST_F(RelayTestPooled, ADetachedUpstreamLeavesAnEmptySideAndTheClientReading) {
  c_.upstream.ops = 3;
  c_.detaching = true;
  relay::on_upstream_detached(c_);
  EXPECT_EQ(c_.upstream.fd, -1);
  EXPECT_EQ(c_.upstream.ops, 3);  // a completion still due keeps the slot
  EXPECT_EQ(c_.upstream.gate, 0u);
  EXPECT_FALSE(c_.detaching);
  EXPECT_EQ(c_.state, State::kInspecting);
}

TEST_F(RelayTestPooled, EndClientSendsAFinThenClosesCleanlyAtTheClientsEnd) {
  c_.upstream = Side{};
  relay::end_client(c_, false);
  EXPECT_FALSE(c_.pooled);
  EXPECT_EQ(Next(Dir::kU2C), Step::kShutdown);  // the FIN
  Shutdown(Dir::kU2C);
  EXPECT_EQ(c_.state, State::kDraining);
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, SysResult{0}));  // the client closes in turn
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_TRUE(relay::ends_cleanly(c_));  // FINs, no reset
}

TEST_F(RelayTestPooled, EndClientAfterTheClientsEndClosesAtTheFin) {
  Ready(c_.client, kReadable);
  ASSERT_TRUE(Read(Dir::kC2U, SysResult{0}));
  c_.upstream = Side{};
  relay::end_client(c_, false);
  ASSERT_EQ(Next(Dir::kU2C), Step::kShutdown);
  Shutdown(Dir::kU2C);
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_TRUE(relay::ends_cleanly(c_));
}

TEST_F(RelayTestPooled, EndClientOverClosesOnceItsBytesAreOutWithoutItsFin) {
  c_.upstream = Side{};
  relay::end_client(c_, true);  // its request asked to close (decision 0018)
  EXPECT_EQ(c_.end, EndReason::kClientFin);
  Ready(c_.client, kReadable);
  EXPECT_EQ(Next(Dir::kC2U), Step::kNone);  // nothing more is read from it
  ASSERT_EQ(Next(Dir::kU2C), Step::kShutdown);
  EXPECT_TRUE(relay::shutdown_is_last(c_, Dir::kU2C));  // the close sends the FIN
  Shutdown(Dir::kU2C);
  EXPECT_EQ(c_.state, State::kClosing);
  EXPECT_TRUE(relay::ends_cleanly(c_));
}

TEST_F(RelayTestPooled, EndClientOverLeavesAFailedClientFailed) {
  Ready(c_.client, kError);
  relay::fail(c_, c_.client, stats_);
  c_.upstream = Side{};
  relay::end_client(c_, true);
  EXPECT_EQ(c_.end, EndReason::kClientReset);
  EXPECT_FALSE(relay::ends_cleanly(c_));
}

TEST_F(RelayTestPooled, APausedDetachReadsNothingMore) {
  Ready(c_.upstream, kReadable);
  c_.upstream.paused |= kPauseDetach;
  EXPECT_EQ(Next(Dir::kU2C), Step::kNone);
}

}  // namespace
}  // namespace edgeproxy
