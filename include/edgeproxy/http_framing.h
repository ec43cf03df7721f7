// Where an HTTP/1.x message's body ends (RFC 9112 section 6), decided from a parsed head, and the
// Connection field's options. Pure functions, no allocation. Every framing a request smuggling
// attack relies on (two parsers ending a body in different places) is refused with its reason,
// never repaired.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

#include "edgeproxy/chunked_decoder.h"
#include "edgeproxy/http_head.h"

namespace edgeproxy::http {

enum class BodyKind : uint8_t {
  kNone,        // no body: the next bytes are the next message
  kLength,      // exactly Framing::length bytes (never 0: Content-Length: 0 is kNone)
  kChunked,     // the chunked coding (ChunkedDecoder)
  kUntilClose,  // responses only: the body ends when the server closes
  kTunnel,      // CONNECT, or a 101 or 2xx-to-CONNECT response: the bytes after the head are
                // another protocol, relayed both ways until either side closes
};

struct Framing {
  BodyKind kind = BodyKind::kNone;
  uint64_t length = 0;  // kLength only
  // The connection ends after this message: "Connection: close", HTTP/1.0 without
  // "Connection: keep-alive", kUntilClose, or kTunnel (no HTTP message follows on it).
  bool close = false;
  // Responses only: a 1xx other than 101 (100 Continue, 103 Early Hints): an interim head, no
  // body; the final response's head follows on the same connection.
  bool interim = false;
};

// Why a head's framing is refused. Each is a request smuggling or response splitting vector.
enum class FramingStatus : uint8_t {
  kOk,
  kContentLengthAndTransferEncoding,  // both fields (RFC 9112 section 6.3 point 3)
  kRepeatedContentLength,             // two Content-Length fields, even equal, or a list "5, 5"
  kBadContentLength,                  // empty, not only digits ("+5", "-1", "0x5", "5 5"), or
                                      // above kMaxContentLength
  kRepeatedTransferEncoding,          // requests: two Transfer-Encoding fields
  kBadTransferEncoding,               // see request_framing() and response_framing()
  kTransferEncodingInHttp10,          // RFC 9112 section 6.1: HTTP/1.0 has no Transfer-Encoding
  kBodyOnConnect,                     // CONNECT with Transfer-Encoding or Content-Length above 0
  kBadConnection,                     // see parse_connection()
};

// The enumerator's name without its "k", e.g. "RepeatedContentLength", for logs.
const char* to_string(FramingStatus status) noexcept;

// The largest Content-Length accepted: 2^63 - 1, so that a server holding it in a signed 64-bit
// integer (off_t, int64_t) reads the same number.
inline constexpr uint64_t kMaxContentLength = 0x7fffffffffffffff;

// The distinct options of all Connection fields a parse_connection() keeps; more is refused.
inline constexpr uint32_t kMaxConnectionOptions = 16;

// The options of a head's Connection fields (RFC 9110 section 7.6.1). Views point into the head.
struct ConnectionTokens {
  // Each distinct option once (compared case-insensitively), as first sent, including "close",
  // "keep-alive" and "upgrade". Repeats ("a, A", or one field naming "a" twice) are kept once, so
  // a field that names itself or one header many times costs one entry, and no count of entries
  // can overflow the array.
  std::array<std::string_view, kMaxConnectionOptions> options{};
  uint32_t count = 0;
  bool close = false;       // "close" was among them
  bool keep_alive = false;  // "keep-alive"
  bool upgrade = false;     // "upgrade"

