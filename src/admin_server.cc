// The admin socket's thread, sessions and commands; see admin_server.h and docs/admin.md.
#include "edgeproxy/admin_server.h"

#include <grp.h>
#include <pwd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "edgeproxy/admin_command.h"
#include "edgeproxy/buffer.h"
#include "edgeproxy/clock.h"
#include "edgeproxy/constant_time.h"
#include "edgeproxy/listener.h"
#include "edgeproxy/log.h"
#include "edgeproxy/options.h"
#include "edgeproxy/reactor.h"
#include "edgeproxy/sha256.h"
#include "edgeproxy/stats_json.h"
#include "edgeproxy/supervisor.h"
#include "edgeproxy/topology_parser.h"

namespace edgeproxy {
namespace {

// epoll cookies: the stop eventfd, the two listening sockets, then session i at kSessionTag + i.
constexpr uint64_t kStopTag = 0;
constexpr uint64_t kUnixTag = 1;
constexpr uint64_t kTcpTag = 2;
constexpr uint64_t kSessionTag = 16;
constexpr int kTickMs = 500;
constexpr size_t kReadChunk = 4096;
constexpr size_t kMaxTokenBytes = 4096;

int64_t monotonic_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A name or a decimal id.
template <class Id, class Lookup>
Result<Id> resolve_id(const std::string& text, const char* what, Lookup&& lookup) {
  uint64_t n = 0;
  if (parse_decimal(text, 0, UINT32_MAX - 1, n)) return static_cast<Id>(n);
  Id id{};
  if (!lookup(text, id)) return Error{std::string("admin: unknown ") + what + " '" + text + "'"};
  return id;
}

bool user_id(const std::string& name, uid_t& out) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwnam_r(name.c_str(), &pw, buf, sizeof buf, &found) != 0 || found == nullptr) {
    return false;
  }
  out = pw.pw_uid;
  return true;
}

bool group_id(const std::string& name, gid_t& out) {
  group gr{};
  group* found = nullptr;
  char buf[8192];
  if (getgrnam_r(name.c_str(), &gr, buf, sizeof buf, &found) != 0 || found == nullptr) {
    return false;
  }
  out = gr.gr_gid;
  return true;
}

std::string fixed(const char* format, unsigned long long value) {
  char line[64];
  std::snprintf(line, sizeof line, format, value);
  return line;
}

}  // namespace

Result<AdminAccess> resolve_admin_access(const AdminConfig& config, uid_t self) {
  AdminAccess access;
  for (const std::string& u : config.users) {
    auto id = resolve_id<uid_t>(u, "user", user_id);
    if (!id.ok()) return Error{id.error()};
    access.uids.push_back(id.value());
  }
  for (const std::string& g : config.groups) {
    auto id = resolve_id<gid_t>(g, "group", group_id);
    if (!id.ok()) return Error{id.error()};
    access.gids.push_back(id.value());
  }
  if (access.uids.empty() && access.gids.empty()) access.uids = {0, self};
  return access;
}

bool admin_peer_allowed(const AdminAccess& access, uid_t uid, gid_t gid) {
  if (std::find(access.uids.begin(), access.uids.end(), uid) != access.uids.end()) return true;
  if (access.gids.empty()) return false;
  if (std::find(access.gids.begin(), access.gids.end(), gid) != access.gids.end()) return true;
  // Supplementary groups: those of the peer's user as the group database lists them.
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) != 0 || found == nullptr) return false;
  gid_t groups[256];
  int count = static_cast<int>(std::size(groups));
  if (getgrouplist(pw.pw_name, gid, groups, &count) < 0)
    count = static_cast<int>(std::size(groups));
  for (int i = 0; i < count; ++i) {
    if (std::find(access.gids.begin(), access.gids.end(), groups[i]) != access.gids.end()) {
      return true;
    }
  }
  return false;
}

