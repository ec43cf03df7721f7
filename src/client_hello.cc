// ClientHello reader: every call walks the record headers; only a complete message is copied into
// scratch and parsed, once. See client_hello.h for the contract.
#include "edgeproxy/client_hello.h"

#include <algorithm>
#include <cstring>

#include "edgeproxy/check.h"

namespace edgeproxy::tls {

namespace {

constexpr uint32_t kHandshakeRecord = 22;
constexpr uint32_t kClientHelloType = 1;
constexpr size_t kRecordHeaderBytes = 5;
constexpr size_t kHandshakeHeaderBytes = 4;
constexpr size_t kRandomBytes = 32;
constexpr uint32_t kMaxSessionIdBytes = 32;
constexpr uint32_t kServerNameExtension = 0;
constexpr uint32_t kAlpnExtension = 16;
constexpr uint32_t kHostNameType = 0;
constexpr size_t kMaxHostNameBytes = 255;

uint32_t byte_at(std::span<const std::byte> s, size_t i) noexcept {
  return std::to_integer<uint32_t>(s[i]);
}

uint32_t record_length(std::span<const std::byte> record) noexcept {
  return byte_at(record, 3) << 8 | byte_at(record, 4);
}

std::string_view as_text(std::span<const std::byte> s) noexcept {
  return std::string_view(reinterpret_cast<const char*>(s.data()), s.size());
}

// Checks the record header bytes present, at most kRecordHeaderBytes: kFound for a whole valid
// header, kNeedMore for a valid prefix. Missing length bytes count as zero, so a prefix is refused
// as soon as nothing that follows could make its length valid.
HelloStatus check_record_header(std::span<const std::byte> h) noexcept {
  const size_t n = h.size();
  if (n >= 1 && byte_at(h, 0) != kHandshakeRecord) return HelloStatus::kInvalid;
  if (n >= 2 && byte_at(h, 1) != 3) return HelloStatus::kInvalid;
  if (n >= 3 && byte_at(h, 2) > 4) return HelloStatus::kInvalid;
  if (n >= 4 && (byte_at(h, 3) << 8) > kMaxRecordBytes) return HelloStatus::kInvalid;
  if (n < kRecordHeaderBytes) return HelloStatus::kNeedMore;
  const uint32_t length = record_length(h);
  if (length == 0 || length > kMaxRecordBytes) return HelloStatus::kInvalid;
  return HelloStatus::kFound;
}

// A bounds-checked cursor: every read says whether its bytes were there.
class Reader {
 public:
  Reader() noexcept = default;
  explicit Reader(std::span<const std::byte> s) noexcept : rest_(s) {}

  bool empty() const noexcept { return rest_.empty(); }

  bool number(size_t width, uint32_t& v) noexcept {
    if (width > rest_.size()) return false;
    v = 0;
    for (size_t i = 0; i < width; ++i) v = v << 8 | byte_at(rest_, i);
    rest_ = rest_.subspan(width);
    return true;
  }
  bool take(size_t n, std::span<const std::byte>& v) noexcept {
    if (n > rest_.size()) return false;
    v = rest_.first(n);
    rest_ = rest_.subspan(n);
    return true;
  }
  // A vector with a `width`-byte length prefix, its length in [min, max].
  bool vector(size_t width, uint32_t min, uint32_t max, std::span<const std::byte>& v) noexcept {
    uint32_t n = 0;
    return number(width, n) && n >= min && n <= max && take(n, v);
  }

