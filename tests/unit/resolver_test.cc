// Resolver: real lookups (localhost, literals, a name under .invalid) answered through a real
// eventfd doorbell, cookies, refusals, the queue bound, and teardown with a lookup held inside a
// substitute getaddrinfo.
#include "edgeproxy/resolver.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace edgeproxy {
namespace {

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// A non-blocking eventfd, closed at the end of the scope.
struct Doorbell {
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ~Doorbell() {
    if (fd >= 0) close(fd);
  }
  // The counter, drained; 0 when nothing rang.
  uint64_t Drain() const {
    uint64_t n = 0;
    return read(fd, &n, sizeof n) == static_cast<ssize_t>(sizeof n) ? n : 0;
  }
};

// The worker's side: poll the doorbell, drain it, then take(); until `n` results or `timeout_ms`.
std::vector<ResolveResult> WaitFor(Resolver& r, const Doorbell& bell, size_t n, int timeout_ms) {
  std::vector<ResolveResult> all;
  std::vector<ResolveResult> batch;
  const auto start = Clock::now();
  while (all.size() < n) {
    const int64_t left = timeout_ms - MsSince(start);
    if (left <= 0) break;
    pollfd p{bell.fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    EXPECT_GT(bell.Drain(), 0u);
    r.take(batch);
    all.insert(all.end(), batch.begin(), batch.end());
  }
  return all;
}

std::unique_ptr<Resolver> Make(const Doorbell& bell, ResolverOptions options = {}) {
  EXPECT_GE(bell.fd, 0);
  auto r = Resolver::create(options, bell.fd);
  EXPECT_TRUE(r.ok()) << r.error();
  return r.ok() ? std::move(r.value()) : nullptr;
}

bool IsLoopback(const SocketAddress& a) {
  if (a.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
  return a.family() == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

// Tasks (threads) of this process: compared before and after, never read as a count.
int Threads() {
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n;
}

bool WaitUntil(int timeout_ms, const auto& done) {
  const auto start = Clock::now();
  while (!done()) {
    if (MsSince(start) > timeout_ms) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// A getaddrinfo that holds every lookup until Release(), then answers with the real one. Its
// state is static: an abandoned lookup outlives the test that started it.
struct Gate {
  static inline std::mutex mutex;
  static inline std::condition_variable cv;
  static inline bool open = false;
  static inline std::atomic<int> entered{0};
  static inline std::atomic<int> returned{0};
  static inline std::string last_host;

  static void Reset() {
    std::lock_guard lock(mutex);
    open = false;
    entered = 0;
    returned = 0;
    last_host.clear();
  }
  static void Release() {
    {
      std::lock_guard lock(mutex);
      open = true;
    }
    cv.notify_all();
  }
  static int Lookup(const char* node, const char* service, const addrinfo* hints, addrinfo** out) {
    {
      std::unique_lock lock(mutex);
      last_host = node;
      ++entered;
      cv.wait(lock, [] { return open; });
    }
    const int rc = getaddrinfo(node, service, hints, out);
    ++returned;
    return rc;
  }
};

TEST(ResolverTest, LocalhostThroughTheDoorbell) {
  Doorbell bell;
  auto r = Make(bell);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->submit(7, "localhost", 8080, AF_UNSPEC));
  auto results = WaitFor(*r, bell, 1, 5000);
  ASSERT_EQ(results.size(), 1u) << "no answer within 5 s";
  const ResolveResult& res = results[0];
  EXPECT_EQ(res.cookie, 7u);
  ASSERT_EQ(res.error, 0) << res.reason();
  ASSERT_GE(res.count, 1u);
  ASSERT_LE(res.count, kMaxResolvedAddresses);
  for (uint32_t i = 0; i < res.count; ++i) {
    EXPECT_TRUE(IsLoopback(res.addresses[i])) << res.addresses[i].to_string();
    EXPECT_EQ(res.addresses[i].port(), 8080);
  }
  EXPECT_EQ(r->in_flight(), 0u);
}

TEST(ResolverTest, LiteralsOfBothFamilies) {
  Doorbell bell;
  auto r = Make(bell);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->submit(1, "127.0.0.1", 443, AF_UNSPEC));
  ASSERT_TRUE(r->submit(2, "::1", 443, AF_UNSPEC));
  auto results = WaitFor(*r, bell, 2, 5000);
  ASSERT_EQ(results.size(), 2u);
  std::map<uint64_t, ResolveResult> by_cookie;
  for (const auto& res : results) by_cookie[res.cookie] = res;
  ASSERT_EQ(by_cookie.count(1), 1u);
  ASSERT_EQ(by_cookie.count(2), 1u);
  ASSERT_EQ(by_cookie[1].error, 0) << by_cookie[1].reason();
  ASSERT_EQ(by_cookie[1].count, 1u);
  EXPECT_EQ(by_cookie[1].addresses[0].to_string(), "127.0.0.1:443");
  ASSERT_EQ(by_cookie[2].error, 0) << by_cookie[2].reason();
  ASSERT_EQ(by_cookie[2].count, 1u);
  EXPECT_EQ(by_cookie[2].addresses[0].to_string(), "[::1]:443");
}

TEST(ResolverTest, FamilyHintIsPassedOn) {
  Doorbell bell;
  auto r = Make(bell);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->submit(1, "localhost", 80, AF_INET));
  ASSERT_TRUE(r->submit(2, "127.0.0.1", 80, AF_INET6));  // no AI_V4MAPPED: no answer
  auto results = WaitFor(*r, bell, 2, 5000);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& res : results) {
    if (res.cookie == 1) {
      ASSERT_EQ(res.error, 0) << res.reason();
      for (uint32_t i = 0; i < res.count; ++i) EXPECT_EQ(res.addresses[i].family(), AF_INET);
    } else {
      EXPECT_NE(res.error, 0);
      EXPECT_EQ(res.count, 0u);
    }
  }
}

TEST(ResolverTest, UnknownNameIsAnErrorResult) {
  Doorbell bell;
  auto r = Make(bell);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->submit(99, "no-such-host.edgeproxy-test.invalid", 443, AF_UNSPEC));
  // This machine may have no DNS at all: a failure may come at once or after resolv.conf's
  // timeout. Within a few seconds it must be a lookup failure, never an address.
  auto results = WaitFor(*r, bell, 1, 4000);
  if (results.empty()) GTEST_SKIP() << "the DNS server did not answer within 4 s";
  const ResolveResult& res = results[0];
  EXPECT_EQ(res.cookie, 99u);
  EXPECT_TRUE(res.error == EAI_NONAME || res.error == EAI_AGAIN || res.error == EAI_FAIL ||
              res.error == EAI_NODATA)
      << res.error << ": " << res.reason();
  EXPECT_EQ(res.count, 0u);
  EXPECT_STRNE(res.reason(), "");
}

TEST(ResolverTest, CookiesComeBackWithTheirOwnLookups) {
  Doorbell bell;
  ResolverOptions options;
  options.threads = 3;
  auto r = Make(bell, options);
  ASSERT_TRUE(r);
  // The port says which cookie asked, and the literal which lookup answered.
  const uint64_t cookies[] = {0, 1, 42, 0x8000'0000'0000'0000u, UINT64_MAX};
  std::map<uint64_t, std::pair<uint16_t, std::string>> asked;
  for (uint16_t i = 0; i < 40; ++i) {
    const uint64_t cookie = i < std::size(cookies) ? cookies[i] : 1000u + i;
    const std::string host =
        i % 2 ? "127.0.0." + std::to_string(i + 1) : "::" + std::to_string(i + 1);
    asked[cookie] = {static_cast<uint16_t>(10'000 + i), host};
    ASSERT_TRUE(r->submit(cookie, host, static_cast<uint16_t>(10'000 + i), AF_UNSPEC));
  }
  auto results = WaitFor(*r, bell, asked.size(), 5000);
  ASSERT_EQ(results.size(), asked.size());
  std::set<uint64_t> seen;
  for (const auto& res : results) {
    ASSERT_TRUE(asked.count(res.cookie)) << res.cookie;
    EXPECT_TRUE(seen.insert(res.cookie).second) << "twice: " << res.cookie;
    ASSERT_EQ(res.error, 0) << res.reason();
    ASSERT_EQ(res.count, 1u);
    const auto& [port, host] = asked[res.cookie];
    EXPECT_EQ(res.addresses[0].port(), port);
    const std::string expected = host.find(':') == std::string::npos
                                     ? host + ":" + std::to_string(port)
                                     : "[" + host + "]:" + std::to_string(port);
    EXPECT_EQ(res.addresses[0].to_string(), expected);
  }
  EXPECT_EQ(r->in_flight(), 0u);
}

TEST(ResolverTest, FullQueueRefusesUntilResultsAreTaken) {
  Gate::Reset();
  Doorbell bell;
  ResolverOptions options;
  options.threads = 1;
  options.queue_capacity = 3;
  options.getaddrinfo = &Gate::Lookup;
  auto r = Make(bell, options);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->capacity(), 3u);
  ASSERT_TRUE(r->submit(1, "127.0.0.1", 1, AF_UNSPEC));
  ASSERT_TRUE(r->submit(2, "127.0.0.1", 2, AF_UNSPEC));
  ASSERT_TRUE(r->submit(3, "127.0.0.1", 3, AF_UNSPEC));
  EXPECT_EQ(r->in_flight(), 3u);
  EXPECT_FALSE(r->submit(4, "127.0.0.1", 4, AF_UNSPEC)) << "one inside getaddrinfo, two queued";
  ASSERT_TRUE(WaitUntil(2000, [] { return Gate::entered == 1; }));
  Gate::Release();
  ASSERT_TRUE(WaitUntil(5000, [] { return Gate::returned == 3; }));
  // Finished but not taken: the slots are still held.
  EXPECT_EQ(r->in_flight(), 3u);
  EXPECT_FALSE(r->submit(5, "127.0.0.1", 5, AF_UNSPEC));
  auto results = WaitFor(*r, bell, 3, 5000);
  ASSERT_EQ(results.size(), 3u);
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(results[i].cookie, i + 1) << "one thread: in order";
  EXPECT_EQ(r->in_flight(), 0u);
  EXPECT_TRUE(r->submit(6, "127.0.0.1", 6, AF_UNSPEC));
  results = WaitFor(*r, bell, 1, 5000);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].cookie, 6u);
}

TEST(ResolverTest, SubmitRefusesHostsAndHintsGetaddrinfoCannotTake) {
  Doorbell bell;
  auto r = Make(bell);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->submit(1, "", 80, AF_UNSPEC));
  EXPECT_FALSE(r->submit(1, std::string(kMaxHostBytes + 1, 'a'), 80, AF_UNSPEC));
  EXPECT_FALSE(r->submit(1, std::string_view("127.0.0.1\0.evil.example", 23), 80, AF_UNSPEC));
  EXPECT_FALSE(r->submit(1, "localhost", 80, AF_UNIX));
  EXPECT_FALSE(r->submit(1, "localhost", 80, -1));
  EXPECT_EQ(r->in_flight(), 0u);
  EXPECT_TRUE(Resolver::valid_host(std::string(kMaxHostBytes, 'a')));
  EXPECT_TRUE(Resolver::valid_host("a"));
  EXPECT_FALSE(Resolver::valid_host(std::string_view("a\0", 2)));
}

TEST(ResolverTest, TheLongestNameReachesGetaddrinfoWhole) {
  Gate::Reset();
  Gate::Release();
  Doorbell bell;
  ResolverOptions options;
  options.getaddrinfo = &Gate::Lookup;
  auto r = Make(bell, options);
  ASSERT_TRUE(r);
  // A name longer than DNS allows in a label: refused by getaddrinfo, not truncated by us.
  const std::string longest(kMaxHostBytes, 'x');
  ASSERT_TRUE(r->submit(5, longest, 80, AF_UNSPEC));
  auto results = WaitFor(*r, bell, 1, 5000);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_NE(results[0].error, 0);
  std::lock_guard lock(Gate::mutex);
  EXPECT_EQ(Gate::last_host, longest);
}

TEST(ResolverTest, CreateRefusesBadOptions) {
  Doorbell bell;
  ResolverOptions o;
  o.threads = 0;
  EXPECT_EQ(Resolver::create(o, bell.fd).error(), "resolver: threads must be 1-64, not 0");
  o.threads = 65;
  EXPECT_FALSE(Resolver::create(o, bell.fd).ok());
  o = {};
  o.queue_capacity = 0;
  EXPECT_EQ(Resolver::create(o, bell.fd).error(),
            "resolver: queue capacity must be 1-65536, not 0");
  o.queue_capacity = 65537;
  EXPECT_FALSE(Resolver::create(o, bell.fd).ok());
  o = {};
  EXPECT_EQ(Resolver::create(o, -1).error(), "resolver: no doorbell descriptor");
  o.getaddrinfo = nullptr;
  EXPECT_FALSE(Resolver::create(o, bell.fd).ok());
}

TEST(ResolverTest, TakeReusesTheVectorAndReplacesItsContents) {
  Doorbell bell;
  auto r = Make(bell);
  ASSERT_TRUE(r);
  std::vector<ResolveResult> out(3);
  out.reserve(r->capacity());
  const ResolveResult* data = out.data();
  r->take(out);
  EXPECT_TRUE(out.empty()) << "nothing finished: emptied";
  ASSERT_TRUE(r->submit(1, "127.0.0.1", 80, AF_UNSPEC));
  ASSERT_TRUE(r->submit(2, "127.0.0.1", 81, AF_UNSPEC));
  std::vector<ResolveResult> all;
  ASSERT_TRUE(WaitUntil(5000, [&] {
    bell.Drain();
    r->take(out);
    EXPECT_EQ(out.data(), data) << "capacity reused";
    all.insert(all.end(), out.begin(), out.end());
    return all.size() == 2;
  }));
  EXPECT_EQ(r->in_flight(), 0u);
}

TEST(ResolverTest, DestructorDoesNotWaitForAStuckLookup) {
  Gate::Reset();
  ResolverOptions options;
  options.threads = 2;
  options.getaddrinfo = &Gate::Lookup;
  auto bell = std::make_unique<Doorbell>();
  auto r = Make(*bell, options);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->submit(1, "127.0.0.1", 80, AF_UNSPEC));
  ASSERT_TRUE(r->submit(2, "localhost", 80, AF_UNSPEC));  // queued behind nothing: both held
  ASSERT_TRUE(WaitUntil(2000, [] { return Gate::entered == 2; }));
  const auto start = Clock::now();
  r.reset();
  EXPECT_LT(MsSince(start), 500) << "the destructor waited for getaddrinfo";
  // The worker closes its doorbell at once; the descriptor number is reused by a new eventfd.
  const int old_fd = bell->fd;
  bell.reset();
  Doorbell reused;
  ASSERT_EQ(reused.fd, old_fd) << "lowest free descriptor";
  Gate::Release();
  ASSERT_TRUE(WaitUntil(5000, [] { return Gate::returned == 2; }));
  pollfd p{reused.fd, POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 200), 0) << "an abandoned lookup wrote to a reused descriptor";
}

TEST(ResolverTest, DestructorWithQueuedLookupsDropsThem) {
  Gate::Reset();
  Doorbell bell;
  ResolverOptions options;
  options.threads = 1;
  options.getaddrinfo = &Gate::Lookup;
  auto r = Make(bell, options);
  ASSERT_TRUE(r);
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(r->submit(i, "127.0.0.1", 80, AF_UNSPEC));
  ASSERT_TRUE(WaitUntil(2000, [] { return Gate::entered == 1; }));
  r.reset();
  Gate::Release();
  ASSERT_TRUE(WaitUntil(5000, [] { return Gate::returned == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(Gate::entered, 1) << "queued lookups were started after the destructor";
  EXPECT_EQ(bell.Drain(), 0u);
}

TEST(ResolverTest, ThreadsLeaveWhenDestroyedIdle) {
  const int before = Threads();
  ASSERT_GT(before, 0);
  Doorbell bell;
  for (int round = 0; round < 20; ++round) {
    ResolverOptions options;
    options.threads = 4;
    auto r = Make(bell, options);
    ASSERT_TRUE(r);
    if (round % 2 == 0) {
      ASSERT_TRUE(r->submit(1, "127.0.0.1", 80, AF_UNSPEC));
      ASSERT_EQ(WaitFor(*r, bell, 1, 5000).size(), 1u);
    }
  }
  // The destructor waits for idle threads to leave run(); the kernel reaps them just after.
  EXPECT_TRUE(WaitUntil(2000, [&] { return Threads() == before; }))
      << before << " threads before, " << Threads() << " after";
}

TEST(ResolverTest, ResultsKeepGetaddrinfosOrderWithoutDuplicates) {
  Doorbell bell;
  ResolverOptions options;
  // Ten answers, one duplicated: chains real lists, so freeaddrinfo frees them all.
  options.getaddrinfo = [](const char*, const char*, const addrinfo* hints, addrinfo** out) {
    const char* literals[] = {"10.0.0.1", "10.0.0.1", "::2",      "10.0.0.3",
                              "10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7",
                              "10.0.0.8", "10.0.0.9", "10.0.0.10"};
    addrinfo* head = nullptr;
    addrinfo** tail = &head;
    for (const char* literal : literals) {
      addrinfo* one = nullptr;
      if (getaddrinfo(literal, nullptr, hints, &one) != 0) return EAI_FAIL;
      *tail = one;
      while (*tail != nullptr) tail = &(*tail)->ai_next;
    }
    *out = head;
    return 0;
  };
  auto r = Make(bell, options);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->submit(1, "many.example", 8443, AF_UNSPEC));
  auto results = WaitFor(*r, bell, 1, 5000);
  ASSERT_EQ(results.size(), 1u);
  ASSERT_EQ(results[0].error, 0) << results[0].reason();
  ASSERT_EQ(results[0].count, kMaxResolvedAddresses);
  const char* expected[] = {"10.0.0.1:8443", "[::2]:8443",    "10.0.0.3:8443", "10.0.0.4:8443",
                            "10.0.0.5:8443", "10.0.0.6:8443", "10.0.0.7:8443", "10.0.0.8:8443"};
  for (uint32_t i = 0; i < kMaxResolvedAddresses; ++i) {
    EXPECT_EQ(results[0].addresses[i].to_string(), expected[i]) << i;
  }
}

TEST(ResolverTest, ErrorsAndTheirReasons) {
  Doorbell bell;
  ResolverOptions options;
  options.threads = 1;
  options.getaddrinfo = [](const char* node, const char*, const addrinfo*, addrinfo** out) {
    *out = nullptr;
    if (std::strcmp(node, "system") == 0) {
      errno = EMFILE;
      return EAI_SYSTEM;
    }
    if (std::strcmp(node, "again") == 0) return EAI_AGAIN;
    return 0;  // success with no address at all
  };
  auto r = Make(bell, options);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->submit(1, "system", 80, AF_UNSPEC));
  ASSERT_TRUE(r->submit(2, "again", 80, AF_UNSPEC));
  ASSERT_TRUE(r->submit(3, "empty", 80, AF_UNSPEC));
  auto results = WaitFor(*r, bell, 3, 5000);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].error, EAI_SYSTEM);
  EXPECT_EQ(results[0].system_error, EMFILE);
  EXPECT_STREQ(results[0].reason(), std::strerror(EMFILE));
  EXPECT_EQ(results[1].error, EAI_AGAIN);
  EXPECT_EQ(results[1].system_error, 0);
  EXPECT_STREQ(results[1].reason(), gai_strerror(EAI_AGAIN));
  EXPECT_EQ(results[2].error, EAI_NODATA);
  EXPECT_EQ(results[2].count, 0u);
  ResolveResult ok;
  EXPECT_STREQ(ok.reason(), gai_strerror(0));
}

