// Loopback TCP helpers for the io_uring tests: listeners on 127.0.0.1, connected pairs, and
// bounded non-blocking peer I/O. Every wait here has a time limit; nothing blocks forever.
#pragma once

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "edgeproxy/net.h"

namespace edgeproxy::loopback {

// A TCP socket bound to 127.0.0.1 on a kernel-chosen port; `address` receives it. Listens with
// `backlog` unless backlog < 0 (bound only: a connect to it is refused). -1 on failure.
inline int Bind(int backlog, SocketAddress& address, bool nonblocking = false) {
  const int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
  const int fd = ::socket(AF_INET, type, 0);
  if (fd < 0) return -1;
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = 0;
  address = SocketAddress{};
  address.length = sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&sin), sizeof sin) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address.storage), &address.length) != 0 ||
      (backlog >= 0 && ::listen(fd, backlog) != 0)) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A client socket connected to `to`. Blocking connect: on loopback the handshake completes into
// the listener's backlog at once. -1 on failure.
inline int ConnectTo(const SocketAddress& to) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, to.get(), to.length) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Waits up to timeout_ms for a queued connection and accepts it non-blocking, as the Worker does.
inline int AcceptOne(int listen_fd, int timeout_ms = 2000) {
  pollfd p{listen_fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return -1;
  return ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

// Sends what the socket takes now without blocking; returns the byte count (0 when full).
inline size_t SendSome(int fd, const char* data, size_t size) {
  const ssize_t n = ::send(fd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

// Appends what is readable now to `out`. Returns false once the peer's EOF was read.
inline bool RecvSome(int fd, std::string& out) {
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return true;
    out.append(chunk, static_cast<size_t>(n));
  }
}

inline void SetBufferSizes(int fd, int send_bytes, int recv_bytes) {
  if (send_bytes > 0) ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_bytes, sizeof send_bytes);
  if (recv_bytes > 0) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &recv_bytes, sizeof recv_bytes);
}

// Closes with a reset (SO_LINGER 0) instead of a FIN.
inline void Reset(int& fd) {
  sys::set_linger_zero(fd);
  ::close(fd);
  fd = -1;
}

inline void Close(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace edgeproxy::loopback
