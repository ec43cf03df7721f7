// Balancer: each algorithm's order and shares, usability (down, full), backups, `avoid`, and the
// consistent hash's minimal disruption. Other workers are simulated by writing the servers'
// runtime atomics directly.
#include "edgeproxy/balancer.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace edgeproxy {
namespace {

constexpr uint32_t kNoServer = Balancer::kNoServer;

struct ServerSketch {
  uint32_t weight = 1;
  bool backup = false;
  uint32_t max_connections = 0;
};

BackendSpec make_backend(Balance balance, const std::vector<ServerSketch>& sketches) {
  BackendSpec spec;
  spec.name = "app";
  spec.balance = balance;
  for (size_t i = 0; i < sketches.size(); ++i) {
    ServerSpec s;
    s.name = "s" + std::to_string(i);
    s.endpoint.host = "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    s.endpoint.port = 8080;
    s.weight = sketches[i].weight;
    s.backup = sketches[i].backup;
    s.max_connections = sketches[i].max_connections;
    s.runtime = std::make_shared<ServerRuntime>();
    spec.servers.push_back(std::move(s));
  }
  return spec;
}

BackendSpec make_backend(Balance balance, const std::vector<uint32_t>& weights) {
  std::vector<ServerSketch> sketches;
  for (uint32_t w : weights) sketches.push_back({w, false, 0});
  return make_backend(balance, sketches);
}

BackendSpec equal_backend(Balance balance, size_t n) {
  return make_backend(balance, std::vector<uint32_t>(n, 1));
}

void set_up(const BackendSpec& spec, size_t i, bool up) {
  spec.servers[i].runtime->up = up;
}
void set_current(const BackendSpec& spec, size_t i, uint64_t n) {
  spec.servers[i].runtime->stats.current = n;
}
uint64_t current(const BackendSpec& spec, size_t i) {
  return spec.servers[i].runtime->stats.current.load();
}

SocketAddress v4(uint32_t ip, uint16_t port = 40000) {
  SocketAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
  in->sin_family = AF_INET;
  in->sin_addr.s_addr = htonl(ip);
  in->sin_port = htons(port);
  a.length = sizeof(sockaddr_in);
  return a;
}

SocketAddress v6(const char* text, uint16_t port = 40000) {
  SocketAddress a;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  in6->sin6_family = AF_INET6;
  EXPECT_EQ(inet_pton(AF_INET6, text, &in6->sin6_addr), 1) << text;
  in6->sin6_port = htons(port);
  a.length = sizeof(sockaddr_in6);
  return a;
}

SocketAddress unix_client() {
  SocketAddress a;
  a.storage.ss_family = AF_UNIX;
  a.length = sizeof(sa_family_t);
  return a;
}

const SocketAddress kAnyClient = v4(0x7f000001);

// `picks` picks, counted per server (the last slot counts kNoServer).
std::vector<uint64_t> tally(Balancer& b, size_t servers, size_t picks,
                            const SocketAddress& client = kAnyClient, uint32_t avoid = kNoServer) {
  std::vector<uint64_t> counts(servers + 1, 0);
  for (size_t k = 0; k < picks; ++k) {
    const uint32_t s = b.pick(client, avoid);
    ++counts[s == kNoServer ? servers : s];
  }
  return counts;
}

// nginx's smooth weighted round robin, as ngx_http_upstream_get_peer writes it: O(n) a step.
std::vector<uint32_t> nginx_sequence(const std::vector<uint32_t>& weights, size_t steps) {
  std::vector<int64_t> cw(weights.size(), 0);
  int64_t total = 0;
  for (uint32_t w : weights) total += w;
  std::vector<uint32_t> out;
  for (size_t k = 0; k < steps; ++k) {
    size_t best = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      cw[i] += weights[i];
      if (cw[i] > cw[best]) best = i;
    }
    cw[best] -= total;
    out.push_back(static_cast<uint32_t>(best));
  }
  return out;
}

// Where `picks` stands in `reference` (picks begins somewhere in the reference's first
// `period` entries), or SIZE_MAX.
size_t offset_in(const std::vector<uint32_t>& reference, const std::vector<uint32_t>& picks,
                 size_t period) {
  for (size_t o = 0; o < period && o + picks.size() <= reference.size(); ++o) {
    if (std::equal(picks.begin(), picks.end(), reference.begin() + static_cast<long>(o))) {
      return o;
    }
  }
  return SIZE_MAX;
}

std::vector<uint32_t> picks_of(Balancer& b, size_t n) {
  std::vector<uint32_t> out;
  for (size_t k = 0; k < n; ++k) out.push_back(b.pick(kAnyClient));
  return out;
}

constexpr Balance kAllBalances[] = {Balance::kRoundRobin, Balance::kLeastConn, Balance::kRandom,
                                    Balance::kSource, Balance::kFirst};

// Clients spread over many addresses, for algorithms that hash the client.
SocketAddress client_number(uint32_t k) {
  return v4(0x0a000000u + k * 2654435761u);
}

