// The metrics endpoint's thread and its HTTP/1.x sessions; see metrics_server.h.
#include "edgeproxy/metrics_server.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "edgeproxy/clock.h"
#include "edgeproxy/listener.h"
#include "edgeproxy/prometheus.h"

namespace edgeproxy {
namespace {

constexpr uint64_t kListenCookie = UINT64_MAX;
constexpr uint64_t kWakeCookie = UINT64_MAX - 1;
constexpr int kBacklog = 64;
constexpr int64_t kAcceptRetryMs = 100;

bool is_token_char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

const char* reason(uint16_t status) noexcept {
  switch (status) {
    case 200:
      return "OK";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Bad Request";
  }
}

// A response with a short text body (errors) or the metrics.
std::string response(uint16_t status, std::string_view content_type, std::string_view body,
                     bool head_only) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
  out += "Content-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (status == 405) out += "Allow: GET, HEAD\r\n";
  out += "Connection: close\r\n\r\n";
  if (!head_only) out += body;
  return out;
}

std::string error_response(uint16_t status) {
  return response(status, "text/plain; charset=utf-8", std::string(reason(status)) + "\n", false);
}

}  // namespace

MetricsRequest parse_metrics_request(std::string_view head) noexcept {
  MetricsRequest bad;
  const size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return bad;
  const std::string_view line = head.substr(0, eol);
  const size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return bad;
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return bad;
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  for (const char c : method) {
    if (!is_token_char(c)) return bad;
  }
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return bad;
  if (target.empty() || target[0] != '/') return bad;
  for (const char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad;
  }
  // Header lines up to the blank line: "Name: value", the name a token.
  std::string_view rest = head.substr(eol + 2);
  for (;;) {
    const size_t end = rest.find("\r\n");
    if (end == std::string_view::npos) return bad;
    const std::string_view h = rest.substr(0, end);
    rest = rest.substr(end + 2);
    if (h.empty()) break;
    const size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return bad;
    for (const char c : h.substr(0, colon)) {
      if (!is_token_char(c)) return bad;
    }
  }
  MetricsRequest r;
  if (method != "GET" && method != "HEAD") {
    r.status = 405;
    return r;
  }
  r.head_only = method == "HEAD";
  const std::string_view path = target.substr(0, target.find('?'));
  r.status = path == "/metrics" ? 200 : 404;
  return r;
}

// Everything the thread owns. Sessions live in a fixed array; a free one has fd -1.
struct MetricsServer::Loop {
  enum class Phase : uint8_t { kHead, kWriting, kLingering };
  struct Session {
    int fd = -1;
    Phase phase = Phase::kHead;
    int64_t deadline_ms = 0;
    std::string head;
    std::string out;
    size_t sent = 0;
  };

  int epoll_fd = -1;
  int listen_fd = -1;
  Body body;
  std::array<Session, kMaxSessions> sessions;
  // Counted on this thread only, rendered with the body.
  uint64_t scrapes = 0;
  uint64_t refused = 0;
  uint64_t errors = 0;
  int64_t listen_retry_ms = 0;  // the listener is unwatched until then (0: watched)

  ~Loop() {
    for (Session& s : sessions) close_session(s);
    if (listen_fd >= 0) sys::close(listen_fd);
    if (epoll_fd >= 0) sys::close(epoll_fd);
  }

  static int64_t now_ms() noexcept { return LoopTime::now().ms; }

  void close_session(Session& s) noexcept {
    if (s.fd < 0) return;
    sys::close(s.fd);  // also leaves the epoll set
    s.fd = -1;
    s.head.clear();
    s.out.clear();
  }

  void watch(Session& s, uint32_t events, int op) noexcept {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = static_cast<uint64_t>(&s - sessions.data());
    if (epoll_ctl(epoll_fd, op, s.fd, &ev) != 0) close_session(s);
  }

  void watch_listener(uint32_t events) noexcept {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = kListenCookie;
    [[maybe_unused]] const int rc = epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
  }

