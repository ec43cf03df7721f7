// Supervisor: the process's main thread once start-up is done. It starts the workers (one thread
// each, pinned when asked), turns signals into worker requests, and reports statistics merged
// across workers and per worker. Each worker creates its own Worker on its own thread, so its
// memory is first touched on the CPU that uses it and an io_uring ring is enabled by its single
// issuer. Workers share nothing; the supervisor only talks to them through WorkerControl.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "edgeproxy/config.h"
#include "edgeproxy/net.h"
#include "edgeproxy/result.h"
#include "edgeproxy/stats.h"
#include "edgeproxy/worker.h"
#include "edgeproxy/worker_control.h"

namespace edgeproxy {

// How many workers run, and where.
struct WorkerPlan {
  uint32_t workers = 1;
  std::vector<uint16_t> cpus;  // empty (not pinned) or one CPU per worker
};

// Resolves --workers (auto = one per CPU of `allowed`, or per --cpu-list entry) and --cpu-list
// (every CPU must be in `allowed`, the process's inherited affinity mask) against the per-process
// --max-connections and --buffers, which must leave each worker at least 1 connection and 2
// buffers. Pure: `allowed` comes from sched_getaffinity.
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

class Supervisor {
 public:
  // Opens the signalfd (the caller blocked supervised_signals() before any thread existed) and
  // starts the workers in two phases: one by one, each creates its Worker and readies its
  // reactor on its own thread (the first binds the listening address, port 0 picking a port, the
  // others bind the port it got); only when all are ready are they let run. So a failure leaves
  // no connection accepted and no other line printed: the error is the one line, naming the
  // worker when there are several. With several workers the address is first probed without
  // SO_REUSEPORT, so a port already in use is reported as such rather than silently shared.
  static Result<std::unique_ptr<Supervisor>> start(const WorkerPlan& plan, const Config& config,
                                                   const SocketAddress& listen,
                                                   const std::vector<SocketAddress>& backend);

  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  // Stops (at once) and joins workers still running.
  ~Supervisor();

  // Serves signals until every worker has returned: TERM/INT and QUIT are forwarded to every
  // worker, USR1 prints statistics, any other of supervised_signals() is logged (one line each
  // time) and ignored. A worker that fails stops the others. Returns the exit status: 0, or the
  // first failed worker's.
  int run() noexcept;

  const SocketAddress& listen_address() const noexcept { return listen_; }
  uint32_t workers() const noexcept { return static_cast<uint32_t>(slots_.size()); }

  // Merged and per-worker statistics in one block (per-worker lines only with several workers).
  // While workers run, each is asked for a snapshot; afterwards their final counters are read.
  // A running worker that does not answer within 2 s is left out of the sums and its lines, and
  // the block's header names it (Stats::print_report).
  void print_stats(std::FILE* out);

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
    SocketAddress bound;
    int status = 0;
    Stats final_stats;  // written before `exited` is set
    std::atomic<bool> exited{false};
  };

  Supervisor(int signal_fd, int exit_fd) noexcept : signal_fd_(signal_fd), exit_fd_(exit_fd) {}
  static void* thread_main(void* arg) noexcept;
  Result<Ok> start_worker(Slot& slot);
  void release_workers(bool go) noexcept;
  void stop_all_now() noexcept;
  void join_all() noexcept;
  void on_signals() noexcept;

  int signal_fd_;
  int exit_fd_;           // eventfd: a worker's thread returned
  SocketAddress listen_;  // what the first worker bound
  std::vector<std::unique_ptr<Slot>> slots_;
  std::mutex mutex_;
  std::condition_variable ready_cv_;  // a worker became ready (or failed)
  std::condition_variable go_cv_;     // go_ or abort_ was set
  bool go_ = false;
  bool abort_ = false;
  bool stopping_now_ = false;
};

}  // namespace edgeproxy
