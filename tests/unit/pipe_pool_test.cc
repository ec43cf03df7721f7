// PipePool: real pipes made once, handed out LIFO by id, counts re-checked after every acquire
// and release; a dirty pipe is replaced; every descriptor is closed by the destructor.
#include "edgeproxy/pipe_pool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "open_fds.h"

namespace edgeproxy {
namespace {

::testing::AssertionResult Counts(const PipePool& pool) {
  if (pool.available() + pool.in_use() != pool.capacity()) {
    return ::testing::AssertionFailure() << "available " << pool.available() << " + in_use "
                                         << pool.in_use() << " != capacity " << pool.capacity();
  }
  if (pool.in_use() > pool.high_water()) {
    return ::testing::AssertionFailure()
           << "in_use " << pool.in_use() << " above high_water " << pool.high_water();
  }
  return ::testing::AssertionSuccess();
}

PipePool MakePool(uint32_t count, uint32_t bytes = PipePool::kPipeBytes) {
  Result<PipePool> r = PipePool::create(count, bytes);
  if (!r.ok()) {
    ADD_FAILURE() << r.error();
    std::abort();
  }
  return std::move(r.value());
}

// Bytes readable from the pipe's read end right now (it is non-blocking).
size_t Drain(const Pipe& p) {
  char buf[4096];
  size_t total = 0;
  for (;;) {
    const ssize_t n = read(p.read_fd, buf, sizeof buf);
    if (n <= 0) return total;
    total += static_cast<size_t>(n);
  }
}

TEST(PipePoolTest, DefaultAndZeroAreEmpty) {
  PipePool none;
  uint32_t id = 0;
  EXPECT_FALSE(none.acquire(id));
  EXPECT_EQ(none.capacity(), 0u);
  PipePool zero = MakePool(0);
  EXPECT_FALSE(zero.acquire(id));
  EXPECT_EQ(zero.capacity(), 0u);
  EXPECT_TRUE(Counts(zero));
}

TEST(PipePoolTest, PipesAreNonBlockingCloseOnExecAndGrown) {
  PipePool pool = MakePool(3, 256 * 1024);
  ASSERT_EQ(pool.capacity(), 3u);
  std::set<int> fds;
  for (uint32_t id = 0; id < 3; ++id) {
    const Pipe& p = pool.at(id);
    for (const int fd : {p.read_fd, p.write_fd}) {
      ASSERT_GE(fd, 0);
      EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK) << "fd " << fd;
      EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC) << "fd " << fd;
      fds.insert(fd);
    }
    // Grown unless the kernel refused (per-user pipe limit): then its 64 KiB default stays.
    const int size = fcntl(p.write_fd, F_GETPIPE_SZ);
    EXPECT_TRUE(size == 256 * 1024 || size == 65536) << size;
    // The two ends are one pipe.
    ASSERT_EQ(write(p.write_fd, "x", 1), 1);
    EXPECT_EQ(Drain(p), 1u);
  }
  EXPECT_EQ(fds.size(), 6u) << "every pipe has its own two descriptors";
}

TEST(PipePoolTest, OnlyTheGrowthBudgetIsGrown) {
  constexpr uint32_t kBytes = 1 << 20;
  constexpr uint32_t kBudgeted = PipePool::kGrowBudgetBytes / kBytes;
  PipePool pool = MakePool(kBudgeted + 3, kBytes);
  EXPECT_EQ(pool.grown(), kBudgeted);
  const int first = fcntl(pool.at(0).write_fd, F_GETPIPE_SZ);
  EXPECT_TRUE(first == static_cast<int>(kBytes) || first == 65536) << first;
  for (uint32_t id = kBudgeted; id < kBudgeted + 3; ++id) {
    EXPECT_EQ(fcntl(pool.at(id).write_fd, F_GETPIPE_SZ), 65536) << "pipe " << id;
  }
  EXPECT_EQ(MakePool(2, kBytes).grown(), 2u);
  EXPECT_EQ(MakePool(2, 0).grown(), 0u) << "0 bytes: nothing is grown";
}

TEST(PipePoolTest, AcquireReleaseIsLifoAndCounted) {
  PipePool pool = MakePool(3);
  std::vector<uint32_t> taken;
  uint32_t id = 0;
  for (uint32_t expected = 0; expected < 3; ++expected) {
    ASSERT_TRUE(pool.acquire(id));
    EXPECT_EQ(id, expected) << "id 0 is handed out first";
    taken.push_back(id);
    EXPECT_TRUE(Counts(pool));
  }
  EXPECT_FALSE(pool.acquire(id)) << "the pool never grows";
  EXPECT_EQ(pool.available(), 0u);
  EXPECT_EQ(pool.high_water(), 3u);
  pool.release(taken[1]);
  EXPECT_TRUE(Counts(pool));
  pool.release(taken[0]);
  EXPECT_TRUE(Counts(pool));
  ASSERT_TRUE(pool.acquire(id));
  EXPECT_EQ(id, taken[0]) << "the most recently released pipe comes back first";
  ASSERT_TRUE(pool.acquire(id));
  EXPECT_EQ(id, taken[1]);
  pool.release(taken[0]);
  pool.release(taken[1]);
  pool.release(taken[2]);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.high_water(), 3u);
  EXPECT_TRUE(Counts(pool));
}

