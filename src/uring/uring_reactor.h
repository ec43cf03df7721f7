// UringReactor: one io_uring instance per worker. It owns the ring, hands out submission entries,
// keeps listeners' multishot accepts and control fds' multishot polls armed, and turns completions
// into normalized Events (the connection's operations are interpreted by UringTransport).
// Submissions are batched: everything queued during an iteration goes to the kernel in the one
// io_uring_enter() of the next wait(). A kernel that refuses a submission never makes it spin:
// see sqe() and wait(). Single-threaded: created on any thread, but start() and every later call
// run on the worker's thread (SINGLE_ISSUER).
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <span>

#include "edgeproxy/event.h"
#include "edgeproxy/result.h"
#include "uring/user_data.h"

namespace edgeproxy {

class UringReactor {
 public:
  static constexpr const char* kName = "io_uring";
  static constexpr uint32_t kMaxListeners = 1024;
  static constexpr uint32_t kMaxSingleAccepts = 16;
  static constexpr uint32_t kAcceptMargin = 256;

  // Sets up a ring sized for `max_connections` (completion queue larger than the submission
  // queue: every connection has at most five operations in flight), with SINGLE_ISSUER and
  // DEFER_TASKRUN where the kernel has them. A kernel without io_uring, or with it disabled
  // (kernel.io_uring_disabled), gets one clear error. batch_wait_us: see wait().
  static Result<UringReactor> create(uint32_t batch, uint32_t max_connections,
                                     uint32_t batch_wait_us = 0);

  UringReactor(UringReactor&& other) noexcept;
  UringReactor& operator=(UringReactor&&) = delete;
  UringReactor(const UringReactor&) = delete;
  // Reaps what is left in the ring (after cancelling accepts still in flight and flushing the
  // kernel's overflow backlog, when this thread may still enter the ring) and resets every
  // connection an accept completion carries (SO_LINGER 0): a descriptor the kernel accepted for
  // us would otherwise stay open, its client hanging, until the whole process exits.
  ~UringReactor();

  // Enables the ring on the calling thread, which becomes its only submitter.
  SysResult start() noexcept;

  // A submission entry to fill, or null when the submission queue is full and the kernel refused
  // to take it (EAGAIN, EBUSY, EINTR, a ring not enabled...) a few times in a row: counted in
  // submit_failures(), and the next wait() gives the kernel a moment (see wait()). Before each
  // retry the completions waiting in the CQ ring are moved out of it into a list of deferred
  // completions that the next wait() returns first, so an overflow the kernel holds back (EBUSY)
  // can flush. The caller must not spin on null: it leaves the operation unsubmitted and retries
  // next iteration.
  io_uring_sqe* sqe() noexcept;
  // Makes room for `n` entries (n <= the queue's size) the same way: true when sqe() will hand
  // out n non-null entries, so a caller can queue a group of entries all or nothing.
  bool reserve(uint32_t n) noexcept;
  io_uring* ring() noexcept { return ring_.get(); }

  // Control fds (the worker's eventfd): a multishot poll, re-armed (by the next wait()) whenever
  // the kernel ends it or no submission entry was free. While the kernel refuses submissions,
  // wait() polls the fd itself, so stop and report requests are still served.
  SysResult watch(int fd, uint64_t cookie) noexcept;
  // Listeners: accepts whose completions carry the accepted fd (Ready kAccepted). Pausing cancels
  // them (clients wait in the backlog; a cancel that finds no submission entry is owed and sent
  // by the next wait()); resuming re-arms them.
  SysResult watch_listener(int fd, uint64_t cookie) noexcept;
  SysResult pause_listener(int fd, uint64_t cookie) noexcept;
  SysResult resume_listener(int fd, uint64_t cookie) noexcept;
  void unwatch_listener(int fd, uint64_t cookie) noexcept;
  // Whether listener slot `index` may be reused for another socket: no accept is in flight on it
  // (an unwatched listener's cancelled accepts still complete, with the slot's old cookie).
  bool listener_idle(uint32_t index) const noexcept;
  // How many more connections the worker can take, and the listen backlog. A multishot accept
  // drains the accept queue in a loop within one io_uring_enter() (backlog + 1 connections, plus
  // handshakes that complete meanwhile), so it is used only while the room exceeds twice the
  // backlog plus a margin; nearer capacity, single-shot accepts are kept in flight, never more
  // than the room, so a client is not accepted only to be refused. Called once per iteration.
  void set_accept_room(uint32_t room, uint32_t backlog) noexcept;
  // True when no accept is in flight on any listener, so no completion can still bring an
  // accepted descriptor: after unwatch_listener(), the worker keeps waiting until it is. Also
  // true while the kernel refuses submissions (the cancel cannot reach it) and once it has
  // dropped completions (the one ending an accept may be among them): a shutdown is never held
  // for ever, and the destructor resets whatever the ring still holds.
  bool accepts_idle() const noexcept;

  static constexpr bool kBatchWait = true;
  // How many connections the worker serves; bounds how many completions a wait asks for.
  void set_concurrency(uint32_t connections) noexcept { connections_ = connections; }