 private:
  std::span<const std::byte> rest_;
};

// A name the `sni` matchers can compare: DNS characters plus '_' (seen in real host names), no
// NUL or space that could make two different names print alike in a log.
bool valid_host_name(std::span<const std::byte> name) noexcept {
  if (name.empty() || name.size() > kMaxHostNameBytes) return false;
  for (const std::byte b : name) {
    const char c = static_cast<char>(b);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// Extension data that is exactly one list with a 16-bit length of at least `min` bytes.
bool whole_list(std::span<const std::byte> data, uint32_t min, Reader& list) noexcept {
  Reader r(data);
  std::span<const std::byte> bytes;
  if (!r.vector(2, min, UINT16_MAX, bytes) || !r.empty()) return false;
  list = Reader(bytes);
  return true;
}

// server_name (RFC 6066 §3): ServerName server_name_list<1..2^16-1>, each entry a name_type and
// a 16-bit length-prefixed name. Entries of other types are skipped.
bool read_server_name(std::span<const std::byte> data, ClientHello& out) noexcept {
  Reader entries;
  if (!whole_list(data, 1, entries)) return false;
  while (!entries.empty()) {
    uint32_t type = 0;
    std::span<const std::byte> name;
    if (!entries.number(1, type) || !entries.vector(2, 0, UINT16_MAX, name)) return false;
    if (type != kHostNameType) continue;
    // RFC 6066: no more than one name of the same type.
    if (!out.server_name.empty() || !valid_host_name(name)) return false;
    out.server_name = as_text(name);
  }
  return true;
}

// application_layer_protocol_negotiation (RFC 7301 §3.1): ProtocolName
// protocol_name_list<2..2^16-1>, each name opaque<1..2^8-1>.
bool read_alpn(std::span<const std::byte> data, ClientHello& out) noexcept {
  Reader names;
  if (!whole_list(data, 2, names)) return false;
  while (!names.empty()) {
    std::span<const std::byte> name;
    if (!names.vector(1, 1, UINT8_MAX, name)) return false;
    if (out.alpn_count < kMaxAlpn) out.alpn[out.alpn_count++] = as_text(name);
  }
  return true;
}

// The ClientHello body (RFC 8446 §4.1.2), whole: every length is checked against what remains and
// the extensions must fill the block exactly.
HelloStatus read_body(std::span<const std::byte> body, ClientHello& out) noexcept {
  Reader r(body);
  uint32_t version = 0;
  std::span<const std::byte> skipped;
  if (!r.number(2, version) || version >> 8 != 3 || !r.take(kRandomBytes, skipped) ||
      !r.vector(1, 0, kMaxSessionIdBytes, skipped) || !r.vector(2, 2, UINT16_MAX - 1, skipped) ||
      skipped.size() % 2 != 0 || !r.vector(1, 1, UINT8_MAX, skipped)) {
    return HelloStatus::kInvalid;
  }
  if (r.empty()) return HelloStatus::kNoName;  // a hello from before extensions (TLS 1.0 style)
  std::span<const std::byte> block;
  if (!r.vector(2, 0, UINT16_MAX, block) || !r.empty()) return HelloStatus::kInvalid;
  Reader extensions(block);
  bool seen_name = false;
  bool seen_alpn = false;
  while (!extensions.empty()) {
    uint32_t type = 0;
    std::span<const std::byte> data;
    if (!extensions.number(2, type) || !extensions.vector(2, 0, UINT16_MAX, data)) {
      return HelloStatus::kInvalid;
    }
    // RFC 8446 §4.2: one extension of a type per block; a second one would let a client show the
    // router one name and the server another.
    if (type == kServerNameExtension) {
      if (seen_name || !read_server_name(data, out)) return HelloStatus::kInvalid;
      seen_name = true;
    } else if (type == kAlpnExtension) {
      if (seen_alpn || !read_alpn(data, out)) return HelloStatus::kInvalid;
      seen_alpn = true;
    }
  }
  return out.server_name.empty() ? HelloStatus::kNoName : HelloStatus::kFound;
}

}  // namespace

HelloStatus parse_client_hello(std::span<const std::byte> bytes, std::span<std::byte> scratch,
                               ClientHello& out) noexcept {
  out = ClientHello{};
  // Pass one reads only the record headers and the 4-byte handshake header, which may itself be
  // split over records: O(records) per call, whatever the number of bytes.
  std::array<uint32_t, kHandshakeHeaderBytes> header{};  // missing bytes stay zero
  size_t header_have = 0;
  size_t message_bytes = 0;  // handshake header + body, once the header is whole
  size_t announced = 0;      // handshake bytes carried by the records walked so far
  size_t end = 0;            // where the next record starts
  for (;;) {
    const std::span<const std::byte> rest = bytes.subspan(end);
    const HelloStatus record =
        check_record_header(rest.first(std::min(rest.size(), kRecordHeaderBytes)));
    if (record != HelloStatus::kFound) return record;
    const size_t length = record_length(rest);
    const std::span<const std::byte> payload =
        rest.subspan(kRecordHeaderBytes, std::min(length, rest.size() - kRecordHeaderBytes));
    for (size_t i = 0; header_have < kHandshakeHeaderBytes && i < payload.size(); ++i) {
      header[header_have++] = byte_at(payload, i);
    }
    if (header_have > 0 && header[0] != kClientHelloType) return HelloStatus::kInvalid;
    // Refused as soon as its known bytes make the length too large, like a record header.
    const uint32_t body_bytes = header[1] << 16 | header[2] << 8 | header[3];
    if (body_bytes > kMaxHelloBytes) return HelloStatus::kInvalid;
    announced += length;
    if (header_have == kHandshakeHeaderBytes) {
      message_bytes = kHandshakeHeaderBytes + body_bytes;
      // The hello ends where a record ends: a client's first flight holds no other handshake data.
      if (announced > message_bytes) return HelloStatus::kInvalid;
    }
    if (payload.size() < length) return HelloStatus::kNeedMore;
    end += kRecordHeaderBytes + length;
    if (message_bytes != 0 && announced == message_bytes) break;
  }
  // Pass two, once: the record payloads side by side in scratch, then the body.
  EDGEPROXY_CHECK(scratch.size() >= message_bytes);
  size_t written = 0;
  for (size_t at = 0; at < end;) {
    const size_t length = record_length(bytes.subspan(at));
    std::memcpy(scratch.data() + written, bytes.data() + at + kRecordHeaderBytes, length);
    written += length;
    at += kRecordHeaderBytes + length;
  }
  const HelloStatus status =
      read_body(scratch.subspan(kHandshakeHeaderBytes, message_bytes - kHandshakeHeaderBytes), out);
  if (status == HelloStatus::kInvalid) {
    out = ClientHello{};
    return status;
  }
  out.consumed = static_cast<uint32_t>(end);
  return status;
}

HelloStatus sniff_tls(std::span<const std::byte> bytes) noexcept {
  constexpr size_t kSniffBytes = 3;  // type and version; the length is parse_client_hello's matter
  if (check_record_header(bytes.first(std::min(bytes.size(), kSniffBytes))) ==
      HelloStatus::kInvalid) {
    return HelloStatus::kInvalid;
  }
  return bytes.size() >= kSniffBytes ? HelloStatus::kFound : HelloStatus::kNeedMore;
}

}  // namespace edgeproxy::tls
