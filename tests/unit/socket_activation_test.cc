// Socket activation: real sockets placed (dup2) at an injected descriptor base stand in for the
// ones systemd passes from fd 3, with the environment given as values; the process's own fds 3..
// are never touched. Then the pure matcher of sockets to listener binds.
#include "edgeproxy/socket_activation.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace edgeproxy {
namespace {

// Far above anything the test binary opens itself.
constexpr int kBase = 900;

SocketAddress Ipv4(const char* ip, uint16_t port) {
  SocketAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  EXPECT_EQ(inet_pton(AF_INET, ip, &in->sin_addr), 1);
  a.length = sizeof(sockaddr_in);
  return a;
}

// `with_nul`: whether the length counts the path's terminating NUL (getsockname's does).
SocketAddress Unix(const std::string& path, bool with_nul) {
  SocketAddress a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage);
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());
  if (!path.empty() && path[0] == '@') un->sun_path[0] = '\0';
  a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                    (with_nul && path[0] != '@' ? 1 : 0));
  return a;
}

SocketAddress BoundAddress(int fd) {
  SocketAddress a;
  a.length = sizeof a.storage;
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a.storage), &a.length), 0);
  return a;
}

// Places descriptors at kBase, kBase + 1, ... as a launcher would place them at 3, 4, ...,
// blocking and without FD_CLOEXEC (what a launcher passes), and closes them all at the end.
class Passed {
 public:
  ~Passed() {
    for (int i = 0; i < count_; ++i) close(kBase + i);
  }
  // Takes `fd` (closed here once placed).
  int add(int fd) {
    const int at = kBase + count_;
    EXPECT_EQ(fcntl(at, F_GETFD), -1) << "fd " << at << " is in use in the test binary";
    EXPECT_EQ(dup2(fd, at), at) << std::strerror(errno);
    close(fd);
    ++count_;
    return at;
  }
  // A blocking TCP socket listening on 127.0.0.1, any port.
  int add_tcp_listener() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    SocketAddress any = Ipv4("127.0.0.1", 0);
    EXPECT_EQ(bind(fd, any.get(), any.length), 0) << std::strerror(errno);
    EXPECT_EQ(listen(fd, 8), 0);
    return add(fd);
  }
  int count() const { return count_; }

 private:
  int count_ = 0;
};

ActivationEnvironment Env(const std::string& pid, const std::string& fds, const char* names) {
  // The strings live as long as the test binary (a deque never moves its elements).
  static std::deque<std::string>* kept = new std::deque<std::string>();
  kept->push_back(pid);
  const char* p = kept->back().c_str();
  kept->push_back(fds);
  return ActivationEnvironment{p, kept->back().c_str(), names};
}

std::string Self() {
  return std::to_string(getpid());
}

TEST(SocketActivationTest, TakesNamedListeningSocketsNonBlockingAndCloseOnExec) {
  Passed passed;
  const int web = passed.add_tcp_listener();
  const int admin = passed.add_tcp_listener();
  auto r = take_activated_sockets_from(Env(Self(), "2", "web:admin"), getpid(), kBase);
  ASSERT_TRUE(r.ok()) << r.error();
  const auto& sockets = r.value();
  ASSERT_EQ(sockets.size(), 2u);
  EXPECT_EQ(sockets[0].fd, web);
  EXPECT_EQ(sockets[0].name, "web");
  EXPECT_EQ(sockets[1].fd, admin);
  EXPECT_EQ(sockets[1].name, "admin");
  for (const ActivatedSocket& s : sockets) {
    EXPECT_TRUE(s.address == BoundAddress(s.fd)) << s.name;
    EXPECT_EQ(s.address.family(), AF_INET);
    EXPECT_NE(s.address.port(), 0);
    EXPECT_NE(fcntl(s.fd, F_GETFL) & O_NONBLOCK, 0) << s.name;
    EXPECT_NE(fcntl(s.fd, F_GETFD) & FD_CLOEXEC, 0) << s.name;
  }
}

TEST(SocketActivationTest, WithoutNamesEverySocketIsUnknown) {
  Passed passed;
  passed.add_tcp_listener();
  passed.add_tcp_listener();
  auto r = take_activated_sockets_from(Env(Self(), "2", nullptr), getpid(), kBase);
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r.value().size(), 2u);
  EXPECT_EQ(r.value()[0].name, "unknown");
  EXPECT_EQ(r.value()[1].name, "unknown");
}

