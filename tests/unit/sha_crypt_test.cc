// SHA-256-crypt: every SHA-256 vector of Drepper's spec, a hash made by `openssl passwd -5`,
// password lengths around the digest size, parse/format round trips, constant-time compare,
// and the refusal of malformed stored hashes (including every truncation and byte mutation).
#include "edgeproxy/sha_crypt.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "edgeproxy/constant_time.h"

namespace edgeproxy {
namespace {

std::string crypt(std::string_view password, std::string_view setting) {
  char out[kSha256CryptMaxChars];
  const size_t n = sha256_crypt(password, setting, out, sizeof out);
  return std::string(out, n);
}

std::string format(const Sha256CryptHash& hash) {
  char out[kSha256CryptMaxChars];
  const size_t n = format_sha256_crypt(hash, out, sizeof out);
  return std::string(out, n);
}

// The reason parse_sha256_crypt gives, or "" when it accepts.
std::string refusal(std::string_view stored) {
  Sha256CryptHash hash;
  const char* reason = nullptr;
  if (parse_sha256_crypt(stored, hash, &reason)) return "";
  EXPECT_NE(reason, nullptr);
  return reason != nullptr ? reason : "(no reason)";
}

struct Vector {
  const char* setting;
  const char* password;
  const char* hash;
};

// "Unix crypt using SHA-256 and SHA-512", the SHA-256 test vectors (all seven).
constexpr Vector kSpecVectors[] = {
    {"$5$saltstring", "Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"},
    {"$5$rounds=10000$saltstringsaltstring", "Hello world!",
     "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"},
    {"$5$rounds=5000$toolongsaltstring", "This is just a test",
     "$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5"},
    {"$5$rounds=1400$anotherlongsaltstring",
     "a very much longer text to encrypt.  This one even stretches over more"
     "than one line.",
     "$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1"},
    {"$5$rounds=77777$short", "we have a short salt string but not a short password",
     "$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/"},
    {"$5$rounds=123456$asaltof16chars..", "a short string",
     "$5$rounds=123456$asaltof16chars..$gP3VQ/6X7UUEW3HkBn2w1/Ptq2jxPyzV/cZKmF/wJvD"},
    {"$5$rounds=10$roundstoolow", "the minimum number is still observed",
     "$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC"},
};

// Made on the build machine: `openssl passwd -5 -salt abcdefgh secret` (OpenSSL 3.0).
constexpr const char* kOpensslSecret = "$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.";

// Made with Python's crypt module (libxcrypt): passwords around the 32-byte digest size (the
// spec's B-repetition and P-sequence loops), an empty password, an empty salt, non-ASCII bytes.
constexpr Vector kLibxcryptVectors[] = {
    {"$5$saltstring", "", "$5$saltstring$FdNfA4gXqvCeO6iZs7G/.wwwoywYZqo0l1pwmfWaBA7"},
    {"$5$rounds=1000$len31", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
     "$5$rounds=1000$len31$X6NEZ2uxirvvMiTkV2CKNy7PfgVnq3NFyEqZjhc2v55"},
    {"$5$rounds=1000$len32", "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
     "$5$rounds=1000$len32$yoMtNpOQoEa6itk3WmybYXvRHOk.K2maKcoB.rwx2qD"},
    {"$5$rounds=1000$len33", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
     "$5$rounds=1000$len33$I1PR..4pOWi4g1SKgV6EBDyzaOxPxcifaKQ4idiZ/a4"},
    {"$5$rounds=1000$len64", "wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww",
     "$5$rounds=1000$len64$vcMCuFNnZesR4lHzBelBjgX.p.U67uArsdpdzPZjY81"},
    {"$5$rounds=1000$len65", "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
     "$5$rounds=1000$len65$gzFNioEDeMkxt2VtWhDvS35I9ttF6RzJqx7w5.Ajrl2"},
    {"$5$rounds=1000$utf8", "p\xC3\xA4ssw\xC3\xB6rd",
     "$5$rounds=1000$utf8$mBziV0Goi56tSPuFYnjQfbIpZG11LQ8PSFSpkMKnSRD"},
    {"$5$", "secret", "$5$$o1w7HPzHt8gHmL5zUzDkRqt6Az.BjDfkvuDNNLWnXx5"},
    {"$5$rounds=1000$", "secret", "$5$rounds=1000$$Obg7IOH5MYGbPhIPrPkPleaehbt86.IKR69wHoi1R94"},
    {"$5$rounds=5000$saltstring", "Hello world!",
     "$5$rounds=5000$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"},
    {"$5$ab$junk", "pw", "$5$ab$QC5GKcE5kgMGJf0sNCzrqT/sGcwXhEWAp4Sxjx2lFJA"},
    {"$5$abcdefghijklmnopqrstuvwxyz", "pw",
     "$5$abcdefghijklmnop$gu.71QnGu.GrGbdJF.mj20x/mWJF1VliZRmeYNpAtDB"},
};

TEST(ShaCryptTest, SpecVectors) {
  for (const Vector& v : kSpecVectors) {
    EXPECT_EQ(crypt(v.password, v.setting), v.hash) << v.setting;
  }
}

TEST(ShaCryptTest, SpecVectorsParseVerifyAndFormatBack) {
  for (const Vector& v : kSpecVectors) {
    Sha256CryptHash hash;
    ASSERT_TRUE(parse_sha256_crypt(v.hash, hash)) << v.hash << ": " << refusal(v.hash);
    EXPECT_EQ(format(hash), v.hash);
    EXPECT_TRUE(sha256_crypt_verify(v.password, std::string_view(v.hash))) << v.hash;
    if (hash.rounds > 10000) continue;  // the debug build takes seconds for these
    EXPECT_FALSE(sha256_crypt_verify(std::string(v.password) + "x", hash));
    EXPECT_FALSE(sha256_crypt_verify(std::string_view(v.password).substr(1), hash));
  }
}

TEST(ShaCryptTest, RoundsAreClampedAsTheSpecSays) {
  Sha256CryptHash hash;
  ASSERT_TRUE(parse_sha256_crypt(kSpecVectors[6].hash, hash));
  EXPECT_EQ(hash.rounds, 1000u);
  EXPECT_TRUE(hash.rounds_written);
  EXPECT_EQ(hash.salt(), "roundstoolow");
  EXPECT_EQ(sha256_crypt_digest(kSpecVectors[6].password, "roundstoolow", 10), hash.digest);
  EXPECT_EQ(sha256_crypt_digest(kSpecVectors[6].password, "roundstoolow", 0), hash.digest);

  ASSERT_TRUE(parse_sha256_crypt(kSpecVectors[0].hash, hash));
  EXPECT_EQ(hash.rounds, kShaCryptDefaultRounds);
  EXPECT_FALSE(hash.rounds_written);
  ASSERT_TRUE(parse_sha256_crypt(kSpecVectors[2].hash, hash));
  EXPECT_EQ(hash.rounds, 5000u);
  EXPECT_TRUE(hash.rounds_written);  // written back, as the spec's output keeps it

  // Out-of-range or unreadable settings: the spec clamps (the digest itself is not computed at
  // 999999999 rounds here: the text is checked through parse, which costs nothing).
  EXPECT_EQ(crypt("pw", "$5$rounds=0$s").substr(0, 17), "$5$rounds=1000$s$");
  EXPECT_EQ(crypt("pw", "$5$rounds=$s").substr(0, 17), "$5$rounds=1000$s$");
  EXPECT_EQ(crypt("pw", "$5$rounds=999$s"), crypt("pw", "$5$rounds=1000$s"));
  // "rounds=" without digits then "$" is salt.
  EXPECT_EQ(crypt("pw", "$5$rounds=abc$s").substr(0, 14), "$5$rounds=abc$");
  ASSERT_TRUE(parse_sha256_crypt("$5$rounds=999999999$s$" + std::string(43, '.'), hash));
  EXPECT_EQ(hash.rounds, kShaCryptMaxRounds);
}

TEST(ShaCryptTest, OpensslPasswd) {
  EXPECT_EQ(crypt("secret", "$5$abcdefgh"), kOpensslSecret);
  EXPECT_TRUE(sha256_crypt_verify("secret", std::string_view(kOpensslSecret)));
  EXPECT_FALSE(sha256_crypt_verify("Secret", std::string_view(kOpensslSecret)));
  EXPECT_FALSE(sha256_crypt_verify("", std::string_view(kOpensslSecret)));
  EXPECT_FALSE(
      sha256_crypt_verify(std::string_view("secret\0", 7), std::string_view(kOpensslSecret)));
}

TEST(ShaCryptTest, LibxcryptVectors) {
  for (const Vector& v : kLibxcryptVectors) {
    EXPECT_EQ(crypt(v.password, v.setting), v.hash) << v.setting;
    EXPECT_TRUE(sha256_crypt_verify(v.password, std::string_view(v.hash))) << v.hash;
  }
}

TEST(ShaCryptTest, FormatRefusesSmallBuffers) {
  Sha256CryptHash hash;
  ASSERT_TRUE(parse_sha256_crypt(kOpensslSecret, hash));
  const std::string text = kOpensslSecret;
  char out[kSha256CryptMaxChars];
  EXPECT_EQ(format_sha256_crypt(hash, out, text.size() - 1), 0u);
  EXPECT_EQ(format_sha256_crypt(hash, out, text.size()), text.size());
  EXPECT_EQ(sha256_crypt("secret", "$5$abcdefgh", out, text.size() - 1), 0u);
  EXPECT_EQ(sha256_crypt("secret", "$6$abcdefgh", out, sizeof out), 0u);
  EXPECT_EQ(sha256_crypt("secret", "abcdefgh", out, sizeof out), 0u);
}

TEST(ShaCryptTest, RefusesMalformedStoredHashes) {
  const std::string digest = "gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.";
  const std::string bad[] = {
      "",
      "secret",
      "$5",
      "$5$",
      "$5$abcdefgh",
      "$5$abcdefgh$",
      "$6$abcdefgh$" + digest,
      "$1$abcdefgh$" + digest,
      "$2y$10$abcdefghijklmnopqrstuv" + digest,
      "5$abcdefgh$" + digest,
      " $5$abcdefgh$" + digest,
      "$5$abcdefgh$" + digest + " ",
      "$5$abcdefgh$" + digest + "\n",
      "$5$abcdefgh$" + digest + "$",
      "$5$abcdefgh$" + digest + ".",
      "$5$abcdefgh$" + digest.substr(1),
      "$5$abcdefgh$$" + digest,
      "$5$abcdefgh$" + digest.substr(0, 20) + "-" + digest.substr(21),
      "$5$abcdefgh$" + digest.substr(0, 20) + "=" + digest.substr(21),
      "$5$abcdefghijklmnopq$" + digest,  // 17 bytes of salt
      "$5$abc defg$" + digest,
      "$5$abc:defg$" + digest,
      "$5$abc;defg$" + digest,
      "$5$abc*defg$" + digest,
      "$5$abc!defg$" + digest,
      "$5$abc\\defg$" + digest,
      "$5$abc\tdefg$" + digest,
      "$5$abc\xC3\xA9$" + digest,
      std::string("$5$abc\0defg$", 12) + digest,
      "$5$rounds=$abcdefgh$" + digest,
      "$5$rounds=999$abcdefgh$" + digest,
      "$5$rounds=10$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC",
      "$5$rounds=01000$abcdefgh$" + digest,
      "$5$rounds=1000000000$abcdefgh$" + digest,
      "$5$rounds=4294967297$abcdefgh$" + digest,
      "$5$rounds=-5000$abcdefgh$" + digest,
      "$5$rounds=+5000$abcdefgh$" + digest,
      "$5$rounds= 5000$abcdefgh$" + digest,
      "$5$rounds=5000x$abcdefgh$" + digest,
      "$5$rounds=5000",
      "$5$rounds=5000$",
      "$5$rounds=5000$abcdefgh",
  };
  for (const std::string& s : bad) {
    EXPECT_NE(refusal(s), "") << s;
  }
}

// "ROUNDS=" is not the rounds keyword: the parser sees a salt with "$" in the middle of the
// digest part, which is refused.
TEST(ShaCryptTest, ParsesCaseSensitively) {
  EXPECT_NE(refusal("$5$ROUNDS=5000$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM."), "");
  // As a salt alone (no second "$"), "ROUNDS=5000" is an acceptable 11-byte salt.
  EXPECT_EQ(refusal("$5$ROUNDS=5000$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM."), "");
}

// The last digest character carries 2 of its 6 bits beyond the 256 of the digest: only values
// below 16 ("./0-9A-D") are what the spec writes.
TEST(ShaCryptTest, RefusesBitsBeyondTheDigest) {
  const std::string prefix = "$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM";
  const std::string_view alphabet =
      "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  for (size_t v = 0; v < 64; ++v) {
    const std::string s = prefix + alphabet[v];
    if (v < 16) {
      EXPECT_EQ(refusal(s), "") << s;
    } else {
      EXPECT_NE(refusal(s), "") << s;
    }
  }
}

TEST(ShaCryptTest, RefusesEveryTruncationAndSurvivesEveryMutation) {
  const std::string good = kSpecVectors[5].hash;  // rounds, a 16-byte salt
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_NE(refusal(good.substr(0, n)), "") << good.substr(0, n);
  }
  // Every byte value at every position: parsing must not crash, and whatever it accepts must
  // format back to the same text (so no two texts name the same hash).
  for (size_t at = 0; at < good.size(); ++at) {
    for (int c = 0; c < 256; ++c) {
      std::string s = good;
      s[at] = static_cast<char>(c);
      Sha256CryptHash hash;
      if (parse_sha256_crypt(s, hash)) {
        ASSERT_EQ(format(hash), s);
      }
    }
  }
}

TEST(ShaCryptTest, VerifyRefusesUnparsableText) {
  EXPECT_FALSE(sha256_crypt_verify("", std::string_view("")));
  EXPECT_FALSE(sha256_crypt_verify("secret", std::string_view("secret")));
  EXPECT_FALSE(sha256_crypt_verify("Hello world!", std::string_view("$5$saltstring$")));
}

TEST(ShaCryptTest, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("abc", "abc", 3));
  EXPECT_TRUE(constant_time_equal(nullptr, nullptr, 0));
  EXPECT_TRUE(constant_time_equal("abc", "abd", 2));
  EXPECT_FALSE(constant_time_equal("abc", "abd", 3));
  EXPECT_FALSE(constant_time_equal("xbc", "abc", 3));
  std::string a(64, '\xFF'), b(64, '\xFF');
  EXPECT_TRUE(constant_time_equal(a.data(), b.data(), a.size()));
  for (size_t i = 0; i < a.size(); ++i) {
    b[i] = '\x7F';
    EXPECT_FALSE(constant_time_equal(a.data(), b.data(), a.size())) << i;
    b[i] = '\xFF';
  }
}

}  // namespace
}  // namespace edgeproxy
