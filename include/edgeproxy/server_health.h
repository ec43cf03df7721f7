// Server health as pure functions over ServerRuntime's atomics: the workers' passive results
// (their own connects), the checker's active results and the passive revival rule. Lock-free,
// no syscalls, no logging: each function says whether its call changed the server's state, so
// the caller logs that transition once (log_transition()). docs/health-checks.md has the rules.
#pragma once

#include <cstdint>

#include "edgeproxy/topology.h"

namespace edgeproxy {

enum class HealthTransition : uint8_t {
  kNone,  // the server's up/down state did not change by this call
  kDown,  // this call took the server down (exactly one caller sees it per down)
  kUp,    // this call brought the server back (exactly one caller sees it per up)
};
const char* to_string(HealthTransition t) noexcept;

// A worker's connect to the server failed or timed out. Counts one consecutive failure while
// the server is up (failures of a server already down are not counted); the call that reaches
// `check.fall` takes it down: true for that one caller only, however many workers fail at once,
// and stats.downs grows by one. Without active checks (`!check.enabled`) the down server is
// tried again from now_ms + check.interval_ms (revive_if_due()). Any thread; with several
// winners impossible, the caller that gets true logs the transition.
bool on_connect_failure(ServerRuntime& server, const HealthCheck& check, int64_t now_ms) noexcept;

// A worker's connect to the server succeeded: consecutive failures start again from zero. Costs
// two relaxed loads when there were none and no retry is on probation (the common case), so it
// is safe on every connect. It never brings a down server back: only checks (active, or the
// passive retry) do. True for the one caller whose success ends a passive retry's probation:
// that caller logs the server UP (log_transition, kUp). Any thread.
bool on_connect_success(ServerRuntime& server) noexcept;

// The passive revival rule: a server of a backend without active checks that passive failures
// took down comes back once now_ms reaches its retry_at_ms, with failures = fall - 1 so that
// one more failure takes it down again, on probation: nothing is logged until a client connect
// decides (on_connect_success, or a DOWN that log_transition may hold back). True for the one
// caller that performs the transition;
// false when the server is up, has active checks, or is not due. Costs one relaxed load while
// the server is up. Any thread (the health checker's thread calls it; so may a balancer).
bool revive_if_due(ServerRuntime& server, const HealthCheck& check, int64_t now_ms) noexcept;

// One active check's outcome: up -> down after `fall` consecutive failures (as
// on_connect_failure() counts them, so passive and active failures add up), down -> up after
// `rise` consecutive successes. Successes are counted by the checker thread only. now_ms sets
// retry_at_ms on a down, as for passive failures: should a reload turn active checks off while
// the server is down, the passive retry brings it back.
HealthTransition on_check_result(ServerRuntime& server, const HealthCheck& check, bool ok,
                                 int64_t now_ms) noexcept;

// Servers of `backend` whose runtime says up right now (relaxed loads; servers without a
// runtime are not counted).
uint32_t servers_up(const BackendSpec& backend) noexcept;

// DOWN lines that only end a failed passive retry: at most one per server per this interval.
inline constexpr int64_t kDownLogIntervalMs = 10'000;

// The one log line of a transition, so workers and the checker say it alike:
//   "server app/a (10.0.0.1:80) is DOWN (connect: Connection refused), 2 of 3 up"   (warning)
//   "server app/a (10.0.0.1:80) is UP (2 checks passed), 3 of 3 up"                 (info)
// and, when the last server goes, "..., 0 of 3 up: backend app has no server left". A DOWN that
// ends a failed passive retry is held back when the server's previous DOWN line is less than
// kDownLogIntervalMs old (counted instead); the next line says how many failed connects it
// stands for: "(connect: Connection refused; 4 more failed connects since the last report)".
// `reason` is a short phrase; kNone logs nothing.
void log_transition(const BackendSpec& backend, const ServerSpec& server, HealthTransition t,
                    const char* reason, int64_t now_ms) noexcept;

}  // namespace edgeproxy
