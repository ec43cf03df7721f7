// DnsCache: hits, misses, case-insensitive keys, expiry at the exact millisecond, LRU eviction
// (directly and against a model under random operations), truncation, refusals and clear().
#include "edgeproxy/dns_cache.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdint>
#include <list>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace edgeproxy {
namespace {

// 10.0.0.n:port, or [fd00::n]:port when v6.
SocketAddress Addr(uint32_t n, uint16_t port = 443, bool v6 = false) {
  SocketAddress a;
  if (v6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    in6->sin6_addr.s6_addr[0] = 0xfd;
    in6->sin6_addr.s6_addr[15] = static_cast<uint8_t>(n);
    in6->sin6_addr.s6_addr[14] = static_cast<uint8_t>(n >> 8);
    a.length = sizeof(sockaddr_in6);
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr.s_addr = htonl(0x0a000000u + n);
    a.length = sizeof(sockaddr_in);
  }
  return a;
}

std::vector<std::string> Texts(std::span<const SocketAddress> addresses) {
  std::vector<std::string> out;
  for (const SocketAddress& a : addresses) out.push_back(a.to_string());
  return out;
}

TEST(DnsCacheTest, HitReturnsWhatWasInserted) {
  DnsCache c(DnsCache::kDefaultEntries, 30'000);
  EXPECT_TRUE(c.enabled());
  EXPECT_EQ(c.capacity(), 256u);
  EXPECT_EQ(c.ttl_ms(), 30'000);
  EXPECT_TRUE(c.lookup("example.com", 443, 0).empty());
  const SocketAddress addrs[] = {Addr(1), Addr(2, 443, true), Addr(3)};
  c.insert("example.com", 443, addrs, 1000);
  EXPECT_EQ(c.size(), 1u);
  auto hit = c.lookup("example.com", 443, 1001);
  EXPECT_EQ(Texts(hit),
            (std::vector<std::string>{"10.0.0.1:443", "[fd00::2]:443", "10.0.0.3:443"}));
  // The span points into the cache and stays put across lookups.
  auto again = c.lookup("example.com", 443, 1002);
  EXPECT_EQ(again.data(), hit.data());
}

TEST(DnsCacheTest, NamesCompareWithoutCaseButPortsAndDotsCount) {
  DnsCache c(16, 1000);
  const SocketAddress a[] = {Addr(1)};
  c.insert("Example.COM", 443, a, 0);
  EXPECT_EQ(c.lookup("example.com", 443, 1).size(), 1u);
  EXPECT_EQ(c.lookup("EXAMPLE.COM", 443, 1).size(), 1u);
  EXPECT_EQ(c.lookup("eXaMpLe.CoM", 443, 1).size(), 1u);
  EXPECT_TRUE(c.lookup("example.com.", 443, 1).empty()) << "a trailing dot is another name";
  EXPECT_TRUE(c.lookup("example.com", 80, 1).empty()) << "another port";
  EXPECT_TRUE(c.lookup("example.co", 443, 1).empty());
  EXPECT_TRUE(c.lookup("example.comm", 443, 1).empty());
  // Only ASCII letters fold: bytes above 127 compare exactly.
  const SocketAddress b[] = {Addr(2)};
  c.insert("\xc3\x89t\xc3\xa9.example", 443, b, 0);
  EXPECT_EQ(c.lookup("\xc3\x89T\xc3\xa9.EXAMPLE", 443, 1).size(), 1u);
  EXPECT_TRUE(c.lookup("\xc3\xa9t\xc3\xa9.example", 443, 1).empty());
  // The same name on two ports is two entries.
  const SocketAddress d[] = {Addr(3, 80)};
  c.insert("example.com", 80, d, 0);
  EXPECT_EQ(c.size(), 3u);
  EXPECT_EQ(c.lookup("example.com", 80, 1)[0].to_string(), "10.0.0.3:80");
  EXPECT_EQ(c.lookup("example.com", 443, 1)[0].to_string(), "10.0.0.1:443");
}

TEST(DnsCacheTest, EntriesExpireTtlAfterTheirInsert) {
  DnsCache c(16, 500);
  const SocketAddress a[] = {Addr(1)};
  c.insert("a.example", 443, a, 1000);
  EXPECT_EQ(c.lookup("a.example", 443, 1000).size(), 1u);
  EXPECT_EQ(c.lookup("a.example", 443, 1499).size(), 1u) << "a hit does not extend the TTL";
  EXPECT_TRUE(c.lookup("a.example", 443, 1500).empty()) << "expired at insert + ttl";
  EXPECT_EQ(c.size(), 0u) << "dropped when found expired";
  EXPECT_TRUE(c.lookup("a.example", 443, 1000).empty()) << "gone, not hidden";
}

TEST(DnsCacheTest, ReinsertReplacesAddressesAndExpiry) {
  DnsCache c(16, 500);
  const SocketAddress first[] = {Addr(1), Addr(2)};
  const SocketAddress second[] = {Addr(9)};
  c.insert("a.example", 443, first, 0);
  c.insert("A.example", 443, second, 400);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(Texts(c.lookup("a.example", 443, 899)), std::vector<std::string>{"10.0.0.9:443"});
  EXPECT_TRUE(c.lookup("a.example", 443, 900).empty());
}

TEST(DnsCacheTest, KeepsTheFirstAddressesOnly) {
  DnsCache c(4, 1000);
  std::vector<SocketAddress> many;
  for (uint32_t i = 1; i <= 12; ++i) many.push_back(Addr(i));
  c.insert("many.example", 443, many, 0);
  auto hit = c.lookup("many.example", 443, 1);
  ASSERT_EQ(hit.size(), kMaxResolvedAddresses);
  for (uint32_t i = 0; i < kMaxResolvedAddresses; ++i) EXPECT_TRUE(hit[i] == many[i]) << i;
}

TEST(DnsCacheTest, RefusesWhatNoEntryCanHold) {
  DnsCache c(4, 1000);
  const SocketAddress a[] = {Addr(1)};
  c.insert("", 443, a, 0);
  c.insert(std::string(kMaxHostBytes + 1, 'h'), 443, a, 0);
  c.insert("empty.example", 443, {}, 0);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_TRUE(c.lookup("", 443, 1).empty());
  EXPECT_TRUE(c.lookup(std::string(kMaxHostBytes + 1, 'h'), 443, 1).empty());
  EXPECT_TRUE(c.lookup("empty.example", 443, 1).empty());
  const std::string longest(kMaxHostBytes, 'h');
  c.insert(longest, 443, a, 0);
  EXPECT_EQ(c.lookup(longest, 443, 1).size(), 1u);
  EXPECT_TRUE(c.lookup(longest.substr(1), 443, 1).empty());
}

TEST(DnsCacheTest, DisabledCacheStoresNothing) {
  for (auto [entries, ttl] : {std::pair<uint32_t, int64_t>{256, 0}, {256, -5}, {0, 1000}}) {
    DnsCache c(entries, ttl);
    EXPECT_FALSE(c.enabled());
    const SocketAddress a[] = {Addr(1)};
    c.insert("a.example", 443, a, 0);
    EXPECT_EQ(c.size(), 0u);
    EXPECT_TRUE(c.lookup("a.example", 443, 0).empty());
    c.clear();
  }
}

TEST(DnsCacheTest, FullTableEvictsTheLeastRecentlyUsed) {
  DnsCache c(4, 1'000'000);
  const SocketAddress a[] = {Addr(1)};
  for (const char* name : {"a", "b", "c", "d"}) c.insert(name, 1, a, 0);
  EXPECT_EQ(c.size(), 4u);
  EXPECT_FALSE(c.lookup("a", 1, 1).empty());  // a is now the most recent; b the least
  c.insert("e", 1, a, 2);
  EXPECT_EQ(c.size(), 4u);
  EXPECT_TRUE(c.lookup("b", 1, 3).empty());
  for (const char* name : {"a", "c", "d", "e"}) EXPECT_FALSE(c.lookup(name, 1, 3).empty()) << name;
  // From the most recent: e, d, c, a. Reinserting counts as a use: a, e, d, c; then f evicts c.
  c.insert("a", 1, a, 4);
  c.insert("f", 1, a, 5);
  EXPECT_TRUE(c.lookup("c", 1, 6).empty());
  for (const char* name : {"a", "d", "e", "f"}) EXPECT_FALSE(c.lookup(name, 1, 6).empty()) << name;
}

TEST(DnsCacheTest, OneEntryTable) {
  DnsCache c(1, 100);
  const SocketAddress a[] = {Addr(1)};
  const SocketAddress b[] = {Addr(2)};
  c.insert("a", 1, a, 0);
  c.insert("b", 1, b, 0);
  EXPECT_TRUE(c.lookup("a", 1, 1).empty());
  EXPECT_EQ(Texts(c.lookup("b", 1, 1)), std::vector<std::string>{"10.0.0.2:443"});
  EXPECT_TRUE(c.lookup("b", 1, 100).empty());
  c.insert("a", 1, a, 200);
  EXPECT_EQ(c.size(), 1u);
}

TEST(DnsCacheTest, ClearForgetsEverythingAndTheTableRefills) {
  DnsCache c(8, 1000);
  const SocketAddress a[] = {Addr(1)};
  for (int i = 0; i < 8; ++i) c.insert("n" + std::to_string(i), 1, a, 0);
  EXPECT_EQ(c.size(), 8u);
  c.clear();
  EXPECT_EQ(c.size(), 0u);
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(c.lookup("n" + std::to_string(i), 1, 1).empty());
  for (int i = 0; i < 8; ++i) c.insert("m" + std::to_string(i), 1, a, 0);
  EXPECT_EQ(c.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_FALSE(c.lookup("m" + std::to_string(i), 1, 1).empty());
}

TEST(DnsCacheTest, ExpiryNearTheEndOfTime) {
  DnsCache c(2, 1000);
  const SocketAddress a[] = {Addr(1)};
  c.insert("late", 1, a, INT64_MAX - 10);
  EXPECT_FALSE(c.lookup("late", 1, INT64_MAX - 1).empty()) << "now + ttl saturates";
}

TEST(DnsCacheTest, MoreThanTheMaximumAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(DnsCache(DnsCache::kMaxEntries + 1, 1000), "entries <= kMaxEntries");
}

// The cache against a plain model: an LRU list of (name, port) with values and expiries.
TEST(DnsCacheTest, MatchesAnLruModelUnderRandomOperations) {
  for (const uint32_t capacity : {1u, 3u, 16u, 100u}) {
    const int64_t ttl = 50;
    DnsCache c(capacity, ttl);
    struct Value {
      std::vector<std::string> texts;
      int64_t expires_ms;
    };
    using Key = std::pair<std::string, uint16_t>;
    std::list<Key> lru;  // front: most recent
    std::map<Key, std::pair<Value, std::list<Key>::iterator>> model;
    std::mt19937 engine(capacity);
    const auto rng = [&engine] { return static_cast<uint32_t>(engine()); };
    int64_t now = 0;
    int hits = 0;
    for (int op = 0; op < 20'000; ++op) {
      now += static_cast<int64_t>(rng() % 3);
      const uint32_t n = rng() % (capacity * 2 + 3);
      std::string name = "host" + std::to_string(n) + ".example";
      if (rng() % 2) name[0] = 'H';  // same key either way
      const uint16_t port = static_cast<uint16_t>(rng() % 2 ? 443 : 80);
      const Key key{"host" + std::to_string(n) + ".example", port};
      auto it = model.find(key);
      if (rng() % 3 == 0) {
        std::vector<SocketAddress> addrs;
        const uint32_t count = 1 + rng() % 10;
        for (uint32_t i = 0; i < count; ++i) addrs.push_back(Addr(rng() % 65536, port, i % 2 == 1));
        c.insert(name, port, addrs, now);
        Value v{Texts(std::span(addrs).first(std::min<size_t>(count, kMaxResolvedAddresses))),
                now + ttl};
        if (it != model.end()) {
          lru.erase(it->second.second);
          model.erase(it);
        } else if (model.size() == capacity) {
          model.erase(lru.back());
          lru.pop_back();
        }
        lru.push_front(key);
        model.emplace(key, std::make_pair(v, lru.begin()));
      } else {
        auto got = c.lookup(name, port, now);
        if (it == model.end()) {
          ASSERT_TRUE(got.empty()) << "op " << op << ": " << name;
        } else if (now >= it->second.first.expires_ms) {
          ASSERT_TRUE(got.empty()) << "op " << op << ": expired " << name;
          lru.erase(it->second.second);
          model.erase(it);
        } else {
          ASSERT_EQ(Texts(got), it->second.first.texts) << "op " << op << ": " << name;
          lru.erase(it->second.second);
          lru.push_front(key);
          it->second.second = lru.begin();
          ++hits;
        }
      }
      ASSERT_EQ(c.size(), model.size()) << "op " << op;
    }
    EXPECT_GT(hits, 100) << "the model exercised hits";
  }
}

}  // namespace
}  // namespace edgeproxy
