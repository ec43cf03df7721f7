// Readiness-driven byte moving; see epoll_transport.h.
#include "epoll/epoll_transport.h"

#include <sys/resource.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

#include "edgeproxy/cookie.h"
#include "edgeproxy/relay.h"

namespace edgeproxy {
namespace {

// Descriptor numbers the pooled-socket table covers at most: 40 MiB of address space, touched
// only where descriptors are registered.
constexpr rlim_t kMaxServerSockets = rlim_t{1} << 21;

}  // namespace

uint64_t EpollTransport::cookie_of(const Connection& c, const Side& side, Handle h) const noexcept {
  if (&side == &c.upstream && in_table(side.fd)) {
    const ServerSocket& s = servers_[static_cast<uint32_t>(side.fd)];
    if (s.owned && s.owner == h) {
      return Cookie::pack(CookieTag::kServer, Handle{static_cast<uint32_t>(side.fd), s.generation});
    }
  }
  return Cookie::pack(&side == &c.client ? CookieTag::kClient : CookieTag::kUpstream, h);
}

Result<Ok> EpollTransport::init(const Config& config) {
  // Set by main before any worker starts: no descriptor of this process reaches the soft limit.
  rlimit rl{};
  const rlim_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
  servers_size_ = static_cast<uint32_t>(std::min(fds, kMaxServerSockets));
  servers_.reset(static_cast<ServerSocket*>(std::calloc(servers_size_, sizeof(ServerSocket))));
  if (servers_ == nullptr) return Error{"cannot reserve the pooled-socket table"};

  auto pipes = PipePool::create(config.pipe_count());
  if (!pipes.ok()) return Error{pipes.error()};
  pipes_ = std::move(pipes.value());
  if (pipes_.capacity() == 0) return Ok{};
  splice_ = relay::SplicePolicy{config.splice, config.splice_threshold_bytes};
  return Ok{};
}

int EpollTransport::attach(Connection& c, Handle h) noexcept {
  c.client.events = relay::wanted_interest(c, c.client);
  const SysResult a = reactor_.add(c.client.fd, cookie_of(c, c.client, h), c.client.events);
  return a.ok() ? 0 : a.err;
}

int EpollTransport::connect(Connection& c, Handle h, const SocketAddress& to) noexcept {
  const SysResult r = sys::connect(c.upstream.fd, to);
  if (r.ok()) {
    relay::on_connected(c);
  } else if (r.err == EINPROGRESS) {
    relay::on_connecting(c);
  } else {
    return r.err;
  }
  // Registered for reading at once: the connected socket then needs no EPOLL_CTL_MOD (settle).
  c.upstream.events = relay::wanted_interest(c, c.upstream) | kWantRead;
  if (c.pooled && in_table(c.upstream.fd)) {
    ServerSocket& s = servers_[static_cast<uint32_t>(c.upstream.fd)];
    s = ServerSocket{(s.generation + 1) & kGenerationMask, c.upstream.events, h, true, false};
  }
  const SysResult a = reactor_.add(c.upstream.fd, cookie_of(c, c.upstream, h), c.upstream.events);
  if (!a.ok()) return a.err;
  return r.ok() ? 0 : EINPROGRESS;
}

bool EpollTransport::detach_upstream(Connection& c, Handle, bool ending) noexcept {
  const int fd = c.upstream.fd;
  if (!in_table(fd)) {
    if (!ending && fd >= 0) reactor_.remove(fd);
    return true;
  }
  ServerSocket& s = servers_[static_cast<uint32_t>(fd)];
  s.owned = false;
  if (!(s.events & kWantRead)) {
    const uint32_t want = s.events | kWantRead;
    const uint64_t cookie =
        Cookie::pack(CookieTag::kServer, Handle{static_cast<uint32_t>(fd), s.generation});
    // Unwatched, its close would go unseen: stirred, so the pool closes it instead of lending it.
    if (reactor_.modify(fd, cookie, want).ok()) {
      s.events = want;
    } else {
      s.stirred = true;
    }
  }
  return true;
}

std::optional<Handle> EpollTransport::server_owner(Handle socket) const noexcept {
  if (!in_table(static_cast<int>(socket.index))) return std::nullopt;
  const ServerSocket& s = servers_[socket.index];
  if (s.generation != socket.generation || !s.owned) return std::nullopt;
  return s.owner;
}

bool EpollTransport::note_server_event(Handle socket) noexcept {
  if (!in_table(static_cast<int>(socket.index))) return false;
  ServerSocket& s = servers_[socket.index];
  if (s.generation != socket.generation) return false;
  if (!s.owned) s.stirred = true;
  return true;
}

std::optional<bool> EpollTransport::free_socket_alive(int fd) const noexcept {
  if (!in_table(fd)) return std::nullopt;
  return !servers_[static_cast<uint32_t>(fd)].stirred;
}

int EpollTransport::adopt_upstream(Connection& c, Handle h) noexcept {
  relay::on_connected(c);
  if (in_table(c.upstream.fd)) {
    // Registered since its connect: the owner changes, the registration does not. An edge that
    // came while it was free stirred it, and the pool did not lend it.
    ServerSocket& s = servers_[static_cast<uint32_t>(c.upstream.fd)];
    s.owner = h;
    s.owned = true;
    c.upstream.events = s.events;
    return 0;
  }
  // MOD (ADD for a socket never registered) polls the socket: a socket already readable (a close
  // that raced the hand-over) raises its edge at once. A detached socket is still registered
  // (detach_upstream).
  c.upstream.events = relay::wanted_interest(c, c.upstream);
  const uint64_t cookie = cookie_of(c, c.upstream, h);
  SysResult a = reactor_.modify(c.upstream.fd, cookie, c.upstream.events);
  if (a.err == ENOENT) a = reactor_.add(c.upstream.fd, cookie, c.upstream.events);
  return a.ok() ? 0 : a.err;
}

ConnectResult EpollTransport::on_event(Connection& c, Handle, bool client, const Event& ev,
                                       LoopTime) noexcept {
  if (c.state == State::kClosing) {
    // The pool may still keep this connection's server socket (http_release): the edge this
    // event used up would otherwise go unseen, and the socket be lent as alive (decision 0020).
    if (!client && in_table(c.upstream.fd) && (ev.ready & (kReadable | kHangup | kError))) {
      servers_[static_cast<uint32_t>(c.upstream.fd)].stirred = true;
    }
    return {};
  }
  // No upstream: an event from a pooled socket this connection gave back (detach_upstream).
  if (!client && c.upstream.fd < 0) return {};
  if (!client && c.state == State::kConnecting) {
    if (!(ev.ready & (kWritable | kError | kHangup))) return {};
    // A non-blocking connect reports its outcome as writability; a failed one adds EPOLLERR (the
    // socket's error is pending), and only then is SO_ERROR read for the errno.
    const int err = (ev.ready & (kError | kHangup)) ? sys::socket_error(c.upstream.fd) : 0;
    if (err != 0) return {ConnectOutcome::kFailed, err};
    relay::on_connected(c);
    relay::on_ready(c, c.upstream, ev.ready, stats_);
    return {ConnectOutcome::kConnected, 0};
  }
  relay::on_ready(c, client ? c.client : c.upstream, ev.ready, stats_);
  return {};
}

void EpollTransport::pump(Connection& c, Handle, LoopTime now) noexcept {
  uint32_t reads[2] = {0, 0};
  c.more = false;
  if (c.accel.blocks != 0) relay::discard_undeliverable(c, pool_, stats_);
  bool progressed = true;
  while (progressed && c.state < State::kLingering) {
    progressed = false;
    for (const Dir d : {Dir::kC2U, Dir::kU2C}) {
      Side& src = c.source(d);
      Side& dst = c.sink(d);
      uint32_t& done = reads[static_cast<int>(d)];
      const uint32_t budget = (c.limits & one_read_flags(d)) ? 1u : read_budget_;
      relay::Step step = relay::next_step(c, d, splice_);
      if (step == relay::Step::kWrite && done < budget && relay::reads_to_end_first(c, d)) {
        step = relay::Step::kRead;
      }
      switch (step) {
        case relay::Step::kNone:
          break;
        case relay::Step::kRead:
        case relay::Step::kSpliceIn: {
          // A rate- or byte-limited direction reads once a pump: its meter and its count, checked
          // between pumps, are then never more than one read behind (docs/limits.md).
          if (done == budget) {
            c.more = true;
            break;
          }
          // With no pipe free, this read goes through a buffer as with --splice never.
          if (step == relay::Step::kSpliceIn && relay::prepare_splice(c, d, pipes_, stats_)) {
            const SysResult r =
                sys::splice(src.fd, pipes_.at(src.pipe).write_fd, relay::splice_ask(src));
            relay::on_splice_in(c, d, r, pipes_, stats_, now);
          } else {
            if (!relay::prepare_read(c, d, pool_, stats_)) break;
            const uint32_t asked = src.in.writable();
            const SysResult r = sys::read(src.fd, src.in.write_ptr(), asked);
            const bool at_fin = relay::read_stopped_at_fin(src, r, asked);
            relay::on_read(c, d, r, asked, pool_, stats_, now);
            // The read() that would return 0, without making it.
            if (at_fin) relay::on_read(c, d, SysResult{0, 0}, asked, pool_, stats_, now);
            // A full block of an accelerating connection joins its chain instead of pausing.
            if (c.accel_limit != 0 && d == Dir::kU2C && src.in.full()) {
              relay::accelerate(c, pool_, stats_, pool_.available());
            }
          }
          ++done;
          progressed = true;
          break;
        }
        case relay::Step::kSpliceOut: {
          const uint32_t asked = src.piped;
          const SysResult r = sys::splice(pipes_.at(src.pipe).read_fd, dst.fd, asked);
          relay::on_splice_out(c, d, r, asked, pipes_, stats_, now);
          progressed = true;
          break;
        }
        case relay::Step::kWrite: {
          if (d == Dir::kU2C && c.accel.blocks != 0) {
            write_chain(c, now);
          } else {
            const uint32_t asked = relay::writable(src);
            const bool last = relay::last_write(c, d, asked);
            const SysResult r = sys::send(dst.fd, src.in.read_ptr(), asked, last);
            relay::on_write(c, d, r, asked, pool_, stats_, now);
            // The bytes sent with MSG_MORE wait for this FIN: nothing may come between.
            if (last && relay::next_step(c, d, splice_) == relay::Step::kShutdown) {
              shut(c, d, now);
            }
          }
          progressed = true;
          break;
        }
        case relay::Step::kShutdown:
          shut(c, d, now);
          progressed = true;
          break;
      }
    }
  }
  if (c.state >= State::kLingering) c.more = false;
}

void EpollTransport::shut(Connection& c, Dir d, LoopTime now) noexcept {
  relay::on_shutdown(
      c, d, relay::shutdown_is_last(c, d) ? SysResult{} : sys::shutdown_write(c.sink(d).fd), stats_,
      now);
}

void EpollTransport::write_chain(Connection& c, LoopTime now) noexcept {
  iovec iov[kChainIovecs + 1];
  uint32_t asked = 0;
  uint32_t n = pool_.chain_iov(c.accel, iov, kChainIovecs, asked);
  // Behind the whole chain, what upstream.in holds (forward listeners never accelerate: no gate).
  if (n == c.accel.blocks && !c.upstream.in.empty()) {
    iov[n].iov_base = const_cast<std::byte*>(c.upstream.in.read_ptr());
    iov[n].iov_len = c.upstream.in.readable();
    asked += c.upstream.in.readable();
    ++n;
  }
  const SysResult r = sys::send_iov(c.client.fd, iov, n);
  relay::on_write(c, Dir::kU2C, r, asked, pool_, stats_, now);
}

uint32_t EpollTransport::registered_interest(const Connection& c, const Side& side) noexcept {
  const uint32_t want = relay::wanted_interest(c, side);
  if (c.state >= State::kLingering) return want;
  // Edge-triggered interest is dropped lazily: one the connection no longer wants raises no
  // event until its condition rises again. Writability rises again only after a send met a full
  // buffer, when writing is wanted anyway. Readability of a side at its EOF ends with the
  // hang-up, reported whatever the interest; of a side whose peer failed, the connection is
  // about to linger (then the interest is exact). A pause drops reading at once: that is the
  // backpressure (the receive window closes while nothing is read), and the replay pause keeps
  // it (wanted_interest). relay::next_step decides what is read and written either way.
  const bool paused = (side.paused & ~kPauseReplay) != 0;
  return want | (side.events & (paused ? ~kWantRead : ~0u));
}

bool EpollTransport::settle(Connection& c, Handle h) noexcept {
  for (Side* side : {&c.client, &c.upstream}) {
    const uint32_t want = registered_interest(c, *side);
    if (want == side->events || side->fd < 0) continue;
    if ((side->events & ~want & kWantRead) && (side->paused & kPauseBackpressure)) {
      ++stats_.backpressure_pauses;  // the buffer stayed full to the end of the iteration
    }
    const SysResult r = reactor_.modify(side->fd, cookie_of(c, *side, h), want);
    if (!r.ok()) {
      relay::abort(c, EndReason::kInternalError);  // without its registration the side would never
                                                   // be heard from again
      return false;
    }
    side->events = want;
    if (side == &c.upstream && in_table(side->fd)) {
      ServerSocket& s = servers_[static_cast<uint32_t>(side->fd)];
      if (s.owned && s.owner == h) s.events = want;
    }
  }
  return true;
}

}  // namespace edgeproxy
