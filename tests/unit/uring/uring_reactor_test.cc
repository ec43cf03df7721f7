// UringReactor on a real ring: accepts are bounded by the room the worker reports, pausing a
// listener stops them and resuming re-arms them, and a wait with nothing pending times out. A
// kernel that refuses submissions never makes the reactor spin, and descriptors accepted behind
// the worker's back are reset when the reactor goes.
#include "uring/uring_reactor.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
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

constexpr uint32_t kBacklog = 128;

class UringReactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reactor = UringReactor::create(256, 64);
    ASSERT_TRUE(reactor.ok()) << reactor.error();
    reactor_.emplace(std::move(reactor.value()));
    const SysResult started = reactor_->start();
    ASSERT_TRUE(started.ok()) << std::strerror(started.err);
    // Non-blocking, like Listener::open.
    listener_ = loopback::Bind(static_cast<int>(kBacklog), address_, true);
    ASSERT_GE(listener_, 0);
    ASSERT_TRUE(reactor_->watch_listener(listener_, cookie_).ok());
  }

  void TearDown() override {
    if (reactor_ && listener_ >= 0) {
      reactor_->unwatch_listener(listener_, cookie_);
      Run(50, room_);
    }
    for (int& fd : accepted_) loopback::Close(fd);
    for (int& fd : clients_) loopback::Close(fd);
    loopback::Close(listener_);
  }

  void Connect(int n) {
    for (int i = 0; i < n; ++i) {
      const int fd = loopback::ConnectTo(address_);
      ASSERT_GE(fd, 0);
      clients_.push_back(fd);
    }
  }

  // Worker::run for `ms`: wait, count the accepted fds (each one takes a slot, as
  // start_connection does), then report the room left. Returns the number accepted.
  uint32_t Run(int ms, uint32_t& room) {
    uint32_t accepted = 0;
    const auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < until) {
      for (const Event& ev : reactor_->wait(10)) {
        EXPECT_EQ(ev.cookie, cookie_);
        EXPECT_TRUE(ev.ready & kAccepted);
        if (ev.result < 0) {
          ADD_FAILURE() << "accept failed: " << std::strerror(-ev.result);
          continue;
        }
        accepted_.push_back(ev.result);
        ++accepted;
        if (room == 0) {
          ADD_FAILURE() << "accepted a connection with no room left";
        } else {
          --room;
        }
      }
      if (!paused_) reactor_->set_accept_room(room, backlog_);
    }
    return accepted;
  }

  std::optional<UringReactor> reactor_;
  int listener_ = -1;
  SocketAddress address_;
  const uint64_t cookie_ = Cookie::pack(CookieTag::kListener, Handle{0, 0});
  uint32_t room_ = 0;
  uint32_t backlog_ = kBacklog;  // what the worker reports as the backlog
  bool paused_ = false;
  std::vector<int> accepted_;
  std::vector<int> clients_;
};

TEST_F(UringReactorTest, RoomBelowTheBacklogBoundsAccepts) {
  // Three free slots, eight clients waiting in the backlog: single-shot accepts, never more
  // than the room, so no client is accepted only to be refused.
  room_ = 3;
  reactor_->set_accept_room(room_, kBacklog);
  ASSERT_NO_FATAL_FAILURE(Connect(8));
  EXPECT_EQ(Run(300, room_), 3u);
  EXPECT_EQ(room_, 0u);
  // A slot frees: exactly one more.
  room_ = 1;
  reactor_->set_accept_room(room_, kBacklog);
  EXPECT_EQ(Run(200, room_), 1u);
}

TEST_F(UringReactorTest, RoomShrinkingBelowTheBacklogStopsTheMultishot) {
  room_ = 1000;  // above the backlog: one multishot accept
  reactor_->set_accept_room(room_, kBacklog);
  ASSERT_NO_FATAL_FAILURE(Connect(2));
  EXPECT_EQ(Run(200, room_), 2u);
  // Near capacity: the multishot is cancelled and counted single shots take over.
  room_ = 2;
  reactor_->set_accept_room(room_, kBacklog);
  ASSERT_NO_FATAL_FAILURE(Connect(6));
  EXPECT_EQ(Run(300, room_), 2u);
  EXPECT_EQ(room_, 0u);
}

