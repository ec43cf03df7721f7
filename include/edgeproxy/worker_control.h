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

// One open connection as `show conns` lists it (docs/admin.md). `id` is "worker.slot.generation":
// stable while the connection lives, never reused by the next one in the same slot.
struct ConnectionInfo {
  std::string id;
  std::string client;    // the client's address, "?" when the socket no longer says
  std::string listener;  // its listener's name
  std::string server;    // "backend/server", "-" before one is chosen
  const char* state = "";
  uint64_t bytes_c2u = 0;
  uint64_t bytes_u2c = 0;
  int64_t age_ms = 0;
};

// What a worker answers to kListConnections and kKill.
struct AdminAnswer {
  std::vector<ConnectionInfo> connections;  // kListConnections: at most the limit asked
  uint32_t open = 0;                        // kListConnections: open connections in all
  bool killed = false;                      // kKill: the connection existed and is being reset
};

struct WorkerCommand {
  enum class Kind : uint8_t {
    kStopGraceful,
    kStopFast,
    kReport,
    kInstall,
    kListConnections,  // answer() with at most `limit` open connections
    kKill,             // reset connection `slot`/`generation` on both sides, answer() whether found
    kBalancers,        // replace the balancers of the version whose epoch is `epoch`
  };
  Kind kind = Kind::kReport;
  uint64_t ticket = 0;                       // kReport, kListConnections, kKill
  std::shared_ptr<const Topology> topology;  // kInstall
  std::vector<ListenerPlan> listeners;       // kInstall: every socket the worker is to have
  std::vector<Balancer> balancers;           // kInstall, kBalancers: one per backend
  uint64_t epoch = 0;                        // kBalancers
  uint32_t limit = 0;                        // kListConnections
  uint32_t slot = 0;                         // kKill
  uint32_t generation = 0;                   // kKill
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
  // The admin thread's requests (one at a time: a single answer slot). Each returns the ticket
  // for wait_answer().
  uint64_t request_connections(uint32_t limit);
  uint64_t request_kill(uint32_t slot, uint32_t generation);
  // Hands the worker balancers rebuilt for topology epoch `epoch` (a weight changed).
  void request_balancers(uint64_t epoch, std::vector<Balancer> balancers);
  // Waits until the answer to `ticket` is published; false on timeout (or when a worker that
  // exited will never answer: the caller checks that first).
  bool wait_answer(uint64_t ticket, int timeout_ms, AdminAnswer& out);

  // Worker side: replaces `out` with the commands posted since the previous call, oldest first,
  // and drains the eventfd. Reuses `out`'s capacity: a report asked while nothing else is queued
  // allocates nothing on the worker's thread.
  void take(std::vector<WorkerCommand>& out);
  void publish(uint64_t ticket, const Stats& stats);
  void answer(uint64_t ticket, AdminAnswer answer);
  // Worker side: an install that did not fully succeed (a listening socket not kept or not
  // watched); the supervisor reads it after the install with take_install_error().
  void set_install_error(std::string error);
  // Supervisor side: the last install error, emptied; "" when every install succeeded.
  std::string take_install_error();

 private:
  explicit WorkerControl(int fd) noexcept : fd_(fd) {}
  void post(WorkerCommand command);
  // Posts `command` with the next ticket, which it returns.
  uint64_t post_ticketed(WorkerCommand command);

  int fd_;
  std::mutex mutex_;
  std::deque<WorkerCommand> queue_;
  uint64_t next_ticket_ = 0;
  std::condition_variable published_cv_;
  uint64_t published_ticket_ = 0;
  Stats snapshot_;
  uint64_t answered_ticket_ = 0;
  AdminAnswer answer_;
  std::string install_error_;
};

}  // namespace edgeproxy
