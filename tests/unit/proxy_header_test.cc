// proxy_header: the spec's example headers parse, build() writes byte-exact headers that parse
// back, every prefix of a valid header asks for more, and malformed input is refused at the byte
// that makes it impossible.
#include "edgeproxy/proxy_header.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace edgeproxy::proxy_header {
namespace {

using Bytes = std::vector<std::byte>;

Bytes B(std::string_view s) {
  Bytes b;
  for (const char c : s) b.push_back(static_cast<std::byte>(c));
  return b;
}

Bytes B(std::initializer_list<int> v) {
  Bytes b;
  for (const int x : v) b.push_back(static_cast<std::byte>(x));
  return b;
}

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const Bytes kSig = B({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A});

// The v2 fixed header: signature, version/command, family, block length.
Bytes V2(int version_command, int family, size_t block_bytes) {
  return kSig + B({version_command, family, static_cast<int>(block_bytes >> 8),
                   static_cast<int>(block_bytes & 0xFF)});
}

// A TLV: type, 16-bit length, value.
Bytes Tlv(int type, const Bytes& value) {
  return B({type, static_cast<int>(value.size() >> 8), static_cast<int>(value.size() & 0xFF)}) +
         value;
}

SocketAddress Ip(const char* ip, uint16_t port) {
  SocketAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    a.length = sizeof(sockaddr_in);
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1) << ip;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    a.length = sizeof(sockaddr_in6);
  }
  return a;
}

Status Parse(const Bytes& b, Parsed& out) {
  return parse(std::span<const std::byte>(b), out);
}

Status Parse(const Bytes& b) {
  Parsed ignored;
  return Parse(b, ignored);
}

const char* Name(Status s) {
  switch (s) {
    case Status::kNeedMore:
      return "kNeedMore";
    case Status::kDone:
      return "kDone";
    case Status::kInvalid:
      return "kInvalid";
  }
  return "?";
}

// Every proper prefix of `header` (the empty one included) asks for more and leaves `out` alone.
::testing::AssertionResult EveryPrefixNeedsMore(const Bytes& header) {
  for (size_t n = 0; n < header.size(); ++n) {
    Parsed out;
    out.length = 999;
    const Bytes prefix(header.begin(), header.begin() + static_cast<ptrdiff_t>(n));
    const Status s = Parse(prefix, out);
    if (s != Status::kNeedMore || out.length != 999) {
      return ::testing::AssertionFailure()
             << "prefix of " << n << " bytes gave " << Name(s) << ", out.length " << out.length;
    }
  }
  return ::testing::AssertionSuccess();
}

// Parses `header` alone and followed by client data: kDone, the same result, length exact.
::testing::AssertionResult ParsesExactly(const Bytes& header, Parsed& out) {
  const Status s = Parse(header, out);
  if (s != Status::kDone) return ::testing::AssertionFailure() << "gave " << Name(s);
  if (out.length != header.size()) {
    return ::testing::AssertionFailure() << "length " << out.length << " for " << header.size();
  }
  Parsed with_data;
  const Status t = Parse(header + B("GET / HTTP/1.1\r\n\r\n"), with_data);
  if (t != Status::kDone || with_data.length != out.length || !(with_data.source == out.source) ||
      with_data.local != out.local) {
    return ::testing::AssertionFailure()
           << "followed by data: " << Name(t) << " length " << with_data.length;
  }
  return EveryPrefixNeedsMore(header);
}

// The shortest prefix on which parse() stops asking for more, and what it said then.
struct Verdict {
  size_t bytes;
  Status status;
};
Verdict FirstVerdict(const Bytes& input) {
  for (size_t n = 0; n <= input.size(); ++n) {
    const Status s = Parse(Bytes(input.begin(), input.begin() + static_cast<ptrdiff_t>(n)));
    if (s != Status::kNeedMore) return {n, s};
  }
  return {input.size() + 1, Status::kNeedMore};
}

