// CommandLine: what the option table adds to today's flags: -c and -t, -c refusing the
// one-listener flags, units on the timeouts, which options were given, the topology the flags
// describe, and process-wide flags overriding a file.
#include "edgeproxy/command_line.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

#include "command_line_args.h"

namespace edgeproxy {
namespace {

using command_line_args::Err;
using command_line_args::Ok;
using command_line_args::Parse;

TEST(CommandLineTest, ConfigFileAndTestInEveryForm) {
  EXPECT_EQ(Ok({"-c", "a.conf"}).config_file, "a.conf");
  EXPECT_EQ(Ok({"-cb.conf"}).config_file, "b.conf");
  EXPECT_EQ(Ok({"--config", "c.conf"}).config_file, "c.conf");
  EXPECT_EQ(Ok({"--config=d.conf"}).config_file, "d.conf");
  EXPECT_TRUE(Ok({"-t", "-c", "a.conf"}).check_only);
  EXPECT_TRUE(Ok({"--test"}).check_only) << "-t alone checks the command line";
  EXPECT_FALSE(Ok({}).check_only);
  EXPECT_TRUE(Ok({}).config_file.empty());
  EXPECT_EQ(Err({"-c", ""}), "-c: empty file name");
  EXPECT_EQ(Err({"--test=1"}), "--test: takes no value");
  EXPECT_EQ(Err({"-c"}), "-c: missing value");
}

TEST(CommandLineTest, ConfigRefusesTheOneListenerFlags) {
  for (const auto& [flag, value] :
       std::vector<std::pair<const char*, const char*>>{{"-l", "::1"},
                                                        {"-p", "80"},
                                                        {"-b", "h"},
                                                        {"-P", "81"},
                                                        {"--listen", "::1"},
                                                        {"--backend-port", "81"},
                                                        {"--idle-timeout", "1"},
                                                        {"--connect-timeout", "1"}}) {
    const std::string after = Err({"-c", "a.conf", flag, value});
    EXPECT_EQ(after.rfind(std::string(flag) + ": not with -c", 0), 0u) << after;
    EXPECT_EQ(after.find('\n'), std::string::npos);
    const std::string before = Err({flag, value, "--config=a.conf"});
    EXPECT_EQ(before.rfind(std::string(flag) + ": not with -c", 0), 0u) << before;
  }
}

TEST(CommandLineTest, ConfigTakesProcessWideFlags) {
  const CommandLine cl =
      Ok({"-c", "a.conf", "--workers", "4", "--cpu-list", "0-3", "-v", "--max-connections", "9",
          "--no-no-delay", "--splice=never", "--shutdown-timeout", "1m", "-t"});
  EXPECT_EQ(cl.config.workers, 4u);
  EXPECT_EQ(cl.config.cpu_list.size(), 4u);
  EXPECT_EQ(cl.config.log_level, LogLevel::kVerbose);
  EXPECT_EQ(cl.config.shutdown_timeout_s, 60u);
  EXPECT_TRUE(cl.has("workers"));
  EXPECT_TRUE(cl.has("no-delay"));
  EXPECT_TRUE(cl.has("test"));
  EXPECT_FALSE(cl.has("buffers"));
}

TEST(CommandLineTest, TimeoutsTakeUnits) {
  EXPECT_EQ(Ok({"--connect-timeout", "2s"}).connect_timeout_ms, 2000u);
  EXPECT_EQ(Ok({"--connect-timeout=250"}).connect_timeout_ms, 250u);
  EXPECT_EQ(Ok({"--idle-timeout", "1h"}).idle_timeout_s, 3600u);
  EXPECT_EQ(Ok({"--idle-timeout", "90"}).idle_timeout_s, 90u);
  EXPECT_EQ(Ok({"--shutdown-timeout", "2000ms"}).config.shutdown_timeout_s, 2u);
  EXPECT_EQ(
      Err({"--shutdown-timeout", "500ms"}).rfind("--shutdown-timeout: invalid value '500ms'", 0),
      0u)
      << "not a whole number of seconds";
}

TEST(CommandLineTest, LogLevelOption) {
  EXPECT_EQ(Ok({"--log-level", "quiet"}).config.log_level, LogLevel::kQuiet);
  EXPECT_EQ(Ok({"--log-level=verbose", "-q"}).config.log_level, LogLevel::kQuiet);
  EXPECT_EQ(Err({"--log-level", "loud"}),
            "--log-level: invalid value 'loud' (expected quiet, normal or verbose)");
}

TEST(CommandLineTest, FileOnlyDirectivesAreNotFlags) {
  EXPECT_EQ(Err({"--balance", "first"}), "unknown option '--balance' (see --help)");
  EXPECT_EQ(Err({"--retries=1"}), "unknown option '--retries=1' (see --help)");
  EXPECT_EQ(Err({"--no-splice"}), "unknown option '--no-splice' (see --help)")
      << "--no- only negates a switch";
}

TEST(CommandLineTest, TopologyFromCommandLine) {
  const CommandLine cl = Ok({"-l", "::1", "-p", "9000", "-b", "backend.example", "-P", "9001",
                             "--idle-timeout", "2m", "--connect-timeout", "3s", "--workers", "2"});
  auto r = topology_from_command_line(cl);
  ASSERT_TRUE(r.ok()) << r.error();
  const Topology& t = r.value();
  EXPECT_EQ(t.source, "command line");
  EXPECT_EQ(t.global.workers, 2u);
  ASSERT_EQ(t.listeners.size(), 1u);
  const ListenerSpec& l = t.listeners[0];
  EXPECT_EQ(l.name, "main");
  ASSERT_EQ(l.binds.size(), 1u);
  EXPECT_EQ(l.binds[0].to_string(), "[::1]:9000");
  EXPECT_EQ(l.backend, 0u);
  EXPECT_EQ(l.idle_timeout_s, 120u);
  EXPECT_EQ(l.where.to_string(), "command line");
  ASSERT_EQ(t.backends.size(), 1u);
  const BackendSpec& b = t.backends[0];
  EXPECT_EQ(b.name, "main");
  EXPECT_EQ(b.retries, 0u) << "a name's several addresses are tried in turn instead";
  EXPECT_EQ(b.connect_timeout_ms, 3000u);
  EXPECT_EQ(b.balance, Balance::kRoundRobin);
  EXPECT_FALSE(b.check.enabled);
  ASSERT_EQ(b.servers.size(), 1u);
  EXPECT_EQ(b.servers[0].name, "main");
  EXPECT_EQ(b.servers[0].endpoint.to_string(), "backend.example:9001");
  EXPECT_TRUE(b.servers[0].addresses.empty()) << "unresolved";
  EXPECT_TRUE(t.warnings.empty());
}

TEST(CommandLineTest, DefaultTopologyIsTodaysDefaults) {
  auto r = topology_from_command_line(Ok({}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().listeners[0].binds[0].to_string(), "0.0.0.0:8080");
  EXPECT_EQ(r.value().backends[0].servers[0].endpoint.to_string(), "127.0.0.1:8081");
  EXPECT_EQ(r.value().listeners[0].idle_timeout_s, 3600u);
  EXPECT_EQ(r.value().backends[0].connect_timeout_ms, 5000u);
}

TEST(CommandLineTest, ProxyProtocolAndInspectionFlagsReachTheTopology) {
  auto r = topology_from_command_line(Ok({"--accept-proxy", "--inspect-timeout", "2s",
                                          "--inspect-bytes", "1k", "--proxy-protocol", "v2"}));
  ASSERT_TRUE(r.ok()) << r.error();
  const ListenerSpec& l = r.value().listeners[0];
  EXPECT_TRUE(l.accept_proxy);
  EXPECT_TRUE(l.inspects());
  EXPECT_EQ(l.inspect_timeout_ms, 2000u);
  EXPECT_EQ(l.inspect_bytes, 1024u);
  EXPECT_EQ(r.value().backends[0].proxy_protocol, 2u);
  auto plain = topology_from_command_line(Ok({}));
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain.value().listeners[0].inspects());
  EXPECT_EQ(plain.value().backends[0].proxy_protocol, 0u);
}

TEST(CommandLineTest, SmartAcceptAndConnectFlags) {
  auto plain = topology_from_command_line(Ok({}));
  ASSERT_TRUE(plain.ok()) << plain.error();
  EXPECT_FALSE(plain.value().listeners[0].smart_accept());
  EXPECT_FALSE(plain.value().backends[0].tcp_smart_connect);
  auto on = topology_from_command_line(Ok({"--tcp-smart-accept", "--tcp-smart-connect"}));
  ASSERT_TRUE(on.ok()) << on.error();
  EXPECT_TRUE(on.value().listeners[0].smart_accept());
  EXPECT_TRUE(on.value().backends[0].tcp_smart_connect);
  auto http = topology_from_command_line(Ok({"--mode", "http"}));
  ASSERT_TRUE(http.ok()) << http.error();
  EXPECT_TRUE(http.value().listeners[0].smart_accept()) << "HAProxy's default in HTTP mode";
  auto off = topology_from_command_line(Ok({"--mode", "http", "--no-tcp-smart-accept"}));
  ASSERT_TRUE(off.ok()) << off.error();
  EXPECT_FALSE(off.value().listeners[0].smart_accept());
}

TEST(CommandLineTest, GlobalOverridesReplaceOnlyWhatWasGiven) {
  Config file;
  file.workers = 8;
  file.max_connections = 100;
  file.no_delay = true;
  file.log_level = LogLevel::kQuiet;
  file.splice_threshold_bytes = 1;
  const CommandLine cl =
      Ok({"-c", "x.conf", "--workers", "auto", "--no-no-delay", "-v", "--splice-threshold", "2k"});
  ASSERT_TRUE(apply_global_overrides(file, cl).ok());
  EXPECT_EQ(file.workers, 0u);
  EXPECT_FALSE(file.no_delay);
  EXPECT_EQ(file.log_level, LogLevel::kVerbose);
  EXPECT_EQ(file.splice_threshold_bytes, 2048u);
  EXPECT_EQ(file.max_connections, 100u) << "not given: the file's value stays";
}

TEST(CommandLineTest, ModeHttpMakesAPooledBackend) {
  auto r = topology_from_command_line(
      Ok({"--mode", "http", "--pool-size", "4", "--request-timeout", "2s"}));
  ASSERT_TRUE(r.ok()) << r.error();
  const ListenerSpec& l = r.value().listeners[0];
  EXPECT_EQ(l.mode, ListenerMode::kHttp);
  EXPECT_EQ(l.name, "main");
  EXPECT_EQ(l.backend, 0u);
  EXPECT_EQ(l.http.request_timeout_ms, 2000u);
  const BackendSpec& b = r.value().backends[0];
  EXPECT_EQ(b.name, "main");
  EXPECT_EQ(b.pool.size, 4u);
  EXPECT_TRUE(b.pooled);
  auto tcp = topology_from_command_line(Ok({"--pool-size", "8"}));
  ASSERT_TRUE(tcp.ok());
  EXPECT_EQ(tcp.value().backends[0].pool.size, 8u) << "accepted, as in any backend of a file";
  EXPECT_FALSE(tcp.value().backends[0].pooled);
  EXPECT_EQ(Err({"--pool-size", "0"}), "--pool-size: invalid value '0' (expected 1-10000)");
  EXPECT_TRUE(Err({"-c", "a.conf", "--pool-size", "2"}).starts_with("--pool-size: not with -c "));
}

TEST(CommandLineTest, FlagsOfOtherModesAreRefused) {
  EXPECT_EQ(Err({"--mode", "http", "--dns-ttl", "5"}),
            "--dns-ttl: applies to forward listeners only (expected --mode forward, not --mode "
            "http)");
  EXPECT_EQ(Err({"--destination-timeout=2s", "--mode=http"}),
            "--destination-timeout: applies to forward listeners only (expected --mode forward, "
            "not --mode http)");
  EXPECT_TRUE(Err({"--open", "--mode", "http"}).starts_with("--open: applies to forward "));
  EXPECT_EQ(Err({"--dns-ttl", "5"}),
            "--dns-ttl: applies to forward listeners only (expected --mode forward, not --mode "
            "tcp)");
  EXPECT_EQ(Err({"--request-timeout", "5s"}),
            "--request-timeout: applies to forward and http listeners only (expected --mode "
            "forward or --mode http, not --mode tcp)");
  EXPECT_EQ(Err({"--mode", "http", "--inspect-timeout", "2s"}),
            "--inspect-timeout: applies to tcp listeners only (expected --mode tcp, not --mode "
            "http)");
  EXPECT_EQ(Err({"--mode", "http", "--accept-proxy"}),
            "--accept-proxy: not with --mode http (an http listener reads each request head "
            "itself and does not accelerate)");
  EXPECT_TRUE(
      Err({"--accelerate", "1m", "--mode", "http"}).starts_with("--accelerate: not with --mode "));
  EXPECT_TRUE(Parse({"--mode", "http", "--accelerate", "off", "--no-accept-proxy"}).ok());
  EXPECT_TRUE(Parse({"--mode", "forward", "--dns-ttl", "5", "--request-timeout", "1s"}).ok());
  EXPECT_EQ(Err({"--mode", "udp"}), "--mode: invalid value 'udp' (expected tcp, forward or http)");
}

}  // namespace
}  // namespace edgeproxy
