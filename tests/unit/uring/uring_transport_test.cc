// UringTransport on a real ring and real loopback sockets, driven the way the Worker drives it:
// connect, feed each completion to on_event, pump, settle; at close quiesce() until it says
// nothing is in flight, then close the fds and free the slot. Checks that bytes arrive, that every
// completion path gives its provided-buffer block back, and that no slot is freed while the kernel
// still holds an operation naming it.
#include "uring/uring_transport.h"

#include <gtest/gtest.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "edgeproxy/cookie.h"
#include "loopback.h"
#include "ring_faults.h"

namespace edgeproxy {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kSlots = 16;
// Small enough that every block is in the kernel's ring and each one is checked to serve.
constexpr uint32_t kFewBlocks = 4;
constexpr int kStepMs = 5;
constexpr auto kDeadline = std::chrono::seconds(5);

// One connection completion as the reactor reported it.
struct Seen {
  Handle handle;
  bool client;
  UringOp op;
  int32_t result;
  uint32_t flags;
  uint16_t buffer;  // the buffer id, or for kSplice* ops the UringSplice kind
};

// --splice never: the tests of the buffer path.
Config Buffered() {
  Config c;
  c.splice = SpliceMode::kNever;
  return c;
}

// The test's ends of a proxied connection.
struct Peers {
  int client = -1;    // talks to the connection's client fd
  int upstream = -1;  // accepted from the backend listener: talks to its upstream fd
};

// Bytes written into `from` that must come out of `to`.
struct Flow {
  Flow(int from_fd, int to_fd, std::string bytes)
      : from(from_fd), to(to_fd), data(std::move(bytes)) {}

  int from;
  int to;
  std::string data;
  size_t sent = 0;
  std::string got;
  bool eof = false;         // `to` reported EOF
  bool shut_after = false;  // shutdown(SHUT_WR) `from` once every byte was written
  bool shut = false;
  // The connection's last direction: its FIN comes with the close (decision 0014), so Move()
  // does not wait for it.
  bool fin_at_close = false;
};

std::string Payload(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(size, '\0');
  for (char& ch : s) ch = static_cast<char>(rng());
  return s;
}

class UringTransportTest : public ::testing::Test {
 protected:
  // Creates the ring, a pool of `buffers` blocks and the transport, as Worker::create and
  // Worker::run do, plus the listeners the test's peers use. `config` sets splice.
  void Start(uint32_t buffers, const Config& config = Buffered()) {
    auto reactor = UringReactor::create(256, 64);
    ASSERT_TRUE(reactor.ok()) << reactor.error();
    reactor_.emplace(std::move(reactor.value()));
    const SysResult started = reactor_->start();
    ASSERT_TRUE(started.ok()) << std::strerror(started.err);
    auto pool = BufferPool::create(buffers);
    ASSERT_TRUE(pool.ok()) << pool.error();
    pool_.emplace(std::move(pool.value()));
    transport_.emplace(*reactor_, *pool_, stats_);
    const Result<Ok> init = transport_->init(config);
    ASSERT_TRUE(init.ok()) << init.error();
    front_ = loopback::Bind(128, front_address_);
    backend_ = loopback::Bind(128, backend_address_);
    ASSERT_GE(front_, 0);
    ASSERT_GE(backend_, 0);
  }

  void TearDown() override {
    if (transport_) {
      for (uint32_t i = 0; i < kSlots; ++i) {
        if (!slab_.in_use(i)) continue;
        if (!Close(slab_.handle_of(i))) {
          ADD_FAILURE() << "slot " << i << " never quiesced";
          Release(i);
        }
      }
    }
    for (Peers& p : peers_) {
      loopback::Close(p.client);
      loopback::Close(p.upstream);
    }
    loopback::Close(front_);
    loopback::Close(backend_);
  }

  Connection& At(Handle h) { return slab_.at(h.index); }
  Peers& PeersOf(Handle h) { return peers_[h.index]; }

  // Starts a connection the way Worker::start_connection does: the accepted client fd, a new
  // upstream socket, the connect submitted through the transport. Its completion is not awaited.
  void Begin(Handle& h, const SocketAddress& upstream_to) {
    Peers p;
    p.client = loopback::ConnectTo(front_address_);
    ASSERT_GE(p.client, 0);
    const int client_fd = loopback::AcceptOne(front_);
    ASSERT_GE(client_fd, 0);
    Connection* c = slab_.acquire(h);
    ASSERT_NE(c, nullptr);
    loopback::Close(peers_[h.index].client);  // a freed slot's peers: the test is done with them
    loopback::Close(peers_[h.index].upstream);
    peers_[h.index] = p;
    outcome_[h.index] = ConnectOutcome::kNone;
    c->client.fd = client_fd;
    EXPECT_EQ(transport_->attach(*c, h), 0);
    relay::on_accepted(*c);
    const SysResult s = sys::stream_socket(AF_INET);
    ASSERT_TRUE(s.ok());
    c->upstream.fd = static_cast<int>(s.value);
    EXPECT_EQ(transport_->connect(*c, h, upstream_to), EINPROGRESS);
    EXPECT_EQ(c->state, State::kConnecting);
    EXPECT_TRUE(c->upstream.ops & kOpConnect);
  }

  // A relaying connection: Begin() to the backend listener, the connect completion fed back,
  // and the backend's end accepted as the upstream peer.
  void Open(Handle& h) {
    ASSERT_NO_FATAL_FAILURE(Begin(h, backend_address_));
    ASSERT_TRUE(RunUntil([&] { return outcome_[h.index] != ConnectOutcome::kNone; }));
    ASSERT_EQ(outcome_[h.index], ConnectOutcome::kConnected);
    peers_[h.index].upstream = loopback::AcceptOne(backend_);
    ASSERT_GE(peers_[h.index].upstream, 0);
  }

  // One Worker loop iteration: wait, hand every connection event to the transport (and pump the
  // connection unless it is closing), then settle every live connection; a lingering one closes
  // once its surviving side's peer acknowledged everything (Worker::check_linger).
  size_t Step(int timeout_ms) {
    const std::span<const Event> events = reactor_->wait(timeout_ms);
    now_ = LoopTime::now();
    for (const Event& ev : events) Dispatch(ev);
    for (uint32_t i = 0; i < kSlots; ++i) {
      if (!slab_.in_use(i) || slab_.at(i).state == State::kClosing) continue;
      Connection& c = slab_.at(i);
      EXPECT_TRUE(transport_->settle(c, slab_.handle_of(i)));
      if (c.state == State::kLingering) {
        const SysResult r = sys::unacked_bytes(relay::surviving_side(c).fd);
        if (!r.ok() || r.value <= 0) relay::on_acknowledged(c);
      }
    }
    return events.size();
  }

  // Worker::on_connection_event, recording what arrived.
  void Dispatch(const Event& ev) {
    const Cookie ck = Cookie::unpack(ev.cookie);
    ASSERT_TRUE(ck.tag == CookieTag::kClient || ck.tag == CookieTag::kUpstream)
        << "unexpected cookie tag " << static_cast<int>(ck.tag);
    const bool client = ck.tag == CookieTag::kClient;
    seen_.push_back(Seen{ck.handle, client, UringEventOp::op(ev.op), ev.result, ev.flags,
                         UringEventOp::buffer(ev.op)});
    if (withhold_ && withhold_(seen_.back())) {
      withhold_ = nullptr;  // one completion, never handed to the transport
      withheld_ = ev;
      if (count_withheld_as_dropped_) ring_faults::CountDroppedCompletion(reactor_->ring());
      return;
    }
    Connection* c = slab_.resolve(ck.handle);
    if (c == nullptr) {
      ++stale_;
      transport_->on_stale(ev);
      return;
    }
    const ConnectOutcome outcome = transport_->on_event(*c, ck.handle, client, ev, now_).outcome;
    if (outcome != ConnectOutcome::kNone) outcome_[ck.handle.index] = outcome;
    if (outcome == ConnectOutcome::kFailed) relay::abort(*c, EndReason::kConnectFailed);
    if (c->state != State::kClosing) transport_->pump(*c, ck.handle, now_);
  }

  // Steps until `done` holds or the deadline passes; says whether it holds.
  bool RunUntil(const std::function<bool()>& done) {
    const auto deadline = Clock::now() + kDeadline;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      Step(kStepMs);
    }
    return true;
  }

