// TopologyParser: the file grammar through parse_topology() with a fake include loader, every
// error with its exact file:line:column, warnings, includes (order, cycles, depth, nothing
// matched), load_topology() on real files with overrides, and every examples/*.conf.
#include "edgeproxy/topology_parser.h"

#include <fnmatch.h>
#include <glob.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace edgeproxy {
namespace {

// Files by name; an include pattern matches names relative to the including file's directory.
struct FakeFiles {
  std::map<std::string, std::string> files;
  IncludeLoader loader() const {
    return [this](const std::string& pattern, const std::string& including) {
      const size_t slash = including.rfind('/');
      const std::string dir = slash == std::string::npos ? "" : including.substr(0, slash + 1);
      const std::string full = pattern[0] == '/' ? pattern : dir + pattern;
      std::vector<IncludedFile> out;
      for (const auto& [name, text] : files) {
        if (fnmatch(full.c_str(), name.c_str(), FNM_PATHNAME) == 0) out.push_back({name, text});
      }
      return Result<std::vector<IncludedFile>>(out);
    };
  }
};

// One listener `l` on 127.0.0.1:1 using backend `b` with one server: the smallest valid file.
constexpr const char* kMinimal =
    "listener l {\n    bind 127.0.0.1:1\n    backend b\n}\nbackend b {\n    server s "
    "127.0.0.1:2\n}\n";

Result<Topology> Parse(std::string_view text, const FakeFiles& fs = FakeFiles{}) {
  return parse_topology(text, "f.conf", fs.loader());
}

Topology Ok(std::string_view text, const FakeFiles& fs = FakeFiles{}) {
  auto r = Parse(text, fs);
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? std::move(r.value()) : Topology{};
}

// The parse fails with a message that starts with `where` ("f.conf:3:5: ") and contains
// `phrase`, on one line.
::testing::AssertionResult Fails(std::string_view text, const std::string& where,
                                 const std::string& phrase, const FakeFiles& fs = FakeFiles{}) {
  auto r = Parse(text, fs);
  if (r.ok()) return ::testing::AssertionFailure() << "accepted:\n" << text;
  const std::string& m = r.error();
  if (m.rfind(where, 0) != 0 || m.find(phrase) == std::string::npos ||
      m.find('\n') != std::string::npos) {
    return ::testing::AssertionFailure()
           << "'" << m << "' is not '" << where << "...'" << phrase << "...'";
  }
  return ::testing::AssertionSuccess();
}

TEST(TopologyParserTest, TheReferenceExample) {
  const Topology t = Ok(R"(include conf.d/*.conf            # top level only
global {
    workers auto
    max-connections 20000
    shutdown-timeout 10s
    no-delay off
    log-level verbose
}
backend app {
    balance leastconn
    server a 10.0.0.1:8080 weight 3
    server b [2001:db8::2]:8080 max-connections 100
    server local unix:/run/app.sock
    server spare host.example:8080 backup
    check interval 2s timeout 1s rise 2 fall 3 send "PING\r\n" expect "+PONG"
    connect-timeout 2s
    retries 2
}
listener web {
    bind 0.0.0.0:8080
    bind [::]:8080
    bind unix:/run/edgeproxy/web.sock mode 0660
    backend app
    idle-timeout 60s
}
)");
  EXPECT_EQ(t.source, "f.conf");
  EXPECT_EQ(t.global.workers, 0u);
  EXPECT_EQ(t.global.max_connections, 20000u);
  EXPECT_EQ(t.global.shutdown_timeout_s, 10u);
  EXPECT_FALSE(t.global.no_delay);
  EXPECT_EQ(t.global.log_level, LogLevel::kVerbose);
  ASSERT_EQ(t.backends.size(), 1u);
  const BackendSpec& b = t.backends[0];
  EXPECT_EQ(b.name, "app");
  EXPECT_EQ(b.where.to_string(), "f.conf:9:1");
  EXPECT_EQ(b.balance, Balance::kLeastConn);
  EXPECT_EQ(b.connect_timeout_ms, 2000u);
  EXPECT_EQ(b.retries, 2u);
  ASSERT_EQ(b.servers.size(), 4u);
  EXPECT_EQ(b.servers[0].endpoint.to_string(), "10.0.0.1:8080");
  EXPECT_EQ(b.servers[0].weight, 3u);
  EXPECT_EQ(b.servers[0].where.to_string(), "f.conf:11:5");
  EXPECT_EQ(b.servers[1].endpoint.host, "2001:db8::2");
  EXPECT_EQ(b.servers[1].endpoint.to_string(), "[2001:db8::2]:8080");
  EXPECT_EQ(b.servers[1].max_connections, 100u);
  EXPECT_EQ(b.servers[1].weight, 1u);
  EXPECT_TRUE(b.servers[2].endpoint.is_unix());
  EXPECT_EQ(b.servers[2].endpoint.unix_path, "/run/app.sock");
  EXPECT_TRUE(b.servers[3].backup);
  EXPECT_FALSE(b.servers[0].backup);
  EXPECT_TRUE(b.check.enabled);
  EXPECT_EQ(b.check.interval_ms, 2000u);
  EXPECT_EQ(b.check.timeout_ms, 1000u);
  EXPECT_EQ(b.check.rise, 2u);
  EXPECT_EQ(b.check.fall, 3u);
  EXPECT_EQ(b.check.send, "PING\r\n");
  EXPECT_EQ(b.check.expect, "+PONG");
  ASSERT_EQ(t.listeners.size(), 1u);
  const ListenerSpec& l = t.listeners[0];
  EXPECT_EQ(l.name, "web");
  ASSERT_EQ(l.binds.size(), 3u);
  EXPECT_EQ(l.binds[0].to_string(), "0.0.0.0:8080");
  EXPECT_EQ(l.binds[1].to_string(), "[::]:8080");
  EXPECT_EQ(l.binds[2].to_string(), "unix:/run/edgeproxy/web.sock");
  EXPECT_EQ(l.unix_mode, 0660u);
  EXPECT_EQ(l.backend, 0u);
  EXPECT_EQ(l.idle_timeout_s, 60u);
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_EQ(t.warnings[0], "f.conf:1:9: include 'conf.d/*.conf' matches no file");
}

// Fuzzing finding (config): a quoted token may hold any byte, and messages quote tokens as
// written, so `"too long\n"` split the one-line error (and "\x1b" would reach a terminal).
TEST(TopologyParserTest, AnErrorQuotingAControlByteStaysOneLine) {
  EXPECT_TRUE(Fails("global {\n    log-level normal \"a\\nb\\x1b\\tc\"\n}\n",
                    "f.conf:2:22: ", "extra argument 'a\\nb\\x1b\\tc' to 'log-level'"));
}

TEST(TopologyParserTest, DefaultsOfAMinimalFile) {
  const Topology t = Ok(kMinimal);
  const BackendSpec& b = t.backends[0];
  EXPECT_EQ(b.balance, Balance::kRoundRobin);
  EXPECT_EQ(b.retries, 2u);
  EXPECT_EQ(b.connect_timeout_ms, 5000u);
  EXPECT_FALSE(b.check.enabled);
  EXPECT_EQ(b.servers[0].weight, 1u);
  EXPECT_EQ(b.servers[0].max_connections, 0u);
  EXPECT_EQ(t.listeners[0].idle_timeout_s, 3600u);
  EXPECT_EQ(t.listeners[0].unix_mode, 0u);
  EXPECT_EQ(t.global.workers, Config{}.workers);
  EXPECT_TRUE(t.warnings.empty());
}

TEST(TopologyParserTest, CheckAloneTurnsActiveChecksOn) {
  const Topology t =
      Ok("listener l {\n bind h:1\n backend b\n}\nbackend b {\n server s h:2\n check\n}\n");
  EXPECT_TRUE(t.backends[0].check.enabled);
  EXPECT_EQ(t.backends[0].check.interval_ms, HealthCheck{}.interval_ms);
  EXPECT_TRUE(t.backends[0].check.expect.empty());
}

TEST(TopologyParserTest, ListenersMayNameBackendsDefinedLater) {
  const Topology t =
      Ok("backend x {\n server s h:1\n}\nlistener a {\n bind h:1\n backend y\n}\n"
         "listener b {\n bind h:2\n backend x\n}\nbackend y {\n server s h:2\n}\n");
  EXPECT_EQ(t.listeners[0].backend, 1u);
  EXPECT_EQ(t.listeners[1].backend, 0u);
}

TEST(TopologyParserTest, BlanksCommentsAndBracesOnOneLine) {
  const Topology t =
      Ok("# c\n\n\tlistener l{ # open\n\tbind 127.0.0.1:1\n\tbackend b}\nbackend b {\n server s "
         "h:1 }\n");
  EXPECT_EQ(t.listeners.size(), 1u);
}

// --- errors --------------------------------------------------------------------------------

TEST(TopologyParserTest, UnknownDirectivesListWhatIsAllowed) {
  EXPECT_TRUE(
      Fails("frontend x {\n}\n", "f.conf:1:1: ",
            "unknown directive 'frontend' (expected include, global, listener, backend or map)"));
  EXPECT_TRUE(Fails("global {\n  worker 2\n}\n", "f.conf:2:3: ",
                    "unknown directive 'worker' (expected admin, admin-users, admin-groups, "
                    "max-connections, buffers, "
                    "shutdown-timeout, backlog, workers, cpu-list, no-delay, splice, "
                    "splice-threshold, splice-pipes, batch-wait, metrics, log-level, access-log "
                    "or access-log-format)"));
  EXPECT_TRUE(
      Fails("listener l {\n  bind h:1\n  balance first\n}\n", "f.conf:3:3: ",
            "unknown directive 'balance' (expected bind, backend, route, on-timeout, on-full, "
            "auth, allow-ports, allow-networks, deny-networks, rewrite, request-header, "
            "response-header, idle-timeout, accept-proxy, tcp-smart-accept, defer-accept, "
            "inspect-timeout, inspect-bytes, "
            "accelerate, mode, request-timeout, destination-timeout, dns-ttl, open, max-body, "
            "forwarded-for, forwarded-proto, via, max-lifetime, upload-limit, download-limit, "
            "rate-limit-up, rate-limit-down, rate-limit-burst, max-connections-per-client, "
            "new-connections-per-client or client-ipv6-prefix)"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n  idle-timeout 1\n}\n", "f.conf:3:3: ",
                    "(expected server, check, connect-timeout, balance, retries, proxy-protocol, "
                    "tcp-smart-connect, pool-size, max-pending, pending-timeout or "
                    "pool-idle-timeout)"));
  EXPECT_TRUE(Fails("global {\n  verbose on\n}\n", "f.conf:2:3: ", "unknown directive 'verbose'"))
      << "command-line-only options are not directives";
  EXPECT_TRUE(
      Fails("listener l {\n  include x.conf\n}\n", "f.conf:2:3: ", "unknown directive 'include'"))
      << "include is top level only";
  EXPECT_TRUE(Fails("\"global\" {\n}\n", "f.conf:1:1: ", "unknown directive 'global'"))
      << "a quoted word is never a keyword";
}