TEST_F(UringReactorTest, RoomGrowingPastTheBacklogWithSinglesInFlightStillBoundsAccepts) {
  // The worker reports a backlog of 4 (the listener's own queue is larger).
  backlog_ = 4;
  room_ = 3;  // at or below the backlog: three single-shot accepts
  reactor_->set_accept_room(room_, backlog_);
  EXPECT_EQ(Run(50, room_), 0u);
  room_ = 5;  // above it: a multishot accept joins the singles still in flight
  reactor_->set_accept_room(room_, backlog_);
  EXPECT_EQ(Run(50, room_), 0u);
  // One client: a single shot takes it, the room drops back to the backlog, so the multishot
  // must go and at most `room` accepts may be in flight from now on.
  ASSERT_NO_FATAL_FAILURE(Connect(1));
  EXPECT_EQ(Run(100, room_), 1u);
  EXPECT_EQ(room_, 4u);
  ASSERT_NO_FATAL_FAILURE(Connect(10));
  EXPECT_LE(Run(300, room_), 4u) << "more connections accepted than the room reported";
}

TEST_F(UringReactorTest, PauseStopsSingleShotAcceptsAndResumeRearmsThem) {
  room_ = 4;
  reactor_->set_accept_room(room_, kBacklog);
  reactor_->pause_listener(listener_, cookie_);
  paused_ = true;
  EXPECT_EQ(Run(50, room_), 0u);  // the cancels complete
  ASSERT_NO_FATAL_FAILURE(Connect(3));
  EXPECT_EQ(Run(200, room_), 0u);
  reactor_->resume_listener(listener_, cookie_);
  paused_ = false;
  EXPECT_EQ(Run(300, room_), 3u);
}

TEST_F(UringReactorTest, PauseStopsTheMultishotAcceptAndResumeRearmsIt) {
  room_ = 1000;
  reactor_->set_accept_room(room_, kBacklog);
  ASSERT_NO_FATAL_FAILURE(Connect(1));
  EXPECT_EQ(Run(100, room_), 1u);
  reactor_->pause_listener(listener_, cookie_);
  paused_ = true;
  EXPECT_EQ(Run(50, room_), 0u);
  ASSERT_NO_FATAL_FAILURE(Connect(3));
  EXPECT_EQ(Run(200, room_), 0u);
  reactor_->resume_listener(listener_, cookie_);
  paused_ = false;
  EXPECT_EQ(Run(300, room_), 3u);
}

TEST_F(UringReactorTest, ResumeBeforeThePauseCompletesStillAccepts) {
  for (const uint32_t room : {1000u, 4u}) {
    SCOPED_TRACE(room);
    room_ = room;
    reactor_->set_accept_room(room_, kBacklog);
    EXPECT_EQ(Run(20, room_), 0u);
    // Paused and resumed within one iteration: the cancel is still queued when resume runs.
    reactor_->pause_listener(listener_, cookie_);
    reactor_->resume_listener(listener_, cookie_);
    ASSERT_NO_FATAL_FAILURE(Connect(2));
    EXPECT_EQ(Run(300, room_), 2u);
  }
}

TEST(UringReactorTestBatch, TargetFollowsTheLastBatchBoundedByConnectionsAndBatch) {
  EXPECT_EQ(UringReactor::batch_target(0, 100, 256), 1u) << "nothing yet: no batching";
  EXPECT_EQ(UringReactor::batch_target(1, 100, 256), 1u);
  EXPECT_EQ(UringReactor::batch_target(10, 100, 256), 10u);
  EXPECT_EQ(UringReactor::batch_target(10, 8, 256), 2u) << "one per 4 connections";
  EXPECT_EQ(UringReactor::batch_target(10, 7, 256), 1u) << "a handful never waits";
  EXPECT_EQ(UringReactor::batch_target(10, 0, 256), 1u);
  EXPECT_EQ(UringReactor::batch_target(1000, 100000, 256), 256u) << "at most one batch";
}

