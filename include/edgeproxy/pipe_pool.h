// PipePool: a fixed set of pipes for splice(2), created once at start-up and handed out by id
// with no syscall (a LIFO stack of free ids, like the BufferPool). A direction holds a pipe only
// while bytes are in it, so an idle connection holds none. Single-threaded: owned by one
// Worker's transport.
#pragma once

#include <cstdint>
#include <memory>

#include "edgeproxy/result.h"

namespace edgeproxy {

struct Connection;
struct Side;
struct Stats;

inline constexpr uint32_t kNoPipe = UINT32_MAX;
// What one splice from a socket into a pipe asks for: more than any pipe holds, so the pipe's
// free slots and the bytes the socket has decide how much moves.
inline constexpr uint32_t kSpliceAskBytes = 1u << 30;

struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
};

class PipePool {
 public:
  // Size pipes are asked to grow to (F_SETPIPE_SZ). The kernel counts a pipe's capacity in
  // page-sized slots and a splice from a socket fills one slot per skb fragment, so a bigger pipe
  // moves more per call (measured in docs/backends.md: 256 KiB against the 64 KiB default).
  static constexpr uint32_t kPipeBytes = 256 * 1024;
  // The kernel charges every slot a pipe may hold to its user, used or not, and past
  // fs.pipe-user-pages-soft (64 MiB by default) an unprivileged user's new pipes get 2 slots and
  // cannot grow. So only the first pipes of a pool are grown, up to this many bytes together
  // (64 pipes of 256 KiB); the rest keep the 64 KiB default. The free stack hands out the most
  // recently returned pipe first, starting from the lowest ids, so the grown pipes serve as long
  // as no more directions than that have spliced at once.
  static constexpr uint64_t kGrowBudgetBytes = 16ull << 20;

  // An empty pool: acquire() always fails.
  PipePool() noexcept = default;
  // Creates `count` pipes, O_NONBLOCK | O_CLOEXEC, the first kGrowBudgetBytes / pipe_bytes of
  // them grown to `pipe_bytes` (one warning line if the kernel refused). count == 0 gives an
  // empty pool. Fails (closing what it made) if a pipe cannot be created, e.g. EMFILE: one line
  // naming the count.
  static Result<PipePool> create(uint32_t count, uint32_t pipe_bytes = kPipeBytes);

  PipePool(PipePool&& other) noexcept;
  PipePool& operator=(PipePool&& other) noexcept;
  PipePool(const PipePool&) = delete;
  PipePool& operator=(const PipePool&) = delete;
  ~PipePool();  // closes every pipe, handed out or not

  // Takes a free pipe; false when none is left (the caller keeps using buffers). No syscall.
  bool acquire(uint32_t& id) noexcept;
  // Returns an empty pipe that no pending operation refers to. No syscall.
  void release(uint32_t id) noexcept;
  // Returns a pipe that may still hold bytes (its connection closed with bytes in flight): the
  // pipe is closed and a new one made in its place, so the next user never sees stale bytes.
  // Syscalls, so only on that close path. False if no new pipe could be made: the slot is then
  // lost and the pool is one pipe smaller.
  bool recycle(uint32_t id) noexcept;
  // At close, once no operation refers to them: gives both sides' pipes back, an emptied one
  // with release(), one still holding bytes with recycle() (counted in splice_pipes_dirty).
  void release_all(Connection& c, Stats& stats) noexcept;
  // release_all() for one side (a pooled upstream leaving its connection, decision 0015).
  void release_side(Side& side, Stats& stats) noexcept;

  const Pipe& at(uint32_t id) const noexcept { return pipes_[id]; }
  uint32_t capacity() const noexcept { return count_ - lost_; }
  uint32_t available() const noexcept { return top_; }
  uint32_t in_use() const noexcept { return capacity() - top_; }
  uint32_t high_water() const noexcept { return high_water_; }
  uint32_t lost() const noexcept { return lost_; }
  // Pipes 0 .. grown() - 1 are the ones create() tried to grow.
  uint32_t grown() const noexcept { return grown_; }

 private:
  // Opens one pipe, grown to `grow_bytes` unless 0; errno on failure. `got_bytes` is its size.
  static int open_pipe(Pipe& pipe, uint32_t grow_bytes, uint32_t& got_bytes) noexcept;
  void close_all() noexcept;

  std::unique_ptr<Pipe[]> pipes_;
  std::unique_ptr<uint32_t[]> free_;  // stack of free ids; free_[top_-1] is the next one handed out
  uint32_t count_ = 0;
  uint32_t top_ = 0;
  uint32_t high_water_ = 0;
  uint32_t lost_ = 0;
  uint32_t grown_ = 0;
  uint32_t grow_bytes_ = 0;
};

}  // namespace edgeproxy
