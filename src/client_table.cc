// Per-client admission shared by the workers; see client_table.h.
#include "edgeproxy/client_table.h"

#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <thread>

#include "edgeproxy/check.h"

namespace edgeproxy {

// Eight entries as parallel arrays: the hashes compared by a lookup share one cache line.
struct alignas(64) ClientTable::Bucket {
  uint64_t hash[kWays] = {};  // the client's keyed hash, never 0; 0: never used
  std::atomic<bool> locked{false};
  uint32_t count[kWays] = {};  // open connections
  TokenBucket rate[kWays];     // new connections
};

namespace {

// SipHash-2-4 (Aumasson and Bernstein) of a 16-byte message, as two little-endian words.
class SipHash {
 public:
  SipHash(uint64_t k0, uint64_t k1) noexcept
      : v0_(k0 ^ 0x736f6d6570736575ull),
        v1_(k1 ^ 0x646f72616e646f6dull),
        v2_(k0 ^ 0x6c7967656e657261ull),
        v3_(k1 ^ 0x7465646279746573ull) {}

  uint64_t hash16(uint64_t m0, uint64_t m1) noexcept {
    absorb(m0);
    absorb(m1);
    absorb(uint64_t{16} << 56);  // the length byte, no tail
    v2_ ^= 0xff;
    for (int i = 0; i < 4; ++i) round();
    return v0_ ^ v1_ ^ v2_ ^ v3_;
  }

 private:
  void absorb(uint64_t m) noexcept {
    v3_ ^= m;
    round();
    round();
    v0_ ^= m;
  }
  void round() noexcept {
    v0_ += v1_;
    v1_ = std::rotl(v1_, 13) ^ v0_;
    v0_ = std::rotl(v0_, 32);
    v2_ += v3_;
    v3_ = std::rotl(v3_, 16) ^ v2_;
    v0_ += v3_;
    v3_ = std::rotl(v3_, 21) ^ v0_;
    v2_ += v1_;
    v1_ = std::rotl(v1_, 17) ^ v2_;
    v2_ = std::rotl(v2_, 32);
  }

