// The sd_notify protocol by hand; see service_notifier.h.
#include "edgeproxy/service_notifier.h"

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "edgeproxy/clock.h"
#include "edgeproxy/log.h"

namespace edgeproxy {
namespace {

// Copies `text` to out[used..] within kMaxMessageBytes; returns the new length.
size_t append(char* out, size_t used, std::string_view text) noexcept {
  const size_t room = NotifyClient::kMaxMessageBytes - used;
  const size_t n = text.size() < room ? text.size() : room;
  if (n > 0) std::memcpy(out + used, text.data(), n);  // an empty view's data() may be null
  return used + n;
}

}  // namespace

NotifyClient NotifyClient::from_environment() noexcept {
  return from_value(std::getenv("NOTIFY_SOCKET"));
}

NotifyClient NotifyClient::from_value(const char* value) noexcept {
  NotifyClient client;
  if (value == nullptr) return client;
  const size_t length = std::strlen(value);
  const bool abstract = value[0] == '@';
  // A path needs its terminating NUL inside sun_path; an abstract name is the bytes after a
  // leading NUL (which replaces '@') and has no terminator.
  const size_t capacity = sizeof client.address_.sun_path - (abstract ? 0 : 1);
  if ((value[0] != '/' && !(abstract && length > 1)) || length > capacity) {
    log_warn(
        "NOTIFY_SOCKET='%.200s' is not an absolute path or an @abstract name of at most %zu "
        "bytes: not notifying the service manager",
        value, capacity);
    return client;
  }
  client.address_.sun_family = AF_UNIX;
  std::memcpy(client.address_.sun_path, value, length);
  if (abstract) client.address_.sun_path[0] = '\0';
  client.address_length_ =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length + (abstract ? 0 : 1));
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    log_warn("NOTIFY_SOCKET='%s': socket: %s: not notifying the service manager", value,
             std::strerror(errno));
    return client;
  }
  client.fd_ = fd;
  client.name_ = value;
  return client;
}

NotifyClient::NotifyClient(NotifyClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      address_(other.address_),
      address_length_(other.address_length_),
      name_(std::move(other.name_)),
      send_failures_(other.send_failures_),
      warned_(other.warned_) {}

NotifyClient& NotifyClient::operator=(NotifyClient&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    address_ = other.address_;
    address_length_ = other.address_length_;
    name_ = std::move(other.name_);
    send_failures_ = other.send_failures_;
    warned_ = other.warned_;
  }
  return *this;
}

NotifyClient::~NotifyClient() {
  if (fd_ >= 0) ::close(fd_);
}

void NotifyClient::ready(std::string_view status) noexcept {
  send_with_status("READY=1", status);
}

void NotifyClient::reloading() noexcept {
  // CLOCK_MONOTONIC, as systemd compares it with its own reading when the reload was asked for.
  const int64_t usec = LoopTime::now().ns / 1000;
  char message[64];
  const int n = std::snprintf(message, sizeof message, "RELOADING=1\nMONOTONIC_USEC=%lld",
                              static_cast<long long>(usec));
  send(message, static_cast<size_t>(n));
}

void NotifyClient::stopping(std::string_view status) noexcept {
  send_with_status("STOPPING=1", status);
}

void NotifyClient::status(std::string_view line) noexcept {
  send_with_status({}, line);
}

void NotifyClient::send_with_status(std::string_view head, std::string_view status) noexcept {
  char message[kMaxMessageBytes];
  size_t used = append(message, 0, head);
  if (!status.empty()) {
    if (used > 0) used = append(message, used, "\n");
    used = append_status(message, used, status);
  }
  if (used > 0) send(message, used);  // status("") has nothing to say
}

size_t NotifyClient::append_status(char* out, size_t used, std::string_view line) noexcept {
  const size_t start = append(out, used, "STATUS=");
  const size_t end = append(out, start, line);
  for (size_t i = start; i < end; ++i) {
    const auto c = static_cast<unsigned char>(out[i]);
    if (c < 0x20 || c == 0x7f) out[i] = ' ';
  }
  return end;
}

void NotifyClient::send(const char* data, size_t size) noexcept {
  if (fd_ < 0) return;
  int err = 0;
  for (;;) {
    // MSG_DONTWAIT as well as O_NONBLOCK: a datagram to a receiver whose queue is full would
    // otherwise sleep until systemd reads, and the supervisor must never sleep on systemd.
    const ssize_t n = ::sendto(fd_, data, size, MSG_NOSIGNAL | MSG_DONTWAIT,
                               reinterpret_cast<const sockaddr*>(&address_), address_length_);
    if (n >= 0) return;
    err = errno;
    if (err != EINTR) break;
  }
  ++send_failures_;
  if (!warned_) {
    warned_ = true;
    log_warn(
        "notifying the service manager at NOTIFY_SOCKET='%s': %s (later failures are "
        "counted, not logged)",
        name_.c_str(), std::strerror(err));
  }
}

}  // namespace edgeproxy
