// EndReason: how a connection ended, recorded on the connection by the first terminal cause
// (relay::set_end; later causes are ignored) and written as a short stable word in the access log
// (docs/access-log.md lists every word).
#pragma once

#include <cstdint>

namespace edgeproxy {

enum class EndReason : uint8_t {
  kNone,                // still open (never logged: every close path sets a reason)
  kClientFin,           // the client ended first, in order (its FIN)
  kClientReset,         // the client's socket reported a reset or an error first
  kServerFin,           // the server ended first, in order
  kServerReset,         // the server's socket reported a reset or an error first
  kConnectFailed,       // the connect to the server failed (refused, unreachable) on every try
  kConnectTimeout,      // the connect (or the wait for a descriptor or a name) took too long
  kIdleTimeout,         // no byte moved for the listener's idle-timeout
  kLifetimeLimit,       // max-lifetime
  kUploadLimit,         // upload-limit
  kDownloadLimit,       // download-limit
  kClientRefused,       // max-/new-connections-per-client (or a full client table) at accept
  kRouteClose,          // a routing rule's `close`
  kRouteReject,         // a routing rule's `reject`
  kNoRoute,             // no rule matched and the listener has no default backend, or the
                        // client ended before any rule decided
  kMapMiss,             // a `map` found no entry and has no fallback
  kProxyHeaderError,    // a missing or malformed PROXY header
  kInspectTimeout,      // the first bytes did not decide within inspect-timeout
  kForwardError,        // the forward proxy answered an error status (the word carries it)
  kForwardDestination,  // the forward proxy ended a conversation for a request to another
                        // destination (the client retries on a new connection)
  kProtocolError,       // the forward proxy refused a body or response it could not frame
  kNoServer,            // the backend had no usable server
  kShutdownDeadline,    // a graceful shutdown's deadline passed
  kShutdownFast,        // a fast shutdown (a second TERM/INT, or no grace period)
  kAdminKill,           // killed from the admin socket
  kInternalError,       // the proxy could not watch a socket (an epoll_ctl or ring refusal)
};

// The word the access log writes: "client_fin", "server_rst", ... ("-" for kNone). kForwardError
// is written "forward_" and the status by the formatter.
const char* to_string(EndReason reason) noexcept;

}  // namespace edgeproxy
