// HTTP mode's request and response heads: rewrites, header rules, X-Forwarded-For/-Proto, Via,
// the hop-by-hop fields and the Connection line; value templates. Every head built is also built
// into every shorter span (0 or the whole length, never a byte past it) and parsed back.
#include "edgeproxy/http_rules.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "edgeproxy/http_framing.h"
#include "edgeproxy/http_head.h"

namespace edgeproxy::http {
namespace {

constexpr std::byte kUnwritten{0xAA};

const RuleVars kVars{.client_addr = "192.0.2.1",
                     .client_port = "51234",
                     .listener = "web",
                     .server = "app1",
                     .request_id = "req-7"};

// The default X-Forwarded-For, X-Forwarded-Proto and Via lines of an HTTP/1.1 request.
const std::string kForwarded =
    "X-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nVia: 1.1 edgeproxy\r\n";

ValueTemplate value(std::string_view text) {
  Result<ValueTemplate> t = ValueTemplate::parse(text);
  EXPECT_TRUE(t.ok()) << text << ": " << t.error();
  return t.ok() ? t.value() : ValueTemplate{};
}

HeaderRule add(std::string name, std::string_view text) {
  return {HeaderAction::kAdd, std::move(name), value(text)};
}
HeaderRule set(std::string name, std::string_view text) {
  return {HeaderAction::kSet, std::move(name), value(text)};
}
HeaderRule del(std::string name) {
  return {HeaderAction::kDel, std::move(name), {}};
}

RequestRules plain() {
  RequestRules rules;
  rules.forwarded_for = false;
  rules.forwarded_proto = false;
  rules.via = false;
  return rules;
}

// plain() with one of forwarded_for, forwarded_proto, via on.
RequestRules only(bool RequestRules::*on) {
  RequestRules rules = plain();
  rules.*on = true;
  return rules;
}

// Calls `build` into spans of every size from 0 to a little past the head's length, each inside
// a larger buffer of kUnwritten: a span shorter than the head gives 0, a longer one the length
// and the same bytes, and nothing is written past the span. Returns the head.
template <class Build>
std::string build_every_size(Build build) {
  std::vector<std::byte> big(1 << 16, kUnwritten);
  const uint32_t n = build(std::span(big));
  EXPECT_GT(n, 0u) << "the head did not fit 64 KiB";
  const std::string head(reinterpret_cast<const char*>(big.data()), n);
  std::vector<std::byte> buffer(n + 16);
  for (size_t size = 0; size <= n + 8; ++size) {
    std::fill(buffer.begin(), buffer.end(), kUnwritten);
    const uint32_t got = build(std::span(buffer).first(size));
    if (size < n) {
      EXPECT_EQ(got, 0u) << "span of " << size << " for a head of " << n;
    } else {
      EXPECT_EQ(got, n) << "span of " << size;
      EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(buffer.data()), n), head);
    }
    for (size_t i = size; i < buffer.size(); ++i) {
      if (buffer[i] != kUnwritten) {
        ADD_FAILURE() << "span of " << size << ": wrote byte " << i;
        break;
      }
    }
  }
  return head;
}

// Whether `bytes` are exactly one head for `parse` (parse_request_head, parse_response_head).
template <class Head>
::testing::AssertionResult whole_head(std::string_view bytes,
                                      HeadStatus (*parse)(std::string_view, uint32_t&, Head&),
                                      Head& head) {
  uint32_t scanned = 0;
  if (parse(bytes, scanned, head) != HeadStatus::kDone || head.length != bytes.size()) {
    return ::testing::AssertionFailure() << "not one valid head: " << bytes;
  }
  return ::testing::AssertionSuccess();
}

// The head build_request_head() writes for `in` (a valid head), checked as build_every_size()
// says and parsed back as a whole request head.
std::string request(const std::string& in, const RequestRules& rules, bool upgrade = false,
                    const RuleVars& vars = kVars) {
  RequestHead head;
  if (!whole_head(in, parse_request_head, head)) {
    ADD_FAILURE() << "input " << in;
    return {};
  }
  ConnectionTokens tokens;
  EXPECT_TRUE(parse_connection(std::span(head.headers.data(), head.header_count), tokens));
  const std::string out = build_every_size([&](std::span<std::byte> bytes) {
    return build_request_head(head, tokens, rules, vars, upgrade, bytes);
  });
  RequestHead reparsed;
  EXPECT_TRUE(whole_head(out, parse_request_head, reparsed));
  return out;
}

