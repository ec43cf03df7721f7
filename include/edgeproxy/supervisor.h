// Supervisor: the process's main thread once start-up is done. It starts the workers (one thread
// each, pinned when asked), turns signals into worker requests, and reports statistics merged
// across workers and per worker. Each worker creates its own Worker on its own thread, so its
// memory is first touched on the CPU that uses it and an io_uring ring is enabled by its single
// issuer. Workers share nothing; the supervisor only talks to them through WorkerControl.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "edgeproxy/access_log_writer.h"
#include "edgeproxy/admin_server.h"
#include "edgeproxy/config.h"
#include "edgeproxy/health_checker.h"
#include "edgeproxy/metrics_server.h"
#include "edgeproxy/net.h"
#include "edgeproxy/result.h"
#include "edgeproxy/service_notifier.h"
#include "edgeproxy/socket_activation.h"
#include "edgeproxy/stats.h"
#include "edgeproxy/stats_snapshot.h"
#include "edgeproxy/topology.h"
#include "edgeproxy/worker.h"
#include "edgeproxy/worker_control.h"

namespace edgeproxy {

// How many workers run, and where.
struct WorkerPlan {
  uint32_t workers = 1;
  std::vector<uint16_t> cpus;  // empty (not pinned) or one CPU per worker
};

// The `global` settings a reload cannot change, because they size threads, the slab and the
// pools (decision 0008): the names of those that differ between `running` and `loaded`, e.g.
// "workers, max-connections"; empty when none does.
std::string restart_settings_changed(const Config& running, const Config& loaded);

// Resolves --workers (auto = one per CPU of `allowed`, or per --cpu-list entry) and --cpu-list
// (every CPU must be in `allowed`, the process's inherited affinity mask) against the per-process
// --max-connections and --buffers, which must leave each worker at least 1 connection and 2
// buffers. At most kWorkersPerCpu workers per CPU of `allowed`: more only add threads competing
// for the same CPUs and split the limits into slivers. Pure: `allowed` comes from
// sched_getaffinity.
inline constexpr uint32_t kWorkersPerCpu = 4;
Result<WorkerPlan> plan_workers(const Config& config, std::span<const uint16_t> allowed);

// Worker `index`'s share of the per-process limits: max_connections, buffers and an explicit
// --splice-pipes divided as evenly as integers allow (the first workers get the remainders).
Config worker_share(const Config& config, uint32_t workers, uint32_t index);

// "0-3,6" for a sorted CPU list, for messages.
std::string format_cpu_list(std::span<const uint16_t> cpus);

// The signals the supervisor reads from its signalfd: TERM, INT, QUIT and USR1, which it acts on,
// and every other asynchronous signal whose default action ends the process (signal(7): HUP,
// USR2, ALRM, VTALRM, PROF, IO, PWR, STKFLT, XCPU, XFSZ, SIGRTMIN..SIGRTMAX), which it logs and
// ignores. main blocks this set in every thread before the first one starts. Not in it: the
// synchronous fault signals (SEGV, BUS, ILL, FPE, ABRT, TRAP, SYS) must still end the process,
// and PIPE is ignored (a send to a closed peer is EPIPE).
sigset_t supervised_signals() noexcept;

// What the admin thread asks the supervisor's own loop to do (Supervisor::request()).
struct SupervisorRequest {
  enum class Kind : uint8_t { kReload, kShutdownGraceful, kShutdownFast, kSetWeight };
  Kind kind = Kind::kReload;
  std::string backend;  // kSetWeight
  std::string server;   // kSetWeight
  uint32_t weight = 0;  // kSetWeight: 1-256
};

// Loads the configuration again for a reload: reads and parses the file, applies the command
// line's overrides and resolves names. Error: one line.
using TopologyLoader = std::function<Result<std::shared_ptr<Topology>>()>;

class Supervisor {
 public:
  // Opens the signalfd (the caller blocked supervised_signals() before any thread existed) and
  // every listening socket of `topology` (open_listeners()), then starts the workers in two
  // phases: one by one, each creates its Worker and readies its reactor on its own thread; only
  // when all are ready are they let run. So a failure leaves no connection accepted and no other
  // line printed: the error is the one line, naming the worker when there are several.
  // `reload` reloads the configuration on SIGHUP (null: started from the command line, nothing
  // to reload). With `metrics` set (Topology::metrics_address), the MetricsServer is bound and
  // started before the workers run; it lives until the destructor. `activated` are sockets systemd
  // passed (socket activation): a listener bind they match uses one instead of binding.
  static Result<std::unique_ptr<Supervisor>> start(const WorkerPlan& plan,
                                                   std::shared_ptr<Topology> topology,
                                                   TopologyLoader reload = {},
                                                   std::vector<ActivatedSocket> activated = {});

  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  // Stops (at once) and joins workers still running; closes the sockets it kept.
  ~Supervisor();

