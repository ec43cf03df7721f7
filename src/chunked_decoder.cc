// The chunked transfer coding framer; see chunked_decoder.h. One switch per byte outside chunk
// data; chunk data is skipped by counting.
#include "edgeproxy/chunked_decoder.h"

#include <algorithm>
#include <limits>

#include "edgeproxy/check.h"
#include "edgeproxy/http_head.h"

namespace edgeproxy::http {

namespace {

int hex_value(unsigned char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool tchar(unsigned char c) noexcept {
  return is_token_char(static_cast<char>(c));
}

// RFC 9110 section 5.6.4: qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text.
bool qdtext(unsigned char c) noexcept {
  return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) ||
         (c >= 0x5D && c <= 0x7E) || c >= 0x80;
}

// quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).
bool quotable(unsigned char c) noexcept {
  return c == '\t' || c == ' ' || (c >= 0x21 && c <= 0x7E) || c >= 0x80;
}

}  // namespace

bool ChunkedDecoder::step(unsigned char c) noexcept {
  switch (state_) {
    case State::kSizeFirst:
    case State::kSize:
    case State::kExtNameFirst:
    case State::kExtName:
    case State::kExtValueFirst:
    case State::kExtToken:
    case State::kExtQuoted:
    case State::kExtQuotedPair:
    case State::kExtAfterQuoted:
    case State::kSizeLf:
      if (++line_bytes_ > kMaxChunkLineBytes) return false;
      break;
    case State::kTrailerStart:
    case State::kTrailerName:
    case State::kTrailerValue:
    case State::kTrailerLf:
    case State::kFinalLf:
      if (++trailer_bytes_ > kMaxTrailerBytes) return false;
      break;
    case State::kData:
    case State::kDataCr:
    case State::kDataLf:
    case State::kDone:
    case State::kInvalid:
      break;
  }

  switch (state_) {
    case State::kSizeFirst:
    case State::kSize: {
      const int digit = hex_value(c);
      if (digit >= 0) {
        const auto d = static_cast<uint64_t>(digit);
        if (++digits_ > kMaxChunkSizeDigits || remaining_ > (kMaxChunkSize - d) / 16) return false;
        remaining_ = remaining_ * 16 + d;
        state_ = State::kSize;
        return true;
      }
      if (state_ == State::kSizeFirst) return false;
      if (c == ';') {
        state_ = State::kExtNameFirst;
      } else if (c == '\r') {
        state_ = State::kSizeLf;
      } else {
        return false;
      }
      return true;
    }
    case State::kExtNameFirst:
      if (!tchar(c)) return false;
      state_ = State::kExtName;
      return true;
    case State::kExtName:
      if (tchar(c)) return true;
      if (c == '=') {
        state_ = State::kExtValueFirst;
        return true;
      }
      break;  // ";" or CR, below
    case State::kExtValueFirst:
      if (c == '"') {
        state_ = State::kExtQuoted;
      } else if (tchar(c)) {
        state_ = State::kExtToken;
      } else {
        return false;
      }
      return true;
    case State::kExtToken:
      if (tchar(c)) return true;
      break;
    case State::kExtQuoted:
      if (c == '"') {
        state_ = State::kExtAfterQuoted;
      } else if (c == '\\') {
        state_ = State::kExtQuotedPair;
      } else if (!qdtext(c)) {
        return false;
      }
      return true;
    case State::kExtQuotedPair:
      if (!quotable(c)) return false;
      state_ = State::kExtQuoted;
      return true;
    case State::kExtAfterQuoted:
      break;
    case State::kSizeLf:
      if (c != '\n') return false;
      line_bytes_ = 0;
      digits_ = 0;
      state_ = remaining_ == 0 ? State::kTrailerStart : State::kData;
      return true;
    case State::kDataCr:
      if (c != '\r') return false;
      state_ = State::kDataLf;
      return true;
    case State::kDataLf:
      if (c != '\n') return false;
      state_ = State::kSizeFirst;
      return true;
    case State::kTrailerStart:
      if (c == '\r') {
        state_ = State::kFinalLf;
      } else if (tchar(c)) {
        state_ = State::kTrailerName;
      } else {
        return false;  // a blank (obs-fold) or a byte that cannot start a name
      }
      return true;
    case State::kTrailerName:
      if (c == ':') {
        state_ = State::kTrailerValue;
        return true;
      }
      return tchar(c);
    case State::kTrailerValue:
      if (c == '\r') {
        state_ = State::kTrailerLf;
        return true;
      }
      return is_field_value_char(static_cast<char>(c));
    case State::kTrailerLf:
      if (c != '\n') return false;
      state_ = State::kTrailerStart;
      return true;
    case State::kFinalLf:
      if (c != '\n') return false;
      state_ = State::kDone;
      return true;
    case State::kData:
    case State::kDone:
    case State::kInvalid:
      return false;  // consume() never steps these
  }
  // After an extension name, token value or quoted value: another extension or the line's end.
  if (c == ';') {
    state_ = State::kExtNameFirst;
  } else if (c == '\r') {
    state_ = State::kSizeLf;
  } else {
    return false;
  }
  return true;
}

BodyProgress ChunkedDecoder::consume(std::span<const std::byte> bytes) noexcept {
  EDGEPROXY_CHECK(bytes.size() <= std::numeric_limits<uint32_t>::max());
  if (state_ == State::kDone) return {0, BodyStatus::kDone};
  if (state_ == State::kInvalid) return {0, BodyStatus::kInvalid};
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    if (state_ == State::kData) {
      const auto take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - i));
      i += take;
      remaining_ -= take;
      if (remaining_ == 0) state_ = State::kDataCr;
      continue;
    }
    if (!step(std::to_integer<unsigned char>(bytes[i]))) {
      state_ = State::kInvalid;
      return {static_cast<uint32_t>(i), BodyStatus::kInvalid};
    }
    ++i;
    if (state_ == State::kDone) return {static_cast<uint32_t>(i), BodyStatus::kDone};
  }
  return {static_cast<uint32_t>(n), BodyStatus::kMore};
}

void ChunkedDecoder::skip_data(uint64_t n) noexcept {
  EDGEPROXY_CHECK(n <= remaining_data());
  if (n == 0) return;
  remaining_ -= n;
  if (remaining_ == 0) state_ = State::kDataCr;
}

}  // namespace edgeproxy::http
