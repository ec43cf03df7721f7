// Config: everything the command line sets, as a plain struct. Parsing is a pure function (no
// I/O, no name resolution): it returns a Config or one error line naming the flag or value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/log.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

struct Config {
  std::string listen_host = "0.0.0.0";
  uint16_t listen_port = 8080;
  std::string backend_host = "127.0.0.1";
  uint16_t backend_port = 8081;
  uint32_t max_connections = 1024;  // client connections; sizes the slab
  uint32_t buffers = 0;             // pool size; 0 = 2 x max_connections
  uint32_t connect_timeout_ms = 5000;
  uint32_t idle_timeout_s = 3600;    // 0 = no idle timeout
  uint32_t shutdown_timeout_s = 10;  // TERM/INT: how long connections may still run
  int backlog = 4096;                // capped by net.core.somaxconn
  uint32_t workers = 1;              // 0 = "auto": one per CPU of the affinity mask, at start-up
  // --cpu-list, in the order given (duplicates allowed): worker i runs on cpu_list[i % size].
  // Empty = workers are not pinned and inherit the process's mask (taskset, numactl).
  std::vector<uint16_t> cpu_list;
  bool no_delay = true;
  LogLevel log_level = LogLevel::kNormal;
  bool show_help = false;
  bool show_version = false;

  uint32_t buffer_count() const noexcept { return buffers != 0 ? buffers : 2 * max_connections; }
};

// Parses a CPU list such as "0,2-3" (decimal CPU numbers below 1024 and ascending ranges) into
// the CPUs in the order written. The error names what is wrong, without the flag.
Result<std::vector<uint16_t>> parse_cpu_list(std::string_view text);

// Parses argv[1..argc-1]. Accepts "--name value", "--name=value", "-x value" and "-xvalue".
Result<Config> parse_command_line(int argc, const char* const* argv);

// The --help text: every option with its default.
std::string usage();

}  // namespace edgeproxy
