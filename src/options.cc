// The option table and its value syntax; see options.h. Limits are checked here, so nothing
// later sees a bad value.
#include "edgeproxy/options.h"

#include <string_view>

#include "edgeproxy/access_log_format.h"
#include "edgeproxy/command_line.h"
#include "edgeproxy/topology_parser.h"

namespace edgeproxy {
namespace {

constexpr uint32_t kSecond = 1000;

// The i-th word of "a|b|c", or "" past the end.
std::string_view choice(const char* choices, uint64_t index) {
  std::string_view rest = choices;
  for (uint64_t i = 0; i < index && !rest.empty(); ++i) {
    const size_t bar = rest.find('|');
    rest = bar == std::string_view::npos ? std::string_view{} : rest.substr(bar + 1);
  }
  return rest.substr(0, rest.find('|'));
}

constexpr SpliceMode kSpliceModes[] = {SpliceMode::kAuto, SpliceMode::kAlways, SpliceMode::kNever};
constexpr LogLevel kLogLevels[] = {LogLevel::kQuiet, LogLevel::kNormal, LogLevel::kVerbose};
constexpr Balance kBalances[] = {Balance::kRoundRobin, Balance::kLeastConn, Balance::kRandom,
                                 Balance::kSource,     Balance::kFirst,     Balance::kRtt,
                                 Balance::kMostIdle};
constexpr ListenerMode kModes[] = {ListenerMode::kTcp, ListenerMode::kForward, ListenerMode::kHttp};

uint32_t u32(const OptionValue& v) {
  return static_cast<uint32_t>(v.number);
}
uint16_t u16(const OptionValue& v) {
  return static_cast<uint16_t>(v.number);
}

// clang-format off
constexpr OptionSpec kOptions[] = {
    // --- the one listener and backend of the command line ------------------------------------
    {.name = "listen", .short_name = 'l', .scope = OptionScope::kListener,
     .spelling = Spelling::kCommandLineOnly, .kind = ValueKind::kAddress, .metavar = "ADDR",
     .default_text = "0.0.0.0", .example = "127.0.0.1",
     .help = "address to listen on: IPv4/IPv6 literal or host name",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.command_line->listen_host = v.text; }},
    {.name = "port", .short_name = 'p', .scope = OptionScope::kListener,
     .spelling = Spelling::kCommandLineOnly, .kind = ValueKind::kCount, .metavar = "PORT",
     .min = 1, .max = 65535, .unit_word = "a port", .default_text = "8080", .example = "8080",
     .help = "port to listen on",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.command_line->listen_port = u16(v); }},
    {.name = "backend", .short_name = 'b', .scope = OptionScope::kBackend,
     .spelling = Spelling::kCommandLineOnly, .kind = ValueKind::kAddress, .metavar = "ADDR",
     .default_text = "127.0.0.1", .example = "127.0.0.1",
     .help = "backend address: IPv4/IPv6 literal or host name; a name with several addresses is "
             "tried address by address",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.command_line->backend_host = v.text; }},
    {.name = "backend-port", .short_name = 'P', .scope = OptionScope::kBackend,
     .spelling = Spelling::kCommandLineOnly, .kind = ValueKind::kCount, .metavar = "PORT",
     .min = 1, .max = 65535, .unit_word = "a port", .default_text = "8081", .example = "8081",
     .help = "backend port",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.command_line->backend_port = u16(v); }},
    {.name = "idle-timeout", .scope = OptionScope::kListener, .kind = ValueKind::kDuration,
     .metavar = "S", .min = 0, .max = 31'536'000, .unit_ms = kSecond, .note = "0 = none",
     .default_text = "3600", .example = "60s",
     .help = "close a connection idle for this long; a bare number is seconds, or give a unit "
             "(ms, s, m, h); 0 = never",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.listener->idle_timeout_s = u32(v); }},
    {.name = "connect-timeout", .scope = OptionScope::kBackend, .kind = ValueKind::kDuration,
     .metavar = "MS", .min = 1, .max = 3'600'000, .unit_ms = 1, .default_text = "5000",
     .example = "2s",
     .help = "backend connect timeout; a bare number is milliseconds, or give a unit (ms, s, m, h)",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.backend->connect_timeout_ms = u32(v);
     }},
    {.name = "balance", .scope = OptionScope::kBackend, .spelling = Spelling::kFileOnly,
     .kind = ValueKind::kEnum, .metavar = "ALGORITHM",
     .choices = "roundrobin|leastconn|random|source|first|rtt|most-idle",
     .default_text = "roundrobin", .example = "leastconn",
     .help = "how a backend picks a server: roundrobin, leastconn, random, source or first; for "
             "http listeners only, per request: rtt or most-idle",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.backend->balance = kBalances[v.number];
     }},
    {.name = "retries", .scope = OptionScope::kBackend, .spelling = Spelling::kFileOnly,
     .kind = ValueKind::kCount, .metavar = "N", .min = 0, .max = 16, .default_text = "2",
     .example = "2",
     .help = "connects retried on another server after a failed or timed-out one, never once a "
             "server's byte reached the client",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.backend->retries = u32(v); }},
    {.name = "accept-proxy", .scope = OptionScope::kListener, .kind = ValueKind::kSwitch,
     .default_text = "off", .example = "on",
     .help = "expect a PROXY protocol v1 or v2 header first (from a load balancer in front) and "
             "take the client address from it; a missing or malformed one closes the connection",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->accept_proxy = v.number != 0;
     }},
    {.name = "tcp-smart-accept", .scope = OptionScope::kListener, .kind = ValueKind::kSwitch,
     .default_text = "on in forward and http listeners, off in tcp", .example = "on",
     .help = "accepted sockets start in delayed-ACK mode (TCP_QUICKACK off), so a client's first "
             "request is acknowledged by the answer, one segment fewer (decision 0017)",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->tcp_smart_accept = v.number != 0 ? 1 : 0;
     }},
    {.name = "defer-accept", .scope = OptionScope::kListener, .kind = ValueKind::kDuration,
     .metavar = "S", .min = 0, .max = 3600, .unit_ms = 1000, .special = "off", .note = "0 = off",
     .default_text = "off", .example = "1s",
     .help = "accept a connection only once its client sent its first bytes (TCP_DEFER_ACCEPT), "
             "or after S seconds: one wake-up fewer per connection; delays protocols where the "
             "server speaks first by S (decision 0017)",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->defer_accept_s = u32(v);
     }},
    {.name = "inspect-timeout", .scope = OptionScope::kListener, .modes = kModeTcp,
     .kind = ValueKind::kDuration, .metavar = "MS", .min = 1, .max = 3'600'000, .unit_ms = 1,
     .default_text = "5000", .example = "2s",
     .help = "tcp listeners: how long the first bytes (a PROXY header, what routing rules read) "
             "may take; a bare number is milliseconds",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->inspect_timeout_ms = u32(v);
     }},
    {.name = "inspect-bytes", .scope = OptionScope::kListener, .modes = kModeTcp,
     .kind = ValueKind::kSize, .metavar = "SIZE", .min = 256, .max = 1024 * 1024,
     .default_text = "8k", .example = "32k",
     .help = "tcp listeners: first bytes read at most before routing decides",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.listener->inspect_bytes = u32(v); }},
    {.name = "accelerate", .scope = OptionScope::kListener, .kind = ValueKind::kSize,
     .metavar = "SIZE", .min = 0, .max = 256 * 1024 * 1024, .special = "off",
     .note = "0 = off", .default_text = "off", .example = "2m",
     .help = "slow-client acceleration: hold up to this many bytes from the server in pool blocks, "
             "so a fast server is released while a slow client drains (tcp listeners; decision "
             "0011)",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->accelerate_bytes = static_cast<uint32_t>(v.number);
     }},
    {.name = "mode", .scope = OptionScope::kListener, .kind = ValueKind::kEnum, .metavar = "MODE",
     .choices = "tcp|forward|http", .default_text = "tcp", .example = "forward",
     .help = "what clients speak: tcp relays bytes to the backend; forward is an HTTP forward "
             "proxy (CONNECT and plain requests; docs/forward-proxy.md); http is an HTTP reverse "
             "proxy with pooled server connections (docs/http-mode.md)",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.listener->mode = kModes[v.number]; }},
    {.name = "request-timeout", .scope = OptionScope::kListener,
     .modes = kModeForward | kModeHttp, .kind = ValueKind::kDuration, .metavar = "MS", .min = 1,
     .max = 3'600'000, .unit_ms = 1, .default_text = "10000", .example = "10s",
     .help = "forward and http listeners: how long a request head may take to arrive (408 "
             "after); a bare number is milliseconds",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       // The mode may be written after it: both specs get it, the listener's mode reads one.
       t.listener->forward.request_timeout_ms = u32(v);
       t.listener->http.request_timeout_ms = u32(v);
     }},
    {.name = "destination-timeout", .scope = OptionScope::kListener, .modes = kModeForward,
     .kind = ValueKind::kDuration, .metavar = "MS", .min = 1, .max = 3'600'000, .unit_ms = 1,
     .default_text = "5000", .example = "3s",
     .help = "forward listeners: resolving and connecting a named destination (504 after); a "
             "bare number is milliseconds",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->forward.connect_timeout_ms = u32(v);
     }},
    {.name = "dns-ttl", .scope = OptionScope::kListener, .modes = kModeForward,
     .kind = ValueKind::kDuration, .metavar = "S", .min = 0, .max = 86'400, .unit_ms = kSecond,
     .note = "0 = no cache", .default_text = "60", .example = "30s",
     .help = "forward listeners: how long a resolved name is reused; a bare number is seconds",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->forward.dns_ttl_ms = static_cast<uint32_t>(v.number * kSecond);
     }},
    {.name = "open", .scope = OptionScope::kListener, .modes = kModeForward,
     .kind = ValueKind::kSwitch, .default_text = "off", .example = "on",
     .help = "forward listeners: serve anyone without authentication on a non-loopback address "
             "(refused otherwise: an open relay must be meant)",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->forward.open = v.number != 0;
     }},
    // --- http listeners (docs/http-mode.md) ----------------------------------------------------
    {.name = "max-body", .scope = OptionScope::kListener, .spelling = Spelling::kFileOnly,
     .modes = kModeHttp, .kind = ValueKind::kSize, .metavar = "SIZE", .min = 0,
     .max = uint64_t{1} << 50, .note = "0 = none", .default_text = "0", .example = "10m",
     .help = "http listeners: a request body longer than this gets 413; 0 = no limit",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.listener->http.max_body = v.number; }},
    {.name = "forwarded-for", .scope = OptionScope::kListener, .spelling = Spelling::kFileOnly,
     .modes = kModeHttp, .kind = ValueKind::kSwitch, .default_text = "on", .example = "off",
     .help = "http listeners: add the client address to X-Forwarded-For",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->http.request.forwarded_for = v.number != 0;
     }},
    {.name = "forwarded-proto", .scope = OptionScope::kListener, .spelling = Spelling::kFileOnly,
     .modes = kModeHttp, .kind = ValueKind::kSwitch, .default_text = "on", .example = "off",
     .help = "http listeners: send X-Forwarded-Proto: http (replacing the client's)",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->http.request.forwarded_proto = v.number != 0;
     }},
    {.name = "via", .scope = OptionScope::kListener, .spelling = Spelling::kFileOnly,
     .modes = kModeHttp, .kind = ValueKind::kSwitch, .default_text = "on", .example = "off",
     .help = "http listeners: append Via to requests and responses",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->http.request.via = v.number != 0;
       t.listener->http.response.via = v.number != 0;
     }},
    // --- per-connection and per-client limits (docs/limits.md) ---------------------------------
    {.name = "max-lifetime", .scope = OptionScope::kListener, .kind = ValueKind::kDuration,
     .metavar = "S", .min = 0, .max = 31'536'000, .unit_ms = kSecond, .note = "0 = none",
     .default_text = "0", .example = "1h",
     .help = "reset a connection this long after it was accepted, busy or not; a bare number is "
             "seconds; 0 = never",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->limits.max_lifetime_s = u32(v);
     }},
    {.name = "upload-limit", .scope = OptionScope::kListener, .kind = ValueKind::kSize,
     .metavar = "SIZE", .min = 0, .max = uint64_t{1} << 50, .note = "0 = none",
     .default_text = "0", .example = "100m",
     .help = "reset a connection once its client has sent more than SIZE bytes; 0 = no limit",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->limits.upload_limit = v.number;
     }},
    {.name = "download-limit", .scope = OptionScope::kListener, .kind = ValueKind::kSize,
     .metavar = "SIZE", .min = 0, .max = uint64_t{1} << 50, .note = "0 = none",
     .default_text = "0", .example = "1g",
     .help = "reset a connection once its server has sent more than SIZE bytes; 0 = no limit",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->limits.download_limit = v.number;
     }},
    {.name = "rate-limit-up", .scope = OptionScope::kListener, .kind = ValueKind::kSize,
     .metavar = "RATE", .min = 0, .max = uint64_t{1} << 40, .note = "0 = none",
     .per_second = true, .default_text = "0", .example = "1m/s",
     .help = "bytes per second read from each client (a token bucket; reading pauses, a timer "
             "resumes it); 0 = no limit",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->limits.rate_up.bytes_per_s = v.number;
     }},
    {.name = "rate-limit-down", .scope = OptionScope::kListener, .kind = ValueKind::kSize,
     .metavar = "RATE", .min = 0, .max = uint64_t{1} << 40, .note = "0 = none",
     .per_second = true, .default_text = "0", .example = "4m/s",
     .help = "bytes per second read from each connection's server, so delivered to its client; "
             "0 = no limit",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->limits.rate_down.bytes_per_s = v.number;
     }},
    {.name = "rate-limit-burst", .scope = OptionScope::kListener, .kind = ValueKind::kSize,
     .metavar = "SIZE", .min = 0, .max = uint64_t{1} << 40, .note = "0 = a tenth of the rate",
     .default_text = "0", .example = "256k",
     .help = "bytes a rate-limited direction may move at once after a quiet spell (the token "
             "bucket's depth), for both directions",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->limits.rate_up.burst = v.number;
       t.listener->limits.rate_down.burst = v.number;
     }},
    {.name = "max-connections-per-client", .scope = OptionScope::kListener,
     .kind = ValueKind::kCount, .metavar = "N", .min = 0, .max = 1'000'000, .note = "0 = none",
     .default_text = "0", .example = "100",
     .help = "open connections one client address may have (IPv6: per client-ipv6-prefix); "
             "more are closed at once and counted; 0 = no limit",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->limits.max_per_client = u32(v);
     }},
    {.name = "new-connections-per-client", .scope = OptionScope::kListener,
     .kind = ValueKind::kCount, .metavar = "N/s", .min = 0, .max = 1'000'000,
     .note = "0 = none", .per_second = true, .default_text = "0", .example = "20/s",
     .help = "new connections per second one client address may open (a burst of N at once); "
             "more are closed at once and counted; 0 = no limit",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->limits.new_per_client = u32(v);
     }},
    {.name = "client-ipv6-prefix", .scope = OptionScope::kListener, .kind = ValueKind::kCount,
     .metavar = "BITS", .min = 1, .max = 128, .default_text = "64", .example = "56",
     .help = "the per-client limits count IPv6 clients by this prefix (one /64 is usually one "
             "subscriber)",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.listener->limits.ipv6_prefix = static_cast<uint8_t>(v.number);
     }},
    {.name = "proxy-protocol", .scope = OptionScope::kBackend, .kind = ValueKind::kEnum,
     .metavar = "V", .choices = "none|v1|v2", .default_text = "none", .example = "v2",
     .help = "send each server a PROXY protocol header (v1 text, v2 binary) with the client's "
             "address first",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.backend->proxy_protocol = static_cast<uint8_t>(v.number);
     }},
    {.name = "tcp-smart-connect", .scope = OptionScope::kBackend, .kind = ValueKind::kSwitch,
     .default_text = "off", .example = "on",
     .help = "a server connection with bytes to send at once (the client's, a PROXY header) "
             "connects in delayed-ACK mode, so the handshake's last ACK rides with them; stalls "
             "servers that write twice with Nagle on (decision 0017)",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.backend->tcp_smart_connect = v.number != 0;
     }},
    // --- the pools of http listeners (docs/http-mode.md, decision 0013) ------------------------
    {.name = "pool-size", .scope = OptionScope::kBackend, .kind = ValueKind::kCount,
     .metavar = "N", .min = 1, .max = 10'000, .default_text = "16", .example = "32",
     .help = "http listeners: persistent connections per worker to each server of the backend, "
             "opened when a request needs one and kept",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.backend->pool.size = u32(v); }},
    {.name = "max-pending", .scope = OptionScope::kBackend, .spelling = Spelling::kFileOnly,
     .kind = ValueKind::kCount, .metavar = "N", .min = 0, .max = 1'000'000,
     .note = "0 = never wait", .default_text = "1024", .example = "256",
     .help = "http listeners: requests per worker that may wait for a pooled connection; more "
             "get 503 (0: never wait)",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.backend->pool.max_pending = u32(v); }},
    {.name = "pending-timeout", .scope = OptionScope::kBackend, .spelling = Spelling::kFileOnly,
     .kind = ValueKind::kDuration, .metavar = "MS", .min = 1, .max = 3'600'000, .unit_ms = 1,
     .default_text = "5000", .example = "2s",
     .help = "http listeners: a request waiting this long for a pooled connection gets 503; a "
             "bare number is milliseconds",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.backend->pool.pending_timeout_ms = u32(v);
     }},
    {.name = "pool-idle-timeout", .scope = OptionScope::kBackend, .spelling = Spelling::kFileOnly,
     .kind = ValueKind::kDuration, .metavar = "S", .min = 1, .max = 86'400, .unit_ms = kSecond,
     .default_text = "60", .example = "30s",
     .help = "http listeners: a pooled connection unused this long is closed; a bare number is "
             "seconds",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.backend->pool.idle_timeout_ms = static_cast<uint32_t>(v.number * kSecond);
     }},
    // --- process-wide ---------------------------------------------------------------------------
    {.name = "max-connections", .kind = ValueKind::kCount, .metavar = "N", .min = 1,
     .max = 1'000'000, .default_text = "1024", .example = "20000",
     .help = "client connections served at once",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.global->max_connections = u32(v); }},
    {.name = "buffers", .kind = ValueKind::kCount, .metavar = "N", .min = 2, .max = 4'000'000,
     .note = "at least 2, one per direction", .default_text = "2 x max-connections",
     .example = "4096", .help = "8 KiB buffers in the pool",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.global->buffers = u32(v); }},
    {.name = "shutdown-timeout", .kind = ValueKind::kDuration, .metavar = "S", .min = 0,
     .max = 86'400, .unit_ms = kSecond, .default_text = "10", .example = "10s",
     .help = "on TERM/INT, how long connections may still run; a bare number is seconds",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.global->shutdown_timeout_s = u32(v);
     }},
    {.name = "backlog", .kind = ValueKind::kCount, .metavar = "N", .min = 1, .max = 65'535,
     .default_text = "4096", .example = "1024",
     .help = "listen backlog, capped by net.core.somaxconn",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.global->backlog = static_cast<int>(v.number);
     }},
    {.name = "workers", .kind = ValueKind::kCount, .metavar = "N|auto", .min = 1, .max = 1024,
     .special = "auto", .default_text = "1", .example = "auto",
     .help = "worker threads, each with its own listening socket (SO_REUSEPORT), connections and "
             "buffers; auto = one per CPU the process may use, at most 4 per CPU. "
             "--max-connections and --buffers are divided among them",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.global->workers = u32(v); }},
    {.name = "cpu-list", .kind = ValueKind::kCpuList, .metavar = "LIST", .default_text = "",
     .example = "0,2-3",
     .help = "pin worker i to the i-th CPU of LIST, e.g. 0,2-3 (wraps around when there are more "
             "workers); every CPU must be in the inherited mask",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.global->cpu_list = v.cpus; }},
    {.name = "no-delay", .kind = ValueKind::kSwitch, .default_text = "on", .example = "off",
     .help = "set TCP_NODELAY on both sides; --no-no-delay (no-delay off) leaves Nagle's "
             "algorithm on",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.global->no_delay = v.number != 0; }},
    {.name = "splice", .kind = ValueKind::kEnum, .metavar = "MODE", .choices = "auto|always|never",
     .default_text = "auto", .example = "never",
     .help = "move bulk bytes with splice(2) through a pipe instead of copying them through "
             "buffers: auto, always or never",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.global->splice = kSpliceModes[v.number];
     }},
    {.name = "splice-threshold", .kind = ValueKind::kSize, .metavar = "B", .min = 0,
     .max = 1'073'741'824, .unit_word = "bytes", .default_text = "65536", .example = "64k",
     .help = "with --splice auto, a direction moves to a pipe once it has moved B bytes through "
             "buffers and a read fills a whole buffer; it goes back after a splice of less than "
             "a buffer",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.global->splice_threshold_bytes = u32(v);
     }},
    {.name = "splice-pipes", .kind = ValueKind::kCount, .metavar = "N", .min = 1,
     .max = 1'000'000, .default_text = "max-connections / 4", .example = "256",
     .help = "pipes in the pool, two descriptors each; a direction holds one only while bytes are "
             "in it",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.global->splice_pipes = u32(v); }},
    {.name = "batch-wait", .kind = ValueKind::kCount, .metavar = "USEC", .min = 0, .max = 10'000,
     .unit_word = "microseconds", .note = "0 = off", .default_text = "200", .example = "0",
     .help = "io_uring backend: a worker serving many connections waits up to USEC microseconds "
             "for completions to accumulate before it handles them, fewer wake-ups for the same "
             "work; 0 = handle each at once (kernel 6.12+; the epoll backend accepts only 0)",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.global->batch_wait_us = u32(v);
       t.global->batch_wait_given = true;
     }},
    {.name = "metrics", .kind = ValueKind::kHostPort, .metavar = "ADDR:PORT", .special = "off",
     .default_text = "off", .example = "127.0.0.1:9100",
     .help = "serve Prometheus metrics (GET /metrics) on this TCP address, e.g. 127.0.0.1:9100 "
             "(docs/metrics.md); read at start-up only",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.global->metrics = v.text; }},
    {.name = "log-level", .kind = ValueKind::kEnum, .metavar = "LEVEL",
     .choices = "quiet|normal|verbose", .default_text = "normal", .example = "verbose",
     .help = "quiet (errors only), normal or verbose",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       t.global->log_level = kLogLevels[v.number];
     }},
    {.name = "admin", .spelling = Spelling::kCommandLineOnly, .kind = ValueKind::kString,
     .metavar = "PATH", .default_text = "", .example = "/run/edgeproxy/admin.sock",
     .help = "serve the admin socket on this Unix socket path (docs/admin.md); in a file: admin "
             "unix:PATH [mode 0660] [group NAME]",
     .apply = [](OptionTargets& t, const OptionValue& v) {
       std::string_view path = v.text;
       if (path.starts_with("unix:")) path.remove_prefix(5);
       t.global->admin.unix_path = std::string(path);
     }},
    {.name = "stats-file", .spelling = Spelling::kCommandLineOnly, .kind = ValueKind::kString,
     .metavar = "PATH", .default_text = "", .example = "/var/lib/edgeproxy/stats.json",
     .help = "write the statistics as JSON to this file at exit (as show stats json)",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.global->stats_file = v.text; }},
    {.name = "access-log", .kind = ValueKind::kString, .metavar = "DEST", .default_text = "off",
     .example = "/var/log/edgeproxy/access.log",
     .help = "one line per connection at close: stderr, stdout, off or a file (reopened on "
             "SIGUSR2); not silenced by -q",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.global->access_log = v.text; },
     .check = [](std::string_view text) -> Result<Ok> {
       if (text.empty()) return Error{"empty destination (expected stderr, stdout, off or a file)"};
       return Ok{};
     }},
    {.name = "access-log-format", .kind = ValueKind::kString,
     .metavar = "FORMAT", .default_text = "\"%t %ci:%cp %f %bs %Tc %Tt %U %B %e\"",
     .example = "%ci:%cp/%e",
     .help = "the access log's line: text and %-variables (docs/access-log.md)",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.global->access_log_format = v.text; },
     .check = [](std::string_view text) -> Result<Ok> {
       auto f = AccessLogFormat::parse(text);
       if (!f.ok()) return Error{f.error()};
       return Ok{};
     }},
    {.name = "verbose", .short_name = 'v', .spelling = Spelling::kCommandLineOnly,
     .help = "more log lines (log-level verbose)",
     .apply = [](OptionTargets& t, const OptionValue&) {
       t.global->log_level = LogLevel::kVerbose;
     }},
    {.name = "quiet", .short_name = 'q', .spelling = Spelling::kCommandLineOnly,
     .help = "errors only, no statistics at exit (log-level quiet)",
     .apply = [](OptionTargets& t, const OptionValue&) { t.global->log_level = LogLevel::kQuiet; }},
    // --- the command line itself ----------------------------------------------------------------
    {.name = "config", .short_name = 'c', .scope = OptionScope::kCommandLine,
     .spelling = Spelling::kCommandLineOnly, .kind = ValueKind::kString, .metavar = "FILE",
     .example = "edgeproxy.conf",
     .help = "serve the listeners and backends of FILE (docs/configuration.md); process-wide "
             "flags override its global block; not with the one listener's and backend's flags "
             "(-l -p -b -P, --idle-timeout, --connect-timeout, the limits...)",
     .apply = [](OptionTargets& t, const OptionValue& v) { t.command_line->config_file = v.text; }},
    {.name = "test", .short_name = 't', .scope = OptionScope::kCommandLine,
     .spelling = Spelling::kCommandLineOnly,
     .help = "check the configuration (the file with -c, else the command line), resolving every "
             "address, print the result and exit",
     .apply = [](OptionTargets& t, const OptionValue&) { t.command_line->check_only = true; }},
    {.name = "help", .short_name = 'h', .scope = OptionScope::kCommandLine,
     .spelling = Spelling::kCommandLineOnly, .help = "print this help and exit",
     .apply = [](OptionTargets& t, const OptionValue&) { t.command_line->show_help = true; }},
    {.name = "version", .short_name = 'V', .scope = OptionScope::kCommandLine,
     .spelling = Spelling::kCommandLineOnly,
     .help = "print the version and the I/O backend and exit",
     .apply = [](OptionTargets& t, const OptionValue&) { t.command_line->show_version = true; }},
};
// clang-format on

