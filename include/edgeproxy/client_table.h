// ClientTable: per-client admission for one listener: at most max_connections open connections
// and new_per_s new ones a second per client address, counted across every worker thread. A
// fixed table allocated by the constructor; admit and release never allocate or make a syscall
// (but for a yield while a lock holder is preempted).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "edgeproxy/net.h"
#include "edgeproxy/token_bucket.h"

namespace edgeproxy {

enum class Admission : uint8_t {
  kAdmitted,
  kTooMany,    // the client has max_connections open
  kTooFast,    // the client spent its burst and opens more than new_per_s a second
  kTableFull,  // no entry could be given to a new client (see ClientTable)
};
const char* to_string(Admission a) noexcept;

// Thread-safe: admit() and release() may be called from any thread; each locks one or two
// buckets with a spinlock held for a few dozen instructions.
//
// The client: an IPv4 address (an IPv4-mapped IPv6 address ::ffff:a.b.c.d is that IPv4 address),
// or an IPv6 address masked to `ipv6_prefix` bits, since one host commonly owns a whole /64. A
// Unix-socket client has no address and is never limited. The port is not part of the key.
//
// The table: 8-way sets (buckets) of entries; a client may live in either of two buckets chosen
// by a keyed hash (SipHash under the constructor's random seed, so nobody can aim addresses at
// one bucket) and a new client goes to the one with fewer clients holding connections. An entry
// holds a client's count of open connections and its bucket of new connections (rate new_per_s a
// second, burst new_per_s). Two clients share an entry only if their 64-bit keyed hashes are
// equal.
//
// When the table is full: an entry whose count is 0 and whose rate bucket has refilled (or when
// no rate is set) is free. A new client whose two buckets have no free entry evicts the entry
// with count 0 whose rate bucket is the closest to full (what forgetting it loses is the least;
// with one rate, it is the least recently admitted), counted in evictions(): that client's
// recent openings are forgotten early. When every entry of both buckets has open connections,
// the admission is kTableFull, counted in full_refusals(). Sizing the table with entries_for()
// makes that practically unreachable: an entry with open connections holds at least one of the
// proxy's connection slots, so at most half the entries are ever live, and with two choices of
// 8-way bucket the fullest bucket stays close to the mean of 4 (balls into bins with two
// choices: the maximum exceeds the mean by O(log log n), where one choice would overflow about
// 2% of the buckets at that load). Measured: 200 tables of 1024 entries kept exactly half live
// by distinct clients, each replaced 50 000 times, refused 1 admission in 10 million. So a
// refusal needs every connection slot held by a distinct client (an attack owning more addresses
// or IPv6 prefixes than the proxy has slots), and by then the proxy is at its connection limit.
class ClientTable {
 public:
  static constexpr uint32_t kWays = 8;
  static constexpr uint32_t kMinEntries = 1024;
  static constexpr uint32_t kMaxEntries = uint32_t{1} << 30;
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  // A table size for a proxy holding at most `max_connections_total` connections across all
  // workers: a power of two >= 2 x that and >= kMinEntries, at most kMaxEntries (see above).
  static uint32_t entries_for(uint32_t max_connections_total) noexcept;

  // Allocates `entries` rounded up to a power of two, at least kWays (one bucket) and at most
  // kMaxEntries: about 32 bytes an entry. ipv6_prefix is 1..128 (aborts otherwise). `seed` keys
  // the hash: draw it from getrandom.
  ClientTable(uint32_t entries, uint32_t ipv6_prefix, uint64_t seed);
  ~ClientTable();
  ClientTable(const ClientTable&) = delete;
  ClientTable& operator=(const ClientTable&) = delete;

  // Admits a new connection from `client` at now_ms (monotonic ms; another thread's slightly
  // older loop time is fine). max_connections 0: no limit on open connections; new_per_s 0: no
  // rate limit. On kAdmitted the client's count grows by one and `slot` names its entry for
  // release(); a Unix client is always admitted with slot kNoSlot. A refusal, whatever its
  // reason, changes no count and takes no token. Limits are passed per call, so a reload
  // applies at the next admission; kTooMany checks the count against the current limit.
  Admission admit(const SocketAddress& client, uint32_t max_connections, uint32_t new_per_s,
                  int64_t now_ms, uint32_t& slot) noexcept;
  // One of the connections admitted with `slot` by this table closed (the table must outlive the
  // connections it admitted). kNoSlot: nothing to do. A slot is valid until its connection's
  // release: an entry with open connections is never evicted.
  void release(uint32_t slot) noexcept;

  uint32_t ipv6_prefix() const noexcept { return ipv6_prefix_; }
  uint32_t entries() const noexcept { return (bucket_mask_ + 1) * kWays; }
  // Clients holding open connections (relaxed: approximate while others admit and release).
  uint32_t clients() const noexcept { return clients_.load(std::memory_order_relaxed); }
  uint64_t evictions() const noexcept { return evictions_.load(std::memory_order_relaxed); }
  uint64_t full_refusals() const noexcept { return full_refusals_.load(std::memory_order_relaxed); }

 private:
  struct Bucket;

  // The keyed hash of the client's key; false for a client with no address.
  bool hash_of(const SocketAddress& client, uint64_t& hash) const noexcept;
  // admit() with the client's two candidate buckets locked.
  Admission admit_locked(uint64_t hash, uint32_t first, uint32_t second, uint32_t max_connections,
                         const RateLimit& rate, int64_t now_ms, uint32_t& slot) noexcept;
  // A spinlock per bucket: the critical sections are a few dozen instructions.
  void lock(uint32_t bucket) noexcept;
  void unlock(uint32_t bucket) noexcept;

  std::unique_ptr<Bucket[]> buckets_;
  uint32_t bucket_mask_;
  uint32_t ipv6_prefix_;
  uint64_t seed_[2];
  std::atomic<uint32_t> clients_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> full_refusals_{0};
};

}  // namespace edgeproxy