// ---- round robin

TEST(BalancerTest, RoundRobinIsNginxSmoothSequenceFor5_1_1) {
  const std::vector<uint32_t> weights{5, 1, 1};
  const std::vector<uint32_t> expected_cycle{0, 0, 1, 0, 2, 0, 0};  // a a b a c a a
  ASSERT_EQ(nginx_sequence(weights, 7), expected_cycle);
  const std::vector<uint32_t> reference = nginx_sequence(weights, 7 * 6);
  std::vector<bool> offsets_seen(7, false);
  for (uint64_t seed = 0; seed < 40; ++seed) {
    BackendSpec spec = make_backend(Balance::kRoundRobin, weights);
    Balancer b(spec, seed);
    const std::vector<uint32_t> picks = picks_of(b, 7 * 4);
    const size_t o = offset_in(reference, picks, 7);
    ASSERT_NE(o, SIZE_MAX) << "seed " << seed << ": not a rotation of a a b a c a a";
    offsets_seen[o] = true;
  }
  // Workers start at different places of the cycle, so their first picks spread.
  EXPECT_GE(std::count(offsets_seen.begin(), offsets_seen.end(), true), 4);
}

TEST(BalancerTest, RoundRobinMatchesNginxForMixedWeights) {
  const std::vector<uint32_t> weights{3, 7, 2, 7, 5, 1, 1, 4};
  const std::vector<uint32_t> reference = nginx_sequence(weights, 30 * 5);
  BackendSpec spec = make_backend(Balance::kRoundRobin, weights);
  Balancer b(spec, 11);
  EXPECT_NE(offset_in(reference, picks_of(b, 30 * 3), 30), SIZE_MAX);
}

// A cycle longer than the stored bound (262 144 entries) is stepped at each pick: same order.
TEST(BalancerTest, RoundRobinMatchesNginxWhenTheCycleIsTooLongToStore) {
  std::vector<uint32_t> weights;
  for (uint32_t i = 0; i < 1100; ++i) weights.push_back(240 + (i * 37) % 17);
  uint64_t total = 0;
  for (uint32_t w : weights) total += w;
  ASSERT_GT(total, uint64_t{1} << 18);
  const size_t kPicks = 3000;
  const size_t kStarts = 4096;  // a worker starts at one of the cycle's first 4 096 places
  const std::vector<uint32_t> reference = nginx_sequence(weights, kStarts + kPicks);
  BackendSpec spec = make_backend(Balance::kRoundRobin, weights);
  Balancer b(spec, 5);
  EXPECT_NE(offset_in(reference, picks_of(b, kPicks), kStarts), SIZE_MAX);
}

TEST(BalancerTest, RoundRobinEqualWeightsTakeTurns) {
  BackendSpec spec = equal_backend(Balance::kRoundRobin, 4);
  Balancer b(spec, 3);
  const std::vector<uint32_t> picks = picks_of(b, 400);
  for (size_t k = 0; k + 4 <= picks.size(); k += 4) {
    std::vector<uint32_t> round(picks.begin() + static_cast<long>(k),
                                picks.begin() + static_cast<long>(k + 4));
    std::sort(round.begin(), round.end());
    ASSERT_EQ(round, (std::vector<uint32_t>{0, 1, 2, 3})) << "round at pick " << k;
  }
}

TEST(BalancerTest, RoundRobinSkipsDownServersAndKeepsTheOthersWeights) {
  BackendSpec spec = make_backend(Balance::kRoundRobin, {5, 1, 1, 3});
  Balancer b(spec, 1);
  set_up(spec, 0, false);
  const std::vector<uint64_t> counts = tally(b, 4, 1000);
  EXPECT_EQ(counts[0], 0u);
  EXPECT_EQ(counts[1], 200u);  // 1000 picks take 200 full cycles of the 1,1,3 remaining
  EXPECT_EQ(counts[2], 200u);
  EXPECT_EQ(counts[3], 600u);
}

// ---- weights, every algorithm

TEST(BalancerTest, WeightsRespectedByRoundRobinExactlyPerCycle) {
  BackendSpec spec = make_backend(Balance::kRoundRobin, {1, 2, 3, 4});
  Balancer b(spec, 9);
  EXPECT_EQ(tally(b, 4, 10 * 1000), (std::vector<uint64_t>{1000, 2000, 3000, 4000, 0}));
}

TEST(BalancerTest, WeightsRespectedByRandom) {
  BackendSpec spec = make_backend(Balance::kRandom, {1, 2, 3, 4});
  Balancer b(spec, 9);
  const size_t kPicks = 100000;
  const std::vector<uint64_t> counts = tally(b, 4, kPicks);
  for (size_t i = 0; i < 4; ++i) {
    const double share = static_cast<double>(counts[i]) / kPicks;
    EXPECT_NEAR(share, static_cast<double>(i + 1) / 10, 0.01) << "server " << i;
  }
}