TEST(TopologyParserTest, MissingAndExtraArguments) {
  EXPECT_TRUE(Fails("backend {\n}\n",
                    "f.conf:1:1: ", "missing argument to 'backend' (expected backend NAME {)"));
  EXPECT_TRUE(Fails("listener a b {\n}\n", "f.conf:1:12: ",
                    "extra argument 'b' to 'listener' (expected listener NAME {)"));
  EXPECT_TRUE(Fails("global {\n  workers\n}\n", "f.conf:2:3: ",
                    "missing argument to 'workers' (expected workers 1-1024 or auto)"));
  EXPECT_TRUE(Fails("global {\n  workers 1 2\n}\n", "f.conf:2:13: ", "extra argument '2'"));
  EXPECT_TRUE(Fails("global x {\n}\n", "f.conf:1:8: ", "extra argument 'x' to 'global'"));
  EXPECT_TRUE(Fails("backend b {\n  server s\n}\n",
                    "f.conf:2:3: ", "missing argument to 'server' (expected server NAME ADDRESS"));
  EXPECT_TRUE(Fails("listener l {\n  bind\n}\n", "f.conf:2:3: ", "missing argument to 'bind'"));
  EXPECT_TRUE(Fails("listener l {\n  bind h:1\n  backend\n}\n",
                    "f.conf:3:3: ", "missing argument to 'backend' (expected backend NAME)"));
  EXPECT_TRUE(Fails("include\n", "f.conf:1:1: ", "missing argument to 'include'"));
  EXPECT_TRUE(Fails("backend b\n", "f.conf:1:10: ",
                    "missing block after 'backend' (expected backend NAME { ... })"));
  EXPECT_TRUE(
      Fails("backend b {\n  server s h:1 {\n  }\n}\n", "f.conf:2:16: ", "'server' takes no block"));
}

TEST(TopologyParserTest, BadValuesUnitsAndRanges) {
  EXPECT_TRUE(Fails("global {\n  workers many\n}\n",
                    "f.conf:2:11: ", "workers: invalid value 'many' (expected 1-1024 or auto)"));
  EXPECT_TRUE(Fails("global {\n  shutdown-timeout 10d\n}\n", "f.conf:2:20: ",
                    "shutdown-timeout: invalid value '10d' (expected seconds 0-86400"));
  EXPECT_TRUE(Fails("global {\n  max-connections 0\n}\n", "f.conf:2:19: ", "(expected 1-1000000)"));
  EXPECT_TRUE(Fails("global {\n  splice-threshold 2g\n}\n",
                    "f.conf:2:20: ", "(expected bytes 0-1073741824"));
  EXPECT_TRUE(Fails("global {\n  no-delay maybe\n}\n", "f.conf:2:12: ", "(expected on or off)"));
  EXPECT_TRUE(Fails("global {\n  cpu-list 3-1\n}\n",
                    "f.conf:2:12: ", "cpu-list: invalid CPU range '3-1' (descending)"));
  EXPECT_TRUE(Fails("backend b {\n  balance rr\n  server s h:1\n}\n", "f.conf:2:11: ",
                    "(expected roundrobin, leastconn, random, source, first, rtt or most-idle)"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n  check interval 5\n}\n", "f.conf:3:18: ",
                    "interval: invalid value '5' (expected milliseconds 10-3600000"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n  check rise 0\n}\n",
                    "f.conf:3:14: ", "rise: invalid value '0' (expected 1-100)"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n  check fall\n}\n",
                    "f.conf:3:9: ", "missing value after 'fall' (expected 1-100)"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n  check every 2s\n}\n", "f.conf:3:9: ",
                    "unknown check option 'every' (expected interval, timeout, rise, fall, send "
                    "or expect)"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1 heavy\n}\n", "f.conf:2:16: ",
                    "unknown server option 'heavy' (expected weight, max-connections, backup or "
                    "proxy-protocol)"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1 max-connections -1\n}\n", "f.conf:2:32: ",
                    "max-connections: invalid value '-1' (expected 0-1000000, 0 = no limit)"));
}

TEST(TopologyParserTest, WeightIsOneTo256) {
  EXPECT_TRUE(Fails("backend b {\n  server s h:1 weight 0\n}\n",
                    "f.conf:2:23: ", "weight: invalid value '0' (expected 1-256)"));
  EXPECT_TRUE(
      Fails("backend b {\n  server s h:1 weight 257\n}\n", "f.conf:2:23: ", "(expected 1-256)"));
  const Topology t = Ok(std::string(kMinimal) +
                        "backend w {\n  server lo h:1 weight 1\n  server hi h:2 weight 256\n}\n");
  EXPECT_EQ(t.backends[1].servers[1].weight, 256u);
}

TEST(TopologyParserTest, Addresses) {
  EXPECT_TRUE(Fails("backend b {\n  server s ::1:80\n}\n", "f.conf:2:12: ",
                    "server: invalid address '::1:80' (expected an IPv6 address in brackets"));
  EXPECT_TRUE(Fails("backend b {\n  server s host\n}\n", "f.conf:2:12: ",
                    "server: invalid address 'host' (expected HOST:PORT, [IPv6]:PORT or "
                    "unix:/PATH, port 1-65535)"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:0\n}\n",
                    "f.conf:2:12: ", "server: invalid port '0' in 'h:0' (expected 1-65535)"));
  EXPECT_TRUE(Fails("listener l {\n  bind h:65536\n}\n",
                    "f.conf:2:8: ", "bind: invalid port '65536' in 'h:65536' (expected 0-65535)"));
  EXPECT_TRUE(Fails("listener l {\n  bind [::1]80\n}\n", "f.conf:2:8: ", "invalid address"));
  EXPECT_TRUE(
      Fails("listener l {\n  bind unix:\n}\n", "f.conf:2:8: ", "bind: empty Unix socket path"));
  const std::string long_path = "unix:/" + std::string(107, 'a');
  EXPECT_TRUE(Fails("listener l {\n  bind " + long_path + "\n}\n",
                    "f.conf:2:8: ", "is too long (expected at most 107 bytes)"));
  const Topology t =
      Ok("listener l {\n bind 127.0.0.1:0\n backend b\n}\nbackend b {\n server s h:65535\n}\n");
  EXPECT_EQ(t.listeners[0].binds[0].port, 0) << "port 0: any free port";
}

TEST(TopologyParserTest, BindModeIsForUnixBindsOnly) {
  EXPECT_TRUE(Fails("listener l {\n  bind h:1 mode 0660\n}\n",
                    "f.conf:2:12: ", "mode applies to unix: binds only"));
  EXPECT_TRUE(Fails("listener l {\n  bind unix:/a mode 0999\n}\n", "f.conf:2:21: ",
                    "mode: invalid value '0999' (expected octal permissions 0000-0777"));
  EXPECT_TRUE(Fails("listener l {\n  bind unix:/a mode\n}\n",
                    "f.conf:2:16: ", "missing value after 'mode'"));
  EXPECT_TRUE(Fails("listener l {\n  bind unix:/a owner 1\n}\n",
                    "f.conf:2:16: ", "unexpected 'owner' (expected bind ADDRESS [mode OCTAL])"));
  EXPECT_TRUE(Fails("listener l {\n  bind unix:/a mode 0600\n  bind unix:/b mode 0660\n}\n",
                    "f.conf:3:21: ", "expected one mode per listener"));
}

TEST(TopologyParserTest, StringsAndBlocksMustClose) {
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n  check send \"PING\n}\n",
                    "f.conf:3:14: ", "unterminated string"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n", "f.conf:1:11: ",
                    "unterminated block (expected '}' before the end of the file)"));
  EXPECT_TRUE(Fails("global {\n  listener l {\n  }\n", "f.conf:1:8: ", "unterminated block"));
  EXPECT_TRUE(
      Fails(std::string(kMinimal) + "}\n", "f.conf:8:1: ", "unexpected '}' (no block is open)"));
  EXPECT_TRUE(Fails("{\n}\n", "f.conf:1:1: ", "'{' without a directive"));
  EXPECT_TRUE(Fails("global {\n} workers\n", "f.conf:2:3: ", "text after '}'"));
}

TEST(TopologyParserTest, DuplicateNames) {
  EXPECT_TRUE(Fails(std::string(kMinimal) + "listener l {\n  bind h:9\n  backend b\n}\n",
                    "f.conf:8:10: ", "duplicate listener 'l' (first at f.conf:1:1"));
  EXPECT_TRUE(Fails(std::string(kMinimal) + "backend b {\n  server s h:9\n}\n",
                    "f.conf:8:9: ", "duplicate backend 'b' (first at f.conf:5:1"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n  server s h:2\n}\n",
                    "f.conf:3:10: ", "duplicate server 's' in backend 'b' (first at f.conf:2:3"));
  EXPECT_TRUE(Fails("backend b/c {\n}\n", "f.conf:1:9: ", "invalid backend name 'b/c'"));
}

