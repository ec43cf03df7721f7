// The worker's event loop: accept, connect, relay, timers, signals and shutdown. See worker.h
// and docs/architecture.md for who owns what, docs/state-machine.md for the lifecycle.
#include "edgeproxy/worker.h"

#include <cstring>
#include <string>
#include <utility>

#include "edgeproxy/cookie.h"
#include "edgeproxy/log.h"
#include "edgeproxy/relay.h"

namespace edgeproxy {
namespace {

constexpr uint32_t kEventBatch = 256;
constexpr uint32_t kAcceptBudget = 64;   // accepts per listener per iteration
constexpr int64_t kAcceptRetryMs = 100;  // out of fds: retry accepting this often, no sooner

bool accept_error_is_exhaustion(int err) noexcept {
  return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

// A completion backend gets to see a completion for a freed slot (it may carry a buffer).
template <typename T>
void hand_back_stale(T& transport, const Event& ev) noexcept {
  if constexpr (requires { transport.on_stale(ev); }) transport.on_stale(ev);
}

}  // namespace

Result<std::unique_ptr<Worker>> Worker::create(const WorkerOptions& options) {
  auto reactor =
      Reactor::create(kEventBatch, options.config.max_connections, options.config.batch_wait_us);
  if (!reactor.ok()) return Error{reactor.error()};
  uint32_t buffers = options.config.buffer_count();
  if (buffers > Transport::kMaxBuffers) {
    log_warn("the %s backend addresses at most %u buffers: using %u instead of %u", Reactor::kName,
             Transport::kMaxBuffers, Transport::kMaxBuffers, buffers);
    buffers = Transport::kMaxBuffers;
  }
  auto pool = BufferPool::create(buffers);
  if (!pool.ok()) return Error{pool.error()};
  std::vector<Listener> listeners;
  auto listener = Listener::open(options.listen, options.config.backlog, options.reuse_port);
  if (!listener.ok()) return Error{listener.error()};
  listeners.push_back(std::move(listener.value()));
  std::unique_ptr<Worker> w(new Worker(options, std::move(reactor.value()), std::move(pool.value()),
                                       std::move(listeners)));
  if (auto t = w->transport_.init(options.config); !t.ok()) return Error{t.error()};
  for (const Listener& l : w->listeners_) {
    const SysResult r = w->reactor_.watch_listener(l.fd(), w->listener_cookie(l));
    if (!r.ok()) return Error{std::string("cannot watch the listener: ") + std::strerror(r.err)};
  }
  if (options.control != nullptr) {
    const SysResult r =
        w->reactor_.watch(options.control->fd(), Cookie::pack(CookieTag::kControl, Handle{}));
    if (!r.ok()) return Error{std::string("cannot watch the control fd: ") + std::strerror(r.err)};
  }
  return w;
}

Worker::Worker(const WorkerOptions& options, Reactor reactor, BufferPool pool,
               std::vector<Listener> listeners)
    : config_(options.config),
      backend_(options.backend),
      reactor_(std::move(reactor)),
      slab_(options.config.max_connections),
      pool_(std::move(pool)),
      timers_(options.config.max_connections + 2),
      listeners_(std::move(listeners)),
      control_(options.control),
      id_(options.id),
      transport_(reactor_, pool_, stats_),
      touched_(std::make_unique<uint32_t[]>(options.config.max_connections)),
      pending_(std::make_unique<uint32_t[]>(options.config.max_connections)),
      carried_(std::make_unique<uint32_t[]>(options.config.max_connections)),
      shutdown_timer_(options.config.max_connections),
      accept_retry_timer_(options.config.max_connections + 1) {}

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
  s.pool_buffers = pool_.capacity();
  s.pool_high_water = pool_.high_water();
  s.batched_waits = reactor_.batched_waits();
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

void Worker::update_accept_room() noexcept {
  reactor_.set_accept_room(slab_.capacity() - slab_.used(), static_cast<uint32_t>(config_.backlog));
}

void Worker::dispatch(const Event& ev) noexcept {
  const Cookie ck = Cookie::unpack(ev.cookie);
  switch (ck.tag) {
    case CookieTag::kListener: {
      const uint32_t i = ck.handle.index;
      if (i >= listeners_.size()) break;
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
  switch (transport_.on_event(*c, h, tag == CookieTag::kClient, ev, now_)) {
    case ConnectOutcome::kNone:
      break;
    case ConnectOutcome::kConnected:
      arm_idle_timer(h.index);
      break;
    case ConnectOutcome::kFailed:
      connect_failed(*c, 0);
      break;
  }
  if (c->state != State::kClosing) pump(*c, h.index);
}

void Worker::arm_idle_timer(uint32_t index) noexcept {
  if (config_.idle_timeout_s != 0) {
    timers_.arm(index, now_.ms + int64_t{config_.idle_timeout_s} * 1000);
  } else {
    timers_.cancel(index);
  }
}

void Worker::on_control() noexcept {
  const WorkerControl::Requests r = control_->take();
  for (uint32_t i = 0; i < r.graceful_stops; ++i) begin_shutdown(false);
  for (uint32_t i = 0; i < r.fast_stops; ++i) begin_shutdown(true);
  if (r.report_ticket != 0) control_->publish(r.report_ticket, stats());
}

void Worker::accept_from(uint32_t listener_index) noexcept {
  Listener& l = listeners_[listener_index];
  for (uint32_t n = 0; n < kAcceptBudget; ++n) {
    if (slab_.full()) {
      // Leave clients in the kernel backlog; a freed slot resumes the listener.
      pause_listener(l);
      return;
    }
    const SysResult r = sys::accept(l.fd());
    if (r.ok()) {
      start_connection(static_cast<int>(r.value));
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
  start_connection(result);
  if (slab_.full()) pause_listener(l);
}

bool Worker::on_accept_error(Listener& l, int err) noexcept {
  ++stats_.accept_errors;
  // The connection died in the queue or was refused by policy: skip it, keep accepting.
  if (sys::accept_error_is_transient(err)) return true;
  if (!accept_error_is_exhaustion(err)) log_error("accept: %s", std::strerror(err));
  // Out of fds or kernel memory (or an unexpected error): retrying now would spin. Pause until a
  // connection closes or the retry timer fires, whichever comes first.
  pause_listener(l);
  timers_.arm(accept_retry_timer_, now_.ms + kAcceptRetryMs);
  return false;
}

void Worker::start_connection(int client_fd) noexcept {
  Handle h;
  Connection* c = slab_.acquire(h);  // accept_from checked there is room
  ++stats_.accepted;
  ++stats_.active;
  if (stats_.active > stats_.peak_active) stats_.peak_active = stats_.active;
  c->client.fd = client_fd;
  c->state = State::kAccepted;
  c->last_active_ms = now_.ms;
  touch(*c, h.index);
  if (config_.no_delay) sys::set_no_delay(client_fd, true);

  // Routing: with one backend the choice is immediate. Content-aware routing will stay in
  // kRouting, reading the first bytes, before choosing.
  c->state = State::kRouting;
  c->backend = 0;

  const SysResult s = sys::stream_socket(backend_.family());
  int err = s.err;
  if (s.ok()) {
    c->upstream.fd = static_cast<int>(s.value);
    if (config_.no_delay) sys::set_no_delay(c->upstream.fd, true);
    err = transport_.connect(*c, h, backend_);
  }
  if (err == EINPROGRESS) {
    timers_.arm(h.index, now_.ms + config_.connect_timeout_ms);
  } else if (err == 0) {
    arm_idle_timer(h.index);
  } else {
    connect_failed(*c, err);
  }
}

void Worker::connect_failed(Connection& c, int err) noexcept {
  ++stats_.connects_failed;
  log_debug("connect to %s failed%s%s", backend_.to_string().c_str(), err != 0 ? ": " : "",
            err != 0 ? std::strerror(err) : "");
  c.abort = true;  // the client is reset: it must not mistake this for an empty reply
  c.state = State::kClosing;
}

void Worker::touch(Connection& c, uint32_t index) noexcept {
  if (c.touched) return;
  c.touched = true;
  touched_[touched_count_++] = index;
}

void Worker::pump(Connection& c, uint32_t index) noexcept {
  touch(c, index);
  transport_.pump(c, slab_.handle_of(index), now_);
  if (((c.client.paused | c.upstream.paused) & kPauseNoBuffer) && !c.waiting) {
    link_waiter(c, index);
  }
}

void Worker::expire_timers() noexcept {
  uint32_t id = 0;
  while (timers_.pop_expired(now_.ms, id)) {
    if (id == shutdown_timer_) {
      force_close_all();
    } else if (id == accept_retry_timer_) {
      resume_listeners();
    } else {
      on_connection_timer(id);
    }
  }
}

void Worker::on_connection_timer(uint32_t index) noexcept {
  if (!slab_.in_use(index)) return;
  Connection& c = slab_.at(index);
  if (c.state == State::kClosing) return;
  if (c.state == State::kConnecting) {
    ++stats_.connect_timeouts;
    c.abort = true;
    c.state = State::kClosing;
    touch(c, index);
    return;
  }
  if (config_.idle_timeout_s == 0) return;
  // Lazy idle timer: activity only stored a timestamp; re-arm for the remainder if there was any.
  const int64_t idle_ms = int64_t{config_.idle_timeout_s} * 1000;
  const int64_t due = c.last_active_ms + idle_ms;
  if (due > now_.ms) {
    timers_.arm(index, due);
    return;
  }
  ++stats_.idle_timeouts;
  c.state = State::kClosing;
  touch(c, index);
}

void Worker::link_waiter(Connection& c, uint32_t index) noexcept {
  c.waiting = true;
  c.wait_next = kNone;
  c.wait_prev = waiters_tail_;
  if (waiters_tail_ == kNone) {
    waiters_head_ = index;
  } else {
    slab_.at(waiters_tail_).wait_next = index;
  }
  waiters_tail_ = index;
}

void Worker::unlink_waiter(Connection& c, uint32_t index) noexcept {
  if (!c.waiting) return;
  if (c.wait_prev == kNone) {
    waiters_head_ = c.wait_next;
  } else {
    slab_.at(c.wait_prev).wait_next = c.wait_next;
  }
  if (c.wait_next == kNone) {
    waiters_tail_ = c.wait_prev;
  } else {
    slab_.at(c.wait_next).wait_prev = c.wait_prev;
  }
  (void)index;
  c.waiting = false;
}

void Worker::wake_buffer_waiters() noexcept {
  // Oldest waiter first; each resumed side takes at most one block, so stop when none is left.
  while (waiters_head_ != kNone && transport_.buffers_available()) {
    const uint32_t index = waiters_head_;
    Connection& c = slab_.at(index);
    unlink_waiter(c, index);
    c.client.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
    c.upstream.paused &= static_cast<uint8_t>(~kPauseNoBuffer);
    if (c.state != State::kClosing) pump(c, index);
  }
}

void Worker::finish_iteration() noexcept {
  bool freed = false;
  for (uint32_t i = 0; i < touched_count_; ++i) {
    const uint32_t index = touched_[i];
    Connection& c = slab_.at(index);
    c.touched = false;
    const Handle h = slab_.handle_of(index);
    if (c.state == State::kClosing) {
      // Completion backends may still have operations in flight: their completions touch the
      // connection again, and it is freed once nothing refers to its slot.
      if (transport_.quiesce(c, h)) {
        close_connection(c, index);
        freed = true;
      } else if (c.more && !c.pending) {
        // A cancel found no submission entry: pump() touches it next iteration, so quiesce again.
        c.pending = true;
        pending_[pending_count_++] = index;
      }
      continue;
    }
    if (!transport_.settle(c, h)) {
      touch(c, index);  // failed: closed by the next pass
      continue;
    }
    // A connection can be settled by more than one pass (see below): queue it once, so the
    // list never holds more entries than there are slots.
    if (c.more && !c.pending) {
      c.pending = true;
      pending_[pending_count_++] = index;
    }
  }
  touched_count_ = 0;
  if (freed) {
    resume_listeners();
    // Freed buffers may let paused readers go on: they are pumped now and settled by the
    // recursive pass.
    if (waiters_head_ != kNone && transport_.buffers_available()) wake_buffer_waiters();
    if (touched_count_ > 0) finish_iteration();
  }
}

void Worker::close_connection(Connection& c, uint32_t index) noexcept {
  const bool failed = ((c.client.flags | c.upstream.flags) & kFailed) != 0;
  // Bytes still buffered or in a pipe would be lost: a FIN would tell the peer the stream ended
  // cleanly.
  const bool reset = c.abort || failed || !c.client.in.empty() || !c.upstream.in.empty() ||
                     c.client.piped > 0 || c.upstream.piped > 0;
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
  unlink_waiter(c, index);
  timers_.cancel(index);
  c = Connection{};
  slab_.release(index);
  --stats_.active;
  ++stats_.closed;
}

uint64_t Worker::listener_cookie(const Listener& l) const noexcept {
  const auto index = static_cast<uint32_t>(&l - listeners_.data());
  return Cookie::pack(CookieTag::kListener, Handle{index, 0});
}

void Worker::pause_listener(Listener& l) noexcept {
  if (l.paused) return;
  l.paused = true;
  ++stats_.accept_pauses;
  reactor_.pause_listener(l.fd(), listener_cookie(l));
}

void Worker::resume_listeners() noexcept {
  if (stopping_) return;
  for (uint32_t i = 0; i < listeners_.size(); ++i) {
    Listener& l = listeners_[i];
    if (!l.paused || slab_.full()) continue;
    l.paused = false;
    // Connections that queued in the backlog meanwhile are reported at once.
    reactor_.resume_listener(l.fd(), listener_cookie(l));
  }
}

void Worker::begin_shutdown(bool fast) noexcept {
  if (!stopping_) {
    stopping_ = true;
    listener_pending_ = false;
    // Closing the listening sockets makes the kernel refuse new connections at once.
    for (Listener& l : listeners_) {
      reactor_.unwatch_listener(l.fd(), listener_cookie(l));
      l.close();
    }
    timers_.cancel(accept_retry_timer_);
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
    c.abort = true;
    c.state = State::kClosing;
    touch(c, i);
  }
}

}  // namespace edgeproxy
