// Worker: one event loop and everything it serves: its reactor, connection slab, buffer pool,
// timers, listeners and statistics. Shares nothing with other workers; every method runs on the
// worker's own thread (create() may run on another thread before run() starts).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "edgeproxy/access_log.h"
#include "edgeproxy/access_log_format.h"
#include "edgeproxy/auth_throttle.h"
#include "edgeproxy/balancer.h"
#include "edgeproxy/buffer_pool.h"
#include "edgeproxy/clock.h"
#include "edgeproxy/config.h"
#include "edgeproxy/connection.h"
#include "edgeproxy/cookie.h"
#include "edgeproxy/credentials.h"
#include "edgeproxy/dns_cache.h"
#include "edgeproxy/forward_exchange.h"
#include "edgeproxy/http_head.h"
#include "edgeproxy/http_rewrite.h"
#include "edgeproxy/listener.h"
#include "edgeproxy/net.h"
#include "edgeproxy/reactor.h"
#include "edgeproxy/resolver.h"
#include "edgeproxy/result.h"
#include "edgeproxy/route.h"
#include "edgeproxy/routing_context.h"
#include "edgeproxy/server_pool.h"
#include "edgeproxy/slab.h"
#include "edgeproxy/stats.h"
#include "edgeproxy/timer_queue.h"
#include "edgeproxy/token_bucket.h"
#include "edgeproxy/topology.h"
#include "edgeproxy/wait_queue.h"
#include "edgeproxy/worker_control.h"

namespace edgeproxy {

struct WorkerOptions {
  Config config;  // this worker's share: max_connections and buffers already divided
  // What the worker serves at start: the topology (resolved, with its runtime objects) and the
  // listening sockets the supervisor opened for this worker, one per bind (ListenerPlan::fd).
  std::shared_ptr<const Topology> topology;
  std::vector<ListenerPlan> listeners;
  uint32_t id = 0;  // worker number, for log lines
  // Stop, report and install requests from the supervisor; must outlive the worker. Null: the
  // worker runs until destroyed (tests that drive run() another way).
  WorkerControl* control = nullptr;
  // This worker's access-log ring (AccessLogWriter::ring); must outlive the worker. Null: no
  // access log whatever the configuration says (tests).
  AccessLog* access_log = nullptr;
};

class Worker {
 public:
  // Allocates everything the worker will ever use (slab, pool, timers, event batch) and adopts
  // the listening sockets of `options.listeners` (closed on failure). Errors: one line.
  static Result<std::unique_ptr<Worker>> create(const WorkerOptions& options);
  // The seed of worker `id`'s balancers for `epoch`: their random choices and starting points
  // differ between workers.
  static uint64_t worker_seed(uint32_t id, uint64_t epoch) noexcept {
    return (uint64_t{id} << 32) ^ epoch;
  }

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // Readies the reactor on the calling thread, which must be the one that calls run() (an
  // io_uring ring is enabled here for its single issuer). Error: one line.
  Result<Ok> start();
  // Serves until a shutdown completes (see docs/architecture.md); returns the exit status (0).
  // Calls start() first if it was not called.
  int run() noexcept;

  // The bound address of the first open listening socket (tests).
  const SocketAddress& listen_address() const noexcept;
  // Counters with the pool fields filled in.
  Stats stats() const noexcept;

