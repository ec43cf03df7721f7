// Topology: everything the proxy serves, as one immutable, versioned object: the process-wide
// settings, the listeners and the backends with their servers (later routes and limits). Built
// by one pure parser (topology_parser.h) from a file or from the command line, completed by
// resolve_topology() (names to addresses) and adopt_runtime() (live state carried over from the
// previous version), then shared read-only: workers hold it by epoch and a connection remembers
// the epoch, listener, backend and server it was given (docs/decisions/0008-topology-by-epoch.md).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edgeproxy/client_table.h"
#include "edgeproxy/config.h"
#include "edgeproxy/credentials.h"
#include "edgeproxy/destination_policy.h"
#include "edgeproxy/http_rules.h"
#include "edgeproxy/net.h"
#include "edgeproxy/result.h"
#include "edgeproxy/route.h"
#include "edgeproxy/token_bucket.h"

namespace edgeproxy {

// Where a directive was written, for messages: "edgeproxy.conf:12:5". The command line has
// file "command line" and line 0.
struct SourceLocation {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string to_string() const;
};

// An address as written: a host (IPv4/IPv6 literal or name) and a port, or a Unix socket path.
struct Endpoint {
  std::string host;       // empty for a Unix socket
  uint16_t port = 0;      // 0 for a Unix socket (a listener may bind port 0: any free port)
  std::string unix_path;  // "unix:/run/app.sock" without "unix:"
  bool is_unix() const noexcept { return !unix_path.empty(); }
  // As the user would write it: "10.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock".
  std::string to_string() const;
};

enum class Balance : uint8_t {
  kRoundRobin,  // smooth weighted round robin (default)
  kLeastConn,   // weighted least connections, counted across workers
  kRandom,      // weighted random, best of two choices by connections
  kSource,      // consistent hash of the client address: removing a server moves only its share
  kFirst,       // the first usable server in the order written that is below its max-connections
  // HTTP listeners only (docs/http-mode.md), per request, from the worker's pools:
  kRtt,       // the lowest moving average of response time (first byte), RProxy's default
  kMostIdle,  // the most IDLE pooled connections
};
const char* to_string(Balance b) noexcept;

// Counters and gauges kept per listener, per backend and per server. Shared by every worker and
// written with relaxed atomics, once per connection event (accept, connect, close), never per
// byte: bytes are added when a connection closes. One list, like EDGEPROXY_ALL_STATS:
//   COUNTER(name)  events since the object was first loaded (kept across reloads)
//   GAUGE(name)    a current level
// clang-format off
#define EDGEPROXY_OBJECT_STATS(COUNTER, GAUGE)                                                     \
  COUNTER(connections)       /* connections given to this object */                               \
  GAUGE(current)             /* of which still open */                                             \
  COUNTER(bytes_in)          /* client to server, counted at close */                             \
  COUNTER(bytes_out)         /* server to client, counted at close */                             \
  COUNTER(connect_failures)  /* failed or timed-out connects (servers, backends) */               \
  COUNTER(retries)           /* connects retried on another server */                             \
  COUNTER(no_server)         /* clients closed because no server was usable */                    \
  COUNTER(downs)             /* servers: up -> down transitions (active or passive checks) */
// clang-format on

struct ObjectStats {
#define EDGEPROXY_OBJECT_STAT_FIELD(name) std::atomic<uint64_t> name{0};
  EDGEPROXY_OBJECT_STATS(EDGEPROXY_OBJECT_STAT_FIELD, EDGEPROXY_OBJECT_STAT_FIELD)
#undef EDGEPROXY_OBJECT_STAT_FIELD
  // Appends "  <prefix><name> <value>" lines, in list order.
  void append_lines(std::string& out, const std::string& prefix) const;
};

// A server's live state, shared by every worker and by every topology version that keeps the
// server (same backend name, server name and address): a reload does not reset its health or
// connection count. Written with atomics only; nothing here is behind a lock.
struct ServerRuntime {
  ObjectStats stats;
  // Health: a server starts up; `fall` consecutive failures (active checks, or connects of real
  // traffic) take it down, `rise` consecutive successful checks bring it back.
  std::atomic<bool> up{true};
  std::atomic<uint32_t> failures{0};   // consecutive failures while up
  std::atomic<uint32_t> successes{0};  // consecutive successful checks while down
  // A server without active checks that passive failures took down is tried again from this
  // time (CLOCK_MONOTONIC ms) with one failure to spare: nothing else would bring it back.
  std::atomic<int64_t> retry_at_ms{0};
  // Administrative state (the admin socket, docs/admin.md), kept across reloads. A drained
  // server gets no new connection from any balancer; its open ones finish. `weight` overrides
  // the configured weight when not 0 (`set weight`); a reload that changes the configured weight
  // sets it back to 0. Balancers read a new weight when they are rebuilt (Supervisor::set_weight).
  std::atomic<bool> drained{false};
  std::atomic<uint32_t> weight{0};
  // What the operator is told (server_health.cc): a passive retry is silent and on probation
  // until a client connect decides it (a success logs UP); a DOWN line that only ends a failed
  // retry comes at most once per kDownLogIntervalMs, counting the failed connects it stands for.
  std::atomic<bool> probation{false};
  std::atomic<int64_t> down_logged_ms{INT64_MIN};
  std::atomic<uint32_t> unlogged_failures{0};
};

// What a listener that inspects (a `route` block, `accept-proxy`) decided, per outcome. Counted
// by the workers with relaxed atomics, once per connection; printed only for such listeners.
// clang-format off
#define EDGEPROXY_ROUTE_STATS(COUNTER)                                                             \
  COUNTER(inspected)             /* connections whose first bytes were inspected */                \
  COUNTER(routed)                /* given a backend or server by a rule, a map or a hash */        \
  COUNTER(defaulted)             /* no rule decided: the listener's backend */                     \
  COUNTER(no_match)              /* no rule decided and no default backend: closed */              \
  COUNTER(inspect_timeouts)      /* inspect-timeout passed: on-timeout applied */                  \
  COUNTER(inspect_overflows)     /* inspect-bytes filled without a decision: on-full applied */    \
  COUNTER(map_misses)            /* a map had no entry and no default: closed */                   \
  COUNTER(replies)               /* reply texts sent */                                            \
  COUNTER(closes)                /* closed by a close action (with or without a text) */           \
  COUNTER(rejects)               /* reset by a reject action */                                    \
  COUNTER(proxy_headers)         /* accept-proxy: headers read */                                  \
  COUNTER(proxy_header_errors)   /* accept-proxy: missing or malformed: closed */
// clang-format on

struct RouteStats {
#define EDGEPROXY_ROUTE_STAT_FIELD(name) std::atomic<uint64_t> name{0};
  EDGEPROXY_ROUTE_STATS(EDGEPROXY_ROUTE_STAT_FIELD)
#undef EDGEPROXY_ROUTE_STAT_FIELD
  void append_lines(std::string& out, const std::string& prefix) const;
};

// What a forward listener (`mode forward`, docs/forward-proxy.md) answered, per outcome.
// Counted by the workers with relaxed atomics, once per request or connection.
// clang-format off
#define EDGEPROXY_FORWARD_STATS(COUNTER)                                                           \
  COUNTER(requests)            /* request heads accepted and forwarded (CONNECT included) */       \
  COUNTER(tunnels)             /* CONNECT tunnels established (200 sent) */                       \
  COUNTER(reused)              /* requests sent on a server connection opened for an earlier one */\
  COUNTER(bad_requests)        /* 400: a head the parser refused */                               \
  COUNTER(smuggling)           /* 400: a framing refused (both lengths, bad codings, ...) */      \
  COUNTER(no_backend)          /* 400: origin-form request and the listener has no backend */     \
  COUNTER(forbidden)           /* 403: port or address refused by the destination policy */      \
  COUNTER(auth_missing)        /* 407: no Proxy-Authorization */                                  \
  COUNTER(auth_failures)       /* 407: wrong user, wrong password or malformed credentials */     \
  COUNTER(auth_delays)         /* 407s held back because the client failed repeatedly */          \
  COUNTER(auth_cache_hits)     /* credentials known good or bad without hashing them */           \
  COUNTER(request_timeouts)    /* 408: the head was not complete within request-timeout */        \
  COUNTER(heads_too_large)     /* 431: the head did not fit one 8 KiB block */                    \
  COUNTER(bad_gateway)         /* 502: resolve or connect failure */                              \
  COUNTER(gateway_timeouts)    /* 504: resolve or connect timeout */                              \
  COUNTER(resolves)            /* names handed to the resolver threads */                         \
  COUNTER(resolve_failures)    /* of which failed (no such name, resolver error) */               \
  COUNTER(dns_cache_hits)      /* names answered by the per-worker cache */                       \
  COUNTER(destination_closes)  /* keep-alive ended: the next request named another destination */ \
  COUNTER(bad_responses)       /* a server's response head or framing refused: closed */
// clang-format on

struct ForwardStats {
#define EDGEPROXY_FORWARD_STAT_FIELD(name) std::atomic<uint64_t> name{0};
  EDGEPROXY_FORWARD_STATS(EDGEPROXY_FORWARD_STAT_FIELD)
#undef EDGEPROXY_FORWARD_STAT_FIELD
  void append_lines(std::string& out, const std::string& prefix) const;
};

// What a listener's limits (docs/limits.md) refused or cut, per reason. Counted by the workers
// with relaxed atomics, once per refusal, close or pause.
// clang-format off
#define EDGEPROXY_LIMIT_STATS(COUNTER)                                                             \
  COUNTER(lifetime_closes)      /* max-lifetime reached: reset */                                  \
  COUNTER(upload_closes)        /* upload-limit crossed: reset */                                  \
  COUNTER(download_closes)      /* download-limit crossed: reset */                                \
  COUNTER(rate_pauses_up)       /* rate-limit-up: reading from the client paused */                \
  COUNTER(rate_pauses_down)     /* rate-limit-down: reading from the server paused */              \
  COUNTER(client_too_many)      /* max-connections-per-client: refused at accept */                \
  COUNTER(client_too_fast)      /* new-connections-per-client: refused at accept */                \
  COUNTER(client_table_full)    /* the client table had no room for a new client: refused */
// clang-format on

struct LimitStats {
#define EDGEPROXY_LIMIT_STAT_FIELD(name) std::atomic<uint64_t> name{0};
  EDGEPROXY_LIMIT_STATS(EDGEPROXY_LIMIT_STAT_FIELD)
#undef EDGEPROXY_LIMIT_STAT_FIELD
  void append_lines(std::string& out, const std::string& prefix) const;
};

// What an HTTP listener (`mode http`, docs/http-mode.md) did, per outcome. Counted by the
// workers with relaxed atomics, once per request.
// clang-format off
#define EDGEPROXY_HTTP_STATS(COUNTER)                                                              \
  COUNTER(requests)            /* requests forwarded to a server */                                \
  COUNTER(reused)              /* of which on a pooled connection that served an earlier one */   \
  COUNTER(queued)              /* requests that waited in the pending queue */                    \
  COUNTER(retried)             /* resent once after the server closed an idle connection */       \
  COUNTER(upgrades)            /* 101 answers: the server connection left the pool (tunnel) */    \
  COUNTER(bad_requests)        /* 400: a head or framing refused (smuggling included) */          \
  COUNTER(request_timeouts)    /* 408: the head was not complete within request-timeout */        \
  COUNTER(bodies_too_large)    /* 413: a body over max-body */                                    \
  COUNTER(heads_too_large)     /* 431: the head (rewritten) did not fit one 8 KiB block */        \
  COUNTER(bad_gateway)         /* 502: no server connection, or it failed before a response */    \
  COUNTER(pending_full)        /* 503: the pending queue was at max-pending */                    \
  COUNTER(pending_timeouts)    /* 503: no connection turned IDLE within pending-timeout */        \
  COUNTER(no_server)           /* 503: no server of the backend is usable */                      \
  COUNTER(gateway_timeouts)    /* 504: connect timeout */                                         \
  COUNTER(bad_responses)       /* a server's response head or framing refused: closed */
// clang-format on

struct HttpStats {
#define EDGEPROXY_HTTP_STAT_FIELD(name) std::atomic<uint64_t> name{0};
  EDGEPROXY_HTTP_STATS(EDGEPROXY_HTTP_STAT_FIELD)
#undef EDGEPROXY_HTTP_STAT_FIELD
  void append_lines(std::string& out, const std::string& prefix) const;
};

struct ListenerRuntime {
  ObjectStats stats;
  RouteStats route;
  ForwardStats forward;
  HttpStats http;
  LimitStats limits;
};

// Per-connection and per-client limits of a listener (docs/limits.md); 0 = none everywhere. A
// reload applies the new values to connections already open (through the worker's newest
// version of the listener), except the per-client ones, which are checked at accept.
struct ListenerLimits {
  uint32_t max_lifetime_s = 0;  // total connection time, from accept
  uint64_t upload_limit = 0;    // bytes from the client, per connection
  uint64_t download_limit = 0;  // bytes to the client, per connection
  RateLimit rate_up;            // bytes per second read from the client
  RateLimit rate_down;          // bytes per second read from the server
  uint32_t max_per_client = 0;  // open connections per client address
  uint32_t new_per_client = 0;  // new connections per second per client address (burst: as many)
  uint8_t ipv6_prefix = 64;     // IPv6 clients are grouped by this prefix
  bool per_connection() const noexcept {
    return max_lifetime_s != 0 || upload_limit != 0 || download_limit != 0 || rate_up.enabled() ||
           rate_down.enabled();
  }
  bool per_client() const noexcept { return max_per_client != 0 || new_per_client != 0; }
};

// Per backend, the server connections of the workers' pools (docs/http-mode.md).
// clang-format off
#define EDGEPROXY_POOL_STATS(COUNTER, GAUGE)                                                       \
  COUNTER(pool_opens)          /* pooled connections opened */                                     \
  COUNTER(pool_closes)         /* closed: server close, error, idle timeout, Connection: close */  \
  GAUGE(pool_idle)             /* IDLE now (free, or parked on an idle client) */                 \
  GAUGE(pool_active)           /* ACTIVE now (serving a request) */                               \
  GAUGE(pending)               /* requests waiting for a connection now */
// clang-format on

struct PoolStats {
#define EDGEPROXY_POOL_STAT_FIELD(name) std::atomic<uint64_t> name{0};
  EDGEPROXY_POOL_STATS(EDGEPROXY_POOL_STAT_FIELD, EDGEPROXY_POOL_STAT_FIELD)
#undef EDGEPROXY_POOL_STAT_FIELD
  void append_lines(std::string& out, const std::string& prefix) const;
};

struct BackendRuntime {
  ObjectStats stats;
  PoolStats pool;
};

// How HTTP listeners' requests use a backend's servers (docs/http-mode.md, decision 0013). Per
// worker and per server: connections are opened when a request needs one and none is IDLE, up
// to `size`, and kept.
struct PoolSpec {
  uint32_t size = 16;                   // persistent connections per worker per server
  uint32_t max_pending = 1024;          // requests waiting per worker; 503 beyond
  uint32_t pending_timeout_ms = 5'000;  // 503 when no connection turned IDLE in time
  uint32_t idle_timeout_ms = 60'000;    // an IDLE connection unused this long is closed
};

struct HealthCheck {
  bool enabled = false;  // active checks; passive checks always count toward `fall`
  uint32_t interval_ms = 2000;
  uint32_t timeout_ms = 1000;  // connect (and expect) deadline of one check
  uint32_t rise = 2;
  uint32_t fall = 3;
  std::string send;    // bytes sent once connected (escapes already decoded)
  std::string expect;  // the reply must start with these bytes; empty: connect only
};

// PROXY protocol header sent to a server before the client's first byte.
inline constexpr uint8_t kProxyProtocolInherit = 0xff;  // a server: as its backend says

struct ServerSpec {
  std::string name;
  Endpoint endpoint;
  uint32_t weight = 1;           // 1-256; 0 is refused (use `disable`, later, to drain)
  bool backup = false;           // used only while no non-backup server is up
  uint32_t max_connections = 0;  // connections at once across workers; 0 = no limit. A full
                                 // server is skipped by every algorithm (`first` fills in order)
  uint8_t proxy_protocol = kProxyProtocolInherit;  // 0 none, 1 or 2, or the backend's
  SourceLocation where;
  std::vector<SocketAddress> addresses;  // resolve_topology(): in order of preference
  std::shared_ptr<ServerRuntime> runtime;
};

struct BackendSpec {
  std::string name;
  Balance balance = Balance::kRoundRobin;
  std::vector<ServerSpec> servers;
  HealthCheck check;
  uint32_t connect_timeout_ms = 5000;
  uint32_t retries = 2;        // connects retried on another server after the first fails
  uint8_t proxy_protocol = 0;  // 0 none, 1 or 2: PROXY header version sent to its servers
  PoolSpec pool;               // used by HTTP listeners only
  // `tcp-smart-connect` (decision 0017): a server socket with bytes to send once connected (the
  // client's, or a PROXY header) connects with TCP_QUICKACK off, so the handshake's last ACK
  // rides with them.
  bool tcp_smart_connect = false;
  bool hashed = false;  // a `hash` rule picks its servers: its balancer keeps a ring
  bool hidden = false;  // made for a rule's `server HOST:PORT` or a map's HOST:PORT
  // An HTTP listener uses it (as its backend or in a rule): its servers get pools, and its
  // PoolStats are reported. Set by the parser and topology_from_command_line().
  bool pooled = false;
  SourceLocation where;