// Connections that stay open: leastconn keeps current/weight level, within one connection.
TEST(BalancerTest, WeightsRespectedByLeastConn) {
  BackendSpec spec = make_backend(Balance::kLeastConn, {1, 2, 3, 4});
  Balancer b(spec, 9);
  for (int k = 0; k < 1000; ++k) {
    const uint32_t s = b.pick(kAnyClient);
    ASSERT_LT(s, 4u);
    spec.servers[s].runtime->stats.current++;
  }
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(static_cast<double>(current(spec, i)), 100.0 * static_cast<double>(i + 1), 1.0)
        << "server " << i;
  }
}

TEST(BalancerTest, WeightsRespectedBySource) {
  BackendSpec spec = make_backend(Balance::kSource, {1, 2, 3, 4});
  Balancer b(spec, 9);
  std::vector<uint64_t> counts(5, 0);
  const uint32_t kClients = 100000;
  for (uint32_t k = 0; k < kClients; ++k) ++counts[b.pick(client_number(k))];
  for (size_t i = 0; i < 4; ++i) {
    const double share = static_cast<double>(counts[i]) / kClients;
    const double expected = static_cast<double>(i + 1) / 10;
    EXPECT_NEAR(share, expected, 0.2 * expected) << "server " << i;
  }
}

// ---- usability: down, full, backups, nothing

TEST(BalancerTest, EveryAlgorithmSkipsDownAndFullServers) {
  for (Balance balance : kAllBalances) {
    SCOPED_TRACE(to_string(balance));
    BackendSpec spec = make_backend(
        balance, std::vector<ServerSketch>{{1, false, 0}, {1, false, 3}, {1, false, 0}});
    Balancer b(spec, 2);
    set_up(spec, 0, false);
    set_current(spec, 1, 3);  // at its max-connections
    std::vector<uint64_t> counts(4, 0);
    for (uint32_t k = 0; k < 300; ++k) {
      const uint32_t s = b.pick(client_number(k));
      ++counts[s == kNoServer ? 3 : s];
    }
    EXPECT_EQ(counts, (std::vector<uint64_t>{0, 0, 300, 0}));
    set_current(spec, 1, 2);  // below it again
    set_up(spec, 2, false);
    EXPECT_EQ(b.pick(kAnyClient), 1u);
  }
}

// The admin socket's `disable server` (ServerRuntime::drained): no new connection from any
// algorithm, a backup before a drained primary; `enable server` brings it back at once.
TEST(BalancerTest, EveryAlgorithmSkipsADrainedServerUntilEnabled) {
  for (Balance balance : kAllBalances) {
    SCOPED_TRACE(to_string(balance));
    BackendSpec spec = make_backend(
        balance, std::vector<ServerSketch>{{1, false, 0}, {1, false, 0}, {1, true, 0}});
    Balancer b(spec, 3);
    spec.servers[0].runtime->drained = true;
    for (uint32_t k = 0; k < 200; ++k) EXPECT_EQ(b.pick(client_number(k)), 1u);
    spec.servers[1].runtime->drained = true;
    EXPECT_EQ(b.pick(kAnyClient), 2u);  // the backup
    spec.servers[2].runtime->drained = true;
    EXPECT_EQ(b.pick(kAnyClient), kNoServer);
    spec.servers[0].runtime->drained = false;
    EXPECT_EQ(b.pick(kAnyClient), 0u);
  }
}

// `set weight` (ServerRuntime::weight) replaces the configured weight in a balancer built after
// it; 0 means the configured one.
TEST(BalancerTest, RunTimeWeightReplacesTheConfiguredOne) {
  BackendSpec spec = make_backend(Balance::kRoundRobin, {1, 1});
  spec.servers[0].runtime->weight = 3;
  Balancer b(spec, 9);
  EXPECT_EQ(tally(b, 2, 4 * 100), (std::vector<uint64_t>{300, 100, 0}));
  spec.servers[0].runtime->weight = 0;
  Balancer back(spec, 9);
  EXPECT_EQ(tally(back, 2, 2 * 100), (std::vector<uint64_t>{100, 100, 0}));
}

