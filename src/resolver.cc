// Resolver threads, the slot queue and the doorbell; see resolver.h.
#include "edgeproxy/resolver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>

#include "edgeproxy/check.h"

namespace edgeproxy {

namespace {

constexpr uint32_t kMaxThreads = 64;
constexpr uint32_t kMaxQueueCapacity = 65536;

void set_port(SocketAddress& a, uint16_t port) noexcept {
  if (a.family() == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&a.storage)->sin6_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in*>(&a.storage)->sin_port = htons(port);
  }
}

}  // namespace

// Everything the threads touch. A slot belongs to exactly one place at a time: the free stack,
// the pending ring, one thread (while it resolves), or the done list; the mutex guards the
// three lists and the counters, never a lookup.
struct Resolver::Shared {
  struct Slot {
    uint64_t cookie = 0;
    uint16_t port = 0;
    int family = AF_UNSPEC;
    char host[kMaxHostBytes + 1] = {};
    ResolveResult result;
  };

  Shared(uint32_t slot_count, int doorbell, GetAddrInfoFn getaddrinfo_fn)
      : slots(new Slot[slot_count]),
        free(new uint32_t[slot_count]),
        pending(new uint32_t[slot_count]),
        done(new uint32_t[slot_count]),
        capacity(slot_count),
        free_count(slot_count),
        doorbell_fd(doorbell),
        lookup(getaddrinfo_fn) {
    for (uint32_t i = 0; i < capacity; ++i) free[i] = capacity - 1 - i;  // slot 0 on top
  }

  void run() noexcept;
  void resolve(Slot& slot) const noexcept;

  std::mutex mutex;
  std::condition_variable work_cv;  // a thread waits for a pending slot or stopping
  std::condition_variable exit_cv;  // ~Resolver waits for the idle threads to leave
  const std::unique_ptr<Slot[]> slots;
  const std::unique_ptr<uint32_t[]> free;     // stack of free slot indices
  const std::unique_ptr<uint32_t[]> pending;  // ring of submitted slot indices
  const std::unique_ptr<uint32_t[]> done;     // finished slot indices, in finishing order
  const uint32_t capacity;
  uint32_t free_count;
  uint32_t pending_head = 0;
  uint32_t pending_count = 0;
  uint32_t done_count = 0;
  uint32_t threads_alive = 0;  // started and not yet left run()
  uint32_t threads_busy = 0;   // inside resolve(), which may take seconds
  bool stopping = false;
  const int doorbell_fd;
  const GetAddrInfoFn lookup;
};

void Resolver::Shared::run() noexcept {
  std::unique_lock lock(mutex);
  for (;;) {
    work_cv.wait(lock, [this] { return stopping || pending_count > 0; });
    if (stopping) break;
    const uint32_t index = pending[pending_head];
    pending_head = (pending_head + 1) % capacity;
    --pending_count;
    ++threads_busy;
    lock.unlock();
    resolve(slots[index]);
    lock.lock();
    --threads_busy;
    // The resolver is gone and its doorbell may be closed, even reused: write nothing.
    if (stopping) break;
    done[done_count++] = index;
    // Under the lock, so ~Resolver (which sets stopping under it) is never followed by a write.
    // EAGAIN only when the counter is about to overflow: the worker is woken already.
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(doorbell_fd, &one, sizeof one);
  }
  --threads_alive;
  exit_cv.notify_all();
}

