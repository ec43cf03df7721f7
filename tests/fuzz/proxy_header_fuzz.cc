// Fuzz target: the PROXY protocol header reader (v1 and v2). The input is the client's first
// bytes. Checked: parse() stays inside the bytes (ASan); on growing prefixes it is kNeedMore
// before a header's end, then the same answer; kInvalid is final; sniff() agrees; the length is
// within the version's limit; a parsed header's addresses, written again by build() (either
// version) and read back, are a fixed point after one normalisation (IPv4-mapped addresses).
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <memory>
#include <vector>

#include "edgeproxy/proxy_header.h"
#include "fuzz_util.h"

namespace {

using namespace edgeproxy;
namespace ph = edgeproxy::proxy_header;

ph::Status parse_copy(std::span<const std::byte> bytes, ph::Parsed& out) {
  std::unique_ptr<std::byte[]> copy(new std::byte[bytes.size() + 1]);
  if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
  return ph::parse({copy.get(), bytes.size()}, out);
}

bool same_addresses(const ph::Parsed& a, const ph::Parsed& b) {
  return a.local == b.local &&
         (a.local || (a.source == b.source && a.destination == b.destination));
}

void round_trip(const ph::Parsed& p, uint8_t version) {
  std::array<std::byte, ph::kMaxBuiltBytes> out{};
  const uint32_t n = ph::build(version, p.source, p.destination, out);
  FUZZ_CHECK(n > 0 && n <= out.size());
  ph::Parsed again;
  FUZZ_CHECK(parse_copy({out.data(), n}, again) == ph::Status::kDone);
  FUZZ_CHECK(again.length == n && again.version == version);
  if (p.local) {
    FUZZ_CHECK(again.local);
    return;
  }
  FUZZ_CHECK(!again.local);
  // Once normalised (an IPv4-mapped address written as IPv4), writing it again changes nothing.
  std::array<std::byte, ph::kMaxBuiltBytes> out2{};
  const uint32_t n2 = ph::build(version, again.source, again.destination, out2);
  FUZZ_CHECK(n2 == n && std::memcmp(out.data(), out2.data(), n) == 0);
  ph::Parsed third;
  FUZZ_CHECK(parse_copy({out2.data(), n2}, third) == ph::Status::kDone);
  FUZZ_CHECK(same_addresses(again, third));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;
  fuzz::Input in(data, size);
  std::vector<size_t> cuts = fuzz::split_points(in, 4);
  const std::span<const std::byte> bytes = fuzz::as_bytes(in.rest());
  ph::Parsed full;
  const ph::Status status = parse_copy(bytes, full);
  const ph::Status sniffed = ph::sniff(bytes);
  if (status == ph::Status::kDone) {
    FUZZ_CHECK(sniffed == ph::Status::kDone);
    FUZZ_CHECK(full.length > 0 && full.length <= bytes.size());
    FUZZ_CHECK(full.version == 1 || full.version == 2);
    FUZZ_CHECK(full.length <= (full.version == 1 ? ph::kMaxV1Bytes : ph::kMaxV2Bytes));
    if (!full.local) {
      FUZZ_CHECK(full.source.family() == full.destination.family());
      FUZZ_CHECK(full.source.family() == AF_INET || full.source.family() == AF_INET6);
    }
    round_trip(full, 1);
    round_trip(full, 2);
  }
  if (sniffed == ph::Status::kInvalid) FUZZ_CHECK(status == ph::Status::kInvalid);
  bool invalid = false;
  for (size_t cut : cuts) {
    ph::Parsed part;
    const ph::Status p = parse_copy(bytes.first(cut), part);
    if (invalid) FUZZ_CHECK(p == ph::Status::kInvalid);
    invalid = p == ph::Status::kInvalid;
    if (status == ph::Status::kDone) {
      if (cut < full.length) {
        FUZZ_CHECK(p == ph::Status::kNeedMore);
      } else {
        FUZZ_CHECK(p == ph::Status::kDone && part.length == full.length);
        FUZZ_CHECK(same_addresses(part, full));
      }
    }
  }
  if (invalid) FUZZ_CHECK(status == ph::Status::kInvalid);
  return 0;
}