struct AdminServer::Session {
  int fd = -1;
  bool tcp = false;
  bool authenticated = false;  // Unix: checked at accept; TCP: once the token line matched
  bool discarding = false;     // the rest of an overlong line is being skipped
  bool reading = false;        // EPOLLIN registered
  bool writing = false;        // EPOLLOUT registered
  bool freed_this_batch = false;
  bool peer_done = false;  // the peer shut its write side: answer what came, then close
  std::string in;
  std::string out;
  size_t sent = 0;         // bytes of `out` already written
  int64_t active_ms = 0;   // last command or output progress
  int64_t stalled_ms = 0;  // since when pending output has not moved (0: it moves)
  size_t pending() const noexcept { return out.size() - sent; }
};

AdminServer::AdminServer(Supervisor& supervisor) noexcept : supervisor_(supervisor) {}

Result<std::unique_ptr<AdminServer>> AdminServer::start(const AdminConfig& config,
                                                        Supervisor& supervisor) {
  std::unique_ptr<AdminServer> s(new AdminServer(supervisor));
  s->sessions_ = std::make_unique<Session[]>(kAdminMaxSessions);
  auto access = resolve_admin_access(config, getuid());
  if (!access.ok()) return Error{access.error()};
  s->access_ = std::move(access.value());
  if (!config.unix_path.empty()) {
    auto address = unix_address(config.unix_path);
    if (!address.ok()) return Error{"admin: " + address.error()};
    auto l = Listener::open(address.value(), 16, false, config.unix_mode, "admin");
    if (!l.ok()) return Error{l.error()};
    s->unix_fd_ = l.value().release();
    s->unix_path_ = config.unix_path;
    if (!config.unix_group.empty()) {
      auto gid = resolve_id<gid_t>(config.unix_group, "group", group_id);
      if (!gid.ok()) return Error{gid.error()};
      if (::chown(config.unix_path.c_str(), static_cast<uid_t>(-1), gid.value()) != 0) {
        return Error{"admin: cannot give " + config.unix_path + " to group " + config.unix_group +
                     ": " + std::strerror(errno)};
      }
    }
    s->where_ = "unix:" + config.unix_path;
  }
  if (!config.tcp_address.empty()) {
    std::ifstream file(config.token_file, std::ios::binary);
    if (!file) {
      return Error{"admin tcp: cannot read token-file " + config.token_file + ": " +
                   std::strerror(errno)};
    }
    std::string token;
    std::getline(file, token);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty() || token.size() > kMaxTokenBytes) {
      return Error{"admin tcp: token-file " + config.token_file +
                   ": the first line must hold the token (1-4096 bytes)"};
    }
    s->token_ = std::move(token);
    auto endpoint = parse_endpoint(config.tcp_address, 1);
    if (!endpoint.ok()) return Error{"admin tcp: " + endpoint.error()};
    auto address = resolve(endpoint.value().host, endpoint.value().port, "admin tcp");
    if (!address.ok()) return Error{address.error()};
    auto l = Listener::open(address.value(), 16, false, 0, "admin tcp");
    if (!l.ok()) return Error{l.error()};
    s->where_ += (s->where_.empty() ? "" : ", ") + l.value().address().to_string();
    s->tcp_fd_ = l.value().release();
  }
  s->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  s->stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->epoll_fd_ < 0 || s->stop_fd_ < 0) {
    return Error{std::string("admin: ") + std::strerror(errno)};
  }
  for (const auto& [fd, tag] : {std::pair{s->stop_fd_, kStopTag}, std::pair{s->unix_fd_, kUnixTag},
                                std::pair{s->tcp_fd_, kTcpTag}}) {
    if (fd < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tag;
    if (epoll_ctl(s->epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return Error{std::string("admin: epoll_ctl: ") + std::strerror(errno)};
    }
  }
  if (const int rc = pthread_create(&s->thread_, nullptr, &AdminServer::thread_main, s.get());
      rc != 0) {
    return Error{std::string("admin: cannot start its thread: ") + std::strerror(rc)};
  }
  s->joinable_ = true;
  log_info("admin socket on %s", s->where_.c_str());
  return s;
}

void AdminServer::stop() noexcept {
  if (!joinable_) return;
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(stop_fd_, &one, sizeof one);
  pthread_join(thread_, nullptr);
  joinable_ = false;
}

AdminServer::~AdminServer() {
  stop();
  for (uint32_t i = 0; sessions_ != nullptr && i < kAdminMaxSessions; ++i) {
    if (sessions_[i].fd >= 0) sys::close(sessions_[i].fd);
  }
  for (const int fd : {unix_fd_, tcp_fd_, epoll_fd_, stop_fd_}) {
    if (fd >= 0) sys::close(fd);
  }
  if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
}

AdminCounters AdminServer::counters() const noexcept {
  AdminCounters c;
#define EDGEPROXY_ADMIN_LOAD(name) c.name = stats_.name.load(std::memory_order_relaxed);
  EDGEPROXY_ADMIN_STATS(EDGEPROXY_ADMIN_LOAD, EDGEPROXY_ADMIN_LOAD)
#undef EDGEPROXY_ADMIN_LOAD
  return c;
}

void* AdminServer::thread_main(void* arg) noexcept {
  pthread_setname_np(pthread_self(), "edgeproxy-admin");
  static_cast<AdminServer*>(arg)->loop();
  return nullptr;
}

void AdminServer::loop() noexcept {
  epoll_event events[16];
  for (;;) {
    const int n = epoll_wait(epoll_fd_, events, static_cast<int>(std::size(events)), kTickMs);
    const int64_t now = monotonic_ms();
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kStopTag) {
        // Answers already made (a shutdown's "ok") get one last chance to leave.
        for (uint32_t k = 0; k < kAdminMaxSessions; ++k) {
          if (sessions_[k].fd >= 0 && sessions_[k].pending() > 0) flush(sessions_[k], now);
        }
        return;
      }
      if (tag == kUnixTag || tag == kTcpTag) {
        on_accept(tag == kUnixTag ? unix_fd_ : tcp_fd_, tag == kTcpTag, now);
        continue;
      }
      Session& s = sessions_[tag - kSessionTag];
      if (s.fd < 0) continue;  // closed earlier in this batch
      if (events[i].events & (EPOLLHUP | EPOLLERR)) {
        // Gone both ways: nothing more can be read or delivered.
        close_session(s);
        continue;
      }
      if (events[i].events & EPOLLOUT) {
        flush(s, now);
        // Commands that waited while the answers were paused are answered now.
        if (s.fd >= 0 && s.pending() < kAdminPauseBytes && s.in.find('\n') != std::string::npos) {
          process_lines(s, now);
        }
      }
      if (s.fd >= 0 && (events[i].events & EPOLLIN)) on_readable(s, now);
    }
    for (uint32_t k = 0; k < kAdminMaxSessions; ++k) sessions_[k].freed_this_batch = false;
    check_timers(now);
  }
}

