// SHA-256 (FIPS 180-4), streaming and one-shot: pure computation, no allocation, no syscalls.
// The building block of SHA-256-crypt (sha_crypt.h) and of the credential cache's keys.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace edgeproxy {

inline constexpr size_t kSha256DigestBytes = 32;
inline constexpr size_t kSha256BlockBytes = 64;

using Sha256Digest = std::array<uint8_t, kSha256DigestBytes>;

// A SHA-256 computation over bytes given in any number of update() calls: the digest depends
// only on the concatenation of what was given, not on how it was split. Plain value, no
// resources; one object per thread at a time.
class Sha256 {
 public:
  Sha256() noexcept { reset(); }

  // Starts over with the empty message.
  void reset() noexcept;
  // Appends `size` bytes at `data` (nullptr is allowed when size == 0). A message longer than
  // 2^61 - 1 bytes is outside FIPS 180-4; its length wraps as the standard's 64-bit bit count.
  void update(const void* data, size_t size) noexcept;
  void update(std::string_view bytes) noexcept { update(bytes.data(), bytes.size()); }
  // The digest of everything given since the last reset() or finish(); the object is then reset,
  // ready for a new message.
  Sha256Digest finish() noexcept;

 private:
  void compress(const uint8_t* block) noexcept;

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, kSha256BlockBytes> block_;  // a partial block, block_bytes_ long
  uint64_t total_bytes_;
  size_t block_bytes_;
};

// The SHA-256 digest of `bytes`.
Sha256Digest sha256(std::string_view bytes) noexcept;

}  // namespace edgeproxy
