// Balancer micro benchmark: one pick() over 1 000 servers for each algorithm, all up, every other
// one down, the first 500 down, and weights 1-256 mixed; with the counts still, or kept as a
// worker keeps them (each pick opens a connection, the one 4 096 picks older closes).
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edgeproxy/balancer.h"

namespace edgeproxy {
namespace {

constexpr uint32_t kServers = 1000;
constexpr uint32_t kClients = 4096;  // also the number of connections held open with churn

enum Mode : int64_t { kAllUp, kEveryOtherDown, kFirstHalfDown, kMixedWeights };

BackendSpec make_backend(Balance balance, int64_t mode) {
  BackendSpec spec;
  spec.balance = balance;
  for (uint32_t i = 0; i < kServers; ++i) {
    ServerSpec s;
    s.name = "s" + std::to_string(i);
    s.endpoint.host = "10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256);
    s.endpoint.port = 80;
    s.weight = mode == kMixedWeights ? 1 + (i * 37) % 256 : 1;
    s.runtime = std::make_shared<ServerRuntime>();
    const bool down =
        (mode == kEveryOtherDown && i % 2 == 0) || (mode == kFirstHalfDown && i < 500);
    s.runtime->up = !down;
    spec.servers.push_back(std::move(s));
  }
  return spec;
}

std::vector<SocketAddress> make_clients() {
  std::vector<SocketAddress> clients(kClients);
  for (uint32_t k = 0; k < kClients; ++k) {
    auto* in = reinterpret_cast<sockaddr_in*>(&clients[k].storage);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(0x0a000000u + k * 2654435761u);
    clients[k].length = sizeof(sockaddr_in);
  }
  return clients;
}

// Args: balance, mode, churn (0: counts still, 1: kept like a worker keeps them).
void BM_BalancerPick(benchmark::State& state) {
  const auto balance = static_cast<Balance>(state.range(0));
  const BackendSpec spec = make_backend(balance, state.range(1));
  const bool churn = state.range(2) != 0;
  Balancer balancer(spec, 1);
  const std::vector<SocketAddress> clients = make_clients();
  std::vector<uint32_t> open(kClients, Balancer::kNoServer);
  uint32_t k = 0;
  for (auto _ : state) {
    const uint32_t server = balancer.pick(clients[k]);
    benchmark::DoNotOptimize(server);
    if (churn) {
      if (open[k] != Balancer::kNoServer) {
        spec.servers[open[k]].runtime->stats.current.fetch_sub(1, std::memory_order_relaxed);
      }
      if (server != Balancer::kNoServer) {
        spec.servers[server].runtime->stats.current.fetch_add(1, std::memory_order_relaxed);
      }
      open[k] = server;
    }
    k = (k + 1) & (kClients - 1);
  }
}

void balancer_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"balance", "mode", "churn"});
  for (int64_t balance = 0; balance <= static_cast<int64_t>(Balance::kFirst); ++balance) {
    for (int64_t mode : {kAllUp, kEveryOtherDown, kFirstHalfDown, kMixedWeights}) {
      for (int64_t churn : {0, 1}) b->Args({balance, mode, churn});
    }
  }
}
BENCHMARK(BM_BalancerPick)->Apply(balancer_args);

// Leastconn with `workers` balancers over the same servers taking turns, as workers on other
// threads would between two picks of one: each pick opens a connection, the one 4 096 picks
// older closes. Time per pick, all workers' picks counted.
void BM_BalancerLeastConnWorkers(benchmark::State& state) {
  const BackendSpec spec = make_backend(Balance::kLeastConn, state.range(0));
  std::vector<Balancer> workers;
  for (int64_t w = 0; w < state.range(1); ++w) workers.emplace_back(spec, static_cast<uint64_t>(w));
  const std::vector<SocketAddress> clients = make_clients();
  std::vector<uint32_t> open(kClients, Balancer::kNoServer);
  uint32_t k = 0;
  size_t turn = 0;
  for (auto _ : state) {
    const uint32_t server = workers[turn].pick(clients[k]);
    benchmark::DoNotOptimize(server);
    if (open[k] != Balancer::kNoServer) {
      spec.servers[open[k]].runtime->stats.current.fetch_sub(1, std::memory_order_relaxed);
    }
    spec.servers[server].runtime->stats.current.fetch_add(1, std::memory_order_relaxed);
    open[k] = server;
    k = (k + 1) & (kClients - 1);
    if (++turn == workers.size()) turn = 0;
  }
}
BENCHMARK(BM_BalancerLeastConnWorkers)
    ->ArgNames({"mode", "workers"})
    ->ArgsProduct({{kAllUp, kMixedWeights}, {1, 4, 16}});

// Building one balancer over 1 000 servers, weights all 1 or 1-256 mixed (Args: balance, mode):
// what installing a topology costs a worker per backend.
void BM_BalancerBuild(benchmark::State& state) {
  const auto balance = static_cast<Balance>(state.range(0));
  const BackendSpec spec = make_backend(balance, state.range(1));
  for (auto _ : state) {
    Balancer balancer(spec, 1);
    benchmark::DoNotOptimize(&balancer);
  }
}
BENCHMARK(BM_BalancerBuild)
    ->ArgNames({"balance", "mode"})
    ->ArgsProduct({benchmark::CreateDenseRange(0, static_cast<int64_t>(Balance::kFirst), 1),
                   {kAllUp, kMixedWeights}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace edgeproxy