void AdminServer::say_last(int fd, std::string_view line) noexcept {
  // A fresh socket's send buffer always holds one short line: this never blocks.
  [[maybe_unused]] const SysResult r = sys::send(fd, line.data(), line.size());
  ::shutdown(fd, SHUT_WR);
  // Closing with unread input would reset the peer, which may then never read the line: what
  // it already sent (a command before the refusal) is read and dropped first.
  char sink[4096];
  for (int i = 0; i < 16 && sys::read(fd, sink, sizeof sink).value > 0; ++i) {
  }
}

void AdminServer::refuse(int fd, const char* line) noexcept {
  say_last(fd, line);
  sys::close(fd);
}

void AdminServer::on_accept(int listen_fd, bool tcp, int64_t now_ms) noexcept {
  for (;;) {
    const SysResult r = sys::accept(listen_fd);
    if (!r.ok()) return;  // EAGAIN, or a transient error: the next edge retries
    const int fd = static_cast<int>(r.value);
    if (!tcp) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
          !admin_peer_allowed(access_, cred.uid, cred.gid)) {
        stats_.denied.fetch_add(1, std::memory_order_relaxed);
        // One line a second at most: a flood of refused peers must not flood the log.
        if (last_denied_log_ms_ == INT64_MIN || now_ms - last_denied_log_ms_ >= 1000) {
          log_warn(
              "admin socket: peer uid %u gid %u pid %d refused (not in admin-users or "
              "admin-groups)%s",
              static_cast<unsigned>(cred.uid), static_cast<unsigned>(cred.gid),
              static_cast<int>(cred.pid),
              denied_unlogged_ != 0
                  ? (" (" + std::to_string(denied_unlogged_) + " more refused before)").c_str()
                  : "");
          last_denied_log_ms_ = now_ms;
          denied_unlogged_ = 0;
        } else {
          ++denied_unlogged_;
        }
        refuse(fd, "error: permission denied\n");
        continue;
      }
    }
    Session* free = nullptr;
    uint32_t tcp_sessions = 0;
    for (uint32_t k = 0; k < kAdminMaxSessions; ++k) {
      if (sessions_[k].fd >= 0 && sessions_[k].tcp) ++tcp_sessions;
      if (free == nullptr && sessions_[k].fd < 0 && !sessions_[k].freed_this_batch) {
        free = &sessions_[k];
      }
    }
    // TCP peers (anyone who can reach the port, token or not) never take the last slot: the Unix
    // socket, checked by credentials, always has one left.
    if (free == nullptr || (tcp && tcp_sessions + 1 >= kAdminMaxSessions)) {
      stats_.refused.fetch_add(1, std::memory_order_relaxed);
      refuse(fd, "error: too many admin sessions\n");
      continue;
    }
    Session& s = *free;
    s = Session{};
    s.fd = fd;
    s.tcp = tcp;
    s.authenticated = !tcp;
    s.active_ms = now_ms;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kSessionTag + static_cast<uint64_t>(&s - sessions_.get());
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      sys::close(fd);
      s.fd = -1;
      continue;
    }
    s.reading = true;
    stats_.sessions.fetch_add(1, std::memory_order_relaxed);
    if (!tcp) stats_.accepted.fetch_add(1, std::memory_order_relaxed);
  }
}

