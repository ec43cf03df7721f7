// plan_workers, worker_share, format_cpu_list and supervised_signals: the pure parts of starting
// several workers and serving signals.
#include "edgeproxy/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <vector>

namespace edgeproxy {
namespace {

const std::vector<uint16_t> kFourCpus = {0, 1, 2, 3};

TEST(SupervisorTest, DefaultIsOneUnpinnedWorker) {
  auto plan = plan_workers(Config{}, kFourCpus);
  ASSERT_TRUE(plan.ok()) << plan.error();
  EXPECT_EQ(plan.value().workers, 1u);
  EXPECT_TRUE(plan.value().cpus.empty());
}

TEST(SupervisorTest, AutoCountsTheAllowedCpus) {
  Config c;
  c.workers = 0;
  const std::vector<uint16_t> mask = {2, 5, 7};  // e.g. under taskset -c 2,5,7
  auto plan = plan_workers(c, mask);
  ASSERT_TRUE(plan.ok()) << plan.error();
  EXPECT_EQ(plan.value().workers, 3u);
  EXPECT_TRUE(plan.value().cpus.empty());
}

TEST(SupervisorTest, AutoWithACpuListCountsTheListedCpus) {
  Config c;
  c.workers = 0;
  c.cpu_list = {3, 1};
  auto plan = plan_workers(c, kFourCpus);
  ASSERT_TRUE(plan.ok()) << plan.error();
  EXPECT_EQ(plan.value().workers, 2u);
  EXPECT_EQ(plan.value().cpus, (std::vector<uint16_t>{3, 1}));
}

TEST(SupervisorTest, CpuListWrapsAroundWhenThereAreMoreWorkers) {
  Config c;
  c.workers = 5;
  c.cpu_list = {0, 2};
  auto plan = plan_workers(c, kFourCpus);
  ASSERT_TRUE(plan.ok()) << plan.error();
  EXPECT_EQ(plan.value().cpus, (std::vector<uint16_t>{0, 2, 0, 2, 0}));
}

TEST(SupervisorTest, CpuOutsideTheInheritedMaskIsRefused) {
  Config c;
  c.cpu_list = {1, 4};
  const std::vector<uint16_t> mask = {0, 1, 2, 3, 8, 9};
  auto plan = plan_workers(c, mask);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.error(), "--cpu-list: CPU 4 is not in this process's CPU set (0-3,8-9)");
}

TEST(SupervisorTest, EachWorkerNeedsAConnectionAndTwoBuffers) {
  Config c;
  c.workers = 4;
  c.max_connections = 3;
  auto plan = plan_workers(c, kFourCpus);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.error().find("--max-connections 3 is less than the number of workers (4)"),
            std::string::npos)
      << plan.error();
  c.max_connections = 4;
  c.buffers = 7;
  plan = plan_workers(c, kFourCpus);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.error().find("--buffers 7 is less than 2 per worker"), std::string::npos)
      << plan.error();
  c.buffers = 8;
  EXPECT_TRUE(plan_workers(c, kFourCpus).ok());
}

TEST(SupervisorTest, SharesAddUpToTheProcessLimits) {
  Config c;
  c.max_connections = 1001;
  c.buffers = 0;  // 2 x max_connections = 2002
  uint32_t connections = 0;
  uint32_t buffers = 0;
  for (uint32_t i = 0; i < 3; ++i) {
    const Config share = worker_share(c, 3, i);
    EXPECT_GE(share.max_connections, 333u);
    EXPECT_LE(share.max_connections, 334u);
    connections += share.max_connections;
    buffers += share.buffer_count();
  }
  EXPECT_EQ(connections, 1001u);
  EXPECT_EQ(buffers, 2002u);
  EXPECT_EQ(worker_share(c, 1, 0).max_connections, 1001u);
  EXPECT_EQ(worker_share(c, 1, 0).buffer_count(), 2002u);
}

TEST(SupervisorTest, FormatsCpuRanges) {
  EXPECT_EQ(format_cpu_list(std::vector<uint16_t>{}), "");
  EXPECT_EQ(format_cpu_list(std::vector<uint16_t>{0}), "0");
  EXPECT_EQ(format_cpu_list(std::vector<uint16_t>{0, 1, 2, 5, 7, 8}), "0-2,5,7-8");
}

// Every asynchronous signal whose default action ends the process is read by the supervisor (so
// HUP cannot kill it); the synchronous faults and the ones that do not end it are left alone.
TEST(SupervisorTest, SupervisedSignalsAreEveryTerminatingAsyncSignalAndNoFault) {
  const sigset_t set = supervised_signals();
  for (const int s : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGHUP, SIGUSR2, SIGALRM, SIGVTALRM,
                      SIGPROF, SIGIO, SIGPWR, SIGXCPU, SIGXFSZ, SIGSTKFLT}) {
    EXPECT_EQ(sigismember(&set, s), 1) << "signal " << s << " would end the process";
  }
  for (int s = SIGRTMIN; s <= SIGRTMAX; ++s) EXPECT_EQ(sigismember(&set, s), 1) << "signal " << s;
  for (const int s : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS}) {
    EXPECT_EQ(sigismember(&set, s), 0) << "fault signal " << s << " must keep ending the process";
  }
  for (const int s : {SIGPIPE, SIGCHLD, SIGURG, SIGWINCH, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU}) {
    EXPECT_EQ(sigismember(&set, s), 0) << "signal " << s;
  }
  // The real-time signals below SIGRTMIN belong to the C library's threads.
  for (int s = 32; s < SIGRTMIN; ++s) EXPECT_EQ(sigismember(&set, s), 0) << "signal " << s;
}

}  // namespace
}  // namespace edgeproxy
