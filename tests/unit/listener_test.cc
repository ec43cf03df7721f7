// Listener: binds exactly the address given and reports the bound port; a set-up call that fails
// is an error naming the address and the call, never ignored. setsockopt and getsockname are
// interposed for this test binary (as alloc_test replaces malloc): armed, the next matching call
// fails with the armed errno; otherwise they make the system call.
#include "edgeproxy/listener.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "open_fds.h"

namespace {

struct Fault {
  int level = -1;  // setsockopt(level, option) to fail; -1 = none
  int option = -1;
  bool getsockname = false;  // fail getsockname
  int err = 0;
};
Fault g_fault;

}  // namespace

extern "C" int setsockopt(int fd, int level, int option, const void* value,
                          socklen_t length) noexcept {
  if (level == g_fault.level && option == g_fault.option) {
    g_fault.level = g_fault.option = -1;
    errno = g_fault.err;
    return -1;
  }
  return static_cast<int>(syscall(SYS_setsockopt, fd, level, option, value, length));
}

extern "C" int getsockname(int fd, sockaddr* __restrict address,
                           socklen_t* __restrict length) noexcept {
  if (g_fault.getsockname) {
    g_fault.getsockname = false;
    errno = g_fault.err;
    return -1;
  }
  return static_cast<int>(syscall(SYS_getsockname, fd, address, length));
}

namespace edgeproxy {
namespace {

SocketAddress AnyPort(const char* host) {
  auto r = resolve(host, 1, "--listen");
  EXPECT_TRUE(r.ok()) << r.error();
  SocketAddress a = r.value();
  // Port 0: the kernel picks a free one.
  if (a.family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&a.storage)->sin6_port = 0;
  } else {
    reinterpret_cast<sockaddr_in*>(&a.storage)->sin_port = 0;
  }
  return a;
}

bool Ipv6Loopback() {
  const int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

// Opens with the fault armed: the result must be an error naming the address and `call`, with
// errno's text, and the socket must be closed.
void ExpectFailureNamed(const char* host, const char* call) {
  const int before = OpenFds();
  auto r = Listener::open(AnyPort(host), 16);
  g_fault = Fault{};
  ASSERT_FALSE(r.ok()) << "a failed " << call << " was ignored";
  const std::string& e = r.error();
  EXPECT_NE(e.find(std::string("--listen ") + (host[0] == ':' ? "[" : "") + host),
            std::string::npos)
      << e;
  EXPECT_NE(e.find(call), std::string::npos) << e;
  EXPECT_NE(e.find(std::strerror(ENOMEM)), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << "one line: " << e;
  EXPECT_EQ(OpenFds(), before) << "the socket was not closed";
}

TEST(ListenerTest, OpensAndReportsTheBoundPort) {
  auto r = Listener::open(AnyPort("127.0.0.1"), 16);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_GE(r.value().fd(), 0);
  EXPECT_NE(r.value().address().port(), 0) << "the port the kernel picked";
}

TEST(ListenerTest, SoReuseaddrFailureIsNotIgnored) {
  g_fault = Fault{SOL_SOCKET, SO_REUSEADDR, false, ENOMEM};
  ExpectFailureNamed("127.0.0.1", "SO_REUSEADDR");
}

TEST(ListenerTest, Ipv6V6onlyFailureIsNotIgnored) {
  if (!Ipv6Loopback()) GTEST_SKIP() << "::1 cannot be bound here";
  g_fault = Fault{IPPROTO_IPV6, IPV6_V6ONLY, false, ENOMEM};
  ExpectFailureNamed("::1", "IPV6_V6ONLY");
}

TEST(ListenerTest, GetsocknameFailureIsNotIgnored) {
  g_fault = Fault{-1, -1, true, ENOMEM};
  ExpectFailureNamed("127.0.0.1", "getsockname");
}

}  // namespace
}  // namespace edgeproxy
