// SocketAddress and unix_address: Unix socket addresses print, compare and refuse as net.h says.
#include "edgeproxy/net.h"

#include <gtest/gtest.h>
#include <sys/un.h>

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

}  // namespace
}  // namespace edgeproxy
