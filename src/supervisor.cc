// Worker threads, signals and statistics; see supervisor.h.
#include "edgeproxy/supervisor.h"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "edgeproxy/listener.h"
#include "edgeproxy/log.h"
#include "edgeproxy/prometheus.h"
#include "edgeproxy/server_health.h"

namespace edgeproxy {
namespace {

constexpr int kReportTimeoutMs = 2000;  // for all workers: each answers between two iterations

Result<int> open_signal_fd() {
  const sigset_t set = supervised_signals();
  const int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return Error{std::string("signalfd: ") + std::strerror(errno)};
  return fd;
}

// "SIGHUP", "SIGRTMIN+3": the name a user would give kill(1).
std::string signal_name(int signo) {
  if (signo == SIGRTMAX) return "SIGRTMAX";
  if (signo == SIGRTMIN) return "SIGRTMIN";
  if (signo > SIGRTMIN && signo < SIGRTMAX) return "SIGRTMIN+" + std::to_string(signo - SIGRTMIN);
  const char* abbrev = sigabbrev_np(signo);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(signo);
}

// One line for a signal that is ignored, naming its sender when a process sent it.
void log_ignored(const signalfd_siginfo& info) {
  const std::string name = signal_name(static_cast<int>(info.ssi_signo));
  const std::string sender =
      info.ssi_pid != 0 ? " (sent by pid " + std::to_string(info.ssi_pid) + ")" : std::string();
  if (info.ssi_signo == SIGHUP) {
    log_warn(
        "%s ignored%s: nothing to reload, the command line is read once at start-up (HUP "
        "reloads the configuration file given with -c)",
        name.c_str(), sender.c_str());
  } else {
    log_warn("%s ignored%s: edgeproxy acts on TERM, INT, QUIT, HUP, USR1 and USR2 only",
             name.c_str(), sender.c_str());
  }
}

}  // namespace

sigset_t supervised_signals() noexcept {
  sigset_t set;
  sigemptyset(&set);
  for (const int s : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGHUP, SIGUSR2, SIGALRM, SIGVTALRM,
                      SIGPROF, SIGIO, SIGPWR, SIGXCPU, SIGXFSZ}) {
    sigaddset(&set, s);
  }
#ifdef SIGSTKFLT
  sigaddset(&set, SIGSTKFLT);  // not on every architecture
#endif
  // glibc's SIGRTMIN is above the real-time signals NPTL keeps for itself (cancellation, setxid).
  for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) sigaddset(&set, s);
  return set;
}

Result<WorkerPlan> plan_workers(const Config& config, std::span<const uint16_t> allowed) {
  WorkerPlan plan;
  if (!config.cpu_list.empty()) {
    for (const uint16_t cpu : config.cpu_list) {
      if (std::find(allowed.begin(), allowed.end(), cpu) == allowed.end()) {
        return Error{"--cpu-list: CPU " + std::to_string(cpu) +
                     " is not in this process's CPU set (" + format_cpu_list(allowed) + ")"};
      }
    }
  }
  if (config.workers != 0) {
    plan.workers = config.workers;
  } else if (!config.cpu_list.empty()) {
    plan.workers = static_cast<uint32_t>(config.cpu_list.size());
  } else {
    plan.workers = std::max<uint32_t>(1, static_cast<uint32_t>(allowed.size()));
  }
  const uint64_t cap = uint64_t{kWorkersPerCpu} * std::max<size_t>(allowed.size(), 1);
  if (plan.workers > cap) {
    return Error{"--workers " + std::to_string(plan.workers) + ": this process may run on " +
                 std::to_string(allowed.size()) + " CPU(s) (" + format_cpu_list(allowed) +
                 "); at most " + std::to_string(kWorkersPerCpu) + " workers per CPU (" +
                 std::to_string(cap) + ")"};
  }
  for (uint32_t i = 0; i < plan.workers && !config.cpu_list.empty(); ++i) {
    plan.cpus.push_back(config.cpu_list[i % config.cpu_list.size()]);
  }
  if (config.max_connections < plan.workers) {
    return Error{"--max-connections " + std::to_string(config.max_connections) +
                 " is less than the number of workers (" + std::to_string(plan.workers) +
                 "): each worker needs at least one"};
  }
  if (config.buffer_count() < 2 * plan.workers) {
    return Error{"--buffers " + std::to_string(config.buffer_count()) +
                 " is less than 2 per worker (" + std::to_string(plan.workers) + " workers)"};
  }
  return plan;
}

