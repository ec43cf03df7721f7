// HTTP/1.x request and response heads: valid forms, prefixes and byte-at-a-time feeding, the
// strictness a proxy needs (each refusal on its own), the sniff, host_without_port and iequals.
#include "edgeproxy/http_head.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace edgeproxy::http {
namespace {

using namespace std::string_literals;

}  // namespace

// Names the status in gtest's failure messages (found by argument-dependent lookup).
void PrintTo(HeadStatus s, std::ostream* os) {
  switch (s) {
    case HeadStatus::kNeedMore:
      *os << "kNeedMore";
      return;
    case HeadStatus::kDone:
      *os << "kDone";
      return;
    case HeadStatus::kInvalid:
      *os << "kInvalid";
      return;
  }
  *os << "HeadStatus(" << static_cast<int>(s) << ")";
}

namespace {

HeadStatus parse_head(std::string_view bytes, uint32_t& scanned, RequestHead& out) {
  return parse_request_head(bytes, scanned, out);
}

HeadStatus parse_head(std::string_view bytes, uint32_t& scanned, ResponseHead& out) {
  return parse_response_head(bytes, scanned, out);
}

template <typename Head>
HeadStatus parse_whole(std::string_view bytes, Head& out) {
  uint32_t scanned = 0;
  return parse_head(bytes, scanned, out);
}

// Feeds `bytes` one more byte per call, as a slow peer would, carrying `scanned`. Every call
// before the last must say kNeedMore with `scanned` at the end of what it was given; the last
// status is returned and `*calls` says how many bytes it took.
template <typename Head>
::testing::AssertionResult FeedByteAtATime(std::string_view bytes, Head& out, HeadStatus& status,
                                           size_t* calls = nullptr) {
  uint32_t scanned = 0;
  status = HeadStatus::kNeedMore;
  for (size_t n = 1; n <= bytes.size(); ++n) {
    status = parse_head(bytes.substr(0, n), scanned, out);
    if (calls != nullptr) *calls = n;
    if (status != HeadStatus::kNeedMore) return ::testing::AssertionSuccess();
    if (scanned != n) {
      return ::testing::AssertionFailure()
             << "after " << n << " bytes scanned=" << scanned << ", expected " << n;
    }
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult SameHead(const RequestHead& a, const RequestHead& b) {
  auto same = [](std::string_view x, std::string_view y) { return x == y && x.data() == y.data(); };
  if (!same(a.method, b.method) || !same(a.target, b.target) || !same(a.host, b.host) ||
      a.path != b.path || a.version_minor != b.version_minor || a.length != b.length ||
      a.header_count != b.header_count) {
    return ::testing::AssertionFailure()
           << "method '" << a.method << "'/'" << b.method << "' target '" << a.target << "'/'"
           << b.target << "' host '" << a.host << "'/'" << b.host << "' path '" << a.path << "'/'"
           << b.path << "' length " << a.length << "/" << b.length << " headers " << a.header_count
           << "/" << b.header_count;
  }
  for (uint32_t i = 0; i < a.header_count; ++i) {
    if (!same(a.headers[i].name, b.headers[i].name) ||
        !same(a.headers[i].value, b.headers[i].value)) {
      return ::testing::AssertionFailure()
             << "header " << i << " differs: '" << a.headers[i].name << ": " << a.headers[i].value
             << "' / '" << b.headers[i].name << ": " << b.headers[i].value << "'";
    }
  }
  return ::testing::AssertionSuccess();
}

// A view that lies inside `bytes`, at `offset`.
::testing::AssertionResult PointsInto(std::string_view view, std::string_view bytes,
                                      size_t offset) {
  if (view.data() != bytes.data() + offset) {
    return ::testing::AssertionFailure()
           << "'" << view << "' is at " << static_cast<const void*>(view.data()) << ", expected "
           << static_cast<const void*>(bytes.data() + offset);
  }
  return ::testing::AssertionSuccess();
}

TEST(HttpHeadTest, SimpleGetWithHost) {
  const std::string bytes = "GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
  RequestHead head;
  ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone);
  EXPECT_EQ(head.method, "GET");
  EXPECT_TRUE(PointsInto(head.method, bytes, 0));
  EXPECT_EQ(head.target, "/index.html");
  EXPECT_TRUE(PointsInto(head.target, bytes, 4));
  EXPECT_EQ(head.path, "/index.html");
  EXPECT_EQ(head.version_minor, 1);
  EXPECT_EQ(head.length, bytes.size());
  ASSERT_EQ(head.header_count, 2u);
  EXPECT_EQ(head.headers[0].name, "Host");
  EXPECT_EQ(head.headers[0].value, "example.com");
  EXPECT_EQ(head.headers[1].name, "Accept");
  EXPECT_EQ(head.headers[1].value, "*/*");
  EXPECT_EQ(head.host, "example.com");
  EXPECT_TRUE(PointsInto(head.host, bytes, bytes.find("example.com")));
}

TEST(HttpHeadTest, PostKeepsItsBodyAndFramingHeadersUninterpreted) {
  const std::string head_bytes =
      "POST /submit?x=1 HTTP/1.1\r\nhost: api.example\r\nContent-Length: 5\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  const std::string bytes = head_bytes + "hello" + "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";
  RequestHead head;
  ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone);
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.path, "/submit?x=1");
  EXPECT_EQ(head.length, head_bytes.size()) << "the body and the next request are not the head's";
  EXPECT_EQ(head.host, "api.example") << "the Host name is matched case-insensitively";
  ASSERT_EQ(head.header_count, 3u);
  EXPECT_EQ(head.headers[1].name, "Content-Length");
  EXPECT_EQ(head.headers[1].value, "5");
  EXPECT_EQ(head.headers[2].name, "Transfer-Encoding");
  EXPECT_EQ(head.headers[2].value, "chunked");
}