TEST(BalancerTest, BackupsOnlyWhileNoPrimaryIsUsable) {
  for (Balance balance : kAllBalances) {
    SCOPED_TRACE(to_string(balance));
    BackendSpec spec = make_backend(
        balance,
        std::vector<ServerSketch>{{1, true, 0}, {1, false, 0}, {1, true, 0}, {1, false, 2}});
    Balancer b(spec, 4);
    auto spread = [&] {
      std::vector<uint64_t> counts(5, 0);
      for (uint32_t k = 0; k < 400; ++k) {
        const uint32_t s = b.pick(client_number(k));
        ++counts[s == kNoServer ? 4 : s];
      }
      return counts;
    };
    std::vector<uint64_t> counts = spread();
    EXPECT_EQ(counts[0] + counts[2] + counts[4], 0u) << "a backup while primaries are up";
    set_up(spec, 1, false);
    set_current(spec, 3, 2);  // the other primary full
    counts = spread();
    EXPECT_EQ(counts[1] + counts[3] + counts[4], 0u);
    if (balance != Balance::kFirst) {
      EXPECT_GT(counts[0], 0u);
      EXPECT_GT(counts[2], 0u) << "both backups share the load";
    } else {
      EXPECT_EQ(counts[0], 400u) << "first: the first backup written";
    }
    set_up(spec, 1, true);
    counts = spread();
    EXPECT_EQ(counts[1], 400u) << "back to the primary that came back";
    set_current(spec, 3, 1);
    counts = spread();
    EXPECT_EQ(counts[0] + counts[2] + counts[4], 0u);
    // Both primaries usable again (leastconn and first keep to the emptier or earlier one).
    if (balance != Balance::kFirst && balance != Balance::kLeastConn) {
      EXPECT_GT(counts[3], 0u);
    }
  }
}

TEST(BalancerTest, NoServerWhenNothingIsUsable) {
  for (Balance balance : kAllBalances) {
    SCOPED_TRACE(to_string(balance));
    BackendSpec spec = make_backend(
        balance, std::vector<ServerSketch>{{2, false, 1}, {1, false, 0}, {1, true, 0}});
    Balancer b(spec, 5);
    set_current(spec, 0, 1);
    set_up(spec, 1, false);
    set_up(spec, 2, false);
    for (uint32_t k = 0; k < 50; ++k) EXPECT_EQ(b.pick(client_number(k)), kNoServer);
    EXPECT_EQ(b.pick(kAnyClient, 0), kNoServer) << "avoid does not make a full server usable";
    set_up(spec, 2, true);
    EXPECT_EQ(b.pick(kAnyClient), 2u);

    BackendSpec empty = make_backend(balance, std::vector<uint32_t>{});
    Balancer none(empty, 5);
    EXPECT_EQ(none.pick(kAnyClient), kNoServer);
    EXPECT_EQ(none.pick(kAnyClient, 3), kNoServer);
  }
}

// Many servers with half of them down: a pick still finds only up servers, and all of them.
TEST(BalancerTest, EveryAlgorithmWithHalfOfManyServersDown) {
  for (Balance balance : kAllBalances) {
    SCOPED_TRACE(to_string(balance));
    BackendSpec spec = equal_backend(balance, 1000);
    Balancer b(spec, 6);
    for (size_t i = 0; i < 1000; i += 2) set_up(spec, i, false);
    std::vector<uint64_t> counts(1001, 0);
    for (uint32_t k = 0; k < 20000; ++k) {
      const uint32_t s = b.pick(client_number(k));
      ++counts[s == kNoServer ? 1000 : s];
    }
    uint64_t on_down = 0;
    size_t used = 0;
    for (size_t i = 0; i < 1000; ++i) {
      if (i % 2 == 0) on_down += counts[i];
      used += counts[i] > 0 ? 1u : 0u;
    }
    EXPECT_EQ(on_down, 0u);
    EXPECT_EQ(counts[1000], 0u);
    if (balance == Balance::kFirst) {
      EXPECT_EQ(counts[1], 20000u);
    } else {
      EXPECT_EQ(used, 500u);
    }
  }
}

// ---- avoid

TEST(BalancerTest, AvoidHonouredWhileAnotherServerIsUsable) {
  for (Balance balance : kAllBalances) {
    SCOPED_TRACE(to_string(balance));
    BackendSpec spec = equal_backend(balance, 3);
    Balancer b(spec, 7);
    std::vector<uint64_t> counts(4, 0);
    for (uint32_t k = 0; k < 600; ++k) {
      const uint32_t s = b.pick(client_number(k), 1);
      ++counts[s == kNoServer ? 3 : s];
    }
    EXPECT_EQ(counts[1], 0u);
    EXPECT_EQ(counts[3], 0u);
    if (balance != Balance::kFirst) {
      EXPECT_GT(counts[0], 0u);
      EXPECT_GT(counts[2], 0u);
    }
  }
}

TEST(BalancerTest, AvoidIgnoredWhenItIsTheOnlyUsableServer) {
  for (Balance balance : kAllBalances) {
    SCOPED_TRACE(to_string(balance));
    BackendSpec spec = equal_backend(balance, 3);
    Balancer b(spec, 7);
    set_up(spec, 0, false);
    set_up(spec, 2, false);
    for (uint32_t k = 0; k < 20; ++k) EXPECT_EQ(b.pick(client_number(k), 1), 1u);
  }
}

// A retry goes to a backup rather than back to the one primary that just failed.
TEST(BalancerTest, AvoidPrefersABackupToTheFailedPrimary) {
  for (Balance balance : kAllBalances) {
    SCOPED_TRACE(to_string(balance));
    BackendSpec spec =
        make_backend(balance, std::vector<ServerSketch>{{1, false, 0}, {1, true, 0}});
    Balancer b(spec, 8);
    EXPECT_EQ(b.pick(kAnyClient), 0u);
    EXPECT_EQ(b.pick(kAnyClient, 0), 1u);
    set_up(spec, 1, false);
    EXPECT_EQ(b.pick(kAnyClient, 0), 0u);
  }
}

