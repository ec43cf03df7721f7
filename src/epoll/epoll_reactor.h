// EpollReactor: one epoll instance, edge-triggered but for listeners (decision 0019). Registers fds
// with a cookie (cookie.h) and normalized interest (event.h), and turns epoll_wait batches into
// normalized Events. Single-threaded: owned by one Worker.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <span>

#include "edgeproxy/event.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

class EpollReactor {
 public:
  static constexpr const char* kName = "epoll";

  // Creates the epoll instance; `batch` is the most events one wait() returns. epoll needs no
  // sizing by connection count, and cannot batch (kBatchWait).
  static Result<EpollReactor> create(uint32_t batch, uint32_t max_connections,
                                     uint32_t batch_wait_us = 0);

  EpollReactor(EpollReactor&& other) noexcept;
  EpollReactor& operator=(EpollReactor&&) = delete;
  EpollReactor(const EpollReactor&) = delete;
  ~EpollReactor();

  // Called on the loop's thread before the first wait(); nothing to do for epoll.
  SysResult start() noexcept { return SysResult{}; }

  // Edge-triggered registration. kWantRead also asks for EPOLLRDHUP so a FIN that arrives with
  // the last data is seen, and EPOLLPRI so urgent data is; EPOLLERR/EPOLLHUP are always
  // reported, even with no interest.
  SysResult add(int fd, uint64_t cookie, uint32_t interest) noexcept;
  // EPOLL_CTL_MOD re-polls the fd: if it is already readable/writable for the new interest, an
  // event is queued at once, so resuming a paused side never misses bytes that arrived meanwhile.
  SysResult modify(int fd, uint64_t cookie, uint32_t interest) noexcept;

  // Listeners and control fds (the eventfd). Pausing drops the interest and keeps the registration;
  // resuming re-polls, so connections that queued meanwhile raise an event at once. Unwatching
  // deletes the registration: closing the fd would not when another descriptor shares the socket
  // (a Unix or socket-activated listener is one socket dup'ed to every worker, and the supervisor
  // keeps systemd's), and the stale registration would keep waking the worker, and refuse a later
  // registration of the same fd number with EEXIST.
  SysResult watch(int fd, uint64_t cookie) noexcept { return add(fd, cookie, kWantRead); }
  //
  // Listeners alone are level-triggered (decision 0019): the worker takes one connection per
  // report and leaves the rest of the backlog to the next wait, which reports the listener again
  // while the backlog is not empty. An edge-triggered listener must be drained until accept4()
  // fails with EAGAIN, one system call per drain that brings nothing. Pausing drops the interest,
  // so a full worker is not woken by a backlog it leaves waiting.
  SysResult watch_listener(int fd, uint64_t cookie) noexcept {
    return control(EPOLL_CTL_ADD, fd, cookie, EPOLLIN);
  }
  SysResult pause_listener(int fd, uint64_t cookie) noexcept {
    return control(EPOLL_CTL_MOD, fd, cookie, 0);
  }
  SysResult resume_listener(int fd, uint64_t cookie) noexcept {
    return control(EPOLL_CTL_MOD, fd, cookie, EPOLLIN);
  }
  void unwatch_listener(int fd, uint64_t) noexcept { remove(fd); }
  // Deletes the registration of an fd that stays open (a pooled server connection handed back
  // to the pool, decision 0013): another slot may then register it.
  void remove(int fd) noexcept;
  // Whether listener slot `index` may be reused for another socket: always, nothing is in flight.
  bool listener_idle(uint32_t) const noexcept { return true; }
  // epoll accepts only while the worker has room (it pauses the listener when full): no-op.
  void set_accept_room(uint32_t, uint32_t) noexcept {}
  // epoll accepts with accept4() in the loop: nothing is ever accepted behind the worker's back.
  bool accepts_idle() const noexcept { return true; }
  // epoll_wait has no minimum-wait: nothing to batch (the worker's loop already takes every
  // ready fd per call). --batch-wait is refused for this backend.
  static constexpr bool kBatchWait = false;
  void set_concurrency(uint32_t) noexcept {}
  uint64_t batched_waits() const noexcept { return 0; }

  // Waits up to timeout_ms (-1 = until something happens) and returns normalized events, valid
  // until the next call. EINTR returns an empty batch.
  std::span<const Event> wait(int timeout_ms) noexcept;

 private:
  EpollReactor(int epfd, uint32_t batch);
  SysResult control(int op, int fd, uint64_t cookie, uint32_t events) noexcept;
  int epfd_;
  uint32_t batch_;
  std::unique_ptr<epoll_event[]> raw_;
  std::unique_ptr<Event[]> events_;
};

}  // namespace edgeproxy