TEST(TopologyParserTest, SingleValuedDirectivesOncePerBlock) {
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n  retries 1\n  retries 2\n}\n",
                    "f.conf:4:3: ", "duplicate 'retries' (first at f.conf:3:3"));
  EXPECT_TRUE(Fails("listener l {\n  bind h:1\n  backend a\n  backend b\n}\n",
                    "f.conf:4:3: ", "duplicate 'backend'"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n  check\n  check rise 1\n}\n",
                    "f.conf:4:3: ", "duplicate 'check'"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1 weight 2 weight 3\n}\n",
                    "f.conf:2:25: ", "duplicate 'weight'"));
  EXPECT_TRUE(Fails("global {\n  workers 2\n}\nglobal {\n  workers 3\n}\n",
                    "f.conf:5:3: ", "duplicate 'workers' (first at f.conf:2:3"))
      << "across global blocks too";
  // Several binds and servers are the point.
  EXPECT_EQ(Ok("listener l {\n bind h:1\n bind h:2\n backend b\n}\nbackend b {\n server s h:1\n "
               "server t h:1\n}\n")
                .listeners[0]
                .binds.size(),
            2u);
}

TEST(TopologyParserTest, ReferencesAndRequiredParts) {
  EXPECT_TRUE(Fails(
      "listener l {\n  bind h:1\n  backend nope\n}\nbackend b {\n  server s h:1\n}\n",
      "f.conf:3:11: ", "listener 'l' names backend 'nope', which is not defined (expected b)"));
  EXPECT_TRUE(Fails("listener l {\n  backend b\n}\n", "f.conf:1:1: ",
                    "listener 'l' has no bind (expected at least one 'bind ADDRESS')"));
  EXPECT_TRUE(
      Fails("listener l {\n  bind h:1\n}\n", "f.conf:1:1: ",
            "listener 'l' has no backend (expected 'backend NAME', or a 'route { ... }' block)"));
  EXPECT_TRUE(Fails("backend b {\n  retries 1\n}\n", "f.conf:1:1: ",
                    "backend 'b' has no server (expected at least one 'server NAME ADDRESS')"));
  EXPECT_TRUE(Fails("backend b {\n  server s h:1\n}\n", "f.conf:1:1: ",
                    "no listener (expected at least one 'listener NAME { ... }' block)"));
  EXPECT_TRUE(Fails("", "f.conf:1:1: ", "no listener"));
}

TEST(TopologyParserTest, SameAddressWrittenTwice) {
  EXPECT_TRUE(Fails("listener l {\n  bind h:1\n  bind h:1\n}\n",
                    "f.conf:3:8: ", "bind h:1 is already bound at f.conf:2:8"));
  EXPECT_TRUE(Fails(std::string(kMinimal) + "listener m {\n  bind 127.0.0.1:1\n  backend b\n}\n",
                    "f.conf:9:8: ", "bind 127.0.0.1:1 is already bound at f.conf:2:10"));
  EXPECT_TRUE(
      Fails("listener l {\n  bind [::1]:1\n  bind [::1]:1\n}\n", "f.conf:3:8: ", "already bound"));
}

// --- routes (docs/routing.md) ---------------------------------------------------------------

// A listener `l` with `body` inside, backends a and b, and a map file users.map.
std::string Routed(const std::string& body) {
  return "backend a {\n server s 127.0.0.1:1\n}\nbackend b {\n server s 127.0.0.1:2\n}\n"
         "listener l {\n bind 127.0.0.1:3\n" +
         body + "}\n";
}

TEST(TopologyParserTest, RoutesParseEveryMatcherAndAction) {
  FakeFiles fs;
  fs.files["users.map"] = "# comment\nalice a\nbob 10.0.0.1:9000   # inline\n\ndefault b\n";
  const Topology t = Ok("map users users.map\n" +
                            Routed(" accept-proxy\n inspect-timeout 2s\n inspect-bytes 16k\n"
                                   " on-timeout backend a\n on-full reject\n route {\n"
                                   "  sni a.example,*.b.example backend a\n"
                                   "  alpn h2 protocol tls server 10.0.0.2:443 send \"x\"\n"
                                   "  regex \"^u=([a-z]+)\" map users $1\n"
                                   "  regex \"^h=([a-z]+)\" hash b k-$1\n"
                                   "  http-host h.example http-path /s http-method GET wait\n"
                                   "  prefix \"\\x00\" reply \"hi\"\n  protocol ssh close \"bye\"\n"
                                   "  protocol proxy close\n  any reject\n }\n"),
                        fs);
  ASSERT_EQ(t.listeners.size(), 1u);
  const ListenerSpec& l = t.listeners[0];
  EXPECT_EQ(l.backend, kNoBackendIndex) << "no default backend";
  EXPECT_TRUE(l.accept_proxy);
  EXPECT_EQ(l.inspect_timeout_ms, 2000u);
  EXPECT_EQ(l.inspect_bytes, 16384u);
  EXPECT_EQ(l.on_timeout.kind, ActionKind::kBackend);
  EXPECT_EQ(l.on_full.kind, ActionKind::kReject);
  ASSERT_EQ(l.routes.rules.size(), 9u);
  EXPECT_EQ(l.routes.rules[1].action.kind, ActionKind::kServer);
  EXPECT_EQ(t.backends[l.routes.rules[1].action.backend].name, "server:10.0.0.2:443");
  EXPECT_TRUE(t.backends[l.routes.rules[1].action.backend].hidden);
  EXPECT_EQ(l.routes.rules[1].action.send, "x");
  EXPECT_EQ(l.routes.rules[2].action.kind, ActionKind::kMap);
  EXPECT_TRUE(t.backends[1].hashed);
  EXPECT_EQ(l.routes.rules[5].matchers[0].text, std::string(1, '\0'));
  ASSERT_EQ(t.maps.size(), 1u);
  EXPECT_EQ(t.maps[0].entries.size(), 2u);
  EXPECT_EQ(t.backends[t.maps[0].entries.at("bob")].name, "server:10.0.0.1:9000");
  EXPECT_EQ(t.backends[t.maps[0].fallback].name, "b");
  EXPECT_TRUE(t.warnings.empty()) << t.warnings[0];
}

TEST(TopologyParserTest, RouteErrorsNameTheirPlace) {
  EXPECT_TRUE(Fails(Routed(" route {\n  frob x backend a\n }\n"),
                    "f.conf:10:3: ", "unknown matcher 'frob'"));
  EXPECT_TRUE(Fails(Routed(" route {\n  prefix \"x\"\n }\n"),
                    "f.conf:10:10: ", "missing action after 'x'"));
  EXPECT_TRUE(Fails(Routed(" route {\n  regex \"(\" backend a\n }\n"),
                    "f.conf:10:9: ", "regex: invalid regex"));
  EXPECT_TRUE(Fails(Routed(" route {\n  regex \"(a)\" map m $2\n }\n"),
                    "f.conf:10:3: ", "the key uses $2 but the rule's regex has 1 group(s)"));
  EXPECT_TRUE(Fails(Routed(" route {\n  any backend nope\n }\n"),
                    "f.conf:10:15: ", "backend 'nope' is not defined (expected a or b)"));
  EXPECT_TRUE(Fails(Routed(" route {\n  any map nope x\n }\n"),
                    "f.conf:10:11: ", "map 'nope' is not defined"));
  EXPECT_TRUE(Fails(Routed(" route {\n  any backend a extra\n }\n"),
                    "f.conf:10:17: ", "extra argument 'extra' after the action"));
  EXPECT_TRUE(Fails(Routed(" route {\n  any backend a send\n }\n"),
                    "f.conf:10:17: ", "missing TEXT after 'send'"));
  EXPECT_TRUE(Fails(Routed(" route {\n  sni a..b backend a\n }\n"),
                    "f.conf:10:7: ", "sni: invalid name 'a..b'"));
  EXPECT_TRUE(Fails(Routed(" route {\n  protocol ftp backend a\n }\n"),
                    "f.conf:10:12: ", "unknown protocol 'ftp'"));
  EXPECT_TRUE(
      Fails(Routed(" route {\n  any server nohost backend a\n }\n"), "f.conf:10:14: ", "server: "));
  EXPECT_TRUE(Fails(Routed(" route {\n }\n"), "f.conf:9:2: ", "empty route block"));
  EXPECT_TRUE(Fails(Routed(" on-timeout wait\n route {\n  any close\n }\n"),
                    "f.conf:9:13: ", "unknown action 'wait'"));
  EXPECT_TRUE(Fails(Routed(" route {\n  any reply \"" + std::string(4097, 'x') + "\"\n }\n"),
                    "f.conf:10:13: ", "text of 4097 bytes (expected at most 4096)"));
  EXPECT_TRUE(Fails(Routed(" route {\n  any close\n }\n route {\n  any close\n }\n"),
                    "f.conf:12:2: ", "duplicate 'route'"));
}

TEST(TopologyParserTest, MapFileErrors) {
  FakeFiles fs;
  fs.files["dup.map"] = "k a\nk b\n";
  fs.files["bad.map"] = "k\n";
  fs.files["unknown.map"] = "k nope\n";
  const std::string uses = Routed(" route {\n  regex \"(a)\" map m $1\n }\n");
  EXPECT_TRUE(Fails("map m missing.map\n" + uses, "f.conf:1:7: ", "names no file"));
  EXPECT_TRUE(Fails("map m dup.map\n" + uses,
                    "dup.map:2:1: ", "duplicate key 'k' (first at dup.map:1", fs));
  EXPECT_TRUE(Fails("map m bad.map\n" + uses, "bad.map:1:1: ", "map line with 1 words", fs));
  EXPECT_TRUE(Fails("map m unknown.map\n" + uses,
                    "unknown.map:1:1: ", "backend 'nope' is not defined", fs));
  fs.files["good.map"] = "k a\n";
  EXPECT_TRUE(
      Fails("map m good.map\nmap m good.map\n" + uses, "f.conf:2:5: ", "duplicate map 'm'", fs));
  EXPECT_TRUE(Fails("map m *.map\n" + uses, "f.conf:1:7: ", "a file name, not a pattern"));
}

