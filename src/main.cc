// edgeproxy entry point: parse the command line, resolve addresses, fit the connection cap to
// the open-file limit, block the signals the worker reads from its signalfd, run, report.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>

#include "edgeproxy/config.h"
#include "edgeproxy/log.h"
#include "edgeproxy/net.h"
#include "edgeproxy/reactor.h"
#include "edgeproxy/worker.h"

namespace {

using edgeproxy::Config;

constexpr int kUsageExit = 2;
constexpr int kStartupExit = 1;
// Descriptors that are not connections: stdio, epoll, signalfd, listener, and headroom.
constexpr rlim_t kReservedFds = 16;

// Raises the soft open-file limit toward the hard one as far as the cap needs; if that is still
// short, lowers the cap (and a default pool size with it) with one warning line.
bool fit_open_file_limit(Config& config) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return true;
  const rlim_t need = rlim_t{config.max_connections} * 2 + kReservedFds;
  if (rl.rlim_cur < need) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : std::min(need, rl.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  if (rl.rlim_cur >= need) return true;
  if (rl.rlim_cur < kReservedFds + 2) {
    edgeproxy::log_error("open-file limit %llu is too low: at least %llu descriptors are needed",
                         static_cast<unsigned long long>(rl.rlim_cur),
                         static_cast<unsigned long long>(kReservedFds + 2));
    return false;
  }
  const auto fit = static_cast<uint32_t>((rl.rlim_cur - kReservedFds) / 2);
  edgeproxy::log_warn(
      "open-file limit %llu allows %u connections: --max-connections lowered from %u",
      static_cast<unsigned long long>(rl.rlim_cur), fit, config.max_connections);
  config.max_connections = fit;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = edgeproxy::parse_command_line(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "edgeproxy: %s\n", parsed.error().c_str());
    return kUsageExit;
  }
  Config config = parsed.value();
  if (config.show_help) {
    std::fputs(edgeproxy::usage().c_str(), stdout);
    return 0;
  }
  if (config.show_version) {
    std::printf("edgeproxy %s (backend %s)\n", EDGEPROXY_VERSION, edgeproxy::Reactor::kName);
    return 0;
  }
  edgeproxy::set_log_level(config.log_level);

  auto listen = edgeproxy::resolve(config.listen_host, config.listen_port, "--listen");
  if (!listen.ok()) {
    edgeproxy::log_error("%s", listen.error().c_str());
    return kStartupExit;
  }
  auto backend = edgeproxy::resolve(config.backend_host, config.backend_port, "--backend");
  if (!backend.ok()) {
    edgeproxy::log_error("%s", backend.error().c_str());
    return kStartupExit;
  }
  if (!fit_open_file_limit(config)) return kStartupExit;

  // A peer that closes while we write must give EPIPE, never kill the process.
  signal(SIGPIPE, SIG_IGN);
  // Blocked before any thread exists, so they are only ever delivered through the signalfd.
  sigset_t set;
  sigemptyset(&set);
  for (const int s : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);

  edgeproxy::WorkerOptions options{config, listen.value(), backend.value(), true};
  auto worker = edgeproxy::Worker::create(options);
  if (!worker.ok()) {
    edgeproxy::log_error("%s", worker.error().c_str());
    return kStartupExit;
  }
  edgeproxy::log_info("listening on %s, backend %s, %s backend, max %u connections, %u buffers",
                      worker.value()->listen_address().to_string().c_str(),
                      backend.value().to_string().c_str(), edgeproxy::Reactor::kName,
                      config.max_connections, config.buffer_count());
  const int status = worker.value()->run();
  if (status == 0) worker.value()->stats().print(stderr);  // a failed start said its one line
  return status;
}
