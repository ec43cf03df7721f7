// Address handling and syscall wrappers; see net.h.
#include "edgeproxy/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cstring>

namespace edgeproxy {

uint16_t SocketAddress::port() const noexcept {
  if (family() == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
}

std::string SocketAddress::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, text,
              sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(port());
  }
  inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, text, sizeof text);
  return std::string(text) + ":" + std::to_string(port());
}

Result<SocketAddress> resolve(const std::string& host, uint16_t port, const char* flag) {
  if (host.empty()) return Error{std::string(flag) + ": empty address"};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY || rc == EAI_FAMILY) {
    // AI_ADDRCONFIG hides ::1 on hosts whose only IPv6 address is loopback; literals must work.
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  }
  if (rc != 0) {
    return Error{std::string(flag) + ": cannot resolve '" + host + "': " + gai_strerror(rc)};
  }
  SocketAddress out;
  std::memcpy(&out.storage, found->ai_addr, found->ai_addrlen);
  out.length = found->ai_addrlen;
  freeaddrinfo(found);
  return out;
}

namespace sys {

SysResult read(int fd, void* data, size_t size) noexcept {
  for (;;) {
    const SysResult r = SysResult::from(::read(fd, data, size));
    if (r.err != EINTR) return r;
  }
}

SysResult send(int fd, const void* data, size_t size) noexcept {
  for (;;) {
    const SysResult r = SysResult::from(::send(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT));
    if (r.err != EINTR) return r;
  }
}

SysResult splice(int fd_in, int fd_out, size_t size) noexcept {
  for (;;) {
    const SysResult r = SysResult::from(
        ::splice(fd_in, nullptr, fd_out, nullptr, size, SPLICE_F_NONBLOCK | SPLICE_F_MOVE));
    if (r.err != EINTR) return r;
  }
}

SysResult accept(int listen_fd) noexcept {
  for (;;) {
    const SysResult r =
        SysResult::from(::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (r.err != EINTR) return r;
  }
}

bool accept_error_is_transient(int err) noexcept {
  return err == ECONNABORTED || err == EPROTO || err == EPERM || err == ENETDOWN ||
         err == ENOPROTOOPT || err == EHOSTDOWN || err == ENONET || err == EHOSTUNREACH ||
         err == EOPNOTSUPP || err == ENETUNREACH || err == ETIMEDOUT || err == EINTR;
}

SysResult stream_socket(int family) noexcept {
  return SysResult::from(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
}

SysResult connect(int fd, const SocketAddress& to) noexcept {
  // A non-blocking connect interrupted by a signal carries on in the background: EINTR means
  // "in progress", and retrying would give EALREADY.
  const SysResult r = SysResult::from(::connect(fd, to.get(), to.length));
  if (r.err == EINTR) return SysResult{-1, EINPROGRESS};
  return r;
}

SysResult shutdown_write(int fd) noexcept {
  return SysResult::from(::shutdown(fd, SHUT_WR));
}

int socket_error(int fd) noexcept {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

void set_no_delay(int fd, bool on) noexcept {
  const int v = on ? 1 : 0;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v);
}

void set_linger_zero(int fd) noexcept {
  const linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

void close(int fd) noexcept {
  // Linux releases the descriptor even when close() reports EINTR: never retry.
  ::close(fd);
}

}  // namespace sys
}  // namespace edgeproxy