Config worker_share(const Config& config, uint32_t workers, uint32_t index) {
  auto share = [&](uint32_t total) { return total / workers + (index < total % workers ? 1 : 0); };
  Config c = config;
  c.buffers = share(config.buffer_count());
  c.max_connections = share(config.max_connections);
  // An explicit pipe count is divided too, at least one each (0 would mean the default).
  if (config.splice_pipes != 0) c.splice_pipes = std::max<uint32_t>(1, share(config.splice_pipes));
  return c;
}

std::string format_cpu_list(std::span<const uint16_t> cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += "-" + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

std::string restart_settings_changed(const Config& running, const Config& loaded) {
  std::string names;
  auto check = [&](bool same, const char* name) {
    if (same) return;
    names += names.empty() ? "" : ", ";
    names += name;
  };
  check(running.workers == loaded.workers, "workers");
  check(running.cpu_list == loaded.cpu_list, "cpu-list");
  check(running.max_connections == loaded.max_connections, "max-connections");
  check(running.buffers == loaded.buffers, "buffers");
  check(running.backlog == loaded.backlog, "backlog");
  check(running.no_delay == loaded.no_delay, "no-delay");
  check(running.splice == loaded.splice, "splice");
  check(running.splice_threshold_bytes == loaded.splice_threshold_bytes, "splice-threshold");
  check(running.splice_pipes == loaded.splice_pipes, "splice-pipes");
  check(running.batch_wait_us == loaded.batch_wait_us, "batch-wait");
  check(running.shutdown_timeout_s == loaded.shutdown_timeout_s, "shutdown-timeout");
  check(running.metrics == loaded.metrics, "metrics");
  check(running.log_level == loaded.log_level, "log-level");
  check(running.admin == loaded.admin, "admin");
  return names;
}

Result<std::unique_ptr<Supervisor>> Supervisor::start(const WorkerPlan& plan,
                                                      std::shared_ptr<Topology> topology,
                                                      TopologyLoader reload,
                                                      std::vector<ActivatedSocket> activated) {
  auto sfd = open_signal_fd();
  if (!sfd.ok()) return Error{sfd.error()};
  const int exit_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (exit_fd < 0) {
    sys::close(sfd.value());
    return Error{std::string("eventfd: ") + std::strerror(errno)};
  }
  std::unique_ptr<Supervisor> s(new Supervisor(sfd.value(), exit_fd));
  s->request_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->request_fd_ < 0) return Error{std::string("eventfd: ") + std::strerror(errno)};
  s->loader_ = std::move(reload);
  s->activated_ = std::move(activated);
  s->notify_ = NotifyClient::from_environment();
  topology->epoch = 1;
  auto opened = s->open_listeners(*topology, plan.workers);
  if (!opened.ok()) return Error{opened.error()};
  s->binds_ = std::move(opened.value().binds);
  if (!s->activated_.empty()) {
    std::vector<int> used;
    for (const OpenBind& b : s->binds_) {
      if (b.activated >= 0) used.push_back(b.activated);
    }
    warn_unused_activated(s->activated_, used);
  }
  if (!s->binds_.empty()) s->listen_ = s->binds_.front().bound;
  s->current_ = std::move(topology);
  auto writer = AccessLogWriter::start(plan.workers, s->current_->global.access_log);
  if (!writer.ok()) {
    close_plans(opened.value());
    return Error{writer.error()};
  }
  s->access_log_ = std::move(writer.value());
  for (uint32_t i = 0; i < plan.workers; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->owner = s.get();
    slot->index = i;
    slot->options.config = worker_share(s->current_->global, plan.workers, i);
    slot->options.topology = s->current_;
    slot->options.id = i;
    slot->options.access_log = s->access_log_->ring(i);
    slot->cpu = plan.cpus.empty() ? -1 : plan.cpus[i];
    auto control = WorkerControl::create();
    if (!control.ok()) {
      close_plans(opened.value());
      return Error{control.error()};  // the destructor stops the others
    }
    slot->options.listeners = std::move(opened.value().plans[i]);
    slot->control = std::move(control.value());
    slot->options.control = slot->control.get();
    s->slots_.push_back(std::move(slot));
    if (auto r = s->start_worker(*s->slots_.back()); !r.ok()) {
      close_plans(opened.value());
      s->release_workers(false);  // the destructor joins them: none has run
      if (plan.workers == 1) return Error{r.error()};
      return Error{"worker " + std::to_string(i) + ": " + r.error()};
    }
  }
  auto checker = HealthChecker::start(s->current_);
  if (!checker.ok()) {
    s->release_workers(false);
    return Error{checker.error()};
  }
  s->checker_ = std::move(checker.value());
  if (s->current_->metrics_address.length != 0) {
    // Started once slots_ is complete: the metrics thread reads it through snapshot().
    Supervisor* self = s.get();
    auto metrics = MetricsServer::start(s->current_->metrics_address,
                                        [self] { return render_prometheus(self->snapshot()); });
    if (!metrics.ok()) {
      s->release_workers(false);
      return Error{metrics.error()};
    }
    s->metrics_ = std::move(metrics.value());
    log_info("metrics on http://%s/metrics", s->metrics_->address().to_string().c_str());
  }
  s->release_workers(true);
  if (s->current_->global.admin.enabled()) {
    auto admin = AdminServer::start(s->current_->global.admin, *s);
    if (!admin.ok()) return Error{admin.error()};  // the destructor stops the workers
    s->admin_ = std::move(admin.value());
    s->admin_live_.store(s->admin_.get(), std::memory_order_release);
  }
  s->notify_.ready(s->status_line());
  return s;
}

