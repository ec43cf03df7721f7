// Worker: paths of the event loop that only a real worker on real sockets reaches, one worker
// thread against loopback peers. Today: the settling pass when the kernel refuses an interest
// change while every slot is touched (issue 9, item 10).
#include "edgeproxy/worker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <dirent.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "one_route.h"

namespace edgeproxy {
namespace {

SocketAddress LocalOf(int fd, bool peer) {
  SocketAddress a;
  a.length = sizeof a.storage;
  auto* sa = reinterpret_cast<sockaddr*>(&a.storage);
  if ((peer ? getpeername(fd, sa, &a.length) : getsockname(fd, sa, &a.length)) != 0) a.length = 0;
  return a;
}

// The descriptor of this process whose local address is `local` and peer `peer`: the worker's
// end of a connection the test made.
int FindSocket(const SocketAddress& local, const SocketAddress& peer) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (e->d_name[0] == '.' || fd == dirfd(dir)) continue;
    if (LocalOf(fd, false) == local && LocalOf(fd, true) == peer) found = fd;
  }
  closedir(dir);
  return found;
}

TEST(WorkerTest, ARefusedInterestChangeWithEverySlotTouchedNeverOverflowsTheList) {
  if (std::strcmp(Reactor::kName, "epoll") != 0) {
    GTEST_SKIP() << "only epoll_ctl can refuse an interest change";
  }
  // A backend that, once told, sends until the proxy stops taking bytes.
  const int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listen_fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  ASSERT_EQ(listen(listen_fd, 4), 0);
  const SocketAddress backend = LocalOf(listen_fd, false);
  std::atomic<bool> send_now{false};
  std::thread server([&] {
    const int c = accept(listen_fd, nullptr, nullptr);
    if (c < 0) return;
    timeval tv{2, 0};
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (int i = 0; i < 400 && !send_now; ++i) usleep(10 * 1000);
    std::vector<char> chunk(65536, 'u');
    for (int i = 0; i < 256; ++i) {
      if (send(c, chunk.data(), chunk.size(), MSG_NOSIGNAL) <= 0) break;
    }
    close(c);
  });

  auto control = WorkerControl::create();
  ASSERT_TRUE(control.ok()) << control.error();
  Config config;
  config.max_connections = 1;  // one slot: touching it fills the list
  config.log_level = LogLevel::kQuiet;
  config.splice = SpliceMode::kNever;
  auto options = one_route_options(backend, config, control.value().get());
  ASSERT_TRUE(options.ok()) << options.error();
  auto worker = Worker::create(options.value());
  ASSERT_TRUE(worker.ok()) << worker.error();
  const SocketAddress proxy = worker.value()->listen_address();
  std::thread loop([&] { worker.value()->run(); });

  const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(client, proxy.get(), proxy.length), 0);
  int worker_end = -1;
  for (int i = 0; i < 200 && worker_end < 0; ++i) {
    worker_end = FindSocket(proxy, LocalOf(client, false));
    if (worker_end < 0) usleep(10 * 1000);
  }
  ASSERT_GE(worker_end, 0) << "the worker's end of the client connection was not found";
  usleep(100 * 1000);  // the backend connect completes
  // The worker's client descriptor now names a socket epoll has never seen: the next interest
  // change for it (EPOLLOUT, to write the backend's first bytes) fails with ENOENT.
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
  ASSERT_EQ(dup2(pair[0], worker_end), worker_end);
  close(pair[0]);
  send_now = true;

  // The connection is closed (no overflow, no crash, no hang) and the worker serves on.
  Stats stats;
  for (int i = 0; i < 500; ++i) {
    const uint64_t ticket = control.value()->request_report();
    ASSERT_TRUE(control.value()->wait_report(ticket, 2000, stats)) << "the worker stopped";
    if (stats.closed == 1) break;
    usleep(10 * 1000);
  }
  EXPECT_EQ(stats.closed, 1u) << "the connection whose registration failed was not closed";
  EXPECT_EQ(stats.active, 0u);
  // Closed by the refusal (an abort: both sides reset), not by an error on the client side.
  EXPECT_EQ(stats.resets_client, 0u);
  EXPECT_GE(stats.resets_sent, 1u);

  close(pair[1]);
  close(client);
  control.value()->request_stop(true);
  control.value()->request_stop(true);
  loop.join();
  server.join();
  close(listen_fd);
}

}  // namespace
}  // namespace edgeproxy
