// Readiness-driven byte moving; see epoll_transport.h.
#include "epoll/epoll_transport.h"

#include "edgeproxy/net.h"
#include "edgeproxy/relay.h"

namespace edgeproxy {

void EpollTransport::pump(Connection& c, BufferPool& pool, Stats& stats, LoopTime now) noexcept {
  uint32_t reads[2] = {0, 0};
  c.more = false;
  bool progressed = true;
  while (progressed && c.state != State::kClosing) {
    progressed = false;
    for (const Dir d : {Dir::kC2U, Dir::kU2C}) {
      Side& src = c.source(d);
      Side& dst = c.sink(d);
      switch (relay::next_step(c, d)) {
        case relay::Step::kNone:
          break;
        case relay::Step::kRead: {
          uint32_t& done = reads[static_cast<int>(d)];
          if (done == kReadBudget) {
            c.more = true;
            break;
          }
          if (!relay::prepare_read(c, d, pool, stats)) break;
          const uint32_t asked = src.in.writable();
          const SysResult r = sys::read(src.fd, src.in.write_ptr(), asked);
          relay::on_read(c, d, r, asked, pool, stats, now);
          ++done;
          progressed = true;
          break;
        }
        case relay::Step::kWrite: {
          const uint32_t asked = src.in.readable();
          const SysResult r = sys::send(dst.fd, src.in.read_ptr(), asked);
          relay::on_write(c, d, r, asked, pool, stats, now);
          progressed = true;
          break;
        }
        case relay::Step::kShutdown:
          // SHUT_WR only after every buffered byte was sent: the peer reads them, then EOF.
          sys::shutdown_write(dst.fd);
          relay::on_shutdown(c, d, stats, now);
          progressed = true;
          break;
      }
    }
  }
  if (c.state == State::kClosing) c.more = false;
}

}  // namespace edgeproxy
