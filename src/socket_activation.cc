// Socket activation by hand; see socket_activation.h.
#include "edgeproxy/socket_activation.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "edgeproxy/log.h"

namespace edgeproxy {
namespace {

// More listening sockets than any configuration would have: a larger LISTEN_FDS is refused
// rather than walked.
constexpr long kMaxActivatedSockets = 4096;

// A whole decimal number in [0, max], no sign, no spaces; false otherwise.
bool parse_count(const char* text, long max, long* out) noexcept {
  const char* end = text + std::strlen(text);
  unsigned long v = 0;
  const auto [at, ec] = std::from_chars(text, end, v);
  if (ec != std::errc{} || at != end || text == end || v > static_cast<unsigned long>(max)) {
    return false;
  }
  *out = static_cast<long>(v);
  return true;
}

// The names in LISTEN_FDNAMES: separated by ':', empty names kept, an empty value holds none
// (as sd_listen_fds_with_names(3) splits it).
std::vector<std::string> split_names(std::string_view text) {
  std::vector<std::string> names;
  if (text.empty()) return names;
  for (size_t start = 0;;) {
    const size_t colon = text.find(':', start);
    names.emplace_back(text.substr(start, colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return names;
}

// The bytes of a Unix address's sun_path that its length covers.
std::string_view unix_path_bytes(const SocketAddress& a) noexcept {
  const auto* un = reinterpret_cast<const sockaddr_un*>(&a.storage);
  constexpr size_t kOffset = offsetof(sockaddr_un, sun_path);
  size_t n = a.length > kOffset ? a.length - kOffset : 0;
  n = std::min(n, sizeof un->sun_path);
  // A path is text up to its NUL, whether or not the length counted it; an abstract name (a
  // leading NUL) is every byte the length covers, NULs included.
  if (n > 0 && un->sun_path[0] != '\0') n = strnlen(un->sun_path, n);
  return {un->sun_path, n};
}

// "127.0.0.1:80", "[::1]:80", "unix:/run/edgeproxy.sock" or "unix:@name", for messages.
// SocketAddress::to_string() knows IP addresses only.
std::string describe(const SocketAddress& a) {
  if (a.family() != AF_UNIX) return a.to_string();
  std::string_view path = unix_path_bytes(a);
  if (path.empty()) return "unix:(unnamed)";
  if (path.front() == '\0') return "unix:@" + std::string(path.substr(1));
  return "unix:" + std::string(path);
}

// Checks that `fd` is an open listening stream socket of a family edgeproxy serves and reads
// its address; changes nothing.
Result<SocketAddress> inspect(int fd, const std::string& name) {
  const std::string what = "activated fd " + std::to_string(fd) + " '" + name + "'";
  if (::fcntl(fd, F_GETFD) < 0) return Error{what + ": not open (" + std::strerror(errno) + ")"};
  int type = 0;
  socklen_t length = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) {
    return Error{what + ": not a socket (" + std::strerror(errno) + ")"};
  }
  if (type != SOCK_STREAM) {
    return Error{what +
                 ": not a stream socket (ListenStream= passes those; ListenDatagram= and "
                 "ListenSequentialPacket= are not served)"};
  }
  int listening = 0;
  length = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) != 0) {
    return Error{what + ": getsockopt(SO_ACCEPTCONN): " + std::strerror(errno)};
  }
  if (listening == 0) {
    return Error{what +
                 ": a stream socket that is not listening (a socket unit with Accept=yes "
                 "passes one connection per process; edgeproxy needs Accept=no)"};
  }
  SocketAddress address;
  address.length = sizeof address.storage;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address.storage), &address.length) != 0) {
    return Error{what + ": getsockname: " + std::strerror(errno)};
  }
  const int family = address.family();
  if (family != AF_INET && family != AF_INET6 && family != AF_UNIX) {
    return Error{what + ": address family " + std::to_string(family) +
                 " is not served (only IPv4, IPv6 and Unix sockets)"};
  }
  return address;
}

// O_NONBLOCK (edge-triggered accept loops drain until EAGAIN) and FD_CLOEXEC.
Result<Ok> prepare(int fd, const std::string& name) {
  const int status = ::fcntl(fd, F_GETFL);
  const int descriptor = ::fcntl(fd, F_GETFD);
  if (status < 0 || descriptor < 0 || ::fcntl(fd, F_SETFL, status | O_NONBLOCK) != 0 ||
      ::fcntl(fd, F_SETFD, descriptor | FD_CLOEXEC) != 0) {
    return Error{"activated fd " + std::to_string(fd) + " '" + name +
                 "': fcntl: " + std::strerror(errno)};
  }
  return Ok{};
}

