// ConnectResult: what a transport's event did to a connection's backend connect, with the errno
// of a failure, so the worker can log it and decide whether to try the next address.
#pragma once

#include <cstdint>

namespace edgeproxy {

enum class ConnectOutcome : uint8_t { kNone, kConnected, kFailed };

struct ConnectResult {
  ConnectOutcome outcome = ConnectOutcome::kNone;
  int err = 0;  // kFailed: the errno of the failure
};

}  // namespace edgeproxy
