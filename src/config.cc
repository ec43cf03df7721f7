// Process-wide settings: SpliceMode names and the CPU-list syntax; see config.h. Options are
// parsed through the table in options.cc.
#include "edgeproxy/config.h"

#include <string_view>

#include "edgeproxy/options.h"

namespace edgeproxy {

const char* to_string(SpliceMode mode) noexcept {
  switch (mode) {
    case SpliceMode::kNever:
      return "never";
    case SpliceMode::kAuto:
      return "auto";
    case SpliceMode::kAlways:
      return "always";
  }
  return "unknown";
}

Result<std::vector<uint16_t>> parse_cpu_list(std::string_view text) {
  constexpr uint64_t kMaxCpu = 1023;  // CPU_SETSIZE - 1
  std::vector<uint16_t> cpus;
  if (text.empty()) return Error{"empty CPU list (expected e.g. 0,2-3)"};
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (comma != std::string_view::npos && text.empty()) {
      return Error{"invalid CPU list: trailing comma (expected e.g. 0,2-3)"};
    }
    const size_t dash = item.find('-');
    uint64_t first = 0;
    uint64_t last = 0;
    const bool ok = dash == std::string_view::npos
                        ? parse_decimal(item, 0, kMaxCpu, first) && (last = first, true)
                        : parse_decimal(item.substr(0, dash), 0, kMaxCpu, first) &&
                              parse_decimal(item.substr(dash + 1), 0, kMaxCpu, last);
    if (!ok) {
      return Error{"invalid CPU list item '" + std::string(item) +
                   "' (expected a CPU 0-1023 or a range such as 2-3)"};
    }
    if (last < first) return Error{"invalid CPU range '" + std::string(item) + "' (descending)"};
    if (cpus.size() + (last - first + 1) > 1024) return Error{"CPU list too long (at most 1024)"};
    for (uint64_t cpu = first; cpu <= last; ++cpu) cpus.push_back(static_cast<uint16_t>(cpu));
  }
  return cpus;
}

}  // namespace edgeproxy
