// The mappings behind MappedArray; see mapped_array.h.
#include "edgeproxy/mapped_array.h"

#include <sys/mman.h>

namespace edgeproxy {

void* map_unbacked(size_t bytes) noexcept {
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return base == MAP_FAILED ? nullptr : base;
}

void unmap(void* base, size_t bytes) noexcept {
  munmap(base, bytes);
}

}  // namespace edgeproxy
