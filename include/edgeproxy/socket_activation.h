// Socket activation (sd_listen_fds(3), written by hand): listening sockets that systemd (or any
// launcher speaking the same protocol) opened and passed from fd 3 on, named by
// LISTEN_FDNAMES, and how a configured listener finds the one meant for it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/net.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

// The first descriptor the protocol passes (SD_LISTEN_FDS_START).
inline constexpr int kFirstActivatedFd = 3;

// systemd's name for a descriptor when the launcher gave no LISTEN_FDNAMES; never matches a
// listener by name. (When a socket unit sets no FileDescriptorName=, systemd names its
// descriptors after the unit, "edgeproxy.socket", which no listener is called either.)
inline constexpr std::string_view kUnknownSocketName = "unknown";

// One passed listening socket. The process owns `fd` for its whole life: it is non-blocking and
// close-on-exec, and a listener that uses it should hold its own dup (F_DUPFD_CLOEXEC) so that a
// reload dropping the listener does not lose the socket (systemd passes it only at start).
struct ActivatedSocket {
  int fd = -1;
  std::string name;       // its LISTEN_FDNAMES entry, or kUnknownSocketName
  SocketAddress address;  // getsockname(): AF_INET, AF_INET6 or AF_UNIX (length as the kernel
                          // gives it: a path includes its NUL, an abstract name starts with one)
};

// The protocol's environment as read; null = unset.
struct ActivationEnvironment {
  const char* listen_pid = nullptr;
  const char* listen_fds = nullptr;
  const char* listen_fdnames = nullptr;
};

// Reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, takes the sockets from fd 3 on (see
// take_activated_sockets_from) and unsets all three, whatever the outcome, so nothing started
// later mistakes them for its own. Call at start-up before any thread exists (getenv/unsetenv).
Result<std::vector<ActivatedSocket>> take_activated_sockets();

// The protocol itself, on values given, for tests and for take_activated_sockets():
// - LISTEN_PID or LISTEN_FDS unset, or LISTEN_PID not `self` (the variables were meant for
//   another process, e.g. inherited through a fork-and-exec it did): no sockets, not an error,
//   and no descriptor is touched.
// - Else LISTEN_FDS = n sockets at first_fd .. first_fd + n - 1. LISTEN_FDNAMES, when set, must
//   hold n colon-separated names (systemd forbids ':' in a name); unset, every name is "unknown".
// - Each descriptor must be open and a listening stream socket (SO_TYPE, SO_ACCEPTCONN) of family
//   AF_INET, AF_INET6 or AF_UNIX: a datagram socket (ListenDatagram=), an accepted connection
//   (a socket unit with Accept=yes) or anything else is refused. Each is made O_NONBLOCK (a flag
//   of the open file description, so systemd's copy sees it too: systemd does not read from a
//   listening socket while its service runs) and FD_CLOEXEC, and its bound address is read.
// Errors (a malformed number, a name count that is not n, a descriptor refused) are one line
// naming the variable or the descriptor and its name; then no descriptor has been changed or
// closed (every one is checked before any is changed): the caller reports the line and exits.
Result<std::vector<ActivatedSocket>> take_activated_sockets_from(const ActivationEnvironment& env,
                                                                 pid_t self, int first_fd);

// True when `a` and `b` are the same socket address. Unix paths compare by their text, whether
// or not a length counts the terminating NUL; abstract names by their bytes; IP addresses as
// SocketAddress::operator== does.
bool same_socket_address(const SocketAddress& a, const SocketAddress& b) noexcept;

// The index in `sockets` of the one meant for bind `bind_address` of listener `listener_name`,
// or -1 (then the supervisor binds the address itself). Pure. Indices in `taken` (given to
// other binds already) are skipped. In order of precedence:
//   1. the name is the listener's and the address is the bind's;
//   2. the name is the listener's (the first such in fd order): the socket unit decides where a
//      named listener listens, the config's bind is then not used (a listener with two binds and
//      two sockets of its name gets both, in fd order, whatever their addresses);
//   3. the address is the bind's, whatever the name (sockets of a unit without
//      FileDescriptorName=, or a launcher that gives no names).
// A name never matches when it is "unknown" or empty. A name beats an address so that a socket
// named for a listener goes to that listener even when the file gives its bind another address.
// Across listeners the order of calls still counts: a socket named for listener B is taken by
// address (3) by a listener A called first whose bind is that socket's address; match the
// listeners in file order with one `taken` list for the whole version.
int match_activated(const std::vector<ActivatedSocket>& sockets, std::string_view listener_name,
                    const SocketAddress& bind_address, std::span<const int> taken = {});

// Logs one warning line for each socket whose index is not in `used` ("activated socket 'admin'
// (fd 5, 127.0.0.1:9000) matches no listener: kept open for a reload that adds it") and returns
// how many there were. They are kept, not closed: closing the process's copy would not close
// systemd's (connections would still queue there, unanswered, as they do now), and a later
// reload that adds the listener could no longer have the socket, which systemd passes only at
// start.
size_t warn_unused_activated(const std::vector<ActivatedSocket>& sockets,
                             std::span<const int> used);

}  // namespace edgeproxy