  // The PROXY protocol version sent to server `s` (0: none).
  uint8_t proxy_protocol_of(uint32_t s) const noexcept {
    const uint8_t v = servers[s].proxy_protocol;
    return v == kProxyProtocolInherit ? proxy_protocol : v;
  }
  // Whether some server gets a PROXY header (set by resolve_topology(): read per accept).
  bool sends_proxy_header = false;
  std::shared_ptr<BackendRuntime> runtime;
};

// What a listener's clients speak: bytes to relay, HTTP to a forward proxy, or HTTP to a
// reverse proxy with pooled server connections.
enum class ListenerMode : uint8_t { kTcp, kForward, kHttp };
const char* to_string(ListenerMode m) noexcept;  // "tcp", "forward", "http"

// An HTTP listener's settings (docs/http-mode.md).
struct HttpSpec {
  http::RequestRules request;
  http::ResponseRules response;
  uint64_t max_body = 0;                 // request bodies longer than this get 413 (0: no limit)
  uint32_t request_timeout_ms = 10'000;  // a request head must be complete within this (408)
};

// A forward listener's settings (docs/forward-proxy.md).
struct ForwardSpec {
  std::shared_ptr<const Credentials> credentials;  // `auth basic FILE`: null = no authentication
  std::string auth_path;                           // the file, as named (read at every reload)
  std::string realm = "edgeproxy";
  // The destination policy for CONNECT (ports default 443) and for absolute-form requests
  // (ports default 80 and 443); the same networks for both.
  DestinationPolicy connect_policy;
  DestinationPolicy http_policy;
  bool open = false;                     // `open yes`: no auth on a non-loopback bind is intended
  uint32_t request_timeout_ms = 10'000;  // the head must be complete within this (408)
  uint32_t connect_timeout_ms = 5'000;   // resolve and connect of a named destination (504)
  uint32_t dns_ttl_ms = 60'000;          // the per-worker cache keeps a name this long (0: off)
};

struct ListenerSpec {
  std::string name;
  ListenerMode mode = ListenerMode::kTcp;
  ForwardSpec forward;  // kForward only
  HttpSpec http;        // kHttp only
  std::vector<Endpoint> binds;
  uint32_t backend = 0;            // index into Topology::backends; with routes, the default
                                   // when no rule decides (kNoBackendIndex: none, close)
  uint32_t idle_timeout_s = 3600;  // 0 = none
  // Slow-client acceleration (decision 0011): bytes the server-to-client direction may hold in
  // pool blocks (0 = off; mode tcp only). Copied into each connection at accept.
  uint32_t accelerate_bytes = 0;
  // Content-aware routing (docs/routing.md): the rules, a PROXY header expected first, and
  // the limits of the inspection with what happens when one is reached.
  RouteSet routes;
  bool accept_proxy = false;
  uint32_t inspect_timeout_ms = 5000;
  uint32_t inspect_bytes = 8192;
  Action on_timeout;  // default: close
  Action on_full;     // default: close
  bool inspects() const noexcept { return accept_proxy || !routes.empty(); }
  // `tcp-smart-accept` (decision 0017): TCP_QUICKACK off on its TCP sockets, so a client's first
  // request is acknowledged by the answer. kByMode until written: on where clients speak first
  // and wait for an answer (forward, http; HAProxy's default in HTTP mode), off in tcp.
  static constexpr uint8_t kByMode = 2;
  uint8_t tcp_smart_accept = kByMode;
  bool smart_accept() const noexcept {
    return tcp_smart_accept == kByMode ? mode != ListenerMode::kTcp : tcp_smart_accept != 0;
  }
  // `defer-accept` (decision 0017): TCP_DEFER_ACCEPT, a connection is accepted once its client's
  // first bytes arrived (or after this many seconds); 0 = off.
  uint32_t defer_accept_s = 0;
  ListenerLimits limits;
  // Per-client admission (limits.per_client()): shared by every worker, kept across reloads
  // while the listener keeps its name and IPv6 prefix (adopt_runtime()); null otherwise.
  std::shared_ptr<ClientTable> clients;
  uint32_t unix_mode = 0;  // Unix binds: chmod after bind (0 = leave the umask's)
  SourceLocation where;
  std::vector<SocketAddress> addresses;  // resolve_topology(): one per bind, same order
  std::shared_ptr<ListenerRuntime> runtime;
};

struct Topology {
  uint64_t epoch = 0;  // set when installed: 1 at start, +1 per successful reload
  std::string source;  // the file it came from, or "command line"
  Config global;       // process-wide settings (workers, limits, splice, logging)
  std::vector<ListenerSpec> listeners;
  std::vector<BackendSpec> backends;
  std::vector<MapSpec> maps;  // `map NAME FILE`: read at load and at every reload
  // global.metrics resolved by resolve_topology() (length 0: no metrics endpoint).
  SocketAddress metrics_address;
  std::vector<std::string> warnings;  // e.g. a backend no listener uses: "file:line:col: ..."

  // Servers over every backend, for summaries.
  size_t server_count() const noexcept {
    size_t n = 0;
    for (const BackendSpec& b : backends) n += b.servers.size();
    return n;
  }
};

// Resolves every listener bind and server address (names at load and at every reload). Error:
// one line naming where the address was written.
Result<Ok> resolve_topology(Topology& t);

// Gives `next` its live state: each listener, backend and server that `previous` also had (by
// name, and for servers by address too) shares its runtime object; the others get fresh ones.
// `previous` may be null (start-up).
void adopt_runtime(Topology& next, const Topology* previous);

}  // namespace edgeproxy
