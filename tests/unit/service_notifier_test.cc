// NotifyClient: the exact datagrams sent to a real AF_UNIX SOCK_DGRAM socket standing in for
// systemd (a path in a temporary directory, or an abstract name), $NOTIFY_SOCKET unset or bad
// giving a no-op client, and a send that cannot be delivered never blocking.
#include "edgeproxy/service_notifier.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "open_fds.h"

namespace edgeproxy {
namespace {

// The service manager's end: a datagram socket bound to a path in a fresh directory, or to an
// abstract name. `name` is what $NOTIFY_SOCKET holds for it.
class Receiver {
 public:
  explicit Receiver(bool abstract) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    socklen_t length = 0;
    if (abstract) {
      name_ = "@edgeproxy-test-" + std::to_string(getpid()) + "-" + std::to_string(++serial_);
      std::memcpy(address.sun_path, name_.data(), name_.size());
      address.sun_path[0] = '\0';
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    } else {
      char dir[] = "/tmp/edgeproxy-notify-XXXXXX";
      EXPECT_NE(mkdtemp(dir), nullptr) << std::strerror(errno);
      dir_ = dir;
      name_ = dir_ + "/notify.sock";
      std::memcpy(address.sun_path, name_.c_str(), name_.size() + 1);
      length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size() + 1);
    }
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), length), 0) << std::strerror(errno);
  }
  ~Receiver() {
    close();
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!dir_.empty()) unlink(name_.c_str());
  }

  const std::string& name() const { return name_; }

  // The next datagram, or "<none>" when nothing comes within `timeout_ms`.
  std::string next(int timeout_ms = 1000) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return "<none>";
    char data[NotifyClient::kMaxMessageBytes + 64];
    const ssize_t n = recv(fd_, data, sizeof data, MSG_DONTWAIT);
    return n < 0 ? "<error>" : std::string(data, static_cast<size_t>(n));
  }

 private:
  static inline int serial_ = 0;
  int fd_ = -1;
  std::string name_;
  std::string dir_;
};

int64_t MonotonicMicros() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000 + ts.tv_nsec / 1000;
}

// Sets $NOTIFY_SOCKET for one test and restores what was there.
class ScopedNotifySocket {
 public:
  explicit ScopedNotifySocket(const char* value) {
    if (const char* old = std::getenv("NOTIFY_SOCKET")) {
      had_ = true;
      old_ = old;
    }
    if (value) {
      setenv("NOTIFY_SOCKET", value, 1);
    } else {
      unsetenv("NOTIFY_SOCKET");
    }
  }
  ~ScopedNotifySocket() {
    if (had_) {
      setenv("NOTIFY_SOCKET", old_.c_str(), 1);
    } else {
      unsetenv("NOTIFY_SOCKET");
    }
  }

 private:
  bool had_ = false;
  std::string old_;
};

void ExpectEveryMessage(bool abstract) {
  Receiver systemd(abstract);
  ScopedNotifySocket env(systemd.name().c_str());
  NotifyClient notify = NotifyClient::from_environment();
  ASSERT_TRUE(notify.enabled());

  notify.ready("listening on 2 listener(s), 1 worker(s)");
  EXPECT_EQ(systemd.next(), "READY=1\nSTATUS=listening on 2 listener(s), 1 worker(s)");
  notify.ready();
  EXPECT_EQ(systemd.next(), "READY=1");

  const int64_t before = MonotonicMicros();
  notify.reloading();
  const int64_t after = MonotonicMicros();
  const std::string reloading = systemd.next();
  const std::string head = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(reloading.substr(0, head.size()), head) << reloading;
  const std::string digits = reloading.substr(head.size());
  ASSERT_FALSE(digits.empty());
  EXPECT_EQ(digits.find_first_not_of("0123456789"), std::string::npos) << reloading;
  const long long usec = std::stoll(digits);
  EXPECT_GE(usec, before);
  EXPECT_LE(usec, after);

  notify.stopping();
  EXPECT_EQ(systemd.next(), "STOPPING=1");
  notify.stopping("draining 3 connection(s), up to 10 s");
  EXPECT_EQ(systemd.next(), "STOPPING=1\nSTATUS=draining 3 connection(s), up to 10 s");
  notify.status("reload failed: edgeproxy.conf:3:5: unknown directive");
  EXPECT_EQ(systemd.next(), "STATUS=reload failed: edgeproxy.conf:3:5: unknown directive");
  notify.status("");
  EXPECT_EQ(systemd.next(50), "<none>");
  EXPECT_EQ(notify.send_failures(), 0u);
}

TEST(ServiceNotifierTest, PathSocketGetsEachMessageExactlyInOneDatagram) {
  ExpectEveryMessage(false);
}

