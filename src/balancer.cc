// Balancer: the five per-connection algorithms and the per-request least-cost pick over one
// backend's servers, non-backup servers first, backups when none of those is usable. What each pick
// costs and what it guarantees across workers: docs/balancing.md.
#include "edgeproxy/balancer.h"

#include <netinet/in.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <numeric>
#include <string>
#include <utility>

#include "edgeproxy/check.h"

namespace edgeproxy {
namespace {

constexpr uint32_t kNone = Balancer::kNoServer;

// Weights are 1-256 (ServerSpec); clamping to that keeps every product below fits in 64 bits.
constexpr uint32_t kMaxWeight = 256;
// Round robin keeps one whole smooth cycle when it has at most this many entries (4 bytes each,
// 1 MiB: any group of up to 1 024 servers); a longer cycle is stepped at each pick instead, at
// O(distinct weights) <= 256 steps. A worker starts at one of the first kMaxStartSteps places of
// the cycle, so that the workers' first picks spread.
constexpr uint64_t kMaxSequence = uint64_t{1} << 18;
constexpr uint64_t kMaxStartSteps = 4096;
// Sequence entries (round robin), pairs of draws (random) or ring points (source) tried before
// a pick falls back to a plain scan of the group: bounds a pick while many servers are unusable.
constexpr uint32_t kMaxProbes = 32;
// Leastconn: stale candidates re-read and re-placed in one pick, leaves refreshed from the
// atomics at every pick (a sweep over the group), and the share of n picks that may read every
// leaf (at most once per n / kRefreshSpacing picks).
constexpr uint32_t kMaxRechecks = 8;
constexpr uint32_t kRefreshPerPick = 2;
constexpr uint64_t kRefreshSpacing = 16;
// Source: ring points per weight unit, and the ring size past which that number is lowered
// (8 + 4 bytes a point).
constexpr uint64_t kRingPointsPerWeight = 160;
constexpr uint64_t kMaxRingPoints = uint64_t{1} << 18;
// A connection count is clamped to this before being multiplied by a weight.
constexpr uint64_t kMaxCount = uint64_t{1} << 40;

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

// splitmix64's finalizer: a bijection of 64-bit words with full avalanche.
constexpr uint64_t mix64(uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 31;
  return x;
}

// A 64-bit hash of `size` bytes: 8-byte words chained through mix64, seeded with the length so
// that inputs differing only by trailing zero bytes differ.
uint64_t hash_bytes(const void* data, size_t size, uint64_t seed) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = mix64(seed ^ (static_cast<uint64_t>(size) * kGolden));
  for (; size >= 8; p += 8, size -= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    h = mix64(h ^ word);
  }
  if (size > 0) {
    uint64_t word = 0;
    std::memcpy(&word, p, size);
    h = mix64(h ^ word);
  }
  return mix64(h + kGolden);
}

constexpr uint64_t kClientSeed = 0x6564676570726f78ull;  // "edgeprox"
constexpr uint64_t kServerSeed = 0x73657276657273ull;    // "servers"

// The client's IP only (not the port): IPv4, IPv6, and an IPv4-mapped IPv6 address hashed as
// the IPv4 address it maps, so a client keeps its server across dual-stack listeners. Anything
// else (Unix clients) hashes to one constant.
uint64_t client_hash(const SocketAddress& client) noexcept {
  if (client.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&client.storage);
    return hash_bytes(&in->sin_addr, 4, kClientSeed);
  }
  if (client.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&client.storage);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      return hash_bytes(reinterpret_cast<const unsigned char*>(&in6->sin6_addr) + 12, 4,
                        kClientSeed);
    }
    return hash_bytes(&in6->sin6_addr, 16, kClientSeed);
  }
  return hash_bytes(nullptr, 0, kClientSeed);
}

