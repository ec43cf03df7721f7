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

// Split points for the payload that follows them: `in`'s next byte says how many (up to `max`),
// then one 16-bit value each. The payload is what is left after them, so the points are known to
// fall in (0, payload length); the result is ascending and ends with the payload's length.
inline std::vector<size_t> split_points(Input& in, uint32_t max) {
  const uint32_t count = max == 0 ? 0 : in.byte() % (max + 1);
  const size_t controls = 2 * size_t{count};
  const size_t length = in.remaining() > controls ? in.remaining() - controls : 0;
  std::vector<size_t> cuts;
  for (uint32_t i = 0; i < count; ++i) {
    const uint16_t v = in.u16();
    if (length > 1) cuts.push_back(1 + v % (length - 1));
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.push_back(length);
  return cuts;
}

// The field lines of a head written with CRLF line ends: the lines between the first one and
// the blank line that ends it.
inline uint32_t field_lines(std::string_view head) noexcept {
  uint32_t lines = 0;
  for (size_t at = head.find("\r\n"); at != std::string_view::npos;
       at = head.find("\r\n", at + 2)) {
    ++lines;
  }
  return lines >= 2 ? lines - 2 : 0;
}

inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace edgeproxy::fuzz
