// ClientHello reader: real hellos from python3's ssl module and openssl s_client, synthetic hellos
// split over records at awkward points and past 16 KiB, every prefix of each (kNeedMore until the
// last byte), and each malformation the reader refuses. Every input is copied into a heap block of
// exactly its size, so an ASan build catches any read outside `bytes`.
#include "edgeproxy/client_hello.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/client_hellos.h"

namespace edgeproxy::tls {
namespace {

using Bytes = std::vector<std::byte>;

Bytes ToBytes(std::span<const uint8_t> raw) {
  Bytes out(raw.size());
  std::transform(raw.begin(), raw.end(), out.begin(), [](uint8_t b) { return std::byte{b}; });
  return out;
}

Bytes ToBytes(std::string_view text) {
  Bytes out(text.size());
  std::transform(text.begin(), text.end(), out.begin(),
                 [](char c) { return static_cast<std::byte>(c); });
  return out;
}

// The bytes of a string literal, NULs included, without its terminating NUL.
template <size_t N>
Bytes Raw(const char (&literal)[N]) {
  return ToBytes(std::string_view(literal, N - 1));
}

struct RealHello {
  const char* name;
  Bytes bytes;
  HelloStatus status;
  std::string server_name;
  std::vector<std::string> alpn;
};

std::vector<RealHello> RealHellos() {
  return {
      {"python_sni_alpn",
       ToBytes(testdata::kPythonSniAlpn),
       HelloStatus::kFound,
       "example.com",
       {"h2", "http/1.1"}},
      {"python_no_sni",
       ToBytes(testdata::kPythonNoSni),
       HelloStatus::kNoName,
       "",
       {"h2", "http/1.1"}},
      {"python_ip_literal", ToBytes(testdata::kPythonIpLiteral), HelloStatus::kNoName, "", {}},
      {"openssl_sni_alpn",
       ToBytes(testdata::kOpensslSniAlpn),
       HelloStatus::kFound,
       "backend.example",
       {"h2", "http/1.1"}},
      {"openssl_tls12",
       ToBytes(testdata::kOpensslTls12),
       HelloStatus::kFound,
       "Mixed-Case.Example.",
       {"h2"}},
  };
}

// What one call returned, copied out of the scratch block it pointed into.
struct Parsed {
  HelloStatus status = HelloStatus::kInvalid;
  std::string server_name;
  std::vector<std::string> alpn;
  uint32_t alpn_count = 0;
  uint32_t consumed = 0;
};

// Runs parse_client_hello on the first `n` bytes of `bytes`, copied into a heap block of exactly
// n bytes, with a scratch block of exactly n bytes.
Parsed Parse(std::span<const std::byte> bytes, size_t n) {
  const std::unique_ptr<std::byte[]> input(new std::byte[n]);  // not zeroed: cheap under ASan
  const std::unique_ptr<std::byte[]> scratch(new std::byte[n]);
  if (n != 0) std::memcpy(input.get(), bytes.data(), n);  // memcpy: fast under ASan
  ClientHello hello;
  Parsed p;
  p.status = parse_client_hello({input.get(), n}, {scratch.get(), n}, hello);
  p.server_name = std::string(hello.server_name);
  for (uint32_t i = 0; i < hello.alpn_count; ++i) p.alpn.emplace_back(hello.alpn[i]);
  p.alpn_count = hello.alpn_count;
  p.consumed = hello.consumed;
  return p;
}

Parsed Parse(std::span<const std::byte> bytes) {
  return Parse(bytes, bytes.size());
}

HelloStatus Status(std::span<const std::byte> bytes) {
  return Parse(bytes).status;
}

// Every proper prefix of `bytes` must be kNeedMore; the whole must give `final`. Each prefix is
// copied to the end of one heap block, so a read past it lands in ASan's redzone (a block per
// prefix would be exact at both ends, but ASan's quarantine makes that quadratic in time).
::testing::AssertionResult EveryPrefixNeedsMore(std::span<const std::byte> bytes,
                                                HelloStatus final) {
  const size_t size = bytes.size();
  const std::unique_ptr<std::byte[]> block(new std::byte[size]);
  const std::unique_ptr<std::byte[]> scratch(new std::byte[size]);
  ClientHello hello;
  for (size_t n = 0; n < size; ++n) {
    std::byte* prefix = block.get() + (size - n);
    if (n != 0) std::memcpy(prefix, bytes.data(), n);
    const HelloStatus s = parse_client_hello({prefix, n}, {scratch.get(), n}, hello);
    if (s != HelloStatus::kNeedMore) {
      return ::testing::AssertionFailure()
             << "prefix of " << n << " of " << size << " bytes gave " << static_cast<int>(s);
    }
  }
  const HelloStatus s = Status(bytes);
  if (s != final) {
    return ::testing::AssertionFailure()
           << "whole " << bytes.size() << " bytes gave " << static_cast<int>(s) << ", not "
           << static_cast<int>(final);
  }
  return ::testing::AssertionSuccess();
}

void Put8(Bytes& b, size_t v) {
  b.push_back(static_cast<std::byte>(v & 0xFF));
}
void Put16(Bytes& b, size_t v) {
  Put8(b, v >> 8);
  Put8(b, v);
}
void Put24(Bytes& b, size_t v) {
  Put8(b, v >> 16);
  Put16(b, v);
}
void Append(Bytes& b, std::span<const std::byte> more) {
  // resize + memcpy rather than insert(): GCC 12 at -O3 with LTO warns (-Wstringop-overflow, a
  // false positive) on a range insert it cannot prove non-empty.
  if (more.empty()) return;
  const size_t old = b.size();
  b.resize(old + more.size());
  std::memcpy(b.data() + old, more.data(), more.size());
}

Bytes Extension(size_t type, std::span<const std::byte> data) {
  Bytes e;
  Put16(e, type);
  Put16(e, data.size());
  Append(e, data);
  return e;
}

// server_name extension data from (name_type, name) entries.
Bytes ServerNames(std::initializer_list<std::pair<uint8_t, std::string_view>> entries) {
  Bytes list;
  for (const auto& [type, name] : entries) {
    Put8(list, type);
    Put16(list, name.size());
    Append(list, ToBytes(name));
  }
  Bytes data;
  Put16(data, list.size());
  Append(data, list);
  return data;
}

Bytes SniExtension(std::string_view name) {
  return Extension(0, ServerNames({{0, name}}));
}

Bytes AlpnExtension(const std::vector<std::string>& names) {
  Bytes list;
  for (const std::string& name : names) {
    Put8(list, name.size());
    Append(list, ToBytes(name));
  }
  Bytes data;
  Put16(data, list.size());
  Append(data, list);
  return Extension(16, data);
}

// A key_share extension (type 51) with an X25519MLKEM768 share (group 0x11EC, 1216 bytes) and an
// X25519 one, as post-quantum clients send.
Bytes PostQuantumKeyShare() {
  Bytes shares;
  Put16(shares, 0x11EC);
  Put16(shares, 1216);
  shares.resize(shares.size() + 1216, std::byte{0x5A});
  Put16(shares, 0x001D);
  Put16(shares, 32);
  shares.resize(shares.size() + 32, std::byte{0x3C});
  Bytes data;
  Put16(data, shares.size());
  Append(data, shares);
  return Extension(51, data);
}

Bytes Padding(size_t n) {
  return Extension(21, Bytes(n));
}

// The lengths of a ClientHello body's fixed fields.
struct Fixed {
  size_t session_id_bytes = 32;
  size_t suite_bytes = 8;
  size_t compression_methods = 1;
};

// The fixed fields of a ClientHello body, up to and including the compression methods, each
// vector as long as its length says.
Bytes FixedFields(const Fixed& f = {}) {
  Bytes b;
  Put16(b, 0x0303);
  b.resize(b.size() + 32, std::byte{0x11});  // random
  Put8(b, f.session_id_bytes);
  b.resize(b.size() + f.session_id_bytes, std::byte{0x22});
  Put16(b, f.suite_bytes);
  for (size_t i = 0; i < f.suite_bytes; ++i) Put8(b, i % 2 == 0 ? 0x13 : 1 + i / 2);
  Put8(b, f.compression_methods);
  b.resize(b.size() + f.compression_methods);  // null compression
  return b;
}

Bytes Body(std::initializer_list<Bytes> extensions, const Fixed& f = {}) {
  Bytes block;
  for (const Bytes& e : extensions) Append(block, e);
  Bytes b = FixedFields(f);
  Put16(b, block.size());
  Append(b, block);
  return b;
}

Bytes Message(std::span<const std::byte> body, size_t type = 1) {
  Bytes m;
  Put8(m, type);
  Put24(m, body.size());
  Append(m, body);
  return m;
}

void PutRecordHeader(Bytes& b, size_t length, size_t type = 22) {
  Put8(b, type);
  Put16(b, 0x0301);
  Put16(b, length);
}

// The message in records that end at `cuts` (offsets into the message, increasing) and at its end.
Bytes RecordsCutAt(std::span<const std::byte> message, std::vector<size_t> cuts) {
  cuts.push_back(message.size());
  Bytes out;
  size_t from = 0;
  for (const size_t to : cuts) {
    PutRecordHeader(out, to - from);
    Append(out, message.subspan(from, to - from));
    from = to;
  }
  return out;
}

// The message in records of `record_bytes` each (the last one shorter).
Bytes Records(std::span<const std::byte> message, size_t record_bytes = 16384) {
  std::vector<size_t> cuts;
  for (size_t at = record_bytes; at < message.size(); at += record_bytes) cuts.push_back(at);
  return RecordsCutAt(message, cuts);
}

Bytes Hello(std::initializer_list<Bytes> extensions) {
  return Records(Message(Body(extensions)));
}

// The handshake message carried by the records in `bytes`.
Bytes HandshakeOf(std::span<const std::byte> bytes) {
  Bytes message;
  for (size_t at = 0; at + 5 <= bytes.size();) {
    const size_t length =
        std::to_integer<size_t>(bytes[at + 3]) << 8 | std::to_integer<size_t>(bytes[at + 4]);
    Append(message, bytes.subspan(at + 5, length));
    at += 5 + length;
  }
  return message;
}

size_t Find(std::span<const std::byte> haystack, std::string_view needle) {
  const Bytes n = ToBytes(needle);
  for (size_t i = 0; i + n.size() <= haystack.size(); ++i) {
    if (std::memcmp(haystack.data() + i, n.data(), n.size()) == 0) return i;
  }
  ADD_FAILURE() << "'" << needle << "' not found";
  return 0;
}

// ---- real hellos ----

TEST(ClientHelloTestReal, NamesAlpnAndConsumed) {
  for (const RealHello& real : RealHellos()) {
    SCOPED_TRACE(real.name);
    const Parsed p = Parse(real.bytes);
    EXPECT_EQ(p.status, real.status);
    EXPECT_EQ(p.server_name, real.server_name);
    EXPECT_EQ(p.alpn, real.alpn);
    EXPECT_EQ(p.consumed, real.bytes.size());
  }
}

TEST(ClientHelloTestReal, EveryPrefixNeedsMore) {
  for (const RealHello& real : RealHellos()) {
    SCOPED_TRACE(real.name);
    EXPECT_TRUE(EveryPrefixNeedsMore(real.bytes, real.status));
  }
}

TEST(ClientHelloTestReal, BytesAfterTheHelloAreTheCallers) {
  for (const RealHello& real : RealHellos()) {
    SCOPED_TRACE(real.name);
    Bytes bytes = real.bytes;
    // A change_cipher_spec record and the start of early data, as a TLS 1.3 client may send.
    Append(bytes, ToBytes(std::string_view("\x14\x03\x03\x00\x01\x01\x17\x03\x03\x00", 10)));
    const Parsed p = Parse(bytes);
    EXPECT_EQ(p.status, real.status);
    EXPECT_EQ(p.server_name, real.server_name);
    EXPECT_EQ(p.consumed, real.bytes.size());
  }
}

TEST(ClientHelloTestReal, ResplitIntoTwoRecordsAtEveryPoint) {
  for (const RealHello& real : RealHellos()) {
    SCOPED_TRACE(real.name);
    const Bytes message = HandshakeOf(real.bytes);
    for (size_t cut = 1; cut < message.size(); ++cut) {
      const Bytes bytes = RecordsCutAt(message, {cut});
      const Parsed p = Parse(bytes);
      ASSERT_EQ(p.status, real.status) << "cut at " << cut;
      ASSERT_EQ(p.server_name, real.server_name) << "cut at " << cut;
      ASSERT_EQ(p.alpn, real.alpn) << "cut at " << cut;
      ASSERT_EQ(p.consumed, bytes.size()) << "cut at " << cut;
    }
  }
}

TEST(ClientHelloTestReal, SplitInsideHandshakeHeaderAndServerName) {
  const Bytes message = HandshakeOf(ToBytes(testdata::kPythonSniAlpn));
  const size_t name = Find(message, "example.com");
  // Inside the handshake header (after its type, inside its length), then inside the SNI
  // extension's header, inside the name, and one record per byte around it.
  const Bytes bytes =
      RecordsCutAt(message, {1, 3, name - 7, name - 2, name + 4, name + 5, name + 6});
  EXPECT_TRUE(EveryPrefixNeedsMore(bytes, HelloStatus::kFound));
  const Parsed p = Parse(bytes);
  EXPECT_EQ(p.server_name, "example.com");
  EXPECT_EQ(p.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(p.consumed, bytes.size());
}

TEST(ClientHelloTestReal, OneByteRecords) {
  // Legal, and what some clients do to slip past middleboxes that read only the first record.
  const Bytes message = HandshakeOf(ToBytes(testdata::kOpensslSniAlpn));
  const Bytes bytes = Records(message, 1);
  ASSERT_EQ(bytes.size(), message.size() * 6);
  EXPECT_TRUE(EveryPrefixNeedsMore(bytes, HelloStatus::kFound));
  EXPECT_EQ(Parse(bytes).server_name, "backend.example");
}

TEST(ClientHelloTestReal, IncompleteHelloNeverTouchesScratch) {
  const Bytes bytes = ToBytes(testdata::kPythonSniAlpn);
  Bytes scratch(bytes.size(), std::byte{0xAA});
  ClientHello hello;
  for (size_t n = 0; n < bytes.size(); ++n) {
    ASSERT_EQ(parse_client_hello({bytes.data(), n}, scratch, hello), HelloStatus::kNeedMore) << n;
    ASSERT_EQ(hello.consumed, 0u);
    ASSERT_TRUE(hello.server_name.empty());
    for (const std::byte b : scratch) ASSERT_EQ(b, std::byte{0xAA}) << "prefix of " << n;
    // No scratch at all is fine too while the hello is incomplete: only a whole one is copied.
    ASSERT_EQ(parse_client_hello({bytes.data(), n}, {}, hello), HelloStatus::kNeedMore) << n;
  }
  EXPECT_EQ(parse_client_hello(bytes, scratch, hello), HelloStatus::kFound);
  EXPECT_EQ(hello.server_name, "example.com");
  EXPECT_GE(hello.server_name.data(), reinterpret_cast<const char*>(scratch.data()));
  EXPECT_LT(hello.server_name.data(),
            reinterpret_cast<const char*>(scratch.data() + scratch.size()));
}

TEST(ClientHelloTestReal, UndersizedScratchForACompleteHelloDies) {
  const Bytes bytes = ToBytes(testdata::kPythonSniAlpn);
  Bytes scratch(bytes.size() - 10);
  ClientHello hello;
  EXPECT_DEATH(parse_client_hello(bytes, scratch, hello), "scratch");
}

// ---- synthetic hellos ----

TEST(ClientHelloTestSynthetic, LargePostQuantumHelloOverSeveralRecords) {
  // HAProxy issue 3148: SNI routing broke when post-quantum key shares and padding pushed the
  // hello past one record. This one is over 16 KiB and needs two, then five records.
  const Bytes message = Message(Body(
      {SniExtension("pq.example"), AlpnExtension({"h2"}), PostQuantumKeyShare(), Padding(17000)}));
  ASSERT_GT(message.size(), 17u * 1024);
  for (const size_t record_bytes : {size_t{16384}, size_t{4096}}) {
    SCOPED_TRACE(record_bytes);
    const Bytes bytes = Records(message, record_bytes);
    const Parsed p = Parse(bytes);
    EXPECT_EQ(p.status, HelloStatus::kFound);
    EXPECT_EQ(p.server_name, "pq.example");
    EXPECT_EQ(p.alpn, std::vector<std::string>{"h2"});
    EXPECT_EQ(p.consumed, bytes.size());
  }
  EXPECT_TRUE(EveryPrefixNeedsMore(Records(message), HelloStatus::kFound));
}

TEST(ClientHelloTestSynthetic, NameAfterTheLargeExtensionsInTheLastRecord) {
  const Bytes message = Message(Body({PostQuantumKeyShare(), Padding(34000),
                                      AlpnExtension({"http/1.1"}), SniExtension("late.example")}));
  const Bytes bytes = Records(message);
  ASSERT_GT(bytes.size(), 3 * 5 + 2 * 16384u) << "three records";
  const Parsed p = Parse(bytes);
  EXPECT_EQ(p.status, HelloStatus::kFound);
  EXPECT_EQ(p.server_name, "late.example");
  EXPECT_EQ(p.alpn, std::vector<std::string>{"http/1.1"});
}

TEST(ClientHelloTestSynthetic, LargestRecordAndLargestHello) {
  // A hello of exactly kMaxHelloBytes: an extensions block at its maximum (2^16-1) and 476 cipher
  // suites, in records of exactly 2^14 bytes. Two more cipher suite bytes are one too many.
  const Bytes sni = SniExtension("max.example");
  const Bytes padding = Padding(UINT16_MAX - sni.size() - 4);
  const Bytes message = Message(Body({sni, padding}, {.suite_bytes = 952}));
  ASSERT_EQ(message.size(), 4 + kMaxHelloBytes);
  const Bytes bytes = Records(message);
  ASSERT_EQ(bytes[3], std::byte{0x40});
  ASSERT_EQ(bytes[4], std::byte{0x00});
  const Parsed p = Parse(bytes);
  EXPECT_EQ(p.status, HelloStatus::kFound);
  EXPECT_EQ(p.server_name, "max.example");
  EXPECT_EQ(p.consumed, bytes.size());
  EXPECT_EQ(Status(Records(Message(Body({sni, padding}, {.suite_bytes = 954})))),
            HelloStatus::kInvalid);
}

TEST(ClientHelloTestSynthetic, NoExtensionsBlockOrAnEmptyOne) {
  EXPECT_EQ(Status(Records(Message(FixedFields()))), HelloStatus::kNoName);
  EXPECT_EQ(Status(Hello({})), HelloStatus::kNoName);
  EXPECT_TRUE(EveryPrefixNeedsMore(Records(Message(FixedFields())), HelloStatus::kNoName));
}

TEST(ClientHelloTestSynthetic, NameCharactersAndLengths) {
  EXPECT_EQ(Parse(Hello({SniExtension("_acme.Example-1.org.")})).server_name,
            "_acme.Example-1.org.");
  const std::string longest(255, 'a');
  EXPECT_EQ(Parse(Hello({SniExtension(longest)})).server_name, longest);
  EXPECT_EQ(Status(Hello({SniExtension(longest + "a")})), HelloStatus::kInvalid);
  EXPECT_EQ(Status(Hello({SniExtension("")})), HelloStatus::kInvalid);
  EXPECT_EQ(Status(Hello({SniExtension(std::string_view("a\0b.example", 11))})),
            HelloStatus::kInvalid);
  EXPECT_EQ(Status(Hello({SniExtension("a b.example")})), HelloStatus::kInvalid);
  EXPECT_EQ(Status(Hello({SniExtension("a/b.example")})), HelloStatus::kInvalid);
  EXPECT_EQ(Status(Hello({SniExtension("caf\xc3\xa9.example")})), HelloStatus::kInvalid);
}

TEST(ClientHelloTestSynthetic, FirstHostNameEntryOtherTypesSkipped) {
  const Bytes other_then_host = ServerNames({{7, "opaque stuff"}, {0, "real.example"}});
  EXPECT_EQ(Parse(Hello({Extension(0, other_then_host)})).server_name, "real.example");
  EXPECT_EQ(Status(Hello({Extension(0, ServerNames({{7, "x"}}))})), HelloStatus::kNoName);
  EXPECT_EQ(Status(Hello({Extension(0, ServerNames({{0, "a.example"}, {0, "b.example"}}))})),
            HelloStatus::kInvalid);
}

TEST(ClientHelloTestSynthetic, DuplicateServerNameExtension) {
  EXPECT_EQ(Status(Hello({SniExtension("a.example"), SniExtension("b.example")})),
            HelloStatus::kInvalid);
  EXPECT_EQ(
      Status(Hello({SniExtension("a.example"), AlpnExtension({"h2"}), SniExtension("a.example")})),
      HelloStatus::kInvalid);
  // The first one without a host_name: still one extension too many.
  EXPECT_EQ(Status(Hello({Extension(0, ServerNames({{7, "x"}})), SniExtension("b.example")})),
            HelloStatus::kInvalid);
}

TEST(ClientHelloTestSynthetic, AlpnNames) {
  const Parsed p = Parse(Hello({AlpnExtension({"h2", "http/1.1", "acme-tls/1"})}));
  EXPECT_EQ(p.status, HelloStatus::kNoName);
  EXPECT_EQ(p.alpn, (std::vector<std::string>{"h2", "http/1.1", "acme-tls/1"}));
  const std::string longest(255, 'p');
  EXPECT_EQ(Parse(Hello({AlpnExtension({longest})})).alpn, std::vector<std::string>{longest});
  EXPECT_EQ(Status(Hello({AlpnExtension({"h2", ""})})), HelloStatus::kInvalid);
  EXPECT_EQ(Status(Hello({AlpnExtension({})})), HelloStatus::kInvalid);
  EXPECT_EQ(Status(Hello({AlpnExtension({"h2"}), AlpnExtension({"h2"})})), HelloStatus::kInvalid);
}

TEST(ClientHelloTestSynthetic, MoreThanEightAlpnNames) {
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) names.push_back("proto" + std::to_string(i));
  const Parsed p = Parse(Hello({SniExtension("many.example"), AlpnExtension(names)}));
  EXPECT_EQ(p.status, HelloStatus::kFound);
  EXPECT_EQ(p.alpn_count, kMaxAlpn);
  EXPECT_EQ(p.alpn, std::vector<std::string>(names.begin(), names.begin() + kMaxAlpn));
  // Names past the eighth are still checked.
  names[10].clear();
  EXPECT_EQ(Status(Hello({SniExtension("many.example"), AlpnExtension(names)})),
            HelloStatus::kInvalid);
}

// ---- malformed ----

// Sets the 16-bit big-endian value at `at`.
Bytes With16(Bytes b, size_t at, size_t v) {
  b[at] = static_cast<std::byte>(v >> 8);
  b[at + 1] = static_cast<std::byte>(v & 0xFF);
  return b;
}

TEST(ClientHelloTestInvalid, NotAHandshakeRecord) {
  EXPECT_EQ(Status(Raw("GET / HTTP/1.1\r\n")), HelloStatus::kInvalid);
  EXPECT_EQ(Status(Raw("\x17")), HelloStatus::kInvalid);  // application data
  EXPECT_EQ(Status(Raw("\x15\x03\x01\x00\x02\x02\x28")), HelloStatus::kInvalid);  // alert
  EXPECT_EQ(Status(Raw("\x16\x02")), HelloStatus::kInvalid);
  EXPECT_EQ(Status(Raw("\x16\x03\x05")), HelloStatus::kInvalid);
  // SSL 2.0's ClientHello (a 2-byte header with the high bit set) is not accepted.
  EXPECT_EQ(Status(Raw("\x80\x2e\x01\x00\x02")), HelloStatus::kInvalid);
}

TEST(ClientHelloTestInvalid, RecordLengths) {
  Bytes header = Raw("\x16\x03\x01");
  Put16(header, 16385);
  EXPECT_EQ(Status(header), HelloStatus::kInvalid);
  EXPECT_EQ(Parse(header, 4).status, HelloStatus::kNeedMore) << "0x40.. may still be 16384";
  EXPECT_EQ(Status(With16(header, 3, 16384)), HelloStatus::kNeedMore);
  EXPECT_EQ(Parse(With16(header, 3, 0x4100), 4).status, HelloStatus::kInvalid)
      << "0x41.. can only be too long";
  EXPECT_EQ(Status(With16(header, 3, 0xFFFF)), HelloStatus::kInvalid);
  EXPECT_EQ(Status(With16(header, 3, 0)), HelloStatus::kInvalid);
}

TEST(ClientHelloTestInvalid, ZeroLengthRecordAfterTheFirst) {
  const Bytes message = Message(Body({SniExtension("z.example")}));
  Bytes bytes = RecordsCutAt(message, {10});
  const size_t second = 5 + 10;
  Bytes empty_record;
  PutRecordHeader(empty_record, 0);
  bytes.insert(bytes.begin() + static_cast<ptrdiff_t>(second), empty_record.begin(),
               empty_record.end());
  EXPECT_EQ(Parse(bytes, second + 5).status, HelloStatus::kInvalid);
  EXPECT_EQ(Status(bytes), HelloStatus::kInvalid);
}

TEST(ClientHelloTestInvalid, LaterRecordNotHandshake) {
  const Bytes message = Message(Body({SniExtension("z.example")}));
  for (const std::byte type : {std::byte{20}, std::byte{21}, std::byte{23}, std::byte{24}}) {
    SCOPED_TRACE(std::to_integer<int>(type));
    Bytes bytes = RecordsCutAt(message, {10});
    const size_t second = 5 + 10;
    bytes[second] = type;
    EXPECT_EQ(Parse(bytes, second + 1).status, HelloStatus::kInvalid);
    EXPECT_EQ(Status(bytes), HelloStatus::kInvalid);
  }
}

TEST(ClientHelloTestInvalid, WrongHandshakeType) {
  for (const size_t type : {0u, 2u, 11u, 255u}) {
    const Bytes bytes = Records(Message(Body({SniExtension("a.example")}), type));
    EXPECT_EQ(Parse(bytes, 6).status, HelloStatus::kInvalid) << type;
    EXPECT_EQ(Status(bytes), HelloStatus::kInvalid) << type;
  }
  // The type byte alone, in a record of its own.
  EXPECT_EQ(Status(Raw("\x16\x03\x01\x00\x01\x02")), HelloStatus::kInvalid);
}

TEST(ClientHelloTestInvalid, HelloLengthOverTheLimit) {
  Bytes bytes;
  PutRecordHeader(bytes, 16384);
  Put8(bytes, 1);
  Put24(bytes, kMaxHelloBytes + 1);  // 0x010401
  EXPECT_EQ(Status(bytes), HelloStatus::kInvalid);
  EXPECT_EQ(Parse(bytes, 8).status, HelloStatus::kNeedMore) << "0x0104.. may be kMaxHelloBytes";
  bytes.resize(6);
  Put24(bytes, kMaxHelloBytes);
  EXPECT_EQ(Status(bytes), HelloStatus::kNeedMore);
  bytes.resize(6);
  Put24(bytes, 0x020000);
  EXPECT_EQ(Parse(bytes, 7).status, HelloStatus::kInvalid) << "0x02.... can only be too large";
  bytes.resize(6);
  Put24(bytes, 0xFFFFFF);
  EXPECT_EQ(Status(bytes), HelloStatus::kInvalid);
}

TEST(ClientHelloTestInvalid, RecordGoesPastTheHello) {
  Bytes message = Message(Body({SniExtension("a.example")}));
  message.push_back(std::byte{0x14});  // a second handshake message's first byte, same record
  const size_t hello_bytes = message.size() - 1;
  const Bytes bytes = Records(message);
  EXPECT_EQ(Status(bytes), HelloStatus::kInvalid);
  EXPECT_EQ(Parse(bytes, hello_bytes).status, HelloStatus::kInvalid)
      << "known as soon as the record and handshake headers are";
}

TEST(ClientHelloTestInvalid, BodyShorterThanItsFixedFields) {
  EXPECT_EQ(Status(Records(Message({}))), HelloStatus::kInvalid);
  const Bytes fixed = FixedFields();
  for (size_t n = 0; n < fixed.size(); ++n) {
    EXPECT_EQ(Status(Records(Message(std::span(fixed).first(n)))), HelloStatus::kInvalid) << n;
  }
}

TEST(ClientHelloTestInvalid, FixedFieldLengths) {
  // Each vector as long as its length says, so only the rule on that length can refuse it.
  const auto status = [](const Fixed& f) {
    return Status(Records(Message(Body({SniExtension("a.example")}, f))));
  };
  EXPECT_EQ(status({}), HelloStatus::kFound);
  EXPECT_EQ(status({.session_id_bytes = 0}), HelloStatus::kFound);
  EXPECT_EQ(status({.suite_bytes = 2}), HelloStatus::kFound);
  EXPECT_EQ(status({.compression_methods = 255}), HelloStatus::kFound);
  EXPECT_EQ(status({.session_id_bytes = 33}), HelloStatus::kInvalid);
  EXPECT_EQ(status({.suite_bytes = 7}), HelloStatus::kInvalid) << "odd";
  EXPECT_EQ(status({.suite_bytes = 0}), HelloStatus::kInvalid);
  EXPECT_EQ(status({.compression_methods = 0}), HelloStatus::kInvalid);
  // A cipher suite length past the end of the message.
  const Bytes good = Body({SniExtension("a.example")});
  const size_t suites = 2 + 32 + 1 + 32;
  EXPECT_EQ(Status(Records(Message(With16(good, suites, 0xFFFE)))), HelloStatus::kInvalid);
  Bytes b = good;
  b[0] = std::byte{0x02};  // legacy_version 2.x
  EXPECT_EQ(Status(Records(Message(b))), HelloStatus::kInvalid);
}

TEST(ClientHelloTestInvalid, ExtensionLengthsMustFillTheBlock) {
  const Bytes good = Body({SniExtension("a.example"), AlpnExtension({"h2"})});
  const size_t block = FixedFields().size();  // the extensions block's length field
  const size_t block_length = good.size() - block - 2;
  EXPECT_EQ(Status(Records(Message(good))), HelloStatus::kFound);
  EXPECT_EQ(Status(Records(Message(With16(good, block, block_length + 1)))), HelloStatus::kInvalid);
  EXPECT_EQ(Status(Records(Message(With16(good, block, block_length - 1)))), HelloStatus::kInvalid);
  // The first extension (server_name) says one byte more or less than it has.
  const size_t sni_length = SniExtension("a.example").size() - 4;
  EXPECT_EQ(Status(Records(Message(With16(good, block + 4, sni_length + 1)))),
            HelloStatus::kInvalid);
  EXPECT_EQ(Status(Records(Message(With16(good, block + 4, sni_length - 1)))),
            HelloStatus::kInvalid);
  EXPECT_EQ(Status(Records(Message(With16(good, block + 4, 0xFFFF)))), HelloStatus::kInvalid);
  // Inside it, the list length and the name length overrun.
  EXPECT_EQ(Status(Records(Message(With16(good, block + 6, sni_length - 1)))),
            HelloStatus::kInvalid);
  EXPECT_EQ(Status(Records(Message(With16(good, block + 9, 10)))), HelloStatus::kInvalid);
  // An extension header cut short at the end of the block.
  Bytes b = good;
  b.push_back(std::byte{0});
  EXPECT_EQ(Status(Records(Message(With16(b, block, block_length + 1)))), HelloStatus::kInvalid);
  // Bytes after the extensions block.
  b = good;
  b.push_back(std::byte{0});
  EXPECT_EQ(Status(Records(Message(b))), HelloStatus::kInvalid);
  // An empty server_name extension (a server's answer, not a client's), an empty name list, and
  // a byte after the list.
  EXPECT_EQ(Status(Hello({Extension(0, {})})), HelloStatus::kInvalid);
  EXPECT_EQ(Status(Hello({Extension(0, Raw("\x00\x00"))})), HelloStatus::kInvalid);
  Bytes sni = ServerNames({{0, "a.example"}});
  sni.push_back(std::byte{0});
  EXPECT_EQ(Status(Hello({Extension(0, sni)})), HelloStatus::kInvalid);
}

TEST(ClientHelloTestInvalid, InvalidClearsTheOutput) {
  const Bytes bytes =
      Hello({AlpnExtension({"h2"}), SniExtension("a.example"), SniExtension("b.example")});
  std::vector<std::byte> scratch(bytes.size());
  ClientHello hello;
  hello.consumed = 99;
  EXPECT_EQ(parse_client_hello(bytes, scratch, hello), HelloStatus::kInvalid);
  EXPECT_TRUE(hello.server_name.empty());
  EXPECT_EQ(hello.alpn_count, 0u);
  EXPECT_EQ(hello.consumed, 0u);
}

// ---- sniff_tls ----

HelloStatus Sniff(const Bytes& b) {
  const std::unique_ptr<std::byte[]> input(new std::byte[b.size()]);
  std::copy(b.begin(), b.end(), input.get());
  return sniff_tls({input.get(), b.size()});
}

TEST(ClientHelloTestSniff, FirstBytes) {
  EXPECT_EQ(Sniff(Raw("")), HelloStatus::kNeedMore);
  EXPECT_EQ(Sniff(Raw("\x16")), HelloStatus::kNeedMore);
  EXPECT_EQ(Sniff(Raw("\x16\x03")), HelloStatus::kNeedMore);
  for (const char minor : {'\x00', '\x01', '\x02', '\x03', '\x04'}) {
    EXPECT_EQ(Sniff(ToBytes(std::string("\x16\x03") + minor)), HelloStatus::kFound) << int{minor};
  }
  EXPECT_EQ(Sniff(Raw("\x16\x03\x05")), HelloStatus::kInvalid);
  EXPECT_EQ(Sniff(Raw("\x16\x02")), HelloStatus::kInvalid);
  EXPECT_EQ(Sniff(Raw("\x17")), HelloStatus::kInvalid);
  EXPECT_EQ(Sniff(Raw("G")), HelloStatus::kInvalid);
  EXPECT_EQ(Sniff(Raw("GET / HTTP/1.1\r\n")), HelloStatus::kInvalid);
  EXPECT_EQ(Sniff(Raw("PROXY TCP4 ")), HelloStatus::kInvalid);
  EXPECT_EQ(Sniff(Raw("\r\n\r\n\0\r\nQUIT\n")), HelloStatus::kInvalid);
  // The length is not sniff_tls's matter.
  EXPECT_EQ(Sniff(Raw("\x16\x03\x01\xff\xff")), HelloStatus::kFound);
  for (const RealHello& real : RealHellos()) EXPECT_EQ(sniff_tls(real.bytes), HelloStatus::kFound);
}

}  // namespace
}  // namespace edgeproxy::tls
