// NotifyClient: the sd_notify(3) protocol, written by hand: one AF_UNIX datagram per message to
// the socket named by $NOTIFY_SOCKET, so systemd (Type=notify) learns when edgeproxy is ready, is
// reloading and is stopping, and shows a one-line status in `systemctl status`.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace edgeproxy {

// Owns one non-blocking SOCK_DGRAM socket (CLOEXEC) when $NOTIFY_SOCKET named a usable address,
// nothing otherwise: then every method is a no-op, so callers never test whether systemd is
// there. Each message is one datagram sent with sendto() to the address read at construction
// (the receiving socket may be re-created, e.g. by `systemctl daemon-reexec`: nothing stays
// connected). A send never blocks: a full receive queue is EAGAIN, and a failed send is counted
// and dropped, with one warning line for the first failure only. systemd attributes a message to
// the service by the sender's pid in SCM_CREDENTIALS, the process id (the thread group), so any
// thread of the main process may send (NotifyAccess=main). Not thread-safe: one thread at a time
// (the supervisor's).
class NotifyClient {
 public:
  // systemd reads at most this many bytes of one message (NOTIFY_BUFFER_MAX, PIPE_BUF) and drops
  // a longer one, so a status line is cut to keep the whole datagram within it.
  static constexpr size_t kMaxMessageBytes = 4096;

  // A no-op client.
  NotifyClient() noexcept = default;
  // Reads $NOTIFY_SOCKET (left set: edgeproxy starts no child that could inherit it). Unset: a
  // no-op client, silently. Call at start-up, before threads exist (getenv).
  static NotifyClient from_environment() noexcept;
  // `value` as $NOTIFY_SOCKET would hold it (null: unset): an absolute path ("/run/systemd/
  // notify"), or an abstract socket name written with a leading '@' ("@/org/.../notify"). Anything
  // else (empty, relative, "vsock:..." which systemd 253+ may use, or too long for sun_path), and a
  // socket() that fails, give one warning line and a no-op client.
  static NotifyClient from_value(const char* value) noexcept;

  NotifyClient(NotifyClient&& other) noexcept;
  NotifyClient& operator=(NotifyClient&& other) noexcept;
  NotifyClient(const NotifyClient&) = delete;
  NotifyClient& operator=(const NotifyClient&) = delete;
  ~NotifyClient();

  // True when messages are sent somewhere.
  bool enabled() const noexcept { return fd_ >= 0; }

  // "READY=1" and, when `status` is not empty, "STATUS=<status>" in the same datagram: start-up
  // done (every listener open), or a reload finished (after reloading()).
  void ready(std::string_view status = {}) noexcept;
  // "RELOADING=1" and "MONOTONIC_USEC=<CLOCK_MONOTONIC in microseconds>" in one datagram:
  // a reload started; ready() must follow, whether the reload succeeded or changed nothing.
  // systemd 253+ (Type=notify-reload) needs the timestamp to tell this reload from an older one;
  // systemd 252 (Debian 12) ignores it and just shows "reloading" until READY=1.
  void reloading() noexcept;
  // "STOPPING=1" and, when `status` is not empty, "STATUS=<status>": shutdown has begun.
  void stopping(std::string_view status = {}) noexcept;
  // "STATUS=<line>": free text for `systemctl status`. An empty line sends nothing.
  void status(std::string_view line) noexcept;

  // Messages that could not be sent (ECONNREFUSED: nobody listens; EAGAIN: queue full; ...).
  uint64_t send_failures() const noexcept { return send_failures_; }

 private:
  // Appends "STATUS=" and `line` to `out` (of `used` bytes), control characters (the protocol's
  // '\n' separator, a NUL that makes systemd drop the message) turned into spaces, cut to fit
  // kMaxMessageBytes. Returns the new length.
  static size_t append_status(char* out, size_t used, std::string_view line) noexcept;
  // Sends `head` ("READY=1"; may be empty) and, when `status` is not empty, its STATUS= line.
  void send_with_status(std::string_view head, std::string_view status) noexcept;
  void send(const char* data, size_t size) noexcept;

  int fd_ = -1;
  sockaddr_un address_{};
  socklen_t address_length_ = 0;
  std::string name_;  // $NOTIFY_SOCKET as given, for the warning line
  uint64_t send_failures_ = 0;
  bool warned_ = false;
};

}  // namespace edgeproxy
