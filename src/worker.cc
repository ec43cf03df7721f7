// The worker's event loop: accept, connect, relay, timers, signals and shutdown. See worker.h
// and docs/architecture.md for who owns what, docs/state-machine.md for the lifecycle.
#include "edgeproxy/worker.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#include "edgeproxy/check.h"
#include "edgeproxy/cookie.h"
#include "edgeproxy/log.h"
#include "edgeproxy/proxy_header.h"
#include "edgeproxy/relay.h"
#include "edgeproxy/server_health.h"

namespace edgeproxy {
namespace {

// CLOCK_REALTIME in milliseconds (vDSO): the access log's time of day.
int64_t wall_clock_ms() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

constexpr uint32_t kEventBatch = 256;
constexpr size_t kCommandsReserved = 16;  // control commands taken at once without allocating
constexpr int64_t kAcceptRetryMs = 100;   // out of fds: retry accepting this often, no sooner
// Accept priority: a connection that has moved less than this either way is young, and its
// events are handled before bulk relaying (a request and the start of its answer).
constexpr uint64_t kYoungBytes = 64 * 1024;
// Reads (or splices in) shared by the connections relaying in one iteration, each getting at
// least one and at most its transport's per-pump budget.
constexpr uint32_t kIterationReads = 256;
// A lingering connection looks at its peer's unacknowledged bytes after 1 ms, then at twice the
// previous interval while none were acknowledged, at most this often: a reset is passed on a
// round trip after the last byte is acknowledged, and many slow peers cost few ioctl calls.
constexpr uint32_t kLingerFirstMs = 1;
constexpr uint32_t kLingerMaxMs = 200;

// Completion backends only: a submission queue the kernel refused, completions it dropped, and
// the pool blocks lent to the kernel (in use for the pool, holding no bytes yet).
template <typename R, typename T>
void fill_completion_stats(Stats& s, const R& reactor, const T& transport) noexcept {
  if constexpr (requires { reactor.dropped_completions(); }) {
    s.submit_failures = reactor.submit_failures();
    s.cq_dropped = reactor.dropped_completions();
    s.lost_operations = transport.lost_operations();
  }
  if constexpr (requires { transport.lent_blocks(); }) {
    s.pool_blocks_in_use -= transport.lent_blocks();
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

using sys::send_whole;

// Rounds of transport pump and routing step per pump(): each moves a block or decides, so the
// inspection of a full region takes a few; the rest waits for the next iteration (c.more).
constexpr uint32_t kRouteRounds = 8;

// Forward listeners: verdicts remembered per listener and names per worker.
constexpr uint32_t kCredentialCacheEntries = 256;
constexpr uint32_t kDnsCacheEntries = 256;

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
      timers_(options.config.max_connections + 3),
      control_(options.control),
      id_(options.id),
      transport_(reactor_, pool_, stats_),
      access_log_(options.access_log),
      touched_(std::make_unique_for_overwrite<uint32_t[]>(options.config.max_connections)),
      settling_(std::make_unique_for_overwrite<uint32_t[]>(options.config.max_connections)),
      pending_(std::make_unique_for_overwrite<uint32_t[]>(options.config.max_connections)),
      carried_(std::make_unique_for_overwrite<uint32_t[]>(options.config.max_connections)),
      shutdown_timer_(options.config.max_connections),
      accept_retry_timer_(options.config.max_connections + 1),
      pool_sweep_timer_(options.config.max_connections + 2) {
  commands_.reserve(kCommandsReserved);
  limit_state_ = std::make_unique<LimitState[]>(options.config.max_connections);
  deferred_ = std::make_unique<bool[]>(kEventBatch);
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
  const int family = l.address().family();
  l.no_delay = config_.no_delay && (family == AF_INET || family == AF_INET6) &&
               sys::set_no_delay(l.fd(), true);
  const SysResult r = reactor_.watch_listener(l.fd(), listener_cookie(l));
  if (!r.ok()) {
    l.close();
    return Error{"listener " + plan.name + ": cannot watch it: " + std::strerror(r.err)};
  }
  return Ok{};
}

void Worker::apply_accept_options(Listener& l, const ListenerSpec& spec) noexcept {
  // Set when the configuration asks, cleared when it stops asking (a kept socket carries the
  // previous version's setting); a socket this process never set keeps what it came with.
  const int family = l.address().family();
  if (family != AF_INET && family != AF_INET6) return;
  const bool quick_ack_off = spec.smart_accept();
  if ((quick_ack_off || l.quick_ack_off) && sys::set_quick_ack(l.fd(), !quick_ack_off)) {
    l.quick_ack_off = quick_ack_off;
  }
  if ((spec.defer_accept_s != 0 || l.defer_accept_s != 0) &&
      sys::set_defer_accept(l.fd(), spec.defer_accept_s)) {
    l.defer_accept_s = spec.defer_accept_s;
  }
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
      if (l.mode != ListenerMode::kTcp) inspect = std::max(inspect, kMaxForwardHeadBytes);
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
  bool forward = false;
  bool http = false;
  for (const ListenerSpec& l : v.topology->listeners) {
    v.credential_caches.emplace_back();
    v.dns_caches.emplace_back();
    http = http || l.mode == ListenerMode::kHttp;
    if (l.mode != ListenerMode::kForward) continue;
    forward = true;
    if (l.forward.credentials != nullptr) {
      v.credential_caches.back() = std::make_unique<CredentialCache>(kCredentialCacheEntries);
    }
    v.dns_caches.back() = std::make_unique<DnsCache>(kDnsCacheEntries, l.forward.dns_ttl_ms);
  }
  if (http) {
    // Every backend gets a pool (a rule may name any of them); sockets open only when used.
    size_t most = 0;
    for (const BackendSpec& b : v.topology->backends) {
      v.pools.emplace_back(static_cast<uint32_t>(b.servers.size()), b.pool.size);
      most = std::max(most, b.servers.size());
    }
    v.costs.assign(most, 0);
    timers_.arm(pool_sweep_timer_, now_.ms + 1000);
  }
  if (forward || http) v.forward = std::make_unique<ForwardArea>(slab_.capacity());
  if (forward) {
    if (resolver_ == nullptr && control_ != nullptr) {
      auto r = Resolver::create(ResolverOptions{}, control_->fd());
      if (r.ok()) {
        resolver_ = std::move(r.value());
      } else {
        log_error("forward proxy: %s (named destinations answer 502)", r.error().c_str());
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
    for (Listener& l : listeners_) {
      if (l.fd() >= 0) apply_accept_options(l, versions_[slot].topology->listeners[l.listener]);
    }
  }
  const uint16_t previous = current_;
  current_ = slot;
  // The previous version's free pooled connections go now; its attached ones when their
  // requests end (decision 0013).
  if (previous != slot && versions_[previous].topology != nullptr) {
    close_free_sockets(versions_[previous]);
  }
  configure_access_log(versions_[slot].topology->global);
  apply_new_limits();
  if (previous != slot) release_version_if_unused(previous);
  return result;
}

void Worker::release_version_if_unused(uint16_t version) noexcept {
  Version& v = versions_[version];
  if (version == current_ || v.connections != 0 || v.topology == nullptr) return;
  close_free_sockets(v);
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
  s.pool_blocks_in_use = pool_.in_use();
  s.splice_pipes_in_use = transport_.pipes().in_use();
  if (access_log_ != nullptr) s.log_dropped += access_log_->lost();
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
    const bool busy = pending_count_ > 0;
    reactor_.set_concurrency(slab_.used());
    const std::span<const Event> events = reactor_.wait(busy ? 0 : timers_.timeout_ms(now_.ms));
    now_ = LoopTime::now();
    ++stats_.loop_iterations;
    stats_.events += events.size();

    // Accept priority (docs/limits.md): new clients, connect completions and control come
    // first, then relaying (work carried over from the previous iteration's read budgets, then
    // this iteration's events), so a new client waits for at most one iteration's relaying,
    // which the read budgets and the event batch bound.
    // Decided for every event before any is handled: handling one changes the state the
    // decision reads, and a connection's events must keep their order (each is dispatched
    // exactly once, all of a connection's in the same pass).
    const size_t batch = std::min<size_t>(events.size(), kEventBatch);
    uint32_t deferred = 0;
    for (size_t i = 0; i < batch; ++i) {
      deferred_[i] = !is_priority(events[i]);
      deferred += deferred_[i] ? 1u : 0u;
      note_free_server_event(events[i]);
    }
    for (size_t i = 0; i < batch; ++i) {
      if (!deferred_[i]) dispatch(events[i]);
    }
    const uint32_t carried = pending_count_;
    std::swap(pending_, carried_);
    pending_count_ = 0;
    // Bulk relaying shares kIterationReads among the connections that relay this iteration, so
    // a new client's next step waits for a bounded amount of it however many there are.
    const uint32_t relaying = carried + deferred;
    set_read_budget(relaying == 0 ? kIterationReads : kIterationReads / relaying);
    for (uint32_t i = 0; i < carried; ++i) {
      const uint32_t index = carried_[i];
      Connection& c = slab_.at(index);
      if (!slab_.in_use(index)) continue;
      c.pending = false;
      if (c.more) pump(c, index);
    }
    for (size_t i = 0; i < events.size(); ++i) {
      if (i >= batch || deferred_[i]) dispatch(events[i]);
    }
    restart_cancels_after_drops();
    set_read_budget(kIterationReads);
    expire_timers();
    wake_buffer_waiters();
    finish_iteration();
    if (!stopping_) update_accept_room();
  }
  return 0;
}

void Worker::set_read_budget(uint32_t reads) noexcept {
  // Readiness backends only: a completion backend takes one step per completion.
  [reads](auto& transport) {
    if constexpr (requires { transport.set_read_budget(reads); }) {
      using T = std::remove_reference_t<decltype(transport)>;
      transport.set_read_budget(std::clamp<uint32_t>(reads, 1, T::kReadBudget));
    }
  }(transport_);
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

void Worker::note_free_server_event(const Event& ev) noexcept {
  const Cookie ck = Cookie::unpack(ev.cookie);
  if (ck.tag == CookieTag::kServer) transport_.note_server_event(ck.handle);
}

void Worker::update_accept_room() noexcept {
  reactor_.set_accept_room(slab_.capacity() - slab_.used(), static_cast<uint32_t>(config_.backlog));
}

bool Worker::is_priority(const Event& ev) const noexcept {
  const Cookie ck = Cookie::unpack(ev.cookie);
  if (ck.tag == CookieTag::kListener || ck.tag == CookieTag::kControl) return true;
  Handle h = ck.handle;
  if (ck.tag == CookieTag::kServer) {
    const std::optional<Handle> owner = transport_.server_owner(ck.handle);
    if (!owner) return false;
    h = *owner;
  }
  const Connection* c = slab_.resolve(h);
  if (c == nullptr) return false;
  // Connecting, or young: a new client's first exchange (its request and the first bytes of its
  // answer) is not held up behind connections that have been moving bulk data for a while.
  return c->state < State::kRelaying || c->bytes_c2u + c->bytes_u2c < kYoungBytes;
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
      } else if (listeners_[i].fd() >= 0 && !listeners_[i].paused) {
        accept_from(i);
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
    case CookieTag::kServer:
      // A pooled server socket's registration (decision 0020): its owner's event, or a free
      // socket's, marked stirred (the batch's first pass did already, unless an event handled
      // earlier in the batch freed it).
      if (const std::optional<Handle> owner = transport_.server_owner(ck.handle)) {
        on_connection_event(CookieTag::kUpstream, *owner, ev);
      } else if (!transport_.note_server_event(ck.handle)) {
        ++stats_.stale_events;  // the descriptor was closed, and its number registered again
      }
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

void Worker::arm_idle_timer(uint32_t index, int64_t within_ms) noexcept {
  const Connection& c = slab_.at(index);
  const int64_t idle_ms = idle_timeout_ms(c);
  const int64_t due =
      std::min({idle_ms != 0 ? now_.ms + idle_ms : TimerQueue::kNever, limits_due(c, index),
                within_ms != TimerQueue::kNever ? now_.ms + within_ms : TimerQueue::kNever});
  if (due != TimerQueue::kNever) {
    timers_.arm(index, due);
  } else {
    timers_.cancel(index);
  }
}

void Worker::on_control() noexcept {
  control_->take(commands_);
  // The eventfd was drained first: a result finished after this take rings it again.
  if (resolver_ != nullptr) on_resolved();
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
      case WorkerCommand::Kind::kListConnections:
        control_->answer(command.ticket, list_connections(command.limit));
        break;
      case WorkerCommand::Kind::kKill: {
        AdminAnswer a;
        a.killed = kill_connection(command.slot, command.generation);
        control_->answer(command.ticket, std::move(a));
        break;
      }
      case WorkerCommand::Kind::kBalancers: {
        // Rebuilt for one version: a reload since then built its own from the same weights.
        Version& v = versions_[current_];
        if (v.topology->epoch == command.epoch && command.balancers.size() == v.balancers.size()) {
          v.balancers = std::move(command.balancers);
        }
        break;
      }
    }
  }
  commands_.clear();  // lets go of what the commands held (old topologies, sockets taken)
}

AdminAnswer Worker::list_connections(uint32_t limit) {
  AdminAnswer out;
  out.connections.reserve(std::min(limit, slab_.used()));
  for (uint32_t i = 0; i < slab_.capacity(); ++i) {
    if (!slab_.in_use(i)) continue;
    const Connection& c = slab_.at(i);
    if (c.state == State::kFree) continue;
    ++out.open;
    if (out.connections.size() >= limit) continue;
    ConnectionInfo info;
    info.id = std::to_string(id_) + "." + std::to_string(i) + "." +
              std::to_string(slab_.handle_of(i).generation);
    SocketAddress peer;
    peer.length = sizeof peer.storage;
    if (c.client.fd >= 0 &&
        getpeername(c.client.fd, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) == 0) {
      info.client = peer.to_string();
    } else {
      info.client = "?";
    }
    const Topology& t = *versions_[c.version].topology;
    info.listener = t.listeners[c.listener].name;
    if (c.backend < t.backends.size() && c.server < t.backends[c.backend].servers.size()) {
      info.server = t.backends[c.backend].name + "/" + t.backends[c.backend].servers[c.server].name;
    } else if (c.backend == kDirectBackend) {
      info.server = "direct";
    } else {
      info.server = "-";
    }
    info.state = to_string(c.state);
    info.bytes_c2u = c.bytes_c2u;
    info.bytes_u2c = c.bytes_u2c;
    info.age_ms = now_.ms - limit_state_[i].accepted_ms;
    out.connections.push_back(std::move(info));
  }
  return out;
}

bool Worker::kill_connection(uint32_t slot, uint32_t generation) noexcept {
  if (slot >= slab_.capacity() || !slab_.in_use(slot)) return false;
  Connection* c = slab_.resolve(Handle{slot, generation});
  if (c == nullptr || c->state == State::kFree || c->state == State::kClosing) return false;
  // Cut in the middle of a stream: both sides are reset (decision 0004: a FIN never lies).
  socket_waiters_.remove(slab_, slot);
  relay::abort(*c, EndReason::kAdminKill);
  touch(*c, slot);
  return true;
}

void Worker::accept_from(uint32_t listener_index) noexcept {
  Listener& l = listeners_[listener_index];
  if (l.fd() < 0) return;
  if (!room_for_clients()) {
    // Leave clients in the kernel backlog; a freed slot (or descriptor) resumes the listener.
    pause_listener(l);
    return;
  }
  // One connection per report: the reactor reports a listener at every wait while connections
  // are queued (decision 0019), so none is forgotten and no accept4() is spent on the EAGAIN
  // that would end a drain. EAGAIN still comes when another worker sharing the socket won.
  SocketAddress peer;
  const SysResult r = sys::accept(l.fd(), &peer);
  if (r.ok()) {
    start_connection(static_cast<int>(r.value), l, &peer);
  } else if (!r.would_block()) {
    on_accept_error(l, r.err);
  }
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
  start_connection(result, l, nullptr);
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

void Worker::start_connection(int client_fd, const Listener& l,
                              const SocketAddress* accepted) noexcept {
  SocketAddress looked;
  const SocketAddress* peer = accepted;
  const auto client = [&]() -> const SocketAddress& {
    if (peer == nullptr) {
      looked.length = sizeof looked.storage;
      if (getpeername(client_fd, reinterpret_cast<sockaddr*>(&looked.storage), &looked.length) !=
          0) {
        looked.length = 0;  // reset already
      }
      peer = &looked;
    }
    return *peer;
  };
  uint32_t client_slot = kNoClientSlot;
  {
    const ListenerSpec& spec = versions_[current_].topology->listeners[l.listener];
    if (spec.clients != nullptr && !admit_client(client_fd, client(), spec, client_slot)) return;
  }
  Handle h;
  Connection* c = slab_.acquire(h);  // accept_from checked there is room
  c->client_slot = client_slot;
  if (log_format_ != nullptr) {
    peers_[h.index] = client();  // length 0 (reset already): the line says "-"
  } else if (peers_ != nullptr) {
    peers_[h.index].length = 0;  // should a reload turn the log on again, this one is unknown
  }
  ++stats_.accepted;
  ++stats_.active;
  if (stats_.active > stats_.peak_active) stats_.peak_active = stats_.active;
  relay::on_client(*c, client_fd, now_);
  Version& v = versions_[current_];
  ++v.connections;
  c->version = current_;
  c->listener = static_cast<uint16_t>(l.listener);
  const ListenerSpec& ls = v.topology->listeners[l.listener];
  if (ls.accelerate_bytes != 0 && ls.mode == ListenerMode::kTcp) {
    // Whole blocks, `in` included (decision 0011); the transport's attach reads it.
    c->accel_limit = static_cast<uint16_t>(std::max(ls.accelerate_bytes / kBufferBytes, 1u));
  }
  ls.runtime->stats.connections.fetch_add(1, std::memory_order_relaxed);
  ls.runtime->stats.current.fetch_add(1, std::memory_order_relaxed);
  touch(*c, h.index);
  limit_state_[h.index].accepted_ms = now_.ms;
  set_limits(*c, h.index);
  // A TCP listener passes TCP_NODELAY on (add_listener); a Unix socket has no Nagle to turn off.
  if (config_.no_delay && !l.no_delay && l.address().family() != AF_UNIX) {
    sys::set_no_delay(client_fd, true);
  }
  if (const int err = transport_.attach(*c, h); err != 0) {
    log_error("cannot watch a client connection: %s", std::strerror(err));
    relay::abort(*c, EndReason::kInternalError);
    return;
  }
  if (ls.mode == ListenerMode::kForward) {
    start_forward(*c, h, ls);
    return;
  }
  if (ls.mode == ListenerMode::kHttp) {
    start_http(*c, h, ls, client());
    return;
  }
  if (ls.inspects()) {
    // The backend is chosen by the first bytes (or after the PROXY header): read them first.
    v.routing->reset(h.index).header_read = !ls.accept_proxy;
    ls.runtime->route.inspected.fetch_add(1, std::memory_order_relaxed);
    relay::on_inspecting(*c, ls.defer_accept_s != 0);
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
    if (is_forward(c)) {
      forward_answer(c, 503);
      return;
    }
    relay::abort(c, EndReason::kNoServer);
    return;
  }
  c.server = static_cast<uint16_t>(s);
  c.last_server = c.server;
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
        refuse(c, {}, false, EndReason::kProxyHeaderError);
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
    refuse(c, {}, false, EndReason::kNoRoute);
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
        refuse(c, {}, false, EndReason::kMapMiss);
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
        refuse(c, {}, true, EndReason::kClientReset);
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
      refuse(c, a.text, false, EndReason::kRouteClose);
      return;
    case ActionKind::kReject:
      counts.rejects.fetch_add(1, std::memory_order_relaxed);
      refuse(c, {}, true, EndReason::kRouteReject);
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

void Worker::refuse(Connection& c, std::string_view text, bool reset, EndReason why) noexcept {
  if (!reset && !send_whole(c.client.fd, text)) reset = true;
  if (!reset) sys::shutdown_write(c.client.fd);  // the FIN follows the text
  relay::on_refused(c, reset, why);
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

// --- Forward proxy (mode forward, decision 0010) ------------------------------------------------

void Worker::start_forward(Connection& c, Handle h, const ListenerSpec& ls) noexcept {
  Version& v = versions_[c.version];
  v.routing->reset(h.index).header_read = true;
  ForwardExchange& ex = v.forward->reset(h.index);
  ex.head_started_ms = now_.ms;
  ex.head_evaluated = UINT32_MAX;
  // Nothing passes either way until the worker approves it.
  c.client.gate = 0;
  c.upstream.gate = 0;
  relay::on_inspecting(c, ls.defer_accept_s != 0);
  timers_.arm(h.index, now_.ms + ls.forward.request_timeout_ms);
  pump(c, h.index);
}

void Worker::forward_step(Connection& c, uint32_t index) noexcept {
  Version& v = versions_[c.version];
  ForwardExchange& ex = v.forward->at(index);
  RoutingContext& ctx = v.routing->at(index);
  const Handle h = slab_.handle_of(index);
  for (uint32_t round = 0; round < kRouteRounds; ++round) {
    if (c.state >= State::kLingering) return;
    bool again = c.pooled || is_http(c) ? http_response(c, ex, v.forward->response_area(index))
                                        : forward_response(c, ex, v.forward->response_area(index));
    if (c.state >= State::kLingering) return;
    again = forward_request(c, h, ctx, ex) || again;
    if (!again || c.state >= State::kLingering) return;
    transport_.pump(c, h, now_);
    if ((c.client.gate & c.upstream.gate) == kOpenGate) return;  // a tunnel now: relay only
  }
  c.more = true;
}

bool Worker::forward_request(Connection& c, Handle h, RoutingContext& ctx,
                             ForwardExchange& ex) noexcept {
  Side& client = c.client;
  switch (ex.phase) {
    case ForwardPhase::kHead:
      return read_request_head(c, h, ctx, ex);
    case ForwardPhase::kReplaying:
      return forward_replay(c, ctx, ex);
    case ForwardPhase::kBody: {
      if (!client.in.attached() || client.in.readable() == client.gate) return false;
      const uint32_t unapproved = client.in.readable() - client.gate;
      const http::BodyProgress p =
          ex.request_body.consume({client.in.read_ptr() + client.gate, unapproved});
      if (p.status == http::BodyStatus::kInvalid) {
        // The head went out already: no answer can follow it, only a reset.
        if (is_http(c)) {
          listener_of(c).runtime->http.bad_requests.fetch_add(1, std::memory_order_relaxed);
          leave_pool(c);
        } else {
          listener_of(c).runtime->forward.smuggling.fetch_add(1, std::memory_order_relaxed);
        }
        relay::abort(c, EndReason::kProtocolError);
        return false;
      }
      if (is_http(c)) {
        // A chunked body over max-body: its head went out, so the exchange can only be cut.
        const ListenerSpec& ls = listener_of(c);
        ex.http.body_bytes += p.used;
        if (ls.http.max_body != 0 && ex.http.body_bytes > ls.http.max_body) {
          ls.runtime->http.bodies_too_large.fetch_add(1, std::memory_order_relaxed);
          leave_pool(c);
          relay::abort(c, EndReason::kProtocolError);
          return false;
        }
      }
      client.gate += p.used;
      if (p.status == http::BodyStatus::kDone) {
        ex.request_done = true;
        request_sent(ex, ctx);
      }
      return p.used > 0;
    }
    case ForwardPhase::kDone: {
      bool moved = false;
      if (client.paused & kPauseReplay) {
        // A request still held (pipelined behind the last one, or kept for a retry) will never
        // go out: it goes, and the client is read again, or its end would never be seen.
        ex.dropped = ex.dropped || ctx.length > ex.replay_end;
        ctx.length = 0;
        ctx.replayed = 0;
        ex.replay_end = 0;
        ex.http.kept = 0;
        relay::end_replay(c);
        moved = true;
      }
      // Never forwarded: after the server's close or an answer, these bytes are nobody's.
      if (client.in.attached() && client.gate == 0) {
        ex.dropped = ex.dropped || client.in.readable() > 0;
        client.in.consume(client.in.readable());
        pool_.release(client.in);
        client.paused &= static_cast<uint8_t>(~kPauseBackpressure);
        relay::end_if_done(c);
        return true;
      }
      if (moved) relay::end_if_done(c);
      return moved;
    }
    case ForwardPhase::kResolving:
    case ForwardPhase::kAssigning:
    case ForwardPhase::kResponse:
    case ForwardPhase::kTunnel:
      return false;
  }
  return false;
}

bool Worker::read_request_head(Connection& c, Handle h, RoutingContext& ctx,
                               ForwardExchange& ex) noexcept {
  Side& client = c.client;
  if (c.state != State::kInspecting && c.state != State::kRelaying) return false;
  if (client.gate != 0) return false;  // the previous request's bytes are still going out
  bool moved = false;
  if (client.in.attached() && !client.in.empty() && ctx.length < kMaxForwardHeadBytes) {
    if (ctx.length == 0) {
      ex.head_started_ms = now_.ms;
      if (c.state == State::kRelaying) {
        const int64_t idle_ms = idle_timeout_ms(c);
        const int64_t head_due = now_.ms + request_timeout_ms(c);
        timers_.arm(h.index, idle_ms == 0 ? head_due : std::min(head_due, now_.ms + idle_ms));
      }
    }
    moved = move_client_bytes(c, ctx, kMaxForwardHeadBytes) > 0;
  }
  const bool ended = (client.flags & kEof) != 0;
  if (ctx.length == ex.head_evaluated && !ended) return moved;
  // An answer or the next request must not overtake the previous response's last bytes.
  if (c.upstream.in.attached() || c.upstream.piped > 0) return moved;
  ex.head_evaluated = ctx.length;
  if (ctx.length == 0) {
    if (ended && c.state == State::kInspecting)
      refuse(c, {}, false, EndReason::kClientFin);  // left without asking
    return moved;
  }
  const ListenerSpec& ls = listener_of(c);
  http::RequestHead head;
  const std::string_view bytes(reinterpret_cast<const char*>(ctx.region), ctx.length);
  switch (http::parse_request_head(bytes, ex.head_scanned, head)) {
    case http::HeadStatus::kNeedMore:
      relay::end_replay(c);  // the rest of the head is still to be read
      if (ctx.length >= kMaxForwardHeadBytes) {
        (ls.mode == ListenerMode::kHttp ? ls.runtime->http.heads_too_large
                                        : ls.runtime->forward.heads_too_large)
            .fetch_add(1, std::memory_order_relaxed);
        if (c.pooled) leave_pool(c);
        forward_answer(c, 431);
      } else if (ended) {
        if (ls.mode == ListenerMode::kHttp && ctx.length == 0) {
          return moved;  // unreachable: no bytes means no head to parse
        }
        (ls.mode == ListenerMode::kHttp ? ls.runtime->http.bad_requests
                                        : ls.runtime->forward.bad_requests)
            .fetch_add(1, std::memory_order_relaxed);
        if (c.pooled) leave_pool(c);
        forward_answer(c, 400);
      }
      return moved;
    case http::HeadStatus::kInvalid:
      (ls.mode == ListenerMode::kHttp ? ls.runtime->http.bad_requests
                                      : ls.runtime->forward.bad_requests)
          .fetch_add(1, std::memory_order_relaxed);
      if (c.pooled) leave_pool(c);
      forward_answer(c, 400);
      return false;
    case http::HeadStatus::kDone:
      break;
  }
  if (ls.mode == ListenerMode::kHttp) {
    decide_http(c, h, ctx, ex, head);
    return true;
  }
  decide_request(c, h, ctx, ex, head);
  return true;
}

namespace {

// The value of the one field named `name`; false when there are none or several.
bool single_field(const http::RequestHead& head, std::string_view name,
                  std::string_view& value) noexcept {
  uint32_t found = 0;
  for (uint32_t i = 0; i < head.header_count; ++i) {
    if (!http::iequals(head.headers[i].name, name)) continue;
    value = head.headers[i].value;
    ++found;
  }
  return found == 1;
}

// "host:port" -> host (brackets dropped) and port; false when malformed or the port is 0.
bool split_authority(std::string_view authority, uint16_t default_port, std::string_view& host,
                     uint16_t& port) noexcept {
  host = http::host_without_port(authority);
  if (host.empty()) return false;
  port = default_port;
  const size_t close = authority.rfind(']');
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && (close == std::string_view::npos || colon > close)) {
    uint32_t p = 0;
    for (const char d : authority.substr(colon + 1)) p = p * 10 + static_cast<uint32_t>(d - '0');
    port = static_cast<uint16_t>(p);  // host_without_port() checked digits and range
  }
  return port != 0 && host.size() < 256;
}

}  // namespace

void Worker::decide_request(Connection& c, Handle h, RoutingContext& ctx, ForwardExchange& ex,
                            const http::RequestHead& head) noexcept {
  const ListenerSpec& ls = listener_of(c);
  ForwardStats& counts = ls.runtime->forward;
  http::Framing framing;
  if (http::request_framing(head, framing) != http::FramingStatus::kOk) {
    counts.smuggling.fetch_add(1, std::memory_order_relaxed);
    counts.bad_requests.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 400);
    return;
  }
  if (!authenticate(c, h, ex, head)) return;
  // Where it goes: CONNECT's authority, absolute-form's, or the listener's backend.
  const bool tunnel = framing.kind == http::BodyKind::kTunnel;
  ForwardTarget target = ForwardTarget::kDirect;
  std::string_view host;
  uint16_t port = 0;
  bool ok = true;
  if (tunnel) {
    ok = split_authority(head.target, 443, host, port);
  } else if (head.target.starts_with("http://")) {
    const std::string_view rest = head.target.substr(7);
    ok = split_authority(rest.substr(0, rest.find_first_of("/?")), 80, host, port);
  } else if (head.target.starts_with("/")) {
    target = ForwardTarget::kBackend;
  } else {
    ok = false;  // "https://" (the proxy does not speak TLS) or "*"
  }
  if (!ok) {
    counts.bad_requests.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 400);
    return;
  }
  if (target == ForwardTarget::kBackend && ls.backend == kNoBackendIndex) {
    counts.no_backend.fetch_add(1, std::memory_order_relaxed);
    counts.bad_requests.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 400);
    return;
  }
  const std::string_view before(ex.host.data(), ex.host_length);
  if (ex.requests > 0 &&
      (tunnel || target != ex.target ||
       (target == ForwardTarget::kDirect && (port != ex.port || !http::iequals(host, before))))) {
    // Another destination: this connection's server is not it (decision 0010). The client
    // retries on a new connection, where the request is routed.
    counts.destination_closes.fetch_add(1, std::memory_order_relaxed);
    ex.phase = ForwardPhase::kDone;
    relay::set_end(c, EndReason::kForwardDestination);
    relay::finish(c);
    return;
  }
  if (ex.requests == 0 && target == ForwardTarget::kDirect) {
    // Kept before the rewrite overwrites the head: the next requests are compared with it.
    std::memcpy(ex.host.data(), host.data(), host.size());
    ex.host_length = static_cast<uint8_t>(host.size());
    ex.port = port;
  }
  // The head as the server gets it: origin-form, hop-by-hop fields removed, rewritten in place.
  uint32_t rewritten = 0;
  if (!tunnel) {
    http::ConnectionTokens tokens;
    if (!http::parse_connection({head.headers.data(), head.header_count}, tokens)) {
      counts.bad_requests.fetch_add(1, std::memory_order_relaxed);
      forward_answer(c, 400);
      return;
    }
    std::string_view upgrade;
    http::RewriteOptions options;
    options.close = framing.close;
    options.upgrade = tokens.upgrade && single_field(head, "Upgrade", upgrade);
    // Into the scratch block, not in place: a head may grow (a Host line added or replaced, a
    // Connection line), and the bytes behind it must move first.
    rewritten = http::rewrite_request_head(head, tokens, options,
                                           {hello_scratch_.get(), hello_scratch_bytes_});
    if (rewritten == 0 || rewritten + (ctx.length - head.length) > ctx.capacity) {
      counts.bad_requests.fetch_add(1, std::memory_order_relaxed);
      forward_answer(c, 400);
      return;
    }
  }
  const uint32_t after = ctx.length - head.length;
  std::memmove(ctx.region + rewritten, ctx.region + head.length, after);
  std::memcpy(ctx.region, hello_scratch_.get(), rewritten);
  ctx.length = rewritten + after;
  ctx.replayed = 0;
  ex.replay_end = rewritten;
  ex.tunnel = tunnel;
  ex.client_close = framing.close;
  ex.head_request = head.method == "HEAD";
  ex.request_body.reset(framing);
  ex.request_done = false;
  if (tunnel) {
    ex.replay_end = ctx.length;  // what follows CONNECT's head (a TLS hello) is the tunnel's
  } else {
    ex.response_pending = true;
    const http::BodyProgress p = ex.request_body.consume({ctx.region + rewritten, after});
    if (p.status == http::BodyStatus::kInvalid) {
      counts.smuggling.fetch_add(1, std::memory_order_relaxed);
      counts.bad_requests.fetch_add(1, std::memory_order_relaxed);
      forward_answer(c, 400);
      return;
    }
    ex.replay_end += p.used;
    ex.request_done = p.status == http::BodyStatus::kDone;
  }
  ex.phase = ForwardPhase::kReplaying;
  relay::hold_for_replay(c);
  if (ex.requests++ > 0) {
    counts.reused.fetch_add(1, std::memory_order_relaxed);
    return;  // the same server: the replay starts at the next step
  }
  ex.target = target;
  timers_.cancel(h.index);
  relay::on_routed(c);
  if (target == ForwardTarget::kBackend) {
    c.backend = static_cast<uint16_t>(ls.backend);
    ObjectStats& b = versions_[c.version].topology->backends[ls.backend].runtime->stats;
    b.connections.fetch_add(1, std::memory_order_relaxed);
    b.current.fetch_add(1, std::memory_order_relaxed);
    choose_server(c, h, Balancer::kNoServer);
    return;
  }
  const DestinationPolicy& policy = tunnel ? ls.forward.connect_policy : ls.forward.http_policy;
  if (!policy.ports().contains(port)) {
    counts.forbidden.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 403);
    return;
  }
  resolve_destination(c, h, ex);
}

bool Worker::authenticate(Connection& c, Handle h, ForwardExchange& ex,
                          const http::RequestHead& head) noexcept {
  const ListenerSpec& ls = listener_of(c);
  const Credentials* credentials = ls.forward.credentials.get();
  if (credentials == nullptr) return true;
  ForwardStats& counts = ls.runtime->forward;
  std::string_view value;
  if (!single_field(head, "Proxy-Authorization", value)) {
    counts.auth_missing.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 407);
    return false;
  }
  if (ex.authorized_length != 0 && value.size() == ex.authorized_length &&
      std::memcmp(value.data(), ex.authorized.data(), value.size()) == 0) {
    counts.auth_cache_hits.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  CredentialCache& cache = *versions_[c.version].credential_caches[c.listener];
  const CredentialCache::Key key = CredentialCache::key_of(value);
  CachedVerdict verdict = cache.lookup(key);
  if (verdict.verdict != CacheVerdict::kUnknown) {
    counts.auth_cache_hits.fetch_add(1, std::memory_order_relaxed);
  } else {
    char scratch[kMaxForwardHeadBytes];
    std::string_view user, password;
    const bool good = parse_basic(value, scratch, sizeof scratch, user, password) &&
                      credentials->verify(user, password, verdict.user_index);
    verdict.verdict = good ? CacheVerdict::kGood : CacheVerdict::kBad;
    cache.insert(key, verdict);
  }
  if (verdict.verdict == CacheVerdict::kGood) {
    if (!auth_throttle_.empty()) {
      // A success forgets the client's failures (only looked up while some are recorded).
      SocketAddress peer;
      peer.length = sizeof peer.storage;
      if (getpeername(c.client.fd, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) == 0) {
        auth_throttle_.on_success(peer);
      }
    }
    if (value.size() <= ex.authorized.size()) {
      std::memcpy(ex.authorized.data(), value.data(), value.size());
      ex.authorized_length = static_cast<uint8_t>(value.size());
    }
    return true;
  }
  counts.auth_failures.fetch_add(1, std::memory_order_relaxed);
  SocketAddress peer;
  peer.length = sizeof peer.storage;
  uint32_t delay_ms = 0;
  if (getpeername(c.client.fd, reinterpret_cast<sockaddr*>(&peer.storage), &peer.length) == 0) {
    delay_ms = auth_throttle_.on_failure(peer, now_.ms);
  }
  if (delay_ms == 0) {
    forward_answer(c, 407);
    return false;
  }
  // Answered later by the connection's timer; nothing more is read meanwhile.
  counts.auth_delays.fetch_add(1, std::memory_order_relaxed);
  ex.held_status = 407;
  ex.phase = ForwardPhase::kDone;
  timers_.arm(h.index, now_.ms + delay_ms);
  return false;
}

void Worker::resolve_destination(Connection& c, Handle h, ForwardExchange& ex) noexcept {
  const ListenerSpec& ls = listener_of(c);
  ForwardStats& counts = ls.runtime->forward;
  const std::string_view host(ex.host.data(), ex.host_length);
  SocketAddress literal;
  if (numeric_address(host, ex.port, literal)) {
    connect_direct(c, h, ex, {&literal, 1});
    return;
  }
  DnsCache& cache = *versions_[c.version].dns_caches[c.listener];
  if (const std::span<const SocketAddress> hit = cache.lookup(host, ex.port, now_.ms);
      !hit.empty()) {
    counts.dns_cache_hits.fetch_add(1, std::memory_order_relaxed);
    // Copied first: connect_direct() keeps what the policy allows, and the cache may change.
    std::array<SocketAddress, kMaxDestinationAddresses> addresses;
    const size_t n = std::min(hit.size(), addresses.size());
    std::copy_n(hit.begin(), n, addresses.begin());
    connect_direct(c, h, ex, {addresses.data(), n});
    return;
  }
  const uint64_t cookie = (uint64_t{h.generation} << 32) | h.index;
  if (resolver_ == nullptr || !resolver_->submit(cookie, host, ex.port, AF_UNSPEC)) {
    counts.resolve_failures.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 502);
    return;
  }
  counts.resolves.fetch_add(1, std::memory_order_relaxed);
  ex.resolving = true;
  ex.phase = ForwardPhase::kResolving;
  timers_.arm(h.index, now_.ms + ls.forward.connect_timeout_ms);
}

void Worker::on_resolved() noexcept {
  resolver_->take(resolved_);
  for (const ResolveResult& r : resolved_) {
    const Handle h{static_cast<uint32_t>(r.cookie), static_cast<uint32_t>(r.cookie >> 32)};
    Connection* c = slab_.resolve(h);
    if (c == nullptr || !is_forward(*c)) continue;  // closed meanwhile: dropped
    ForwardExchange& ex = exchange_of(h.index);
    if (!ex.resolving || c->state != State::kRouting) continue;  // answered meanwhile (504)
    ex.resolving = false;
    touch(*c, h.index);
    const ListenerSpec& ls = listener_of(*c);
    if (r.error != 0 || r.count == 0) {
      ls.runtime->forward.resolve_failures.fetch_add(1, std::memory_order_relaxed);
      if (log_level() == LogLevel::kVerbose) {
        log_debug("cannot resolve %.*s: %s", static_cast<int>(ex.host_length), ex.host.data(),
                  r.reason());
      }
      forward_answer(*c, 502);
      continue;
    }
    versions_[c->version].dns_caches[c->listener]->insert({ex.host.data(), ex.host_length}, ex.port,
                                                          {r.addresses.data(), r.count}, now_.ms);
    ex.phase = ForwardPhase::kReplaying;
    connect_direct(*c, h, ex, {r.addresses.data(), r.count});
    if (c->state != State::kClosing) pump(*c, h.index);
  }
  resolved_.clear();
}

void Worker::connect_direct(Connection& c, Handle h, ForwardExchange& ex,
                            std::span<const SocketAddress> addresses) noexcept {
  const ListenerSpec& ls = listener_of(c);
  const DestinationPolicy& policy = ex.tunnel ? ls.forward.connect_policy : ls.forward.http_policy;
  // Checked after resolution, every address, and the one checked is the one connected to: a
  // name that resolves to a private address is refused like the address itself.
  ex.address_count = 0;
  for (const SocketAddress& a : addresses) {
    if (ex.address_count == kMaxDestinationAddresses) break;
    if (policy.check(a) != Verdict::kAllowed) continue;
    ex.addresses[ex.address_count++] = a;
  }
  if (ex.address_count == 0) {
    ls.runtime->forward.forbidden.fetch_add(1, std::memory_order_relaxed);
    forward_answer(c, 403);
    return;
  }
  ex.phase = ForwardPhase::kReplaying;
  c.backend = kDirectBackend;
  c.address = 0;
  c.tried = 0;
  connect_upstream(c, h);
}

bool Worker::forward_replay(Connection& c, RoutingContext& ctx, ForwardExchange& ex) noexcept {
  if (c.state < State::kRelaying) return false;  // still connecting
  Side& client = c.client;
  bool moved = false;
  if (client.in.attached() && client.gate == 0 && !client.in.empty()) {
    // Brought by a receive in flight when the head was decided: they follow the held bytes.
    EDGEPROXY_CHECK(ctx.length + client.in.readable() <= ctx.capacity);
    moved = move_client_bytes(c, ctx, ctx.capacity) > 0;
  }
  if (ex.tunnel) ex.replay_end = ctx.length;  // everything after CONNECT's head is the tunnel's
  if (!ex.tunnel && !ex.request_done && ex.replay_end < ctx.length) {
    const http::BodyProgress p =
        ex.request_body.consume({ctx.region + ex.replay_end, ctx.length - ex.replay_end});
    if (p.status == http::BodyStatus::kInvalid) {
      if (is_http(c)) {
        listener_of(c).runtime->http.bad_requests.fetch_add(1, std::memory_order_relaxed);
        leave_pool(c);
      } else {
        listener_of(c).runtime->forward.smuggling.fetch_add(1, std::memory_order_relaxed);
      }
      relay::abort(c, EndReason::kProtocolError);
      return false;
    }
    ex.replay_end += p.used;
    ex.request_done = p.status == http::BodyStatus::kDone;
  }
  if (client.in.attached() || receiving(transport_, client)) return moved;
  if (ctx.replayed == ex.replay_end && is_http(c) && ex.http.kept > 0) {
    // HTTP mode: the request stays in the region until its response starts (a retry sends it
    // again, decision 0013), and the client stays paused until then (http_response).
    request_sent(ex, ctx);
    return true;
  }
  if (ctx.replayed == ex.replay_end) {
    // The head (and what came with it) is the relay's now: the request was forwarded.
    if (!is_http(c)) {
      listener_of(c).runtime->forward.requests.fetch_add(1, std::memory_order_relaxed);
    }
    const uint32_t rest = ctx.length - ex.replay_end;
    // A pipelined request already held keeps the client paused: on io_uring a receive in flight
    // when it is decided would hold up its replay (client.in must stay free for that receive)
    // while the client waits for the answer. Reading resumes once a head needs more bytes.
    if (rest == 0 || ex.tunnel) relay::end_replay(c);
    std::memmove(ctx.region, ctx.region + ex.replay_end, rest);
    ctx.length = rest;
    ctx.replayed = 0;
    ex.replay_end = 0;
    if (ex.tunnel) {
      ex.phase = ForwardPhase::kTunnel;
      client.gate = kOpenGate;
      c.upstream.gate = kOpenGate;
    } else if (!ex.request_done) {
      ex.phase = ForwardPhase::kBody;
    } else {
      request_sent(ex, ctx);
    }
    return true;
  }
  if (!relay::prepare_read(c, Dir::kC2U, pool_, stats_)) return moved;  // waits for a block
  const uint32_t n = std::min(ex.replay_end - ctx.replayed, client.in.writable());
  std::memcpy(client.in.write_ptr(), ctx.region + ctx.replayed, n);
  client.in.commit(n);
  client.gate = n;
  ctx.replayed += n;
  return true;
}

void Worker::enter_head(ForwardExchange& ex, const RoutingContext& ctx) noexcept {
  ex.phase = ForwardPhase::kHead;
  ex.head_scanned = 0;
  ex.head_evaluated = UINT32_MAX;  // what the region holds already is parsed at the next step
  ex.head_started_ms = now_.ms;
  (void)ctx;
}

void Worker::request_sent(ForwardExchange& ex, const RoutingContext& ctx) noexcept {
  if (ex.response_pending) {
    ex.phase = ForwardPhase::kResponse;
  } else {
    enter_head(ex, ctx);  // answered before the body ended
  }
}

void Worker::response_ended(ForwardExchange& ex, const RoutingContext& ctx) noexcept {
  ex.response_pending = false;
  ex.response_head_done = false;
  if (ex.response_close || ex.client_close) {
    ex.phase = ForwardPhase::kDone;  // the server closes after this response: its FIN follows
    return;
  }
  if (ex.phase == ForwardPhase::kResponse) enter_head(ex, ctx);
}

bool Worker::forward_response(Connection& c, ForwardExchange& ex, std::byte* area) noexcept {
  Side& up = c.upstream;
  if (up.gate == kOpenGate || !up.in.attached() || up.in.readable() == up.gate) return false;
  ForwardStats& counts = listener_of(c).runtime->forward;
  const auto refuse_response = [&] {
    counts.bad_responses.fetch_add(1, std::memory_order_relaxed);
    relay::abort(c, EndReason::kProtocolError);
    return false;
  };
  const RoutingContext& ctx = *routing_of(c, slab_.index_of(c));
  const std::byte* p = up.in.read_ptr() + up.gate;
  uint32_t left = up.in.readable() - up.gate;
  while (left > 0) {
    if (!ex.response_pending) return refuse_response();  // bytes no request asked for
    if (!ex.response_head_done) {
      const uint32_t n = std::min(left, kMaxForwardHeadBytes - ex.response_copied);
      if (n == 0) return refuse_response();
      // The head is copied to be parsed whole, and its bytes pass on meanwhile: a response is
      // relayed as the server wrote it.
      std::memcpy(area + ex.response_copied, p, n);
      ex.response_copied += n;
      http::ResponseHead head;
      const std::string_view bytes(reinterpret_cast<const char*>(area), ex.response_copied);
      const http::HeadStatus st = http::parse_response_head(bytes, ex.response_scanned, head);
      if (st == http::HeadStatus::kInvalid) return refuse_response();
      if (st == http::HeadStatus::kNeedMore) {
        up.gate += n;
        return true;
      }
      const uint32_t here = n - (ex.response_copied - head.length);
      up.gate += here;
      p += here;
      left -= here;
      ex.response_copied = 0;
      ex.response_scanned = 0;
      http::Framing framing;
      if (http::response_framing(head, ex.head_request ? "HEAD" : "GET", framing) !=
          http::FramingStatus::kOk) {
        return refuse_response();
      }
      if (head.status >= 100 && head.status < 200 && head.status != 101) continue;  // interim
      if (framing.kind == http::BodyKind::kTunnel) {  // 101 Switching Protocols
        ex.response_pending = false;
        up.gate = kOpenGate;
        c.client.gate = c.client.gate == 0 && !c.client.in.attached() ? kOpenGate : c.client.gate;
        ex.phase = ForwardPhase::kTunnel;
        return true;
      }
      ex.response_close = ex.response_close || framing.close;
      if (framing.kind == http::BodyKind::kUntilClose) {
        // Ends with the server's close, which the relay passes on as the client's end.
        up.gate = kOpenGate;
        ex.response_pending = false;
        ex.phase = ForwardPhase::kDone;
        return true;
      }
      if (framing.kind == http::BodyKind::kNone) {
        response_ended(ex, ctx);
        continue;
      }
      ex.response_body.reset(framing);
      ex.response_head_done = true;
      continue;
    }
    const http::BodyProgress b = ex.response_body.consume({p, left});
    if (b.status == http::BodyStatus::kInvalid) return refuse_response();
    up.gate += b.used;
    p += b.used;
    left -= b.used;
    if (b.status != http::BodyStatus::kDone) break;
    response_ended(ex, ctx);
  }
  return true;
}

void Worker::forward_answer(Connection& c, uint16_t status) noexcept {
  const uint32_t index = slab_.index_of(c);
  ForwardExchange& ex = exchange_of(index);
  const ListenerSpec& ls = listener_of(c);
  if (ls.mode == ListenerMode::kHttp) {
    // The answer ends the conversation: an attached server connection leaves the pool with it.
    unqueue(c, index);
    unpark(c, index);
    if (c.upstream.fd >= 0) {
      leave_pool(c);
    } else {
      drop_pool_slot(c, index);
    }
    c.pooled = false;
  }
  ex.phase = ForwardPhase::kDone;
  relay::set_end(c, EndReason::kForwardError, status);
  ex.held_status = 0;
  if (ls.mode == ListenerMode::kForward && status == 502) {
    ls.runtime->forward.bad_gateway.fetch_add(1, std::memory_order_relaxed);
  }
  if (ls.mode == ListenerMode::kForward && status == 504) {
    ls.runtime->forward.gateway_timeouts.fetch_add(1, std::memory_order_relaxed);
  }
  char text[512];
  const uint32_t n = build_forward_answer(status, ls.forward.realm, text, sizeof text);
  if (c.state < State::kRelaying) {
    timers_.cancel(index);
    // Closed at once: a connect under way, or a client too slow to send its head (408), which
    // has nothing worth waiting for.
    if (c.upstream.fd >= 0 || status == 408) {
      refuse(c, {text, n}, false, EndReason::kForwardError);
      return;
    }
    if (send_whole(c.client.fd, {text, n})) {
      // A lingering close (RFC 9112 section 9.6), as after a relayed response: a FIN once the
      // answer is out, then what the client still sends (a body the answer refused, a pipelined
      // request) is read and dropped until its own end, or until it is silent for kLingerIdleMs.
      // Closed at once, bytes still arriving would turn the close into a reset, which can
      // destroy the answer in the client's receive queue, or fail a client's send before it
      // reads the answer.
      relay::end_client(c, false);
      c.more = true;
      arm_idle_timer(index, kLingerIdleMs);
    } else {
      refuse(c, {}, true, EndReason::kForwardError);
    }
    return;
  }
  // A server connection is open (idle: the previous response was delivered): the client gets
  // the answer, then the connection lingers until it has acknowledged it.
  if (!send_whole(c.client.fd, {text, n})) {
    relay::abort(c, EndReason::kForwardError);
    return;
  }
  relay::finish(c);
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
  // The access log's connect time counts from the first attempt: retries and waits included.
  if (c.connect_started_ms == 0) c.connect_started_ms = now_.ms;
  // Connections already waiting for a descriptor go first (a completion backend may still hand
  // over clients it accepted before the listener paused).
  const SysResult s = socket_waiters_.empty()
                          ? sys::stream_socket(target_address(c, h.index).family())
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
    timers_.arm(index, now_.ms + connect_timeout_ms(slab_.at(index)));
  }
  for (Listener& l : listeners_) pause_listener(l);
  timers_.arm(accept_retry_timer_, now_.ms + kAcceptRetryMs);
}

void Worker::start_connect(Connection& c, Handle h, int fd) noexcept {
  c.upstream.fd = fd;
  if (config_.no_delay) transport_.set_tcp_option(fd, TCP_NODELAY, true);
  // The address lives in the connection's topology version, which outlives the connection.
  const SocketAddress& to = target_address(c, h.index);
  if (c.backend != kDirectBackend && backend_of(c).tcp_smart_connect && to.family() != AF_UNIX &&
      has_first_bytes(c, h.index)) {
    transport_.set_tcp_option(fd, TCP_QUICKACK, false);
  }
  ++c.attempt;
  c.connect_start_ns = now_.ns;
  const int err = transport_.connect(c, h, to);
  if (err == EAGAIN) {
    // The kernel had nothing to start a connect with (io_uring: it refused the submission
    // queue; TCP: no route cache entry): the same address is tried again, as after EMFILE.
    // No option is queued for it: set_tcp_option() queues one only with room for the connect.
    sys::close(fd);
    c.upstream.fd = -1;
    wait_to_connect(h.index);
    return;
  }
  if (err == EINPROGRESS) {
    timers_.arm(h.index, now_.ms + connect_timeout_ms(c));
  } else if (err == 0) {
    on_connected(c, h.index);
  } else {
    connect_failed(c, h, err);
  }
}

bool Worker::has_first_bytes(const Connection& c, uint32_t index) noexcept {
  // HAProxy's rule for tcp-smart-connect: only a connect followed at once by bytes may hold back
  // the handshake's last ACK, else a server that speaks first would wait up to 200 ms for it.
  // The client's bytes count when read (in client.in, or held in the routing area for the replay:
  // routing, an HTTP or forward request) or queued in the kernel.
  if (c.client.in.readable() > 0 || backend_of(c).proxy_protocol_of(c.server) != 0) return true;
  if (c.client.paused & kPauseReplay) {
    const RoutingContext* ctx = routing_of(c, index);
    if (ctx != nullptr && ctx->length > std::max(ctx->start, ctx->replayed)) return true;
  }
  return sys::queued_bytes(c.client.fd) > 0;
}

void Worker::on_connected(Connection& c, uint32_t index) noexcept {
  stats_.connect_time.observe(now_.ns - c.connect_start_ns);
  if (c.connect_ms < 0) c.connect_ms = static_cast<int32_t>(now_.ms - c.connect_started_ms);
  if (c.backend != kDirectBackend) {
    versions_[c.version].preferred[c.backend][c.server] = c.address;
    if (on_connect_success(*server_of(c).runtime)) {
      log_transition(backend_of(c), server_of(c), HealthTransition::kUp,
                     "a retried connect succeeded", now_.ms);
    }
  }
  arm_idle_timer(index);
  if (c.client.gate == kOpenGate && c.upstream.gate == kOpenGate) return;
  if (is_http(c)) {
    http_connected(c, index);
    return;
  }
  ForwardExchange& ex = exchange_of(index);
  if (ex.tunnel) {
    static constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection established\r\n\r\n";
    if (!send_whole(c.client.fd, kEstablished)) {
      relay::abort(c, EndReason::kClientReset);
      return;
    }
    listener_of(c).runtime->forward.tunnels.fetch_add(1, std::memory_order_relaxed);
  }
}

void Worker::connect_failed(Connection& c, Handle h, int err) noexcept {
  ++stats_.connects_failed;
  if (is_http(c)) {
    http_connect_failed(c, h, err);
    return;
  }
  if (c.backend == kDirectBackend) {
    ForwardExchange& ex = exchange_of(h.index);
    if (log_level() == LogLevel::kVerbose) {
      log_debug("connect to %s failed: %s", ex.addresses[c.address].to_string().c_str(),
                std::strerror(err));
    }
    if (c.upstream.fd >= 0) sys::close(c.upstream.fd);
    relay::on_upstream_dropped(c);
    if (++c.tried < ex.address_count && !fast_stop_) {
      ++stats_.connect_retries;
      c.address = static_cast<uint8_t>((c.address + 1) % ex.address_count);
      connect_upstream(c, h);
      return;
    }
    forward_answer(c, err == ETIMEDOUT ? 504 : 502);
    return;
  }
  if (connect_next_address(c, h, err)) return;
  const BackendSpec& b = backend_of(c);
  const ServerSpec& server = server_of(c);
  // The server failed (passive health), then another server gets the connection.
  if (on_connect_failure(*server.runtime, b.check, now_.ms)) {
    log_transition(b, server, HealthTransition::kDown,
                   (std::string("connect: ") + std::strerror(err)).c_str(), now_.ms);
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
  // The client is reset: it must not mistake this for an empty reply. A forward proxy's client
  // waits for an HTTP answer instead.
  if (is_forward(c)) {
    forward_answer(c, err == ETIMEDOUT ? 504 : 502);
    return;
  }
  relay::abort(c, err == ETIMEDOUT ? EndReason::kConnectTimeout : EndReason::kConnectFailed);
}

bool Worker::connect_next_address(Connection& c, Handle h, int err) noexcept {
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
    return true;
  }
  return false;
}

bool Worker::retry_socket_waiters() noexcept {
  while (!socket_waiters_.empty()) {
    const uint32_t index = socket_waiters_.front();
    Connection& c = slab_.at(index);
    const SysResult s = sys::stream_socket(target_address(c, index).family());
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

bool Worker::admit_client(int fd, const SocketAddress& peer, const ListenerSpec& ls,
                          uint32_t& slot) noexcept {
  if (peer.length == 0) return true;  // gone already: the first read will say so
  const Admission a =
      ls.clients->admit(peer, ls.limits.max_per_client, ls.limits.new_per_client, now_.ms, slot);
  if (a == Admission::kAdmitted) return true;
  LimitStats& st = ls.runtime->limits;
  const char* why = "the client table is full";
  switch (a) {
    case Admission::kTooMany:
      st.client_too_many.fetch_add(1, std::memory_order_relaxed);
      why = "max-connections-per-client";
      break;
    case Admission::kTooFast:
      st.client_too_fast.fetch_add(1, std::memory_order_relaxed);
      why = "new-connections-per-client";
      break;
    case Admission::kTableFull:
    case Admission::kAdmitted:
      st.client_table_full.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  log_limit("listener %s: client %s refused: %s", ls.name.c_str(), peer.to_string().c_str(), why);
  if (log_format_ != nullptr) {
    AccessRecord r;
    r.accepted_wall_ms = wall_clock_ms();
    r.client = &peer;
    r.listener = ls.name;
    r.duration_ms = 0;
    r.end = EndReason::kClientRefused;
    r.worker = id_;
    log_access(r);
  }
  // A reset: the refusal costs no TIME_WAIT here, and the client cannot mistake it for an
  // answer.
  sys::set_linger_zero(fd);
  ++stats_.resets_sent;
  sys::close(fd);
  return false;
}

void Worker::set_limits(Connection& c, uint32_t index) noexcept {
  const ListenerLimits& lim = limits_of(c);
  LimitState& st = limit_state_[index];
  const uint8_t before = c.limits;
  c.limits = 0;
  if (lim.max_lifetime_s != 0 || lim.upload_limit != 0 || lim.download_limit != 0) {
    c.limits |= kLimitBytes;
  }
  if (lim.upload_limit != 0) c.limits |= kLimitUpload;
  if (lim.download_limit != 0) c.limits |= kLimitDownload;
  if (lim.rate_up.enabled()) c.limits |= kLimitRateUp;
  if (lim.rate_down.enabled()) c.limits |= kLimitRateDown;
  // A meter starts full, charged with nothing delivered before it started.
  if ((c.limits & kLimitRateUp) && !(before & kLimitRateUp)) {
    st.up.reset(now_.ms, lim.rate_up);
    st.charged_up = c.bytes_c2u;
  }
  if ((c.limits & kLimitRateDown) && !(before & kLimitRateDown)) {
    st.down.reset(now_.ms, lim.rate_down);
    st.charged_down = c.bytes_u2c;
  }
  if (!(c.limits & kLimitRateUp)) relay::resume_reading(c.client, kPauseRate);
  if (!(c.limits & kLimitRateDown)) relay::resume_reading(c.upstream, kPauseRate);
}

void Worker::enforce_limits(Connection& c, uint32_t index) noexcept {
  const ListenerLimits& lim = limits_of(c);
  LimitStats& counters = listener_of(c).runtime->limits;
  LimitState& st = limit_state_[index];
  if (c.limits & kLimitBytes) {
    if (now_.ms >= lifetime_due(c, index)) {
      close_for_limit(c, index, counters.lifetime_closes, "max-lifetime",
                      EndReason::kLifetimeLimit);
      return;
    }
    if (lim.upload_limit != 0 && c.bytes_c2u > lim.upload_limit) {
      close_for_limit(c, index, counters.upload_closes, "upload-limit", EndReason::kUploadLimit);
      return;
    }
    if (lim.download_limit != 0 && c.bytes_u2c > lim.download_limit) {
      close_for_limit(c, index, counters.download_closes, "download-limit",
                      EndReason::kDownloadLimit);
      return;
    }
  }
  // Delivered bytes are charged: what was read but not yet written is charged once written,
  // and reading waits while the bucket is short of a block's worth.
  auto meter = [&](Side& source, TokenBucket& bucket, uint64_t delivered, uint64_t& charged,
                   const RateLimit& rate, std::atomic<uint64_t>& pauses) {
    bucket.charge(delivered - charged, now_.ms, rate);
    charged = delivered;
    if ((source.paused & kPauseRate) || bucket.may_read(now_.ms, rate)) return false;
    relay::pause_reading(source, kPauseRate);
    pauses.fetch_add(1, std::memory_order_relaxed);
    return true;
  };
  bool paused = false;
  if (c.limits & kLimitRateUp) {
    paused |=
        meter(c.client, st.up, c.bytes_c2u, st.charged_up, lim.rate_up, counters.rate_pauses_up);
  }
  if (c.limits & kLimitRateDown) {
    paused |= meter(c.upstream, st.down, c.bytes_u2c, st.charged_down, lim.rate_down,
                    counters.rate_pauses_down);
  }
  if (paused) {
    // The resume time goes before a later idle deadline; an earlier deadline stays.
    const int64_t due = limits_due(c, index);
    if (due < timers_.deadline(index)) timers_.arm(index, due);
  }
}

int64_t Worker::lifetime_due(const Connection& c, uint32_t index) const noexcept {
  const uint32_t lifetime_s = limits_of(c).max_lifetime_s;
  return lifetime_s == 0 ? TimerQueue::kNever
                         : limit_state_[index].accepted_ms + int64_t{lifetime_s} * 1000;
}

int64_t Worker::limits_due(const Connection& c, uint32_t index) const noexcept {
  if (c.limits == 0) return TimerQueue::kNever;
  const ListenerLimits& lim = limits_of(c);
  const LimitState& st = limit_state_[index];
  int64_t due = lifetime_due(c, index);
  if (c.client.paused & kPauseRate) {
    due = std::min(due, st.up.resume_at_ms(now_.ms, lim.rate_up));
  }
  if (c.upstream.paused & kPauseRate) {
    due = std::min(due, st.down.resume_at_ms(now_.ms, lim.rate_down));
  }
  return due;
}

void Worker::apply_new_limits() noexcept {
  const Topology& newest = *versions_[current_].topology;
  for (Version& v : versions_) {
    if (v.topology == nullptr) continue;
    v.limits.assign(v.topology->listeners.size(), nullptr);
    for (size_t l = 0; l < v.topology->listeners.size(); ++l) {
      const ListenerSpec& spec = v.topology->listeners[l];
      v.limits[l] = &spec.limits;
      for (const ListenerSpec& n : newest.listeners) {
        if (n.name == spec.name) v.limits[l] = &n.limits;
      }
    }
  }
  for (uint32_t i = 0; i < slab_.capacity(); ++i) {
    if (!slab_.in_use(i)) continue;
    Connection& c = slab_.at(i);
    if (c.state == State::kFree || c.state == State::kClosing) continue;
    const uint8_t before = c.limits;
    set_limits(c, i);
    if (before == 0 && c.limits == 0) continue;
    if (c.state == State::kRelaying || c.state == State::kDraining) {
      arm_idle_timer(i);  // the lazy idle check re-arms for what is left of it
      pump(c, i);         // a lifted pause reads again; a lowered limit applies now
    }
  }
}

void Worker::close_for_limit(Connection& c, uint32_t index, std::atomic<uint64_t>& counter,
                             const char* what, EndReason why) noexcept {
  counter.fetch_add(1, std::memory_order_relaxed);
  const ListenerSpec& ls = listener_of(c);
  log_limit("listener %s: connection closed: %s (%llu bytes up, %llu down, %lld s)",
            ls.name.c_str(), what, static_cast<unsigned long long>(c.bytes_c2u),
            static_cast<unsigned long long>(c.bytes_u2c),
            static_cast<long long>((now_.ms - limit_state_[index].accepted_ms) / 1000));
  // Cut in the middle of a stream: both sides are reset (decision 0004: a FIN never lies).
  relay::abort(c, why);
  touch(c, index);
}

void Worker::log_limit(const char* fmt, ...) noexcept {
  // One line a second at most per worker: a flood of refusals must not become a flood of logs.
  if (limit_log_ms_ != INT64_MIN && now_.ms - limit_log_ms_ < 1000) {
    ++limit_log_skipped_;
    return;
  }
  char line[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(line, sizeof line, fmt, args);
  va_end(args);
  if (limit_log_skipped_ != 0) {
    log_info("%s (and %llu more limit events not shown since the last line)", line,
             static_cast<unsigned long long>(limit_log_skipped_));
  } else {
    log_info("%s", line);
  }
  limit_log_ms_ = now_.ms;
  limit_log_skipped_ = 0;
}

void Worker::touch(Connection& c, uint32_t index) noexcept {
  if (c.touched) return;
  EDGEPROXY_CHECK(touched_count_ < slab_.capacity());
  c.touched = true;
  touched_[touched_count_++] = index;
}

void Worker::pump(Connection& c, uint32_t index) noexcept {
  touch(c, index);
  // A gated connection is a forward proxy's (decision 0010); open gates are every other one.
  const bool gated = (c.client.gate & c.upstream.gate) != kOpenGate;
  if (!gated && (c.client.paused & kPauseReplay)) hold_client_bytes(c, *routing_of(c, index));
  transport_.pump(c, slab_.handle_of(index), now_);
  if (gated) {
    if (is_http(c)) {
      http_step(c, index);
      // The client's end (a FIN, or the close of decision 0018) follows the response's last
      // bytes now rather than after the rest of the iteration, when the client has usually
      // closed first and its end would cost this worker a wake-up and a read.
      if (c.more && c.upstream_released && c.state == State::kRelaying) {
        transport_.pump(c, slab_.handle_of(index), now_);
      }
    } else {
      forward_step(c, index);
    }
  } else if (c.state == State::kInspecting || (c.client.paused & kPauseReplay)) {
    route_step(c, index);
  }
  if (c.limits != 0 && (c.state == State::kRelaying || c.state == State::kDraining)) {
    enforce_limits(c, index);
  }
  if ((c.client.paused | c.upstream.paused) & kPauseNoBuffer) {
    buffer_waiters_.push_back(slab_, index);
  }
}

void Worker::expire_timers() noexcept {
  uint32_t id = 0;
  while (timers_.pop_expired(now_.ms, id)) {
    if (id == shutdown_timer_) {
      force_close_all(EndReason::kShutdownDeadline);
    } else if (id == accept_retry_timer_) {
      if (retry_socket_waiters()) resume_listeners();
    } else if (id == pool_sweep_timer_) {
      sweep_pools();
    } else {
      on_connection_timer(id);
    }
  }
}

void Worker::on_connection_timer(uint32_t index) noexcept {
  if (!slab_.in_use(index)) return;
  Connection& c = slab_.at(index);
  const Handle h = slab_.handle_of(index);
  if (c.state != State::kFree && c.state != State::kClosing && is_http(c) && http_timer(c, index)) {
    return;
  }
  switch (c.state) {
    case State::kFree:
    case State::kClosing:
      return;
    case State::kInspecting: {
      const ListenerSpec& ls = listener_of(c);
      if (ls.mode == ListenerMode::kForward) {
        touch(c, index);
        ForwardExchange& ex = exchange_of(index);
        if (ex.held_status != 0) {
          forward_answer(c, ex.held_status);
        } else {
          ls.runtime->forward.request_timeouts.fetch_add(1, std::memory_order_relaxed);
          forward_answer(c, 408);
        }
        return;
      }
      ls.runtime->route.inspect_timeouts.fetch_add(1, std::memory_order_relaxed);
      touch(c, index);
      RoutingContext& ctx = *routing_of(c, index);
      if (!ctx.header_read) {
        ls.runtime->route.proxy_header_errors.fetch_add(1, std::memory_order_relaxed);
        refuse(c, {}, false, EndReason::kInspectTimeout);
        return;
      }
      if (ls.on_timeout.kind == ActionKind::kClose || ls.on_timeout.kind == ActionKind::kReject) {
        relay::set_end(c, EndReason::kInspectTimeout);  // the timeout ends it, not a rule
      }
      apply(c, h, ctx, ls.on_timeout, Captures{});
      if (c.state != State::kClosing) pump(c, index);
      return;
    }
    case State::kAccepted:
    case State::kRouting:  // still waiting for a descriptor to connect with, or for a name
      ++stats_.connect_timeouts;
      socket_waiters_.remove(slab_, index);
      touch(c, index);
      if (answers(c)) {
        exchange_of(index).resolving = false;  // its late result is dropped
        if (is_http(c)) {
          listener_of(c).runtime->http.gateway_timeouts.fetch_add(1, std::memory_order_relaxed);
          drop_pool_slot(c, index);  // the socket it waited for
        }
        forward_answer(c, 504);
        return;
      }
      relay::abort(c, EndReason::kConnectTimeout);
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
        timers_.arm(index, now_.ms + connect_timeout_ms(c));
      }
      return;
    case State::kLingering:
      check_linger(c, index);
      return;
    case State::kRelaying:
    case State::kDraining:
      break;
  }
  if (c.limits != 0) {
    // A direction whose bucket refilled reads again; past its lifetime, the pump's limit check
    // closes the connection.
    const ListenerLimits& lim = limits_of(c);
    LimitState& st = limit_state_[index];
    bool due = now_.ms >= lifetime_due(c, index);
    if ((c.client.paused & kPauseRate) && st.up.may_read(now_.ms, lim.rate_up)) {
      relay::resume_reading(c.client, kPauseRate);
      due = true;
    }
    if ((c.upstream.paused & kPauseRate) && st.down.may_read(now_.ms, lim.rate_down)) {
      relay::resume_reading(c.upstream, kPauseRate);
      due = true;
    }
    if (due) {
      pump(c, index);
      if (c.state != State::kRelaying && c.state != State::kDraining) return;
    }
  }
  int64_t head_due = INT64_MAX;  // a forward connection's next head must be complete by then
  if ((c.client.gate & c.upstream.gate) != kOpenGate) {
    ForwardExchange& ex = exchange_of(index);
    const ListenerSpec& ls = listener_of(c);
    if (ex.held_status != 0) {
      touch(c, index);
      forward_answer(c, ex.held_status);
      return;
    }
    if (ex.phase == ForwardPhase::kHead && routing_of(c, index)->length > 0) {
      head_due = ex.head_started_ms + ls.forward.request_timeout_ms;
      if (head_due <= now_.ms) {
        touch(c, index);
        ls.runtime->forward.request_timeouts.fetch_add(1, std::memory_order_relaxed);
        forward_answer(c, 408);
        return;
      }
    }
  }
  const int64_t linger_due = check_lingering_end(c, index);
  if (c.state == State::kClosing) return;
  // Lazy idle timer: activity only stored a timestamp; re-arm for the remainder if there was any
  // (or for the next head's, a limit's or the lingering close's deadline, when sooner).
  const int64_t idle_ms = idle_timeout_ms(c);
  const int64_t idle_due = idle_ms != 0 ? c.last_active_ms + idle_ms : TimerQueue::kNever;
  if (idle_due > now_.ms) {
    const int64_t due = std::min({idle_due, head_due, limits_due(c, index), linger_due});
    if (due != TimerQueue::kNever) timers_.arm(index, due);
    return;
  }
  // Bytes the kernel still holds for a peer that is acknowledging them are progress: a slow
  // reader draining what was written to it long ago is not idle.
  uint32_t outq = 0;
  for (const Side* side : {&c.client, &c.upstream}) {
    if (side->fd < 0) continue;
    const SysResult r = sys::unacked_bytes(side->fd);
    if (r.ok() && r.value > 0) outq += static_cast<uint32_t>(r.value);
  }
  if (outq > 0 && outq != c.linger_outq) {
    c.linger_outq = outq;
    c.last_active_ms = now_.ms;
    timers_.arm(index, std::min(now_.ms + idle_ms, limits_due(c, index)));
    return;
  }
  ++stats_.idle_timeouts;
  // Cut in the middle of a stream: both sides are reset (decision 0004: a FIN never lies).
  relay::abort(c, EndReason::kIdleTimeout);
  touch(c, index);
}

int64_t Worker::check_lingering_end(Connection& c, uint32_t index) noexcept {
  if (!c.upstream_released || (c.client.flags & kEof)) return TimerQueue::kNever;
  if (now_.ms - c.last_active_ms < kLingerIdleMs) return c.last_active_ms + kLingerIdleMs;
  // Only a client that has everything (its FIN sent, every byte acknowledged) is let go: bytes
  // still on their way are the idle timeout's to judge, as in any relay.
  const SysResult r = sys::unacked_bytes(c.client.fd);
  if (!(c.client.flags & kWriteShut) || (r.ok() && r.value > 0)) return now_.ms + kLingerIdleMs;
  ++stats_.idle_timeouts;
  relay::set_end(c, EndReason::kIdleTimeout);
  // Its end counts as come: both directions are over, in order, and the close sends no reset.
  relay::end_client(c, true);
  touch(c, index);
  return TimerQueue::kNever;
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
      if (c.accel_limit != 0 && relay::upstream_finished(c)) release_upstream(c, h);
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

void Worker::release_upstream(Connection& c, Handle h) noexcept {
  // A completion backend first cancels what still refers to the fd; the completions bring the
  // connection back here.
  if (!transport_.release_upstream(c, h)) return;
  // Both directions of this socket ended in order: a plain close, no reset.
  sys::close(c.upstream.fd);
  leave_server(c);
  relay::on_upstream_released(c);
}

void Worker::log_acceleration(const Connection& c, uint32_t index) noexcept {
  if (log_level() != LogLevel::kVerbose || c.u2c_first_ns == 0 || c.u2c_eof_ns == 0 ||
      c.u2c_done_ns == 0) {
    return;
  }
  // As acceleration_factor, for this connection alone (docs/architecture.md).
  const double upstream_ms = static_cast<double>(c.u2c_eof_ns - c.u2c_first_ns) / 1e6;
  const double client_ms = static_cast<double>(c.u2c_done_ns - c.u2c_first_ns) / 1e6;
  log_debug("connection %u: acceleration factor %.2f (server %.3f ms, client %.3f ms, %llu bytes)",
            index, upstream_ms > 0 ? client_ms / upstream_ms : 0.0, upstream_ms, client_ms,
            static_cast<unsigned long long>(c.bytes_u2c));
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
  const bool http = is_http(c);
  const uint16_t http_backend = http ? exchange_of(index).http.backend : 0;
  if (http) http_release(c, index);
  for (Side* side : {&c.client, &c.upstream}) {
    if (side->fd < 0) continue;
    if (reset && !(side->flags & kFailed)) {
      sys::set_linger_zero(side->fd);
      ++stats_.resets_sent;
    }
    transport_.close_socket(side->fd);
  }
  if (log_format_ != nullptr) log_connection(c, index);
  relay::release_buffers(c, pool_, stats_);
  transport_.release_pipes(c);
  leave_server(c);
  log_acceleration(c, index);
  const Topology& t = *versions_[c.version].topology;
  if (c.client_slot != kNoClientSlot) t.listeners[c.listener].clients->release(c.client_slot);
  for (ObjectStats* o :
       {&t.listeners[c.listener].runtime->stats,
        c.backend < t.backends.size() && !http ? &t.backends[c.backend].runtime->stats : nullptr}) {
    if (o == nullptr) continue;  // closed while inspecting, or a named destination
    o->current.fetch_sub(1, std::memory_order_relaxed);
    o->bytes_in.fetch_add(c.bytes_c2u, std::memory_order_relaxed);
    o->bytes_out.fetch_add(c.bytes_u2c, std::memory_order_relaxed);
  }
  const uint16_t version = c.version;
  --versions_[version].connections;
  buffer_waiters_.remove(slab_, index);
  socket_waiters_.remove(slab_, index);
  timers_.cancel(index);
  stats_.duration.observe(now_.ns - c.accepted_ns);
  c = Connection{};
  slab_.release(index);
  --stats_.active;
  ++stats_.closed;
  if (http) serve_pending(version, http_backend);
  release_version_if_unused(version);
}

void Worker::configure_access_log(const Config& global) noexcept {
  log_format_.reset();
  if (access_log_ == nullptr || global.access_log.empty() || global.access_log == "off") return;
  // The format was checked when the configuration was loaded.
  auto f = AccessLogFormat::parse(global.access_log_format.empty()
                                      ? AccessLogFormat::kDefault
                                      : std::string_view(global.access_log_format));
  if (!f.ok()) return;
  log_format_ = std::make_unique<AccessLogFormat>(std::move(f.value()));
  if (peers_ == nullptr) {
    // The first time the log is on (at start or at a reload): a slot's client is read at accept,
    // so connections accepted before now are logged without it.
    peers_ = std::make_unique<SocketAddress[]>(slab_.capacity());
  }
}

void Worker::log_access(const AccessRecord& r) noexcept {
  char line[AccessLogFormat::kMaxLineBytes];
  const uint32_t n = log_format_->format(r, line, sizeof line);
  if (n == 0 || !access_log_->append(line, n)) ++stats_.log_dropped;
}

void Worker::log_connection(const Connection& c, uint32_t index) noexcept {
  const Topology& t = *versions_[c.version].topology;
  const int64_t duration_ms = now_.ms - limit_state_[index].accepted_ms;
  AccessRecord r;
  r.accepted_wall_ms = wall_clock_ms() - duration_ms;
  r.client = &peers_[index];
  r.listener = t.listeners[c.listener].name;
  if (c.backend < t.backends.size()) {
    const BackendSpec& b = t.backends[c.backend];
    r.backend = b.name;
    if (c.last_server < b.servers.size()) r.server = b.servers[c.last_server].name;
  } else if (c.backend == kDirectBackend) {
    r.backend = "direct";
    const ForwardExchange& ex = versions_[c.version].forward->at(index);
    r.server = std::string_view(ex.host.data(), ex.host_length);
  }
  r.connect_ms = c.connect_ms;
  r.duration_ms = duration_ms;
  r.bytes_c2u = c.bytes_c2u;
  r.bytes_u2c = c.bytes_u2c;
  r.end = c.end;
  r.end_status = c.end_status;
  r.worker = id_;
  log_access(r);
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
  // Still armed (it cannot fail for a registered socket short of kernel memory): the worker is
  // woken while clients wait, and accept_from() tries pausing again at each report.
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
    // Closing the listening sockets makes the kernel refuse new connections at once.
    for (Listener& l : listeners_) close_listener(l);
    // Connections waiting for a descriptor keep their retries.
    if (socket_waiters_.empty()) timers_.cancel(accept_retry_timer_);
    log_info("worker %u: %s shutdown, %u connection(s) open", id_, fast ? "fast" : "graceful",
             slab_.used());
  }
  // Keep-alive HTTP clients between requests go now (with a FIN), as HAProxy's do.
  for (uint32_t i = 0; i < slab_.capacity(); ++i) {
    if (slab_.in_use(i) && slab_.at(i).state < State::kLingering &&
        slab_.at(i).state != State::kFree && is_http(slab_.at(i))) {
      end_idle_http(slab_.at(i), i);
    }
  }
  if (!fast) return;
  if (fast_stop_ || config_.shutdown_timeout_s == 0) {
    force_close_all(EndReason::kShutdownFast);  // a second TERM/INT, or no grace period: stop now
    return;
  }
  fast_stop_ = true;
  timers_.arm(shutdown_timer_, now_.ms + int64_t{config_.shutdown_timeout_s} * 1000);
}

void Worker::force_close_all(EndReason why) noexcept {
  for (uint32_t i = 0; i < slab_.capacity(); ++i) {
    if (!slab_.in_use(i)) continue;
    Connection& c = slab_.at(i);
    if (c.state != State::kClosing) ++stats_.shutdown_forced;
    socket_waiters_.remove(slab_, i);
    relay::abort(c, why);
    touch(c, i);
  }
}

}  // namespace edgeproxy
