// ForwardExchange: where one forward-proxy connection is in its HTTP conversation: the request
// whose head is being read or whose body is being approved, its destination, and the response
// being framed (decision 0010). One per connection slot, owned by the topology version
// (ForwardArea), beside the slot's RoutingContext whose region holds request heads.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "edgeproxy/http_framing.h"
#include "edgeproxy/mapped_array.h"
#include "edgeproxy/net.h"

namespace edgeproxy {

enum class ForwardPhase : uint8_t {
  kHead,       // the next request head is read into the region (client bytes gated)
  kResolving,  // the destination's name is with the resolver threads
  kReplaying,  // the rewritten head and the body bytes read with it go to the server
  kBody,       // the rest of the body is approved in client.in as the framer sees it
  kResponse,   // the request went out whole: its response is awaited and delivered
  kTunnel,     // CONNECT or an upgrade: both gates open, a plain relay
  kAssigning,  // HTTP mode: the request waits for a server connection (pending, detaching the
               // previous one, or connecting)
  kDone,       // no further request is read (the server closes, or an error was answered):
               // what the client still sends is dropped, never forwarded
};

enum class ForwardTarget : uint8_t {
  kNone,
  kBackend,  // origin-form: the listener's backend, balanced as a TCP listener's
  kDirect,   // CONNECT or absolute-form: the named host, resolved and checked by the policy
};

// A request head must fit one block (431 beyond); so must a response head (the connection is
// closed beyond: a server's head that large is refused, not relayed).
inline constexpr uint32_t kMaxForwardHeadBytes = 8192;
inline constexpr uint32_t kMaxDestinationAddresses = 8;

// HTTP mode (decision 0013): what one request needs beyond the forward exchange: the request
// kept for a retry, the response-time sample, the client's address as text for the variables.
struct HttpExchange {
  uint16_t backend = 0;  // the backend the request was routed to
  // The server the balancer picked while the previous one was being detached (UINT16_MAX: none).
  uint16_t chosen = UINT16_MAX;
  // Response body bytes that did not fit the block behind the rebuilt head: held in the response
  // area (reading the server paused, kPauseReplay) until the block has gone out.
  uint16_t spill = 0;
  bool queued = false;     // in the backend's pending queue (else pool_wait links it as parked)
  bool parked = false;     // in its server's list of parked connections
  bool rewritten = false;  // the request head in the region was built for a server already
  bool reused = false;     // the server connection served an earlier request
  bool response_started = false;
  bool retried = false;
  bool idempotent = false;
  bool upgrade = false;           // a WebSocket handshake: a 101 takes the server connection out
  bool pinned = false;            // a retry that must go to `chosen` (its head names that server)
  bool http10 = false;            // the request is HTTP/1.0: its keep-alive must be answered
  bool asked_close = false;       // the request asked to close (Framing::close), not the server
  bool end_after_detach = false;  // the conversation ends once the upstream is detached
  bool stolen = false;            // its parked upstream is being detached for a waiter
  uint32_t kept = 0;              // region bytes of the request kept for a retry (0: none)
  // The upstream's splice allowance as the worker last left it (decision 0015): what it has
  // dropped by since are body bytes spliced unseen, which the response framer must count.
  uint32_t splice_granted = 0;
  uint64_t body_bytes = 0;  // request body bytes approved (max-body)
  int64_t sent_ns = 0;      // the request's first byte went to the server
  // The connection's byte counts when the upstream was attached: the server gets the difference.
  uint64_t attach_c2u = 0;
  uint64_t attach_u2c = 0;
  int64_t pending_due_ms = 0;  // queued: 503 at this time
  uint8_t client_addr_length = 0;
  uint8_t client_port_length = 0;
  std::array<char, 46> client_addr{};
  std::array<char, 6> client_port{};
};

struct ForwardExchange {
  ForwardPhase phase = ForwardPhase::kHead;
  ForwardTarget target = ForwardTarget::kNone;
  bool tunnel = false;            // the request is a CONNECT
  bool head_request = false;      // the request awaiting its response is a HEAD
  bool client_close = false;      // the client asked to close after this request
  bool response_pending = false;  // a request went out and its response has not ended
  bool response_head_done = false;
  // The server said it closes after this response. HTTP mode: a fact about the attached
  // upstream, true until another is attached (a pipelined request must not follow it there).
  bool response_close = false;
  bool resolving = false;     // a lookup for this slot is with the resolver
  bool request_done = false;  // the request's body ended (the framer said kDone)
  bool dropped = false;       // bytes the client sent past its last request were read, unused
  uint16_t port = 0;
  uint16_t held_status = 0;  // an answer held back by the failed-authentication delay
  uint8_t host_length = 0;
  uint8_t address_count = 0;
  uint32_t requests = 0;          // requests forwarded on this connection
  uint32_t head_scanned = 0;      // parse_request_head's progress over the region
  uint32_t head_evaluated = 0;    // region length when the head was last parsed
  uint32_t replay_end = 0;        // region bytes approved for the server (head and body)
  uint32_t response_copied = 0;   // bytes of the response head copied to the response area
  uint32_t response_scanned = 0;  // parse_response_head's progress over them
  int64_t head_started_ms = 0;    // the first byte of the head being read arrived
  http::BodyFramer request_body;
  http::BodyFramer response_body;
  std::array<char, 256> host{};  // the destination as named (kDirect), for comparisons
  // The Proxy-Authorization value this connection was last let in with (when it fits): the
  // same value on its next request needs neither the hash nor the cache.
  uint8_t authorized_length = 0;
  std::array<char, 128> authorized{};
  std::array<SocketAddress, kMaxDestinationAddresses> addresses{};
  HttpExchange http;  // HTTP mode only
};

// The answer a forward proxy writes itself for `status` (400, 403, 407, 408, 413, 431, 502,
// 503, 504):
// a status line, `Proxy-Authenticate: Basic realm="REALM"` for 407 (the realm was checked at load:
// no quote, backslash or control character), a short text body with its Content-Length, and
// `Connection: close`. Writes at most `size` bytes into `out` and returns how many.
uint32_t build_forward_answer(uint16_t status, std::string_view realm, char* out,
                              uint32_t size) noexcept;

// The exchanges and response-head areas of one topology version, by slot.
class ForwardArea {
 public:
  explicit ForwardArea(uint32_t slots);

  // A fresh exchange for the connection now in slot `index`.
  ForwardExchange& reset(uint32_t index) noexcept;
  ForwardExchange& at(uint32_t index) noexcept { return exchanges_[index]; }
  // kMaxForwardHeadBytes where slot `index` copies a response head to parse it.
  std::byte* response_area(uint32_t index) noexcept {
    return responses_.data() + size_t{index} * kMaxForwardHeadBytes;
  }

 private:
  // Mapped: a slot's pages are backed when it is first used, and go back with the version.
  MappedArray<ForwardExchange> exchanges_;
  MappedArray<std::byte> responses_;
};

}  // namespace edgeproxy
