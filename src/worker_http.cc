// The Worker's HTTP mode (docs/http-mode.md, decision 0013): requests parsed and framed as the
// forward proxy's (decision 0010), each routed and balanced on its own, on server connections
// the worker keeps in per-backend pools. Methods of Worker; see worker.h.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "edgeproxy/http_rules.h"
#include "edgeproxy/log.h"
#include "edgeproxy/relay.h"
#include "edgeproxy/server_health.h"
#include "edgeproxy/worker.h"

namespace edgeproxy {
namespace {

// Sweep of the free sockets: how often.
constexpr int64_t kPoolSweepMs = 1000;

// RFC 9110 section 9.2.2: a request that may be sent twice with the effect of once.
bool idempotent_method(std::string_view m) noexcept {
  return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS" || m == "TRACE";
}

// A free socket is alive when the server neither closed it nor sent anything: a peek says
// EAGAIN. 0 is its FIN, bytes are unsolicited (nobody asked), an error is a reset.
//
// One freed less than kTrustedIdleMs ago is taken (or kept by the sweep) without the peek: a
// server that closes a connection it kept alive that soon is not one to spend a syscall per
// request on (under churn a free socket is taken again within microseconds). Should it have,
// the request meets the keep-alive race, which is retried.
constexpr int64_t kTrustedIdleMs = 10;

bool alive(int fd) noexcept {
  std::byte b;
  const ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

void add(std::atomic<uint64_t>& gauge, int64_t delta) noexcept {
  gauge.fetch_add(static_cast<uint64_t>(delta), std::memory_order_relaxed);
}

// Whether a request rule's value holds the variable ($server, $request_id).
bool names(const http::RequestRules& rules, http::ValueTemplate::Var var) noexcept {
  for (const http::HeaderRule& rule : rules.headers) {
    for (const http::ValueTemplate::Part& part : rule.value.parts) {
      if (part.var == var) return true;
    }
  }
  return false;
}

// The last response's bytes have all gone to the client: none left in the server side's block, in
// its pipe, or held aside. Before that, detaching the server connection would drop them.
bool response_out(const Connection& c, const ForwardExchange& ex) noexcept {
  return !c.upstream.in.attached() && c.upstream.piped == 0 && ex.http.spill == 0;
}

// The attached server connection may carry another request: the server did not say it closes
// after its last response (Connection: close), and neither its end nor an error was seen.
bool upstream_reusable(const Connection& c, const ForwardExchange& ex) noexcept {
  return !ex.response_close && !(c.upstream.flags & (kEof | kFailed | kPeerShut));
}

// The request went out whole: its body ended and every byte approved for the server was written.
// A response can end first (a 401 to an upload from a client that asked to close, whose body's
// rest is then dropped): that server still expects body bytes and would read the next request
// on the connection as them.
bool request_sent_whole(const Connection& c, const ForwardExchange& ex) noexcept {
  const Side& client = c.client;
  return ex.request_done && client.gate == 0 && client.splice_left == 0 && client.piped == 0;
}

// Nothing more is owed from the client once its response is out (decision 0018): its request
// asked to close and was read to its end, and no byte past it was read (a pipelined request in
// the block or the routing area). A client that asked to close must not send another request.
bool client_over(const Connection& c, const ForwardExchange& ex, uint32_t region) noexcept {
  return ex.http.asked_close && ex.request_done && ex.phase == ForwardPhase::kDone && !ex.tunnel &&
         !ex.dropped && region == 0 && !(c.client.in.attached() && c.client.in.readable() > 0);
}

}  // namespace

void Worker::start_http(Connection& c, Handle h, const ListenerSpec& ls,
                        const SocketAddress& client) noexcept {
  Version& v = versions_[c.version];
  v.routing->reset(h.index).header_read = true;
  ForwardExchange& ex = v.forward->reset(h.index);
  ex.head_started_ms = now_.ms;
  ex.head_evaluated = UINT32_MAX;
  // The variables' client address and port, once per connection, before the first pump: a
  // request that takes a free server connection is built in that pump.
  if (client.length != 0) {
    const sockaddr_storage& peer = client.storage;
    uint16_t port = 0;
    if (peer.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&peer);
      inet_ntop(AF_INET, &a->sin_addr, ex.http.client_addr.data(),
                static_cast<socklen_t>(ex.http.client_addr.size()));
      port = ntohs(a->sin_port);
    } else if (peer.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&peer);
      inet_ntop(AF_INET6, &a->sin6_addr, ex.http.client_addr.data(),
                static_cast<socklen_t>(ex.http.client_addr.size()));
      port = ntohs(a->sin6_port);
    } else {
      std::memcpy(ex.http.client_addr.data(), "unix", 4);
    }
    ex.http.client_addr_length = static_cast<uint8_t>(std::strlen(ex.http.client_addr.data()));
    ex.http.client_port_length = static_cast<uint8_t>(
        std::snprintf(ex.http.client_port.data(), ex.http.client_port.size(), "%u", port));
  }
  // Nothing passes either way until the worker approves it (decision 0010).
  c.client.gate = 0;
  c.upstream.gate = 0;
  c.pooled = true;
  relay::on_inspecting(c, ls.defer_accept_s != 0);
  timers_.arm(h.index, now_.ms + ls.http.request_timeout_ms);
  pump(c, h.index);
}

void Worker::http_step(Connection& c, uint32_t index) noexcept {
  const Handle h = slab_.handle_of(index);
  ForwardExchange& ex = exchange_of(index);
  if (c.detaching) {
    // Its completions come back here.
    if (!transport_.detach_upstream(c, h, ex.http.end_after_detach)) return;
    finish_detach(c, h);
    if (c.state >= State::kLingering) return;
  }
  forward_step(c, index);
  if (c.state >= State::kLingering || !c.pooled) return;
  if ((c.client.flags & kEof) && ex.phase == ForwardPhase::kHead && c.upstream.fd >= 0 &&
      !c.detaching && routing_of(c, index)->length == 0) {
    // The client ended between requests: it gets a FIN, and the server connection goes back;
    // once the last response is out (settle_upstream() detaches then), the client may have
    // half-closed while still reading it.
    ex.phase = ForwardPhase::kDone;
    ex.http.end_after_detach = true;
    if (c.state == State::kRelaying && response_out(c, ex)) {
      begin_detach(c, h, !ex.response_pending);
      return;
    }
  }
  settle_upstream(c, h, ex);
}

