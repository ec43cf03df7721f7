// Listener: one bound, listening, non-blocking stream socket (TCP or Unix). Owns its fd. The
// supervisor opens listeners (open()) and hands their descriptors to workers; a worker adopts
// one per bind (adopt()), accepts from it and pauses it (by interest, not by closing) when the
// slab or the fd table is full.
#pragma once

#include <cstdint>
#include <string>

#include "edgeproxy/net.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

class Listener {
 public:
  // Binds exactly `address` and listens with `backlog`. TCP: SO_REUSEADDR, an IPv6 address gets
  // IPV6_V6ONLY (so "::" is not also 0.0.0.0), and `reuse_port` sets SO_REUSEPORT: the kernel
  // then spreads new connections over every socket bound to the same address by the same user
  // (one per worker), by a hash of the 4-tuple. Unix: a socket file left by an earlier process is
  // removed only when nothing listens on it (a connect is refused), and `unix_mode` (when not 0)
  // is applied to the new file. "address already in use" is reported as such; `what` names the
  // address in messages ("--listen", or "listener web").
  static Result<Listener> open(const SocketAddress& address, int backlog, bool reuse_port = false,
                               uint32_t unix_mode = 0, const std::string& what = "--listen");
  // Takes ownership of a listening socket opened elsewhere (by the supervisor, or passed by
  // systemd); reads its bound address. Error: one line, and the fd is closed.
  static Result<Listener> adopt(int fd);

  Listener() = default;
  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&& other) noexcept;
  Listener(const Listener&) = delete;
  ~Listener();

  int fd() const noexcept { return fd_; }
  // Gives up ownership of the fd without closing it (-1 afterwards).
  int release() noexcept;
  // The bound address (the real port when 0 was asked for).
  const SocketAddress& address() const noexcept { return address_; }
  void close() noexcept;

  bool paused = false;  // interest dropped: slab full or out of file descriptors
  // A worker's bookkeeping: which listener and bind of the installed topology this socket
  // serves, and the key that a reload matches it by (listener name and configured address).
  uint32_t listener = 0;
  uint32_t bind = 0;
  uint32_t generation = 0;  // bumped when the worker reuses the slot for another socket
  // TCP_NODELAY is set on the listening socket, so accepted sockets have it already.
  bool no_delay = false;
  // What this process set on the socket (decision 0017): TCP_QUICKACK off, TCP_DEFER_ACCEPT
  // seconds. A socket the configuration leaves alone keeps what it came with (a systemd socket
  // unit's DeferAcceptSec=), unless this process set it before.
  bool quick_ack_off = false;
  uint32_t defer_accept_s = 0;
  std::string name;
  SocketAddress configured;

 private:
  Listener(int fd, const SocketAddress& address) noexcept : fd_(fd), address_(address) {}
  int fd_ = -1;
  SocketAddress address_;
};

}  // namespace edgeproxy