bool contains(std::span<const int> indices, int index) noexcept {
  return std::find(indices.begin(), indices.end(), index) != indices.end();
}

}  // namespace

Result<std::vector<ActivatedSocket>> take_activated_sockets() {
  static constexpr const char* kVariables[] = {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"};
  // Copied before unsetenv, which may free what getenv returned.
  std::string values[3];
  const char* given[3] = {};
  for (size_t i = 0; i < 3; ++i) {
    if (const char* v = std::getenv(kVariables[i])) {
      values[i] = v;
      given[i] = values[i].c_str();
    }
    ::unsetenv(kVariables[i]);
  }
  return take_activated_sockets_from(ActivationEnvironment{given[0], given[1], given[2]},
                                     ::getpid(), kFirstActivatedFd);
}

Result<std::vector<ActivatedSocket>> take_activated_sockets_from(const ActivationEnvironment& env,
                                                                 pid_t self, int first_fd) {
  std::vector<ActivatedSocket> sockets;
  if (env.listen_pid == nullptr || env.listen_fds == nullptr) return sockets;
  long pid = 0;
  if (!parse_count(env.listen_pid, LONG_MAX, &pid) || pid == 0) {
    return Error{std::string("LISTEN_PID='") + env.listen_pid + "' is not a process id"};
  }
  if (pid != self) return sockets;
  long count = 0;
  const long max = std::min(kMaxActivatedSockets, static_cast<long>(INT_MAX - first_fd));
  if (!parse_count(env.listen_fds, max, &count)) {
    return Error{std::string("LISTEN_FDS='") + env.listen_fds +
                 "' is not a number of descriptors from 0 to " + std::to_string(max)};
  }
  std::vector<std::string> names;
  if (env.listen_fdnames != nullptr) {
    names = split_names(env.listen_fdnames);
    if (names.size() != static_cast<size_t>(count)) {
      return Error{std::string("LISTEN_FDNAMES='") + env.listen_fdnames + "' holds " +
                   std::to_string(names.size()) +
                   " name(s) for LISTEN_FDS=" + std::to_string(count) + " descriptor(s)"};
    }
  } else {
    names.assign(static_cast<size_t>(count), std::string(kUnknownSocketName));
  }
  // Every descriptor is checked before any is changed, so a refusal leaves them all as passed.
  for (int i = 0; i < static_cast<int>(count); ++i) {
    const size_t at = static_cast<size_t>(i);
    auto address = inspect(first_fd + i, names[at]);
    if (!address.ok()) return Error{address.error()};
    sockets.push_back(ActivatedSocket{first_fd + i, std::move(names[at]), address.value()});
  }
  for (const ActivatedSocket& s : sockets) {
    auto prepared = prepare(s.fd, s.name);
    if (!prepared.ok()) return Error{prepared.error()};
  }
  return sockets;
}

bool same_socket_address(const SocketAddress& a, const SocketAddress& b) noexcept {
  if (a.family() != b.family()) return false;
  if (a.family() != AF_UNIX) return a == b;
  return unix_path_bytes(a) == unix_path_bytes(b);
}

int match_activated(const std::vector<ActivatedSocket>& sockets, std::string_view listener_name,
                    const SocketAddress& bind_address, std::span<const int> taken) {
  const bool by_name = !listener_name.empty() && listener_name != kUnknownSocketName;
  int named = -1;
  int addressed = -1;
  for (size_t i = 0; i < sockets.size(); ++i) {
    const int index = static_cast<int>(i);
    if (contains(taken, index)) continue;
    const bool name_matches = by_name && sockets[i].name == listener_name;
    const bool address_matches = same_socket_address(sockets[i].address, bind_address);
    if (name_matches && address_matches) return index;
    if (name_matches && named < 0) named = index;
    if (address_matches && addressed < 0) addressed = index;
  }
  return named >= 0 ? named : addressed;
}

size_t warn_unused_activated(const std::vector<ActivatedSocket>& sockets,
                             std::span<const int> used) {
  size_t unused = 0;
  for (size_t i = 0; i < sockets.size(); ++i) {
    if (contains(used, static_cast<int>(i))) continue;
    ++unused;
    log_warn(
        "activated socket '%s' (fd %d, %s) matches no listener: kept open for a reload "
        "that adds it",
        sockets[i].name.c_str(), sockets[i].fd, describe(sockets[i].address).c_str());
  }
  return unused;
}

}  // namespace edgeproxy
