// AuthThrottle: how long a client that keeps failing Basic authentication waits for its 407, by
// client address, in a fixed table a worker allocates at start. A guess per connection costs the
// attacker a round trip and the worker a SHA-256-crypt: the delay makes guessing slow without
// blocking the worker (the answer is held by a timer). Only this worker's thread uses it.
#pragma once

#include <cstdint>
#include <memory>

#include "edgeproxy/net.h"

namespace edgeproxy {

class AuthThrottle {
 public:
  // Failures a client may have before its answers are delayed, the first delay, its cap, and how
  // long after its last failure a client is forgotten.
  static constexpr uint32_t kFreeFailures = 3;
  static constexpr uint32_t kFirstDelayMs = 250;
  static constexpr uint32_t kMaxDelayMs = 4000;
  static constexpr int64_t kForgetMs = 60'000;

  // `entries` is rounded up to a power of two. A full table overwrites the slot an address hashes
  // to (a direct-mapped table): a collision can only shorten another client's delay.
  explicit AuthThrottle(uint32_t entries);

  // The delay before answering the failure just made by `client` (recorded here).
  uint32_t on_failure(const SocketAddress& client, int64_t now_ms) noexcept;
  // A success forgets the client's failures.
  void on_success(const SocketAddress& client) noexcept;
  // No client has failures recorded (a success needs no lookup then).
  bool empty() const noexcept { return recorded_ == 0; }

 private:
  struct Entry {
    uint64_t key = 0;  // 0: empty
    uint32_t failures = 0;
    int64_t last_ms = 0;
  };
  Entry& slot(uint64_t key) noexcept { return table_[key & mask_]; }
  static uint64_t key_of(const SocketAddress& client) noexcept;

  std::unique_ptr<Entry[]> table_;
  uint64_t mask_;
  uint32_t recorded_ = 0;  // entries holding a client
};

}  // namespace edgeproxy
