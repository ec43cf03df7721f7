// SocketAddress and unix_address: Unix socket addresses print, compare and refuse as net.h says.
#include "edgeproxy/net.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <string>

namespace edgeproxy {
namespace {

TEST(NetTest, UnixAddressPrintsComparesAndHasNoPort) {
  auto a = unix_address("/run/app.sock");
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a.value().family(), AF_UNIX);
  EXPECT_EQ(a.value().to_string(), "unix:/run/app.sock");
  EXPECT_EQ(a.value().port(), 0);
  EXPECT_TRUE(a.value() == unix_address("/run/app.sock").value());
  EXPECT_FALSE(a.value() == unix_address("/run/app.sock2").value());
  SocketAddress padded = a.value();
  padded.length = sizeof(sockaddr_un);  // as accept() may report it
  EXPECT_TRUE(padded == a.value()) << "Unix addresses compare by path";
  EXPECT_FALSE(a.value() == resolve("127.0.0.1", 80, "t").value());
}

TEST(NetTest, UnixPathLengthIsCheckedAgainstSunPath) {
  const size_t room = sizeof(sockaddr_un{}.sun_path);
  EXPECT_TRUE(unix_address("/" + std::string(room - 2, 'a')).ok());
  auto r = unix_address("/" + std::string(room - 1, 'a'));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("too long (at most " + std::to_string(room - 1) + " bytes)"),
            std::string::npos)
      << r.error();
  EXPECT_EQ(unix_address("").error(), "empty Unix socket path");
}

TEST(NetTest, InetAddressesStillPrintWithPorts) {
  EXPECT_EQ(resolve("127.0.0.1", 80, "t").value().to_string(), "127.0.0.1:80");
  EXPECT_EQ(resolve("::1", 443, "t").value().to_string(), "[::1]:443");
  EXPECT_EQ(resolve("::1", 443, "t").value().port(), 443);
}

// The worker sets TCP_NODELAY once on a TCP listener instead of on every accepted socket: the
// kernel must copy it into the sockets accepted from it (and not set it where it was not asked).
TEST(NetTest, AcceptedSocketsInheritTheListenersNoDelay) {
  for (const bool on : {true, false}) {
    using namespace sys;
    const SysResult l = stream_socket(AF_INET);
    ASSERT_TRUE(l.ok());
    const int listen_fd = static_cast<int>(l.value);
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listen_fd, reinterpret_cast<sockaddr*>(&any), sizeof any), 0);
    ASSERT_EQ(::listen(listen_fd, 4), 0);
    if (on) {
      EXPECT_TRUE(set_no_delay(listen_fd, true));
    }
    SocketAddress bound;
    bound.length = sizeof bound.storage;
    ASSERT_EQ(getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound.storage), &bound.length),
              0);
    const int client = static_cast<int>(stream_socket(AF_INET).value);
    const SysResult c = sys::connect(client, bound);
    EXPECT_TRUE(c.ok() || c.err == EINPROGRESS);
    SocketAddress peer;
    SysResult a = accept(listen_fd, &peer);
    for (int i = 0; i < 200 && a.would_block(); ++i) {
      ::usleep(5000);
      a = accept(listen_fd, &peer);
    }
    ASSERT_TRUE(a.ok()) << std::strerror(a.err);
    const int accepted = static_cast<int>(a.value);
    int v = -1;
    socklen_t len = sizeof v;
    ASSERT_EQ(getsockopt(accepted, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    EXPECT_EQ(v != 0, on);
    EXPECT_EQ(peer.family(), AF_INET) << "accept() with an address fills it";
    EXPECT_NE(peer.port(), 0);
    close(accepted);
    close(client);
    close(listen_fd);
  }
}

}  // namespace
}  // namespace edgeproxy
