// Basic authentication: credentials files (format, every refusal with its line, load from disk),
// verify (good, wrong, unknown users, long passwords, the cost of an unknown user), parse_basic
// over valid, truncated and malicious header values, and the verdict cache's replacement policy.
#include "edgeproxy/credentials.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>

#include "edgeproxy/base64.h"

namespace edgeproxy {
namespace {

using namespace std::string_literals;

// Hashes at 1000 rounds (made with Python's crypt, libxcrypt) keep the debug build quick.
constexpr std::string_view kAlice =
    "alice:$5$rounds=1000$alicesalt$uJYnuS6UMWqfxG2wz6rznnPYPFspa4aMz8vMg5slpl/";
constexpr std::string_view kAlicePassword = "alice pw";
constexpr std::string_view kBob =
    "bob:$5$rounds=1000$bobsalt$OiTKu.Z93oY/MQblU0pBTnIgDNnu1ue8XMj0RrNaoj0";
constexpr std::string_view kBobPassword = "b0b:secret";
constexpr std::string_view kCarol =
    "carol:$5$rounds=1000$carolsalt$nFl.2oh1SU6WnXsJKunokL323D2DjdIHWykKnAlZCh7";  // empty password
// Passwords of exactly kMaxPasswordBytes ('d' x 256) and one byte more ('e' x 257).
constexpr std::string_view kDave =
    "dave:$5$rounds=1000$davesalt$EXAnOvUByJiL0rxCBE.Shr5fSYAhmisft6e5LWwd1a7";
constexpr std::string_view kErin =
    "erin:$5$rounds=1000$erinsalt$J2GokHHGeHxX8MVkUrR3NvXjybY2zI9kANbckIuApo9";
// `openssl passwd -5 -salt abcdefgh secret`, the default 5000 rounds.
constexpr std::string_view kFrank = "frank:$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.";

std::string lines(std::initializer_list<std::string_view> ls) {
  std::string text;
  for (const std::string_view l : ls) (text += l) += '\n';
  return text;
}

// The error of parsing `text` as "f", or "" when it parses.
std::string error_of(std::string_view text) {
  auto c = Credentials::parse(text, "f");
  return c.ok() ? "" : c.error();
}

std::string basic(std::string_view decoded, std::string_view scheme = "Basic ") {
  std::string value(scheme.size() + base64_encoded_size(decoded.size()), '\0');
  scheme.copy(value.data(), scheme.size());
  base64_encode(decoded, value.data() + scheme.size(), value.size() - scheme.size());
  return value;
}

// --- the file ------------------------------------------------------------------------------

TEST(CredentialsTest, ParsesUsersCommentsBlankLinesAndCrlf) {
  const std::string text = "# users of the proxy\n\n" + std::string(kBob) +
                           "\r\n   \t\n  # indented comment\n" + std::string(kAlice) + "\n" +
                           std::string(kCarol);  // no final LF
  auto c = Credentials::parse(text, "users");
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_EQ(c.value().size(), 3u);
  EXPECT_EQ(c.value().user(0), "alice");  // sorted
  EXPECT_EQ(c.value().user(1), "bob");
  EXPECT_EQ(c.value().user(2), "carol");
}

TEST(CredentialsTest, VerifiesPasswords) {
  auto c = Credentials::parse(lines({kAlice, kBob, kCarol, kFrank}), "users");
  ASSERT_TRUE(c.ok()) << c.error();
  const Credentials& creds = c.value();
  uint32_t index = 99;
  EXPECT_TRUE(creds.verify("alice", kAlicePassword, index));
  EXPECT_EQ(creds.user(index), "alice");
  EXPECT_TRUE(creds.verify("bob", kBobPassword, index));  // a ":" in the password
  EXPECT_EQ(creds.user(index), "bob");
  EXPECT_TRUE(creds.verify("carol", ""));
  EXPECT_TRUE(creds.verify("frank", "secret"));

  index = 99;
  EXPECT_FALSE(creds.verify("alice", "alice pw ", index));
  EXPECT_EQ(index, 99u);  // untouched on refusal
  EXPECT_FALSE(creds.verify("alice", "Alice pw"));
  EXPECT_FALSE(creds.verify("alice", ""));
  EXPECT_FALSE(creds.verify("Alice", kAlicePassword));  // user names are case-sensitive
  EXPECT_FALSE(creds.verify("alice ", kAlicePassword));
  EXPECT_FALSE(creds.verify("bob", kAlicePassword));
  EXPECT_FALSE(creds.verify("carol", " "));
  EXPECT_FALSE(creds.verify("mallory", kAlicePassword));
  EXPECT_FALSE(creds.verify("", ""));
  EXPECT_FALSE(creds.verify("frank", "secret\0"s));
}

TEST(CredentialsTest, RefusesOverlongPasswordsWithoutHashing) {
  auto c = Credentials::parse(lines({kDave, kErin}), "users");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_TRUE(c.value().verify("dave", std::string(kMaxPasswordBytes, 'd')));
  // erin's hash is right for her 257-byte password, which is refused anyway.
  EXPECT_TRUE(sha256_crypt_verify(std::string(kMaxPasswordBytes + 1, 'e'), kErin.substr(5)));
  EXPECT_FALSE(c.value().verify("erin", std::string(kMaxPasswordBytes + 1, 'e')));
}

TEST(CredentialsTest, EmptyCredentialsRefuseEveryone) {
  const Credentials none;
  EXPECT_EQ(none.size(), 0u);
  EXPECT_FALSE(none.verify("", ""));
  EXPECT_FALSE(none.verify("alice", kAlicePassword));
}

TEST(CredentialsTest, RefusalsNameTheLine) {
  const std::string alice(kAlice);
  const std::string hash = alice.substr(6);
  EXPECT_EQ(error_of(""), "f: no users (expected USER:HASH lines)");
  EXPECT_EQ(error_of("# nobody\n\n"), "f: no users (expected USER:HASH lines)");
  EXPECT_EQ(error_of("# one\nalice\n"), "f:2: expected USER:HASH");
  EXPECT_EQ(error_of(":" + hash), "f:1: empty user name");
  EXPECT_EQ(error_of(alice + "\n" + "ali\tce:" + hash), "f:2: control character in user name");
  EXPECT_EQ(error_of("ali\x7F"
                     "ce:" +
                     hash),
            "f:1: control character in user name");
  EXPECT_EQ(error_of("ali\0ce:"s + hash), "f:1: control character in user name");
  EXPECT_EQ(error_of(" alice:" + hash), "f:1: user name ' alice' starts or ends with a blank");
  EXPECT_EQ(error_of("alice :" + hash), "f:1: user name 'alice ' starts or ends with a blank");
  EXPECT_EQ(error_of(std::string(kMaxUserBytes + 1, 'u') + ":" + hash),
            "f:1: user name longer than 256 bytes");
  EXPECT_TRUE(error_of(std::string(kMaxUserBytes, 'u') + ":" + hash).empty());
  EXPECT_EQ(error_of("alice:"),
            "f:1: user 'alice': not a SHA-256-crypt hash (expected "
            "$5$[rounds=N$]SALT$DIGEST)");
  EXPECT_EQ(error_of("alice:secret"), error_of("alice:"));
  EXPECT_EQ(error_of("alice:$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/"
                     "O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
            error_of("alice:"));
  EXPECT_EQ(error_of("alice:$apr1$abc$def"), error_of("alice:"));
  EXPECT_EQ(error_of("alice: " + hash), error_of("alice:"));  // blank before the hash
  EXPECT_EQ(error_of(alice + " "),
            "f:1: user 'alice': digest must be 43 characters of "
            "./0-9A-Za-z, as SHA-256-crypt writes it");
  EXPECT_EQ(error_of("alice:$5$rounds=10$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC"),
            "f:1: user 'alice': rounds must be a number from 1000 to 999999999 followed by $");
  EXPECT_EQ(error_of(lines({kBob, "# again", kAlice, kCarol, kAlice, kBob})),
            "f:5: user 'alice' already defined at line 3");
}

TEST(CredentialsTest, UserNamesMayHoldSpacesAndUtf8) {
  const std::string hash = std::string(kAlice).substr(6);
  auto c = Credentials::parse("J\xC3\xBCrgen M\xC3\xBCller:" + hash + "\n", "f");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_TRUE(c.value().verify("J\xC3\xBCrgen M\xC3\xBCller", kAlicePassword));
}

// A temporary file removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(std::string_view text) {
    char name[] = "/tmp/edgeproxy-credentials-XXXXXX";
    const int fd = mkstemp(name);
    if (fd < 0) return;
    path_ = name;
    EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    close(fd);
  }
  ~TempFile() {
    if (!path_.empty()) std::remove(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(CredentialsTest, LoadsAFile) {
  TempFile file(lines({kAlice, kFrank}));
  ASSERT_FALSE(file.path().empty());
  auto c = Credentials::load(file.path());
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_TRUE(c.value().verify("alice", kAlicePassword));

  TempFile bad(lines({kAlice, "bob"}));
  auto b = Credentials::load(bad.path());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error(), bad.path() + ":2: expected USER:HASH");

  auto missing = Credentials::load("/nonexistent/users");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), "cannot read '/nonexistent/users': No such file or directory");
}

// The minimum of `runs` timings of `f`, in seconds.
template <class F>
double fastest(int runs, F f) {
  double best = 1e9;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    f();
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

// An unknown user is hashed against a dummy shaped as the file's most common hash: it costs
// what a known user costs, and a rare costlier hash does not set the price. Expected ratios are
// 1 and 20; the bounds are loose enough for a loaded machine.
TEST(CredentialsTest, UnknownUsersCostWhatTheCommonHashCosts) {
  auto c = Credentials::parse(lines({kAlice}), "f");
  ASSERT_TRUE(c.ok());
  const double known = fastest(5, [&] { EXPECT_FALSE(c.value().verify("alice", "wrong")); });
  const double unknown = fastest(5, [&] { EXPECT_FALSE(c.value().verify("mallory", "wrong")); });
  EXPECT_GT(unknown, known * 0.5) << "known " << known << " s, unknown " << unknown << " s";
  EXPECT_LT(unknown, known * 2.0) << "known " << known << " s, unknown " << unknown << " s";

  const std::string slow_user = "slow:$5$rounds=20000$alicesalt$" + std::string(43, '.');
  auto mixed = Credentials::parse(lines({kAlice, kBob, kCarol, slow_user}), "f");
  ASSERT_TRUE(mixed.ok()) << mixed.error();
  const double slow = fastest(3, [&] { EXPECT_FALSE(mixed.value().verify("slow", "wrong")); });
  const double unknown_mixed =
      fastest(5, [&] { EXPECT_FALSE(mixed.value().verify("mallory", "wrong")); });
  EXPECT_LT(unknown_mixed * 4, slow) << unknown_mixed << " s against " << slow << " s";
  EXPECT_GT(unknown_mixed, known * 0.5) << unknown_mixed << " s against " << known << " s";
}

// --- parse_basic -----------------------------------------------------------------------------

struct Parsed {
  bool ok = false;
  std::string user, password;
};

Parsed parse(std::string_view value, size_t scratch_size = 512) {
  std::string scratch(scratch_size, '\0');
  std::string_view user = "unchanged", password = "unchanged";
  Parsed p;
  p.ok = parse_basic(value, scratch.data(), scratch.size(), user, password);
  if (p.ok) {
    EXPECT_GE(user.data(), scratch.data());
    EXPECT_LE(password.data() + password.size(), scratch.data() + scratch.size());
  } else {
    EXPECT_EQ(user, "unchanged");
    EXPECT_EQ(password, "unchanged");
  }
  p.user = user;
  p.password = password;
  return p;
}

TEST(CredentialsTest, ParseBasicAcceptsTheScheme) {
  Parsed p = parse("Basic YWxpY2U6YWxpY2UgcHc=");
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.user, "alice");
  EXPECT_EQ(p.password, "alice pw");
  for (const std::string_view scheme : {"basic ", "BASIC ", "bAsIc ", "Basic    "}) {
    p = parse(basic("alice:alice pw", scheme));
    EXPECT_TRUE(p.ok) << scheme;
    EXPECT_EQ(p.user, "alice");
  }
  p = parse(basic("bob:b0b:secret"));  // split at the first ":"
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.user, "bob");
  EXPECT_EQ(p.password, "b0b:secret");
  p = parse(basic(":"));
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.user, "");
  EXPECT_EQ(p.password, "");
  p = parse(basic("J\xC3\xBCrgen:p\xC3\xA4ss"));
  ASSERT_TRUE(p.ok);
  EXPECT_EQ(p.user, "J\xC3\xBCrgen");
}