TEST(PipePoolTest, AcquireAndReleaseMakeNoDescriptorChange) {
  PipePool pool = MakePool(2);
  const int before = OpenFds();
  const Pipe first = pool.at(0);
  uint32_t id = 0;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(pool.acquire(id));
    pool.release(id);
  }
  EXPECT_EQ(OpenFds(), before);
  EXPECT_EQ(pool.at(0).read_fd, first.read_fd);
  EXPECT_EQ(pool.at(0).write_fd, first.write_fd);
}

TEST(PipePoolTest, RecycleReplacesADirtyPipeWithAnEmptyOne) {
  PipePool pool = MakePool(2);
  const int before = OpenFds();
  uint32_t id = 0;
  ASSERT_TRUE(pool.acquire(id));
  const std::string junk(5000, 'j');
  ASSERT_EQ(write(pool.at(id).write_fd, junk.data(), junk.size()),
            static_cast<ssize_t>(junk.size()));
  ASSERT_TRUE(pool.recycle(id));
  EXPECT_TRUE(Counts(pool));
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.capacity(), 2u);
  EXPECT_EQ(pool.lost(), 0u);
  EXPECT_EQ(OpenFds(), before) << "the old pipe's descriptors were closed";
  uint32_t again = 0;
  ASSERT_TRUE(pool.acquire(again));
  EXPECT_EQ(again, id);
  const Pipe& p = pool.at(again);
  EXPECT_EQ(Drain(p), 0u) << "stale bytes reached the next user";
  EXPECT_TRUE(fcntl(p.read_fd, F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(fcntl(p.write_fd, F_GETFD) & FD_CLOEXEC);
  ASSERT_EQ(write(p.write_fd, "ok", 2), 2);
  EXPECT_EQ(Drain(p), 2u);
  pool.release(again);
}

// A dirty pipe whose replacement cannot be made (here: no descriptor may be opened) is lost for
// good: the pool is one pipe smaller, counted in lost(), and the rest still work.
TEST(PipePoolTest, RecycleThatCannotMakeANewPipeLosesTheSlot) {
  PipePool pool = MakePool(2);
  const int before = OpenFds();
  uint32_t id = 0;
  ASSERT_TRUE(pool.acquire(id));
  ASSERT_EQ(write(pool.at(id).write_fd, "junk", 4), 4);
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit none = old;
  none.rlim_cur = 0;  // pipe2 fails with EMFILE
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &none), 0);
  const bool recycled = pool.recycle(id);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  EXPECT_FALSE(recycled);
  EXPECT_EQ(pool.lost(), 1u);
  EXPECT_EQ(pool.capacity(), 1u);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_TRUE(Counts(pool));
  EXPECT_EQ(OpenFds(), before - 2) << "the dirty pipe was closed";
  EXPECT_EQ(pool.at(id).read_fd, -1);
  uint32_t other = 0;
  ASSERT_TRUE(pool.acquire(other));
  EXPECT_NE(other, id) << "a lost slot is never handed out";
  EXPECT_FALSE(pool.acquire(id));
  pool.release(other);
  EXPECT_TRUE(Counts(pool));
}

TEST(PipePoolTest, DestructorClosesEveryPipeHandedOutOrNot) {
  const int before = OpenFds();
  {
    PipePool pool = MakePool(4);
    EXPECT_EQ(OpenFds(), before + 8);
    uint32_t id = 0;
    ASSERT_TRUE(pool.acquire(id));  // still out when the pool goes
  }
  EXPECT_EQ(OpenFds(), before);
}

TEST(PipePoolTest, MoveTransfersThePipes) {
  const int before = OpenFds();
  {
    PipePool a = MakePool(2);
    const Pipe p = a.at(1);
    PipePool b(std::move(a));
    EXPECT_EQ(a.capacity(), 0u);
    uint32_t id = 0;
    EXPECT_FALSE(a.acquire(id));
    EXPECT_EQ(b.capacity(), 2u);
    EXPECT_EQ(b.at(1).write_fd, p.write_fd);
    PipePool c;
    c = std::move(b);
    EXPECT_EQ(c.capacity(), 2u);
    EXPECT_EQ(OpenFds(), before + 4);
  }
  EXPECT_EQ(OpenFds(), before);
}

TEST(PipePoolTest, CreateFailureNamesTheCountAndClosesWhatItMade) {
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  const int before = OpenFds();
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(before + 20);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  Result<PipePool> r = PipePool::create(100);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("100 pipes"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find(std::strerror(EMFILE)), std::string::npos) << r.error();
  EXPECT_EQ(OpenFds(), before) << "the pipes made before the failure were closed";
}

}  // namespace
}  // namespace edgeproxy