 private:
  // A topology version this worker serves or still has connections under (decision 0008).
  struct Version {
    std::shared_ptr<const Topology> topology;
    std::vector<Balancer> balancers;  // one per backend
    // Per backend, per server: the address that last connected, tried first (resolve_all's
    // order otherwise).
    std::vector<std::vector<uint8_t>> preferred;
    uint32_t connections = 0;  // open connections accepted under this version
    // Contexts by slot for connections that inspect or send a PROXY header (decision 0009);
    // null when no listener inspects and no backend sends one.
    std::unique_ptr<RoutingArea> routing;
    // Forward listeners (decision 0010): exchanges by slot, and by listener the verdicts of the
    // credentials it checked (null for listeners without `auth`).
    std::unique_ptr<ForwardArea> forward;
    std::vector<std::unique_ptr<CredentialCache>> credential_caches;
    std::vector<std::unique_ptr<DnsCache>> dns_caches;  // by listener; null for TCP ones
    // By listener: the limits its connections are held to now, the newest version's for a
    // listener of the same name (a reload applies new limits to open connections), else its own.
    std::vector<const ListenerLimits*> limits;
    // HTTP listeners (decision 0013): this worker's pooled server connections, by backend (empty
    // when the version has no HTTP listener), and room for one cost per server (pick_least).
    std::vector<ServerPool> pools;
    std::vector<uint64_t> costs;
  };

  // Per slot, for connections with limits (docs/limits.md): when it was accepted, and per
  // direction the token bucket and the delivered bytes it has been charged for.
  struct LimitState {
    int64_t accepted_ms = 0;
    TokenBucket up;
    TokenBucket down;
    uint64_t charged_up = 0;
    uint64_t charged_down = 0;
  };

  explicit Worker(const WorkerOptions& options, Reactor reactor, BufferPool pool);

  // Makes `topology` the version new connections get, with `balancers` (built here when empty:
  // one per backend, from build_balancers() with worker_seed()), keeps the listening
  // sockets `plan` says to keep, adopts the new ones (taking their fds), closes the rest. The
  // error names the first socket that could not be kept or watched; the others serve.
  Result<Ok> install(std::shared_ptr<const Topology> topology, std::vector<ListenerPlan>& plan,
                     std::vector<Balancer> balancers = {}) noexcept;
  Result<Ok> add_listener(const ListenerPlan& plan, int fd);
  void close_listener(Listener& l) noexcept;
  // tcp-smart-connect (decision 0017): bytes will go to the server as soon as it is connected.
  bool has_first_bytes(const Connection& c, uint32_t index) noexcept;
  // tcp-smart-accept and defer-accept (decision 0017) on a TCP listening socket.
  void apply_accept_options(Listener& l, const ListenerSpec& spec) noexcept;
  // Lets go of a version no connection refers to any more (never the current one).
  void release_version_if_unused(uint16_t version) noexcept;
  const ListenerSpec& listener_of(const Connection& c) const noexcept {
    return versions_[c.version].topology->listeners[c.listener];
  }
  const BackendSpec& backend_of(const Connection& c) const noexcept {
    return versions_[c.version].topology->backends[c.backend];
  }
  const ServerSpec& server_of(const Connection& c) const noexcept {
    return backend_of(c).servers[c.server];
  }
  // A lingering close (relay::end_client: the upstream released, the client's end awaited) that
  // has sent the client everything with its FIN, all of it acknowledged, waits at most this long
  // in silence, as nginx's lingering_timeout: what the client still sends is only dropped.
  static constexpr int64_t kLingerIdleMs = 5000;
  int64_t idle_timeout_ms(const Connection& c) const noexcept {
    return int64_t{listener_of(c).idle_timeout_s} * 1000;
  }
  // At its timer: ends a lingering close that is only waiting for a silent client (a clean
  // close); otherwise gives the next time to look, or kNever.
  int64_t check_lingering_end(Connection& c, uint32_t index) noexcept;
  // Gives the connection a server of its backend (not `avoid`) and starts connecting; with none
  // usable the client is reset and the refusal counted.
  void choose_server(Connection& c, Handle h, uint32_t avoid) noexcept;
  // The connection leaves its server (a failed connect moving on, or the close).
  void leave_server(Connection& c) noexcept;

