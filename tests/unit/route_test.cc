// Route: name tables (exact and whole-label suffixes, first rule wins), key templates, regexes
// over bytes with NULs, and route::decide() over rules parsed from configuration text: order,
// waiting, final bytes, compiled runs of sni rules, captures.
#include "edgeproxy/route.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "edgeproxy/topology_parser.h"

namespace edgeproxy {
namespace {

std::span<const std::byte> B(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

TEST(RouteTest, NameTableMatchesExactAndWholeLabelSuffixesOnly) {
  NameTable t;
  ASSERT_TRUE(t.add("example.com", 3).ok());
  ASSERT_TRUE(t.add("*.example.org", 1).ok());
  EXPECT_EQ(t.lookup("example.com"), 3u);
  EXPECT_EQ(t.lookup("EXAMPLE.Com."), 3u);
  EXPECT_EQ(t.lookup("example.com.evil"), kNoRule);
  EXPECT_EQ(t.lookup("www.example.com"), kNoRule);
  EXPECT_EQ(t.lookup("a.example.org"), 1u);
  EXPECT_EQ(t.lookup("a.b.example.org"), 1u);
  EXPECT_EQ(t.lookup("example.org"), kNoRule);
  EXPECT_EQ(t.lookup("badexample.org"), kNoRule);
  EXPECT_EQ(t.lookup(""), kNoRule);
  EXPECT_EQ(t.lookup(std::string(300, 'a')), kNoRule);
}

TEST(RouteTest, NameTableGivesTheSmallestValueWhenSeveralPatternsMatch) {
  NameTable t;
  ASSERT_TRUE(t.add("*.b.example.com", 5).ok());
  ASSERT_TRUE(t.add("*.example.com", 2).ok());
  ASSERT_TRUE(t.add("a.b.example.com", 7).ok());
  EXPECT_EQ(t.lookup("a.b.example.com"), 2u);
  EXPECT_EQ(t.lookup("x.example.com"), 2u);
}

TEST(RouteTest, NameTableRefusesMalformedPatterns) {
  NameTable t;
  for (const char* bad :
       {"", "*", "*.", "a*.example.com", "ex ample.com", "a..b", ".a", "*.*.a", "a\nb"}) {
    EXPECT_FALSE(t.add(bad, 0).ok()) << bad;
  }
  EXPECT_EQ(t.size(), 0u);
}

TEST(RouteTest, KeyTemplateExpandsCapturesAndLiterals) {
  auto k = KeyTemplate::parse("u-$2/$1$$");
  ASSERT_TRUE(k.ok()) << k.error();
  EXPECT_EQ(k.value().highest_capture(), 2);
  Captures c;
  c.at[1] = {0, 3};
  c.at[2] = {4, 7};
  char out[64];
  const uint32_t n = k.value().expand(B("abc-xyz"), c, out);
  EXPECT_EQ(std::string(out, n), "u-xyz/abc$");
  EXPECT_FALSE(KeyTemplate::parse("$0").ok());
  EXPECT_FALSE(KeyTemplate::parse("a$").ok());
  EXPECT_FALSE(KeyTemplate::parse("$x").ok());
}

TEST(RouteTest, KeyTemplateTruncatesAtTheOutputSize) {
  auto k = KeyTemplate::parse("0123456789");
  ASSERT_TRUE(k.ok());
  char out[4];
  EXPECT_EQ(k.value().expand({}, Captures{}, out), 4u);
}

// Fuzzing finding (config): stacked or nested repetitions made regcomp() take gigabytes and
// minutes for a 3 KB configuration file.
TEST(RouteTest, RegexWhoseRepetitionsMultiplyTooFarIsRefused) {
  const std::string stacked = "^a([a-z]+)b" + std::string(21, '+');
  auto r = Regex::compile(stacked);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("regex too complex"), std::string::npos) << r.error();
  std::string nested = "^";
  for (int i = 0; i < 21; ++i) nested += "(";
  nested += "a";
  for (int i = 0; i < 21; ++i) nested += ")+";
  EXPECT_FALSE(Regex::compile(nested).ok());
  EXPECT_FALSE(Regex::compile("^(a{1,255}){1,255}").ok());
  EXPECT_FALSE(Regex::compile("^(a{1,255}){1,16}").ok());  // 256 x 17
  // What routing rules are made of stays accepted.
  for (const char* ok : {"^[0-9a-f]{4}git-upload-pack /([a-z]+)/", "^SHARD ([a-z0-9]+) ",
                         "^([0-9]{1,3}\\.){3}[0-9]{1,3}$", "^(a{1,255}){1,15}", "((a+)+)+",
                         "^[[:alpha:]{}+*]+x{2,}", "a|b*|(c?d)*", "^/api/v[0-9]+/.*$"}) {
    EXPECT_TRUE(Regex::compile(ok).ok()) << ok;
  }
}

TEST(RouteTest, RegexMatchesAcrossNulBytesWithCaptures) {
  // POSIX: '.' never matches a NUL byte, a negated class does.
  auto re = Regex::compile("^[0-9a-f]{4}git-upload-pack /([a-z]+)/[^=]*host=([a-z.]+)");
  ASSERT_TRUE(re.ok()) << re.error();
  EXPECT_EQ(re.value().groups(), 2u);
  const std::string line("0032git-upload-pack /mojombo/grit.git\0host=github.com\0", 55);
  Captures c;
  ASSERT_TRUE(re.value().match(B(line), c));
  EXPECT_EQ(line.substr(c.at[1].first, c.at[1].second - c.at[1].first), "mojombo");
  EXPECT_EQ(line.substr(c.at[2].first, c.at[2].second - c.at[2].first), "github.com");
  EXPECT_FALSE(re.value().match(B(line.substr(0, 20)), c));
  auto dot = Regex::compile("git/.*host");
  ASSERT_TRUE(dot.ok());
  EXPECT_FALSE(dot.value().match(B(line), c));
  EXPECT_FALSE(Regex::compile("(").ok());
  EXPECT_FALSE(Regex::compile(std::string("a\0b", 3)).ok());
}

// The listener of a parsed configuration whose route block is `rules`.
struct Parsed {
  Topology topology;
  const RouteSet& routes() const { return topology.listeners[0].routes; }
};

Parsed Load(const std::string& rules) {
  const std::string text =
      "backend a { server s 127.0.0.1:1 }\nbackend b { server s 127.0.0.1:2 }\n"
      "listener l {\n bind 127.0.0.1:3\n backend a\n route {\n" +
      rules + "\n }\n}\n";
  auto r = parse_topology(text, "f.conf", [](const std::string&, const std::string&) {
    return Result<std::vector<IncludedFile>>(std::vector<IncludedFile>{});
  });
  EXPECT_TRUE(r.ok()) << r.error();
  return Parsed{r.ok() ? std::move(r.value()) : Topology{}};
}

route::Decision Decide(const Parsed& p, std::string_view bytes, bool final = false) {
  std::vector<std::byte> scratch(bytes.size() + 1);
  route::Scratch s{scratch, 0};
  Captures c;
  return route::decide(p.routes(), B(bytes), final, s, c);
}

TEST(RouteTest, FirstDecidingRuleWinsAndAnEarlierWaitingRuleBlocksLaterOnes) {
  const Parsed p = Load("prefix \"GET /a\" backend a\nprefix \"GET\" backend b\nany close");
  EXPECT_EQ(Decide(p, "GET /a HTTP").rule, 0u);
  EXPECT_EQ(Decide(p, "GET /b").rule, 1u);
  // "GET /" could still become "GET /a": the first rule waits, so the second cannot win yet.
  EXPECT_EQ(Decide(p, "GET /").verdict, route::Verdict::kNeedMore);
  EXPECT_EQ(Decide(p, "GET /", true).rule, 1u);
  EXPECT_EQ(Decide(p, "POST").rule, 2u);
}

TEST(RouteTest, AMissInARuleEndsItEvenWhenAnotherMatcherWaits) {
  const Parsed p = Load("regex \"^x\" prefix \"GET\" backend a\nany backend b");
  // The regex would wait, but the prefix already misses: the next rule decides.
  EXPECT_EQ(Decide(p, "POST").rule, 1u);
}

TEST(RouteTest, ARegexWaitsUntilTheBytesAreFinal) {
  const Parsed p = Load("regex \"^hello\" backend a\nany backend b");
  EXPECT_EQ(Decide(p, "hel").verdict, route::Verdict::kNeedMore);
  EXPECT_EQ(Decide(p, "xyz").verdict, route::Verdict::kNeedMore);
  EXPECT_EQ(Decide(p, "xyz", true).rule, 1u);
  EXPECT_EQ(Decide(p, "hello").rule, 0u);
}

TEST(RouteTest, NoRuleDecidingGivesNoMatch) {
  const Parsed p = Load("prefix \"A\" backend a");
  EXPECT_EQ(Decide(p, "B").verdict, route::Verdict::kNoMatch);
}

TEST(RouteTest, ConsecutiveSniRulesBecomeOneTableAndKeepRuleOrder) {
  std::string rules;
  for (int i = 0; i < 1000; ++i) rules += "sni host" + std::to_string(i) + ".example backend a\n";
  rules += "sni *.wild.example backend b\nsni x.wild.example backend a\nany close";
  const Parsed p = Load(rules);
  ASSERT_EQ(p.routes().runs.size(), 2u);
  EXPECT_EQ(p.routes().runs[0].kind, MatchKind::kSni);
  EXPECT_EQ(p.routes().runs[0].last, 1002u);
  EXPECT_EQ(p.routes().runs[0].table.lookup("host417.example"), 417u);
  EXPECT_EQ(p.routes().runs[0].table.lookup("x.wild.example"), 1000u);
}

TEST(RouteTest, HttpMatchersWaitForTheHeadAndMissOnOtherProtocols) {
  const Parsed p = Load(
      "http-host api.example.com backend a\nhttp-path /static/ backend b\n"
      "http-method POST close\nany reject");
  EXPECT_EQ(Decide(p, "GET / HTTP/1.1\r\nHost: API.example.com:8080\r\n").verdict,
            route::Verdict::kNeedMore);
  EXPECT_EQ(Decide(p, "GET / HTTP/1.1\r\nHost: API.example.com:8080\r\n\r\n").rule, 0u);
  EXPECT_EQ(Decide(p, "GET /static/x HTTP/1.1\r\nHost: other\r\n\r\n").rule, 1u);
  EXPECT_EQ(Decide(p, "POST /x HTTP/1.0\r\n\r\n").rule, 2u);
  EXPECT_EQ(Decide(p, "\x16\x03\x01\x00\x10").rule, 3u);
  EXPECT_EQ(Decide(p, "SSH-2.0-x\r\n").rule, 3u);
}

TEST(RouteTest, ProtocolMatcherTellsTlsHttpSshAndProxyApart) {
  const Parsed p = Load(
      "protocol tls backend a\nprotocol ssh backend b\nprotocol proxy close\n"
      "protocol http reject");
  EXPECT_EQ(Decide(p, "\x16\x03\x01").rule, 0u);
  EXPECT_EQ(Decide(p, "SSH-2.0").rule, 1u);
  EXPECT_EQ(Decide(p, "PROXY TCP4 ").rule, 2u);
  EXPECT_EQ(Decide(p, "GET / HTTP/1.1\r\n").rule, 3u);
  EXPECT_EQ(Decide(p, "S").verdict, route::Verdict::kNeedMore);
  EXPECT_EQ(Decide(p, std::string_view("\x00\x01\x02\x03\x04\x05\x06\x07", 8), true).verdict,
            route::Verdict::kNoMatch);
}

// A request head for `target`.
std::string Get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: h\r\n\r\n";
}

TEST(RouteTest, HttpPathExactComparesThePathWithoutItsQuery) {
  const Parsed p = Load("http-path-exact /login backend a\nany backend b");
  EXPECT_EQ(Decide(p, Get("/login")).rule, 0u);
  EXPECT_EQ(Decide(p, Get("/login?next=/x")).rule, 0u);
  EXPECT_EQ(Decide(p, Get("/login/")).rule, 1u);
  EXPECT_EQ(Decide(p, Get("/log")).rule, 1u);
  EXPECT_EQ(Decide(p, Get("/LOGIN")).rule, 1u) << "paths are case-sensitive";
  EXPECT_EQ(Decide(p, "GET http://h/login?x HTTP/1.1\r\nHost: h\r\n\r\n").rule, 0u)
      << "an absolute-form target's path";
  EXPECT_EQ(Decide(p, "GET /login HTTP/1.1\r\nHost: h\r\n").verdict, route::Verdict::kNeedMore);
}

TEST(RouteTest, HttpPathGlobIsFnmatchWithoutFlags) {
  const Parsed p =
      Load("http-path-glob /img/*.png backend a\nhttp-path-glob /v?/[!x]* backend b\nany close");
  EXPECT_EQ(Decide(p, Get("/img/a.png")).rule, 0u);
  EXPECT_EQ(Decide(p, Get("/img/a/b/c.png")).rule, 0u) << "'*' crosses '/' (no FNM_PATHNAME)";
  EXPECT_EQ(Decide(p, Get("/img/a.png?size=2")).rule, 0u) << "the query is not matched";
  EXPECT_EQ(Decide(p, Get("/img/a.png.txt")).rule, 2u);
  EXPECT_EQ(Decide(p, Get("/v1/users")).rule, 1u);
  EXPECT_EQ(Decide(p, Get("/v1/xusers")).rule, 2u);
  EXPECT_EQ(Decide(p, Get("/v12/users")).rule, 2u);
  // A path longer than the glob's stack copy never matches (and does not overflow it).
  EXPECT_EQ(Decide(p, Get("/img/" + std::string(kMaxGlobPath, 'a') + ".png")).rule, 2u);
  EXPECT_EQ(Decide(p, Get("/img/" + std::string(kMaxGlobPath - 9, 'a') + ".png")).rule, 0u);
}

TEST(RouteTest, HttpPathRegexSeesTheQueryAndCapturesIntoTheBytes) {
  const std::string text =
      "backend a { server s 127.0.0.1:1 }\nmap m f.map\n"
      "listener l {\n bind 127.0.0.1:3\n backend a\n route {\n"
      "  http-path-regex \"^/u/([a-z]+)[?]tab=([0-9]+)$\" map m $2-$1\n"
      "  http-path-regex ^/static/ backend a\n }\n}\n";
  auto r = parse_topology(text, "f.conf", [](const std::string&, const std::string&) {
    return Result<std::vector<IncludedFile>>(std::vector<IncludedFile>{{"f.map", "x a\n"}});
  });
  ASSERT_TRUE(r.ok()) << r.error();
  const RouteSet& routes = r.value().listeners[0].routes;
  const std::string head = "GET /u/alice?tab=7 HTTP/1.1\r\nHost: h\r\n\r\n";
  std::vector<std::byte> scratch(head.size());
  route::Scratch s{scratch, 0};
  Captures c;
  const route::Decision d = route::decide(routes, B(head), false, s, c);
  ASSERT_EQ(d.rule, 0u);
  char key[64];
  const uint32_t n = routes.rules[0].action.key.expand(B(head), c, key);
  EXPECT_EQ(std::string(key, n), "7-alice") << "captures are offsets into the inspected bytes";
  s.http_scanned = 0;
  EXPECT_EQ(route::decide(routes, B(Get("/u/alice?tab=x")), false, s, c).verdict,
            route::Verdict::kNoMatch)
      << "a regex over a complete head does not wait";
  s.http_scanned = 0;
  EXPECT_EQ(route::decide(routes, B(Get("/static/a")), false, s, c).rule, 1u);
}

// An HTTP listener's rules are the same compiled RouteSet, decided over each request's head.
TEST(RouteTest, AnHttpListenersRulesDecidePerRequestHead) {
  auto r = parse_topology(
      "backend a { server s 127.0.0.1:1 }\nbackend b { server s 127.0.0.1:2 }\n"
      "listener l {\n bind 127.0.0.1:3\n mode http\n backend a\n route {\n"
      "  http-host api.example.com http-path-exact /v1 backend b\n"
      "  http-path-glob *.php reject\n"
      "  http-method DELETE close \"no\"\n }\n}\n",
      "f.conf", [](const std::string&, const std::string&) {
        return Result<std::vector<IncludedFile>>(std::vector<IncludedFile>{});
      });
  ASSERT_TRUE(r.ok()) << r.error();
  const Parsed p{std::move(r.value())};
  EXPECT_EQ(Decide(p, "GET /v1?x HTTP/1.1\r\nHost: api.example.com\r\n\r\n").rule, 0u);
  EXPECT_EQ(Decide(p, "GET /v1 HTTP/1.1\r\nHost: www.example.com\r\n\r\n").verdict,
            route::Verdict::kNoMatch);
  EXPECT_EQ(Decide(p, Get("/a/b/index.php")).rule, 1u);
  EXPECT_EQ(Decide(p, "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n").rule, 2u);
}

}  // namespace
}  // namespace edgeproxy
