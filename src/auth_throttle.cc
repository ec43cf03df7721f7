// Failed-authentication delays by client address; see auth_throttle.h.
#include "edgeproxy/auth_throttle.h"

#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace edgeproxy {

AuthThrottle::AuthThrottle(uint32_t entries)
    : table_(std::make_unique<Entry[]>(std::bit_ceil(std::max(entries, 1u)))),
      mask_(std::bit_ceil(std::max(entries, 1u)) - 1) {}

uint64_t AuthThrottle::key_of(const SocketAddress& client) noexcept {
  // FNV-1a over the address bytes (not the port: a new connection has a new port).
  const auto* sa = reinterpret_cast<const sockaddr*>(&client.storage);
  const uint8_t* p = nullptr;
  size_t n = 0;
  if (sa->sa_family == AF_INET) {
    p = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in*>(&client.storage)->sin_addr);
    n = 4;
  } else if (sa->sa_family == AF_INET6) {
    p = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in6*>(&client.storage)->sin6_addr);
    n = 16;
  }
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h | 1;  // never 0, the empty key
}

uint32_t AuthThrottle::on_failure(const SocketAddress& client, int64_t now_ms) noexcept {
  const uint64_t key = key_of(client);
  Entry& e = slot(key);
  if (e.key == 0) ++recorded_;
  if (e.key != key || now_ms - e.last_ms > kForgetMs) e = Entry{key, 0, now_ms};
  e.failures = std::min<uint32_t>(e.failures + 1, 64);
  e.last_ms = now_ms;
  if (e.failures <= kFreeFailures) return 0;
  const uint32_t shift = std::min<uint32_t>(e.failures - kFreeFailures - 1, 8);
  return std::min(kMaxDelayMs, kFirstDelayMs << shift);
}

void AuthThrottle::on_success(const SocketAddress& client) noexcept {
  const uint64_t key = key_of(client);
  Entry& e = slot(key);
  if (e.key == key) {
    e = Entry{};
    --recorded_;
  }
}

}  // namespace edgeproxy
