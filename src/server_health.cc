// Passive and active health transitions over ServerRuntime's atomics; see server_health.h.
#include "edgeproxy/server_health.h"

#include <cstdio>
#include <string>

#include "edgeproxy/log.h"

namespace edgeproxy {
namespace {

// retry_at_ms of a down server whose revival a caller has claimed: never due again until the
// next down writes a real time.
constexpr int64_t kRevivalClaimed = INT64_MAX;

uint32_t fall_of(const HealthCheck& check) noexcept {
  return check.fall > 0 ? check.fall : 1;
}

// One consecutive failure of an up server; true for the one caller whose failure took it down.
bool count_failure(ServerRuntime& server, const HealthCheck& check, int64_t now_ms) noexcept {
  if (!server.up.load(std::memory_order_acquire)) return false;
  const uint32_t n = server.failures.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (n < fall_of(check)) return false;
  // Written before the down is published, so a reviver that sees up == false (acquire) sees this
  // time and not a stale one. Written with active checks too: a reload that turns them off
  // while the server is down must still find a time to retry it.
  server.retry_at_ms.store(now_ms + int64_t{check.interval_ms}, std::memory_order_relaxed);
  bool expected = true;
  if (!server.up.compare_exchange_strong(expected, false, std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
    return false;
  }
  server.stats.downs.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace

const char* to_string(HealthTransition t) noexcept {
  switch (t) {
    case HealthTransition::kNone:
      return "none";
    case HealthTransition::kDown:
      return "down";
    case HealthTransition::kUp:
      return "up";
  }
  return "?";
}

bool on_connect_failure(ServerRuntime& server, const HealthCheck& check, int64_t now_ms) noexcept {
  return count_failure(server, check, now_ms);
}

bool on_connect_success(ServerRuntime& server) noexcept {
  // Loads first: every worker storing on every connect would bounce the cache line.
  if (server.failures.load(std::memory_order_relaxed) != 0) {
    server.failures.store(0, std::memory_order_relaxed);
  }
  return server.probation.load(std::memory_order_relaxed) &&
         server.probation.exchange(false, std::memory_order_acq_rel);
}

bool revive_if_due(ServerRuntime& server, const HealthCheck& check, int64_t now_ms) noexcept {
  if (server.up.load(std::memory_order_acquire) || check.enabled) return false;
  int64_t due = server.retry_at_ms.load(std::memory_order_acquire);
  if (now_ms < due) return false;
  // The claim is on retry_at, not on up: a reviver that read a due time, lost the race, and
  // finds the server down again (new retry_at) must not bring it back early.
  if (!server.retry_at_ms.compare_exchange_strong(due, kRevivalClaimed, std::memory_order_acq_rel,
                                                  std::memory_order_relaxed)) {
    return false;
  }
  server.failures.store(fall_of(check) - 1, std::memory_order_relaxed);
  server.successes.store(0, std::memory_order_relaxed);
  server.probation.store(true, std::memory_order_relaxed);
  server.up.store(true, std::memory_order_release);
  return true;
}

HealthTransition on_check_result(ServerRuntime& server, const HealthCheck& check, bool ok,
                                 int64_t now_ms) noexcept {
  if (server.up.load(std::memory_order_acquire)) {
    if (!ok)
      return count_failure(server, check, now_ms) ? HealthTransition::kDown
                                                  : HealthTransition::kNone;
    on_connect_success(server);
    return HealthTransition::kNone;
  }
  if (!ok) {
    server.successes.store(0, std::memory_order_relaxed);
    return HealthTransition::kNone;
  }
  const uint32_t n = server.successes.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n < check.rise) return HealthTransition::kNone;
  server.successes.store(0, std::memory_order_relaxed);
  server.failures.store(0, std::memory_order_relaxed);
  server.probation.store(false, std::memory_order_relaxed);
  bool expected = false;
  if (!server.up.compare_exchange_strong(expected, true, std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
    return HealthTransition::kNone;
  }
  return HealthTransition::kUp;
}

uint32_t servers_up(const BackendSpec& backend) noexcept {
  uint32_t n = 0;
  for (const ServerSpec& s : backend.servers) {
    if (s.runtime && s.runtime->up.load(std::memory_order_relaxed)) ++n;
  }
  return n;
}

void log_transition(const BackendSpec& backend, const ServerSpec& server, HealthTransition t,
                    const char* reason, int64_t now_ms) noexcept {
  if (t == HealthTransition::kNone || !server.runtime) return;
  ServerRuntime& rt = *server.runtime;
  const uint32_t up = servers_up(backend);
  const auto total = static_cast<uint32_t>(backend.servers.size());
  const std::string where =
      server.addresses.empty() ? server.endpoint.to_string() : server.addresses.front().to_string();
  if (t == HealthTransition::kUp) {
    const uint32_t failed = rt.unlogged_failures.exchange(0, std::memory_order_relaxed);
    rt.down_logged_ms.store(INT64_MIN, std::memory_order_relaxed);
    if (failed == 0) {
      log_info("server %s/%s (%s) is UP (%s), %u of %u up", backend.name.c_str(),
               server.name.c_str(), where.c_str(), reason, up, total);
    } else {
      log_info(
          "server %s/%s (%s) is UP (%s; %u more failed connects since the last report), %u "
          "of %u up",
          backend.name.c_str(), server.name.c_str(), where.c_str(), reason, failed, up, total);
    }
    return;
  }
  // Only the caller whose failure took the server down gets here: the rate limit needs no CAS.
  const bool after_retry = rt.probation.exchange(false, std::memory_order_relaxed);
  const int64_t last = rt.down_logged_ms.load(std::memory_order_relaxed);
  if (after_retry && last != INT64_MIN && now_ms - last < kDownLogIntervalMs) {
    rt.unlogged_failures.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  rt.down_logged_ms.store(now_ms, std::memory_order_relaxed);
  char more[64] = "";
  if (const uint32_t failed = rt.unlogged_failures.exchange(0, std::memory_order_relaxed)) {
    std::snprintf(more, sizeof more, "; %u more failed connects since the last report", failed);
  }
  if (up == 0) {
    log_warn("server %s/%s (%s) is DOWN (%s%s), 0 of %u up: backend %s has no server left",
             backend.name.c_str(), server.name.c_str(), where.c_str(), reason, more, total,
             backend.name.c_str());
  } else {
    log_warn("server %s/%s (%s) is DOWN (%s%s), %u of %u up", backend.name.c_str(),
             server.name.c_str(), where.c_str(), reason, more, up, total);
  }
}

}  // namespace edgeproxy
