// ClientTable: who counts as one client (IPv4, IPv6 prefixes, mapped, Unix), the concurrent and
// rate limits, eviction and the full table, and the limit held across threads.
#include "edgeproxy/client_table.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "edgeproxy/resolver.h"

namespace edgeproxy {
namespace {

constexpr uint64_t kSeed = 0x5eed5eed5eed5eedull;

SocketAddress Address(const char* ip, uint16_t port = 40000) {
  SocketAddress a;
  EXPECT_TRUE(numeric_address(ip, port, a)) << ip;
  return a;
}

SocketAddress V4(uint32_t n) {
  SocketAddress a = Address("0.0.0.0");
  reinterpret_cast<sockaddr_in*>(&a.storage)->sin_addr.s_addr = htonl(n);
  return a;
}

// Admits with a concurrent limit of `max` and no rate limit; the slot is dropped.
Admission Admit(ClientTable& t, const SocketAddress& a, uint32_t max) {
  uint32_t slot = 0;
  return t.admit(a, max, 0, 0, slot);
}

TEST(ClientTableTest, EntriesFor) {
  EXPECT_EQ(ClientTable::entries_for(0), ClientTable::kMinEntries);
  EXPECT_EQ(ClientTable::entries_for(1000), 2048u);
  EXPECT_EQ(ClientTable::entries_for(1024), 2048u);
  EXPECT_EQ(ClientTable::entries_for(1025), 4096u);
  EXPECT_EQ(ClientTable::entries_for(UINT32_MAX), ClientTable::kMaxEntries);
  EXPECT_EQ(ClientTable(5, 64, kSeed).entries(), ClientTable::kWays);
  EXPECT_EQ(ClientTable(1000, 64, kSeed).entries(), 1024u);
}

TEST(ClientTableTest, ConcurrentLimitPerIPv4AddressWithRelease) {
  ClientTable t(1024, 64, kSeed);
  uint32_t s1 = 0, s2 = 0, refused = 0;
  EXPECT_EQ(t.admit(Address("192.0.2.1", 1), 2, 0, 0, s1), Admission::kAdmitted);
  EXPECT_EQ(t.admit(Address("192.0.2.1", 2), 2, 0, 0, s2), Admission::kAdmitted);
  EXPECT_EQ(t.clients(), 1u);
  EXPECT_EQ(t.admit(Address("192.0.2.1", 3), 2, 0, 0, refused), Admission::kTooMany)
      << "a new port is the same client";
  EXPECT_EQ(refused, ClientTable::kNoSlot);
  EXPECT_EQ(Admit(t, Address("192.0.2.2"), 2), Admission::kAdmitted) << "another client";
  EXPECT_EQ(t.clients(), 2u);
  t.release(s1);
  uint32_t s3 = 0;
  EXPECT_EQ(t.admit(Address("192.0.2.1"), 2, 0, 0, s3), Admission::kAdmitted);
  EXPECT_EQ(s3, s2) << "one entry for the client";
  t.release(s2);
  t.release(s3);
  EXPECT_EQ(t.clients(), 1u);
}

TEST(ClientTableTest, IPv6ClientsAreGroupedByPrefix) {
  ClientTable t64(1024, 64, kSeed);
  EXPECT_EQ(Admit(t64, Address("2001:db8:1:2::1"), 2), Admission::kAdmitted);
  EXPECT_EQ(Admit(t64, Address("2001:db8:1:2:ffff:ffff:ffff:ffff"), 2), Admission::kAdmitted);
  EXPECT_EQ(Admit(t64, Address("2001:db8:1:2:1234::"), 2), Admission::kTooMany)
      << "one /64, one count";
  EXPECT_EQ(Admit(t64, Address("2001:db8:1:3::1"), 2), Admission::kAdmitted) << "another /64";

  ClientTable t128(1024, 128, kSeed);
  EXPECT_EQ(Admit(t128, Address("2001:db8::1"), 1), Admission::kAdmitted);
  EXPECT_EQ(Admit(t128, Address("2001:db8::2"), 1), Admission::kAdmitted);
  EXPECT_EQ(Admit(t128, Address("2001:db8::1"), 1), Admission::kTooMany);

  ClientTable t48(1024, 48, kSeed);
  EXPECT_EQ(Admit(t48, Address("2001:db8:1:2::1"), 1), Admission::kAdmitted);
  EXPECT_EQ(Admit(t48, Address("2001:db8:1:ffff::1"), 1), Admission::kTooMany);
  EXPECT_EQ(Admit(t48, Address("2001:db8:2::1"), 1), Admission::kAdmitted);

  ClientTable t60(1024, 60, kSeed);  // not a whole number of bytes
  EXPECT_EQ(Admit(t60, Address("2001:db8:0:10::1"), 1), Admission::kAdmitted);
  EXPECT_EQ(Admit(t60, Address("2001:db8:0:1f::1"), 1), Admission::kTooMany);
  EXPECT_EQ(Admit(t60, Address("2001:db8:0:20::1"), 1), Admission::kAdmitted);
}

TEST(ClientTableTest, MappedIPv4IsThatIPv4Address) {
  ClientTable t(1024, 64, kSeed);  // the /64 mask does not apply to mapped addresses
  EXPECT_EQ(Admit(t, Address("192.0.2.1"), 1), Admission::kAdmitted);
  EXPECT_EQ(Admit(t, Address("::ffff:192.0.2.1"), 1), Admission::kTooMany);
  EXPECT_EQ(Admit(t, Address("::ffff:192.0.2.2"), 1), Admission::kAdmitted);
  EXPECT_EQ(Admit(t, Address("192.0.2.2"), 1), Admission::kTooMany);
}

TEST(ClientTableTest, UnixClientsAreNeverLimited) {
  ClientTable t(ClientTable::kWays, 64, kSeed);
  Result<SocketAddress> unix_client = unix_address("/run/edgeproxy-test.sock");
  ASSERT_TRUE(unix_client.ok());
  for (int i = 0; i < 100; ++i) {
    uint32_t slot = 0;
    EXPECT_EQ(t.admit(unix_client.value(), 1, 1, 0, slot), Admission::kAdmitted);
    EXPECT_EQ(slot, ClientTable::kNoSlot);
    t.release(slot);
  }
  EXPECT_EQ(t.clients(), 0u);
}

TEST(ClientTableTest, RateLimitHasABurstAndRefills) {
  ClientTable t(1024, 64, kSeed);
  const SocketAddress a = Address("198.51.100.7");
  auto admit_at = [&](int64_t now_ms) {
    uint32_t slot = ClientTable::kNoSlot;
    const Admission r = t.admit(a, 0, 3, now_ms, slot);
    t.release(slot);
    return r;
  };
  for (int i = 0; i < 3; ++i) EXPECT_EQ(admit_at(0), Admission::kAdmitted) << "the burst";
  EXPECT_EQ(admit_at(0), Admission::kTooFast);
  EXPECT_EQ(admit_at(333), Admission::kTooFast) << "a third of a second is 333.3 ms";
  EXPECT_EQ(admit_at(334), Admission::kAdmitted);
  EXPECT_EQ(admit_at(334), Admission::kTooFast);
  // A long pause refills the burst, no more.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(admit_at(60'000), Admission::kAdmitted);
  EXPECT_EQ(admit_at(60'000), Admission::kTooFast);
  EXPECT_EQ(Admit(t, Address("198.51.100.8"), 0), Admission::kAdmitted) << "another client";
}

TEST(ClientTableTest, RefusedAttemptsTakeNoToken) {
  ClientTable t(1024, 64, kSeed);
  const SocketAddress a = Address("203.0.113.5");
  uint32_t held = 0, slot = 0;
  ASSERT_EQ(t.admit(a, 1, 2, 0, held), Admission::kAdmitted);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(t.admit(a, 1, 2, 0, slot), Admission::kTooMany);
  t.release(held);
  ASSERT_EQ(t.admit(a, 1, 2, 0, held), Admission::kAdmitted) << "the burst's second token";
  t.release(held);
  for (int64_t now = 0; now < 500; now += 10) {
    EXPECT_EQ(t.admit(a, 1, 2, now, slot), Admission::kTooFast);
  }
  EXPECT_EQ(t.admit(a, 1, 2, 500, slot), Admission::kAdmitted)
      << "half a second earns one token, however many attempts were refused";
}

TEST(ClientTableTest, FreeEntriesAreReusedWithoutEviction) {
  ClientTable t(ClientTable::kWays, 64, kSeed);  // one bucket
  for (uint32_t i = 0; i < 100; ++i) {
    uint32_t slot = 0;
    ASSERT_EQ(t.admit(V4(0xc0000200 + i), 1, 0, 0, slot), Admission::kAdmitted);
    t.release(slot);
  }
  // With a rate, an idle entry is free once its bucket has refilled (a second at 1/s).
  for (uint32_t i = 0; i < 100; ++i) {
    uint32_t slot = 0;
    ASSERT_EQ(t.admit(V4(0xc0000200 + i), 1, 1, int64_t{1000} * i, slot), Admission::kAdmitted);
    t.release(slot);
  }
  EXPECT_EQ(t.evictions(), 0u);
}

TEST(ClientTableTest, TheIdleEntryClosestToRefilledIsEvicted) {
  ClientTable t(ClientTable::kWays, 64, kSeed);  // one bucket: every client collides
  auto admit_at = [&](uint32_t client, int64_t now_ms, bool keep = false) {
    uint32_t slot = ClientTable::kNoSlot;
    const Admission r = t.admit(V4(0xc0000200 + client), 0, 1, now_ms, slot);
    if (!keep) t.release(slot);
    return r;
  };
  // Clients 0..7 opened one connection each, 100 ms apart, at a rate of 1 a second: no entry
  // has refilled by 750 ms. Client 0 still holds its connection.
  ASSERT_EQ(admit_at(0, 0, true), Admission::kAdmitted);
  for (uint32_t i = 1; i < 8; ++i) ASSERT_EQ(admit_at(i, 100 * i), Admission::kAdmitted);
  EXPECT_EQ(admit_at(1, 750), Admission::kTooFast) << "remembered";
  // A new client evicts client 1, the idle one closest to refilled (client 0 is busy).
  EXPECT_EQ(admit_at(8, 750), Admission::kAdmitted);
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(admit_at(2, 750), Admission::kTooFast) << "still remembered";
  EXPECT_EQ(admit_at(1, 750), Admission::kAdmitted) << "its history was forgotten early";
  EXPECT_EQ(t.evictions(), 2u) << "client 1 came back by evicting client 2";
  EXPECT_EQ(admit_at(0, 750), Admission::kTooFast) << "a busy entry is never evicted";
}

TEST(ClientTableTest, TableFullWhenEveryEntryHasConnections) {
  ClientTable t(ClientTable::kWays, 64, kSeed);  // one bucket: every client collides
  std::vector<uint32_t> slots(ClientTable::kWays);
  for (uint32_t i = 0; i < ClientTable::kWays; ++i) {
    ASSERT_EQ(t.admit(V4(0x0a000000 + i), 0, 5, 0, slots[i]), Admission::kAdmitted);
  }
  uint32_t slot = 0;
  EXPECT_EQ(t.admit(V4(0x0a0000ff), 0, 5, 0, slot), Admission::kTableFull);
  EXPECT_EQ(slot, ClientTable::kNoSlot);
  EXPECT_EQ(t.full_refusals(), 1u);
  EXPECT_EQ(t.admit(V4(0x0a000003), 0, 5, 0, slot), Admission::kAdmitted) << "known clients";
  t.release(slot);
  t.release(slots[3]);
  EXPECT_EQ(t.admit(V4(0x0a0000ff), 0, 5, 0, slot), Admission::kAdmitted)
      << "an idle entry makes room";
  EXPECT_EQ(t.evictions(), 1u);
  EXPECT_EQ(t.clients(), ClientTable::kWays);
}

TEST(ClientTableTest, HalfFullWithChurnNeverRefuses) {
  // What entries_for() promises: live clients up to half the entries, forever replaced by new
  // ones, always find room (two choices of bucket).
  ClientTable t(1024, 64, kSeed);
  std::mt19937 random(3);
  std::vector<uint32_t> slots;
  uint32_t next = 0x0b000000;
  for (uint32_t i = 0; i < 512; ++i) {
    uint32_t slot = 0;
    ASSERT_EQ(t.admit(V4(next++), 1, 0, 0, slot), Admission::kAdmitted);
    slots.push_back(slot);
  }
  for (int i = 0; i < 50'000; ++i) {
    const size_t victim = random() % slots.size();
    t.release(slots[victim]);
    ASSERT_EQ(t.admit(V4(next++), 1, 0, 0, slots[victim]), Admission::kAdmitted) << i;
  }
  EXPECT_EQ(t.full_refusals(), 0u);
  EXPECT_EQ(t.clients(), 512u);
}

TEST(ClientTableTest, TheLimitHoldsAcrossThreads) {
  constexpr uint32_t kMax = 3;
  ClientTable t(1024, 64, kSeed);
  const SocketAddress client = Address("192.0.2.77");
  std::atomic<uint32_t> open{0}, peak{0}, admitted{0};
  std::vector<std::thread> threads;
  for (int n = 0; n < 4; ++n) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        uint32_t slot = 0;
        if (t.admit(client, kMax, 0, i, slot) != Admission::kAdmitted) continue;
        admitted.fetch_add(1);
        // Counted here after the table counted it, uncounted before the table forgets it: never
        // more than the table's count.
        const uint32_t now_open = open.fetch_add(1) + 1;
        uint32_t p = peak.load();
        while (now_open > p && !peak.compare_exchange_weak(p, now_open)) {
        }
        open.fetch_sub(1);
        t.release(slot);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_LE(peak.load(), kMax);
  EXPECT_GT(admitted.load(), 0u);
  EXPECT_EQ(t.clients(), 0u);
  std::vector<uint32_t> slots(kMax);
  for (uint32_t& s : slots) EXPECT_EQ(t.admit(client, kMax, 0, 0, s), Admission::kAdmitted);
  uint32_t slot = 0;
  EXPECT_EQ(t.admit(client, kMax, 0, 0, slot), Admission::kTooMany) << "the count is back to 0";
}

}  // namespace
}  // namespace edgeproxy
