// PROXY protocol reader and writer; see proxy_header.h.
#include "edgeproxy/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>

#include "edgeproxy/buffer.h"
#include "edgeproxy/check.h"

namespace edgeproxy::proxy_header {

static_assert(kMaxV2Bytes <= kBufferBytes, "a v2 header must fit one client buffer");

namespace {

using Bytes = std::span<const std::byte>;

constexpr std::string_view kV1Prefix = "PROXY ";
// Holds a NUL, so it is sized explicitly.
constexpr std::string_view kSignature{"\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12};
constexpr uint32_t kV2FixedBytes = 16;
constexpr uint32_t kV2Inet4Bytes = 12;   // 2 x 4-byte address, 2 x port
constexpr uint32_t kV2Inet6Bytes = 36;   // 2 x 16-byte address, 2 x port
constexpr uint32_t kV2UnixBytes = 216;   // 2 x 108-byte path
constexpr uint32_t kTlvHeaderBytes = 3;  // type, 16-bit length
constexpr uint8_t kCommandLocal = 0x0;
constexpr uint8_t kCommandProxy = 0x1;
constexpr uint8_t kFamilyUnspec = 0x00;
constexpr uint8_t kFamilyTcp4 = 0x11;
constexpr uint8_t kFamilyTcp6 = 0x21;
constexpr uint8_t kFamilyUnixStream = 0x31;
constexpr uint8_t kTypeCrc32c = 0x03;
constexpr size_t kMaxIpv4Chars = 15;  // 255.255.255.255
constexpr size_t kMaxIpv6Chars = INET6_ADDRSTRLEN - 1;
constexpr size_t kMaxPortChars = 5;

uint8_t byte_at(Bytes b, size_t i) noexcept {
  return std::to_integer<uint8_t>(b[i]);
}

uint16_t be16_at(Bytes b, size_t i) noexcept {
  return static_cast<uint16_t>(byte_at(b, i) << 8 | byte_at(b, i + 1));
}

// The bytes seen so far and a position in them. `exhausted` is what running out of them means:
// kNeedMore, or kInvalid once they hold the most a header may occupy.
struct Reader {
  Bytes bytes;
  Status exhausted = Status::kNeedMore;
  size_t pos = 0;

  bool more() const noexcept { return pos < bytes.size(); }
  char peek() const noexcept { return static_cast<char>(bytes[pos]); }
  std::string_view text(size_t from) const noexcept {
    return {reinterpret_cast<const char*>(bytes.data()) + from, pos - from};
  }

  // Steps over `literal`: kDone, kInvalid at the first byte that differs, else `exhausted`.
  Status literal(std::string_view expected) noexcept {
    for (const char c : expected) {
      if (!more()) return exhausted;
      if (peek() != c) return Status::kInvalid;
      ++pos;
    }
    return Status::kDone;
  }

  // Reads a v1 field up to the space or CR after it (left unread) into `out`: kDone, or
  // `exhausted`, or kInvalid as soon as `can_start` says the text so far cannot begin a valid one.
  Status field(bool (*can_start)(std::string_view), std::string_view& out) noexcept {
    const size_t from = pos;
    for (;;) {
      if (!more()) return exhausted;
      if (peek() == ' ' || peek() == '\r') break;
      ++pos;
      if (!can_start(text(from))) return Status::kInvalid;
    }
    out = text(from);
    return Status::kDone;
  }
};

bool protocol_prefix(std::string_view t) noexcept {
  return std::string_view("TCP4").starts_with(t) || std::string_view("TCP6").starts_with(t) ||
         std::string_view("UNKNOWN").starts_with(t);
}

bool ipv4_prefix(std::string_view t) noexcept {
  return t.size() <= kMaxIpv4Chars &&
         std::all_of(t.begin(), t.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

bool ipv6_prefix(std::string_view t) noexcept {
  return t.size() <= kMaxIpv6Chars && std::all_of(t.begin(), t.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                  c == ':' || c == '.';
         });
}

// Digits of at most 65535 with no leading zero ("0" itself is a port).
bool port_prefix(std::string_view t) noexcept {
  if (t.size() > kMaxPortChars || (t.size() > 1 && t[0] == '0')) return false;
  uint32_t value = 0;
  for (const char c : t) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  return value <= UINT16_MAX;
}

// A v1 address of `family` into `ip` (4 or 16 bytes, network order).
Status read_address(Reader& r, int family, void* ip) noexcept {
  std::string_view text;
  const Status s = r.field(family == AF_INET ? ipv4_prefix : ipv6_prefix, text);
  if (s != Status::kDone) return s;
  char z[kMaxIpv6Chars + 1] = {};  // the prefix checks bound the text by kMaxIpv6Chars
  std::memcpy(z, text.data(), text.size());
  return inet_pton(family, z, ip) == 1 ? Status::kDone : Status::kInvalid;
}

Status read_port(Reader& r, uint16_t& port) noexcept {
  std::string_view text;
  const Status s = r.field(port_prefix, text);
  if (s != Status::kDone) return s;
  if (text.empty()) return Status::kInvalid;
  uint32_t value = 0;
  for (const char c : text) value = value * 10 + static_cast<uint32_t>(c - '0');
  port = static_cast<uint16_t>(value);  // port_prefix bounded it
  return Status::kDone;
}

// `ip` is 4 bytes for AF_INET, 16 for AF_INET6, in network order; `port` in host order.
SocketAddress inet_address(int family, const void* ip, uint16_t port) noexcept {
  SocketAddress a;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, ip, sizeof in->sin_addr);
    a.length = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, ip, sizeof in6->sin6_addr);
    a.length = sizeof(sockaddr_in6);
  }
  return a;
}

// After "PROXY UNKNOWN": CRLF at once, or a space and anything but a lone CR or LF up to it.
Status finish_unknown(Reader& r) noexcept {
  while (r.more()) {
    if (r.peek() == '\r') return r.literal("\r\n");
    if (r.peek() == '\n') return Status::kInvalid;
    ++r.pos;
  }
  return r.exhausted;
}

Status parse_v1(Bytes bytes, Parsed& out) noexcept {
  // The CRLF must end within kMaxV1Bytes: once that many bytes are here, running out is final.
  Reader r{bytes.first(std::min<size_t>(bytes.size(), kMaxV1Bytes)),
           bytes.size() >= kMaxV1Bytes ? Status::kInvalid : Status::kNeedMore};
  std::string_view protocol;
  Status s = r.literal(kV1Prefix);
  if (s == Status::kDone) s = r.field(protocol_prefix, protocol);
  if (s != Status::kDone) return s;
  Parsed p;
  p.version = 1;
  if (protocol == "UNKNOWN") {
    s = finish_unknown(r);
    p.local = true;
  } else if (protocol == "TCP4" || protocol == "TCP6") {
    const int family = protocol == "TCP4" ? AF_INET : AF_INET6;
    in6_addr src{};  // large enough for either family
    in6_addr dst{};
    uint16_t src_port = 0;
    uint16_t dst_port = 0;
    s = r.literal(" ");
    if (s == Status::kDone) s = read_address(r, family, &src);
    if (s == Status::kDone) s = r.literal(" ");
    if (s == Status::kDone) s = read_address(r, family, &dst);
    if (s == Status::kDone) s = r.literal(" ");
    if (s == Status::kDone) s = read_port(r, src_port);
    if (s == Status::kDone) s = r.literal(" ");
    if (s == Status::kDone) s = read_port(r, dst_port);
    if (s == Status::kDone) s = r.literal("\r\n");
    if (s == Status::kDone) {
      p.source = inet_address(family, &src, src_port);
      p.destination = inet_address(family, &dst, dst_port);
    }
  } else {
    return Status::kInvalid;  // a whole word that only began like one of the three
  }
  if (s != Status::kDone) return s;
  p.length = static_cast<uint32_t>(r.pos);
  out = p;
  return Status::kDone;
}

// CRC32c (Castagnoli, RFC 4960 appendix B): reflected polynomial 0x82F63B78, initial and final
// value all ones.
constexpr std::array<uint32_t, 256> kCrc32cTable = [] {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t crc = i;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) != 0 ? 0x82F63B78u : 0);
    table[i] = crc;
  }
  return table;
}();