TEST(TopologyParserTest, AListenerWithRoutesNeedsNoBackendAndProxyProtocolParses) {
  const Topology t = Ok(
      "backend a {\n server s 127.0.0.1:1 proxy-protocol v1\n server t 127.0.0.1:2\n"
      " proxy-protocol v2\n}\nlistener l {\n bind 127.0.0.1:3\n route {\n  any backend a\n }\n}\n");
  EXPECT_EQ(t.listeners[0].backend, kNoBackendIndex);
  EXPECT_EQ(t.backends[0].proxy_protocol_of(0), 1);
  EXPECT_EQ(t.backends[0].proxy_protocol_of(1), 2);
  EXPECT_TRUE(Fails("backend a {\n server s h:1 proxy-protocol v3\n}\n",
                    "f.conf:2:30: ", "proxy-protocol: invalid value 'v3'"));
}

TEST(TopologyParserTest, UnusedBackendIsAWarning) {
  const Topology t = Ok(std::string(kMinimal) + "\nbackend spare {\n  server s h:1\n}\n");
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_EQ(t.warnings[0], "f.conf:9:1: backend 'spare' is not used by any listener");
}

// --- includes ------------------------------------------------------------------------------

TEST(TopologyParserTest, IncludesAreReadInNameOrderWhereWritten) {
  FakeFiles fs;
  fs.files["conf.d/b.conf"] = "listener b {\n bind h:2\n backend x\n}\n";
  fs.files["conf.d/a.conf"] = "backend x {\n server s h:1\n}\ninclude more/*.conf\n";
  fs.files["conf.d/more/c.conf"] = "listener c {\n bind h:3\n backend x\n}\n";
  fs.files["conf.d/skip.txt"] = "not a conf";
  const Topology t = Ok("global {\n workers 2\n}\ninclude conf.d/*.conf\n", fs);
  ASSERT_EQ(t.listeners.size(), 2u);
  EXPECT_EQ(t.listeners[0].name, "c") << "a.conf includes more/c.conf before b.conf is read";
  EXPECT_EQ(t.listeners[1].name, "b");
  EXPECT_EQ(t.listeners[1].where.to_string(), "conf.d/b.conf:1:1");
  EXPECT_EQ(t.backends[0].where.to_string(), "conf.d/a.conf:1:1");
  EXPECT_TRUE(t.warnings.empty());
}

TEST(TopologyParserTest, ErrorsInIncludedFilesNameThatFile) {
  FakeFiles fs;
  fs.files["x.conf"] = "backend x {\n  server s h:1 weight 0\n}\n";
  EXPECT_TRUE(Fails("include x.conf\n", "x.conf:2:23: ", "(expected 1-256)", fs));
}

TEST(TopologyParserTest, IncludeMatchingNothing) {
  const Topology t = Ok(std::string(kMinimal) + "include none/*.conf\n");
  ASSERT_EQ(t.warnings.size(), 1u);
  EXPECT_EQ(t.warnings[0], "f.conf:8:9: include 'none/*.conf' matches no file");
  EXPECT_TRUE(Fails(std::string(kMinimal) + "include none.conf\n", "f.conf:8:9: ",
                    "include 'none.conf' matches no file (expected an existing file)"));
}

TEST(TopologyParserTest, IncludeCycleAndTwice) {
  FakeFiles fs;
  fs.files["a.conf"] = "include b.conf\n";
  fs.files["b.conf"] = "\ninclude a.conf\n";
  fs.files["f.conf"] = "include f.conf\n";  // the main file, as the loader sees it
  EXPECT_TRUE(Fails("include a.conf\n",
                    "b.conf:2:9: ", "include cycle: f.conf -> a.conf -> b.conf -> a.conf", fs));
  EXPECT_TRUE(Fails("include f.conf\n", "f.conf:1:9: ", "include cycle: f.conf -> f.conf", fs));
  FakeFiles twice;
  twice.files["a.conf"] = "# empty\n";
  EXPECT_TRUE(Fails("include a.conf\ninclude *.conf\n",
                    "f.conf:2:9: ", "file 'a.conf' included twice (first at f.conf:1:9)", twice));
}

TEST(TopologyParserTest, IncludeDepthIsLimited) {
  FakeFiles fs;
  for (uint32_t i = 0; i < kMaxIncludeDepth + 1; ++i) {
    fs.files["d" + std::to_string(i) + ".conf"] = "include d" + std::to_string(i + 1) + ".conf\n";
  }
  fs.files["d" + std::to_string(kMaxIncludeDepth + 1) + ".conf"] = kMinimal;
  const std::string deepest = "d" + std::to_string(kMaxIncludeDepth - 1) + ".conf";
  EXPECT_TRUE(Fails("include d0.conf\n", deepest + ":1:9: ",
                    "includes nested too deep (expected at most 8 levels)", fs));
  FakeFiles ok;
  for (uint32_t i = 0; i + 1 < kMaxIncludeDepth; ++i) {
    ok.files["d" + std::to_string(i) + ".conf"] = "include d" + std::to_string(i + 1) + ".conf\n";
  }
  ok.files["d" + std::to_string(kMaxIncludeDepth - 1) + ".conf"] = kMinimal;
  EXPECT_EQ(Ok("include d0.conf\n", ok).listeners.size(), 1u) << "exactly 8 levels are fine";
}

TEST(TopologyParserTest, LoaderErrorsCarryTheIncludeLocation) {
  const IncludeLoader failing = [](const std::string&, const std::string&) {
    return Result<std::vector<IncludedFile>>(Error{"cannot read 'x': Permission denied"});
  };
  auto r = parse_topology("\n  include x\n", "f.conf", failing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "f.conf:2:11: include: cannot read 'x': Permission denied");
}

TEST(TopologyParserTest, ParseEndpoint) {
  EXPECT_EQ(parse_endpoint("h:1", 1).value().to_string(), "h:1");
  EXPECT_EQ(parse_endpoint("[::]:0", 0).value().host, "::");
  EXPECT_EQ(parse_endpoint("unix:rel.sock", 1).value().unix_path, "rel.sock");
  EXPECT_FALSE(parse_endpoint(":80", 1).ok());
  EXPECT_FALSE(parse_endpoint("[]:80", 1).ok());
  EXPECT_FALSE(parse_endpoint("h:", 1).ok());
  EXPECT_FALSE(parse_endpoint("h:+1", 1).ok());
}

// --- files ---------------------------------------------------------------------------------

// A temporary directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/edgeproxy-parser-XXXXXX";
    path_ = mkdtemp(name) != nullptr ? name : "";
  }
  ~TempDir() {
    for (const std::string& f : files_) std::remove(f.c_str());
    for (auto d = dirs_.rbegin(); d != dirs_.rend(); ++d) rmdir(d->c_str());
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  void mkdir(const std::string& name) {
    dirs_.push_back(path_ + "/" + name);
    ::mkdir(dirs_.back().c_str(), 0700);
  }
  std::string write(const std::string& name, const std::string& text) {
    files_.push_back(path_ + "/" + name);
    FILE* f = std::fopen(files_.back().c_str(), "w");
    std::fputs(text.c_str(), f);
    std::fclose(f);
    return files_.back();
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
  std::vector<std::string> dirs_;
};

TEST(TopologyParserTest, LoadTopologyReadsIncludesRelativeToTheFile) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  dir.mkdir("conf.d");
  dir.write("conf.d/2.conf", "listener two {\n bind 127.0.0.1:2\n backend b\n}\n");
  dir.write("conf.d/1.conf", "listener one {\n bind 127.0.0.1:1\n backend b\n}\n");
  const std::string main_file = dir.write(
      "main.conf",
      "global {\n workers 3\n max-connections 50\n}\ninclude conf.d/*.conf\nbackend b {\n server s "
      "h:1\n}\n");
  const char* argv[] = {"edgeproxy", "-c", main_file.c_str(), "--workers", "5"};
  auto cl = parse_command_line(5, argv);
  ASSERT_TRUE(cl.ok()) << cl.error();
  auto t = load_topology(main_file, cl.value());
  ASSERT_TRUE(t.ok()) << t.error();
  EXPECT_EQ(t.value().source, main_file);
  ASSERT_EQ(t.value().listeners.size(), 2u);
  EXPECT_EQ(t.value().listeners[0].name, "one");
  EXPECT_EQ(t.value().listeners[1].where.to_string(), dir.path() + "/conf.d/2.conf:1:1");
  EXPECT_EQ(t.value().global.workers, 5u) << "the command line overrides the file";
  EXPECT_EQ(t.value().global.max_connections, 50u) << "what the command line leaves stays";
}

TEST(TopologyParserTest, LoadTopologyErrors) {
  TempDir dir;
  const CommandLine none;
  auto missing = load_topology(dir.path() + "/nope.conf", none);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(),
            "cannot read '" + dir.path() + "/nope.conf': No such file or directory");
  const std::string self = dir.write("self.conf", "include self.conf\n");
  auto cycle = load_topology(self, none);
  ASSERT_FALSE(cycle.ok());
  EXPECT_EQ(cycle.error(), self + ":1:9: include cycle: " + self + " -> " + self);
  const std::string plain = dir.write("plain.conf", "include absent.conf\n");
  auto absent = load_topology(plain, none);
  ASSERT_FALSE(absent.ok());
  EXPECT_NE(absent.error().find(":1:9: include 'absent.conf' matches no file"), std::string::npos);
}

TEST(TopologyParserTest, EveryExampleLoads) {
  glob_t g{};
  const std::string pattern = std::string(EDGEPROXY_EXAMPLES_DIR) + "/*.conf";
  ASSERT_EQ(glob(pattern.c_str(), 0, nullptr, &g), 0) << pattern;
  std::vector<std::string> names;
  for (size_t i = 0; i < g.gl_pathc; ++i) names.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  EXPECT_GE(names.size(), 3u);
  for (const std::string& name : names) {
    auto t = load_topology(name, CommandLine{});
    ASSERT_TRUE(t.ok()) << t.error();
    EXPECT_TRUE(t.value().warnings.empty()) << name << ": " << t.value().warnings[0];
    EXPECT_FALSE(t.value().listeners.empty()) << name;
    auto resolved = resolve_topology(t.value());
    EXPECT_TRUE(resolved.ok()) << resolved.error();
  }
}