void Supervisor::close_plans(OpenedListeners& opened) noexcept {
  for (auto& plan : opened.plans) {
    for (ListenerPlan& p : plan) {
      if (p.fd >= 0) sys::close(std::exchange(p.fd, -1));
    }
  }
  for (const std::string& path : opened.unix_files) ::unlink(path.c_str());
  opened.unix_files.clear();
}

void Supervisor::remove_unix_files(const std::vector<OpenBind>& before) const noexcept {
  for (const OpenBind& b : before) {
    if (b.configured.family() != AF_UNIX || b.activated >= 0) continue;
    const bool still = std::any_of(binds_.begin(), binds_.end(), [&](const OpenBind& now) {
      return now.configured == b.configured;
    });
    if (still) continue;
    const auto* un = reinterpret_cast<const sockaddr_un*>(&b.configured.storage);
    ::unlink(un->sun_path);
  }
}

Result<Supervisor::OpenedListeners> Supervisor::open_listeners(const Topology& t,
                                                               uint32_t workers) {
  OpenedListeners out;
  out.plans.resize(workers);
  auto fail = [&](const std::string& error) -> Result<OpenedListeners> {
    close_plans(out);
    return Error{error};
  };
  // Every worker gets `fd` itself (worker 0) or a duplicate of it.
  auto share = [&](uint32_t li, uint32_t bi, const SocketAddress& configured, int fd) -> bool {
    for (uint32_t w = 0; w < workers; ++w) {
      const int mine = w == 0 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (mine < 0) return false;
      out.plans[w].push_back(ListenerPlan{li, bi, t.listeners[li].name, configured, mine});
    }
    return true;
  };
  auto find_kept = [&](const SocketAddress& configured) {
    return std::find_if(binds_.begin(), binds_.end(),
                        [&](const OpenBind& b) { return b.configured == configured; });
  };
  // Activated sockets given to a bind of this version: those kept first, so a new bind is never
  // matched to a socket a kept bind already serves.
  std::vector<int> used;
  for (const ListenerSpec& ls : t.listeners) {
    for (const SocketAddress& configured : ls.addresses) {
      const auto kept = find_kept(configured);
      if (kept != binds_.end() && kept->activated >= 0) used.push_back(kept->activated);
    }
  }
  for (uint32_t li = 0; li < t.listeners.size(); ++li) {
    const ListenerSpec& ls = t.listeners[li];
    const std::string what = "listener " + ls.name;
    for (uint32_t bi = 0; bi < ls.addresses.size(); ++bi) {
      const SocketAddress& configured = ls.addresses[bi];
      const auto kept = find_kept(configured);
      if (kept != binds_.end()) {
        for (uint32_t w = 0; w < workers; ++w) {
          out.plans[w].push_back(ListenerPlan{li, bi, ls.name, configured, -1});
        }
        out.binds.push_back(*kept);
        out.binds.back().name = ls.name;
        continue;
      }
      const int passed = match_activated(activated_, ls.name, configured, used);
      if (passed >= 0) {
        used.push_back(passed);
        const int fd = fcntl(activated_[static_cast<size_t>(passed)].fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0 || !share(li, bi, configured, fd)) {
          return fail(what + ": cannot share the socket systemd passed: " + std::strerror(errno));
        }
        out.binds.push_back(
            OpenBind{ls.name, configured, activated_[static_cast<size_t>(passed)].address, passed});
        continue;
      }
      if (configured.family() == AF_UNIX || workers == 1) {
        auto l = Listener::open(configured, t.global.backlog, false, ls.unix_mode, what);
        if (!l.ok()) return fail(l.error());
        const SocketAddress bound = l.value().address();
        if (configured.family() == AF_UNIX) {
          out.unix_files.emplace_back(
              reinterpret_cast<const sockaddr_un*>(&configured.storage)->sun_path);
        }
        if (!share(li, bi, configured, l.value().release())) {
          return fail(what + ": cannot share its socket: " + std::strerror(errno));
        }
        out.binds.push_back(OpenBind{ls.name, configured, bound});
        continue;
      }
      if (configured.port() != 0) {
        // Sockets that all set SO_REUSEPORT share a port; one without it cannot bind a port in
        // use, so a port taken by another program is reported as such, not silently shared.
        auto probe = Listener::open(configured, 1, false, 0, what);
        if (!probe.ok()) return fail(probe.error());
      }
      SocketAddress at = configured;
      for (uint32_t w = 0; w < workers; ++w) {
        auto l = Listener::open(at, t.global.backlog, true, 0, what);
        if (!l.ok()) return fail(l.error());
        // Port 0: the first socket got a port, the others join it.
        if (w == 0) at = l.value().address();
        out.plans[w].push_back(ListenerPlan{li, bi, ls.name, configured, l.value().release()});
      }
      out.binds.push_back(OpenBind{ls.name, configured, at});
    }
  }
  return out;
}

