// Base64 (RFC 4648 section 4: the standard alphabet, with padding): encode, and a strict decode
// that accepts exactly what encode produces. Pure functions into caller buffers, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace edgeproxy {

// What base64_encode and base64_decode return on failure.
inline constexpr size_t kBase64Invalid = SIZE_MAX;

// Characters base64_encode writes for `bytes` bytes: 4 per started group of 3.
constexpr size_t base64_encoded_size(size_t bytes) noexcept {
  return (bytes / 3 + (bytes % 3 != 0 ? 1 : 0)) * 4;
}
// The most bytes base64_decode writes for `chars` characters.
constexpr size_t base64_decoded_max_size(size_t chars) noexcept {
  return chars / 4 * 3;
}

// Writes the base64 text of `bytes` to `out` and returns its length
// (base64_encoded_size(bytes.size())); kBase64Invalid, writing nothing, when out_size is
// smaller than that. No terminating NUL.
size_t base64_encode(std::string_view bytes, char* out, size_t out_size) noexcept;

// Decodes `text` into `out` and returns the number of bytes written. kBase64Invalid when `text`
// is not the exact output of base64_encode for some bytes:
// - a length that is not a multiple of 4 (padding is required);
// - a character outside A-Z a-z 0-9 + / (so no whitespace, no line breaks, no URL-safe - _);
// - "=" anywhere but as the last one or two characters, or three "=";
// - non-zero bits in the last character before the padding (RFC 4648 section 3.5 lets a decoder
//   refuse them; two texts decoding to the same bytes would otherwise be possible);
// - more decoded bytes than out_size (checked before anything is written).
// The empty text decodes to 0 bytes. On failure `out` may hold some bytes.
size_t base64_decode(std::string_view text, char* out, size_t out_size) noexcept;

}  // namespace edgeproxy