// A ring with a 20 ms minimum wait, told it serves 64 connections: after a wait that brought four
// completions, the next one asks for four. Skipped where the kernel has no minimum wait (6.12+).
class UringReactorTestBatchWait : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reactor = UringReactor::create(256, 64, 20'000);
    ASSERT_TRUE(reactor.ok()) << reactor.error();
    reactor_.emplace(std::move(reactor.value()));
    ASSERT_TRUE(reactor_->start().ok());
    if (!reactor_->batching()) GTEST_SKIP() << "this kernel has no io_uring minimum wait";
    reactor_->set_concurrency(64);
  }

  void Nops(uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) {
      io_uring_sqe* e = reactor_->sqe();
      io_uring_prep_nop(e);
      io_uring_sqe_set_data64(e, UserData::pack(UringOp::kConnect, Handle{i, 1}));
    }
  }

  // A first wait that brings four completions, so that the next asks for four.
  void PrimeBatchOfFour() {
    Nops(4);
    ASSERT_EQ(reactor_->wait(-1).size(), 4u);
    ASSERT_EQ(reactor_->batched_waits(), 0u) << "the first wait has no batch to follow";
  }

  std::optional<UringReactor> reactor_;
};

TEST_F(UringReactorTestBatchWait, FewerCompletionsThanAskedAreReturnedNotWaitedFor) {
  ASSERT_NO_FATAL_FAILURE(PrimeBatchOfFour());
  // One completion where four are asked: after the minimum wait it comes back alone. A wait
  // that held out for four would block here for ever (no timeout).
  Nops(1);
  EXPECT_EQ(reactor_->wait(-1).size(), 1u);
  EXPECT_EQ(reactor_->batched_waits(), 1u);
  // After a batch of one, no batching.
  Nops(1);
  EXPECT_EQ(reactor_->wait(-1).size(), 1u);
  EXPECT_EQ(reactor_->batched_waits(), 1u);
}

TEST_F(UringReactorTestBatchWait, ManyCompletionsAreTakenInOneBatchedWait) {
  ASSERT_NO_FATAL_FAILURE(PrimeBatchOfFour());
  Nops(16);
  EXPECT_EQ(reactor_->wait(-1).size(), 16u) << "more than asked: all that are ready";
  EXPECT_EQ(reactor_->batched_waits(), 1u);
}

TEST_F(UringReactorTestBatchWait, BatchedWaitsWithNothingPendingReturnEmpty) {
  ASSERT_NO_FATAL_FAILURE(PrimeBatchOfFour());
  // Timed (50 ms, longer than the minimum wait): empty at the timeout.
  EXPECT_TRUE(reactor_->wait(50).empty());
  // The empty wait brought nothing, so the next does not batch; prime again for the untimed
  // case: empty once the minimum wait is over (the worker's loop then waits again).
  ASSERT_NO_FATAL_FAILURE(PrimeBatchOfFour());
  EXPECT_TRUE(reactor_->wait(-1).empty());
  EXPECT_EQ(reactor_->batched_waits(), 0u) << "waits that timed out are not counted";
  EXPECT_EQ(reactor_->dropped_completions(), 0u);
}

TEST_F(UringReactorTestBatchWait, ATimerDueBeforeTheMinimumWaitIsNotBatched) {
  ASSERT_NO_FATAL_FAILURE(PrimeBatchOfFour());
  // 10 ms is sooner than the 20 ms minimum wait, which the kernel would honour first.
  Nops(1);
  EXPECT_EQ(reactor_->wait(10).size(), 1u);
  EXPECT_EQ(reactor_->batched_waits(), 0u);
}

