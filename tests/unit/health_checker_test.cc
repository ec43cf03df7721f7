// HealthChecker against real loopback servers: up, down after fall, back after rise,
// send/expect, timeouts, one check in flight per server, reloads, passive revival and
// descriptors. Waits are bounded polling loops; nothing asserts on how long a step took.
#include "edgeproxy/health_checker.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "edgeproxy/clock.h"
#include "edgeproxy/server_health.h"
#include "open_fds.h"

namespace edgeproxy {
namespace {

template <class Pred>
bool wait_until(Pred pred, int timeout_ms = 5000) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

int listen_on(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 16) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

uint16_t port_of(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// A port nothing listens on (refused at once on loopback).
uint16_t closed_port() {
  const int fd = listen_on(0);
  const uint16_t port = port_of(fd);
  ::close(fd);
  return port;
}

// A loopback server on its own thread. Every connection is accepted; `reply` (if any) is sent
// once the client's first bytes arrive, then the connection is closed if `close_after_reply`.
// It counts connections accepted and the most open at once (checks end with a reset, which is
// seen before the next connection is accepted, so "open" is exact on loopback).
class TestServer {
 public:
  explicit TestServer(std::string reply = "", bool close_after_reply = false, uint16_t port = 0)
      : reply_(std::move(reply)), close_after_reply_(close_after_reply) {
    listen_fd_ = listen_on(port);
    port_ = port_of(listen_fd_);
    thread_ = std::thread([this] { run(); });
  }
  // The same, on a listening socket of any family it takes over.
  static std::unique_ptr<TestServer> on(int listen_fd) {
    return std::unique_ptr<TestServer>(new TestServer(listen_fd));
  }
  ~TestServer() {
    stop_.store(true);
    thread_.join();
    for (const Conn& c : conns_) ::close(c.fd);
    ::close(listen_fd_);
  }

  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  int open() const { return open_.load(); }
  int max_open() const { return max_open_.load(); }
  std::string first_request() {
    std::lock_guard lock(mutex_);
    return first_request_;
  }

 private:
  explicit TestServer(int listen_fd) : close_after_reply_(false), listen_fd_(listen_fd) {
    thread_ = std::thread([this] { run(); });
  }

  struct Conn {
    int fd;
    bool answered;
  };

  // Reads what is there; false when the connection ended (EOF, reset) or was closed here.
  bool serve(Conn& c) {
    char buffer[256];
    const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n <= 0) return false;
    {
      std::lock_guard lock(mutex_);
      if (first_request_.empty()) first_request_.assign(buffer, static_cast<size_t>(n));
    }
    if (reply_.empty() || c.answered) return true;
    c.answered = true;
    ::send(c.fd, reply_.data(), reply_.size(), MSG_NOSIGNAL);
    return !close_after_reply_;
  }

  void prune(int timeout_ms) {
    std::vector<pollfd> fds;
    for (const Conn& c : conns_) fds.push_back(pollfd{c.fd, POLLIN, 0});
    if (fds.empty() || poll(fds.data(), fds.size(), timeout_ms) <= 0) return;
    std::vector<Conn> kept;
    for (size_t i = 0; i < conns_.size(); ++i) {
      if (fds[i].revents == 0 || serve(conns_[i])) {
        kept.push_back(conns_[i]);
      } else {
        ::close(conns_[i].fd);
      }
    }
    conns_ = kept;
    open_.store(static_cast<int>(conns_.size()));
  }

  void run() {
    while (!stop_.load()) {
      pollfd l{listen_fd_, POLLIN, 0};
      if (conns_.empty()) {
        poll(&l, 1, 10);
      } else {
        prune(10);
        poll(&l, 1, 0);
      }
      if ((l.revents & POLLIN) == 0) continue;
      prune(0);
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      conns_.push_back(Conn{fd, false});
      open_.store(static_cast<int>(conns_.size()));
      max_open_.store(std::max(max_open_.load(), open_.load()));
      accepted_.fetch_add(1);
    }
  }

  std::string reply_;
  bool close_after_reply_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<Conn> conns_;  // the server thread's
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> open_{0};
  std::atomic<int> max_open_{0};
  std::mutex mutex_;
  std::string first_request_;
  std::thread thread_;
};

HealthCheck fast_check(uint32_t fall = 2, uint32_t rise = 2) {
  HealthCheck c;
  c.enabled = true;
  c.interval_ms = 20;
  c.timeout_ms = 500;
  c.fall = fall;
  c.rise = rise;
  return c;
}

ServerSpec server_at(const std::string& name, uint16_t port) {
  ServerSpec s;
  s.name = name;
  s.endpoint.host = "127.0.0.1";
  s.endpoint.port = port;
  auto address = resolve("127.0.0.1", port, "test");
  EXPECT_TRUE(address.ok());
  s.addresses.push_back(address.value());
  s.runtime = std::make_shared<ServerRuntime>();
  return s;
}

std::shared_ptr<const Topology> topology_of(const HealthCheck& check,
                                            std::vector<ServerSpec> servers) {
  auto t = std::make_shared<Topology>();
  BackendSpec b;
  b.name = "app";
  b.check = check;
  b.servers = std::move(servers);
  t->backends.push_back(std::move(b));
  return t;
}

std::unique_ptr<HealthChecker> start_checker(std::shared_ptr<const Topology> t) {
  auto checker = HealthChecker::start(std::move(t));
  EXPECT_TRUE(checker.ok()) << checker.error();
  return checker.ok() ? std::move(checker.value()) : nullptr;
}

HealthCheck send_expect(uint32_t fall, std::string send, std::string expect) {
  HealthCheck c = fast_check(fall);
  c.send = std::move(send);
  c.expect = std::move(expect);
  return c;
}

// Checks `server` alone with `check`; true once the checks took it down.
bool checked_down(const TestServer& server, const HealthCheck& check) {
  auto t = topology_of(check, {server_at("a", server.port())});
  auto checker = start_checker(t);
  return wait_until([&] { return !t->backends[0].servers[0].runtime->up.load(); });
}

TEST(HealthCheckerTest, ListeningServerStaysUp) {
  TestServer server;
  auto t = topology_of(fast_check(1), {server_at("a", server.port())});
  const ServerRuntime& rt = *t->backends[0].servers[0].runtime;
  auto checker = start_checker(t);
  ASSERT_TRUE(wait_until([&] { return server.accepted() >= 5; }));
  EXPECT_TRUE(rt.up.load());
  EXPECT_EQ(rt.stats.downs.load(), 0u);
}

TEST(HealthCheckerTest, ClosedPortGoesDownAfterFallAndLogsIt) {
  auto t = topology_of(fast_check(3), {server_at("a", closed_port())});
  const ServerRuntime& rt = *t->backends[0].servers[0].runtime;
  testing::internal::CaptureStderr();
  auto checker = start_checker(t);
  const bool down = wait_until([&] { return !rt.up.load(); });
  checker.reset();
  const std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(down);
  EXPECT_EQ(rt.stats.downs.load(), 1u);
  const std::string address = t->backends[0].servers[0].addresses.front().to_string();
  EXPECT_NE(log.find("server app/a (" + address +
                     ") is DOWN (connect: Connection refused), 0 of 1 up: backend app has no "
                     "server left"),
            std::string::npos)
      << log;
}

TEST(HealthCheckerTest, ComesBackAfterRiseWhenThePortListensAgain) {
  const uint16_t port = closed_port();
  auto t = topology_of(fast_check(2, 3), {server_at("a", port)});
  const ServerRuntime& rt = *t->backends[0].servers[0].runtime;
  auto checker = start_checker(t);
  ASSERT_TRUE(wait_until([&] { return !rt.up.load(); }));
  TestServer server("", false, port);
  ASSERT_TRUE(wait_until([&] { return rt.up.load(); }));
  // The kernel completes a check's connect before the server thread accepts it.
  EXPECT_TRUE(wait_until([&] { return server.accepted() >= 3; }));
  EXPECT_EQ(rt.stats.downs.load(), 1u);
  EXPECT_EQ(rt.successes.load(), 0u);
}

TEST(HealthCheckerTest, SendExpectMatchKeepsItUp) {
  TestServer server("OK 200\r\n");
  auto t = topology_of(send_expect(1, "PING\r\n", "OK"), {server_at("a", server.port())});
  const ServerRuntime& rt = *t->backends[0].servers[0].runtime;
  auto checker = start_checker(t);
  ASSERT_TRUE(wait_until([&] { return server.accepted() >= 5; }));
  EXPECT_TRUE(rt.up.load());
  EXPECT_EQ(rt.stats.downs.load(), 0u);
  EXPECT_EQ(server.first_request(), "PING\r\n");
}

TEST(HealthCheckerTest, SendExpectMismatchTakesItDown) {
  TestServer server("ERR\r\n");
  EXPECT_TRUE(checked_down(server, send_expect(2, "PING\r\n", "OK")));
}

TEST(HealthCheckerTest, EndOfStreamBeforeTheExpectedBytesIsAFailure) {
  TestServer server("OK", /*close_after_reply=*/true);
  EXPECT_TRUE(checked_down(server, send_expect(2, "PING\r\n", "OKAY")));
}

TEST(HealthCheckerTest, ServerThatNeverAnswersFailsByTimeout) {
  TestServer server;  // accepts, never writes
  HealthCheck c = send_expect(2, "", "OK");
  c.timeout_ms = 40;
  EXPECT_TRUE(checked_down(server, c));
  EXPECT_TRUE(wait_until([&] { return server.accepted() >= 2; }));
}

TEST(HealthCheckerTest, NeverMoreThanOneCheckInFlightPerServer) {
  TestServer server;  // accepts, never answers: every check runs to its timeout
  HealthCheck c = fast_check(1000);
  c.interval_ms = 5;
  c.timeout_ms = 60;
  c.expect = "OK";
  auto t = topology_of(c, {server_at("a", server.port())});
  auto checker = start_checker(t);
  ASSERT_TRUE(wait_until([&] { return server.accepted() >= 4; }));
  EXPECT_EQ(server.max_open(), 1);
}

TEST(HealthCheckerTest, UpdateAbandonsRemovedServersAndChecksAddedOnes) {
  TestServer a;
  TestServer b;  // never answers: its check is in flight when it is removed
  HealthCheck c = fast_check(1);
  c.timeout_ms = 60'000;
  c.expect = "";
  ServerSpec spec_a = server_at("a", a.port());
  ServerSpec spec_b = server_at("b", b.port());
  HealthCheck slow = c;
  slow.expect = "OK";
  auto t1 = std::make_shared<Topology>();
  BackendSpec app;
  app.name = "app";
  app.check = c;
  app.servers = {spec_a};
  BackendSpec other;
  other.name = "other";
  other.check = slow;
  other.servers = {spec_b};
  t1->backends = {app, other};
  auto checker = start_checker(t1);
  ASSERT_TRUE(wait_until([&] { return a.accepted() >= 2 && b.open() == 1; }));

  ServerSpec spec_c = server_at("c", closed_port());
  auto t2 = topology_of(c, {spec_a, spec_c});
  checker->update(t2);
  ASSERT_TRUE(wait_until([&] { return !spec_c.runtime->up.load(); }));
  EXPECT_TRUE(wait_until([&] { return b.open() == 0; }));  // abandoned: reset, not timed out
  EXPECT_EQ(b.accepted(), 1);
  EXPECT_TRUE(spec_b.runtime->up.load());
  EXPECT_EQ(spec_b.runtime->failures.load(), 0u);
  const int seen = a.accepted();
  EXPECT_TRUE(wait_until([&] { return a.accepted() >= seen + 2; }));
  EXPECT_TRUE(spec_a.runtime->up.load());
}

TEST(HealthCheckerTest, UpdateKeepsTheCheckInFlightOfAKeptServer) {
  TestServer a;  // never answers
  TestServer d;  // never answers
  HealthCheck c = fast_check(1);
  c.timeout_ms = 60'000;
  c.expect = "OK";
  ServerSpec spec_a = server_at("a", a.port());
  auto checker = start_checker(topology_of(c, {spec_a}));
  ASSERT_TRUE(wait_until([&] { return a.open() == 1; }));
  // A new version: another object, the same server (same runtime), plus one more.
  checker->update(topology_of(c, {server_at("d", d.port()), spec_a}));
  ASSERT_TRUE(wait_until([&] { return d.open() == 1; }));
  EXPECT_EQ(a.open(), 1);
  EXPECT_EQ(a.accepted(), 1);
}

SocketAddress unix_address(const std::string& path) {
  SocketAddress a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage);
  un->sun_family = AF_UNIX;
  std::snprintf(un->sun_path, sizeof un->sun_path, "%s", path.c_str());
  a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return a;
}

TEST(HealthCheckerTest, UnixServersAreChecked) {
  const std::string path = "/tmp/edgeproxy-hc-test-" + std::to_string(getpid()) + ".sock";
  ::unlink(path.c_str());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const SocketAddress listening = unix_address(path);
  ASSERT_EQ(bind(fd, listening.get(), listening.length), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  auto server = TestServer::on(fd);
  ServerSpec up = server_at("up", 1);
  up.addresses = {listening};
  ServerSpec missing = server_at("missing", 1);
  missing.addresses = {unix_address(path + ".missing")};
  auto checker = start_checker(topology_of(fast_check(1), {up, missing}));
  ASSERT_TRUE(wait_until([&] { return server->accepted() >= 3; }));
  EXPECT_TRUE(up.runtime->up.load());
  EXPECT_TRUE(wait_until([&] { return !missing.runtime->up.load(); }));
  checker.reset();
  server.reset();
  ::unlink(path.c_str());
}

TEST(HealthCheckerTest, PassivelyDownedServerWithoutChecksIsRevived) {
  HealthCheck c;
  c.enabled = false;
  c.interval_ms = 30;
  c.fall = 2;
  auto t = topology_of(c, {server_at("a", closed_port()), server_at("b", closed_port())});
  ServerRuntime& rt = *t->backends[0].servers[0].runtime;
  auto checker = start_checker(t);
  const int64_t now = LoopTime::now().ms;
  ASSERT_FALSE(on_connect_failure(rt, c, now));
  ASSERT_TRUE(on_connect_failure(rt, c, now));
  const int64_t retry_at = rt.retry_at_ms.load();
  ASSERT_TRUE(wait_until([&] { return rt.up.load(); }));
  EXPECT_GE(LoopTime::now().ms, retry_at);
  EXPECT_EQ(rt.failures.load(), 1u);
  EXPECT_TRUE(t->backends[0].servers[1].runtime->up.load());
}

// Highest open descriptor number, for a limit that refuses every new one.
int highest_fd() {
  int highest = 0;
  DIR* d = opendir("/proc/self/fd");
  while (const dirent* e = readdir(d)) highest = std::max(highest, std::atoi(e->d_name));
  closedir(d);
  return highest;
}

TEST(HealthCheckerTest, DescriptorExhaustionIsNeitherSuccessNorFailure) {
  auto checker = start_checker(nullptr);
  auto t = topology_of(fast_check(1), {server_at("a", closed_port())});
  const ServerRuntime& rt = *t->backends[0].servers[0].runtime;
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(highest_fd() + 1);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  // Descriptors are numbered lowest free first: fill the gaps below the limit too.
  std::vector<int> fillers;
  for (int fd = dup(0); fd >= 0; fd = dup(0)) fillers.push_back(fd);
  checker->update(t);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // ~10 intervals, all skipped
  const bool up_while_exhausted = rt.up.load();
  const uint32_t failures_while_exhausted = rt.failures.load();
  for (const int fd : fillers) ::close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_TRUE(up_while_exhausted);
  EXPECT_EQ(failures_while_exhausted, 0u);
  EXPECT_TRUE(wait_until([&] { return !rt.up.load(); }));  // the checks did run, and do now
}

TEST(HealthCheckerTest, DestructionWithChecksInFlightClosesEverything) {
  TestServer server;  // never answers
  HealthCheck c = fast_check(1);
  c.timeout_ms = 60'000;
  c.expect = "OK";
  auto t = topology_of(c, {server_at("a", server.port()), server_at("b", closed_port())});
  const int before = OpenFds();
  auto checker = start_checker(t);
  ASSERT_TRUE(wait_until([&] { return server.open() == 1; }));
  checker.reset();
  ASSERT_TRUE(wait_until([&] { return server.open() == 0; }));  // the server closed its side
  EXPECT_EQ(OpenFds(), before);
}

TEST(HealthCheckerTest, EmptyAndNullTopologiesNeedNoThreadWork) {
  auto checker = start_checker(std::make_shared<Topology>());
  checker->update(nullptr);
  checker->update(std::make_shared<Topology>());
  checker.reset();
  SUCCEED();
}

}  // namespace
}  // namespace edgeproxy