  // Steps for `ms` whatever happens.
  void RunFor(int ms) {
    const auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < until) Step(kStepMs);
  }

  // Writes every flow's bytes and reads them at the other end while stepping, until all arrived
  // (and, for flows that shut their writer, until the reader saw EOF).
  bool Move(const std::vector<Flow*>& flows) {
    return RunUntil([&] {
      bool done = true;
      for (Flow* f : flows) {
        if (f->sent < f->data.size()) {
          f->sent +=
              loopback::SendSome(f->from, f->data.data() + f->sent, f->data.size() - f->sent);
        }
        if (f->sent == f->data.size() && f->shut_after && !f->shut) {
          ::shutdown(f->from, SHUT_WR);
          f->shut = true;
        }
        if (!f->eof) f->eof = !loopback::RecvSome(f->to, f->got);
        if (f->got.size() < f->data.size() || (f->shut_after && !f->eof && !f->fin_at_close)) {
          done = false;
        }
      }
      return done;
    });
  }

  // Worker::close_connection once quiesce() said nothing is in flight: fds, buffers, slot.
  void Release(uint32_t index) {
    Connection& c = slab_.at(index);
    for (Side* side : {&c.client, &c.upstream}) {
      if (side->fd >= 0) sys::close(side->fd);
    }
    pool_->release(c.client.in);
    pool_->release(c.upstream.in);
    transport_->release_pipes(c);
    c = Connection{};
    slab_.release(index);
  }

  // The Worker's close: kClosing, then quiesce() after every iteration until it returns true,
  // only then Release(). False if it never quiesced.
  bool Close(Handle h) {
    Connection* c = slab_.resolve(h);
    if (c == nullptr) return false;
    c->state = State::kClosing;
    const auto deadline = Clock::now() + kDeadline;
    while (!transport_->quiesce(*c, h)) {
      if (Clock::now() > deadline) return false;
      Step(kStepMs);
    }
    Release(h.index);
    return true;
  }

  // The Worker's close, counting its iterations: quiesce() after each until it returns true
  // (then the slot is released), at most `max_steps` iterations. Returns how many it took, or
  // max_steps + 1 if it never quiesced. A connection that quiesce() asks to come back (c.more)
  // is pumped again first, as the Worker does with its pending list.
  int CloseCounting(Handle h, int max_steps) {
    Connection* c = slab_.resolve(h);
    if (c == nullptr) return max_steps + 1;
    c->state = State::kClosing;
    for (int steps = 0; steps <= max_steps; ++steps) {
      if (c->more) transport_->pump(*c, h, now_);
      if (transport_->quiesce(*c, h)) {
        Release(h.index);
        return steps;
      }
      Step(kStepMs);
    }
    return max_steps + 1;
  }

  // Queues nops (which complete as no connection's) until the submission queue is full.
  void FillSubmissionQueue() {
    while (io_uring_sq_space_left(reactor_->ring()) > 0) {
      io_uring_sqe* e = reactor_->sqe();
      ASSERT_NE(e, nullptr);
      io_uring_prep_nop(e);
      io_uring_sqe_set_data64(e, UserData::pack(UringOp::kNone, Handle{}));
    }
  }

  // Close(), then whether the client's peer reads an orderly end (a FIN, not a reset): the last
  // direction's FIN comes with the close (decision 0014).
  bool CloseSendsClientFin(Handle h) {
    const int client_peer = PeersOf(h).client;
    if (!Close(h)) return false;
    std::string rest;
    return !loopback::RecvSome(client_peer, rest) && rest.empty();
  }

  // Steps until quiesce() returns true, checking after every iteration that the slot still
  // names `h`: the Worker keeps a slot while anything is in flight, so every completion must
  // still find its connection. False if it never quiesced.
  bool QuiesceKeepingSlot(Handle h) {
    Connection* c = slab_.resolve(h);
    if (c == nullptr) return false;
    const auto deadline = Clock::now() + kDeadline;
    while (!transport_->quiesce(*c, h)) {
      if (Clock::now() > deadline) return false;
      Step(kStepMs);
      EXPECT_EQ(slab_.handle_of(h.index), h);
      EXPECT_EQ(slab_.resolve(h), c);
    }
    return true;
  }

  // Writes into `writer` until a send to `sink` has been pending through 20 iterations in a row
  // that brought no completion at all: the reader behind `sink` is full and not reading.
  bool FillUntilSendStalls(int writer, const Side& sink) {
    const std::string chunk = Payload(64 * 1024, 11);
    int quiet = 0;
    const auto deadline = Clock::now() + kDeadline;
    while (quiet < 20) {
      if (Clock::now() > deadline) return false;
      loopback::SendSome(writer, chunk.data(), chunk.size());
      const size_t events = Step(kStepMs);
      quiet = (events == 0 && (sink.ops & kOpSend)) ? quiet + 1 : 0;
    }
    return true;
  }

  // Puts blocks back into the provided-buffer ring as pump() and settle() do each iteration
  // (settle on an unused connection touches nothing else).
  void Restock() {
    Connection scratch;
    transport_->settle(scratch, Handle{});
  }

  // The ring's size: the largest power of two no larger than the pool, capped.
  uint32_t RingBlocks() const {
    return std::bit_floor(std::min(pool_->capacity(), UringTransport::kRingEntries));
  }

  // Block accounting: after a restock every block is either free in the pool, attached to a live
  // connection's buffer, or in the kernel's ring, which is full unless the pool ran out. A block
  // lost on some completion path shows up as one block too many (or too few) in use.
  ::testing::AssertionResult PoolBalanced() {
    Restock();
    uint32_t attached = 0;
    for (uint32_t i = 0; i < kSlots; ++i) {
      if (!slab_.in_use(i)) continue;
      attached += slab_.at(i).client.in.attached() ? 1u : 0u;
      attached += slab_.at(i).upstream.in.attached() ? 1u : 0u;
    }
    const uint32_t in_ring = std::min(RingBlocks(), pool_->capacity() - attached);
    if (pool_->available() + pool_->in_use() != pool_->capacity() ||
        pool_->in_use() != attached + in_ring) {
      return ::testing::AssertionFailure()
             << "pool in_use " << pool_->in_use() << ", available " << pool_->available()
             << ", capacity " << pool_->capacity() << "; expected " << attached
             << " attached to connections + " << in_ring << " in the ring";
    }
    return ::testing::AssertionSuccess();
  }

  // Every block the transport believes is in the kernel's ring must really be there: as many
  // sides as the ring has blocks each get a byte at once, and none may hit ENOBUFS. A block the
  // kernel consumed on some completion path but nobody gave back leaves one side without.
  void ExpectRingServesEveryBlock() {
    ASSERT_TRUE(PoolBalanced());
    ASSERT_EQ(pool_->in_use(), RingBlocks()) << "blocks still held by connections";
    ASSERT_EQ(RingBlocks() % 2, 0u);
    const uint64_t waits = stats_.pool_waits;
    std::vector<Handle> handles(RingBlocks() / 2);
    for (Handle& h : handles) ASSERT_NO_FATAL_FAILURE(Open(h));
    std::vector<Flow> flows;
    for (const Handle h : handles) {
      flows.emplace_back(PeersOf(h).client, PeersOf(h).upstream, "c");
      flows.emplace_back(PeersOf(h).upstream, PeersOf(h).client, "u");
    }
    std::vector<Flow*> all;
    for (Flow& f : flows) {
      f.sent = loopback::SendSome(f.from, f.data.data(), f.data.size());
      all.push_back(&f);
    }
    ASSERT_TRUE(Move(all));
    EXPECT_EQ(stats_.pool_waits, waits) << "a receive found the ring short of a block";
    for (const Handle h : handles) {
      ASSERT_TRUE(Close(h));
      loopback::Close(PeersOf(h).client);
      loopback::Close(PeersOf(h).upstream);
    }
    EXPECT_TRUE(PoolBalanced());
  }

  // Splice completions of `kind` for connection `h` (either side) since seen_[from].
  size_t CountSplice(Handle h, UringSplice kind, size_t from = 0) const {
    size_t n = 0;
    for (size_t i = from; i < seen_.size(); ++i) {
      const Seen& s = seen_[i];
      n += s.handle == h && (s.op == UringOp::kSpliceClient || s.op == UringOp::kSpliceUpstream) &&
           s.buffer == static_cast<uint16_t>(kind);
    }
    return n;
  }
  bool SawSplice(Handle h, UringSplice kind, int32_t result) const {
    return std::any_of(seen_.begin(), seen_.end(), [&](const Seen& s) {
      return s.handle == h &&
             (s.op == UringOp::kSpliceClient || s.op == UringOp::kSpliceUpstream) &&
             s.buffer == static_cast<uint16_t>(kind) && s.result == result;
    });
  }

  // Pipe accounting: every pipe handed out is held by a side of a live connection.
  ::testing::AssertionResult PipesBalanced() {
    const PipePool& pipes = transport_->pipes();
    uint32_t held = 0;
    for (uint32_t i = 0; i < kSlots; ++i) {
      if (!slab_.in_use(i)) continue;
      for (const Side* side : {&slab_.at(i).client, &slab_.at(i).upstream}) {
        held += side->pipe != kNoPipe ? 1u : 0u;
        if (side->pipe == kNoPipe && side->piped != 0) {
          return ::testing::AssertionFailure() << "slot " << i << ": bytes in no pipe";
        }
      }
    }
    if (pipes.available() + pipes.in_use() != pipes.capacity() || pipes.in_use() != held) {
      return ::testing::AssertionFailure()
             << "pipes in_use " << pipes.in_use() << ", available " << pipes.available()
             << ", capacity " << pipes.capacity() << "; held by connections " << held;
    }
    return ::testing::AssertionSuccess();
  }

  // Writes into `writer` while stepping until `done` holds (or the deadline passes).
  bool FillUntil(int writer, const std::function<bool()>& done) {
    const std::string chunk = Payload(64 * 1024, 12);
    const auto deadline = Clock::now() + kDeadline;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      loopback::SendSome(writer, chunk.data(), chunk.size());
      Step(kStepMs);
    }
    return true;
  }

  size_t CountSeen(Handle h, UringOp op, size_t from = 0) const {
    size_t n = 0;
    for (size_t i = from; i < seen_.size(); ++i) n += seen_[i].handle == h && seen_[i].op == op;
    return n;
  }
  bool SawResult(Handle h, UringOp op, int32_t result) const {
    return std::any_of(seen_.begin(), seen_.end(), [&](const Seen& s) {
      return s.handle == h && s.op == op && s.result == result;
    });
  }

  std::optional<UringReactor> reactor_;
  std::optional<BufferPool> pool_;
  Stats stats_;
  std::optional<UringTransport> transport_;
  Slab<Connection> slab_{kSlots};
  Peers peers_[kSlots];
  ConnectOutcome outcome_[kSlots] = {};
  std::vector<Seen> seen_;
  uint64_t stale_ = 0;
  // The next completion this matches is withheld from the transport (kept in withheld_), and,
  // if count_withheld_as_dropped_, counted as the kernel counts a completion it drops.
  std::function<bool(const Seen&)> withhold_;
  bool count_withheld_as_dropped_ = true;
  Event withheld_{};
  LoopTime now_ = LoopTime::now();
  int front_ = -1;  // the test's client peers connect here; the accepted end is the client fd
  SocketAddress front_address_;
  int backend_ = -1;  // the transport connects upstreams here
  SocketAddress backend_address_;
};

