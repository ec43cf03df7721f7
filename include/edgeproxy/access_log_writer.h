// AccessLogWriter: the `edgeproxy-log` thread (decision 0012). Owns one AccessLog ring per
// worker and drains them every 100 ms, or at once when a ring passes half full, writing whole
// lines with write() to the destination: stderr, stdout or a file opened O_APPEND. Created and
// driven by the supervisor's thread; the workers only append to their rings.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "edgeproxy/access_log.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

class AccessLogWriter {
 public:
  // Allocates `workers` rings, opens `destination` (Config::access_log: "", "off", "stderr",
  // "stdout" or a file path) and starts the thread. Error: one line naming the file.
  static Result<std::unique_ptr<AccessLogWriter>> start(uint32_t workers,
                                                        const std::string& destination);
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;
  // stop(), then closes the file.
  ~AccessLogWriter();

  // Worker `index`'s ring; lives as long as the writer.
  AccessLog* ring(uint32_t index) noexcept { return rings_[index].get(); }

  // Supervisor thread: a reload's destination. A new file is opened here, so a bad path is the
  // reload's error and the running destination stays; lines appended before the switch may go
  // to either.
  Result<Ok> set_destination(const std::string& destination);
  // SIGUSR2 (logrotate): the thread reopens the file by its path, after writing what it holds to
  // the old one. A failed open keeps the old file (one error line). Nothing for stderr, stdout.
  void request_reopen() noexcept;
  // Drains every ring one last time (the workers have stopped appending) and joins the thread.
  // Idempotent.
  void stop() noexcept;

  // The bytes a write() takes at most: whole lines, and at most PIPE_BUF toward a pipe or
  // terminal so that lines of other writers (the proxy's own stderr lines) never cut one.
  static constexpr uint32_t kChunkBytes = 64 * 1024;

 private:
  struct Target {
    int fd = -1;         // -1: off
    bool owned = false;  // a file this writer opened (closed when replaced)
    bool regular = false;
    std::string path;  // the file, for reopening
  };

  explicit AccessLogWriter(int wake_fd) noexcept : wake_fd_(wake_fd) {}
  static Result<Target> open_target(const std::string& destination);
  static void* thread_main(void* arg) noexcept;
  void run() noexcept;
  // Writes what every ring holds to the current target.
  void drain() noexcept;
  // Writes out[0, n) (whole lines); returns the bytes written, fewer than n when the target
  // refused the rest (an error, or a second without room).
  uint32_t write_all(const char* out, uint32_t n) noexcept;
  void wake() noexcept;
  void replace_target(Target next) noexcept;

  int wake_fd_;  // eventfd: a ring passed half full, or a request is waiting
  std::vector<std::unique_ptr<AccessLog>> rings_;
  std::unique_ptr<char[]> chunk_;
  Target target_;  // the thread's, once it runs
  std::mutex mutex_;
  bool has_pending_ = false;  // under mutex_: pending_ replaces target_ at the next wake
  Target pending_;
  std::atomic<bool> reopen_{false};
  std::atomic<bool> stop_{false};
  pthread_t thread_{};
  bool joinable_ = false;
};

}  // namespace edgeproxy
