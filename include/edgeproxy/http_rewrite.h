// The request head a proxy forwards (RFC 9110 section 7.6.1, RFC 9112 section 3.2): origin-form
// target, hop-by-hop fields removed, Host from an absolute-form target. Pure functions that write
// into caller-owned bytes, possibly the head's own bytes; no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "edgeproxy/http_framing.h"
#include "edgeproxy/http_head.h"

namespace edgeproxy::http {

struct RewriteOptions {
  // The proxy will relay an upgrade (a WebSocket, after a 101): the Upgrade field is forwarded
  // and "upgrade" is added to the Connection line. The caller sets it only when the request has
  // an Upgrade field and ConnectionTokens::upgrade.
  bool upgrade = false;
  // The proxy will not reuse the server connection after this exchange: "close" is added to the
  // Connection line.
  bool close = false;
};

// The pieces rewrite_request_head() and the reverse proxy's build_request_head() (http_rules.h)
// share, so that both forward the same fields and the same target.

// Whether the Connection options make a field hop-by-hop (RFC 9110 section 7.6.1): `tokens`
// names it, and it is not Host, Content-Length or Transfer-Encoding. Those frame and route the
// message, which the proxy already decided; a sender that names them ("Connection:
// content-length") must not make the next hop frame the body differently. Requests and responses.
bool named_by_connection(std::string_view name, const ConnectionTokens& tokens) noexcept;

// Whether a request field is not forwarded: Connection, Proxy-Connection, Proxy-Authorization,
// Keep-Alive, TE, Trailer, Upgrade (unless `keep_upgrade`: an upgrade the proxy relays), and the
// fields named_by_connection().
bool request_hop_by_hop(std::string_view name, const ConnectionTokens& tokens,
                        bool keep_upgrade) noexcept;

// A request's target as forwarded (RFC 9112 section 3.2): `target` is origin-form for an
// origin-form or absolute-form target ("http://h:p/x?y" -> "/x?y", "http://h" -> "/"), else the
// target as sent ("*", a CONNECT authority); `authority` is an absolute-form target's ("h:p"),
// else empty. Views into the head's bytes (or a static "/").
struct ForwardTarget {
  std::string_view target;
  std::string_view authority;
};
ForwardTarget forward_target(const RequestHead& head) noexcept;

// The longest authority an added or replaced Host line takes (a DNS name of 253 bytes and its
// root dot, ":" and a 5-digit port): it is copied aside before the head's bytes are overwritten.
inline constexpr uint32_t kMaxHostLineAuthority = 260;

// Writes the head to forward for `head` (from parse_request_head(), kDone; its bytes unchanged
// since) into `out`, and returns its length; 0 when `out` is shorter than that, or when a Host
// line must be written for an authority longer than kMaxHostLineAuthority (no server could be
// resolved for it), and then nothing was written. `tokens` is parse_connection() of the head, which
// succeeded (request_framing() refuses the head otherwise).
//
// What is written, in this order:
//  - the request line: the method; the target in origin-form (an absolute-form target
//    "http://h:p/x?y" becomes "/x?y", and "http://h" becomes "/"; origin-form, "*" and a
//    CONNECT authority are kept); the head's version (HTTP/1.0 stays HTTP/1.0);
//  - every field line as sent (bytes untouched, order kept), except hop-by-hop ones:
//    Connection, Proxy-Connection, Proxy-Authorization, Keep-Alive, TE, Trailer, Upgrade (kept
//    when `options.upgrade`) and every field the Connection options name. The options never
//    remove Host, Content-Length or Transfer-Encoding: those say how the message is framed and
//    routed, which request_framing() and the proxy already decided; a client that names them
//    must not make the server frame the body differently ("Connection: content-length"). A
//    Connection field that names itself or a field many times removes nothing more;
//  - with an absolute-form target, the Host field says the target's authority (RFC 9112 section
//    3.2.2: a proxy MUST generate Host from the target): a Host line whose value differs is
//    replaced, where it stands, by "Host: <authority>", and a request without Host (HTTP/1.0) gets
//    one after its fields. Origin-form requests keep their Host as sent, or none;
//  - one "Connection: ..." line when `options` asks for upgrade and/or close ("upgrade, close");
//  - the blank line.
// Nothing else is added (no Via, no X-Forwarded-For).
//
// In place: `out` may start at the first byte of the head (head.method.data()) and overlap it.
// Everything the rewrite needs later (which fields go, the authority) is decided and copied
// aside before the first write; then it goes left to right and the output never gets ahead of
// the input: each line is written at or before the address of its source, never over bytes not
// yet copied, and the lines added at the end come after the whole head was read. So passing the
// head's own bytes (out.size() == head.length) succeeds whenever the rewritten head is not longer
// than the original, leaving the bytes after it (a body, a pipelined request) untouched;
// rewritten_request_length() tells beforehand. The head can only grow by the added lines (an
// HTTP/1.0 absolute-form request without Host, the Connection line), less the bytes of the removed
// fields and the scheme and authority; a caller that wants that in place first moves what follows
// the head, else it writes elsewhere. `out` must not cover bytes the caller still needs (a body
// or a pipelined request after the head): a head that grows is written over them. After an in-place
// rewrite the views in `head` and `tokens` point at overwritten bytes: do not use them.
uint32_t rewrite_request_head(const RequestHead& head, const ConnectionTokens& tokens,
                              RewriteOptions options, std::span<std::byte> out) noexcept;

// The length rewrite_request_head() would return given enough room (0 when it would refuse for
// the authority's length). Reads the head; writes nothing.
uint32_t rewritten_request_length(const RequestHead& head, const ConnectionTokens& tokens,
                                  RewriteOptions options) noexcept;

}  // namespace edgeproxy::http