std::string quoted(std::string_view v) {
  return "'" + std::string(v) + "'";
}

Error invalid(const OptionSpec& o, std::string_view text) {
  return Error{"invalid value " + quoted(text) + " (expected " + expected_value(o) + ")"};
}

// Splits "12ms" into the digits and the unit after them.
void split_unit(std::string_view text, std::string_view& digits, std::string_view& unit) {
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  digits = text.substr(0, i);
  unit = text.substr(i);
}

// Milliseconds per duration unit; 0 for an unknown unit.
uint64_t duration_unit_ms(std::string_view unit) {
  if (unit == "ms") return 1;
  if (unit == "s") return 1000;
  if (unit == "m") return 60'000;
  if (unit == "h") return 3'600'000;
  return 0;
}

// Bytes per size unit; 0 for an unknown unit.
uint64_t size_unit_bytes(std::string_view unit) {
  if (unit.empty()) return 1;
  if (unit == "k") return uint64_t{1} << 10;
  if (unit == "m") return uint64_t{1} << 20;
  if (unit == "g") return uint64_t{1} << 30;
  return 0;
}

// Number of columns --help gives the flags.
constexpr size_t kFlagColumn = 29;
constexpr size_t kLineWidth = 100;

// Appends `left` padded to kFlagColumn, then `text` wrapped at kLineWidth under the column.
void append_entry(std::string& out, const std::string& left, const std::string& text) {
  std::string line = left;
  line += left.size() < kFlagColumn ? std::string(kFlagColumn - left.size(), ' ') : " ";
  size_t pos = 0;
  bool first_word = true;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    // "(default VALUE" stays on one line: a reader looks for the default next to its word.
    if (text.compare(pos, end - pos, "(default") == 0 && end < text.size()) {
      end = text.find(' ', end + 1);
      if (end == std::string::npos) end = text.size();
    }
    const std::string_view word(text.data() + pos, end - pos);
    if (!first_word && line.size() + 1 + word.size() > kLineWidth) {
      out += line + "\n";
      line = std::string(kFlagColumn, ' ');
      first_word = true;
    }
    if (!first_word) line += ' ';
    line += word;
    first_word = false;
    pos = end + 1;
  }
  out += line + "\n";
}