void AdminServer::close_session(Session& s) noexcept {
  if (s.fd < 0) return;
  sys::close(s.fd);  // also leaves the epoll set
  s = Session{};
  s.freed_this_batch = true;
  stats_.sessions.fetch_sub(1, std::memory_order_relaxed);
}

void AdminServer::deny_token(Session& s) noexcept {
  stats_.denied.fetch_add(1, std::memory_order_relaxed);
  // The log throttle of refused Unix peers: one line a second at most.
  const int64_t now_ms = LoopTime::now().ms;
  if (last_denied_log_ms_ == INT64_MIN || now_ms - last_denied_log_ms_ >= 1000) {
    log_warn("admin socket: TCP session refused: wrong or missing token");
    last_denied_log_ms_ = now_ms;
  } else {
    ++denied_unlogged_;
  }
  say_last(s.fd, "error: permission denied\n");
  close_session(s);
}

void AdminServer::on_readable(Session& s, int64_t now_ms) noexcept {
  if (s.pending() >= kAdminPauseBytes) return;  // reading resumes once the answers left
  char chunk[kReadChunk];
  const SysResult r = sys::read(s.fd, chunk, sizeof chunk);
  if (r.would_block()) return;
  if (!r.ok()) {
    close_session(s);  // reset: answers it did not read are dropped with the session
    return;
  }
  if (r.value == 0) {
    // `printf 'show stats\n' | nc -U ...` shuts its write side and waits for the answer.
    s.peer_done = true;
    if (s.pending() == 0) {
      close_session(s);
    } else {
      update_interest(s);
    }
    return;
  }
  s.in.append(chunk, static_cast<size_t>(r.value));
  process_lines(s, now_ms);
}

void AdminServer::process_lines(Session& s, int64_t now_ms) noexcept {
  // Iterative, never recursive through flush(): answering can free room for more answers.
  for (;;) {
    answer_lines(s, now_ms);
    if (s.fd < 0) return;
    flush(s, now_ms);
    if (s.fd < 0 || s.pending() >= kAdminPauseBytes || s.in.find('\n') == std::string::npos) {
      return;
    }
  }
}

