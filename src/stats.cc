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
  X(accept_errors) X(accept_pauses) X(connects_failed) X(connect_timeouts) X(idle_timeouts)        \
      X(active) X(peak_active) X(closed) X(bytes_c2u) X(bytes_u2c) X(reads_client)                 \
          X(reads_upstream) X(writes_client) X(writes_upstream) X(backpressure_pauses)             \
              X(pool_buffers) X(pool_high_water) X(pool_waits) X(resets_client) X(resets_upstream) \
                  X(resets_sent) X(shutdown_forced)

void Stats::merge(const Stats& o) noexcept {
#define EDGEPROXY_ADD(name) name += o.name;
  EDGEPROXY_STATS_COUNTERS(EDGEPROXY_ADD)
#undef EDGEPROXY_ADD
  u2c_upstream_ns += o.u2c_upstream_ns;
  u2c_client_ns += o.u2c_client_ns;
}

void Stats::print(std::FILE* out) const noexcept {
  std::fputs("edgeproxy: statistics\n", out);
#define EDGEPROXY_PRINT(name) \
  std::fprintf(out, "  %-20s %llu\n", #name, static_cast<unsigned long long>(name));
  EDGEPROXY_STATS_COUNTERS(EDGEPROXY_PRINT)
#undef EDGEPROXY_PRINT
  std::fprintf(out, "  %-20s %.3f\n", "acceleration_factor", acceleration_factor());
  std::fflush(out);
}

}  // namespace edgeproxy
