// Fuzz target: the chunked transfer-coding decoder. The input's first bytes choose split points
// and which pieces pass chunk data over with skip_data(); the rest is the body. Checked: the
// decoder ends (kDone or kInvalid, at the same byte) exactly as when fed the bytes at once,
// remaining_data() never exceeds what the size line announced, and kDone/kInvalid are final.
#include <vector>

#include "body_feed.h"
#include "edgeproxy/chunked_decoder.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeproxy;
  if (size > 65536) return 0;
  fuzz::Input in(data, size);
  const uint32_t skip_bits = static_cast<uint32_t>(in.u16()) << 16 | in.u16();
  std::vector<size_t> cuts = fuzz::split_points(in, 16);
  const std::span<const std::byte> bytes = fuzz::as_bytes(in.rest());

  http::ChunkedDecoder once;
  const http::BodyProgress whole = once.consume(bytes);
  const fuzz::BodyEnd expected{whole.status, whole.status == http::BodyStatus::kMore
                                                 ? bytes.size()
                                                 : static_cast<uint64_t>(whole.used)};
  if (whole.status != http::BodyStatus::kMore) {
    // Final: a later call gives the same status with nothing used.
    const http::BodyProgress again = once.consume(bytes);
    FUZZ_CHECK(again.status == whole.status && again.used == 0);
    FUZZ_CHECK(once.done() == (whole.status == http::BodyStatus::kDone));
    FUZZ_CHECK(once.failed() == (whole.status == http::BodyStatus::kInvalid));
  }

  http::ChunkedDecoder split;
  FUZZ_CHECK(fuzz::feed(split, bytes, cuts) == expected);
  http::ChunkedDecoder skipping;
  FUZZ_CHECK(fuzz::feed(skipping, bytes, cuts, skip_bits) == expected);
  skipping.reset();
  FUZZ_CHECK(!skipping.done() && !skipping.failed() && skipping.remaining_data() == 0);
  return 0;
}
