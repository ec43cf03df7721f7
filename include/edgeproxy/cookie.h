// Cookie: the 64-bit value the kernel carries back with an event (epoll_data.u64), naming what the
// event is for. Layout: tag (8 bits) | generation (24 bits) | index (32 bits).
#pragma once

#include <cstdint>

#include "edgeproxy/slab.h"

namespace edgeproxy {

enum class CookieTag : uint8_t {
  kListener = 1,  // index = listener number
  kControl = 2,   // the worker's WorkerControl eventfd
  kClient = 3,    // index/generation = connection handle, client side
  kUpstream = 4,  // index/generation = connection handle, upstream side
  // epoll: a pooled server socket, registered once for its life (decision 0020); index = its
  // descriptor, generation = that descriptor number's registration (EpollTransport).
  kServer = 5,
};

struct Cookie {
  CookieTag tag;
  Handle handle;

  static constexpr uint64_t pack(CookieTag tag, Handle h) noexcept {
    return (uint64_t{static_cast<uint8_t>(tag)} << 56) |
           (uint64_t{h.generation & kGenerationMask} << 32) | h.index;
  }
  static constexpr Cookie unpack(uint64_t v) noexcept {
    return Cookie{
        static_cast<CookieTag>(v >> 56),
        Handle{static_cast<uint32_t>(v), static_cast<uint32_t>(v >> 32) & kGenerationMask}};
  }
};

}  // namespace edgeproxy
