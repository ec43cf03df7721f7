// Event: the normalized unit every backend hands the Worker: which object (cookie.h) and what
// happened. Readiness backends (epoll) fill `ready`; completion backends (io_uring) also carry the
// operation's result and flags, which only their own Transport interprets. Interest bits say what
// the core wants to be told about.
#pragma once

#include <cstdint>

namespace edgeproxy {

enum Ready : uint32_t {
  kReadable = 1 << 0,
  kWritable = 1 << 1,
  kHangup = 1 << 2,    // the peer shut its write side (EPOLLRDHUP) or the socket hung up (EPOLLHUP)
  kError = 1 << 3,     // the socket has a pending error (EPOLLERR)
  kAccepted = 1 << 4,  // a listener event that already carries an accepted fd (or -errno) in result
  kUrgentData = 1 << 5,  // urgent (out-of-band) data is pending in the socket (EPOLLPRI/POLLPRI)
};

enum Interest : uint32_t {
  kWantRead = 1 << 0,
  kWantWrite = 1 << 1,
};

struct Event {
  uint64_t cookie;
  uint32_t ready;      // Ready bits
  int32_t result = 0;  // completion backends: bytes, an fd, or -errno
  uint32_t flags = 0;  // completion backends: backend-specific completion flags
  uint32_t op = 0;     // completion backends: which operation completed (backend-defined)
};

}  // namespace edgeproxy
