// AdminCounters: the admin socket's counters as plain values, in a header of its own so that
// StatsSnapshot (and what formats it) does not depend on the admin server.
#pragma once

#include <cstdint>

namespace edgeproxy {

// The admin socket's counters, printed as "admin.<name>" in the statistics block and in
// show info, and as the "admin" object of the JSON.
//   COUNTER(name)  events since start        GAUGE(name)  a current level
// clang-format off
#define EDGEPROXY_ADMIN_STATS(COUNTER, GAUGE)                                                      \
  GAUGE(sessions)        /* sessions open now */                                                   \
  COUNTER(accepted)      /* sessions accepted (peer or token checked) */                           \
  COUNTER(refused)       /* connections refused: kAdminMaxSessions were open */                    \
  COUNTER(denied)        /* peers refused: uid/gid not allowed, or a wrong token */                \
  COUNTER(slow_closed)   /* sessions closed: output not read within kAdminDrainMs, or too much */  \
  COUNTER(idle_closed)   /* sessions closed after kAdminIdleMs without a command */                \
  COUNTER(commands)      /* commands answered */                                                   \
  COUNTER(command_errors) /* of which answered with an error line */
// clang-format on

struct AdminCounters {
#define EDGEPROXY_ADMIN_FIELD(name) uint64_t name = 0;
  EDGEPROXY_ADMIN_STATS(EDGEPROXY_ADMIN_FIELD, EDGEPROXY_ADMIN_FIELD)
#undef EDGEPROXY_ADMIN_FIELD
};

}  // namespace edgeproxy