// --- connect -------------------------------------------------------------------------------

TEST_F(UringTransportTest, ConnectSuccessMakesTheUpstreamReadyAndStartsReceiving) {
  ASSERT_NO_FATAL_FAILURE(Start(64));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  const Connection& c = At(h);
  EXPECT_EQ(c.state, State::kRelaying);
  EXPECT_TRUE(c.upstream.flags & kWriteReady);
  EXPECT_TRUE(c.upstream.flags & kReadReady);
  EXPECT_FALSE(c.upstream.ops & kOpConnect);
  EXPECT_TRUE(SawResult(h, UringOp::kConnect, 0));
  // Both sides now wait for bytes, and an idle connection holds no block: the kernel picks one
  // from the ring only when bytes arrive.
  EXPECT_TRUE(c.client.ops & kOpRecv);
  EXPECT_TRUE(c.upstream.ops & kOpRecv);
  EXPECT_FALSE(c.client.in.attached());
  EXPECT_FALSE(c.upstream.in.attached());
  EXPECT_EQ(pool_->in_use(), RingBlocks());
  EXPECT_TRUE(PoolBalanced());
}

TEST_F(UringTransportTest, TcpOptionsGoWithTheNextSubmissionBothWays) {
  ASSERT_NO_FATAL_FAILURE(Start(64));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  auto option = [fd](int name) {
    int v = -1;
    socklen_t len = sizeof v;
    EXPECT_EQ(::getsockopt(fd, IPPROTO_TCP, name, &v, &len), 0);
    return v;
  };
  ASSERT_EQ(option(TCP_NODELAY), 0);
  // Socket commands came with 6.7: from there the ring does it, and a wrong entry layout would
  // make the probe fail and every option fall back to the system call.
  utsname u{};
  int major = 0;
  int minor = 0;
  ASSERT_EQ(::uname(&u), 0);
  ASSERT_EQ(std::sscanf(u.release, "%d.%d", &major, &minor), 2);
  if (major > 6 || (major == 6 && minor >= 7)) {
    EXPECT_TRUE(transport_->socket_commands());
  }
  transport_->set_tcp_option(fd, TCP_NODELAY, true);
  // In the ring or by a system call (an older kernel), set once the next wait has submitted.
  Step(kStepMs);
  EXPECT_NE(option(TCP_NODELAY), 0);
  transport_->set_tcp_option(fd, TCP_NODELAY, false);
  Step(kStepMs);
  EXPECT_EQ(option(TCP_NODELAY), 0);
  // Its success brings no completion, and nothing reached the transport.
  EXPECT_TRUE(seen_.empty());
  EXPECT_EQ(stale_, 0u);
  ::close(fd);
}

TEST_F(UringTransportTest, ConnectToAClosedPortFails) {
  ASSERT_NO_FATAL_FAILURE(Start(64));
  // Bound but not listening: the kernel answers the SYN with a reset.
  SocketAddress closed;
  int bound = loopback::Bind(-1, closed);
  ASSERT_GE(bound, 0);
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Begin(h, closed));
  ASSERT_TRUE(RunUntil([&] { return outcome_[h.index] != ConnectOutcome::kNone; }));
  EXPECT_EQ(outcome_[h.index], ConnectOutcome::kFailed);
  EXPECT_TRUE(SawResult(h, UringOp::kConnect, -ECONNREFUSED));
  Connection& c = At(h);
  EXPECT_FALSE(c.upstream.flags & kWriteReady);
  EXPECT_FALSE(c.upstream.ops & kOpConnect);
  EXPECT_EQ(c.state, State::kClosing);
  // Nothing else was ever submitted for it: it may be freed at once.
  EXPECT_TRUE(transport_->quiesce(c, h));
  EXPECT_TRUE(Close(h));
  EXPECT_TRUE(PoolBalanced());
  loopback::Close(bound);
}

TEST_F(UringTransportTest, QuiesceCancelsAConnectStillInFlight) {
  ASSERT_NO_FATAL_FAILURE(Start(64));
  // A listener whose accept queue is full drops SYNs, so a connect to it stays in progress.
  SocketAddress full_address;
  int full = loopback::Bind(0, full_address);
  ASSERT_GE(full, 0);
  int fillers[2] = {-1, -1};
  for (int& f : fillers) {
    f = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(f, 0);
    ::connect(f, full_address.get(), full_address.length);
  }
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Begin(h, full_address));
  RunFor(200);
  if (outcome_[h.index] != ConnectOutcome::kNone) {
    for (int& f : fillers) loopback::Close(f);
    loopback::Close(full);
    GTEST_SKIP() << "the full backlog did not hold the connect back on this kernel";
  }
  Connection& c = At(h);
  ASSERT_TRUE(c.upstream.ops & kOpConnect);
  // The shutdown deadline fired (Worker::force_close_all).
  relay::abort(c, EndReason::kShutdownFast);
  const Handle old = h;
  EXPECT_FALSE(transport_->quiesce(c, h));
  EXPECT_TRUE(c.upstream.ops & kOpCancel);
  ASSERT_TRUE(QuiesceKeepingSlot(old));
  EXPECT_FALSE(c.upstream.ops & kOpConnect);
  EXPECT_TRUE(SawResult(old, UringOp::kConnect, -ECANCELED));
  EXPECT_EQ(outcome_[h.index], ConnectOutcome::kNone);  // a cancelled connect is no failure
  Release(h.index);
  EXPECT_EQ(slab_.resolve(old), nullptr);
  EXPECT_TRUE(PoolBalanced());
  for (int& f : fillers) loopback::Close(f);
  loopback::Close(full);
}

