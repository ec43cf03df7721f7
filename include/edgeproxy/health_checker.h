// HealthChecker: the one thread that runs active health checks (a TCP or Unix connect, then
// optionally send/expect) for every server of every backend with `check.enabled`, and the
// passive revival of servers of backends without checks. Its own epoll, a timer heap and an
// eventfd for updates and stop; nothing here is on the workers' data path: results go into each
// server's runtime atomics (server_health.h). docs/health-checks.md has the rules.
#pragma once

#include <pthread.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "edgeproxy/result.h"
#include "edgeproxy/topology.h"

namespace edgeproxy {

class HealthChecker {
 public:
  // Opens the epoll instance and the eventfd and starts the thread, which checks `topology`
  // (null: nothing yet). Servers need `addresses` resolved and a `runtime`; a server without
  // either is skipped. Error: one line (descriptors, thread creation).
  static Result<std::unique_ptr<HealthChecker>> start(std::shared_ptr<const Topology> topology);

  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;
  // Stops and joins the thread; every check in flight is abandoned (its socket reset and
  // closed, nothing counted) and every descriptor closed.
  ~HealthChecker();

  // A reload: the thread switches to `topology` at its next wake-up (at once). Any thread; the
  // latest of several updates posted before the thread looks wins. A server kept (the same
  // ServerRuntime object) keeps its schedule and the check it may have in flight; a server
  // removed has its check in flight abandoned (nothing counted); a server added gets its first
  // check at a random point of its interval.
  void update(std::shared_ptr<const Topology> topology);

 private:
  struct Loop;

  HealthChecker(int epoll_fd, int wake_fd) noexcept;
  static void* thread_main(void* self) noexcept;
  void wake() noexcept;

  const int epoll_fd_;
  const int wake_fd_;
  pthread_t thread_{};
  bool started_ = false;  // the thread runs and must be joined
  std::atomic<bool> stop_{false};
  std::mutex mutex_;                         // guards pending_ and has_pending_
  std::shared_ptr<const Topology> pending_;  // the next version to switch to
  bool has_pending_ = false;
  std::unique_ptr<Loop> loop_;  // the thread's state; touched by the thread only once started
};

}  // namespace edgeproxy
