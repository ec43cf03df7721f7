// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2): read at the start of
// a connection on `accept-proxy` listeners, written before the first byte to a server with
// `proxy-protocol v1|v2`. Pure functions over caller-owned bytes: no syscalls, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "edgeproxy/net.h"

namespace edgeproxy::proxy_header {

enum class Status : uint8_t { kNeedMore, kDone, kInvalid };

// What a complete header said.
struct Parsed {
  uint32_t length = 0;   // bytes the header occupied (v1: through CRLF; v2: 16 + len), to skip
  uint8_t version = 0;   // 1 or 2
  bool local = false;    // v2 LOCAL command, or v1 "UNKNOWN", or v2 PROXY with the AF_UNSPEC or
                         // AF_UNIX family: no usable client address (keep the socket's own
                         // addresses)
  SocketAddress source;  // the original client (AF_INET/AF_INET6) when !local
  SocketAddress destination;  // the address the client connected to when !local
};

// The longest v1 line, CRLF included (the spec's worst case).
inline constexpr uint32_t kMaxV1Bytes = 107;
// The longest v2 header parse() accepts, 16 fixed bytes included. The format allows 16 + 65535;
// known senders (HAProxy's SSL, authority and unique-id TLVs, the AWS, GCP and Azure load
// balancers' TLVs) write well under 1 KiB. A longer header is refused as soon as its length field
// arrives instead of being waited for, and a header always fits one client buffer.
inline constexpr uint32_t kMaxV2Bytes = 4096;
// What build() may write at most, for callers' arrays (v2 IPv6 = 52, v1 <= 104: a TCP6 line with
// two 39-character addresses; 108 is the spec's line buffer).
inline constexpr uint32_t kMaxBuiltBytes = 108;

// Reads a PROXY header at the start of `bytes` (everything the client sent so far) and fills
// `out` on kDone only; `out.length` bytes are the header, what follows is the client's data.
// kNeedMore while the bytes are a valid prefix of a v1 or v2 header; kInvalid as soon as they
// cannot be one, so a client that is not speaking PROXY is refused at its first wrong byte (within
// a v1 address, when the field's alphabet or length rules it out, else at its closing space).
// Never reads outside `bytes`.
// v1 (strict): "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n" with single spaces, addresses
// inet_pton accepts for the family (so no leading zeros in IPv4), decimal ports 0-65535 without
// sign or leading zero (the spec forbids them), at most kMaxV1Bytes; "PROXY UNKNOWN" then
// CRLF or a space and anything but a lone CR or LF up to the CRLF (local). A lone CR or LF is
// never a line end.
// v2: the 12-byte signature, version 2, then the command.
//  - LOCAL (0): local; the family byte and the whole block are skipped unread, as the spec says.
//  - PROXY (1): TCP over IPv4 (0x11, block >= 12 bytes) or IPv6 (0x21, >= 36) give the
//    addresses; UNIX stream (0x31, >= 216) and UNSPEC (0x00, block skipped) are local; UDP
//    (0x12, 0x22, 0x32) and unassigned values are kInvalid since we proxy streams. TLVs after
//    the addresses (not after an UNSPEC block, whose layout is unknown) must tile the rest of the
//    block exactly (type, 16-bit length, value), else kInvalid; a PP2_TYPE_CRC32C TLV must be
//    4 bytes, appear once, and match the header's CRC32c. Other TLVs are skipped.
//  - any other version or command, or 16 + len > kMaxV2Bytes: kInvalid.
Status parse(std::span<const std::byte> bytes, Parsed& out) noexcept;

// Whether `bytes` start like a PROXY header ("PROXY " or the 12-byte v2 signature), for the
// routing `protocol proxy` matcher: kDone (looks like one), kNeedMore (too few bytes to tell,
// including none), kInvalid (cannot be one).
Status sniff(std::span<const std::byte> bytes) noexcept;

// Writes into `out` a header saying the connection came from `source` to `destination` and
// returns its length. `version` is 1 or 2 (checked). An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
// counts as IPv4. Both IPv4: "PROXY TCP4 ..." / v2 PROXY over AF_INET. Else each IPv4 or IPv6:
// "PROXY TCP6 ..." / v2 PROXY over AF_INET6, an IPv4 address written IPv4-mapped, so mixed
// families still carry the client's address. Anything else (Unix, unset): "PROXY UNKNOWN\r\n" /
// v2 LOCAL with no address block, and the server keeps the connection's own addresses.
uint32_t build(uint8_t version, const SocketAddress& source, const SocketAddress& destination,
               std::span<std::byte, kMaxBuiltBytes> out) noexcept;

}  // namespace edgeproxy::proxy_header