void AdminServer::answer_lines(Session& s, int64_t now_ms) noexcept {
  while (s.fd >= 0 && s.pending() < kAdminPauseBytes) {
    const size_t nl = s.in.find('\n');
    if (nl == std::string::npos) {
      if (!s.authenticated) {
        if (s.in.size() > kMaxTokenBytes + 1) deny_token(s);
        return;
      }
      if (s.in.size() > kAdminMaxLine + 1) {
        // Too long to be a command: refuse it once and skip up to its end.
        if (!s.discarding) {
          s.out += "error: line too long\n\n";
          stats_.commands.fetch_add(1, std::memory_order_relaxed);
          stats_.command_errors.fetch_add(1, std::memory_order_relaxed);
        }
        s.discarding = true;
        s.in.clear();
      }
      break;
    }
    const std::string line = s.in.substr(0, nl);
    s.in.erase(0, nl + 1);
    if (s.discarding) {
      s.discarding = false;
      continue;
    }
    s.active_ms = now_ms;
    if (!s.authenticated) {
      // Both sides hashed first: the comparison takes the same time whatever the lengths.
      std::string_view given = line;
      if (!given.empty() && given.back() == '\r') given.remove_suffix(1);
      const Sha256Digest a = sha256(given);
      const Sha256Digest b = sha256(token_);
      if (!constant_time_equal(a.data(), b.data(), a.size())) {
        deny_token(s);
        return;
      }
      s.authenticated = true;
      stats_.accepted.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    s.out += execute(line);
    if (s.pending() > kAdminMaxPendingBytes) {
      stats_.slow_closed.fetch_add(1, std::memory_order_relaxed);
      close_session(s);
      return;
    }
  }
}

void AdminServer::flush(Session& s, int64_t now_ms) noexcept {
  const size_t before = s.pending();
  while (s.pending() > 0) {
    const SysResult r = sys::send(s.fd, s.out.data() + s.sent, s.pending());
    if (r.would_block()) break;
    if (!r.ok()) {
      close_session(s);
      return;
    }
    s.sent += static_cast<size_t>(r.value);
  }
  if (s.sent >= kAdminPauseBytes) {
    // A reader that keeps up slowly: what it read is let go, so `out` stays near the bound.
    s.out.erase(0, s.sent);
    s.sent = 0;
  }
  if (s.pending() == 0) {
    s.out.clear();
    s.sent = 0;
    s.stalled_ms = 0;
    if (s.peer_done && s.in.find('\n') == std::string::npos) {
      close_session(s);  // everything it asked is answered
      return;
    }
  } else if (s.pending() < before || s.stalled_ms == 0) {
    s.stalled_ms = now_ms;  // moved (or began waiting): the drain deadline starts again
  }
  if (s.pending() < before) s.active_ms = now_ms;
  update_interest(s);
}

void AdminServer::update_interest(Session& s) noexcept {
  const bool want_out = s.pending() > 0;
  const bool want_in = !s.peer_done && s.pending() < kAdminPauseBytes;
  if (want_out == s.writing && want_in == s.reading) return;
  epoll_event ev{};
  ev.events = (want_in ? EPOLLIN : 0u) | (want_out ? EPOLLOUT : 0u);
  ev.data.u64 = kSessionTag + static_cast<uint64_t>(&s - sessions_.get());
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, s.fd, &ev) != 0) {
    close_session(s);
    return;
  }
  s.writing = want_out;
  s.reading = want_in;
}

void AdminServer::check_timers(int64_t now_ms) noexcept {
  for (uint32_t k = 0; k < kAdminMaxSessions; ++k) {
    Session& s = sessions_[k];
    if (s.fd < 0) continue;
    if (!s.authenticated && now_ms - s.active_ms >= kAdminTokenMs) {
      deny_token(s);
    } else if (s.pending() > 0 && s.stalled_ms != 0 && now_ms - s.stalled_ms >= kAdminDrainMs) {
      stats_.slow_closed.fetch_add(1, std::memory_order_relaxed);
      log_warn("admin socket: session closed: %zu answer bytes not read within %lld ms",
               s.pending(), static_cast<long long>(kAdminDrainMs));
      close_session(s);
    } else if (s.pending() == 0 && now_ms - s.active_ms >= kAdminIdleMs) {
      stats_.idle_closed.fetch_add(1, std::memory_order_relaxed);
      close_session(s);
    }
  }
}