// --- bytes ----------------------------------------------------------------------------------

TEST_F(UringTransportTest, SmallPayloadsArriveBothWays) {
  ASSERT_NO_FATAL_FAILURE(Start(64));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Flow c2u{PeersOf(h).client, PeersOf(h).upstream, "hello"};
  ASSERT_TRUE(Move({&c2u}));
  EXPECT_EQ(c2u.got, "hello");
  Flow u2c{PeersOf(h).upstream, PeersOf(h).client, "world!"};
  ASSERT_TRUE(Move({&u2c}));
  EXPECT_EQ(u2c.got, "world!");
  EXPECT_EQ(stats_.bytes_c2u, 5u);
  EXPECT_EQ(stats_.bytes_u2c, 6u);
  EXPECT_EQ(stats_.reads_client, 1u);
  EXPECT_EQ(stats_.reads_upstream, 1u);
  EXPECT_EQ(stats_.writes_upstream, 1u);
  EXPECT_EQ(stats_.writes_client, 1u);
}

TEST_F(UringTransportTest, LargePayloadsArriveBothWaysAtOnceInOrder) {
  ASSERT_NO_FATAL_FAILURE(Start(64));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  // Far more than one 8 KiB block each way, both directions at the same time.
  Flow c2u{PeersOf(h).client, PeersOf(h).upstream, Payload(1 << 20, 1)};
  Flow u2c{PeersOf(h).upstream, PeersOf(h).client, Payload(777 * 1024 + 13, 2)};
  ASSERT_TRUE(Move({&c2u, &u2c}));
  EXPECT_TRUE(c2u.got == c2u.data) << "c2u bytes differ (" << c2u.got.size() << " received)";
  EXPECT_TRUE(u2c.got == u2c.data) << "u2c bytes differ (" << u2c.got.size() << " received)";
  EXPECT_EQ(stats_.bytes_c2u, c2u.data.size());
  EXPECT_EQ(stats_.bytes_u2c, u2c.data.size());
  EXPECT_GE(stats_.reads_client, c2u.data.size() / kBufferBytes);
  EXPECT_GE(stats_.reads_upstream, u2c.data.size() / kBufferBytes);
  EXPECT_EQ(stats_.pool_waits, 0u);
}

// --- every completion path gives its block back ----------------------------------------------

// (a) recv with bytes, then the send that drains them.
TEST_F(UringTransportTest, RecvSendCycleReturnsEveryBlock) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Flow c2u{PeersOf(h).client, PeersOf(h).upstream, Payload(100000, 3)};
  Flow u2c{PeersOf(h).upstream, PeersOf(h).client, Payload(50000, 4)};
  ASSERT_TRUE(Move({&c2u, &u2c}));
  // Every receive completion carried a block (IORING_CQE_F_BUFFER).
  for (const Seen& s : seen_) {
    if ((s.op == UringOp::kRecvClient || s.op == UringOp::kRecvUpstream) && s.result > 0) {
      EXPECT_TRUE(s.flags & IORING_CQE_F_BUFFER);
    }
  }
  // Drained buffers went back at once: the idle connection holds nothing.
  ASSERT_TRUE(
      RunUntil([&] { return !At(h).client.in.attached() && !At(h).upstream.in.attached(); }));
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(pool_->in_use(), RingBlocks());
  EXPECT_TRUE(Close(h));
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(pool_->in_use(), RingBlocks());
  ExpectRingServesEveryBlock();
}

// (b) recv returning 0: the peer shut its write side.
TEST_F(UringTransportTest, EofReturnsBlocksAndShutsTheOtherSide) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Flow c2u{PeersOf(h).client, PeersOf(h).upstream, Payload(20000, 5)};
  c2u.shut_after = true;
  ASSERT_TRUE(Move({&c2u}));  // every byte, then EOF at the upstream peer
  EXPECT_TRUE(c2u.got == c2u.data);
  Connection& c = At(h);
  EXPECT_TRUE(SawResult(h, UringOp::kRecvClient, 0));
  EXPECT_TRUE(c.client.flags & kEof);
  EXPECT_TRUE(c.upstream.flags & kWriteShut);
  EXPECT_EQ(c.state, State::kDraining);
  EXPECT_FALSE(c.client.ops & kOpRecv);  // no receive after EOF
  EXPECT_TRUE(c.client.ops & kOpPollIn) << "a half-closed side is watched for a reset";
  EXPECT_TRUE(c.upstream.ops & kOpRecv);
  EXPECT_FALSE(c.client.in.attached());
  EXPECT_TRUE(PoolBalanced());

  Flow u2c{PeersOf(h).upstream, PeersOf(h).client, Payload(30000, 6)};
  u2c.shut_after = true;
  u2c.fin_at_close = true;
  ASSERT_TRUE(Move({&u2c}));
  EXPECT_TRUE(u2c.got == u2c.data);
  // Both directions done: the connection closes itself, with nothing left in flight but the
  // watch of the client, which quiesce() cancels.
  ASSERT_TRUE(RunUntil([&] { return c.state == State::kClosing; }));
  EXPECT_EQ(c.client.ops | c.upstream.ops, kOpPollIn);
  EXPECT_TRUE(QuiesceKeepingSlot(h));
  EXPECT_TRUE(PoolBalanced());
  EXPECT_TRUE(CloseSendsClientFin(h));
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(pool_->in_use(), RingBlocks());
  EXPECT_EQ(stats_.bytes_c2u, c2u.data.size());
  EXPECT_EQ(stats_.bytes_u2c, u2c.data.size());
  ExpectRingServesEveryBlock();
}

// (c) recv completing with an error: the peer reset the connection.
TEST_F(UringTransportTest, RecvErrorAfterPeerResetReturnsBlocks) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Flow c2u{PeersOf(h).client, PeersOf(h).upstream, Payload(30000, 7)};
  ASSERT_TRUE(Move({&c2u}));
  Connection& c = At(h);
  ASSERT_TRUE(c.client.ops & kOpRecv);
  loopback::Reset(PeersOf(h).client);
  ASSERT_TRUE(RunUntil([&] { return c.state == State::kClosing; }));
  EXPECT_TRUE(SawResult(h, UringOp::kRecvClient, -ECONNRESET));
  EXPECT_TRUE(c.client.flags & kFailed);
  EXPECT_EQ(stats_.resets_client, 1u);
  EXPECT_FALSE(c.client.in.attached());
  EXPECT_TRUE(c.upstream.ops & kOpRecv);  // still in flight: quiesce must cancel it
  EXPECT_FALSE(transport_->quiesce(c, h));
  EXPECT_TRUE(Close(h));
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(pool_->in_use(), RingBlocks());
  ExpectRingServesEveryBlock();
}

// A send completing with an error: the client reset while bytes for it were in flight.
TEST_F(UringTransportTest, SendErrorAfterPeerResetReturnsBlocks) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Connection& c = At(h);
  loopback::SetBufferSizes(c.client.fd, 4096, 0);
  // The client peer does not read: u2c bytes pile up until a send to the client stays pending.
  ASSERT_TRUE(FillUntilSendStalls(PeersOf(h).upstream, c.client));
  ASSERT_TRUE(c.client.ops & kOpRecv);
  ASSERT_TRUE(c.upstream.in.attached());
  loopback::Reset(PeersOf(h).client);
  ASSERT_TRUE(RunUntil([&] { return c.state == State::kClosing; }));
  EXPECT_TRUE(c.client.flags & kFailed);
  EXPECT_EQ(stats_.resets_client, 1u);
  EXPECT_TRUE(Close(h));
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(pool_->in_use(), RingBlocks());
  ExpectRingServesEveryBlock();
}