  // Content-aware routing (docs/routing.md, decision 0009). After each pump of a connection
  // that inspects or replays: moves what was read into its context, runs the rules on new
  // bytes and carries out the decision, or hands held bytes to client.in for the upstream.
  void route_step(Connection& c, uint32_t index) noexcept;
  // kInspecting: true when it moved bytes or decided (the transport should pump again).
  bool inspect(Connection& c, Handle h, RoutingContext& ctx) noexcept;
  void apply(Connection& c, Handle h, RoutingContext& ctx, const Action& a,
             const Captures& captures) noexcept;
  // The decision gave `backend`: the bytes to replay are the held ones or `a.send`.
  void route_to(Connection& c, Handle h, RoutingContext& ctx, uint32_t backend,
                const Action& a) noexcept;
  // Ends a connection that inspected for `why`: after `text` (may be empty) with a FIN, or a reset.
  void refuse(Connection& c, std::string_view text, bool reset, EndReason why) noexcept;
  // Replay: true when it put bytes in client.in or ended the replay.
  bool replay(Connection& c, RoutingContext& ctx) noexcept;
  // Bytes in client.in the replay did not put there (read past inspect-bytes before the
  // decision, or brought by a receive in flight at it) go behind the held ones, before the
  // relay could write them ahead.
  void hold_client_bytes(Connection& c, RoutingContext& ctx) noexcept;
  // Moves what client.in holds into the context's region, up to `limit` bytes held in all; an
  // emptied block goes back to the pool and lifts the backpressure pause. Returns the bytes moved.
  uint32_t move_client_bytes(Connection& c, RoutingContext& ctx, uint32_t limit) noexcept;
  RoutingContext* routing_of(const Connection& c, uint32_t index) noexcept {
    RoutingArea* area = versions_[c.version].routing.get();
    return area != nullptr ? &area->at(index) : nullptr;
  }

  // Forward proxy (mode forward, docs/forward-proxy.md, decision 0010). After each pump of a
  // gated connection: frames the response bytes that arrived and approves them, reads, checks
  // and forwards the next request, or replays its rewritten head.
  void start_forward(Connection& c, Handle h, const ListenerSpec& ls) noexcept;
  void forward_step(Connection& c, uint32_t index) noexcept;
  bool forward_request(Connection& c, Handle h, RoutingContext& ctx, ForwardExchange& ex) noexcept;
  bool read_request_head(Connection& c, Handle h, RoutingContext& ctx,
                         ForwardExchange& ex) noexcept;
  void decide_request(Connection& c, Handle h, RoutingContext& ctx, ForwardExchange& ex,
                      const http::RequestHead& head) noexcept;
  // The request's credentials: true when they are good (or the listener has no `auth`); else
  // the 407 went out or is held back by the failure delay.
  bool authenticate(Connection& c, Handle h, ForwardExchange& ex,
                    const http::RequestHead& head) noexcept;
  // A named destination: from the cache, a literal, or the resolver (kRouting meanwhile).
  void resolve_destination(Connection& c, Handle h, ForwardExchange& ex) noexcept;
  // Keeps the addresses the listener's policy allows and connects to the first (403 if none).
  void connect_direct(Connection& c, Handle h, ForwardExchange& ex,
                      std::span<const SocketAddress> addresses) noexcept;
  bool forward_replay(Connection& c, RoutingContext& ctx, ForwardExchange& ex) noexcept;
  bool forward_response(Connection& c, ForwardExchange& ex, std::byte* area) noexcept;
  void request_sent(ForwardExchange& ex, const RoutingContext& ctx) noexcept;
  void response_ended(ForwardExchange& ex, const RoutingContext& ctx) noexcept;
  void enter_head(ForwardExchange& ex, const RoutingContext& ctx) noexcept;
  // Answers `status` (docs/forward-proxy.md) and ends the conversation: with a FIN before any
  // server, else the connection lingers until the client has the answer, then closes.
  void forward_answer(Connection& c, uint16_t status) noexcept;
  void on_resolved() noexcept;