void Worker::decide_http(Connection& c, Handle h, RoutingContext& ctx, ForwardExchange& ex,
                         const http::RequestHead& head) noexcept {
  const ListenerSpec& ls = listener_of(c);
  HttpStats& counts = ls.runtime->http;
  http::Framing framing;
  http::ConnectionTokens tokens;
  // CONNECT is a forward proxy's; "*" has no path to route on.
  if (http::request_framing(head, framing) != http::FramingStatus::kOk ||
      framing.kind == http::BodyKind::kTunnel || !head.path.starts_with("/") ||
      !http::parse_connection({head.headers.data(), head.header_count}, tokens)) {
    counts.bad_requests.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 400);
    return;
  }
  if (ls.http.max_body != 0 && framing.kind == http::BodyKind::kLength &&
      framing.length > ls.http.max_body) {
    counts.bodies_too_large.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 413);
    return;
  }
  // The backend: the first rule that decides on this head, else the listener's.
  uint32_t backend = ls.backend;
  if (!ls.routes.empty()) {
    route::Scratch scratch{{hello_scratch_.get(), hello_scratch_bytes_}, 0};
    Captures captures;
    const route::Decision d =
        route::decide(ls.routes, {ctx.region, head.length}, true, scratch, captures);
    RouteStats& route = ls.runtime->route;
    if (d.verdict == route::Verdict::kDecided) {
      const RouteRule& rule = ls.routes.rules[d.rule];
      rule.runtime->matches.fetch_add(1, std::memory_order_relaxed);
      switch (rule.action.kind) {
        case ActionKind::kBackend:
        case ActionKind::kServer:
          route.routed.fetch_add(1, std::memory_order_relaxed);
          backend = rule.action.backend;
          break;
        case ActionKind::kReject:
          route.rejects.fetch_add(1, std::memory_order_relaxed);
          relay::abort(c, EndReason::kRouteReject);
          return;
        default:  // close (the parser allows nothing else here)
          route.closes.fetch_add(1, std::memory_order_relaxed);
          if (rule.action.text.empty()) {
            forward_answer(c, 403);
            return;
          }
          // The rule's text is the whole answer (a status line and fields the user wrote),
          // then the connection closes.
          if (c.upstream.fd >= 0) leave_pool(c);
          unpark(c, h.index);
          c.pooled = false;
          ex.phase = ForwardPhase::kDone;
          if (c.state < State::kRelaying) {
            refuse(c, rule.action.text, false, EndReason::kRouteClose);
          } else if (!sys::send_whole(c.client.fd, rule.action.text)) {
            relay::abort(c, EndReason::kRouteClose);
          } else {
            relay::set_end(c, EndReason::kRouteClose);
            relay::finish(c);
          }
          return;
      }
    } else {
      route.defaulted.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (backend == kNoBackendIndex) {
    counts.no_server.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 503);
    return;
  }
  std::string_view upgrade_field;
  bool upgrade = false;
  if (tokens.upgrade) {
    for (uint32_t i = 0; i < head.header_count; ++i) {
      if (http::iequals(head.headers[i].name, "Upgrade")) {
        upgrade = !upgrade && upgrade_field.empty();
        upgrade_field = head.headers[i].value;
      }
    }
  }
  // Framing::close holds HTTP/1.0 without "Connection: keep-alive"; an HTTP/1.0 client that
  // asked for it is answered "Connection: keep-alive". The pooled server connection is kept
  // either way.
  ex.client_close = framing.close;
  ex.head_request = head.method == "HEAD";
  ex.request_body.reset(framing);
  ex.request_done = framing.kind == http::BodyKind::kNone;
  ex.tunnel = false;
  ex.target = ForwardTarget::kBackend;
  HttpExchange& hx = ex.http;
  hx.backend = static_cast<uint16_t>(backend);
  hx.rewritten = false;
  hx.retried = false;
  hx.response_started = false;
  hx.kept = 0;
  hx.body_bytes = 0;
  hx.upgrade = upgrade;
  hx.pinned = false;
  hx.http10 = head.version_minor == 0;
  hx.asked_close = framing.close;
  hx.idempotent = idempotent_method(head.method);
  hx.end_after_detach = false;
  ex.requests++;
  versions_[c.version].topology->backends[backend].runtime->stats.connections.fetch_add(
      1, std::memory_order_relaxed);
  relay::hold_for_replay(c);
  ex.phase = ForwardPhase::kAssigning;
  assign_server(c, h, Balancer::kNoServer);
}

bool Worker::http_usable(const Connection& c, uint32_t backend, uint32_t s) const noexcept {
  const ServerRuntime& r = *versions_[c.version].topology->backends[backend].servers[s].runtime;
  return r.up.load(std::memory_order_relaxed) && !r.drained.load(std::memory_order_relaxed);
}

uint32_t Worker::pick_http_server(Connection& c, uint32_t backend, uint32_t avoid) noexcept {
  Version& v = versions_[c.version];
  const BackendSpec& b = v.topology->backends[backend];
  ServerPool& pool = v.pools[backend];
  if (b.balance == Balance::kRtt || b.balance == Balance::kMostIdle) {
    for (uint32_t s = 0; s < b.servers.size(); ++s) {
      // rtt: a server not measured yet costs 0 and is tried first. most-idle: the fewer IDLE
      // connections, the higher the cost.
      v.costs[s] = b.balance == Balance::kRtt ? pool.at(s).rtt_us : pool.size() - pool.idle(s);
    }
    return v.balancers[backend].pick_least({v.costs.data(), b.servers.size()}, avoid);
  }
  SocketAddress client;
  if (b.balance == Balance::kSource) {
    client.length = sizeof client.storage;
    if (getpeername(c.client.fd, reinterpret_cast<sockaddr*>(&client.storage), &client.length) !=
        0) {
      client.length = 0;
    }
  }
  return v.balancers[backend].pick(client, avoid);
}

