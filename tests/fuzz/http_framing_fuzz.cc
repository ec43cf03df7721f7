// Fuzz target: HTTP/1.x message framing. The input's first byte picks a request or a response
// (and, for a response, the method of the request it answers), the next ones split points; the
// rest is a head and what follows it. The head's framing is decided (request_framing(),
// response_framing(), parse_connection()), then the bytes after the head run through a
// BodyFramer whole and in pieces, which must end the body at the same byte.
#include <vector>

#include "body_feed.h"
#include "edgeproxy/http_framing.h"
#include "edgeproxy/http_head.h"
#include "fuzz_util.h"

namespace {

using namespace edgeproxy;

void check_tokens(std::span<const http::HeaderField> headers) {
  http::ConnectionTokens tokens;
  if (!http::parse_connection(headers, tokens)) return;
  FUZZ_CHECK(tokens.count <= http::kMaxConnectionOptions);
  for (uint32_t i = 0; i < tokens.count; ++i) {
    FUZZ_CHECK(http::is_token(tokens.options[i]));
    FUZZ_CHECK(tokens.names(tokens.options[i]));
    for (uint32_t j = 0; j < i; ++j)
      FUZZ_CHECK(!http::iequals(tokens.options[i], tokens.options[j]));
  }
}

void check_framing(const http::Framing& f) {
  FUZZ_CHECK((f.kind == http::BodyKind::kLength) == (f.length > 0));
  FUZZ_CHECK(f.length <= http::kMaxContentLength);
  if (f.kind == http::BodyKind::kUntilClose || f.kind == http::BodyKind::kTunnel) {
    FUZZ_CHECK(f.close);
  }
}

void body(const http::Framing& framing, std::span<const std::byte> bytes,
          const std::vector<size_t>& cuts) {
  http::BodyFramer once(framing);
  const http::BodyProgress whole = once.consume(bytes);
  if (framing.kind == http::BodyKind::kNone) {
    FUZZ_CHECK(whole.status == http::BodyStatus::kDone && whole.used == 0);
    return;
  }
  if (framing.kind != http::BodyKind::kChunked)
    FUZZ_CHECK(whole.status != http::BodyStatus::kInvalid);
  if (framing.kind == http::BodyKind::kLength && whole.status == http::BodyStatus::kDone) {
    FUZZ_CHECK(whole.used == framing.length);
  }
  const fuzz::BodyEnd expected{whole.status, whole.status == http::BodyStatus::kMore
                                                 ? bytes.size()
                                                 : static_cast<uint64_t>(whole.used)};
  http::BodyFramer split(framing);
  FUZZ_CHECK(fuzz::feed(split, bytes, cuts) == expected);
}

std::vector<size_t> body_cuts(const std::vector<size_t>& cuts, size_t head, size_t total) {
  std::vector<size_t> out;
  for (size_t c : cuts) {
    if (c > head && c < total) out.push_back(c - head);
  }
  out.push_back(total - head);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 65536) return 0;
  static constexpr std::string_view kMethods[] = {"GET", "HEAD", "CONNECT", "POST"};
  fuzz::Input in(data, size);
  const uint8_t control = in.byte();
  std::vector<size_t> cuts = fuzz::split_points(in, 8);
  const std::string_view text = in.rest();
  uint32_t scanned = 0;
  if (control & 1) {
    http::ResponseHead head;
    if (http::parse_response_head(text, scanned, head) != http::HeadStatus::kDone) return 0;
    check_tokens({head.headers.data(), head.header_count});
    http::Framing framing;
    const std::string_view method = kMethods[(control >> 1) % 4];
    if (http::response_framing(head, method, framing) != http::FramingStatus::kOk) return 0;
    check_framing(framing);
    FUZZ_CHECK(!framing.interim || (head.status < 200 && head.status != 101));
    body(framing, fuzz::as_bytes(text.substr(head.length)),
         body_cuts(cuts, head.length, text.size()));
  } else {
    http::RequestHead head;
    if (http::parse_request_head(text, scanned, head) != http::HeadStatus::kDone) return 0;
    check_tokens({head.headers.data(), head.header_count});
    http::Framing framing;
    const http::FramingStatus status = http::request_framing(head, framing);
    FUZZ_CHECK(http::to_string(status) != nullptr);
    if (status != http::FramingStatus::kOk) return 0;
    check_framing(framing);
    FUZZ_CHECK(framing.kind != http::BodyKind::kUntilClose && !framing.interim);
    FUZZ_CHECK((framing.kind == http::BodyKind::kTunnel) == (head.method == "CONNECT"));
    body(framing, fuzz::as_bytes(text.substr(head.length)),
         body_cuts(cuts, head.length, text.size()));
  }
  return 0;
}