// The CRC32c of `header` with the 4 bytes at `zeroed` read as zeros, as the spec checksums it.
uint32_t crc32c(Bytes header, size_t zeroed) noexcept {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < header.size(); ++i) {
    const uint8_t b = i >= zeroed && i < zeroed + 4 ? uint8_t{0} : byte_at(header, i);
    crc = (crc >> 8) ^ kCrc32cTable[(crc ^ b) & 0xFF];
  }
  return ~crc;
}

Status parse_v2(Bytes bytes, Parsed& out) noexcept {
  Reader r{bytes};
  const Status s = r.literal(kSignature);
  if (s != Status::kDone) return s;
  if (bytes.size() <= 12) return Status::kNeedMore;
  const uint8_t version_command = byte_at(bytes, 12);
  if (version_command >> 4 != 2) return Status::kInvalid;
  const uint8_t command = version_command & 0x0F;
  if (command != kCommandLocal && command != kCommandProxy) return Status::kInvalid;
  if (bytes.size() <= 13) return Status::kNeedMore;
  const uint8_t family = byte_at(bytes, 13);
  // The address block's size, and whether TLVs follow it that we can find.
  uint32_t address_bytes = 0;
  bool tlvs = command == kCommandProxy;
  if (command == kCommandProxy) {
    switch (family) {
      case kFamilyUnspec:
        tlvs = false;
        break;
      case kFamilyTcp4:
        address_bytes = kV2Inet4Bytes;
        break;
      case kFamilyTcp6:
        address_bytes = kV2Inet6Bytes;
        break;
      case kFamilyUnixStream:
        address_bytes = kV2UnixBytes;
        break;
      default:  // datagrams, and values the spec leaves unassigned
        return Status::kInvalid;
    }
  }
  if (bytes.size() < kV2FixedBytes) return Status::kNeedMore;
  const uint32_t total = kV2FixedBytes + be16_at(bytes, 14);
  if (total > kMaxV2Bytes || total < kV2FixedBytes + address_bytes) return Status::kInvalid;

  // Walk the TLVs as far as the bytes go, so a bad one is refused before the rest arrives.
  size_t crc_at = 0;  // offset of a CRC32c value, 0 for none
  for (size_t at = kV2FixedBytes + address_bytes; tlvs && at < total;) {
    if (total - at < kTlvHeaderBytes) return Status::kInvalid;
    if (bytes.size() < at + kTlvHeaderBytes) return Status::kNeedMore;
    const uint32_t value_bytes = be16_at(bytes, at + 1);
    if (value_bytes > total - at - kTlvHeaderBytes) return Status::kInvalid;
    if (byte_at(bytes, at) == kTypeCrc32c) {
      if (value_bytes != 4 || crc_at != 0) return Status::kInvalid;
      crc_at = at + kTlvHeaderBytes;
    }
    at += kTlvHeaderBytes + value_bytes;
  }
  if (bytes.size() < total) return Status::kNeedMore;
  const Bytes header = bytes.first(total);
  if (crc_at != 0) {
    const uint32_t sent = uint32_t{be16_at(header, crc_at)} << 16 | be16_at(header, crc_at + 2);
    if (crc32c(header, crc_at) != sent) return Status::kInvalid;
  }

  Parsed p;
  p.version = 2;
  p.length = total;
  p.local = command == kCommandLocal || family == kFamilyUnspec || family == kFamilyUnixStream;
  if (!p.local) {
    const int af = family == kFamilyTcp4 ? AF_INET : AF_INET6;
    const size_t ip_bytes = (address_bytes - 4) / 2;
    const std::byte* block = header.data() + kV2FixedBytes;
    p.source = inet_address(af, block, be16_at(header, kV2FixedBytes + 2 * ip_bytes));
    p.destination =
        inet_address(af, block + ip_bytes, be16_at(header, kV2FixedBytes + 2 * ip_bytes + 2));
  }
  out = p;
  return Status::kDone;
}