bool Supervisor::reload() {
  if (!loader_) {
    log_warn("SIGHUP ignored: started from the command line, there is no file to reload");
    return false;
  }
  if (stopping_) {
    // Workers draining would never take new sockets: they would queue connections unserved.
    log_warn("SIGHUP ignored: shutting down");
    return false;
  }
  notify_.reloading();
  auto failed = [&](const std::string& why) {
    reload_error_ = why;
    ++reload_failures_;
    log_error("reload failed, the running configuration stays (epoch %llu): %s",
              static_cast<unsigned long long>(current_->epoch), why.c_str());
    notify_.ready("reload refused: " + why);
    return false;
  };
  using Clock = std::chrono::steady_clock;
  auto ms_between = [](Clock::time_point from, Clock::time_point to) {
    return std::chrono::duration<double, std::milli>(to - from).count();
  };
  const Clock::time_point began = Clock::now();
  auto loaded = loader_();
  if (!loaded.ok()) return failed(loaded.error());
  std::shared_ptr<Topology> next = std::move(loaded.value());
  for (const std::string& w : next->warnings) log_warn("%s", w.c_str());
  // The loader said which process-wide settings changed; the running ones stay, but for the
  // access log's destination and format, which a reload may change.
  const Config loaded_global = next->global;
  next->global = current_->global;
  next->global.access_log = loaded_global.access_log;
  next->global.access_log_format = loaded_global.access_log_format;
  const Clock::time_point parsed = Clock::now();
  if (next->global.access_log != current_->global.access_log) {
    if (auto r = access_log_->set_destination(next->global.access_log); !r.ok()) {
      return failed(r.error());
    }
  }
  auto opened = open_listeners(*next, static_cast<uint32_t>(slots_.size()));
  if (!opened.ok()) {
    if (next->global.access_log != current_->global.access_log) {
      [[maybe_unused]] auto back = access_log_->set_destination(current_->global.access_log);
    }
    return failed(opened.error());
  }
  next->epoch = current_->epoch + 1;
  std::vector<std::vector<Balancer>> balancers;
  for (size_t i = 0; i < slots_.size(); ++i) {
    balancers.push_back(
        build_balancers(*next, Worker::worker_seed(static_cast<uint32_t>(i), next->epoch)));
  }
  const Clock::time_point prepared = Clock::now();
  {
    std::lock_guard lock(topology_mutex_);
    current_ = std::move(next);
  }
  const std::vector<OpenBind> before = std::exchange(binds_, std::move(opened.value().binds));
  // Commands run in order: once a worker has answered a report posted after the install, it
  // serves the new version (so READY and the log line come after every worker switched).
  std::vector<bool> installed(slots_.size(), false);
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i]->exited.load(std::memory_order_acquire)) {
      for (ListenerPlan& p : opened.value().plans[i]) {
        if (p.fd >= 0) sys::close(std::exchange(p.fd, -1));
      }
      continue;
    }
    slots_[i]->control->request_install(current_, std::move(opened.value().plans[i]),
                                        std::move(balancers[i]));
    installed[i] = true;
  }
  std::vector<Stats> ignored;
  const std::vector<bool> answered = collect_reports(ignored);
  std::string install_errors;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!installed[i]) continue;
    if (!answered[i]) {
      log_warn("reload: worker %zu did not confirm the new version within %d ms", i,
               kReportTimeoutMs);
    }
    if (std::string e = slots_[i]->control->take_install_error(); !e.empty()) {
      install_errors +=
          (install_errors.empty() ? "worker " : "; worker ") + std::to_string(i) + ": " + e;
    }
  }
  const Clock::time_point swapped = Clock::now();
  remove_unix_files(before);
  if (checker_ != nullptr) checker_->update(current_);
  if (!install_errors.empty()) {
    // The version is in (connections use it), but a worker lacks a listening socket.
    ++reload_failures_;
    log_error("reload: epoch %llu installed, but %s",
              static_cast<unsigned long long>(current_->epoch), install_errors.c_str());
  }
  // The previous version's rings and schedules (megabytes with many servers) were freed by the
  // workers that dropped it; glibc keeps freed heap top and arena memory for reuse unless asked.
  malloc_trim(0);
  ++reloads_;
  log_info(
      "reloaded %s: epoch %llu, %zu listener(s), %zu backend(s), %zu server(s) in %.1f ms (load "
      "%.1f, listeners and balancers %.1f, swap %.1f)",
      current_->source.c_str(), static_cast<unsigned long long>(current_->epoch),
      current_->listeners.size(), current_->backends.size(), current_->server_count(),
      ms_between(began, swapped), ms_between(began, parsed), ms_between(parsed, prepared),
      ms_between(prepared, swapped));
  notify_.ready(status_line());
  return true;
}

