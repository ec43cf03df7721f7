// Stats: merging by kind (counters and gauges summed, peaks the maximum), the acceleration factor
// past 64-bit sums, and the printed block: its stable names and order, and the report's header
// when a worker did not answer.
#include "edgeproxy/stats.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "edgeproxy/connection.h"
#include "edgeproxy/relay.h"

namespace edgeproxy {
namespace {

// The printed names, in printed order: a stable interface (docs/architecture.md,
// tests/integration/harness.py COUNTER_NAMES). A new statistic is appended, never inserted.
const char* const kPrintedNames[] = {
    "loop_iterations",     "events",          "stale_events",          "accepted",
    "accept_errors",       "accept_pauses",   "connects_failed",       "connect_timeouts",
    "idle_timeouts",       "active",          "peak_active",           "closed",
    "bytes_c2u",           "bytes_u2c",       "reads_client",          "reads_upstream",
    "writes_client",       "writes_upstream", "backpressure_pauses",   "pool_buffers",
    "pool_high_water",     "pool_waits",      "resets_client",         "resets_upstream",
    "resets_sent",         "shutdown_forced", "splice_bytes",          "splice_pipe_waits",
    "splice_pipes_dirty",  "batched_waits",   "splice_pipes_lost",     "socket_waits",
    "connect_retries",     "linger_waits",    "submit_failures",       "cq_dropped",
    "lost_operations",     "no_server",       "topology_versions",     "accel_blocks_held",
    "accel_blocks_peak",   "accel_giveups",   "server_finished_first", "pool_blocks_in_use",
    "splice_pipes_in_use", "log_dropped",
};
constexpr size_t kPrintedCount = sizeof(kPrintedNames) / sizeof(kPrintedNames[0]);
// How each merges across workers.
const std::set<std::string> kPeaks = {"peak_active", "pool_high_water", "topology_versions",
                                      "accel_blocks_peak"};
const std::set<std::string> kGauges = {"active",
                                       "pool_buffers",
                                       "splice_pipes_lost",
                                       "accel_blocks_held",
                                       "pool_blocks_in_use",
                                       "splice_pipes_in_use"};

enum class Kind { kCounter, kGauge, kPeak };
struct Field {
  const char* name;
  uint64_t Stats::*member;
  Kind kind;
};

// The printed fields as the list in stats.h declares them.
#define EDGEPROXY_TEST_COUNTER(name) Field{#name, &Stats::name, Kind::kCounter},
#define EDGEPROXY_TEST_GAUGE(name) Field{#name, &Stats::name, Kind::kGauge},
#define EDGEPROXY_TEST_PEAK(name) Field{#name, &Stats::name, Kind::kPeak},
#define EDGEPROXY_TEST_NS_SUM(name)
#define EDGEPROXY_TEST_HISTOGRAM(name, bounds)
const Field kFields[] = {EDGEPROXY_ALL_STATS(EDGEPROXY_TEST_COUNTER, EDGEPROXY_TEST_GAUGE,
                                             EDGEPROXY_TEST_PEAK, EDGEPROXY_TEST_NS_SUM,
                                             EDGEPROXY_TEST_HISTOGRAM)};
#undef EDGEPROXY_TEST_COUNTER
#undef EDGEPROXY_TEST_GAUGE
#undef EDGEPROXY_TEST_PEAK
#undef EDGEPROXY_TEST_NS_SUM
#undef EDGEPROXY_TEST_HISTOGRAM
constexpr size_t kFieldCount = sizeof(kFields) / sizeof(kFields[0]);

// Every printed field set to a distinct value derived from its position.
Stats Numbered(uint64_t base) {
  Stats s;
  for (size_t i = 0; i < kFieldCount; ++i) s.*kFields[i].member = base + i;
  s.u2c_upstream_ns = base * 3;
  s.u2c_client_ns = base * 5;
  return s;
}

std::string Report(const Stats& total, std::span<const Stats> workers,
                   std::span<const uint32_t> silent = {}, uint32_t waited_ms = 0) {
  char* data = nullptr;
  size_t size = 0;
  std::FILE* f = open_memstream(&data, &size);
  if (f == nullptr) return "";
  Stats::print_report(f, total, workers, silent, waited_ms);
  std::fclose(f);
  std::string out(data, size);
  std::free(data);
  return out;
}

std::string Print(const Stats& s) {
  return Report(s, {});
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The statistic lines ("  name value[ unit] label"), without the header and the " group"
// headings.
std::vector<std::string> StatLines(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].rfind("  ", 0) == 0) out.push_back(lines[i]);
  }
  return out;
}

