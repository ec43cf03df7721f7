// Proves the hot path does not allocate: malloc and operator new are replaced for this binary
// and count calls made on the worker's thread while connections are accepted, connected,
// relayed both ways, half-closed, reset and closed. Built only without sanitizers (they replace
// malloc themselves).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../unit/one_route.h"
#include "edgeproxy/worker.h"

extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);

namespace {

std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
thread_local bool t_is_worker = false;

void note_allocation() noexcept {
  if (t_is_worker && g_counting.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

extern "C" void* malloc(size_t n) {
  note_allocation();
  return __libc_malloc(n);
}
extern "C" void* calloc(size_t n, size_t size) {
  note_allocation();
  return __libc_calloc(n, size);
}
extern "C" void* realloc(void* p, size_t n) {
  note_allocation();
  return __libc_realloc(p, n);
}
void* operator new(size_t n) {
  void* p = malloc(n == 0 ? 1 : n);
  if (p == nullptr) std::abort();
  return p;
}
void* operator new[](size_t n) {
  return operator new(n);
}
void operator delete(void* p) noexcept {
  free(p);
}
void operator delete[](void* p) noexcept {
  free(p);
}
void operator delete(void* p, size_t) noexcept {
  free(p);
}
void operator delete[](void* p, size_t) noexcept {
  free(p);
}

namespace {

using edgeproxy::SocketAddress;

// A blocking echo backend serving connections one at a time on its own thread.
class EchoBackend {
 public:
  EchoBackend() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 64), 0);
    address_.length = sizeof address_.storage;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address_.storage), &address_.length);
    thread_ = std::thread([this] { serve(); });
  }
  ~EchoBackend() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  const SocketAddress& address() const { return address_; }

 private:
  void serve() {
    std::vector<char> buf(65536);
    for (;;) {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      for (;;) {
        const ssize_t n = read(c, buf.data(), buf.size());
        if (n <= 0) break;
        if (send(c, buf.data(), static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
      }
      close(c);
    }
  }
  int fd_;
  SocketAddress address_;
  std::thread thread_;
};

int connect_to(const SocketAddress& to) {
  const int fd = socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(connect(fd, to.get(), to.length), 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends `bytes` through the proxy and reads the echo back, interleaved so neither side blocks.
size_t echo_round_trip(const SocketAddress& proxy, size_t bytes, bool half_close) {
  const int fd = connect_to(proxy);
  std::vector<char> out(bytes, 'x');
  std::vector<char> in(65536);
  size_t sent = 0;
  size_t got = 0;
  while (got < bytes) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < bytes ? POLLOUT : 0)), 0};
    if (poll(&p, 1, 10000) <= 0) break;
    if ((p.revents & POLLOUT) && sent < bytes) {
      const ssize_t n = send(fd, out.data() + sent, std::min<size_t>(bytes - sent, 65536), 0);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
      if (sent == bytes && half_close) shutdown(fd, SHUT_WR);
    }
    if (p.revents & (POLLIN | POLLHUP)) {
      const ssize_t n = read(fd, in.data(), in.size());
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
  }
  if (half_close) {
    char c;
    EXPECT_EQ(read(fd, &c, 1), 0);  // the backend's close arrives as EOF
  }
  close(fd);
  return got;
}

// The worker's statistics as it publishes them between two loop iterations, on its own thread,
// asked again until `done` holds (10 s at most).
template <typename Done>
edgeproxy::Stats wait_for_stats(edgeproxy::WorkerControl& control, Done done) {
  edgeproxy::Stats stats;
  for (int i = 0; i < 100; ++i) {
    if (control.wait_report(control.request_report(), 1000, stats) && done(stats)) break;
    usleep(100 * 1000);
  }
  return stats;
}

// Runs connections through a worker with the given --splice mode, counting its allocations.
void RunHotPath(edgeproxy::SpliceMode splice) {
  // As main does: a splice into a socket whose peer is gone raises SIGPIPE (no MSG_NOSIGNAL).
  signal(SIGPIPE, SIG_IGN);
  const long allocations_before = g_allocations.load();
  EchoBackend backend;
  auto control = edgeproxy::WorkerControl::create();
  ASSERT_TRUE(control.ok()) << control.error();
  edgeproxy::Config config;
  config.max_connections = 16;
  config.log_level = edgeproxy::LogLevel::kQuiet;
  config.splice = splice;
  auto options = edgeproxy::one_route_options(backend.address(), config, control.value().get());
  ASSERT_TRUE(options.ok()) << options.error();
  auto worker = edgeproxy::Worker::create(options.value());
  ASSERT_TRUE(worker.ok()) << worker.error();
  const SocketAddress proxy = worker.value()->listen_address();

  std::thread loop([&] {
    t_is_worker = true;
    worker.value()->run();
  });
  EXPECT_EQ(echo_round_trip(proxy, 4096, false), 4096u);  // warm-up

  g_counting = true;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(echo_round_trip(proxy, 256 * 1024, i % 2 == 0), 256u * 1024);
  }
  // A client reset mid-transfer takes the error path: counted until the worker has seen it.
  const int fd = connect_to(proxy);
  std::vector<char> chunk(32768, 'r');
  EXPECT_GT(send(fd, chunk.data(), chunk.size(), 0), 0);
  const linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
  const edgeproxy::Stats seen = wait_for_stats(*control.value(), [](const edgeproxy::Stats& s) {
    return s.resets_client > 0 && s.active == 0;  // seen, and the connection closed
  });
  g_counting = false;
  // relay::fail counts the reset on the client side; the upstream is then closed abortively.
  EXPECT_EQ(seen.resets_client, 1u) << "the client reset was not seen: its path was not measured";
  EXPECT_EQ(seen.resets_sent, 1u) << "the upstream was not reset after the client's reset";
  EXPECT_EQ(seen.resets_upstream, 0u);

  control.value()->request_stop(false);  // graceful: every connection is already closed
  loop.join();
  const edgeproxy::Stats stats = worker.value()->stats();
  EXPECT_EQ(stats.accepted, 22u);
  EXPECT_GE(stats.bytes_c2u, 20u * 256 * 1024);
  if (splice == edgeproxy::SpliceMode::kAlways) {
    EXPECT_GT(stats.splice_bytes, 0u);
  }
  EXPECT_EQ(g_allocations.load() - allocations_before, 0)
      << "the worker thread allocated on the hot path";
}

TEST(AllocTest, NoAllocationOnTheHotPath) {
  RunHotPath(edgeproxy::SpliceMode::kNever);
}

TEST(AllocTest, NoAllocationOnTheSplicedHotPath) {
  RunHotPath(edgeproxy::SpliceMode::kAlways);
}

}  // namespace

namespace {

// The counter itself must see allocations, or the test above could never fail.
TEST(AllocTest, CounterSeesWorkerThreadAllocations) {
  const long before = g_allocations.load();
  std::thread t([] {
    t_is_worker = true;
    g_counting = true;
    auto* p = new std::vector<int>(100);
    g_counting = false;
    delete p;
  });
  t.join();
  EXPECT_GE(g_allocations.load() - before, 2);
}

}  // namespace