TEST(HttpHeadTest, FieldValuesLoseSurroundingBlanksOnly) {
  const std::string bytes =
      "GET / HTTP/1.1\r\nHost: \t example.com \t\r\nX-Inner: a  b\tc\r\nX-Empty:\r\n"
      "X-Blank:   \r\nX-Utf8: caf\xc3\xa9\r\n\r\n";
  RequestHead head;
  ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone);
  ASSERT_EQ(head.header_count, 5u);
  EXPECT_EQ(head.host, "example.com");
  EXPECT_EQ(head.headers[1].value, "a  b\tc");
  EXPECT_EQ(head.headers[2].value, "");
  EXPECT_EQ(head.headers[3].value, "");
  EXPECT_EQ(head.headers[4].value, "caf\xc3\xa9") << "obs-text is allowed in a value";
}

TEST(HttpHeadTest, AbsoluteFormWithPortPathAndQuery) {
  const std::string bytes =
      "GET http://Example.com:8080/a/b?c=d&e HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n";
  RequestHead head;
  ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone);
  EXPECT_EQ(head.target, "http://Example.com:8080/a/b?c=d&e");
  EXPECT_EQ(head.path, "/a/b?c=d&e");
  EXPECT_TRUE(PointsInto(head.path, bytes, bytes.find("/a/b")));
  EXPECT_EQ(head.host, "Example.com:8080");
  EXPECT_EQ(host_without_port(head.host), "Example.com");
}

TEST(HttpHeadTest, AbsoluteFormVariants) {
  struct Case {
    const char* target;
    const char* path;
  };
  const Case cases[] = {
      {"http://example.com", "/"},         {"http://example.com/", "/"},
      {"HTTPS://example.com:443/x", "/x"}, {"http://[::1]:8080/v6?q", "/v6?q"},
      {"http://10.0.0.1/a//b", "/a//b"},   {"https://h/?", "/?"},
  };
  for (const Case& c : cases) {
    const std::string bytes = "GET "s + c.target + " HTTP/1.1\r\nHost: h\r\n\r\n";
    RequestHead head;
    ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone) << c.target;
    EXPECT_EQ(head.target, c.target);
    EXPECT_EQ(head.path, c.path) << c.target;
  }
}

TEST(HttpHeadTest, ConnectAuthorityForm) {
  const std::string bytes =
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
      "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n";
  RequestHead head;
  ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone);
  EXPECT_EQ(head.method, "CONNECT");
  EXPECT_EQ(head.target, "example.com:443");
  EXPECT_EQ(head.path, "") << "authority-form has no path";
  EXPECT_EQ(host_without_port(head.target), "example.com");

  const std::string v6 = "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n";
  ASSERT_EQ(parse_whole(v6, head), HeadStatus::kDone);
  EXPECT_EQ(head.target, "[2001:db8::1]:8443");
  EXPECT_EQ(host_without_port(head.target), "2001:db8::1");
}

TEST(HttpHeadTest, OptionsAsterisk) {
  const std::string bytes = "OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n";
  RequestHead head;
  ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone);
  EXPECT_EQ(head.method, "OPTIONS");
  EXPECT_EQ(head.target, "*");
  EXPECT_EQ(head.path, "");
}

TEST(HttpHeadTest, Http10WithoutHost) {
  const std::string bytes = "GET /old HTTP/1.0\r\nUser-Agent: x\r\n\r\n";
  RequestHead head;
  ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone);
  EXPECT_EQ(head.version_minor, 0);
  EXPECT_EQ(head.host, "");
  EXPECT_EQ(head.header_count, 1u);

  const std::string bare = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_EQ(parse_whole(bare, head), HeadStatus::kDone);
  EXPECT_EQ(head.header_count, 0u);
  EXPECT_EQ(head.length, bare.size());
}

TEST(HttpHeadTest, Http11NeedsHostButMayHaveAnEmptyOne) {
  RequestHead head;
  EXPECT_EQ(parse_whole("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", head), HeadStatus::kInvalid);
  ASSERT_EQ(parse_whole("OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n", head), HeadStatus::kDone);
  EXPECT_EQ(head.host, "");
}

TEST(HttpHeadTest, HostWithPortIpv6AndUpperCase) {
  struct Case {
    const char* value;
    const char* host;
  };
  const Case cases[] = {
      {"example.com:8080", "example.com"},
      {"[::1]:80", "::1"},
      {"[::1]", "::1"},
      {"EXAMPLE.Com", "EXAMPLE.Com"},
      {"127.0.0.1:3000", "127.0.0.1"},
  };
  for (const Case& c : cases) {
    const std::string bytes = "GET / HTTP/1.1\r\nHost: "s + c.value + "\r\n\r\n";
    RequestHead head;
    ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone) << c.value;
    EXPECT_EQ(head.host, c.value);
    EXPECT_EQ(host_without_port(head.host), c.host);
  }
  RequestHead head;
  ASSERT_EQ(parse_whole("GET / HTTP/1.1\r\nHost: EXAMPLE.Com\r\n\r\n", head), HeadStatus::kDone);
  EXPECT_TRUE(iequals(host_without_port(head.host), "example.com"));
}