std::string Supervisor::describe_listeners() const {
  std::string out;
  for (const ListenerSpec& ls : current_->listeners) {
    out += out.empty() ? "" : "; ";
    out += ls.name + " on";
    for (const OpenBind& b : binds_) {
      if (b.name == ls.name) out += " " + b.bound.to_string();
    }
  }
  return out;
}

std::string Supervisor::status_line() const {
  size_t up = 0;
  for (const BackendSpec& b : current_->backends) up += servers_up(b);
  return "epoch " + std::to_string(current_->epoch) + ", " +
         std::to_string(current_->listeners.size()) + " listener(s), " + std::to_string(up) + "/" +
         std::to_string(current_->server_count()) + " server(s) up, " +
         std::to_string(slots_.size()) + " worker(s)";
}

std::string Supervisor::object_stat_lines(const StatsSnapshot& snap) const {
  std::string out;
  char line[64];
  std::snprintf(line, sizeof line, "  %-20s %llu\n", "reloads",
                static_cast<unsigned long long>(snap.reloads));
  out += line;
  std::snprintf(line, sizeof line, "  %-20s %llu\n", "reload_failures",
                static_cast<unsigned long long>(snap.reload_failures));
  out += line;
  std::snprintf(line, sizeof line, "  %-20s %llu\n", "epoch",
                static_cast<unsigned long long>(snap.topology->epoch));
  out += line;
  if (snap.topology->global.admin.enabled()) {
#define EDGEPROXY_ADMIN_LINE(name)                                   \
  std::snprintf(line, sizeof line, "  %-20s %llu\n", "admin." #name, \
                static_cast<unsigned long long>(snap.admin.name));   \
  out += line;
    EDGEPROXY_ADMIN_STATS(EDGEPROXY_ADMIN_LINE, EDGEPROXY_ADMIN_LINE)
#undef EDGEPROXY_ADMIN_LINE
  }
  for (const ListenerSpec& ls : snap.topology->listeners) {
    const std::string prefix = "listener." + ls.name + ".";
    ls.runtime->stats.append_lines(out, prefix);
    if (ls.limits.per_connection() || ls.limits.per_client()) {
      ls.runtime->limits.append_lines(out, prefix + "limits.");
    }
    if (ls.mode == ListenerMode::kForward) {
      ls.runtime->forward.append_lines(out, prefix + "forward.");
      continue;
    }
    if (ls.mode == ListenerMode::kHttp) ls.runtime->http.append_lines(out, prefix + "http.");
    if (!ls.inspects()) continue;
    ls.runtime->route.append_lines(out, prefix);
    for (size_t r = 0; r < ls.routes.rules.size(); ++r) {
      out += "  " + prefix + "rule" + std::to_string(r + 1) + ".matches " +
             std::to_string(ls.routes.rules[r].runtime->matches.load(std::memory_order_relaxed)) +
             "\n";
    }
  }
  for (const BackendSpec& b : snap.topology->backends) {
    b.runtime->stats.append_lines(out, "backend." + b.name + ".");
    if (b.pooled) b.runtime->pool.append_lines(out, "backend." + b.name + ".");
    for (const ServerSpec& sv : b.servers) {
      const std::string prefix = "server." + b.name + "/" + sv.name + ".";
      out += "  " + prefix + "up " + (sv.runtime->up.load(std::memory_order_relaxed) ? "1" : "0") +
             "\n";
      sv.runtime->stats.append_lines(out, prefix);
    }
  }
  return out;
}