TEST_F(UringReactorTest, WaitWithNothingPendingTimesOutEmpty) {
  EXPECT_TRUE(reactor_->wait(50).empty());
  EXPECT_TRUE(reactor_->wait(0).empty());
  EXPECT_EQ(reactor_->dropped_completions(), 0u);
  EXPECT_EQ(reactor_->submit_failures(), 0u);
}

TEST_F(UringReactorTest, AcceptsAreNotIdleUntilTheCancelledMultishotHasEnded) {
  room_ = 1000;
  reactor_->set_accept_room(room_, kBacklog);
  EXPECT_EQ(Run(20, room_), 0u);
  EXPECT_FALSE(reactor_->accepts_idle()) << "a multishot accept is in flight";
  reactor_->unwatch_listener(listener_, cookie_);
  EXPECT_FALSE(reactor_->accepts_idle()) << "the cancel is not even submitted";
  const auto until = Clock::now() + std::chrono::seconds(1);
  while (!reactor_->accepts_idle() && Clock::now() < until) reactor_->wait(10);
  EXPECT_TRUE(reactor_->accepts_idle());
}

// A started reactor returning one completion per wait: the others stay in the ring.
void StartBatchOfOne(std::optional<UringReactor>& reactor) {
  auto created = UringReactor::create(1, 64);
  ASSERT_TRUE(created.ok()) << created.error();
  reactor.emplace(std::move(created.value()));
  ASSERT_TRUE(reactor->start().ok());
}

// Regression (issue 13's CI failure): with completions left in the CQ ring, wait() submitted
// without GETEVENTS. Under DEFER_TASKRUN a completion that goes through task work (a receive
// whose data arrived) is posted only by an enter with GETEVENTS, so a worker whose every
// iteration submitted something completing inline (a closing connection's cancel) and left a
// completion behind never saw it: 1000 closing connections spun for ever.
TEST(UringReactorTestTaskWork, ACompletionWaitingAsTaskWorkComesWhileTheRingIsNeverEmpty) {
  std::optional<UringReactor> reactor;
  ASSERT_NO_FATAL_FAILURE(StartBatchOfOne(reactor));
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  char buf[16];
  const uint64_t recv_data = UserData::pack(UringOp::kRecvClient, Handle{7, 1});
  io_uring_sqe* e = reactor->sqe();
  io_uring_prep_recv(e, fds[0], buf, sizeof buf, 0);
  io_uring_sqe_set_data64(e, recv_data);
  uint32_t nop = 0;
  const auto nops = [&](uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) {
      io_uring_sqe* q = reactor->sqe();
      io_uring_prep_nop(q);
      io_uring_sqe_set_data64(q, UserData::pack(UringOp::kConnect, Handle{nop++ % 64, 1}));
    }
  };
  nops(2);
  ASSERT_EQ(reactor->wait(0).size(), 1u);  // the receive waits for data (armed on the socket)
  ASSERT_EQ(io_uring_cq_ready(reactor->ring()), 1u) << "want one completion left in the ring";
  ASSERT_EQ(::write(fds[1], "x", 1), 1);  // the receive's completion is now task work
  bool received = false;
  for (int i = 0; i < 50 && !received; ++i) {
    nops(1);  // completes inline at the submission: the ring is never found empty
    for (const Event& ev : reactor->wait(0)) {
      if (UringEventOp::op(ev.op) == UringOp::kRecvClient) {
        EXPECT_EQ(ev.result, 1);
        received = true;
      }
    }
  }
  EXPECT_TRUE(received) << "a completion waiting as task work never came";
  ::close(fds[0]);
  ::close(fds[1]);
}

// --- a kernel that refuses submissions ------------------------------------------------------

// Whether the kernel refuses `reactor`'s ring: created R_DISABLED and never started, every
// io_uring_enter fails with EBADFD, a real refusal. One nop stays queued.
bool Refuses(UringReactor& reactor) {
  io_uring_sqe* e = reactor.sqe();
  if (e == nullptr) return false;
  io_uring_prep_nop(e);
  return io_uring_submit(reactor.ring()) == -EBADFD;
}

