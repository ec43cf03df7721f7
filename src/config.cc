// Command-line parsing; see config.h. Limits are checked here so nothing later sees a bad value.
#include "edgeproxy/config.h"

#include <string_view>

namespace edgeproxy {
namespace {

enum class Kind : uint8_t { kFlag, kValue };

struct Option {
  const char* long_name;
  char short_name;  // 0 = none
  Kind kind;
};

constexpr Option kOptions[] = {
    {"listen", 'l', Kind::kValue},
    {"port", 'p', Kind::kValue},
    {"backend", 'b', Kind::kValue},
    {"backend-port", 'P', Kind::kValue},
    {"max-connections", 0, Kind::kValue},
    {"buffers", 0, Kind::kValue},
    {"connect-timeout", 0, Kind::kValue},
    {"idle-timeout", 0, Kind::kValue},
    {"shutdown-timeout", 0, Kind::kValue},
    {"backlog", 0, Kind::kValue},
    {"workers", 0, Kind::kValue},
    {"cpu-list", 0, Kind::kValue},
    {"no-delay", 0, Kind::kFlag},
    {"no-no-delay", 0, Kind::kFlag},
    {"splice", 0, Kind::kValue},
    {"splice-threshold", 0, Kind::kValue},
    {"splice-pipes", 0, Kind::kValue},
    {"batch-wait", 0, Kind::kValue},
    {"verbose", 'v', Kind::kFlag},
    {"quiet", 'q', Kind::kFlag},
    {"help", 'h', Kind::kFlag},
    {"version", 'V', Kind::kFlag},
};

// Parses a whole decimal number in [min, max]; anything else (sign, spaces, suffix) is refused.
bool parse_number(std::string_view text, uint64_t min, uint64_t max, uint64_t& out) {
  if (text.empty() || text.size() > 12) return false;
  uint64_t v = 0;
  for (const char ch : text) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  if (v < min || v > max) return false;
  out = v;
  return true;
}

std::string quoted(std::string_view v) {
  return "'" + std::string(v) + "'";
}

Error bad_value(const std::string& flag, std::string_view value, const char* expected) {
  return Error{flag + ": invalid value " + quoted(value) + " (expected " + expected + ")"};
}

// Applies one option. `flag` is how the user spelled it, for messages.
Result<Ok> apply(Config& c, const Option& o, const std::string& flag, std::string_view value) {
  const std::string_view name = o.long_name;
  uint64_t n = 0;
  auto number = [&](uint64_t min, uint64_t max, const char* expected) -> Result<Ok> {
    if (!parse_number(value, min, max, n)) return bad_value(flag, value, expected);
    return Ok{};
  };
  if (name == "listen" || name == "backend") {
    if (value.empty()) return Error{flag + ": empty address"};
    (name == "listen" ? c.listen_host : c.backend_host) = std::string(value);
  } else if (name == "port" || name == "backend-port") {
    if (auto r = number(1, 65535, "a port 1-65535"); !r.ok()) return r;
    (name == "port" ? c.listen_port : c.backend_port) = static_cast<uint16_t>(n);
  } else if (name == "max-connections") {
    if (auto r = number(1, 1'000'000, "1-1000000"); !r.ok()) return r;
    c.max_connections = static_cast<uint32_t>(n);
  } else if (name == "buffers") {
    // One block per direction is the least a connection can relay with.
    if (auto r = number(2, 4'000'000, "2-4000000: at least 2, one per direction"); !r.ok())
      return r;
    c.buffers = static_cast<uint32_t>(n);
  } else if (name == "connect-timeout") {
    if (auto r = number(1, 3'600'000, "milliseconds 1-3600000"); !r.ok()) return r;
    c.connect_timeout_ms = static_cast<uint32_t>(n);
  } else if (name == "idle-timeout") {
    if (auto r = number(0, 31'536'000, "seconds 0-31536000, 0 = none"); !r.ok()) return r;
    c.idle_timeout_s = static_cast<uint32_t>(n);
  } else if (name == "shutdown-timeout") {
    if (auto r = number(0, 86'400, "seconds 0-86400"); !r.ok()) return r;
    c.shutdown_timeout_s = static_cast<uint32_t>(n);
  } else if (name == "backlog") {
    if (auto r = number(1, 65'535, "1-65535"); !r.ok()) return r;
    c.backlog = static_cast<int>(n);
  } else if (name == "workers") {
    if (value == "auto") {
      c.workers = 0;
    } else {
      if (auto r = number(1, 1024, "1-1024 or auto"); !r.ok()) return r;
      c.workers = static_cast<uint32_t>(n);
    }
  } else if (name == "cpu-list") {
    auto cpus = parse_cpu_list(value);
    if (!cpus.ok()) return Error{flag + ": " + cpus.error()};
    c.cpu_list = std::move(cpus.value());
  } else if (name == "no-delay") {
    c.no_delay = true;
  } else if (name == "no-no-delay") {
    c.no_delay = false;
  } else if (name == "splice") {
    if (value == "never") {
      c.splice = SpliceMode::kNever;
    } else if (value == "auto") {
      c.splice = SpliceMode::kAuto;
    } else if (value == "always") {
      c.splice = SpliceMode::kAlways;
    } else {
      return bad_value(flag, value, "auto, always or never");
    }
  } else if (name == "splice-threshold") {
    if (auto r = number(0, 1'073'741'824, "bytes 0-1073741824"); !r.ok()) return r;
    c.splice_threshold_bytes = static_cast<uint32_t>(n);
  } else if (name == "splice-pipes") {
    if (auto r = number(1, 1'000'000, "1-1000000"); !r.ok()) return r;
    c.splice_pipes = static_cast<uint32_t>(n);
  } else if (name == "batch-wait") {
    if (auto r = number(0, 10'000, "microseconds 0-10000, 0 = off"); !r.ok()) return r;
    c.batch_wait_us = static_cast<uint32_t>(n);
    c.batch_wait_given = true;
  } else if (name == "verbose") {
    c.log_level = LogLevel::kVerbose;
  } else if (name == "quiet") {
    c.log_level = LogLevel::kQuiet;
  } else if (name == "help") {
    c.show_help = true;
  } else if (name == "version") {
    c.show_version = true;
  }
  return Ok{};
}

}  // namespace

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
                        ? parse_number(item, 0, kMaxCpu, first) && (last = first, true)
                        : parse_number(item.substr(0, dash), 0, kMaxCpu, first) &&
                              parse_number(item.substr(dash + 1), 0, kMaxCpu, last);
    if (!ok) {
      return Error{"invalid CPU list item " + quoted(item) +
                   " (expected a CPU 0-1023 or a range such as 2-3)"};
    }
    if (last < first) return Error{"invalid CPU range " + quoted(item) + " (descending)"};
    if (cpus.size() + (last - first + 1) > 1024) return Error{"CPU list too long (at most 1024)"};
    for (uint64_t cpu = first; cpu <= last; ++cpu) cpus.push_back(static_cast<uint16_t>(cpu));
  }
  return cpus;
}

Result<Config> parse_command_line(int argc, const char* const* argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const Option* opt = nullptr;
    std::string flag;
    std::string_view inline_value;
    bool has_inline = false;
    if (arg.size() > 2 && arg.substr(0, 2) == "--") {
      std::string_view name = arg.substr(2);
      if (const size_t eq = name.find('='); eq != std::string_view::npos) {
        inline_value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_inline = true;
      }
      flag = "--" + std::string(name);
      for (const Option& o : kOptions) {
        if (name == o.long_name) opt = &o;
      }
      if (opt != nullptr && opt->kind == Kind::kFlag && has_inline) {
        return Error{flag + ": takes no value"};
      }
    } else if (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-') {
      flag = std::string(arg.substr(0, 2));
      for (const Option& o : kOptions) {
        if (o.short_name == arg[1]) opt = &o;
      }
      if (arg.size() > 2) {
        if (opt != nullptr && opt->kind == Kind::kFlag) {
          return Error{"unknown option '" + std::string(arg) + "' (flags do not combine)"};
        }
        inline_value = arg.substr(2);
        has_inline = true;
      }
    } else {
      return Error{"unexpected argument '" + std::string(arg) + "' (see --help)"};
    }
    if (opt == nullptr) return Error{"unknown option '" + std::string(arg) + "' (see --help)"};
    std::string_view value;
    if (opt->kind == Kind::kValue) {
      if (has_inline) {
        value = inline_value;
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return Error{flag + ": missing value"};
      }
    }
    if (auto r = apply(c, *opt, flag, value); !r.ok()) return Error{r.error()};
  }
  return c;
}

std::string usage() {
  return R"(usage: edgeproxy [options]

A TCP proxy: accepts clients on --listen:--port and relays each to --backend:--backend-port.

  -l, --listen ADDR          address to listen on: IPv4/IPv6 literal or host name (default 0.0.0.0)
  -p, --port PORT            port to listen on (default 8080)
  -b, --backend ADDR         backend address: IPv4/IPv6 literal or host name (default 127.0.0.1)
  -P, --backend-port PORT    backend port (default 8081)
      --max-connections N    client connections served at once (default 1024)
      --buffers N            8 KiB buffers in the pool (default 2 x max-connections)
      --connect-timeout MS   backend connect timeout in milliseconds (default 5000)
      --idle-timeout S       close a connection idle for S seconds, 0 = never (default 3600)
      --shutdown-timeout S   on TERM/INT, how long connections may still run (default 10)
      --backlog N            listen backlog, capped by net.core.somaxconn (default 4096)
      --workers N|auto       worker threads, each with its own listening socket (SO_REUSEPORT),
                             connections and buffers; auto = one per CPU the process may use
                             (default 1). --max-connections and --buffers are divided among them
      --cpu-list LIST        pin worker i to the i-th CPU of LIST, e.g. 0,2-3 (wraps around when
                             there are more workers); every CPU must be in the inherited mask
      --no-delay             set TCP_NODELAY on both sides (default)
      --no-no-delay          leave Nagle's algorithm on
      --splice MODE          move bulk bytes with splice(2) through a pipe instead of copying
                             them through buffers: auto, always or never (default auto)
      --splice-threshold B   with --splice auto, a direction moves to a pipe once it has moved
                             B bytes through buffers and a read fills a whole buffer; it goes
                             back after a splice of less than a buffer (default 65536)
      --splice-pipes N       pipes in the pool, two descriptors each; a direction holds one only
                             while bytes are in it (default max-connections / 4)
      --batch-wait USEC      io_uring backend: a worker serving many connections waits up to
                             USEC microseconds for completions to accumulate before it handles
                             them, fewer wake-ups for the same work; 0-10000, 0 = handle each at
                             once (default 200; kernel 6.12+; the epoll backend accepts only 0)
  -v, --verbose              more log lines
  -q, --quiet                errors only
  -h, --help                 print this help and exit
  -V, --version              print the version and the I/O backend and exit

Signals: TERM/INT stop accepting and close the remaining connections after --shutdown-timeout;
QUIT stops accepting and lets every connection finish; USR1 prints statistics to stderr.
)";
}

}  // namespace edgeproxy