// A server's place on the ring depends on its name and address as written, never on its index
// or on the other servers: so removing one server leaves every other server's points in place.
uint64_t server_hash(const ServerSpec& s) noexcept {
  uint64_t h = hash_bytes(s.name.data(), s.name.size(), kServerSeed);
  h = hash_bytes(s.endpoint.host.data(), s.endpoint.host.size(), h);
  h = hash_bytes(&s.endpoint.port, sizeof s.endpoint.port, h);
  return hash_bytes(s.endpoint.unix_path.data(), s.endpoint.unix_path.size(), h);
}

// splitmix64 as a generator: one add and one mix per draw, state per worker.
class Rng {
 public:
  explicit Rng(uint64_t seed) noexcept : state_(seed) {}
  uint64_t next() noexcept { return mix64(state_ += kGolden); }

 private:
  uint64_t state_;
};

// [0, n) from 32 random bits by multiply-shift (Lemire); the bias, below n / 2^32, is irrelevant
// here.
constexpr uint32_t below(uint32_t random32, uint32_t n) noexcept {
  return static_cast<uint32_t>((uint64_t{random32} * n) >> 32);
}

struct Member {
  ServerRuntime* runtime;
  uint32_t server;  // index in BackendSpec::servers
  uint32_t weight;
  uint32_t max_connections;
};

// One read of a server's shared state.
struct Seen {
  bool usable;
  uint64_t current;
};

Seen look(const Member& m) noexcept {
  // A drained server (admin `disable server`) is unusable for new connections, like a down one.
  const bool up = m.runtime->up.load(std::memory_order_relaxed) &&
                  !m.runtime->drained.load(std::memory_order_relaxed);
  const uint64_t current =
      std::min(m.runtime->stats.current.load(std::memory_order_relaxed), kMaxCount);
  return {up && (m.max_connections == 0 || current < m.max_connections), current};
}

// nginx's smooth weighted round robin (ngx_http_upstream_get_peer), stepped by weight class.
// nginx adds each weight to its server's current weight, picks the highest (the first written
// on a tie) and subtracts the total from it. Among servers of equal weight the highest is the
// one picked fewest times, the first written on a tie: they take turns in written order, and
// the class's next server has the class's highest current weight, which loses the total only
// when every server of the class has had its turn. So one step costs O(distinct weights), at
// most 256, and the order is nginx's exactly. After total/gcd steps every current weight is back
// to zero: that is the cycle.
class SmoothStepper {
 public:
  void init(const std::vector<Member>& members) {
    total_ = 0;
    for (uint32_t i = 0; i < members.size(); ++i) {
      const uint32_t w = members[i].weight;
      total_ += w;
      auto it = std::find_if(classes_.begin(), classes_.end(),
                             [w](const WeightClass& c) { return c.weight == w; });
      if (it == classes_.end()) it = classes_.insert(classes_.end(), WeightClass{w, 0, 0, {}});
      it->members.push_back(i);
    }
    uint64_t g = 0;
    for (const WeightClass& c : classes_) g = std::gcd(g, static_cast<uint64_t>(c.weight));
    cycle_ = g == 0 ? 0 : static_cast<uint64_t>(total_) / g;
  }

  uint64_t cycle() const noexcept { return cycle_; }

  // The next member index of the sequence; the group must not be empty.
  uint32_t next() noexcept {
    WeightClass* best = nullptr;
    for (WeightClass& c : classes_) {
      c.current += c.weight;
      if (best == nullptr || c.current > best->current ||
          (c.current == best->current && c.members[c.turn] < best->members[best->turn])) {
        best = &c;
      }
    }
    const uint32_t member = best->members[best->turn];
    if (++best->turn == best->members.size()) {
      best->turn = 0;
      best->current -= total_;
    }
    return member;
  }

  void clear() noexcept { classes_ = {}; }

 private:
  struct WeightClass {
    int64_t weight;
    int64_t current;                // nginx's current weight of members[turn]
    uint32_t turn;                  // the member whose turn it is in this class
    std::vector<uint32_t> members;  // in written order
  };
  std::vector<WeightClass> classes_;
  int64_t total_ = 0;
  uint64_t cycle_ = 0;
};

