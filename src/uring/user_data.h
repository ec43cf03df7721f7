// UserData: what the io_uring backend packs into a submission's 64-bit user_data so the
// completion names its operation, connection slot, slot generation and buffer id.
// Layout: op (4 bits) | generation (24) | buffer id (16) | index (20).
#pragma once

#include <cstdint>

#include "edgeproxy/slab.h"

namespace edgeproxy {

enum class UringOp : uint8_t {
  kNone = 0,
  kAccept = 1,          // multishot accept; index = listener number
  kPoll = 2,            // multishot poll of a control fd (the worker's eventfd); index unused
  kListenerCancel = 3,  // cancel of a listener's accept; index = listener number
  kConnect = 4,         // upstream connect
  kRecvClient = 5,
  kRecvUpstream = 6,
  kSendClient = 7,    // send to the client; buffer = the block being sent
  kSendUpstream = 8,  // send to the upstream; buffer = the block being sent
  kCancelClient = 9,  // cancel of every operation on the client fd
  kCancelUpstream = 10,
  kAcceptOnce = 11,  // single-shot accept (near capacity); index = listener number
  // A splice, the poll before one, or the watch of a side whose reading is over, on the client /
  // upstream fd; buffer = its UringSplice.
  kSpliceClient = 12,
  kSpliceUpstream = 13,
  // An entry that completes only on failure, which is ignored: the close of a socket nothing
  // refers to, a socket option set as a ring command.
  kUnreported = 14,
};

// Which splice or poll operation a kSpliceClient/kSpliceUpstream completion reports. The side
// named by the op is the socket: the source for kIn, kPollIn and kWatch, the sink for kOut and
// kPollOut.
enum class UringSplice : uint16_t {
  kIn = 0,       // splice socket -> pipe
  kOut = 1,      // splice pipe -> socket
  kPollIn = 2,   // wait until the socket is readable (a splice on an empty socket is EAGAIN)
  kPollOut = 3,  // wait until the socket's send buffer has room
  kWatch = 4,    // reading is over (EOF): wait for an error or reset on the socket (POLLERR)
};

struct UserData {
  static constexpr uint32_t kIndexBits = 20;
  static constexpr uint32_t kMaxIndex = (1u << kIndexBits) - 1;  // 1 048 575 slots
  static constexpr uint32_t kMaxBuffer = 0xFFFF;                 // 16-bit ids, as the kernel's

  UringOp op = UringOp::kNone;
  Handle handle;
  uint16_t buffer = 0;

  static constexpr uint64_t pack(UringOp op, Handle h, uint16_t buffer = 0) noexcept {
    return (uint64_t{static_cast<uint8_t>(op)} << 60) |
           (uint64_t{h.generation & kGenerationMask} << 36) | (uint64_t{buffer} << 20) |
           (h.index & kMaxIndex);
  }
  static constexpr UserData unpack(uint64_t v) noexcept {
    return UserData{static_cast<UringOp>(v >> 60),
                    Handle{static_cast<uint32_t>(v) & kMaxIndex,
                           static_cast<uint32_t>(v >> 36) & kGenerationMask},
                    static_cast<uint16_t>(v >> 20)};
  }
};

// How the reactor passes a connection completion's operation and buffer id to the transport in
// Event::op: op (high 16 bits) | buffer id (low 16 bits).
struct UringEventOp {
  static constexpr uint32_t pack(UringOp op, uint16_t buffer) noexcept {
    return (uint32_t{static_cast<uint8_t>(op)} << 16) | buffer;
  }
  static constexpr UringOp op(uint32_t v) noexcept { return static_cast<UringOp>(v >> 16); }
  static constexpr uint16_t buffer(uint32_t v) noexcept { return static_cast<uint16_t>(v); }
};

}  // namespace edgeproxy
