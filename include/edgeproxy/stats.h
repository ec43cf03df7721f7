// Stats: plain per-worker counters, written only by the worker's thread, merged and printed when
// reported (at exit and on SIGUSR1). The printed names are a stable interface
// (docs/architecture.md).
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

namespace edgeproxy {

struct Stats {
  uint64_t loop_iterations = 0;
  uint64_t events = 0;
  uint64_t stale_events = 0;  // events for a freed or reused slot, dropped
  uint64_t accepted = 0;
  uint64_t accept_errors = 0;  // ECONNABORTED, EMFILE, ... (counted, never fatal)
  uint64_t accept_pauses = 0;  // listener paused: slab full or out of file descriptors
  uint64_t connects_failed = 0;
  uint64_t connect_timeouts = 0;
  uint64_t idle_timeouts = 0;
  uint64_t active = 0;
  uint64_t peak_active = 0;
  uint64_t closed = 0;
  uint64_t bytes_c2u = 0;  // bytes written to upstreams
  uint64_t bytes_u2c = 0;  // bytes written to clients
  uint64_t reads_client = 0;
  uint64_t reads_upstream = 0;
  uint64_t writes_client = 0;
  uint64_t writes_upstream = 0;
  uint64_t backpressure_pauses = 0;
  uint64_t pool_buffers = 0;     // filled in when reported
  uint64_t pool_high_water = 0;  // filled in when reported
  uint64_t pool_waits = 0;       // reads paused because the pool was empty
  uint64_t resets_client = 0;    // errors/resets seen on client sockets
  uint64_t resets_upstream = 0;  // errors/resets seen on upstream sockets
  uint64_t resets_sent = 0;      // sockets we closed with SO_LINGER 0 (the peer sees a reset)
  uint64_t shutdown_forced = 0;  // connections closed by the shutdown deadline

  // --splice
  uint64_t splice_bytes = 0;        // bytes delivered through pipes (also in bytes_c2u/bytes_u2c)
  uint64_t splice_pipe_waits = 0;   // reads that wanted a pipe and used a buffer: no pipe was free
  uint64_t splice_pipes_dirty = 0;  // pipes holding bytes at close, replaced by a fresh pipe
  // --batch-wait (io_uring): waits that asked for several completions; filled in when reported.
  uint64_t batched_waits = 0;
  uint64_t socket_waits = 0;     // upstream sockets that waited for a descriptor (EMFILE...)
  uint64_t connect_retries = 0;  // failed connects retried on the backend's next address
  uint64_t linger_waits = 0;     // resets held back until the peer acknowledged every byte
  // Acceleration factor inputs, summed over connections whose upstream reached EOF and whose
  // client then received every byte: time from the first upstream byte to upstream EOF, and from
  // the first upstream byte to the last byte written to the client.
  int64_t u2c_upstream_ns = 0;
  int64_t u2c_client_ns = 0;

  // u2c_client_ns / u2c_upstream_ns, or 0 when no connection has completed both.
  double acceleration_factor() const noexcept;
  // Sums every counter. Peaks (peak_active, pool_high_water) are summed too: with several
  // workers the merged value is the sum of the workers' peaks, an upper bound of the process's.
  void merge(const Stats& other) noexcept;
  // Appends one "  <prefix><name> <value>" line per counter.
  void append_lines(std::string& out, const char* prefix) const;
  // Prints the block "edgeproxy: statistics" then "  name value" lines.
  void print(std::FILE* out) const noexcept;
  // One block, written at once: `total`'s lines, then each worker's as "  worker<i>.<name>".
  static void print_report(std::FILE* out, const Stats& total, std::span<const Stats> workers);
};

}  // namespace edgeproxy
