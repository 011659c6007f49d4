// Allocators behind tensor storage. The CPU one caches freed blocks by size class so that a
// steady-state training loop reuses memory instead of calling malloc (and faulting fresh pages).
#pragma once
#include <cstddef>
#include <cstdint>

namespace fabric {

struct AllocatorStats {
  int64_t allocated_bytes = 0;       // in live tensors now
  int64_t reserved_bytes = 0;        // live + cached blocks held by the allocator
  int64_t peak_allocated_bytes = 0;  // since the last reset_peak()
  int64_t num_system_allocs = 0;     // calls that reached the system allocator
  int64_t num_cache_hits = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns memory aligned to at least 64 bytes; nbytes may be 0 (a unique non-null pointer).
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void empty_cache() = 0;  // returns cached blocks to the system
};

// The process-wide caching CPU allocator.
Allocator& cpu_allocator();

}  // namespace fabric
