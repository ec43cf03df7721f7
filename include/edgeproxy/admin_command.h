// AdminCommand: one line of the admin socket's protocol (docs/admin.md), parsed by a pure
// function so it can be unit-tested and fuzzed without a socket. Executing it is AdminServer's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "edgeproxy/result.h"

namespace edgeproxy {

// The longest command line accepted (the newline excluded); a longer one is refused whole.
inline constexpr size_t kAdminMaxLine = 1024;
// `show conns` without a count lists this many; a count is at most kAdminMaxConns.
inline constexpr uint32_t kAdminDefaultConns = 100;
inline constexpr uint32_t kAdminMaxConns = 5'000;  // ~150 bytes each: within the 1 MiB bound

struct AdminCommand {
  enum class Kind : uint8_t {
    kHelp,
    kShowInfo,
    kShowStats,  // json: `show stats json`
    kShowListeners,
    kShowBackends,
    kShowServers,  // backend: "" = every backend
    kShowConns,    // count
    kDisableServer,
    kEnableServer,
    kSetWeight,  // backend, server, count (the weight, 1-256)
    kKillConn,   // worker, slot, generation
    kReload,
    kShutdown,  // fast
  };
  Kind kind = Kind::kHelp;
  bool json = false;
  bool fast = false;
  std::string backend;
  std::string server;
  uint32_t count = 0;
  uint32_t worker = 0;
  uint32_t slot = 0;
  uint32_t generation = 0;
};

// Parses one line (without its newline; a trailing '\r' and blanks around words are ignored,
// words are separated by spaces or tabs). Error: one phrase for "error: <phrase>", naming what
// was expected; never echoes more than a few bytes of the input, and never a control byte.
Result<AdminCommand> parse_admin_command(std::string_view line);

// The `help` answer: one line per command, without the terminating empty line.
std::string admin_help();

}  // namespace edgeproxy
