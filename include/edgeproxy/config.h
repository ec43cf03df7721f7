// Config: the process-wide settings (workers, limits, buffers, splice, logging), as a plain
// struct. Filled through the option table (options.h) from the command line (command_line.h) or
// a file's `global` block (topology_parser.h); held in Topology::global.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/log.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

// How a direction moves its bytes: copied through the pool's 8 KiB buffers, or moved by splice(2)
// through a pipe from the PipePool, socket -> pipe -> socket, without a copy to user space.
enum class SpliceMode : uint8_t {
  kNever,   // always through buffers
  kAuto,    // through a pipe while the direction is bulk: it has moved splice_threshold_bytes
            // through buffers and its last read filled a buffer (a short splice goes back)
  kAlways,  // through a pipe from the first byte after the backend connect
};
const char* to_string(SpliceMode mode) noexcept;

// The admin socket (docs/admin.md): where it listens and who may use it. Read at start-up; a
// reload keeps the running values.
struct AdminConfig {
  std::string unix_path;      // `admin unix:PATH` or --admin PATH; "" = no Unix admin socket
  uint32_t unix_mode = 0660;  // `mode`: the socket file's permissions
  std::string unix_group;     // `group`: the socket file's group ("" = the proxy's)
  std::string tcp_address;    // `admin tcp 127.0.0.1:PORT`; "" = none
  std::string token_file;     // `token-file`: the token each TCP session sends first
  // `admin-users` / `admin-groups`: names or numeric ids allowed on the Unix socket (checked
  // with SO_PEERCRED). Both empty: root and the proxy's own user.
  std::vector<std::string> users;
  std::vector<std::string> groups;
  bool enabled() const noexcept { return !unix_path.empty() || !tcp_address.empty(); }
  bool operator==(const AdminConfig&) const = default;
};

struct Config {
  uint32_t max_connections = 1024;   // client connections; sizes the slab
  uint32_t buffers = 0;              // pool size; 0 = 2 x max_connections
  uint32_t shutdown_timeout_s = 10;  // TERM/INT: how long connections may still run
  int backlog = 4096;                // capped by net.core.somaxconn
  uint32_t workers = 1;              // 0 = "auto": one per CPU of the affinity mask, at start-up
  // --cpu-list, in the order given (duplicates allowed): worker i runs on cpu_list[i % size].
  // Empty = workers are not pinned and inherit the process's mask (taskset, numactl).
  std::vector<uint16_t> cpu_list;
  bool no_delay = true;
  SpliceMode splice = SpliceMode::kAuto;
  uint32_t splice_threshold_bytes = 64 * 1024;  // --splice auto: bytes through buffers first
  uint32_t splice_pipes = 0;                    // pipe pool size; 0 = max_connections / 4
  // io_uring: how long a loaded worker may wait for completions to accumulate (see
  // UringReactor::wait). batch_wait_given says the user set it (the epoll backend refuses that).
  uint32_t batch_wait_us = 200;
  bool batch_wait_given = false;
  LogLevel log_level = LogLevel::kNormal;
  // The Prometheus endpoint's address as written ("127.0.0.1:9100", "[::1]:9100"); empty = off.
  // Resolved into Topology::metrics_address; served from start-up (a reload cannot move it).
  std::string metrics;
  AdminConfig admin;
  std::string stats_file;  // --stats-file: the statistics as JSON, written at exit ("" = none)
  // The access log (docs/access-log.md): "off" (or empty), "stderr", "stdout" or a file path;
  // and its format string (empty: AccessLogFormat::kDefault). A reload may change both.
  std::string access_log;
  std::string access_log_format;

  uint32_t buffer_count() const noexcept { return buffers != 0 ? buffers : 2 * max_connections; }
  // Pipes the pool creates at start-up (each holds two descriptors); 0 when splice is off.
  uint32_t pipe_count() const noexcept {
    if (splice == SpliceMode::kNever) return 0;
    if (splice_pipes != 0) return splice_pipes;
    return max_connections / 4 > 0 ? max_connections / 4 : 1;
  }
};

// Parses a CPU list such as "0,2-3" (decimal CPU numbers below 1024 and ascending ranges) into
// the CPUs in the order written. The error names what is wrong, without the flag.
Result<std::vector<uint16_t>> parse_cpu_list(std::string_view text);

}  // namespace edgeproxy