TEST(HttpHeadTest, EveryPrefixNeedsMoreAndScannedIsCarried) {
  const std::string head_bytes =
      "POST /upload HTTP/1.1\r\nHost: [::1]:8080\r\nContent-Length: 4\r\nX-A: 1\r\n\r\n";
  const std::string bytes = head_bytes + "body" + "GET / HTTP/1.1\r\n";
  RequestHead whole;
  ASSERT_EQ(parse_whole(bytes, whole), HeadStatus::kDone);
  ASSERT_EQ(whole.length, head_bytes.size());

  // Fresh `scanned` each time: every proper prefix is a valid prefix.
  for (size_t n = 0; n < head_bytes.size(); ++n) {
    RequestHead head;
    EXPECT_EQ(parse_whole(bytes.substr(0, n), head), HeadStatus::kNeedMore) << n << " bytes";
  }
  // Carried `scanned`: the end is found exactly when its last byte arrives, and not before.
  RequestHead head;
  HeadStatus status;
  size_t calls = 0;
  ASSERT_TRUE(FeedByteAtATime(bytes, head, status, &calls));
  EXPECT_EQ(status, HeadStatus::kDone);
  EXPECT_EQ(calls, head_bytes.size());
  EXPECT_EQ(head.length, head_bytes.size());
  EXPECT_TRUE(SameHead(head, whole));
}

TEST(HttpHeadTest, AGrowingBufferWithTheBodyArrivedTooGivesTheSameLength) {
  const std::string head_bytes = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string bytes = head_bytes + "GET /b HTTP/1.1\r\nHost: b\r\n\r\n";
  uint32_t scanned = 0;
  RequestHead head;
  ASSERT_EQ(parse_request_head(std::string_view(bytes).substr(0, 20), scanned, head),
            HeadStatus::kNeedMore);
  EXPECT_EQ(scanned, 20u);
  ASSERT_EQ(parse_request_head(bytes, scanned, head), HeadStatus::kDone);
  EXPECT_EQ(head.length, head_bytes.size());
  EXPECT_EQ(head.target, "/a") << "the pipelined request is not read";
  EXPECT_EQ(head.host, "a");
}

TEST(HttpHeadTest, ByteAtATimeMatchesWholeAndRandomChunks) {
  std::string many = "GET /many HTTP/1.1\r\nHost: m\r\n";
  for (int i = 0; i < 30; ++i) many += "X-Field-" + std::to_string(i) + ": value " + "\r\n";
  many += "\r\n";
  const std::string heads[] = {
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://h:1/p?q HTTP/1.1\r\nHost: h:1\r\nX: \t y \t\r\n\r\n",
      "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
      "OPTIONS * HTTP/1.0\r\n\r\n",
      many,
  };
  std::mt19937 random(12345);
  for (const std::string& bytes : heads) {
    RequestHead whole;
    ASSERT_EQ(parse_whole(bytes, whole), HeadStatus::kDone) << bytes;
    RequestHead slow;
    HeadStatus status;
    ASSERT_TRUE(FeedByteAtATime(bytes, slow, status)) << bytes;
    ASSERT_EQ(status, HeadStatus::kDone) << bytes;
    EXPECT_TRUE(SameHead(slow, whole)) << bytes;

    for (int round = 0; round < 20; ++round) {
      RequestHead chunked;
      uint32_t scanned = 0;
      size_t n = 0;
      HeadStatus s = HeadStatus::kNeedMore;
      while (s == HeadStatus::kNeedMore && n < bytes.size()) {
        n = std::min(bytes.size(), n + 1 + random() % 9);
        s = parse_request_head(std::string_view(bytes).substr(0, n), scanned, chunked);
      }
      ASSERT_EQ(s, HeadStatus::kDone) << bytes;
      EXPECT_TRUE(SameHead(chunked, whole)) << bytes;
    }
  }
}

TEST(HttpHeadTest, DoneAndInvalidAreFinalAndRepeatable) {
  const std::string bytes = "GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
  uint32_t scanned = 0;
  RequestHead first;
  ASSERT_EQ(parse_request_head(bytes, scanned, first), HeadStatus::kDone);
  RequestHead again;
  ASSERT_EQ(parse_request_head(bytes, scanned, again), HeadStatus::kDone);
  EXPECT_TRUE(SameHead(again, first));

  const std::string bad = "GET / HTTP/1.1\r\nHost : a\r\n";
  scanned = 0;
  ASSERT_EQ(parse_request_head(bad, scanned, first), HeadStatus::kInvalid);
  EXPECT_EQ(parse_request_head(bad, scanned, first), HeadStatus::kInvalid);
  EXPECT_EQ(parse_request_head(bad + "\r\n", scanned, first), HeadStatus::kInvalid);
}

TEST(HttpHeadTest, AScannedPastTheBytesStartsOver) {
  const std::string bytes = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  uint32_t scanned = 1000;
  RequestHead head;
  ASSERT_EQ(parse_request_head(bytes, scanned, head), HeadStatus::kDone);
  EXPECT_EQ(head.length, bytes.size());
}

TEST(HttpHeadTest, SixtyFourHeadersFitSixtyFiveDoNot) {
  auto with_fields = [](int count) {
    std::string bytes = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 1; i < count; ++i) bytes += "X-" + std::to_string(i) + ": v\r\n";
    return bytes + "\r\n";
  };
  const std::string fits = with_fields(64);  // outlives the views into it
  RequestHead head;
  ASSERT_EQ(parse_whole(fits, head), HeadStatus::kDone);
  EXPECT_EQ(head.header_count, kMaxHeaders);
  EXPECT_EQ(head.headers[63].name, "X-63");
  EXPECT_EQ(parse_whole(with_fields(65), head), HeadStatus::kInvalid);
  HeadStatus status;
  ASSERT_TRUE(FeedByteAtATime(with_fields(65), head, status));
  EXPECT_EQ(status, HeadStatus::kInvalid);
}

