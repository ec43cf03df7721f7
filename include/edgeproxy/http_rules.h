// HTTP mode's per-listener rewriting (docs/http-mode.md): a path prefix rewrite, header rules on
// requests and responses with variables, and the X-Forwarded-For / X-Forwarded-Proto / Via
// fields. Compiled once when the configuration is loaded; applied per request by pure functions
// that write a new head into caller-owned bytes (never in place), without allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/http_framing.h"
#include "edgeproxy/http_head.h"
#include "edgeproxy/result.h"

namespace edgeproxy::http {

// A header value with variables: $client_addr, $client_port, $listener, $server, $request_id;
// `$$` is a literal `$`. Any other `$name` is refused at load.
struct ValueTemplate {
  enum class Var : uint8_t { kLiteral, kClientAddr, kClientPort, kListener, kServer, kRequestId };
  struct Part {
    Var var = Var::kLiteral;
    std::string literal;  // kLiteral only
  };
  std::vector<Part> parts;
  // Error: one phrase ("unknown variable '$foo' (expected $client_addr, ...)"). Refuses a value
  // that is not a valid field value once expanded (control characters other than HT).
  static Result<ValueTemplate> parse(std::string_view text);
};

// The values of the variables for one request.
struct RuleVars {
  std::string_view client_addr;  // "192.0.2.1" or "2001:db8::1" (no brackets, no port)
  std::string_view client_port;  // "51234"
  std::string_view listener;
  std::string_view server;
  std::string_view request_id;
};

enum class HeaderAction : uint8_t {
  kAdd,  // append a field line (after the existing ones)
  kSet,  // remove every field of that name, then append one
  kDel,  // remove every field of that name
};

struct HeaderRule {
  HeaderAction action = HeaderAction::kAdd;
  std::string name;     // a token; compared without case
  ValueTemplate value;  // empty for kDel
};

// `rewrite PREFIX NEW-PREFIX`: a request path starting with PREFIX gets NEW-PREFIX instead.
struct PathRewrite {
  std::string prefix;       // starts with '/'
  std::string replacement;  // starts with '/'
};

struct RequestRules {
  std::vector<PathRewrite> rewrites;  // the first whose prefix matches applies, in file order
  std::vector<HeaderRule> headers;    // applied in file order, after the hop-by-hop removal
  bool forwarded_for = true;          // X-Forwarded-For: appended (`, ` to an existing field)
  bool forwarded_proto = true;        // X-Forwarded-Proto: http (replaces any sent)
  bool via = true;                    // Via: 1.1 edgeproxy (1.0 for HTTP/1.0), appended
};

struct ResponseRules {
  std::vector<HeaderRule> headers;
  bool via = true;
};

// The request head to send a pooled server for `head` (kDone from parse_request_head, origin-
// or absolute-form, never CONNECT), written into `out`; returns its length, or 0 when it does
// not fit `out` (nothing useful was written). The request line keeps the method and version; the
// target becomes origin-form with the first matching rewrite applied to its path (query kept).
// The fields are copied in order except hop-by-hop ones (as rewrite_request_head in
// http_rewrite.h: Connection and the fields it names, Keep-Alive, Proxy-*, TE, Trailer, Upgrade
// unless `upgrade`), then the rules apply in order, then X-Forwarded-For, X-Forwarded-Proto and
// Via as `rules` says, then "Connection: upgrade" when `upgrade` (a WebSocket handshake
// relayed), else "Connection: keep-alive" for HTTP/1.0 (the pooled connection stays open),
// then the blank line. `out` must not overlap the head's bytes.
uint32_t build_request_head(const RequestHead& head, const ConnectionTokens& tokens,
                            const RequestRules& rules, const RuleVars& vars, bool upgrade,
                            std::span<std::byte> out) noexcept;

// The response head to send the client for `head` (kDone from parse_response_head, a final
// response, or 101), written into `out`; 0 when it does not fit. The status line and fields are
// copied in order except Connection, Keep-Alive and the fields Connection names (the client's
// connection is the proxy's, not the server's); then the rules; then Via when `rules.via`; then
// "Connection: close" when `client_close`, or "Connection: upgrade" (and Upgrade is kept) when
// the head is a 101; then the blank line. `out` must not overlap the head's bytes.
uint32_t build_response_head(const ResponseHead& head, const ResponseRules& rules,
                             const RuleVars& vars, bool client_close,
                             std::span<std::byte> out) noexcept;

}  // namespace edgeproxy::http
