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
// `$$` is a literal `$`. At each `$` the longest variable name the text continues with is taken,
// so "$client_addr:$client_port" and "$server-a" need no delimiter; a `$` that starts no variable
// name (and is not `$$`) is refused at load. Literal runs are kept whole, one Part each.
struct ValueTemplate {
  enum class Var : uint8_t { kLiteral, kClientAddr, kClientPort, kListener, kServer, kRequestId };
  struct Part {
    Var var = Var::kLiteral;
    std::string literal;  // kLiteral only
  };
  std::vector<Part> parts;
  // Error: one phrase ("unknown variable '$foo' (expected $client_addr, $client_port, $listener,
  // $server, $request_id or $$)", naming the letters, digits and '_' after the `$`). Refuses a
  // byte that no field value may hold (RFC 9110 section 5.5: a control character other than HT,
  // or DEL), so that no expansion can split a head; the variables' values are the caller's
  // (RuleVars). Load time only: allocates.
  static Result<ValueTemplate> parse(std::string_view text);
};

// The values of the variables for one request, each bytes is_field_value_char() accepts (the
// worker formats them; names come from the configuration, which holds tokens). Not copied.
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

// The most header rules a RequestRules or ResponseRules holds: the builders keep the fields the
// rules add in a fixed array on the stack. The configuration parser is to refuse more; a builder
// given more returns 0.
inline constexpr uint32_t kMaxHeaderRules = 64;

// The configuration parser should refuse a rule naming a field the proxy frames or routes by
// (Host, Content-Length, Transfer-Encoding) or a hop-by-hop one (Connection, Upgrade, ...): the
// builders apply rules as written and would forward what such a rule says.
struct HeaderRule {
  HeaderAction action = HeaderAction::kAdd;
  std::string name;     // a token; compared without case
  ValueTemplate value;  // empty for kDel
};

// `rewrite PREFIX NEW-PREFIX`: a request path starting with PREFIX gets NEW-PREFIX instead. The
// comparison is of bytes, as sent (no case folding, no percent-decoding, no segment boundary:
// "/api" matches "/apix" too, so write "/api/"), and of the path only: the query is kept.
struct PathRewrite {
  std::string prefix;       // starts with '/'
  std::string replacement;  // starts with '/'
};

struct RequestRules {
  std::vector<PathRewrite> rewrites;  // the first whose prefix matches applies, in file order
  std::vector<HeaderRule> headers;    // applied in file order, after the hop-by-hop removal
  // X-Forwarded-For: $client_addr appended; the fields of that name left after the rules become
  // one field "<their values, in order>, <client_addr>" after the others.
  bool forwarded_for = true;
  bool forwarded_proto = true;  // X-Forwarded-Proto: http (replaces any sent or added)
  // Via: "1.1 edgeproxy" (1.0 for HTTP/1.0), joined to the Via fields left after the rules as
  // X-Forwarded-For is.
  bool via = true;
};

struct ResponseRules {
  std::vector<HeaderRule> headers;
  bool via = true;
};

// The request head to send a pooled server for `head` (kDone from parse_request_head, origin-
// or absolute-form, never CONNECT; `tokens` its parse_connection()), written into `out`; returns
// its length, or 0 when it does not fit `out` or `rules.headers` holds more than
// kMaxHeaderRules (then bytes of `out` may have been written, none past out.size()). The
// request line keeps the method and version; the target becomes origin-form
// (forward_target() in http_rewrite.h) with the first matching rewrite applied to its path
// (query kept). The fields are written "Name: value" in order (the name as sent, the value
// without surrounding blanks) except hop-by-hop ones (request_hop_by_hop() in http_rewrite.h,
// as rewrite_request_head() drops them: Connection and the fields it names, Keep-Alive,
// Proxy-*, TE, Trailer, Upgrade unless `upgrade`); an absolute-form target's authority replaces
// a differing Host value where it stands, or is appended as "Host: <authority>" when there is
// no Host (RFC 9112 section 3.2.2). Then the rules apply in order to that list (set and del
// reach fields earlier rules added; names compared without case), then X-Forwarded-For,
// X-Forwarded-Proto and Via as `rules` says, then "Connection: upgrade" when `upgrade` (a
// WebSocket handshake relayed; the caller sets it only for a request with Upgrade and
// ConnectionTokens::upgrade), else "Connection: keep-alive" for HTTP/1.0 (the pooled
// connection stays open), then the blank line. `out` must not overlap the head's bytes.
// The rules can make the head longer than the one sent, with more fields than kMaxHeaders:
// `out` bounds its bytes, the configuration its fields. Any thread; no allocation.
uint32_t build_request_head(const RequestHead& head, const ConnectionTokens& tokens,
                            const RequestRules& rules, const RuleVars& vars, bool upgrade,
                            std::span<std::byte> out) noexcept;

// The Connection line the client is sent with a final response (RFC 9112 section 9.3): none
// (HTTP/1.1 persists by default), "close" (the proxy ends the connection after it), or
// "keep-alive" (an HTTP/1.0 client that asked for it; HTTP/1.0 closes by default).
enum class ClientConnection : uint8_t { kPersist, kClose, kKeepAlive };

// The response head to send the client for `head` (kDone from parse_response_head, a final
// response, or 101), written into `out`; 0 when it does not fit, when `rules.headers` holds more
// than kMaxHeaderRules, or when parse_connection() refuses the head's Connection fields
// (response_framing() refused the response already). The status line is copied as sent and the
// fields are written "Name: value" in order except Connection, Keep-Alive, the fields
// named_by_connection() (the client's connection is the proxy's, not the server's) and, unless
// the head is a 101, Upgrade; then the rules (as build_request_head applies them); then Via
// when `rules.via` ("1.1 edgeproxy", or 1.0 per the response's version, joined to the Via
// fields left as build_request_head does); then "Connection: upgrade" for a 101 (the
// connection becomes a tunnel, so `client` is moot), else the line `client` says; then the
// blank line. `out` must not overlap the head's bytes. Any thread; no
// allocation.
uint32_t build_response_head(const ResponseHead& head, const ResponseRules& rules,
                             const RuleVars& vars, ClientConnection client,
                             std::span<std::byte> out) noexcept;

}  // namespace edgeproxy::http
