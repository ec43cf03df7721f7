// SHA-256-crypt, the "$5$" password hash of Ulrich Drepper's "Unix crypt using SHA-256 and
// SHA-512" (glibc crypt(3), `openssl passwd -5`, `mkpasswd -m sha-256`): parsing a stored hash,
// computing one, and verifying a password in constant time. Pure, noexcept, no allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "edgeproxy/sha256.h"

namespace edgeproxy {

inline constexpr std::string_view kSha256CryptPrefix = "$5$";
// The spec's rounds: 5000 when "rounds=N$" is absent; N is clamped into [min, max] when hashing.
inline constexpr uint32_t kShaCryptDefaultRounds = 5000;
inline constexpr uint32_t kShaCryptMinRounds = 1000;
inline constexpr uint32_t kShaCryptMaxRounds = 999999999;
inline constexpr size_t kShaCryptMaxSaltBytes = 16;
inline constexpr size_t kSha256CryptDigestChars = 43;  // 32 bytes in the crypt base64 alphabet
// The longest hash text: "$5$rounds=999999999$" + 16 salt bytes + "$" + 43 digest characters.
inline constexpr size_t kSha256CryptMaxChars = 20 + kShaCryptMaxSaltBytes + 1 + 43;

// A SHA-256-crypt hash taken apart: `$5$[rounds=N$]salt$digest`.
struct Sha256CryptHash {
  uint32_t rounds = kShaCryptDefaultRounds;
  bool rounds_written = false;  // "rounds=N$" is part of the text (even with N = 5000)
  uint8_t salt_size = 0;
  std::array<char, kShaCryptMaxSaltBytes> salt_bytes{};
  Sha256Digest digest{};

  std::string_view salt() const noexcept { return {salt_bytes.data(), salt_size}; }
};

// Parses a stored hash, strictly: what sha256_crypt() can produce, and nothing else.
// Refused (false; `*reason`, if given, points to a static phrase saying why):
// - another scheme or none ("$6$...", "$1$...", "$2y$...", plain text);
// - "rounds=" not followed by 1000 to 999999999 in decimal without leading zeros, then "$"
//   (the spec writes clamped values, so an out-of-range N is never produced);
// - a salt longer than 16 bytes, or with a byte outside visible ASCII, or $ : ; * ! or a
//   backslash (libxcrypt's crypt() refuses the same);
//   an empty salt is accepted, as the spec makes one from an empty setting;
// - a digest that is not exactly 43 characters of ./0-9A-Za-z, or whose last character has
//   bits set beyond the 256 of the digest; anything after the digest.
// `out` is meaningful only when true is returned.
bool parse_sha256_crypt(std::string_view stored, Sha256CryptHash& out,
                        const char** reason = nullptr) noexcept;

// The spec's digest (its steps 1 to 21) of `password` with `salt` and `rounds`. Only the first
// 16 bytes of `salt` are used and `rounds` is clamped into [kShaCryptMinRounds,
// kShaCryptMaxRounds], as the spec does. Any password length is accepted, but the cost grows
// with it: each round hashes the password's length once or twice, and a first step hashes it
// length times (so callers facing the network bound it, see credentials.h).
Sha256Digest sha256_crypt_digest(std::string_view password, std::string_view salt,
                                 uint32_t rounds) noexcept;

// Writes the text of `hash` (no NUL) and returns its length, at most kSha256CryptMaxChars; 0,
// writing nothing, when out_size is too small.
size_t format_sha256_crypt(const Sha256CryptHash& hash, char* out, size_t out_size) noexcept;

// crypt(3) for SHA-256: hashes `password` with a setting "$5$[rounds=N$]salt[$anything]" and
// writes the hash text as format_sha256_crypt() does; 0 when the setting does not start with
// "$5$" or out_size is too small. As the spec: the salt ends at the next "$" or after 16 bytes,
// N is clamped and written back clamped ("rounds=10$" gives "rounds=1000$"), and "rounds=" not
// followed by digits and "$" is part of the salt. Unlike strtoul in the spec's code, N is decimal
// digits only (no sign, no blanks); more digits than fit saturate to the maximum.
size_t sha256_crypt(std::string_view password, std::string_view setting, char* out,
                    size_t out_size) noexcept;

// Whether `password` hashes to `stored`'s digest; the digests are compared in constant time.
// Costs one sha256_crypt_digest() with `stored`'s salt and rounds.
bool sha256_crypt_verify(std::string_view password, const Sha256CryptHash& stored) noexcept;
// The same from the text; false without hashing when parse_sha256_crypt() refuses `stored`.
bool sha256_crypt_verify(std::string_view password, std::string_view stored) noexcept;

}  // namespace edgeproxy
