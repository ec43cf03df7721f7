// The forwarded request head: origin-form, hop-by-hop fields and the ones Connection names
// removed (never the framing ones), Host from an absolute-form target, the added Connection line,
// and every case rewritten in place giving the same bytes as into a separate buffer.
#include "edgeproxy/http_rewrite.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/http_framing.h"
#include "edgeproxy/http_head.h"

namespace edgeproxy::http {
namespace {

using namespace std::string_literals;

const std::string kBody = "BODY-AND-THE-NEXT-REQUEST";

struct Prepared {
  RequestHead head;
  ConnectionTokens tokens;
};

// Parses `bytes` (which must outlive the result) and its Connection options.
::testing::AssertionResult Prepare(std::string_view bytes, Prepared& p) {
  uint32_t scanned = 0;
  if (parse_request_head(bytes, scanned, p.head) != HeadStatus::kDone) {
    return ::testing::AssertionFailure() << "not a valid head: " << bytes;
  }
  if (!parse_connection(std::span(p.head.headers.data(), p.head.header_count), p.tokens)) {
    return ::testing::AssertionFailure() << "Connection refused: " << bytes;
  }
  return ::testing::AssertionSuccess();
}

// Into a separate buffer, with room to spare (the bytes after the result stay untouched).
std::string rewrite_copy(const std::string& head_bytes, RewriteOptions options) {
  Prepared p;
  EXPECT_TRUE(Prepare(head_bytes, p));
  std::vector<std::byte> out(head_bytes.size() + 1024, std::byte{0xAA});
  const uint32_t n = rewrite_request_head(p.head, p.tokens, options, out);
  EXPECT_EQ(n, rewritten_request_length(p.head, p.tokens, options)) << head_bytes;
  for (size_t i = n; i < out.size(); ++i) {
    if (out[i] != std::byte{0xAA}) {
      ADD_FAILURE() << "wrote past the result at " << i;
      break;
    }
  }
  return {reinterpret_cast<const char*>(out.data()), n};
}

// In the head's own bytes, followed by kBody as a proxy's buffer holds them. When the head grows,
// the body is first moved right by the difference, as the contract asks. Checks the body.
std::string rewrite_in_place(const std::string& head_bytes, RewriteOptions options) {
  std::string buffer;
  buffer.reserve(head_bytes.size() + kBody.size() + 1024);  // growing never moves the head
  buffer.append(head_bytes).append(kBody);
  Prepared p;
  EXPECT_TRUE(Prepare(buffer, p));
  const uint32_t length = rewritten_request_length(p.head, p.tokens, options);
  if (length == 0) return {};
  size_t room = p.head.length;
  if (length > p.head.length) {
    buffer.resize(length + kBody.size());
    std::memmove(buffer.data() + length, buffer.data() + p.head.length, kBody.size());
    room = length;
  }
  const std::span<std::byte> out(reinterpret_cast<std::byte*>(buffer.data()), room);
  const uint32_t n = rewrite_request_head(p.head, p.tokens, options, out);
  EXPECT_EQ(n, length);
  EXPECT_EQ(buffer.substr(room, kBody.size()), kBody) << "the bytes after the head are untouched";
  return buffer.substr(0, n);
}

struct Case {
  const char* name;
  std::string in;
  RewriteOptions options;
  std::string out;
};

std::vector<Case> cases() {
  const std::string fields = "User-Agent: wrk\r\nAccept: */*\r\n";
  return {
      {"origin-form, nothing to remove",
       "GET /a?b HTTP/1.1\r\nHost: h\r\n" + fields + "\r\n",
       {},
       "GET /a?b HTTP/1.1\r\nHost: h\r\n" + fields + "\r\n"},
      {"HTTP/1.0 stays HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", {}, "GET / HTTP/1.0\r\n\r\n"},
      {"field bytes are kept exactly",
       "GET / HTTP/1.1\r\nHost:h\r\nX-A: \t a  b \t\r\nX-B:\r\n\r\n",
       {},
       "GET / HTTP/1.1\r\nHost:h\r\nX-A: \t a  b \t\r\nX-B:\r\n\r\n"},
      {"absolute-form",
       "GET http://example.com:8080/x?y HTTP/1.1\r\nHost: example.com:8080\r\n" + fields + "\r\n",
       {},
       "GET /x?y HTTP/1.1\r\nHost: example.com:8080\r\n" + fields + "\r\n"},
      {"absolute-form, Host in another case is kept as sent",
       "GET http://Example.COM/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
       {},
       "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
      {"absolute-form without a path",
       "GET http://a HTTP/1.1\r\nHost: a\r\n\r\n",
       {},
       "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"absolute-form https, IPv6",
       "GET https://[::1]:8443/p HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
       {},
       "GET /p HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"},
      {"absolute-form, Host differs: replaced where it was",
       "GET http://real.example/x HTTP/1.1\r\nA: 1\r\nHost: other.example\r\nB: 2\r\n\r\n",
       {},
       "GET /x HTTP/1.1\r\nA: 1\r\nHost: real.example\r\nB: 2\r\n\r\n"},
      {"absolute-form, Host differs by port",
       "GET http://a:8080/ HTTP/1.1\r\nHost: a\r\n\r\n",
       {},
       "GET / HTTP/1.1\r\nHost: a:8080\r\n\r\n"},
      {"absolute-form, empty Host, no path",
       "GET http://a.very.long.name.example:65535 HTTP/1.1\r\nHost:\r\n\r\n",
       {},
       "GET / HTTP/1.1\r\nHost: a.very.long.name.example:65535\r\n\r\n"},
      {"HTTP/1.0 absolute-form without Host gets one",
       "GET http://a:81/x HTTP/1.0\r\nUser-Agent: old\r\n\r\n",
       {},
       "GET /x HTTP/1.0\r\nUser-Agent: old\r\nHost: a:81\r\n\r\n"},
      {"HTTP/1.0 origin-form without Host gets none",
       "GET /x HTTP/1.0\r\nA: b\r\n\r\n",
       {},
       "GET /x HTTP/1.0\r\nA: b\r\n\r\n"},
      {"CONNECT and OPTIONS * keep their targets",
       "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nProxy-Authorization: Basic eA==\r\n\r\n",
       {},
       "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"},
      {"OPTIONS *",
       "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
       {},
       "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"every hop-by-hop field, any case",
       "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nproxy-connection: "
       "keep-alive\r\nPROXY-AUTHORIZATION: Basic eA==\r\nKeep-Alive: timeout=5\r\nTE: "
       "trailers\r\nTrailer: X\r\nUpgrade: websocket\r\nAccept: */*\r\n\r\n",
       {},
       "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"},
      {"Connection names fields, across fields and lists",
       "GET / HTTP/1.1\r\nHost: a\r\nX-Foo: 1\r\nConnection: x-foo ,, X-Bar\r\nX-Keep: 2\r\n"
       "connection: x-baz\r\nX-BAR: 3\r\nx-baz: 4\r\n\r\n",
       {},
       "GET / HTTP/1.1\r\nHost: a\r\nX-Keep: 2\r\n\r\n"},
      {"Connection names itself",
       "GET / HTTP/1.1\r\nHost: a\r\nConnection: connection\r\nX: y\r\n\r\n",
       {},
       "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n"},
      {"Connection names a field twice, the field is there twice",
       "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-a, X-A\r\nX-A: 1\r\nB: 2\r\nx-a: 3\r\n\r\n",
       {},
       "GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\n\r\n"},
      {"Connection cannot remove the framing and routing fields",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: Content-Length, host, "
       "Transfer-Encoding, close\r\n\r\n",
       {},
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"},
      {"Connection naming Transfer-Encoding keeps it",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: "
       "transfer-encoding\r\n\r\n",
       {},
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"},
      {"Connection naming a hop-by-hop field",
       "GET / HTTP/1.1\r\nHost: a\r\nConnection: Proxy-Authorization, TE\r\nTE: trailers\r\n\r\n",
       {},
       "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"close added",
       "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
       {.upgrade = false, .close = true},
       "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
      {"close added, nothing removed: grows",
       "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
       {.upgrade = false, .close = true},
       "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"},
      {"upgrade kept",
       "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
       "Sec-WebSocket-Key: k\r\n\r\n",
       {.upgrade = true, .close = false},
       "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n"
       "Connection: upgrade\r\n\r\n"},
      {"upgrade not kept",
       "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
       {},
       "GET /chat HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"upgrade and close",
       "GET http://a/chat HTTP/1.0\r\nUpgrade: x\r\nConnection: upgrade, x-y\r\nX-Y: 1\r\n\r\n",
       {.upgrade = true, .close = true},
       "GET /chat HTTP/1.0\r\nUpgrade: x\r\nHost: a\r\nConnection: upgrade, close\r\n\r\n"},
  };
}

TEST(HttpRewriteTest, CasesIntoASeparateBufferAndInPlace) {
  for (const Case& c : cases()) {
    EXPECT_EQ(rewrite_copy(c.in, c.options), c.out) << c.name;
    EXPECT_EQ(rewrite_in_place(c.in, c.options), c.out) << c.name << ", in place";
  }
}

TEST(HttpRewriteTest, TheOutputReParsesWithTheSameFraming) {
  for (const Case& c : cases()) {
    const std::string out = rewrite_copy(c.in, c.options);
    Prepared before, after;
    ASSERT_TRUE(Prepare(c.in, before));
    ASSERT_TRUE(Prepare(out, after)) << c.name;
    Framing f1, f2;
    ASSERT_EQ(request_framing(before.head, f1), FramingStatus::kOk) << c.name;
    ASSERT_EQ(request_framing(after.head, f2), FramingStatus::kOk) << c.name;
    EXPECT_EQ(f1.kind, f2.kind) << c.name;
    EXPECT_EQ(f1.length, f2.length) << c.name;
    EXPECT_EQ(after.head.method, before.head.method);
    EXPECT_EQ(after.head.path, before.head.path) << c.name;
    EXPECT_EQ(after.head.version_minor, before.head.version_minor);
  }
}

TEST(HttpRewriteTest, ShrinkingHeadsFitTheirOwnBytes) {
  // The common forward-proxy case: absolute-form and a Proxy-Connection, rewritten in the
  // client's buffer with exactly the head's bytes as room.
  const std::string in =
      "GET http://example.com/index.html HTTP/1.1\r\nHost: example.com\r\n"
      "Proxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n";
  Prepared p;
  ASSERT_TRUE(Prepare(in, p));
  EXPECT_LT(rewritten_request_length(p.head, p.tokens, {}), p.head.length);
  EXPECT_EQ(rewrite_in_place(in, {}),
            "GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
}

TEST(HttpRewriteTest, TooSmallAnOutputWritesNothing) {
  const std::string in = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  Prepared p;
  ASSERT_TRUE(Prepare(in, p));
  const RewriteOptions close{.upgrade = false, .close = true};
  const uint32_t length = rewritten_request_length(p.head, p.tokens, close);
  ASSERT_EQ(length, in.size() + std::string_view("Connection: close\r\n").size());
  std::vector<std::byte> out(length - 1, std::byte{0x55});
  EXPECT_EQ(rewrite_request_head(p.head, p.tokens, close, out), 0u);
  for (const std::byte b : out) ASSERT_EQ(b, std::byte{0x55});

  // In place with only the head's own bytes: refused, and the head is still intact.
  std::string buffer = in + kBody;
  ASSERT_TRUE(Prepare(buffer, p));
  const std::span<std::byte> own(reinterpret_cast<std::byte*>(buffer.data()), p.head.length);
  EXPECT_EQ(rewrite_request_head(p.head, p.tokens, close, own), 0u);
  EXPECT_EQ(buffer, in + kBody);

  out.resize(length);
  EXPECT_EQ(rewrite_request_head(p.head, p.tokens, close, out), length);
}

// A head can grow: here by 20 bytes (Host and Connection lines added, "http://a" gone). Its
// own bytes are not room enough, and a caller that gave the rewrite the room after the head
// without moving the body first would have the body's first 20 bytes overwritten.
TEST(HttpRewriteTest, AGrowingHeadNeedsTheBodyMovedFirst) {
  const std::string in = "POST http://a/ HTTP/1.0\r\nContent-Length: 5\r\n\r\n";
  const std::string expected =
      "POST / HTTP/1.0\r\nContent-Length: 5\r\nHost: a\r\nConnection: close\r\n\r\n";
  const RewriteOptions close{.upgrade = false, .close = true};
  Prepared p;
  ASSERT_TRUE(Prepare(in, p));
  EXPECT_EQ(rewritten_request_length(p.head, p.tokens, close), in.size() + 20);
  EXPECT_EQ(rewrite_in_place(in, close), expected);  // the body moved right by 20 first

  std::string buffer = in + "hello";
  ASSERT_TRUE(Prepare(buffer, p));
  const std::span<std::byte> own(reinterpret_cast<std::byte*>(buffer.data()), p.head.length);
  EXPECT_EQ(rewrite_request_head(p.head, p.tokens, close, own), 0u);
  EXPECT_EQ(buffer, in + "hello");
}

TEST(HttpRewriteTest, HostLineAuthorityLimit) {
  auto with_name = [](size_t name_bytes, const char* host) {
    return "GET http://" + std::string(name_bytes, 'n') + ":65535/ HTTP/1.1\r\nHost: " + host +
           "\r\n\r\n";
  };
  const size_t longest = kMaxHostLineAuthority - std::string_view(":65535").size();
  const std::string fits = with_name(longest, "x");
  EXPECT_EQ(rewrite_copy(fits, {}),
            "GET / HTTP/1.1\r\nHost: " + std::string(longest, 'n') + ":65535\r\n\r\n");
  EXPECT_EQ(rewrite_in_place(fits, {}),
            "GET / HTTP/1.1\r\nHost: " + std::string(longest, 'n') + ":65535\r\n\r\n");

  const std::string too_long = with_name(longest + 1, "x");
  Prepared p;
  ASSERT_TRUE(Prepare(too_long, p));
  EXPECT_EQ(rewritten_request_length(p.head, p.tokens, {}), 0u);
  std::vector<std::byte> out(too_long.size() + 1024);
  EXPECT_EQ(rewrite_request_head(p.head, p.tokens, {}, out), 0u);

  // No Host line to write: any authority the parser accepts is fine.
  const std::string name(longest + 100, 'n');
  const std::string same = with_name(longest + 100, (name + ":65535").c_str());
  EXPECT_EQ(rewrite_in_place(same, {}), "GET / HTTP/1.1\r\nHost: " + name + ":65535\r\n\r\n");
}

TEST(HttpRewriteTest, SixtyFourFieldsMostlyRemoved) {
  std::string in = "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: x-0, x-1, x-2\r\n";
  std::string expected = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 62; ++i) {
    const std::string line = "X-" + std::to_string(i % 5) + ": " + std::to_string(i) + "\r\n";
    in += line;
    if (i % 5 > 2) expected += line;
  }
  in += "\r\n";
  expected += "\r\n";
  Prepared p;
  ASSERT_TRUE(Prepare(in, p));
  ASSERT_EQ(p.head.header_count, kMaxHeaders);
  EXPECT_EQ(rewrite_copy(in, {}), expected);
  EXPECT_EQ(rewrite_in_place(in, {}), expected);
}

// Random heads from a pool of fields (hop-by-hop, named by Connection or not, framing): in place
// and into a separate buffer agree, and the result holds exactly the fields it should.
TEST(HttpRewriteTest, RandomHeadsInPlaceMatchACopy) {
  const std::string pool[] = {
      "Accept: */*",
      "X-A: 1",
      "x-b: two",
      "X-C:  three  ",
      "Connection: x-a",
      "Connection: X-B, x-c",
      "Connection: close",
      "Connection: connection, connection",
      "Proxy-Connection: keep-alive",
      "Keep-Alive: 300",
      "TE: trailers",
      "Trailer: X-T",
      "Upgrade: h2c",
      "Proxy-Authorization: Basic eA==",
      "Content-Length: 3",
      "Connection: content-length, Host",
      "Cookie: a=b; c=d",
  };
  const std::string targets[] = {"/p?q", "http://h:8080/p?q", "http://h", "https://h/"};
  std::mt19937 random(2024);
  for (int round = 0; round < 2000; ++round) {
    const std::string& target = targets[random() % std::size(targets)];
    const bool http10 = random() % 4 == 0;
    std::string in = "POST " + target + (http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
    const bool host = !http10 || random() % 2 == 0;
    const size_t host_at = random() % 6;
    bool content_length = false;
    const size_t count = random() % 12;
    for (size_t i = 0; i < count; ++i) {
      if (host && i == host_at) in += random() % 2 == 0 ? "Host: h:8080\r\n" : "Host: other\r\n";
      const std::string& field = pool[random() % std::size(pool)];
      if (field.starts_with("Content-Length")) {
        if (content_length) continue;
        content_length = true;
      }
      in += field + "\r\n";
    }
    if (host && host_at >= count) in += "Host: h\r\n";
    in += "\r\n";
    RewriteOptions options;
    options.upgrade = random() % 4 == 0;
    options.close = random() % 3 == 0;

    const std::string copy = rewrite_copy(in, options);
    ASSERT_EQ(rewrite_in_place(in, options), copy) << in;
    Prepared before, after;
    ASSERT_TRUE(Prepare(in, before));
    ASSERT_TRUE(Prepare(copy, after)) << in << "->\n" << copy;
    // Every field left is one that had to stay; every field that had to stay is left.
    uint32_t kept = 0;
    for (uint32_t i = 0; i < before.head.header_count; ++i) {
      const std::string_view name = before.head.headers[i].name;
      const bool hop = iequals(name, "connection") || iequals(name, "proxy-connection") ||
                       iequals(name, "keep-alive") || iequals(name, "te") ||
                       iequals(name, "trailer") || iequals(name, "proxy-authorization") ||
                       (iequals(name, "upgrade") && !options.upgrade);
      const bool framing = iequals(name, "host") || iequals(name, "content-length");
      const bool named = before.tokens.names(name) && !iequals(name, "upgrade");
      if (framing || (!hop && !named)) ++kept;
    }
    const bool host_added = http10 && !host && target.front() != '/';
    const uint32_t connection_line = options.upgrade || options.close ? 1 : 0;
    EXPECT_EQ(after.head.header_count, kept + (host_added ? 1 : 0) + connection_line) << in;
    if (target.front() != '/') {
      EXPECT_EQ(host_without_port(after.head.host), "h") << in;
    }
    EXPECT_EQ(after.tokens.close, options.close);
    EXPECT_EQ(after.tokens.upgrade, options.upgrade);
  }
}

}  // namespace
}  // namespace edgeproxy::http