// The help line of `o` with its default.
std::string help_with_default(const OptionSpec& o) {
  std::string text = o.help;
  if (o.default_text[0] != '\0') text += std::string(" (default ") + o.default_text + ")";
  return text;
}

void append_section(std::string& out, const char* title, bool (*wanted)(const OptionSpec&)) {
  out += std::string("\n") + title + "\n";
  for (const OptionSpec& o : kOptions) {
    if (!wanted(o)) continue;
    std::string left = o.short_name != 0 ? std::string("  -") + o.short_name + ", " : "      ";
    left += std::string("--") + o.name;
    if (o.takes_value()) left += std::string(" ") + o.metavar;
    append_entry(out, left, help_with_default(o));
    if (o.kind == ValueKind::kSwitch) {
      append_entry(out, std::string("      --no-") + o.name,
                   std::string("turn ") + o.name + " off");
    }
  }
}

}  // namespace

std::string mode_names(uint8_t modes) {
  std::vector<std::string> names;
  for (const char* name : {"tcp", "forward", "http"}) {
    if ((modes & 1u) != 0) names.emplace_back(name);
    modes = static_cast<uint8_t>(modes >> 1);
  }
  std::string s;
  for (size_t i = 0; i < names.size(); ++i) s += (i == 0 ? "" : " and ") + names[i];
  return s;
}

