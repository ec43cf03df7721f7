// MetricsServer: the Prometheus endpoint (docs/metrics.md). Its own thread, edgeproxy-metrics,
// runs a small epoll loop over one listening TCP socket and at most kMaxSessions connections,
// each answering one HTTP/1.x request and closing. It never touches a worker: the body comes
// from a callback (the supervisor's snapshot, rendered), called on this thread.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "edgeproxy/net.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

// What one request head asks for, as the endpoint answers it.
struct MetricsRequest {
  uint16_t status = 400;   // 200 (GET or HEAD /metrics), 404, 405 or 400
  bool head_only = false;  // HEAD: the headers without the body
};

// Judges one complete request head (through its blank line; `head` has no NUL requirement):
// "GET /metrics HTTP/1.1" (or HTTP/1.0, a query string allowed) with header lines of the form
// "Name: value" is 200; another path 404; another method 405; anything malformed 400. Pure.
MetricsRequest parse_metrics_request(std::string_view head) noexcept;

class MetricsServer {
 public:
  static constexpr uint32_t kMaxSessions = 4;         // more are refused and counted
  static constexpr uint32_t kMaxHeadBytes = 8192;     // a longer head closes the session
  static constexpr int64_t kHeadTimeoutMs = 5000;     // the head must be complete by then
  static constexpr int64_t kWriteTimeoutMs = 10'000;  // a reader slower than this is dropped
  static constexpr int64_t kLingerMs = 1000;          // draining the request after answering

  // The body of a 200: called on the metrics thread for each scrape.
  using Body = std::function<std::string()>;

  // Binds `address` (TCP, SO_REUSEADDR), starts the thread. Error: one line naming the address.
  static Result<std::unique_ptr<MetricsServer>> start(const SocketAddress& address, Body body);

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  // Stops and joins the thread; closes every session and the listening socket.
  ~MetricsServer();

  // The bound address (the real port when 0 was asked for).
  const SocketAddress& address() const noexcept { return address_; }

 private:
  struct Loop;

  MetricsServer() = default;
  static void* thread_main(void* self) noexcept;

  SocketAddress address_;
  int wake_fd_ = -1;
  std::unique_ptr<Loop> loop_;
  pthread_t thread_{};
  bool started_ = false;
  std::atomic<bool> stop_{false};
};

}  // namespace edgeproxy