// ---- leastconn

TEST(BalancerTest, LeastConnPicksTheLeastLoadedAsCountsChange) {
  BackendSpec spec = equal_backend(Balance::kLeastConn, 3);
  Balancer b(spec, 1);
  set_current(spec, 0, 5);
  set_current(spec, 1, 2);
  set_current(spec, 2, 7);
  EXPECT_EQ(b.pick(kAnyClient), 1u);
  set_current(spec, 1, 9);  // other workers opened connections to it
  EXPECT_EQ(b.pick(kAnyClient), 0u);
  set_current(spec, 0, 8);
  EXPECT_EQ(b.pick(kAnyClient), 2u);
  // A count that fell is seen within ceil(3 / 2) picks (the refresh sweep), then chosen.
  set_current(spec, 2, 7);
  set_current(spec, 1, 0);
  uint32_t s = kNoServer;
  for (int k = 0; k < 3 && s != 1; ++k) s = b.pick(kAnyClient);
  EXPECT_EQ(s, 1u);
}

TEST(BalancerTest, LeastConnComparesCurrentPerWeight) {
  BackendSpec spec = make_backend(Balance::kLeastConn, {1, 3});
  Balancer b(spec, 1);
  set_current(spec, 0, 2);
  set_current(spec, 1, 5);  // 5/3 < 2/1
  EXPECT_EQ(b.pick(kAnyClient), 1u);
  set_current(spec, 1, 7);  // 7/3 > 2/1
  EXPECT_EQ(b.pick(kAnyClient), 0u);
}

TEST(BalancerTest, LeastConnRotatesAmongTies) {
  BackendSpec spec = equal_backend(Balance::kLeastConn, 5);
  Balancer b(spec, 1);
  const std::vector<uint32_t> picks = picks_of(b, 50);  // nobody's count moves
  for (size_t k = 0; k + 5 <= picks.size(); k += 5) {
    std::vector<uint32_t> round(picks.begin() + static_cast<long>(k),
                                picks.begin() + static_cast<long>(k + 5));
    std::sort(round.begin(), round.end());
    ASSERT_EQ(round, (std::vector<uint32_t>{0, 1, 2, 3, 4})) << "round at pick " << k;
  }
}

// The tree counts this worker's own picks at once, so while no other worker moves a count the
// pick is the exact minimum of current/weight over the usable servers (servers going down and
// filling up included).
TEST(BalancerTest, LeastConnIsExactForOneWorker) {
  std::mt19937_64 random(42);
  std::vector<ServerSketch> sketches;
  for (int i = 0; i < 200; ++i) {
    sketches.push_back({static_cast<uint32_t>(1 + random() % 8), false, 0});
  }
  sketches[17].max_connections = 30;
  BackendSpec spec = make_backend(Balance::kLeastConn, sketches);
  Balancer b(spec, 3);
  for (int k = 0; k < 5000; ++k) {
    if (k == 2000) set_up(spec, 40, false);
    if (k == 3000) set_current(spec, 41, current(spec, 41) + 500);  // rose: seen when a candidate
    const uint32_t s = b.pick(kAnyClient);
    ASSERT_LT(s, 200u);
    const ServerSpec& chosen = spec.servers[s];
    ASSERT_TRUE(chosen.runtime->up.load());
    for (size_t i = 0; i < 200; ++i) {
      const ServerSpec& other = spec.servers[i];
      const uint64_t c = other.runtime->stats.current;
      const bool usable =
          other.runtime->up.load() && (other.max_connections == 0 || c < other.max_connections);
      if (!usable) {
        ASSERT_NE(i, s) << "pick " << k;
        continue;
      }
      ASSERT_LE(chosen.runtime->stats.current * other.weight, c * chosen.weight)
          << "pick " << k << ": chose " << s << ", " << i << " was less loaded";
    }
    chosen.runtime->stats.current++;
  }
}