void Resolver::Shared::resolve(Slot& slot) const noexcept {
  ResolveResult& r = slot.result;
  r = ResolveResult{};
  r.cookie = slot.cookie;
  addrinfo hints{};
  hints.ai_family = slot.family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  // No AI_ADDRCONFIG: it counts only non-loopback addresses, so on a host (or container, or test
  // machine) with loopback alone it makes "localhost" fail. Without it an IPv6 answer on an
  // IPv4-only host costs one failed connect() (ENETUNREACH) and the next address is tried.
  // No service: the port is set below, which spares a services lookup and a number to text.
  hints.ai_flags = 0;
  addrinfo* found = nullptr;
  const int rc = lookup(slot.host, nullptr, &hints, &found);
  const int err = errno;
  if (rc != 0) {
    r.error = rc;
    r.system_error = rc == EAI_SYSTEM ? err : 0;
    return;
  }
  for (const addrinfo* ai = found; ai != nullptr && r.count < kMaxResolvedAddresses;
       ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    if (ai->ai_addr == nullptr || ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    SocketAddress a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.length = ai->ai_addrlen;
    set_port(a, slot.port);
    bool seen = false;
    for (uint32_t i = 0; i < r.count; ++i) seen = seen || r.addresses[i] == a;
    if (!seen) r.addresses[r.count++] = a;
  }
  if (found != nullptr) freeaddrinfo(found);
  if (r.count == 0) r.error = EAI_NODATA;
}

const char* ResolveResult::reason() const noexcept {
  if (error == EAI_SYSTEM && system_error != 0) return std::strerror(system_error);
  return gai_strerror(error);
}

void* Resolver::thread_main(void* arg) noexcept {
  auto* handed = static_cast<std::shared_ptr<Shared>*>(arg);
  // Held until the thread returns: run()'s lock is released before this reference is.
  const std::shared_ptr<Shared> shared = std::move(*handed);
  delete handed;
  pthread_setname_np(pthread_self(), "edgeproxy-dns");
  shared->run();
  return nullptr;
}

Resolver::Resolver(std::shared_ptr<Shared> shared, uint32_t capacity) noexcept
    : shared_(std::move(shared)), capacity_(capacity) {}

Result<std::unique_ptr<Resolver>> Resolver::create(const ResolverOptions& options,
                                                   int doorbell_fd) {
  if (options.threads == 0 || options.threads > kMaxThreads) {
    return Error{"resolver: threads must be 1-" + std::to_string(kMaxThreads) + ", not " +
                 std::to_string(options.threads)};
  }
  if (options.queue_capacity == 0 || options.queue_capacity > kMaxQueueCapacity) {
    return Error{"resolver: queue capacity must be 1-" + std::to_string(kMaxQueueCapacity) +
                 ", not " + std::to_string(options.queue_capacity)};
  }
  if (doorbell_fd < 0) return Error{"resolver: no doorbell descriptor"};
  if (options.getaddrinfo == nullptr) return Error{"resolver: no getaddrinfo function"};
  auto shared = std::make_shared<Shared>(options.queue_capacity, doorbell_fd, options.getaddrinfo);
  std::unique_ptr<Resolver> resolver(new Resolver(shared, options.queue_capacity));

  // The threads inherit the creating thread's signal mask: block every asynchronous signal so
  // that none is ever delivered to a resolver thread (the synchronous ones stay deliverable, so
  // a crash in one is still reported as a crash).
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  for (const int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS}) {
    sigdelset(&all, sig);
  }
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = 0;
  for (uint32_t i = 0; i < options.threads && rc == 0; ++i) {
    {
      std::lock_guard lock(shared->mutex);
      ++shared->threads_alive;
    }
    auto* handed = new std::shared_ptr<Shared>(shared);
    pthread_t thread;
    rc = pthread_create(&thread, &attr, &thread_main, handed);
    if (rc != 0) {
      delete handed;
      std::lock_guard lock(shared->mutex);
      --shared->threads_alive;
    }
  }
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (rc != 0) {
    // ~Resolver stops the threads already started.
    return Error{std::string("resolver: cannot start a thread: ") + std::strerror(rc)};
  }
  return resolver;
}

Resolver::~Resolver() {
  Shared& s = *shared_;
  std::unique_lock lock(s.mutex);
  s.stopping = true;
  s.work_cv.notify_all();
  // Threads inside getaddrinfo are not waited for: each leaves when its lookup returns.
  s.exit_cv.wait(lock, [&s] { return s.threads_alive == s.threads_busy; });
}

bool Resolver::valid_host(std::string_view host) noexcept {
  return !host.empty() && host.size() <= kMaxHostBytes && host.find('\0') == std::string_view::npos;
}

bool Resolver::submit(uint64_t cookie, std::string_view host, uint16_t port,
                      int family_hint) noexcept {
  if (!valid_host(host)) return false;
  if (family_hint != AF_UNSPEC && family_hint != AF_INET && family_hint != AF_INET6) return false;
  Shared& s = *shared_;
  {
    std::lock_guard lock(s.mutex);
    if (s.free_count == 0) return false;
    const uint32_t index = s.free[--s.free_count];
    Shared::Slot& slot = s.slots[index];
    slot.cookie = cookie;
    slot.port = port;
    slot.family = family_hint;
    std::memcpy(slot.host, host.data(), host.size());
    slot.host[host.size()] = '\0';
    EDGEPROXY_CHECK(s.pending_count < s.capacity);
    s.pending[(s.pending_head + s.pending_count) % s.capacity] = index;
    ++s.pending_count;
  }
  s.work_cv.notify_one();
  return true;
}

void Resolver::take(std::vector<ResolveResult>& out) {
  out.clear();
  Shared& s = *shared_;
  std::lock_guard lock(s.mutex);
  for (uint32_t i = 0; i < s.done_count; ++i) {
    const uint32_t index = s.done[i];
    out.push_back(s.slots[index].result);
    EDGEPROXY_CHECK(s.free_count < s.capacity);
    s.free[s.free_count++] = index;
  }
  s.done_count = 0;
}

uint32_t Resolver::in_flight() const noexcept {
  std::lock_guard lock(shared_->mutex);
  return shared_->capacity - shared_->free_count;
}

bool numeric_address(std::string_view host, uint16_t port, SocketAddress& out) noexcept {
  char text[INET6_ADDRSTRLEN] = {};
  if (host.empty() || host.size() >= sizeof text) return false;
  if (host.find('\0') != std::string_view::npos) return false;
  std::memcpy(text, host.data(), host.size());
  SocketAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    a.length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    a.length = sizeof(sockaddr_in6);
  } else {
    return false;
  }
  set_port(a, port);
  out = a;
  return true;
}

}  // namespace edgeproxy
