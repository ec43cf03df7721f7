// edgeproxy entry point: parse the command line, build the topology (from the flags or -c FILE)
// and resolve it (-t stops here), fit the connection cap to the open-file limit, plan the workers
// against the CPU set, block the signals the supervisor reads from its signalfd
// (supervised_signals()), run, report.
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "edgeproxy/command_line.h"
#include "edgeproxy/config.h"
#include "edgeproxy/log.h"
#include "edgeproxy/net.h"
#include "edgeproxy/options.h"
#include "edgeproxy/reactor.h"
#include "edgeproxy/supervisor.h"
#include "edgeproxy/topology.h"
#include "edgeproxy/topology_parser.h"

namespace {

using edgeproxy::Config;
using edgeproxy::Ok;

constexpr int kUsageExit = 2;
constexpr int kStartupExit = 1;
// Descriptors that are not connections: stdio, signalfd, eventfds, and headroom; per worker a
// reactor, a listener and a control eventfd.
constexpr rlim_t kReservedFds = 16;
constexpr rlim_t kFdsPerWorker = 4;

// The CPUs this process may run on (its inherited affinity mask: taskset, numactl, cgroups).
// The mask is sized at run time: a fixed cpu_set_t is refused (EINVAL) above 1024 CPUs.
edgeproxy::Result<std::vector<uint16_t>> allowed_cpus() {
  for (size_t count = CPU_SETSIZE; count <= (size_t{1} << 16); count *= 2) {
    cpu_set_t* set = CPU_ALLOC(count);
    if (set == nullptr) break;
    const size_t size = CPU_ALLOC_SIZE(count);
    CPU_ZERO_S(size, set);
    if (sched_getaffinity(0, size, set) != 0) {
      const int err = errno;
      CPU_FREE(set);
      if (err == EINVAL) continue;
      return edgeproxy::Error{std::string("cannot read the CPU affinity mask: ") +
                              std::strerror(err)};
    }
    std::vector<uint16_t> cpus;
    for (size_t cpu = 0; cpu < count && cpu <= UINT16_MAX; ++cpu) {
      if (CPU_ISSET_S(cpu, size, set)) cpus.push_back(static_cast<uint16_t>(cpu));
    }
    CPU_FREE(set);
    return cpus;
  }
  return edgeproxy::Error{"cannot read the CPU affinity mask: too many CPUs"};
}

// Descriptors the process needs: two per connection, two per splice pipe (created at start-up),
// and the reserve.
rlim_t descriptors_needed(const Config& config, uint32_t workers) {
  rlim_t need = kReservedFds + rlim_t{workers} * kFdsPerWorker + rlim_t{config.max_connections} * 2;
  for (uint32_t i = 0; i < workers; ++i) {
    need += rlim_t{edgeproxy::worker_share(config, workers, i).pipe_count()} * 2;
  }
  return need;
}

// Raises the soft open-file limit toward the hard one as far as the cap needs; if that is still
// short, lowers the cap (and a default pool and pipe count with it) with one warning line.
bool fit_open_file_limit(Config& config, uint32_t workers) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return true;
  const rlim_t need = descriptors_needed(config, workers);
  if (rl.rlim_cur < need) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : std::min(need, rl.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  if (rl.rlim_cur >= need) return true;
  Config fitted = config;
  fitted.max_connections = workers;  // the least that can run: one connection per worker
  if (descriptors_needed(fitted, workers) > rl.rlim_cur) {
    edgeproxy::log_error("open-file limit %llu is too low: at least %llu descriptors are needed",
                         static_cast<unsigned long long>(rl.rlim_cur),
                         static_cast<unsigned long long>(descriptors_needed(fitted, workers)));
    return false;
  }
  // The largest cap that fits (the need grows with the cap).
  uint32_t lo = workers;
  uint32_t hi = config.max_connections;
  while (lo < hi) {
    fitted.max_connections = lo + (hi - lo + 1) / 2;
    if (descriptors_needed(fitted, workers) <= rl.rlim_cur) {
      lo = fitted.max_connections;
    } else {
      hi = fitted.max_connections - 1;
    }
  }
  edgeproxy::log_warn(
      "open-file limit %llu allows %u connections: --max-connections lowered from %u",
      static_cast<unsigned long long>(rl.rlim_cur), lo, config.max_connections);
  config.max_connections = lo;
  return true;
}

// Until the worker serves a Topology, it serves one listener with one TCP bind and one backend
// with one TCP server (every address of its name, in turn), as the command line describes. The
// listener's idle timeout and the backend's connect timeout travel in Config meanwhile.
edgeproxy::Result<Ok> fit_single_listener(const edgeproxy::Topology& t, Config& config) {
  const bool single = t.listeners.size() == 1 && t.listeners[0].binds.size() == 1 &&
                      !t.listeners[0].binds[0].is_unix() &&
                      t.backends[t.listeners[0].backend].servers.size() == 1 &&
                      !t.backends[t.listeners[0].backend].servers[0].endpoint.is_unix();
  if (!single) {
    return edgeproxy::Error{t.source +
                            ": serving more than one listener, bind or server, or a unix: "
                            "address, is not wired into the workers yet (-t checks it)"};
  }
  config = t.global;
  config.idle_timeout_s = t.listeners[0].idle_timeout_s;
  config.connect_timeout_ms = t.backends[t.listeners[0].backend].connect_timeout_ms;
  return Ok{};
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = edgeproxy::parse_command_line(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "edgeproxy: %s\n", parsed.error().c_str());
    return kUsageExit;
  }
  const edgeproxy::CommandLine& cl = parsed.value();
  if (cl.show_help) {
    std::fputs(edgeproxy::usage().c_str(), stdout);
    return 0;
  }
  if (cl.show_version) {
    std::printf("edgeproxy %s (backend %s)\n", EDGEPROXY_VERSION, edgeproxy::Reactor::kName);
    return 0;
  }
  auto topology = cl.config_file.empty() ? edgeproxy::topology_from_command_line(cl)
                                         : edgeproxy::load_topology(cl.config_file, cl);
  if (!topology.ok()) {
    std::fprintf(stderr, "edgeproxy: %s\n", topology.error().c_str());
    return kUsageExit;
  }
  edgeproxy::Topology& t = topology.value();
  Config config = t.global;
  edgeproxy::set_log_level(config.log_level);
  if (config.batch_wait_given && config.batch_wait_us != 0 && !edgeproxy::Reactor::kBatchWait) {
    std::fprintf(stderr,
                 "edgeproxy: --batch-wait: the %s backend cannot batch completions (only 0)\n",
                 edgeproxy::Reactor::kName);
    return kUsageExit;
  }
  for (const std::string& warning : t.warnings) edgeproxy::log_warn("%s", warning.c_str());
  if (auto resolved = edgeproxy::resolve_topology(t); !resolved.ok()) {
    edgeproxy::log_error("%s", resolved.error().c_str());
    return kStartupExit;
  }
  if (cl.check_only) {
    std::printf("edgeproxy: %s: configuration ok\n", t.source.c_str());
    return 0;
  }
  if (auto fits = fit_single_listener(t, config); !fits.ok()) {
    edgeproxy::log_error("%s", fits.error().c_str());
    return kStartupExit;
  }
  const edgeproxy::SocketAddress listen = t.listeners[0].addresses[0];
  const std::vector<edgeproxy::SocketAddress>& backend =
      t.backends[t.listeners[0].backend].servers[0].addresses;
  const auto cpus = allowed_cpus();
  if (!cpus.ok()) {
    edgeproxy::log_error("%s", cpus.error().c_str());
    return kStartupExit;
  }
  auto plan = edgeproxy::plan_workers(config, cpus.value());
  if (!plan.ok()) {
    edgeproxy::log_error("%s", plan.error().c_str());
    return kStartupExit;
  }
  if (!fit_open_file_limit(config, plan.value().workers)) return kStartupExit;

