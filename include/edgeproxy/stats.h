// Stats: plain per-worker statistics, written only by the worker's thread, merged across workers
// and printed when reported (at exit and on SIGUSR1). The printed names and their order are a
// stable interface (docs/architecture.md).
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace edgeproxy {

// Nanoseconds summed over connections. 128 bits: a signed 64-bit sum would overflow after 2^63 ns
// (292 years of connection time, months for many long downloads); this one never does.
__extension__ typedef unsigned __int128 NsSum;

// A histogram's bucket upper bounds in nanoseconds, ascending; an observation above the last one
// falls in the implicit +Inf bucket.
using HistogramBounds = std::array<int64_t, 16>;

// Backend connect time: 100 us to 10 s (connect-timeout is at most an hour, usually seconds).
inline constexpr HistogramBounds kConnectTimeBounds = {
    100'000,       250'000,       500'000,       1'000'000,     2'500'000,   5'000'000,
    10'000'000,    25'000'000,    50'000'000,    100'000'000,   250'000'000, 500'000'000,
    1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
// Connection duration: 1 ms to a day.
inline constexpr HistogramBounds kDurationBounds = {
    1'000'000,       5'000'000,         10'000'000,        50'000'000,
    100'000'000,     500'000'000,       1'000'000'000,     5'000'000'000,
    10'000'000'000,  30'000'000'000,    60'000'000'000,    300'000'000'000,
    600'000'000'000, 1'800'000'000'000, 3'600'000'000'000, 86'400'000'000'000};

// A fixed-bucket histogram of durations: one count per bucket (not cumulative: the Prometheus
// renderer accumulates) and the sum of the observations. Plain values, copied with Stats; no
// allocation. Written by one worker only.
template <const HistogramBounds& kBounds>
struct Histogram {
  static constexpr const HistogramBounds& bounds() noexcept { return kBounds; }
  std::array<uint64_t, kBounds.size() + 1> buckets{};  // the last one is +Inf
  NsSum sum_ns = 0;

  // Adds one observation of `ns` (a negative span, from a clock read out of order, counts as 0).
  void observe(int64_t ns) noexcept {
    if (ns < 0) ns = 0;
    size_t i = 0;
    while (i < kBounds.size() && ns > kBounds[i]) ++i;
    ++buckets[i];
    sum_ns += static_cast<uint64_t>(ns);
  }
  uint64_t count() const noexcept {
    uint64_t n = 0;
    for (const uint64_t b : buckets) n += b;
    return n;
  }
  void merge(const Histogram& o) noexcept {
    for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += o.buckets[i];
    sum_ns += o.sum_ns;
  }
};

// Every statistic, once: the struct's fields, merging and printing are all generated from this
// list, so adding one is one line here (plus its name in tests/integration/harness.py and its
// meaning in docs/architecture.md). Printed in this order, then acceleration_factor. Kinds:
//   COUNTER(name)  events since start; merged by summing.
//   GAUGE(name)    a current level; merged by summing (the process's level is its workers' sum).
//   PEAK(name)     a high-water mark; merged as the maximum. Workers peak at different times, so
//                  the merged value is the busiest worker's peak, a lower bound of the process's.
//   NS_SUM(name)   an NsSum, merged by summing; not printed (acceleration_factor is their ratio).
//   HISTOGRAM(name, bounds)  a Histogram<bounds>, merged by summing each bucket; not printed
//                  (the metrics endpoint shows it, docs/metrics.md).
// "Filled in by Worker::stats()" marks values the worker takes from its pools and reactor when
// reported rather than counting them as they happen.
// clang-format off
#define EDGEPROXY_ALL_STATS(COUNTER, GAUGE, PEAK, NS_SUM, HISTOGRAM)                               \
  COUNTER(loop_iterations)                                                                         \
  COUNTER(events)                                                                                  \
  COUNTER(stale_events)        /* events for a freed or reused slot, dropped */                    \
  COUNTER(accepted)                                                                                \
  COUNTER(accept_errors)       /* ECONNABORTED, EMFILE, ... (counted, never fatal) */              \
  COUNTER(accept_pauses)       /* listener paused: slab full or out of file descriptors */         \
  COUNTER(connects_failed)                                                                         \
  COUNTER(connect_timeouts)                                                                        \
  COUNTER(idle_timeouts)                                                                           \
  GAUGE(active)                                                                                    \
  PEAK(peak_active)                                                                                \
  COUNTER(closed)                                                                                  \
  COUNTER(bytes_c2u)           /* bytes written to upstreams */                                    \
  COUNTER(bytes_u2c)           /* bytes written to clients */                                      \
  COUNTER(reads_client)                                                                            \
  COUNTER(reads_upstream)                                                                          \
  COUNTER(writes_client)                                                                           \
  COUNTER(writes_upstream)                                                                         \
  COUNTER(backpressure_pauses)                                                                     \
  GAUGE(pool_buffers)          /* filled in by Worker::stats() */                                  \
  PEAK(pool_high_water)        /* filled in by Worker::stats() */                                  \
  COUNTER(pool_waits)          /* reads paused because the pool was empty */                       \
  COUNTER(resets_client)       /* errors/resets seen on client sockets */                          \
  COUNTER(resets_upstream)     /* errors/resets seen on upstream sockets */                        \
  COUNTER(resets_sent)         /* sockets closed with SO_LINGER 0 (the peer sees a reset) */       \
  COUNTER(shutdown_forced)     /* connections closed by the shutdown deadline */                   \
  COUNTER(splice_bytes)        /* bytes delivered through pipes (also in bytes_c2u/bytes_u2c) */   \
  COUNTER(splice_pipe_waits)   /* reads that wanted a pipe and used a buffer: none was free */     \
  COUNTER(splice_pipes_dirty)  /* pipes holding bytes at close, replaced by a fresh pipe */        \
  COUNTER(batched_waits)       /* io_uring --batch-wait: waits that asked for several             \
                                  completions; filled in by Worker::stats() */                     \
  GAUGE(splice_pipes_lost)     /* dirty pipes that could not be replaced: the pipe pool's          \
                                  shortfall; filled in by Worker::stats() */                       \
  COUNTER(socket_waits)        /* upstream sockets that waited for a descriptor (EMFILE...) */     \
  COUNTER(connect_retries)     /* failed connects retried on the backend's next address */         \
  COUNTER(linger_waits)        /* resets held back until the peer acknowledged every byte */       \
  COUNTER(submit_failures)     /* io_uring: a full submission queue the kernel kept refusing;      \
                                  filled in by Worker::stats() */                                  \
  COUNTER(cq_dropped)          /* io_uring: completions the kernel dropped (CQ overflow without    \
                                  memory); filled in by Worker::stats() */                         \
  COUNTER(lost_operations)     /* io_uring: operations given up at close, their completion         \
                                  dropped; filled in by Worker::stats() */                         \
  COUNTER(no_server)           /* clients closed because their backend had no usable server */    \
  PEAK(topology_versions)      /* configuration versions held: the current one, and older ones     \
                                  while connections accepted under them are open (merged: the      \
                                  most any worker holds); filled in by Worker::stats() */          \
  GAUGE(accel_blocks_held)     /* blocks held in acceleration chains now (decision 0011) */        \
  PEAK(accel_blocks_peak)      /* most blocks held in acceleration chains at once */               \
  COUNTER(accel_giveups)       /* full blocks that stayed and paused reading: the pool's free      \
                                  blocks were at the reserve */                                    \
  COUNTER(server_finished_first) /* connections whose upstream ended (EOF) while bytes for the    \
                                  client were still held by the proxy */                           \
  GAUGE(pool_blocks_in_use)    /* pool blocks held now; filled in by Worker::stats() */            \
  GAUGE(splice_pipes_in_use)   /* pipes held now; filled in by Worker::stats() */                  \
  COUNTER(log_dropped)         /* access-log lines dropped: the worker's ring was full or a line   \
                                  too long, or the writer's write() failed (docs/access-log.md) */ \
  /* Acceleration factor inputs, summed over connections whose upstream reached EOF and whose      \
     client then received every byte: from the first upstream byte to upstream EOF, and from the   \
     first upstream byte to the last byte written to the client. Callers add spans >= 0. */        \
  NS_SUM(u2c_upstream_ns)                                                                          \
  NS_SUM(u2c_client_ns)                                                                            \
  /* From the start of the connect attempt that succeeded to its completion (loop clock). */      \
  HISTOGRAM(connect_time, kConnectTimeBounds)                                                      \
  /* From accept to close, one observation per closed connection. */                              \
  HISTOGRAM(duration, kDurationBounds)
// clang-format on

// How the printed block presents a statistic (src/stats.cc): grouped, with a unit and a label
// for people. The name is the key scripts parse.
enum class StatGroup : uint8_t { kConnections, kBytes, kErrors, kResources, kTiming, kOther };
struct StatLabel {
  std::string_view name;
  StatGroup group;
  std::string_view unit;  // printed after the value ("bytes", "blocks"), or empty
  std::string_view
      label;  // e.g. "Client connections accepted" (bsdproxy's words where it had them)
};
std::span<const StatLabel> stat_labels() noexcept;
// Every statistic the block prints, in list order (acceleration_factor last).
std::vector<std::string_view> printed_stat_names();

struct Stats {
#define EDGEPROXY_STATS_VALUE(name) uint64_t name = 0;
#define EDGEPROXY_STATS_NS_SUM(name) NsSum name = 0;
#define EDGEPROXY_STATS_HISTOGRAM(name, bounds) Histogram<bounds> name;
  EDGEPROXY_ALL_STATS(EDGEPROXY_STATS_VALUE, EDGEPROXY_STATS_VALUE, EDGEPROXY_STATS_VALUE,
                      EDGEPROXY_STATS_NS_SUM, EDGEPROXY_STATS_HISTOGRAM)
#undef EDGEPROXY_STATS_VALUE
#undef EDGEPROXY_STATS_NS_SUM
#undef EDGEPROXY_STATS_HISTOGRAM

  // u2c_client_ns / u2c_upstream_ns, or 0 when no connection has completed both.
  double acceleration_factor() const noexcept;
  // Merges another worker's statistics into these, each by its kind (EDGEPROXY_ALL_STATS).
  void merge(const Stats& other) noexcept;
  // Appends the printed statistics group by group: a " <prefix><group>" heading, then one
  // "  <prefix><name> <value>[ <unit>] <label>" line each.
  void append_lines(std::string& out, const char* prefix) const;
  // Prints the block "edgeproxy: statistics" then "  name value" lines.
  void print(std::FILE* out) const noexcept;
  // One block, written at once: `total`'s lines, then each worker's as "  worker<i>.<name>".
  // `silent` lists the workers that did not answer within `waited_ms` (so `total` lacks them):
  // their lines are left out and the header says so, "edgeproxy: statistics (incomplete: worker
  // 1 did not answer within 2 s)", still one line containing "statistics".
  // `extra` (whole "  name value" lines) ends the block: the supervisor's own counters and the
  // per-listener, per-backend and per-server ones.
  static void print_report(std::FILE* out, const Stats& total, std::span<const Stats> workers,
                           std::span<const uint32_t> silent = {}, uint32_t waited_ms = 0,
                           std::string_view extra = {});
  // The block print_report() writes, as text.
  static std::string format_report(const Stats& total, std::span<const Stats> workers,
                                   std::span<const uint32_t> silent = {}, uint32_t waited_ms = 0,
                                   std::string_view extra = {});
};

}  // namespace edgeproxy