// Leastconn's per-worker tournament tree over the counts last seen. A leaf holds a member's last
// seen count and usability and when this worker last chose it; an inner node holds the better of
// its children: usable first, then lower count/weight (compared by cross-multiplication), then
// chosen longest ago (ties rotate), then written order.
class LoadTree {
 public:
  void init(const std::vector<Member>& members) {
    const uint32_t n = static_cast<uint32_t>(members.size());
    size_ = 1;
    while (size_ < n) size_ *= 2;
    leaves_.assign(n, Leaf{});
    for (uint32_t i = 0; i < n; ++i) leaves_[i].weight = members[i].weight;
    nodes_.assign(2 * size_, kNone);
    for (uint32_t i = 0; i < n; ++i) nodes_[size_ + i] = i;
    for (uint32_t node = size_ - 1; node >= 1; --node) settle(node);
  }

  uint32_t root() const noexcept { return nodes_[1]; }
  bool usable(uint32_t i) const noexcept { return leaves_[i].usable; }

  // True when the leaf already held `seen`; otherwise stores it and re-plays i's matches.
  bool agree(uint32_t i, Seen seen) noexcept {
    Leaf& leaf = leaves_[i];
    if (leaf.usable == seen.usable && leaf.current == seen.current) return true;
    leaf.usable = seen.usable;
    leaf.current = seen.current;
    replay(i);
    return false;
  }

  // Marks i chosen now (ties go to the others first) with the state it will have.
  void chosen(uint32_t i, Seen next) noexcept {
    Leaf& leaf = leaves_[i];
    leaf.stamp = ++clock_;
    leaf.usable = next.usable;
    leaf.current = next.current;
    replay(i);
  }

 private:
  struct Leaf {
    uint64_t current = 0;
    uint64_t stamp = 0;  // clock_ when this worker last chose it
    uint32_t weight = 1;
    bool usable = false;
  };

  bool before(uint32_t a, uint32_t b) const noexcept {
    if (a == kNone) return false;
    if (b == kNone) return true;
    const Leaf& x = leaves_[a];
    const Leaf& y = leaves_[b];
    if (x.usable != y.usable) return x.usable;
    const uint64_t lhs = x.current * y.weight;
    const uint64_t rhs = y.current * x.weight;
    if (lhs != rhs) return lhs < rhs;
    if (x.stamp != y.stamp) return x.stamp < y.stamp;
    return a < b;
  }

  void settle(uint32_t node) noexcept {
    const uint32_t l = nodes_[2 * node];
    const uint32_t r = nodes_[2 * node + 1];
    nodes_[node] = before(r, l) ? r : l;
  }

  void replay(uint32_t i) noexcept {
    for (uint32_t node = (size_ + i) / 2; node >= 1; node /= 2) settle(node);
  }

  std::vector<Leaf> leaves_;
  std::vector<uint32_t> nodes_;  // nodes_[1] is the root; leaves at [size_, 2 * size_)
  uint32_t size_ = 1;
  uint64_t clock_ = 0;
};

// Walker's alias table (Vose's construction, exact integer arithmetic): a weighted draw in O(1).
// Column c keeps c with probability keep[c] / total, else gives alias[c].
class AliasTable {
 public:
  void init(const std::vector<Member>& members) {
    const uint32_t n = static_cast<uint32_t>(members.size());
    total_ = 0;
    for (const Member& m : members) total_ += m.weight;
    keep_.assign(n, total_);
    alias_.resize(n);
    std::vector<uint64_t> scaled(n);
    std::vector<uint32_t> small;
    std::vector<uint32_t> large;
    for (uint32_t i = 0; i < n; ++i) {
      alias_[i] = i;
      scaled[i] = uint64_t{members[i].weight} * n;
      (scaled[i] < total_ ? small : large).push_back(i);
    }
    while (!small.empty() && !large.empty()) {
      const uint32_t s = small.back();
      small.pop_back();
      const uint32_t l = large.back();
      large.pop_back();
      keep_[s] = static_cast<uint32_t>(scaled[s]);
      alias_[s] = l;
      scaled[l] -= total_ - scaled[s];
      (scaled[l] < total_ ? small : large).push_back(l);
    }
  }