  // HTTP mode (mode http, docs/http-mode.md, decision 0013): requests as the forward proxy's,
  // each routed and balanced, on server connections from the worker's pools.
  bool is_http(const Connection& c) const noexcept {
    return listener_of(c).mode == ListenerMode::kHttp;
  }
  // A listener whose clients speak HTTP to the proxy: it answers errors itself.
  bool answers(const Connection& c) const noexcept {
    return listener_of(c).mode != ListenerMode::kTcp;
  }
  uint32_t request_timeout_ms(const Connection& c) const noexcept {
    const ListenerSpec& ls = listener_of(c);
    return ls.mode == ListenerMode::kHttp ? ls.http.request_timeout_ms
                                          : ls.forward.request_timeout_ms;
  }
  ServerPool& pool_of(const Connection& c, uint32_t backend) noexcept {
    return versions_[c.version].pools[backend];
  }
  // `client`: the client's address (length 0 when unknown: gone before it was read).
  void start_http(Connection& c, Handle h, const ListenerSpec& ls,
                  const SocketAddress& client) noexcept;
  // After each pump of an HTTP connection: a detach that completed, the exchange, then what the
  // idle upstream becomes (parked, detached, dropped).
  void http_step(Connection& c, uint32_t index) noexcept;
  void decide_http(Connection& c, Handle h, RoutingContext& ctx, ForwardExchange& ex,
                   const http::RequestHead& head) noexcept;
  // Gives the decided request a server connection: the attached one when it is to the server the
  // balancer picks, a free one, a new one, or a place in the pending queue.
  void assign_server(Connection& c, Handle h, uint32_t avoid) noexcept;
  uint32_t pick_http_server(Connection& c, uint32_t backend, uint32_t avoid) noexcept;
  // Whether server `s` of the backend may serve a request now (up, not drained).
  bool http_usable(const Connection& c, uint32_t backend, uint32_t s) const noexcept;
  bool take_free(Connection& c, Handle h, uint32_t backend, uint32_t s) noexcept;
  // Whether a free pooled socket may serve a request or stay in the pool: what the transport
  // knows of it (a socket it watches while free, decision 0020), else a look (MSG_PEEK), skipped
  // for one freed less than kTrustedIdleMs ago.
  bool free_socket_usable(const ServerPool::Idle& idle) const noexcept;
  void open_pooled(Connection& c, Handle h, uint32_t backend, uint32_t s) noexcept;
  void wait_pending(Connection& c, Handle h, uint32_t backend) noexcept;
  void unqueue(Connection& c, uint32_t index) noexcept;
  // When a queued request's timer looks again: its deadline, or a server's backoff end before it.
  int64_t pending_wake_ms(const Connection& c, const ForwardExchange& ex) const noexcept;
  // Serves the backend's waiters (oldest first) with free sockets or room to open one, then asks
  // parked connections for their sockets while waiters remain.
  void serve_pending(uint16_t version, uint32_t backend) noexcept;
  // The request's head as its server gets it, and the replay started (the socket is attached).
  void prepare_request(Connection& c, Handle h) noexcept;
  void http_connected(Connection& c, uint32_t index) noexcept;
  void http_connect_failed(Connection& c, Handle h, int err) noexcept;
  void begin_detach(Connection& c, Handle h, bool keep) noexcept;
  void finish_detach(Connection& c, Handle h) noexcept;
  void park(Connection& c, uint32_t index) noexcept;
  void unpark(Connection& c, uint32_t index) noexcept;
  // The attached socket leaves the pool for good (a tunnel, a close-delimited or truncated
  // response, an answer): the relay becomes a plain one.
  void leave_pool(Connection& c) noexcept;
  // The server's share of the bytes moved while the socket was attached, and its current count.
  void leave_http_server(Connection& c, uint32_t index) noexcept;
  // A connection that held a pool place for a socket it has not got (waiting for a descriptor)
  // gives it up.
  void drop_pool_slot(Connection& c, uint32_t index) noexcept;
  void settle_upstream(Connection& c, Handle h, ForwardExchange& ex) noexcept;
  void upstream_lost(Connection& c, Handle h, ForwardExchange& ex) noexcept;
  bool http_response(Connection& c, ForwardExchange& ex, std::byte* area) noexcept;
  // Decision 0015: once the block's bytes are all approved mid-body, the upstream may splice
  // the rest of a Content-Length body or of the current chunk (Side::splice_left). True when
  // granted: the transport must run again, no event would bring it back.
  bool grant_splice(Connection& c, ForwardExchange& ex) noexcept;
  void http_response_ended(ForwardExchange& ex, const RoutingContext& ctx) noexcept;
  // HTTP connections' timers: the pending timeout, the next head's, the keep-alive idle time.
  // False when the generic handling applies (connecting, lingering, mid-request idle).
  bool http_timer(Connection& c, uint32_t index) noexcept;
  // Ends a keep-alive HTTP connection waiting for its next request (idle, or the proxy stops):
  // false when it is not waiting.
  bool end_idle_http(Connection& c, uint32_t index) noexcept;
  // At close: the upstream back to the pool when it is idle and whole, else closed.
  void http_release(Connection& c, uint32_t index) noexcept;
  // Every second: free sockets idle past pool-idle-timeout or closed by their server are closed.
  void sweep_pools() noexcept;
  void close_free_sockets(Version& v) noexcept;
  ForwardExchange& exchange_of(uint32_t index) noexcept {
    return versions_[slab_.at(index).version].forward->at(index);
  }
  bool is_forward(const Connection& c) const noexcept {
    return listener_of(c).mode == ListenerMode::kForward;
  }
  // The address the connection's current attempt connects to, and the connect deadline.
  const SocketAddress& target_address(const Connection& c, uint32_t index) noexcept {
    return c.backend == kDirectBackend ? exchange_of(index).addresses[c.address]
                                       : server_of(c).addresses[c.address];
  }
  uint32_t connect_timeout_ms(const Connection& c) const noexcept {
    return c.backend == kDirectBackend ? listener_of(c).forward.connect_timeout_ms
                                       : backend_of(c).connect_timeout_ms;
  }

