// Stats reporting and merging; see stats.h.
#include "edgeproxy/stats.h"

namespace edgeproxy {

double Stats::acceleration_factor() const noexcept {
  if (u2c_upstream_ns <= 0) return 0.0;
  return static_cast<double>(u2c_client_ns) / static_cast<double>(u2c_upstream_ns);
}

#define EDGEPROXY_STATS_COUNTERS(X)                                                                \
  X(loop_iterations)                                                                               \
  X(events)                                                                                        \
  X(stale_events)                                                                                  \
  X(accepted)                                                                                      \
  X(accept_errors)                                                                                 \
  X(accept_pauses)                                                                                 \
  X(connects_failed)                                                                               \
  X(connect_timeouts)                                                                              \
  X(idle_timeouts) X(active) X(peak_active) X(closed) X(bytes_c2u) X(bytes_u2c) X(reads_client)    \
      X(reads_upstream) X(writes_client) X(writes_upstream) X(backpressure_pauses) X(pool_buffers) \
          X(pool_high_water) X(pool_waits) X(resets_client) X(resets_upstream) X(resets_sent)      \
              X(shutdown_forced) X(splice_bytes) X(splice_pipe_waits) X(splice_pipes_dirty)        \
                  X(batched_waits) X(socket_waits) X(connect_retries) X(linger_waits)

void Stats::merge(const Stats& o) noexcept {
#define EDGEPROXY_ADD(name) name += o.name;
  EDGEPROXY_STATS_COUNTERS(EDGEPROXY_ADD)
#undef EDGEPROXY_ADD
  u2c_upstream_ns += o.u2c_upstream_ns;
  u2c_client_ns += o.u2c_client_ns;
}

void Stats::append_lines(std::string& out, const char* prefix) const {
  char line[160];
  auto add = [&](const char* name, unsigned long long value) {
    std::snprintf(line, sizeof line, "  %s%-20s %llu\n", prefix, name, value);
    out += line;
  };
#define EDGEPROXY_PRINT(name) add(#name, static_cast<unsigned long long>(name));
  EDGEPROXY_STATS_COUNTERS(EDGEPROXY_PRINT)
#undef EDGEPROXY_PRINT
  std::snprintf(line, sizeof line, "  %s%-20s %.3f\n", prefix, "acceleration_factor",
                acceleration_factor());
  out += line;
}

void Stats::print(std::FILE* out) const noexcept {
  print_report(out, *this, {});
}

void Stats::print_report(std::FILE* out, const Stats& total, std::span<const Stats> workers) {
  std::string text = "edgeproxy: statistics\n";
  total.append_lines(text, "");
  for (size_t i = 0; i < workers.size(); ++i) {
    const std::string prefix = "worker" + std::to_string(i) + ".";
    workers[i].append_lines(text, prefix.c_str());
  }
  // One write, so a reader never sees half a block between other log lines.
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}

}  // namespace edgeproxy