  // A peer that closes while we write must give EPIPE, never kill the process.
  signal(SIGPIPE, SIG_IGN);
  // Blocked before any thread exists, so they are only ever delivered through the signalfd.
  const sigset_t supervised = edgeproxy::supervised_signals();
  sigprocmask(SIG_BLOCK, &supervised, nullptr);

  auto supervisor = edgeproxy::Supervisor::start(plan.value(), config, listen, backend);
  if (!supervisor.ok()) {
    edgeproxy::log_error("%s", supervisor.error().c_str());
    return kStartupExit;
  }
  std::string backends;
  for (const edgeproxy::SocketAddress& a : backend) {
    backends += (backends.empty() ? "" : " or ") + a.to_string();
  }
  const std::string pinned = plan.value().cpus.empty()
                                 ? std::string("not pinned")
                                 : "on CPUs " + edgeproxy::format_cpu_list(plan.value().cpus);
  edgeproxy::log_info(
      "listening on %s, backend %s, %s backend, %u worker(s) %s, max %u connections, %u buffers",
      supervisor.value()->listen_address().to_string().c_str(), backends.c_str(),
      edgeproxy::Reactor::kName, plan.value().workers, pinned.c_str(), config.max_connections,
      config.buffer_count());
  const int status = supervisor.value()->run();
  if (status == 0) supervisor.value()->print_stats(stderr);  // a failed start said its one line
  return status;
}