std::string AdminServer::info_text() {
  const std::shared_ptr<const Topology> t = supervisor_.topology();
  const Config& g = t->global;
  const StatsSnapshot snap = supervisor_.snapshot();
  std::string out;
  out += std::string("version ") + EDGEPROXY_VERSION + "\n";
  out += std::string("backend ") + Reactor::kName + "\n";
  out += fixed("pid %llu\n", static_cast<unsigned long long>(getpid()));
  out += fixed("uptime_s %llu\n", static_cast<unsigned long long>(snap.uptime_ms / 1000));
  out += fixed("workers %llu\n", supervisor_.workers());
  out += fixed("max_connections %llu\n", g.max_connections);
  out += fixed("buffers %llu\n", g.buffer_count());
  out += fixed("buffer_bytes %llu\n", kBufferBytes);
  out += std::string("splice ") + to_string(g.splice) + "\n";
  out += fixed("shutdown_timeout_s %llu\n", g.shutdown_timeout_s);
  out += fixed("active %llu\n", snap.total.active);
  out += fixed("epoch %llu\n", t->epoch);
  out += "source " + t->source + "\n";
  out += fixed("reloads %llu\n", snap.reloads);
  out += fixed("reload_failures %llu\n", snap.reload_failures);
  out += fixed("listeners %llu\n", t->listeners.size());
  out += fixed("backends %llu\n", t->backends.size());
  out += fixed("servers %llu\n", t->server_count());
  out += "admin " + where_ + "\n";
#define EDGEPROXY_ADMIN_INFO(name) out += fixed("admin." #name " %llu\n", snap.admin.name);
  EDGEPROXY_ADMIN_STATS(EDGEPROXY_ADMIN_INFO, EDGEPROXY_ADMIN_INFO)
#undef EDGEPROXY_ADMIN_INFO
  return out;
}

namespace {

std::string object_line(const ObjectStats& s) {
  std::string out;
#define EDGEPROXY_ADMIN_OBJECT(name) \
  out += " " #name " " + std::to_string(s.name.load(std::memory_order_relaxed));
  EDGEPROXY_OBJECT_STATS(EDGEPROXY_ADMIN_OBJECT, EDGEPROXY_ADMIN_OBJECT)
#undef EDGEPROXY_ADMIN_OBJECT
  return out;
}

const ServerSpec* find_server(const Topology& t, const std::string& backend,
                              const std::string& server, std::string& error) {
  for (const BackendSpec& b : t.backends) {
    if (b.name != backend) continue;
    for (const ServerSpec& sv : b.servers) {
      if (sv.name == server) return &sv;
    }
    error = "error: no server " + server + " in backend " + backend + "\n\n";
    return nullptr;
  }
  error = "error: no backend " + backend + "\n\n";
  return nullptr;
}

}  // namespace