// The same for build_response_head().
std::string response(const std::string& in, const ResponseRules& rules,
                     ClientConnection client = ClientConnection::kPersist,
                     const RuleVars& vars = kVars) {
  ResponseHead head;
  if (!whole_head(in, parse_response_head, head)) {
    ADD_FAILURE() << "input " << in;
    return {};
  }
  const std::string out = build_every_size([&](std::span<std::byte> bytes) {
    return build_response_head(head, rules, vars, client, bytes);
  });
  ResponseHead reparsed;
  EXPECT_TRUE(whole_head(out, parse_response_head, reparsed));
  return out;
}

// --- ValueTemplate ---------------------------------------------------------------------------

TEST(HttpRulesTest, TemplateSplitsLiteralsAndVariables) {
  const ValueTemplate t = value("x$client_addr:$client_port$$y$listener$server$request_id");
  using Var = ValueTemplate::Var;
  ASSERT_EQ(t.parts.size(), 8u);
  EXPECT_EQ(t.parts[0].literal, "x");
  EXPECT_EQ(t.parts[1].var, Var::kClientAddr);
  EXPECT_EQ(t.parts[2].literal, ":");
  EXPECT_EQ(t.parts[3].var, Var::kClientPort);
  EXPECT_EQ(t.parts[4].var, Var::kLiteral);
  EXPECT_EQ(t.parts[4].literal, "$y");
  EXPECT_EQ(t.parts[5].var, Var::kListener);
  EXPECT_EQ(t.parts[6].var, Var::kServer);
  EXPECT_EQ(t.parts[7].var, Var::kRequestId);
}

TEST(HttpRulesTest, TemplateTakesTheLongestVariableName) {
  const ValueTemplate t = value("$servers$client_addr_");
  ASSERT_EQ(t.parts.size(), 4u);
  EXPECT_EQ(t.parts[0].var, ValueTemplate::Var::kServer);
  EXPECT_EQ(t.parts[1].literal, "s");
  EXPECT_EQ(t.parts[2].var, ValueTemplate::Var::kClientAddr);
  EXPECT_EQ(t.parts[3].literal, "_");
}

TEST(HttpRulesTest, TemplateKeepsBlanksAndObsText) {
  const ValueTemplate t = value("a\tb c\x80$$");
  ASSERT_EQ(t.parts.size(), 1u);
  EXPECT_EQ(t.parts[0].literal, "a\tb c\x80$");
  EXPECT_TRUE(value("").parts.empty());
}

TEST(HttpRulesTest, TemplateRefusesUnknownVariables) {
  for (const auto& [text, named] : std::initializer_list<std::pair<std::string_view, std::string>>{
           {"$foo", "'$foo'"},
           {"a $client_ip b", "'$client_ip'"},
           {"$Server", "'$Server'"},
           {"$client", "'$client'"},
           {"$", "'$' without a variable name"},
           {"x$-y", "'$' without a variable name"},
           {"$$$", "'$' without a variable name"},
       }) {
    const Result<ValueTemplate> t = ValueTemplate::parse(text);
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_NE(t.error().find(named), std::string::npos) << t.error();
    EXPECT_NE(t.error().find("$client_addr, $client_port, $listener, $server, $request_id"),
              std::string::npos)
        << t.error();
  }
}

TEST(HttpRulesTest, TemplateRefusesControlCharacters) {
  for (const std::string_view text : std::initializer_list<std::string_view>{
           "a\r\nX-Injected: 1", "a\nb", "a\rb", std::string_view("a\0b", 3), "\x7f", "\x1b[0m"}) {
    const Result<ValueTemplate> t = ValueTemplate::parse(text);
    ASSERT_FALSE(t.ok()) << text;
    EXPECT_NE(t.error().find("control character 0x"), std::string::npos) << t.error();
  }
}

// --- build_request_head: the request line and the defaults -----------------------------------

TEST(HttpRulesTest, RequestDefaultsAppendForwardedFields) {
  EXPECT_EQ(request("GET /a?b HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", RequestRules{}),
            "GET /a?b HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n" + kForwarded + "\r\n");
}