  uint32_t draw(uint64_t random) const noexcept {
    const uint32_t column =
        below(static_cast<uint32_t>(random >> 32), static_cast<uint32_t>(keep_.size()));
    const uint32_t r = below(static_cast<uint32_t>(random), total_);
    return r < keep_[column] ? column : alias_[column];
  }

 private:
  std::vector<uint32_t> keep_;
  std::vector<uint32_t> alias_;
  uint32_t total_ = 0;  // at most 256 per server
};

// The servers of one tier (non-backup or backup) and the state of the backend's algorithm over
// them. Member indices are positions in `members`; a pick returns a BackendSpec server index.
struct Group {
  std::vector<Member> members;
  uint32_t cursor = 0;  // plain rotation when a pick falls back to a scan

  std::vector<uint32_t> sequence;  // round robin: one smooth cycle, or empty when stepped
  uint32_t position = 0;
  SmoothStepper stepper;

  LoadTree tree;  // leastconn
  uint32_t sweep = 0;
  uint64_t since_refresh = 0;  // picks since every leaf was last read
  AliasTable alias;            // random

  std::vector<uint64_t> ring;  // source: point hashes, ascending
  std::vector<uint32_t> ring_members;
  // ring_index[b]: the first point whose hash's top bits are >= b; ring_index[buckets] = points.
  // 8 to 16 points a bucket, so a lookup searches a few neighbouring entries, not the ring.
  std::vector<uint32_t> ring_index;
  uint32_t ring_shift = 63;

  bool fits(uint32_t i, uint32_t avoid) const noexcept {
    return members[i].server != avoid && look(members[i]).usable;
  }

  // The first usable member from `start` on, in written order, wrapping.
  uint32_t scan_from(uint32_t start, uint32_t avoid) const noexcept {
    const uint32_t n = static_cast<uint32_t>(members.size());
    for (uint32_t k = 0, i = start; k < n; ++k, i = i + 1 == n ? 0 : i + 1) {
      if (fits(i, avoid)) return i;
    }
    return kNone;
  }

  uint32_t rotate(uint32_t avoid) noexcept {
    const uint32_t i = scan_from(cursor, avoid);
    if (i != kNone) cursor = i + 1 == members.size() ? 0 : i + 1;
    return i;
  }

  void build_round_robin(uint64_t seed) {
    stepper.init(members);
    const uint64_t cycle = stepper.cycle();
    if (cycle <= kMaxSequence) {
      sequence.reserve(cycle);
      for (uint64_t k = 0; k < cycle; ++k) sequence.push_back(stepper.next());
      stepper.clear();
      position = static_cast<uint32_t>(mix64(seed) % std::min(cycle, kMaxStartSteps));
    } else {
      for (uint64_t k = mix64(seed) % kMaxStartSteps; k > 0; --k) stepper.next();
    }
  }

  uint32_t next_in_cycle() noexcept {
    if (sequence.empty()) return stepper.next();
    const uint32_t i = sequence[position];
    if (++position == sequence.size()) position = 0;
    return i;
  }

  uint32_t round_robin(uint32_t avoid) noexcept {
    const uint64_t cycle = sequence.empty() ? stepper.cycle() : sequence.size();
    const uint32_t probes = static_cast<uint32_t>(std::min<uint64_t>(kMaxProbes, cycle));
    for (uint32_t k = 0; k < probes; ++k) {
      const uint32_t i = next_in_cycle();
      if (fits(i, avoid)) return i;
    }
    return rotate(avoid);
  }

  void build_least_conn() {
    tree.init(members);
    for (uint32_t i = 0; i < members.size(); ++i) tree.agree(i, look(members[i]));
  }

  // The avoided member is seen as unusable for the length of one pick.
  Seen seen(uint32_t i, uint32_t avoid) const noexcept {
    Seen s = look(members[i]);
    if (members[i].server == avoid) s.usable = false;
    return s;
  }