void Worker::assign_server(Connection& c, Handle h, uint32_t avoid) noexcept {
  ForwardExchange& ex = exchange_of(h.index);
  const uint32_t backend = ex.http.backend;
  HttpStats& counts = listener_of(c).runtime->http;
  uint32_t s = ex.http.chosen != UINT16_MAX ? ex.http.chosen : pick_http_server(c, backend, avoid);
  ex.http.chosen = UINT16_MAX;
  if (c.upstream.fd >= 0 && !c.detaching) {
    // A request pipelined behind a response that ended the server's side (Connection: close,
    // or its end already seen) must not follow it on this connection: the server has closed or
    // is closing it, and a request sent whole there is lost to the race (a POST is not retried).
    const bool reusable = upstream_reusable(c, ex);
    if (s == c.server && c.backend == backend && reusable) {
      // The parked connection is to that server: the request goes out on it at once.
      if (ex.http.parked) unpark(c, h.index);
      ex.http.reused = true;
      prepare_request(c, h);
      return;
    }
    // Another server, or a spent connection: this one goes back to the pool (or is closed)
    // first; finish_detach() assigns again (at once on epoll) with the server picked here.
    ex.http.chosen = static_cast<uint16_t>(s);
    begin_detach(c, h, reusable);
    return;
  }
  if (s == Balancer::kNoServer) {
    counts.no_server.fetch_add(1, std::memory_order_relaxed);
    ++stats_.no_server;
    forward_answer(c, 503);
    return;
  }
  ServerPool& pool = pool_of(c, backend);
  if (take_free(c, h, backend, s)) return;
  if (pool.may_open(s, now_.ms)) {
    open_pooled(c, h, backend, s);
    return;
  }
  if (ex.http.pinned) {  // a retry that must stay on its server found no connection to it
    counts.bad_gateway.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 502);
    return;
  }
  // The server the balancer chose is busy: another usable one that has a free connection or
  // room, before the request waits.
  for (uint32_t t = 0; t < pool.servers(); ++t) {
    if (t != s && t != avoid && http_usable(c, backend, t) && take_free(c, h, backend, t)) return;
  }
  for (uint32_t t = 0; t < pool.servers(); ++t) {
    if (t != s && t != avoid && http_usable(c, backend, t) && pool.may_open(t, now_.ms)) {
      open_pooled(c, h, backend, t);
      return;
    }
  }
  wait_pending(c, h, backend);
}

bool Worker::free_socket_usable(const ServerPool::Idle& idle) const noexcept {
  if (const std::optional<bool> known = transport_.free_socket_alive(idle.fd)) return *known;
  return now_.ms - idle.since_ms < kTrustedIdleMs || alive(idle.fd);
}

bool Worker::take_free(Connection& c, Handle h, uint32_t backend, uint32_t s) noexcept {
  ServerPool& pool = pool_of(c, backend);
  PoolStats& gauges = versions_[c.version].topology->backends[backend].runtime->pool;
  ServerPool::Idle idle;
  while (pool.pop_free(s, idle)) {
    add(gauges.pool_idle, -1);
    if (free_socket_usable(idle)) {
      c.backend = static_cast<uint16_t>(backend);
      c.server = static_cast<uint16_t>(s);
      c.last_server = c.server;
      c.address = idle.address;
      c.upstream.fd = idle.fd;
      exchange_of(h.index).response_close = false;
      const ServerSpec& server = server_of(c);
      server.runtime->stats.connections.fetch_add(1, std::memory_order_relaxed);
      server.runtime->stats.current.fetch_add(1, std::memory_order_relaxed);
      add(gauges.pool_active, 1);
      exchange_of(h.index).http.attach_c2u = c.bytes_c2u;
      exchange_of(h.index).http.attach_u2c = c.bytes_u2c;
      if (const int err = transport_.adopt_upstream(c, h); err != 0) {
        log_error("cannot watch a pooled server connection: %s", std::strerror(err));
        leave_pool(c);
        forward_answer(c, 502);
        return true;
      }
      exchange_of(h.index).http.reused = true;
      arm_idle_timer(h.index);
      prepare_request(c, h);
      return true;
    }
    sys::close(idle.fd);
    --pool.at(s).open;
    gauges.pool_closes.fetch_add(1, std::memory_order_relaxed);
  }
  return false;
}

void Worker::open_pooled(Connection& c, Handle h, uint32_t backend, uint32_t s) noexcept {
  Version& v = versions_[c.version];
  ServerPool& pool = v.pools[backend];
  const BackendSpec& b = v.topology->backends[backend];
  ++pool.at(s).open;
  b.runtime->pool.pool_opens.fetch_add(1, std::memory_order_relaxed);
  add(b.runtime->pool.pool_active, 1);
  c.backend = static_cast<uint16_t>(backend);
  c.server = static_cast<uint16_t>(s);
  c.last_server = c.server;
  const ServerSpec& server = b.servers[s];
  server.runtime->stats.connections.fetch_add(1, std::memory_order_relaxed);
  server.runtime->stats.current.fetch_add(1, std::memory_order_relaxed);
  c.address = v.preferred[backend][s];
  if (c.address >= server.addresses.size()) c.address = 0;
  c.tried = 0;
  ForwardExchange& ex = exchange_of(h.index);
  ex.http.reused = false;
  ex.response_close = false;
  ex.http.attach_c2u = c.bytes_c2u;
  ex.http.attach_u2c = c.bytes_u2c;
  c.pooled = true;
  relay::on_routed(c);
  timers_.cancel(h.index);
  connect_upstream(c, h);
}

void Worker::wait_pending(Connection& c, Handle h, uint32_t backend) noexcept {
  const BackendSpec& b = versions_[c.version].topology->backends[backend];
  ServerPool& pool = pool_of(c, backend);
  HttpStats& counts = listener_of(c).runtime->http;
  if (pool.pending_count >= b.pool.max_pending) {
    counts.pending_full.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 503);
    return;
  }
  ForwardExchange& ex = exchange_of(h.index);
  pool.pending.push_back(slab_, h.index);
  ++pool.pending_count;
  ex.http.queued = true;
  add(b.runtime->pool.pending, 1);
  counts.queued.fetch_add(1, std::memory_order_relaxed);
  if (c.state == State::kInspecting) relay::on_routed(c);
  ex.phase = ForwardPhase::kAssigning;
  ex.http.pending_due_ms = now_.ms + b.pool.pending_timeout_ms;
  timers_.arm(h.index, pending_wake_ms(c, ex));
  serve_pending(c.version, backend);
}

int64_t Worker::pending_wake_ms(const Connection& c, const ForwardExchange& ex) const noexcept {
  // Requests wait for a connection to turn IDLE, which serves them at once, or for a server's
  // backoff to end, which nothing announces: the waiter's timer looks then.
  const ServerPool& pool = versions_[c.version].pools[ex.http.backend];
  int64_t wake = ex.http.pending_due_ms;
  for (uint32_t s = 0; s < pool.servers(); ++s) {
    const ServerPool::Server& server = pool.at(s);
    if (server.open < pool.size() && server.down_until_ms > now_.ms) {
      wake = std::min(wake, server.down_until_ms);
    }
  }
  return wake;
}