  // Limits (docs/limits.md). admit_client: the per-client admission of a new client of `ls`,
  // false when it was refused (closed with a reset and counted). set_limits: which limits apply
  // to the connection, its meters started for newly limited directions. enforce_limits: after a
  // pump, closes a connection past its lifetime or byte limits and pauses a direction out of
  // tokens. limits_due: the earliest time a limit needs the connection's timer (kNever: none).
  const ListenerLimits& limits_of(const Connection& c) const noexcept {
    return *versions_[c.version].limits[c.listener];
  }
  bool admit_client(int fd, const SocketAddress& peer, const ListenerSpec& ls,
                    uint32_t& slot) noexcept;
  void set_limits(Connection& c, uint32_t index) noexcept;
  void enforce_limits(Connection& c, uint32_t index) noexcept;
  int64_t limits_due(const Connection& c, uint32_t index) const noexcept;
  // When max-lifetime ends the connection (kNever: no lifetime).
  int64_t lifetime_due(const Connection& c, uint32_t index) const noexcept;
  // A reload: every version's limits point at the newest listeners, and open connections take
  // them (timers re-armed, pauses of lifted rate limits ended).
  void apply_new_limits() noexcept;
  // Resets a connection that crossed a limit: counted, and logged (at most a line a second).
  void close_for_limit(Connection& c, uint32_t index, std::atomic<uint64_t>& counter,
                       const char* what, EndReason why) noexcept;
  void log_limit(const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));

