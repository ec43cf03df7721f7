// Socket addresses, name resolution and thin syscall wrappers. Every wrapper captures errno at
// once into a SysResult and retries EINTR itself; sockets are always NONBLOCK|CLOEXEC and sends
// use MSG_NOSIGNAL, so a closed peer is an EPIPE value, never a signal.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/result.h"

namespace edgeproxy {

// An IPv4, IPv6 or Unix (AF_UNIX, path) socket address.
struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int family() const noexcept { return storage.ss_family; }
  // 0 for a Unix address.
  uint16_t port() const noexcept;
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
  // Unix addresses compare by path; others byte for byte.
  bool operator==(const SocketAddress& o) const noexcept;
  // "127.0.0.1:8080", "[::1]:8080" or "unix:/run/app.sock".
  std::string to_string() const;
};

// The AF_UNIX address of the filesystem path `path`. Refuses an empty path and one that does
// not fit sun_path with its terminating NUL.
Result<SocketAddress> unix_address(std::string_view path);

// Resolves `host` (an IPv4/IPv6 literal or a name) once, for TCP: every address, in the
// resolver's order of preference (RFC 6724: getaddrinfo's), duplicates dropped, at most
// kMaxAddresses. Literals never touch DNS. `flag` names the option in the error message.
inline constexpr size_t kMaxAddresses = 16;
Result<std::vector<SocketAddress>> resolve_all(const std::string& host, uint16_t port,
                                               const char* flag);
// The first address resolve_all() gives (what a listener binds).
Result<SocketAddress> resolve(const std::string& host, uint16_t port, const char* flag);

namespace sys {

SysResult read(int fd, void* data, size_t size) noexcept;
// `more`: MSG_MORE, the caller's promise that a shutdown or close follows at once (relay::
// last_write), so the FIN rides in the last segment.
SysResult send(int fd, const void* data, size_t size, bool more = false) noexcept;
// Texts the proxy answers with go out in one non-blocking send on a socket that has nothing else
// queued (short, less than any socket's send buffer): true when all of `text` went; what does
// not fit is a peer that stopped reading, and the caller resets it.
bool send_whole(int fd, std::string_view text) noexcept;
// sendmsg(2) of `count` iovecs (at most IOV_MAX), MSG_NOSIGNAL | MSG_DONTWAIT: a writev that a
// vanished peer answers with EPIPE, never SIGPIPE.
SysResult send_iov(int fd, const iovec* iov, size_t count) noexcept;
// splice(2) of up to `size` bytes between a socket and a pipe, SPLICE_F_NONBLOCK | SPLICE_F_MOVE:
// EAGAIN, never a sleep, when the source is empty or the destination full. splice has no
// MSG_NOSIGNAL: into a socket whose peer is gone it raises SIGPIPE as well as returning EPIPE, so
// the process must ignore SIGPIPE (main does).
SysResult splice(int fd_in, int fd_out, size_t size) noexcept;
// accept4(2), non-blocking and close-on-exec. With `peer`, the client's address comes with it
// (no getpeername(2) later); its length is 0 for a peer the kernel gave no address (never for
// TCP).
SysResult accept(int listen_fd, SocketAddress* peer = nullptr) noexcept;
// True for accept errors that concern only the connection being accepted (it died in the queue,
// or policy refused it): skip it and keep accepting. Anything else is exhaustion or a fault.
bool accept_error_is_transient(int err) noexcept;
// True for errors of accept() or socket() that mean the process or the kernel is out of
// descriptors or memory for now: retrying at once would fail again, so wait for a close.
bool descriptors_exhausted(int err) noexcept;
SysResult stream_socket(int family) noexcept;
// 0 when connected at once, EINPROGRESS while a non-blocking connect continues, else the error.
SysResult connect(int fd, const SocketAddress& to) noexcept;
SysResult shutdown_write(int fd) noexcept;
// Bytes written to a TCP socket that its peer has not acknowledged yet (SIOCOUTQ).
SysResult unacked_bytes(int fd) noexcept;
// The pending socket error (SO_ERROR), e.g. the outcome of a non-blocking connect.
int socket_error(int fd) noexcept;
// An IPPROTO_TCP option that takes 0 or 1 (set_no_delay and set_quick_ack are two). False when
// the socket refused it.
bool set_tcp_option(int fd, int option, bool on) noexcept;
// TCP_NODELAY. Set on a listening socket, every socket accepted from it has it too (Linux
// copies the listener's Nagle setting into the accepted socket): one call per listener instead of
// one per connection. False when the socket refused it (not TCP).
bool set_no_delay(int fd, bool on) noexcept;
// TCP_QUICKACK (decision 0017). Off puts the socket in Linux's delayed-ACK ("pingpong") mode:
// - on a listening socket, every socket accepted from it starts in it, so a client's first bytes
//   are acknowledged by the answer (or after the delayed-ACK timeout, 40 ms or more) instead of
//   by a segment of their own;
// - on a socket before its connect, the handshake's last ACK waits for the first bytes sent (or
//   for up to 200 ms), so it rides in their segment; Linux then gives quick ACKs again, until a
//   send soon after a receive (the first one, on 5.17 and later) puts the socket back in
//   delayed-ACK mode.
// On again, the socket leaves that mode. False when the socket refused it (not TCP).
bool set_quick_ack(int fd, bool on) noexcept;
// TCP_DEFER_ACCEPT on a listening socket (decision 0017): a connection is accepted only once its
// client's first bytes arrived, or once `seconds` passed (Linux then accepts it at the client's
// next ACK); 0 turns it off. False when the socket refused it (not TCP).
bool set_defer_accept(int fd, uint32_t seconds) noexcept;
// Bytes the kernel holds in the socket's receive queue, not read yet (FIONREAD); 0 on error.
uint32_t queued_bytes(int fd) noexcept;
// The next close() sends a reset instead of a FIN.
void set_linger_zero(int fd) noexcept;
void close(int fd) noexcept;

}  // namespace sys
}  // namespace edgeproxy