// name -> value of every statistic line.
std::map<std::string, std::string> Values(const std::vector<std::string>& lines) {
  std::map<std::string, std::string> values;
  for (const std::string& line : StatLines(lines)) {
    std::istringstream fields(line);
    std::string name;
    std::string value;
    fields >> name >> value;
    values[name] = value;
  }
  return values;
}

TEST(StatsTest, TheListDeclaresEveryPrintedNameInOrderWithItsKind) {
  ASSERT_EQ(kFieldCount, kPrintedCount);
  for (size_t i = 0; i < kFieldCount; ++i) {
    const std::string name = kFields[i].name;
    EXPECT_EQ(name, kPrintedNames[i]) << "position " << i;
    const Kind want = kPeaks.count(name)    ? Kind::kPeak
                      : kGauges.count(name) ? Kind::kGauge
                                            : Kind::kCounter;
    EXPECT_EQ(kFields[i].kind, want) << name;
  }
  // The struct is the list: the printed fields and the two 128-bit sums, nothing else.
  // The struct is the list: the printed fields, the two 128-bit sums and the two histograms.
  static_assert(sizeof(Stats) == (kFieldCount * sizeof(uint64_t) + 15) / 16 * 16 + 2 * 16 +
                                     sizeof(Histogram<kConnectTimeBounds>) +
                                     sizeof(Histogram<kDurationBounds>));
}

TEST(StatsTest, HistogramBoundsAscend) {
  for (const HistogramBounds* b : {&kConnectTimeBounds, &kDurationBounds}) {
    for (size_t i = 1; i < b->size(); ++i) EXPECT_LT((*b)[i - 1], (*b)[i]) << i;
  }
}

TEST(StatsTest, HistogramCountsAnObservationInTheFirstBucketWhoseBoundHoldsIt) {
  Histogram<kConnectTimeBounds> h;
  h.observe(kConnectTimeBounds[0]);      // a bound is inclusive (Prometheus's le)
  h.observe(kConnectTimeBounds[0] + 1);  // just past it: the next bucket
  h.observe(kConnectTimeBounds.back() + 1);
  h.observe(-5);  // a clock read out of order counts as 0
  EXPECT_EQ(h.buckets[0], 2u);
  EXPECT_EQ(h.buckets[1], 1u);
  EXPECT_EQ(h.buckets.back(), 1u) << "past the last bound: the +Inf bucket";
  EXPECT_EQ(h.count(), 4u);
  EXPECT_TRUE(h.sum_ns ==
              static_cast<NsSum>(2 * kConnectTimeBounds[0] + 1 + kConnectTimeBounds.back() + 1));
}