TEST(ResolverTest, NumericAddressesNeedNoLookup) {
  SocketAddress a;
  ASSERT_TRUE(numeric_address("127.0.0.1", 80, a));
  EXPECT_EQ(a.to_string(), "127.0.0.1:80");
  EXPECT_EQ(a.length, sizeof(sockaddr_in));
  ASSERT_TRUE(numeric_address("::1", 443, a));
  EXPECT_EQ(a.to_string(), "[::1]:443");
  EXPECT_EQ(a.length, sizeof(sockaddr_in6));
  ASSERT_TRUE(numeric_address("::ffff:1.2.3.4", 1, a));
  EXPECT_EQ(a.family(), AF_INET6);
  ASSERT_TRUE(numeric_address("0000:0000:0000:0000:0000:ffff:255.255.255.255", 2, a));
  EXPECT_EQ(a.port(), 2);
  const SocketAddress before = a;
  for (const char* text : {"", "localhost", "[::1]", "fe80::1%eth0", "1.2.3", "01.2.3.4",
                           "1.2.3.4 ", "00000:0000:0000:0000:0000:ffff:255.255.255.255"}) {
    EXPECT_FALSE(numeric_address(text, 80, a)) << text;
  }
  EXPECT_FALSE(numeric_address(std::string_view("1.2.3.4\0", 8), 80, a));
  EXPECT_TRUE(a == before) << "untouched on refusal";
}

}  // namespace
}  // namespace edgeproxy