  // Whether `field_name` is one of the options (case-insensitive): a field the sender declared
  // hop-by-hop. Answers "Connection" too when a sender named it.
  bool names(std::string_view field_name) const noexcept;
};

// Collects the options of every field of `headers` named Connection (case-insensitive) into
// `out` (reset first). Each field value is a comma-separated list; blanks (SP, HT) around the
// commas and empty elements (",", "a,,b", ", a") are allowed, as RFC 9110 section 5.6.1 asks.
// False (and `out` partial) when an element is not a token (a quoted string, "a b", "a;x": the
// option a proxy and a server would drop could differ) or when there are more than
// kMaxConnectionOptions distinct options: a sender has no use for so many, and refusing is
// safer than forwarding hop-by-hop fields the proxy did not look at.
bool parse_connection(std::span<const HeaderField> headers, ConnectionTokens& out) noexcept;

// How a request's body is delimited, into `out` on kOk. The checks, in this order (the first
// failing one is returned), each refusing a message two parsers could frame differently:
//  - more than one Content-Length field (even with equal values), or one whose value is a list:
//    kRepeatedContentLength;
//  - more than one Transfer-Encoding field: kRepeatedTransferEncoding;
//  - both fields: kContentLengthAndTransferEncoding;
//  - Transfer-Encoding in an HTTP/1.0 request: kTransferEncodingInHttp10;
//  - a Content-Length that is not 1 or more digits (no sign, no blanks inside) or is above
//    kMaxContentLength: kBadContentLength;
//  - a Transfer-Encoding other than exactly "chunked" (any case): kBadTransferEncoding. That
//    includes a list ending in chunked, such as "gzip, chunked": legal, but no server decodes
//    a request's other codings, and every extra element ("chunked, chunked", "chunked,",
//    ", chunked", "chunked;x", "\"chunked\"") is a way for two parsers to disagree on whether the
//    body is chunked. The value's surrounding blanks are already gone (the head parser trims SP
//    and HT); anything else next to the word, such as a vertical tab or 0xA0, makes it not
//    "chunked";
//  - Connection fields parse_connection() refuses: kBadConnection;
//  - CONNECT with Transfer-Encoding or with Content-Length above 0: kBodyOnConnect (RFC 9110
//    section 9.3.6: a CONNECT request has no content; bytes after its head are the tunnel's).
// Then: CONNECT is kTunnel; Transfer-Encoding chunked is kChunked; Content-Length above 0 is
// kLength; otherwise kNone (a request without either has no body). `close` as Framing says.
FramingStatus request_framing(const RequestHead& head, Framing& out) noexcept;

// How the body of a response to a request with method `request_method` is delimited, into `out`
// on kOk. The header checks are request_framing()'s, made on every response, even one with no
// body, except that Transfer-Encoding may be a list over one or more fields (RFC 9112 section
// 6.1 lets a server apply codings before chunked): each element must be a token (no parameters),
// and "chunked" may appear once, last; else kBadTransferEncoding. Then, by RFC 9112 section 6.3:
//  - 101 Switching Protocols: kTunnel. The caller checks that the request asked to upgrade (a
//    101 the client did not ask for must not turn the connection into a tunnel);
//  - another 1xx: kNone with `interim` set;
//  - a 2xx to CONNECT: kTunnel;
//  - a response to HEAD, 204 and 304: kNone, whatever Content-Length says;
//  - Transfer-Encoding ending in chunked: kChunked; other Transfer-Encoding: kUntilClose;
//  - Content-Length above 0: kLength; Content-Length: 0: kNone;
//  - otherwise kUntilClose.
// `close` as Framing says.
FramingStatus response_framing(const ResponseHead& head, std::string_view request_method,
                               Framing& out) noexcept;

// A message body of any framing, followed as it streams past without changing a byte: kLength
// counts, kChunked runs a ChunkedDecoder, kNone is done before its first byte, kUntilClose and
// kTunnel are never done (the caller ends them at EOF). Single-threaded; no allocation.
class BodyFramer {
 public:
  BodyFramer() noexcept = default;
  explicit BodyFramer(const Framing& framing) noexcept { reset(framing); }

  // Starts following a body framed as `framing` says.
  void reset(const Framing& framing) noexcept;

  // ChunkedDecoder::consume()'s contract, for every kind: kMore (all used), kDone after `used`
  // bytes (kNone: 0; kLength: when the count is reached), kInvalid (kChunked only). Final.
  BodyProgress consume(std::span<const std::byte> bytes) noexcept;

  // Body bytes known to follow without another look: kLength the bytes left, kChunked
  // ChunkedDecoder::remaining_data(), else 0.
  uint64_t remaining() const noexcept;

  // Accounts for `n` <= remaining() bytes forwarded without consume() (spliced, decision 0015).
  // True when that ended the body (kLength only: a chunk's data is followed by its CRLF).
  bool skip(uint64_t n) noexcept;

  BodyKind kind() const noexcept { return kind_; }

 private:
  ChunkedDecoder chunked_;
  uint64_t left_ = 0;  // kLength: bytes still to come
  BodyKind kind_ = BodyKind::kNone;
};

}  // namespace edgeproxy::http