TEST(StatsTest, MergeSumsHistogramsBucketByBucket) {
  Stats a;
  Stats b;
  a.duration.observe(2'000'000);  // 2 ms
  b.duration.observe(2'000'000);
  b.duration.observe(7'200'000'000'000);  // 2 h
  b.connect_time.observe(300'000);
  a.merge(b);
  EXPECT_EQ(a.duration.count(), 3u);
  EXPECT_EQ(a.duration.buckets[1], 2u);
  EXPECT_EQ(a.duration.buckets[kDurationBounds.size() - 1], 1u);
  EXPECT_TRUE(a.duration.sum_ns == 7'200'004'000'000);
  EXPECT_EQ(a.connect_time.count(), 1u);
  EXPECT_EQ(b.duration.count(), 2u) << "the merged-in value is untouched";
}

TEST(StatsTest, DefaultsAreZero) {
  const Stats s;
  for (const Field& f : kFields) EXPECT_EQ(s.*f.member, 0u) << f.name;
  EXPECT_TRUE(s.u2c_upstream_ns == 0);
  EXPECT_TRUE(s.u2c_client_ns == 0);
}

TEST(StatsTest, MergeSumsCountersAndGaugesAndTakesTheMaximumOfPeaks) {
  for (const bool bigger_first : {true, false}) {
    Stats a = Numbered(bigger_first ? 1000 : 50);
    const Stats b = Numbered(bigger_first ? 50 : 1000);
    a.merge(b);
    for (size_t i = 0; i < kFieldCount; ++i) {
      const uint64_t want = kFields[i].kind == Kind::kPeak ? 1000 + i : 1050 + 2 * i;
      EXPECT_EQ(a.*kFields[i].member, want) << kFields[i].name;
    }
    EXPECT_TRUE(a.u2c_upstream_ns == 3 * 1050);
    EXPECT_TRUE(a.u2c_client_ns == 5 * 1050);
    // The merged-in value is untouched.
    const uint64_t base = bigger_first ? 50 : 1000;
    for (size_t i = 0; i < kFieldCount; ++i) EXPECT_EQ(b.*kFields[i].member, base + i);
  }
}

TEST(StatsTest, MergeTakesTheMaximumOfPeaksNotTheSum) {
  Stats a;
  a.peak_active = 5;
  a.pool_high_water = 2;
  a.active = 4;
  Stats b;
  b.peak_active = 3;
  b.pool_high_water = 7;
  b.active = 1;
  a.merge(b);
  EXPECT_EQ(a.peak_active, 5u) << "a peak merges as the busiest worker's, never a sum";
  EXPECT_EQ(a.pool_high_water, 7u);
  EXPECT_EQ(a.active, 5u) << "a gauge is the sum of the workers' levels";
}

TEST(StatsTest, MergeIntoEmptyCopies) {
  Stats a;
  const Stats b = Numbered(7);
  a.merge(b);
  for (const Field& f : kFields) EXPECT_EQ(a.*f.member, b.*f.member) << f.name;
  EXPECT_TRUE(a.u2c_upstream_ns == b.u2c_upstream_ns);
  EXPECT_TRUE(a.u2c_client_ns == b.u2c_client_ns);
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

TEST(StatsTest, AccelerationFactorOfSumsPast2To64Ns) {
  const NsSum two_to_63 = NsSum{1} << 63;
  Stats a;
  a.u2c_upstream_ns = two_to_63 + 1000;      // past 2^63
  a.u2c_client_ns = 3 * (two_to_63 + 1000);  // past 2^64
  EXPECT_DOUBLE_EQ(a.acceleration_factor(), 3.0);
  Stats b;
  b.u2c_upstream_ns = two_to_63;
  b.u2c_client_ns = two_to_63;
  a.merge(b);  // upstream past 2^64, client past 2^65
  EXPECT_TRUE(a.u2c_upstream_ns == 2 * two_to_63 + 1000);
  EXPECT_DOUBLE_EQ(a.acceleration_factor(), 2.0);
}

// Spans added by relay::on_shutdown: their sums pass 2^63 and 2^64 ns (months of long
// downloads) and must still give the ratio, with no overflow (UBSan aborts on a signed one).
TEST(StatsTest, AccelerationSumsPast2To63And2To64NsDoNotOverflow) {
  constexpr int64_t kUpstreamNs = int64_t{1} << 62;
  constexpr int64_t kClientNs = INT64_MAX - 1;  // just under 2 x kUpstreamNs
  Stats s;
  for (int i = 0; i < 3; ++i) {
    Connection c;
    c.u2c_first_ns = 1;
    c.u2c_eof_ns = 1 + kUpstreamNs;
    relay::on_shutdown(c, Dir::kU2C, SysResult{}, s, LoopTime{1 + kClientNs, 0});
  }
  // 3 x 2^62 > 2^63 upstream, 3 x (2^63 - 2) > 2^64 client: the ratio is 2 - 2^-61.
  EXPECT_DOUBLE_EQ(s.acceleration_factor(), 2.0);
  Stats merged = s;
  merged.merge(s);
  EXPECT_DOUBLE_EQ(merged.acceleration_factor(), 2.0) << "merging two such sums";
}

const StatLabel* LabelOf(std::string_view name) {
  for (const StatLabel& l : stat_labels()) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

TEST(StatsTest, PrintHasHeaderGroupHeadingsAndOneLinePerStatistic) {
  Stats s = Numbered(100);
  s.u2c_upstream_ns = 2'000;
  s.u2c_client_ns = 3'000;
  const std::vector<std::string> lines = Lines(Print(s));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "edgeproxy: statistics");
  std::set<std::string> seen;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.rfind("  ", 0) != 0) {
      ASSERT_EQ(line.rfind(" ", 0), 0u) << "neither a heading nor a statistic: '" << line << "'";
      continue;
    }
    std::istringstream fields(line);
    std::string name;
    std::string value;
    fields >> name >> value;
    EXPECT_TRUE(seen.insert(name).second) << name << " printed twice";
    const StatLabel* l = LabelOf(name);
    ASSERT_NE(l, nullptr) << name;
    // After the value: the unit if it has one, then the label.
    if (!l->unit.empty()) {
      std::string unit;
      fields >> unit;
      EXPECT_EQ(unit, l->unit) << line;
    }
    std::string rest;
    std::getline(fields, rest);
    EXPECT_EQ(rest.substr(rest.find_first_not_of(' ')), l->label) << line;
  }
  std::map<std::string, std::string> values = Values(lines);
  for (size_t i = 0; i < kPrintedCount; ++i) {
    ASSERT_EQ(values.count(kPrintedNames[i]), 1u) << kPrintedNames[i] << " not printed";
    EXPECT_EQ(values[kPrintedNames[i]], std::to_string(100 + i)) << kPrintedNames[i];
  }
  ASSERT_EQ(values.count("acceleration_factor"), 1u);
  EXPECT_DOUBLE_EQ(std::strtod(values["acceleration_factor"].c_str(), nullptr), 1.5);
  EXPECT_EQ(values.size(), kPrintedCount + 1) << "only the statistics and acceleration_factor";
}