void Supervisor::release_workers(bool go) noexcept {
  {
    std::lock_guard lock(mutex_);
    (go ? go_ : abort_) = true;
  }
  go_cv_.notify_all();
}

Result<Ok> Supervisor::start_worker(Slot& slot) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (slot.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(static_cast<size_t>(slot.cpu), &set);
    pthread_attr_setaffinity_np(&attr, sizeof set, &set);
  }
  const int rc = pthread_create(&slot.thread, &attr, &Supervisor::thread_main, &slot);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    if (slot.cpu >= 0 && rc == EINVAL) {
      return Error{"cannot run on CPU " + std::to_string(slot.cpu) + ": " + std::strerror(rc)};
    }
    return Error{std::string("cannot start a worker thread: ") + std::strerror(rc)};
  }
  slot.joinable = true;
  std::unique_lock lock(mutex_);
  ready_cv_.wait(lock, [&] { return slot.ready; });
  if (!slot.error.empty()) return Error{slot.error};
  return Ok{};
}

void* Supervisor::thread_main(void* arg) noexcept {
  Slot& slot = *static_cast<Slot*>(arg);
  Supervisor& self = *slot.owner;
  char name[16];
  std::snprintf(name, sizeof name, "edgeproxy-w%u", slot.index);
  pthread_setname_np(pthread_self(), name);
  auto worker = Worker::create(slot.options);
  // The worker holds what it needs; the first version must not outlive its last connection.
  slot.options.topology.reset();
  slot.options.listeners.clear();
  std::string error;
  if (!worker.ok()) {
    error = worker.error();
  } else if (auto started = worker.value()->start(); !started.ok()) {
    error = started.error();
  }
  bool go = false;
  {
    std::unique_lock lock(self.mutex_);
    if (error.empty()) {
      slot.worker = std::move(worker.value());
    } else {
      slot.error = error;
    }
    slot.ready = true;
    self.ready_cv_.notify_all();
    if (error.empty()) {
      self.go_cv_.wait(lock, [&] { return self.go_ || self.abort_; });
      go = self.go_;
    }
  }
  if (go) {
    const int status = slot.worker->run();
    slot.final_stats = slot.worker->stats();
    // Answers any report request that raced with the end of the loop, at once.
    slot.control->publish(UINT64_MAX, slot.final_stats);
    std::lock_guard lock(self.mutex_);
    slot.status = status;
  }
  // A finished (or never started) worker closes its listener and ring now, so the kernel stops
  // queueing connections for it while other workers drain.
  slot.worker.reset();
  slot.exited.store(true, std::memory_order_release);
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(self.exit_fd_, &one, sizeof one);
  return nullptr;
}

Supervisor::~Supervisor() {
  metrics_.reset();  // its thread calls snapshot(), which reads slots_ and admin_live_
  stop_admin();
  admin_live_.store(nullptr, std::memory_order_release);
  admin_.reset();
  release_workers(false);  // workers still waiting for the go (a failed start) end unstarted
  stop_all_now();
  join_all();
  if (access_log_ != nullptr) access_log_->stop();
  checker_.reset();
  for (const ActivatedSocket& a : activated_) sys::close(a.fd);
  sys::close(signal_fd_);
  sys::close(exit_fd_);
  if (request_fd_ >= 0) sys::close(request_fd_);
}

void Supervisor::stop_all_now() noexcept {
  // A second fast stop ends the grace period: connections are reset and the workers return.
  for (auto& slot : slots_) {
    if (slot->exited.load(std::memory_order_acquire)) continue;
    slot->control->request_stop(true);
    slot->control->request_stop(true);
  }
}

void Supervisor::join_all() noexcept {
  for (auto& slot : slots_) {
    if (!slot->joinable) continue;
    pthread_join(slot->thread, nullptr);
    slot->joinable = false;
  }
}