// full.conf writes every directive and sub-option there is.
TEST(TopologyParserTest, FullExampleUsesEveryDirective) {
  const std::string path = std::string(EDGEPROXY_EXAMPLES_DIR) + "/full.conf";
  auto t = load_topology(path, CommandLine{});
  ASSERT_TRUE(t.ok()) << t.error();
  FILE* f = std::fopen(path.c_str(), "r");
  ASSERT_NE(f, nullptr);
  std::string text;
  char chunk[4096];
  for (size_t n; (n = std::fread(chunk, 1, sizeof chunk, f)) > 0;) text.append(chunk, n);
  std::fclose(f);
  for (const OptionSpec& o : option_table()) {
    if (o.in_file()) {
      EXPECT_NE(text.find(std::string("\n    ") + o.name + " "), std::string::npos) << o.name;
    }
  }
  for (const char* word : {"include ",
                           "auth basic ",
                           " realm ",
                           "allow-ports ",
                           "allow-networks ",
                           "deny-networks ",
                           "global {",
                           "backend app {",
                           "listener web {",
                           "server ",
                           " weight ",
                           " max-connections 100",
                           " backup",
                           "check interval",
                           " timeout ",
                           " rise ",
                           " fall ",
                           " send ",
                           " expect ",
                           "bind unix:",
                           " mode ",
                           "    backend app\n",
                           "map ",
                           "route {",
                           " proxy-protocol v2",
                           "on-timeout ",
                           "on-full ",
                           " sni ",
                           " alpn ",
                           " http-host ",
                           " http-method ",
                           " http-path ",
                           " regex ",
                           " prefix ",
                           " protocol ",
                           " any ",
                           " server 10",
                           " map users $1",
                           " hash shards ",
                           " send \"",
                           " reply ",
                           " close \"",
                           " reject",
                           " wait",
                           "    rewrite /",
                           "    request-header set ",
                           "    request-header add ",
                           "    request-header del ",
                           "    response-header set ",
                           "    response-header del ",
                           " http-path-exact /",
                           " http-path-glob ",
                           " http-path-regex \"",
                           "balance rtt"}) {
    EXPECT_NE(text.find(word), std::string::npos) << word;
  }
  EXPECT_EQ(t.value().listeners.size(), 5u) << "conf.d/admin.conf adds one";
  const ListenerSpec& edge = t.value().listeners[1];
  EXPECT_TRUE(edge.accept_proxy);
  EXPECT_EQ(edge.routes.rules.size(), 9u);
  const ListenerSpec& proxy = t.value().listeners[2];
  EXPECT_EQ(proxy.mode, ListenerMode::kForward);
  ASSERT_NE(proxy.forward.credentials, nullptr);
  EXPECT_TRUE(proxy.forward.credentials->verify("alice", "proxy-password"));
  EXPECT_EQ(t.value().maps.size(), 1u);
  const ListenerSpec& site = t.value().listeners[4];
  EXPECT_EQ(site.mode, ListenerMode::kHttp);
  EXPECT_EQ(site.routes.rules.size(), 4u);
  EXPECT_EQ(site.http.request.headers.size(), 3u);
  EXPECT_EQ(site.http.response.headers.size(), 2u);
}

TEST(TopologyParserTest, TheHttpExample) {
  auto t = load_topology(std::string(EDGEPROXY_EXAMPLES_DIR) + "/http.conf", CommandLine{});
  ASSERT_TRUE(t.ok()) << t.error();
  const Topology& top = t.value();
  ASSERT_EQ(top.listeners.size(), 1u);
  const ListenerSpec& l = top.listeners[0];
  EXPECT_EQ(l.mode, ListenerMode::kHttp);
  EXPECT_EQ(top.backends[l.backend].name, "app");
  EXPECT_EQ(l.routes.rules.size(), 6u);
  ASSERT_EQ(l.http.request.rewrites.size(), 1u);
  EXPECT_EQ(l.http.request.rewrites[0].replacement, "/");
  EXPECT_EQ(l.http.max_body, 20u << 20);
  EXPECT_EQ(top.backends[0].balance, Balance::kRtt);
  EXPECT_EQ(top.backends[0].pool.size, 32u);
  EXPECT_EQ(top.backends[0].pool.idle_timeout_ms, 30'000u);
  EXPECT_EQ(top.backends[1].balance, Balance::kMostIdle);
  for (const BackendSpec& b : top.backends) EXPECT_TRUE(b.pooled) << b.name;
}

}  // namespace
}  // namespace edgeproxy