TEST(CredentialsTest, ParseBasicRefusesOtherValues) {
  const std::string token = basic("alice:alice pw", "");
  const std::string refused[] = {
      "",
      "Basic",
      "Basic ",
      "Basic   ",
      token,              // no scheme
      " " + token,        // empty scheme
      " Basic " + token,  // blank before the scheme
      "Basic\t" + token,  // HT is not SP
      "Basic\t " + token,
      "Basicx " + token,
      "Basi " + token,
      "Bearer " + token,
      "Digest username=\"alice\"",
      "Basic " + token + " ",  // blank after the token
      "Basic " + token + "\r\n",
      "Basic " + token + "," + token,
      "Basic " + token.substr(0, token.size() - 1),  // truncated: padding missing
      "Basic " + token.substr(1),
      "Basic " + token.substr(0, 4) + " " + token.substr(4),
      "Basic " + token + "====",
      "Basic YWxpY2U=",        // "alice": no colon
      basic(""),               // no colon either
      basic("alice\x00:pw"s),  // control characters in the decoded text
      basic("alice:pw\n"),
      basic("alice:p\rw"),
      basic("al\x7Fice:pw"),
      basic("\x1B[31malice:pw"),
      "Basic YWxpY2U6cHc-",  // URL-safe alphabet
      "Basic YWxpY2U6cHd=",  // stray bits in the last character
  };
  for (const std::string& value : refused) {
    EXPECT_FALSE(parse(value).ok) << "'" << value << "'";
  }
}