TEST(HttpRulesTest, RequestFieldsNormalisedWithoutSurroundingBlanks) {
  EXPECT_EQ(request("POST /p HTTP/1.1\r\nhost:h\r\nX-A: \t a  b \t\r\nX-B:\r\n"
                    "Content-Length: 3\r\n\r\n",
                    plain()),
            "POST /p HTTP/1.1\r\nhost: h\r\nX-A: a  b\r\nX-B: \r\nContent-Length: 3\r\n\r\n");
}

TEST(HttpRulesTest, RequestHttp10KeepsItsVersionAndAsksForKeepAlive) {
  EXPECT_EQ(request("GET / HTTP/1.0\r\nConnection: close\r\n\r\n", RequestRules{}),
            "GET / HTTP/1.0\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-Proto: http\r\n"
            "Via: 1.0 edgeproxy\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(request("GET / HTTP/1.0\r\n\r\n", plain()),
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
}

TEST(HttpRulesTest, RequestOptionsStar) {
  EXPECT_EQ(request("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", plain()),
            "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
}

// --- hop-by-hop fields and upgrade -----------------------------------------------------------

TEST(HttpRulesTest, RequestDropsHopByHopFields) {
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret, "
                    "Content-Length, Transfer-Encoding, Host\r\nKeep-Alive: 5\r\n"
                    "Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nTE: "
                    "trailers\r\nTrailer: X-T\r\nUpgrade: websocket\r\nx-secret: 1\r\n"
                    "X-Kept: 2\r\nX-SECRET: 3\r\nContent-Length: 0\r\n\r\n",
                    plain()),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Kept: 2\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpRulesTest, RequestUpgradeKeepsUpgradeAndSaysSo) {
  const std::string in =
      "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
  EXPECT_EQ(request(in, plain(), true),
            "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: upgrade\r\n\r\n");
  EXPECT_EQ(request(in, plain(), false),
            "GET /chat HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
}

// --- rewrites ---------------------------------------------------------------------------------

RequestRules with_rewrites(std::initializer_list<PathRewrite> rewrites) {
  RequestRules rules = plain();
  rules.rewrites = rewrites;
  return rules;
}

std::string request_line(const std::string& target, const RequestRules& rules) {
  const std::string out = request("GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n", rules);
  return out.substr(0, out.find("\r\n"));
}

TEST(HttpRulesTest, RewriteReplacesTheMatchingPrefix) {
  const RequestRules rules = with_rewrites({{"/api/", "/v2/"}});
  EXPECT_EQ(request_line("/api/items", rules), "GET /v2/items HTTP/1.1");
  EXPECT_EQ(request_line("/api/", rules), "GET /v2/ HTTP/1.1");
  EXPECT_EQ(request_line("/api/items?q=/api/&x", rules), "GET /v2/items?q=/api/&x HTTP/1.1");
}

TEST(HttpRulesTest, RewriteWithoutAMatchKeepsTheTarget) {
  const RequestRules rules = with_rewrites({{"/api/", "/v2/"}});
  EXPECT_EQ(request_line("/apix", rules), "GET /apix HTTP/1.1");
  EXPECT_EQ(request_line("/API/items", rules), "GET /API/items HTTP/1.1") << "bytes, not case";
  EXPECT_EQ(request_line("/%61pi/items", rules), "GET /%61pi/items HTTP/1.1") << "not decoded";
  EXPECT_EQ(request_line("/api?x=/api/", rules), "GET /api?x=/api/ HTTP/1.1") << "the path only";
}

TEST(HttpRulesTest, RewriteFirstMatchWins) {
  const RequestRules rules =
      with_rewrites({{"/a/b/", "/first/"}, {"/a/", "/second/"}, {"/a/b/", "/never/"}});
  EXPECT_EQ(request_line("/a/b/c", rules), "GET /first/c HTTP/1.1");
  EXPECT_EQ(request_line("/a/c", rules), "GET /second/c HTTP/1.1");
  EXPECT_EQ(request_line("/", with_rewrites({{"/", "/root/"}})), "GET /root/ HTTP/1.1");
}

TEST(HttpRulesTest, RewriteOfAnAbsoluteFormTarget) {
  const RequestRules rules = with_rewrites({{"/old/", "/new/"}});
  EXPECT_EQ(request("GET http://h:8080/old/x?y=1 HTTP/1.1\r\nHost: h:8080\r\n\r\n", rules),
            "GET /new/x?y=1 HTTP/1.1\r\nHost: h:8080\r\n\r\n");
  EXPECT_EQ(request_line("http://h", with_rewrites({{"/", "/root/"}})), "GET /root/ HTTP/1.1");
}

// --- Host from an absolute-form target -------------------------------------------------------

TEST(HttpRulesTest, AbsoluteFormHostReplacedWhereItStands) {
  EXPECT_EQ(
      request("GET http://real.example/x HTTP/1.1\r\nA: 1\r\nHost: other\r\nB: 2\r\n\r\n", plain()),
      "GET /x HTTP/1.1\r\nA: 1\r\nHost: real.example\r\nB: 2\r\n\r\n");
  EXPECT_EQ(request("GET http://Example.COM/ HTTP/1.1\r\nhost: example.com\r\n\r\n", plain()),
            "GET / HTTP/1.1\r\nhost: example.com\r\n\r\n")
      << "the same authority is kept as sent";
}

TEST(HttpRulesTest, AbsoluteFormHostAddedAfterTheFieldsBeforeTheRules) {
  RequestRules rules = plain();
  rules.headers = {add("X-Rule", "r")};
  EXPECT_EQ(request("GET http://[::1]:81/ HTTP/1.0\r\nA: 1\r\n\r\n", rules),
            "GET / HTTP/1.0\r\nA: 1\r\nHost: [::1]:81\r\nX-Rule: r\r\n"
            "Connection: keep-alive\r\n\r\n");
}

// --- header rules ----------------------------------------------------------------------------

const std::string kThreeFields =
    "GET / HTTP/1.1\r\nHost: h\r\nX-Tag: a\r\nAccept: */*\r\nx-tag: b\r\nX-TAG: c\r\n\r\n";

TEST(HttpRulesTest, AddAppendsEvenWhenTheNameExists) {
  RequestRules rules = plain();
  rules.headers = {add("X-Tag", "d"), add("X-New", "1"), add("x-tag", "e")};
  EXPECT_EQ(request(kThreeFields, rules),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Tag: a\r\nAccept: */*\r\nx-tag: b\r\nX-TAG: c\r\n"
            "X-Tag: d\r\nX-New: 1\r\nx-tag: e\r\n\r\n");
}

TEST(HttpRulesTest, SetRemovesEveryFieldOfTheNameThenAppends) {
  RequestRules rules = plain();
  rules.headers = {set("x-TAG", "z")};
  EXPECT_EQ(request(kThreeFields, rules),
            "GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nx-TAG: z\r\n\r\n");
}

TEST(HttpRulesTest, SetRemovesFieldsEarlierRulesAdded) {
  RequestRules rules = plain();
  rules.headers = {add("X-Tag", "d"), add("X-Other", "o"), set("X-Tag", "z"), set("X-Tag", "y")};
  EXPECT_EQ(request(kThreeFields, rules),
            "GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Other: o\r\nX-Tag: y\r\n\r\n");
}

TEST(HttpRulesTest, DelRemovesEveryFieldOfTheNameAndRuleAddedOnes) {
  RequestRules rules = plain();
  rules.headers = {add("X-Tag", "d"), del("X-TAG"), add("X-Tag", "after")};
  EXPECT_EQ(request(kThreeFields, rules),
            "GET / HTTP/1.1\r\nHost: h\r\nAccept: */*\r\nX-Tag: after\r\n\r\n");
  rules.headers = {del("X-Missing"), del("accept")};
  EXPECT_EQ(request(kThreeFields, rules),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Tag: a\r\nx-tag: b\r\nX-TAG: c\r\n\r\n");
}

TEST(HttpRulesTest, RuleValuesExpandTheVariables) {
  RequestRules rules = plain();
  rules.headers = {add("X-Client", "$client_addr:$client_port"),
                   set("X-Route", "$listener -> $server ($request_id) $$5")};
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\n\r\n", rules),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Client: 192.0.2.1:51234\r\n"
            "X-Route: web -> app1 (req-7) $5\r\n\r\n");
  RuleVars v6;
  v6.client_addr = "2001:db8::1";
  v6.client_port = "1";
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\n\r\n", rules, false, v6),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Client: 2001:db8::1:1\r\nX-Route:  ->  () $5\r\n\r\n");
}

TEST(HttpRulesTest, RulesCannotReachTheHopByHopFieldsAlreadyDropped) {
  RequestRules rules = plain();
  rules.headers = {del("Keep-Alive"), set("X-Secret", "kept")};
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Secret\r\nX-Secret: 1\r\n"
                    "Keep-Alive: 5\r\n\r\n",
                    rules),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Secret: kept\r\n\r\n");
}

TEST(HttpRulesTest, TooManyRulesRefused) {
  RequestRules rules = plain();
  rules.headers.assign(kMaxHeaderRules, set("X-A", "1"));  // one field left: a valid head
  const std::string in = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  EXPECT_EQ(request(in, rules), "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n");
  rules.headers.push_back(add("X-A", "1"));
  RequestHead head;
  uint32_t scanned = 0;
  ASSERT_EQ(parse_request_head(in, scanned, head), HeadStatus::kDone);
  std::vector<std::byte> out(4096);
  EXPECT_EQ(build_request_head(head, ConnectionTokens{}, rules, kVars, false, out), 0u);
  ResponseRules response_rules;
  response_rules.headers = rules.headers;
  ResponseHead response_head;
  scanned = 0;
  ASSERT_EQ(parse_response_head("HTTP/1.1 200 OK\r\n\r\n", scanned, response_head),
            HeadStatus::kDone);
  EXPECT_EQ(
      build_response_head(response_head, response_rules, kVars, ClientConnection::kPersist, out),
      0u);
}

// --- X-Forwarded-For, X-Forwarded-Proto, Via -------------------------------------------------

TEST(HttpRulesTest, ForwardedForJoinsTheFieldsSentIntoOne) {
  RequestRules rules = only(&RequestRules::forwarded_for);
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 203.0.113.5, 10.0.0.1\r\n"
                    "A: 1\r\nx-forwarded-for: 10.0.0.2\r\nX-Forwarded-For:\r\n\r\n",
                    rules),
            "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n"
            "X-Forwarded-For: 203.0.113.5, 10.0.0.1, 10.0.0.2, 192.0.2.1\r\n\r\n");
}