// Issue 18: grouped (connections, bytes, errors, resources, timing), each statistic in list
// order within its group, every one labelled, with bsdproxy's words where it had them.
TEST(StatsTest, PrintGroupsInTheDocumentedOrderAndLabelsEveryStatistic) {
  const std::vector<std::string> lines = Lines(Print(Stats{}));
  std::vector<std::string> headings;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].rfind("  ", 0) != 0) headings.push_back(lines[i]);
  }
  EXPECT_EQ(headings, (std::vector<std::string>{" connections", " bytes", " errors", " resources",
                                                " timing"}))
      << "no statistic may fall into ' other'";
  const std::vector<std::string_view> names = printed_stat_names();
  for (std::string_view name : names) {
    const StatLabel* l = LabelOf(name);
    ASSERT_NE(l, nullptr) << name << " has no label in stats.cc";
    EXPECT_NE(l->group, StatGroup::kOther) << name;
    EXPECT_FALSE(l->label.empty()) << name;
  }
  for (const StatLabel& l : stat_labels()) {
    EXPECT_NE(std::find(names.begin(), names.end(), l.name), names.end())
        << l.name << " is labelled but not a statistic";
  }
  // Within a group, list order.
  std::vector<std::string> printed;
  for (const std::string& line : StatLines(lines)) {
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    printed.push_back(name);
  }
  for (size_t i = 1; i < printed.size(); ++i) {
    const StatLabel* a = LabelOf(printed[i - 1]);
    const StatLabel* b = LabelOf(printed[i]);
    if (a->group != b->group) continue;
    EXPECT_LT(std::find(names.begin(), names.end(), a->name),
              std::find(names.begin(), names.end(), b->name))
        << a->name << " before " << b->name;
  }
  EXPECT_EQ(LabelOf("accepted")->label, "Client connections accepted");
  EXPECT_EQ(LabelOf("bytes_u2c")->label, "Bytes written to clients");
  EXPECT_EQ(LabelOf("peak_active")->label, "Maximum concurrent clients");
  EXPECT_EQ(LabelOf("acceleration_factor")->label, "Acceleration factor");
  EXPECT_EQ(LabelOf("bytes_u2c")->unit, "bytes");
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

