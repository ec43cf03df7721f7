// Stats reporting and merging, generated from EDGEPROXY_ALL_STATS; see stats.h.
#include "edgeproxy/stats.h"

#include <algorithm>

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

void Stats::append_lines(std::string& out, const char* prefix) const {
  char line[160];
  auto add = [&](const char* name, unsigned long long value) {
    std::snprintf(line, sizeof line, "  %s%-20s %llu\n", prefix, name, value);
    out += line;
  };
#define EDGEPROXY_PRINT(name) add(#name, static_cast<unsigned long long>(name));
#define EDGEPROXY_NOT_PRINTED(name)
#define EDGEPROXY_HISTOGRAM_NOT_PRINTED(name, bounds)
  EDGEPROXY_ALL_STATS(EDGEPROXY_PRINT, EDGEPROXY_PRINT, EDGEPROXY_PRINT, EDGEPROXY_NOT_PRINTED,
                      EDGEPROXY_HISTOGRAM_NOT_PRINTED)
#undef EDGEPROXY_PRINT
#undef EDGEPROXY_NOT_PRINTED
#undef EDGEPROXY_HISTOGRAM_NOT_PRINTED
  std::snprintf(line, sizeof line, "  %s%-20s %.3f\n", prefix, "acceleration_factor",
                acceleration_factor());
  out += line;
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
  text += extra;
  return text;
}

}  // namespace edgeproxy