// Sixteen workers taking turns over 1 000 servers, each pick opening a connection and the one
// 4 096 picks older closing: every worker sees counts that others moved, and the load stays level.
TEST(BalancerTest, LeastConnKeepsLoadLevelAcrossWorkers) {
  constexpr size_t kServers = 1000;
  constexpr size_t kOpen = 4096;
  BackendSpec spec = equal_backend(Balance::kLeastConn, kServers);
  std::vector<Balancer> workers;
  for (uint64_t w = 0; w < 16; ++w) workers.emplace_back(spec, w);
  std::vector<uint32_t> open(kOpen, kNoServer);
  uint64_t worst_spread = 0;
  for (size_t k = 0; k < 40000; ++k) {
    const uint32_t s = workers[k % workers.size()].pick(kAnyClient);
    ASSERT_LT(s, kServers);
    if (open[k % kOpen] != kNoServer) spec.servers[open[k % kOpen]].runtime->stats.current--;
    spec.servers[s].runtime->stats.current++;
    open[k % kOpen] = s;
    if (k % 97 == 0 && k >= kOpen) {
      uint64_t lo = UINT64_MAX;
      uint64_t hi = 0;
      for (size_t i = 0; i < kServers; ++i) {
        lo = std::min(lo, current(spec, i));
        hi = std::max(hi, current(spec, i));
      }
      worst_spread = std::max(worst_spread, hi - lo);
    }
  }
  std::printf("[ leastconn ] 16 workers, 1000 servers, 4096 open: worst spread %lu\n",
              static_cast<unsigned long>(worst_spread));
  // Level would be 4 or 5 each; random placement (Poisson, mean 4.1) spreads 0 to 12 or more.
  EXPECT_LE(worst_spread, 7u);
}

// ---- random

TEST(BalancerTest, RandomTwoChoicesLeanTowardTheLessLoaded) {
  BackendSpec spec = equal_backend(Balance::kRandom, 2);
  Balancer b(spec, 12);
  set_current(spec, 0, 100);
  const size_t kPicks = 20000;
  const std::vector<uint64_t> counts = tally(b, 2, kPicks);
  // Server 0 wins only when both draws are server 0: 1/4 (one draw would give 1/2, the exact
  // least loaded 0).
  EXPECT_NEAR(static_cast<double>(counts[0]) / kPicks, 0.25, 0.02);

  BackendSpec ten = equal_backend(Balance::kRandom, 10);
  Balancer b10(ten, 12);
  set_current(ten, 3, 50);
  const std::vector<uint64_t> counts10 = tally(b10, 10, 100000);
  EXPECT_NEAR(static_cast<double>(counts10[3]) / 100000, 0.01, 0.003);  // (1/10)^2
}

TEST(BalancerTest, RandomDependsOnTheSeed) {
  BackendSpec spec = equal_backend(Balance::kRandom, 50);
  Balancer a(spec, 1);
  Balancer a_again(spec, 1);
  Balancer other(spec, 2);
  const std::vector<uint32_t> picks = picks_of(a, 100);
  EXPECT_EQ(picks, picks_of(a_again, 100));
  EXPECT_NE(picks, picks_of(other, 100));
}

// ---- source

TEST(BalancerTest, SourceKeepsAClientOnItsServer) {
  BackendSpec spec = equal_backend(Balance::kSource, 20);
  Balancer b(spec, 1);
  Balancer other_worker(spec, 99);
  std::vector<bool> used(20, false);
  for (uint32_t k = 0; k < 2000; ++k) {
    const uint32_t s = b.pick(client_number(k), kNoServer);
    ASSERT_LT(s, 20u);
    used[s] = true;
    EXPECT_EQ(b.pick(v4(0x0a000000u + k * 2654435761u, 1234)), s) << "the port does not count";
    EXPECT_EQ(other_worker.pick(client_number(k)), s) << "every worker agrees";
  }
  EXPECT_EQ(std::count(used.begin(), used.end(), true), 20);
}

TEST(BalancerTest, SourceHashesIPv6AndMapsIPv4MappedToIPv4) {
  BackendSpec spec = equal_backend(Balance::kSource, 20);
  Balancer b(spec, 1);
  std::vector<bool> used(20, false);
  for (uint32_t k = 0; k < 2000; ++k) {
    char text[64];
    std::snprintf(text, sizeof text, "2001:db8:%x::%x", k / 7, k * 13);
    const uint32_t s = b.pick(v6(text, 1));
    ASSERT_LT(s, 20u);
    used[s] = true;
    EXPECT_EQ(b.pick(v6(text, 2)), s);
  }
  EXPECT_EQ(std::count(used.begin(), used.end(), true), 20);
  EXPECT_EQ(b.pick(v6("::ffff:192.0.2.7")), b.pick(v4(0xc0000207)));
  // Unix clients have no address: one server for all of them.
  const uint32_t s = b.pick(unix_client());
  ASSERT_LT(s, 20u);
  EXPECT_EQ(b.pick(unix_client()), s);
}

// Removing server `gone` of n (a new balancer over the backend without it): every client whose
// server remains keeps it; returns the share of clients that moved.
double share_moved_by_removal(size_t n, size_t gone, uint32_t clients) {
  BackendSpec before = equal_backend(Balance::kSource, n);
  BackendSpec after = before;
  after.servers.erase(after.servers.begin() + static_cast<long>(gone));
  Balancer b_before(before, 1);
  Balancer b_after(after, 2);
  std::mt19937_64 random(n);
  uint64_t moved = 0;
  std::vector<uint64_t> moved_to(n, 0);
  for (uint32_t k = 0; k < clients; ++k) {
    const SocketAddress client = v4(static_cast<uint32_t>(random()));
    const uint32_t old_server = b_before.pick(client);
    uint32_t new_server = b_after.pick(client);
    EXPECT_NE(new_server, kNoServer);
    if (new_server >= gone) ++new_server;  // back to the old numbering
    if (old_server == gone) {
      ++moved;
      ++moved_to[new_server];
    } else {
      EXPECT_EQ(new_server, old_server) << "client " << k << " moved off a server that stayed";
    }
  }
  // The removed server's clients spread over the others rather than landing on one neighbour.
  EXPECT_GE(static_cast<size_t>(
                std::count_if(moved_to.begin(), moved_to.end(), [](uint64_t c) { return c > 0; })),
            std::min<size_t>(n - 1, 5));
  return static_cast<double>(moved) / clients;
}

