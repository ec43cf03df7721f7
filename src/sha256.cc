// SHA-256 as FIPS 180-4 section 6.2 writes it; see sha256.h.
#include "edgeproxy/sha256.h"

#include <algorithm>
#include <cstring>

namespace edgeproxy {

namespace {

// FIPS 180-4 section 4.2.2: the first 32 bits of the fractional parts of the cube roots of the
// first 64 primes.
constexpr std::array<uint32_t, 64> kRoundConstants = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// Section 5.3.3: the first 32 bits of the fractional parts of the square roots of the first 8
// primes.
constexpr std::array<uint32_t, 8> kInitialState = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

constexpr uint32_t rotr(uint32_t x, unsigned n) noexcept {
  return (x >> n) | (x << (32 - n));
}

uint32_t load_be32(const uint8_t* p) noexcept {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

void store_be32(uint8_t* p, uint32_t v) noexcept {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

}  // namespace

void Sha256::reset() noexcept {
  state_ = kInitialState;
  block_ = {};
  total_bytes_ = 0;
  block_bytes_ = 0;
}

void Sha256::compress(const uint8_t* block) noexcept {
  // Section 6.2.2, with the message schedule kept as a rolling window of 16 words.
  std::array<uint32_t, 16> w;
  for (size_t t = 0; t < 16; ++t) w[t] = load_be32(block + 4 * t);
  uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
  uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
  for (size_t t = 0; t < 64; ++t) {
    if (t >= 16) {
      const uint32_t w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
      const uint32_t s0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3);
      const uint32_t s1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10);
      w[t & 15] += s0 + w[(t - 7) & 15] + s1;
    }
    const uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    const uint32_t ch = (e & f) ^ (~e & g);
    const uint32_t t1 = h + big_s1 + ch + kRoundConstants[t] + w[t & 15];
    const uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    const uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
    const uint32_t t2 = big_s0 + maj;
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
  state_[4] += e;
  state_[5] += f;
  state_[6] += g;
  state_[7] += h;
}

void Sha256::update(const void* data, size_t size) noexcept {
  if (size == 0) return;
  const auto* p = static_cast<const uint8_t*>(data);
  total_bytes_ += size;
  if (block_bytes_ > 0) {
    const size_t take = std::min(size, kSha256BlockBytes - block_bytes_);
    std::memcpy(block_.data() + block_bytes_, p, take);
    block_bytes_ += take;
    p += take;
    size -= take;
    if (block_bytes_ < kSha256BlockBytes) return;
    compress(block_.data());
    block_bytes_ = 0;
  }
  for (; size >= kSha256BlockBytes; p += kSha256BlockBytes, size -= kSha256BlockBytes) {
    compress(p);
  }
  if (size > 0) {
    std::memcpy(block_.data(), p, size);
    block_bytes_ = size;
  }
}

Sha256Digest Sha256::finish() noexcept {
  // Section 5.1.1: a 1 bit, zeros up to 56 bytes into a block, then the length in bits.
  const uint64_t bits = total_bytes_ << 3;
  block_[block_bytes_++] = 0x80;
  if (block_bytes_ > kSha256BlockBytes - 8) {
    std::memset(block_.data() + block_bytes_, 0, kSha256BlockBytes - block_bytes_);
    compress(block_.data());
    block_bytes_ = 0;
  }
  std::memset(block_.data() + block_bytes_, 0, kSha256BlockBytes - 8 - block_bytes_);
  store_be32(block_.data() + 56, static_cast<uint32_t>(bits >> 32));
  store_be32(block_.data() + 60, static_cast<uint32_t>(bits));
  compress(block_.data());
  Sha256Digest digest;
  for (size_t i = 0; i < 8; ++i) store_be32(digest.data() + 4 * i, state_[i]);
  reset();
  return digest;
}

Sha256Digest sha256(std::string_view bytes) noexcept {
  Sha256 h;
  h.update(bytes);
  return h.finish();
}

}  // namespace edgeproxy