// (d) ENOBUFS: more sides receiving than the ring has blocks.
TEST_F(UringTransportTest, EmptyRingPausesTheSideAndCountsAPoolWait) {
  ASSERT_NO_FATAL_FAILURE(Start(2));
  ASSERT_EQ(RingBlocks(), 2u);
  Handle a;
  Handle b;
  ASSERT_NO_FATAL_FAILURE(Open(a));
  ASSERT_NO_FATAL_FAILURE(Open(b));
  EXPECT_EQ(pool_->available(), 0u);  // both blocks are in the kernel's ring
  // Three sides get a byte at once; the two blocks serve two of them.
  Flow flows[3] = {
      {PeersOf(a).client, PeersOf(a).upstream, "1"},
      {PeersOf(a).upstream, PeersOf(a).client, "2"},
      {PeersOf(b).client, PeersOf(b).upstream, "3"},
  };
  for (Flow& f : flows) f.sent = loopback::SendSome(f.from, f.data.data(), f.data.size());
  ASSERT_TRUE(RunUntil(
      [&] { return stats_.reads_client + stats_.reads_upstream >= 2 && stats_.pool_waits >= 1; }));
  RunFor(50);
  // Exactly the sides that hit ENOBUFS are paused for a buffer, with no receive in flight.
  uint32_t paused = 0;
  uint64_t enobufs = 0;
  for (const Seen& s : seen_) enobufs += s.result == -ENOBUFS;
  for (const Handle h : {a, b}) {
    for (const Side* side : {&At(h).client, &At(h).upstream}) {
      if (!(side->paused & kPauseNoBuffer)) continue;
      ++paused;
      EXPECT_FALSE(side->ops & kOpRecv);
    }
  }
  EXPECT_GE(enobufs, 1u);
  EXPECT_EQ(stats_.pool_waits, enobufs);
  EXPECT_EQ(paused, enobufs);
  EXPECT_TRUE(PoolBalanced());
  // Worker::wake_buffer_waiters: a block is back, the paused sides resume and get their byte.
  ASSERT_TRUE(RunUntil([&] { return transport_->buffers_available(); }));
  for (const Handle h : {a, b}) {
    Connection& c = At(h);
    c.client.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
    c.upstream.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
    transport_->pump(c, h, now_);
  }
  ASSERT_TRUE(RunUntil([&] {
    bool done = true;
    for (Flow& f : flows) {
      loopback::RecvSome(f.to, f.got);
      done = done && f.got == f.data;
    }
    // A side can hit ENOBUFS again while the other two still hold the blocks: resume it.
    for (const Handle h : {a, b}) {
      Connection& c = At(h);
      if (((c.client.paused | c.upstream.paused) & kPauseNoBuffer) &&
          transport_->buffers_available()) {
        c.client.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
        c.upstream.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
        transport_->pump(c, h, now_);
      }
    }
    return done;
  }));
  EXPECT_EQ(stats_.bytes_c2u, 2u);
  EXPECT_EQ(stats_.bytes_u2c, 1u);
  EXPECT_TRUE(PoolBalanced());
  EXPECT_TRUE(Close(a));
  EXPECT_TRUE(Close(b));
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(pool_->in_use(), 2u);
  ExpectRingServesEveryBlock();
}

// (e) cancellation: the connection closes while its receives wait for bytes.
TEST_F(UringTransportTest, CancelledRecvsReturnBlocksBeforeTheSlotIsFreed) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Flow c2u{PeersOf(h).client, PeersOf(h).upstream, Payload(10000, 9)};
  ASSERT_TRUE(Move({&c2u}));
  Connection& c = At(h);
  ASSERT_TRUE(c.client.ops & kOpRecv);
  ASSERT_TRUE(c.upstream.ops & kOpRecv);
  const size_t mark = seen_.size();
  c.state = State::kClosing;
  EXPECT_FALSE(transport_->quiesce(c, h));
  EXPECT_TRUE(c.client.ops & kOpCancel);
  EXPECT_TRUE(c.upstream.ops & kOpCancel);
  EXPECT_FALSE(transport_->quiesce(c, h));  // the cancels are in flight: nothing new
  ASSERT_TRUE(QuiesceKeepingSlot(h));
  EXPECT_EQ(c.client.ops, 0);
  EXPECT_EQ(c.upstream.ops, 0);
  EXPECT_EQ(CountSeen(h, UringOp::kRecvClient, mark), 1u);
  EXPECT_EQ(CountSeen(h, UringOp::kRecvUpstream, mark), 1u);
  EXPECT_GE(CountSeen(h, UringOp::kCancelClient, mark), 1u);
  EXPECT_GE(CountSeen(h, UringOp::kCancelUpstream, mark), 1u);
  EXPECT_TRUE(SawResult(h, UringOp::kRecvClient, -ECANCELED));
  EXPECT_TRUE(SawResult(h, UringOp::kRecvUpstream, -ECANCELED));
  Release(h.index);
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(pool_->in_use(), RingBlocks());
  ExpectRingServesEveryBlock();
}

// A receive that completes with bytes after the connection started closing: its block comes back
// even though the bytes are dropped.
TEST_F(UringTransportTest, RecvCompletingWithBytesWhileClosingReturnsItsBlock) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Connection& c = At(h);
  ASSERT_TRUE(c.client.ops & kOpRecv);
  const size_t mark = seen_.size();
  ASSERT_EQ(loopback::SendSome(PeersOf(h).client, "late", 4), 4u);
  c.state = State::kClosing;  // before the completion is reaped, and before any cancel
  ASSERT_TRUE(RunUntil([&] { return !(c.client.ops & kOpRecv); }));
  ASSERT_EQ(CountSeen(h, UringOp::kRecvClient, mark), 1u);
  EXPECT_TRUE(SawResult(h, UringOp::kRecvClient, 4));
  EXPECT_FALSE(c.client.in.attached());
  ASSERT_TRUE(RunUntil([&] { return transport_->quiesce(c, h); }));
  Release(h.index);
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(pool_->in_use(), RingBlocks());
  ExpectRingServesEveryBlock();
}

// --- slots ----------------------------------------------------------------------------------

TEST_F(UringTransportTest, SlotIsNotFreedWhileARecvOrSendIsInFlight) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Connection& c = At(h);
  // The upstream peer does not read: c2u bytes pile up until a send to the upstream stays
  // pending, while the upstream receive waits for bytes that never come.
  loopback::SetBufferSizes(c.upstream.fd, 4096, 0);
  ASSERT_TRUE(FillUntilSendStalls(PeersOf(h).client, c.upstream));
  ASSERT_TRUE(c.upstream.ops & kOpSend);
  ASSERT_TRUE(c.upstream.ops & kOpRecv);
  ASSERT_TRUE(c.client.in.attached());  // the block being sent

  const Handle old = h;
  const size_t mark = seen_.size();
  c.state = State::kClosing;
  ASSERT_FALSE(transport_->quiesce(c, old));
  // The Worker frees the slot only once quiesce() says so; until then the old handle still
  // names this connection, so every completion still reaches it.
  ASSERT_TRUE(QuiesceKeepingSlot(old)) << "quiesce() never returned true";
  EXPECT_EQ(c.client.ops | c.upstream.ops, 0);
  // Every operation that was in flight reported before the slot may go.
  EXPECT_EQ(CountSeen(old, UringOp::kSendUpstream, mark), 1u);
  EXPECT_EQ(CountSeen(old, UringOp::kRecvUpstream, mark), 1u);
  EXPECT_GE(CountSeen(old, UringOp::kCancelUpstream, mark), 1u);
  EXPECT_EQ(stale_, 0u);

  Release(old.index);
  EXPECT_EQ(slab_.resolve(old), nullptr);
  EXPECT_NE(slab_.handle_of(old.index).generation, old.generation);
  const size_t after = seen_.size();
  RunFor(200);
  for (size_t i = after; i < seen_.size(); ++i) {
    EXPECT_FALSE(seen_[i].handle == old)
        << "completion op " << static_cast<int>(seen_[i].op) << " result " << seen_[i].result
        << " arrived for a freed slot";
  }
  EXPECT_EQ(stale_, 0u);
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(pool_->in_use(), RingBlocks());
  ExpectRingServesEveryBlock();
}