TEST(CredentialsTest, ParseBasicRefusesSmallScratch) {
  const std::string value = basic("alice:alice pw");  // 14 bytes decoded
  EXPECT_TRUE(parse(value, 14).ok);
  EXPECT_FALSE(parse(value, 13).ok);
  EXPECT_FALSE(parse(value, 0).ok);
}

// Every prefix and every single-byte change of a valid value: no crash, no view outside the
// scratch (checked in parse()), and whatever is accepted decodes the whole token.
TEST(CredentialsTest, ParseBasicSurvivesTruncationAndMutation) {
  const std::string value = basic("alice:alice pw");
  for (size_t n = 0; n <= value.size(); ++n) {
    const Parsed p = parse(value.substr(0, n));
    if (p.ok) {
      EXPECT_EQ(base64_encoded_size(p.user.size() + 1 + p.password.size()), n - 6);
    }
  }
  for (size_t at = 0; at < value.size(); ++at) {
    for (int c = 0; c < 256; ++c) {
      std::string v = value;
      v[at] = static_cast<char>(c);
      parse(v, 16);
    }
  }
}

// --- CredentialCache ---------------------------------------------------------------------------

CachedVerdict good(uint32_t index) {
  return CachedVerdict{CacheVerdict::kGood, index};
}
constexpr CachedVerdict kBad{CacheVerdict::kBad, 0};