std::string AdminServer::execute(std::string_view line) {
  stats_.commands.fetch_add(1, std::memory_order_relaxed);
  auto parsed = parse_admin_command(line);
  auto fail = [&](const std::string& why) {
    stats_.command_errors.fetch_add(1, std::memory_order_relaxed);
    return "error: " + why + "\n\n";
  };
  if (!parsed.ok()) return fail(parsed.error());
  const AdminCommand& c = parsed.value();
  using K = AdminCommand::Kind;
  switch (c.kind) {
    case K::kHelp:
      return admin_help() + "\n";
    case K::kShowInfo:
      return info_text() + "\n";
    case K::kShowStats:
      if (c.json) return render_stats_json(supervisor_.snapshot()) + "\n\n";
      return supervisor_.stats_text() + "\n";
    case K::kShowListeners: {
      const auto t = supervisor_.topology();
      std::string out;
      for (const ListenerSpec& ls : t->listeners) {
        out += ls.name + " mode " + to_string(ls.mode);
        out += " binds ";
        for (size_t i = 0; i < ls.binds.size(); ++i) {
          out += (i > 0 ? "," : "") + ls.binds[i].to_string();
        }
        out += " backend ";
        out += ls.backend < t->backends.size() ? t->backends[ls.backend].name : "-";
        out += object_line(ls.runtime->stats) + "\n";
      }
      return out + "\n";
    }
    case K::kShowBackends: {
      const auto t = supervisor_.topology();
      std::string out;
      for (const BackendSpec& b : t->backends) {
        size_t up = 0;
        for (const ServerSpec& sv : b.servers) up += sv.runtime->up.load(std::memory_order_relaxed);
        out += b.name + " balance " + to_string(b.balance) + " servers " +
               std::to_string(b.servers.size()) + " up " + std::to_string(up) +
               object_line(b.runtime->stats) + "\n";
      }
      return out + "\n";
    }
    case K::kShowServers: {
      const auto t = supervisor_.topology();
      std::string out;
      bool found = c.backend.empty();
      for (const BackendSpec& b : t->backends) {
        if (!c.backend.empty() && b.name != c.backend) continue;
        found = true;
        for (const ServerSpec& sv : b.servers) {
          const ServerRuntime& r = *sv.runtime;
          const uint32_t set = r.weight.load(std::memory_order_relaxed);
          out += b.name + "/" + sv.name + " " + sv.endpoint.to_string() + " " +
                 (r.up.load(std::memory_order_relaxed) ? "up" : "down") + " " +
                 (r.drained.load(std::memory_order_relaxed) ? "drained" : "enabled") + " weight " +
                 std::to_string(set != 0 ? set : sv.weight) + " configured_weight " +
                 std::to_string(sv.weight) + (sv.backup ? " backup" : "") + object_line(r.stats) +
                 "\n";
        }
      }
      if (!found) return fail("no backend " + c.backend);
      return out + "\n";
    }
    case K::kShowConns: {
      const AdminAnswer a = supervisor_.list_connections(c.count);
      std::string out = "# " + std::to_string(a.open) + " open, " +
                        std::to_string(a.connections.size()) +
                        " shown: id client listener server state bytes_in bytes_out age_ms\n";
      for (const ConnectionInfo& ci : a.connections) {
        out += ci.id + " " + ci.client + " " + ci.listener + " " + ci.server + " " + ci.state +
               " " + std::to_string(ci.bytes_c2u) + " " + std::to_string(ci.bytes_u2c) + " " +
               std::to_string(ci.age_ms) + "\n";
      }
      return out + "\n";
    }
    case K::kDisableServer:
    case K::kEnableServer: {
      const auto t = supervisor_.topology();
      std::string error;
      const ServerSpec* sv = find_server(*t, c.backend, c.server, error);
      if (sv == nullptr) {
        stats_.command_errors.fetch_add(1, std::memory_order_relaxed);
        return error;
      }
      const bool drain = c.kind == K::kDisableServer;
      // Balancers read the flag at every pick: the next new connection already sees it.
      sv->runtime->drained.store(drain, std::memory_order_relaxed);
      log_info("admin socket: server %s/%s %s", c.backend.c_str(), c.server.c_str(),
               drain ? "disabled (draining)" : "enabled");
      return "ok\n\n";
    }
    case K::kSetWeight:
    case K::kReload:
    case K::kShutdown: {
      SupervisorRequest r;
      r.kind = c.kind == K::kSetWeight ? SupervisorRequest::Kind::kSetWeight
               : c.kind == K::kReload  ? SupervisorRequest::Kind::kReload
               : c.fast                ? SupervisorRequest::Kind::kShutdownFast
                                       : SupervisorRequest::Kind::kShutdownGraceful;
      r.backend = c.backend;
      r.server = c.server;
      r.weight = c.count;
      const std::string error = supervisor_.request(r);
      if (!error.empty()) return fail(error);
      return "ok\n\n";
    }
    case K::kKillConn: {
      const std::string error = supervisor_.kill_connection(c.worker, c.slot, c.generation);
      if (!error.empty()) return fail(error);
      return "ok\n\n";
    }
  }
  return fail("unknown command");
}

}  // namespace edgeproxy