// A head of `size` bytes whose padding is one long field value.
std::string head_of_size(size_t size) {
  const std::string start = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
  const std::string end = "\r\n\r\n";
  return start + std::string(size - start.size() - end.size(), 'p') + end;
}

TEST(HttpHeadTest, HeadSizeLimit) {
  RequestHead head;
  const std::string largest = head_of_size(kMaxHeadBytes);
  ASSERT_EQ(parse_whole(largest, head), HeadStatus::kDone);
  EXPECT_EQ(head.length, kMaxHeadBytes);
  EXPECT_EQ(parse_whole(head_of_size(kMaxHeadBytes + 1), head), HeadStatus::kInvalid);

  // Without an end: kNeedMore up to the limit, kInvalid once the limit is reached.
  const std::string endless = largest.substr(0, kMaxHeadBytes - 4) + std::string(100, 'p');
  uint32_t scanned = 0;
  EXPECT_EQ(
      parse_request_head(std::string_view(endless).substr(0, kMaxHeadBytes - 1), scanned, head),
      HeadStatus::kNeedMore);
  EXPECT_EQ(parse_request_head(std::string_view(endless).substr(0, kMaxHeadBytes), scanned, head),
            HeadStatus::kInvalid);
  EXPECT_EQ(parse_whole(endless, head), HeadStatus::kInvalid);
}

// The O(n) promise is structural: each call checks only the bytes after `scanned`, and
// EveryPrefixNeedsMoreAndScannedIsCarried pins `scanned` to the bytes given after every call.
// Its cost is measured by a benchmark, never timed in a test.
TEST(HttpHeadTest, ByteAtATimeReachesTheLargestHead) {
  const std::string bytes = head_of_size(kMaxHeadBytes);
  RequestHead head;
  HeadStatus status;
  ASSERT_TRUE(FeedByteAtATime(bytes, head, status));
  EXPECT_EQ(status, HeadStatus::kDone);
  EXPECT_EQ(head.length, kMaxHeadBytes);
}

struct InvalidCase {
  const char* name;
  std::string bytes;
};