Bytes Build(uint8_t version, const SocketAddress& source, const SocketAddress& destination) {
  std::array<std::byte, kMaxBuiltBytes> out{};
  const uint32_t n = build(version, source, destination, out);
  EXPECT_LE(n, kMaxBuiltBytes);
  return Bytes(out.begin(), out.begin() + n);
}

std::string Text(const Bytes& b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

TEST(ProxyHeaderTest, SpecV1ExampleLine) {
  const Bytes line = B("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  Parsed p;
  ASSERT_TRUE(ParsesExactly(line, p));
  EXPECT_EQ(p.version, 1);
  EXPECT_FALSE(p.local);
  EXPECT_EQ(p.source.to_string(), "192.168.0.1:56324");
  EXPECT_EQ(p.destination.to_string(), "192.168.0.11:443");
  EXPECT_TRUE(p.source == Ip("192.168.0.1", 56324));
}

TEST(ProxyHeaderTest, V1Tcp6AndPortBounds) {
  Parsed p;
  ASSERT_TRUE(ParsesExactly(B("PROXY TCP6 2001:DB8::1 ::1 65535 0\r\n"), p));
  EXPECT_EQ(p.source.to_string(), "[2001:db8::1]:65535");
  EXPECT_EQ(p.destination.to_string(), "[::1]:0");
  // inet_pton's embedded-IPv4 form, as inet_ntop writes a mapped address; kept as IPv6.
  ASSERT_TRUE(ParsesExactly(B("PROXY TCP6 ::ffff:10.0.0.1 ::ffff:10.0.0.2 1 2\r\n"), p));
  EXPECT_EQ(p.source.family(), AF_INET6);
  EXPECT_EQ(p.source.to_string(), "[::ffff:10.0.0.1]:1");
  ASSERT_TRUE(ParsesExactly(B("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n"), p));
  EXPECT_EQ(p.destination.to_string(), "255.255.255.255:65535");
}

TEST(ProxyHeaderTest, V1UnknownIsLocalAndMayCarryAnything) {
  Parsed p;
  ASSERT_TRUE(ParsesExactly(B("PROXY UNKNOWN\r\n"), p));
  EXPECT_TRUE(p.local);
  EXPECT_EQ(p.version, 1);
  EXPECT_EQ(p.source.family(), AF_UNSPEC);
  ASSERT_TRUE(ParsesExactly(B("PROXY UNKNOWN whatever\tthe sender \x01 says\r\n"), p));
  EXPECT_TRUE(p.local);
  // The spec's worst case is exactly 107 bytes.
  const std::string group = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const Bytes worst = B("PROXY UNKNOWN " + group + " " + group + " 65535 65535\r\n");
  ASSERT_EQ(worst.size(), kMaxV1Bytes);
  ASSERT_TRUE(ParsesExactly(worst, p));
  EXPECT_TRUE(p.local);
}

TEST(ProxyHeaderTest, V1LongestTcp6LineParses) {
  const std::string a = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe";
  const Bytes line = B("PROXY TCP6 " + a + " " + a + " 65535 65535\r\n");
  ASSERT_EQ(line.size(), 104u);
  Parsed p;
  ASSERT_TRUE(ParsesExactly(line, p));
  EXPECT_EQ(p.source.to_string(), "[" + a + "]:65535");
}

// A hand-built v2 header as HAProxy's send-proxy-v2-ssl-cn writes it, with every registered TLV.
TEST(ProxyHeaderTest, V2WithTlvsSkipsThemExactly) {
  const Bytes ssl = B({0x07, 0, 0, 0, 0}) +  // client: SSL | CERT_CONN | CERT_SESS; verify: 0
                    Tlv(0x21, B("TLSv1.3")) + Tlv(0x22, B("client.example.com")) +
                    Tlv(0x23, B("TLS_AES_256_GCM_SHA384")) + Tlv(0x24, B("RSA-SHA256")) +
                    Tlv(0x25, B("RSA2048"));
  const Bytes tlvs = Tlv(0x01, B("h2")) + Tlv(0x02, B("example.com")) + Tlv(0x04, B("")) +
                     Tlv(0x05, Bytes(128, std::byte{0xAB})) + Tlv(0x20, ssl) +
                     Tlv(0x30, B("blue")) + Tlv(0xE0, B({1, 2, 3}));
  const Bytes addresses = B({192, 0, 2, 1, 198, 51, 100, 7, 0xDC, 0x04, 0x01, 0xBB});
  const Bytes header = V2(0x21, 0x11, addresses.size() + tlvs.size()) + addresses + tlvs;
  Parsed p;
  ASSERT_TRUE(ParsesExactly(header, p));
  EXPECT_EQ(p.version, 2);
  EXPECT_FALSE(p.local);
  EXPECT_EQ(p.source.to_string(), "192.0.2.1:56324");
  EXPECT_EQ(p.destination.to_string(), "198.51.100.7:443");
}

TEST(ProxyHeaderTest, V2Ipv6) {
  const Bytes addresses = B({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,  //
                             0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,  //
                             0xFF, 0xFF, 0x00, 0x00});
  Parsed p;
  ASSERT_TRUE(ParsesExactly(V2(0x21, 0x21, 36) + addresses, p));
  EXPECT_EQ(p.source.to_string(), "[2001:db8::1]:65535");
  EXPECT_EQ(p.destination.to_string(), "[::1]:0");
  // A longer block than the addresses need holds TLVs; an empty NOOP fills 3 bytes.
  ASSERT_TRUE(ParsesExactly(V2(0x21, 0x21, 39) + addresses + Tlv(0x04, {}), p));
  EXPECT_EQ(p.length, 16u + 39u);
}

TEST(ProxyHeaderTest, V2LocalSkipsTheWholeBlockUnread) {
  Parsed p;
  ASSERT_TRUE(ParsesExactly(V2(0x20, 0x00, 0), p));
  EXPECT_TRUE(p.local);
  EXPECT_EQ(p.version, 2);
  EXPECT_EQ(p.length, 16u);
  // The spec: receivers must not assume zero is presented for LOCAL, and ignore the family.
  const Bytes addresses = B({10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0, 81});
  ASSERT_TRUE(ParsesExactly(V2(0x20, 0x11, 12) + addresses, p));
  EXPECT_TRUE(p.local);
  EXPECT_EQ(p.length, 28u);
  ASSERT_TRUE(ParsesExactly(V2(0x20, 0x12, 5) + B({0xFF, 0xFF, 0xFF, 0xFF, 0xFF}), p));
  EXPECT_TRUE(p.local);
  ASSERT_TRUE(ParsesExactly(V2(0x20, 0x77, 0), p));
}

TEST(ProxyHeaderTest, V2UnspecAndUnixProxyAreLocal) {
  Parsed p;
  // UNSPEC's block has no known layout: skipped, even when it does not look like TLVs.
  ASSERT_TRUE(ParsesExactly(V2(0x21, 0x00, 2) + B({0x01, 0xFF}), p));
  EXPECT_TRUE(p.local);
  EXPECT_EQ(p.length, 18u);
  const Bytes paths = B("/run/client.sock") + Bytes(108 - 16, std::byte{0}) + B("/run/app.sock") +
                      Bytes(108 - 13, std::byte{0});
  ASSERT_EQ(paths.size(), 216u);
  ASSERT_TRUE(ParsesExactly(V2(0x21, 0x31, 216) + paths, p));
  EXPECT_TRUE(p.local);
  EXPECT_EQ(p.length, 232u);
  ASSERT_TRUE(ParsesExactly(V2(0x21, 0x31, 216 + 5) + paths + Tlv(0x01, B("h2")), p));
  EXPECT_EQ(p.length, 237u);
  // TLVs after Unix paths are checked like any others.
  EXPECT_EQ(Parse(V2(0x21, 0x31, 216 + 5) + paths + Tlv(0x01, B("h2x"))), Status::kInvalid);
}

TEST(ProxyHeaderTest, V2LengthCap) {
  const Bytes addresses = B({10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0, 81});
  const size_t fill = kMaxV2Bytes - 16 - 12 - 3;
  const Bytes largest =
      V2(0x21, 0x11, kMaxV2Bytes - 16) + addresses + Tlv(0x04, Bytes(fill, std::byte{0}));
  ASSERT_EQ(largest.size(), kMaxV2Bytes);
  Parsed p;
  ASSERT_TRUE(ParsesExactly(largest, p));
  EXPECT_EQ(p.length, kMaxV2Bytes);
  // One more byte is refused as soon as the length field is in, for LOCAL too.
  const Verdict v = FirstVerdict(V2(0x21, 0x11, kMaxV2Bytes - 16 + 1));
  EXPECT_EQ(v.bytes, 16u);
  EXPECT_EQ(v.status, Status::kInvalid);
  EXPECT_EQ(Parse(V2(0x20, 0x00, 0xFFFF)), Status::kInvalid);
}

TEST(ProxyHeaderTest, V2Crc32cIsVerified) {
  // CRC32c computed independently (Python, bitwise, RFC 4960) over the header with its value 0.
  const Bytes addresses = B({10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x00, 0x50});
  const Bytes good = V2(0x21, 0x11, 19) + addresses + Tlv(0x03, B({0x07, 0x67, 0x17, 0x63}));
  Parsed p;
  ASSERT_TRUE(ParsesExactly(good, p));
  EXPECT_EQ(p.source.to_string(), "10.0.0.1:12345");
  Bytes corrupt = good;
  corrupt[20] = std::byte{11};  // the destination's first octet
  EXPECT_EQ(Parse(corrupt), Status::kInvalid);
  Bytes wrong = good;
  wrong[good.size() - 1] = std::byte{0x64};
  EXPECT_EQ(Parse(wrong), Status::kInvalid);
  // A checksum TLV is 4 bytes and comes once.
  EXPECT_EQ(Parse(V2(0x21, 0x11, 18) + addresses + Tlv(0x03, B({0x07, 0x67, 0x17}))),
            Status::kInvalid);
  EXPECT_EQ(Parse(V2(0x21, 0x11, 26) + addresses + Tlv(0x03, B({0x07, 0x67, 0x17, 0x63})) +
                  Tlv(0x03, B({0x07, 0x67, 0x17, 0x63}))),
            Status::kInvalid);
}

TEST(ProxyHeaderTest, BuildV2Ipv4ByteExact) {
  const Bytes expected =
      B({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11,
         0x00, 0x0C, 192,  168,  0,    1,    192,  168,  0,    11,   0xDC, 0x04, 0x01, 0xBB});
  EXPECT_EQ(Build(2, Ip("192.168.0.1", 56324), Ip("192.168.0.11", 443)), expected);
  // IPv4-mapped addresses are written as IPv4.
  EXPECT_EQ(Build(2, Ip("::ffff:192.168.0.1", 56324), Ip("192.168.0.11", 443)), expected);
  EXPECT_EQ(Build(2, Ip("::ffff:192.168.0.1", 56324), Ip("::ffff:192.168.0.11", 443)), expected);
}

TEST(ProxyHeaderTest, BuildV2Ipv6ByteExact) {
  const Bytes expected = kSig + B({0x21, 0x21, 0x00, 0x24,                                      //
                                   0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,  //
                                   0xfe, 0x80, 0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,  //
                                   0x01, 0x02, 0xFF, 0xFE});
  const Bytes built = Build(2, Ip("2001:db8::1", 0x0102), Ip("fe80::2", 0xFFFE));
  EXPECT_EQ(built, expected);
  EXPECT_EQ(built.size(), 52u);
}

TEST(ProxyHeaderTest, BuildV2LocalForUnixAndUnset) {
  const Bytes local = kSig + B({0x20, 0x00, 0x00, 0x00});
  const SocketAddress unix = unix_address("/run/app.sock").value();
  EXPECT_EQ(Build(2, unix, unix), local);
  EXPECT_EQ(Build(2, Ip("10.0.0.1", 1), unix), local);
  EXPECT_EQ(Build(2, SocketAddress{}, Ip("10.0.0.1", 1)), local);
}

TEST(ProxyHeaderTest, BuildV1Text) {
  EXPECT_EQ(Text(Build(1, Ip("192.168.0.1", 56324), Ip("192.168.0.11", 443))),
            "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
  EXPECT_EQ(Text(Build(1, Ip("::ffff:192.168.0.1", 0), Ip("192.168.0.11", 65535))),
            "PROXY TCP4 192.168.0.1 192.168.0.11 0 65535\r\n");
  EXPECT_EQ(Text(Build(1, Ip("2001:db8::1", 8080), Ip("::1", 80))),
            "PROXY TCP6 2001:db8::1 ::1 8080 80\r\n");
  const SocketAddress unix = unix_address("/run/app.sock").value();
  EXPECT_EQ(Text(Build(1, unix, unix)), "PROXY UNKNOWN\r\n");
  EXPECT_EQ(Text(Build(1, unix, Ip("10.0.0.1", 80))), "PROXY UNKNOWN\r\n");
  // Mixed IP families: both written as IPv6, the IPv4 one mapped, so the client address survives.
  EXPECT_EQ(Text(Build(1, Ip("10.0.0.1", 5000), Ip("2001:db8::2", 443))),
            "PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 5000 443\r\n");
  const std::string a = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe";
  EXPECT_EQ(Build(1, Ip(a.c_str(), 65535), Ip(a.c_str(), 65535)).size(), 104u);
}

TEST(ProxyHeaderTest, RoundTrips) {
  struct Case {
    const char* name;
    SocketAddress source, destination;
    bool local;
    SocketAddress parsed_source, parsed_destination;  // when !local
  };
  const SocketAddress unix = unix_address("/run/app.sock").value();
  const Case cases[] = {
      {"ipv4", Ip("203.0.113.9", 40000), Ip("10.1.2.3", 443), false, Ip("203.0.113.9", 40000),
       Ip("10.1.2.3", 443)},
      {"ipv6", Ip("2001:db8::9", 1), Ip("2001:db8::1", 65535), false, Ip("2001:db8::9", 1),
       Ip("2001:db8::1", 65535)},
      {"mapped", Ip("::ffff:203.0.113.9", 40000), Ip("::ffff:10.1.2.3", 80), false,
       Ip("203.0.113.9", 40000), Ip("10.1.2.3", 80)},
      {"mixed", Ip("203.0.113.9", 40000), Ip("2001:db8::1", 443), false,
       Ip("::ffff:203.0.113.9", 40000), Ip("2001:db8::1", 443)},
      {"unix", unix, unix, true, {}, {}},
      {"unix-source", unix, Ip("10.1.2.3", 443), true, {}, {}},
  };
  for (const Case& c : cases) {
    for (const uint8_t version : {uint8_t{1}, uint8_t{2}}) {
      SCOPED_TRACE(std::string(c.name) + " v" + std::to_string(version));
      Parsed p;
      ASSERT_TRUE(ParsesExactly(Build(version, c.source, c.destination), p));
      EXPECT_EQ(p.version, version);
      EXPECT_EQ(p.local, c.local);
      if (c.local) continue;
      EXPECT_TRUE(p.source == c.parsed_source) << p.source.to_string();
      EXPECT_TRUE(p.destination == c.parsed_destination) << p.destination.to_string();
    }
  }
}

// Malformed v1 lines. '^' marks where the input becomes impossible: every shorter prefix asks
// for more, the prefix through the next byte is kInvalid.
TEST(ProxyHeaderTest, V1RefusedAtTheFirstImpossibleByte) {
  const char* const cases[] = {
      "^GET / HTTP/1.1\r\n",
      "^proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY^\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY ^ TCP4 1.2.3.4 5.6.7.8 1 2\r\n",  // the second space is not a protocol's start
      "PROXY TCP^5 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP^ 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP4^\r\n",
      "PROXY TCP4 ^ 1.2.3.4 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 ^ 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 ^ 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2^ \r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2^\n",        // bare LF
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r^\r\n",    // CR not followed by LF
      "PROXY TCP4 1.2.3.4 5.6.7.8 6553^6 2\r\n",  // port 65536
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 9999^9\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 ^-1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 ^+1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8 0^1 2\r\n",  // leading zero
      "PROXY TCP4 1.2.3.4 5.6.7.8 1^\r\n",     // no destination port
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2^ 3\r\n",
      "PROXY TCP4 256.1.1.1^ 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3^ 5.6.7.8 1 2\r\n",
      "PROXY TCP4 01.2.3.4^ 5.6.7.8 1 2\r\n",
      "PROXY TCP4 1.2.3.4 1.2.3.4.5^ 1 2\r\n",
      "PROXY TCP4 1.2.3.4 5.6.7.8^\r\n",
      "PROXY TCP4 1.2.3.4 ^::1 1 2\r\n",
      "PROXY TCP4 111.111.111.111^1 5.6.7.8 1 2\r\n",  // 16 characters
      "PROXY TCP6 1.2.3.4^ ::1 1 2\r\n",
      "PROXY TCP6 ::1 2001:db8::^g 1 2\r\n",
      "PROXY TCP6 ::1 1:2:3:4:5:6:7:8:9^ 1 2\r\n",
      "PROXY UNKNOWN^X\r\n",
      "PROXY UNKNOWN ab^\ncd\r\n",
      "PROXY UNKNOWN ab\r^cd\r\n",
  };
  for (const char* c : cases) {
    SCOPED_TRACE(c);
    const std::string marked(c);
    const size_t at = marked.find('^');
    ASSERT_NE(at, std::string::npos);
    const Verdict v = FirstVerdict(B(marked.substr(0, at) + marked.substr(at + 1)));
    EXPECT_EQ(v.status, Status::kInvalid);
    EXPECT_EQ(v.bytes, at + 1);
  }
}

TEST(ProxyHeaderTest, V1LineEndsWithin107Bytes) {
  // UNKNOWN may carry anything, but its CRLF must end by byte 107.
  const std::string head = "PROXY UNKNOWN ";
  Parsed p;
  const Bytes longest = B(head + std::string(kMaxV1Bytes - head.size() - 2, 'a') + "\r\n");
  ASSERT_TRUE(ParsesExactly(longest, p));
  const Verdict v = FirstVerdict(B(head + std::string(200, 'a') + "\r\n"));
  EXPECT_EQ(v.status, Status::kInvalid);
  EXPECT_EQ(v.bytes, kMaxV1Bytes);
  // The CR as byte 107 leaves no room for the LF.
  const Verdict cr =
      FirstVerdict(B(head + std::string(kMaxV1Bytes - head.size() - 1, 'a') + "\r\n"));
  EXPECT_EQ(cr.status, Status::kInvalid);
  EXPECT_EQ(cr.bytes, kMaxV1Bytes);
  // A TCP6 line padded past 107 bytes by IPv4-embedded addresses (45 characters each).
  const std::string a = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
  ASSERT_EQ(a.size(), 45u);
  EXPECT_EQ(Parse(B("PROXY TCP6 " + a + " " + a + " 65535 65535\r\n")), Status::kInvalid);
}

// Malformed v2 headers: the byte count at which each is refused.
TEST(ProxyHeaderTest, V2RefusedAtTheFirstImpossibleByte) {
  const Bytes ip4 = B({10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0, 81});
  const Bytes ip6(36, std::byte{1});
  struct Case {
    const char* name;
    Bytes input;
    size_t refused_at;
  };
  Bytes bad_sig = V2(0x21, 0x11, 12) + ip4;
  bad_sig[4] = std::byte{0x01};
  const Case cases[] = {
      {"signature", bad_sig, 5},
      {"version 1", V2(0x11, 0x11, 12) + ip4, 13},
      {"version 3", V2(0x31, 0x11, 12) + ip4, 13},
      {"command 2", V2(0x22, 0x11, 12) + ip4, 13},
      {"command 15", V2(0x2F, 0x11, 12) + ip4, 13},
      {"udp4", V2(0x21, 0x12, 12) + ip4, 14},
      {"udp6", V2(0x21, 0x22, 36) + ip6, 14},
      {"unix dgram", V2(0x21, 0x32, 216) + Bytes(216, std::byte{0}), 14},
      {"family 0x10", V2(0x21, 0x10, 12) + ip4, 14},
      {"family 0x13", V2(0x21, 0x13, 12) + ip4, 14},
      {"family 0x41", V2(0x21, 0x41, 12) + ip4, 14},
      {"ipv4 block 11", V2(0x21, 0x11, 11) + ip4, 16},
      {"ipv6 block 35", V2(0x21, 0x21, 35) + ip6, 16},
      {"unix block 215", V2(0x21, 0x31, 215) + Bytes(216, std::byte{0}), 16},
      // 2 bytes after the IPv4 addresses cannot hold a TLV header: known from the length alone.
      {"tlv header cut", V2(0x21, 0x11, 14) + ip4 + B({0x04, 0x00}), 16},
      // A TLV whose value runs 1 byte past the block: refused when its length is read.
      {"tlv overruns", V2(0x21, 0x11, 12 + 3 + 2) + ip4 + Tlv(0x01, B("h2c")), 31},
      // A good TLV, then 1 byte: too few for another TLV header.
      {"trailing byte", V2(0x21, 0x11, 12 + 6 + 1) + ip4 + Tlv(0x01, B("h2c")) + B("x"), 31},
      // A second TLV overrunning after a good one.
      {"second tlv overruns",
       V2(0x21, 0x11, 12 + 5 + 5) + ip4 + Tlv(0x01, B("h2")) + Tlv(0x02, B("abc")), 36},
      {"tlv length ffff", V2(0x21, 0x11, 12 + 3) + ip4 + B({0x02, 0xFF, 0xFF}), 31},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Verdict v = FirstVerdict(c.input);
    EXPECT_EQ(v.status, Status::kInvalid);
    EXPECT_EQ(v.bytes, c.refused_at);
  }
}

TEST(ProxyHeaderTest, OutputIsWrittenOnlyWhenDone) {
  Parsed p;
  p.length = 7;
  p.version = 9;
  EXPECT_EQ(Parse(B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), p), Status::kNeedMore);
  EXPECT_EQ(Parse(B("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r"), p), Status::kInvalid);
  EXPECT_EQ(p.length, 7u);
  EXPECT_EQ(p.version, 9);
}

TEST(ProxyHeaderTest, SniffTable) {
  struct Case {
    Bytes input;
    Status expected;
  };
  const Case cases[] = {
      {{}, Status::kNeedMore},
      {B("P"), Status::kNeedMore},
      {B("PROXY"), Status::kNeedMore},
      {B("PROXY "), Status::kDone},
      {B("PROXY TCP4 1.2.3.4"), Status::kDone},
      {B("PROXY\t"), Status::kInvalid},
      {B("PROX "), Status::kInvalid},
      {B("GET / HTTP/1.1\r\n"), Status::kInvalid},
      {B({0x16, 0x03, 0x01}), Status::kInvalid},  // a TLS ClientHello
      {B("\r\n"), Status::kNeedMore},
      {B("\r\n\r\n"), Status::kNeedMore},
      {Bytes(kSig.begin(), kSig.end() - 1), Status::kNeedMore},
      {kSig, Status::kDone},
      {kSig + B({0x21}), Status::kDone},
      {B("\r\n\r\nX"), Status::kInvalid},
      {B("\r\r"), Status::kInvalid},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(Text(c.input));
    EXPECT_EQ(sniff(std::span<const std::byte>(c.input)), c.expected);
  }
}

}  // namespace
}  // namespace edgeproxy::proxy_header