// An address as a header carries it: AF_INET (a mapped IPv6 address included) in ip[0..4),
// AF_INET6 in ip[0..16), anything else AF_UNSPEC. Port in host order.
struct Inet {
  int family = AF_UNSPEC;
  std::array<uint8_t, 16> ip{};
  uint16_t port = 0;
};

Inet inet_of(const SocketAddress& a) noexcept {
  Inet n;
  if (a.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
    n.family = AF_INET;
    std::memcpy(n.ip.data(), &in->sin_addr, 4);
  } else if (a.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      n.family = AF_INET;
      std::memcpy(n.ip.data(), in6->sin6_addr.s6_addr + 12, 4);
    } else {
      n.family = AF_INET6;
      std::memcpy(n.ip.data(), &in6->sin6_addr, 16);
    }
  }
  if (n.family != AF_UNSPEC) n.port = a.port();
  return n;
}

// Rewrites an IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d).
void widen(Inet& n) noexcept {
  if (n.family != AF_INET) return;
  std::array<uint8_t, 16> mapped{};
  mapped[10] = mapped[11] = 0xFF;
  std::copy_n(n.ip.begin(), 4, mapped.begin() + 12);
  n.ip = mapped;
  n.family = AF_INET6;
}

// Appends to a fixed output span; overflowing it is a bug in build() (checked).
struct Writer {
  std::span<std::byte, kMaxBuiltBytes> out;
  uint32_t n = 0;

