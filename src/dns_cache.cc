// The per-worker positive DNS cache; see dns_cache.h.
#include "edgeproxy/dns_cache.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <ctime>

#include "edgeproxy/check.h"
#include "edgeproxy/random_seed.h"

namespace edgeproxy {

namespace {

char lower(char c) noexcept {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

}  // namespace

DnsCache::DnsCache(uint32_t entries, int64_t ttl_ms) : capacity_(entries), ttl_ms_(ttl_ms) {
  EDGEPROXY_CHECK(entries <= kMaxEntries);
  if (!enabled()) return;
  uint32_t buckets = 1;
  while (buckets < entries) buckets <<= 1;
  bucket_mask_ = buckets - 1;
  entries_ = std::make_unique<Entry[]>(entries);
  buckets_ = std::make_unique<uint32_t[]>(buckets);
  seed_ = random_seed(this);
  clear();
}

void DnsCache::clear() noexcept {
  if (!enabled()) return;
  for (uint32_t b = 0; b <= bucket_mask_; ++b) buckets_[b] = kNone;
  for (uint32_t i = 0; i < capacity_; ++i) {
    entries_[i].chain_next = i + 1 < capacity_ ? i + 1 : kNone;
    entries_[i].lru_prev = kNone;
    entries_[i].lru_next = kNone;
  }
  free_ = 0;
  lru_head_ = kNone;
  lru_tail_ = kNone;
  size_ = 0;
}

bool DnsCache::make_key(std::string_view host, uint16_t port, char* key,
                        uint64_t& hash) const noexcept {
  if (host.empty() || host.size() > kMaxHostBytes) return false;
  // FNV-1a from a per-cache seed, over the lower-case name, then the port.
  uint64_t h = 0xcbf29ce484222325u ^ seed_;
  for (size_t i = 0; i < host.size(); ++i) {
    key[i] = lower(host[i]);
    h = (h ^ static_cast<uint8_t>(key[i])) * 0x100000001b3u;
  }
  h = (h ^ (port & 0xffu)) * 0x100000001b3u;
  h = (h ^ (port >> 8)) * 0x100000001b3u;
  hash = h;
  return true;
}

uint32_t DnsCache::find(const char* key, size_t bytes, uint16_t port,
                        uint64_t hash) const noexcept {
  for (uint32_t i = buckets_[hash & bucket_mask_]; i != kNone; i = entries_[i].chain_next) {
    const Entry& e = entries_[i];
    if (e.hash == hash && e.port == port && e.host_bytes == bytes &&
        std::memcmp(e.host, key, bytes) == 0) {
      return i;
    }
  }
  return kNone;
}

void DnsCache::lru_remove(uint32_t index) noexcept {
  Entry& e = entries_[index];
  if (e.lru_prev != kNone) {
    entries_[e.lru_prev].lru_next = e.lru_next;
  } else {
    lru_head_ = e.lru_next;
  }
  if (e.lru_next != kNone) {
    entries_[e.lru_next].lru_prev = e.lru_prev;
  } else {
    lru_tail_ = e.lru_prev;
  }
  e.lru_prev = kNone;
  e.lru_next = kNone;
}

void DnsCache::lru_push_front(uint32_t index) noexcept {
  Entry& e = entries_[index];
  e.lru_prev = kNone;
  e.lru_next = lru_head_;
  if (lru_head_ != kNone) entries_[lru_head_].lru_prev = index;
  lru_head_ = index;
  if (lru_tail_ == kNone) lru_tail_ = index;
}

void DnsCache::unlink(uint32_t index) noexcept {
  Entry& e = entries_[index];
  uint32_t* link = &buckets_[e.hash & bucket_mask_];
  while (*link != index) {
    EDGEPROXY_CHECK(*link != kNone);
    link = &entries_[*link].chain_next;
  }
  *link = e.chain_next;
  lru_remove(index);
  e.chain_next = free_;
  free_ = index;
  --size_;
}

std::span<const SocketAddress> DnsCache::lookup(std::string_view host, uint16_t port,
                                                int64_t now_ms) noexcept {
  char key[kMaxHostBytes];
  uint64_t hash = 0;
  if (!enabled() || !make_key(host, port, key, hash)) return {};
  const uint32_t i = find(key, host.size(), port, hash);
  if (i == kNone) return {};
  Entry& e = entries_[i];
  if (now_ms >= e.expires_ms) {
    unlink(i);
    return {};
  }
  lru_remove(i);
  lru_push_front(i);
  return {e.addresses, e.count};
}

void DnsCache::insert(std::string_view host, uint16_t port,
                      std::span<const SocketAddress> addresses, int64_t now_ms) noexcept {
  char key[kMaxHostBytes];
  uint64_t hash = 0;
  if (!enabled() || addresses.empty() || !make_key(host, port, key, hash)) return;
  uint32_t i = find(key, host.size(), port, hash);
  if (i == kNone) {
    if (free_ == kNone) unlink(lru_tail_);
    i = free_;
    Entry& e = entries_[i];
    free_ = e.chain_next;
    e.hash = hash;
    e.port = port;
    e.host_bytes = static_cast<uint8_t>(host.size());
    std::memcpy(e.host, key, host.size());
    uint32_t& head = buckets_[hash & bucket_mask_];
    e.chain_next = head;
    head = i;
    ++size_;
  } else {
    lru_remove(i);
  }
  Entry& e = entries_[i];
  e.count = 0;
  for (const SocketAddress& a :
       addresses.first(std::min<size_t>(addresses.size(), kMaxResolvedAddresses))) {
    e.addresses[e.count++] = a;
  }
  e.expires_ms = now_ms > INT64_MAX - ttl_ms_ ? INT64_MAX : now_ms + ttl_ms_;
  lru_push_front(i);
}

}  // namespace edgeproxy
