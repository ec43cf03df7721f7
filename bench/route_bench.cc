// Routing micro benchmark: route::decide() over a listener's rules parsed from configuration text,
// with a real ClientHello (python3 ssl, renamed per case) and real HTTP request heads. One
// iteration is one decision on a connection's first bytes; also the parsers alone
// (parse_client_hello, parse_request_head) and the name table alone.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/client_hellos.h"
#include "edgeproxy/client_hello.h"
#include "edgeproxy/http_head.h"
#include "edgeproxy/route.h"
#include "edgeproxy/topology_parser.h"

namespace edgeproxy {
namespace {

using Bytes = std::vector<std::byte>;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "route_bench: %s\n", what.c_str());
  std::abort();
}

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

uint32_t get16(const Bytes& b, size_t at) {
  return std::to_integer<uint32_t>(b[at]) << 8 | std::to_integer<uint32_t>(b[at + 1]);
}

void add_to_length(Bytes& b, size_t at, size_t width, long delta) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v = v << 8 | std::to_integer<uint32_t>(b[at + i]);
  v = static_cast<uint64_t>(static_cast<long>(v) + delta);
  for (size_t i = width; i-- > 0; v >>= 8) b[at + i] = static_cast<std::byte>(v & 0xff);
}

// The real hello (one record: python3 ssl, 517 bytes) with its server name replaced by `name`:
// the server_name extension rebuilt, and the lengths that enclose it (extensions block,
// handshake message, record) moved by the difference. Checked by parsing it back.
Bytes hello_for(std::string_view name) {
  const auto& raw = tls::testdata::kPythonSniAlpn;
  Bytes b(sizeof raw);
  std::memcpy(b.data(), raw, sizeof raw);
  constexpr size_t kHandshake = 5;           // after the record header
  size_t at = kHandshake + 4 + 2 + 32;       // handshake header, version, random
  at += 1 + std::to_integer<size_t>(b[at]);  // session id
  at += 2 + get16(b, at);                    // cipher suites
  at += 1 + std::to_integer<size_t>(b[at]);  // compression methods
  const size_t extensions = at;
  for (at += 2; at + 4 <= b.size() && get16(b, at) != 0; at += 4 + get16(b, at + 2)) {
  }
  if (at + 4 > b.size()) fail("the stored hello has no server_name extension");
  const size_t old_bytes = get16(b, at + 2);
  Bytes data;
  auto put16 = [&data](size_t v) {
    data.push_back(static_cast<std::byte>(v >> 8));
    data.push_back(static_cast<std::byte>(v & 0xff));
  };
  put16(3 + name.size());        // server_name_list
  data.push_back(std::byte{0});  // host_name
  put16(name.size());
  for (const char c : name) data.push_back(static_cast<std::byte>(c));
  Bytes out(b.begin(), b.begin() + static_cast<long>(at) + 2);
  out.push_back(static_cast<std::byte>(data.size() >> 8));
  out.push_back(static_cast<std::byte>(data.size() & 0xff));
  out.insert(out.end(), data.begin(), data.end());
  out.insert(out.end(), b.begin() + static_cast<long>(at + 4 + old_bytes), b.end());
  const long delta = static_cast<long>(data.size()) - static_cast<long>(old_bytes);
  add_to_length(out, 3, 2, delta);               // record
  add_to_length(out, kHandshake + 1, 3, delta);  // handshake message
  add_to_length(out, extensions, 2, delta);      // extensions block
  Bytes scratch(out.size());
  tls::ClientHello hello;
  if (tls::parse_client_hello(out, scratch, hello) != tls::HelloStatus::kFound ||
      hello.server_name != name) {
    fail("the renamed hello does not parse back to " + std::string(name));
  }
  return out;
}

// wrk's request (what W1 sends) and a browser's.
constexpr std::string_view kWrkGet = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
constexpr std::string_view kBrowserGet =
    "GET /static/app.js?v=3 HTTP/1.1\r\n"
    "Host: www.zone-00.example.net\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Connection: keep-alive\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "\r\n";

// `count` exact names (host-NNNN.example.com) then count/10 suffix patterns (*.zone-NN.example.net,
// at least one), one rule each, alternating two backends: one compiled run, one name table.
std::string name_rules(const char* matcher, int64_t count) {
  std::string rules;
  char line[128];
  for (int64_t i = 0; i < count; ++i) {
    std::snprintf(line, sizeof line, "%s host-%04lld.example.com backend %c\n", matcher,
                  static_cast<long long>(i), i % 2 == 0 ? 'a' : 'b');
    rules += line;
  }
  for (int64_t i = 0; i < std::max<int64_t>(1, count / 10); ++i) {
    std::snprintf(line, sizeof line, "%s *.zone-%02lld.example.net backend %c\n", matcher,
                  static_cast<long long>(i), i % 2 == 0 ? 'b' : 'a');
    rules += line;
  }
  return rules;
}

// The route block of a listener whose `route { ... }` holds `rules`, parsed and compiled as a
// configuration file is.
Topology load(const std::string& rules) {
  const std::string text =
      "backend a { server s 127.0.0.1:1 }\nbackend b { server s 127.0.0.1:2 }\n"
      "listener l {\n bind 127.0.0.1:3\n backend a\n route {\n" +
      rules + " }\n}\n";
  auto t = parse_topology(text, "bench.conf", [](const std::string&, const std::string&) {
    return Result<std::vector<IncludedFile>>(std::vector<IncludedFile>{});
  });
  if (!t.ok()) fail(t.error());
  return std::move(t.value());
}

