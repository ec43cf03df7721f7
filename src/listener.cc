// Listener set-up; see listener.h.
#include "edgeproxy/listener.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace edgeproxy {
namespace {

// Closes `fd` and says which call failed for `address`: one line.
Error fail(int fd, const SocketAddress& address, const char* what, int err) {
  sys::close(fd);
  return Error{"--listen " + address.to_string() + ": " + what + ": " + std::strerror(err)};
}

}  // namespace

Result<Listener> Listener::open(const SocketAddress& address, int backlog, bool reuse_port) {
  const SysResult s = sys::stream_socket(address.family());
  if (!s.ok()) return Error{"cannot create listening socket: " + std::string(std::strerror(s.err))};
  const int fd = static_cast<int>(s.value);
  const int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    return fail(fd, address, "SO_REUSEADDR", errno);
  }
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return fail(fd, address, "SO_REUSEPORT", errno);
  }
  // Without V6ONLY, "::" would also take the IPv4 port (net.ipv6.bindv6only is 0 by default).
  if (address.family() == AF_INET6 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    return fail(fd, address, "IPV6_V6ONLY", errno);
  }
  if (::bind(fd, address.get(), address.length) != 0) {
    const int err = errno;
    if (err == EADDRINUSE) {
      sys::close(fd);
      return Error{"--listen " + address.to_string() + ": address already in use"};
    }
    return fail(fd, address, "cannot bind", err);
  }
  if (::listen(fd, backlog) != 0) return fail(fd, address, "cannot listen", errno);
  SocketAddress bound;
  bound.length = sizeof bound.storage;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound.storage), &bound.length) != 0) {
    return fail(fd, address, "getsockname", errno);
  }
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
