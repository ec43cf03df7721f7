// Balancer: picks the server of a backend for a new connection. One per worker per backend,
// built from an immutable BackendSpec when a worker installs a topology; the pick reads the
// servers' shared state (ServerRuntime: up/down, open connections) through relaxed atomics and
// never takes a lock. Algorithms, their costs and guarantees: docs/balancing.md.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "edgeproxy/net.h"
#include "edgeproxy/topology.h"

namespace edgeproxy {

class Balancer {
 public:
  static constexpr uint32_t kNoServer = UINT32_MAX;

  // `spec` (and its runtimes) must outlive the balancer. `seed` varies the random choices per
  // worker. Allocates everything it will need (rings, trees) here: pick() never allocates.
  Balancer(const BackendSpec& spec, uint64_t seed);
  Balancer(Balancer&&) noexcept;
  Balancer& operator=(Balancer&&) noexcept;
  ~Balancer();

  // The server for a new connection from `client`: an up, non-backup server below its
  // max-connections, chosen by the backend's algorithm; when none is, a backup chosen the same
  // way; kNoServer when none is usable at all. `avoid` (a server index, or kNoServer) is skipped
  // while another server is usable, a backup included: a retry goes elsewhere rather than back
  // to the server that just failed. O(1) or O(log n) in the number of servers while most are
  // usable (kFirst: O(servers before the one chosen)); O(n) to find that none is usable.
  // On a `rtt` or `most-idle` backend (per-request algorithms over costs only the worker's pools
  // know), pick() balances as roundrobin.
  uint32_t pick(const SocketAddress& client, uint32_t avoid = kNoServer) noexcept;
  // The usable server (pick()'s usability, tiers and `avoid`) with the lowest
  // cost[i] * 256 / weight, for the per-request algorithms: `rtt` passes each server's moving
  // average of response time, `most-idle` a cost that falls as IDLE connections rise (e.g.
  // pool-size minus IDLE). A tie goes to the first tied server after the one this balancer chose
  // last, so equal costs take turns. `cost` has one entry per server of the backend, in its
  // order (checked: a shorter span aborts); an entry is clamped to 2^40. O(servers), no
  // allocation; kNoServer when none is usable.
  uint32_t pick_least(std::span<const uint64_t> cost, uint32_t avoid = kNoServer) noexcept;
  // The server a routing rule's `hash BACKEND KEY` gives `key_hash` (hash_key()): the same
  // consistent-hash ring as `source` balancing (built for a backend with BackendSpec::hashed),
  // the same tiers, `avoid` and fallbacks as pick(). Without a ring, pick()'s algorithm.
  uint32_t pick_hash(uint64_t key_hash, uint32_t avoid = kNoServer) noexcept;
  // The hash of a routing key, for pick_hash().
  static uint64_t hash_key(std::string_view key) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One balancer per backend of `t`, in its order, for one worker (`seed` varies per worker). A
// ring or schedule over many servers takes milliseconds to build, so a reload builds them on the
// supervisor's thread and hands them over with the topology, off the workers' loops.
std::vector<Balancer> build_balancers(const Topology& t, uint64_t seed);

}  // namespace edgeproxy