  // `masked`: the member that is `avoid` when it belongs to this tier, else kNone.
  uint32_t least_conn(uint32_t avoid, uint32_t masked) noexcept {
    const uint32_t n = static_cast<uint32_t>(members.size());
    if (masked != kNone) tree.agree(masked, seen(masked, avoid));
    for (uint32_t k = 0; k < kRefreshPerPick && k < n; ++k) {
      tree.agree(sweep, seen(sweep, avoid));
      if (++sweep == n) sweep = 0;
    }
    // A stale candidate is re-placed and the next root read. After kMaxRechecks stale ones in
    // a row (other workers opening connections faster than this one picks) every leaf is read
    // again, at most once per n / kRefreshSpacing picks (amortized kRefreshSpacing reads a
    // pick); in between, the least loaded usable one of those candidates, as read now.
    uint32_t chosen = kNone;
    uint32_t best = kNone;
    Seen best_seen{false, 0};
    for (uint32_t k = 0; k < kMaxRechecks; ++k) {
      const uint32_t i = tree.root();
      if (!tree.usable(i)) break;  // nothing usable as last seen: refresh everything
      const Seen now = seen(i, avoid);
      if (tree.agree(i, now)) {
        chosen = i;
        break;
      }
      if (now.usable && (best == kNone || now.current * members[best].weight <
                                              best_seen.current * members[i].weight)) {
        best = i;
        best_seen = now;
      }
    }
    ++since_refresh;
    if (chosen == kNone && since_refresh * kRefreshSpacing < n) chosen = best;
    if (chosen == kNone) {
      since_refresh = 0;
      for (uint32_t i = 0; i < n; ++i) tree.agree(i, seen(i, avoid));
      if (tree.usable(tree.root())) chosen = tree.root();
    }
    if (chosen != kNone) {
      // The worker adds the connection to the count right after the pick (ServerRuntime's
      // contract): the leaf counts it at once, so this worker's own picks never leave it stale.
      const Seen was = seen(chosen, avoid);
      const uint64_t after = std::min(was.current + 1, kMaxCount);
      const uint32_t max = members[chosen].max_connections;
      tree.chosen(chosen, {max == 0 || after < max, after});
    }
    if (masked != kNone) tree.agree(masked, look(members[masked]));
    return chosen;
  }

  uint32_t random(Rng& rng, uint32_t avoid) noexcept {
    for (uint32_t k = 0; k < kMaxProbes; ++k) {
      const uint32_t a = alias.draw(rng.next());
      const uint32_t b = alias.draw(rng.next());
      const Seen sa = seen(a, avoid);
      const Seen sb = seen(b, avoid);
      if (sa.usable && sb.usable) {
        return sb.current * members[a].weight < sa.current * members[b].weight ? b : a;
      }
      if (sa.usable) return a;
      if (sb.usable) return b;
    }
    return rotate(avoid);
  }

  void build_ring(const BackendSpec& spec) {
    uint64_t total_weight = 0;
    for (const Member& m : members) total_weight += m.weight;
    const uint64_t per_weight =
        total_weight * kRingPointsPerWeight <= kMaxRingPoints
            ? kRingPointsPerWeight
            : std::max<uint64_t>(1, kMaxRingPoints / std::max<uint64_t>(1, total_weight));
    std::vector<std::pair<uint64_t, uint32_t>> points;
    points.reserve(total_weight * per_weight);
    for (uint32_t i = 0; i < members.size(); ++i) {
      const uint64_t base = server_hash(spec.servers[members[i].server]);
      const uint64_t count = members[i].weight * per_weight;
      for (uint64_t k = 1; k <= count; ++k) points.emplace_back(mix64(base + k * kGolden), i);
    }
    // Equal hashes (rare) are ordered by member, which keeps their order when a server goes.
    std::sort(points.begin(), points.end());
    ring.reserve(points.size());
    ring_members.reserve(points.size());
    for (const auto& [hash, member] : points) {
      ring.push_back(hash);
      ring_members.push_back(member);
    }
    uint32_t bits = 1;
    while (bits < 31 && (uint64_t{16} << bits) <= ring.size()) ++bits;
    ring_shift = 64 - bits;
    const uint32_t buckets = uint32_t{1} << bits;
    ring_index.reserve(buckets + 1);
    size_t p = 0;
    for (uint64_t b = 0; b < buckets; ++b) {
      while (p < ring.size() && (ring[p] >> ring_shift) < b) ++p;
      ring_index.push_back(static_cast<uint32_t>(p));
    }
    ring_index.push_back(static_cast<uint32_t>(ring.size()));
  }

