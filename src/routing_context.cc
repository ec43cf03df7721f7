// Routing contexts by slot; see routing_context.h.
#include "edgeproxy/routing_context.h"

#include "edgeproxy/check.h"

namespace edgeproxy {

RoutingArea::RoutingArea(uint32_t slots, uint32_t region_bytes)
    : region_bytes_(region_bytes),
      regions_(region_bytes == 0
                   ? nullptr
                   : std::make_unique_for_overwrite<std::byte[]>(size_t{slots} * region_bytes)),
      contexts_(std::make_unique<RoutingContext[]>(slots)) {}

RoutingContext& RoutingArea::reset(uint32_t index) noexcept {
  RoutingContext& c = contexts_[index];
  c = RoutingContext{};
  if (regions_ != nullptr) {
    c.region = regions_.get() + size_t{index} * region_bytes_;
    c.capacity = region_bytes_;
  }
  return c;
}

}  // namespace edgeproxy