int Supervisor::run() noexcept {
  int status = 0;
  for (;;) {
    uint32_t exited = 0;
    for (auto& slot : slots_) {
      if (!slot->exited.load(std::memory_order_acquire)) continue;
      ++exited;
      std::lock_guard lock(mutex_);
      if (slot->status != 0 && status == 0) {
        status = slot->status;
        stopping_now_ = true;
      }
    }
    if (exited == slots_.size()) break;
    if (stopping_now_) stop_all_now();
    pollfd fds[3] = {{signal_fd_, POLLIN, 0}, {exit_fd_, POLLIN, 0}, {request_fd_, POLLIN, 0}};
    if (poll(fds, 3, -1) < 0) continue;  // EINTR: nothing else can fail here
    if (fds[0].revents & POLLIN) on_signals();
    if (fds[1].revents & POLLIN) {
      uint64_t count = 0;
      [[maybe_unused]] const ssize_t n = ::read(exit_fd_, &count, sizeof count);
    }
    if (fds[2].revents & POLLIN) on_request();
  }
  // The admin thread may be waiting for a worker or for a request: both end now.
  stop_admin();
  join_all();
  // Every line the workers appended before they stopped is written before the process exits.
  access_log_->stop();
  return status;
}

void Supervisor::on_signals() noexcept {
  signalfd_siginfo info;
  for (;;) {
    const SysResult r = sys::read(signal_fd_, &info, sizeof info);
    if (!r.ok() || r.value != static_cast<long>(sizeof info)) return;
    switch (info.ssi_signo) {
      case SIGTERM:
      case SIGINT:
      case SIGQUIT:
        stop_workers(info.ssi_signo != SIGQUIT);
        break;
      case SIGHUP:
        if (loader_) {
          reload();
        } else {
          log_ignored(info);
        }
        break;
      case SIGUSR1:
        print_stats(stderr);
        break;
      case SIGUSR2:
        access_log_->request_reopen();
        break;
      default:
        log_ignored(info);
        break;
    }
  }
}

void Supervisor::stop_workers(bool fast) noexcept {
  stopping_ = true;
  notify_.stopping();
  for (auto& slot : slots_) slot->control->request_stop(fast);
}

void Supervisor::stop_admin() noexcept {
  {
    std::lock_guard lock(request_mutex_);
    requests_closed_ = true;
  }
  request_cv_.notify_all();
  // Stopped, not destroyed: the metrics thread may be in snapshot() reading the server's
  // counters (atomics, still readable once its thread is joined). The destructor frees it after
  // the metrics thread is gone.
  if (admin_ != nullptr) admin_->stop();
}

std::string Supervisor::request(const SupervisorRequest& r) {
  std::unique_lock lock(request_mutex_);
  if (requests_closed_) return "shutting down";
  request_ = &r;
  request_done_ = false;
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(request_fd_, &one, sizeof one);
  request_cv_.wait(lock, [&] { return request_done_ || requests_closed_; });
  if (!request_done_) {
    request_ = nullptr;  // never taken: `r` is the caller's, gone after this return
    return "shutting down";
  }
  return std::exchange(request_result_, std::string());
}

void Supervisor::on_request() noexcept {
  uint64_t count = 0;
  [[maybe_unused]] const ssize_t n = ::read(request_fd_, &count, sizeof count);
  std::unique_lock lock(request_mutex_);
  if (request_ == nullptr) return;
  // The request stays the caller's: it waits until request_done_, so `r` lives until then.
  const SupervisorRequest& r = *std::exchange(request_, nullptr);
  lock.unlock();
  std::string result = run_request(r);
  lock.lock();
  request_result_ = std::move(result);
  request_done_ = true;
  lock.unlock();
  request_cv_.notify_all();
}

std::string Supervisor::run_request(const SupervisorRequest& r) {
  switch (r.kind) {
    case SupervisorRequest::Kind::kReload:
      if (!loader_) return "started from the command line, there is no file to reload";
      if (stopping_) return "shutting down";
      return reload() ? std::string() : reload_error_;
    case SupervisorRequest::Kind::kShutdownGraceful:
    case SupervisorRequest::Kind::kShutdownFast: {
      const bool fast = r.kind == SupervisorRequest::Kind::kShutdownFast;
      log_info("admin socket: %s shutdown requested", fast ? "fast" : "graceful");
      stop_workers(fast);
      return {};
    }
    case SupervisorRequest::Kind::kSetWeight:
      return set_weight(r.backend, r.server, r.weight);
  }
  return "unknown request";
}

