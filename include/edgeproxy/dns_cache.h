// DnsCache: one worker's cache of successful resolutions, (host name, port) -> addresses, so a
// busy destination costs a resolver round trip once per TTL, not once per connection. A fixed
// table allocated by the constructor: lookups and inserts never allocate, and the least recently
// used entry makes room for a new one. Positive answers only: a failed lookup is not cached.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "edgeproxy/net.h"
#include "edgeproxy/resolver.h"

namespace edgeproxy {

// Not thread-safe: one cache per worker, used on the worker's thread only.
//
// Keys: the host name compared case-insensitively (ASCII, as DNS does: RFC 4343), byte for byte
// otherwise ("example.com." and "example.com" are two names: the trailing dot changes how the
// resolver searches), and the port. The family hint is not part of the key: cache the answers
// of one hint (AF_UNSPEC) only, or keep one cache per hint.
//
// Expiry: getaddrinfo does not report DNS TTLs, so every entry lives ttl_ms from its insert
// (a hit does not extend it). Times are the caller's monotonic milliseconds (LoopTime::ms).
//
// Replacement: an insert into a full table evicts the least recently used entry (a hit counts as
// a use); an expired entry is dropped when a lookup finds it, or reused in LRU order. Entries
// sit in hash chains seeded per cache, so a flood of colliding names cannot be precomputed, and
// a chain is never longer than the table: a lookup's cost is bounded whatever the names.
class DnsCache {
 public:
  static constexpr uint32_t kDefaultEntries = 256;
  static constexpr uint32_t kMaxEntries = 65536;

  // Allocates `entries` entries (about 1.4 KiB each) and the hash buckets. entries == 0 or
  // ttl_ms <= 0 makes a disabled cache: every lookup misses and insert stores nothing. More
  // than kMaxEntries aborts (the configuration refuses it first).
  DnsCache(uint32_t entries, int64_t ttl_ms);
  DnsCache(const DnsCache&) = delete;
  DnsCache& operator=(const DnsCache&) = delete;

  bool enabled() const noexcept { return capacity_ > 0 && ttl_ms_ > 0; }
  uint32_t capacity() const noexcept { return capacity_; }
  int64_t ttl_ms() const noexcept { return ttl_ms_; }
  // Entries stored, expired ones not yet dropped included.
  uint32_t size() const noexcept { return size_; }

  // The addresses stored for (host, port), when inserted less than ttl_ms before now_ms; empty
  // on a miss (unknown, expired, host empty or longer than kMaxHostBytes, cache disabled). A hit
  // makes the entry the most recently used; an expired entry found is dropped. The span points
  // into the cache: valid until the next insert() or clear().
  std::span<const SocketAddress> lookup(std::string_view host, uint16_t port,
                                        int64_t now_ms) noexcept;

  // Stores the first kMaxResolvedAddresses of `addresses` (as given: the resolver has set their
  // port) for (host, port), expiring at now_ms + ttl_ms, replacing what the key held. Ignored
  // when the cache is disabled, `addresses` is empty, or the host is empty or longer than
  // kMaxHostBytes.
  void insert(std::string_view host, uint16_t port, std::span<const SocketAddress> addresses,
              int64_t now_ms) noexcept;

  // Forgets every entry (e.g. after a configuration reload). O(entries).
  void clear() noexcept;

 private:
  static constexpr uint32_t kNone = UINT32_MAX;

  struct Entry {
    uint64_t hash = 0;
    int64_t expires_ms = 0;
    uint32_t chain_next = kNone;  // next in the bucket's chain, or in the free list
    uint32_t lru_prev = kNone;    // towards the most recently used
    uint32_t lru_next = kNone;    // towards the least recently used
    uint16_t port = 0;
    uint8_t host_bytes = 0;
    uint8_t count = 0;
    char host[kMaxHostBytes] = {};  // lower case, not NUL-terminated
    SocketAddress addresses[kMaxResolvedAddresses];
  };

  // The key in lower case into `key`, and its hash; false for a host no entry can hold.
  bool make_key(std::string_view host, uint16_t port, char* key, uint64_t& hash) const noexcept;
  uint32_t find(const char* key, size_t bytes, uint16_t port, uint64_t hash) const noexcept;
  void unlink(uint32_t index) noexcept;  // from its chain and the LRU list, onto the free list
  void lru_push_front(uint32_t index) noexcept;
  void lru_remove(uint32_t index) noexcept;

  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<uint32_t[]> buckets_;  // chain heads
  uint32_t capacity_;
  uint32_t bucket_mask_ = 0;
  int64_t ttl_ms_;
  uint64_t seed_ = 0;
  uint32_t size_ = 0;
  uint32_t free_ = kNone;      // free list through chain_next
  uint32_t lru_head_ = kNone;  // most recently used
  uint32_t lru_tail_ = kNone;  // least recently used: evicted first
};

}  // namespace edgeproxy