  uint64_t v0_, v1_, v2_, v3_;
};

void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// The way whose entry holds `hash`, or kWays.
uint32_t find_way(const uint64_t (&hashes)[ClientTable::kWays], uint64_t hash) noexcept {
  for (uint32_t w = 0; w < ClientTable::kWays; ++w) {
    if (hashes[w] == hash) return w;
  }
  return ClientTable::kWays;
}

}  // namespace

const char* to_string(Admission a) noexcept {
  switch (a) {
    case Admission::kAdmitted:
      return "admitted";
    case Admission::kTooMany:
      return "too_many";
    case Admission::kTooFast:
      return "too_fast";
    case Admission::kTableFull:
      return "table_full";
  }
  return "?";
}

uint32_t ClientTable::entries_for(uint32_t max_connections_total) noexcept {
  const uint64_t wanted = std::max<uint64_t>(uint64_t{2} * max_connections_total, kMinEntries);
  return static_cast<uint32_t>(std::bit_ceil(std::min<uint64_t>(wanted, kMaxEntries)));
}

ClientTable::ClientTable(uint32_t entries, uint32_t ipv6_prefix, uint64_t seed)
    : ipv6_prefix_(ipv6_prefix) {
  static_assert(sizeof(Bucket) == 32 * kWays, "32 bytes an entry, four cache lines a bucket");
  EDGEPROXY_CHECK(ipv6_prefix >= 1 && ipv6_prefix <= 128);
  const uint32_t n = std::bit_ceil(std::clamp(entries, kWays, kMaxEntries));
  buckets_ = std::make_unique<Bucket[]>(n / kWays);
  bucket_mask_ = n / kWays - 1;
  // SipHash takes 128 key bits; the seed's 64 are all the secret there is, so the second half
  // is the first complemented.
  seed_[0] = seed;
  seed_[1] = ~seed;
}

ClientTable::~ClientTable() = default;

bool ClientTable::hash_of(const SocketAddress& client, uint64_t& hash) const noexcept {
  // The key: 16 address bytes, IPv4 written as IPv4-mapped IPv6, so one IPv4 client is one key
  // on IPv4 and dual-stack listeners alike.
  uint8_t key[16] = {};
  if (client.family() == AF_INET) {
    key[10] = key[11] = 0xff;
    std::memcpy(key + 12, &reinterpret_cast<const sockaddr_in*>(&client.storage)->sin_addr, 4);
  } else if (client.family() == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(&client.storage)->sin6_addr;
    std::memcpy(key, &a, 16);
    if (!IN6_IS_ADDR_V4MAPPED(&a)) {
      for (uint32_t i = 0; i < 16; ++i) {
        const uint32_t bits = std::min(8u, ipv6_prefix_ > 8 * i ? ipv6_prefix_ - 8 * i : 0u);
        key[i] &= static_cast<uint8_t>(0xff00u >> bits);
      }
    }
  } else {
    return false;
  }
  uint64_t m0, m1;
  std::memcpy(&m0, key, 8);
  std::memcpy(&m1, key + 8, 8);
  // Never 0, the unused mark; bit 63 is in neither bucket index.
  hash = SipHash(seed_[0], seed_[1]).hash16(m0, m1) | uint64_t{1} << 63;
  return true;
}

Admission ClientTable::admit(const SocketAddress& client, uint32_t max_connections,
                             uint32_t new_per_s, int64_t now_ms, uint32_t& slot) noexcept {
  slot = kNoSlot;
  uint64_t hash = 0;
  if (!hash_of(client, hash)) return Admission::kAdmitted;
  // The two candidate buckets come from disjoint bits of the hash (a bucket index has at most
  // 27 bits); they are locked in index order, so two admissions never wait for each other in a
  // cycle.
  const uint32_t first = static_cast<uint32_t>(hash) & bucket_mask_;
  const uint32_t second = static_cast<uint32_t>(hash >> 32) & bucket_mask_;
  const uint32_t lo = std::min(first, second), hi = std::max(first, second);
  lock(lo);
  if (hi != lo) lock(hi);
  const Admission result = admit_locked(hash, first, second, max_connections,
                                        RateLimit{new_per_s, new_per_s}, now_ms, slot);
  if (hi != lo) unlock(hi);
  unlock(lo);
  return result;
}

Admission ClientTable::admit_locked(uint64_t hash, uint32_t first, uint32_t second,
                                    uint32_t max_connections, const RateLimit& rate, int64_t now_ms,
                                    uint32_t& slot) noexcept {
  uint32_t bucket = first;
  uint32_t way = find_way(buckets_[first].hash, hash);
  if (way == kWays) {
    bucket = second;
    way = find_way(buckets_[second].hash, hash);
  }
  if (way == kWays) {
    // A new client: into the bucket with fewer live entries (two choices keep the fullest
    // bucket near the mean), a free entry in either before an eviction.
    auto live = [&](uint32_t b) {
      uint32_t n = 0;
      for (uint32_t w = 0; w < kWays; ++w) n += buckets_[b].count[w] != 0 ? 1u : 0u;
      return n;
    };
    auto free_way = [&](uint32_t b) {
      const Bucket& k = buckets_[b];
      for (uint32_t w = 0; w < kWays; ++w) {
        if (k.hash[w] == 0 || (k.count[w] == 0 && k.rate[w].full(now_ms, rate))) return w;
      }
      return kWays;
    };
    bucket = live(second) < live(first) ? second : first;
    const uint32_t other = bucket == first ? second : first;
    way = free_way(bucket);
    if (way == kWays && (way = free_way(other)) != kWays) bucket = other;
    if (way == kWays) {
      // Evict the idle entry closest to refilled: forgetting it loses the least. The bucket
      // chosen has the fewer live entries: when all of its entries are live, so are the other's.
      const Bucket& k = buckets_[bucket];
      int64_t best = INT64_MIN;
      for (uint32_t w = 0; w < kWays; ++w) {
        if (k.count[w] != 0) continue;
        const int64_t balance = k.rate[w].balance_milli(now_ms, rate);
        if (way == kWays || balance > best) {
          way = w;
          best = balance;
        }
      }
      if (way == kWays) {
        full_refusals_.fetch_add(1, std::memory_order_relaxed);
        return Admission::kTableFull;
      }
      evictions_.fetch_add(1, std::memory_order_relaxed);
    }
    Bucket& k = buckets_[bucket];
    k.hash[way] = hash;
    k.count[way] = 0;
    k.rate[way].reset(now_ms, rate);
  }
  Bucket& k = buckets_[bucket];
  if (max_connections != 0 && k.count[way] >= max_connections) return Admission::kTooMany;
  if (!k.rate[way].holds(1, now_ms, rate)) return Admission::kTooFast;
  k.rate[way].charge(1, now_ms, rate);
  if (k.count[way]++ == 0) clients_.fetch_add(1, std::memory_order_relaxed);
  slot = bucket * kWays + way;
  return Admission::kAdmitted;
}

void ClientTable::release(uint32_t slot) noexcept {
  if (slot == kNoSlot) return;
  const uint32_t bucket = slot / kWays;
  EDGEPROXY_CHECK(bucket <= bucket_mask_);
  lock(bucket);
  uint32_t& count = buckets_[bucket].count[slot % kWays];
  EDGEPROXY_CHECK(count > 0);
  if (--count == 0) clients_.fetch_sub(1, std::memory_order_relaxed);
  unlock(bucket);
}

void ClientTable::lock(uint32_t bucket) noexcept {
  std::atomic<bool>& locked = buckets_[bucket].locked;
  for (uint32_t spins = 0; locked.exchange(true, std::memory_order_acquire);) {
    // Wait reading, not writing, so the line stays shared until the holder lets go. A holder
    // that was preempted will not let go while this thread spins: after a while, give the CPU
    // away (sched_yield, only under contention).
    while (locked.load(std::memory_order_relaxed)) {
      if (++spins < 128) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }
}

void ClientTable::unlock(uint32_t bucket) noexcept {
  buckets_[bucket].locked.store(false, std::memory_order_release);
}

}  // namespace edgeproxy
