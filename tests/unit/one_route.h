// For tests that drive a Worker directly: the options of a worker serving one listener on
// 127.0.0.1 (any free port) in front of one backend with one server at `backend`, as the command
// line would describe it, with the listening socket already open (as the supervisor does).
#pragma once

#include <netinet/in.h>

#include <memory>
#include <string>

#include "edgeproxy/listener.h"
#include "edgeproxy/net.h"
#include "edgeproxy/result.h"
#include "edgeproxy/topology.h"
#include "edgeproxy/worker.h"

namespace edgeproxy {

inline Result<WorkerOptions> one_route_options(const SocketAddress& backend, const Config& config,
                                               WorkerControl* control) {
  auto t = std::make_shared<Topology>();
  t->epoch = 1;
  t->global = config;
  BackendSpec b;
  b.name = "main";
  b.retries = 0;
  b.runtime = std::make_shared<BackendRuntime>();
  ServerSpec s;
  s.name = "main";
  s.addresses = {backend};
  s.runtime = std::make_shared<ServerRuntime>();
  b.servers.push_back(std::move(s));
  t->backends.push_back(std::move(b));
  ListenerSpec l;
  l.name = "main";
  l.runtime = std::make_shared<ListenerRuntime>();
  auto any = resolve("127.0.0.1", 1, "--listen");
  if (!any.ok()) return Error{any.error()};
  reinterpret_cast<sockaddr_in*>(&any.value().storage)->sin_port = 0;
  l.addresses = {any.value()};
  t->listeners.push_back(std::move(l));
  auto socket = Listener::open(any.value(), 64);
  if (!socket.ok()) return Error{socket.error()};
  WorkerOptions options;
  options.config = config;
  options.topology = t;
  options.listeners.push_back(ListenerPlan{0, 0, "main", any.value(), socket.value().release()});
  options.control = control;
  return options;
}

}  // namespace edgeproxy
