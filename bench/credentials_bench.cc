// Basic authentication micro benchmarks: one SHA-256-crypt verify at the default 5000 rounds (a
// known and an unknown user), a verdict cache hit, parse_basic, and SHA-256 of one header value.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string_view>
#include <utility>

#include "edgeproxy/credentials.h"
#include "edgeproxy/sha256.h"

namespace edgeproxy {
namespace {

// `openssl passwd -5 -salt abcdefgh secret` (5000 rounds).
constexpr std::string_view kUsers =
    "frank:$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.\n";
// "Basic " + base64("frank:secret").
constexpr std::string_view kHeader = "Basic ZnJhbms6c2VjcmV0";

Credentials load() {
  auto c = Credentials::parse(kUsers, "bench");
  if (!c.ok()) std::abort();
  return std::move(c.value());
}

void BM_VerifyKnownUser5000Rounds(benchmark::State& state) {
  const Credentials creds = load();
  for (auto _ : state) benchmark::DoNotOptimize(creds.verify("frank", "secret"));
}
BENCHMARK(BM_VerifyKnownUser5000Rounds)->Unit(benchmark::kMicrosecond);

void BM_VerifyUnknownUser5000Rounds(benchmark::State& state) {
  const Credentials creds = load();
  for (auto _ : state) benchmark::DoNotOptimize(creds.verify("mallory", "secret"));
}
BENCHMARK(BM_VerifyUnknownUser5000Rounds)->Unit(benchmark::kMicrosecond);

// What a request with a cached header costs: SHA-256 of the value and a set lookup.
void BM_CredentialCacheHit(benchmark::State& state) {
  CredentialCache cache(256);
  cache.insert(kHeader, CachedVerdict{CacheVerdict::kGood, 0});
  for (auto _ : state) benchmark::DoNotOptimize(cache.lookup(kHeader));
}
BENCHMARK(BM_CredentialCacheHit);

void BM_CredentialCacheMiss(benchmark::State& state) {
  CredentialCache cache(256);
  for (auto _ : state) benchmark::DoNotOptimize(cache.lookup(kHeader));
}
BENCHMARK(BM_CredentialCacheMiss);

void BM_ParseBasic(benchmark::State& state) {
  char scratch[64];
  std::string_view user, password;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse_basic(kHeader, scratch, sizeof scratch, user, password));
    benchmark::DoNotOptimize(user);
  }
}
BENCHMARK(BM_ParseBasic);

void BM_Sha256OneBlock(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(sha256(kHeader));
}
BENCHMARK(BM_Sha256OneBlock);

}  // namespace
}  // namespace edgeproxy
