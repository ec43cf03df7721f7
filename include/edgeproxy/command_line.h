// CommandLine: what argv says, parsed through the option table (options.h) by a pure function:
// the process-wide settings, the one listener and backend of today's flags, or a file to read,
// and which options were written. topology_from_command_line() turns it into a Topology.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/config.h"
#include "edgeproxy/options.h"
#include "edgeproxy/result.h"
#include "edgeproxy/topology.h"

namespace edgeproxy {

// An option as written: the table entry and its value text ("" for flags; "on"/"off" for
// switches), in command-line order.
struct GivenOption {
  const OptionSpec* option = nullptr;
  std::string value;
};

struct CommandLine {
  Config config;  // process-wide settings: defaults, then the flags given
  // The one listener and backend (-l -p -b -P --idle-timeout --connect-timeout); not with -c.
  std::string listen_host = "0.0.0.0";
  uint16_t listen_port = 8080;
  std::string backend_host = "127.0.0.1";
  uint16_t backend_port = 8081;
  uint32_t idle_timeout_s = ListenerSpec{}.idle_timeout_s;
  uint32_t connect_timeout_ms = BackendSpec{}.connect_timeout_ms;
  // Every other listener- and backend-scope flag lands here (--accept-proxy, --inspect-timeout,
  // --inspect-bytes, --proxy-protocol): topology_from_command_line() starts from these.
  ListenerSpec listener;
  BackendSpec backend;
  std::string config_file;  // -c FILE; empty = serve the topology the flags describe
  bool check_only = false;  // -t: check the configuration and exit
  bool show_help = false;
  bool show_version = false;
  std::vector<GivenOption> given;

  // True when the option named `name` (long name, no "--") was written.
  bool has(std::string_view name) const noexcept;
};

// Parses argv[1..argc-1]. Accepts "--name value", "--name=value", "-x value" and "-xvalue";
// switches as --name and --no-name. Refuses, in one line naming the flag: unknown options,
// missing or bad values, stray arguments, and -c together with a listener- or backend-scope
// flag (-l -p -b -P --idle-timeout --connect-timeout). No I/O, no name resolution.
Result<CommandLine> parse_command_line(int argc, const char* const* argv);

// The one-listener, one-backend topology the flags describe: listener `main` binding
// listen_host:listen_port, backend `main` with one server `main` at backend_host:backend_port
// and retries 0 (a name with several addresses is tried address by address, as before).
// Unresolved; source "command line".
Result<Topology> topology_from_command_line(const CommandLine& cl);

// Applies the process-wide options `cl` gave (global scope, and -v/-q) to `global`, over what a
// file set. Listener- and backend-scope options are not applied (parse_command_line refuses
// them with -c).
Result<Ok> apply_global_overrides(Config& global, const CommandLine& cl);

}  // namespace edgeproxy
