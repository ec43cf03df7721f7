// Supervisor-to-worker requests; see worker_control.h.
#include "edgeproxy/worker_control.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "edgeproxy/net.h"

namespace edgeproxy {

Result<std::unique_ptr<WorkerControl>> WorkerControl::create() {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return Error{std::string("eventfd: ") + std::strerror(errno)};
  return std::unique_ptr<WorkerControl>(new WorkerControl(fd));
}

WorkerControl::~WorkerControl() {
  if (fd_ >= 0) sys::close(fd_);
}

void WorkerControl::wake() noexcept {
  const uint64_t one = 1;
  // EAGAIN only when the counter is near overflow: the worker is woken already.
  [[maybe_unused]] const ssize_t n = ::write(fd_, &one, sizeof one);
}

void WorkerControl::request_stop(bool fast) noexcept {
  (fast ? fast_stops_ : graceful_stops_).fetch_add(1, std::memory_order_release);
  wake();
}

uint64_t WorkerControl::request_report() noexcept {
  const uint64_t ticket = report_ticket_.fetch_add(1, std::memory_order_acq_rel) + 1;
  wake();
  return ticket;
}

bool WorkerControl::wait_report(uint64_t ticket, int timeout_ms, Stats& out) {
  std::unique_lock lock(mutex_);
  const bool done = published_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                           [&] { return published_ticket_ >= ticket; });
  if (done) out = snapshot_;
  return done;
}

WorkerControl::Requests WorkerControl::take() noexcept {
  uint64_t count = 0;
  // Read before loading the counters: a request posted after this read wakes the worker again.
  [[maybe_unused]] const ssize_t n = ::read(fd_, &count, sizeof count);
  Requests r;
  const uint32_t fast = fast_stops_.load(std::memory_order_acquire);
  const uint32_t graceful = graceful_stops_.load(std::memory_order_acquire);
  const uint64_t ticket = report_ticket_.load(std::memory_order_acquire);
  r.fast_stops = fast - seen_fast_;
  r.graceful_stops = graceful - seen_graceful_;
  r.report_ticket = ticket != seen_ticket_ ? ticket : 0;
  seen_fast_ = fast;
  seen_graceful_ = graceful;
  seen_ticket_ = ticket;
  return r;
}

void WorkerControl::publish(uint64_t ticket, const Stats& stats) {
  {
    std::lock_guard lock(mutex_);
    snapshot_ = stats;
    published_ticket_ = ticket;
  }
  published_cv_.notify_all();
}

}  // namespace edgeproxy
