// The chunked transfer coding (RFC 9112 section 7.1), framed as it streams past: where a chunked
// body ends, without changing or holding a byte of it, so the proxy forwards the bytes as they
// arrived. Strict, because a proxy and a server that end a body in different places are desynced.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace edgeproxy::http {

enum class BodyStatus : uint8_t {
  kMore,     // every byte given belongs to the body, and the body goes on
  kDone,     // the body ended; the bytes after `used` are not the body's (the next message)
  kInvalid,  // the bytes cannot be this body; `used` bytes before the offending one were valid
};

struct BodyProgress {
  uint32_t used = 0;  // bytes of the given span that belong to the body (kMore: all of them)
  BodyStatus status = BodyStatus::kMore;
};

// A chunk-size line (digits, extensions and CRLF) longer than this is kInvalid.
inline constexpr uint32_t kMaxChunkLineBytes = 4096;
// A trailer section (every trailer field line and the final CRLF) longer than this is kInvalid.
inline constexpr uint32_t kMaxTrailerBytes = 8192;
// Chunk sizes are 1 to 16 hex digits and at most 2^63 - 1: a server that keeps the size in a
// signed 64-bit integer (off_t, int64_t) must read the same number we do.
inline constexpr uint32_t kMaxChunkSizeDigits = 16;
inline constexpr uint64_t kMaxChunkSize = 0x7fffffffffffffff;

// One chunked body, from the first byte of its first chunk-size line through the CRLF that ends
// its trailer section. Single-threaded; no allocation; holds no pointer into the bytes, so the
// caller may forward and reuse its buffer after every call.
//
// The grammar accepted, byte for byte; everything else is kInvalid:
//   chunk-size   1 to 16 hex digits (either case), value <= kMaxChunkSize; no sign, no "0x",
//                no whitespace anywhere in the line (BWS is refused: "5 ;x" and "5\t" are read
//                differently by different servers)
//   extensions   *( ";" token [ "=" ( token / quoted-string ) ] ), ignored; quoted-string with
//                qdtext and quoted-pair as RFC 9110 section 5.6.4 defines them
//   line end     CRLF only: a bare LF, or a CR not followed by LF, is refused
//   line length  the size line through its LF at most kMaxChunkLineBytes
//   chunk data   exactly chunk-size bytes, then exactly CRLF
//   last chunk   a size of zero ("0", "000"), extensions allowed, CRLF
//   trailers     field lines as parse_request_head() checks them (token name, ":" right after
//                it, value bytes of is_field_value_char(); no obs-fold, no blank before a name),
//                then CRLF; at most kMaxTrailerBytes in all
// The result depends only on the bytes, never on how they were split across calls.
class ChunkedDecoder {
 public:
  // Consumes the next bytes of the body (`bytes.size()` at most UINT32_MAX, checked). kMore: all
  // of them belong to the body and more are needed. kDone: the body (last chunk, trailers, final
  // CRLF) ended after `used` bytes. kInvalid: the byte at `used` breaks the grammar. kDone and
  // kInvalid are final: later calls return them again with `used` 0, until reset().
  BodyProgress consume(std::span<const std::byte> bytes) noexcept;

  // Bytes of the current chunk's data still to come (0 outside chunk data): the caller may
  // forward that many without calling consume(), e.g. to bound a read or a splice, and then must
  // call consume() with the bytes that follow them. A proxy that forwards data it did not pass
  // through consume() tells the decoder with skip_data().
  uint64_t remaining_data() const noexcept { return state_ == State::kData ? remaining_ : 0; }

  // Accounts for `n` <= remaining_data() bytes of chunk data forwarded without consume().
  void skip_data(uint64_t n) noexcept;

  // Whether the body ended (kDone) or was refused (kInvalid).
  bool done() const noexcept { return state_ == State::kDone; }
  bool failed() const noexcept { return state_ == State::kInvalid; }

  // Starts over, for the next chunked body.
  void reset() noexcept { *this = ChunkedDecoder(); }

 private:
  enum class State : uint8_t {
    kSizeFirst,       // the first hex digit of a chunk-size
    kSize,            // more hex digits, ";" or CR
    kExtNameFirst,    // after ";": the first byte of an extension name
    kExtName,         // name bytes, "=", ";" or CR
    kExtValueFirst,   // after "=": DQUOTE or the first byte of a token
    kExtToken,        // token value bytes, ";" or CR
    kExtQuoted,       // inside a quoted-string
    kExtQuotedPair,   // after a backslash inside a quoted-string
    kExtAfterQuoted,  // after the closing DQUOTE: ";" or CR
    kSizeLf,          // after the size line's CR
    kData,            // chunk data, remaining_ bytes to go
    kDataCr,          // the CR after chunk data
    kDataLf,          // the LF after chunk data
    kTrailerStart,    // the first byte of a trailer field line, or the CR of the final CRLF
    kTrailerName,     // field name bytes or ":"
    kTrailerValue,    // field value bytes or CR
    kTrailerLf,       // after a trailer line's CR
    kFinalLf,         // after the final CR
    kDone,
    kInvalid,
  };

  // One byte outside chunk data; false when it breaks the grammar.
  bool step(unsigned char c) noexcept;

  uint64_t remaining_ = 0;   // the size line's states: the size so far; kData: bytes to go
  uint32_t line_bytes_ = 0;  // bytes of the current size line so far
  uint32_t trailer_bytes_ = 0;
  uint8_t digits_ = 0;  // hex digits of the current chunk-size so far
  State state_ = State::kSizeFirst;
};

}  // namespace edgeproxy::http