TEST(SocketActivationTest, UnixListenerKeepsItsPath) {
  char dir[] = "/tmp/edgeproxy-activation-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/web.sock";
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  const SocketAddress want = Unix(path, true);
  ASSERT_EQ(bind(fd, want.get(), want.length), 0) << std::strerror(errno);
  ASSERT_EQ(listen(fd, 8), 0);
  {
    Passed passed;
    passed.add(fd);
    auto r = take_activated_sockets_from(Env(Self(), "1", "web"), getpid(), kBase);
    ASSERT_TRUE(r.ok()) << r.error();
    ASSERT_EQ(r.value().size(), 1u);
    EXPECT_EQ(r.value()[0].address.family(), AF_UNIX);
    EXPECT_TRUE(same_socket_address(r.value()[0].address, Unix(path, false)));
    EXPECT_EQ(match_activated(r.value(), "other", Unix(path, false)), 0);
  }
  unlink(path.c_str());
  rmdir(dir);
}

TEST(SocketActivationTest, NotForThisProcessIsIgnoredAndTouchesNothing) {
  Passed passed;
  const int fd = passed.add_tcp_listener();
  const std::string self = Self();
  for (const ActivationEnvironment& env :
       {Env(std::to_string(getpid() + 1), "1", "web"), ActivationEnvironment{nullptr, "1", "web"},
        ActivationEnvironment{self.c_str(), nullptr, nullptr}}) {
    auto r = take_activated_sockets_from(env, getpid(), kBase);
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_TRUE(r.value().empty());
  }
  EXPECT_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
}

TEST(SocketActivationTest, ZeroDescriptorsIsNoSockets) {
  auto r = take_activated_sockets_from(Env(Self(), "0", nullptr), getpid(), kBase);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r.value().empty());
}

TEST(SocketActivationTest, MalformedVariablesAreRefusedNamingThem) {
  struct Case {
    std::string pid, fds;
    const char* names;
    const char* needle;
  };
  for (const Case& c :
       {Case{"abc", "1", nullptr, "LISTEN_PID='abc'"}, Case{"0", "1", nullptr, "LISTEN_PID='0'"},
        Case{Self(), "x", nullptr, "LISTEN_FDS='x'"},
        Case{Self(), "-1", nullptr, "LISTEN_FDS='-1'"},
        Case{Self(), "1 ", nullptr, "LISTEN_FDS='1 '"},
        Case{Self(), "99999", nullptr, "LISTEN_FDS='99999'"},
        Case{Self(), "2", "web", "LISTEN_FDNAMES='web' holds 1 name(s)"},
        Case{Self(), "1", "", "LISTEN_FDNAMES='' holds 0 name(s)"},
        Case{Self(), "1", "a:b", "holds 2 name(s) for LISTEN_FDS=1"}}) {
    auto r = take_activated_sockets_from(Env(c.pid, c.fds, c.names), getpid(), kBase);
    ASSERT_FALSE(r.ok()) << c.pid << " " << c.fds;
    EXPECT_NE(r.error().find(c.needle), std::string::npos) << r.error();
  }
}

// Takes one passed descriptor and expects a refusal naming it, its name and `needle`, with the
// descriptor left as passed.
void ExpectRefused(Passed& passed, int fd, const char* needle) {
  auto r = take_activated_sockets_from(Env(Self(), std::to_string(passed.count()), "web"), getpid(),
                                       kBase);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("activated fd " + std::to_string(kBase) + " 'web'"), std::string::npos)
      << r.error();
  EXPECT_NE(r.error().find(needle), std::string::npos) << r.error();
  EXPECT_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, 0) << "changed although refused";
}

TEST(SocketActivationTest, StreamSocketNotListeningIsRefused) {
  Passed passed;
  ExpectRefused(passed, passed.add(socket(AF_INET, SOCK_STREAM, 0)), "not listening");
}

TEST(SocketActivationTest, DatagramSocketIsRefused) {
  Passed passed;
  ExpectRefused(passed, passed.add(socket(AF_INET, SOCK_DGRAM, 0)), "not a stream socket");
}

TEST(SocketActivationTest, PipeIsRefused) {
  Passed passed;
  int ends[2];
  ASSERT_EQ(pipe(ends), 0);
  close(ends[1]);
  ExpectRefused(passed, passed.add(ends[0]), "not a socket");
}

TEST(SocketActivationTest, MissingDescriptorIsRefused) {
  ASSERT_EQ(fcntl(kBase, F_GETFD), -1);
  auto r = take_activated_sockets_from(Env(Self(), "1", "web"), getpid(), kBase);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("'web': not open"), std::string::npos) << r.error();
}

TEST(SocketActivationTest, OneBadSocketLeavesTheGoodOnesAsPassed) {
  Passed passed;
  const int good = passed.add_tcp_listener();
  passed.add(socket(AF_INET, SOCK_STREAM, 0));
  auto r = take_activated_sockets_from(Env(Self(), "2", "web:admin"), getpid(), kBase);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("'admin': a stream socket that is not listening"), std::string::npos)
      << r.error();
  EXPECT_EQ(fcntl(good, F_GETFL) & O_NONBLOCK, 0);
}

