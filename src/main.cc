// edgeproxy entry point: parse the command line, load the topology (from -c FILE or from the
// command line) and resolve its addresses, check it (-t), fit the connection cap to the
// open-file limit, plan the workers against the CPU set, block the signals the supervisor reads
// from its signalfd (supervised_signals()), run, report.
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "edgeproxy/command_line.h"
#include "edgeproxy/config.h"
#include "edgeproxy/log.h"
#include "edgeproxy/net.h"
#include "edgeproxy/reactor.h"
#include "edgeproxy/socket_activation.h"
#include "edgeproxy/stats_json.h"
#include "edgeproxy/supervisor.h"
#include "edgeproxy/topology.h"
#include "edgeproxy/topology_parser.h"

namespace {

using edgeproxy::Config;

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

// Resolves names and links fresh runtime state: what both the first load and a reload do after
// the pure parse.
edgeproxy::Result<std::shared_ptr<edgeproxy::Topology>> complete(
    edgeproxy::Topology topology, const edgeproxy::Topology* previous) {
  if (auto r = edgeproxy::resolve_topology(topology); !r.ok()) return edgeproxy::Error{r.error()};
  edgeproxy::adopt_runtime(topology, previous);
  return std::make_shared<edgeproxy::Topology>(std::move(topology));
}

// --stats-file: the final statistics as JSON, written next to PATH then renamed over it, so a
// reader never sees half a file. False (after one error line) when it could not be written.
bool write_stats_file(const std::string& path, edgeproxy::Supervisor& supervisor) {
  const std::string json = edgeproxy::render_stats_json(supervisor.snapshot()) + "\n";
  const std::string temporary = path + ".tmp";
  std::FILE* f = std::fopen(temporary.c_str(), "w");
  bool ok = f != nullptr && std::fwrite(json.data(), 1, json.size(), f) == json.size();
  if (f != nullptr) ok = std::fclose(f) == 0 && ok;
  ok = ok && std::rename(temporary.c_str(), path.c_str()) == 0;
  if (!ok) {
    edgeproxy::log_error("--stats-file %s: cannot write it: %s", path.c_str(),
                         std::strerror(errno));
    std::remove(temporary.c_str());
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = edgeproxy::parse_command_line(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "edgeproxy: %s\n", parsed.error().c_str());
    return kUsageExit;
  }
  const edgeproxy::CommandLine command_line = parsed.value();
  if (command_line.show_help) {
    std::fputs(edgeproxy::usage().c_str(), stdout);
    return 0;
  }
  if (command_line.show_version) {
    std::printf("edgeproxy %s (backend %s)\n", EDGEPROXY_VERSION, edgeproxy::Reactor::kName);
    return 0;
  }
  edgeproxy::set_log_level(command_line.config.log_level);
  const bool from_file = !command_line.config_file.empty();
  const std::string source =
      from_file ? "configuration file " + command_line.config_file : std::string("command line");
  auto parsed_topology = from_file
                             ? edgeproxy::load_topology(command_line.config_file, command_line)
                             : edgeproxy::topology_from_command_line(command_line);
  // -t: one line, exit 0 or 1, like nginx -t.
  auto check_failed = [&](const std::string& why) {
    std::fprintf(stderr, "edgeproxy: %s test failed: %s\n", source.c_str(), why.c_str());
    return kStartupExit;
  };
  if (!parsed_topology.ok()) {
    if (command_line.check_only) return check_failed(parsed_topology.error());
    std::fprintf(stderr, "edgeproxy: %s\n", parsed_topology.error().c_str());
    return kUsageExit;
  }
  auto loaded = complete(std::move(parsed_topology.value()), nullptr);
  if (!loaded.ok()) {
    if (command_line.check_only) return check_failed(loaded.error());
    edgeproxy::log_error("%s", loaded.error().c_str());
    return kStartupExit;
  }
  std::shared_ptr<edgeproxy::Topology> topology = loaded.value();
  Config& config = topology->global;
  edgeproxy::set_log_level(config.log_level);  // the file's, unless -v/-q/--log-level overrode it
  for (const std::string& w : topology->warnings) edgeproxy::log_warn("%s", w.c_str());
  if (config.batch_wait_given && config.batch_wait_us != 0 && !edgeproxy::Reactor::kBatchWait) {
    if (command_line.check_only) {
      return check_failed(std::string("batch-wait: the ") + edgeproxy::Reactor::kName +
                          " backend cannot batch completions (only 0)");
    }
    std::fprintf(stderr,
                 "edgeproxy: --batch-wait: the %s backend cannot batch completions (only 0)\n",
                 edgeproxy::Reactor::kName);
    return kUsageExit;
  }
  const auto cpus = allowed_cpus();
  if (!cpus.ok()) {
    edgeproxy::log_error("%s", cpus.error().c_str());
    return kStartupExit;
  }
  auto plan = edgeproxy::plan_workers(config, cpus.value());
  if (!plan.ok()) {
    if (command_line.check_only) return check_failed(plan.error());
    edgeproxy::log_error("%s", plan.error().c_str());
    return kStartupExit;
  }
  if (command_line.check_only) {
    std::printf("edgeproxy: %s test is successful\n", source.c_str());
    return 0;
  }
  const Config loaded_global = config;  // as written: what a reload compares with
  if (!fit_open_file_limit(config, plan.value().workers)) return kStartupExit;

  auto activated = edgeproxy::take_activated_sockets();
  if (!activated.ok()) {
    edgeproxy::log_error("%s", activated.error().c_str());
    return kStartupExit;
  }

  // A peer that closes while we write must give EPIPE, never kill the process.
  signal(SIGPIPE, SIG_IGN);
  // Blocked before any thread exists, so they are only ever delivered through the signalfd.
  const sigset_t supervised = edgeproxy::supervised_signals();
  sigprocmask(SIG_BLOCK, &supervised, nullptr);

  // A reload reads the file again with the same command-line overrides. Settings that size the
  // process keep their running values (the supervisor puts them back), with one warning.
  edgeproxy::Supervisor* running = nullptr;
  edgeproxy::TopologyLoader reload;
  if (from_file) {
    reload = [&command_line, &running,
              loaded_global]() -> edgeproxy::Result<std::shared_ptr<edgeproxy::Topology>> {
      auto next = edgeproxy::load_topology(command_line.config_file, command_line);
      if (!next.ok()) return edgeproxy::Error{next.error()};
      if (const std::string changed =
              edgeproxy::restart_settings_changed(loaded_global, next.value().global);
          !changed.empty()) {
        edgeproxy::log_warn("reload: %s changed; they need a restart, the running values stay",
                            changed.c_str());
      }
      return complete(std::move(next.value()), running->topology().get());
    };
  }
  auto supervisor =
      edgeproxy::Supervisor::start(plan.value(), topology, reload, std::move(activated.value()));
  if (!supervisor.ok()) {
    edgeproxy::log_error("%s", supervisor.error().c_str());
    return kStartupExit;
  }
  running = supervisor.value().get();
  const std::string pinned = plan.value().cpus.empty()
                                 ? std::string("not pinned")
                                 : "on CPUs " + edgeproxy::format_cpu_list(plan.value().cpus);
  if (from_file) {
    edgeproxy::log_info(
        "listening on %s; %zu backend(s), %zu server(s); %s backend, %u worker(s) %s, max %u "
        "connections, %u buffers",
        running->describe_listeners().c_str(), topology->backends.size(), topology->server_count(),
        edgeproxy::Reactor::kName, plan.value().workers, pinned.c_str(), config.max_connections,
        config.buffer_count());
  } else {
    std::string backends;
    for (const edgeproxy::SocketAddress& a : topology->backends.front().servers.front().addresses) {
      backends += (backends.empty() ? "" : " or ") + a.to_string();
    }
    edgeproxy::log_info(
        "listening on %s, backend %s, %s backend, %u worker(s) %s, max %u connections, %u buffers",
        running->listen_address().to_string().c_str(), backends.c_str(), edgeproxy::Reactor::kName,
        plan.value().workers, pinned.c_str(), config.max_connections, config.buffer_count());
  }
  const int status = running->run();
  // A failed start said its one line; -q prints nothing but errors (SIGUSR1 still reports).
  if (status == 0 && edgeproxy::log_level() != edgeproxy::LogLevel::kQuiet) {
    running->print_stats(stderr, edgeproxy::log_level() == edgeproxy::LogLevel::kVerbose);
  }
  if (!config.stats_file.empty() && !write_stats_file(config.stats_file, *running)) {
    return status != 0 ? status : kStartupExit;
  }
  return status;
}
