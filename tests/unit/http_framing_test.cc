// Message framing: a request smuggling corpus (each refused with its reason), request and response
// framing tables, Connection options (lists, repeats, self-naming, the cap), BodyFramer.
#include "edgeproxy/http_framing.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace edgeproxy::http {

// static: several test files print these types.
static void PrintTo(FramingStatus s, std::ostream* os) {
  *os << to_string(s);
}

static void PrintTo(BodyKind k, std::ostream* os) {
  constexpr const char* kNames[] = {"kNone", "kLength", "kChunked", "kUntilClose", "kTunnel"};
  const auto i = static_cast<size_t>(k);
  *os << (i < std::size(kNames) ? kNames[i] : "BodyKind(?)");
}

static void PrintTo(BodyStatus s, std::ostream* os) {
  constexpr const char* kNames[] = {"kMore", "kDone", "kInvalid"};
  const auto i = static_cast<size_t>(s);
  *os << (i < std::size(kNames) ? kNames[i] : "BodyStatus(?)");
}

namespace {

using namespace std::string_literals;

std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Parses a whole head (it must be one); `bytes` must outlive `head`.
::testing::AssertionResult Parsed(const std::string& bytes, RequestHead& head) {
  uint32_t scanned = 0;
  if (parse_request_head(bytes, scanned, head) != HeadStatus::kDone) {
    return ::testing::AssertionFailure() << "not a valid request head: " << bytes;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult Parsed(const std::string& bytes, ResponseHead& head) {
  uint32_t scanned = 0;
  if (parse_response_head(bytes, scanned, head) != HeadStatus::kDone) {
    return ::testing::AssertionFailure() << "not a valid response head: " << bytes;
  }
  return ::testing::AssertionSuccess();
}

std::string post(const std::string& fields, const char* version = "HTTP/1.1") {
  return "POST /submit "s + version + "\r\nHost: a\r\n" + fields + "\r\n";
}

struct Refused {
  const char* name;
  std::string head;
  FramingStatus status;
};

std::vector<Refused> request_smuggling_corpus() {
  const std::string te = "Transfer-Encoding: chunked\r\n";
  const std::string cl = "Content-Length: 5\r\n";
  using S = FramingStatus;
  return {
      // CL.TE and TE.CL: the classic desync, either field first.
      {"Content-Length then Transfer-Encoding", post(cl + te),
       S::kContentLengthAndTransferEncoding},
      {"Transfer-Encoding then Content-Length", post(te + cl),
       S::kContentLengthAndTransferEncoding},
      {"Content-Length: 0 with chunked", post("Content-Length: 0\r\n" + te),
       S::kContentLengthAndTransferEncoding},
      {"both, other cases", post("content-length: 5\r\nTRANSFER-ENCODING: chunked\r\n"),
       S::kContentLengthAndTransferEncoding},
      // Content-Length repeated or listed, even with the same value.
      {"two equal Content-Length", post(cl + cl), S::kRepeatedContentLength},
      {"two different Content-Length", post(cl + "Content-Length: 6\r\n"),
       S::kRepeatedContentLength},
      {"two Content-Length, other case", post(cl + "content-LENGTH: 5\r\n"),
       S::kRepeatedContentLength},
      {"list 5, 5", post("Content-Length: 5, 5\r\n"), S::kRepeatedContentLength},
      {"list 5,5", post("Content-Length: 5,5\r\n"), S::kRepeatedContentLength},
      {"list 5,6", post("Content-Length: 5,6\r\n"), S::kRepeatedContentLength},
      {"trailing comma", post("Content-Length: 5,\r\n"), S::kRepeatedContentLength},
      {"leading comma", post("Content-Length: ,5\r\n"), S::kRepeatedContentLength},
      {"listed and repeated with chunked", post("Content-Length: 5, 5\r\n" + te),
       S::kRepeatedContentLength},
      // Content-Length values.
      {"empty Content-Length", post("Content-Length:\r\n"), S::kBadContentLength},
      {"blank Content-Length", post("Content-Length:   \r\n"), S::kBadContentLength},
      {"plus sign", post("Content-Length: +5\r\n"), S::kBadContentLength},
      {"minus sign", post("Content-Length: -5\r\n"), S::kBadContentLength},
      {"hex", post("Content-Length: 0x5\r\n"), S::kBadContentLength},
      {"decimal point", post("Content-Length: 5.0\r\n"), S::kBadContentLength},
      {"exponent", post("Content-Length: 5e1\r\n"), S::kBadContentLength},
      {"blank inside", post("Content-Length: 5 5\r\n"), S::kBadContentLength},
      {"tab inside", post("Content-Length: 5\t5\r\n"), S::kBadContentLength},
      {"letters after digits", post("Content-Length: 5abc\r\n"), S::kBadContentLength},
      {"quoted", post("Content-Length: \"5\"\r\n"), S::kBadContentLength},
      {"non-ASCII digit", post("Content-Length: \xd9\xa5\r\n"), S::kBadContentLength},
      {"2^63", post("Content-Length: 9223372036854775808\r\n"), S::kBadContentLength},
      {"2^64", post("Content-Length: 18446744073709551616\r\n"), S::kBadContentLength},
      {"2^64 + 5 (wraps to 5 in 64 bits)", post("Content-Length: 18446744073709551621\r\n"),
       S::kBadContentLength},
      {"very long", post("Content-Length: " + std::string(100, '9') + "\r\n"),
       S::kBadContentLength},
      // Transfer-Encoding repeated.
      {"two chunked fields", post(te + te), S::kRepeatedTransferEncoding},
      {"gzip field then chunked field", post("Transfer-Encoding: gzip\r\n" + te),
       S::kRepeatedTransferEncoding},
      {"chunked field then an empty one", post(te + "Transfer-Encoding:\r\n"),
       S::kRepeatedTransferEncoding},
      // Transfer-Encoding other than exactly chunked. "gzip, chunked" is legal HTTP, refused:
      // no server decodes a request's other codings, and every extra list element is a way for
      // two parsers to disagree on whether the body is chunked.
      {"gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n"), S::kBadTransferEncoding},
      {"chunked, chunked", post("Transfer-Encoding: chunked, chunked\r\n"),
       S::kBadTransferEncoding},
      {"chunked, gzip", post("Transfer-Encoding: chunked, gzip\r\n"), S::kBadTransferEncoding},
      {"chunked,", post("Transfer-Encoding: chunked,\r\n"), S::kBadTransferEncoding},
      {",chunked", post("Transfer-Encoding: ,chunked\r\n"), S::kBadTransferEncoding},
      {"chunked , (blank before the comma)", post("Transfer-Encoding: chunked ,\r\n"),
       S::kBadTransferEncoding},
      {"xchunked", post("Transfer-Encoding: xchunked\r\n"), S::kBadTransferEncoding},
      {"chunkedx", post("Transfer-Encoding: chunkedx\r\n"), S::kBadTransferEncoding},
      {"chunk", post("Transfer-Encoding: chunk\r\n"), S::kBadTransferEncoding},
      {"chunked;x", post("Transfer-Encoding: chunked;x\r\n"), S::kBadTransferEncoding},
      {"chunked; q=1", post("Transfer-Encoding: chunked; q=1\r\n"), S::kBadTransferEncoding},
      {"quoted chunked", post("Transfer-Encoding: \"chunked\"\r\n"), S::kBadTransferEncoding},
      {"chunked with NBSP", post("Transfer-Encoding: chunked\xa0\r\n"), S::kBadTransferEncoding},
      {"chunked with a blank inside", post("Transfer-Encoding: chun ked\r\n"),
       S::kBadTransferEncoding},
      {"gzip", post("Transfer-Encoding: gzip\r\n"), S::kBadTransferEncoding},
      {"identity", post("Transfer-Encoding: identity\r\n"), S::kBadTransferEncoding},
      {"empty", post("Transfer-Encoding:\r\n"), S::kBadTransferEncoding},
      // HTTP/1.0 has no Transfer-Encoding.
      {"chunked in HTTP/1.0", post(te, "HTTP/1.0"), S::kTransferEncodingInHttp10},
      {"gzip in HTTP/1.0", post("Transfer-Encoding: gzip\r\n", "HTTP/1.0"),
       S::kTransferEncodingInHttp10},
      // Connection fields that cannot be read one way only.
      {"Connection with a non-token", post(cl + "Connection: close;x\r\n"), S::kBadConnection},
      {"Connection quoted", post(cl + "Connection: \"close\"\r\n"), S::kBadConnection},
      // CONNECT has no body.
      {"CONNECT with Content-Length",
       "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 5\r\n\r\n", S::kBodyOnConnect},
      {"CONNECT with Transfer-Encoding",
       "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nTransfer-Encoding: chunked\r\n\r\n",
       S::kBodyOnConnect},
  };
}

TEST(HttpFramingTest, RequestSmugglingCorpusIsRefusedWithItsReason) {
  for (const Refused& c : request_smuggling_corpus()) {
    RequestHead head;
    ASSERT_TRUE(Parsed(c.head, head)) << c.name;
    Framing framing;
    framing.length = 12345;  // untouched on refusal
    EXPECT_EQ(request_framing(head, framing), c.status) << c.name;
    EXPECT_EQ(framing.length, 12345u) << c.name;
  }
}

TEST(HttpFramingTest, HeadsTheParserRefusesNeverReachFraming) {
  // The smuggling vectors in the field syntax itself are the head parser's to refuse.
  const std::string heads[] = {
      post("Content-Length : 5\r\n"),
      post("Transfer-Encoding\t: chunked\r\n"),
      post("Transfer-Encoding: \x0b"
           "chunked\r\n"),
      post("X: a\r\n Transfer-Encoding: chunked\r\n"),
      post("Transfer-Encoding:\r\n chunked\r\n"),
      "POST / HTTP/1.1\r\nHost: a\nTransfer-Encoding: chunked\r\n\r\n",
  };
  for (const std::string& bytes : heads) {
    RequestHead head;
    uint32_t scanned = 0;
    EXPECT_EQ(parse_request_head(bytes, scanned, head), HeadStatus::kInvalid) << bytes;
  }
}

struct RequestCase {
  const char* name;
  std::string head;
  BodyKind kind;
  uint64_t length;
  bool close;
};

TEST(HttpFramingTest, RequestFramingTable) {
  const RequestCase cases[] = {
      {"GET", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", BodyKind::kNone, 0, false},
      {"GET, close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", BodyKind::kNone, 0,
       true},
      {"GET, Close in a list", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n",
       BodyKind::kNone, 0, true},
      {"GET, close in a second field",
       "GET / HTTP/1.1\r\nHost: a\r\nConnection: te\r\nConnection: close\r\n\r\n", BodyKind::kNone,
       0, true},
      {"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", BodyKind::kNone, 0, true},
      {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", BodyKind::kNone,
       0, false},
      {"HTTP/1.0 keep-alive and close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
       BodyKind::kNone, 0, true},
      {"POST Content-Length", post("Content-Length: 5\r\n"), BodyKind::kLength, 5, false},
      {"POST Content-Length with leading zeros", post("Content-Length: 0005\r\n"),
       BodyKind::kLength, 5, false},
      {"POST largest Content-Length", post("Content-Length: 9223372036854775807\r\n"),
       BodyKind::kLength, 9223372036854775807u, false},
      {"POST Content-Length: 0", post("Content-Length: 0\r\n"), BodyKind::kNone, 0, false},
      {"POST without a body", post(""), BodyKind::kNone, 0, false},
      {"POST chunked", post("Transfer-Encoding: chunked\r\n"), BodyKind::kChunked, 0, false},
      {"POST Chunked, any case", post("transfer-encoding: CHUNKED\r\n"), BodyKind::kChunked, 0,
       false},
      {"POST chunked, blanks around", post("Transfer-Encoding: \t chunked \t\r\n"),
       BodyKind::kChunked, 0, false},
      {"POST HTTP/1.0 Content-Length", post("Content-Length: 7\r\n", "HTTP/1.0"), BodyKind::kLength,
       7, true},
      {"GET with a body", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n",
       BodyKind::kLength, 3, false},
      {"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", BodyKind::kTunnel, 0, true},
      {"CONNECT with Content-Length: 0",
       "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 0\r\n\r\n", BodyKind::kTunnel, 0,
       true},
      {"Transfer_Encoding is another field", post("Transfer_Encoding: chunked\r\n"),
       BodyKind::kNone, 0, false},
  };
  for (const RequestCase& c : cases) {
    RequestHead head;
    ASSERT_TRUE(Parsed(c.head, head)) << c.name;
    Framing framing;
    ASSERT_EQ(request_framing(head, framing), FramingStatus::kOk) << c.name;
    EXPECT_EQ(framing.kind, c.kind) << c.name;
    EXPECT_EQ(framing.length, c.length) << c.name;
    EXPECT_EQ(framing.close, c.close) << c.name;
    EXPECT_FALSE(framing.interim) << c.name;
  }
}

struct ResponseCase {
  const char* name;
  std::string head;
  const char* method;
  BodyKind kind;
  uint64_t length;
  bool close;
  bool interim;
};

TEST(HttpFramingTest, ResponseFramingTable) {
  auto response = [](const char* status_line, const std::string& fields,
                     const char* version = "HTTP/1.1") {
    return std::string(version) + " " + status_line + "\r\n" + fields + "\r\n";
  };
  const std::string cl = "Content-Length: 5\r\n";
  const std::string te = "Transfer-Encoding: chunked\r\n";
  using K = BodyKind;
  const ResponseCase cases[] = {
      {"200 Content-Length", response("200 OK", cl), "GET", K::kLength, 5, false, false},
      {"200 Content-Length: 0", response("200 OK", "Content-Length: 0\r\n"), "GET", K::kNone, 0,
       false, false},
      {"200 chunked", response("200 OK", te), "GET", K::kChunked, 0, false, false},
      {"200 gzip, chunked", response("200 OK", "Transfer-Encoding: gzip, chunked\r\n"), "GET",
       K::kChunked, 0, false, false},
      {"200 gzip then chunked fields",
       response("200 OK", "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), "GET",
       K::kChunked, 0, false, false},
      {"200 CHUNKED", response("200 OK", "Transfer-Encoding: CHUNKED\r\n"), "GET", K::kChunked, 0,
       false, false},
      {"200 gzip only", response("200 OK", "Transfer-Encoding: gzip\r\n"), "GET", K::kUntilClose, 0,
       true, false},
      {"200 identity", response("200 OK", "Transfer-Encoding: identity\r\n"), "GET", K::kUntilClose,
       0, true, false},
      {"200 without length", response("200 OK", "Server: s\r\n"), "GET", K::kUntilClose, 0, true,
       false},
      {"200 close", response("200 OK", cl + "Connection: close\r\n"), "GET", K::kLength, 5, true,
       false},
      {"HTTP/1.0 200", response("200 OK", cl, "HTTP/1.0"), "GET", K::kLength, 5, true, false},
      {"HTTP/1.0 200 keep-alive", response("200 OK", cl + "Connection: keep-alive\r\n", "HTTP/1.0"),
       "GET", K::kLength, 5, false, false},
      {"HTTP/1.0 200 without length", response("200 OK", "", "HTTP/1.0"), "GET", K::kUntilClose, 0,
       true, false},
      {"204 with Content-Length", response("204 No Content", cl), "DELETE", K::kNone, 0, false,
       false},
      {"304 with Content-Length", response("304 Not Modified", "Content-Length: 100\r\n"), "GET",
       K::kNone, 0, false, false},
      {"304 with chunked", response("304 Not Modified", te), "GET", K::kNone, 0, false, false},
      {"HEAD 200 with Content-Length", response("200 OK", "Content-Length: 100\r\n"), "HEAD",
       K::kNone, 0, false, false},
      {"HEAD 200 chunked", response("200 OK", te), "HEAD", K::kNone, 0, false, false},
      {"HEAD 200 without length", response("200 OK", ""), "HEAD", K::kNone, 0, false, false},
      {"head (lowercase) is another method", response("200 OK", cl), "head", K::kLength, 5, false,
       false},
      {"100 Continue", response("100 Continue", ""), "POST", K::kNone, 0, false, true},
      {"103 Early Hints", response("103 Early Hints", "Link: </s.css>\r\n"), "GET", K::kNone, 0,
       false, true},
      {"1xx with close says nothing", response("100 Continue", "Connection: close\r\n"), "POST",
       K::kNone, 0, false, true},
      {"101 Switching Protocols",
       response("101 Switching Protocols", "Upgrade: websocket\r\nConnection: Upgrade\r\n"), "GET",
       K::kTunnel, 0, true, false},
      {"CONNECT 200", response("200 Connection established", ""), "CONNECT", K::kTunnel, 0, true,
       false},
      {"CONNECT 204", response("204 OK", ""), "CONNECT", K::kTunnel, 0, true, false},
      {"CONNECT 407 with a body", response("407 Proxy Authentication Required", cl), "CONNECT",
       K::kLength, 5, false, false},
      {"CONNECT 502 without length", response("502 Bad Gateway", ""), "CONNECT", K::kUntilClose, 0,
       true, false},
      {"500 chunked", response("500 Internal Server Error", te), "POST", K::kChunked, 0, false,
       false},
  };
  for (const ResponseCase& c : cases) {
    ResponseHead head;
    ASSERT_TRUE(Parsed(c.head, head)) << c.name;
    Framing framing;
    ASSERT_EQ(response_framing(head, c.method, framing), FramingStatus::kOk) << c.name;
    EXPECT_EQ(framing.kind, c.kind) << c.name;
    EXPECT_EQ(framing.length, c.length) << c.name;
    EXPECT_EQ(framing.close, c.close) << c.name;
    EXPECT_EQ(framing.interim, c.interim) << c.name;
  }
}

TEST(HttpFramingTest, ResponseSplittingCorpusIsRefusedWithItsReason) {
  auto ok = [](const std::string& fields, const char* version = "HTTP/1.1") {
    return std::string(version) + " 200 OK\r\n" + fields + "\r\n";
  };
  using S = FramingStatus;
  const Refused cases[] = {
      {"both", ok("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
       S::kContentLengthAndTransferEncoding},
      {"both on a 304",
       "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
       S::kContentLengthAndTransferEncoding},
      {"two Content-Length", ok("Content-Length: 5\r\nContent-Length: 5\r\n"),
       S::kRepeatedContentLength},
      {"list", ok("Content-Length: 5, 5\r\n"), S::kRepeatedContentLength},
      {"bad Content-Length", ok("Content-Length: 5x\r\n"), S::kBadContentLength},
      {"bad Content-Length on a 204", "HTTP/1.1 204 No Content\r\nContent-Length: -1\r\n\r\n",
       S::kBadContentLength},
      {"chunked, gzip", ok("Transfer-Encoding: chunked, gzip\r\n"), S::kBadTransferEncoding},
      {"chunked, chunked", ok("Transfer-Encoding: chunked, chunked\r\n"), S::kBadTransferEncoding},
      {"chunked field twice", ok("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
       S::kBadTransferEncoding},
      {"empty element", ok("Transfer-Encoding: gzip,,chunked\r\n"), S::kBadTransferEncoding},
      {"trailing comma", ok("Transfer-Encoding: chunked,\r\n"), S::kBadTransferEncoding},
      {"parameter", ok("Transfer-Encoding: chunked;q=1\r\n"), S::kBadTransferEncoding},
      {"quoted", ok("Transfer-Encoding: \"chunked\"\r\n"), S::kBadTransferEncoding},
      {"empty", ok("Transfer-Encoding:\r\n"), S::kBadTransferEncoding},
      {"HTTP/1.0 chunked", ok("Transfer-Encoding: chunked\r\n", "HTTP/1.0"),
       S::kTransferEncodingInHttp10},
      {"bad Connection", ok("Content-Length: 1\r\nConnection: a b\r\n"), S::kBadConnection},
  };
  for (const Refused& c : cases) {
    ResponseHead head;
    ASSERT_TRUE(Parsed(c.head, head)) << c.name;
    Framing framing;
    EXPECT_EQ(response_framing(head, "GET", framing), c.status) << c.name;
  }
}

// The options' views point into `head_bytes`, which must outlive them.
ConnectionTokens tokens_of(const std::string& head_bytes, bool* ok = nullptr) {
  RequestHead head;
  EXPECT_TRUE(Parsed(head_bytes, head));
  ConnectionTokens tokens;
  const bool parsed = parse_connection(std::span(head.headers.data(), head.header_count), tokens);
  if (ok != nullptr) *ok = parsed;
  return tokens;
}

TEST(HttpFramingTest, ConnectionOptionsAcrossFieldsAndLists) {
  const std::string bytes =
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nX: y\r\n"
      "connection: TE,,  x-a ,\t, \r\nCONNECTION:\r\n\r\n";
  bool ok = false;
  const ConnectionTokens t = tokens_of(bytes, &ok);
  ASSERT_TRUE(ok);
  ASSERT_EQ(t.count, 4u);
  EXPECT_EQ(t.options[0], "keep-alive");
  EXPECT_EQ(t.options[1], "Upgrade");
  EXPECT_EQ(t.options[2], "TE");
  EXPECT_EQ(t.options[3], "x-a");
  EXPECT_TRUE(t.keep_alive);
  EXPECT_TRUE(t.upgrade);
  EXPECT_FALSE(t.close);
  EXPECT_TRUE(t.names("te"));
  EXPECT_TRUE(t.names("X-A"));
  EXPECT_TRUE(t.names("Keep-Alive"));
  EXPECT_FALSE(t.names("X"));
  EXPECT_FALSE(t.names("x-"));
  EXPECT_FALSE(t.names(""));
}

TEST(HttpFramingTest, ConnectionNamingItselfOrRepeatingANameIsHarmless) {
  bool ok = false;
  const std::string self =
      "GET / HTTP/1.1\r\nHost: a\r\nConnection: connection, Connection, CONNECTION\r\n\r\n";
  ConnectionTokens t = tokens_of(self, &ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(t.count, 1u);
  EXPECT_TRUE(t.names("Connection"));

  // A thousand repeats of one name, across fields, are one option: the array cannot overflow.
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int field = 0; field < 10; ++field) {
    many += "Connection: ";
    for (int i = 0; i < 100; ++i) many += i % 2 == 0 ? "x-same, " : "X-SAME,";
    many += "close\r\n";
  }
  many += "\r\n";
  t = tokens_of(many, &ok);
  ASSERT_TRUE(ok);
  EXPECT_EQ(t.count, 2u);
  EXPECT_TRUE(t.close);
  EXPECT_TRUE(t.names("x-same"));
}

TEST(HttpFramingTest, ConnectionOptionsAreCapped) {
  auto with_options = [](int n) {
    std::string bytes = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close";
    for (int i = 1; i < n; ++i) bytes += ", x-" + std::to_string(i);
    return bytes + "\r\n\r\n";
  };
  bool ok = false;
  const std::string most = with_options(kMaxConnectionOptions);
  ConnectionTokens t = tokens_of(most, &ok);
  EXPECT_TRUE(ok);
  EXPECT_EQ(t.count, kMaxConnectionOptions);
  EXPECT_TRUE(t.names("x-15"));
  const std::string one_more = with_options(kMaxConnectionOptions + 1);
  t = tokens_of(one_more, &ok);
  EXPECT_FALSE(ok);
  EXPECT_LE(t.count, kMaxConnectionOptions);

  RequestHead head;
  const std::string too_many = with_options(kMaxConnectionOptions + 1);
  ASSERT_TRUE(Parsed(too_many, head));
  Framing framing;
  EXPECT_EQ(request_framing(head, framing), FramingStatus::kBadConnection);
}

TEST(HttpFramingTest, ConnectionOptionsMustBeTokens) {
  const char* values[] = {"close;x", "\"close\"", "a b", "a/b", "close, keep alive", "(x)"};
  for (const char* value : values) {
    bool ok = true;
    tokens_of("GET / HTTP/1.1\r\nHost: a\r\nConnection: "s + value + "\r\n\r\n", &ok);
    EXPECT_FALSE(ok) << value;
  }
  bool ok = false;
  const std::string none = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  const ConnectionTokens t = tokens_of(none, &ok);
  EXPECT_TRUE(ok);
  EXPECT_EQ(t.count, 0u);
  EXPECT_FALSE(t.close || t.keep_alive || t.upgrade);
}

TEST(HttpFramingTest, BodyFramerLength) {
  Framing framing;
  framing.kind = BodyKind::kLength;
  framing.length = 10;
  BodyFramer body(framing);
  EXPECT_EQ(body.remaining(), 10u);
  BodyProgress p = body.consume(as_bytes("abc"));
  EXPECT_EQ(p.used, 3u);
  EXPECT_EQ(p.status, BodyStatus::kMore);
  EXPECT_EQ(body.remaining(), 7u);
  p = body.consume({});
  EXPECT_EQ(p.used, 0u);
  EXPECT_EQ(p.status, BodyStatus::kMore);
  p = body.consume(as_bytes("defghijGET / HTTP/1.1\r\n"));
  EXPECT_EQ(p.used, 7u);
  EXPECT_EQ(p.status, BodyStatus::kDone);
  EXPECT_EQ(body.remaining(), 0u);
  p = body.consume(as_bytes("more"));
  EXPECT_EQ(p.used, 0u);
  EXPECT_EQ(p.status, BodyStatus::kDone);

  body.reset(framing);
  p = body.consume(as_bytes("0123456789"));
  EXPECT_EQ(p.used, 10u);
  EXPECT_EQ(p.status, BodyStatus::kDone) << "done as the last byte arrives, not one call later";
}

TEST(HttpFramingTest, BodyFramerSkipCountsBytesItDidNotSee) {
  Framing framing;
  framing.kind = BodyKind::kLength;
  framing.length = 10;
  BodyFramer body(framing);
  EXPECT_FALSE(body.skip(0));
  EXPECT_FALSE(body.skip(4));
  EXPECT_EQ(body.remaining(), 6u);
  EXPECT_EQ(body.consume(as_bytes("ab")).status, BodyStatus::kMore);
  EXPECT_TRUE(body.skip(4)) << "the last bytes skipped end the body";
  const BodyProgress after = body.consume(as_bytes("HTTP/1.1"));
  EXPECT_EQ(after.used, 0u);
  EXPECT_EQ(after.status, BodyStatus::kDone);

  framing.kind = BodyKind::kChunked;
  BodyFramer chunked(framing);
  EXPECT_EQ(chunked.consume(as_bytes("a\r\n")).status, BodyStatus::kMore);
  ASSERT_EQ(chunked.remaining(), 10u);
  EXPECT_FALSE(chunked.skip(10)) << "a chunk's data is followed by its CRLF";
  EXPECT_EQ(chunked.remaining(), 0u);
  const BodyProgress end = chunked.consume(as_bytes("\r\n0\r\n\r\n"));
  EXPECT_EQ(end.used, 7u);
  EXPECT_EQ(end.status, BodyStatus::kDone);
  chunked.reset(framing);
  EXPECT_EQ(chunked.consume(as_bytes("3\r\n")).status, BodyStatus::kMore);
  EXPECT_FALSE(chunked.skip(3));
  EXPECT_EQ(chunked.consume(as_bytes("x")).status, BodyStatus::kInvalid)
      << "the bytes after the skipped data are checked as the chunk's end";
}

TEST(HttpFramingTest, BodyFramerOtherKinds) {
  Framing framing;
  BodyFramer none(framing);
  BodyProgress p = none.consume(as_bytes("GET"));
  EXPECT_EQ(p.used, 0u);
  EXPECT_EQ(p.status, BodyStatus::kDone);

  framing.kind = BodyKind::kChunked;
  BodyFramer chunked(framing);
  p = chunked.consume(as_bytes("5\r\nhe"));
  EXPECT_EQ(p.status, BodyStatus::kMore);
  EXPECT_EQ(chunked.remaining(), 3u);
  p = chunked.consume(as_bytes("llo\r\n0\r\n\r\nnext"));
  EXPECT_EQ(p.used, 10u);
  EXPECT_EQ(p.status, BodyStatus::kDone);
  chunked.reset(framing);
  p = chunked.consume(as_bytes("5\r\nhello\n"));
  EXPECT_EQ(p.status, BodyStatus::kInvalid);
  EXPECT_EQ(p.used, 8u);

  for (const BodyKind kind : {BodyKind::kUntilClose, BodyKind::kTunnel}) {
    framing.kind = kind;
    BodyFramer forever(framing);
    p = forever.consume(as_bytes("0\r\n\r\nanything"));
    EXPECT_EQ(p.used, 13u);
    EXPECT_EQ(p.status, BodyStatus::kMore);
    EXPECT_EQ(forever.remaining(), 0u);
  }
}

TEST(HttpFramingTest, FramingDrivesTheBodyOfARealExchange) {
  // A request and its response on one connection each, pipelined: framing from the head, the
  // body by BodyFramer, the next head right where the body ends.
  const std::string first =
      "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;x=1\r\nabc\r\n0\r\nT: v\r\n\r\n";
  const std::string second = "GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string stream = first + second;
  std::string_view rest = stream;
  RequestHead head;
  uint32_t scanned = 0;
  ASSERT_EQ(parse_request_head(rest, scanned, head), HeadStatus::kDone);
  Framing framing;
  ASSERT_EQ(request_framing(head, framing), FramingStatus::kOk);
  ASSERT_EQ(framing.kind, BodyKind::kChunked);
  rest.remove_prefix(head.length);
  BodyFramer body(framing);
  const BodyProgress p = body.consume(as_bytes(rest));
  ASSERT_EQ(p.status, BodyStatus::kDone);
  rest.remove_prefix(p.used);
  EXPECT_EQ(rest, second);
}

TEST(HttpFramingTest, StatusNames) {
  EXPECT_STREQ(to_string(FramingStatus::kOk), "Ok");
  EXPECT_STREQ(to_string(FramingStatus::kContentLengthAndTransferEncoding),
               "ContentLengthAndTransferEncoding");
  EXPECT_STREQ(to_string(FramingStatus::kRepeatedContentLength), "RepeatedContentLength");
  EXPECT_STREQ(to_string(FramingStatus::kBadContentLength), "BadContentLength");
  EXPECT_STREQ(to_string(FramingStatus::kRepeatedTransferEncoding), "RepeatedTransferEncoding");
  EXPECT_STREQ(to_string(FramingStatus::kBadTransferEncoding), "BadTransferEncoding");
  EXPECT_STREQ(to_string(FramingStatus::kTransferEncodingInHttp10), "TransferEncodingInHttp10");
  EXPECT_STREQ(to_string(FramingStatus::kBodyOnConnect), "BodyOnConnect");
  EXPECT_STREQ(to_string(FramingStatus::kBadConnection), "BadConnection");
}

}  // namespace
}  // namespace edgeproxy::http
