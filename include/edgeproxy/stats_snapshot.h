// StatsSnapshot: what Supervisor::snapshot() takes, in a header of its own so that what only
// formats it (the Prometheus renderer, the metrics server) does not depend on a backend
// (supervisor.h reaches reactor.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "edgeproxy/admin_stats.h"
#include "edgeproxy/stats.h"
#include "edgeproxy/topology.h"

namespace edgeproxy {

// Everything the statistics block, the admin socket and the metrics endpoint show, taken at one
// moment: the workers' counters (merged and each), and the topology whose runtime objects hold
// the per-listener, per-backend and per-server counters (read from them with relaxed loads).
struct StatsSnapshot {
  Stats total;                   // the workers that answered (or had exited), merged
  std::vector<Stats> workers;    // one per worker, zeros for a silent one
  std::vector<uint32_t> silent;  // workers that did not answer within kReportTimeoutMs
  std::shared_ptr<const Topology> topology;
  uint64_t reloads = 0;
  uint64_t reload_failures = 0;
  int64_t uptime_ms = 0;   // since the supervisor started the workers
  uint32_t waited_ms = 0;  // how long a silent worker was waited for
  AdminCounters admin;     // zeros without an admin socket
};

}  // namespace edgeproxy