std::string mode_choices(uint8_t modes, const char* prefix) {
  const bool quote = std::string_view(prefix) == "mode ";
  std::string s;
  for (const char* name : {"tcp", "forward", "http"}) {
    if ((modes & 1u) != 0) {
      s += (s.empty() ? "" : " or ") + std::string(quote ? "'" : "") + prefix + name +
           (quote ? "'" : "");
    }
    modes = static_cast<uint8_t>(modes >> 1);
  }
  return s;
}

std::span<const OptionSpec> option_table() noexcept {
  return kOptions;
}

const OptionSpec* find_option(std::string_view name) noexcept {
  for (const OptionSpec& o : kOptions) {
    if (name == o.name) return &o;
  }
  return nullptr;
}

const OptionSpec* find_short_option(char c) noexcept {
  for (const OptionSpec& o : kOptions) {
    if (c != 0 && o.short_name == c) return &o;
  }
  return nullptr;
}

bool parse_decimal(std::string_view text, uint64_t min, uint64_t max, uint64_t& out) noexcept {
  if (text.empty() || text.size() > 12) return false;
  uint64_t v = 0;
  for (const char ch : text) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  if (v < min || v > max) return false;
  out = v;
  return true;
}

std::string expected_value(const OptionSpec& o) {
  const std::string range = std::to_string(o.min) + "-" + std::to_string(o.max);
  const std::string note = o.note != nullptr ? std::string(", ") + o.note : std::string();
  switch (o.kind) {
    case ValueKind::kFlag:
      return "no value";
    case ValueKind::kSwitch:
      return "on or off";
    case ValueKind::kCount: {
      std::string s = o.unit_word != nullptr ? std::string(o.unit_word) + " " + range : range;
      if (o.special != nullptr) s += std::string(" or ") + o.special;
      return s + note + (o.per_second ? ", /s optional" : "");
    }
    case ValueKind::kDuration:
      return std::string(o.unit_ms == kSecond ? "seconds " : "milliseconds ") + range + note +
             ", or a number with a unit: ms, s, m, h" +
             (o.special != nullptr ? std::string(", or ") + o.special : std::string());
    case ValueKind::kSize:
      return std::string(o.per_second ? "bytes per second " : "bytes ") + range + note +
             ", or a number with a unit: k, m, g (1024-based)" +
             (o.special != nullptr ? std::string(", or ") + o.special : std::string()) +
             (o.per_second ? ", /s optional" : "");
    case ValueKind::kEnum: {
      std::string s;
      for (uint64_t i = 0;; ++i) {
        const std::string_view word = choice(o.choices, i);
        if (word.empty()) break;
        if (i > 0) s += choice(o.choices, i + 1).empty() ? " or " : ", ";
        s += word;
      }
      return s;
    }
    case ValueKind::kString:
      return "a value";
    case ValueKind::kAddress:
      return "an IPv4/IPv6 literal or a host name";
    case ValueKind::kCpuList:
      return "a CPU list such as 0,2-3";
    case ValueKind::kHostPort:
      return std::string("HOST:PORT or [IPv6]:PORT, port 1-65535") +
             (o.special != nullptr ? std::string(", or ") + o.special : std::string());
  }
  return "a value";
}