TEST_F(UringTransportTest, SlotIsNotFreedWhileOnlyASendIsInFlight) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Connection& c = At(h);
  // The upstream ends its direction first, so nothing receives from it any more.
  ::shutdown(PeersOf(h).upstream, SHUT_WR);
  ASSERT_TRUE(RunUntil([&] { return (c.upstream.flags & kEof) && (c.client.flags & kWriteShut); }));
  // Then c2u bytes pile up until the send to the upstream stays pending: the only operation left
  // but the watch of the half-closed upstream, which a cancel ends at once.
  loopback::SetBufferSizes(c.upstream.fd, 4096, 0);
  ASSERT_TRUE(FillUntilSendStalls(PeersOf(h).client, c.upstream));
  ASSERT_EQ(c.upstream.ops, kOpSend | kOpPollIn);
  ASSERT_EQ(c.client.ops, 0);

  const Handle old = h;
  const size_t mark = seen_.size();
  c.state = State::kClosing;
  EXPECT_FALSE(transport_->quiesce(c, old)) << "slot reported free with a send in flight";
  ASSERT_TRUE(QuiesceKeepingSlot(old));
  EXPECT_EQ(CountSeen(old, UringOp::kSendUpstream, mark), 1u);
  Release(old.index);
  EXPECT_EQ(slab_.resolve(old), nullptr);
  // Whatever is still queued for the upstream drains now; no completion may name the slot.
  const size_t after = seen_.size();
  std::string drained;
  const auto until = Clock::now() + std::chrono::milliseconds(200);
  while (Clock::now() < until) {
    loopback::RecvSome(PeersOf(h).upstream, drained);
    Step(kStepMs);
  }
  for (size_t i = after; i < seen_.size(); ++i) {
    EXPECT_FALSE(seen_[i].handle == old)
        << "completion op " << static_cast<int>(seen_[i].op) << " result " << seen_[i].result
        << " arrived for a freed slot";
  }
  EXPECT_EQ(stale_, 0u);
  ExpectRingServesEveryBlock();
}

TEST_F(UringTransportTest, RepeatedConnectionsDoNotLeakBlocks) {
  // Four blocks, all in the ring: any block lost on a close path shows as an imbalance, and a
  // ring that lost track of a block cannot serve four receives at once.
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  ASSERT_EQ(RingBlocks(), kFewBlocks);
  for (uint32_t round = 0; round < 12; ++round) {
    SCOPED_TRACE(round);
    Handle h;
    ASSERT_NO_FATAL_FAILURE(Open(h));
    Flow c2u{PeersOf(h).client, PeersOf(h).upstream, Payload(20000, 100 + round)};
    Flow u2c{PeersOf(h).upstream, PeersOf(h).client, Payload(20000, 200 + round)};
    ASSERT_TRUE(Move({&c2u, &u2c}));
    switch (round % 3) {
      case 0: {  // orderly: both peers shut their write side
        ::shutdown(PeersOf(h).client, SHUT_WR);
        ::shutdown(PeersOf(h).upstream, SHUT_WR);
        ASSERT_TRUE(RunUntil([&] { return At(h).state == State::kClosing; }));
        break;
      }
      case 1:  // the client resets
        loopback::Reset(PeersOf(h).client);
        ASSERT_TRUE(RunUntil([&] { return At(h).state == State::kClosing; }));
        break;
      default:  // closed by the proxy with receives in flight (timeout, shutdown)
        break;
    }
    ASSERT_TRUE(Close(h));
    loopback::Close(PeersOf(h).client);
    loopback::Close(PeersOf(h).upstream);
    ASSERT_TRUE(PoolBalanced());
    ASSERT_EQ(pool_->in_use(), kFewBlocks);
  }
  EXPECT_EQ(stats_.pool_waits, 0u);
  ExpectRingServesEveryBlock();
}

// --- lost completions and a refusing kernel --------------------------------------------------

// Regression (issue 9, item 5): a completion the kernel dropped (CQ overflow with no memory for
// its backlog) left its operation recorded for ever: quiesce() cancelled again every iteration,
// the cancel found nothing, and the slot was never freed, so a graceful shutdown never ended.
TEST_F(UringTransportTest, DroppedSendCompletionDoesNotLeakTheSlot) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Connection& c = At(h);
  withhold_ = [&](const Seen& s) { return s.handle == h && s.op == UringOp::kSendUpstream; };
  ASSERT_EQ(loopback::SendSome(PeersOf(h).client, "hello", 5), 5u);
  ASSERT_TRUE(RunUntil([&] { return !withhold_; })) << "the send never completed";
  std::string got;
  ASSERT_TRUE(RunUntil([&] {
    loopback::RecvSome(PeersOf(h).upstream, got);
    return got.size() == 5;
  }));
  EXPECT_EQ(got, "hello") << "the kernel sent the bytes; only its completion was lost";
  ASSERT_TRUE(c.upstream.ops & kOpSend) << "the transport still waits for the send";
  Step(kStepMs);  // the reactor notices the drop at its next wait
  EXPECT_EQ(reactor_->dropped_completions(), 1u);

  const int steps = CloseCounting(h, 10);
  EXPECT_LE(steps, 10) << "the slot never quiesced: the lost send leaks it";
  EXPECT_EQ(transport_->lost_operations(), 1u);
  EXPECT_EQ(stale_, 0u);
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(pool_->in_use(), RingBlocks()) << "the send's block came back with the slot";
}

// The round's own cancel completion is the one dropped: the round would never end, but the
// drop count moved, so the next quiesce() begins another.
TEST_F(UringTransportTest, DroppedCancelCompletionDoesNotLeakTheSlot) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  withhold_ = [&](const Seen& s) {
    return s.handle == h && (s.op == UringOp::kCancelClient || s.op == UringOp::kCancelUpstream);
  };
  const int steps = CloseCounting(h, 10);
  EXPECT_FALSE(withhold_) << "no cancel was withheld";
  EXPECT_LE(steps, 10) << "the slot never quiesced: the lost cancel leaks it";
  EXPECT_EQ(reactor_->dropped_completions(), 1u);
  EXPECT_EQ(transport_->lost_operations(), 0u) << "both receives completed, cancelled";
  EXPECT_TRUE(PoolBalanced());
}

// A receive that completed with bytes (a block from the ring) but whose completion only arrives
// after the slot was freed: the block goes back to the pool.
TEST_F(UringTransportTest, StaleCompletionGivesItsBlockBack) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  withhold_ = [&](const Seen& s) { return s.handle == h && s.op == UringOp::kRecvClient; };
  ASSERT_EQ(loopback::SendSome(PeersOf(h).client, "late", 4), 4u);
  ASSERT_TRUE(RunUntil([&] { return !withhold_; }));
  ASSERT_TRUE(withheld_.flags & IORING_CQE_F_BUFFER) << "the receive took a block";
  EXPECT_LE(CloseCounting(h, 10), 10);
  EXPECT_EQ(transport_->lost_operations(), 1u);
  // The withheld block is neither in the ring (the kernel took it) nor in the pool.
  Dispatch(withheld_);  // it names a freed slot
  EXPECT_EQ(stale_, 1u);
  EXPECT_TRUE(PoolBalanced());
  ExpectRingServesEveryBlock();
}

// The kernel refuses a full submission queue while a receive completes: the send it calls for
// is not submitted (no entry), and the connection asks to be pumped again (c.more). Once the
// kernel takes submissions again, the bytes go through.
TEST_F(UringTransportTest, RefusedSubmissionLeavesTheSendForTheNextIteration) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Connection& c = At(h);
  withhold_ = [&](const Seen& s) { return s.handle == h && s.op == UringOp::kRecvClient; };
  count_withheld_as_dropped_ = false;
  ASSERT_EQ(loopback::SendSome(PeersOf(h).client, "ping", 4), 4u);
  ASSERT_TRUE(RunUntil([&] { return !withhold_; }));
  ASSERT_NO_FATAL_FAILURE(FillSubmissionQueue());
  {
    ring_faults::RefuseEnters refuse(reactor_->ring());
    Dispatch(withheld_);  // the receive's completion, handed over now: the relay wants a send
    EXPECT_FALSE(c.upstream.ops & kOpSend) << "nothing was submitted";
    EXPECT_TRUE(c.more) << "the Worker must come back";
    EXPECT_EQ(reactor_->submit_failures(), 1u);
  }
  transport_->pump(c, h, now_);  // the Worker's next iteration
  EXPECT_TRUE(c.upstream.ops & kOpSend);
  EXPECT_FALSE(c.more);
  std::string got;
  ASSERT_TRUE(RunUntil([&] {
    loopback::RecvSome(PeersOf(h).upstream, got);
    return got.size() == 4;
  }));
  EXPECT_EQ(got, "ping");
}

