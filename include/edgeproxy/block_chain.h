// BlockChain: a FIFO of BufferPool blocks holding one direction's bytes beyond its Buffer (slow-
// client acceleration, decision 0011). Plain data: the links and each block's readable range live
// in the pool (BufferPool::chain_*), so a chain costs no memory per block outside the pool.
#pragma once

#include <cstdint>

#include "edgeproxy/buffer.h"

namespace edgeproxy {

struct BlockChain {
  uint32_t head = kNoBuffer;  // written first
  uint32_t tail = kNoBuffer;  // filled last
  uint32_t blocks = 0;
  uint32_t bytes = 0;  // readable bytes over every block

  bool empty() const noexcept { return blocks == 0; }
};

}  // namespace edgeproxy
