// Listener set-up; see listener.h.
#include "edgeproxy/listener.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace edgeproxy {
namespace {

// Closes `fd` and says which call failed for `address`: one line.
Error fail(int fd, const std::string& what, const SocketAddress& address, const char* call,
           int err) {
  sys::close(fd);
  return Error{what + " " + address.to_string() + ": " + call + ": " + std::strerror(err)};
}

// A Unix socket file whose listener is gone refuses connects (ECONNREFUSED): only then may it
// be removed. A file something still listens on, or that is not a socket, is left alone.
void remove_stale_unix_socket(const SocketAddress& address) {
  const auto* un = reinterpret_cast<const sockaddr_un*>(&address.storage);
  struct stat st {};
  if (::lstat(un->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  const SysResult s = sys::stream_socket(AF_UNIX);
  if (!s.ok()) return;
  const int fd = static_cast<int>(s.value);
  const SysResult r = sys::connect(fd, address);
  sys::close(fd);
  if (!r.ok() && r.err == ECONNREFUSED) ::unlink(un->sun_path);
}

}  // namespace

Result<Listener> Listener::open(const SocketAddress& address, int backlog, bool reuse_port,
                                uint32_t unix_mode, const std::string& what) {
  const bool unix_socket = address.family() == AF_UNIX;
  if (unix_socket) remove_stale_unix_socket(address);
  const SysResult s = sys::stream_socket(address.family());
  if (!s.ok()) return Error{"cannot create listening socket: " + std::string(std::strerror(s.err))};
  const int fd = static_cast<int>(s.value);
  const int one = 1;
  if (!unix_socket) {
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
      return fail(fd, what, address, "SO_REUSEADDR", errno);
    }
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      return fail(fd, what, address, "SO_REUSEPORT", errno);
    }
    // Without V6ONLY, "::" would also take the IPv4 port (net.ipv6.bindv6only is 0 by default).
    if (address.family() == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
      return fail(fd, what, address, "IPV6_V6ONLY", errno);
    }
  }
  if (::bind(fd, address.get(), address.length) != 0) {
    const int err = errno;
    if (err == EADDRINUSE) {
      sys::close(fd);
      return Error{what + " " + address.to_string() + ": address already in use"};
    }
    return fail(fd, what, address, "cannot bind", err);
  }
  if (unix_socket && unix_mode != 0) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&address.storage);
    if (::chmod(un->sun_path, static_cast<mode_t>(unix_mode)) != 0) {
      const int err = errno;
      ::unlink(un->sun_path);
      return fail(fd, what, address, "chmod", err);
    }
  }
  if (::listen(fd, backlog) != 0) return fail(fd, what, address, "cannot listen", errno);
  auto adopted = adopt(fd);
  if (!adopted.ok()) return Error{what + " " + address.to_string() + ": " + adopted.error()};
  return adopted;
}

Result<Listener> Listener::adopt(int fd) {
  SocketAddress bound;
  bound.length = sizeof bound.storage;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound.storage), &bound.length) != 0) {
    const int err = errno;
    sys::close(fd);
    return Error{std::string("getsockname: ") + std::strerror(err)};
  }
  return Listener(fd, bound);
}

Listener::Listener(Listener&& other) noexcept
    : paused(other.paused),
      listener(other.listener),
      bind(other.bind),
      generation(other.generation),
      no_delay(other.no_delay),
      quick_ack_off(other.quick_ack_off),
      defer_accept_s(other.defer_accept_s),
      name(std::move(other.name)),
      configured(other.configured),
      fd_(std::exchange(other.fd_, -1)),
      address_(other.address_) {}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    address_ = other.address_;
    paused = other.paused;
    listener = other.listener;
    bind = other.bind;
    generation = other.generation;
    no_delay = other.no_delay;
    quick_ack_off = other.quick_ack_off;
    defer_accept_s = other.defer_accept_s;
    name = std::move(other.name);
    configured = other.configured;
  }
  return *this;
}

Listener::~Listener() {
  close();
}

int Listener::release() noexcept {
  return std::exchange(fd_, -1);
}

void Listener::close() noexcept {
  if (fd_ >= 0) sys::close(std::exchange(fd_, -1));
}

}  // namespace edgeproxy
