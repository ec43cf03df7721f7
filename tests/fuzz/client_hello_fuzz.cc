// Fuzz target: the TLS ClientHello reader. The input is the client's first bytes. Checked: the
// reader never reads outside the bytes nor writes outside a scratch of exactly their size (ASan);
// on growing prefixes it answers kNeedMore until the hello is complete and kInvalid stays
// kInvalid; a complete hello's views lie inside the scratch and hold the bytes its contract
// allows; sniff_tls() agrees with the reader on the record header.
#include <cstring>
#include <memory>
#include <vector>

#include "edgeproxy/client_hello.h"
#include "fuzz_util.h"

namespace {

using namespace edgeproxy;
using tls::HelloStatus;

HelloStatus parse(std::span<const std::byte> bytes, tls::ClientHello& out,
                  std::unique_ptr<std::byte[]>& scratch) {
  // Its own heap blocks of exactly the prefix's size, so ASan sees a read or write past either.
  std::unique_ptr<std::byte[]> copy(new std::byte[bytes.size() + 1]);
  if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
  scratch.reset(new std::byte[bytes.size() + 1]);
  const HelloStatus s =
      tls::parse_client_hello({copy.get(), bytes.size()}, {scratch.get(), bytes.size()}, out);
  return s;
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool inside(std::string_view v, const std::byte* base, size_t n) {
  const auto* p = reinterpret_cast<const std::byte*>(v.data());
  return p >= base && p + v.size() <= base + n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > tls::kMaxHelloBytes + 4096) return 0;
  fuzz::Input in(data, size);
  std::vector<size_t> cuts = fuzz::split_points(in, 4);
  const std::span<const std::byte> bytes = fuzz::as_bytes(in.rest());
  tls::ClientHello full;
  std::unique_ptr<std::byte[]> scratch;
  const HelloStatus status = parse(bytes, full, scratch);
  const HelloStatus sniffed = tls::sniff_tls(bytes);
  if (status != HelloStatus::kInvalid) FUZZ_CHECK(sniffed != HelloStatus::kInvalid);
  if (status == HelloStatus::kFound || status == HelloStatus::kNoName) {
    FUZZ_CHECK(full.consumed > 0 && full.consumed <= bytes.size());
    FUZZ_CHECK(full.alpn_count <= tls::kMaxAlpn);
    if (status == HelloStatus::kFound) {
      FUZZ_CHECK(!full.server_name.empty() && full.server_name.size() <= 255);
      FUZZ_CHECK(inside(full.server_name, scratch.get(), bytes.size()));
      for (char c : full.server_name) FUZZ_CHECK(name_char(c));
    } else {
      FUZZ_CHECK(full.server_name.empty());
    }
    for (uint32_t i = 0; i < full.alpn_count; ++i) {
      FUZZ_CHECK(!full.alpn[i].empty() && full.alpn[i].size() <= 255);
      FUZZ_CHECK(inside(full.alpn[i], scratch.get(), bytes.size()));
    }
  }
  // Prefixes: a complete hello is kNeedMore before its end; once kInvalid, always kInvalid.
  bool invalid = false;
  for (size_t cut : cuts) {
    tls::ClientHello part;
    std::unique_ptr<std::byte[]> s;
    const HelloStatus p = parse(bytes.first(cut), part, s);
    if (invalid) FUZZ_CHECK(p == HelloStatus::kInvalid);
    invalid = p == HelloStatus::kInvalid;
    if ((status == HelloStatus::kFound || status == HelloStatus::kNoName)) {
      if (cut < full.consumed) {
        FUZZ_CHECK(p == HelloStatus::kNeedMore);
      } else {
        FUZZ_CHECK(p == status && part.consumed == full.consumed);
        FUZZ_CHECK(part.server_name == full.server_name && part.alpn_count == full.alpn_count);
      }
    }
  }
  if (invalid) FUZZ_CHECK(status == HelloStatus::kInvalid);
  return 0;
}