namespace edgeproxy {
namespace {

// A forward listener (issue 12): auth from a file, ports and networks, the timeouts; directives
// that make no sense elsewhere are refused where they are written.
TEST(TopologyParserTest, AForwardListenerParses) {
  FakeFiles fs;
  fs.files["users"] =
      "# who may use the proxy\nalice:$5$ZGF6c2FsdA$Jkd91JfMX1ofLj6JGg4Wt78FdwvQ6m.UteFF1cp7DT0\n";
  const Topology t = Ok(
      "listener p {\n bind 127.0.0.1:3128\n mode forward\n auth basic users realm \"corp\"\n"
      " allow-ports 80,443 8080\n allow-networks 10.0.0.0/8 fd00::/8\n deny-networks 10.9.0.0/16\n"
      " request-timeout 2s\n destination-timeout 3s\n dns-ttl 0\n}\n",
      fs);
  const ListenerSpec& l = t.listeners[0];
  EXPECT_EQ(l.mode, ListenerMode::kForward);
  EXPECT_EQ(l.backend, kNoBackendIndex) << "a forward listener needs no backend";
  ASSERT_NE(l.forward.credentials, nullptr);
  EXPECT_TRUE(l.forward.credentials->verify("alice", "secret"));
  EXPECT_FALSE(l.forward.credentials->verify("alice", "Secret"));
  EXPECT_EQ(l.forward.realm, "corp");
  EXPECT_EQ(l.forward.auth_path, "users");
  EXPECT_EQ(l.forward.request_timeout_ms, 2000u);
  EXPECT_EQ(l.forward.connect_timeout_ms, 3000u);
  EXPECT_EQ(l.forward.dns_ttl_ms, 0u);
  for (const DestinationPolicy* p : {&l.forward.connect_policy, &l.forward.http_policy}) {
    EXPECT_TRUE(p->ports().contains(8080));
    EXPECT_FALSE(p->ports().contains(22));
    EXPECT_EQ(p->allowed().size(), 2u);
    EXPECT_EQ(p->denied().size(), 1u);
  }
}

TEST(TopologyParserTest, ForwardPortDefaultsDifferForConnectAndPlainRequests) {
  const Topology t = Ok("listener p {\n bind 127.0.0.1:3128\n mode forward\n}\n");
  const ForwardSpec& f = t.listeners[0].forward;
  EXPECT_TRUE(f.connect_policy.ports().contains(443));
  EXPECT_FALSE(f.connect_policy.ports().contains(80)) << "CONNECT: 443 only, like squid";
  EXPECT_TRUE(f.http_policy.ports().contains(80));
  EXPECT_TRUE(f.http_policy.ports().contains(443));
  EXPECT_EQ(f.credentials, nullptr);
  EXPECT_EQ(f.request_timeout_ms, 10'000u);
}

TEST(TopologyParserTest, ForwardDirectiveErrors) {
  FakeFiles fs;
  fs.files["bad-users"] = "alice:plaintext\n";
  const std::string head = "listener p {\n bind 127.0.0.1:3128\n mode forward\n";
  EXPECT_TRUE(
      Fails("listener p {\n bind 127.0.0.1:1\n backend b\n allow-ports 80\n}\n"
            "backend b {\n server s 127.0.0.1:2\n}\n",
            "f.conf:4:2: ", "applies to forward listeners only"));
  EXPECT_TRUE(Fails(head + " auth digest users\n}\n", "f.conf:4:7: ", "the only scheme is basic"));
  EXPECT_TRUE(Fails(head + " auth basic missing\n}\n", "f.conf:4:13: ", "names no file"));
  EXPECT_TRUE(Fails(head + " auth basic bad-users\n}\n", "f.conf:4:13: ", "auth: ", fs));
  EXPECT_TRUE(Fails(head + " auth basic bad-users realm \"a\\\"b\"\n}\n",
                    "f.conf:4:", "realm may not hold quotes", fs));
  EXPECT_TRUE(Fails(head + " allow-ports 0\n}\n", "f.conf:4:14: ", "allow-ports: "));
  EXPECT_TRUE(Fails(head + " allow-networks 10.1.0.0/8\n}\n", "f.conf:4:17: ", "allow-networks: "));
  EXPECT_TRUE(Fails(head + " deny-networks\n}\n", "f.conf:4:2: ", "missing argument"));
  EXPECT_TRUE(Fails(head + " allow-ports 80\n allow-ports 443\n}\n",
                    "f.conf:5:2: ", "duplicate 'allow-ports'"));
  EXPECT_TRUE(Fails(head + " mode tcp\n}\n", "f.conf:4:2: ", "duplicate 'mode'"));
  EXPECT_TRUE(Fails(head + " route {\n  any close\n }\n}\n",
                    "f.conf:1:1: ", "a forward listener reads HTTP itself"));
  EXPECT_TRUE(Fails(head + " mode2 x\n}\n", "f.conf:4:2: ", "unknown directive 'mode2'"));
}

}  // namespace
}  // namespace edgeproxy

namespace edgeproxy {
namespace {

TEST(TopologyParserTest, AdminDirectives) {
  const Topology t =
      Ok("global {\n"
         "  admin unix:/run/a.sock mode 0600 group adm\n"
         "  admin tcp 127.0.0.1:9999 token-file /etc/t\n"
         "  admin-users root 1001\n"
         "  admin-groups adm\n"
         "}\n"
         "backend b {\n  server s 127.0.0.1:1\n}\n"
         "listener l {\n  bind 127.0.0.1:2\n  backend b\n}\n");
  const AdminConfig& a = t.global.admin;
  EXPECT_EQ(a.unix_path, "/run/a.sock");
  EXPECT_EQ(a.unix_mode, 0600u);
  EXPECT_EQ(a.unix_group, "adm");
  EXPECT_EQ(a.tcp_address, "127.0.0.1:9999");
  EXPECT_EQ(a.token_file, "/etc/t");
  EXPECT_EQ(a.users, (std::vector<std::string>{"root", "1001"}));
  EXPECT_EQ(a.groups, (std::vector<std::string>{"adm"}));
  EXPECT_TRUE(a.enabled());
}

TEST(TopologyParserTest, AdminDirectivesRefused) {
  EXPECT_TRUE(Fails("global {\n  admin\n}\n", "f.conf:2:3: ", "missing argument to 'admin'"));
  EXPECT_TRUE(
      Fails("global {\n  admin unix:/a mode 8\n}\n", "f.conf:2:22: ", "mode: invalid value '8'"));
  EXPECT_TRUE(Fails("global {\n  admin unix:/a\n  admin unix:/b\n}\n",
                    "f.conf:3:9: ", "admin unix: is already set"));
  EXPECT_TRUE(Fails("global {\n  admin tcp unix:/x token-file /t\n}\n",
                    "f.conf:2:13: ", "admin tcp: invalid address"));
  EXPECT_TRUE(Fails("global {\n  admin-users a\n  admin-users b\n}\n",
                    "f.conf:3:3: ", "duplicate 'admin-users'"));
}

}  // namespace
}  // namespace edgeproxy

namespace edgeproxy {
namespace {

// --- mode http (docs/http-mode.md) ----------------------------------------------------------

// Routed()'s listener `l` in mode http: `body` starts at line 10.
std::string Http(const std::string& body) {
  return Routed(" mode http\n" + body);
}

TEST(TopologyParserTest, AnHttpListenerParsesEveryDirective) {
  const Topology t = Ok(Routed(
      " mode http\n backend a\n rewrite /old/ /new/\n rewrite /api /v2/api\n"
      " request-header add X-Client \"$client_addr:$client_port\"\n"
      " request-header set X-Id $request_id\n request-header del Cookie2\n"
      " response-header set Server \"edge $$ $listener/$server\"\n"
      " response-header del X-Powered-By\n forwarded-for off\n forwarded-proto off\n via off\n"
      " max-body 10m\n request-timeout 3s\n idle-timeout 30s\n max-lifetime 1h\n"
      " route {\n  http-host api.example.com backend b\n  http-path-exact /health close \"ok\"\n"
      "  http-path-glob *.php reject\n  http-path-regex \"^/u/[0-9]+$\" server 10.0.0.9:80\n"
      "  http-path /static/ http-method GET backend b\n  any backend a\n }\n"));
  ASSERT_EQ(t.listeners.size(), 1u);
  const ListenerSpec& l = t.listeners[0];
  EXPECT_EQ(l.mode, ListenerMode::kHttp);
  EXPECT_EQ(t.backends[l.backend].name, "a");
  const HttpSpec& h = l.http;
  ASSERT_EQ(h.request.rewrites.size(), 2u);
  EXPECT_EQ(h.request.rewrites[0].prefix, "/old/");
  EXPECT_EQ(h.request.rewrites[0].replacement, "/new/");
  EXPECT_EQ(h.request.rewrites[1].prefix, "/api");
  EXPECT_EQ(h.request.rewrites[1].replacement, "/v2/api");
  ASSERT_EQ(h.request.headers.size(), 3u);
  EXPECT_EQ(h.request.headers[0].action, http::HeaderAction::kAdd);
  EXPECT_EQ(h.request.headers[0].name, "X-Client");
  ASSERT_EQ(h.request.headers[0].value.parts.size(), 3u);
  EXPECT_EQ(h.request.headers[0].value.parts[0].var, http::ValueTemplate::Var::kClientAddr);
  EXPECT_EQ(h.request.headers[0].value.parts[1].literal, ":");
  EXPECT_EQ(h.request.headers[0].value.parts[2].var, http::ValueTemplate::Var::kClientPort);
  EXPECT_EQ(h.request.headers[1].action, http::HeaderAction::kSet);
  EXPECT_EQ(h.request.headers[2].action, http::HeaderAction::kDel);
  EXPECT_EQ(h.request.headers[2].name, "Cookie2");
  EXPECT_TRUE(h.request.headers[2].value.parts.empty());
  ASSERT_EQ(h.response.headers.size(), 2u);
  EXPECT_EQ(h.response.headers[0].name, "Server");
  EXPECT_EQ(h.response.headers[0].value.parts.front().literal, "edge $ ");
  EXPECT_EQ(h.response.headers[1].action, http::HeaderAction::kDel);
  EXPECT_FALSE(h.request.forwarded_for);
  EXPECT_FALSE(h.request.forwarded_proto);
  EXPECT_FALSE(h.request.via);
  EXPECT_FALSE(h.response.via) << "via sets both directions";
  EXPECT_EQ(h.max_body, 10u << 20);
  EXPECT_EQ(h.request_timeout_ms, 3000u);
  EXPECT_EQ(l.idle_timeout_s, 30u);
  EXPECT_EQ(l.limits.max_lifetime_s, 3600u);
  ASSERT_EQ(l.routes.rules.size(), 6u);
  EXPECT_EQ(l.routes.rules[1].matchers[0].kind, MatchKind::kHttpPathExact);
  EXPECT_EQ(l.routes.rules[1].matchers[0].text, "/health");
  EXPECT_EQ(l.routes.rules[1].action.text, "ok");
  EXPECT_EQ(l.routes.rules[2].matchers[0].kind, MatchKind::kHttpPathGlob);
  EXPECT_EQ(l.routes.rules[3].matchers[0].kind, MatchKind::kHttpPathRegex);
  const BackendSpec& hidden = t.backends[l.routes.rules[3].action.backend];
  EXPECT_EQ(hidden.name, "server:10.0.0.9:80");
  EXPECT_TRUE(hidden.pooled) << "a rule's server gets pools too";
  EXPECT_TRUE(t.backends[0].pooled);
  EXPECT_TRUE(t.backends[1].pooled);
}

TEST(TopologyParserTest, HttpAndPoolDefaults) {
  const Topology t =
      Ok("backend a {\n server s 127.0.0.1:1\n}\nbackend t {\n server s 127.0.0.1:2\n}\n"
         "listener h {\n bind 127.0.0.1:3\n mode http\n backend a\n}\n"
         "listener l {\n bind 127.0.0.1:4\n backend t\n}\n");
  const HttpSpec& h = t.listeners[0].http;
  EXPECT_TRUE(h.request.rewrites.empty());
  EXPECT_TRUE(h.request.headers.empty());
  EXPECT_TRUE(h.response.headers.empty());
  EXPECT_TRUE(h.request.forwarded_for);
  EXPECT_TRUE(h.request.forwarded_proto);
  EXPECT_TRUE(h.request.via);
  EXPECT_TRUE(h.response.via);
  EXPECT_EQ(h.max_body, 0u);
  EXPECT_EQ(h.request_timeout_ms, 10'000u);
  for (const BackendSpec& b : t.backends) {
    EXPECT_EQ(b.pool.size, 16u);
    EXPECT_EQ(b.pool.max_pending, 1024u);
    EXPECT_EQ(b.pool.pending_timeout_ms, 5000u);
    EXPECT_EQ(b.pool.idle_timeout_ms, 60'000u);
  }
  EXPECT_TRUE(t.backends[0].pooled);
  EXPECT_FALSE(t.backends[1].pooled) << "only a tcp listener uses it";
  EXPECT_EQ(t.listeners[1].http.request_timeout_ms, 10'000u);
}

TEST(TopologyParserTest, PoolDirectivesParseWithTheirUnits) {
  const Topology t =
      Ok("backend a {\n server s 127.0.0.1:1\n pool-size 64\n max-pending 0\n pending-timeout 250\n"
         " pool-idle-timeout 90\n balance rtt\n}\n"
         "backend b {\n server s 127.0.0.1:2\n pending-timeout 2s\n pool-idle-timeout 2m\n"
         " balance most-idle\n}\n"
         "listener h {\n bind 127.0.0.1:3\n mode http\n backend a\n route {\n  any backend b\n "
         "}\n}\n");
  const PoolSpec& a = t.backends[0].pool;
  EXPECT_EQ(a.size, 64u);
  EXPECT_EQ(a.max_pending, 0u) << "0: never wait";
  EXPECT_EQ(a.pending_timeout_ms, 250u) << "a bare number is milliseconds";
  EXPECT_EQ(a.idle_timeout_ms, 90'000u) << "a bare number is seconds, stored in ms";
  EXPECT_EQ(t.backends[0].balance, Balance::kRtt);
  const PoolSpec& b = t.backends[1].pool;
  EXPECT_EQ(b.pending_timeout_ms, 2000u);
  EXPECT_EQ(b.idle_timeout_ms, 120'000u);
  EXPECT_EQ(t.backends[1].balance, Balance::kMostIdle);
  EXPECT_STREQ(to_string(Balance::kRtt), "rtt");
  EXPECT_STREQ(to_string(Balance::kMostIdle), "most-idle");
  EXPECT_STREQ(to_string(ListenerMode::kHttp), "http");
  // Accepted in any backend: they matter only to http listeners.
  EXPECT_EQ(Ok(std::string(kMinimal) + "backend c {\n server s h:1\n pool-size 2\n}\n")
                .backends[1]
                .pool.size,
            2u);
}

TEST(TopologyParserTest, PoolDirectiveRanges) {
  const std::string b = "backend b {\n  server s h:1\n  ";
  EXPECT_TRUE(Fails(b + "pool-size 0\n}\n",
                    "f.conf:3:13: ", "pool-size: invalid value '0' (expected 1-10000)"));
  EXPECT_TRUE(Fails(b + "pool-size 10001\n}\n", "f.conf:3:13: ", "(expected 1-10000)"));
  EXPECT_TRUE(Fails(b + "max-pending 1000001\n}\n", "f.conf:3:15: ",
                    "max-pending: invalid value '1000001' (expected 0-1000000, 0 = never wait)"));
  EXPECT_TRUE(Fails(b + "pending-timeout 0\n}\n", "f.conf:3:19: ",
                    "pending-timeout: invalid value '0' (expected milliseconds 1-3600000"));
  EXPECT_TRUE(Fails(b + "pending-timeout 2h\n}\n", "f.conf:3:19: ", "(expected milliseconds"));
  EXPECT_TRUE(Fails(b + "pool-idle-timeout 0\n}\n", "f.conf:3:21: ",
                    "pool-idle-timeout: invalid value '0' (expected seconds 1-86400"));
  EXPECT_TRUE(Fails(b + "pool-idle-timeout 25h\n}\n", "f.conf:3:21: ", "(expected seconds"));
  EXPECT_TRUE(Fails(b + "pool-idle-timeout 1500ms\n}\n", "f.conf:3:21: ", "(expected seconds"));
  EXPECT_TRUE(
      Fails(b + "pool-size 2\n  pool-size 3\n}\n", "f.conf:4:3: ", "duplicate 'pool-size'"));
  EXPECT_TRUE(Fails(b + "balance fastest\n}\n", "f.conf:3:11: ",
                    "(expected roundrobin, leastconn, random, source, first, rtt or most-idle)"));
}

TEST(TopologyParserTest, HttpDirectivesRefusedInOtherModes) {
  const std::string tcp = "listener l {\n bind 127.0.0.1:1\n backend b\n";
  const std::string forward = "listener p {\n bind 127.0.0.1:1\n mode forward\n";
  const std::string end = "}\nbackend b {\n server s 127.0.0.1:2\n}\n";
  EXPECT_TRUE(Fails(tcp + " rewrite /a /b\n" + end, "f.conf:4:2: ",
                    "'rewrite' applies to http listeners only (expected 'mode http' in listener "
                    "'l')"));
  EXPECT_TRUE(Fails(forward + " request-header add X-A b\n" + end, "f.conf:4:2: ",
                    "'request-header' applies to http listeners only (expected 'mode http' in "
                    "listener 'p')"));
  for (const char* d : {"response-header del X-A", "forwarded-for off", "forwarded-proto on",
                        "via off", "max-body 1m"}) {
    const std::string name = std::string(d).substr(0, std::string(d).find(' '));
    EXPECT_TRUE(Fails(tcp + " " + d + "\n" + end,
                      "f.conf:4:2: ", "'" + name + "' applies to http listeners only"))
        << d;
    EXPECT_TRUE(
        Fails(forward + " " + d + "\n" + end, "f.conf:4:2: ", "applies to http listeners only"))
        << d;
  }
  // The mode may come after the directive: it is checked once the block ends.
  EXPECT_TRUE(Fails("listener l {\n bind 127.0.0.1:1\n via off\n mode tcp\n backend b\n" + end,
                    "f.conf:3:2: ", "'via' applies to http listeners only"));
  EXPECT_EQ(Ok("listener l {\n bind 127.0.0.1:1\n via off\n mode http\n backend b\n" + end)
                .listeners[0]
                .http.request.via,
            false);
}

TEST(TopologyParserTest, OtherModesDirectivesRefusedInHttp) {
  FakeFiles fs;
  fs.files["users"] = "alice:$5$ZGF6c2FsdA$Jkd91JfMX1ofLj6JGg4Wt78FdwvQ6m.UteFF1cp7DT0\n";
  for (const char* d :
       {"auth basic users", "allow-ports 80", "allow-networks 10.0.0.0/8",
        "deny-networks 10.0.0.0/8", "destination-timeout 2s", "dns-ttl 5", "open on"}) {
    const std::string name = std::string(d).substr(0, std::string(d).find(' '));
    EXPECT_TRUE(Fails(Http(" backend a\n " + std::string(d) + "\n"), "f.conf:11:2: ",
                      "'" + name +
                          "' applies to forward listeners only (expected 'mode forward' in "
                          "listener 'l')",
                      fs))
        << d;
  }
  for (const char* d :
       {"inspect-timeout 2s", "inspect-bytes 16k", "on-timeout close", "on-full reject"}) {
    const std::string name = std::string(d).substr(0, std::string(d).find(' '));
    EXPECT_TRUE(Fails(Http(" backend a\n " + std::string(d) + "\n"), "f.conf:11:2: ",
                      "'" + name +
                          "' applies to tcp listeners only (expected 'mode tcp' in "
                          "listener 'l')"))
        << d;
  }
  // As a forward listener: no PROXY header first, no acceleration.
  EXPECT_TRUE(Fails(Http(" backend a\n accept-proxy on\n"), "f.conf:7:1: ",
                    "listener 'l': an http listener reads each request head itself (expected no "
                    "'accept-proxy', or 'mode tcp')"));
  EXPECT_TRUE(Fails(Http(" backend a\n accelerate 1m\n"),
                    "f.conf:7:1: ", "listener 'l': an http listener does not accelerate"));
  EXPECT_EQ(Ok(Http(" backend a\n accelerate off\n accept-proxy off\n")).listeners[0].mode,
            ListenerMode::kHttp);
}

TEST(TopologyParserTest, SmartAcceptDefaultsByModeAndSmartConnectIsOff) {
  const Topology tcp = Ok(Routed(" backend a\n"));
  EXPECT_FALSE(tcp.listeners[0].smart_accept());
  EXPECT_FALSE(tcp.backends[0].tcp_smart_connect);
  EXPECT_TRUE(Ok(Routed(" backend a\n tcp-smart-accept on\n")).listeners[0].smart_accept());
  EXPECT_TRUE(Ok(Http(" backend a\n")).listeners[0].smart_accept());
  EXPECT_TRUE(Ok(Routed(" mode forward\n")).listeners[0].smart_accept());
  // Written after or before the mode, an explicit value wins over the mode's default.
  EXPECT_FALSE(Ok(Http(" backend a\n tcp-smart-accept off\n")).listeners[0].smart_accept());
  EXPECT_FALSE(
      Ok(Routed(" tcp-smart-accept off\n mode http\n backend a\n")).listeners[0].smart_accept());
  const Topology connect =
      Ok("backend a {\n server s 127.0.0.1:1\n tcp-smart-connect on\n}\n"
         "listener l {\n bind 127.0.0.1:3\n backend a\n}\n");
  EXPECT_TRUE(connect.backends[0].tcp_smart_connect);
  EXPECT_TRUE(Fails("backend a {\n server s 127.0.0.1:1\n tcp-smart-connect maybe\n}\n",
                    "f.conf:3:20: ", "tcp-smart-connect"));
}

TEST(TopologyParserTest, DeferAcceptTakesSecondsOrOff) {
  EXPECT_EQ(Ok(Routed(" backend a\n")).listeners[0].defer_accept_s, 0u);
  EXPECT_EQ(Ok(Routed(" backend a\n defer-accept 1\n")).listeners[0].defer_accept_s, 1u);
  EXPECT_EQ(Ok(Routed(" backend a\n defer-accept 2000ms\n")).listeners[0].defer_accept_s, 2u);
  EXPECT_EQ(Ok(Http(" backend a\n defer-accept 1m\n")).listeners[0].defer_accept_s, 60u);
  EXPECT_EQ(Ok(Routed(" backend a\n defer-accept off\n")).listeners[0].defer_accept_s, 0u);
  for (const char* bad : {"1500ms", "2h", "on"}) {
    EXPECT_TRUE(Fails(Routed(std::string(" backend a\n defer-accept ") + bad + "\n"),
                      "f.conf:10:15: ",
                      std::string("defer-accept: invalid value '") + bad +
                          "' (expected seconds 0-3600, 0 = off, or a number with a unit: ms, s, "
                          "m, h, or off)"));
  }
}

TEST(TopologyParserTest, RequestTimeoutIsForForwardAndHttpListeners) {
  EXPECT_EQ(Ok(Http(" backend a\n request-timeout 250\n")).listeners[0].http.request_timeout_ms,
            250u);
  EXPECT_EQ(Ok("listener p {\n bind 127.0.0.1:1\n request-timeout 2s\n mode forward\n}\n")
                .listeners[0]
                .forward.request_timeout_ms,
            2000u);
  EXPECT_TRUE(Fails(Routed(" backend a\n request-timeout 2s\n"), "f.conf:10:2: ",
                    "'request-timeout' applies to forward and http listeners only (expected "
                    "'mode forward' or 'mode http' in listener 'l')"));
  EXPECT_TRUE(Fails(Routed(" backend a\n dns-ttl 5\n"),
                    "f.conf:10:2: ", "'dns-ttl' applies to forward listeners only"))
      << "forward-only directives are refused in tcp listeners too";
  EXPECT_TRUE(Fails(Http(" backend a\n request-timeout 0\n"), "f.conf:11:18: ",
                    "request-timeout: invalid value '0' (expected milliseconds 1-3600000"));
  EXPECT_TRUE(Fails(Http(" backend a\n max-body 2p\n"), "f.conf:11:11: ", "max-body: invalid"));
  EXPECT_EQ(Ok(Http(" backend a\n max-body 1024g\n")).listeners[0].http.max_body, 1ull << 40);
  EXPECT_TRUE(Fails(Http(" backend a\n via maybe\n"), "f.conf:11:6: ", "(expected on or off)"));
  EXPECT_TRUE(Fails(Http(" backend a\n via\n via off\n"), "f.conf:12:2: ", "duplicate 'via'"));
  EXPECT_TRUE(Fails(Http(" backend a\n mode tcp\n"), "f.conf:11:2: ", "duplicate 'mode'"));
}

TEST(TopologyParserTest, AnHttpListenerNeedsABackendOrRoutes) {
  EXPECT_TRUE(Fails(Http(""), "f.conf:7:1: ",
                    "listener 'l' has no backend (expected 'backend NAME', or a 'route { ... }' "
                    "block)"));
  const Topology t = Ok(Http(" route {\n  http-host a.example backend a\n }\n"));
  EXPECT_EQ(t.listeners[0].backend, kNoBackendIndex) << "no default: no rule deciding closes";
  EXPECT_TRUE(t.backends[0].pooled);
  EXPECT_FALSE(t.backends[1].pooled);
}

TEST(TopologyParserTest, RewriteErrors) {
  EXPECT_TRUE(Fails(Http(" backend a\n rewrite /a\n"), "f.conf:11:2: ",
                    "missing argument to 'rewrite' (expected rewrite PREFIX NEW-PREFIX)"));
  EXPECT_TRUE(Fails(Http(" backend a\n rewrite /a /b /c\n"),
                    "f.conf:11:16: ", "extra argument '/c' to 'rewrite'"));
  EXPECT_TRUE(Fails(Http(" backend a\n rewrite a /b\n"), "f.conf:11:10: ",
                    "rewrite: 'a' is not a path (expected rewrite PREFIX NEW-PREFIX, both "
                    "starting with '/')"));
  EXPECT_TRUE(
      Fails(Http(" backend a\n rewrite /a b\n"), "f.conf:11:13: ", "rewrite: 'b' is not a path"));
  EXPECT_TRUE(Fails(Http(" backend a\n rewrite /a /b {\n }\n"),
                    "f.conf:11:16: ", "'rewrite' takes no block"));
}

TEST(TopologyParserTest, HeaderRuleErrors) {
  auto line = [](const std::string& rule) { return Http(" backend a\n " + rule + "\n"); };
  EXPECT_TRUE(Fails(line("request-header add"), "f.conf:11:2: ",
                    "missing argument to 'request-header' (expected request-header add|set|del "
                    "NAME [VALUE])"));
  EXPECT_TRUE(Fails(line("response-header put X-A b"), "f.conf:11:18: ",
                    "response-header: unknown action 'put' (expected add, set or del)"));
  EXPECT_TRUE(Fails(line("request-header \"add\" X-A b"), "f.conf:11:17: ", "unknown action"))
      << "a quoted word is never a keyword";
  EXPECT_TRUE(Fails(line("request-header set \"X A\" b"), "f.conf:11:21: ",
                    "request-header: invalid field name 'X A' (expected a token"));
  EXPECT_TRUE(Fails(line("request-header set X:A b"), "f.conf:11:21: ", "invalid field name"));
  for (const char* owned : {"Content-Length", "transfer-encoding", "Connection", "Keep-Alive",
                            "Upgrade", "TE", "Trailer"}) {
    EXPECT_TRUE(Fails(line(std::string("response-header del ") + owned), "f.conf:11:22: ",
                      "response-header: '" + std::string(owned) +
                          "' is written by the proxy (it frames the message or belongs to one "
                          "hop; expected another field)"))
        << owned;
  }
  EXPECT_TRUE(Fails(line("request-header set X-A"), "f.conf:11:21: ",
                    "missing value after 'X-A' (expected request-header set NAME VALUE)"));
  EXPECT_TRUE(Fails(line("request-header add X-A a b"), "f.conf:11:27: ",
                    "extra argument 'b' to 'request-header' (expected request-header add NAME "
                    "VALUE; quote a value with blanks)"));
  EXPECT_TRUE(Fails(line("request-header del X-A b"), "f.conf:11:25: ",
                    "request-header del takes no value (expected request-header del NAME)"));
  // ValueTemplate::parse's own phrase, at the value's column.
  EXPECT_TRUE(
      Fails(line("request-header set X-A \"id=$nope\""), "f.conf:11:25: ", "request-header: "));
  EXPECT_TRUE(Fails(line("request-header set X-A \"id=$nope\""), "f.conf:11:25: ", "$nope"));
  EXPECT_TRUE(
      Fails(line("response-header add X-A \"a\\x01b\""), "f.conf:11:26: ", "response-header: "));
  EXPECT_TRUE(Fails(line("request-header set X-A b {\n }"), "f.conf:11:27: ", "takes no block"));
  // Repeatable, in file order, and "" is an empty value.
  const Topology t =
      Ok(Http(" backend a\n request-header add X-A \"\"\n request-header add X-A 2\n"
              " request-header del X-B\n"));
  ASSERT_EQ(t.listeners[0].http.request.headers.size(), 3u);
  EXPECT_TRUE(t.listeners[0].http.request.headers[0].value.parts.empty());
  EXPECT_EQ(t.listeners[0].http.request.headers[1].value.parts[0].literal, "2");
}

TEST(TopologyParserTest, AnHttpListenersRulesRefuseWhatNeedsRawBytes) {
  auto rule = [](const std::string& r) { return Http(" route {\n  " + r + "\n }\n"); };
  for (const char* m :
       {"prefix \"GET\"", "regex \"^GET\"", "sni a.example", "alpn h2", "protocol http"}) {
    const std::string word = std::string(m).substr(0, std::string(m).find(' '));
    EXPECT_TRUE(Fails(rule(std::string(m) + " backend a"), "f.conf:11:3: ",
                      "matcher '" + word +
                          "' does not apply to an http listener (its rules run per request over "
                          "the request head; expected any, http-host NAMES, http-path PREFIX, "
                          "http-path-exact PATH, http-path-glob PATTERN, http-path-regex REGEX or "
                          "http-method NAME)"))
        << m;
  }
  EXPECT_TRUE(Fails(rule("any map m x"), "f.conf:11:7: ",
                    "action 'map' does not apply to an http listener (its rules run per request; "
                    "expected backend NAME, server HOST:PORT, close [TEXT] or reject)"));
  EXPECT_TRUE(Fails(rule("any hash a x"), "f.conf:11:7: ", "action 'hash' does not apply"));
  EXPECT_TRUE(Fails(rule("any wait"), "f.conf:11:7: ", "action 'wait' does not apply"));
  EXPECT_TRUE(Fails(rule("any reply \"x\""), "f.conf:11:7: ", "action 'reply' does not apply"));
  EXPECT_TRUE(Fails(rule("any backend a send \"x\""), "f.conf:11:17: ",
                    "'send' does not apply to an http listener (the request itself is sent"));
  EXPECT_TRUE(Fails(rule("frob x backend a"), "f.conf:11:3: ",
                    "unknown matcher 'frob' (expected any, http-host NAMES, http-path PREFIX"));
  EXPECT_TRUE(Fails(rule("http-host"), "f.conf:11:3: ",
                    "missing value after 'http-host' (expected any, http-host NAMES"));
  EXPECT_TRUE(Fails(rule("any"), "f.conf:11:3: ",
                    "missing action after 'any' (expected backend NAME, server HOST:PORT, close "
                    "[TEXT] or reject)"));
  // What a tcp listener's rules still accept.
  EXPECT_EQ(Ok(Routed(" route {\n  prefix \"G\" http-path-glob /a* backend a send \"x\"\n }\n"))
                .listeners[0]
                .routes.rules.size(),
            1u);
}

TEST(TopologyParserTest, NewPathMatcherErrors) {
  EXPECT_TRUE(Fails(Routed(" route {\n  http-path-exact login backend a\n }\n"), "f.conf:10:19: ",
                    "http-path-exact: invalid path 'login' (expected a path starting with '/', "
                    "without a query)"));
  EXPECT_TRUE(Fails(Routed(" route {\n  http-path-exact /a?b backend a\n }\n"),
                    "f.conf:10:19: ", "http-path-exact: invalid path '/a?b'"));
  EXPECT_TRUE(Fails(Routed(" route {\n  http-path-glob \"\" backend a\n }\n"),
                    "f.conf:10:18: ", "http-path-glob: expected a pattern of 1-8192 bytes"));
  EXPECT_TRUE(Fails(Routed(" route {\n  http-path-regex \"(\" backend a\n }\n"),
                    "f.conf:10:19: ", "http-path-regex: invalid regex"));
  EXPECT_TRUE(Fails(Routed(" route {\n  http-path-regex \"^/(a)\" map m $2\n }\n"),
                    "f.conf:10:3: ", "the key uses $2 but the rule's regex has 1 group(s)"));
  EXPECT_TRUE(Fails(Routed(" route {\n  http-path-exact\n }\n"),
                    "f.conf:10:3: ", "missing value after 'http-path-exact'"));
}

TEST(TopologyParserTest, PerRequestBalanceNeedsAnHttpListener) {
  const std::string backends =
      "backend r {\n server s 127.0.0.1:1\n balance rtt\n}\n"
      "backend m {\n server s 127.0.0.1:2\n balance most-idle\n}\n";
  EXPECT_TRUE(Fails(backends + "listener l {\n bind 127.0.0.1:3\n backend r\n}\n", "f.conf:11:10: ",
                    "listener 'l' (mode tcp) uses backend 'r', whose 'balance rtt' balances HTTP "
                    "requests (expected 'mode http', or another balance in backend 'r')"));
  EXPECT_TRUE(Fails(
      backends + "listener l {\n bind 127.0.0.1:3\n route {\n  any backend m\n }\n}\n",
      "f.conf:12:15: ", "listener 'l' (mode tcp) uses backend 'm', whose 'balance most-idle'"));
  EXPECT_TRUE(Fails(backends + "listener p {\n bind 127.0.0.1:3\n mode forward\n backend m\n}\n"
                               "listener h {\n bind 127.0.0.1:4\n mode http\n backend r\n}\n",
                    "f.conf:12:10: ", "listener 'p' (mode forward) uses backend 'm'"));
  FakeFiles fs;
  fs.files["m.map"] = "k m\n";
  EXPECT_TRUE(Fails("map x m.map\n" + backends +
                        "listener l {\n bind 127.0.0.1:3\n route {\n  regex \"(a)\" map x $1\n "
                        "}\n}\n",
                    "f.conf:13:19: ", "listener 'l' (mode tcp) uses backend 'm'", fs));
  EXPECT_TRUE(Fails(backends +
                        "listener l {\n bind 127.0.0.1:3\n backend x\n on-timeout backend r\n"
                        "}\nbackend x {\n server s 127.0.0.1:5\n}\n",
                    "f.conf:12:21: ", "uses backend 'r'"));
  const Topology t = Ok(backends +
                        "listener h {\n bind 127.0.0.1:3\n mode http\n backend r\n route {\n"
                        "  http-path /m backend m\n }\n}\n");
  EXPECT_EQ(t.backends[0].balance, Balance::kRtt);
  EXPECT_TRUE(t.backends[0].pooled);
  EXPECT_TRUE(t.backends[1].pooled);
}

}  // namespace
}  // namespace edgeproxy