// The same refusal when a connection closes: no cancel can be submitted, so quiesce() asks to be
// called again (c.more) instead of waiting for completions that nothing will bring.
TEST_F(UringTransportTest, RefusedSubmissionRetriesTheCloseNextIteration) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Connection& c = At(h);
  ASSERT_NO_FATAL_FAILURE(FillSubmissionQueue());
  {
    ring_faults::RefuseEnters refuse(reactor_->ring());
    c.state = State::kClosing;
    EXPECT_FALSE(transport_->quiesce(c, h));
    EXPECT_TRUE(c.more);
    EXPECT_FALSE((c.client.ops | c.upstream.ops) & kOpCancel) << "no cancel round began";
  }
  EXPECT_LE(CloseCounting(h, 10), 10);
  EXPECT_TRUE(PoolBalanced());
}

// And when a connection starts: the connect cannot be submitted, so it fails at once (EAGAIN)
// rather than wait for a completion that cannot come.
TEST_F(UringTransportTest, RefusedSubmissionFailsTheConnect) {
  ASSERT_NO_FATAL_FAILURE(Start(kFewBlocks));
  ASSERT_NO_FATAL_FAILURE(FillSubmissionQueue());
  ring_faults::RefuseEnters refuse(reactor_->ring());
  Handle h;
  Connection* c = slab_.acquire(h);
  ASSERT_NE(c, nullptr);
  const SysResult s = sys::stream_socket(AF_INET);
  ASSERT_TRUE(s.ok());
  c->upstream.fd = static_cast<int>(s.value);
  c->state = State::kRouting;
  EXPECT_EQ(transport_->connect(*c, h, backend_address_), EAGAIN);
  EXPECT_EQ(c->upstream.ops, 0);
  EXPECT_TRUE(transport_->quiesce(*c, h));
  Release(h.index);
}

// --- splice ---------------------------------------------------------------------------------

Config SpliceConfig(SpliceMode mode, uint32_t pipes = 8, uint32_t threshold = 0) {
  Config c;
  c.splice = mode;
  c.splice_pipes = pipes;
  c.splice_threshold_bytes = threshold;
  return c;
}

TEST_F(UringTransportTest, SpliceMovesLargePayloadsBothWaysAtOnceInOrder) {
  ASSERT_NO_FATAL_FAILURE(Start(64, SpliceConfig(SpliceMode::kAlways)));
  ASSERT_EQ(transport_->pipes().capacity(), 8u);
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Flow c2u{PeersOf(h).client, PeersOf(h).upstream, Payload(3 << 20, 21)};
  Flow u2c{PeersOf(h).upstream, PeersOf(h).client, Payload((2 << 20) + 77, 22)};
  ASSERT_TRUE(Move({&c2u, &u2c}));
  EXPECT_TRUE(c2u.got == c2u.data) << "c2u bytes differ (" << c2u.got.size() << " received)";
  EXPECT_TRUE(u2c.got == u2c.data) << "u2c bytes differ (" << u2c.got.size() << " received)";
  EXPECT_EQ(stats_.bytes_c2u, c2u.data.size());
  EXPECT_EQ(stats_.bytes_u2c, u2c.data.size());
  EXPECT_EQ(stats_.splice_bytes, c2u.data.size() + u2c.data.size()) << "not a byte copied";
  EXPECT_GT(CountSplice(h, UringSplice::kIn), 0u);
  EXPECT_GT(CountSplice(h, UringSplice::kOut), 0u);
  EXPECT_EQ(CountSeen(h, UringOp::kRecvClient) + CountSeen(h, UringOp::kSendUpstream), 0u)
      << "the receives armed while connecting never completed: no bytes came then";
  // Idle again: each side waits for bytes with a poll (a splice would return EAGAIN) and the
  // connection holds no pipe and no block.
  Connection& c = At(h);
  ASSERT_TRUE(RunUntil([&] {
    return (c.client.ops & kOpPollIn) && (c.upstream.ops & kOpPollIn) &&
           transport_->pipes().in_use() == 0;
  }));
  EXPECT_TRUE(SawSplice(h, UringSplice::kIn, -EAGAIN));
  EXPECT_FALSE(c.client.in.attached());
  EXPECT_FALSE(c.upstream.in.attached());
  EXPECT_TRUE(PipesBalanced());
  EXPECT_TRUE(PoolBalanced());
  EXPECT_EQ(stats_.splice_pipe_waits, 0u);
}

TEST_F(UringTransportTest, SplicedHalfCloseDeliversEveryByteBeforeTheFin) {
  ASSERT_NO_FATAL_FAILURE(Start(64, SpliceConfig(SpliceMode::kAlways)));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Flow c2u{PeersOf(h).client, PeersOf(h).upstream, Payload(1 << 20, 23)};
  c2u.shut_after = true;
  ASSERT_TRUE(Move({&c2u}));  // every byte, then EOF at the upstream peer
  EXPECT_TRUE(c2u.got == c2u.data);
  Connection& c = At(h);
  EXPECT_TRUE(SawSplice(h, UringSplice::kIn, 0)) << "EOF came as a splice of 0 bytes";
  EXPECT_TRUE(c.client.flags & kEof);
  EXPECT_TRUE(c.upstream.flags & kWriteShut);
  EXPECT_EQ(c.state, State::kDraining);
  EXPECT_TRUE(SawResult(h, UringOp::kRecvClient, 0)) << "a receive confirmed the splice's 0";
  EXPECT_EQ(c.client.ops & (kOpSpliceIn | kOpRecv), 0) << "nothing read after EOF";
  EXPECT_TRUE(c.client.ops & kOpPollIn) << "a half-closed side is watched for a reset";
  Flow u2c{PeersOf(h).upstream, PeersOf(h).client, Payload(1 << 20, 24)};
  u2c.shut_after = true;
  u2c.fin_at_close = true;
  ASSERT_TRUE(Move({&u2c}));
  EXPECT_TRUE(u2c.got == u2c.data);
  ASSERT_TRUE(RunUntil([&] { return c.state == State::kClosing; }));
  EXPECT_EQ(c.client.ops | c.upstream.ops, kOpPollIn) << "nothing in flight but the watch";
  EXPECT_TRUE(QuiesceKeepingSlot(h));
  EXPECT_TRUE(PipesBalanced());
  EXPECT_TRUE(CloseSendsClientFin(h));
  EXPECT_EQ(transport_->pipes().in_use(), 0u);
  EXPECT_EQ(stats_.splice_pipes_dirty, 0u);
  EXPECT_EQ(stats_.splice_bytes, c2u.data.size() + u2c.data.size());
}

