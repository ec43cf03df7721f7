// Fuzz target: base64. The input is decoded (the strict decoder accepts exactly what the encoder
// writes: what it decodes must encode back to the same text) and encoded (what the encoder
// writes must decode back to the input), into buffers of exactly the announced sizes.
#include <cstring>
#include <memory>

#include "edgeproxy/base64.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeproxy;
  if (size > 16384) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const size_t max = base64_decoded_max_size(size);
  std::unique_ptr<char[]> decoded(new char[max + 1]);
  const size_t n = base64_decode(text, decoded.get(), max);
  if (n != kBase64Invalid) {
    FUZZ_CHECK(n <= max);
    const size_t chars = base64_encoded_size(n);
    FUZZ_CHECK(chars == size);
    std::unique_ptr<char[]> again(new char[chars + 1]);
    FUZZ_CHECK(base64_encode({decoded.get(), n}, again.get(), chars) == chars);
    FUZZ_CHECK(std::memcmp(again.get(), data, size) == 0);
    // One byte less of room is refused before anything is written.
    if (n > 0) FUZZ_CHECK(base64_decode(text, decoded.get(), n - 1) == kBase64Invalid);
  }

  const size_t chars = base64_encoded_size(size);
  std::unique_ptr<char[]> encoded(new char[chars + 1]);
  FUZZ_CHECK(base64_encode(text, encoded.get(), chars) == chars);
  if (chars > 0) FUZZ_CHECK(base64_encode(text, encoded.get(), chars - 1) == kBase64Invalid);
  std::unique_ptr<char[]> back(new char[size + 1]);
  FUZZ_CHECK(base64_decode({encoded.get(), chars}, back.get(), size) == size);
  FUZZ_CHECK(size == 0 || std::memcmp(back.get(), data, size) == 0);
  return 0;
}
