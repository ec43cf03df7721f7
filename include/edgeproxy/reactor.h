// The one place that picks the I/O backend. CMake compiles exactly one of src/epoll/ or
// src/uring/ and defines EDGEPROXY_BACKEND_URING accordingly; the rest of the core uses only the
// names Reactor and Transport, whose verbs transport.h lists.
#pragma once

#include "edgeproxy/transport.h"

#if EDGEPROXY_BACKEND_URING
#include "uring/uring_reactor.h"
#include "uring/uring_transport.h"
namespace edgeproxy {
using Reactor = UringReactor;
using Transport = UringTransport;
}  // namespace edgeproxy
#else
#include "epoll/epoll_reactor.h"
#include "epoll/epoll_transport.h"
namespace edgeproxy {
using Reactor = EpollReactor;
using Transport = EpollTransport;
}  // namespace edgeproxy
#endif

namespace edgeproxy {
static_assert(ReactorVerbs<Reactor>, "the backend's reactor lacks a verb the worker uses");
static_assert(TransportVerbs<Transport>, "the backend's transport lacks a verb the worker uses");
}  // namespace edgeproxy
