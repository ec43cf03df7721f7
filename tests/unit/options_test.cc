// Options: the one table. Every entry has help and appears in --help, names and short flags are
// unique, every example value parses on the command line and in a file, and the value syntax
// (counts, durations with units, sizes with units, enums, switches) accepts and refuses exactly.
#include "edgeproxy/options.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "edgeproxy/command_line.h"
#include "edgeproxy/topology_parser.h"

namespace edgeproxy {
namespace {

uint64_t Number(const char* name, const char* text) {
  const OptionSpec* o = find_option(name);
  EXPECT_NE(o, nullptr) << name;
  if (o == nullptr) return 0;
  auto v = parse_option_value(*o, text);
  EXPECT_TRUE(v.ok()) << name << " " << text << ": " << v.error();
  return v.ok() ? v.value().number : 0;
}

std::string Refusal(const char* name, const char* text) {
  const OptionSpec* o = find_option(name);
  EXPECT_NE(o, nullptr) << name;
  if (o == nullptr) return {};
  auto v = parse_option_value(*o, text);
  EXPECT_FALSE(v.ok()) << name << " " << text;
  return v.ok() ? std::string() : v.error();
}

Result<Topology> NoIncludes(std::string_view text) {
  return parse_topology(text, "t.conf", [](const std::string&, const std::string&) {
    return Result<std::vector<IncludedFile>>(std::vector<IncludedFile>{});
  });
}

TEST(OptionsTest, EveryOptionHasHelpAndAppearsInUsage) {
  const std::string text = usage();
  for (const OptionSpec& o : option_table()) {
    EXPECT_GT(std::string(o.help).size(), 10u) << o.name;
    EXPECT_NE(o.apply, nullptr) << o.name;
    const std::string shown =
        o.on_command_line() ? std::string("--") + o.name + " " : std::string("  ") + o.name + " ";
    EXPECT_NE(text.find(shown), std::string::npos) << shown;
    if (o.short_name != 0) {
      EXPECT_NE(text.find(std::string("-") + o.short_name + ", --" + o.name), std::string::npos);
    }
    if (o.default_text[0] != '\0') {
      EXPECT_NE(text.find(std::string("(default ") + o.default_text + ")"), std::string::npos)
          << o.name;
    }
    if (o.kind == ValueKind::kSwitch && o.on_command_line()) {
      EXPECT_NE(text.find(std::string("--no-") + o.name + " "), std::string::npos);
    }
  }
}

TEST(OptionsTest, UsageLinesFitOneHundredColumns) {
  const std::string text = usage();
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    EXPECT_LE(end - start, 100u) << text.substr(start, end - start);
    start = end + 1;
  }
}

TEST(OptionsTest, NamesAndShortFlagsAreUnique) {
  std::set<std::string> names;
  std::set<char> shorts;
  for (const OptionSpec& o : option_table()) {
    EXPECT_TRUE(names.insert(o.name).second) << o.name;
    if (o.short_name != 0) {
      EXPECT_TRUE(shorts.insert(o.short_name).second) << o.short_name;
    }
    EXPECT_EQ(find_option(o.name), &o);
    if (o.short_name != 0) {
      EXPECT_EQ(find_short_option(o.short_name), &o);
    }
  }
  EXPECT_EQ(find_option("nope"), nullptr);
  EXPECT_EQ(find_short_option('Z'), nullptr);
  EXPECT_EQ(find_short_option(0), nullptr);
}

TEST(OptionsTest, ScopesAndSpellingsAgree) {
  for (const OptionSpec& o : option_table()) {
    if (o.scope == OptionScope::kCommandLine) {
      EXPECT_FALSE(o.in_file()) << o.name;
    }
    if (o.kind == ValueKind::kFlag) {
      EXPECT_FALSE(o.in_file()) << o.name << ": a file needs a value";
    }
    if (!o.on_command_line()) {
      EXPECT_NE(o.scope, OptionScope::kGlobal) << o.name;
    }
  }
}

TEST(OptionsTest, EveryExampleParses) {
  for (const OptionSpec& o : option_table()) {
    if (!o.takes_value() && o.kind != ValueKind::kSwitch) continue;
    auto v = parse_option_value(o, o.example);
    EXPECT_TRUE(v.ok()) << o.name << " " << o.example << ": " << v.error();
  }
}

// The first mode a listener option applies to, when that is not tcp (the default): "forward".
const char* ModeFor(const OptionSpec& o) {
  if (o.modes == 0 || (o.modes & kModeTcp) != 0) return nullptr;
  return (o.modes & kModeForward) != 0 ? "forward" : "http";
}

TEST(OptionsTest, EveryCommandLineOptionParses) {
  for (const OptionSpec& o : option_table()) {
    if (!o.on_command_line()) continue;
    std::vector<const char*> argv{"edgeproxy"};
    const std::string flag = std::string("--") + o.name;
    argv.push_back(flag.c_str());
    if (o.takes_value()) argv.push_back(o.example);
    if (ModeFor(o) != nullptr) {
      argv.push_back("--mode");
      argv.push_back(ModeFor(o));
    }
    auto r = parse_command_line(static_cast<int>(argv.size()), argv.data());
    ASSERT_TRUE(r.ok()) << flag << ": " << r.error();
    EXPECT_TRUE(r.value().has(o.name)) << flag;
  }
}

// Every directive a file accepts, written with its example value in the block of its scope.
TEST(OptionsTest, EveryFileDirectiveParses) {
  for (const OptionSpec& o : option_table()) {
    if (!o.in_file()) continue;
    const std::string line = std::string("    ") + o.name + " " + o.example + "\n";
    std::string text = o.scope == OptionScope::kGlobal ? "global {\n" + line + "}\n" : "";
    text += "listener l {\n    bind 127.0.0.1:1\n    backend b\n";
    if (ModeFor(o) != nullptr) text += std::string("    mode ") + ModeFor(o) + "\n";
    if (o.scope == OptionScope::kListener) text += line;
    text += "}\nbackend b {\n    server s 127.0.0.1:2\n";
    if (o.scope == OptionScope::kBackend) text += line;
    text += "}\n";
    auto t = NoIncludes(text);
    EXPECT_TRUE(t.ok()) << o.name << ": " << t.error();
  }
}

TEST(OptionsTest, DurationsTakeUnitsAndADefaultUnit) {
  EXPECT_EQ(Number("connect-timeout", "250"), 250u) << "a bare number is milliseconds";
  EXPECT_EQ(Number("connect-timeout", "250ms"), 250u);
  EXPECT_EQ(Number("connect-timeout", "2s"), 2000u);
  EXPECT_EQ(Number("connect-timeout", "1m"), 60'000u);
  EXPECT_EQ(Number("connect-timeout", "1h"), 3'600'000u);
  EXPECT_EQ(Number("idle-timeout", "60"), 60u) << "a bare number is seconds";
  EXPECT_EQ(Number("idle-timeout", "60s"), 60u);
  EXPECT_EQ(Number("idle-timeout", "2m"), 120u);
  EXPECT_EQ(Number("idle-timeout", "1h"), 3600u);
  EXPECT_EQ(Number("idle-timeout", "2000ms"), 2u);
  EXPECT_EQ(Number("shutdown-timeout", "0s"), 0u);
  for (const char* bad : {"1500ms", "2d", "2S", "s", "1.5s", "-1s", "2 s", "2ms5", "ms"}) {
    EXPECT_NE(Refusal("idle-timeout", bad).find("'" + std::string(bad) + "'"), std::string::npos);
  }
  EXPECT_EQ(Refusal("connect-timeout", "2h"),
            "invalid value '2h' (expected milliseconds 1-3600000, or a number with a unit: ms, "
            "s, m, h)");
  EXPECT_FALSE(Refusal("connect-timeout", "0s").empty()) << "below the range";
}

TEST(OptionsTest, SizesTakeBinaryUnits) {
  EXPECT_EQ(Number("splice-threshold", "0"), 0u);
  EXPECT_EQ(Number("splice-threshold", "100"), 100u);
  EXPECT_EQ(Number("splice-threshold", "64k"), 65536u);
  EXPECT_EQ(Number("splice-threshold", "2m"), 2u << 20);
  EXPECT_EQ(Number("splice-threshold", "1g"), 1u << 30);
  for (const char* bad : {"2g", "1t", "64K", "k", "1.5k", "-1k", "64kb"}) {
    EXPECT_NE(Refusal("splice-threshold", bad).find("(expected bytes 0-1073741824"),
              std::string::npos)
        << bad;
  }
}

TEST(OptionsTest, RatesTakeAnOptionalPerSecond) {
  EXPECT_EQ(Number("rate-limit-up", "1m/s"), 1u << 20);
  EXPECT_EQ(Number("rate-limit-up", "1m"), 1u << 20);
  EXPECT_EQ(Number("rate-limit-down", "0"), 0u);
  EXPECT_EQ(Number("new-connections-per-client", "20/s"), 20u);
  EXPECT_EQ(Number("new-connections-per-client", "20"), 20u);
  for (const char* bad : {"1m/m", "/s", "1m/s/s", "5x", "1m /s"}) {
    EXPECT_NE(Refusal("rate-limit-up", bad).find("(expected bytes per second"), std::string::npos)
        << bad;
  }
  EXPECT_EQ(Refusal("new-connections-per-client", "5/m"),
            "invalid value '5/m' (expected 0-1000000, 0 = none, /s optional)");
  // Only rates take /s.
  EXPECT_FALSE(Refusal("upload-limit", "1m/s").empty());
  EXPECT_FALSE(Refusal("max-connections-per-client", "5/s").empty());
}

TEST(OptionsTest, EnumsAndSwitchesNameTheirChoices) {
  EXPECT_EQ(Number("splice", "never"), 2u);
  EXPECT_EQ(Refusal("splice", "yes"), "invalid value 'yes' (expected auto, always or never)");
  EXPECT_EQ(Refusal("balance", "rr"),
            "invalid value 'rr' (expected roundrobin, leastconn, random, source, first, rtt or "
            "most-idle)");
  EXPECT_EQ(Refusal("mode", "https"), "invalid value 'https' (expected tcp, forward or http)");
  EXPECT_EQ(Refusal("log-level", "loud"),
            "invalid value 'loud' (expected quiet, normal or verbose)");
  EXPECT_EQ(Number("no-delay", "on"), 1u);
  EXPECT_EQ(Number("no-delay", "off"), 0u);
  EXPECT_EQ(Number("no-delay", "yes"), 1u);
  EXPECT_EQ(Number("no-delay", "no"), 0u);
  EXPECT_EQ(Refusal("no-delay", "maybe"), "invalid value 'maybe' (expected on or off)");
}

TEST(OptionsTest, CountsStateTheirRangeAndSpecialWord) {
  EXPECT_EQ(Number("workers", "auto"), 0u);
  EXPECT_EQ(Refusal("workers", "0"), "invalid value '0' (expected 1-1024 or auto)");
  EXPECT_EQ(Refusal("retries", "17"), "invalid value '17' (expected 0-16)");
  EXPECT_EQ(Refusal("port", "0"), "invalid value '0' (expected a port 1-65535)");
  EXPECT_EQ(Refusal("buffers", "1"),
            "invalid value '1' (expected 2-4000000, at least 2, one per direction)");
}

// The defaults --help shows are the defaults of the structs the options fill.
TEST(OptionsTest, DefaultsShownAreTheStructDefaults) {
  const Config c;
  const ListenerSpec l;
  const BackendSpec b;
  const CommandLine cl;
  EXPECT_EQ(Number("max-connections", find_option("max-connections")->default_text),
            c.max_connections);
  EXPECT_EQ(Number("backlog", find_option("backlog")->default_text), uint64_t(c.backlog));
  EXPECT_EQ(Number("workers", find_option("workers")->default_text), c.workers);
  EXPECT_EQ(Number("shutdown-timeout", find_option("shutdown-timeout")->default_text),
            c.shutdown_timeout_s);
  EXPECT_EQ(Number("splice-threshold", find_option("splice-threshold")->default_text),
            c.splice_threshold_bytes);
  EXPECT_EQ(Number("batch-wait", find_option("batch-wait")->default_text), c.batch_wait_us);
  EXPECT_EQ(find_option("splice")->default_text, std::string(to_string(c.splice)));
  EXPECT_EQ(Number("idle-timeout", find_option("idle-timeout")->default_text), l.idle_timeout_s);
  EXPECT_EQ(Number("max-lifetime", find_option("max-lifetime")->default_text),
            l.limits.max_lifetime_s);
  EXPECT_EQ(Number("rate-limit-up", find_option("rate-limit-up")->default_text),
            l.limits.rate_up.bytes_per_s);
  EXPECT_EQ(Number("client-ipv6-prefix", find_option("client-ipv6-prefix")->default_text),
            l.limits.ipv6_prefix);
  EXPECT_EQ(
      Number("max-connections-per-client", find_option("max-connections-per-client")->default_text),
      l.limits.max_per_client);
  EXPECT_EQ(Number("connect-timeout", find_option("connect-timeout")->default_text),
            b.connect_timeout_ms);
  EXPECT_EQ(Number("retries", find_option("retries")->default_text), b.retries);
  EXPECT_EQ(find_option("balance")->default_text, std::string(to_string(b.balance)));
  EXPECT_EQ(Number("pool-size", find_option("pool-size")->default_text), b.pool.size);
  EXPECT_EQ(Number("max-pending", find_option("max-pending")->default_text), b.pool.max_pending);
  EXPECT_EQ(Number("pending-timeout", find_option("pending-timeout")->default_text),
            b.pool.pending_timeout_ms);
  EXPECT_EQ(Number("pool-idle-timeout", find_option("pool-idle-timeout")->default_text) * 1000,
            b.pool.idle_timeout_ms);
  EXPECT_EQ(Number("request-timeout", find_option("request-timeout")->default_text),
            l.http.request_timeout_ms);
  EXPECT_EQ(Number("request-timeout", find_option("request-timeout")->default_text),
            l.forward.request_timeout_ms);
  EXPECT_EQ(Number("max-body", find_option("max-body")->default_text), l.http.max_body);
  for (const char* name : {"forwarded-for", "forwarded-proto", "via"}) {
    EXPECT_STREQ(find_option(name)->default_text, "on") << name;
  }
  EXPECT_TRUE(l.http.request.forwarded_for && l.http.request.forwarded_proto);
  EXPECT_TRUE(l.http.request.via && l.http.response.via);
  EXPECT_EQ(find_option("listen")->default_text, cl.listen_host);
  EXPECT_EQ(Number("port", find_option("port")->default_text), cl.listen_port);
  EXPECT_EQ(find_option("backend")->default_text, cl.backend_host);
  EXPECT_EQ(Number("backend-port", find_option("backend-port")->default_text), cl.backend_port);
}

TEST(OptionsTest, HostPortsTakeAPortAndBracketedIPv6OrOff) {
  const OptionSpec& o = *find_option("metrics");
  for (const char* good : {"127.0.0.1:9100", "[::1]:9100", "localhost:1", "0.0.0.0:65535"}) {
    auto v = parse_option_value(o, good);
    ASSERT_TRUE(v.ok()) << good << ": " << v.error();
    EXPECT_EQ(v.value().text, good);
  }
  auto off = parse_option_value(o, "off");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off.value().text, "") << "off is the default: no endpoint";
  EXPECT_EQ(Config{}.metrics, "");
  for (const char* bad : {"", "9100", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":9100",
                          "::1:9100", "[::1]9100", "unix:/run/m.sock", "host:port"}) {
    EXPECT_EQ(Refusal("metrics", bad),
              "invalid value '" + std::string(bad) +
                  "' (expected HOST:PORT or [IPv6]:PORT, port 1-65535, or off)");
  }
}

TEST(OptionsTest, ParseDecimalIsStrict) {
  uint64_t n = 7;
  EXPECT_TRUE(parse_decimal("0042", 0, 100, n));
  EXPECT_EQ(n, 42u);
  for (const char* bad : {"", "+1", "-1", " 1", "1 ", "0x1", "1e2", "1000000000000"}) {
    EXPECT_FALSE(parse_decimal(bad, 0, UINT64_MAX, n)) << bad;
  }
  EXPECT_FALSE(parse_decimal("101", 0, 100, n));
}

}  // namespace
}  // namespace edgeproxy
