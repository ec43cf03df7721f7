// Stats reporting and merging, generated from EDGEPROXY_ALL_STATS; see stats.h.
#include "edgeproxy/stats.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

namespace edgeproxy {

double Stats::acceleration_factor() const noexcept {
  if (u2c_upstream_ns == 0) return 0.0;
  // long double holds 64 significant bits, more than the printed 3 decimals need at any size.
  return static_cast<double>(static_cast<long double>(u2c_client_ns) /
                             static_cast<long double>(u2c_upstream_ns));
}

void Stats::merge(const Stats& o) noexcept {
#define EDGEPROXY_SUM(name) name += o.name;
#define EDGEPROXY_MAX(name) name = std::max(name, o.name);
#define EDGEPROXY_MERGE(name, bounds) name.merge(o.name);
  EDGEPROXY_ALL_STATS(EDGEPROXY_SUM, EDGEPROXY_SUM, EDGEPROXY_MAX, EDGEPROXY_SUM, EDGEPROXY_MERGE)
#undef EDGEPROXY_SUM
#undef EDGEPROXY_MAX
#undef EDGEPROXY_MERGE
}

namespace {

// The printed block's presentation: each statistic's group, unit and label. The names stay the
// machine-readable key (scripts and tests parse "  name value"); the labels are for people, and
// keep bsdproxy's wording where it had the statistic. A statistic missing here is printed under
// "other" (a unit test fails first).
constexpr StatLabel kLabels[] = {
    {"accepted", StatGroup::kConnections, "", "Client connections accepted"},
    {"active", StatGroup::kConnections, "", "Client connections open now"},
    {"peak_active", StatGroup::kConnections, "", "Maximum concurrent clients"},
    {"closed", StatGroup::kConnections, "", "Client connections closed"},
    {"no_server", StatGroup::kConnections, "", "Clients closed: no usable server"},
    {"connect_retries", StatGroup::kConnections, "", "Server connects retried elsewhere"},
    {"shutdown_forced", StatGroup::kConnections, "", "Connections cut by the shutdown deadline"},
    {"server_finished_first", StatGroup::kConnections, "",
     "Servers that finished before their client"},
    {"bytes_u2c", StatGroup::kBytes, "bytes", "Bytes written to clients"},
    {"bytes_c2u", StatGroup::kBytes, "bytes", "Bytes written to servers"},
    {"splice_bytes", StatGroup::kBytes, "bytes", "Bytes moved through pipes (in the above)"},
    {"reads_client", StatGroup::kBytes, "calls", "Reads from clients"},
    {"reads_upstream", StatGroup::kBytes, "calls", "Reads from servers"},
    {"writes_client", StatGroup::kBytes, "calls", "Writes to clients"},
    {"writes_upstream", StatGroup::kBytes, "calls", "Writes to servers"},
    {"accept_errors", StatGroup::kErrors, "", "Failed accepts"},
    {"connects_failed", StatGroup::kErrors, "", "Failed server connects"},
    {"connect_timeouts", StatGroup::kErrors, "", "Server connects timed out"},
    {"idle_timeouts", StatGroup::kErrors, "", "Connections closed idle"},
    {"resets_client", StatGroup::kErrors, "", "Errors or resets from clients"},
    {"resets_upstream", StatGroup::kErrors, "", "Errors or resets from servers"},
    {"resets_sent", StatGroup::kErrors, "", "Resets sent"},
    {"stale_events", StatGroup::kErrors, "", "Late events for closed connections, dropped"},
    {"submit_failures", StatGroup::kErrors, "", "io_uring submissions refused"},
    {"cq_dropped", StatGroup::kErrors, "", "io_uring completions dropped by the kernel"},
    {"lost_operations", StatGroup::kErrors, "", "io_uring operations lost with them"},
    {"log_dropped", StatGroup::kErrors, "lines", "Access-log lines dropped"},
    {"pool_buffers", StatGroup::kResources, "blocks", "Buffer pool size (8 KiB blocks)"},
    {"pool_blocks_in_use", StatGroup::kResources, "blocks", "Buffer blocks in use"},
    {"pool_high_water", StatGroup::kResources, "blocks", "Most buffer blocks in use at once"},
    {"pool_waits", StatGroup::kResources, "", "Reads that waited for a buffer"},
    {"backpressure_pauses", StatGroup::kResources, "", "Reads paused by a full buffer"},
    {"accept_pauses", StatGroup::kResources, "", "Listener pauses (full, or out of fds)"},
    {"socket_waits", StatGroup::kResources, "", "Server sockets that waited for an fd"},
    {"linger_waits", StatGroup::kResources, "", "Resets held until bytes were acknowledged"},
    {"splice_pipes_in_use", StatGroup::kResources, "pipes", "Splice pipes in use"},
    {"splice_pipe_waits", StatGroup::kResources, "", "Reads that found no pipe free"},
    {"splice_pipes_dirty", StatGroup::kResources, "pipes", "Pipes replaced at close"},
    {"splice_pipes_lost", StatGroup::kResources, "pipes", "Pipes that could not be replaced"},
    {"accel_blocks_held", StatGroup::kResources, "blocks", "Blocks held for slow clients"},
    {"accel_blocks_peak", StatGroup::kResources, "blocks", "Most blocks held for slow clients"},
    {"accel_giveups", StatGroup::kResources, "", "Acceleration given up at the reserve"},
    {"topology_versions", StatGroup::kResources, "", "Configuration versions held"},
    {"loop_iterations", StatGroup::kTiming, "", "Event loop iterations"},
    {"events", StatGroup::kTiming, "", "Events handled"},
    {"batched_waits", StatGroup::kTiming, "", "io_uring batched waits"},
    {"acceleration_factor", StatGroup::kTiming, "", "Acceleration factor"},
};

constexpr std::string_view kGroupNames[] = {"connections", "bytes",  "errors",
                                            "resources",   "timing", "other"};

}  // namespace

std::span<const StatLabel> stat_labels() noexcept {
  return kLabels;
}

std::vector<std::string_view> printed_stat_names() {
  std::vector<std::string_view> names;
#define EDGEPROXY_NAME(name) names.emplace_back(#name);
#define EDGEPROXY_NOT_PRINTED(name)
#define EDGEPROXY_HISTOGRAM_NOT_PRINTED(name, bounds)
  EDGEPROXY_ALL_STATS(EDGEPROXY_NAME, EDGEPROXY_NAME, EDGEPROXY_NAME, EDGEPROXY_NOT_PRINTED,
                      EDGEPROXY_HISTOGRAM_NOT_PRINTED)
#undef EDGEPROXY_NAME
#undef EDGEPROXY_NOT_PRINTED
#undef EDGEPROXY_HISTOGRAM_NOT_PRINTED
  names.emplace_back("acceleration_factor");
  return names;
}

void Stats::append_lines(std::string& out, const char* prefix) const {
  // Values in list order, then printed group by group.
  struct Printed {
    std::string_view name;
    std::string value;
  };
  std::vector<Printed> values;
#define EDGEPROXY_VALUE(name) values.push_back({#name, std::to_string(name)});
#define EDGEPROXY_NOT_PRINTED(name)
#define EDGEPROXY_HISTOGRAM_NOT_PRINTED(name, bounds)
  EDGEPROXY_ALL_STATS(EDGEPROXY_VALUE, EDGEPROXY_VALUE, EDGEPROXY_VALUE, EDGEPROXY_NOT_PRINTED,
                      EDGEPROXY_HISTOGRAM_NOT_PRINTED)
#undef EDGEPROXY_VALUE
#undef EDGEPROXY_NOT_PRINTED
#undef EDGEPROXY_HISTOGRAM_NOT_PRINTED
  char factor[32];
  std::snprintf(factor, sizeof factor, "%.3f", acceleration_factor());
  values.push_back({"acceleration_factor", factor});
  const auto label_of = [](std::string_view name) -> const StatLabel* {
    for (const StatLabel& l : kLabels) {
      if (l.name == name) return &l;
    }
    return nullptr;
  };
  char line[200];
  for (size_t g = 0; g < std::size(kGroupNames); ++g) {
    bool header = false;
    for (const Printed& v : values) {
      const StatLabel* l = label_of(v.name);
      const auto group = static_cast<size_t>(l != nullptr ? l->group : StatGroup::kOther);
      if (group != g) continue;
      if (!header) {
        std::snprintf(line, sizeof line, " %s%.*s\n", prefix,
                      static_cast<int>(kGroupNames[g].size()), kGroupNames[g].data());
        out += line;
        header = true;
      }
      const std::string value =
          l != nullptr && !l->unit.empty() ? v.value + " " + std::string(l->unit) : v.value;
      std::snprintf(line, sizeof line, "  %s%-22.*s %-16s %.*s\n", prefix,
                    static_cast<int>(v.name.size()), v.name.data(), value.c_str(),
                    l != nullptr ? static_cast<int>(l->label.size()) : 0,
                    l != nullptr ? l->label.data() : "");
      out += line;
    }
  }
}

void Stats::print(std::FILE* out) const noexcept {
  print_report(out, *this, {});
}

void Stats::print_report(std::FILE* out, const Stats& total, std::span<const Stats> workers,
                         std::span<const uint32_t> silent, uint32_t waited_ms,
                         std::string_view extra) {
  const std::string text = format_report(total, workers, silent, waited_ms, extra);
  // One write, so a reader never sees half a block between other log lines.
  std::fwrite(text.data(), 1, text.size(), out);
  std::fflush(out);
}

std::string Stats::format_report(const Stats& total, std::span<const Stats> workers,
                                 std::span<const uint32_t> silent, uint32_t waited_ms,
                                 std::string_view extra) {
  std::string text = "edgeproxy: statistics";
  if (!silent.empty()) {
    text += silent.size() == 1 ? " (incomplete: worker " : " (incomplete: workers ";
    for (size_t i = 0; i < silent.size(); ++i) {
      if (i > 0) text += ", ";
      text += std::to_string(silent[i]);
    }
    text += " did not answer within ";
    text += waited_ms % 1000 == 0 ? std::to_string(waited_ms / 1000) + " s)"
                                  : std::to_string(waited_ms) + " ms)";
  }
  text += '\n';
  total.append_lines(text, "");
  for (uint32_t i = 0; i < workers.size(); ++i) {
    if (std::find(silent.begin(), silent.end(), i) != silent.end()) continue;
    const std::string prefix = "worker" + std::to_string(i) + ".";
    workers[i].append_lines(text, prefix.c_str());
  }
  if (!extra.empty()) text += " reloads and objects\n";
  text += extra;
  return text;
}

}  // namespace edgeproxy
