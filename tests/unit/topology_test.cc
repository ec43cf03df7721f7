// Topology: printing (locations, endpoints, balance names, object statistics), resolve_topology
// (names, unix: paths, the same address resolved twice) and adopt_runtime (live state shared by
// name, servers also by address).
#include "edgeproxy/topology.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "edgeproxy/topology_parser.h"

namespace edgeproxy {
namespace {

Topology Parsed(std::string_view text) {
  auto r = parse_topology(text, "t.conf", [](const std::string&, const std::string&) {
    return Result<std::vector<IncludedFile>>(std::vector<IncludedFile>{});
  });
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? std::move(r.value()) : Topology{};
}

// The error resolve_topology() gives for `text`, or "" when it succeeds.
std::string ResolveError(std::string_view text) {
  Topology t = Parsed(text);
  auto r = resolve_topology(t);
  return r.ok() ? std::string() : r.error();
}

TEST(TopologyTest, SourceLocationToString) {
  EXPECT_EQ((SourceLocation{"a.conf", 3, 7}).to_string(), "a.conf:3:7");
  EXPECT_EQ((SourceLocation{"command line", 0, 0}).to_string(), "command line");
}

TEST(TopologyTest, EndpointToStringAsWritten) {
  EXPECT_EQ((Endpoint{"10.0.0.1", 80, {}}).to_string(), "10.0.0.1:80");
  EXPECT_EQ((Endpoint{"::1", 80, {}}).to_string(), "[::1]:80");
  EXPECT_EQ((Endpoint{"host.example", 0, {}}).to_string(), "host.example:0");
  EXPECT_EQ((Endpoint{"", 0, "/run/a.sock"}).to_string(), "unix:/run/a.sock");
}

TEST(TopologyTest, BalanceNames) {
  EXPECT_STREQ(to_string(Balance::kRoundRobin), "roundrobin");
  EXPECT_STREQ(to_string(Balance::kLeastConn), "leastconn");
  EXPECT_STREQ(to_string(Balance::kRandom), "random");
  EXPECT_STREQ(to_string(Balance::kSource), "source");
  EXPECT_STREQ(to_string(Balance::kFirst), "first");
  EXPECT_STREQ(to_string(Balance::kRtt), "rtt");
  EXPECT_STREQ(to_string(Balance::kMostIdle), "most-idle");
}

TEST(TopologyTest, ListenerModeNames) {
  EXPECT_STREQ(to_string(ListenerMode::kTcp), "tcp");
  EXPECT_STREQ(to_string(ListenerMode::kForward), "forward");
  EXPECT_STREQ(to_string(ListenerMode::kHttp), "http");
}

TEST(TopologyTest, HttpAndPoolStatsLinesInListOrder) {
  HttpStats h;
  h.requests = 4;
  h.bad_responses = 1;
  std::string out;
  h.append_lines(out, "listener.site.http.");
  EXPECT_TRUE(
      out.starts_with("  listener.site.http.requests 4\n"
                      "  listener.site.http.reused 0\n"))
      << out;
  EXPECT_TRUE(out.ends_with("  listener.site.http.bad_responses 1\n")) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 15);
  PoolStats p;
  p.pool_opens = 2;
  p.pending = 3;
  out.clear();
  p.append_lines(out, "backend.app.");
  EXPECT_EQ(out,
            "  backend.app.pool_opens 2\n"
            "  backend.app.pool_closes 0\n"
            "  backend.app.pool_idle 0\n"
            "  backend.app.pool_active 0\n"
            "  backend.app.pending 3\n");
}

TEST(TopologyTest, ObjectStatsLinesInListOrder) {
  ObjectStats s;
  s.connections = 5;
  s.current = 2;
  s.downs = 1;
  std::string out = "x\n";
  s.append_lines(out, "server.app.a.");
  EXPECT_EQ(out,
            "x\n"
            "  server.app.a.connections 5\n"
            "  server.app.a.current 2\n"
            "  server.app.a.bytes_in 0\n"
            "  server.app.a.bytes_out 0\n"
            "  server.app.a.connect_failures 0\n"
            "  server.app.a.retries 0\n"
            "  server.app.a.no_server 0\n"
            "  server.app.a.downs 1\n");
}

TEST(TopologyTest, ResolveFillsAddresses) {
  Topology t = Parsed(
      "listener l {\n bind 127.0.0.1:0\n bind [::1]:8080\n bind unix:/tmp/l.sock\n backend b\n}\n"
      "backend b {\n server a 127.0.0.1:9\n server u unix:/tmp/u.sock\n}\n");
  ASSERT_TRUE(resolve_topology(t).ok());
  const ListenerSpec& l = t.listeners[0];
  ASSERT_EQ(l.addresses.size(), 3u);
  EXPECT_EQ(l.addresses[0].to_string(), "127.0.0.1:0");
  EXPECT_EQ(l.addresses[1].to_string(), "[::1]:8080");
  EXPECT_EQ(l.addresses[2].to_string(), "unix:/tmp/l.sock");
  ASSERT_EQ(t.backends[0].servers[0].addresses.size(), 1u);
  EXPECT_EQ(t.backends[0].servers[0].addresses[0].to_string(), "127.0.0.1:9");
  EXPECT_EQ(t.backends[0].servers[1].addresses[0].family(), AF_UNIX);
  ASSERT_TRUE(resolve_topology(t).ok()) << "resolving again replaces, never appends";
  EXPECT_EQ(t.listeners[0].addresses.size(), 3u);
}

TEST(TopologyTest, ResolveRefusesTheSameAddressTwiceNamingBoth) {
  EXPECT_EQ(ResolveError("listener l {\n bind 127.0.0.1:8080\n backend b\n}\n"
                         "listener m {\n bind 127.1:8080\n backend b\n}\nbackend b {\n server a "
                         "127.0.0.1:9\n}\n"),
            "t.conf:5:1: listener 'm' bind 127.1:8080 resolves to 127.0.0.1:8080, as does "
            "t.conf:1:1: listener 'l' bind 127.0.0.1:8080 (expected different addresses)");
  EXPECT_EQ(ResolveError("listener l {\n bind 127.0.0.1:0\n backend b\n}\n"
                         "listener m {\n bind 127.1:0\n backend b\n}\nbackend b {\n server a "
                         "127.0.0.1:9\n}\n"),
            "")
      << "port 0 binds take distinct free ports";
}

TEST(TopologyTest, ResolveErrorsNameWhere) {
  const std::string error = ResolveError(
      "listener l {\n bind 127.0.0.1:1\n backend b\n}\nbackend b {\n server bad "
      "no-such-host.invalid:9\n}\n");
  EXPECT_EQ(error.rfind("t.conf:6:2: backend 'b' server 'bad' no-such-host.invalid:9: "
                        "cannot resolve 'no-such-host.invalid'",
                        0),
            0u)
      << error;
}

TEST(TopologyTest, AdoptRuntimeSharesByNameAndAddress) {
  const char* kText =
      "listener l {\n bind 127.0.0.1:1\n backend b\n}\n"
      "backend b {\n server a h:1\n server c h:3\n}\nbackend z {\n server a h:1\n}\n";
  Topology first = Parsed(kText);
  adopt_runtime(first, nullptr);
  ASSERT_NE(first.listeners[0].runtime, nullptr);
  ASSERT_NE(first.backends[0].runtime, nullptr);
  ASSERT_NE(first.backends[0].servers[0].runtime, nullptr);
  first.backends[0].servers[0].runtime->up = false;
  EXPECT_NE(first.backends[0].servers[0].runtime, first.backends[1].servers[0].runtime)
      << "same server name and address in another backend: another server";

  Topology next = Parsed(
      "listener l {\n bind 127.0.0.1:2\n backend b\n}\n"
      "backend b {\n server a h:1 weight 5\n server c h:4\n server d h:5\n}\n");
  adopt_runtime(next, &first);
  EXPECT_EQ(next.listeners[0].runtime, first.listeners[0].runtime) << "by name";
  EXPECT_EQ(next.backends[0].runtime, first.backends[0].runtime);
  EXPECT_EQ(next.backends[0].servers[0].runtime, first.backends[0].servers[0].runtime)
      << "same name and address: health is kept";
  EXPECT_FALSE(next.backends[0].servers[0].runtime->up.load());
  EXPECT_NE(next.backends[0].servers[1].runtime, first.backends[0].servers[1].runtime)
      << "same name, new address: a new server";
  ASSERT_NE(next.backends[0].servers[2].runtime, nullptr);
  EXPECT_TRUE(next.backends[0].servers[2].runtime->up.load());
}

}  // namespace
}  // namespace edgeproxy
