// AccessLogFormat: an access-log format string (`access-log-format`, docs/access-log.md),
// compiled once into literal pieces and %-variables, and the formatting of one connection's line
// from an AccessRecord into caller memory, without allocating. Each worker owns its own copy
// (it caches the local time of the current second).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "edgeproxy/end_reason.h"
#include "edgeproxy/net.h"
#include "edgeproxy/result.h"

namespace edgeproxy {

// What one access-log line says about a connection. Views stay valid while it is formatted.
struct AccessRecord {
  int64_t accepted_wall_ms = 0;           // CLOCK_REALTIME, ms: when the client was accepted
  const SocketAddress* client = nullptr;  // null or empty: unknown ("-")
  std::string_view listener;
  std::string_view backend;  // empty: none chosen ("-")
  std::string_view server;   // empty: none chosen ("-")
  int64_t connect_ms = -1;   // from the first connect attempt to the connect; -1: none
  int64_t duration_ms = 0;   // from accept to close
  uint64_t bytes_c2u = 0;    // delivered to the server
  uint64_t bytes_u2c = 0;    // delivered to the client
  EndReason end = EndReason::kNone;
  uint16_t end_status = 0;  // kForwardError: the status answered
  uint32_t worker = 0;
};

class AccessLogFormat {
 public:
  // The default line (HAProxy's tcplog is the model).
  static constexpr std::string_view kDefault = "%t %ci:%cp %f %bs %Tc %Tt %U %B %e";
  // The longest line written: a longer one is dropped (counted in log_dropped).
  static constexpr uint32_t kMaxLineBytes = 2048;

  // Compiles `text`. Refuses an unknown variable and a lone % at the end, in one phrase naming
  // it and its character position: "unknown variable '%x' at character 5 (expected ...)".
  static Result<AccessLogFormat> parse(std::string_view text);

  // Writes the record's line, newline included, into out[0, cap). Returns its length, or 0 when
  // it does not fit (nothing useful is left in `out` then). Worker thread; no allocation.
  uint32_t format(const AccessRecord& r, char* out, uint32_t cap) noexcept;

 private:
  enum class Var : uint8_t {
    kLiteral,
    kTime,
    kClientIp,
    kClientPort,
    kListener,
    kBackend,
    kServer,
    kBackendServer,
    kConnectMs,
    kDurationMs,
    kBytesUp,
    kBytesDown,
    kEnd,
    kWorker,
  };
  struct Item {
    Var var = Var::kLiteral;
    uint32_t offset = 0;  // kLiteral: its bytes in literals_
    uint32_t length = 0;
  };
  struct Name {
    std::string_view name;
    Var var;
  };
  static const Name kNames[];

  std::string literals_;
  std::vector<Item> items_;
  // The local time text of the second formatted last, "2026-12-02T23:18:35", and its offset,
  // "+01:00": localtime_r once a second at most.
  int64_t cached_second_ = INT64_MIN;
  char cached_date_[24] = {};
  char cached_offset_[8] = {};
};

}  // namespace edgeproxy
