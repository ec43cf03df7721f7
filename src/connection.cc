// Names for connection lifecycle states, used in logs and tests.
#include "edgeproxy/connection.h"

namespace edgeproxy {

const char* to_string(State state) noexcept {
  switch (state) {
    case State::kFree:
      return "free";
    case State::kAccepted:
      return "accepted";
    case State::kInspecting:
      return "inspecting";
    case State::kRouting:
      return "routing";
    case State::kConnecting:
      return "connecting";
    case State::kRelaying:
      return "relaying";
    case State::kDraining:
      return "draining";
    case State::kLingering:
      return "lingering";
    case State::kClosing:
      return "closing";
  }
  return "unknown";
}

}  // namespace edgeproxy
