// The statistics as one JSON document: `show stats json` on the admin socket and the file
// --stats-file writes at exit (docs/admin.md). Same figures and names as the text block.
#pragma once

#include <string>
#include <string_view>

#include "edgeproxy/stats_snapshot.h"

namespace edgeproxy {

// One JSON object (RFC 8259), no trailing newline: the totals, each worker, the supervisor's
// counters, per listener, backend and server objects keyed by name, and the admin counters.
std::string render_stats_json(const StatsSnapshot& snapshot);

// `text` as a JSON string literal, quotes included: control bytes and bytes that are not valid
// UTF-8 are escaped (the latter as U+FFFD), so the output is always valid JSON.
std::string json_string(std::string_view text);

}  // namespace edgeproxy
