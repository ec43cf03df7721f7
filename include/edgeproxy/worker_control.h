// WorkerControl: the one channel between the supervisor thread and one worker. The supervisor
// posts requests (stop, report statistics) and wakes the worker through an eventfd that the
// worker's reactor watches; the worker answers a report request by publishing a snapshot of its
// statistics. Nothing here is on the data path: a worker looks at it only when the eventfd fires,
// and the mutex guards the rare snapshot hand-over only.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>

#include "edgeproxy/result.h"
#include "edgeproxy/stats.h"

namespace edgeproxy {

class WorkerControl {
 public:
  // Opens the eventfd. Error: one line.
  static Result<std::unique_ptr<WorkerControl>> create();

  WorkerControl(const WorkerControl&) = delete;
  WorkerControl& operator=(const WorkerControl&) = delete;
  ~WorkerControl();

  // The descriptor the worker watches for readability.
  int fd() const noexcept { return fd_; }

  // Supervisor side. Every call counts: two fast stops posted before the worker looks are two
  // stops (the second one ends the grace period), never merged into one.
  void request_stop(bool fast) noexcept;
  // Asks for a snapshot; returns the ticket to wait for.
  uint64_t request_report() noexcept;
  // Waits until the snapshot for `ticket` (or a later one) is published; false on timeout.
  bool wait_report(uint64_t ticket, int timeout_ms, Stats& out);

  // Worker side: what has been asked since the previous call. Drains the eventfd.
  struct Requests {
    uint32_t fast_stops = 0;
    uint32_t graceful_stops = 0;
    uint64_t report_ticket = 0;  // 0 = no report asked
  };
  Requests take() noexcept;
  void publish(uint64_t ticket, const Stats& stats);

 private:
  explicit WorkerControl(int fd) noexcept : fd_(fd) {}
  void wake() noexcept;

  int fd_;
  std::atomic<uint32_t> fast_stops_{0};
  std::atomic<uint32_t> graceful_stops_{0};
  std::atomic<uint64_t> report_ticket_{0};
  // The worker's view of what it already handled (touched only by the worker's thread).
  uint32_t seen_fast_ = 0;
  uint32_t seen_graceful_ = 0;
  uint64_t seen_ticket_ = 0;

  std::mutex mutex_;
  std::condition_variable published_cv_;
  uint64_t published_ticket_ = 0;
  Stats snapshot_;
};

}  // namespace edgeproxy
