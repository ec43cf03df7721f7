// Prometheus text exposition (format 0.0.4) of a StatsSnapshot: the body the metrics endpoint
// serves (docs/metrics.md). Pure formatting: no I/O, callable from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "edgeproxy/stats_snapshot.h"

namespace edgeproxy {

// The Content-Type of render_prometheus()'s output.
inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4";

// `value` escaped for a label value of the text format: backslash, double quote and line feed
// become \\, \" and \n; everything else is kept (UTF-8 passes through).
std::string escape_label_value(std::string_view value);

// Appends one family with a single unlabelled sample: its HELP and TYPE lines and the sample.
// `type` is "counter" or "gauge"; `name` a valid metric name, `help` one line.
void append_prometheus_family(std::string& out, std::string_view name, std::string_view type,
                              std::string_view help, uint64_t value);

// Every family of `snapshot` (docs/metrics.md): the workers' statistics as per-worker series
// (label `worker`; a worker that did not answer is left out), the histograms as cumulative
// `_bucket{le=...}` series with `_sum` and `_count`, then the supervisor's figures and the
// per-listener, per-backend and per-server ones of the snapshot's topology. Families without a
// sample are left out. Names are edgeproxy_*, counters end in _total, byte counts in _bytes
// (before _total), durations in _seconds.
std::string render_prometheus(const StatsSnapshot& snapshot);

}  // namespace edgeproxy
