// The admin protocol's parser; see admin_command.h.
#include "edgeproxy/admin_command.h"

#include <vector>

#include "edgeproxy/options.h"

namespace edgeproxy {
namespace {

constexpr size_t kMaxWords = 8;
constexpr size_t kMaxEcho = 32;

// What an error may quote of the input: at most kMaxEcho bytes, in printable ASCII.
std::string echo(std::string_view word) {
  std::string out = printable(word.substr(0, kMaxEcho), /*ascii_only=*/true);
  if (word.size() > kMaxEcho) out += "...";
  return "'" + out + "'";
}

bool split_words(std::string_view line, std::vector<std::string_view>& words) {
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == line.size()) break;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (words.size() == kMaxWords) return false;
    words.push_back(line.substr(start, i - start));
  }
  return true;
}

// "BACKEND/SERVER": both parts non-empty.
bool split_server(std::string_view word, AdminCommand& c) {
  const size_t slash = word.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == word.size()) return false;
  if (word.find('/', slash + 1) != std::string_view::npos) return false;
  c.backend = std::string(word.substr(0, slash));
  c.server = std::string(word.substr(slash + 1));
  return true;
}

bool parse_u32(std::string_view text, uint64_t min, uint64_t max, uint32_t& out) {
  uint64_t v = 0;
  if (!parse_decimal(text, min, max, v)) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

// "WORKER.SLOT.GENERATION", as `show conns` prints it.
bool parse_conn_id(std::string_view word, AdminCommand& c) {
  const size_t a = word.find('.');
  if (a == std::string_view::npos) return false;
  const size_t b = word.find('.', a + 1);
  if (b == std::string_view::npos) return false;
  return parse_u32(word.substr(0, a), 0, UINT32_MAX, c.worker) &&
         parse_u32(word.substr(a + 1, b - a - 1), 0, UINT32_MAX, c.slot) &&
         parse_u32(word.substr(b + 1), 0, UINT32_MAX, c.generation);
}

Result<AdminCommand> usage(const char* form) {
  return Error{std::string("usage: ") + form};
}

}  // namespace

Result<AdminCommand> parse_admin_command(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > kAdminMaxLine) return Error{"line too long"};
  for (const char ch : line) {
    // Unsigned: a byte from 0x80 (UTF-8) is no control byte; it is quoted as \xHH if echoed.
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return Error{"control byte in the command"};
  }
  std::vector<std::string_view> w;
  if (!split_words(line, w)) return Error{"too many words (see help)"};
  if (w.empty()) return Error{"empty command (see help)"};
  AdminCommand c;
  using K = AdminCommand::Kind;
  const size_t n = w.size();
  if (w[0] == "help") {
    if (n != 1) return usage("help");
    c.kind = K::kHelp;
    return c;
  }
  if (w[0] == "show") {
    if (n < 2) return usage("show info|stats|listeners|backends|servers|conns");
    if (w[1] == "info" && n == 2)
      c.kind = K::kShowInfo;
    else if (w[1] == "info")
      return usage("show info");
    else if (w[1] == "stats") {
      if (n > 3 || (n == 3 && w[2] != "json")) return usage("show stats [json]");
      c.kind = K::kShowStats;
      c.json = n == 3;
    } else if (w[1] == "listeners") {
      if (n != 2) return usage("show listeners");
      c.kind = K::kShowListeners;
    } else if (w[1] == "backends") {
      if (n != 2) return usage("show backends");
      c.kind = K::kShowBackends;
    } else if (w[1] == "servers") {
      if (n > 3) return usage("show servers [BACKEND]");
      c.kind = K::kShowServers;
      if (n == 3) c.backend = std::string(w[2]);
    } else if (w[1] == "conns") {
      if (n > 3) return usage("show conns [N]");
      c.kind = K::kShowConns;
      c.count = kAdminDefaultConns;
      if (n == 3 && !parse_u32(w[2], 1, kAdminMaxConns, c.count)) {
        return Error{"show conns: invalid count " + echo(w[2]) + " (expected 1-" +
                     std::to_string(kAdminMaxConns) + ")"};
      }
    } else {
      return Error{"unknown 'show' object " + echo(w[1]) +
                   " (expected info, stats, listeners, backends, servers or conns)"};
    }
    return c;
  }
  if (w[0] == "disable" || w[0] == "enable") {
    const bool disable = w[0] == "disable";
    if (n != 3 || w[1] != "server" || !split_server(w[2], c)) {
      return usage(disable ? "disable server BACKEND/SERVER" : "enable server BACKEND/SERVER");
    }
    c.kind = disable ? K::kDisableServer : K::kEnableServer;
    return c;
  }
  if (w[0] == "set") {
    if (n != 4 || w[1] != "weight" || !split_server(w[2], c)) {
      return usage("set weight BACKEND/SERVER N");
    }
    if (!parse_u32(w[3], 1, 256, c.count)) {
      return Error{"set weight: invalid weight " + echo(w[3]) + " (expected 1-256)"};
    }
    c.kind = K::kSetWeight;
    return c;
  }
  if (w[0] == "kill") {
    if (n != 3 || w[1] != "conn") return usage("kill conn ID");
    if (!parse_conn_id(w[2], c)) {
      return Error{"kill conn: invalid id " + echo(w[2]) +
                   " (expected WORKER.SLOT.GENERATION, as show conns prints it)"};
    }
    c.kind = K::kKillConn;
    return c;
  }
  if (w[0] == "reload") {
    if (n != 1) return usage("reload");
    c.kind = K::kReload;
    return c;
  }
  if (w[0] == "shutdown") {
    if (n != 2 || (w[1] != "graceful" && w[1] != "fast")) return usage("shutdown graceful|fast");
    c.kind = K::kShutdown;
    c.fast = w[1] == "fast";
    return c;
  }
  return Error{"unknown command " + echo(w[0]) + " (see help)"};
}

std::string admin_help() {
  return "help                         this list\n"
         "show info                    version, backend, uptime, workers, limits, admin counters\n"
         "show stats [json]            the statistics block (as on SIGUSR1), or as JSON\n"
         "show listeners               per listener: binds, backend, connections, bytes\n"
         "show backends                per backend: balance, servers up, connections, bytes\n"
         "show servers [BACKEND]       per server: up/down, drained, weight, connections, bytes\n"
         "show conns [N]               at most N open connections (default 100)\n"
         "disable server B/S           drain: no new connections, open ones finish\n"
         "enable server B/S            take new connections again\n"
         "set weight B/S N             weight 1-256 until a reload changes the configured one\n"
         "kill conn ID                 reset both sides of a connection (ID from show conns)\n"
         "reload                       reload the configuration file\n"
         "shutdown graceful|fast       stop as QUIT (graceful) or TERM (fast) would\n";
}

}  // namespace edgeproxy
