// Fuzz target: routing rules and route::decide() over inspected bytes. A fixed configuration
// (parsed once) holds three listeners whose rules cover every matcher kind (any, prefix, regex,
// sni, alpn, http-host, http-path, http-method, protocol tls/http/ssh/proxy) and every action in
// different orders. The input's first byte picks the listener and whether the bytes are final;
// the rest are the client's bytes. Checked: decide() on growing prefixes, carrying the scratch's
// http_scanned as a connection does, answers exactly as a fresh call on the same bytes (decide is
// pure), the captures lie inside the bytes, and a deciding rule's key expands within its buffer.
#include <memory>
#include <string>
#include <vector>

#include "edgeproxy/route.h"
#include "edgeproxy/topology_parser.h"
#include "fuzz_util.h"

namespace {

using namespace edgeproxy;

constexpr const char* kConfig = R"cfg(
map users users.map
backend b1 { server s1 127.0.0.1:9001 }
backend b2 { server s1 127.0.0.1:9002
             server s2 127.0.0.1:9003 }
listener tls_first {
  bind 127.0.0.1:8001
  backend b1
  route {
    sni api.example.com backend b1
    sni example.com,*.example.com backend b2
    alpn h2 server 127.0.0.1:9004
    protocol tls sni *.test alpn http/1.1 reject
    http-host www.example.com,*.example.org backend b1
    http-host api.example.net backend b2
    http-method POST http-path /upload hash b1 "post"
    protocol http regex "^GET /([a-z]+)/([0-9]+)" hash b2 "$1-$2"
    protocol proxy close
    protocol ssh close "no ssh\n"
    prefix "PING" reply "PONG\r\n"
    prefix "\x00\x01" wait
    regex "^[0-9a-f]{4}git-(upload|receive)-pack /([a-z0-9_-]+)/" map users $2
    any backend b1 send "X"
  }
}
listener regex_first {
  bind 127.0.0.1:8002
  route {
    regex "^([A-Z]+) ([^ ]*) HTTP/1[.][01]\r\n" hash b1 "$1 $2"
    http-path /api/ http-host *.example.com backend b2
    sni example.com close
    prefix "SSH-" close
  }
}
listener protocols {
  bind 127.0.0.1:8003
  route {
    protocol proxy reject
    protocol tls alpn h2 alpn http/1.1 backend b1
    protocol tls sni a.example,b.example backend b2
    protocol http http-method CONNECT close "no\n"
    protocol http http-host *.example.com http-path / backend b1
    protocol ssh backend b2
  }
}
)cfg";

Result<std::vector<IncludedFile>> load(const std::string& pattern, const std::string&) {
  std::vector<IncludedFile> files;
  if (pattern == "users.map") files.push_back({"users.map", "mojombo b1\ndefault b2\n"});
  return files;
}

const Topology& topology() {
  static const Topology* t = [] {
    Result<Topology> r = parse_topology(kConfig, "route_fuzz.conf", load);
    if (!r.ok()) {
      std::fprintf(stderr, "route_fuzz: %s\n", r.error().c_str());
      std::abort();
    }
    return new Topology(std::move(r.value()));
  }();
  return *t;
}

bool same(const route::Decision& a, const Captures& ca, const route::Decision& b,
          const Captures& cb) {
  return a.verdict == b.verdict && a.rule == b.rule &&
         (a.verdict != route::Verdict::kDecided || ca.at == cb.at);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 20000) return 0;
  const Topology& t = topology();
  fuzz::Input in(data, size);
  const uint8_t control = in.byte();
  const RouteSet& routes = t.listeners[control % t.listeners.size()].routes;
  const bool final = (control & 0x80) != 0;
  std::vector<size_t> cuts = fuzz::split_points(in, 6);
  // The bytes with a NUL after them, as a routing region has room after its bytes: ASan's
  // regexec() interceptor checks strlen(string) + 1 bytes even with REG_STARTEND, which bounds
  // glibc's own reads by length (a false report on a buffer that ends with the bytes).
  const std::string text(in.rest());
  const std::span<const std::byte> bytes = fuzz::as_bytes(text);
  // Scratch of exactly the bytes' size, as the contract allows: ASan sees any overrun.
  std::unique_ptr<std::byte[]> hello(new std::byte[bytes.size() + 1]);
  std::unique_ptr<std::byte[]> fresh_hello(new std::byte[bytes.size() + 1]);
  route::Scratch carried{{hello.get(), bytes.size()}, 0};
  for (size_t cut : cuts) {
    const std::span<const std::byte> prefix = bytes.first(cut);
    const bool last = final && cut == bytes.size();
    Captures c1, c2;
    const route::Decision d1 = route::decide(routes, prefix, last, carried, c1);
    route::Scratch fresh{{fresh_hello.get(), cut}, 0};
    const route::Decision d2 = route::decide(routes, prefix, last, fresh, c2);
    FUZZ_CHECK(same(d1, c1, d2, c2));
    FUZZ_CHECK(carried.http_scanned <= cut);
    if (d1.verdict == route::Verdict::kDecided) {
      FUZZ_CHECK(d1.rule < routes.rules.size());
      for (const auto& [b, e] : c1.at) FUZZ_CHECK(b <= e && e <= cut);
      const Action& a = routes.rules[d1.rule].action;
      char key[256];
      const uint32_t n = a.key.expand(prefix, c1, key);
      FUZZ_CHECK(n <= sizeof key);
      break;  // a connection is decided once
    }
    if (d1.verdict == route::Verdict::kNoMatch) break;
  }
  return 0;
}