TEST(HttpRulesTest, ForwardedForJoinsRuleAddedFieldsAndHonoursDel) {
  RequestRules rules = only(&RequestRules::forwarded_for);
  rules.headers = {add("X-Forwarded-For", "$client_port")};
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n", rules),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.2, 51234, 192.0.2.1\r\n\r\n");
  rules.headers = {del("X-Forwarded-For")};
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n", rules),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n");
}

TEST(HttpRulesTest, ForwardedForOffKeepsTheFieldsAsSent) {
  EXPECT_EQ(request("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.2\r\n"
                    "X-Forwarded-Proto: https\r\nVia: 1.1 a\r\n\r\n",
                    plain()),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.2\r\n"
            "X-Forwarded-Proto: https\r\nVia: 1.1 a\r\n\r\n");
}

TEST(HttpRulesTest, ForwardedProtoReplacesEverySentOrAddedOne) {
  RequestRules rules = only(&RequestRules::forwarded_proto);
  rules.headers = {add("X-Forwarded-Proto", "ftp")};
  EXPECT_EQ(request("GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nHost: h\r\n"
                    "x-forwarded-proto: wss\r\n\r\n",
                    rules),
            "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: http\r\n\r\n");
}

TEST(HttpRulesTest, ViaJoinsTheFieldsSent) {
  RequestRules rules = only(&RequestRules::via);
  EXPECT_EQ(request("GET / HTTP/1.1\r\nVia: 1.0 fred, 1.1 p.example (Apache/1.1)\r\nHost: h\r\n"
                    "via: 2 q\r\n\r\n",
                    rules),
            "GET / HTTP/1.1\r\nHost: h\r\nVia: 1.0 fred, 1.1 p.example (Apache/1.1), 2 q, "
            "1.1 edgeproxy\r\n\r\n");
  EXPECT_EQ(request("GET / HTTP/1.0\r\nVia: 1.0 fred\r\n\r\n", rules),
            "GET / HTTP/1.0\r\nVia: 1.0 fred, 1.0 edgeproxy\r\nConnection: keep-alive\r\n\r\n");
}

