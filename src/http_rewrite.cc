// The forwarded request head; see http_rewrite.h. Two passes: a plan (what goes, how long) that
// reads the head while it is intact, then the writes, left to right.
#include "edgeproxy/http_rewrite.h"

#include <cstring>
#include <string_view>

namespace edgeproxy::http {

namespace {

static_assert(kMaxHeaders <= 64, "Plan::keep has one bit per field");

constexpr std::string_view kHostPrefix = "Host: ";
constexpr std::string_view kConnectionPrefix = "Connection: ";
constexpr std::string_view kCrlf = "\r\n";

// Removed whatever the Connection options say (RFC 9110 section 7.6.1 and the ones it names as
// hop-by-hop); Upgrade is judged apart.
constexpr std::string_view kHopByHop[] = {
    "connection", "proxy-connection", "proxy-authorization", "keep-alive", "te", "trailer",
};

// Never removed because a Connection option names them: they frame and route the message.
constexpr std::string_view kEndToEnd[] = {"host", "content-length", "transfer-encoding"};

bool one_of(std::string_view name, std::span<const std::string_view> names) noexcept {
  for (const std::string_view n : names) {
    if (iequals(name, n)) return true;
  }
  return false;
}

struct Plan {
  uint64_t keep = 0;                     // bit i: headers[i] is copied as sent
  uint32_t replaced_host = kMaxHeaders;  // the Host field written as "Host: <authority>"
  bool add_host = false;                 // "Host: <authority>" after the fields
  std::string_view target;               // as written in the request line
  std::string_view authority;            // an absolute-form target's, else empty
  std::string_view connection;           // the added Connection line's value, or empty
  uint32_t length = 0;                   // of the whole rewritten head; 0: refused
};

// The bytes of header `field`'s line, CRLF included, in the head starting at `base`.
std::string_view field_line(const RequestHead& head, const HeaderField& field) noexcept {
  const std::string_view bytes(head.method.data(), head.length);
  const size_t start = static_cast<size_t>(field.name.data() - bytes.data());
  const size_t value_end =
      static_cast<size_t>(field.value.data() - bytes.data()) + field.value.size();
  const size_t lf = bytes.find('\n', value_end);
  return bytes.substr(start, lf + 1 - start);
}

Plan plan(const RequestHead& head, const ConnectionTokens& tokens,
          RewriteOptions options) noexcept {
  Plan p;
  const ForwardTarget forward = forward_target(head);
  const bool absolute = !forward.authority.empty();
  p.target = forward.target;
  p.authority = forward.authority;
  size_t length = head.method.size() + 1 + p.target.size() + std::string_view(" HTTP/1.1").size() +
                  kCrlf.size();
  const size_t host_line = kHostPrefix.size() + p.authority.size() + kCrlf.size();
  bool host_seen = false;
  for (uint32_t i = 0; i < head.header_count; ++i) {
    const HeaderField& field = head.headers[i];
    if (absolute && iequals(field.name, "host")) {
      host_seen = true;
      if (!iequals(field.value, p.authority)) {
        p.replaced_host = i;
        length += host_line;
        continue;
      }
    } else if (request_hop_by_hop(field.name, tokens, options.upgrade)) {
      continue;
    }
    p.keep |= uint64_t{1} << i;
    length += field_line(head, field).size();
  }
  if (absolute && !host_seen) {
    p.add_host = true;
    length += host_line;
  }
  if (options.upgrade && options.close) {
    p.connection = "upgrade, close";
  } else if (options.upgrade) {
    p.connection = "upgrade";
  } else if (options.close) {
    p.connection = "close";
  }
  if (!p.connection.empty())
    length += kConnectionPrefix.size() + p.connection.size() + kCrlf.size();
  length += kCrlf.size();
  const bool host_line_written = p.add_host || p.replaced_host != kMaxHeaders;
  p.length = host_line_written && p.authority.size() > kMaxHostLineAuthority
                 ? 0
                 : static_cast<uint32_t>(length);
  return p;
}

// Appends to `out` at `at` with memmove: the source may overlap the destination (in place), and
// is then never before it.
void put(std::span<std::byte> out, size_t& at, std::string_view bytes) noexcept {
  std::memmove(out.data() + at, bytes.data(), bytes.size());
  at += bytes.size();
}

}  // namespace

bool named_by_connection(std::string_view name, const ConnectionTokens& tokens) noexcept {
  return tokens.names(name) && !one_of(name, kEndToEnd);
}

bool request_hop_by_hop(std::string_view name, const ConnectionTokens& tokens,
                        bool keep_upgrade) noexcept {
  if (one_of(name, kHopByHop)) return true;
  if (iequals(name, "upgrade")) return !keep_upgrade;
  return named_by_connection(name, tokens);
}

ForwardTarget forward_target(const RequestHead& head) noexcept {
  // parse_request_head() sets `path` for origin-form and absolute-form targets only.
  if (head.path.empty() || head.target.front() == '/') return {head.target, {}};
  const size_t scheme_end = head.target.find("://") + 3;
  const size_t authority_end = head.target.find_first_of("/?", scheme_end);
  return {head.path, head.target.substr(scheme_end, authority_end - scheme_end)};
}

uint32_t rewritten_request_length(const RequestHead& head, const ConnectionTokens& tokens,
                                  RewriteOptions options) noexcept {
  return plan(head, tokens, options).length;
}

uint32_t rewrite_request_head(const RequestHead& head, const ConnectionTokens& tokens,
                              RewriteOptions options, std::span<std::byte> out) noexcept {
  const Plan p = plan(head, tokens, options);
  if (p.length == 0 || out.size() < p.length) return 0;
  // The authority's bytes are in the request line, which the first writes overwrite. plan()
  // refused a Host line for an authority longer than the copy.
  char authority_bytes[kMaxHostLineAuthority];
  std::string_view authority;
  if (p.add_host || p.replaced_host != kMaxHeaders) {
    std::memcpy(authority_bytes, p.authority.data(), p.authority.size());
    authority = std::string_view(authority_bytes, p.authority.size());
  }

  size_t at = 0;
  put(out, at, head.method);
  put(out, at, " ");
  put(out, at, p.target);
  put(out, at, head.version_minor == 0 ? " HTTP/1.0" : " HTTP/1.1");
  put(out, at, kCrlf);
  for (uint32_t i = 0; i < head.header_count; ++i) {
    if ((p.keep >> i & 1) != 0) {
      put(out, at, field_line(head, head.headers[i]));
    } else if (i == p.replaced_host) {
      put(out, at, kHostPrefix);
      put(out, at, authority);
      put(out, at, kCrlf);
    }
  }
  if (p.add_host) {
    put(out, at, kHostPrefix);
    put(out, at, authority);
    put(out, at, kCrlf);
  }
  if (!p.connection.empty()) {
    put(out, at, kConnectionPrefix);
    put(out, at, p.connection);
    put(out, at, kCrlf);
  }
  put(out, at, kCrlf);
  return static_cast<uint32_t>(at);
}

}  // namespace edgeproxy::http