  uint32_t source(const SocketAddress& client, uint32_t avoid) const noexcept {
    return on_ring(client_hash(client), avoid);
  }

  uint32_t on_ring(uint64_t h, uint32_t avoid) const noexcept {
    const uint32_t points = static_cast<uint32_t>(ring.size());
    const uint64_t bucket = h >> ring_shift;
    const auto from = ring.begin() + ring_index[bucket];
    const auto to = ring.begin() + ring_index[bucket + 1];
    uint32_t p = static_cast<uint32_t>(std::lower_bound(from, to, h) - ring.begin());
    uint32_t refused = kNone;
    for (uint32_t k = 0; k < kMaxProbes && k < points; ++k, ++p) {
      if (p == points) p = 0;
      const uint32_t i = ring_members[p];
      if (i == refused) continue;
      if (fits(i, avoid)) return i;
      refused = i;
    }
    return scan_from(static_cast<uint32_t>(h % members.size()), avoid);
  }

  uint32_t first(uint32_t avoid) const noexcept { return scan_from(0, avoid); }

  // pick_least(): the scan starts after the member chosen last, and only a strictly lower cost
  // displaces the best so far, so equal costs take turns.
  uint32_t least_cursor = 0;

  uint32_t least(std::span<const uint64_t> cost, uint32_t avoid) noexcept {
    const uint32_t n = static_cast<uint32_t>(members.size());
    uint32_t best = kNone;
    uint64_t best_cost = 0;
    for (uint32_t k = 0, i = least_cursor; k < n; ++k, i = i + 1 == n ? 0 : i + 1) {
      if (!fits(i, avoid)) continue;
      const uint64_t c =
          std::min(cost[members[i].server], kMaxCount) * kMaxWeight / members[i].weight;
      if (best == kNone || c < best_cost) {
        best = i;
        best_cost = c;
      }
    }
    if (best != kNone) least_cursor = best + 1 == n ? 0 : best + 1;
    return best;
  }
};

}  // namespace

struct Balancer::Impl {
  Balance balance;
  Rng rng;
  Group tiers[2];  // [0] non-backup servers, [1] backups
  // By BackendSpec server index: the server (for the last resort of `avoid`), its tier and its
  // member index there.
  std::vector<Member> servers;
  std::vector<uint32_t> tier_of;
  std::vector<uint32_t> place;
  bool ringed = false;  // the tiers have consistent-hash rings (source, or hash rules)

  Impl(const BackendSpec& spec, uint64_t seed)
      : balance(spec.balance),
        rng(mix64(seed)),
        ringed(spec.balance == Balance::kSource || spec.hashed) {
    servers.reserve(spec.servers.size());
    tier_of.reserve(spec.servers.size());
    place.reserve(spec.servers.size());
    for (uint32_t i = 0; i < spec.servers.size(); ++i) {
      const ServerSpec& s = spec.servers[i];
      EDGEPROXY_CHECK(s.runtime != nullptr);
      // A weight set at run time (ServerRuntime::weight) replaces the configured one.
      const uint32_t set = s.runtime->weight.load(std::memory_order_relaxed);
      const Member m{s.runtime.get(), i,
                     std::clamp<uint32_t>(set != 0 ? set : s.weight, 1, kMaxWeight),
                     s.max_connections};
      const uint32_t tier = s.backup ? 1 : 0;
      servers.push_back(m);
      tier_of.push_back(tier);
      place.push_back(static_cast<uint32_t>(tiers[tier].members.size()));
      tiers[tier].members.push_back(m);
    }
    for (uint32_t t = 0; t < 2; ++t) {
      Group& g = tiers[t];
      if (g.members.empty()) continue;
      if (ringed) g.build_ring(spec);
      switch (balance) {
        case Balance::kRoundRobin:
        case Balance::kRtt:
        case Balance::kMostIdle:
          g.build_round_robin(seed ^ (t * kGolden));
          break;
        case Balance::kLeastConn:
          g.build_least_conn();
          break;
        case Balance::kRandom:
          g.alias.init(g.members);
          break;
        case Balance::kSource:
          break;
        case Balance::kFirst:
          break;
      }
    }
  }

