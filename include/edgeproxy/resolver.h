// Resolver: asynchronous name resolution for one worker. getaddrinfo(3) blocks, for seconds when
// DNS is slow, so a few threads of the resolver's own call it on the names the worker submits
// and ring the worker's doorbell (an eventfd its reactor watches) when a result is ready; the
// worker's event loop never waits for DNS. Everything is allocated by create(): submit() copies
// the name into a fixed slot and take() copies results into the caller's vector.
#pragma once

#include <netdb.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "edgeproxy/net.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

// The most addresses one resolution keeps, in getaddrinfo's order (RFC 6724's preference), for
// a forward proxy's connection attempts. net.h's kMaxAddresses (16) bounds start-up resolution.
inline constexpr uint32_t kMaxResolvedAddresses = 8;
// The longest name getaddrinfo is given: no DNS name is longer (RFC 1035 counts 255 octets in
// wire form, 253 characters in text); a longer one is refused before any lookup.
inline constexpr size_t kMaxHostBytes = 255;

// The outcome of one submitted lookup.
struct ResolveResult {
  uint64_t cookie = 0;   // as submitted
  int error = 0;         // 0, or an EAI_* code from getaddrinfo (EAI_NODATA: no TCP address)
  int system_error = 0;  // errno, when error == EAI_SYSTEM
  uint32_t count = 0;    // addresses[0, count): > 0 exactly when error == 0
  std::array<SocketAddress, kMaxResolvedAddresses> addresses{};  // port set, duplicates dropped

  // One line for logs and error replies: gai_strerror(error), or strerror(system_error) for
  // EAI_SYSTEM. Static text, never null, no allocation.
  const char* reason() const noexcept;
};

// getaddrinfo's signature: tests substitute a function that holds a lookup. What it returns in
// `*result` is released with freeaddrinfo(3).
using GetAddrInfoFn = int (*)(const char* node, const char* service, const addrinfo* hints,
                              addrinfo** result);

struct ResolverOptions {
  uint32_t threads = 2;           // lookups that may be inside getaddrinfo at once: 1-64
  uint32_t queue_capacity = 256;  // lookups submitted and not yet taken: 1-65536
  GetAddrInfoFn getaddrinfo = &::getaddrinfo;
};

// When the worker sees doorbell_fd readable, it must read the eventfd first (draining it) and
// call take() after: a result finished after the read rings the doorbell again, and one that
// finishes between the read and take() is taken at once, leaving a wake-up with nothing to take
// (harmless). The other order loses a wake-up: a result pushed after take() and before the read
// would wait for an unrelated ring. take() never reads doorbell_fd, so the eventfd may be shared
// with other producers.
//
// There is no timeout here: getaddrinfo applies resolv.conf's (seconds per server and attempt)
// and cannot be interrupted. The worker runs its own timer per connection and, when it expires,
// answers the client and forgets the cookie; the late result still arrives, keeps its queue slot
// until take() returns it, and is dropped by cookie (pack a connection's slot index and
// generation into it so a reused slot never takes an old answer). Lookups stuck in a dead DNS
// server occupy threads and then slots; when every slot is taken submit() refuses, which is the
// back-pressure: the caller answers an error at once.
//
// The resolver's threads block every asynchronous signal (they are the supervisor's) and are
// detached; their shared state lives until the last of them leaves (see ~Resolver()).
class Resolver {
 public:
  // Starts options.threads threads. doorbell_fd is an eventfd (EFD_NONBLOCK: a write then never
  // blocks) that the worker watches; it is not owned, and must stay open until ~Resolver()
  // returns. Error: one line (bad options, thread creation).
  static Result<std::unique_ptr<Resolver>> create(const ResolverOptions& options, int doorbell_fd);

  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;
  // Never blocks on DNS: it tells the threads to stop, waits only for those not inside
  // getaddrinfo (they leave at once), and abandons the others, which free the shared state when
  // the last of them returns and write nothing anywhere: doorbell_fd may be closed as soon as
  // this returns. Queued lookups and results not taken are dropped.
  ~Resolver();

  // True for a name getaddrinfo can be given: 1 to kMaxHostBytes bytes, no NUL (which would cut
  // the C string short and resolve another name). Not a DNS syntax check: getaddrinfo does that.
  static bool valid_host(std::string_view host) noexcept;

  // The worker's thread. Queues a lookup of `host` for TCP port `port`; family_hint is AF_UNSPEC,
  // AF_INET or AF_INET6. Copies the name; allocates nothing. False, with nothing queued, when
  // every slot is taken (see queue_capacity), when !valid_host(host) or when family_hint is
  // anything else: the caller answers an error at once. Every true is answered by exactly one
  // result with the same cookie, unless the resolver is destroyed first.
  bool submit(uint64_t cookie, std::string_view host, uint16_t port, int family_hint) noexcept;

  // The worker's thread, after draining doorbell_fd (see above). Replaces out's contents with
  // every result finished since the previous call, in the order they finished, and frees their
  // slots. Reuses out's capacity: with out.reserve(capacity()) done once it never allocates.
  void take(std::vector<ResolveResult>& out);

  uint32_t capacity() const noexcept { return capacity_; }
  // Lookups submitted and not yet taken: queued, inside getaddrinfo, or finished. Any thread.
  uint32_t in_flight() const noexcept;

 private:
  struct Shared;
  Resolver(std::shared_ptr<Shared> shared, uint32_t capacity) noexcept;
  // A resolver thread; `arg` is a heap-allocated std::shared_ptr<Shared> it takes over.
  static void* thread_main(void* arg) noexcept;

  std::shared_ptr<Shared> shared_;
  uint32_t capacity_;
};

// True when `host` is an IPv4 or IPv6 literal (inet_pton's forms, no brackets, no zone), then
// `out` is that address with `port`: no lookup needed. Any thread; allocates nothing.
bool numeric_address(std::string_view host, uint16_t port, SocketAddress& out) noexcept;

}  // namespace edgeproxy
