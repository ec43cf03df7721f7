// Routing contexts by slot; see routing_context.h.
#include "edgeproxy/routing_context.h"

#include "edgeproxy/check.h"

namespace edgeproxy {

RoutingArea::RoutingArea(uint32_t slots, uint32_t region_bytes)
    : region_bytes_(region_bytes), regions_(size_t{slots} * region_bytes), contexts_(slots) {}

RoutingContext& RoutingArea::reset(uint32_t index) noexcept {
  RoutingContext& c = contexts_.reset(index);
  if (!regions_.empty()) {
    c.region = regions_.data() + size_t{index} * region_bytes_;
    c.capacity = region_bytes_;
  }
  return c;
}

}  // namespace edgeproxy