  // Serves signals until every worker has returned: TERM/INT and QUIT are forwarded to every
  // worker, HUP reloads the configuration (reload()), USR1 prints statistics, any other of
  // supervised_signals() is logged (one line each time) and ignored; USR2 reopens the access log
  // file. A worker that fails stops
  // the others. Returns the exit status: 0, or the first failed worker's.
  int run() noexcept;

  // Loads the configuration again and, when it is valid and its listeners could all be opened,
  // hands it to every worker (decision 0008). Otherwise nothing changes: one error line and
  // reload_failures. True when the new version was installed.
  bool reload();

  // The bound address of the first listener's first bind (the real port when 0 was asked for).
  const SocketAddress& listen_address() const noexcept { return listen_; }
  uint32_t workers() const noexcept { return static_cast<uint32_t>(slots_.size()); }
  // The installed version; safe from any thread (a reload replaces it under topology_mutex_).
  std::shared_ptr<const Topology> topology() const;
  // "web on 127.0.0.1:8080 [::1]:8080; admin on unix:/run/a.sock": every listener's bound
  // addresses, for the start-up line and systemd's STATUS.
  std::string describe_listeners() const;

  // Merged and per-worker statistics in one block (per-worker lines only with several workers),
  // then the supervisor's reload counters and the per-listener, per-backend and per-server ones.
  // While workers run, each is asked for a snapshot; afterwards their final counters are read.
  // A running worker that does not answer within 2 s is left out of the sums and its lines, and
  // the block's header names it (Stats::print_report).
  // `per_worker` false leaves out the per-worker lines (the exit report without -v: with many
  // workers they would bury the totals).
  void print_stats(std::FILE* out, bool per_worker = true);
  // The same figures as print_stats(), for another thread (the admin and metrics threads): safe to
  // call concurrently with the supervisor's own work, including a reload.
  StatsSnapshot snapshot();
  // The block print_stats() prints, as text (the admin socket's `show stats`). Any thread.
  std::string stats_text();

  // Admin thread (one request at a time). Runs `r` on the supervisor's thread, through an
  // eventfd its loop in run() watches, and waits for the outcome: "" or one error line. Once
  // run() has returned (or is returning), answers "shutting down" at once.
  std::string request(const SupervisorRequest& r);
  // Admin thread: at most `limit` open connections over every worker (`open`: how many there
  // are in all), asked of each running worker between two of its iterations.
  AdminAnswer list_connections(uint32_t limit);
  // Admin thread: resets both sides of connection `slot`.`generation` of `worker`. "" or one
  // error line.
  std::string kill_connection(uint32_t worker, uint32_t slot, uint32_t generation);

 private:
  struct Slot {
    Supervisor* owner = nullptr;
    uint32_t index = 0;
    WorkerOptions options;
    int cpu = -1;
    std::unique_ptr<WorkerControl> control;
    // Owned by the worker's thread: created there, and destroyed there as soon as run() returns,
    // so a finished worker's listener and ring are gone while other workers still drain.
    std::unique_ptr<Worker> worker;
    pthread_t thread{};
    bool joinable = false;
    // Written by the worker's thread under owner->mutex_.
    bool ready = false;  // created and started, or failed (error set)
    std::string error;
    int status = 0;
    Stats final_stats;  // written before `exited` is set
    std::atomic<bool> exited{false};
  };
  // A listening address the workers have sockets for. A reload keeps the sockets of an address
  // it still binds (as configured: port 0 stays 0), whichever listener now names it.
  struct OpenBind {
    std::string name;
    SocketAddress configured;
    SocketAddress bound;
    int activated = -1;  // index into activated_ when systemd passed the socket
  };
  // What open_listeners() produced: each worker's ListenerPlan, and the binds now open.
  struct OpenedListeners {
    std::vector<std::vector<ListenerPlan>> plans;
    std::vector<OpenBind> binds;
    std::vector<std::string> unix_files;  // Unix socket files this call created
  };

