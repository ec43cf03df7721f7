// Event: the normalized unit every backend hands the Worker: which object (cookie.h) and what
// happened, in backend-independent bits. Interest bits say what the core wants to be told about.
#pragma once

#include <cstdint>

namespace edgeproxy {

enum Ready : uint32_t {
  kReadable = 1 << 0,
  kWritable = 1 << 1,
  kHangup = 1 << 2,  // the peer shut its write side (EPOLLRDHUP) or the socket hung up (EPOLLHUP)
  kError = 1 << 3,   // the socket has a pending error (EPOLLERR)
};

enum Interest : uint32_t {
  kWantRead = 1 << 0,
  kWantWrite = 1 << 1,
};

struct Event {
  uint64_t cookie;
  uint32_t ready;  // Ready bits
};

}  // namespace edgeproxy
