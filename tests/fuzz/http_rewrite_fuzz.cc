// Fuzz target: the forward proxy's request-head rewrite. The input's first byte holds the
// rewrite options; the rest is a request head (and maybe what follows it). For a head the proxy
// would forward (kDone, framing accepted): rewritten_request_length() announces the length,
// rewrite_request_head() into a separate buffer of exactly that size writes it, one byte less is
// refused, the in-place rewrite (when the result is not longer) writes the same bytes and leaves
// the bytes after the head untouched, and the result parses again as a request head of that
// length, with the same method and version, no hop-by-hop field but the one Connection line the
// options ask for, and an origin-form target.
#include <cstring>
#include <memory>
#include <string>

#include "edgeproxy/http_framing.h"
#include "edgeproxy/http_head.h"
#include "edgeproxy/http_rewrite.h"
#include "fuzz_util.h"

namespace {

using namespace edgeproxy;

bool hop_by_hop(std::string_view name) {
  for (std::string_view h :
       {"proxy-connection", "proxy-authorization", "keep-alive", "te", "trailer"}) {
    if (http::iequals(name, h)) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 70000) return 0;
  fuzz::Input in(data, size);
  const uint8_t control = in.byte();
  const std::string original(in.rest());
  uint32_t scanned = 0;
  http::RequestHead head;
  if (http::parse_request_head(original, scanned, head) != http::HeadStatus::kDone) return 0;
  http::Framing framing;
  if (http::request_framing(head, framing) != http::FramingStatus::kOk) return 0;
  http::ConnectionTokens tokens;
  FUZZ_CHECK(http::parse_connection({head.headers.data(), head.header_count}, tokens));
  http::RewriteOptions options;
  options.close = (control & 1) != 0;
  // The caller asks for an upgrade only when the request offers one.
  bool has_upgrade = false;
  for (uint32_t i = 0; i < head.header_count; ++i) {
    has_upgrade = has_upgrade || http::iequals(head.headers[i].name, "upgrade");
  }
  options.upgrade = (control & 2) != 0 && has_upgrade && tokens.upgrade;

  const uint32_t length = http::rewritten_request_length(head, tokens, options);
  if (length == 0) {
    std::byte big[1024];
    FUZZ_CHECK(http::rewrite_request_head(head, tokens, options, big) == 0);
    return 0;
  }
  std::unique_ptr<std::byte[]> out(new std::byte[length]);
  FUZZ_CHECK(http::rewrite_request_head(head, tokens, options, {out.get(), length}) == length);
  FUZZ_CHECK(http::rewrite_request_head(head, tokens, options, {out.get(), length - 1}) == 0);
  const std::string_view rewritten(reinterpret_cast<const char*>(out.get()), length);

  if (length <= head.length) {
    // In place, over a copy of the head and what follows it.
    std::string copy = original;
    uint32_t copy_scanned = 0;
    http::RequestHead copy_head;
    FUZZ_CHECK(http::parse_request_head(copy, copy_scanned, copy_head) == http::HeadStatus::kDone);
    http::ConnectionTokens copy_tokens;
    FUZZ_CHECK(
        http::parse_connection({copy_head.headers.data(), copy_head.header_count}, copy_tokens));
    auto* base = reinterpret_cast<std::byte*>(copy.data());
    FUZZ_CHECK(http::rewrite_request_head(copy_head, copy_tokens, options,
                                          {base, copy_head.length}) == length);
    FUZZ_CHECK(std::memcmp(copy.data(), rewritten.data(), length) == 0);
    FUZZ_CHECK(std::memcmp(copy.data() + head.length, original.data() + head.length,
                           original.size() - head.length) == 0);
  }

  // The added Connection line can take a head of kMaxHeaders fields past the parser's own limit
  // (a server's limit is its own business): such a head is not parsed again.
  if (fuzz::field_lines(rewritten) > http::kMaxHeaders) return 0;
  uint32_t again_scanned = 0;
  http::RequestHead again;
  FUZZ_CHECK(http::parse_request_head(rewritten, again_scanned, again) == http::HeadStatus::kDone);
  FUZZ_CHECK(again.length == length);
  FUZZ_CHECK(again.method == head.method && again.version_minor == head.version_minor);
  if (head.method != "CONNECT" && head.target != "*") FUZZ_CHECK(again.target.front() == '/');
  uint32_t connection_lines = 0;
  for (uint32_t i = 0; i < again.header_count; ++i) {
    const std::string_view name = again.headers[i].name;
    FUZZ_CHECK(!hop_by_hop(name));
    if (http::iequals(name, "upgrade")) FUZZ_CHECK(options.upgrade);
    if (http::iequals(name, "connection")) ++connection_lines;
    // The fields the client's Connection options named are gone (framing and Host excepted).
    if (!http::iequals(name, "host") && !http::iequals(name, "content-length") &&
        !http::iequals(name, "transfer-encoding") && !http::iequals(name, "connection") &&
        !(options.upgrade && http::iequals(name, "upgrade"))) {
      FUZZ_CHECK(!tokens.names(name));
    }
  }
  FUZZ_CHECK(connection_lines == ((options.close || options.upgrade) ? 1u : 0u));
  http::Framing again_framing;
  FUZZ_CHECK(http::request_framing(again, again_framing) == http::FramingStatus::kOk);
  FUZZ_CHECK(again_framing.kind == framing.kind && again_framing.length == framing.length);
  return 0;
}
