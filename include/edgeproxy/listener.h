// Listener: one bound, listening, non-blocking TCP socket. Owns its fd. The Worker accepts from
// it and pauses it (by interest, not by closing) when the slab or the fd table is full.
#pragma once

#include "edgeproxy/net.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

class Listener {
 public:
  // Binds exactly `address` (an IPv6 address gets IPV6_V6ONLY, so "::" is not also 0.0.0.0) with
  // SO_REUSEADDR, and listens with `backlog`. "address already in use" is reported as such.
  // `reuse_port` sets SO_REUSEPORT: the kernel then spreads new connections over every socket
  // bound to the same address by the same user (one per worker), by a hash of the 4-tuple.
  static Result<Listener> open(const SocketAddress& address, int backlog, bool reuse_port = false);

  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&& other) noexcept;
  Listener(const Listener&) = delete;
  ~Listener();

  int fd() const noexcept { return fd_; }
  // The bound address (the real port when 0 was asked for).
  const SocketAddress& address() const noexcept { return address_; }
  void close() noexcept;

  bool ready = false;   // the kernel reported pending connections not yet accepted
  bool paused = false;  // interest dropped: slab full or out of file descriptors

 private:
  Listener(int fd, const SocketAddress& address) noexcept : fd_(fd), address_(address) {}
  int fd_ = -1;
  SocketAddress address_;
};

}  // namespace edgeproxy