std::string Supervisor::set_weight(const std::string& backend, const std::string& server,
                                   uint32_t weight) {
  for (const BackendSpec& b : current_->backends) {
    if (b.name != backend) continue;
    for (const ServerSpec& sv : b.servers) {
      if (sv.name != server) continue;
      sv.runtime->weight.store(weight, std::memory_order_relaxed);
      // Balancers bake weights into their schedules: each worker gets ones rebuilt from the new
      // weights for the version it serves (a reload meanwhile builds its own from them too).
      for (size_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i]->exited.load(std::memory_order_acquire)) continue;
        slots_[i]->control->request_balancers(
            current_->epoch,
            build_balancers(*current_,
                            Worker::worker_seed(static_cast<uint32_t>(i), current_->epoch)));
      }
      log_info("admin socket: server %s/%s weight set to %u", backend.c_str(), server.c_str(),
               weight);
      return {};
    }
    return "no server " + server + " in backend " + backend;
  }
  return "no backend " + backend;
}

AdminAnswer Supervisor::list_connections(uint32_t limit) {
  AdminAnswer out;
  for (auto& slot : slots_) {
    if (slot->exited.load(std::memory_order_acquire)) continue;
    const uint32_t left = limit - static_cast<uint32_t>(out.connections.size());
    AdminAnswer part;
    const uint64_t ticket = slot->control->request_connections(left);
    if (!slot->control->wait_answer(ticket, kReportTimeoutMs, part)) continue;
    out.open += part.open;
    for (ConnectionInfo& c : part.connections) {
      if (out.connections.size() < limit) out.connections.push_back(std::move(c));
    }
  }
  return out;
}

std::string Supervisor::kill_connection(uint32_t worker, uint32_t slot, uint32_t generation) {
  const std::string id =
      std::to_string(worker) + "." + std::to_string(slot) + "." + std::to_string(generation);
  if (worker >= slots_.size() || slots_[worker]->exited.load(std::memory_order_acquire)) {
    return "no connection " + id;
  }
  AdminAnswer answer;
  const uint64_t ticket = slots_[worker]->control->request_kill(slot, generation);
  if (!slots_[worker]->control->wait_answer(ticket, kReportTimeoutMs, answer)) {
    return "worker " + std::to_string(worker) + " did not answer";
  }
  if (!answer.killed) return "no connection " + id;
  log_info("admin socket: connection %s reset", id.c_str());
  return {};
}

std::vector<bool> Supervisor::collect_reports(std::vector<Stats>& out) {
  out.assign(slots_.size(), Stats{});
  std::vector<uint64_t> tickets(slots_.size(), 0);
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i]->exited.load(std::memory_order_acquire)) {
      tickets[i] = slots_[i]->control->request_report();
    }
  }
  std::vector<bool> answered(slots_.size(), false);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kReportTimeoutMs);
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (tickets[i] == 0) continue;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    answered[i] = slots_[i]->control->wait_report(
        tickets[i], static_cast<int>(std::max<int64_t>(0, left.count())), out[i]);
  }
  return answered;
}

std::shared_ptr<const Topology> Supervisor::topology() const {
  std::lock_guard lock(topology_mutex_);
  return current_;
}

StatsSnapshot Supervisor::snapshot() {
  StatsSnapshot snap;
  snap.topology = topology();
  const std::vector<bool> answered = collect_reports(snap.workers);
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = *slots_[i];
    // A worker that returned meanwhile has published its final counters (and answers no more).
    if (!answered[i]) {
      if (!slot.exited.load(std::memory_order_acquire)) {
        // Stopped or stuck (a debugger, a long stall): say so rather than count it as zeros.
        snap.silent.push_back(slot.index);
        continue;
      }
      snap.workers[i] = slot.final_stats;
    }
    snap.total.merge(snap.workers[i]);
  }
  snap.reloads = reloads_.load(std::memory_order_relaxed);
  snap.reload_failures = reload_failures_.load(std::memory_order_relaxed);
  snap.uptime_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started_)
                       .count();
  snap.waited_ms = kReportTimeoutMs;
  if (const AdminServer* a = admin_live_.load(std::memory_order_acquire); a != nullptr) {
    snap.admin = a->counters();  // running or stopped: it lives until the destructor's end
  }
  return snap;
}

std::string Supervisor::stats_text() {
  const StatsSnapshot snap = snapshot();
  return Stats::format_report(
      snap.total,
      slots_.size() > 1 ? std::span<const Stats>(snap.workers) : std::span<const Stats>(),
      snap.silent, snap.waited_ms, object_stat_lines(snap));
}

void Supervisor::print_stats(std::FILE* out, bool per_worker) {
  const StatsSnapshot snap = snapshot();
  Stats::print_report(out, snap.total,
                      per_worker && slots_.size() > 1 ? std::span<const Stats>(snap.workers)
                                                      : std::span<const Stats>(),
                      snap.silent, snap.waited_ms, object_stat_lines(snap));
}

}  // namespace edgeproxy