TEST(CredentialsTest, CacheRemembersVerdicts) {
  CredentialCache cache(256);
  EXPECT_EQ(cache.capacity(), 256u);
  EXPECT_EQ(cache.size(), 0u);
  const std::string a = basic("alice:alice pw"), b = basic("bob:wrong");
  EXPECT_EQ(cache.lookup(a).verdict, CacheVerdict::kUnknown);
  cache.insert(a, good(7));
  cache.insert(b, kBad);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.lookup(a).verdict, CacheVerdict::kGood);
  EXPECT_EQ(cache.lookup(a).user_index, 7u);
  EXPECT_EQ(cache.lookup(b).verdict, CacheVerdict::kBad);
  // The raw value is the key: another spelling of the same credentials is another key.
  EXPECT_EQ(cache.lookup(basic("alice:alice pw", "basic ")).verdict, CacheVerdict::kUnknown);
  EXPECT_EQ(cache.lookup(a + " ").verdict, CacheVerdict::kUnknown);
  EXPECT_EQ(cache.lookup(CredentialCache::key_of(a)).user_index, 7u);

  cache.insert(b, good(3));  // replaced in place
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.lookup(b).verdict, CacheVerdict::kGood);
  EXPECT_EQ(cache.lookup(b).user_index, 3u);
  cache.insert(b, CachedVerdict{});  // forgotten
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.lookup(b).verdict, CacheVerdict::kUnknown);
  cache.insert(b, CachedVerdict{});
  EXPECT_EQ(cache.size(), 1u);

  cache.clear();
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(cache.lookup(a).verdict, CacheVerdict::kUnknown);
  cache.insert(a, kBad);
  EXPECT_EQ(cache.lookup(a).verdict, CacheVerdict::kBad);
}