TEST(BalancerTest, SourceRemovingOneServerMovesOnlyItsClients) {
  for (size_t n : {10u, 100u}) {
    for (size_t gone : {size_t{0}, n / 2, n - 1}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " gone=" + std::to_string(gone));
      const double share = share_moved_by_removal(n, gone, 100000);
      const double ideal = 1.0 / static_cast<double>(n);
      std::printf("[ share moved ] N=%zu removed s%zu: %.3f%% of 100000 clients (1/N = %.3f%%)\n",
                  n, gone, 100 * share, 100 * ideal);
      EXPECT_GT(share, 0.6 * ideal);
      EXPECT_LT(share, 1.4 * ideal);
    }
  }
}

// A server going down moves only its clients too, and they come back when it is up again.
TEST(BalancerTest, SourceDownServerMovesOnlyItsClients) {
  BackendSpec spec = equal_backend(Balance::kSource, 10);
  Balancer b(spec, 1);
  std::vector<uint32_t> home;
  for (uint32_t k = 0; k < 10000; ++k) home.push_back(b.pick(client_number(k)));
  set_up(spec, 4, false);
  uint32_t moved = 0;
  for (uint32_t k = 0; k < 10000; ++k) {
    const uint32_t s = b.pick(client_number(k));
    if (home[k] == 4) {
      EXPECT_NE(s, 4u);
      ++moved;
    } else {
      EXPECT_EQ(s, home[k]);
    }
  }
  EXPECT_GT(moved, 500u);
  set_up(spec, 4, true);
  for (uint32_t k = 0; k < 10000; ++k) EXPECT_EQ(b.pick(client_number(k)), home[k]);
}

// ---- first

TEST(BalancerTest, FirstFillsServersInOrderWithMaxConnections) {
  BackendSpec spec = make_backend(
      Balance::kFirst, std::vector<ServerSketch>{{1, false, 2}, {5, false, 2}, {1, false, 2}});
  Balancer b(spec, 1);
  std::vector<uint32_t> picks;
  for (int k = 0; k < 7; ++k) {
    const uint32_t s = b.pick(kAnyClient);
    picks.push_back(s);
    if (s != kNoServer) spec.servers[s].runtime->stats.current++;
  }
  EXPECT_EQ(picks, (std::vector<uint32_t>{0, 0, 1, 1, 2, 2, kNoServer}));
  spec.servers[0].runtime->stats.current--;  // a connection to the first server closed
  EXPECT_EQ(b.pick(kAnyClient), 0u);
  set_current(spec, 0, 0);
  set_up(spec, 0, false);
  set_current(spec, 1, 1);
  EXPECT_EQ(b.pick(kAnyClient), 1u);
}

// ---- least cost (rtt, most-idle: the worker passes one cost per server)

// `picks` pick_least() calls over `cost`, counted per server (the last slot counts kNoServer).
std::vector<uint64_t> least_tally(Balancer& b, const std::vector<uint64_t>& cost, size_t picks,
                                  uint32_t avoid = kNoServer) {
  std::vector<uint64_t> counts(cost.size() + 1, 0);
  for (size_t k = 0; k < picks; ++k) {
    const uint32_t s = b.pick_least(cost, avoid);
    ++counts[s == kNoServer ? cost.size() : s];
  }
  return counts;
}

TEST(BalancerTest, PickLeastTakesTheLowestCost) {
  BackendSpec spec = equal_backend(Balance::kRtt, 4);
  Balancer b(spec, 1);
  EXPECT_EQ(least_tally(b, {30, 10, 20, 40}, 50), (std::vector<uint64_t>{0, 50, 0, 0, 0}));
  EXPECT_EQ(b.pick_least(std::vector<uint64_t>{30, 10, 5, 40}), 2u) << "costs change per call";
  const std::vector<uint64_t> huge{UINT64_MAX, UINT64_MAX - 1, 7, UINT64_MAX};
  EXPECT_EQ(b.pick_least(huge), 2u) << "costs are clamped before the product: no overflow";
}

