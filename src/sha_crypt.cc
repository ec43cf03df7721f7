// SHA-256-crypt as the spec's reference code computes it; see sha_crypt.h.
#include "edgeproxy/sha_crypt.h"

#include <algorithm>
#include <cstring>

#include "edgeproxy/constant_time.h"

namespace edgeproxy {

namespace {

// crypt's base64: its own alphabet, and each 24-bit group written least significant 6 bits first.
constexpr char kCryptAlphabet[] =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr uint8_t kNotCrypt64 = 0xFF;

constexpr std::array<uint8_t, 256> make_values() noexcept {
  std::array<uint8_t, 256> t{};
  for (uint8_t& v : t) v = kNotCrypt64;
  for (uint8_t i = 0; i < 64; ++i) t[static_cast<unsigned char>(kCryptAlphabet[i])] = i;
  return t;
}

constexpr std::array<uint8_t, 256> kCrypt64Values = make_values();

// The spec's byte order for the digest text: ten groups of three digest bytes (high, middle,
// low) of four characters each, then bytes 31 and 30 in three characters.
struct Group {
  uint8_t high, middle, low;
};
constexpr std::array<Group, 10> kDigestGroups = {{
    {0, 10, 20},
    {21, 1, 11},
    {12, 22, 2},
    {3, 13, 23},
    {24, 4, 14},
    {15, 25, 5},
    {6, 16, 26},
    {27, 7, 17},
    {18, 28, 8},
    {9, 19, 29},
}};

void encode_digest(const Sha256Digest& d, char* out) noexcept {
  size_t o = 0;
  auto put = [&](uint32_t w, size_t chars) {
    for (size_t i = 0; i < chars; ++i, w >>= 6) out[o++] = kCryptAlphabet[w & 63];
  };
  for (const Group& g : kDigestGroups) {
    put((uint32_t{d[g.high]} << 16) | (uint32_t{d[g.middle]} << 8) | d[g.low], 4);
  }
  put((uint32_t{d[31]} << 8) | d[30], 3);
}

// The inverse of encode_digest; false for a character outside the alphabet or bits set beyond
// the digest's 256 in the last character.
bool decode_digest(std::string_view text, Sha256Digest& d) noexcept {
  if (text.size() != kSha256CryptDigestChars) return false;
  size_t i = 0;
  auto get = [&](size_t chars, uint32_t& w) {
    w = 0;
    for (size_t k = 0; k < chars; ++k) {
      const uint8_t v = kCrypt64Values[static_cast<unsigned char>(text[i++])];
      if (v == kNotCrypt64) return false;
      w |= uint32_t{v} << (6 * k);
    }
    return true;
  };
  uint32_t w = 0;
  for (const Group& g : kDigestGroups) {
    if (!get(4, w)) return false;
    d[g.high] = static_cast<uint8_t>(w >> 16);
    d[g.middle] = static_cast<uint8_t>(w >> 8);
    d[g.low] = static_cast<uint8_t>(w);
  }
  if (!get(3, w) || (w >> 16) != 0) return false;
  d[31] = static_cast<uint8_t>(w >> 8);
  d[30] = static_cast<uint8_t>(w);
  return true;
}

// The salt bytes libxcrypt's crypt() accepts: visible ASCII without the shadow file's
// separators and markers.
bool is_salt_char(char c) noexcept {
  return c > 0x20 && c < 0x7F && std::string_view("$:;*!\\").find(c) == std::string_view::npos;
}

// `length` bytes of `digest` repeated, without building them: the spec's P and S sequences.
void update_repeated(Sha256& h, const Sha256Digest& digest, size_t length) noexcept {
  for (; length >= digest.size(); length -= digest.size()) h.update(digest.data(), digest.size());
  h.update(digest.data(), length);
}

// The decimal text of `value`, at `out`; returns its length.
size_t write_decimal(uint32_t value, char* out) noexcept {
  char digits[10];
  size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (size_t i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
  return n;
}

constexpr std::string_view kRoundsPrefix = "rounds=";

}  // namespace

bool parse_sha256_crypt(std::string_view stored, Sha256CryptHash& out,
                        const char** reason) noexcept {
  auto refuse = [reason](const char* why) {
    if (reason != nullptr) *reason = why;
    return false;
  };
  if (!stored.starts_with(kSha256CryptPrefix)) {
    return refuse("not a SHA-256-crypt hash (expected $5$[rounds=N$]SALT$DIGEST)");
  }
  std::string_view rest = stored.substr(kSha256CryptPrefix.size());
  out = Sha256CryptHash{};
  if (rest.starts_with(kRoundsPrefix)) {
    rest.remove_prefix(kRoundsPrefix.size());
    const size_t end = rest.find('$');
    const std::string_view digits = rest.substr(0, end);
    if (end == std::string_view::npos || digits.empty() || digits.size() > 9 ||
        digits.front() == '0' ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return refuse("rounds must be a number from 1000 to 999999999 followed by $");
    }
    uint32_t rounds = 0;
    for (const char c : digits) rounds = rounds * 10 + static_cast<uint32_t>(c - '0');
    if (rounds < kShaCryptMinRounds) {
      return refuse("rounds must be a number from 1000 to 999999999 followed by $");
    }
    out.rounds = rounds;
    out.rounds_written = true;
    rest.remove_prefix(end + 1);
  }
  const size_t salt_end = rest.find('$');
  if (salt_end == std::string_view::npos) return refuse("no $ between salt and digest");
  const std::string_view salt = rest.substr(0, salt_end);
  if (salt.size() > kShaCryptMaxSaltBytes) return refuse("salt longer than 16 characters");
  if (!std::all_of(salt.begin(), salt.end(), is_salt_char)) {
    return refuse("salt with a byte that is not visible ASCII, or with $ : ; * ! or a backslash");
  }
  std::memcpy(out.salt_bytes.data(), salt.data(), salt.size());
  out.salt_size = static_cast<uint8_t>(salt.size());
  if (!decode_digest(rest.substr(salt_end + 1), out.digest)) {
    return refuse("digest must be 43 characters of ./0-9A-Za-z, as SHA-256-crypt writes it");
  }
  return true;
}

Sha256Digest sha256_crypt_digest(std::string_view password, std::string_view salt,
                                 uint32_t rounds) noexcept {
  salt = salt.substr(0, kShaCryptMaxSaltBytes);
  rounds = std::clamp(rounds, kShaCryptMinRounds, kShaCryptMaxRounds);
  const size_t length = password.size();
  Sha256 h;

  // Digest B: password, salt, password.
  h.update(password);
  h.update(salt);
  h.update(password);
  Sha256Digest b = h.finish();

  // Digest A: password, salt, B repeated to the password's length, then for each bit of the
  // length from the lowest, B for a 1 and the password for a 0.
  h.update(password);
  h.update(salt);
  size_t n = length;
  for (; n > b.size(); n -= b.size()) h.update(b.data(), b.size());
  h.update(b.data(), n);
  for (n = length; n > 0; n >>= 1) {
    if ((n & 1) != 0) {
      h.update(b.data(), b.size());
    } else {
      h.update(password);
    }
  }
  Sha256Digest a = h.finish();

  // DP, the password hashed length times; the byte sequence P is DP repeated to that length.
  for (n = 0; n < length; ++n) h.update(password);
  Sha256Digest dp = h.finish();

  // DS, the salt hashed 16 + A[0] times; the sequence S is its first salt-length bytes.
  for (n = 0; n < 16u + a[0]; ++n) h.update(salt);
  Sha256Digest ds = h.finish();

  // The rounds, each from the previous digest (A for the first).
  for (uint32_t i = 0; i < rounds; ++i) {
    if ((i & 1) != 0) {
      update_repeated(h, dp, length);
    } else {
      h.update(a.data(), a.size());
    }
    if (i % 3 != 0) h.update(ds.data(), salt.size());
    if (i % 7 != 0) update_repeated(h, dp, length);
    if ((i & 1) != 0) {
      h.update(a.data(), a.size());
    } else {
      update_repeated(h, dp, length);
    }
    a = h.finish();
  }

  // What is derived from the password does not outlive the call (as the spec's code wipes).
  explicit_bzero(b.data(), b.size());
  explicit_bzero(dp.data(), dp.size());
  explicit_bzero(ds.data(), ds.size());
  explicit_bzero(&h, sizeof h);
  return a;
}

size_t format_sha256_crypt(const Sha256CryptHash& hash, char* out, size_t out_size) noexcept {
  char text[kSha256CryptMaxChars];
  size_t o = 0;
  std::memcpy(text, kSha256CryptPrefix.data(), kSha256CryptPrefix.size());
  o += kSha256CryptPrefix.size();
  if (hash.rounds_written) {
    std::memcpy(text + o, kRoundsPrefix.data(), kRoundsPrefix.size());
    o += kRoundsPrefix.size();
    o += write_decimal(std::clamp(hash.rounds, kShaCryptMinRounds, kShaCryptMaxRounds), text + o);
    text[o++] = '$';
  }
  const size_t salt_size = std::min<size_t>(hash.salt_size, kShaCryptMaxSaltBytes);
  std::memcpy(text + o, hash.salt_bytes.data(), salt_size);
  o += salt_size;
  text[o++] = '$';
  encode_digest(hash.digest, text + o);
  o += kSha256CryptDigestChars;
  if (o > out_size) return 0;
  std::memcpy(out, text, o);
  return o;
}

size_t sha256_crypt(std::string_view password, std::string_view setting, char* out,
                    size_t out_size) noexcept {
  if (!setting.starts_with(kSha256CryptPrefix)) return 0;
  std::string_view rest = setting.substr(kSha256CryptPrefix.size());
  Sha256CryptHash hash;
  if (rest.starts_with(kRoundsPrefix)) {
    const std::string_view number = rest.substr(kRoundsPrefix.size());
    size_t digits = 0;
    uint64_t rounds = 0;
    for (; digits < number.size() && number[digits] >= '0' && number[digits] <= '9'; ++digits) {
      rounds = std::min<uint64_t>(rounds * 10 + static_cast<uint64_t>(number[digits] - '0'),
                                  kShaCryptMaxRounds);
    }
    if (digits < number.size() && number[digits] == '$') {
      hash.rounds = static_cast<uint32_t>(
          std::clamp<uint64_t>(rounds, kShaCryptMinRounds, kShaCryptMaxRounds));
      hash.rounds_written = true;
      rest = number.substr(digits + 1);
    }
  }
  const std::string_view salt = rest.substr(0, std::min(rest.find('$'), kShaCryptMaxSaltBytes));
  std::memcpy(hash.salt_bytes.data(), salt.data(), salt.size());
  hash.salt_size = static_cast<uint8_t>(salt.size());
  hash.digest = sha256_crypt_digest(password, salt, hash.rounds);
  return format_sha256_crypt(hash, out, out_size);
}

bool sha256_crypt_verify(std::string_view password, const Sha256CryptHash& stored) noexcept {
  Sha256Digest computed = sha256_crypt_digest(password, stored.salt(), stored.rounds);
  const bool equal = constant_time_equal(computed.data(), stored.digest.data(), computed.size());
  explicit_bzero(computed.data(), computed.size());
  return equal;
}

bool sha256_crypt_verify(std::string_view password, std::string_view stored) noexcept {
  Sha256CryptHash hash;
  return parse_sha256_crypt(stored, hash) && sha256_crypt_verify(password, hash);
}

}  // namespace edgeproxy