  void accept_all() noexcept {
    for (;;) {
      const SysResult r = sys::accept(listen_fd);
      if (!r.ok()) {
        if (r.err == EAGAIN || sys::accept_error_is_transient(r.err)) {
          if (r.err == EAGAIN) return;
          continue;
        }
        // Out of descriptors: a level-triggered listener would wake the loop at once again, so
        // it is unwatched and looked at again after kAcceptRetryMs.
        watch_listener(0);
        listen_retry_ms = now_ms() + kAcceptRetryMs;
        return;
      }
      const int fd = static_cast<int>(r.value);
      Session* free_session = nullptr;
      for (Session& s : sessions) {
        if (s.fd < 0) {
          free_session = &s;
          break;
        }
      }
      if (free_session == nullptr) {
        // A fresh socket's send buffer is empty: this short answer fits, never blocks.
        ++refused;
        const std::string text = error_response(503);
        [[maybe_unused]] const SysResult sent = sys::send(fd, text.data(), text.size());
        sys::close(fd);
        continue;
      }
      Session& s = *free_session;
      s.fd = fd;
      s.phase = Phase::kHead;
      s.deadline_ms = now_ms() + kHeadTimeoutMs;
      s.sent = 0;
      watch(s, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
    }
  }

  void answer(Session& s, std::string text) noexcept {
    s.out = std::move(text);
    s.sent = 0;
    s.phase = Phase::kWriting;
    s.deadline_ms = now_ms() + kWriteTimeoutMs;
    watch(s, EPOLLOUT, EPOLL_CTL_MOD);
    if (s.fd >= 0) write_some(s);
  }

  void read_head(Session& s) noexcept {
    char chunk[2048];
    for (;;) {
      const SysResult r = sys::read(s.fd, chunk, sizeof chunk);
      if (!r.ok()) {
        if (r.err == EAGAIN) return;
        close_session(s);
        return;
      }
      if (r.value == 0) {
        close_session(s);  // gone before a whole head
        return;
      }
      const size_t before = s.head.size();
      s.head.append(chunk, static_cast<size_t>(r.value));
      // Search from just before the new bytes, so a terminator split across reads is found.
      const size_t end = s.head.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
      if (end == std::string::npos) {
        if (s.head.size() > kMaxHeadBytes) {
          ++errors;
          close_session(s);
        }
        continue;
      }
      if (end + 4 > kMaxHeadBytes) {
        ++errors;
        close_session(s);
        return;
      }
      const MetricsRequest req = parse_metrics_request(std::string_view(s.head).substr(0, end + 4));
      if (req.status != 200) {
        ++errors;
        answer(s, error_response(req.status));
        return;
      }
      ++scrapes;
      std::string text = body();
      append_prometheus_family(text, "edgeproxy_metrics_scrapes_total", "counter",
                               "Requests for /metrics answered.", scrapes);
      append_prometheus_family(text, "edgeproxy_metrics_refused_total", "counter",
                               "Metrics connections refused: every session was busy.", refused);
      append_prometheus_family(text, "edgeproxy_metrics_errors_total", "counter",
                               "Metrics requests answered 400, 404 or 405, or closed for a head "
                               "too large.",
                               errors);
      answer(s, response(200, kPrometheusContentType, text, req.head_only));
      return;
    }
  }

  void write_some(Session& s) noexcept {
    while (s.sent < s.out.size()) {
      const SysResult r = sys::send(s.fd, s.out.data() + s.sent, s.out.size() - s.sent);
      if (!r.ok()) {
        if (r.err != EAGAIN) close_session(s);
        return;
      }
      s.sent += static_cast<size_t>(r.value);
    }
    // Answered. Closing with unread request bytes would reset the connection and could destroy
    // the answer in flight, so the rest of what the client sends is read and dropped until its
    // FIN (or kLingerMs) first.
    sys::shutdown_write(s.fd);
    s.out.clear();
    s.out.shrink_to_fit();
    s.phase = Phase::kLingering;
    s.deadline_ms = now_ms() + kLingerMs;
    watch(s, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
  }

  void drain(Session& s) noexcept {
    char chunk[2048];
    // A bounded share per event (the set is level-triggered: the rest comes back next time), so
    // a client that keeps sending cannot hold the thread; kLingerMs ends it.
    for (int i = 0; i < 64; ++i) {
      const SysResult r = sys::read(s.fd, chunk, sizeof chunk);
      if (r.ok() && r.value > 0) continue;
      if (!r.ok() && r.err == EAGAIN) return;
      close_session(s);
      return;
    }
  }

  void on_session(Session& s, uint32_t events) noexcept {
    if (s.fd < 0) return;
    switch (s.phase) {
      case Phase::kHead:
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) read_head(s);
        break;
      case Phase::kWriting:
        if (events & (EPOLLHUP | EPOLLERR)) {
          close_session(s);
        } else {
          write_some(s);
        }
        break;
      case Phase::kLingering:
        drain(s);
        break;
    }
  }

  // Closes sessions past their deadline; returns the epoll timeout until the next one.
  int expire() noexcept {
    const int64_t now = now_ms();
    int64_t next = -1;
    if (listen_retry_ms != 0) {
      if (listen_retry_ms <= now) {
        listen_retry_ms = 0;
        watch_listener(EPOLLIN);
      } else {
        next = listen_retry_ms - now;
      }
    }
    for (Session& s : sessions) {
      if (s.fd < 0) continue;
      if (s.deadline_ms <= now) {
        if (s.phase == Phase::kHead && !s.head.empty()) ++errors;
        close_session(s);
        continue;
      }
      const int64_t left = s.deadline_ms - now;
      if (next < 0 || left < next) next = left;
    }
    return static_cast<int>(next);
  }
};

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const SocketAddress& address,
                                                            Body body) {
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->loop_ = std::make_unique<Loop>();
  Loop& loop = *server->loop_;
  loop.body = std::move(body);
  auto listener = Listener::open(address, kBacklog, false, 0, "metrics");
  if (!listener.ok()) return Error{listener.error()};
  server->address_ = listener.value().address();
  loop.listen_fd = listener.value().release();
  loop.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (loop.epoll_fd < 0) return Error{std::string("metrics: epoll: ") + std::strerror(errno)};
  server->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (server->wake_fd_ < 0) return Error{std::string("metrics: eventfd: ") + std::strerror(errno)};
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenCookie;
  if (epoll_ctl(loop.epoll_fd, EPOLL_CTL_ADD, loop.listen_fd, &ev) != 0) {
    return Error{std::string("metrics: epoll_ctl: ") + std::strerror(errno)};
  }
  ev.data.u64 = kWakeCookie;
  if (epoll_ctl(loop.epoll_fd, EPOLL_CTL_ADD, server->wake_fd_, &ev) != 0) {
    return Error{std::string("metrics: epoll_ctl: ") + std::strerror(errno)};
  }
  const int rc =
      pthread_create(&server->thread_, nullptr, &MetricsServer::thread_main, server.get());
  if (rc != 0) return Error{std::string("metrics: cannot start the thread: ") + std::strerror(rc)};
  server->started_ = true;
  return server;
}

void* MetricsServer::thread_main(void* arg) noexcept {
  pthread_setname_np(pthread_self(), "edgeproxy-metrics");
  auto& self = *static_cast<MetricsServer*>(arg);
  Loop& loop = *self.loop_;
  std::array<epoll_event, 16> events;
  while (!self.stop_.load(std::memory_order_acquire)) {
    const int timeout = loop.expire();
    const int n =
        epoll_wait(loop.epoll_fd, events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0) continue;  // EINTR
    for (int i = 0; i < n; ++i) {
      const uint64_t cookie = events[static_cast<size_t>(i)].data.u64;
      if (cookie == kWakeCookie) continue;  // stop_ is looked at before the next wait
      if (cookie == kListenCookie) {
        loop.accept_all();
        continue;
      }
      loop.on_session(loop.sessions[cookie], events[static_cast<size_t>(i)].events);
    }
  }
  return nullptr;
}

MetricsServer::~MetricsServer() {
  if (started_) {
    stop_.store(true, std::memory_order_release);
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
    pthread_join(thread_, nullptr);
  }
  loop_.reset();
  if (wake_fd_ >= 0) sys::close(wake_fd_);
}

}  // namespace edgeproxy
