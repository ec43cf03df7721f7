// WorkerControl: the one channel between the supervisor thread and one worker: a small FIFO of
// commands (stop, report statistics, install a topology) posted by the supervisor, with an
// eventfd that the worker's reactor watches as the doorbell. The worker drains the queue between
// loop iterations and answers a report by publishing a snapshot. Nothing here is on the data
// path: the mutex guards the queue and the snapshot hand-over only.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "edgeproxy/balancer.h"
#include "edgeproxy/net.h"
#include "edgeproxy/result.h"
#include "edgeproxy/stats.h"
#include "edgeproxy/topology.h"

namespace edgeproxy {

// One listening socket a worker is to have: for bind `bind` of listener `listener` (indices into
// the topology being installed). `fd` is a socket the supervisor opened for this worker, owned by
// the command until the worker takes it; -1 means "keep the socket you already have for the same
// listener name and configured address" (a reload that did not change it).
struct ListenerPlan {
  uint32_t listener = 0;
  uint32_t bind = 0;
  std::string name;
  SocketAddress configured;  // as resolved from the file (port 0 stays 0): the key across reloads
  int fd = -1;
};

struct WorkerCommand {
  enum class Kind : uint8_t { kStopGraceful, kStopFast, kReport, kInstall };
  Kind kind = Kind::kReport;
  uint64_t ticket = 0;                       // kReport
  std::shared_ptr<const Topology> topology;  // kInstall
  std::vector<ListenerPlan> listeners;       // kInstall: every socket the worker is to have
  std::vector<Balancer> balancers;           // kInstall: one per backend, built for this worker
};

class WorkerControl {
 public:
  // Opens the eventfd. Error: one line.
  static Result<std::unique_ptr<WorkerControl>> create();

  WorkerControl(const WorkerControl&) = delete;
  WorkerControl& operator=(const WorkerControl&) = delete;
  // Closes the eventfd and the sockets of install commands never taken.
  ~WorkerControl();

  // The descriptor the worker watches for readability.
  int fd() const noexcept { return fd_; }

  // Supervisor side. Every command counts and keeps its order: two fast stops posted before the
  // worker looks are two stops (the second one ends the grace period), never merged into one.
  void request_stop(bool fast);
  // Asks for a snapshot; returns the ticket to wait for.
  uint64_t request_report();
  // Hands the worker a new topology and its listening sockets (see ListenerPlan).
  void request_install(std::shared_ptr<const Topology> topology, std::vector<ListenerPlan> plan,
                       std::vector<Balancer> balancers);
  // Waits until the snapshot for `ticket` (or a later one) is published; false on timeout.
  bool wait_report(uint64_t ticket, int timeout_ms, Stats& out);

  // Worker side: replaces `out` with the commands posted since the previous call, oldest first,
  // and drains the eventfd. Reuses `out`'s capacity: a report asked while nothing else is queued
  // allocates nothing on the worker's thread.
  void take(std::vector<WorkerCommand>& out);
  void publish(uint64_t ticket, const Stats& stats);
  // Worker side: an install that did not fully succeed (a listening socket not kept or not
  // watched); the supervisor reads it after the install with take_install_error().
  void set_install_error(std::string error);
  // Supervisor side: the last install error, emptied; "" when every install succeeded.
  std::string take_install_error();

 private:
  explicit WorkerControl(int fd) noexcept : fd_(fd) {}
  void post(WorkerCommand command);

  int fd_;
  std::mutex mutex_;
  std::deque<WorkerCommand> queue_;
  uint64_t next_ticket_ = 0;
  std::condition_variable published_cv_;
  uint64_t published_ticket_ = 0;
  Stats snapshot_;
  std::string install_error_;
};

}  // namespace edgeproxy