void Worker::unqueue(Connection& c, uint32_t index) noexcept {
  ForwardExchange& ex = exchange_of(index);
  if (!ex.http.queued) return;
  ServerPool& pool = pool_of(c, ex.http.backend);
  pool.pending.remove(slab_, index);
  --pool.pending_count;
  ex.http.queued = false;
  add(versions_[c.version].topology->backends[ex.http.backend].runtime->pool.pending, -1);
}

void Worker::serve_pending(uint16_t version, uint32_t backend) noexcept {
  Version& v = versions_[version];
  if (v.pools.empty()) return;
  ServerPool& pool = v.pools[backend];
  while (pool.pending_count > 0) {
    const uint32_t index = pool.pending.front();
    Connection& w = slab_.at(index);
    const Handle h = slab_.handle_of(index);
    bool served = false;
    for (uint32_t s = 0; s < pool.servers() && !served; ++s) {
      if (pool.at(s).free_count == 0 || !http_usable(w, backend, s)) continue;
      unqueue(w, index);
      served = take_free(w, h, backend, s);
      if (!served) {
        // Every free socket of it was dead: back to the front of the queue is not possible in
        // a FIFO; it takes the next server, or room, or waits again at the back.
        assign_server(w, h, Balancer::kNoServer);
        served = true;
      }
    }
    for (uint32_t s = 0; s < pool.servers() && !served; ++s) {
      if (!pool.may_open(s, now_.ms) || !http_usable(w, backend, s)) continue;
      unqueue(w, index);
      open_pooled(w, h, backend, s);
      served = true;
    }
    if (!served) break;
    if (w.state != State::kClosing) pump(w, index);
  }
  // Parked connections (idle keep-alive clients) give their sockets to the waiters left.
  for (uint32_t s = 0; s < pool.servers() && pool.pending_count > pool.stealing; ++s) {
    while (pool.at(s).parked > 0 && pool.pending_count > pool.stealing) {
      const uint32_t index = pool.at(s).parked_list.front();
      Connection& owner = slab_.at(index);
      ++pool.stealing;
      exchange_of(index).http.stolen = true;
      begin_detach(owner, slab_.handle_of(index), true);
      touch(owner, index);
    }
  }
}

void Worker::prepare_request(Connection& c, Handle h) noexcept {
  ForwardExchange& ex = exchange_of(h.index);
  RoutingContext& ctx = *routing_of(c, h.index);
  const ListenerSpec& ls = listener_of(c);
  HttpStats& counts = ls.runtime->http;
  HttpExchange& hx = ex.http;
  if (!hx.rewritten) {
    http::RequestHead head;
    uint32_t scanned = 0;
    const std::string_view bytes(reinterpret_cast<const char*>(ctx.region), ctx.length);
    http::ConnectionTokens tokens;
    const bool parsed = http::parse_request_head(bytes, scanned, head) == http::HeadStatus::kDone &&
                        http::parse_connection({head.headers.data(), head.header_count}, tokens);
    EDGEPROXY_CHECK(parsed);  // the same bytes were parsed when the request was decided
    // Formatted only for a rule that uses it (every request still takes a number).
    char request_id[24];
    int id_length = 0;
    ++request_ids_;
    if (names(ls.http.request, http::ValueTemplate::Var::kRequestId)) {
      id_length = std::snprintf(request_id, sizeof request_id, "%08x%012llx", id_,
                                static_cast<unsigned long long>(request_ids_));
    }
    const http::RuleVars vars{{hx.client_addr.data(), hx.client_addr_length},
                              {hx.client_port.data(), hx.client_port_length},
                              ls.name,
                              server_of(c).name,
                              {request_id, static_cast<size_t>(id_length)}};
    const uint32_t n = http::build_request_head(head, tokens, ls.http.request, vars, hx.upgrade,
                                                {hello_scratch_.get(), hello_scratch_bytes_});
    const uint32_t after = ctx.length - head.length;
    if (n == 0 || n + after > ctx.capacity || n > kMaxForwardHeadBytes) {
      counts.heads_too_large.fetch_add(1, std::memory_order_relaxed);
      leave_pool(c);
      forward_answer(c, 431);
      return;
    }
    std::memmove(ctx.region + n, ctx.region + head.length, after);
    std::memcpy(ctx.region, hello_scratch_.get(), n);
    ctx.length = n + after;
    ex.replay_end = n;
    if (!ex.request_done) {
      const http::BodyProgress p = ex.request_body.consume({ctx.region + n, after});
      if (p.status == http::BodyStatus::kInvalid) {
        counts.bad_requests.fetch_add(1, std::memory_order_relaxed);
        leave_pool(c);
        forward_answer(c, 400);
        return;
      }
      ex.replay_end += p.used;
      hx.body_bytes += p.used;
      ex.request_done = p.status == http::BodyStatus::kDone;
    }
    // The whole request fits the region: it is kept until its response starts, for a retry.
    hx.kept = ex.request_done ? ex.replay_end : 0;
    hx.rewritten = true;
  } else {
    ex.replay_end = hx.kept;  // a retry: the kept request again, from its first byte
  }
  ctx.replayed = 0;
  ex.response_pending = true;
  ex.response_head_done = false;
  ex.response_copied = 0;
  ex.response_scanned = 0;
  hx.response_started = false;
  hx.sent_ns = now_.ns;
  ex.phase = ForwardPhase::kReplaying;
  counts.requests.fetch_add(1, std::memory_order_relaxed);
  if (hx.reused) counts.reused.fetch_add(1, std::memory_order_relaxed);
  c.upstream.gate = 0;
  timers_.cancel(h.index);
  arm_idle_timer(h.index);
}

void Worker::http_connected(Connection& c, uint32_t index) noexcept {
  pool_of(c, c.backend).mark_up(c.server);
  prepare_request(c, slab_.handle_of(index));
}

