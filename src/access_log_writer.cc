// The access-log writer thread; see access_log_writer.h.
#include "edgeproxy/access_log_writer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "edgeproxy/log.h"
#include "edgeproxy/net.h"

namespace edgeproxy {
namespace {

constexpr int kDrainEveryMs = 100;
constexpr int kStuckWriteMs = 1000;  // a destination that takes nothing this long loses lines

uint64_t count_lines(const char* p, uint32_t n) noexcept {
  uint64_t lines = 0;
  for (uint32_t i = 0; i < n; ++i) lines += p[i] == '\n' ? 1 : 0;
  return lines;
}

}  // namespace

Result<AccessLogWriter::Target> AccessLogWriter::open_target(const std::string& destination) {
  Target t;
  if (destination.empty() || destination == "off") return t;
  if (destination == "stderr" || destination == "stdout") {
    t.fd = destination == "stderr" ? STDERR_FILENO : STDOUT_FILENO;
  } else {
    // O_NONBLOCK: a FIFO without a reader fails here (ENXIO) instead of blocking the thread that
    // opens it (the supervisor at start and reload); on a regular file it changes nothing.
    t.fd =
        ::open(destination.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
    if (t.fd < 0) {
      return Error{"access-log " + destination + ": " + std::strerror(errno)};
    }
    t.owned = true;
    t.path = destination;
  }
  struct stat st {};
  t.regular = fstat(t.fd, &st) == 0 && S_ISREG(st.st_mode);
  return t;
}

Result<std::unique_ptr<AccessLogWriter>> AccessLogWriter::start(uint32_t workers,
                                                                const std::string& destination) {
  auto target = open_target(destination);
  if (!target.ok()) return Error{target.error()};
  const int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    if (target.value().owned) sys::close(target.value().fd);
    return Error{std::string("eventfd: ") + std::strerror(errno)};
  }
  std::unique_ptr<AccessLogWriter> w(new AccessLogWriter(wake));
  w->target_ = std::move(target.value());
  for (uint32_t i = 0; i < workers; ++i) w->rings_.push_back(std::make_unique<AccessLog>(wake));
  w->chunk_.reset(new char[kChunkBytes]);
  const int rc = pthread_create(&w->thread_, nullptr, &AccessLogWriter::thread_main, w.get());
  if (rc != 0)
    return Error{std::string("cannot start the access-log thread: ") + std::strerror(rc)};
  w->joinable_ = true;
  return w;
}

AccessLogWriter::~AccessLogWriter() {
  stop();
  if (target_.owned) sys::close(target_.fd);
  if (has_pending_ && pending_.owned) sys::close(pending_.fd);
  sys::close(wake_fd_);
}

Result<Ok> AccessLogWriter::set_destination(const std::string& destination) {
  auto next = open_target(destination);
  if (!next.ok()) return Error{next.error()};
  {
    std::lock_guard lock(mutex_);
    if (has_pending_ && pending_.owned) sys::close(pending_.fd);
    pending_ = std::move(next.value());
    has_pending_ = true;
  }
  wake();
  return Ok{};
}

void AccessLogWriter::request_reopen() noexcept {
  reopen_.store(true, std::memory_order_release);
  wake();
}

void AccessLogWriter::stop() noexcept {
  if (!joinable_) return;
  stop_.store(true, std::memory_order_release);
  wake();
  pthread_join(thread_, nullptr);
  joinable_ = false;
}

void AccessLogWriter::wake() noexcept {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void* AccessLogWriter::thread_main(void* arg) noexcept {
  pthread_setname_np(pthread_self(), "edgeproxy-log");
  static_cast<AccessLogWriter*>(arg)->run();
  return nullptr;
}

void AccessLogWriter::run() noexcept {
  for (;;) {
    // Off: nothing is appended, and a reload's destination or a stop wakes the thread.
    pollfd p{wake_fd_, POLLIN, 0};
    if (poll(&p, 1, target_.fd < 0 ? -1 : kDrainEveryMs) > 0) {
      uint64_t count = 0;
      [[maybe_unused]] const ssize_t n = ::read(wake_fd_, &count, sizeof count);
    }
    // Read before draining: every line appended before stop() was asked is in the rings now.
    const bool stopping = stop_.load(std::memory_order_acquire);
    drain();
    {
      std::unique_lock lock(mutex_);
      if (has_pending_) {
        Target next = std::move(pending_);
        has_pending_ = false;
        lock.unlock();
        replace_target(std::move(next));
      }
    }
    if (reopen_.exchange(false, std::memory_order_acq_rel) && target_.owned) {
      auto next = open_target(target_.path);
      if (next.ok()) {
        replace_target(std::move(next.value()));
      } else {
        log_error("%s (SIGUSR2: the old file stays open)", next.error().c_str());
      }
    }
    if (stopping) return;
  }
}

void AccessLogWriter::replace_target(Target next) noexcept {
  if (target_.owned) sys::close(target_.fd);
  target_ = std::move(next);
}

void AccessLogWriter::drain() noexcept {
  const uint32_t cap = target_.regular ? kChunkBytes : PIPE_BUF;
  for (const auto& ring : rings_) {
    for (;;) {
      const uint32_t n = ring->take(chunk_.get(), cap);
      if (n == 0) break;
      if (target_.fd < 0) {
        // Turned off by a reload before every worker installed it: what they wrote meanwhile
        // is let go, and counted as dropped.
        ring->count_lost(count_lines(chunk_.get(), n));
        continue;
      }
      const uint32_t written = write_all(chunk_.get(), n);
      // A line cut by a failed write counts as lost: its end never reached the destination.
      if (written < n) ring->count_lost(count_lines(chunk_.get() + written, n - written));
    }
  }
}

uint32_t AccessLogWriter::write_all(const char* out, uint32_t n) noexcept {
  uint32_t done = 0;
  while (done < n) {
    // Not a regular file (a pipe to a stalled reader, a terminal): a write may block, and the
    // exit joins this thread. Wait for room at most kStuckWriteMs, then count the rest as lost.
    if (!target_.regular) {
      pollfd p{target_.fd, POLLOUT, 0};
      if (poll(&p, 1, kStuckWriteMs) <= 0) break;
    }
    const ssize_t w = ::write(target_.fd, out + done, n - done);
    if (w > 0) {
      done += static_cast<uint32_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) {  // a non-blocking stdout or stderr someone else opened
      pollfd p{target_.fd, POLLOUT, 0};
      if (poll(&p, 1, kStuckWriteMs) > 0) continue;
    }
    break;
  }
  return done;
}

}  // namespace edgeproxy