  void update_accept_room() noexcept;
  // Completion backends: when the kernel dropped completions, closing connections start their
  // cancels anew (the lost one may have been theirs, and nothing else would touch them again).
  void restart_cancels_after_drops() noexcept;
  // The per-pump read budget of the relaying that follows (readiness backends).
  void set_read_budget(uint32_t reads) noexcept;
  // Accept priority: a listener's or the control's event, or a connect's completion.
  bool is_priority(const Event& ev) const noexcept;
  void dispatch(const Event& ev) noexcept;
  void on_connection_event(CookieTag tag, Handle h, const Event& ev) noexcept;
  void on_control() noexcept;
  // The admin socket's requests (decision 0012), answered between two iterations: at most
  // `limit` open connections (an allocation, bounded by `limit`, on an admin request only), and
  // a reset of both sides of the connection at `slot` while it has `generation`.
  AdminAnswer list_connections(uint32_t limit);
  bool kill_connection(uint32_t slot, uint32_t generation) noexcept;
  void accept_from(uint32_t listener_index) noexcept;
  // Before a batch is handled: a free pooled socket with an event in it is not lent by an
  // event handled earlier in the same batch (decision 0020).
  void note_free_server_event(const Event& ev) noexcept;
  void on_accepted(uint32_t listener_index, int result) noexcept;
  bool on_accept_error(Listener& l, int err) noexcept;
  // `accepted`: the client's address as accept4() gave it, or null (io_uring's multishot
  // accept gives none): then it is read with getpeername() once, only if something needs it.
  void start_connection(int client_fd, const Listener& l, const SocketAddress* accepted) noexcept;
  // Opens an upstream socket for the connection's current address and starts connecting; out
  // of descriptors, the connection waits in socket_waiters_ (the client is kept).
  void connect_upstream(Connection& c, Handle h) noexcept;
  void start_connect(Connection& c, Handle h, int fd) noexcept;
  // Queues the connection until a descriptor (or submission entry) frees up: listeners pause,
  // the retry timer runs, the connect deadline covers the wait.
  void wait_to_connect(uint32_t index) noexcept;
  void on_connected(Connection& c, uint32_t index) noexcept;
  // A connect attempt failed with errno `err`: counted and logged (-v); the next address is
  // tried while some are untried, else the client is reset.
  void connect_failed(Connection& c, Handle h, int err) noexcept;
  // A backend server's connect failed: counted, logged (-v), its socket dropped, and the server's
  // next address tried while one is untried (true: that connect started).
  bool connect_next_address(Connection& c, Handle h, int err) noexcept;
  // Gives the oldest connections waiting for a descriptor their upstream socket, while the
  // kernel has descriptors. True when none is left waiting.
  bool retry_socket_waiters() noexcept;
  // The connection's timer, for its idle timeout or a limit's deadline, and no later than
  // `within_ms` from now when given (a lingering close: kLingerIdleMs).
  void arm_idle_timer(uint32_t index, int64_t within_ms = TimerQueue::kNever) noexcept;
  // kLingering: resets the surviving side once its peer acknowledged every byte, else looks
  // again later (sooner while bytes move); gives up after --idle-timeout without progress.
  void check_linger(Connection& c, uint32_t index) noexcept;
  void pump(Connection& c, uint32_t index) noexcept;
  void touch(Connection& c, uint32_t index) noexcept;
  void expire_timers() noexcept;
  void on_connection_timer(uint32_t index) noexcept;
  void wake_buffer_waiters() noexcept;
  void finish_iteration() noexcept;
  // Queues a connection whose pump must run again next iteration (c.more), at most once.
  void queue_pending(Connection& c, uint32_t index) noexcept;
  void close_connection(Connection& c, uint32_t index) noexcept;
  // The access log (docs/access-log.md): the format of `global` compiled at install (none when
  // the log is off); one line appended to the ring, or counted in log_dropped.
  void configure_access_log(const Config& global) noexcept;
  void log_access(const AccessRecord& r) noexcept;
  void log_connection(const Connection& c, uint32_t index) noexcept;
  // Closes a finished upstream's socket and leaves its server while the client still drains
  // (relay::upstream_finished, decision 0011); on io_uring once nothing refers to the fd.
  void release_upstream(Connection& c, Handle h) noexcept;
  // With -v: the connection's own acceleration factor, when it has one.
  static void log_acceleration(const Connection& c, uint32_t index) noexcept;
  uint64_t listener_cookie(const Listener& l) const noexcept;
  // Whether a new client could be served: a free slot, and no connection waiting for a
  // descriptor (those go first).
  bool room_for_clients() const noexcept { return !slab_.full() && socket_waiters_.empty(); }
  void pause_listener(Listener& l) noexcept;
  void resume_listeners() noexcept;
  void begin_shutdown(bool fast) noexcept;
  // Closes every connection now, recording `why` (the deadline, or a fast stop).
  void force_close_all(EndReason why) noexcept;