enum Case : int64_t { kExactHit, kSuffixHit, kMiss };

// The name each case looks up: host-0007 is among the exact names of every size; zone-00 is the
// first pattern; the miss walks the exact table and every label's suffix.
std::string_view name_of(int64_t c) {
  switch (c) {
    case kExactHit:
      return "host-0007.example.com";
    case kSuffixHit:
      return "www.zone-00.example.net";
    default:
      return "www.unknown-site.org";
  }
}

const char* case_label(int64_t c) {
  return c == kExactHit ? "exact hit" : c == kSuffixHit ? "suffix hit" : "miss";
}

// One decision per iteration over `bytes`, as the worker makes it on a connection's first read.
void decide_loop(benchmark::State& state, const RouteSet& routes, std::span<const std::byte> bytes,
                 route::Verdict expected) {
  Bytes scratch(bytes.size());
  route::Scratch s{scratch, 0};
  Captures captures;
  if (route::decide(routes, bytes, false, s, captures).verdict != expected) {
    fail("unexpected verdict (" + std::to_string(static_cast<int>(expected)) + " expected)");
  }
  for (auto _ : state) {
    s.http_scanned = 0;
    const route::Decision d = route::decide(routes, bytes, false, s, captures);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
}

// Args: rules (exact names; a tenth as many suffix patterns), case. `sni` rules over a real
// ClientHello: the hello is parsed (copied into scratch, every extension walked), then one
// hash lookup per label of the name.
void BM_RouteDecideSni(benchmark::State& state) {
  state.SetLabel(case_label(state.range(1)));
  const Topology t = load(name_rules("sni", state.range(0)));
  const Bytes hello = hello_for(name_of(state.range(1)));
  decide_loop(state, t.listeners[0].routes, hello,
              state.range(1) == kMiss ? route::Verdict::kNoMatch : route::Verdict::kDecided);
}
BENCHMARK(BM_RouteDecideSni)
    ->ArgNames({"rules", "case"})
    ->ArgsProduct({{10, 1000}, {kExactHit, kSuffixHit, kMiss}});

// Args: rules, case. `http-host` rules over a browser's GET whose Host is the case's name.
void BM_RouteDecideHttpHost(benchmark::State& state) {
  state.SetLabel(case_label(state.range(1)));
  const Topology t = load(name_rules("http-host", state.range(0)));
  std::string get(kBrowserGet);
  get.replace(get.find("www.zone-00.example.net"), 23, name_of(state.range(1)));
  decide_loop(state, t.listeners[0].routes, as_bytes(get),
              state.range(1) == kMiss ? route::Verdict::kNoMatch : route::Verdict::kDecided);
}
BENCHMARK(BM_RouteDecideHttpHost)
    ->ArgNames({"rules", "case"})
    ->ArgsProduct({{10, 1000}, {kExactHit, kSuffixHit, kMiss}});

// The two rules bench/configs/w1-routed*.conf.in give W1's listener, on wrk's request.
void BM_RouteDecideW1(benchmark::State& state) {
  const Topology t =
      load(state.range(0) == 0 ? "http-host 127.0.0.1 backend a\n" : "prefix \"GET \" backend a\n");
  decide_loop(state, t.listeners[0].routes, as_bytes(kWrkGet), route::Verdict::kDecided);
}
BENCHMARK(BM_RouteDecideW1)->ArgName("prefix")->Arg(0)->Arg(1);

// A byte prefix rule on a browser's GET, after one that misses.
void BM_RouteDecidePrefix(benchmark::State& state) {
  const Topology t = load("prefix \"SSH-\" backend b\nprefix \"GET \" backend a\n");
  decide_loop(state, t.listeners[0].routes, as_bytes(kBrowserGet), route::Verdict::kDecided);
}
BENCHMARK(BM_RouteDecidePrefix);

void BM_ParseClientHello(benchmark::State& state) {
  const Bytes hello = hello_for("host-0007.example.com");
  Bytes scratch(hello.size());
  tls::ClientHello out;
  for (auto _ : state) {
    const tls::HelloStatus s = tls::parse_client_hello(hello, scratch, out);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(hello.size()));
}
BENCHMARK(BM_ParseClientHello);

// Arg: 0 wrk's GET (41 bytes), 1 a browser's (about 350 bytes), parsed from its first byte.
void BM_ParseRequestHead(benchmark::State& state) {
  const std::string_view get = state.range(0) == 0 ? kWrkGet : kBrowserGet;
  http::RequestHead head;
  for (auto _ : state) {
    uint32_t scanned = 0;
    const http::HeadStatus s = http::parse_request_head(get, scanned, head);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(head);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(get.size()));
}
BENCHMARK(BM_ParseRequestHead)->ArgName("browser")->Arg(0)->Arg(1);

// Args: rules, case. The compiled name table alone (what a decision adds to the parse).
void BM_NameTableLookup(benchmark::State& state) {
  state.SetLabel(case_label(state.range(1)));
  const Topology t = load(name_rules("sni", state.range(0)));
  const NameTable& table = t.listeners[0].routes.runs.at(0).table;
  const std::string_view name = name_of(state.range(1));
  for (auto _ : state) {
    benchmark::DoNotOptimize(name);
    const uint32_t rule = table.lookup(name);
    benchmark::DoNotOptimize(rule);
  }
}
BENCHMARK(BM_NameTableLookup)
    ->ArgNames({"rules", "case"})
    ->ArgsProduct({{10, 1000}, {kExactHit, kSuffixHit, kMiss}});

}  // namespace
}  // namespace edgeproxy
