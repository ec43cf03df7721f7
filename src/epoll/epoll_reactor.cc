// epoll(7) backend reactor; see epoll_reactor.h.
#include "epoll/epoll_reactor.h"

#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>

namespace edgeproxy {
namespace {

uint32_t to_epoll(uint32_t interest) noexcept {
  uint32_t ev = EPOLLET;
  // EPOLLPRI: urgent data arrived, which splice(2) cannot move past (relay.h, kUrgent).
  if (interest & kWantRead) ev |= EPOLLIN | EPOLLRDHUP | EPOLLPRI;
  if (interest & kWantWrite) ev |= EPOLLOUT;
  return ev;
}

uint32_t from_epoll(uint32_t ev) noexcept {
  uint32_t ready = 0;
  if (ev & EPOLLIN) ready |= kReadable;
  if (ev & EPOLLOUT) ready |= kWritable;
  if (ev & EPOLLRDHUP) ready |= kHangup;
  if (ev & EPOLLPRI) ready |= kUrgentData;
  // Both directions are shut: read() returns 0 and send() fails at once, so report both.
  if (ev & EPOLLHUP) ready |= kHangup | kReadable | kWritable;
  if (ev & EPOLLERR) ready |= kError;
  return ready;
}

}  // namespace

Result<EpollReactor> EpollReactor::create(uint32_t batch, uint32_t, uint32_t) {
  const int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return Error{std::string("epoll_create1: ") + std::strerror(errno)};
  return EpollReactor(fd, batch);
}

EpollReactor::EpollReactor(int epfd, uint32_t batch)
    : epfd_(epfd),
      batch_(batch),
      raw_(std::make_unique<epoll_event[]>(batch)),
      events_(std::make_unique<Event[]>(batch)) {}

EpollReactor::EpollReactor(EpollReactor&& other) noexcept
    : epfd_(std::exchange(other.epfd_, -1)),
      batch_(other.batch_),
      raw_(std::move(other.raw_)),
      events_(std::move(other.events_)) {}

EpollReactor::~EpollReactor() {
  if (epfd_ >= 0) ::close(epfd_);
}

SysResult EpollReactor::add(int fd, uint64_t cookie, uint32_t interest) noexcept {
  return control(EPOLL_CTL_ADD, fd, cookie, to_epoll(interest));
}

SysResult EpollReactor::modify(int fd, uint64_t cookie, uint32_t interest) noexcept {
  return control(EPOLL_CTL_MOD, fd, cookie, to_epoll(interest));
}

SysResult EpollReactor::control(int op, int fd, uint64_t cookie, uint32_t events) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = cookie;
  return SysResult::from(epoll_ctl(epfd_, op, fd, &ev));
}

std::span<const Event> EpollReactor::wait(int timeout_ms) noexcept {
  const int n = epoll_wait(epfd_, raw_.get(), static_cast<int>(batch_), timeout_ms);
  if (n <= 0) return {};
  const auto count = static_cast<size_t>(n);
  for (size_t i = 0; i < count; ++i) {
    events_[i] = Event{raw_[i].data.u64, from_epoll(raw_[i].events)};
  }
  return {events_.get(), count};
}

void EpollReactor::remove(int fd) noexcept {
  // ENOENT (never added) and EBADF (already closed) leave nothing registered either.
  [[maybe_unused]] const int rc = epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
}

}  // namespace edgeproxy