void Worker::http_connect_failed(Connection& c, Handle h, int err) noexcept {
  if (connect_next_address(c, h, err)) return;
  const BackendSpec& b = backend_of(c);
  const ServerSpec& server = server_of(c);
  const uint32_t backend = c.backend;
  const uint32_t failed = c.server;
  ServerPool& pool = pool_of(c, backend);
  --pool.at(failed).open;
  pool.mark_down(failed, now_.ms);
  add(b.runtime->pool.pool_active, -1);
  if (on_connect_failure(*server.runtime, b.check, now_.ms)) {
    log_transition(b, server, HealthTransition::kDown,
                   (std::string("connect: ") + std::strerror(err)).c_str(), now_.ms);
  }
  leave_http_server(c, h.index);
  ForwardExchange& ex = exchange_of(h.index);
  if (ex.http.rewritten) ex.http.rewritten = ex.http.kept > 0;  // what a retry can send again
  c.state = State::kInspecting;
  if (c.retries < b.retries && !fast_stop_ && (ex.http.kept > 0 || !ex.http.rewritten)) {
    ++c.retries;
    ++stats_.connect_retries;
    b.runtime->stats.retries.fetch_add(1, std::memory_order_relaxed);
    assign_server(c, h, failed);
  } else {
    HttpStats& counts = listener_of(c).runtime->http;
    (err == ETIMEDOUT ? counts.gateway_timeouts : counts.bad_gateway)
        .fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, err == ETIMEDOUT ? 504 : 502);
  }
  serve_pending(c.version, backend);
}

void Worker::begin_detach(Connection& c, Handle h, bool keep) noexcept {
  ForwardExchange& ex = exchange_of(h.index);
  if (ex.http.parked) unpark(c, h.index);
  add(backend_of(c).runtime->pool.pool_active, -1);
  c.detaching = true;
  c.detach_keep = keep;
  c.upstream.paused |= kPauseDetach;
  if (transport_.detach_upstream(c, h, ex.http.end_after_detach)) finish_detach(c, h);
}

void Worker::finish_detach(Connection& c, Handle h) noexcept {
  ForwardExchange& ex = exchange_of(h.index);
  const uint32_t backend = c.backend;
  const uint32_t s = c.server;
  ServerPool& pool = pool_of(c, backend);
  PoolStats& gauges = backend_of(c).runtime->pool;
  const int fd = c.upstream.fd;
  const uint8_t address = c.address;
  // Whole and quiet: nothing read from it that no request asked for, no end, no error, and the
  // topology it belongs to is still the one new requests get.
  const bool keep = c.detach_keep && upstream_reusable(c, ex) && !c.upstream.in.attached() &&
                    c.upstream.piped == 0 && c.version == current_;
  if (c.upstream.in.attached()) {
    c.upstream.in.consume(c.upstream.in.readable());
    pool_.release(c.upstream.in);
  }
  transport_.release_pipe(c.upstream);
  ex.http.splice_granted = 0;
  leave_http_server(c, h.index);
  relay::on_upstream_detached(c);
  if (keep) {
    pool.push_free(s, fd, address, now_.ms);
    add(gauges.pool_idle, 1);
  } else {
    sys::close(fd);
    --pool.at(s).open;
    gauges.pool_closes.fetch_add(1, std::memory_order_relaxed);
  }
  if (ex.http.stolen) {
    ex.http.stolen = false;
    --pool.stealing;
  }
  // What follows needs the transport (a FIN, a replay): the next iteration pumps the connection.
  c.more = true;
  if (ex.http.end_after_detach) {
    relay::end_client(c, client_over(c, ex, routing_of(c, h.index)->length));
    arm_idle_timer(h.index, kLingerIdleMs);
  } else if (ex.phase == ForwardPhase::kAssigning && !ex.http.queued) {
    // A retry, or a request for another server: the replay's copy still in client.in goes.
    Side& client = c.client;
    if (client.in.attached() && client.gate != kOpenGate && client.gate > 0) {
      client.in.consume(client.gate);
      client.gate = 0;
      if (client.in.empty()) pool_.release(client.in);
    }
    assign_server(c, h, Balancer::kNoServer);
  } else {
    const int64_t idle_ms = idle_timeout_ms(c);
    timers_.arm(h.index, now_.ms + (idle_ms != 0 ? idle_ms : request_timeout_ms(c)));
  }
  serve_pending(c.version, backend);
}

void Worker::park(Connection& c, uint32_t index) noexcept {
  ServerPool& pool = pool_of(c, c.backend);
  pool.at(c.server).parked_list.push_back(slab_, index);
  ++pool.at(c.server).parked;
  exchange_of(index).http.parked = true;
  PoolStats& gauges = backend_of(c).runtime->pool;
  add(gauges.pool_active, -1);
  add(gauges.pool_idle, 1);
}

void Worker::unpark(Connection& c, uint32_t index) noexcept {
  ForwardExchange& ex = exchange_of(index);
  if (!ex.http.parked) return;
  ServerPool& pool = pool_of(c, c.backend);
  pool.at(c.server).parked_list.remove(slab_, index);
  --pool.at(c.server).parked;
  ex.http.parked = false;
  PoolStats& gauges = backend_of(c).runtime->pool;
  add(gauges.pool_active, 1);
  add(gauges.pool_idle, -1);
}

void Worker::leave_pool(Connection& c) noexcept {
  if (!c.pooled) return;
  c.pooled = false;
  if (c.upstream.fd < 0 || c.server == kNoServer) return;
  const uint32_t index = slab_.index_of(c);
  unpark(c, index);
  ServerPool& pool = pool_of(c, c.backend);
  --pool.at(c.server).open;
  PoolStats& gauges = backend_of(c).runtime->pool;
  if (c.detaching) {
    // Counted out when the detach began; the socket is now the connection's to close.
    c.detaching = false;
    c.upstream.paused &= static_cast<uint8_t>(~kPauseDetach);
  } else {
    add(gauges.pool_active, -1);
  }
  gauges.pool_closes.fetch_add(1, std::memory_order_relaxed);
  // A failure the pooled relay set aside is the connection's end now.
  if (c.upstream.flags & kFailed) relay::fail(c, c.upstream, stats_);
  serve_pending(c.version, c.backend);
}

void Worker::leave_http_server(Connection& c, uint32_t index) noexcept {
  if (c.server == kNoServer) return;
  const HttpExchange& hx = exchange_of(index).http;
  ObjectStats& s = server_of(c).runtime->stats;
  s.current.fetch_sub(1, std::memory_order_relaxed);
  s.bytes_in.fetch_add(c.bytes_c2u - hx.attach_c2u, std::memory_order_relaxed);
  s.bytes_out.fetch_add(c.bytes_u2c - hx.attach_u2c, std::memory_order_relaxed);
  c.server = kNoServer;
}

