// Topology helpers: printing, resolution and runtime adoption; see topology.h.
#include "edgeproxy/topology.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <utility>

#include "edgeproxy/random_seed.h"
#include "edgeproxy/topology_parser.h"

namespace edgeproxy {

std::string SourceLocation::to_string() const {
  if (line == 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Endpoint::to_string() const {
  if (is_unix()) return "unix:" + unix_path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

const char* to_string(Balance b) noexcept {
  switch (b) {
    case Balance::kRoundRobin:
      return "roundrobin";
    case Balance::kLeastConn:
      return "leastconn";
    case Balance::kRandom:
      return "random";
    case Balance::kSource:
      return "source";
    case Balance::kFirst:
      return "first";
    case Balance::kRtt:
      return "rtt";
    case Balance::kMostIdle:
      return "most-idle";
  }
  return "unknown";
}

const char* to_string(ListenerMode m) noexcept {
  switch (m) {
    case ListenerMode::kTcp:
      return "tcp";
    case ListenerMode::kForward:
      return "forward";
    case ListenerMode::kHttp:
      return "http";
  }
  return "unknown";
}

void ObjectStats::append_lines(std::string& out, const std::string& prefix) const {
#define EDGEPROXY_OBJECT_STAT_LINE(name) \
  out += "  " + prefix + #name + " " + std::to_string(name.load(std::memory_order_relaxed)) + "\n";
  EDGEPROXY_OBJECT_STATS(EDGEPROXY_OBJECT_STAT_LINE, EDGEPROXY_OBJECT_STAT_LINE)
#undef EDGEPROXY_OBJECT_STAT_LINE
}

void RouteStats::append_lines(std::string& out, const std::string& prefix) const {
#define EDGEPROXY_ROUTE_STAT_LINE(name) \
  out += "  " + prefix + #name + " " + std::to_string(name.load(std::memory_order_relaxed)) + "\n";
  EDGEPROXY_ROUTE_STATS(EDGEPROXY_ROUTE_STAT_LINE)
}

void ForwardStats::append_lines(std::string& out, const std::string& prefix) const {
  EDGEPROXY_FORWARD_STATS(EDGEPROXY_ROUTE_STAT_LINE)
}
void LimitStats::append_lines(std::string& out, const std::string& prefix) const {
  EDGEPROXY_LIMIT_STATS(EDGEPROXY_ROUTE_STAT_LINE)
}
void HttpStats::append_lines(std::string& out, const std::string& prefix) const {
  EDGEPROXY_HTTP_STATS(EDGEPROXY_ROUTE_STAT_LINE)
}
void PoolStats::append_lines(std::string& out, const std::string& prefix) const {
  EDGEPROXY_POOL_STATS(EDGEPROXY_ROUTE_STAT_LINE, EDGEPROXY_ROUTE_STAT_LINE)
}
#undef EDGEPROXY_ROUTE_STAT_LINE

namespace {

bool is_local(const SocketAddress& a) noexcept {
  if (a.family() == AF_UNIX) return true;
  if (a.family() == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a.storage);
    return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  }
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
  return a.family() == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
}

// The addresses `e` names: its Unix path, or every address its host resolves to.
Result<std::vector<SocketAddress>> resolve_endpoint(const Endpoint& e, const std::string& what) {
  if (e.is_unix()) {
    auto a = unix_address(e.unix_path);
    if (!a.ok()) return Error{what + ": " + a.error()};
    return std::vector<SocketAddress>{a.value()};
  }
  return resolve_all(e.host, e.port, what.c_str());
}

}  // namespace

Result<Ok> resolve_topology(Topology& t) {
  struct Bound {
    SocketAddress address;
    std::string where;
  };
  std::vector<Bound> bound;
  for (ListenerSpec& l : t.listeners) {
    l.addresses.clear();
    for (const Endpoint& e : l.binds) {
      const std::string where =
          l.where.to_string() + ": listener '" + l.name + "' bind " + e.to_string();
      auto all = resolve_endpoint(e, where);
      if (!all.ok()) return Error{all.error()};
      const SocketAddress a = all.value().front();  // a listener binds the first address
      for (const Bound& b : bound) {
        // Port 0 asks for any free port: two such binds do not collide.
        if (b.address == a && (a.family() == AF_UNIX || a.port() != 0)) {
          return Error{where + " resolves to " + a.to_string() + ", as does " + b.where +
                       " (expected different addresses)"};
        }
      }
      bound.push_back(Bound{a, where});
      l.addresses.push_back(a);
      // A forward proxy anyone can reach and no one must log in to is an open relay: only on
      // loopback (or a Unix socket), or when the file says so.
      if (l.mode == ListenerMode::kForward && l.forward.credentials == nullptr && !l.forward.open &&
          !is_local(a)) {
        return Error{where + ": a forward proxy on " + a.to_string() +
                     " without 'auth' would be an open relay (expected 'auth basic FILE', a "
                     "loopback bind, or 'open yes' if anyone may use it)"};
      }
    }
  }
  t.metrics_address = SocketAddress{};
  if (!t.global.metrics.empty()) {
    const std::string where = "metrics " + t.global.metrics;
    auto e = parse_endpoint(t.global.metrics, 1);  // checked by the option's parser already
    if (!e.ok()) return Error{where + ": " + e.error()};
    auto a = resolve(e.value().host, e.value().port, "metrics");
    if (!a.ok()) return Error{a.error()};
    for (const Bound& b : bound) {
      if (b.address == a.value()) {
        return Error{where + " resolves to " + a.value().to_string() + ", as does " + b.where +
                     " (expected different addresses)"};
      }
    }
    t.metrics_address = a.value();
  }
  // The proxy's own addresses are never a forward proxy's destination (a loop back into it).
  bool forward = false;
  for (const ListenerSpec& l : t.listeners) forward |= l.mode == ListenerMode::kForward;
  if (forward) {
    auto local = interface_addresses();
    if (!local.ok()) return Error{"forward proxy: " + local.error()};
    for (ListenerSpec& l : t.listeners) {
      if (l.mode != ListenerMode::kForward) continue;
      l.forward.connect_policy.set_local_addresses(local.value());
      l.forward.http_policy.set_local_addresses(local.value());
    }
  }
  for (BackendSpec& b : t.backends) {
    b.sends_proxy_header = false;
    for (uint32_t i = 0; i < b.servers.size(); ++i) {
      b.sends_proxy_header |= b.proxy_protocol_of(i) != 0;
    }
    for (ServerSpec& s : b.servers) {
      const std::string where = s.where.to_string() + ": backend '" + b.name + "' server '" +
                                s.name + "' " + s.endpoint.to_string();
      auto all = resolve_endpoint(s.endpoint, where);
      if (!all.ok()) return Error{all.error()};
      s.addresses = std::move(all.value());
    }
  }
  return Ok{};
}

void adopt_runtime(Topology& next, const Topology* previous) {
  for (ListenerSpec& l : next.listeners) {
    l.runtime = nullptr;
    if (previous != nullptr) {
      for (const ListenerSpec& p : previous->listeners) {
        if (p.name == l.name) l.runtime = p.runtime;
      }
    }
    if (l.runtime == nullptr) l.runtime = std::make_shared<ListenerRuntime>();
    // A rule keeps its counters while the listener has the same rule at the same place.
    const ListenerSpec* old = nullptr;
    if (previous != nullptr) {
      for (const ListenerSpec& p : previous->listeners) {
        if (p.name == l.name) old = &p;
      }
    }
    // The client table keeps its counts across a reload; a new IPv6 prefix groups clients
    // differently, so it starts a new table (connections accepted before keep counting in the
    // old one, which their version holds).
    l.clients = nullptr;
    if (l.limits.per_client()) {
      if (old != nullptr && old->clients != nullptr &&
          old->clients->ipv6_prefix() == l.limits.ipv6_prefix) {
        l.clients = old->clients;
      } else {
        l.clients =
            std::make_shared<ClientTable>(ClientTable::entries_for(next.global.max_connections),
                                          l.limits.ipv6_prefix, random_seed(&l));
      }
    }
    for (size_t r = 0; r < l.routes.rules.size(); ++r) {
      RouteRule& rule = l.routes.rules[r];
      if (old != nullptr && r < old->routes.rules.size() &&
          old->routes.rules[r].written == rule.written) {
        rule.runtime = old->routes.rules[r].runtime;
      }
      if (rule.runtime == nullptr) rule.runtime = std::make_shared<RuleRuntime>();
    }
  }
  for (BackendSpec& b : next.backends) {
    const BackendSpec* old = nullptr;
    if (previous != nullptr) {
      for (const BackendSpec& p : previous->backends) {
        if (p.name == b.name) old = &p;
      }
    }
    b.runtime = old != nullptr ? old->runtime : nullptr;
    if (b.runtime == nullptr) b.runtime = std::make_shared<BackendRuntime>();
    for (ServerSpec& s : b.servers) {
      s.runtime = nullptr;
      if (old != nullptr) {
        for (const ServerSpec& p : old->servers) {
          if (p.name == s.name && p.endpoint.to_string() == s.endpoint.to_string()) {
            s.runtime = p.runtime;
            // The file's new weight wins over one set at run time.
            if (p.weight != s.weight) s.runtime->weight.store(0, std::memory_order_relaxed);
          }
        }
      }
      if (s.runtime == nullptr) s.runtime = std::make_shared<ServerRuntime>();
    }
  }
}

}  // namespace edgeproxy
