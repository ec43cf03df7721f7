// Supervisor-to-worker commands; see worker_control.h.
#include "edgeproxy/worker_control.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>

namespace edgeproxy {

Result<std::unique_ptr<WorkerControl>> WorkerControl::create() {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return Error{std::string("eventfd: ") + std::strerror(errno)};
  return std::unique_ptr<WorkerControl>(new WorkerControl(fd));
}

WorkerControl::~WorkerControl() {
  for (const WorkerCommand& c : queue_) {
    for (const ListenerPlan& p : c.listeners) {
      if (p.fd >= 0) sys::close(p.fd);
    }
  }
  if (fd_ >= 0) sys::close(fd_);
}

void WorkerControl::post(WorkerCommand command) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(command));
  }
  const uint64_t one = 1;
  // EAGAIN only when the counter is near overflow: the worker is woken already.
  [[maybe_unused]] const ssize_t n = ::write(fd_, &one, sizeof one);
}

void WorkerControl::request_stop(bool fast) {
  WorkerCommand c;
  c.kind = fast ? WorkerCommand::Kind::kStopFast : WorkerCommand::Kind::kStopGraceful;
  post(std::move(c));
}

uint64_t WorkerControl::post_ticketed(WorkerCommand command) {
  {
    std::lock_guard lock(mutex_);
    command.ticket = ++next_ticket_;
  }
  const uint64_t ticket = command.ticket;
  post(std::move(command));
  return ticket;
}

uint64_t WorkerControl::request_report() {
  WorkerCommand c;
  c.kind = WorkerCommand::Kind::kReport;
  return post_ticketed(std::move(c));
}

void WorkerControl::request_install(std::shared_ptr<const Topology> topology,
                                    std::vector<ListenerPlan> plan,
                                    std::vector<Balancer> balancers) {
  WorkerCommand c;
  c.kind = WorkerCommand::Kind::kInstall;
  c.topology = std::move(topology);
  c.listeners = std::move(plan);
  c.balancers = std::move(balancers);
  post(std::move(c));
}

uint64_t WorkerControl::request_connections(uint32_t limit) {
  WorkerCommand c;
  c.kind = WorkerCommand::Kind::kListConnections;
  c.limit = limit;
  return post_ticketed(std::move(c));
}

uint64_t WorkerControl::request_kill(uint32_t slot, uint32_t generation) {
  WorkerCommand c;
  c.kind = WorkerCommand::Kind::kKill;
  c.slot = slot;
  c.generation = generation;
  return post_ticketed(std::move(c));
}

void WorkerControl::request_balancers(uint64_t epoch, std::vector<Balancer> balancers) {
  WorkerCommand c;
  c.kind = WorkerCommand::Kind::kBalancers;
  c.epoch = epoch;
  c.balancers = std::move(balancers);
  post(std::move(c));
}

bool WorkerControl::wait_answer(uint64_t ticket, int timeout_ms, AdminAnswer& out) {
  std::unique_lock lock(mutex_);
  const bool done = published_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                           [&] { return answered_ticket_ >= ticket; });
  if (done) out = std::move(answer_);
  return done;
}

void WorkerControl::answer(uint64_t ticket, AdminAnswer answer) {
  {
    std::lock_guard lock(mutex_);
    answer_ = std::move(answer);
    if (ticket > answered_ticket_) answered_ticket_ = ticket;
  }
  published_cv_.notify_all();
}

bool WorkerControl::wait_report(uint64_t ticket, int timeout_ms, Stats& out) {
  std::unique_lock lock(mutex_);
  const bool done = published_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                           [&] { return published_ticket_ >= ticket; });
  if (done) out = snapshot_;
  return done;
}

void WorkerControl::take(std::vector<WorkerCommand>& out) {
  uint64_t count = 0;
  // Read before taking the queue: a command posted after this read rings the doorbell again.
  [[maybe_unused]] const ssize_t n = ::read(fd_, &count, sizeof count);
  out.clear();
  std::lock_guard lock(mutex_);
  while (!queue_.empty()) {
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
}

void WorkerControl::set_install_error(std::string error) {
  std::lock_guard lock(mutex_);
  install_error_ = std::move(error);
}

std::string WorkerControl::take_install_error() {
  std::lock_guard lock(mutex_);
  return std::exchange(install_error_, std::string());
}

void WorkerControl::publish(uint64_t ticket, const Stats& stats) {
  {
    std::lock_guard lock(mutex_);
    snapshot_ = stats;
    if (ticket > published_ticket_) published_ticket_ = ticket;
  }
  published_cv_.notify_all();
}

}  // namespace edgeproxy