  uint32_t hashed_in(uint32_t tier, uint64_t h, uint32_t avoid) const noexcept {
    const Group& g = tiers[tier];
    if (g.members.empty()) return kNone;
    const uint32_t i = g.on_ring(h, avoid);
    return i == kNone ? kNone : g.members[i].server;
  }

  uint32_t pick_in(uint32_t tier, const SocketAddress& client, uint32_t avoid) noexcept {
    Group& g = tiers[tier];
    if (g.members.empty()) return kNone;
    uint32_t i = kNone;
    switch (balance) {
      case Balance::kRoundRobin:
      case Balance::kRtt:
      case Balance::kMostIdle:
        i = g.round_robin(avoid);
        break;
      case Balance::kLeastConn:
        i = g.least_conn(avoid,
                         avoid < servers.size() && tier_of[avoid] == tier ? place[avoid] : kNone);
        break;
      case Balance::kRandom:
        i = g.random(rng, avoid);
        break;
      case Balance::kSource:
        i = g.source(client, avoid);
        break;
      case Balance::kFirst:
        i = g.first(avoid);
        break;
    }
    return i == kNone ? kNone : g.members[i].server;
  }
};

Balancer::Balancer(const BackendSpec& spec, uint64_t seed)
    : impl_(std::make_unique<Impl>(spec, seed)) {}
Balancer::Balancer(Balancer&&) noexcept = default;
Balancer& Balancer::operator=(Balancer&&) noexcept = default;
Balancer::~Balancer() = default;

// `avoid` is refused in both tiers before it is taken back: a retry prefers a backup to the
// server that just failed, and gets that server again only when nothing else is usable.
uint32_t Balancer::pick_hash(uint64_t key_hash, uint32_t avoid) noexcept {
  Impl& s = *impl_;
  if (!s.ringed) return pick(SocketAddress{}, avoid);
  for (uint32_t tier = 0; tier < 2; ++tier) {
    const uint32_t server = s.hashed_in(tier, key_hash, avoid);
    if (server != kNone) return server;
  }
  if (avoid < s.servers.size() && look(s.servers[avoid]).usable) return avoid;
  return kNone;
}

uint64_t Balancer::hash_key(std::string_view key) noexcept {
  return hash_bytes(key.data(), key.size(), kClientSeed);
}

uint32_t Balancer::pick(const SocketAddress& client, uint32_t avoid) noexcept {
  Impl& s = *impl_;
  for (uint32_t tier = 0; tier < 2; ++tier) {
    const uint32_t server = s.pick_in(tier, client, avoid);
    if (server != kNone) return server;
  }
  if (avoid < s.servers.size() && look(s.servers[avoid]).usable) return avoid;
  return kNone;
}

uint32_t Balancer::pick_least(std::span<const uint64_t> cost, uint32_t avoid) noexcept {
  Impl& s = *impl_;
  EDGEPROXY_CHECK(cost.size() >= s.servers.size());
  for (Group& g : s.tiers) {
    if (g.members.empty()) continue;
    const uint32_t i = g.least(cost, avoid);
    if (i != kNone) return g.members[i].server;
  }
  if (avoid < s.servers.size() && look(s.servers[avoid]).usable) return avoid;
  return kNone;
}

std::vector<Balancer> build_balancers(const Topology& t, uint64_t seed) {
  std::vector<Balancer> out;
  out.reserve(t.backends.size());
  for (const BackendSpec& b : t.backends) out.emplace_back(b, seed ^ (b.servers.size() << 20));
  return out;
}

}  // namespace edgeproxy