TEST(ServiceNotifierTest, AbstractSocketNamedWithAtGetsEachMessage) {
  ExpectEveryMessage(true);
}

TEST(ServiceNotifierTest, StatusControlCharactersBecomeSpaces) {
  Receiver systemd(false);
  NotifyClient notify = NotifyClient::from_value(systemd.name().c_str());
  // A '\n' would start a new KEY=VALUE line; a NUL makes systemd drop the whole message.
  notify.status(std::string("two\nlines\0and\ta tab", 19));
  EXPECT_EQ(systemd.next(), "STATUS=two lines and a tab");
}

TEST(ServiceNotifierTest, LongStatusIsCutToOneReadableDatagram) {
  Receiver systemd(false);
  NotifyClient notify = NotifyClient::from_value(systemd.name().c_str());
  notify.ready(std::string(3 * NotifyClient::kMaxMessageBytes, 'x'));
  const std::string got = systemd.next();
  EXPECT_EQ(got.size(), NotifyClient::kMaxMessageBytes);
  EXPECT_EQ(got.substr(0, 15), "READY=1\nSTATUS=");
}

TEST(ServiceNotifierTest, UnsetIsANoOpWithoutDescriptor) {
  ScopedNotifySocket env(nullptr);
  const int fds = OpenFds();
  NotifyClient notify = NotifyClient::from_environment();
  EXPECT_FALSE(notify.enabled());
  EXPECT_EQ(OpenFds(), fds);
  notify.ready("x");
  notify.reloading();
  notify.stopping();
  notify.status("x");
  EXPECT_EQ(notify.send_failures(), 0u);
}

TEST(ServiceNotifierTest, BadValueWarnsOnceAndIsANoOp) {
  const std::string too_long = "/" + std::string(sizeof(sockaddr_un{}.sun_path), 'a');
  const std::string abstract_too_long = "@" + std::string(sizeof(sockaddr_un{}.sun_path), 'a');
  for (const std::string& value :
       {std::string(""), std::string("relative/notify.sock"), std::string("@"),
        std::string("vsock:2:1234"), too_long, abstract_too_long}) {
    SCOPED_TRACE(value);
    ScopedNotifySocket env(value.c_str());
    const int fds = OpenFds();
    testing::internal::CaptureStderr();
    NotifyClient notify = NotifyClient::from_environment();
    notify.ready("x");
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_FALSE(notify.enabled());
    EXPECT_EQ(OpenFds(), fds);
    EXPECT_NE(err.find("NOTIFY_SOCKET"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
}

TEST(ServiceNotifierTest, LongestPathAndAbstractNameAreAccepted) {
  constexpr size_t kPath = sizeof(sockaddr_un{}.sun_path);
  EXPECT_TRUE(NotifyClient::from_value(("/" + std::string(kPath - 2, 'a')).c_str()).enabled());
  EXPECT_TRUE(NotifyClient::from_value(("@" + std::string(kPath - 1, 'a')).c_str()).enabled());
}

TEST(ServiceNotifierTest, NobodyListeningIsCountedWithOneWarning) {
  Receiver systemd(false);
  NotifyClient notify = NotifyClient::from_value(systemd.name().c_str());
  systemd.close();
  testing::internal::CaptureStderr();
  notify.ready("x");
  notify.status("y");
  notify.stopping();
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(notify.send_failures(), 3u);
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find(systemd.name()), std::string::npos) << err;
}

TEST(ServiceNotifierTest, FullReceiveQueueNeverBlocks) {
  // A receiver that never reads: its queue fills (net.unix.max_dgram_qlen datagrams, or its
  // receive buffer), after which a blocking sender would sleep until it read.
  Receiver systemd(false);
  NotifyClient notify = NotifyClient::from_value(systemd.name().c_str());
  testing::internal::CaptureStderr();
  const std::string status(2000, 's');
  for (int i = 0; i < 20000 && notify.send_failures() == 0; ++i) notify.status(status);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_GE(notify.send_failures(), 1u);
  EXPECT_NE(err.find(std::strerror(EAGAIN)), std::string::npos) << err;
}

TEST(ServiceNotifierTest, MoveKeepsOneOwnerOfTheSocket) {
  Receiver systemd(false);
  const int fds = OpenFds();
  {
    NotifyClient a = NotifyClient::from_value(systemd.name().c_str());
    NotifyClient b = std::move(a);
    EXPECT_FALSE(a.enabled());  // NOLINT(bugprone-use-after-move): the moved-from state is part
                                // of the contract
    b.status("moved");
    EXPECT_EQ(systemd.next(), "STATUS=moved");
    NotifyClient c;
    c = std::move(b);
    c.status("again");
    EXPECT_EQ(systemd.next(), "STATUS=again");
  }
  EXPECT_EQ(OpenFds(), fds);
}

}  // namespace
}  // namespace edgeproxy
