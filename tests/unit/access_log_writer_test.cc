// AccessLogWriter: lines reach the file whole and in order, stop() flushes what the rings hold,
// a reopen follows a rename, and a destination that cannot be opened is refused.
#include "edgeproxy/access_log_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace edgeproxy {
namespace {

std::string temp_dir() {
  char pattern[] = "/tmp/edgeproxy-writer-XXXXXX";
  const char* dir = mkdtemp(pattern);
  return dir != nullptr ? dir : "/tmp";
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(AccessLogWriterTest, StopWritesEveryLineOfEveryRing) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/a.log";
  auto w = AccessLogWriter::start(2, path);
  ASSERT_TRUE(w.ok()) << w.error();
  std::string want0;
  std::string want1;
  for (int i = 0; i < 500; ++i) {
    const std::string a = "w0 line " + std::to_string(i) + "\n";
    const std::string b = "w1 line " + std::to_string(i) + "\n";
    ASSERT_TRUE(w.value()->ring(0)->append(a.data(), static_cast<uint32_t>(a.size())));
    ASSERT_TRUE(w.value()->ring(1)->append(b.data(), static_cast<uint32_t>(b.size())));
    want0 += a;
    want1 += b;
  }
  w.value()->stop();
  const std::string got = slurp(path);
  std::string got0;
  std::string got1;
  std::istringstream lines(got);
  for (std::string line; std::getline(lines, line);) {
    (line.starts_with("w0 ") ? got0 : got1) += line + "\n";
  }
  EXPECT_EQ(got0, want0);
  EXPECT_EQ(got1, want1);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  const mode_t mask = umask(0);
  umask(mask);
  EXPECT_EQ(st.st_mode & 0777, 0640u & ~mask);
  std::remove(path.c_str());
  rmdir(dir.c_str());
}

TEST(AccessLogWriterTest, ReopenFollowsARename) {
  const std::string dir = temp_dir();
  const std::string path = dir + "/a.log";
  auto w = AccessLogWriter::start(1, path);
  ASSERT_TRUE(w.ok()) << w.error();
  AccessLog* ring = w.value()->ring(0);
  ASSERT_TRUE(ring->append("before\n", 7));
  for (int i = 0; i < 200 && slurp(path) != "before\n"; ++i) usleep(10'000);
  ASSERT_EQ(slurp(path), "before\n");
  ASSERT_EQ(std::rename(path.c_str(), (path + ".1").c_str()), 0);
  w.value()->request_reopen();
  for (int i = 0; i < 200 && access(path.c_str(), F_OK) != 0; ++i) usleep(10'000);
  ASSERT_TRUE(ring->append("after\n", 6));
  w.value()->stop();
  EXPECT_EQ(slurp(path + ".1"), "before\n");
  EXPECT_EQ(slurp(path), "after\n");
  std::remove(path.c_str());
  std::remove((path + ".1").c_str());
  rmdir(dir.c_str());
}

TEST(AccessLogWriterTest, RefusesAFileItCannotOpen) {
  auto w = AccessLogWriter::start(1, "/nonexistent-edgeproxy-dir/a.log");
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().find("/nonexistent-edgeproxy-dir/a.log"), std::string::npos) << w.error();
  auto off = AccessLogWriter::start(1, "off");
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off.value()->set_destination("/nonexistent-edgeproxy-dir/a.log").ok());
  EXPECT_TRUE(off.value()->set_destination("stderr").ok());
}

}  // namespace
}  // namespace edgeproxy
