// The worker's event loop: accept, connect, relay, timers, signals and shutdown. See worker.h
// and docs/architecture.md for who owns what, docs/state-machine.md for the lifecycle.
#include "edgeproxy/worker.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

#include "edgeproxy/check.h"
#include "edgeproxy/cookie.h"
#include "edgeproxy/log.h"
#include "edgeproxy/proxy_header.h"
#include "edgeproxy/relay.h"
#include "edgeproxy/server_health.h"

namespace edgeproxy {
namespace {

constexpr uint32_t kEventBatch = 256;
constexpr size_t kCommandsReserved = 16;  // control commands taken at once without allocating
constexpr uint32_t kAcceptBudget = 64;    // accepts per listener per iteration
constexpr int64_t kAcceptRetryMs = 100;   // out of fds: retry accepting this often, no sooner
// A lingering connection looks at its peer's unacknowledged bytes after 1 ms, then at twice the
// previous interval while none were acknowledged, at most this often: a reset is passed on a
// round trip after the last byte is acknowledged, and many slow peers cost few ioctl calls.
constexpr uint32_t kLingerFirstMs = 1;
constexpr uint32_t kLingerMaxMs = 200;

// Completion backends only: a submission queue the kernel refused, completions it dropped.
template <typename R, typename T>
void fill_completion_stats(Stats& s, const R& reactor, const T& transport) noexcept {
  if constexpr (requires { reactor.dropped_completions(); }) {
    s.submit_failures = reactor.submit_failures();
    s.cq_dropped = reactor.dropped_completions();
    s.lost_operations = transport.lost_operations();
  }
}

// A completion backend gets to see a completion for a freed slot (it may carry a buffer).
template <typename T>
void hand_back_stale(T& transport, const Event& ev) noexcept {
  if constexpr (requires { transport.on_stale(ev); }) transport.on_stale(ev);
}

// Whether a completion backend has a receive in flight on `side` (epoll never has).
template <typename T>
bool receiving(const T& transport, const Side& side) noexcept {
  if constexpr (requires { transport.reading(side); }) {
    return transport.reading(side);
  } else {
    return false;
  }
}

// Texts the proxy answers with go out in one non-blocking send on a socket that has nothing else
// queued (they are at most kMaxRouteText bytes, less than any socket's send buffer); what does
// not fit is a client that stopped reading, and it is reset instead.
bool send_whole(int fd, std::string_view text) noexcept {
  if (text.empty()) return true;
  const SysResult r = sys::send(fd, reinterpret_cast<const std::byte*>(text.data()),
                                static_cast<uint32_t>(text.size()));
  return r.ok() && static_cast<size_t>(r.value) == text.size();
}

// Rounds of transport pump and routing step per pump(): each moves a block or decides, so the
// inspection of a full region takes a few; the rest waits for the next iteration (c.more).
constexpr uint32_t kRouteRounds = 8;

}  // namespace

Result<std::unique_ptr<Worker>> Worker::create(const WorkerOptions& options) {
  auto close_plan = [&] {
    for (const ListenerPlan& p : options.listeners) {
      if (p.fd >= 0) sys::close(p.fd);
    }
  };
  auto reactor =
      Reactor::create(kEventBatch, options.config.max_connections, options.config.batch_wait_us);
  if (!reactor.ok()) {
    close_plan();
    return Error{reactor.error()};
  }
  uint32_t buffers = options.config.buffer_count();
  if (buffers > Transport::kMaxBuffers) {
    log_warn("the %s backend addresses at most %u buffers: using %u instead of %u", Reactor::kName,
             Transport::kMaxBuffers, Transport::kMaxBuffers, buffers);
    buffers = Transport::kMaxBuffers;
  }
  auto pool = BufferPool::create(buffers);
  if (!pool.ok()) {
    close_plan();
    return Error{pool.error()};
  }
  std::unique_ptr<Worker> w(
      new Worker(options, std::move(reactor.value()), std::move(pool.value())));
  std::vector<ListenerPlan> plan = options.listeners;
  if (auto r = w->install(options.topology, plan); !r.ok()) return Error{r.error()};
  if (auto t = w->transport_.init(options.config); !t.ok()) return Error{t.error()};
  if (options.control != nullptr) {
    const SysResult r =
        w->reactor_.watch(options.control->fd(), Cookie::pack(CookieTag::kControl, Handle{}));
    if (!r.ok()) return Error{std::string("cannot watch the control fd: ") + std::strerror(r.err)};
  }
  return w;
}

Worker::Worker(const WorkerOptions& options, Reactor reactor, BufferPool pool)
    : config_(options.config),
      reactor_(std::move(reactor)),
      slab_(options.config.max_connections),
      pool_(std::move(pool)),
      timers_(options.config.max_connections + 2),
      control_(options.control),
      id_(options.id),
      transport_(reactor_, pool_, stats_),
      touched_(std::make_unique_for_overwrite<uint32_t[]>(options.config.max_connections)),
      settling_(std::make_unique_for_overwrite<uint32_t[]>(options.config.max_connections)),
      pending_(std::make_unique_for_overwrite<uint32_t[]>(options.config.max_connections)),
      carried_(std::make_unique_for_overwrite<uint32_t[]>(options.config.max_connections)),
      shutdown_timer_(options.config.max_connections),
      accept_retry_timer_(options.config.max_connections + 1) {
  commands_.reserve(kCommandsReserved);
}

const SocketAddress& Worker::listen_address() const noexcept {
  static const SocketAddress kNone{};
  for (const Listener& l : listeners_) {
    if (l.fd() >= 0) return l.address();
  }
  return kNone;
}

Result<Ok> Worker::add_listener(const ListenerPlan& plan, int fd) {
  auto adopted = Listener::adopt(fd);
  if (!adopted.ok()) return Error{"listener " + plan.name + ": " + adopted.error()};
  uint32_t slot = static_cast<uint32_t>(listeners_.size());
  for (uint32_t i = 0; i < listeners_.size(); ++i) {
    if (listeners_[i].fd() < 0 && reactor_.listener_idle(i)) {
      slot = i;
      break;
    }
  }
  uint32_t generation = 0;
  if (slot == listeners_.size()) {
    listeners_.emplace_back();
  } else {
    generation = (listeners_[slot].generation + 1) & kGenerationMask;
  }
  Listener& l = listeners_[slot];
  l = std::move(adopted.value());
  l.generation = generation;
  l.listener = plan.listener;
  l.bind = plan.bind;
  l.name = plan.name;
  l.configured = plan.configured;
  const SysResult r = reactor_.watch_listener(l.fd(), listener_cookie(l));
  if (!r.ok()) {
    l.close();
    return Error{"listener " + plan.name + ": cannot watch it: " + std::strerror(r.err)};
  }
  return Ok{};
}

void Worker::close_listener(Listener& l) noexcept {
  if (l.fd() < 0) return;
  reactor_.unwatch_listener(l.fd(), listener_cookie(l));
  l.close();
  l.paused = false;
}

Result<Ok> Worker::install(std::shared_ptr<const Topology> topology,
                           std::vector<ListenerPlan>& plan,
                           std::vector<Balancer> balancers) noexcept {
  if (stopping_) {
    for (ListenerPlan& p : plan) {
      if (p.fd >= 0) sys::close(std::exchange(p.fd, -1));
    }
    return Ok{};
  }
  Version v;
  v.topology = std::move(topology);
  v.balancers = balancers.empty()
                    ? build_balancers(*v.topology, worker_seed(id_, v.topology->epoch))
                    : std::move(balancers);
  EDGEPROXY_CHECK(v.balancers.size() == v.topology->backends.size());
  for (const BackendSpec& b : v.topology->backends) {
    v.preferred.emplace_back(b.servers.size(), uint8_t{0});
  }
  {
    uint32_t inspect = 0;
    bool proxy_headers = false;
    for (const ListenerSpec& l : v.topology->listeners) {
      if (l.inspects()) inspect = std::max(inspect, l.inspect_bytes);
    }
    for (const BackendSpec& b : v.topology->backends) proxy_headers |= b.sends_proxy_header;
    if (inspect > 0 || proxy_headers) {
      // One block beyond inspect-bytes: what a receive already in flight at the decision brings.
      const uint32_t region = inspect > 0 ? inspect + kBufferBytes : 0;
      v.routing = std::make_unique<RoutingArea>(slab_.capacity(), region);
      if (region > hello_scratch_bytes_) {
        hello_scratch_ = std::make_unique_for_overwrite<std::byte[]>(region);
        hello_scratch_bytes_ = region;
      }
    }
  }
  uint16_t slot = static_cast<uint16_t>(versions_.size());
  for (uint16_t i = 0; i < versions_.size(); ++i) {
    if (versions_[i].topology == nullptr) {
      slot = i;
      break;
    }
  }
  if (slot == versions_.size()) {
    EDGEPROXY_CHECK(versions_.size() < UINT16_MAX);
    versions_.push_back(std::move(v));
  } else {
    versions_[slot] = std::move(v);
  }
  // Listening sockets: kept by key, new ones adopted, the others closed (their connections
  // finish under the version they were accepted with).
  Result<Ok> result = Ok{};
  {
    std::vector<bool> kept(listeners_.size(), false);
    for (ListenerPlan& p : plan) {
      if (p.fd >= 0) continue;
      bool found = false;
      for (uint32_t i = 0; i < listeners_.size(); ++i) {
        Listener& l = listeners_[i];
        if (l.fd() < 0 || kept[i] || !(l.configured == p.configured)) continue;
        l.name = p.name;  // a renamed listener keeps its socket
        l.listener = p.listener;
        l.bind = p.bind;
        kept[i] = true;
        found = true;
        break;
      }
      if (!found && result.ok()) result = Error{"listener " + p.name + ": no socket to keep"};
    }
    for (uint32_t i = 0; i < listeners_.size(); ++i) {
      if (!kept[i]) close_listener(listeners_[i]);
    }
    for (ListenerPlan& p : plan) {
      if (p.fd < 0) continue;
      if (auto r = add_listener(p, std::exchange(p.fd, -1)); !r.ok() && result.ok()) result = r;
    }
  }
  const uint16_t previous = current_;
  current_ = slot;
  if (previous != slot) release_version_if_unused(previous);
  return result;
}

void Worker::release_version_if_unused(uint16_t version) noexcept {
  Version& v = versions_[version];
  if (version == current_ || v.connections != 0 || v.topology == nullptr) return;
  v = Version{};
}

Worker::~Worker() {
  for (uint32_t i = 0; i < slab_.capacity(); ++i) {
    if (!slab_.in_use(i)) continue;
    Connection& c = slab_.at(i);
    if (c.client.fd >= 0) sys::close(c.client.fd);
    if (c.upstream.fd >= 0) sys::close(c.upstream.fd);
  }
}

Stats Worker::stats() const noexcept {
  Stats s = stats_;
  s.topology_versions = 0;
  for (const Version& v : versions_) s.topology_versions += v.topology != nullptr ? 1u : 0u;
  s.pool_buffers = pool_.capacity();
  s.pool_high_water = pool_.high_water();
  s.batched_waits = reactor_.batched_waits();
  s.splice_pipes_lost = transport_.pipes().lost();
  fill_completion_stats(s, reactor_, transport_);
  return s;
}

Result<Ok> Worker::start() {
  if (started_) return Ok{};
  if (const SysResult r = reactor_.start(); !r.ok()) {
    return Error{std::string("cannot start the ") + Reactor::kName +
                 " reactor: " + std::strerror(r.err)};
  }
  started_ = true;
  return Ok{};
}

int Worker::run() noexcept {
  if (auto r = start(); !r.ok()) {
    log_error("%s", r.error().c_str());
    return 1;
  }
  now_ = LoopTime::now();
  update_accept_room();
  for (;;) {
    // Accepts still in flight after the listeners' cancel could yet bring a descriptor: wait.
    if (stopping_ && slab_.used() == 0 && reactor_.accepts_idle()) break;
    const bool busy = pending_count_ > 0 || listener_pending_;
    reactor_.set_concurrency(slab_.used());
    const std::span<const Event> events = reactor_.wait(busy ? 0 : timers_.timeout_ms(now_.ms));
    now_ = LoopTime::now();
    ++stats_.loop_iterations;
    stats_.events += events.size();

    // Work carried over from the previous iteration's read budgets goes first.
    const uint32_t carried = pending_count_;
    std::swap(pending_, carried_);
    pending_count_ = 0;
    for (uint32_t i = 0; i < carried; ++i) {
      const uint32_t index = carried_[i];
      Connection& c = slab_.at(index);
      if (!slab_.in_use(index)) continue;
      c.pending = false;
      if (c.more) pump(c, index);
    }
    for (const Event& ev : events) dispatch(ev);
    restart_cancels_after_drops();
    if (listener_pending_) {
      listener_pending_ = false;
      for (uint32_t i = 0; i < listeners_.size(); ++i) {
        if (listeners_[i].ready && !listeners_[i].paused) accept_from(i);
      }
    }
    expire_timers();
    wake_buffer_waiters();
    finish_iteration();
    if (!stopping_) update_accept_room();
  }
  return 0;
}

void Worker::restart_cancels_after_drops() noexcept {
  // Completion backends only (a generic lambda, so the epoll build discards the body).
  [this](auto& reactor, auto& transport) {
    if constexpr (requires { reactor.dropped_completions(); }) {
      if (reactor.dropped_completions() == drops_seen_) return;
      drops_seen_ = reactor.dropped_completions();
      for (uint32_t i = 0; i < slab_.capacity(); ++i) {
        if (!slab_.in_use(i) || slab_.at(i).state != State::kClosing) continue;
        transport.restart_cancels(slab_.at(i));
        touch(slab_.at(i), i);
      }
    }
  }(reactor_, transport_);
}

void Worker::update_accept_room() noexcept {
  reactor_.set_accept_room(slab_.capacity() - slab_.used(), static_cast<uint32_t>(config_.backlog));
}

void Worker::dispatch(const Event& ev) noexcept {
  const Cookie ck = Cookie::unpack(ev.cookie);
  switch (ck.tag) {
    case CookieTag::kListener: {
      const uint32_t i = ck.handle.index;
      if (i >= listeners_.size() || listeners_[i].generation != ck.handle.generation) {
        // A socket this slot held before: an accepted descriptor it still brings is refused.
        if ((ev.ready & kAccepted) && ev.result >= 0) {
          sys::set_linger_zero(ev.result);
          sys::close(ev.result);
        }
        break;
      }
      if (ev.ready & kAccepted) {
        on_accepted(i, ev.result);
      } else if (listeners_[i].fd() >= 0) {
        listeners_[i].ready = true;
        if (!listeners_[i].paused) accept_from(i);
      }
      return;
    }
    case CookieTag::kControl:
      on_control();
      return;
    case CookieTag::kClient:
    case CookieTag::kUpstream:
      on_connection_event(ck.tag, ck.handle, ev);
      return;
  }
  ++stats_.stale_events;  // unknown tag: cannot come from us
}

void Worker::on_connection_event(CookieTag tag, Handle h, const Event& ev) noexcept {
  Connection* c = slab_.resolve(h);
  if (c == nullptr) {
    // The slot was freed (and maybe reused) after the kernel queued this event.
    ++stats_.stale_events;
    hand_back_stale(transport_, ev);
    return;
  }
  touch(*c, h.index);
  // Completion backends must see events even while closing: they return buffers and count
  // down operations in flight before the slot may be freed.
  const ConnectResult r = transport_.on_event(*c, h, tag == CookieTag::kClient, ev, now_);
  switch (r.outcome) {
    case ConnectOutcome::kNone:
      break;
    case ConnectOutcome::kConnected:
      on_connected(*c, h.index);
      break;
    case ConnectOutcome::kFailed:
      connect_failed(*c, h, r.err);
      break;
  }
  if (c->state != State::kClosing) pump(*c, h.index);
}

void Worker::arm_idle_timer(uint32_t index) noexcept {
  const int64_t idle_ms = idle_timeout_ms(slab_.at(index));
  if (idle_ms != 0) {
    timers_.arm(index, now_.ms + idle_ms);
  } else {
    timers_.cancel(index);
  }
}

void Worker::on_control() noexcept {
  control_->take(commands_);
  for (WorkerCommand& command : commands_) {
    switch (command.kind) {
      case WorkerCommand::Kind::kStopGraceful:
        begin_shutdown(false);
        break;
      case WorkerCommand::Kind::kStopFast:
        begin_shutdown(true);
        break;
      case WorkerCommand::Kind::kReport:
        control_->publish(command.ticket, stats());
        break;
      case WorkerCommand::Kind::kInstall:
        if (auto r = install(std::move(command.topology), command.listeners,
                             std::move(command.balancers));
            !r.ok()) {
          control_->set_install_error(r.error());
        }
        break;
    }
  }
  commands_.clear();  // lets go of what the commands held (old topologies, sockets taken)
}

void Worker::accept_from(uint32_t listener_index) noexcept {
  Listener& l = listeners_[listener_index];
  if (l.fd() < 0) return;
  for (uint32_t n = 0; n < kAcceptBudget; ++n) {
    if (!room_for_clients()) {
      // Leave clients in the kernel backlog; a freed slot (or descriptor) resumes the listener.
      pause_listener(l);
      return;
    }
    const SysResult r = sys::accept(l.fd());
    if (r.ok()) {
      start_connection(static_cast<int>(r.value), l);
      continue;
    }
    if (r.would_block()) {
      l.ready = false;
      return;
    }
    if (!on_accept_error(l, r.err)) return;
  }
  listener_pending_ = true;  // budget spent: more may be queued, and no new edge will say so
}

void Worker::on_accepted(uint32_t listener_index, int result) noexcept {
  Listener& l = listeners_[listener_index];
  if (result < 0) {
    on_accept_error(l, -result);
    return;
  }
  if (stopping_ || l.fd() < 0 || slab_.full()) {
    // Accepted by the kernel after we stopped wanting it (the cancel of a multishot accept is
    // asynchronous): refuse it with a reset rather than leave it hanging.
    sys::set_linger_zero(result);
    sys::close(result);
    ++stats_.accept_errors;
    if (slab_.full() && l.fd() >= 0) pause_listener(l);
    return;
  }
  start_connection(result, l);
  if (!room_for_clients()) pause_listener(l);
}

bool Worker::on_accept_error(Listener& l, int err) noexcept {
  ++stats_.accept_errors;
  // The connection died in the queue or was refused by policy: skip it, keep accepting.
  if (sys::accept_error_is_transient(err)) return true;
  if (!sys::descriptors_exhausted(err)) log_error("accept: %s", std::strerror(err));
  // Out of fds or kernel memory (or an unexpected error): retrying now would spin. Pause until a
  // connection closes or the retry timer fires, whichever comes first.
  pause_listener(l);
  timers_.arm(accept_retry_timer_, now_.ms + kAcceptRetryMs);
  return false;
}

void Worker::start_connection(int client_fd, const Listener& l) noexcept {
  Handle h;
  Connection* c = slab_.acquire(h);  // accept_from checked there is room
  ++stats_.accepted;
  ++stats_.active;
  if (stats_.active > stats_.peak_active) stats_.peak_active = stats_.active;
  relay::on_client(*c, client_fd, now_);
  Version& v = versions_[current_];
  ++v.connections;
  c->version = current_;
  c->listener = static_cast<uint16_t>(l.listener);
  const ListenerSpec& ls = v.topology->listeners[l.listener];
  ls.runtime->stats.connections.fetch_add(1, std::memory_order_relaxed);
  ls.runtime->stats.current.fetch_add(1, std::memory_order_relaxed);
  touch(*c, h.index);
  if (config_.no_delay) sys::set_no_delay(client_fd, true);
  if (const int err = transport_.attach(*c, h); err != 0) {
    log_error("cannot watch a client connection: %s", std::strerror(err));
    relay::abort(*c);
    return;
  }
  if (ls.inspects()) {
    // The backend is chosen by the first bytes (or after the PROXY header): read them first.
    v.routing->reset(h.index).header_read = !ls.accept_proxy;
    ls.runtime->route.inspected.fetch_add(1, std::memory_order_relaxed);
    relay::on_inspecting(*c);
    timers_.arm(h.index, now_.ms + ls.inspect_timeout_ms);
    pump(*c, h.index);
    return;
  }
  const BackendSpec& b = v.topology->backends[ls.backend];
  c->backend = static_cast<uint16_t>(ls.backend);
  b.runtime->stats.connections.fetch_add(1, std::memory_order_relaxed);
  b.runtime->stats.current.fetch_add(1, std::memory_order_relaxed);
  relay::on_accepted(*c);
  if (b.sends_proxy_header) {
    // The header goes before the client's first byte: nothing is read until it is out.
    v.routing->reset(h.index);
    relay::hold_for_replay(*c);
  }
  choose_server(*c, h, Balancer::kNoServer);
  if (c->state != State::kClosing) pump(*c, h.index);
}

void Worker::choose_server(Connection& c, Handle h, uint32_t avoid) noexcept {
  Version& v = versions_[c.version];
  const BackendSpec& b = v.topology->backends[c.backend];
  const RoutingContext* ctx = v.routing != nullptr ? &v.routing->at(h.index) : nullptr;
  SocketAddress client;
  uint32_t s = Balancer::kNoServer;
  if (ctx != nullptr && ctx->hashed && (c.client.paused & kPauseReplay)) {
    s = v.balancers[c.backend].pick_hash(ctx->hash, avoid);
  } else {
    if (b.balance == Balance::kSource) {
      if (ctx != nullptr && ctx->proxied && (c.client.paused & kPauseReplay)) {
        client = ctx->source;  // the client a PROXY header named, not the balancer in front
      } else {
        client.length = sizeof client.storage;
        if (getpeername(c.client.fd, reinterpret_cast<sockaddr*>(&client.storage),
                        &client.length) != 0) {
          client.length = 0;
        }
      }
    }
    s = v.balancers[c.backend].pick(client, avoid);
  }
  if (s == Balancer::kNoServer) {
    ++stats_.no_server;
    b.runtime->stats.no_server.fetch_add(1, std::memory_order_relaxed);
    listener_of(c).runtime->stats.no_server.fetch_add(1, std::memory_order_relaxed);
    if (log_level() == LogLevel::kVerbose) {
      log_debug("backend %s: no server is usable, client closed", b.name.c_str());
    }
    relay::abort(c);
    return;
  }
  c.server = static_cast<uint16_t>(s);
  const ServerSpec& server = b.servers[s];
  server.runtime->stats.connections.fetch_add(1, std::memory_order_relaxed);
  server.runtime->stats.current.fetch_add(1, std::memory_order_relaxed);
  c.address = v.preferred[c.backend][s];
  if (c.address >= server.addresses.size()) c.address = 0;
  c.tried = 0;
  connect_upstream(c, h);
}

void Worker::route_step(Connection& c, uint32_t index) noexcept {
  RoutingContext* ctx = routing_of(c, index);
  EDGEPROXY_CHECK(ctx != nullptr);
  const Handle h = slab_.handle_of(index);
  for (uint32_t round = 0; round < kRouteRounds; ++round) {
    bool again = false;
    if (c.state == State::kInspecting) {
      again = inspect(c, h, *ctx);
    } else if ((c.client.paused & kPauseReplay) && c.state < State::kLingering) {
      again = replay(c, *ctx);
    }
    if (!again || c.state >= State::kLingering) return;
    transport_.pump(c, h, now_);
  }
  c.more = true;  // more to move than one pump's rounds: again next iteration
}

bool Worker::inspect(Connection& c, Handle h, RoutingContext& ctx) noexcept {
  const ListenerSpec& ls = listener_of(c);
  RouteStats& counts = ls.runtime->route;
  Side& client = c.client;
  const uint32_t limit = std::min(ls.inspect_bytes, ctx.capacity);
  const bool moved = client.in.attached() && !client.in.empty() && ctx.length < limit &&
                     move_client_bytes(c, ctx, limit) > 0;
  const bool full = ctx.length == limit;
  const bool ended = (client.flags & kEof) != 0;
  if (ctx.length == ctx.evaluated && !(ended && !ctx.ended_seen)) return moved;
  ctx.evaluated = ctx.length;
  ctx.ended_seen = ended;
  if (!ctx.header_read) {
    proxy_header::Parsed p;
    switch (proxy_header::parse({ctx.region, ctx.length}, p)) {
      case proxy_header::Status::kNeedMore:
        if (!full && !ended) return moved;
        [[fallthrough]];
      case proxy_header::Status::kInvalid:
        counts.proxy_header_errors.fetch_add(1, std::memory_order_relaxed);
        refuse(c, {}, false);
        return false;
      case proxy_header::Status::kDone:
        break;
    }
    counts.proxy_headers.fetch_add(1, std::memory_order_relaxed);
    ctx.header_read = true;
    ctx.start = p.length;
    if (!p.local) {
      ctx.proxied = true;
      ctx.source = p.source;
      ctx.destination = p.destination;
    }
    if (ls.routes.empty()) {
      route_to(c, h, ctx, ls.backend, Action{});
      counts.defaulted.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (ctx.length == ctx.start && !ended) return moved;  // the rules run on bytes
  }
  route::Scratch scratch{{hello_scratch_.get(), hello_scratch_bytes_}, ctx.http_scanned};
  Captures captures;
  // Full bytes are not final: a rule still waiting on them gets on-full, not a miss.
  const route::Decision d = route::decide(ls.routes, ctx.held(), ended, scratch, captures);
  ctx.http_scanned = scratch.http_scanned;
  const Action* action = nullptr;
  if (d.verdict == route::Verdict::kDecided) {
    const RouteRule& rule = ls.routes.rules[d.rule];
    rule.runtime->matches.fetch_add(1, std::memory_order_relaxed);
    action = &rule.action;
    if (action->kind != ActionKind::kWait) {
      apply(c, h, ctx, *action, captures);
      return true;
    }
  }
  if (d.verdict == route::Verdict::kNeedMore || action != nullptr) {  // waiting
    if (!full && !ended) return moved;
    if (full) {
      counts.inspect_overflows.fetch_add(1, std::memory_order_relaxed);
      apply(c, h, ctx, ls.on_full, Captures{});
      return true;
    }
  }
  // No rule decided, and none will: the listener's own backend, if it has one.
  if (ls.backend == kNoBackendIndex) {
    counts.no_match.fetch_add(1, std::memory_order_relaxed);
    refuse(c, {}, false);
    return false;
  }
  counts.defaulted.fetch_add(1, std::memory_order_relaxed);
  route_to(c, h, ctx, ls.backend, Action{});
  return true;
}

void Worker::apply(Connection& c, Handle h, RoutingContext& ctx, const Action& a,
                   const Captures& captures) noexcept {
  const ListenerSpec& ls = listener_of(c);
  RouteStats& counts = ls.runtime->route;
  switch (a.kind) {
    case ActionKind::kBackend:
    case ActionKind::kServer:
      counts.routed.fetch_add(1, std::memory_order_relaxed);
      route_to(c, h, ctx, a.backend, a);
      return;
    case ActionKind::kMap:
    case ActionKind::kHash: {
      char key[512];
      const uint32_t n = a.key.expand(ctx.held(), captures, key);
      if (a.kind == ActionKind::kHash) {
        ctx.hashed = true;
        ctx.hash = Balancer::hash_key({key, n});
        counts.routed.fetch_add(1, std::memory_order_relaxed);
        route_to(c, h, ctx, a.backend, a);
        return;
      }
      const MapSpec& map = versions_[c.version].topology->maps[a.map];
      const auto it = map.entries.find(std::string_view(key, n));
      const uint32_t backend = it != map.entries.end() ? it->second : map.fallback;
      if (backend == kNoBackendIndex) {
        counts.map_misses.fetch_add(1, std::memory_order_relaxed);
        refuse(c, {}, false);
        return;
      }
      counts.routed.fetch_add(1, std::memory_order_relaxed);
      route_to(c, h, ctx, backend, a);
      return;
    }
    case ActionKind::kWait:
      return;
    case ActionKind::kReply:
      if (!send_whole(c.client.fd, a.text)) {
        refuse(c, {}, true);
        return;
      }
      counts.replies.fetch_add(1, std::memory_order_relaxed);
      // Answered: the rules run again on what the client sends next.
      ctx.length = ctx.start;
      ctx.evaluated = ctx.length;
      ctx.http_scanned = 0;
      return;
    case ActionKind::kClose:
      counts.closes.fetch_add(1, std::memory_order_relaxed);
      refuse(c, a.text, false);
      return;
    case ActionKind::kReject:
      counts.rejects.fetch_add(1, std::memory_order_relaxed);
      refuse(c, {}, true);
      return;
  }
}

void Worker::route_to(Connection& c, Handle h, RoutingContext& ctx, uint32_t backend,
                      const Action& a) noexcept {
  if (a.has_send) {
    // ProxyMachine's `:data`: these bytes go to the server instead of the ones read.
    std::memcpy(ctx.region, a.send.data(), a.send.size());
    ctx.start = 0;
    ctx.length = static_cast<uint32_t>(a.send.size());
  }
  ctx.replayed = ctx.start;
  hold_client_bytes(c, ctx);
  c.backend = static_cast<uint16_t>(backend);
  ObjectStats& b = versions_[c.version].topology->backends[backend].runtime->stats;
  b.connections.fetch_add(1, std::memory_order_relaxed);
  b.current.fetch_add(1, std::memory_order_relaxed);
  timers_.cancel(h.index);
  relay::on_routed(c);
  relay::hold_for_replay(c);
  choose_server(c, h, Balancer::kNoServer);
}

void Worker::refuse(Connection& c, std::string_view text, bool reset) noexcept {
  if (!reset && !send_whole(c.client.fd, text)) reset = true;
  if (!reset) sys::shutdown_write(c.client.fd);  // the FIN follows the text
  relay::on_refused(c, reset);
}

void Worker::hold_client_bytes(Connection& c, RoutingContext& ctx) noexcept {
  Buffer& in = c.client.in;
  if (!in.attached()) {
    ctx.refilled = false;
    return;
  }
  if (ctx.refilled) return;
  // At most one block: reading stopped at the decision, and the region has a block to spare.
  EDGEPROXY_CHECK(ctx.length + in.readable() <= ctx.capacity);
  move_client_bytes(c, ctx, ctx.capacity);
}

uint32_t Worker::move_client_bytes(Connection& c, RoutingContext& ctx, uint32_t limit) noexcept {
  Buffer& in = c.client.in;
  const uint32_t n = std::min(in.readable(), limit - ctx.length);
  if (n > 0) std::memcpy(ctx.region + ctx.length, in.read_ptr(), n);
  ctx.length += n;
  in.consume(n);
  if (in.empty()) {
    pool_.release(in);
    c.client.paused &= static_cast<uint8_t>(~kPauseBackpressure);
  }
  return n;
}

bool Worker::replay(Connection& c, RoutingContext& ctx) noexcept {
  if (c.state < State::kRelaying) return false;  // the server (and its PROXY header) not yet known
  Side& client = c.client;
  hold_client_bytes(c, ctx);
  if (!ctx.preamble_built) {
    ctx.preamble_built = true;
    const uint8_t version = backend_of(c).proxy_protocol_of(c.server);
    if (version != 0) {
      SocketAddress source = ctx.source;
      SocketAddress destination = ctx.destination;
      if (!ctx.proxied) {
        source.length = destination.length = sizeof source.storage;
        if (getpeername(client.fd, reinterpret_cast<sockaddr*>(&source.storage), &source.length) !=
                0 ||
            getsockname(client.fd, reinterpret_cast<sockaddr*>(&destination.storage),
                        &destination.length) != 0) {
          source.length = destination.length = 0;  // written as UNKNOWN / LOCAL
        }
      }
      ctx.preamble_length =
          static_cast<uint8_t>(proxy_header::build(version, source, destination, ctx.preamble));
    }
  }
  if (client.in.attached() || receiving(transport_, client)) return false;
  if (ctx.replay_done()) {
    relay::end_replay(c);
    return true;
  }
  if (!relay::prepare_read(c, Dir::kC2U, pool_, stats_)) return false;  // waits for a block
  const uint32_t p =
      std::min<uint32_t>(ctx.preamble_length - ctx.preamble_sent, client.in.writable());
  std::memcpy(client.in.write_ptr(), ctx.preamble.data() + ctx.preamble_sent, p);
  client.in.commit(p);
  ctx.preamble_sent = static_cast<uint8_t>(ctx.preamble_sent + p);
  const uint32_t n = std::min(ctx.length - ctx.replayed, client.in.writable());
  if (n > 0) std::memcpy(client.in.write_ptr(), ctx.region + ctx.replayed, n);
  client.in.commit(n);
  ctx.replayed += n;
  ctx.refilled = true;
  return true;
}

void Worker::leave_server(Connection& c) noexcept {
  if (c.server == kNoServer) return;
  ObjectStats& s = server_of(c).runtime->stats;
  s.current.fetch_sub(1, std::memory_order_relaxed);
  s.bytes_in.fetch_add(c.bytes_c2u, std::memory_order_relaxed);
  s.bytes_out.fetch_add(c.bytes_u2c, std::memory_order_relaxed);
  c.server = kNoServer;
}

void Worker::connect_upstream(Connection& c, Handle h) noexcept {
  // Connections already waiting for a descriptor go first (a completion backend may still hand
  // over clients it accepted before the listener paused).
  const SysResult s = socket_waiters_.empty()
                          ? sys::stream_socket(server_of(c).addresses[c.address].family())
                          : SysResult{-1, EMFILE};
  if (s.ok()) {
    start_connect(c, h, static_cast<int>(s.value));
  } else if (sys::descriptors_exhausted(s.err)) {
    ++stats_.socket_waits;
    wait_to_connect(h.index);
  } else {
    connect_failed(c, h, s.err);
  }
}

void Worker::wait_to_connect(uint32_t index) noexcept {
  // As at accept: wait for a connection to close (or the retry timer) instead of resetting a
  // client that did nothing wrong; accepting more would only make more wait. The connect
  // deadline covers the wait.
  socket_waiters_.push_back(slab_, index);
  if (!timers_.armed(index)) {
    timers_.arm(index, now_.ms + backend_of(slab_.at(index)).connect_timeout_ms);
  }
  for (Listener& l : listeners_) pause_listener(l);
  timers_.arm(accept_retry_timer_, now_.ms + kAcceptRetryMs);
}

void Worker::start_connect(Connection& c, Handle h, int fd) noexcept {
  c.upstream.fd = fd;
  if (config_.no_delay) sys::set_no_delay(fd, true);
  ++c.attempt;
  // The address lives in the connection's topology version, which outlives the connection.
  const int err = transport_.connect(c, h, server_of(c).addresses[c.address]);
  if (err == EAGAIN) {
    // The kernel had nothing to start a connect with (io_uring: it refused the submission
    // queue; TCP: no route cache entry): the same address is tried again, as after EMFILE.
    sys::close(fd);
    c.upstream.fd = -1;
    wait_to_connect(h.index);
    return;
  }
  if (err == EINPROGRESS) {
    timers_.arm(h.index, now_.ms + backend_of(c).connect_timeout_ms);
  } else if (err == 0) {
    on_connected(c, h.index);
  } else {
    connect_failed(c, h, err);
  }
}

void Worker::on_connected(Connection& c, uint32_t index) noexcept {
  versions_[c.version].preferred[c.backend][c.server] = c.address;
  on_connect_success(*server_of(c).runtime);
  arm_idle_timer(index);
}

void Worker::connect_failed(Connection& c, Handle h, int err) noexcept {
  ++stats_.connects_failed;
  const BackendSpec& b = backend_of(c);
  const ServerSpec& server = server_of(c);
  server.runtime->stats.connect_failures.fetch_add(1, std::memory_order_relaxed);
  b.runtime->stats.connect_failures.fetch_add(1, std::memory_order_relaxed);
  if (log_level() == LogLevel::kVerbose) {
    log_debug("connect to %s/%s at %s failed: %s", b.name.c_str(), server.name.c_str(),
              server.addresses[c.address].to_string().c_str(), std::strerror(err));
  }
  if (c.upstream.fd >= 0) sys::close(c.upstream.fd);
  relay::on_upstream_dropped(c);
  // A name with several addresses: the server's next address first (nothing reached the
  // client yet, so trying again is invisible to it).
  if (++c.tried < server.addresses.size() && !fast_stop_) {
    ++stats_.connect_retries;
    c.address = static_cast<uint8_t>((c.address + 1) % server.addresses.size());
    connect_upstream(c, h);
    return;
  }
  // The server failed (passive health), then another server gets the connection.
  if (on_connect_failure(*server.runtime, b.check, now_.ms)) {
    log_transition(b, server, HealthTransition::kDown,
                   (std::string("connect: ") + std::strerror(err)).c_str());
  }
  const uint32_t failed = c.server;
  leave_server(c);
  if (c.retries < b.retries && !fast_stop_) {
    ++c.retries;
    ++stats_.connect_retries;
    b.runtime->stats.retries.fetch_add(1, std::memory_order_relaxed);
    choose_server(c, h, failed);
    return;
  }
  // The client is reset: it must not mistake this for an empty reply.
  relay::abort(c);
}

bool Worker::retry_socket_waiters() noexcept {
  while (!socket_waiters_.empty()) {
    const uint32_t index = socket_waiters_.front();
    Connection& c = slab_.at(index);
    const SysResult s = sys::stream_socket(server_of(c).addresses[c.address].family());
    if (!s.ok() && sys::descriptors_exhausted(s.err)) {
      timers_.arm(accept_retry_timer_, now_.ms + kAcceptRetryMs);
      return false;
    }
    socket_waiters_.remove(slab_, index);
    EDGEPROXY_CHECK(c.state == State::kRouting);  // a closing connection leaves the queue
    touch(c, index);
    const Handle h = slab_.handle_of(index);
    if (s.ok()) {
      start_connect(c, h, static_cast<int>(s.value));
    } else {
      connect_failed(c, h, s.err);
    }
    if (c.state != State::kClosing) pump(c, index);
    // Queued again: the connect could not start (EAGAIN: a Unix server's full backlog, a
    // refused submission queue). Going on would take it again at once and spin; the retry
    // timer wait_to_connect() armed comes back to it, and its connect deadline still runs.
    if (c.socket_wait.linked()) return false;
  }
  return true;
}

void Worker::touch(Connection& c, uint32_t index) noexcept {
  if (c.touched) return;
  EDGEPROXY_CHECK(touched_count_ < slab_.capacity());
  c.touched = true;
  touched_[touched_count_++] = index;
}

void Worker::pump(Connection& c, uint32_t index) noexcept {
  touch(c, index);
  if (c.client.paused & kPauseReplay) hold_client_bytes(c, *routing_of(c, index));
  transport_.pump(c, slab_.handle_of(index), now_);
  if (c.state == State::kInspecting || (c.client.paused & kPauseReplay)) route_step(c, index);
  if ((c.client.paused | c.upstream.paused) & kPauseNoBuffer) {
    buffer_waiters_.push_back(slab_, index);
  }
}

void Worker::expire_timers() noexcept {
  uint32_t id = 0;
  while (timers_.pop_expired(now_.ms, id)) {
    if (id == shutdown_timer_) {
      force_close_all();
    } else if (id == accept_retry_timer_) {
      if (retry_socket_waiters()) resume_listeners();
    } else {
      on_connection_timer(id);
    }
  }
}

void Worker::on_connection_timer(uint32_t index) noexcept {
  if (!slab_.in_use(index)) return;
  Connection& c = slab_.at(index);
  const Handle h = slab_.handle_of(index);
  switch (c.state) {
    case State::kFree:
    case State::kClosing:
      return;
    case State::kInspecting: {
      const ListenerSpec& ls = listener_of(c);
      ls.runtime->route.inspect_timeouts.fetch_add(1, std::memory_order_relaxed);
      touch(c, index);
      RoutingContext& ctx = *routing_of(c, index);
      if (!ctx.header_read) {
        ls.runtime->route.proxy_header_errors.fetch_add(1, std::memory_order_relaxed);
        refuse(c, {}, false);
        return;
      }
      apply(c, h, ctx, ls.on_timeout, Captures{});
      if (c.state != State::kClosing) pump(c, index);
      return;
    }
    case State::kAccepted:
    case State::kRouting:  // still waiting for a descriptor to connect with
      ++stats_.connect_timeouts;
      socket_waiters_.remove(slab_, index);
      relay::abort(c);
      touch(c, index);
      return;
    case State::kConnecting:
      ++stats_.connect_timeouts;
      touch(c, index);
      // A completion backend reports the abandoned connect as a failure (ETIMEDOUT) once the
      // kernel has let go of it; then the next address is tried.
      if (transport_.abandon_connect(c, h)) {
        connect_failed(c, h, ETIMEDOUT);
      } else {
        // Should the abandoned connect's completion never come, the next deadline ends it.
        timers_.arm(index, now_.ms + backend_of(c).connect_timeout_ms);
      }
      return;
    case State::kLingering:
      check_linger(c, index);
      return;
    case State::kRelaying:
    case State::kDraining:
      break;
  }
  const int64_t idle_ms = idle_timeout_ms(c);
  if (idle_ms == 0) return;
  // Lazy idle timer: activity only stored a timestamp; re-arm for the remainder if there was any.
  const int64_t due = c.last_active_ms + idle_ms;
  if (due > now_.ms) {
    timers_.arm(index, due);
    return;
  }
  ++stats_.idle_timeouts;
  // Cut in the middle of a stream: both sides are reset (decision 0004: a FIN never lies).
  relay::abort(c);
  touch(c, index);
}

void Worker::check_linger(Connection& c, uint32_t index) noexcept {
  const Side& peer = relay::surviving_side(c);
  const SysResult r = sys::unacked_bytes(peer.fd);
  // Acknowledged, or the socket is gone: nothing left to wait for. A reset freezes SIOCOUTQ at
  // what was unacknowledged, so without progress its error is looked at too (what reports it
  // otherwise, EPOLLERR or an operation in flight, has failed the side and closed already).
  const bool progress = r.ok() && (c.linger_wait_ms == 0 || r.value < c.linger_outq);
  if (!r.ok() || r.value <= 0 || (!progress && sys::socket_error(peer.fd) != 0)) {
    relay::on_acknowledged(c);
    touch(c, index);
    return;
  }
  const auto outq = static_cast<uint32_t>(r.value);
  if (c.linger_wait_ms == 0) ++stats_.linger_waits;
  if (progress) {
    c.last_active_ms = now_.ms;  // the peer is still acknowledging: keep it out of the idle cut
    c.linger_wait_ms = kLingerFirstMs;
  } else if (idle_timeout_ms(c) != 0 && now_.ms - c.last_active_ms >= idle_timeout_ms(c)) {
    ++stats_.idle_timeouts;
    relay::on_acknowledged(c);  // given up: the reset goes now, with the bytes still queued
    touch(c, index);
    return;
  } else {
    c.linger_wait_ms = std::min(kLingerMaxMs, c.linger_wait_ms * 2);
  }
  c.linger_outq = outq;
  timers_.arm(index, now_.ms + c.linger_wait_ms);
}

void Worker::wake_buffer_waiters() noexcept {
  // Oldest waiter first; each resumed side takes at most one block, so stop when none is left.
  while (!buffer_waiters_.empty() && transport_.buffers_available()) {
    const uint32_t index = buffer_waiters_.front();
    Connection& c = slab_.at(index);
    buffer_waiters_.remove(slab_, index);
    c.client.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
    c.upstream.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
    if (c.state != State::kClosing) pump(c, index);
  }
}

void Worker::finish_iteration() noexcept {
  // Each pass takes over the touched list: what it touches (a failed settle, a freed slot's
  // waiters) is settled by the next pass, which a close or a refusal always ends.
  while (touched_count_ > 0) {
    const uint32_t count = touched_count_;
    std::swap(touched_, settling_);
    touched_count_ = 0;
    bool freed = false;
    for (uint32_t i = 0; i < count; ++i) {
      const uint32_t index = settling_[i];
      Connection& c = slab_.at(index);
      c.touched = false;
      const Handle h = slab_.handle_of(index);
      if (c.state == State::kClosing) {
        // Completion backends may still have operations in flight: their completions touch the
        // connection again, and it is freed once nothing refers to its slot. A cancel that found
        // no submission entry sets c.more: pump() touches it next iteration, so quiesce again.
        if (transport_.quiesce(c, h)) {
          close_connection(c, index);
          freed = true;
        } else {
          queue_pending(c, index);
        }
        continue;
      }
      if (!transport_.settle(c, h)) {
        touch(c, index);  // aborted: closed by the next pass
        continue;
      }
      if (c.state == State::kLingering && c.linger_wait_ms == 0) {
        check_linger(c, index);
        continue;
      }
      queue_pending(c, index);
    }
    if (freed) {
      // Descriptors came back: connections waiting for one go first, then new clients.
      if (retry_socket_waiters()) resume_listeners();
      // Freed buffers may let paused readers go on: they are pumped now and settled by the
      // next pass.
      if (!buffer_waiters_.empty() && transport_.buffers_available()) wake_buffer_waiters();
    }
  }
}

void Worker::queue_pending(Connection& c, uint32_t index) noexcept {
  // A connection can be settled by more than one pass: queue it once, so the list never holds
  // more entries than there are slots.
  if (!c.more || c.pending) return;
  EDGEPROXY_CHECK(pending_count_ < slab_.capacity());
  c.pending = true;
  pending_[pending_count_++] = index;
}

void Worker::close_connection(Connection& c, uint32_t index) noexcept {
  // Unless both directions ended in order and were delivered, a FIN would tell a peer the
  // stream ended cleanly: every side that did not fail itself is reset instead.
  const bool reset = !relay::ends_cleanly(c);
  for (Side* side : {&c.client, &c.upstream}) {
    if (side->fd < 0) continue;
    if (reset && !(side->flags & kFailed)) {
      sys::set_linger_zero(side->fd);
      ++stats_.resets_sent;
    }
    // close() also removes the fd from the epoll set: no fd is ever dup'ed.
    sys::close(side->fd);
  }
  pool_.release(c.client.in);
  pool_.release(c.upstream.in);
  transport_.release_pipes(c);
  leave_server(c);
  const Topology& t = *versions_[c.version].topology;
  for (ObjectStats* o :
       {&t.listeners[c.listener].runtime->stats,
        c.backend != kNoBackend ? &t.backends[c.backend].runtime->stats : nullptr}) {
    if (o == nullptr) continue;  // closed while inspecting: no backend was chosen
    o->current.fetch_sub(1, std::memory_order_relaxed);
    o->bytes_in.fetch_add(c.bytes_c2u, std::memory_order_relaxed);
    o->bytes_out.fetch_add(c.bytes_u2c, std::memory_order_relaxed);
  }
  const uint16_t version = c.version;
  --versions_[version].connections;
  buffer_waiters_.remove(slab_, index);
  socket_waiters_.remove(slab_, index);
  timers_.cancel(index);
  c = Connection{};
  slab_.release(index);
  --stats_.active;
  ++stats_.closed;
  release_version_if_unused(version);
}

uint64_t Worker::listener_cookie(const Listener& l) const noexcept {
  const auto index = static_cast<uint32_t>(&l - listeners_.data());
  return Cookie::pack(CookieTag::kListener, Handle{index, l.generation});
}

void Worker::pause_listener(Listener& l) noexcept {
  if (l.paused || l.fd() < 0) return;
  l.paused = true;
  ++stats_.accept_pauses;
  const SysResult r = reactor_.pause_listener(l.fd(), listener_cookie(l));
  // Still armed: the worker keeps refusing in accept_from() while full, one edge at a time.
  if (!r.ok()) log_warn("cannot pause the listener: %s", std::strerror(r.err));
}

void Worker::resume_listeners() noexcept {
  if (stopping_ || !room_for_clients()) return;
  for (uint32_t i = 0; i < listeners_.size(); ++i) {
    Listener& l = listeners_[i];
    if (!l.paused || l.fd() < 0) continue;
    // Connections that queued in the backlog meanwhile are reported at once.
    const SysResult r = reactor_.resume_listener(l.fd(), listener_cookie(l));
    if (!r.ok()) {
      log_warn("cannot resume the listener: %s (retrying)", std::strerror(r.err));
      timers_.arm(accept_retry_timer_, now_.ms + kAcceptRetryMs);
      continue;
    }
    l.paused = false;
  }
}

void Worker::begin_shutdown(bool fast) noexcept {
  if (!stopping_) {
    stopping_ = true;
    listener_pending_ = false;
    // Closing the listening sockets makes the kernel refuse new connections at once.
    for (Listener& l : listeners_) close_listener(l);
    // Connections waiting for a descriptor keep their retries.
    if (socket_waiters_.empty()) timers_.cancel(accept_retry_timer_);
    log_info("worker %u: %s shutdown, %u connection(s) open", id_, fast ? "fast" : "graceful",
             slab_.used());
  }
  if (!fast) return;
  if (fast_stop_ || config_.shutdown_timeout_s == 0) {
    force_close_all();  // a second TERM/INT, or no grace period: stop now
    return;
  }
  fast_stop_ = true;
  timers_.arm(shutdown_timer_, now_.ms + int64_t{config_.shutdown_timeout_s} * 1000);
}

void Worker::force_close_all() noexcept {
  for (uint32_t i = 0; i < slab_.capacity(); ++i) {
    if (!slab_.in_use(i)) continue;
    Connection& c = slab_.at(i);
    if (c.state != State::kClosing) ++stats_.shutdown_forced;
    socket_waiters_.remove(slab_, i);
    relay::abort(c);
    touch(c, i);
  }
}

}  // namespace edgeproxy