TEST(HttpRulesTest, EverythingTogetherInOrder) {
  RequestRules rules;
  rules.rewrites = {{"/app/", "/"}};
  rules.headers = {set("Host", "internal"), add("X-Request-Id", "$request_id"), del("Cookie")};
  EXPECT_EQ(
      request("GET /app/x?y HTTP/1.1\r\nHost: www.example\r\nCookie: a=1\r\n"
              "Connection: Upgrade\r\nUpgrade: websocket\r\nVia: 1.1 cdn\r\n"
              "X-Forwarded-For: 198.51.100.7\r\n\r\n",
              rules, true),
      "GET /x?y HTTP/1.1\r\nUpgrade: websocket\r\nHost: internal\r\n"
      "X-Request-Id: req-7\r\nX-Forwarded-For: 198.51.100.7, 192.0.2.1\r\n"
      "X-Forwarded-Proto: http\r\nVia: 1.1 cdn, 1.1 edgeproxy\r\nConnection: upgrade\r\n\r\n");
}

// --- build_response_head ---------------------------------------------------------------------

const ResponseRules kNoVia{.headers = {}, .via = false};

TEST(HttpRulesTest, ResponseStatusLineAsSentAndViaAppended) {
  EXPECT_EQ(response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", ResponseRules{}),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVia: 1.1 edgeproxy\r\n\r\n");
  EXPECT_EQ(response("HTTP/1.0 404 \r\nVia: 1.1 origin\r\nA: 1\r\n\r\n", ResponseRules{}),
            "HTTP/1.0 404 \r\nA: 1\r\nVia: 1.1 origin, 1.0 edgeproxy\r\n\r\n");
  EXPECT_EQ(response("HTTP/1.1 599 Some Thing\r\n\r\n", kNoVia), "HTTP/1.1 599 Some Thing\r\n\r\n");
}