Result<OptionValue> parse_option_value(const OptionSpec& o, std::string_view text) {
  OptionValue v;
  if (o.per_second && text.ends_with("/s")) text.remove_suffix(2);
  switch (o.kind) {
    case ValueKind::kFlag:
      return Error{"takes no value"};
    case ValueKind::kSwitch:
      if (text != "on" && text != "off" && text != "yes" && text != "no") return invalid(o, text);
      v.number = text == "on" || text == "yes" ? 1 : 0;
      return v;
    case ValueKind::kCount:
      if (o.special != nullptr && text == o.special) return v;
      if (!parse_decimal(text, o.min, o.max, v.number)) return invalid(o, text);
      return v;
    case ValueKind::kDuration: {
      if (o.special != nullptr && text == o.special) return v;
      std::string_view digits;
      std::string_view unit;
      split_unit(text, digits, unit);
      const uint64_t unit_ms = unit.empty() ? o.unit_ms : duration_unit_ms(unit);
      uint64_t n = 0;
      if (unit_ms == 0 || !parse_decimal(digits, 0, 999'999'999'999, n)) return invalid(o, text);
      const uint64_t ms = n * unit_ms;
      if (ms % o.unit_ms != 0) return invalid(o, text);  // "1500ms" of a value in seconds
      v.number = ms / o.unit_ms;
      if (v.number < o.min || v.number > o.max) return invalid(o, text);
      return v;
    }
    case ValueKind::kSize: {
      if (o.special != nullptr && text == o.special) return v;
      std::string_view digits;
      std::string_view unit;
      split_unit(text, digits, unit);
      const uint64_t unit_bytes = size_unit_bytes(unit);
      uint64_t n = 0;
      if (unit_bytes == 0 || !parse_decimal(digits, 0, 999'999'999'999, n)) {
        return invalid(o, text);
      }
      if (n > o.max / unit_bytes || n * unit_bytes < o.min) return invalid(o, text);
      v.number = n * unit_bytes;
      return v;
    }
    case ValueKind::kEnum:
      for (uint64_t i = 0;; ++i) {
        const std::string_view word = choice(o.choices, i);
        if (word.empty()) return invalid(o, text);
        if (word == text) {
          v.number = i;
          return v;
        }
      }
    case ValueKind::kString:
      if (o.check != nullptr) {
        if (auto r = o.check(text); !r.ok()) return Error{r.error()};
      }
      v.text = std::string(text);
      return v;
    case ValueKind::kAddress:
      if (text.empty()) return Error{"empty address"};
      v.text = std::string(text);
      return v;
    case ValueKind::kCpuList: {
      auto cpus = parse_cpu_list(text);
      if (!cpus.ok()) return Error{cpus.error()};
      v.cpus = std::move(cpus.value());
      return v;
    }
    case ValueKind::kHostPort: {
      if (o.special != nullptr && text == o.special) return v;
      auto e = parse_endpoint(text, 1);
      if (!e.ok() || e.value().is_unix() || e.value().host.empty()) return invalid(o, text);
      v.text = std::string(text);
      return v;
    }
  }
  return invalid(o, text);
}

std::string usage() {
  std::string out =
      "usage: edgeproxy [options]\n"
      "       edgeproxy -c FILE [-t] [process-wide options]\n"
      "\n"
      "A TCP proxy: accepts clients on --listen:--port and relays each to "
      "--backend:--backend-port,\n"
      "or serves the listeners and backends of a configuration file (-c; "
      "docs/configuration.md).\n"
      "Durations take a unit ms, s, m or h; sizes k, m or g (1024-based).\n";
  append_section(out, "The one listener and backend (not with -c):", [](const OptionSpec& o) {
    return o.on_command_line() &&
           (o.scope == OptionScope::kListener || o.scope == OptionScope::kBackend);
  });
  append_section(
      out, "Process-wide (with -c, these override the file's global block):",
      [](const OptionSpec& o) { return o.on_command_line() && o.scope == OptionScope::kGlobal; });
  append_section(out, "Command line:", [](const OptionSpec& o) {
    return o.scope == OptionScope::kCommandLine;
  });
  out += "\nIn a configuration file only (see docs/configuration.md):\n";
  for (const OptionSpec& o : kOptions) {
    if (o.on_command_line()) continue;
    append_entry(out, std::string("  ") + o.name + " " + o.metavar, help_with_default(o));
  }
  out +=
      "\nSignals: TERM/INT stop accepting and close the remaining connections after "
      "--shutdown-timeout;\n"
      "QUIT stops accepting and lets every connection finish; USR1 prints statistics to "
      "stderr;\nHUP reloads the file given with -c (an invalid one changes nothing).\n";
  return out;
}

}  // namespace edgeproxy