void Worker::settle_upstream(Connection& c, Handle h, ForwardExchange& ex) noexcept {
  if (c.upstream.fd < 0 || c.detaching || c.state != State::kRelaying) return;
  const bool lost = (c.upstream.flags & (kEof | kFailed)) != 0;
  if (ex.response_pending) {
    // The pump that saw the server's end may have brought the response's last bytes with it
    // (into the block, or spliced) after the worker's last look, when forward_step() ran out of
    // rounds: the loss is judged on the next iteration (c.more), once the framer saw them.
    const Side& up = c.upstream;
    const bool unseen = (up.in.attached() && up.in.readable() > up.gate) ||
                        ex.http.splice_granted != up.splice_left;
    if (lost && !(unseen && c.more)) upstream_lost(c, h, ex);
    return;
  }
  if (ex.phase == ForwardPhase::kAssigning || ex.phase == ForwardPhase::kReplaying) return;
  if (!response_out(c, ex)) return;
  if (ex.http.parked) {
    if (lost) begin_detach(c, h, false);
    return;
  }
  const bool keep = !lost && !ex.response_close && request_sent_whole(c, ex);
  ServerPool& pool = pool_of(c, c.backend);
  if (ex.phase == ForwardPhase::kDone) {
    ex.http.end_after_detach = true;
    begin_detach(c, h, keep);
  } else if (!keep || pool.pending_count > pool.stealing) {
    begin_detach(c, h, keep);
  } else if (ex.phase == ForwardPhase::kHead) {
    park(c, h.index);
  }
}

void Worker::upstream_lost(Connection& c, Handle h, ForwardExchange& ex) noexcept {
  HttpExchange& hx = ex.http;
  HttpStats& counts = listener_of(c).runtime->http;
  if (!hx.response_started && !c.upstream.in.attached()) {
    // The keep-alive race: a reused connection the server closed before any response byte. The
    // request is sent again on another one, once, when every byte of it is still held and it is
    // idempotent or did not go out whole.
    const bool sent_whole = ex.phase == ForwardPhase::kResponse;
    if (hx.reused && !hx.retried && hx.kept > 0 && (hx.idempotent || !sent_whole)) {
      hx.retried = true;
      counts.retried.fetch_add(1, std::memory_order_relaxed);
      // A head that names its server ($server) was built for this one: the retry goes to it
      // again, on another connection, or fails as no retry would (HAProxy's retries, too, stay
      // on the server unless redispatched).
      if (names(listener_of(c).http.request, http::ValueTemplate::Var::kServer)) {
        hx.chosen = c.server;
        hx.pinned = true;
      }
      ex.phase = ForwardPhase::kAssigning;
      ex.response_pending = false;
      begin_detach(c, h, false);
      return;
    }
    if (!hx.reused) pool_of(c, c.backend).mark_down(c.server, now_.ms);
    counts.bad_gateway.fetch_add(1, std::memory_order_relaxed);
    leave_pool(c);
    forward_answer(c, 502);
    return;
  }
  // During the response: it is cut short. The client gets the bytes the server sent, then its
  // end (a FIN after a close, a reset after an error), as a plain relay would give it.
  counts.bad_responses.fetch_add(1, std::memory_order_relaxed);
  ex.phase = ForwardPhase::kDone;
  leave_pool(c);
  // Passing the server's end on needs the transport, and no event would bring it back.
  c.more = true;
}

