// AdminServer: the admin socket (docs/admin.md, decision 0012). Its own thread,
// `edgeproxy-admin`, runs a small epoll loop over a Unix socket (peers checked with SO_PEERCRED)
// and optionally a TCP socket (each session starts with a token), at most kAdminMaxSessions
// sessions, each with bounded output. Commands read figures through Supervisor::snapshot() and
// change things through the supervisor's own loop (Supervisor::request()); nothing here touches
// a worker's data.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/admin_stats.h"
#include "edgeproxy/config.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

class Supervisor;

inline constexpr uint32_t kAdminMaxSessions = 4;
// Answer bytes a session may have pending: above kAdminPauseBytes no further command of the
// session is read; above kAdminMaxPendingBytes the session is closed.
inline constexpr size_t kAdminPauseBytes = 64 * 1024;
inline constexpr size_t kAdminMaxPendingBytes = 1024 * 1024;
// A session whose pending answer has not moved for this long is closed (a reader that does not
// read), and one without input or output for kAdminIdleMs too.
inline constexpr int64_t kAdminDrainMs = 5'000;
inline constexpr int64_t kAdminIdleMs = 300'000;
// A TCP session must send its token within this long: unauthenticated peers cannot hold the
// few session slots.
inline constexpr int64_t kAdminTokenMs = 10'000;

// Who may use the Unix socket: uids, and gids (primary or supplementary) of the peer.
struct AdminAccess {
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;
};

// Resolves admin-users / admin-groups (names or numeric ids); both empty: root and `self`.
// Error: one line naming the unknown user or group.
Result<AdminAccess> resolve_admin_access(const AdminConfig& config, uid_t self);
// Whether a peer with these credentials is allowed (its supplementary groups are looked up).
bool admin_peer_allowed(const AdminAccess& access, uid_t uid, gid_t gid);

class AdminServer {
 public:
  // Opens the sockets `config` names (the Unix one chmod'ed and chown'ed, a stale file of a dead
  // process replaced), reads the token file, and starts the thread. `supervisor` must outlive
  // the server. Error: one line, and nothing is left open.
  static Result<std::unique_ptr<AdminServer>> start(const AdminConfig& config,
                                                    Supervisor& supervisor);
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;
  // Stops the thread (pending answers get one last non-blocking write); counters() stay
  // readable. Idempotent; the owner's thread only.
  void stop() noexcept;
  // Stops, closes every socket and removes the Unix socket file.
  ~AdminServer();

  // Any thread.
  AdminCounters counters() const noexcept;
  // "unix:/run/edgeproxy/admin.sock, 127.0.0.1:9999": where it listens.
  const std::string& describe() const noexcept { return where_; }

 private:
  struct Session;
  struct Atomics {
#define EDGEPROXY_ADMIN_ATOMIC(name) std::atomic<uint64_t> name{0};
    EDGEPROXY_ADMIN_STATS(EDGEPROXY_ADMIN_ATOMIC, EDGEPROXY_ADMIN_ATOMIC)
#undef EDGEPROXY_ADMIN_ATOMIC
  };

  explicit AdminServer(Supervisor& supervisor) noexcept;
  static void* thread_main(void* arg) noexcept;
  void loop() noexcept;
  void on_accept(int listen_fd, bool tcp, int64_t now_ms) noexcept;
  void on_readable(Session& s, int64_t now_ms) noexcept;
  // Answers the complete lines of `s` and writes, while its answers are below kAdminPauseBytes.
  void process_lines(Session& s, int64_t now_ms) noexcept;
  void answer_lines(Session& s, int64_t now_ms) noexcept;
  void flush(Session& s, int64_t now_ms) noexcept;
  void update_interest(Session& s) noexcept;
  void close_session(Session& s) noexcept;
  // A TCP session without the right token: one line, counted, logged, closed.
  void deny_token(Session& s) noexcept;
  void check_timers(int64_t now_ms) noexcept;
  // The answer to one line, ending with the empty line.
  std::string execute(std::string_view line);
  std::string info_text();
  // Sends `line` as the session's last words (the write side is shut) and drops unread input.
  static void say_last(int fd, std::string_view line) noexcept;
  // Refuses a connection with one line and closes it.
  static void refuse(int fd, const char* line) noexcept;

  Supervisor& supervisor_;
  AdminAccess access_;
  std::string token_;
  std::string where_;
  std::string unix_path_;  // the file to remove at the end ("" = none)
  int unix_fd_ = -1;
  int tcp_fd_ = -1;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;
  pthread_t thread_{};
  bool joinable_ = false;
  std::unique_ptr<Session[]> sessions_;
  Atomics stats_;
  int64_t last_denied_log_ms_ = INT64_MIN;
  uint64_t denied_unlogged_ = 0;
};

}  // namespace edgeproxy
