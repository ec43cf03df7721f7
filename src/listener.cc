// Listener set-up; see listener.h.
#include "edgeproxy/listener.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <utility>

namespace edgeproxy {

Result<Listener> Listener::open(const SocketAddress& address, int backlog, bool reuse_port) {
  const SysResult s = sys::stream_socket(address.family());
  if (!s.ok()) return Error{"cannot create listening socket: " + std::string(std::strerror(s.err))};
  const int fd = static_cast<int>(s.value);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    const int err = errno;
    sys::close(fd);
    return Error{"--listen " + address.to_string() + ": SO_REUSEPORT: " + std::strerror(err)};
  }
  if (address.family() == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, address.get(), address.length) != 0) {
    const int err = errno;
    sys::close(fd);
    if (err == EADDRINUSE)
      return Error{"--listen " + address.to_string() + ": address already in use"};
    return Error{"--listen " + address.to_string() + ": cannot bind: " + std::strerror(err)};
  }
  if (::listen(fd, backlog) != 0) {
    const int err = errno;
    sys::close(fd);
    return Error{"--listen " + address.to_string() + ": cannot listen: " + std::strerror(err)};
  }
  SocketAddress bound;
  bound.length = sizeof bound.storage;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound.storage), &bound.length);
  return Listener(fd, bound);
}

Listener::Listener(Listener&& other) noexcept
    : ready(other.ready),
      paused(other.paused),
      fd_(std::exchange(other.fd_, -1)),
      address_(other.address_) {}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    address_ = other.address_;
    ready = other.ready;
    paused = other.paused;
  }
  return *this;
}

Listener::~Listener() {
  close();
}

void Listener::close() noexcept {
  if (fd_ >= 0) sys::close(std::exchange(fd_, -1));
  ready = false;
}

}  // namespace edgeproxy