bool Worker::http_response(Connection& c, ForwardExchange& ex, std::byte* area) noexcept {
  Side& up = c.upstream;
  HttpExchange& hx = ex.http;
  bool moved = false;
  if (hx.splice_granted != up.splice_left) {
    // The relay spliced body bytes since the last look (decision 0015). They came before
    // anything now in the block (a block is read only once the pipe is empty), so the framer
    // counts them first.
    const uint32_t spliced = hx.splice_granted - up.splice_left;
    hx.splice_granted = up.splice_left;
    if (ex.response_body.skip(spliced)) {
      http_response_ended(ex, *routing_of(c, slab_.index_of(c)));
      moved = true;
    }
  }
  if (hx.spill > 0 && !up.in.attached() && relay::prepare_read(c, Dir::kU2C, pool_, stats_)) {
    // The block went out: the bytes held aside follow, then the server is read again (a body
    // until the server's close, or a tunnel, has its gate open already).
    std::memcpy(up.in.write_ptr(), area, hx.spill);
    up.in.commit(hx.spill);
    hx.spill = 0;
    if (up.gate != kOpenGate) up.gate = 0;
    relay::resume_reading(up, kPauseReplay);
    // The transport must run again for them: no event would bring it back.
    if (up.gate == kOpenGate) return true;
  }
  if (up.gate == kOpenGate || !up.in.attached() || up.in.readable() == up.gate) {
    return grant_splice(c, ex) || moved;
  }
  const ListenerSpec& ls = listener_of(c);
  HttpStats& counts = ls.runtime->http;
  const auto refuse_response = [&] {
    counts.bad_responses.fetch_add(1, std::memory_order_relaxed);
    leave_pool(c);
    relay::abort(c, EndReason::kProtocolError);
    return false;
  };
  if (!ex.response_pending) return refuse_response();  // bytes no request asked for
  RoutingContext& ctx = *routing_of(c, slab_.index_of(c));
  if (hx.spill > 0) return false;  // the block still holds what went before the spilled bytes
  if (!hx.response_started) {
    hx.response_started = true;
    pool_of(c, c.backend).observe_rtt(c.server, static_cast<uint64_t>(now_.ns - hx.sent_ns) / 1000);
    if (hx.kept > 0) {
      // No retry from now on: the request leaves the region, what followed it stays.
      std::memmove(ctx.region, ctx.region + hx.kept, ctx.length - hx.kept);
      ctx.length -= hx.kept;
      ctx.replayed = 0;
      ex.replay_end = 0;
      hx.kept = 0;
      // The client was held while a retry might need client.in (a receive in flight on io_uring
      // would take it): it is read again, unless a pipelined head waits already.
      if (ctx.length == 0) relay::end_replay(c);
    }
  }
  while (up.in.attached() && up.in.readable() > up.gate && ex.response_pending) {
    if (ex.response_head_done) {
      // Body bytes read through the block: the allowance, granted for the bytes that follow
      // them in the socket, is taken back (granted again below). No splice is in flight: a
      // block holding unapproved bytes stops every read and splice of the side.
      up.splice_left = 0;
      hx.splice_granted = 0;
      const uint32_t left = up.in.readable() - up.gate;
      const http::BodyProgress b = ex.response_body.consume({up.in.read_ptr() + up.gate, left});
      if (b.status == http::BodyStatus::kInvalid) return refuse_response();
      up.gate += b.used;
      moved = moved || b.used > 0;
      if (b.status != http::BodyStatus::kDone) break;
      http_response_ended(ex, ctx);
      continue;
    }
    // A head is taken out of the block into the area until it is whole (a receive needs the
    // block free on io_uring), then put back rebuilt at the block's front; so the bytes before
    // it must have gone out first.
    if (up.gate != 0) break;
    const uint32_t n = std::min(up.in.readable(), kMaxForwardHeadBytes - ex.response_copied);
    if (n == 0) return refuse_response();  // a head larger than the area
    std::memcpy(area + ex.response_copied, up.in.read_ptr(), n);
    const uint32_t before = ex.response_copied;
    ex.response_copied += n;
    http::ResponseHead head;
    const std::string_view bytes(reinterpret_cast<const char*>(area), ex.response_copied);
    const http::HeadStatus st = http::parse_response_head(bytes, ex.response_scanned, head);
    if (st == http::HeadStatus::kInvalid) return refuse_response();
    if (st == http::HeadStatus::kNeedMore) {
      up.in.consume(n);
      if (up.in.empty()) pool_.release(up.in);
      relay::resume_reading(up, kPauseBackpressure);
      return true;
    }
    const uint32_t here = head.length - before;  // the head's bytes still in the block
    ex.response_copied = 0;
    ex.response_scanned = 0;
    http::Framing framing;
    if (http::response_framing(head, ex.head_request ? "HEAD" : "GET", framing) !=
        http::FramingStatus::kOk) {
      return refuse_response();
    }
    const bool interim = head.status >= 100 && head.status < 200 && head.status != 101;
    const bool upgrade = framing.kind == http::BodyKind::kTunnel;
    if (upgrade && !hx.upgrade) return refuse_response();  // a 101 nobody asked for
    uint32_t length = head.length;
    const std::byte* rebuilt = area;
    if (!interim) {
      const http::RuleVars vars{{hx.client_addr.data(), hx.client_addr_length},
                                {hx.client_port.data(), hx.client_port_length},
                                ls.name,
                                server_of(c).name,
                                {}};
      const http::ClientConnection client = ex.client_close ? http::ClientConnection::kClose
                                            : hx.http10     ? http::ClientConnection::kKeepAlive
                                                            : http::ClientConnection::kPersist;
      length = http::build_response_head(head, ls.http.response, vars, client,
                                         {hello_scratch_.get(), hello_scratch_bytes_});
      if (length == 0) return refuse_response();
      rebuilt = hello_scratch_.get();
    }
    const uint32_t body = up.in.readable() - here;
    if (length + body > kBufferBytes) {
      // The rebuilt head is longer and the block was full: the body bytes that no longer fit are
      // held in the area (free again: the head was parsed and rebuilt) until the block went out.
      if (interim) {  // rebuilt from the area, which is about to hold the spilled bytes
        std::memcpy(hello_scratch_.get(), area, length);
        rebuilt = hello_scratch_.get();
      }
      {
        const uint32_t keep = kBufferBytes - length;
        hx.spill = static_cast<uint16_t>(body - keep);
        std::memcpy(area, up.in.read_ptr() + here + keep, hx.spill);
        up.in.replace(here + keep, hx.spill, area, 0);
        relay::pause_reading(up, kPauseReplay);
      }
    }
    if (!up.in.replace(0, here, rebuilt, length)) return refuse_response();
    up.gate = length;
    moved = true;
    if (interim) continue;  // 100 Continue, 103: the final head follows
    if (upgrade) {
      // The WebSocket joins client and server: that connection leaves the pool.
      counts.upgrades.fetch_add(1, std::memory_order_relaxed);
      ex.response_pending = false;
      leave_pool(c);
      up.gate = kOpenGate;
      c.client.gate = c.client.gate == 0 && !c.client.in.attached() ? kOpenGate : c.client.gate;
      ex.phase = ForwardPhase::kTunnel;
      return true;
    }
    ex.response_close = ex.response_close || framing.close;
    if (framing.kind == http::BodyKind::kUntilClose) {
      // Ends with the server's close: the client learns the end from the proxy's close too.
      ex.response_pending = false;
      ex.client_close = true;
      leave_pool(c);
      up.gate = kOpenGate;
      ex.phase = ForwardPhase::kDone;
      return true;
    }
    if (framing.kind == http::BodyKind::kNone) {
      http_response_ended(ex, ctx);
      continue;
    }
    ex.response_body.reset(framing);
    ex.response_head_done = true;
  }
  return grant_splice(c, ex) || moved;
}

bool Worker::grant_splice(Connection& c, ForwardExchange& ex) noexcept {
  Side& up = c.upstream;
  HttpExchange& hx = ex.http;
  // Every byte the block holds approved, and nothing held aside: the bytes that follow in the
  // socket are the body's, as many as the framer knows of without looking.
  if (!c.pooled || !ex.response_pending || !ex.response_head_done || up.splice_left != 0 ||
      up.gate == kOpenGate || hx.spill > 0 || (up.in.attached() && up.in.readable() != up.gate)) {
    return false;
  }
  const uint64_t remaining = ex.response_body.remaining();
  if (remaining == 0) return false;
  up.splice_left = static_cast<uint32_t>(std::min<uint64_t>(remaining, kSpliceAskBytes));
  hx.splice_granted = up.splice_left;
  return true;
}

void Worker::http_response_ended(ForwardExchange& ex, const RoutingContext& ctx) noexcept {
  ex.response_pending = false;
  ex.response_head_done = false;
  if (ex.client_close || stopping_) {  // a stopping proxy ends keep-alive after each response
    ex.phase = ForwardPhase::kDone;
    return;
  }
  if (ex.phase == ForwardPhase::kResponse) enter_head(ex, ctx);
}