TEST(HttpRulesTest, ResponseDropsTheServersConnectionFields) {
  EXPECT_EQ(response("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop, Content-Length\r\n"
                     "Keep-Alive: timeout=5\r\nX-Hop: 1\r\nUpgrade: h2c\r\nContent-Length: 2\r\n"
                     "connection: Transfer-Encoding\r\nx-hop: 2\r\nProxy-Connection: x\r\n\r\n",
                     kNoVia),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nProxy-Connection: x\r\n\r\n");
}

TEST(HttpRulesTest, ResponseClientClose) {
  EXPECT_EQ(response("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
                     kNoVia, ClientConnection::kClose),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(response("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", kNoVia),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
      << "the server's close is the pool's business, not the client's";
}

TEST(HttpRulesTest, ResponseToAnHttp10KeepAliveClientSaysKeepAlive) {
  EXPECT_EQ(response("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", kNoVia,
                     ClientConnection::kKeepAlive),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
}

TEST(HttpRulesTest, ResponseSwitchingProtocolsKeepsUpgrade) {
  const std::string in =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  const std::string out =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nVia: 1.1 edgeproxy\r\n"
      "Connection: upgrade\r\n\r\n";
  EXPECT_EQ(response(in, ResponseRules{}), out);
  EXPECT_EQ(response(in, ResponseRules{}, ClientConnection::kClose), out)
      << "a tunnel: close is moot";
  EXPECT_EQ(response(in, ResponseRules{}, ClientConnection::kKeepAlive), out);
}

TEST(HttpRulesTest, ResponseRules) {
  ResponseRules rules;
  rules.headers = {del("server"), set("X-Served-By", "$server"), add("X-Served-By", "$listener"),
                   add("Via", "1.1 rule")};
  EXPECT_EQ(response("HTTP/1.1 204 No Content\r\nServer: nginx\r\nX-Served-By: a\r\n"
                     "SERVER: again\r\nVia: 1.1 origin\r\n\r\n",
                     rules),
            "HTTP/1.1 204 No Content\r\nX-Served-By: app1\r\nX-Served-By: web\r\n"
            "Via: 1.1 origin, 1.1 rule, 1.1 edgeproxy\r\n\r\n");
}

TEST(HttpRulesTest, ResponseWithARefusedConnectionFieldIsRefused) {
  ResponseHead head;
  uint32_t scanned = 0;
  ASSERT_EQ(parse_response_head("HTTP/1.1 200 OK\r\nConnection: \"close\"\r\n\r\n", scanned, head),
            HeadStatus::kDone);
  std::vector<std::byte> out(4096);
  EXPECT_EQ(build_response_head(head, ResponseRules{}, kVars, ClientConnection::kPersist, out), 0u);
}

}  // namespace
}  // namespace edgeproxy::http