// A reactor whose kernel refuses every enter (see Refuses()); empty where it takes them.
std::optional<UringReactor> RefusingReactor() {
  auto created = UringReactor::create(256, 64);
  if (!created.ok()) return std::nullopt;
  std::optional<UringReactor> reactor;
  reactor.emplace(std::move(created.value()));
  if (!Refuses(*reactor)) reactor.reset();
  return reactor;
}

// Each test below runs in a child process killed at a deadline (on the code these tests pin it
// spins for ever); the child creates its own ring, so it is the ring's only issuer.

// Regression (issue 9, item 5): sqe() retried io_uring_submit for ever when the queue was full
// and the kernel refused it, so a worker spun without reaping completions or reading its control
// fd. It must give up, return null and count the failure.
TEST(UringReactorTestRefused, FullQueueTheKernelRefusesMakesSqeReturnNullNotSpin) {
  if (!RefusingReactor()) GTEST_SKIP() << "rings are not created disabled here";
  const ::testing::AssertionResult finished =
      ring_faults::FinishesWithin(std::chrono::seconds(3), [] {
        std::optional<UringReactor> reactor = RefusingReactor();
        ASSERT_TRUE(reactor);
        io_uring* ring = reactor->ring();
        while (io_uring_sq_space_left(ring) > 0) {
          io_uring_sqe* e = reactor->sqe();
          ASSERT_NE(e, nullptr);
          io_uring_prep_nop(e);
        }
        EXPECT_EQ(reactor->sqe(), nullptr);
        EXPECT_EQ(reactor->submit_failures(), 1u);
        EXPECT_FALSE(reactor->reserve(1));
        EXPECT_EQ(reactor->submit_failures(), 2u);
      });
  EXPECT_TRUE(finished) << "sqe() spins while the kernel refuses the full submission queue";
}

// The same refusing kernel: waits neither spin (each one that the kernel refuses gives it a
// moment) nor go deaf to the control fd, whose own poll cannot complete while enters fail.
TEST(UringReactorTestRefused, WaitsOnARefusingKernelPauseAndStillServeTheControlFd) {
  if (!RefusingReactor()) GTEST_SKIP() << "rings are not created disabled here";
  const ::testing::AssertionResult finished =
      ring_faults::FinishesWithin(std::chrono::seconds(5), [] {
        std::optional<UringReactor> reactor = RefusingReactor();
        ASSERT_TRUE(reactor);
        const int control = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        ASSERT_GE(control, 0);
        const uint64_t cookie = Cookie::pack(CookieTag::kControl, Handle{});
        ASSERT_TRUE(reactor->watch(control, cookie).ok());
        constexpr int kWaits = 40;
        const auto start = Clock::now();
        for (int i = 0; i < kWaits; ++i) {
          EXPECT_TRUE(reactor->wait(i % 2 == 0 ? -1 : 0).empty());
        }
        EXPECT_GE(Clock::now() - start,
                  std::chrono::milliseconds(kWaits * UringReactor::kStallWaitMs / 2))
            << "waits on a refusing kernel return at once: the worker's loop would spin";
        const uint64_t one = 1;
        ASSERT_EQ(::write(control, &one, sizeof one), static_cast<ssize_t>(sizeof one));
        const std::span<const Event> events = reactor->wait(-1);
        ASSERT_EQ(events.size(), 1u) << "a stop request would never be seen";
        EXPECT_EQ(events[0].cookie, cookie);
        EXPECT_TRUE(events[0].ready & kReadable);
        ::close(control);
      });
  EXPECT_TRUE(finished) << "a wait on a refusing kernel blocked or spun";
}