TEST(StatsTest, ReportHasTheTotalThenEachWorkersLines) {
  const Stats workers[] = {Numbered(10), Numbered(20)};
  Stats total = workers[0];
  total.merge(workers[1]);
  const std::vector<std::string> lines = Lines(Report(total, workers));
  ASSERT_EQ(StatLines(lines).size(), 3 * (kPrintedCount + 1));
  EXPECT_EQ(lines[0], "edgeproxy: statistics");
  std::map<std::string, std::string> values = Values(lines);
  EXPECT_EQ(values["accepted"], std::to_string(30 + 2 * 3));
  EXPECT_EQ(values["worker0.accepted"], std::to_string(10 + 3));
  EXPECT_EQ(values["worker1.accepted"], std::to_string(20 + 3));
}

// A worker that did not answer in time was reported as zeros, silently: the header now says the
// block is incomplete and names the worker, whose lines are left out.
TEST(StatsTest, ReportOfAWorkerThatDidNotAnswerSaysIncompleteAndNamesIt) {
  const Stats workers[] = {Numbered(10), Stats{}, Numbered(30)};
  Stats total = workers[0];
  total.merge(workers[2]);
  const uint32_t silent[] = {1};
  const std::string text = Report(total, workers, silent, 2000);
  const std::vector<std::string> lines = Lines(text);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "edgeproxy: statistics (incomplete: worker 1 did not answer within 2 s)");
  EXPECT_EQ(StatLines(lines).size(), 3 * (kPrintedCount + 1));
  EXPECT_EQ(text.find("worker1."), std::string::npos) << "the silent worker's lines, as zeros";
  std::map<std::string, std::string> values = Values(lines);
  EXPECT_EQ(values["worker0.accepted"], std::to_string(10 + 3));
  EXPECT_EQ(values["worker2.accepted"], std::to_string(30 + 3));
  EXPECT_EQ(values["accepted"], std::to_string(40 + 2 * 3));
}

TEST(StatsTest, ReportNamesEveryWorkerThatDidNotAnswer) {
  const Stats workers[] = {Stats{}, Stats{}, Stats{}, Stats{}};
  const uint32_t silent[] = {1, 3};
  const std::vector<std::string> lines = Lines(Report(Stats{}, workers, silent, 2000));
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "edgeproxy: statistics (incomplete: workers 1, 3 did not answer within 2 s)");
  EXPECT_EQ(StatLines(lines).size(), 3 * (kPrintedCount + 1))
      << "the total, worker0's and worker2's";
  // With one worker there are no per-worker lines; the header still says what is missing.
  const uint32_t only[] = {0};
  EXPECT_EQ(Lines(Report(Stats{}, {}, only, 1500))[0],
            "edgeproxy: statistics (incomplete: worker 0 did not answer within 1500 ms)");
}

}  // namespace
}  // namespace edgeproxy