// A full sink: the splice out stops short, then waits with a poll for room. Closing then
// cancels the poll, and the pipe, still holding bytes, is replaced rather than reused.
TEST_F(UringTransportTest, SpliceOutPollsForRoomAndCloseReplacesTheDirtyPipe) {
  ASSERT_NO_FATAL_FAILURE(Start(64, SpliceConfig(SpliceMode::kAlways, 2)));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Connection& c = At(h);
  loopback::SetBufferSizes(c.upstream.fd, 4096, 0);
  loopback::SetBufferSizes(PeersOf(h).upstream, 0, 4096);
  // The upstream peer does not read.
  ASSERT_TRUE(FillUntil(PeersOf(h).client,
                        [&] { return (c.upstream.ops & kOpPollOut) && c.client.piped > 0; }));
  EXPECT_TRUE(c.upstream.hints & kSendFull);
  EXPECT_EQ(c.client.paused, kPauseBackpressure) << "no more splices in while the pipe is full";
  EXPECT_EQ(c.client.ops & (kOpSpliceIn | kOpRecv), 0);
  RunFor(50);
  EXPECT_TRUE(c.upstream.ops & kOpPollOut) << "the poll waits: no busy loop";
  EXPECT_TRUE(PipesBalanced());

  const Handle old = h;
  const size_t mark = seen_.size();
  c.state = State::kClosing;
  EXPECT_FALSE(transport_->quiesce(c, old));
  ASSERT_TRUE(QuiesceKeepingSlot(old));
  EXPECT_TRUE(SawSplice(old, UringSplice::kPollOut, -ECANCELED));
  EXPECT_EQ(CountSplice(old, UringSplice::kPollOut, mark), 1u);
  EXPECT_GT(c.client.piped, 0u) << "bytes stuck in the pipe";
  Release(old.index);
  EXPECT_EQ(stats_.splice_pipes_dirty, 1u);
  EXPECT_EQ(transport_->pipes().in_use(), 0u);
  EXPECT_EQ(transport_->pipes().capacity(), 2u) << "replaced, not lost";
  const size_t after = seen_.size();
  RunFor(100);
  for (size_t i = after; i < seen_.size(); ++i) {
    EXPECT_FALSE(seen_[i].handle == old) << "a completion arrived for a freed slot";
  }
  EXPECT_EQ(stale_, 0u);
  // The replaced pipe serves the next connection with nothing stale in it.
  Handle next;
  ASSERT_NO_FATAL_FAILURE(Open(next));
  Flow flow{PeersOf(next).client, PeersOf(next).upstream, Payload(600 * 1024, 25)};
  ASSERT_TRUE(Move({&flow}));
  EXPECT_TRUE(flow.got == flow.data) << "stale bytes from a recycled pipe?";
  EXPECT_TRUE(PipesBalanced());
}

TEST_F(UringTransportTest, PeerResetWithBytesInThePipeFailsTheSinkAndReplacesThePipe) {
  ASSERT_NO_FATAL_FAILURE(Start(64, SpliceConfig(SpliceMode::kAlways, 2)));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Connection& c = At(h);
  loopback::SetBufferSizes(c.client.fd, 4096, 0);
  loopback::SetBufferSizes(PeersOf(h).client, 0, 4096);
  ASSERT_TRUE(FillUntil(PeersOf(h).upstream,
                        [&] { return (c.client.ops & kOpPollOut) && c.upstream.piped > 0; }));
  loopback::Reset(PeersOf(h).client);
  ASSERT_TRUE(RunUntil([&] { return c.state == State::kClosing; }));
  EXPECT_TRUE(c.client.flags & kFailed);
  EXPECT_EQ(stats_.resets_client, 1u);
  EXPECT_GT(c.upstream.piped, 0u);
  ASSERT_TRUE(QuiesceKeepingSlot(h));
  Release(h.index);
  EXPECT_EQ(stats_.splice_pipes_dirty, 1u);
  EXPECT_EQ(transport_->pipes().in_use(), 0u);
  EXPECT_EQ(transport_->pipes().capacity(), 2u);
  EXPECT_EQ(stale_, 0u);
}

TEST_F(UringTransportTest, CancelledSplicePollsLetTheSlotGo) {
  ASSERT_NO_FATAL_FAILURE(Start(64, SpliceConfig(SpliceMode::kAlways)));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Flow c2u{PeersOf(h).client, PeersOf(h).upstream, Payload(300000, 26)};
  Flow u2c{PeersOf(h).upstream, PeersOf(h).client, Payload(300000, 27)};
  ASSERT_TRUE(Move({&c2u, &u2c}));
  Connection& c = At(h);
  ASSERT_TRUE(RunUntil([&] { return (c.client.ops & kOpPollIn) && (c.upstream.ops & kOpPollIn); }));
  const size_t mark = seen_.size();
  c.state = State::kClosing;
  EXPECT_FALSE(transport_->quiesce(c, h));
  EXPECT_TRUE(c.client.ops & kOpCancel);
  EXPECT_TRUE(c.upstream.ops & kOpCancel);
  ASSERT_TRUE(QuiesceKeepingSlot(h));
  EXPECT_EQ(c.client.ops | c.upstream.ops, 0);
  EXPECT_EQ(CountSplice(h, UringSplice::kPollIn, mark), 2u);
  EXPECT_TRUE(SawSplice(h, UringSplice::kPollIn, -ECANCELED));
  EXPECT_EQ(c.client.pipe, kNoPipe);
  EXPECT_EQ(c.upstream.pipe, kNoPipe);
  Release(h.index);
  EXPECT_EQ(stats_.splice_pipes_dirty, 0u);
  EXPECT_TRUE(PipesBalanced());
  EXPECT_TRUE(PoolBalanced());
}

// One pipe for two connections: while one holds it, the other's bytes go through buffers.
TEST_F(UringTransportTest, EmptyPipePoolFallsBackToBuffers) {
  ASSERT_NO_FATAL_FAILURE(Start(64, SpliceConfig(SpliceMode::kAlways, 1)));
  Handle a;
  Handle b;
  ASSERT_NO_FATAL_FAILURE(Open(a));
  Connection& ca = At(a);
  loopback::SetBufferSizes(ca.upstream.fd, 4096, 0);
  loopback::SetBufferSizes(PeersOf(a).upstream, 0, 4096);
  ASSERT_TRUE(FillUntil(PeersOf(a).client,
                        [&] { return (ca.upstream.ops & kOpPollOut) && ca.client.piped > 0; }));
  ASSERT_EQ(transport_->pipes().available(), 0u);
  // Only now: an idle side gives an empty pipe back, and b's sides, opened earlier, could take
  // it between a's splices (then a's bytes went through a buffer, seen under load).
  ASSERT_NO_FATAL_FAILURE(Open(b));
  const uint64_t spliced = stats_.splice_bytes;
  Flow c2u{PeersOf(b).client, PeersOf(b).upstream, Payload(200000, 28)};
  Flow u2c{PeersOf(b).upstream, PeersOf(b).client, Payload(150000, 29)};
  ASSERT_TRUE(Move({&c2u, &u2c}));
  EXPECT_TRUE(c2u.got == c2u.data);
  EXPECT_TRUE(u2c.got == u2c.data);
  EXPECT_GT(stats_.splice_pipe_waits, 0u);
  EXPECT_EQ(stats_.splice_bytes, spliced) << "connection b found no pipe";
  EXPECT_GT(CountSeen(b, UringOp::kRecvClient), 0u);
  EXPECT_GT(CountSeen(b, UringOp::kRecvUpstream), 0u);
  EXPECT_TRUE(PipesBalanced());
  ASSERT_TRUE(Close(a));
  ASSERT_TRUE(Close(b));
  EXPECT_EQ(transport_->pipes().in_use(), 0u);
  EXPECT_TRUE(PoolBalanced());
}

TEST_F(UringTransportTest, AutoSplicesOnlyAfterTheThreshold) {
  constexpr uint32_t kThreshold = 64 * 1024;
  ASSERT_NO_FATAL_FAILURE(Start(64, SpliceConfig(SpliceMode::kAuto, 8, kThreshold)));
  Handle h;
  ASSERT_NO_FATAL_FAILURE(Open(h));
  Flow small{PeersOf(h).client, PeersOf(h).upstream, Payload(kThreshold / 2, 30)};
  ASSERT_TRUE(Move({&small}));
  EXPECT_EQ(stats_.splice_bytes, 0u) << "below the threshold: buffers only";
  Flow big{PeersOf(h).client, PeersOf(h).upstream, Payload(2 << 20, 31)};
  ASSERT_TRUE(Move({&big}));
  EXPECT_TRUE(big.got == big.data);
  EXPECT_GT(stats_.splice_bytes, 0u);
  EXPECT_LE(stats_.splice_bytes, big.data.size() + small.data.size() - kThreshold);
  EXPECT_GE(At(h).client.buffered, kThreshold);
  EXPECT_EQ(CountSplice(h, UringSplice::kIn) > 0, true);
  EXPECT_EQ(stats_.bytes_c2u, small.data.size() + big.data.size());
  EXPECT_EQ(At(h).upstream.buffered, 0u) << "the other direction moved nothing";
}

}  // namespace
}  // namespace edgeproxy
