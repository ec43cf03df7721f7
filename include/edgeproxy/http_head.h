// The one HTTP/1.x head parser, requests and responses: pure functions over bytes, no allocation,
// no syscalls. Strict the way a proxy that must not be desynchronised from its servers has to be
// (RFC 9112, RFC 9110): anything two parsers could read differently is refused, never repaired.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace edgeproxy::http {

enum class HeadStatus : uint8_t { kNeedMore, kDone, kInvalid };

inline constexpr uint32_t kMaxHeaders = 64;
inline constexpr uint32_t kMaxHeadBytes = 65536;  // a head larger than this is kInvalid

struct HeaderField {
  std::string_view name, value;  // value without surrounding blanks (SP, HT)
};

struct RequestHead {
  std::string_view method;  // e.g. "GET"
  // The request-target as sent: origin-form "/a?b", absolute-form "http://h:p/a?b",
  // authority-form "h:p" (CONNECT only) or "*" (OPTIONS only).
  std::string_view target;
  uint8_t version_minor = 1;  // HTTP/1.0 or HTTP/1.1 (others are kInvalid)
  std::array<HeaderField, kMaxHeaders> headers{};
  uint32_t header_count = 0;  // more than kMaxHeaders is kInvalid
  uint32_t length = 0;        // bytes through the blank line that ends the head
  // The Host header's value (empty when absent); two Host headers are kInvalid. For an
  // absolute-form target RFC 9112 section 3.2.2 makes the target's authority win over Host:
  // a router must look there first, or a client can name one host to the proxy and another to
  // the server.
  std::string_view host;
  // The path of the target: origin-form as is; absolute-form "http://h:p/x?y" -> "/x?y" ("/",
  // a static string and the only view not into the bytes, when the path is empty); else empty.
  std::string_view path;
};

// Parses the request head at the start of `bytes`. Views in `out` point into `bytes`; `out` is
// meaningful only after kDone. Bytes after the head (a body, a pipelined request) are not read.
//
// `scanned` carries, between calls on the same growing bytes, how many bytes were already
// checked, so a client sending one byte at a time costs O(n) in total, not O(n^2): start it at
// 0, and at 0 again for other bytes (a value past the end of `bytes` also starts over). Each
// byte is checked once as it arrives and each line once as its end arrives, so a bad first line
// or header line is kInvalid at once, before the head ends; the method is checked from its first
// byte (a TLS hello or a binary protocol is kInvalid on the first byte). kDone and kInvalid are
// final and a repeated call gives them again.
//
// kInvalid, besides bytes that break the grammar:
// - lines not ending in CRLF: a bare LF or a bare CR anywhere (a proxy accepting a bare LF
//   that its server does not would see different lines);
// - an empty line before the request line, or a blank (SP, HT) starting a header line
//   (obs-fold, and whitespace before the first header);
// - a request line other than `method SP target SP HTTP/1.0|HTTP/1.1` with single spaces
//   (the version is case-sensitive); the method a token; the target visible ASCII without "#"
//   (a fragment is never sent, and the proxy and the server would match different paths) and
//   without bytes above 0x7E (clients percent-encode them);
// - a target whose form does not fit the method: CONNECT takes authority-form with a port,
//   "*" only OPTIONS, otherwise origin-form ("/...") or absolute-form with scheme http or https,
//   an authority host_without_port() accepts (so no userinfo), and a path that is empty or
//   starts with "/" ("http://h?q" has no origin-form path to point to);
// - a field name that is not a token or has whitespace before the colon (a smuggling vector);
//   a field value with a control character other than HT;
// - more than kMaxHeaders fields; two Host fields; a non-empty Host value that
//   host_without_port() refuses; HTTP/1.1 without Host (RFC 9112 section 3.2: 400);
// - no end within kMaxHeadBytes.
// Content-Length, Transfer-Encoding and every other field are kept in `headers` uninterpreted.
HeadStatus parse_request_head(std::string_view bytes, uint32_t& scanned, RequestHead& out) noexcept;

// A response head (RFC 9112 section 4): `HTTP/1.0|HTTP/1.1 SP 3DIGIT SP reason CRLF`, then the
// fields, then CRLF.
struct ResponseHead {
  uint8_t version_minor = 1;  // HTTP/1.0 or HTTP/1.1 (others are kInvalid)
  uint16_t status = 0;        // 100 to 599
  std::string_view reason;    // the reason phrase as sent, possibly empty; never interpreted
  std::array<HeaderField, kMaxHeaders> headers{};
  uint32_t header_count = 0;  // more than kMaxHeaders is kInvalid
  uint32_t length = 0;        // bytes through the blank line that ends the head
};

// Parses the response head at the start of `bytes`, with parse_request_head's contract for
// `scanned`, views, kDone, kInvalid, line ends, field lines, kMaxHeaders and kMaxHeadBytes. The
// status line is checked from its first byte: bytes that do not start "HTTP/1." are kInvalid at
// once. kInvalid also: a version other than HTTP/1.0 or HTTP/1.1; a status code that is not three
// digits or is outside 100..599 (RFC 9110 section 15: those are invalid); a missing SP after the
// status code ("HTTP/1.1 200\r\n": the grammar requires it even when the reason is empty); a
// reason with a byte other than SP, HT, visible ASCII or obs-text. A 1xx head is a whole head:
// the caller parses the head that follows it (see response_framing() in http_framing.h).
// No field is interpreted, not even Content-Length or Transfer-Encoding.
HeadStatus parse_response_head(std::string_view bytes, uint32_t& scanned,
                               ResponseHead& out) noexcept;

// The host part of a Host value or an authority: "Example.COM:8080" -> "Example.COM",
// "[::1]:80" -> "::1" (an IPv6 literal loses its brackets, ready for resolving; a result holding
// ":" is always one). "" if malformed: empty host; a name with bytes other than letters, digits,
// "-", ".", "_" and "~" (no userinfo, no percent-encoding); a bracketed literal that is not an
// IPv6 address; a port that is empty, not digits or above 65535.
std::string_view host_without_port(std::string_view authority) noexcept;

// Case-insensitive ASCII equality (header names, hosts); other bytes compare exactly.
bool iequals(std::string_view a, std::string_view b) noexcept;

// RFC 9110 section 5.6.2 tchar, the bytes of a token (method, field name, coding, option).
bool is_token_char(char c) noexcept;

// A token: one or more tchar.
bool is_token(std::string_view s) noexcept;

// The bytes a field value may hold (RFC 9110 section 5.5): visible ASCII, obs-text (0x80-0xFF),
// SP and HT.
bool is_field_value_char(char c) noexcept;

// Whether the first bytes look like an HTTP/1.x request, cheaply: kDone when they start with a
// method of 1 to 16 letters A-Z followed by SP, kNeedMore while they are still such a prefix
// (including no bytes), kInvalid otherwise. The HTTP/2 preface "PRI * HTTP/2.0" passes here
// and is refused by parse_request_head.
HeadStatus sniff_http(std::string_view bytes) noexcept;

}  // namespace edgeproxy::http
