// PipePool: pipes made at start-up and reused; see pipe_pool.h.
#include "edgeproxy/pipe_pool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "edgeproxy/check.h"
#include "edgeproxy/connection.h"
#include "edgeproxy/log.h"
#include "edgeproxy/net.h"
#include "edgeproxy/stats.h"

namespace edgeproxy {

int PipePool::open_pipe(Pipe& pipe, uint32_t grow_bytes, uint32_t& got_bytes) noexcept {
  int fds[2];
  // O_NONBLOCK on both ends: a splice into a full pipe or out of an empty one returns EAGAIN
  // instead of sleeping, whatever flags the caller passes.
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return errno;
  pipe = Pipe{fds[0], fds[1]};
  // The kernel rounds up to a power-of-two number of pages, and refuses with EPERM past the
  // per-user pipe limits: the size the pipe has then stays.
  int size = grow_bytes != 0 ? fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(grow_bytes)) : -1;
  if (size < 0) size = fcntl(fds[1], F_GETPIPE_SZ);
  got_bytes = size > 0 ? static_cast<uint32_t>(size) : 0;
  return 0;
}

Result<PipePool> PipePool::create(uint32_t count, uint32_t pipe_bytes) {
  PipePool p;
  if (count == 0) return p;
  p.pipes_ = std::make_unique<Pipe[]>(count);
  p.free_ = std::make_unique<uint32_t[]>(count);
  p.grow_bytes_ = pipe_bytes;
  const uint64_t growable = pipe_bytes == 0 ? 0 : kGrowBudgetBytes / pipe_bytes;
  p.grown_ = static_cast<uint32_t>(growable < count ? growable : count);
  uint32_t refused = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const uint32_t grow = i < p.grown_ ? pipe_bytes : 0;
    uint32_t got = 0;
    if (const int err = open_pipe(p.pipes_[i], grow, got); err != 0) {
      p.count_ = i;  // the destructor closes the ones made so far
      return Error{"cannot create the splice pipe pool (" + std::to_string(count) +
                   " pipes, 2 descriptors each): " + std::strerror(err)};
    }
    if (got < grow) ++refused;
    p.count_ = i + 1;
  }
  if (refused > 0) {
    // splice still works through the smaller pipes, in smaller steps.
    log_warn("%u of %u splice pipes could not grow to %u bytes (fs.pipe-user-pages-soft)", refused,
             p.grown_, pipe_bytes);
  }
  for (uint32_t i = 0; i < count; ++i) p.free_[i] = count - 1 - i;  // id 0 handed out first
  p.top_ = count;
  return p;
}

PipePool::PipePool(PipePool&& other) noexcept
    : pipes_(std::move(other.pipes_)),
      free_(std::move(other.free_)),
      count_(std::exchange(other.count_, 0)),
      top_(std::exchange(other.top_, 0)),
      high_water_(std::exchange(other.high_water_, 0)),
      lost_(std::exchange(other.lost_, 0)),
      grown_(std::exchange(other.grown_, 0)),
      grow_bytes_(other.grow_bytes_) {}

PipePool& PipePool::operator=(PipePool&& other) noexcept {
  if (this == &other) return *this;
  close_all();
  pipes_ = std::move(other.pipes_);
  free_ = std::move(other.free_);
  count_ = std::exchange(other.count_, 0);
  top_ = std::exchange(other.top_, 0);
  high_water_ = std::exchange(other.high_water_, 0);
  lost_ = std::exchange(other.lost_, 0);
  grown_ = std::exchange(other.grown_, 0);
  grow_bytes_ = other.grow_bytes_;
  return *this;
}

PipePool::~PipePool() {
  close_all();
}

void PipePool::close_all() noexcept {
  for (uint32_t i = 0; i < count_; ++i) {
    if (pipes_[i].read_fd >= 0) sys::close(pipes_[i].read_fd);
    if (pipes_[i].write_fd >= 0) sys::close(pipes_[i].write_fd);
    pipes_[i] = Pipe{};
  }
  count_ = top_ = lost_ = grown_ = 0;
}

bool PipePool::acquire(uint32_t& id) noexcept {
  if (top_ == 0) return false;
  id = free_[--top_];
  if (in_use() > high_water_) high_water_ = in_use();
  return true;
}

void PipePool::release(uint32_t id) noexcept {
  EDGEPROXY_CHECK(id < count_ && top_ < capacity() && pipes_[id].read_fd >= 0);
  free_[top_++] = id;
}

bool PipePool::recycle(uint32_t id) noexcept {
  EDGEPROXY_CHECK(id < count_ && top_ < capacity());
  Pipe& pipe = pipes_[id];
  // Closing drops whatever the pipe held (references to socket pages). The new pipe normally
  // gets the two descriptors just freed, unless another worker's thread took them meanwhile.
  sys::close(pipe.read_fd);
  sys::close(pipe.write_fd);
  pipe = Pipe{};
  uint32_t got = 0;
  if (open_pipe(pipe, id < grown_ ? grow_bytes_ : 0, got) != 0) {
    ++lost_;
    return false;
  }
  free_[top_++] = id;
  return true;
}

void PipePool::release_all(Connection& c, Stats& stats) noexcept {
  release_side(c.client, stats);
  release_side(c.upstream, stats);
}

void PipePool::release_side(Side& side, Stats& stats) noexcept {
  if (side.pipe == kNoPipe) return;
  if (side.piped == 0) {
    release(side.pipe);
  } else {
    ++stats.splice_pipes_dirty;
    recycle(side.pipe);
  }
  side.pipe = kNoPipe;
  side.piped = 0;
}

}  // namespace edgeproxy
