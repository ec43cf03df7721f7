// Base64: the RFC 4648 section 10 vectors both ways, round trips of every byte value, and the
// strict decoder's refusals (truncation, padding, stray bits, whitespace, other alphabets, small
// buffers).
#include "edgeproxy/base64.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <string>
#include <string_view>

namespace edgeproxy {
namespace {

using namespace std::string_literals;

std::string encode(std::string_view bytes) {
  std::string out(base64_encoded_size(bytes.size()), '\0');
  const size_t n = base64_encode(bytes, out.data(), out.size());
  EXPECT_EQ(n, out.size());
  return out;
}

// The decoded bytes, or "<invalid>".
std::string decode(std::string_view text) {
  std::string out(base64_decoded_max_size(text.size()), '\0');
  const size_t n = base64_decode(text, out.data(), out.size());
  if (n == kBase64Invalid) return "<invalid>";
  EXPECT_LE(n, out.size());
  out.resize(n);
  return out;
}

TEST(Base64Test, Rfc4648Vectors) {
  const std::pair<std::string_view, std::string_view> vectors[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [bytes, text] : vectors) {
    EXPECT_EQ(encode(bytes), text);
    EXPECT_EQ(decode(text), bytes);
  }
}

TEST(Base64Test, RoundTripsEveryByteValueAndLength) {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  for (size_t length = 0; length <= all.size(); ++length) {
    const std::string bytes = all.substr(256 - length);
    ASSERT_EQ(decode(encode(bytes)), bytes) << length;
  }
  EXPECT_EQ(encode("\xFB\xFF\xBF"s), "+/+/");
  EXPECT_EQ(decode("+/+/"), "\xFB\xFF\xBF"s);
  EXPECT_EQ(encode("\0\0\0"s), "AAAA");
}

TEST(Base64Test, RefusesTruncatedText) {
  const std::string text = encode("user:password with some length");
  for (size_t n = 0; n < text.size(); ++n) {
    const std::string prefix = text.substr(0, n);
    if (n % 4 == 0) {
      EXPECT_NE(decode(prefix), "<invalid>") << prefix;
    } else {
      EXPECT_EQ(decode(prefix), "<invalid>") << prefix;
    }
  }
  EXPECT_EQ(decode("Zg"), "<invalid>");  // unpadded
  EXPECT_EQ(decode("Zg="), "<invalid>");
  EXPECT_EQ(decode("Zm8"), "<invalid>");
}

TEST(Base64Test, RefusesMisplacedPadding) {
  for (const std::string_view text :
       {"Zg===", "====", "A===", "Z===", "=Zg=", "==Zg", "Zg==Zg==", "Zg=a", "Z=g=", "Zm9v===="}) {
    EXPECT_EQ(decode(text), "<invalid>") << text;
  }
}

// RFC 4648 section 3.5: the bits after the last whole byte are zero in canonical text.
TEST(Base64Test, RefusesNonZeroTrailingBits) {
  EXPECT_EQ(decode("Zg=="), "f");
  for (const std::string_view text : {"Zh==", "Zi==", "Zp==", "Zv=="}) {
    EXPECT_EQ(decode(text), "<invalid>") << text;
  }
  EXPECT_EQ(decode("Zm8="), "fo");
  for (const std::string_view text : {"Zm9=", "Zm+=", "Zm/=", "Zm5="}) {
    EXPECT_EQ(decode(text), "<invalid>") << text;
  }
}

TEST(Base64Test, RefusesEveryCharacterOutsideTheAlphabet) {
  const std::string_view alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int c = 0; c < 256; ++c) {
    const char ch = static_cast<char>(c);
    if (alphabet.find(ch) != std::string_view::npos) continue;
    for (size_t at = 0; at < 4; ++at) {
      std::string text = "Zm9vYmFy";
      text[4 + at] = ch;
      if (ch == '=' && at >= 2) continue;  // valid padding positions, tested above
      EXPECT_EQ(decode(text), "<invalid>") << "byte " << c << " at " << at;
    }
  }
}

TEST(Base64Test, RefusesWhitespaceAndOtherAlphabets) {
  for (const std::string_view text :
       {" Zm9v", "Zm9v ", "Zm 9v", "Zm9v\n", "Zm9v\r\n", "Zm9\tv", "Zm9v\n\nYmFy", "Zm-_"}) {
    EXPECT_EQ(decode(text), "<invalid>") << text;
  }
  EXPECT_EQ(decode("Zm9v\0AAA"s), "<invalid>");
}

TEST(Base64Test, RefusesSmallBuffersBeforeWriting) {
  char out[8];
  std::fill(std::begin(out), std::end(out), 'x');
  EXPECT_EQ(base64_decode("Zm9vYmFy", out, 5), kBase64Invalid);
  EXPECT_EQ(std::string_view(out, 8), "xxxxxxxx");
  EXPECT_EQ(base64_decode("Zm9vYg==", out, 3), kBase64Invalid);
  EXPECT_EQ(base64_decode("Zm9vYg==", out, 4), 4u);
  EXPECT_EQ(std::string_view(out, 4), "foob");
  EXPECT_EQ(base64_decode("", nullptr, 0), 0u);

  std::fill(std::begin(out), std::end(out), 'x');
  EXPECT_EQ(base64_encode("foob", out, 7), kBase64Invalid);
  EXPECT_EQ(std::string_view(out, 8), "xxxxxxxx");
  EXPECT_EQ(base64_encode("foob", out, 8), 8u);
  EXPECT_EQ(std::string_view(out, 8), "Zm9vYg==");
  EXPECT_EQ(base64_encode("", nullptr, 0), 0u);
}

TEST(Base64Test, Sizes) {
  EXPECT_EQ(base64_encoded_size(0), 0u);
  EXPECT_EQ(base64_encoded_size(1), 4u);
  EXPECT_EQ(base64_encoded_size(3), 4u);
  EXPECT_EQ(base64_encoded_size(4), 8u);
  EXPECT_EQ(base64_decoded_max_size(0), 0u);
  EXPECT_EQ(base64_decoded_max_size(4), 3u);
  EXPECT_EQ(base64_decoded_max_size(7), 3u);
  EXPECT_EQ(base64_decoded_max_size(8), 6u);
}

}  // namespace
}  // namespace edgeproxy
