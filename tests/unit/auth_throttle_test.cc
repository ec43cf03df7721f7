// AuthThrottle: delays grow only after the free failures, are capped, are per address, and are
// forgotten after a success or a quiet minute.
#include "edgeproxy/auth_throttle.h"

#include <gtest/gtest.h>

#include "edgeproxy/resolver.h"

namespace edgeproxy {
namespace {

SocketAddress Address(const char* ip, uint16_t port) {
  SocketAddress a;
  EXPECT_TRUE(numeric_address(ip, port, a));
  return a;
}

TEST(AuthThrottleTest, FreeFailuresThenDoublingDelaysUpToTheCap) {
  AuthThrottle t(16);
  const SocketAddress a = Address("192.0.2.1", 1000);
  for (uint32_t i = 0; i < AuthThrottle::kFreeFailures; ++i) EXPECT_EQ(t.on_failure(a, 0), 0u);
  EXPECT_EQ(t.on_failure(a, 0), AuthThrottle::kFirstDelayMs);
  EXPECT_EQ(t.on_failure(a, 0), 2 * AuthThrottle::kFirstDelayMs);
  for (int i = 0; i < 20; ++i) t.on_failure(a, 0);
  EXPECT_EQ(t.on_failure(a, 0), AuthThrottle::kMaxDelayMs);
}

TEST(AuthThrottleTest, KeyedByAddressNotPort) {
  AuthThrottle t(16);
  for (uint32_t i = 0; i < AuthThrottle::kFreeFailures; ++i) {
    t.on_failure(Address("2001:db8::1", static_cast<uint16_t>(1000 + i)), 0);
  }
  EXPECT_GT(t.on_failure(Address("2001:db8::1", 2000), 0), 0u) << "a new port is the same client";
  EXPECT_EQ(t.on_failure(Address("2001:db8::2", 2000), 0), 0u) << "another client is not slowed";
}

TEST(AuthThrottleTest, SuccessAndQuietTimeForget) {
  AuthThrottle t(16);
  const SocketAddress a = Address("198.51.100.7", 1);
  EXPECT_TRUE(t.empty());
  for (int i = 0; i < 6; ++i) t.on_failure(a, 0);
  EXPECT_FALSE(t.empty());
  t.on_success(a);
  EXPECT_TRUE(t.empty()) << "a success needs no lookup once nobody has failures";
  EXPECT_EQ(t.on_failure(a, 0), 0u);
  for (int i = 0; i < 6; ++i) t.on_failure(a, 0);
  EXPECT_EQ(t.on_failure(a, AuthThrottle::kForgetMs + 1), 0u) << "a minute later it starts over";
}

}  // namespace
}  // namespace edgeproxy