// Completions the reactor moved out of the CQ ring while the kernel refused a full submission
// queue come back first, in order, and what was queued is submitted once the kernel accepts.
TEST(UringReactorTestRefused, DeferredCompletionsComeFirstInOrder) {
  const ::testing::AssertionResult finished =
      ring_faults::FinishesWithin(std::chrono::seconds(3), [] {
        auto created = UringReactor::create(256, 64);
        ASSERT_TRUE(created.ok()) << created.error();
        UringReactor reactor(std::move(created.value()));
        ASSERT_TRUE(reactor.start().ok());
        io_uring* ring = reactor.ring();
        const auto nop = [&](uint32_t id) {
          io_uring_sqe* e = reactor.sqe();
          if (e == nullptr) return false;
          io_uring_prep_nop(e);
          io_uring_sqe_set_data64(e, UserData::pack(UringOp::kConnect, Handle{id, 1}));
          return true;
        };
        for (uint32_t id = 0; id < 4; ++id) ASSERT_TRUE(nop(id));
        ASSERT_EQ(io_uring_submit_and_get_events(ring), 4);
        ASSERT_EQ(io_uring_cq_ready(ring), 4u);
        uint32_t queued = 0;
        {
          ring_faults::RefuseEnters refuse(ring);
          while (nop(100 + queued)) ++queued;
          EXPECT_LT(io_uring_submit(ring), 0) << "the kernel still takes submissions";
          EXPECT_EQ(queued, ring->sq.ring_entries);
          EXPECT_EQ(reactor.submit_failures(), 1u);
          EXPECT_EQ(io_uring_cq_ready(ring), 0u) << "moved out of the kernel's way";
        }
        std::vector<uint32_t> order;
        const auto until = Clock::now() + std::chrono::seconds(1);
        while (order.size() < 4 + queued && Clock::now() < until) {
          for (const Event& ev : reactor.wait(10)) {
            order.push_back(Cookie::unpack(ev.cookie).handle.index);
          }
        }
        ASSERT_EQ(order.size(), 4 + queued);
        for (uint32_t i = 0; i < order.size(); ++i) {
          EXPECT_EQ(order[i], i < 4 ? i : 100 + (i - 4)) << "completion " << i;
        }
      });
  EXPECT_TRUE(finished) << "sqe() spins while the kernel refuses the full submission queue";
}

// --- accepts left behind ------------------------------------------------------------------

// Regression (issue 9, item 10): accept completions still in the ring when the reactor was
// destroyed leaked their descriptors, and their clients hung until the process exited.
TEST(UringReactorTestAccepts, AcceptedClientsLeftInTheRingAreResetWhenTheReactorGoes) {
  std::optional<UringReactor> reactor;
  ASSERT_NO_FATAL_FAILURE(StartBatchOfOne(reactor));
  SocketAddress address;
  int listener = loopback::Bind(static_cast<int>(kBacklog), address, true);
  ASSERT_GE(listener, 0);
  const uint64_t cookie = Cookie::pack(CookieTag::kListener, Handle{0, 0});
  ASSERT_TRUE(reactor->watch_listener(listener, cookie).ok());
  reactor->set_accept_room(1000, kBacklog);  // a multishot accept
  constexpr int kClients = 4;
  std::vector<int> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(loopback::ConnectTo(address));
    ASSERT_GE(clients.back(), 0);
  }
  // The first wait accepts every queued client in one go; one completion comes back.
  int accepted = -1;
  const auto until = Clock::now() + std::chrono::seconds(2);
  while (accepted < 0 && Clock::now() < until) {
    for (const Event& ev : reactor->wait(10)) {
      ASSERT_TRUE(ev.ready & kAccepted);
      ASSERT_GE(ev.result, 0) << std::strerror(-ev.result);
      accepted = ev.result;
    }
  }
  ASSERT_GE(accepted, 0);
  ASSERT_GT(io_uring_cq_ready(reactor->ring()), 0u) << "nothing left in the ring to test";
  loopback::Reset(accepted);  // the worker's own: it resets it at close
  reactor.reset();
  for (int& fd : clients) {
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 1000), 1) << "a client accepted behind the worker's back hangs";
    char byte = 0;
    const ssize_t n = ::recv(fd, &byte, 1, MSG_DONTWAIT);
    EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << "recv: " << n;
    loopback::Close(fd);
  }
  loopback::Close(listener);
}

}  // namespace
}  // namespace edgeproxy
