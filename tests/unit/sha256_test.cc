// SHA-256: the FIPS 180-4 / NIST example vectors, lengths around the padding boundaries, and the
// same digest however the message is split over update() calls.
#include "edgeproxy/sha256.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>

namespace edgeproxy {
namespace {

std::string hex(const Sha256Digest& d) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (const uint8_t b : d) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

TEST(Sha256Test, NistVectors) {
  EXPECT_EQ(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(
      hex(sha256("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmn"
                 "opqklmnopqrlmnopqrsmnopqrstnopqrstu")),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256Test, OneMillionA) {
  const std::string a(1000000, 'a');
  EXPECT_EQ(hex(sha256(a)), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // The same million in 1000 updates of 1000.
  Sha256 h;
  for (int i = 0; i < 1000; ++i) h.update(std::string_view(a).substr(0, 1000));
  EXPECT_EQ(hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// 55 bytes is the longest message padded within one block, 56 the shortest that needs two.
TEST(Sha256Test, PaddingBoundaries) {
  struct Case {
    size_t length;
    const char* digest;
  };
  const Case cases[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(hex(sha256(std::string(c.length, 'a'))), c.digest) << c.length;
  }
}

TEST(Sha256Test, SplitUpdatesGiveTheSameDigest) {
  std::mt19937 rng(12);
  std::string message(300, '\0');
  for (char& c : message) c = static_cast<char>(rng());
  const std::string_view m(message);
  for (size_t length : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 127u, 128u, 129u, 300u}) {
    const Sha256Digest whole = sha256(m.substr(0, length));
    for (size_t cut = 0; cut <= length; ++cut) {
      Sha256 h;
      h.update(m.substr(0, cut));
      h.update(m.substr(cut, length - cut));
      ASSERT_EQ(h.finish(), whole) << "length " << length << " cut at " << cut;
    }
    Sha256 h;
    for (size_t i = 0; i < length; ++i) h.update(m.substr(i, 1));
    EXPECT_EQ(h.finish(), whole) << "byte at a time, length " << length;
  }
}

TEST(Sha256Test, FinishResetsAndEmptyUpdatesDoNothing) {
  Sha256 h;
  h.update("abc");
  h.update(nullptr, 0);
  h.update("");
  const Sha256Digest first = h.finish();
  EXPECT_EQ(first, sha256("abc"));
  EXPECT_EQ(h.finish(), sha256(""));
  h.update("xyz");
  h.reset();
  h.update("abc");
  EXPECT_EQ(h.finish(), first);
}

}  // namespace
}  // namespace edgeproxy