  void put(uint8_t b) noexcept {
    EDGEPROXY_CHECK(n < out.size());
    out[n++] = std::byte{b};
  }
  void put(std::string_view s) noexcept {
    for (const char c : s) put(static_cast<uint8_t>(c));
  }
  void put(std::span<const uint8_t> s) noexcept {
    for (const uint8_t b : s) put(b);
  }
  void put_be16(uint16_t v) noexcept {
    put(static_cast<uint8_t>(v >> 8));
    put(static_cast<uint8_t>(v & 0xFF));
  }
  void put_decimal(uint16_t v) noexcept {
    char digits[kMaxPortChars];
    size_t count = 0;
    do {
      digits[count++] = static_cast<char>('0' + v % 10);
      v = static_cast<uint16_t>(v / 10);
    } while (v != 0);
    while (count > 0) put(static_cast<uint8_t>(digits[--count]));
  }
  void put_ip_text(const Inet& a) noexcept {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(a.family, a.ip.data(), text, sizeof text);
    put(std::string_view(text));
  }
};

}  // namespace

Status parse(std::span<const std::byte> bytes, Parsed& out) noexcept {
  if (bytes.empty()) return Status::kNeedMore;
  // The two formats differ at their first byte ('P' or CR).
  return bytes[0] == std::byte{'P'} ? parse_v1(bytes, out) : parse_v2(bytes, out);
}

Status sniff(std::span<const std::byte> bytes) noexcept {
  if (bytes.empty()) return Status::kNeedMore;
  Reader r{bytes};
  return r.literal(bytes[0] == std::byte{'P'} ? kV1Prefix : kSignature);
}

uint32_t build(uint8_t version, const SocketAddress& source, const SocketAddress& destination,
               std::span<std::byte, kMaxBuiltBytes> out) noexcept {
  EDGEPROXY_CHECK(version == 1 || version == 2);
  Inet src = inet_of(source);
  Inet dst = inet_of(destination);
  const bool inet = src.family != AF_UNSPEC && dst.family != AF_UNSPEC;
  if (inet && src.family != dst.family) {
    widen(src);
    widen(dst);
  }
  Writer w{out};
  if (version == 1) {
    if (!inet) {
      w.put("PROXY UNKNOWN\r\n");
      return w.n;
    }
    w.put(src.family == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 ");
    w.put_ip_text(src);
    w.put(" ");
    w.put_ip_text(dst);
    w.put(" ");
    w.put_decimal(src.port);
    w.put(" ");
    w.put_decimal(dst.port);
    w.put("\r\n");
    return w.n;
  }
  w.put(kSignature);
  if (!inet) {
    w.put(static_cast<uint8_t>(0x20 | kCommandLocal));
    w.put(kFamilyUnspec);
    w.put_be16(0);
    return w.n;
  }
  const bool v4 = src.family == AF_INET;
  const size_t ip_bytes = v4 ? 4 : 16;
  w.put(static_cast<uint8_t>(0x20 | kCommandProxy));
  w.put(v4 ? kFamilyTcp4 : kFamilyTcp6);
  w.put_be16(static_cast<uint16_t>(v4 ? kV2Inet4Bytes : kV2Inet6Bytes));
  w.put(std::span<const uint8_t>(src.ip.data(), ip_bytes));
  w.put(std::span<const uint8_t>(dst.ip.data(), ip_bytes));
  w.put_be16(src.port);
  w.put_be16(dst.port);
  return w.n;
}

}  // namespace edgeproxy::proxy_header
