// RoutingContext: what a connection keeps while its first bytes are inspected and then replayed
// to the upstream (decision 0009): the bytes themselves, in a region of their own, the PROXY
// header a load balancer sent and the one to send onward, and the state of the decision.
// RoutingArea: one context per connection slot for one topology version of one worker,
// allocated when the version is installed. Single-threaded: owned by one Worker.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "edgeproxy/mapped_array.h"
#include "edgeproxy/net.h"
#include "edgeproxy/proxy_header.h"

namespace edgeproxy {

struct RoutingContext {
  std::byte* region = nullptr;  // this slot's bytes (null when the version inspects nothing)
  uint32_t capacity = 0;        // of the region: the largest inspect-bytes plus one block
  uint32_t length = 0;          // bytes held, from the region's start
  uint32_t start = 0;           // the first byte after an accepted PROXY header
  uint32_t replayed = 0;        // the region's bytes up to here were handed to client.in
  uint32_t evaluated = 0;       // `length` when the rules last ran (they run on new bytes only)
  uint32_t http_scanned = 0;    // how far the HTTP head's end was looked for
  bool header_read = false;     // accept-proxy: the header was read (or none is expected)
  bool proxied = false;         // the header gave the client's addresses
  bool ended_seen = false;      // the rules ran once on bytes known to be final
  bool refilled = false;        // client.in holds bytes the replay put there
  bool hashed = false;          // a `hash` rule chose: retries stay on the ring
  bool preamble_built = false;
  uint8_t preamble_length = 0;
  uint8_t preamble_sent = 0;
  uint64_t hash = 0;
  SocketAddress source;       // accept-proxy: the client, as the header gave it
  SocketAddress destination;  // accept-proxy: the address the client connected to
  std::array<std::byte, proxy_header::kMaxBuiltBytes> preamble{};

  std::span<const std::byte> held() const noexcept { return {region + start, length - start}; }
  bool replay_done() const noexcept {
    return preamble_sent == preamble_length && replayed == length;
  }
};

class RoutingArea {
 public:
  // `slots` contexts, each with a region of `region_bytes` (0: contexts without regions, for a
  // version whose backends send PROXY headers but whose listeners inspect nothing). Both are
  // mapped (MappedArray): the kernel backs a slot's pages when it is first used, and takes them
  // all back with the version.
  RoutingArea(uint32_t slots, uint32_t region_bytes);

  // A fresh context for the connection now in slot `index`.
  RoutingContext& reset(uint32_t index) noexcept;
  RoutingContext& at(uint32_t index) noexcept { return contexts_[index]; }
  uint32_t region_bytes() const noexcept { return region_bytes_; }

 private:
  uint32_t region_bytes_;
  MappedArray<std::byte> regions_;
  MappedArray<RoutingContext> contexts_;
};

}  // namespace edgeproxy
