// Stats: merging every field, the acceleration factor, and the printed block's stable names.
#include "edgeproxy/stats.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace edgeproxy {
namespace {

struct Counter {
  const char* name;
  uint64_t Stats::*field;
};

// Every uint64_t counter declared in stats.h, in declaration order.
const Counter kCounters[] = {
    {"loop_iterations", &Stats::loop_iterations},
    {"events", &Stats::events},
    {"stale_events", &Stats::stale_events},
    {"accepted", &Stats::accepted},
    {"accept_errors", &Stats::accept_errors},
    {"accept_pauses", &Stats::accept_pauses},
    {"connects_failed", &Stats::connects_failed},
    {"connect_timeouts", &Stats::connect_timeouts},
    {"idle_timeouts", &Stats::idle_timeouts},
    {"active", &Stats::active},
    {"peak_active", &Stats::peak_active},
    {"closed", &Stats::closed},
    {"bytes_c2u", &Stats::bytes_c2u},
    {"bytes_u2c", &Stats::bytes_u2c},
    {"reads_client", &Stats::reads_client},
    {"reads_upstream", &Stats::reads_upstream},
    {"writes_client", &Stats::writes_client},
    {"writes_upstream", &Stats::writes_upstream},
    {"backpressure_pauses", &Stats::backpressure_pauses},
    {"pool_buffers", &Stats::pool_buffers},
    {"pool_high_water", &Stats::pool_high_water},
    {"pool_waits", &Stats::pool_waits},
    {"resets_client", &Stats::resets_client},
    {"resets_upstream", &Stats::resets_upstream},
    {"resets_sent", &Stats::resets_sent},
    {"shutdown_forced", &Stats::shutdown_forced},
    {"splice_bytes", &Stats::splice_bytes},
    {"splice_pipe_waits", &Stats::splice_pipe_waits},
    {"splice_pipes_dirty", &Stats::splice_pipes_dirty},
    {"batched_waits", &Stats::batched_waits},
    {"socket_waits", &Stats::socket_waits},
    {"connect_retries", &Stats::connect_retries},
    {"linger_waits", &Stats::linger_waits},
};
constexpr size_t kCounterCount = sizeof(kCounters) / sizeof(kCounters[0]);

// A field added to Stats must be added to kCounters (and to merge and print) too.
static_assert(sizeof(Stats) == (kCounterCount + 2) * sizeof(uint64_t),
              "Stats gained or lost a field: update kCounters and these tests");

// Every counter set to a distinct value derived from its position.
Stats Numbered(uint64_t base) {
  Stats s;
  for (size_t i = 0; i < kCounterCount; ++i) s.*kCounters[i].field = base + i;
  s.u2c_upstream_ns = static_cast<int64_t>(base) * 3;
  s.u2c_client_ns = static_cast<int64_t>(base) * 5;
  return s;
}

std::string Print(const Stats& s) {
  char* data = nullptr;
  size_t size = 0;
  std::FILE* f = open_memstream(&data, &size);
  if (f == nullptr) return "";
  s.print(f);
  std::fclose(f);
  std::string out(data, size);
  std::free(data);
  return out;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(StatsTest, DefaultsAreZero) {
  const Stats s;
  for (const Counter& c : kCounters) EXPECT_EQ(s.*c.field, 0u) << c.name;
  EXPECT_EQ(s.u2c_upstream_ns, 0);
  EXPECT_EQ(s.u2c_client_ns, 0);
}

TEST(StatsTest, MergeAddsEveryField) {
  Stats a = Numbered(1000);
  const Stats b = Numbered(50);
  a.merge(b);
  for (size_t i = 0; i < kCounterCount; ++i) {
    EXPECT_EQ(a.*kCounters[i].field, 1050 + 2 * i) << kCounters[i].name;
  }
  EXPECT_EQ(a.u2c_upstream_ns, 3 * 1050);
  EXPECT_EQ(a.u2c_client_ns, 5 * 1050);
  // The merged-in value is untouched.
  for (size_t i = 0; i < kCounterCount; ++i) EXPECT_EQ(b.*kCounters[i].field, 50 + i);
}

TEST(StatsTest, MergeIntoEmptyCopies) {
  Stats a;
  const Stats b = Numbered(7);
  a.merge(b);
  for (const Counter& c : kCounters) EXPECT_EQ(a.*c.field, b.*c.field) << c.name;
  EXPECT_EQ(a.u2c_upstream_ns, b.u2c_upstream_ns);
  EXPECT_EQ(a.u2c_client_ns, b.u2c_client_ns);
}

TEST(StatsTest, AccelerationFactorZeroWithoutData) {
  Stats s;
  EXPECT_EQ(s.acceleration_factor(), 0.0);
  s.u2c_client_ns = 500;
  EXPECT_EQ(s.acceleration_factor(), 0.0) << "no upstream time: nothing to divide by";
}

TEST(StatsTest, AccelerationFactorIsClientOverUpstreamTime) {
  Stats s;
  s.u2c_upstream_ns = 1'000;
  s.u2c_client_ns = 4'000;
  EXPECT_DOUBLE_EQ(s.acceleration_factor(), 4.0);
  s.u2c_client_ns = 1'000;
  EXPECT_DOUBLE_EQ(s.acceleration_factor(), 1.0);
  s.u2c_client_ns = 2'500;
  EXPECT_DOUBLE_EQ(s.acceleration_factor(), 2.5);
}

TEST(StatsTest, AccelerationFactorAfterMerge) {
  Stats a;
  a.u2c_upstream_ns = 100;
  a.u2c_client_ns = 300;
  Stats b;
  b.u2c_upstream_ns = 100;
  b.u2c_client_ns = 100;
  a.merge(b);
  EXPECT_DOUBLE_EQ(a.acceleration_factor(), 2.0) << "sums, not an average of ratios";
}

TEST(StatsTest, PrintHasHeaderAndOneLinePerCounter) {
  Stats s = Numbered(100);
  s.u2c_upstream_ns = 2'000;
  s.u2c_client_ns = 3'000;
  const std::vector<std::string> lines = Lines(Print(s));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "edgeproxy: statistics");
  std::map<std::string, std::string> values;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    ASSERT_EQ(line.rfind("  ", 0), 0u) << "line not indented by two spaces: '" << line << "'";
    std::istringstream fields(line);
    std::string name;
    std::string value;
    std::string rest;
    fields >> name >> value;
    EXPECT_FALSE(fields >> rest) << "more than 'name value' on: '" << line << "'";
    EXPECT_EQ(values.count(name), 0u) << name << " printed twice";
    values[name] = value;
  }
  for (size_t i = 0; i < kCounterCount; ++i) {
    ASSERT_EQ(values.count(kCounters[i].name), 1u) << kCounters[i].name << " not printed";
    EXPECT_EQ(values[kCounters[i].name], std::to_string(100 + i)) << kCounters[i].name;
  }
  ASSERT_EQ(values.count("acceleration_factor"), 1u);
  EXPECT_DOUBLE_EQ(std::strtod(values["acceleration_factor"].c_str(), nullptr), 1.5);
  EXPECT_EQ(values.size(), kCounterCount + 1) << "only the counters and acceleration_factor";
  EXPECT_EQ(lines.size(), kCounterCount + 2);
}

TEST(StatsTest, PrintOrderFollowsDeclaration) {
  const std::vector<std::string> lines = Lines(Print(Stats{}));
  ASSERT_EQ(lines.size(), kCounterCount + 2);
  for (size_t i = 0; i < kCounterCount; ++i) {
    std::istringstream fields(lines[i + 1]);
    std::string name;
    fields >> name;
    EXPECT_EQ(name, kCounters[i].name);
  }
  EXPECT_EQ(lines.back().find("  acceleration_factor"), 0u);
}

TEST(StatsTest, PrintOfZeroStats) {
  const std::string text = Print(Stats{});
  EXPECT_NE(text.find("  loop_iterations"), std::string::npos);
  EXPECT_NE(text.find("acceleration_factor"), std::string::npos);
  EXPECT_NE(text.find("0.000"), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
}

TEST(StatsTest, PrintLargeCounterValue) {
  Stats s;
  s.bytes_u2c = UINT64_MAX;
  const std::string text = Print(s);
  EXPECT_NE(text.find(std::to_string(UINT64_MAX)), std::string::npos);
}

}  // namespace
}  // namespace edgeproxy