bool Worker::http_timer(Connection& c, uint32_t index) noexcept {
  ForwardExchange& ex = exchange_of(index);
  if (ex.http.queued) {
    if (now_.ms < ex.http.pending_due_ms) {
      // A server's backoff may have ended: the queue is served again, then the timer waits for
      // the next backoff end or the deadline.
      touch(c, index);
      serve_pending(c.version, ex.http.backend);
      if (ex.http.queued) timers_.arm(index, pending_wake_ms(c, ex));
      return true;
    }
    touch(c, index);
    unqueue(c, index);
    listener_of(c).runtime->http.pending_timeouts.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 503);
    return true;
  }
  const bool waiting = ex.phase == ForwardPhase::kHead &&
                       (c.state == State::kInspecting || c.state == State::kRelaying);
  if (!waiting) return false;
  const RoutingContext& ctx = *routing_of(c, index);
  const int64_t idle_ms = idle_timeout_ms(c);
  // The first request's head is due request-timeout after the accept, bytes or not; a later one
  // from its first byte (before it, the keep-alive idle time runs).
  const int64_t head_due = ctx.length > 0 || ex.requests == 0
                               ? ex.head_started_ms + request_timeout_ms(c)
                               : TimerQueue::kNever;
  const int64_t idle_due = idle_ms != 0 ? c.last_active_ms + idle_ms : TimerQueue::kNever;
  touch(c, index);
  if (head_due <= now_.ms) {
    listener_of(c).runtime->http.request_timeouts.fetch_add(1, std::memory_order_relaxed);
    if (c.pooled && c.upstream.fd >= 0 && !c.detaching) leave_pool(c);
    forward_answer(c, 408);
    return true;
  }
  if (idle_due <= now_.ms) {
    ++stats_.idle_timeouts;
    relay::set_end(c, EndReason::kIdleTimeout);
    end_idle_http(c, index);
    return true;
  }
  timers_.arm(index, std::min(head_due, idle_due));
  return true;
}

bool Worker::end_idle_http(Connection& c, uint32_t index) noexcept {
  ForwardExchange& ex = exchange_of(index);
  if (ex.phase != ForwardPhase::kHead || routing_of(c, index)->length > 0 || c.detaching ||
      (c.state != State::kInspecting && c.state != State::kRelaying)) {
    return false;
  }
  // A keep-alive client between requests: its connection ends quietly (a FIN), and a parked
  // server connection goes back to the pool.
  touch(c, index);
  ex.phase = ForwardPhase::kDone;
  if (c.upstream.fd >= 0 && c.pooled) {
    ex.http.end_after_detach = true;
    // A stopping proxy lets the last response's bytes go out first (settle_upstream() detaches
    // then; the shutdown timeout bounds the wait); an idle timeout cuts a client that stopped
    // reading them.
    if (stopping_ && c.state == State::kRelaying && !response_out(c, ex)) return true;
    begin_detach(c, slab_.handle_of(index), true);
  } else if (c.upstream.fd < 0) {
    relay::end_client(c, false);
    c.more = true;
    arm_idle_timer(index, kLingerIdleMs);
  }
  return true;
}

void Worker::drop_pool_slot(Connection& c, uint32_t index) noexcept {
  if (!c.pooled || c.server == kNoServer) return;
  --pool_of(c, c.backend).at(c.server).open;
  add(backend_of(c).runtime->pool.pool_active, -1);
  leave_http_server(c, index);
  c.pooled = false;
}

void Worker::http_release(Connection& c, uint32_t index) noexcept {
  ForwardExchange& ex = exchange_of(index);
  unqueue(c, index);
  unpark(c, index);
  if (c.upstream.fd < 0) {
    drop_pool_slot(c, index);  // a socket to open was waited for (out of descriptors)
    return;
  }
  if (!c.pooled || c.server == kNoServer) return;
  const uint32_t backend = c.backend;
  const uint32_t s = c.server;
  ServerPool& pool = pool_of(c, backend);
  PoolStats& gauges = backend_of(c).runtime->pool;
  if (!c.detaching) add(gauges.pool_active, -1);
  const bool connected = c.upstream.flags & kWriteReady;
  const bool keep = connected && !ex.response_pending && upstream_reusable(c, ex) &&
                    !c.upstream.in.attached() && c.upstream.piped == 0 &&
                    (!c.detaching || c.detach_keep) && c.version == current_ &&
                    ex.phase != ForwardPhase::kReplaying && ex.phase != ForwardPhase::kBody;
  leave_http_server(c, index);
  if (keep && transport_.detach_upstream(c, slab_.handle_of(index), true)) {
    pool.push_free(s, c.upstream.fd, c.address, now_.ms);
    add(gauges.pool_idle, 1);
  } else {
    // A request was in flight: the server must not take what it got for a whole request.
    if (ex.response_pending || !connected) sys::set_linger_zero(c.upstream.fd);
    sys::close(c.upstream.fd);
    --pool.at(s).open;
    gauges.pool_closes.fetch_add(1, std::memory_order_relaxed);
  }
  if (ex.http.stolen) {
    ex.http.stolen = false;
    --pool.stealing;
  }
  c.upstream.fd = -1;
  c.detaching = false;
}

void Worker::close_free_sockets(Version& v) noexcept {
  for (uint32_t b = 0; b < v.pools.size(); ++b) {
    ServerPool& pool = v.pools[b];
    PoolStats& gauges = v.topology->backends[b].runtime->pool;
    for (uint32_t s = 0; s < pool.servers(); ++s) {
      const uint32_t n = pool.sweep(s, [](const ServerPool::Idle& idle) {
        sys::close(idle.fd);
        return true;
      });
      add(gauges.pool_idle, -static_cast<int64_t>(n));
      gauges.pool_closes.fetch_add(n, std::memory_order_relaxed);
    }
  }
}

void Worker::sweep_pools() noexcept {
  bool any = false;
  for (uint16_t i = 0; i < versions_.size(); ++i) {
    Version& v = versions_[i];
    if (v.topology == nullptr || v.pools.empty()) continue;
    any = true;
    for (uint32_t b = 0; b < v.pools.size(); ++b) {
      ServerPool& pool = v.pools[b];
      const BackendSpec& spec = v.topology->backends[b];
      uint32_t closed = 0;
      for (uint32_t s = 0; s < pool.servers(); ++s) {
        closed += pool.sweep(s, [&](const ServerPool::Idle& idle) {
          if (now_.ms - idle.since_ms < spec.pool.idle_timeout_ms && free_socket_usable(idle)) {
            return false;
          }
          sys::close(idle.fd);
          return true;
        });
      }
      if (closed == 0) continue;
      add(spec.runtime->pool.pool_idle, -static_cast<int64_t>(closed));
      spec.runtime->pool.pool_closes.fetch_add(closed, std::memory_order_relaxed);
      serve_pending(i, b);
    }
  }
  if (any) timers_.arm(pool_sweep_timer_, now_.ms + kPoolSweepMs);
}

}  // namespace edgeproxy
