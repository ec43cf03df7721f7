// TLS ClientHello reader for content-aware routing (`sni`, `alpn` and `protocol tls` matchers):
// a pure function over the first bytes a client sent. No syscalls, no allocation, no state kept
// between calls.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace edgeproxy::tls {

enum class HelloStatus : uint8_t {
  kNeedMore,  // the bytes so far are a valid prefix of a ClientHello: read more
  kFound,     // a complete ClientHello with a server_name (host_name) entry
  kNoName,    // a complete ClientHello without server_name (ALPN may still be filled)
  kInvalid,   // not a TLS handshake record, or a malformed/oversized ClientHello
};

// The largest record payload a peer may send (RFC 8446 §5.1: 2^14); a longer or an empty
// handshake record is invalid.
inline constexpr uint32_t kMaxRecordBytes = 16384;
// The largest ClientHello body accepted (the 24-bit handshake length): room for an extensions block
// at its format maximum (2^16-1) plus 1 KiB of fixed fields (version, random, session id,
// compression and a cipher list of ~470 suites). The format allows 131396 bytes, but Go and rustls
// refuse any handshake message over 64 KiB, and every byte held here is pool memory held while
// routing. Post-quantum hellos (X25519MLKEM768 adds ~1.2 KB) stay far below it.
inline constexpr uint32_t kMaxHelloBytes = 65536 + 1024;
inline constexpr uint32_t kMaxAlpn = 8;

// What a complete ClientHello said. Views point into the `scratch` given to parse_client_hello:
// they live as long as it does and are valid only after kFound or kNoName.
struct ClientHello {
  std::string_view server_name;  // as sent (not lower-cased), points into `scratch`
  std::array<std::string_view, kMaxAlpn> alpn{};  // protocol names, in order, into `scratch`
  uint32_t alpn_count = 0;  // names beyond kMaxAlpn are skipped (still validated)
  uint32_t consumed = 0;    // bytes of `bytes` holding the whole ClientHello (all records)
};

// Reads the ClientHello at the start of `bytes` (the first bytes a client sent). The handshake
// message may be split over several TLS records (each with its 5-byte header) and the records
// over any number of reads: the caller passes everything received so far. `scratch` must hold
// at least bytes.size() bytes; the handshake message is reassembled there only once complete, so a
// call on an incomplete hello costs O(records seen), not O(bytes) (a client sending one byte at a
// time must not make routing quadratic). Never reads outside `bytes`, never allocates.
//
// The contract in detail:
// - Records: content type 22, version 3.0 to 3.4, length 1..kMaxRecordBytes, every record until
//   the hello is complete. The hello must end where a record ends (a client sends nothing else in
//   its first flight); `consumed` is that record's end, so bytes after it (a change_cipher_spec,
//   early data) are the caller's.
// - kNeedMore means no check has failed on the bytes so far, and says nothing about the body: the
//   body (lengths, extensions, names) is checked once, when the whole message is there. A header
//   that can no longer be valid (wrong type, a length over its limit) is kInvalid at once.
// - server_name: the first host_name entry, 1..255 bytes of letters, digits, '-', '.' and '_'
//   (a trailing dot is kept); a second server_name extension or host_name entry is kInvalid.
// - ALPN: 1..255-byte names, the first kMaxAlpn kept; a second ALPN extension is kInvalid.
// - `out` is reset on every call; `scratch` is written only when the hello is complete (an
//   undersized scratch then fails an EDGEPROXY_CHECK).
HelloStatus parse_client_hello(std::span<const std::byte> bytes, std::span<std::byte> scratch,
                               ClientHello& out) noexcept;

// What the first bytes look like: kFound when they start a TLS handshake record
// (0x16, 0x03, 0x00..0x04), kNeedMore when fewer than 3 bytes could still be one, kInvalid
// otherwise.
HelloStatus sniff_tls(std::span<const std::byte> bytes) noexcept;

}  // namespace edgeproxy::tls