  Config config_;
  std::vector<Version> versions_;  // slots reused once released; Connection::version indexes it
  uint16_t current_ = 0;           // the version new connections get
  uint64_t drops_seen_ = 0;        // completions the kernel had dropped at the last look
  Reactor reactor_;
  Slab<Connection> slab_;
  BufferPool pool_;
  TimerQueue timers_;
  // Listening sockets by slot (the cookie's index, with the slot's generation); a closed one
  // (fd -1) is reused for a later socket once the reactor holds nothing for it.
  std::vector<Listener> listeners_;
  WorkerControl* control_;
  std::vector<WorkerCommand> commands_;  // taken from control_; capacity kept between takes
  uint32_t id_;
  Stats stats_;
  Transport transport_;  // refers to reactor_, pool_ and stats_ above
  LoopTime now_;
  // Where a complete ClientHello is reassembled while the rules run (route::Scratch), as large
  // as the largest routing region of any version installed.
  std::unique_ptr<std::byte[]> hello_scratch_;
  uint32_t hello_scratch_bytes_ = 0;

  // Forward listeners: the name resolver (started with the first topology that has one), its
  // results taken at once, and the failed-authentication delays by client address.
  std::unique_ptr<Resolver> resolver_;
  std::vector<ResolveResult> resolved_;
  AuthThrottle auth_throttle_{1024};

  AccessLog* access_log_;                        // null: no access log
  std::unique_ptr<AccessLogFormat> log_format_;  // null while the access log is off
  std::unique_ptr<SocketAddress[]> peers_;     // by slot: the client; made when the log first is on
  std::unique_ptr<LimitState[]> limit_state_;  // by slot
  std::unique_ptr<bool[]> deferred_;           // by event of the batch: handled after relaying
  int64_t limit_log_ms_ = INT64_MIN;           // the last limit line logged
  uint64_t limit_log_skipped_ = 0;             // limit lines not logged since

  // Connections touched this iteration (each once), settled by finish_iteration(): interest
  // reconciled with one epoll_ctl at most per side, or the connection closed. Closing only there
  // makes closing from inside a handler safe and keeps slots from being reused mid-iteration.
  // A settling pass works on `settling_` (the list it took over), so touches made meanwhile go
  // to the next pass and neither list can hold more entries than there are slots.
  std::unique_ptr<uint32_t[]> touched_;
  uint32_t touched_count_ = 0;
  std::unique_ptr<uint32_t[]> settling_;
  // Connections whose read budget ran out; pumped first in the next iteration.
  std::unique_ptr<uint32_t[]> pending_;
  uint32_t pending_count_ = 0;
  std::unique_ptr<uint32_t[]> carried_;
  // Connections paused for want of a pool buffer, and connections whose upstream socket() failed
  // for want of a descriptor; oldest first.
  WaitQueue<Connection, &Connection::buffer_wait> buffer_waiters_;
  WaitQueue<Connection, &Connection::socket_wait> socket_waiters_;

  bool started_ = false;
  bool stopping_ = false;
  bool fast_stop_ = false;

  uint32_t shutdown_timer_;  // timer ids after the connection slots
  uint32_t accept_retry_timer_;
  uint32_t pool_sweep_timer_;
  uint64_t request_ids_ = 0;  // HTTP mode: $request_id is the worker's id and this counter
};

}  // namespace edgeproxy