// One set of kWays entries, so every key competes for the same ways.
TEST(CredentialsTest, CacheGoodVerdictsEvictRoundRobin) {
  CredentialCache cache(CredentialCache::kWays);
  for (uint32_t i = 0; i < 4; ++i) cache.insert("v" + std::to_string(i), good(i));
  EXPECT_EQ(cache.size(), 4u);
  cache.insert("v4", good(4));  // evicts the oldest, v0
  EXPECT_EQ(cache.lookup("v0").verdict, CacheVerdict::kUnknown);
  cache.insert("v5", good(5));  // then v1
  EXPECT_EQ(cache.lookup("v1").verdict, CacheVerdict::kUnknown);
  for (uint32_t i = 2; i < 6; ++i) {
    EXPECT_EQ(cache.lookup("v" + std::to_string(i)).user_index, i);
  }
  EXPECT_EQ(cache.size(), 4u);
}

TEST(CredentialsTest, CacheBadVerdictsNeverEvictGoodOnes) {
  CredentialCache cache(CredentialCache::kWays);
  for (uint32_t i = 0; i < 4; ++i) cache.insert("good" + std::to_string(i), good(i));
  for (int i = 0; i < 100; ++i) cache.insert("bad" + std::to_string(i), kBad);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(cache.lookup("good" + std::to_string(i)).verdict, CacheVerdict::kGood) << i;
  }
  EXPECT_EQ(cache.lookup("bad99").verdict, CacheVerdict::kUnknown);  // dropped

  // With two good and two bad entries, a bad verdict replaces a bad one and a good verdict
  // replaces a bad one before any good one.
  cache.clear();
  cache.insert("g0", good(0));
  cache.insert("g1", good(1));
  cache.insert("b0", kBad);
  cache.insert("b1", kBad);
  for (int i = 0; i < 10; ++i) cache.insert("flood" + std::to_string(i), kBad);
  EXPECT_EQ(cache.lookup("g0").verdict, CacheVerdict::kGood);
  EXPECT_EQ(cache.lookup("g1").verdict, CacheVerdict::kGood);
  EXPECT_EQ(cache.lookup("flood9").verdict, CacheVerdict::kBad);
  EXPECT_EQ(cache.lookup("b0").verdict, CacheVerdict::kUnknown);
  cache.insert("g2", good(2));
  EXPECT_EQ(cache.lookup("g0").verdict, CacheVerdict::kGood);
  EXPECT_EQ(cache.lookup("g1").verdict, CacheVerdict::kGood);
  EXPECT_EQ(cache.lookup("g2").verdict, CacheVerdict::kGood);
  EXPECT_EQ(cache.size(), 4u);
}

TEST(CredentialsTest, CacheHoldsAtMostItsCapacity) {
  CredentialCache cache(64);
  for (uint32_t i = 0; i < 1000; ++i) {
    cache.insert("value" + std::to_string(i), i % 3 == 0 ? kBad : good(i));
    ASSERT_LE(cache.size(), 64u);
  }
  // The last good verdict inserted is always there.
  EXPECT_EQ(cache.lookup("value998").user_index, 998u);
  EXPECT_GT(cache.size(), 32u);
}

TEST(CredentialsTest, CacheCapacityMustBeAPowerOfTwo) {
  EXPECT_DEATH(CredentialCache(100), "capacity");
  EXPECT_DEATH(CredentialCache(2), "capacity");
  EXPECT_DEATH(CredentialCache(0), "capacity");
}

}  // namespace
}  // namespace edgeproxy
