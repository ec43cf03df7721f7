// Faults for the io_uring tests, made by the kernel itself, never by a mock: a ring whose every
// io_uring_enter the kernel refuses, a completion dropped the way the kernel drops one, and a
// bounded run of code that might spin (in a child process, killed at a deadline).
#pragma once

#include <gtest/gtest.h>
#include <liburing.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

namespace edgeproxy::ring_faults {

// While alive, the kernel refuses every io_uring_enter on `ring`: liburing (and the reactor's own
// enter) name the ring by enter_ring_fd, which this points at a registered-ring slot this thread
// does not use (EBADF), or at no descriptor when the ring fd is not registered (EBADF).
class RefuseEnters {
 public:
  explicit RefuseEnters(io_uring* ring) : ring_(ring), saved_(ring->enter_ring_fd) {
    const bool registered = saved_ != ring->ring_fd;
    ring->enter_ring_fd = registered ? (saved_ == 15 ? 14 : 15) : -1;
  }
  RefuseEnters(const RefuseEnters&) = delete;
  RefuseEnters& operator=(const RefuseEnters&) = delete;
  ~RefuseEnters() { ring_->enter_ring_fd = saved_; }

 private:
  io_uring* ring_;
  int saved_;
};

// What the kernel does when it drops a completion (the CQ ring is full and no overflow entry can
// be allocated): it counts it in the ring's shared cq.koverflow, and the completion never comes.
// The caller withholds the completion; this counts it.
inline void CountDroppedCompletion(io_uring* ring) {
  IO_URING_WRITE_ONCE(*ring->cq.koverflow, IO_URING_READ_ONCE(*ring->cq.koverflow) + 1);
}

// Runs `body` in a forked child and waits at most `deadline` for it: a body that spins (the bug
// some tests pin) makes the test fail, not hang. Succeeds when the child finished without a
// failed assertion; on a timeout the child is killed (by its pid).
inline ::testing::AssertionResult FinishesWithin(std::chrono::milliseconds deadline,
                                                 const std::function<void()>& body) {
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child < 0) return ::testing::AssertionFailure() << "fork failed";
  if (child == 0) {
    body();
    std::fflush(nullptr);
    ::_exit(::testing::Test::HasFailure() ? 1 : 0);
  }
  const auto until = std::chrono::steady_clock::now() + deadline;
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) != child) {
    if (std::chrono::steady_clock::now() > until) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      return ::testing::AssertionFailure()
             << "still running after " << deadline.count() << " ms: killed";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "the child reported failures (above)";
}

}  // namespace edgeproxy::ring_faults
