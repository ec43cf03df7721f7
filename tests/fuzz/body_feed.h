// Feeds a body to a ChunkedDecoder or BodyFramer whole, or in pieces, and says where it ended:
// the fuzz targets compare the two (the framing must depend only on the bytes).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "edgeproxy/chunked_decoder.h"
#include "fuzz_util.h"

namespace edgeproxy::fuzz {

struct BodyEnd {
  http::BodyStatus status = http::BodyStatus::kMore;
  uint64_t at = 0;  // kDone: the body's length; kInvalid: the offending byte's offset
  bool operator==(const BodyEnd&) const = default;
};

// Feeds bytes[0, cuts[0]), [cuts[0], cuts[1]), ... (cuts ascending, the last one the size).
// With `skip` (ChunkedDecoder only), chunk data the decoder announces through remaining_data()
// is passed over with skip_data() instead of consume() when bit i of `skip_bits` says so for
// piece i, as a proxy that splices chunk data would.
template <class Decoder>
BodyEnd feed(Decoder& decoder, std::span<const std::byte> bytes, const std::vector<size_t>& cuts,
             uint32_t skip_bits = 0) {
  size_t start = 0;
  uint32_t piece = 0;
  for (size_t cut : cuts) {
    size_t pos = start;
    while (pos < cut) {
      if constexpr (requires { decoder.skip_data(0); }) {
        const uint64_t data = decoder.remaining_data();
        if (data > 0 && (skip_bits >> (piece % 32) & 1)) {
          const uint64_t n = data < cut - pos ? data : cut - pos;
          decoder.skip_data(n);
          pos += n;
          continue;
        }
      }
      const http::BodyProgress p = decoder.consume(bytes.subspan(pos, cut - pos));
      if (p.status != http::BodyStatus::kMore) return {p.status, pos + p.used};
      FUZZ_CHECK(p.used == cut - pos);
      pos = cut;
    }
    start = cut;
    ++piece;
  }
  return {http::BodyStatus::kMore, bytes.size()};
}

}  // namespace edgeproxy::fuzz