  // How many completions a blocking wait asks for: as many as the previous wait brought, but at
  // most one per kConnectionsPerCompletion connections served (so a worker with a handful of
  // connections never waits for a batch that cannot come) and at most `batch`. 1 = no batching.
  static constexpr uint32_t kConnectionsPerCompletion = 4;
  static constexpr uint32_t batch_target(uint32_t last, uint32_t connections,
                                         uint32_t batch) noexcept {
    uint32_t want = last;
    if (want > connections / kConnectionsPerCompletion)
      want = connections / kConnectionsPerCompletion;
    if (want > batch) want = batch;
    return want < 1 ? 1 : want;
  }

  // Submits what was queued, waits up to timeout_ms (-1 = until a completion) and returns up to
  // `batch` normalized events, valid until the next call: first those sqe() moved out of the
  // ring, in order, then the ring's. When the kernel refused the previous submission, a
  // non-blocking wait waits up to kStallWaitMs instead (time for completions or memory to come
  // back); when it refuses this one, wait() polls the control fd for up to kStallWaitMs and
  // returns its event if it is readable, so a refusing kernel never turns the worker's loop
  // into a busy loop nor leaves it deaf to stop requests. With batch_wait_us (kernel 6.12+ min
  // wait), a blocking wait whose batch_target() exceeds 1, and whose timeout (if any) is longer
  // than batch_wait_us, returns once that many completions arrived, or after batch_wait_us with
  // at least one, or at the timeout; an untimed one with nothing in after batch_wait_us returns
  // empty (the caller loops). A loaded worker wakes once per batch instead of once per
  // completion, at most batch_wait_us later.
  std::span<const Event> wait(int timeout_ms) noexcept;

  // Whether waits batch (batch_wait_us > 0 and the kernel supports it), and how many have.
  bool batching() const noexcept { return batch_wait_us_ > 0; }
  uint64_t batched_waits() const noexcept { return batched_waits_; }

  // Completions the kernel dropped: it could post them neither in the CQ ring nor in its
  // overflow backlog (IORING_FEAT_NODROP keeps overflowed ones unless memory runs out), as its
  // cq.koverflow counter reports them. The first drop logs one warning. UringTransport gives up
  // on the operations whose completion a cancel proves lost.
  uint64_t dropped_completions() const noexcept { return dropped_; }
  // sqe() calls that returned null because the kernel kept refusing the submission queue.
  uint64_t submit_failures() const noexcept { return submit_failures_; }

  static constexpr int kStallWaitMs = 1;
  static constexpr uint32_t kSubmitAttempts = 4;

 private:
  struct Watched {
    int fd = -1;
    uint64_t cookie = 0;
    bool wanted = false;   // the worker wants events from it
    bool armed = false;    // a multishot operation is in flight (or queued)
    uint32_t singles = 0;  // single-shot accepts in flight
    // Cancels that found no submission entry: sent by the next wait().
    bool cancel_owed = false;
    bool singles_cancel_owed = false;
  };
  // A completion moved out of the CQ ring by sqe(), returned by the next wait().
  struct Completion {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
  };

  UringReactor(std::unique_ptr<io_uring> ring, uint32_t batch, bool disabled,
               uint32_t batch_wait_us);
  // io_uring_enter with a minimum wait: submits what is queued and waits as wait() says. Returns
  // the call's result (-errno on failure); an error that says the kernel refuses the argument
  // also stops batching.
  int enter_batched(int timeout_ms, uint32_t want) noexcept;
  void arm_accepts(uint32_t index) noexcept;
  void cancel_accepts(uint32_t index) noexcept;
  void send_owed_cancels(uint32_t index) noexcept;
  bool cancel_all(uint64_t target, uint32_t index) noexcept;
  bool accepts_in_flight() const noexcept;
  void arm_poll() noexcept;
  bool translate(const Completion& cqe, Event& out) noexcept;
  // Moves the completions in the CQ ring into the deferred list, as many as it has room for.
  void stash_completions() noexcept;
  // Adds what cq.koverflow says the kernel dropped since the last look; warns once.
  void note_dropped() noexcept;
  // The destructor's work: see ~UringReactor().
  void reap_accepts_at_exit() noexcept;
  void reset_accepted(const Completion& cqe) noexcept;

  std::unique_ptr<io_uring> ring_;
  uint32_t batch_;
  bool disabled_;  // created with R_DISABLED: start() enables it
  bool ring_fd_registered_ = false;
  std::unique_ptr<Event[]> events_;
  Watched listeners_[kMaxListeners];
  uint32_t listener_slots_ = 0;  // listeners_[0 .. listener_slots_) have been watched
  Watched control_;
  uint32_t room_ = 0;
  uint32_t backlog_ = 0;
  uint32_t batch_wait_us_ = 0;  // 0 = no min-wait batching
  uint32_t connections_ = 0;
  uint32_t last_completions_ = 0;  // completions the previous wait() consumed
  uint64_t batched_waits_ = 0;
  // Completions sqe() moved out of the CQ ring: a FIFO of deferred_capacity_ (the CQ ring's size,
  // a power of two) entries, allocated at create().
  std::unique_ptr<Completion[]> deferred_;
  uint32_t deferred_capacity_ = 0;
  uint32_t deferred_head_ = 0;
  uint32_t deferred_size_ = 0;
  bool stalled_ = false;  // the kernel refused the last submission (sqe() or wait())
  uint64_t submit_failures_ = 0;
  uint32_t koverflow_seen_ = 0;  // cq.koverflow at the last look
  uint64_t dropped_ = 0;
};

}  // namespace edgeproxy