std::vector<InvalidCase> invalid_cases() {
  const std::string host = "Host: a\r\n";
  const std::string get = "GET / HTTP/1.1\r\n";
  return {
      {"space before colon", get + "Host : a\r\n\r\n"},
      {"tab before colon", get + host + "X-A\t: b\r\n\r\n"},
      {"obs-fold with SP", get + host + "X-A: b\r\n c\r\n\r\n"},
      {"obs-fold with HT", get + host + "X-A: b\r\n\tc\r\n\r\n"},
      {"blank before the first field", get + " Host: a\r\n\r\n"},
      {"two Host fields", get + host + host + "\r\n"},
      {"two Host fields, other case and value", get + host + "hOST: b\r\n\r\n"},
      {"NUL in value", get + host + "X-A: a\0b\r\n\r\n"s},
      {"DEL in value", get + host + "X-A: a\x7f\r\n\r\n"},
      {"ESC in value", get + host + "X-A: \x1b[0m\r\n\r\n"},
      {"bare CR in value", get + host + "X-A: a\rb\r\n\r\n"},
      {"CR CR LF", get + host + "X-A: a\r\r\n\r\n"},
      {"bare CR in request line", "GET /\r HTTP/1.1\r\n" + host + "\r\n"},
      {"bare CR before the end", get + host + "\r\r\n"},
      {"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n"},
      {"bare LF after the request line", "GET / HTTP/1.1\n" + host + "\r\n"},
      {"bare LF ends the head", get + host + "\n"},
      {"version HTTP/2.0", "GET / HTTP/2.0\r\n" + host + "\r\n"},
      {"version HTTP/1.2", "GET / HTTP/1.2\r\n" + host + "\r\n"},
      {"version HTTP/0.9", "GET / HTTP/0.9\r\n" + host + "\r\n"},
      {"version HTTP/1.10", "GET / HTTP/1.10\r\n" + host + "\r\n"},
      {"version HTTP/1", "GET / HTTP/1\r\n" + host + "\r\n"},
      {"lowercase version", "GET / http/1.1\r\n" + host + "\r\n"},
      {"no version", "GET /\r\n" + host + "\r\n"},
      {"space after version", "GET / HTTP/1.1 \r\n" + host + "\r\n"},
      {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
      {"empty method", " / HTTP/1.1\r\n" + host + "\r\n"},
      {"non-token in method", "GE(T / HTTP/1.1\r\n" + host + "\r\n"},
      {"double space after method", "GET  / HTTP/1.1\r\n" + host + "\r\n"},
      {"double space before version", "GET /  HTTP/1.1\r\n" + host + "\r\n"},
      {"HT between method and target", "GET\t/ HTTP/1.1\r\n" + host + "\r\n"},
      {"control char in target", "GET /a\x01z HTTP/1.1\r\n" + host + "\r\n"},
      {"HT in target", "GET /a\tz HTTP/1.1\r\n" + host + "\r\n"},
      {"DEL in target", "GET /a\x7fz HTTP/1.1\r\n" + host + "\r\n"},
      {"fragment in target", "GET /a#b HTTP/1.1\r\n" + host + "\r\n"},
      {"non-ASCII in target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" + host + "\r\n"},
      {"empty line before the request line", "\r\n" + get + host + "\r\n"},
      {"only an empty line", "\r\n"},
      {"empty field name", get + host + ": b\r\n\r\n"},
      {"non-token in field name", get + host + "X(A): b\r\n\r\n"},
      {"non-ASCII in field name", get + host + "X-\xc3\xa9: b\r\n\r\n"},
      {"no colon", get + host + "X-A b\r\n\r\n"},
      {"HTTP/1.1 without Host", get + "\r\n"},
      {"Host with a space", get + "Host: a b\r\n\r\n"},
      {"Host with userinfo", get + "Host: user@a\r\n\r\n"},
      {"Host with a bad port", get + "Host: a:http\r\n\r\n"},
      {"Host with an open bracket", get + "Host: [::1\r\n\r\n"},
      {"CONNECT without port", "CONNECT example.com HTTP/1.1\r\n" + host + "\r\n"},
      {"CONNECT with origin-form", "CONNECT / HTTP/1.1\r\n" + host + "\r\n"},
      {"CONNECT with absolute-form", "CONNECT http://a:80/ HTTP/1.1\r\n" + host + "\r\n"},
      {"authority-form without CONNECT", "GET example.com:80 HTTP/1.1\r\n" + host + "\r\n"},
      {"asterisk without OPTIONS", "GET * HTTP/1.1\r\n" + host + "\r\n"},
      {"scheme other than http(s)", "GET ftp://a/x HTTP/1.1\r\n" + host + "\r\n"},
      {"absolute-form with userinfo", "GET http://u:p@a/x HTTP/1.1\r\n" + host + "\r\n"},
      {"absolute-form without host", "GET http:///x HTTP/1.1\r\n" + host + "\r\n"},
      {"absolute-form with a bad port", "GET http://a:99999/ HTTP/1.1\r\n" + host + "\r\n"},
      {"absolute-form query without path", "GET http://a?q HTTP/1.1\r\n" + host + "\r\n"},
      {"relative target", "GET a/b HTTP/1.1\r\n" + host + "\r\n"},
      {"TLS ClientHello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"s},
  };
}

TEST(HttpHeadTest, InvalidHeadsWholeAndByteAtATime) {
  for (const InvalidCase& c : invalid_cases()) {
    RequestHead head;
    EXPECT_EQ(parse_whole(c.bytes, head), HeadStatus::kInvalid) << c.name;
    HeadStatus status;
    ASSERT_TRUE(FeedByteAtATime(c.bytes, head, status)) << c.name;
    EXPECT_EQ(status, HeadStatus::kInvalid) << c.name;
  }
}

TEST(HttpHeadTest, EachInvalidCaseIsOneEditFromValid) {
  // The valid heads the invalid cases are edited from, so a refusal above is for its defect.
  const char* valid[] = {
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
      "CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://a:80/x HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /a%23b HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  for (const char* bytes : valid) {
    RequestHead head;
    EXPECT_EQ(parse_whole(bytes, head), HeadStatus::kDone) << bytes;
  }
}

TEST(HttpHeadTest, ABadLineIsRefusedBeforeTheHeadEnds) {
  struct Case {
    const char* name;
    std::string bytes;  // no blank line yet
    size_t invalid_at;  // bytes needed to tell
  };
  const Case cases[] = {
      {"TLS record", "\x16\x03\x01\x02\x00"s, 1},
      {"non-token in method", "GE(T / HTTP/1.1\r\n", 3},
      {"empty method", " / HTTP/1.1\r\n", 1},
      {"empty line first", "\r\nGET", 1},
      {"NUL in target", "GET /\0 HTTP/1.1\r\n"s, 6},
      {"version HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n", 16},
      {"double space", "GET  / HTTP/1.1\r\nHost: a\r\n", 17},
      {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\nX: y\r\n", 26},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\n b\r\nX: y\r\n", 29},
      {"bare CR", "GET / HTTP/1.1\r\nHost: a\rb", 25},
  };
  for (const Case& c : cases) {
    RequestHead head;
    HeadStatus status;
    size_t calls = 0;
    ASSERT_TRUE(FeedByteAtATime(c.bytes, head, status, &calls)) << c.name;
    EXPECT_EQ(status, HeadStatus::kInvalid) << c.name;
    EXPECT_EQ(calls, c.invalid_at) << c.name;
  }
}

::testing::AssertionResult SameResponse(const ResponseHead& a, const ResponseHead& b) {
  auto same = [](std::string_view x, std::string_view y) { return x == y && x.data() == y.data(); };
  if (a.version_minor != b.version_minor || a.status != b.status || !same(a.reason, b.reason) ||
      a.length != b.length || a.header_count != b.header_count) {
    return ::testing::AssertionFailure()
           << "status " << a.status << "/" << b.status << " reason '" << a.reason << "'/'"
           << b.reason << "' length " << a.length << "/" << b.length << " headers "
           << a.header_count << "/" << b.header_count;
  }
  for (uint32_t i = 0; i < a.header_count; ++i) {
    if (!same(a.headers[i].name, b.headers[i].name) ||
        !same(a.headers[i].value, b.headers[i].value)) {
      return ::testing::AssertionFailure() << "header " << i << " differs";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(HttpHeadTest, ResponseWithReasonAndFields) {
  const std::string head_bytes =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-E:\r\n\r\n";
  const std::string bytes = head_bytes + "hello" + "HTTP/1.1 204 No Content\r\n\r\n";
  ResponseHead head;
  ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone);
  EXPECT_EQ(head.version_minor, 1);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.reason, "OK");
  EXPECT_TRUE(PointsInto(head.reason, bytes, 13));
  EXPECT_EQ(head.length, head_bytes.size()) << "the body and the next response are not the head's";
  ASSERT_EQ(head.header_count, 3u);
  EXPECT_EQ(head.headers[0].name, "Content-Type");
  EXPECT_EQ(head.headers[0].value, "text/plain");
  EXPECT_TRUE(PointsInto(head.headers[1].name, bytes, bytes.find("Content-Length")));
  EXPECT_EQ(head.headers[1].value, "5");
  EXPECT_EQ(head.headers[2].value, "");
}

TEST(HttpHeadTest, ResponseStatusLineForms) {
  struct Case {
    std::string line;
    uint8_t version_minor;
    uint16_t status;
    std::string reason;
  };
  const Case cases[] = {
      {"HTTP/1.0 404 Not Found", 0, 404, "Not Found"},
      {"HTTP/1.1 204 ", 1, 204, ""},
      {"HTTP/1.1 100 Continue", 1, 100, "Continue"},
      {"HTTP/1.1 599 x", 1, 599, "x"},
      {"HTTP/1.1 302 Found  \t it", 1, 302, "Found  \t it"},
      {"HTTP/1.1 200 caf\xc3\xa9", 1, 200, "caf\xc3\xa9"},
      {"HTTP/1.1 200 OK: \"yes\" #1", 1, 200, "OK: \"yes\" #1"},
      {"HTTP/1.1 200  ", 1, 200, " "},
  };
  for (const Case& c : cases) {
    const std::string bytes = c.line + "\r\nServer: s\r\n\r\n";
    ResponseHead head;
    ASSERT_EQ(parse_whole(bytes, head), HeadStatus::kDone) << c.line;
    EXPECT_EQ(head.version_minor, c.version_minor) << c.line;
    EXPECT_EQ(head.status, c.status) << c.line;
    EXPECT_EQ(head.reason, c.reason) << c.line;
    EXPECT_EQ(head.header_count, 1u);
  }
  ResponseHead head;
  ASSERT_EQ(parse_whole("HTTP/1.1 200 OK\r\n\r\n", head), HeadStatus::kDone);
  EXPECT_EQ(head.header_count, 0u) << "a response needs no fields";
}

TEST(HttpHeadTest, InterimResponseThenFinalOnTheSameBytes) {
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string hints = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n";
  const std::string final_head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  const std::string bytes = interim + hints + final_head;
  std::string_view rest = bytes;
  const uint16_t expected[] = {100, 103, 200};
  for (const uint16_t status : expected) {
    ResponseHead head;
    ASSERT_EQ(parse_whole(rest, head), HeadStatus::kDone);
    EXPECT_EQ(head.status, status);
    rest.remove_prefix(head.length);
  }
  EXPECT_TRUE(rest.empty());
}

TEST(HttpHeadTest, ResponseEveryPrefixAndByteAtATime) {
  std::string many = "HTTP/1.1 200 OK\r\n";
  for (int i = 0; i < 40; ++i) many += "X-Field-" + std::to_string(i) + ": v \r\n";
  many += "\r\n";
  const std::string heads[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
      "HTTP/1.0 302 Found\r\nLocation: http://a/\r\nX: \t y \t\r\n\r\n",
      "HTTP/1.1 204 \r\n\r\n",
      many,
  };
  std::mt19937 random(54321);
  for (const std::string& head_bytes : heads) {
    const std::string bytes = head_bytes + "body";
    ResponseHead whole;
    ASSERT_EQ(parse_whole(bytes, whole), HeadStatus::kDone) << head_bytes;
    ASSERT_EQ(whole.length, head_bytes.size());
    for (size_t n = 0; n < head_bytes.size(); ++n) {
      ResponseHead head;
      EXPECT_EQ(parse_whole(bytes.substr(0, n), head), HeadStatus::kNeedMore) << n << " bytes";
    }
    ResponseHead slow;
    HeadStatus status;
    size_t calls = 0;
    ASSERT_TRUE(FeedByteAtATime(bytes, slow, status, &calls)) << head_bytes;
    ASSERT_EQ(status, HeadStatus::kDone);
    EXPECT_EQ(calls, head_bytes.size());
    EXPECT_TRUE(SameResponse(slow, whole));

    for (int round = 0; round < 20; ++round) {
      ResponseHead chunked;
      uint32_t scanned = 0;
      size_t n = 0;
      HeadStatus s = HeadStatus::kNeedMore;
      while (s == HeadStatus::kNeedMore && n < bytes.size()) {
        n = std::min(bytes.size(), n + 1 + random() % 9);
        s = parse_response_head(std::string_view(bytes).substr(0, n), scanned, chunked);
      }
      ASSERT_EQ(s, HeadStatus::kDone);
      EXPECT_TRUE(SameResponse(chunked, whole));
    }
  }
}

TEST(HttpHeadTest, ResponseDoneAndInvalidAreFinalAndRepeatable) {
  const std::string bytes = "HTTP/1.1 200 OK\r\nA: b\r\n\r\nrest";
  uint32_t scanned = 0;
  ResponseHead first;
  ASSERT_EQ(parse_response_head(bytes, scanned, first), HeadStatus::kDone);
  ResponseHead again;
  ASSERT_EQ(parse_response_head(bytes, scanned, again), HeadStatus::kDone);
  EXPECT_TRUE(SameResponse(again, first));

  const std::string bad = "HTTP/1.1 200 OK\r\nA : b\r\n";
  scanned = 0;
  ASSERT_EQ(parse_response_head(bad, scanned, first), HeadStatus::kInvalid);
  EXPECT_EQ(parse_response_head(bad, scanned, first), HeadStatus::kInvalid);
  EXPECT_EQ(parse_response_head(bad + "\r\n", scanned, first), HeadStatus::kInvalid);
}

TEST(HttpHeadTest, ResponseLimits) {
  auto with_fields = [](int count) {
    std::string bytes = "HTTP/1.1 200 OK\r\n";
    for (int i = 0; i < count; ++i) bytes += "X-" + std::to_string(i) + ": v\r\n";
    return bytes + "\r\n";
  };
  const std::string fits = with_fields(64);
  ResponseHead head;
  ASSERT_EQ(parse_whole(fits, head), HeadStatus::kDone);
  EXPECT_EQ(head.header_count, kMaxHeaders);
  EXPECT_EQ(parse_whole(with_fields(65), head), HeadStatus::kInvalid);

  const std::string start = "HTTP/1.1 200 OK\r\nX-Pad: ";
  const std::string largest =
      start + std::string(kMaxHeadBytes - start.size() - 4, 'p') + "\r\n\r\n";
  ASSERT_EQ(largest.size(), kMaxHeadBytes);
  ASSERT_EQ(parse_whole(largest, head), HeadStatus::kDone);
  EXPECT_EQ(head.length, kMaxHeadBytes);
  const std::string endless = start + std::string(kMaxHeadBytes, 'p');
  uint32_t scanned = 0;
  EXPECT_EQ(
      parse_response_head(std::string_view(endless).substr(0, kMaxHeadBytes - 1), scanned, head),
      HeadStatus::kNeedMore);
  EXPECT_EQ(parse_response_head(endless, scanned, head), HeadStatus::kInvalid);
}

TEST(HttpHeadTest, InvalidResponsesWholeAndByteAtATime) {
  const std::string fields = "Server: s\r\n\r\n";
  const InvalidCase cases[] = {
      {"no SP after the status", "HTTP/1.1 200\r\n" + fields},
      {"HT after the status", "HTTP/1.1 200\tOK\r\n" + fields},
      {"two-digit status", "HTTP/1.1 20 OK\r\n" + fields},
      {"four-digit status", "HTTP/1.1 2000 OK\r\n" + fields},
      {"status below 100", "HTTP/1.1 099 Odd\r\n" + fields},
      {"status 000", "HTTP/1.1 000 Odd\r\n" + fields},
      {"status above 599", "HTTP/1.1 600 Odd\r\n" + fields},
      {"status 999", "HTTP/1.1 999 Odd\r\n" + fields},
      {"non-digit status", "HTTP/1.1 2x0 OK\r\n" + fields},
      {"signed status", "HTTP/1.1 +20 OK\r\n" + fields},
      {"two spaces after the version", "HTTP/1.1  200 OK\r\n" + fields},
      {"no status", "HTTP/1.1\r\n" + fields},
      {"version HTTP/1.2", "HTTP/1.2 200 OK\r\n" + fields},
      {"version HTTP/2", "HTTP/2 200 OK\r\n" + fields},
      {"version HTTP/2.0", "HTTP/2.0 200 OK\r\n" + fields},
      {"version HTTP/1.10", "HTTP/1.10 200 OK\r\n" + fields},
      {"lowercase version", "http/1.1 200 OK\r\n" + fields},
      {"blank before the version", " HTTP/1.1 200 OK\r\n" + fields},
      {"empty line first", "\r\nHTTP/1.1 200 OK\r\n" + fields},
      {"a request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
      {"ESC in reason", "HTTP/1.1 200 O\x1bK\r\n" + fields},
      {"DEL in reason", "HTTP/1.1 200 O\x7fK\r\n" + fields},
      {"NUL in reason", "HTTP/1.1 200 O\0K\r\n"s + fields},
      {"bare CR in reason", "HTTP/1.1 200 O\rK\r\n" + fields},
      {"bare LF line ends", "HTTP/1.1 200 OK\nServer: s\n\n"},
      {"bare LF ends the head", "HTTP/1.1 200 OK\r\nServer: s\r\n\n"},
      {"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"},
      {"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"},
      {"blank before the first field", "HTTP/1.1 200 OK\r\n X: a\r\n\r\n"},
      {"no colon", "HTTP/1.1 200 OK\r\nX a\r\n\r\n"},
      {"empty field name", "HTTP/1.1 200 OK\r\n: a\r\n\r\n"},
      {"control char in value", "HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n"},
      {"HTTP/0.9 body", "<html>hello</html>"},
  };
  for (const InvalidCase& c : cases) {
    ResponseHead head;
    EXPECT_EQ(parse_whole(c.bytes, head), HeadStatus::kInvalid) << c.name;
    HeadStatus status;
    ASSERT_TRUE(FeedByteAtATime(c.bytes, head, status)) << c.name;
    EXPECT_EQ(status, HeadStatus::kInvalid) << c.name;
  }
}

TEST(HttpHeadTest, ABadResponseLineIsRefusedBeforeTheHeadEnds) {
  struct Case {
    const char* name;
    std::string bytes;  // no blank line yet
    size_t invalid_at;  // bytes needed to tell
  };
  const Case cases[] = {
      {"HTML", "<html>", 1},
      {"TLS alert", "\x15\x03\x03\x00\x02"s, 1},
      {"lowercase", "http/1.1", 1},
      {"HTTP/2", "HTTP/2 200 OK\r\n", 6},
      {"HTTP/1.1 without a reason's SP", "HTTP/1.1 200\r\nServer: s\r\n", 14},
      {"status 600", "HTTP/1.1 600 X\r\nServer: s\r\n", 16},
      {"space before colon", "HTTP/1.1 200 OK\r\nA : b\r\nC: d\r\n", 24},
  };
  for (const Case& c : cases) {
    ResponseHead head;
    HeadStatus status;
    size_t calls = 0;
    ASSERT_TRUE(FeedByteAtATime(c.bytes, head, status, &calls)) << c.name;
    EXPECT_EQ(status, HeadStatus::kInvalid) << c.name;
    EXPECT_EQ(calls, c.invalid_at) << c.name;
  }
}

TEST(HttpHeadTest, CharacterClasses) {
  for (const char c : std::string_view("!#$%&'*+-.^_`|~09azAZ")) EXPECT_TRUE(is_token_char(c)) << c;
  for (const char c : std::string_view("\"(),/:;<=>?@[\\]{} \t\r\n\x7f\x80\xff")) {
    EXPECT_FALSE(is_token_char(c)) << static_cast<int>(c);
  }
  EXPECT_TRUE(is_token("chunked"));
  EXPECT_FALSE(is_token(""));
  EXPECT_FALSE(is_token("a b"));
  EXPECT_TRUE(is_field_value_char(' '));
  EXPECT_TRUE(is_field_value_char('\t'));
  EXPECT_TRUE(is_field_value_char('"'));
  EXPECT_TRUE(is_field_value_char('\x80'));
  EXPECT_FALSE(is_field_value_char('\r'));
  EXPECT_FALSE(is_field_value_char('\n'));
  EXPECT_FALSE(is_field_value_char('\0'));
  EXPECT_FALSE(is_field_value_char('\x7f'));
}

TEST(HttpHeadTest, SniffHttp) {
  struct Case {
    std::string bytes;
    HeadStatus status;
  };
  const Case cases[] = {
      {"", HeadStatus::kNeedMore},
      {"G", HeadStatus::kNeedMore},
      {"GET", HeadStatus::kNeedMore},
      {"GET ", HeadStatus::kDone},
      {"GET / HTTP/1.1\r\n", HeadStatus::kDone},
      {"POST ", HeadStatus::kDone},
      {"CONNECT h:443 HTTP/1.1", HeadStatus::kDone},
      {"A ", HeadStatus::kDone},
      {"PRI * HTTP/2.0\r\n", HeadStatus::kDone},
      {"ABCDEFGHIJKLMNOP ", HeadStatus::kDone},
      {"ABCDEFGHIJKLMNOP", HeadStatus::kNeedMore},
      {"ABCDEFGHIJKLMNOPQ", HeadStatus::kInvalid},
      {"ABCDEFGHIJKLMNOPQ ", HeadStatus::kInvalid},
      {" GET", HeadStatus::kInvalid},
      {" ", HeadStatus::kInvalid},
      {"get ", HeadStatus::kInvalid},
      {"GET\t", HeadStatus::kInvalid},
      {"GET\r\n", HeadStatus::kInvalid},
      {"M-SEARCH ", HeadStatus::kInvalid},
      {"G3T ", HeadStatus::kInvalid},
      {"\r\nGET ", HeadStatus::kInvalid},
      {"\x16\x03\x01", HeadStatus::kInvalid},
      {"\0GET "s, HeadStatus::kInvalid},
      {"SSH-2.0-OpenSSH", HeadStatus::kInvalid},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(sniff_http(c.bytes), c.status) << "'" << c.bytes << "'";
  }
}

TEST(HttpHeadTest, HostWithoutPort) {
  struct Case {
    std::string authority;
    const char* host;
    size_t offset;  // where the host starts in the authority
  };
  const Case cases[] = {
      {"Example.COM:8080", "Example.COM", 0},
      {"example.com", "example.com", 0},
      {"example.com.", "example.com.", 0},
      {"a_b-c~d.example:1", "a_b-c~d.example", 0},
      {"127.0.0.1:80", "127.0.0.1", 0},
      {"h:0", "h", 0},
      {"h:65535", "h", 0},
      {"h:00080", "h", 0},
      {"[::1]:80", "::1", 1},
      {"[::1]", "::1", 1},
      {"[2001:db8::a:1]:443", "2001:db8::a:1", 1},
      {"[::ffff:192.0.2.1]", "::ffff:192.0.2.1", 1},
      {"", "", 0},
      {":80", "", 0},
      {"h:", "", 0},
      {"h:65536", "", 0},
      {"h:123456", "", 0},
      {"h:8x", "", 0},
      {"h:-1", "", 0},
      {"h:80:90", "", 0},
      {"h h", "", 0},
      {"user@h", "", 0},
      {"h%2e", "", 0},
      {"h/x", "", 0},
      {"::1", "", 0},
      {"[::1", "", 0},
      {"[::1]x", "", 0},
      {"[::1]:", "", 0},
      {"[]", "", 0},
      {"[]:80", "", 0},
      {"[not-v6]:80", "", 0},
      {"[1.2.3.4]", "", 0},
      {"[::1%25eth0]", "", 0},
      {"[" + std::string(60, '1') + "]", "", 0},
  };
  for (const Case& c : cases) {
    const std::string_view host = host_without_port(c.authority);
    EXPECT_EQ(host, c.host) << "'" << c.authority << "'";
    if (!host.empty()) {
      EXPECT_TRUE(PointsInto(host, c.authority, c.offset)) << c.authority;
    }
  }
}

TEST(HttpHeadTest, Iequals) {
  EXPECT_TRUE(iequals("", ""));
  EXPECT_TRUE(iequals("Host", "host"));
  EXPECT_TRUE(iequals("CONTENT-LENGTH", "content-length"));
  EXPECT_TRUE(iequals("Example.COM", "eXAMPLE.com"));
  EXPECT_FALSE(iequals("Host", "Hos"));
  EXPECT_FALSE(iequals("Host", "Hostx"));
  EXPECT_FALSE(iequals("Host", "Hist"));
  // Only letters fold: these pairs differ by 0x20 too.
  EXPECT_FALSE(iequals("[", "{"));
  EXPECT_FALSE(iequals("@", "`"));
  EXPECT_FALSE(iequals("\xc3", "\xe3"));
  EXPECT_FALSE(iequals("a\0"s, "a "s));
}

}  // namespace
}  // namespace edgeproxy::http