TEST(BalancerTest, PickLeastTiesRotateFromTheServerChosenLast) {
  BackendSpec spec = equal_backend(Balance::kMostIdle, 4);
  Balancer b(spec, 1);
  const std::vector<uint64_t> cost{5, 3, 5, 3};
  std::vector<uint32_t> picks;
  for (int k = 0; k < 6; ++k) picks.push_back(b.pick_least(cost));
  EXPECT_EQ(picks, (std::vector<uint32_t>{1, 3, 1, 3, 1, 3}));
  EXPECT_EQ(least_tally(b, {0, 0, 0, 0}, 400), (std::vector<uint64_t>{100, 100, 100, 100, 0}));
}

TEST(BalancerTest, PickLeastDividesTheCostByTheWeight) {
  BackendSpec spec = make_backend(Balance::kRtt, {1, 4, 2});
  Balancer b(spec, 1);
  // 100 * 256 / 1 = 25600, 300 * 256 / 4 = 19200, 160 * 256 / 2 = 20480.
  EXPECT_EQ(b.pick_least(std::vector<uint64_t>{100, 300, 160}), 1u);
  EXPECT_EQ(b.pick_least(std::vector<uint64_t>{100, 500, 160}), 2u);
  // Equal per-weight costs tie, and take turns.
  EXPECT_EQ(least_tally(b, {10, 40, 20}, 300), (std::vector<uint64_t>{100, 100, 100, 0}));
}

TEST(BalancerTest, PickLeastSkipsDownDrainedAndFullServers) {
  BackendSpec spec = make_backend(
      Balance::kRtt,
      std::vector<ServerSketch>{{1, false, 0}, {1, false, 0}, {1, false, 3}, {1, false, 0}});
  Balancer b(spec, 1);
  const std::vector<uint64_t> cost{1, 2, 3, 4};
  set_up(spec, 0, false);
  EXPECT_EQ(b.pick_least(cost), 1u);
  spec.servers[1].runtime->drained = true;
  EXPECT_EQ(b.pick_least(cost), 2u);
  set_current(spec, 2, 3);  // at its max-connections
  EXPECT_EQ(b.pick_least(cost), 3u);
  set_current(spec, 2, 2);
  EXPECT_EQ(b.pick_least(cost), 2u);
  set_up(spec, 0, true);
  EXPECT_EQ(b.pick_least(cost), 0u);
}

TEST(BalancerTest, PickLeastUsesBackupsOnlyWhileNoPrimaryIsUsable) {
  BackendSpec spec = make_backend(
      Balance::kMostIdle, std::vector<ServerSketch>{{1, true, 0}, {1, false, 0}, {1, false, 0}});
  Balancer b(spec, 1);
  const std::vector<uint64_t> cost{0, 9, 8};  // the backup is cheapest, yet second
  EXPECT_EQ(least_tally(b, cost, 10), (std::vector<uint64_t>{0, 0, 10, 0}));
  set_up(spec, 2, false);
  EXPECT_EQ(b.pick_least(cost), 1u);
  set_up(spec, 1, false);
  EXPECT_EQ(b.pick_least(cost), 0u);
  set_up(spec, 0, false);
  EXPECT_EQ(b.pick_least(cost), kNoServer);
}

TEST(BalancerTest, PickLeastAvoidsWhileAnotherIsUsable) {
  BackendSpec spec = make_backend(
      Balance::kRtt, std::vector<ServerSketch>{{1, false, 0}, {1, false, 0}, {1, true, 0}});
  Balancer b(spec, 1);
  const std::vector<uint64_t> cost{1, 5, 9};
  EXPECT_EQ(least_tally(b, cost, 10, 0), (std::vector<uint64_t>{0, 10, 0, 0}));
  set_up(spec, 1, false);
  EXPECT_EQ(b.pick_least(cost, 0), 2u) << "a backup before the avoided primary";
  set_up(spec, 2, false);
  EXPECT_EQ(b.pick_least(cost, 0), 0u) << "the avoided server when it is the only usable one";
}

TEST(BalancerTest, PickLeastWithEveryServerUnusable) {
  BackendSpec spec = make_backend(
      Balance::kRtt, std::vector<ServerSketch>{{1, false, 1}, {1, false, 0}, {1, true, 0}});
  Balancer b(spec, 1);
  set_current(spec, 0, 1);
  spec.servers[1].runtime->drained = true;
  set_up(spec, 2, false);
  EXPECT_EQ(b.pick_least(std::vector<uint64_t>{0, 0, 0}), kNoServer);
  EXPECT_EQ(b.pick_least(std::vector<uint64_t>{0, 0, 0}, 1), kNoServer);
}

TEST(BalancerTest, PickOnAPerRequestBackendIsRoundRobin) {
  for (Balance balance : {Balance::kRtt, Balance::kMostIdle}) {
    SCOPED_TRACE(to_string(balance));
    BackendSpec spec = make_backend(balance, {5, 1, 1});
    BackendSpec reference = make_backend(Balance::kRoundRobin, {5, 1, 1});
    Balancer b(spec, 7);
    Balancer r(reference, 7);
    EXPECT_EQ(picks_of(b, 70), picks_of(r, 70));
  }
}

}  // namespace
}  // namespace edgeproxy
