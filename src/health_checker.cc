// The active health-check thread; see health_checker.h.
#include "edgeproxy/health_checker.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "edgeproxy/clock.h"
#include "edgeproxy/log.h"
#include "edgeproxy/net.h"
#include "edgeproxy/server_health.h"
#include "edgeproxy/timer_queue.h"

namespace edgeproxy {
namespace {

constexpr uint64_t kWakeCookie = UINT64_MAX;
constexpr int kMaxEvents = 64;

// sys::stream_socket() asks for IPPROTO_TCP, which AF_UNIX refuses: Unix servers get protocol 0.
SysResult open_check_socket(int family) noexcept {
  if (family != AF_UNIX) return sys::stream_socket(family);
  return SysResult::from(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

uint64_t cookie_of(uint32_t index, uint32_t generation) noexcept {
  return uint64_t{generation} << 32 | index;
}

}  // namespace

// Everything the checker thread owns. Pointers into `topology` stay valid while it is held.
struct HealthChecker::Loop {
  enum class Phase : uint8_t { kIdle, kConnecting, kSending, kReading };

  // One server with active checks: at most one check in flight (fd >= 0) at a time.
  struct Slot {
    std::shared_ptr<ServerRuntime> runtime;  // the server's identity across updates
    const BackendSpec* backend = nullptr;
    const ServerSpec* server = nullptr;
    SocketAddress address;
    int fd = -1;
    Phase phase = Phase::kIdle;
    uint32_t interest = 0;    // the epoll events asked for; 0 = not in the epoll set
    uint32_t generation = 0;  // +1 per check ended: events of an earlier check are dropped
    size_t sent = 0;
    size_t received = 0;
    int64_t started_ms = 0;
    int64_t deadline_ms = 0;  // in flight: when the check fails by timeout
    int64_t next_due_ms = 0;  // idle: when the next check starts
  };

  // A server of a backend without active checks: only the passive revival applies.
  struct Passive {
    ServerRuntime* runtime;
    const BackendSpec* backend;
    const ServerSpec* server;
  };

  explicit Loop(int epoll_fd) noexcept : epoll_fd_(epoll_fd) {
    rng_ = static_cast<uint64_t>(LoopTime::now().ns) ^ reinterpret_cast<uintptr_t>(this);
  }

  void run(HealthChecker& owner) noexcept;

 private:
  uint32_t sweep_id() const noexcept { return static_cast<uint32_t>(slots_.size()); }
  uint64_t next_random() noexcept;
  void apply(std::shared_ptr<const Topology> next, int64_t now_ms);
  void run_due(int64_t now_ms) noexcept;
  void start_check(uint32_t id, int64_t now_ms) noexcept;
  void on_event(uint64_t cookie, uint32_t events, int64_t now_ms) noexcept;
  void advance(uint32_t id, int64_t now_ms) noexcept;
  void read_reply(uint32_t id, int64_t now_ms) noexcept;
  bool watch(uint32_t id, uint32_t events) noexcept;
  void close_check(Slot& slot) noexcept;
  void finish(uint32_t id, bool ok, const char* reason, int64_t now_ms) noexcept;
  void skip(uint32_t id, const char* why, int err, int64_t now_ms) noexcept;
  void fail_errno(uint32_t id, const char* step, int err, int64_t now_ms) noexcept;
  void time_out(uint32_t id, int64_t now_ms) noexcept;
  void sweep(int64_t now_ms) noexcept;

  const int epoll_fd_;
  uint64_t rng_;
  std::shared_ptr<const Topology> topology_;
  std::vector<Slot> slots_;
  std::vector<Passive> passive_;
  uint32_t passive_interval_ms_ = 0;  // the shortest interval among passive servers' backends
  TimerQueue timers_{1};              // ids: slot index; sweep_id() for the passive sweep
};

uint64_t HealthChecker::Loop::next_random() noexcept {
  // splitmix64: the spread of first checks needs no more than this.
  uint64_t z = (rng_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void HealthChecker::Loop::run(HealthChecker& owner) noexcept {
  epoll_event events[kMaxEvents];
  for (;;) {
    run_due(LoopTime::now().ms);
    const int timeout = timers_.timeout_ms(LoopTime::now().ms);
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      log_error("health checks: epoll_wait: %s; checks stop", std::strerror(errno));
      break;
    }
    const int64_t now_ms = LoopTime::now().ms;
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == kWakeCookie) {
        woken = true;
      } else {
        on_event(events[i].data.u64, events[i].events, now_ms);
      }
    }
    // Updates renumber the slots, so they wait until this batch's cookies are spent.
    if (!woken) continue;
    uint64_t count = 0;
    [[maybe_unused]] const ssize_t r = ::read(owner.wake_fd_, &count, sizeof count);
    if (owner.stop_.load(std::memory_order_acquire)) break;
    std::shared_ptr<const Topology> next;
    bool has_next = false;
    {
      std::lock_guard lock(owner.mutex_);
      has_next = owner.has_pending_;
      next = std::move(owner.pending_);
      owner.has_pending_ = false;
    }
    if (has_next) apply(std::move(next), LoopTime::now().ms);
  }
  for (Slot& slot : slots_) close_check(slot);
}

void HealthChecker::Loop::apply(std::shared_ptr<const Topology> next, int64_t now_ms) {
  std::unordered_map<const ServerRuntime*, uint32_t> old_index;
  for (uint32_t i = 0; i < slots_.size(); ++i) old_index.emplace(slots_[i].runtime.get(), i);
  std::vector<Slot> slots;
  std::unordered_set<const ServerRuntime*> listed;  // one check per server, however often listed
  std::vector<Passive> passive;
  uint32_t passive_interval_ms = UINT32_MAX;
  if (next) {
    for (const BackendSpec& backend : next->backends) {
      for (const ServerSpec& server : backend.servers) {
        if (!server.runtime) continue;
        if (!backend.check.enabled) {
          passive.push_back(Passive{server.runtime.get(), &backend, &server});
          passive_interval_ms = std::min(passive_interval_ms, backend.check.interval_ms);
          continue;
        }
        if (server.addresses.empty()) continue;
        const HealthCheck& check = backend.check;
        if (!listed.insert(server.runtime.get()).second) continue;
        const auto found = old_index.find(server.runtime.get());
        if (found == old_index.end()) {
          Slot s;
          s.runtime = server.runtime;
          s.next_due_ms =
              now_ms + static_cast<int64_t>(next_random() % (uint64_t{check.interval_ms} + 1));
          s.backend = &backend;
          s.server = &server;
          s.address = server.addresses[0];
          slots.push_back(std::move(s));
          continue;
        }
        Slot& kept = slots_[found->second];
        old_index.erase(found);
        const HealthCheck& before = kept.backend->check;
        // A check in flight finishes under the rules it started with, unless they changed.
        if (kept.fd >= 0 && (before.send != check.send || before.expect != check.expect ||
                             !(kept.address == server.addresses[0]))) {
          close_check(kept);
          kept.next_due_ms = now_ms;
        }
        kept.next_due_ms = std::min(kept.next_due_ms, now_ms + int64_t{check.interval_ms});
        kept.backend = &backend;
        kept.server = &server;
        kept.address = server.addresses[0];
        slots.push_back(std::move(kept));
      }
    }
  }
  // What is left was removed: its check in flight is abandoned and counts for nothing.
  for (const auto& [runtime, index] : old_index) close_check(slots_[index]);

  slots_ = std::move(slots);
  passive_ = std::move(passive);
  passive_interval_ms_ = passive_.empty() ? 0 : std::max(passive_interval_ms, 1u);
  topology_ = std::move(next);  // the old version goes only now: `before` pointed into it
  timers_ = TimerQueue(sweep_id() + 1);
  for (uint32_t id = 0; id < slots_.size(); ++id) {
    Slot& slot = slots_[id];
    if (slot.fd < 0) {
      timers_.arm(id, slot.next_due_ms);
      continue;
    }
    timers_.arm(id, slot.deadline_ms);
    if (slot.interest != 0) {
      // The slot's index is in the cookie: re-register the descriptor under its new number.
      epoll_event ev{};
      ev.events = slot.interest;
      ev.data.u64 = cookie_of(id, slot.generation);
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, slot.fd, &ev);
    }
  }
  if (!passive_.empty()) timers_.arm(sweep_id(), now_ms);
}

void HealthChecker::Loop::run_due(int64_t now_ms) noexcept {
  uint32_t id = 0;
  while (timers_.pop_expired(now_ms, id)) {
    if (id == sweep_id()) {
      sweep(now_ms);
    } else if (slots_[id].fd >= 0) {
      time_out(id, now_ms);
    } else {
      start_check(id, now_ms);
    }
  }
}

void HealthChecker::Loop::start_check(uint32_t id, int64_t now_ms) noexcept {
  Slot& slot = slots_[id];
  const HealthCheck& check = slot.backend->check;
  slot.started_ms = now_ms;
  slot.deadline_ms = now_ms + int64_t{check.timeout_ms};
  slot.sent = 0;
  slot.received = 0;
  const SysResult s = open_check_socket(slot.address.family());
  if (!s.ok()) {
    if (sys::descriptors_exhausted(s.err)) return skip(id, "socket", s.err, now_ms);
    return fail_errno(id, "socket", s.err, now_ms);
  }
  slot.fd = static_cast<int>(s.value);
  // A check has nothing left to deliver once it is decided, so it ends with a reset: no
  // TIME_WAIT on this side for a connection made every interval to every server (thousands a
  // minute would pin ephemeral ports), and the server frees its socket at once.
  sys::set_linger_zero(slot.fd);
  const SysResult c = sys::connect(slot.fd, slot.address);
  if (c.err == EINPROGRESS) {
    slot.phase = Phase::kConnecting;
    if (!watch(id, EPOLLOUT)) return;
    timers_.arm(id, slot.deadline_ms);
    return;
  }
  // A Unix connect never waits: it is accepted or refused now (EAGAIN: the backlog is full).
  if (!c.ok()) return fail_errno(id, "connect", c.err, now_ms);
  slot.phase = Phase::kSending;
  timers_.arm(id, slot.deadline_ms);
  advance(id, now_ms);
}

bool HealthChecker::Loop::watch(uint32_t id, uint32_t events) noexcept {
  Slot& slot = slots_[id];
  if (slot.interest == events) return true;
  epoll_event ev{};
  ev.events = events;  // level-triggered: a handler that stops early is told again
  ev.data.u64 = cookie_of(id, slot.generation);
  const int op = slot.interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (epoll_ctl(epoll_fd_, op, slot.fd, &ev) != 0) {
    // ENOMEM or ENOSPC (max_user_watches): this host's limits, not the server's health.
    skip(id, "epoll_ctl", errno, LoopTime::now().ms);
    return false;
  }
  slot.interest = events;
  return true;
}

void HealthChecker::Loop::on_event(uint64_t cookie, uint32_t events, int64_t now_ms) noexcept {
  const auto id = static_cast<uint32_t>(cookie);
  const auto generation = static_cast<uint32_t>(cookie >> 32);
  if (id >= slots_.size() || slots_[id].generation != generation || slots_[id].fd < 0) return;
  Slot& slot = slots_[id];
  switch (slot.phase) {
    case Phase::kConnecting: {
      const int err = sys::socket_error(slot.fd);
      if (err != 0) return fail_errno(id, "connect", err, now_ms);
      if ((events & (EPOLLERR | EPOLLHUP)) != 0)
        return finish(id, false, "connect: hang-up", now_ms);
      slot.phase = Phase::kSending;
      return advance(id, now_ms);
    }
    case Phase::kSending:
      return advance(id, now_ms);
    case Phase::kReading:
      return read_reply(id, now_ms);
    case Phase::kIdle:
      return;
  }
}

void HealthChecker::Loop::advance(uint32_t id, int64_t now_ms) noexcept {
  Slot& slot = slots_[id];
  const HealthCheck& check = slot.backend->check;
  while (slot.sent < check.send.size()) {
    const SysResult r =
        sys::send(slot.fd, check.send.data() + slot.sent, check.send.size() - slot.sent);
    if (r.would_block()) {
      watch(id, EPOLLOUT);
      return;
    }
    if (!r.ok()) return fail_errno(id, "send", r.err, now_ms);
    slot.sent += static_cast<size_t>(r.value);
  }
  if (check.expect.empty()) return finish(id, true, nullptr, now_ms);
  slot.phase = Phase::kReading;
  watch(id, EPOLLIN);
}

void HealthChecker::Loop::read_reply(uint32_t id, int64_t now_ms) noexcept {
  Slot& slot = slots_[id];
  const std::string& expect = slot.backend->check.expect;
  char buffer[512];
  // Reads no further than the expected bytes: what follows is not the check's business.
  while (slot.received < expect.size()) {
    const size_t want = std::min(sizeof buffer, expect.size() - slot.received);
    const SysResult r = sys::read(slot.fd, buffer, want);
    if (r.would_block()) return;
    if (!r.ok()) return fail_errno(id, "read", r.err, now_ms);
    const auto n = static_cast<size_t>(r.value);
    if (n == 0) {
      char reason[96];
      std::snprintf(reason, sizeof reason, "expect: closed after %zu of %zu bytes", slot.received,
                    expect.size());
      return finish(id, false, reason, now_ms);
    }
    if (std::memcmp(buffer, expect.data() + slot.received, n) != 0) {
      return finish(id, false, "expect: reply does not match", now_ms);
    }
    slot.received += n;
  }
  finish(id, true, nullptr, now_ms);
}

void HealthChecker::Loop::close_check(Slot& slot) noexcept {
  if (slot.fd < 0) return;
  // close() also takes the descriptor out of the epoll set: it is never duplicated.
  sys::close(slot.fd);
  slot.fd = -1;
  slot.interest = 0;
  slot.phase = Phase::kIdle;
  ++slot.generation;
}

void HealthChecker::Loop::finish(uint32_t id, bool ok, const char* reason,
                                 int64_t now_ms) noexcept {
  Slot& slot = slots_[id];
  close_check(slot);
  const HealthCheck& check = slot.backend->check;
  // A check that outlived its interval delays the next one: never two in flight.
  slot.next_due_ms = std::max(slot.started_ms + int64_t{check.interval_ms}, now_ms);
  timers_.arm(id, slot.next_due_ms);
  const HealthTransition t = on_check_result(*slot.runtime, check, ok, now_ms);
  if (t == HealthTransition::kNone) return;
  char passed[48];
  if (t == HealthTransition::kUp) {
    std::snprintf(passed, sizeof passed, "%u check%s passed", check.rise,
                  check.rise == 1 ? "" : "s");
    reason = passed;
  }
  log_transition(*slot.backend, *slot.server, t, reason, now_ms);
}

void HealthChecker::Loop::skip(uint32_t id, const char* why, int err, int64_t now_ms) noexcept {
  Slot& slot = slots_[id];
  close_check(slot);
  slot.next_due_ms = std::max(slot.started_ms + int64_t{slot.backend->check.interval_ms}, now_ms);
  timers_.arm(id, slot.next_due_ms);
  log_debug("health check of %s/%s skipped: %s: %s", slot.backend->name.c_str(),
            slot.server->name.c_str(), why, std::strerror(err));
}

void HealthChecker::Loop::fail_errno(uint32_t id, const char* step, int err,
                                     int64_t now_ms) noexcept {
  char reason[96];
  std::snprintf(reason, sizeof reason, "%s: %s", step, std::strerror(err));
  finish(id, false, reason, now_ms);
}

void HealthChecker::Loop::time_out(uint32_t id, int64_t now_ms) noexcept {
  const Slot& slot = slots_[id];
  const HealthCheck& check = slot.backend->check;
  char reason[96];
  if (slot.phase == Phase::kReading) {
    std::snprintf(reason, sizeof reason, "expect: timed out after %u ms with %zu of %zu bytes",
                  check.timeout_ms, slot.received, check.expect.size());
  } else {
    std::snprintf(reason, sizeof reason, "%s: timed out after %u ms",
                  slot.phase == Phase::kConnecting ? "connect" : "send", check.timeout_ms);
  }
  finish(id, false, reason, now_ms);
}

void HealthChecker::Loop::sweep(int64_t now_ms) noexcept {
  // While every passive server is up this is one relaxed load per server per interval; a down
  // one brings the next sweep forward to its retry time, so it comes back on time.
  int64_t next_ms = now_ms + int64_t{passive_interval_ms_};
  for (const Passive& p : passive_) {
    const HealthCheck& check = p.backend->check;
    // A revived server is on probation: the next client connect decides, and logs.
    if (revive_if_due(*p.runtime, check, now_ms)) continue;
    if (p.runtime->up.load(std::memory_order_relaxed)) continue;
    const int64_t due = p.runtime->retry_at_ms.load(std::memory_order_relaxed);
    if (due > now_ms) next_ms = std::min(next_ms, due);
  }
  timers_.arm(sweep_id(), next_ms);
}

HealthChecker::HealthChecker(int epoll_fd, int wake_fd) noexcept
    : epoll_fd_(epoll_fd), wake_fd_(wake_fd) {}

Result<std::unique_ptr<HealthChecker>> HealthChecker::start(
    std::shared_ptr<const Topology> topology) {
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return Error{std::string("health checks: epoll: ") + std::strerror(errno)};
  const int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    const int err = errno;
    sys::close(epoll_fd);
    return Error{std::string("health checks: eventfd: ") + std::strerror(err)};
  }
  std::unique_ptr<HealthChecker> checker(new HealthChecker(epoll_fd, wake_fd));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeCookie;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
    return Error{std::string("health checks: epoll_ctl: ") + std::strerror(errno)};
  }
  checker->loop_ = std::make_unique<Loop>(epoll_fd);
  checker->update(std::move(topology));
  const int rc =
      pthread_create(&checker->thread_, nullptr, &HealthChecker::thread_main, checker.get());
  if (rc != 0) {
    return Error{std::string("health checks: cannot start the thread: ") + std::strerror(rc)};
  }
  checker->started_ = true;
  return checker;
}

void* HealthChecker::thread_main(void* self) noexcept {
  pthread_setname_np(pthread_self(), "edgeproxy-hc");
  auto& checker = *static_cast<HealthChecker*>(self);
  checker.loop_->run(checker);
  return nullptr;
}

HealthChecker::~HealthChecker() {
  if (started_) {
    stop_.store(true, std::memory_order_release);
    wake();
    pthread_join(thread_, nullptr);
  }
  loop_.reset();
  sys::close(wake_fd_);
  sys::close(epoll_fd_);
}

void HealthChecker::wake() noexcept {
  const uint64_t one = 1;
  // EAGAIN only when the counter is near overflow: the thread is woken already.
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void HealthChecker::update(std::shared_ptr<const Topology> topology) {
  {
    std::lock_guard lock(mutex_);
    pending_ = std::move(topology);
    has_pending_ = true;
  }
  wake();
}

}  // namespace edgeproxy