  Supervisor(int signal_fd, int exit_fd) noexcept : signal_fd_(signal_fd), exit_fd_(exit_fd) {}
  // Opens a socket per worker for every bind of `t` that binds_ does not already have (by
  // configured address; all of them at start-up): one SO_REUSEPORT socket per
  // worker for TCP with several workers, one socket shared (dup) by every worker for a Unix
  // address or a socket systemd passed. On failure every socket it opened is closed again.
  Result<OpenedListeners> open_listeners(const Topology& t, uint32_t workers);
  // Closes the sockets still in `opened`'s plans and removes the Unix socket files it created.
  static void close_plans(OpenedListeners& opened) noexcept;
  // Removes the files of Unix listeners no longer bound (`before` minus binds_), once no worker
  // holds their sockets.
  void remove_unix_files(const std::vector<OpenBind>& before) const noexcept;
  static void* thread_main(void* arg) noexcept;
  Result<Ok> start_worker(Slot& slot);
  void release_workers(bool go) noexcept;
  void stop_all_now() noexcept;
  void join_all() noexcept;
  void on_signals() noexcept;
  // Asks every running worker for a snapshot (answered after the commands posted before it) and
  // waits for all of them with one deadline of 2 s. answered[i] is false for a worker that had
  // exited, or did not answer in time; out[i] holds the others' snapshots.
  std::vector<bool> collect_reports(std::vector<Stats>& out);
  // The per-listener, per-backend, per-server and reload lines of the statistics block.
  std::string object_stat_lines(const StatsSnapshot& s) const;
  std::string status_line() const;
  // The supervisor's side of request(): drains the eventfd and runs the posted request.
  void on_request() noexcept;
  std::string run_request(const SupervisorRequest& r);
  std::string set_weight(const std::string& backend, const std::string& server, uint32_t weight);
  // Stops taking requests (waiters get "shutting down") and stops the admin thread.
  void stop_admin() noexcept;
  void stop_workers(bool fast) noexcept;

  int signal_fd_;
  int exit_fd_;           // eventfd: a worker's thread returned
  int request_fd_ = -1;   // eventfd: the admin thread posted a request
  SocketAddress listen_;  // what the first bind of the first listener got
  std::vector<std::unique_ptr<Slot>> slots_;
  std::shared_ptr<const Topology> current_;
  TopologyLoader loader_;
  std::vector<OpenBind> binds_;
  std::vector<ActivatedSocket> activated_;  // owned: dup'ed to workers, kept across reloads
  std::unique_ptr<HealthChecker> checker_;
  std::unique_ptr<MetricsServer> metrics_;  // global.metrics set: the Prometheus endpoint
  // The access log's writer: its rings outlive the workers (declared before slots_' users are
  // joined: stopped explicitly once they are).
  std::unique_ptr<AccessLogWriter> access_log_;
  NotifyClient notify_;
  std::atomic<uint64_t> reloads_{0};
  std::atomic<uint64_t> reload_failures_{0};
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  // Guards current_ against readers on other threads; the supervisor thread, its only writer,
  // reads it without the lock.
  mutable std::mutex topology_mutex_;
  std::mutex mutex_;
  std::condition_variable ready_cv_;  // a worker became ready (or failed)
  std::condition_variable go_cv_;     // go_ or abort_ was set
  bool go_ = false;
  bool abort_ = false;
  bool stopping_now_ = false;
  bool stopping_ = false;     // TERM, INT or QUIT seen: no more reloads
  std::string reload_error_;  // why the last reload failed (supervisor thread)
  // The admin socket, started after the workers and stopped before run() returns; and the one
  // request it may have posted, guarded by request_mutex_.
  std::unique_ptr<AdminServer> admin_;
  std::atomic<const AdminServer*> admin_live_{nullptr};  // admin_, for other threads
  std::mutex request_mutex_;
  std::condition_variable request_cv_;
  const SupervisorRequest* request_ = nullptr;  // posted, not yet taken
  bool request_done_ = false;
  bool requests_closed_ = false;
  std::string request_result_;
};

}  // namespace edgeproxy