TEST(SocketActivationTest, TakeFromEnvironmentUnsetsTheVariables) {
  // LISTEN_PID is not this process, so the process's own fd 3 is left alone.
  setenv("LISTEN_PID", std::to_string(getpid() + 1).c_str(), 1);
  setenv("LISTEN_FDS", "1", 1);
  setenv("LISTEN_FDNAMES", "web", 1);
  auto r = take_activated_sockets();
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r.value().empty());
  EXPECT_EQ(std::getenv("LISTEN_PID"), nullptr);
  EXPECT_EQ(std::getenv("LISTEN_FDS"), nullptr);
  EXPECT_EQ(std::getenv("LISTEN_FDNAMES"), nullptr);
}

std::vector<ActivatedSocket> Sockets() {
  return {ActivatedSocket{3, "web", Ipv4("0.0.0.0", 80)},
          ActivatedSocket{4, "admin", Ipv4("127.0.0.1", 9000)},
          ActivatedSocket{5, "unknown", Ipv4("127.0.0.1", 8080)},
          ActivatedSocket{6, "edgeproxy.socket", Unix("/run/edgeproxy.sock", true)}};
}

TEST(SocketActivationTest, MatchByNameWhateverTheConfiguredAddress) {
  EXPECT_EQ(match_activated(Sockets(), "web", Ipv4("127.0.0.1", 1234)), 0);
  EXPECT_EQ(match_activated(Sockets(), "admin", Ipv4("127.0.0.1", 9000)), 1);
}

TEST(SocketActivationTest, MatchByAddressWhenNoNameMatches) {
  EXPECT_EQ(match_activated(Sockets(), "api", Ipv4("127.0.0.1", 8080)), 2);
  EXPECT_EQ(match_activated(Sockets(), "local", Unix("/run/edgeproxy.sock", false)), 3);
  EXPECT_EQ(match_activated(Sockets(), "api", Ipv4("127.0.0.1", 8081)), -1);
  EXPECT_EQ(match_activated({}, "web", Ipv4("0.0.0.0", 80)), -1);
}

TEST(SocketActivationTest, NameBeatsAnotherSocketsAddress) {
  // Listener "web" configured on admin's address still gets the socket named "web".
  EXPECT_EQ(match_activated(Sockets(), "web", Ipv4("127.0.0.1", 9000)), 0);
}

TEST(SocketActivationTest, UnknownAndEmptyNamesNeverMatchByName) {
  EXPECT_EQ(match_activated(Sockets(), "unknown", Ipv4("10.0.0.1", 1)), -1);
  std::vector<ActivatedSocket> unnamed{ActivatedSocket{3, "", Ipv4("127.0.0.1", 1)}};
  EXPECT_EQ(match_activated(unnamed, "", Ipv4("10.0.0.1", 1)), -1);
}

TEST(SocketActivationTest, TwoSocketsOfOneNameGoToTwoBinds) {
  // One socket unit with two ListenStream= lines names both descriptors alike.
  std::vector<ActivatedSocket> sockets{ActivatedSocket{3, "web", Ipv4("0.0.0.0", 80)},
                                       ActivatedSocket{4, "web", Ipv4("0.0.0.0", 443)}};
  EXPECT_EQ(match_activated(sockets, "web", Ipv4("0.0.0.0", 443)), 1);  // name and address
  const std::vector<int> taken{1};
  EXPECT_EQ(match_activated(sockets, "web", Ipv4("0.0.0.0", 8080), taken), 0);
  const std::vector<int> both{0, 1};
  EXPECT_EQ(match_activated(sockets, "web", Ipv4("0.0.0.0", 80), both), -1);
}

TEST(SocketActivationTest, UnixAddressesCompareByPath) {
  EXPECT_TRUE(same_socket_address(Unix("/run/a.sock", true), Unix("/run/a.sock", false)));
  EXPECT_FALSE(same_socket_address(Unix("/run/a.sock", true), Unix("/run/a.sockx", true)));
  EXPECT_TRUE(same_socket_address(Unix("@abstract", false), Unix("@abstract", false)));
  EXPECT_FALSE(same_socket_address(Unix("@abstract", false), Unix("/abstract", false)));
  EXPECT_FALSE(same_socket_address(Unix("/run/a.sock", true), Ipv4("127.0.0.1", 80)));
}

TEST(SocketActivationTest, UnusedSocketsAreWarnedAboutAndKept) {
  const auto sockets = Sockets();
  const std::vector<int> used{0, 2};
  testing::internal::CaptureStderr();
  EXPECT_EQ(warn_unused_activated(sockets, used), 2u);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("'admin' (fd 4, 127.0.0.1:9000) matches no listener"), std::string::npos)
      << err;
  EXPECT_NE(err.find("'edgeproxy.socket' (fd 6, unix:/run/edgeproxy.sock)"), std::string::npos)
      << err;
  EXPECT_EQ(err.find("'web'"), std::string::npos) << err;
}

}  // namespace
}  // namespace edgeproxy
