// Prometheus text format 0.0.4, generated from the statistics lists (EDGEPROXY_ALL_STATS,
// EDGEPROXY_OBJECT_STATS, ...); see prometheus.h and docs/metrics.md.
#include "edgeproxy/prometheus.h"

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "edgeproxy/stats.h"
#include "edgeproxy/topology.h"

namespace edgeproxy {
namespace {

// A worker statistic whose metric name is not the default ("edgeproxy_" + name, plus "_total"
// for a counter), or that deserves a better HELP than the generic one.
struct Naming {
  std::string_view stat;
  std::string_view metric;
  std::string_view help;
};

constexpr Naming kWorkerNames[] = {
    {"accepted", "edgeproxy_connections_accepted_total", "Client connections accepted."},
    {"closed", "edgeproxy_connections_closed_total", "Connections closed."},
    {"active", "edgeproxy_connections_current", "Connections open now."},
    {"peak_active", "edgeproxy_connections_peak", "Most connections open at once."},
    {"connects_failed", "edgeproxy_connects_failed_total",
     "Upstream connect attempts that failed."},
    {"bytes_c2u", "edgeproxy_client_to_upstream_bytes_total", "Bytes delivered to upstreams."},
    {"bytes_u2c", "edgeproxy_upstream_to_client_bytes_total", "Bytes delivered to clients."},
    {"pool_buffers", "edgeproxy_pool_blocks", "8 KiB blocks in the buffer pool."},
    {"pool_high_water", "edgeproxy_pool_blocks_peak", "Most pool blocks in use at once."},
    {"pool_blocks_in_use", "edgeproxy_pool_blocks_in_use", "Pool blocks holding bytes now."},
    {"splice_bytes", "edgeproxy_splice_bytes_total", "Bytes delivered through splice pipes."},
    {"splice_pipes_in_use", "edgeproxy_splice_pipes_in_use", "Splice pipes held now."},
    {"u2c_upstream_ns", "edgeproxy_acceleration_upstream_seconds_total",
     "Time from the first upstream byte to upstream EOF, summed over fully delivered connections."},
    {"u2c_client_ns", "edgeproxy_acceleration_client_seconds_total",
     "Time from the first upstream byte to the last byte written to the client, summed over the "
     "same connections."},
    {"connect_time", "edgeproxy_backend_connect_seconds",
     "Upstream connect time, from the start of the attempt that succeeded."},
    {"duration", "edgeproxy_connection_duration_seconds", "Connection duration, accept to close."},
};

// Metric names and HELP of a worker statistic of `kind` ("counter" or "gauge").
std::pair<std::string, std::string> worker_naming(std::string_view stat, std::string_view kind) {
  for (const Naming& n : kWorkerNames) {
    if (n.stat == stat) return {std::string(n.metric), std::string(n.help)};
  }
  std::string name = "edgeproxy_" + std::string(stat);
  if (kind == "counter") name += "_total";
  return {name, "Worker statistic " + std::string(stat) + " (docs/architecture.md)."};
}

// Per-object counters: the metric suffix and HELP of each ObjectStats field.
constexpr Naming kObjectNames[] = {
    {"connections", "connections_total", "Connections given to this object."},
    {"current", "current_connections", "Of which open now."},
    {"bytes_in", "client_to_upstream_bytes_total", "Bytes from clients to servers, at close."},
    {"bytes_out", "upstream_to_client_bytes_total", "Bytes from servers to clients, at close."},
    {"connect_failures", "connect_failures_total", "Failed or timed-out connects."},
    {"retries", "retries_total", "Connects retried on another server."},
    {"no_server", "no_server_total", "Clients closed because no server was usable."},
    {"downs", "downs_total", "Server up to down transitions."},
};

// HELP of the HTTP listener counters (edgeproxy_listener_http_STAT_total) and of the backend
// pool statistics (edgeproxy_backend_pool_... : the STAT without its "pool_", plus "_total" for a
// counter).
struct StatHelp {
  std::string_view stat;
  std::string_view help;
};
constexpr StatHelp kHttpHelp[] = {
    {"requests", "Requests forwarded to a server."},
    {"reused", "Requests sent on a pooled connection that served an earlier one."},
    {"queued", "Requests that waited in the pending queue."},
    {"retried", "Requests resent once after the server closed an idle connection."},
    {"upgrades", "101 answers: the server connection left the pool as a tunnel."},
    {"bad_requests", "400 answers: a request head or framing refused."},
    {"request_timeouts", "408 answers: a head not complete within request-timeout."},
    {"bodies_too_large", "413 answers: a request body over max-body."},
    {"heads_too_large", "431 answers: a head that did not fit one 8 KiB block."},
    {"bad_gateway", "502 answers: no server connection, or it failed before a response."},
    {"pending_full", "503 answers: the pending queue was at max-pending."},
    {"pending_timeouts", "503 answers: no connection turned IDLE within pending-timeout."},
    {"no_server", "503 answers: no server of the backend was usable."},
    {"gateway_timeouts", "504 answers: connect timeout."},
    {"bad_responses", "Server responses whose head or framing was refused."},
    {"pool_opens", "Pooled server connections opened."},
    {"pool_closes", "Pooled server connections closed."},
    {"pool_idle", "Pooled server connections IDLE now (free, or parked on an idle client)."},
    {"pool_active", "Pooled server connections ACTIVE now (serving a request)."},
    {"pending", "Requests waiting for a pooled connection now."},
};

std::string_view http_help(std::string_view stat) {
  for (const StatHelp& h : kHttpHelp) {
    if (h.stat == stat) return h.help;
  }
  return "HTTP statistic (docs/metrics.md).";
}

std::pair<std::string_view, std::string_view> object_naming(std::string_view stat) {
  for (const Naming& n : kObjectNames) {
    if (n.stat == stat) return {n.metric, n.help};
  }
  return {stat, "Object statistic (docs/architecture.md)."};
}

std::string seconds_text(NsSum ns) {
  char text[40];
  std::snprintf(text, sizeof text, "%.9Lf",
                static_cast<long double>(ns) / static_cast<long double>(1'000'000'000));
  return text;
}

std::string bound_text(int64_t ns) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", static_cast<double>(ns) / 1e9);
  return text;
}

std::string label(std::string_view key, std::string_view value) {
  std::string out(key);
  out += "=\"";
  out += escape_label_value(value);
  out += '"';
  return out;
}

// Writes one family: the HELP and TYPE lines come with its first sample, so a family with no
// sample (no listener inspects, one worker silent) leaves nothing behind.
class Family {
 public:
  Family(std::string& out, std::string name, std::string_view type, std::string_view help)
      : out_(out), name_(std::move(name)), type_(type), help_(help) {}

  void sample(std::string_view labels, std::string_view value, std::string_view suffix = {}) {
    if (!headed_) {
      out_ += "# HELP " + name_ + " ";
      for (const char ch : help_) {
        if (ch == '\\') {
          out_ += "\\\\";
        } else if (ch == '\n') {
          out_ += "\\n";
        } else {
          out_ += ch;
        }
      }
      out_ += "\n# TYPE " + name_ + " " + std::string(type_) + "\n";
      headed_ = true;
    }
    out_ += name_;
    out_ += suffix;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  void sample(std::string_view labels, uint64_t value) { sample(labels, std::to_string(value)); }

 private:
  std::string& out_;
  std::string name_;
  std::string_view type_;
  std::string help_;
  bool headed_ = false;
};

class Renderer {
 public:
  Renderer(const StatsSnapshot& snap, std::string& out) : snap_(snap), out_(out) {
    for (size_t i = 0; i < snap.workers.size(); ++i) {
      bool silent = false;
      for (const uint32_t s : snap.silent) silent = silent || s == i;
      if (!silent) answered_.push_back(i);
    }
  }

  void workers() {
    // Counters, gauges and peaks each render as one family of per-worker series.
#define EDGEPROXY_PROM_VALUE(kind)                                                       \
  [&](std::string_view stat, auto field) {                                               \
    const auto [name, help] = worker_naming(stat, kind);                                 \
    Family f(out_, name, kind, help);                                                    \
    for (const size_t i : answered_) f.sample(worker_label(i), snap_.workers[i].*field); \
  }
    auto counter = EDGEPROXY_PROM_VALUE("counter");
    auto gauge = EDGEPROXY_PROM_VALUE("gauge");
#undef EDGEPROXY_PROM_VALUE
    auto seconds = [&](std::string_view stat, NsSum Stats::*field) {
      const auto [name, help] = worker_naming(stat, "counter");
      Family f(out_, name, "counter", help);
      for (const size_t i : answered_) {
        f.sample(worker_label(i), seconds_text(snap_.workers[i].*field));
      }
    };
    auto histogram = [&](std::string_view stat, auto field) {
      const auto [name, help] = worker_naming(stat, "histogram");
      Family f(out_, name, "histogram", help);
      for (const size_t i : answered_) {
        const auto& h = snap_.workers[i].*field;
        const std::string labels = worker_label(i);
        uint64_t cumulative = 0;
        for (size_t b = 0; b < h.bounds().size(); ++b) {
          cumulative += h.buckets[b];
          f.sample(labels + "," + label("le", bound_text(h.bounds()[b])),
                   std::to_string(cumulative), "_bucket");
        }
        cumulative += h.buckets.back();
        f.sample(labels + ",le=\"+Inf\"", std::to_string(cumulative), "_bucket");
        f.sample(labels, seconds_text(h.sum_ns), "_sum");
        f.sample(labels, std::to_string(cumulative), "_count");
      }
    };
#define EDGEPROXY_PROM_COUNTER(name) counter(#name, &Stats::name);
#define EDGEPROXY_PROM_GAUGE(name) gauge(#name, &Stats::name);
#define EDGEPROXY_PROM_NS_SUM(name) seconds(#name, &Stats::name);
#define EDGEPROXY_PROM_HISTOGRAM(name, bounds) histogram(#name, &Stats::name);
    EDGEPROXY_ALL_STATS(EDGEPROXY_PROM_COUNTER, EDGEPROXY_PROM_GAUGE, EDGEPROXY_PROM_GAUGE,
                        EDGEPROXY_PROM_NS_SUM, EDGEPROXY_PROM_HISTOGRAM)
#undef EDGEPROXY_PROM_COUNTER
#undef EDGEPROXY_PROM_GAUGE
#undef EDGEPROXY_PROM_NS_SUM
#undef EDGEPROXY_PROM_HISTOGRAM
    Family answered(out_, "edgeproxy_worker_answered", "gauge",
                    "1 when the worker answered this scrape, 0 when it did not within the report "
                    "timeout (its series are then left out).");
    for (size_t i = 0; i < snap_.workers.size(); ++i) {
      bool ok = false;
      for (const size_t a : answered_) ok = ok || a == i;
      answered.sample(worker_label(i), ok ? 1u : 0u);
    }
  }

  void supervisor() {
    append_prometheus_family(out_, "edgeproxy_reloads_total", "counter",
                             "Configuration reloads that installed a new version.", snap_.reloads);
    append_prometheus_family(out_, "edgeproxy_reload_failures_total", "counter",
                             "Reloads refused or only partly installed.", snap_.reload_failures);
    if (snap_.topology != nullptr) {
      append_prometheus_family(out_, "edgeproxy_topology_epoch", "gauge",
                               "The running configuration version (1 at start).",
                               snap_.topology->epoch);
    }
    append_prometheus_family(out_, "edgeproxy_workers", "gauge", "Worker threads.",
                             snap_.workers.size());
    Family up(out_, "edgeproxy_uptime_seconds", "gauge", "Seconds since the workers started.");
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", static_cast<double>(snap_.uptime_ms) / 1000.0);
    up.sample({}, text);
  }

  void objects() {
    if (snap_.topology == nullptr) return;
    const Topology& t = *snap_.topology;
    // Each kind of object (listener, backend, server) gets one family per ObjectStats field,
    // with a series per object: (its labels, its counters).
    using Objects = std::vector<std::pair<std::string, const ObjectStats*>>;
    auto kind_families = [&](std::string_view kind, const Objects& objects) {
#define EDGEPROXY_PROM_OBJECT(stat)                                              \
  {                                                                              \
    const auto [suffix, help] = object_naming(#stat);                            \
    Family f(out_, "edgeproxy_" + std::string(kind) + "_" + std::string(suffix), \
             std::string_view(#stat) == "current" ? "gauge" : "counter", help);  \
    for (const auto& [labels, o] : objects)                                      \
      f.sample(labels, o->stat.load(std::memory_order_relaxed));                 \
  }
      EDGEPROXY_OBJECT_STATS(EDGEPROXY_PROM_OBJECT, EDGEPROXY_PROM_OBJECT)
#undef EDGEPROXY_PROM_OBJECT
    };
    Objects listeners;
    for (const ListenerSpec& l : t.listeners) {
      listeners.emplace_back(label("listener", l.name), &l.runtime->stats);
    }
    Objects backends;
    Objects servers;
    for (const BackendSpec& b : t.backends) {
      backends.emplace_back(label("backend", b.name), &b.runtime->stats);
      for (const ServerSpec& sv : b.servers) {
        servers.emplace_back(server_labels(b, sv), &sv.runtime->stats);
      }
    }
    kind_families("listener", listeners);
    kind_families("backend", backends);
    kind_families("server", servers);
    Family up(out_, "edgeproxy_server_up", "gauge",
              "1 while the server is up (health checks and passive failures), else 0.");
    for (const BackendSpec& b : t.backends) {
      for (const ServerSpec& s : b.servers) {
        up.sample(server_labels(b, s), s.runtime->up.load(std::memory_order_relaxed) ? 1u : 0u);
      }
    }
    listener_outcomes(t);
    backend_pools(t);
  }

 private:
  // Routing, forward-proxy and limit counters, for the listeners they apply to (as in the
  // statistics block).
  void listener_outcomes(const Topology& t) {
#define EDGEPROXY_PROM_LISTENER(group, applies, field, stat)                                      \
  {                                                                                               \
    Family f(out_, "edgeproxy_listener_" group "_" #stat "_total", "counter",                     \
             "Listener " group " outcome " #stat " (docs/metrics.md).");                          \
    for (const ListenerSpec& l : t.listeners) {                                                   \
      if (!(applies)) continue;                                                                   \
      f.sample(label("listener", l.name), l.runtime->field.stat.load(std::memory_order_relaxed)); \
    }                                                                                             \
  }
#define EDGEPROXY_PROM_ROUTE(stat) EDGEPROXY_PROM_LISTENER("route", l.inspects(), route, stat)
#define EDGEPROXY_PROM_FORWARD(stat) \
  EDGEPROXY_PROM_LISTENER("forward", l.mode == ListenerMode::kForward, forward, stat)
#define EDGEPROXY_PROM_LIMIT(stat) \
  EDGEPROXY_PROM_LISTENER("limit", l.limits.per_connection() || l.limits.per_client(), limits, stat)
    EDGEPROXY_ROUTE_STATS(EDGEPROXY_PROM_ROUTE)
    EDGEPROXY_FORWARD_STATS(EDGEPROXY_PROM_FORWARD)
    EDGEPROXY_LIMIT_STATS(EDGEPROXY_PROM_LIMIT)
#undef EDGEPROXY_PROM_ROUTE
#undef EDGEPROXY_PROM_FORWARD
#undef EDGEPROXY_PROM_LIMIT
#undef EDGEPROXY_PROM_LISTENER
#define EDGEPROXY_PROM_HTTP(stat)                                                                \
  {                                                                                              \
    Family f(out_, "edgeproxy_listener_http_" #stat "_total", "counter", http_help(#stat));      \
    for (const ListenerSpec& l : t.listeners) {                                                  \
      if (l.mode != ListenerMode::kHttp) continue;                                               \
      f.sample(label("listener", l.name), l.runtime->http.stat.load(std::memory_order_relaxed)); \
    }                                                                                            \
  }
    EDGEPROXY_HTTP_STATS(EDGEPROXY_PROM_HTTP)
#undef EDGEPROXY_PROM_HTTP
    Family rules(out_, "edgeproxy_listener_rule_matches_total", "counter",
                 "Connections a routing rule decided (rule: its position, from 1).");
    for (const ListenerSpec& l : t.listeners) {
      if (!l.inspects()) continue;
      for (size_t r = 0; r < l.routes.rules.size(); ++r) {
        rules.sample(label("listener", l.name) + "," + label("rule", std::to_string(r + 1)),
                     l.routes.rules[r].runtime->matches.load(std::memory_order_relaxed));
      }
    }
  }

  // The pools' statistics of the backends HTTP listeners use (BackendSpec::pooled).
  void backend_pools(const Topology& t) {
    auto family = [&](std::string_view stat, const char* type, auto value) {
      std::string name = "edgeproxy_backend_pool_";
      name += stat.starts_with("pool_") ? stat.substr(5) : stat;
      if (std::string_view(type) == "counter") name += "_total";
      Family f(out_, name, type, http_help(stat));
      for (const BackendSpec& b : t.backends) {
        if (b.pooled) f.sample(label("backend", b.name), value(b.runtime->pool));
      }
    };
#define EDGEPROXY_PROM_POOL(stat, type) \
  family(#stat, type, [](const PoolStats& p) { return p.stat.load(std::memory_order_relaxed); });
#define EDGEPROXY_PROM_POOL_COUNTER(stat) EDGEPROXY_PROM_POOL(stat, "counter")
#define EDGEPROXY_PROM_POOL_GAUGE(stat) EDGEPROXY_PROM_POOL(stat, "gauge")
    EDGEPROXY_POOL_STATS(EDGEPROXY_PROM_POOL_COUNTER, EDGEPROXY_PROM_POOL_GAUGE)
#undef EDGEPROXY_PROM_POOL_COUNTER
#undef EDGEPROXY_PROM_POOL_GAUGE
#undef EDGEPROXY_PROM_POOL
  }

  static std::string worker_label(size_t i) {
    return label("worker", std::to_string(i));
  }
  static std::string server_labels(const BackendSpec& b, const ServerSpec& s) {
    return label("backend", b.name) + "," + label("server", s.name);
  }

  const StatsSnapshot& snap_;
  std::string& out_;
  std::vector<size_t> answered_;
};

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char ch : value) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '"') {
      out += "\\\"";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out;
}

void append_prometheus_family(std::string& out, std::string_view name, std::string_view type,
                              std::string_view help, uint64_t value) {
  Family f(out, std::string(name), type, help);
  f.sample({}, value);
}

std::string render_prometheus(const StatsSnapshot& snapshot) {
  std::string out;
  out.reserve(64 * 1024);
  Renderer r(snapshot, out);
  r.workers();
  r.supervisor();
  r.objects();
  return out;
}

}  // namespace edgeproxy
