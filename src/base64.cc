// RFC 4648 base64 with strict decoding; see base64.h.
#include "edgeproxy/base64.h"

#include <array>

namespace edgeproxy {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr uint8_t kNotBase64 = 0xFF;

constexpr std::array<uint8_t, 256> make_values() noexcept {
  std::array<uint8_t, 256> t{};
  for (uint8_t& v : t) v = kNotBase64;
  for (uint8_t i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = i;
  return t;
}

constexpr std::array<uint8_t, 256> kValues = make_values();

uint8_t value_of(char c) noexcept {
  return kValues[static_cast<unsigned char>(c)];
}

}  // namespace

size_t base64_encode(std::string_view bytes, char* out, size_t out_size) noexcept {
  const size_t length = base64_encoded_size(bytes.size());
  if (length > out_size) return kBase64Invalid;
  const auto* in = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0, o = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t group = (uint32_t{in[i]} << 16) | (uint32_t{in[i + 1]} << 8) | in[i + 2];
    out[o++] = kAlphabet[group >> 18];
    out[o++] = kAlphabet[(group >> 12) & 63];
    out[o++] = kAlphabet[(group >> 6) & 63];
    out[o++] = kAlphabet[group & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    const uint32_t group = (uint32_t{in[i]} << 16) | (rest == 2 ? uint32_t{in[i + 1]} << 8 : 0);
    out[o++] = kAlphabet[group >> 18];
    out[o++] = kAlphabet[(group >> 12) & 63];
    out[o++] = rest == 2 ? kAlphabet[(group >> 6) & 63] : '=';
    out[o++] = '=';
  }
  return length;
}

size_t base64_decode(std::string_view text, char* out, size_t out_size) noexcept {
  if (text.size() % 4 != 0) return kBase64Invalid;
  if (text.empty()) return 0;
  // Padding: "xx==" carries one byte, "xxx=" two; "=" elsewhere fails the value check below.
  size_t pad = 0;
  if (text.back() == '=') pad = text[text.size() - 2] == '=' ? 2 : 1;
  const size_t length = base64_decoded_max_size(text.size()) - pad;
  if (length > out_size) return kBase64Invalid;

  const size_t full = text.size() - (pad > 0 ? 4 : 0);  // characters in unpadded groups
  size_t o = 0;
  for (size_t i = 0; i < full; i += 4) {
    const uint8_t a = value_of(text[i]), b = value_of(text[i + 1]);
    const uint8_t c = value_of(text[i + 2]), d = value_of(text[i + 3]);
    if (((a | b | c | d) & 0xC0) != 0) return kBase64Invalid;  // kNotBase64 has them set
    const uint32_t group = (uint32_t{a} << 18) | (uint32_t{b} << 12) | (uint32_t{c} << 6) | d;
    out[o++] = static_cast<char>(group >> 16);
    out[o++] = static_cast<char>(group >> 8);
    out[o++] = static_cast<char>(group);
  }
  if (pad == 0) return length;

  const std::string_view last = text.substr(full);
  const uint8_t a = value_of(last[0]), b = value_of(last[1]);
  const uint8_t c = pad == 1 ? value_of(last[2]) : 0;
  if (((a | b | c) & 0xC0) != 0) return kBase64Invalid;
  // The bits past the last whole byte must be zero: 4 of b for one byte, 2 of c for two.
  if (pad == 2 ? (b & 0x0F) != 0 : (c & 0x03) != 0) return kBase64Invalid;
  const uint32_t group = (uint32_t{a} << 18) | (uint32_t{b} << 12) | (uint32_t{c} << 6);
  out[o++] = static_cast<char>(group >> 16);
  if (pad == 1) out[o++] = static_cast<char>(group >> 8);
  return length;
}

}  // namespace edgeproxy
