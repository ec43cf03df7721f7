// HTTP/1.x forwarding micro benchmarks, one per step a forward proxy takes on a request: parse a
// typical 300-byte head, decide its framing, rewrite it for the server, parse the response head,
// and frame a chunked body as it streams past; and the reverse proxy's head with its rules.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/chunked_decoder.h"
#include "edgeproxy/http_framing.h"
#include "edgeproxy/http_head.h"
#include "edgeproxy/http_rewrite.h"
#include "edgeproxy/http_rules.h"

namespace edgeproxy::http {
namespace {

// A load generator's request through a forward proxy: absolute-form, Proxy-Connection, the
// fields a wrk Lua script or a browser-like client sends: 296 bytes.
const std::string kRequest =
    "GET http://backend.example.com:8080/api/v1/items?page=2&limit=50 HTTP/1.1\r\n"
    "Host: backend.example.com:8080\r\n"
    "User-Agent: wrk/4.2.0\r\n"
    "Accept: application/json\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Proxy-Connection: keep-alive\r\n"
    "Connection: keep-alive\r\n"
    "X-Request-Id: 7f3c2a9e-1b4d-4e8f-a2c6-9d0e5b7a1c3f\r\n\r\n";

const std::string kResponse =
    "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
    "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
    "Cache-Control: no-cache\r\n\r\n";

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "http_bench: %s\n", what);
  std::abort();
}

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

RequestHead parsed_request() {
  RequestHead head;
  uint32_t scanned = 0;
  if (parse_request_head(kRequest, scanned, head) != HeadStatus::kDone) fail("bad request");
  return head;
}

void BM_HttpParseRequestHead(benchmark::State& state) {
  RequestHead head;
  for (auto _ : state) {
    uint32_t scanned = 0;
    const HeadStatus s = parse_request_head(kRequest, scanned, head);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(head);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kRequest.size()));
}
BENCHMARK(BM_HttpParseRequestHead);

// request_framing() and parse_connection() of the parsed head, as the proxy calls both.
void BM_HttpRequestFraming(benchmark::State& state) {
  const RequestHead head = parsed_request();
  for (auto _ : state) {
    Framing framing;
    const FramingStatus s = request_framing(head, framing);
    ConnectionTokens tokens;
    const bool ok = parse_connection(std::span(head.headers.data(), head.header_count), tokens);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(framing);
    benchmark::DoNotOptimize(tokens);
  }
}
BENCHMARK(BM_HttpRequestFraming);

// The rewrite into a separate 8 KiB buffer (the in-place rewrite costs the same, but would need
// the head restored on every iteration).
void BM_HttpRewriteRequestHead(benchmark::State& state) {
  const RequestHead head = parsed_request();
  ConnectionTokens tokens;
  if (!parse_connection(std::span(head.headers.data(), head.header_count), tokens)) {
    fail("bad Connection");
  }
  std::vector<std::byte> out(8192);
  const RewriteOptions options{.upgrade = false, .close = state.range(0) != 0};
  for (auto _ : state) {
    const uint32_t n = rewrite_request_head(head, tokens, options, out);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kRequest.size()));
}
BENCHMARK(BM_HttpRewriteRequestHead)->ArgName("close")->Arg(0)->Arg(1);

// A browser's request as a reverse proxy gets it: origin-form, keep-alive, cookies: 400 bytes.
const std::string kBrowserRequest =
    "GET /static/app/main.3f9a1c.js?v=20240101 HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n"
    "Accept: */*\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Referer: https://www.example.com/\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; lang=en-US\r\n"
    "Sec-Fetch-Dest: script\r\n\r\n";

// build_request_head() with X-Forwarded-For, X-Forwarded-Proto and Via on, a rewrite that does
// not match and two header rules (set with a variable, del), into a separate 8 KiB buffer.
void BM_HttpBuildRequestHead(benchmark::State& state) {
  RequestHead head;
  uint32_t scanned = 0;
  if (parse_request_head(kBrowserRequest, scanned, head) != HeadStatus::kDone) fail("bad request");
  if (kBrowserRequest.size() != 400) fail("the browser request is not 400 bytes");
  ConnectionTokens tokens;
  if (!parse_connection(std::span(head.headers.data(), head.header_count), tokens)) {
    fail("bad Connection");
  }
  RequestRules rules;
  rules.rewrites = {{"/api/", "/"}};
  Result<ValueTemplate> request_id = ValueTemplate::parse("$request_id");
  if (!request_id.ok()) fail("bad template");
  rules.headers = {{HeaderAction::kSet, "X-Request-Id", request_id.value()},
                   {HeaderAction::kDel, "Cookie", {}}};
  const RuleVars vars{.client_addr = "198.51.100.23",
                      .client_port = "51234",
                      .listener = "web",
                      .server = "app1",
                      .request_id = "0f3c2a9e1b4d4e8f"};
  std::vector<std::byte> out(8192);
  for (auto _ : state) {
    const uint32_t n = build_request_head(head, tokens, rules, vars, false, out);
    benchmark::DoNotOptimize(n);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kBrowserRequest.size()));
}
BENCHMARK(BM_HttpBuildRequestHead);

void BM_HttpParseResponseHead(benchmark::State& state) {
  ResponseHead head;
  for (auto _ : state) {
    uint32_t scanned = 0;
    const HeadStatus s = parse_response_head(kResponse, scanned, head);
    Framing framing;
    const FramingStatus f = response_framing(head, "GET", framing);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(f);
    benchmark::DoNotOptimize(framing);
  }
}
BENCHMARK(BM_HttpParseResponseHead);

// A chunked body of `range(0)` chunks of 1000 bytes, framed in 8 KiB pieces as the proxy's
// buffers hold it.
void BM_HttpFrameChunkedBody(benchmark::State& state) {
  std::string body;
  for (int64_t i = 0; i < state.range(0); ++i) body += "3e8\r\n" + std::string(1000, 'x') + "\r\n";
  body += "0\r\n\r\n";
  const std::span<const std::byte> bytes = as_bytes(body);
  constexpr size_t kPiece = 8192;
  for (auto _ : state) {
    ChunkedDecoder decoder;
    BodyStatus status = BodyStatus::kMore;
    for (size_t at = 0; at < bytes.size() && status == BodyStatus::kMore; at += kPiece) {
      status = decoder.consume(bytes.subspan(at, std::min(kPiece, bytes.size() - at))).status;
    }
    if (status != BodyStatus::kDone) fail("chunked body not done");
    benchmark::DoNotOptimize(decoder);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_HttpFrameChunkedBody)->ArgName("chunks")->Arg(1)->Arg(64);

}  // namespace
}  // namespace edgeproxy::http
