// The backend seam spelled as types: the verbs the Worker uses on a reactor and on a transport.
// Each backend's pair static_asserts these concepts (reactor.h), so a backend that lacks a verb,
// or spells it differently, fails to compile at the seam instead of deep inside the worker.
// Verbs only one kind of backend has (completion backends: dropped completions, stale
// completions, lost operations) are probed by the worker with `requires`, never stubbed.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>

#include "edgeproxy/clock.h"
#include "edgeproxy/config.h"
#include "edgeproxy/connect_result.h"
#include "edgeproxy/connection.h"
#include "edgeproxy/event.h"
#include "edgeproxy/net.h"
#include "edgeproxy/pipe_pool.h"
#include "edgeproxy/result.h"
#include "edgeproxy/slab.h"

namespace edgeproxy {

template <typename R>
concept ReactorVerbs = requires(R r, const R cr, int fd, uint64_t cookie, uint32_t n, int ms) {
  { R::kName } -> std::convertible_to<const char*>;
  { R::kBatchWait } -> std::convertible_to<bool>;
  { r.start() } -> std::same_as<SysResult>;
  { r.watch(fd, cookie) } -> std::same_as<SysResult>;
  { r.watch_listener(fd, cookie) } -> std::same_as<SysResult>;
  { r.pause_listener(fd, cookie) } -> std::same_as<SysResult>;
  { r.resume_listener(fd, cookie) } -> std::same_as<SysResult>;
  { r.unwatch_listener(fd, cookie) } -> std::same_as<void>;
  { cr.listener_idle(n) } -> std::same_as<bool>;
  { r.set_accept_room(n, n) } -> std::same_as<void>;
  { cr.accepts_idle() } -> std::same_as<bool>;
  { r.set_concurrency(n) } -> std::same_as<void>;
  { cr.batched_waits() } -> std::same_as<uint64_t>;
  { r.wait(ms) } -> std::same_as<std::span<const Event>>;
};

template <typename T>
concept TransportVerbs = requires(T t, const T ct, Connection& c, Handle h, const Config& config,
                                  const SocketAddress& to, bool client, const Event& ev,
                                  LoopTime now) {
  { T::kMaxBuffers } -> std::convertible_to<uint32_t>;
  { t.init(config) } -> std::same_as<Result<Ok>>;
  // Registers an accepted client before any backend is chosen (routing reads first).
  { t.attach(c, h) } -> std::same_as<int>;
  // Starts a connect of c.upstream.fd to `to`: the address is per call, never kept.
  { t.connect(c, h, to) } -> std::same_as<int>;
  { t.abandon_connect(c, h) } -> std::same_as<bool>;
  { t.on_event(c, h, client, ev, now) } -> std::same_as<ConnectResult>;
  { t.pump(c, h, now) } -> std::same_as<void>;
  { t.settle(c, h) } -> std::same_as<bool>;
  { t.quiesce(c, h) } -> std::same_as<bool>;
  // A finished upstream (relay::upstream_finished) may be closed before the connection: true
  // once nothing refers to its fd (decision 0011).
  { t.release_upstream(c, h) } -> std::same_as<bool>;
  // HTTP mode (decision 0013): a pooled upstream leaves the slot (true once nothing refers to its
  // fd; `ending`: the connection will not take another upstream), or a pooled socket becomes the
  // slot's upstream (0 or an errno).
  { t.detach_upstream(c, h, client) } -> std::same_as<bool>;
  { t.adopt_upstream(c, h) } -> std::same_as<int>;
  { ct.buffers_available() } -> std::same_as<bool>;
  { t.release_pipes(c) } -> std::same_as<void>;
  // Closes a connection's socket once nothing refers to it (quiesce() said so).
  { t.close_socket(c.client.fd) } -> std::same_as<void>;
  { t.release_pipe(c.upstream) } -> std::same_as<void>;
  { ct.pipes() } -> std::same_as<const PipePool&>;
};

}  // namespace edgeproxy
