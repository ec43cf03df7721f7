// Helpers shared by the fuzz targets: a checked assertion that stays on in release builds (the
// replay executables of the release tree run the same checks), and a reader that takes control
// values (split points, option bits) from the front of a fuzz input.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

// Aborts with the failed condition when `cond` is false: a fuzz target's finding. Always on.
#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace edgeproxy::fuzz {

// Consumes control values from the front of the input; what is left is the payload. Reading past
// the end yields zeros, so every input is usable.
class Input {
 public:
  Input(const uint8_t* data, size_t size) noexcept : data_(data), size_(size) {}
  uint8_t byte() noexcept {
    if (pos_ >= size_) return 0;
    return data_[pos_++];
  }
  uint16_t u16() noexcept { return static_cast<uint16_t>(byte() | (byte() << 8)); }
  // The rest of the input, consumed.
  std::string_view rest() noexcept {
    const std::string_view r(reinterpret_cast<const char*>(data_) + pos_, size_ - pos_);
    pos_ = size_;
    return r;
  }
  size_t remaining() const noexcept { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Up to `max` ascending cut points in (0, length), chosen by `in`'s next byte (how many) and one
// 16-bit value each: the piece boundaries of a split feed. Always ends with `length`.
inline std::vector<size_t> split_points(Input& in, size_t length, uint32_t max) {
  std::vector<size_t> cuts;
  const uint32_t count = max == 0 ? 0 : in.byte() % (max + 1);
  for (uint32_t i = 0; i < count && length > 1; ++i) cuts.push_back(1 + in.u16() % (length - 1));
  std::sort(cuts.begin(), cuts.end());
  cuts.push_back(length);
  return cuts;
}

inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace edgeproxy::fuzz
