// io_uring backend reactor; see uring_reactor.h.
#include "uring/uring_reactor.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "edgeproxy/cookie.h"
#include "edgeproxy/log.h"
#include "edgeproxy/net.h"

namespace edgeproxy {
namespace {

uint32_t round_up_pow2(uint32_t v) noexcept {
  uint32_t p = 1;
  while (p < v && p < (1u << 31)) p <<= 1;
  return p;
}

std::string disabled_hint() {
  std::FILE* f = std::fopen("/proc/sys/kernel/io_uring_disabled", "r");
  if (f == nullptr) return "";
  int v = 0;
  const bool read = std::fscanf(f, "%d", &v) == 1;
  std::fclose(f);
  if (!read || v == 0) return "";
  return " (kernel.io_uring_disabled = " + std::to_string(v) + ")";
}

__kernel_timespec timespec_of(int timeout_ms) noexcept {
  return __kernel_timespec{timeout_ms / 1000, int64_t{timeout_ms % 1000} * 1'000'000};
}

// IORING_FEAT_MIN_TIMEOUT (6.12), newer than liburing 2.3's headers.
constexpr uint32_t kFeatMinTimeout = 1u << 15;

// Whether a failed io_uring_enter means the kernel refused the submission (so retrying at once
// would spin): not a timeout (ETIME), a signal (EINTR) nor a report of dropped completions
// (EBADR, which the next call no longer returns; cq.koverflow counts them).
bool refused(int err) noexcept {
  return err != ETIME && err != EINTR && err != EBADR;
}

int try_init(uint32_t sq, uint32_t cq, uint32_t extra, io_uring* ring) noexcept {
  io_uring_params p{};
  p.flags = IORING_SETUP_CQSIZE | extra;
  p.cq_entries = cq;
  return io_uring_queue_init_params(sq, ring, &p);
}

}  // namespace

Result<UringReactor> UringReactor::create(uint32_t batch, uint32_t max_connections,
                                          uint32_t batch_wait_us) {
  // Per connection at most: per side one operation taking bytes in (a receive, a splice into a
  // pipe or the poll before one) and one sending (a send, a splice out of a pipe or the poll
  // before one), a connect; at close, a cancel per operation and a barrier per side. A burst
  // beyond the CQ (or its cap of 65536 entries) is kept by the kernel (NODROP) and flushed, in
  // order, at the next enter with GETEVENTS.
  const uint64_t wanted_cq = uint64_t{max_connections} * 5 + 2 * kMaxListeners + 64;
  const uint32_t cq = round_up_pow2(static_cast<uint32_t>(wanted_cq > 65536 ? 65536 : wanted_cq));
  const uint32_t sq = cq / 4 < 1024 ? (cq < 1024 ? cq : 1024) : 1024;
  auto ring = std::make_unique<io_uring>();
  // R_DISABLED lets the worker's own thread enable the ring and become its single issuer.
  const uint32_t best =
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED;
  int rc = try_init(sq, cq, best, ring.get());
  bool disabled = rc == 0;
  if (rc == -EINVAL) {
    log_info("io_uring: SINGLE_ISSUER/DEFER_TASKRUN not supported by this kernel, using defaults");
    rc = try_init(sq, cq, 0, ring.get());
  }
  if (rc != 0) {
    return Error{std::string("io_uring is not available: ") + std::strerror(-rc) + disabled_hint()};
  }
  if (batch_wait_us > 0 && !(ring->features & kFeatMinTimeout)) {
    // Logged by each worker (each creates its ring).
    log_info("io_uring: this kernel has no minimum wait (6.12+): --batch-wait has no effect");
    batch_wait_us = 0;
  }
  return UringReactor(std::move(ring), batch, disabled, batch_wait_us);
}

UringReactor::UringReactor(std::unique_ptr<io_uring> ring, uint32_t batch, bool disabled,
                           uint32_t batch_wait_us)
    : ring_(std::move(ring)),
      batch_(batch),
      disabled_(disabled),
      events_(std::make_unique<Event[]>(batch)),
      batch_wait_us_(batch_wait_us),
      // The CQ ring's size (a power of two): sqe() can move one full ring out of the kernel's way.
      // Not value-initialised: its pages (16 bytes an entry, 1 MiB at 65 536) cost no memory until
      // the kernel refuses a submission and completions are moved there.
      deferred_(std::make_unique_for_overwrite<Completion[]>(ring_->cq.ring_entries)),
      deferred_capacity_(ring_->cq.ring_entries) {}

UringReactor::UringReactor(UringReactor&& other) noexcept
    : ring_(std::move(other.ring_)),
      batch_(other.batch_),
      disabled_(other.disabled_),
      ring_fd_registered_(other.ring_fd_registered_),
      events_(std::move(other.events_)),
      control_(other.control_),
      batch_wait_us_(other.batch_wait_us_),
      connections_(other.connections_),
      last_completions_(other.last_completions_),
      batched_waits_(other.batched_waits_),
      deferred_(std::move(other.deferred_)),
      deferred_capacity_(other.deferred_capacity_),
      deferred_head_(other.deferred_head_),
      deferred_size_(other.deferred_size_),
      stalled_(other.stalled_),
      submit_failures_(other.submit_failures_),
      koverflow_seen_(other.koverflow_seen_),
      dropped_(other.dropped_) {
  for (uint32_t i = 0; i < kMaxListeners; ++i) listeners_[i] = other.listeners_[i];
  listener_slots_ = other.listener_slots_;
}

UringReactor::~UringReactor() {
  if (ring_ == nullptr) return;
  // Closes queued since the last wait() (UringTransport::close_socket) leave with this enter.
  if (!disabled_ && io_uring_sq_ready(ring_.get()) > 0) io_uring_submit(ring_.get());
  reap_accepts_at_exit();
  io_uring_queue_exit(ring_.get());
}

void UringReactor::reap_accepts_at_exit() noexcept {
  io_uring* r = ring_.get();
  // With DEFER_TASKRUN an accept runs (and installs its descriptor) only when this thread enters
  // the ring with GETEVENTS, and a completion the CQ ring had no room for waits in the kernel's
  // overflow list until such an enter flushes it. So: cancel what is still in flight, enter until
  // nothing is in flight or overflowing (a cancel completes at once: a few rounds at most), and
  // reset every descriptor a completion carries. A ring never enabled, or an enter refused (not
  // the issuer's thread: EEXIST), leaves only what is in the ring and the deferred list already.
  constexpr int kRounds = 8;
  if (!disabled_) {
    for (uint32_t i = 0; i < listener_slots_; ++i) {
      Watched& w = listeners_[i];
      w.wanted = false;
      w.cancel_owed = w.armed;
      w.singles_cancel_owed = w.singles > 0;
      send_owed_cancels(i);
    }
  }
  for (int round = 0;; ++round) {
    for (; deferred_size_ > 0; --deferred_size_) {
      reset_accepted(deferred_[deferred_head_]);
      deferred_head_ = (deferred_head_ + 1) & (deferred_capacity_ - 1);
    }
    unsigned head = 0;
    unsigned seen = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(r, head, cqe) {
      ++seen;
      reset_accepted(Completion{cqe->user_data, cqe->res, cqe->flags});
    }
    io_uring_cq_advance(r, seen);
    const bool overflowing = (IO_URING_READ_ONCE(*r->sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0;
    if (disabled_ || round == kRounds || (!accepts_in_flight() && !overflowing)) break;
    if (io_uring_submit_and_get_events(r) < 0) break;
  }
}

void UringReactor::reset_accepted(const Completion& cqe) noexcept {
  const UserData ud = UserData::unpack(cqe.user_data);
  if (ud.op != UringOp::kAccept && ud.op != UringOp::kAcceptOnce) return;
  Watched& w = listeners_[ud.handle.index];
  if (ud.op == UringOp::kAcceptOnce) {
    if (w.singles > 0) --w.singles;
  } else if (!(cqe.flags & IORING_CQE_F_MORE)) {
    w.armed = false;
  }
  if (cqe.res < 0) return;
  sys::set_linger_zero(cqe.res);
  sys::close(cqe.res);
}

SysResult UringReactor::start() noexcept {
  if (disabled_) {
    // liburing 2.3 declares io_uring_enable_rings() but does not export it: use the syscall.
    const SysResult r = SysResult::from(
        syscall(__NR_io_uring_register, ring_->ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0));
    if (!r.ok()) return r;
    disabled_ = false;
  }
  // Registering the ring fd (per thread, so here on the worker's own) spares every
  // io_uring_enter the lookup of the ring's file. Kernels before 5.18 lack it: not needed.
  if (!ring_fd_registered_) ring_fd_registered_ = io_uring_register_ring_fd(ring_.get()) == 1;
  return SysResult{};
}

io_uring_sqe* UringReactor::sqe() noexcept {
  return reserve(1) ? io_uring_get_sqe(ring_.get()) : nullptr;
}

bool UringReactor::reserve(uint32_t n) noexcept {
  io_uring* r = ring_.get();
  if (io_uring_sq_space_left(r) >= n) return true;
  // The submission queue is too full: hand it to the kernel now. It may refuse: EAGAIN (no memory
  // for requests), EBUSY (older kernels, with an overflow backlog they cannot flush into a full
  // CQ ring), EINTR, EBADFD (a ring not enabled yet). An entry it did not take stays queued for
  // the next enter; the completions in the CQ ring are deferred to make room for flushing.
  for (uint32_t attempt = 0; attempt < kSubmitAttempts; ++attempt) {
    if (io_uring_submit(r) < 0) stash_completions();
    if (io_uring_sq_space_left(r) >= n) return true;
  }
  ++submit_failures_;
  stalled_ = true;
  return false;
}

void UringReactor::stash_completions() noexcept {
  io_uring* r = ring_.get();
  unsigned head = 0;
  unsigned moved = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(r, head, cqe) {
    if (deferred_size_ == deferred_capacity_) break;
    deferred_[(deferred_head_ + deferred_size_) & (deferred_capacity_ - 1)] =
        Completion{cqe->user_data, cqe->res, cqe->flags};
    ++deferred_size_;
    ++moved;
  }
  io_uring_cq_advance(r, moved);
}

void UringReactor::arm_accepts(uint32_t index) noexcept {
  Watched& w = listeners_[index];
  if (!w.wanted || w.fd < 0) return;
  if (room_ > 2 * backlog_ + kAcceptMargin) {
    if (w.armed) return;
    io_uring_sqe* e = sqe();
    if (e == nullptr) return;  // the next set_accept_room() tries again
    io_uring_prep_multishot_accept(e, w.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(e, UserData::pack(UringOp::kAccept, Handle{index, 0}));
    w.armed = true;
    return;
  }
  if (w.armed) {  // too close to capacity for a multishot: fall back to counted single shots
    cancel_accepts(index);
    w.wanted = true;
  }
  // Each pending accept waits on the listener: keep a few, not one per free slot.
  const uint32_t singles = room_ < kMaxSingleAccepts ? room_ : kMaxSingleAccepts;
  while (w.singles < singles) {
    io_uring_sqe* e = sqe();
    if (e == nullptr) return;
    io_uring_prep_accept(e, w.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(e, UserData::pack(UringOp::kAcceptOnce, Handle{index, 0}));
    ++w.singles;
  }
}

void UringReactor::cancel_accepts(uint32_t index) noexcept {
  Watched& w = listeners_[index];
  w.wanted = false;
  w.cancel_owed = w.armed;
  w.singles_cancel_owed = w.singles > 0;
  send_owed_cancels(index);
}

void UringReactor::send_owed_cancels(uint32_t index) noexcept {
  Watched& w = listeners_[index];
  // By user_data, not by fd: the worker may close the listener before this is submitted. An
  // accept that ended meanwhile needs no cancel.
  if (w.cancel_owed && w.armed) {
    w.cancel_owed = !cancel_all(UserData::pack(UringOp::kAccept, Handle{index, 0}), index);
  } else {
    w.cancel_owed = false;
  }
  if (w.singles_cancel_owed && w.singles > 0) {
    w.singles_cancel_owed =
        !cancel_all(UserData::pack(UringOp::kAcceptOnce, Handle{index, 0}), index);
  } else {
    w.singles_cancel_owed = false;
  }
}

bool UringReactor::cancel_all(uint64_t target, uint32_t index) noexcept {
  io_uring_sqe* e = sqe();
  if (e == nullptr) return false;
  io_uring_prep_cancel64(e, target, IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(e, UserData::pack(UringOp::kListenerCancel, Handle{index, 0}));
  return true;
}

bool UringReactor::accepts_in_flight() const noexcept {
  for (uint32_t i = 0; i < listener_slots_; ++i) {
    if (listeners_[i].armed || listeners_[i].singles > 0) return true;
  }
  return false;
}

bool UringReactor::accepts_idle() const noexcept {
  return stalled_ || dropped_ > 0 || !accepts_in_flight();
}

void UringReactor::set_accept_room(uint32_t room, uint32_t backlog) noexcept {
  room_ = room;
  backlog_ = backlog;
  for (uint32_t i = 0; i < listener_slots_; ++i) {
    if (listeners_[i].wanted) arm_accepts(i);
  }
}

void UringReactor::arm_poll() noexcept {
  io_uring_sqe* e = sqe();
  if (e == nullptr) return;  // still unarmed: the next wait() tries again
  io_uring_prep_poll_multishot(e, control_.fd, POLLIN);
  io_uring_sqe_set_data64(e, UserData::pack(UringOp::kPoll, Handle{}));
  control_.armed = true;
}

SysResult UringReactor::watch(int fd, uint64_t cookie) noexcept {
  control_ = Watched{fd, cookie, true, false};
  arm_poll();
  return SysResult{};
}

SysResult UringReactor::watch_listener(int fd, uint64_t cookie) noexcept {
  const uint32_t index = Cookie::unpack(cookie).handle.index;
  if (index >= kMaxListeners) return SysResult{-1, EMFILE};
  listeners_[index] = Watched{fd, cookie, true, false, 0};
  if (index >= listener_slots_) listener_slots_ = index + 1;
  arm_accepts(index);
  return SysResult{};
}

SysResult UringReactor::pause_listener(int, uint64_t cookie) noexcept {
  cancel_accepts(Cookie::unpack(cookie).handle.index);
  return SysResult{};
}

SysResult UringReactor::resume_listener(int fd, uint64_t cookie) noexcept {
  const uint32_t index = Cookie::unpack(cookie).handle.index;
  Watched& w = listeners_[index];
  w.wanted = true;
  w.fd = fd;
  // Paused and resumed before the cancel could be sent: the accepts in flight are wanted again.
  w.cancel_owed = false;
  w.singles_cancel_owed = false;
  arm_accepts(index);
  return SysResult{};
}

void UringReactor::unwatch_listener(int fd, uint64_t cookie) noexcept {
  pause_listener(fd, cookie);
  listeners_[Cookie::unpack(cookie).handle.index].fd = -1;
}

bool UringReactor::listener_idle(uint32_t index) const noexcept {
  if (index >= listener_slots_) return true;
  const Watched& w = listeners_[index];
  return !w.armed && w.singles == 0;
}

bool UringReactor::translate(const Completion& cqe, Event& out) noexcept {
  const UserData ud = UserData::unpack(cqe.user_data);
  const bool more = (cqe.flags & IORING_CQE_F_MORE) != 0;
  switch (ud.op) {
    case UringOp::kAccept:
    case UringOp::kAcceptOnce: {
      Watched& w = listeners_[ud.handle.index];
      if (ud.op == UringOp::kAcceptOnce) {
        if (w.singles > 0) --w.singles;
      } else if (!more) {
        // A multishot ends on cancellation, on errors and when the kernel chooses to.
        w.armed = false;
      }
      // The worker re-arms through set_accept_room() at the end of the iteration, unless it
      // must decide (out of fds: it pauses the listener, then retries on a timer).
      if (cqe.res < 0 && !sys::accept_error_is_transient(-cqe.res) && cqe.res != -ECANCELED) {
        w.wanted = false;
      }
      if (cqe.res == -ECANCELED) return false;
      out = Event{w.cookie, kAccepted, cqe.res, cqe.flags, 0};
      return true;
    }
    case UringOp::kPoll:
      if (!more) control_.armed = false;  // re-armed by the next wait()
      if (cqe.res < 0) return false;
      out = Event{control_.cookie, kReadable, cqe.res, cqe.flags, 0};
      return true;
    case UringOp::kListenerCancel:
    case UringOp::kUnreported:
    case UringOp::kNone:
      return false;
    case UringOp::kConnect:
    case UringOp::kRecvUpstream:
    case UringOp::kSendUpstream:
    case UringOp::kCancelUpstream:
    case UringOp::kRecvClient:
    case UringOp::kSendClient:
    case UringOp::kCancelClient:
    case UringOp::kSpliceClient:
    case UringOp::kSpliceUpstream: {
      const bool client = ud.op == UringOp::kRecvClient || ud.op == UringOp::kSendClient ||
                          ud.op == UringOp::kCancelClient || ud.op == UringOp::kSpliceClient;
      out = Event{Cookie::pack(client ? CookieTag::kClient : CookieTag::kUpstream, ud.handle), 0,
                  cqe.res, cqe.flags, UringEventOp::pack(ud.op, ud.buffer)};
      return true;
    }
  }
  return false;
}

std::span<const Event> UringReactor::wait(int timeout_ms) noexcept {
  io_uring* r = ring_.get();
  // What an earlier call could not submit for want of an entry goes with this enter.
  if (control_.wanted && !control_.armed && control_.fd >= 0) arm_poll();
  for (uint32_t i = 0; i < listener_slots_; ++i) {
    if (listeners_[i].cancel_owed || listeners_[i].singles_cancel_owed) send_owed_cancels(i);
  }
  // After a refusal, do not come straight back to a kernel that is short of memory or has
  // completions to flush: give it a moment.
  if (stalled_ && timeout_ms == 0) timeout_ms = kStallWaitMs;
  const uint32_t want = batch_target(last_completions_, connections_, batch_);
  int rc = 0;
  if (deferred_size_ > 0 || io_uring_cq_ready(r) > 0) {
    // Completions are waiting: submit without blocking, but with GETEVENTS. Under DEFER_TASKRUN
    // the completions that go through task work (a receive that waited for data, an operation a
    // cancel found) are posted only by an enter with GETEVENTS, which also flushes an overflow
    // backlog. Without it, a loop whose every submission completes inline (a cancel that finds
    // its operation) always finds the CQ ring non-empty and never lets that work run.
    rc = io_uring_submit_and_get_events(r);
  } else if (want > 1 && batch_wait_us_ > 0 &&
             (timeout_ms < 0 || int64_t{timeout_ms} * 1000 > batch_wait_us_)) {
    // The kernel looks at the timeout only once the minimum wait is over: a timer due sooner
    // than that is not delayed by a batch.
    rc = enter_batched(timeout_ms, want);
    if (rc >= 0) ++batched_waits_;
  } else if (timeout_ms < 0) {
    rc = io_uring_submit_and_wait(r, 1);
  } else if (timeout_ms == 0) {
    rc = io_uring_submit_and_get_events(r);
  } else {
    __kernel_timespec ts = timespec_of(timeout_ms);
    io_uring_cqe* cqe = nullptr;
    rc = io_uring_submit_and_wait_timeout(r, &cqe, 1, &ts, nullptr);
  }
  stalled_ = rc < 0 && refused(-rc);
  note_dropped();
  size_t n = 0;
  unsigned seen = 0;
  for (; deferred_size_ > 0 && n < batch_; --deferred_size_) {
    ++seen;
    if (translate(deferred_[deferred_head_], events_[n])) ++n;
    deferred_head_ = (deferred_head_ + 1) & (deferred_capacity_ - 1);
  }
  unsigned head = 0;
  unsigned from_ring = 0;
  io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(r, head, cqe) {
    if (n == batch_) break;
    ++from_ring;
    if (translate(Completion{cqe->user_data, cqe->res, cqe->flags}, events_[n])) ++n;
  }
  io_uring_cq_advance(r, from_ring);
  last_completions_ = seen + from_ring;
  if (n == 0 && stalled_) {
    // The kernel refused the enter: no completion can come now, the control fd's poll included.
    // Wait for that fd here instead, briefly, so the loop neither spins nor ignores a stop.
    const bool watching = control_.wanted && control_.fd >= 0;
    pollfd p{control_.fd, POLLIN, 0};
    const int ms = timeout_ms >= 0 && timeout_ms < kStallWaitMs ? timeout_ms : kStallWaitMs;
    if (::poll(watching ? &p : nullptr, watching ? 1 : 0, ms) > 0 && (p.revents & POLLIN)) {
      events_[n++] = Event{control_.cookie, kReadable, POLLIN, 0, 0};
    }
  }
  return {events_.get(), n};
}

void UringReactor::note_dropped() noexcept {
  // The kernel counts, in the shared ring, every completion it had to drop: the CQ ring was full
  // and it could not allocate an overflow entry (IORING_FEAT_NODROP holds the others back until
  // an enter with GETEVENTS flushes them, in order).
  const uint32_t now = IO_URING_READ_ONCE(*ring_->cq.koverflow);
  if (now == koverflow_seen_) return;
  if (dropped_ == 0) {
    log_warn(
        "io_uring: the kernel dropped %u completion(s) (CQ overflow, out of memory); "
        "connections whose completions were lost are closed",
        now - koverflow_seen_);
  }
  dropped_ += now - koverflow_seen_;
  koverflow_seen_ = now;
}

int UringReactor::enter_batched(int timeout_ms, uint32_t want) noexcept {
  io_uring* r = ring_.get();
  // liburing 2.3 has no call taking a minimum wait: publish the queued entries as its submit
  // does (no SQPOLL here, so a plain store of the tail), then enter with the extended argument,
  // whose former padding is min_wait_usec since 6.12.
  io_uring_sq* sq = &r->sq;
  const unsigned tail = sq->sqe_tail;
  if (sq->sqe_head != tail) {
    sq->sqe_head = tail;
    IO_URING_WRITE_ONCE(*sq->ktail, tail);
  }
  const unsigned to_submit = tail - *sq->khead;
  __kernel_timespec ts{};
  io_uring_getevents_arg arg{};
  arg.pad = batch_wait_us_;  // min_wait_usec
  if (timeout_ms >= 0) {
    ts = timespec_of(timeout_ms);
    arg.ts = reinterpret_cast<uint64_t>(&ts);
  }
  unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
  int fd = r->ring_fd;
  if (ring_fd_registered_) {
    flags |= IORING_ENTER_REGISTERED_RING;
    fd = r->enter_ring_fd;
  }
  // An entry the kernel did not take stays queued and goes with the next enter, as with
  // io_uring_submit. ETIME: the timeout, or (untimed) the end of the minimum wait with nothing in;
  // EINTR: a signal; EAGAIN, EBUSY, ENOMEM: memory or completions pending; EBADR: completions
  // were dropped (reported once, then cleared); EBADFD, EEXIST: the ring is not enabled or this is
  // not its thread. All leave an empty or partial batch for the next iteration. Anything else
  // means the kernel refuses the argument: stop batching.
  const SysResult entered =
      SysResult::from(syscall(__NR_io_uring_enter, fd, to_submit, want, flags, &arg, sizeof arg));
  if (entered.ok()) return static_cast<int>(entered.value);
  switch (entered.err) {
    case ETIME:
    case EINTR:
    case EAGAIN:
    case EBUSY:
    case ENOMEM:
    case EBADR:
    case EBADFD:
    case EEXIST:
      break;
    default:
      log_warn("io_uring: a batched wait failed (%s): --batch-wait disabled",
               std::strerror(entered.err));
      batch_wait_us_ = 0;
      break;
  }
  return -entered.err;
}

}  // namespace edgeproxy
