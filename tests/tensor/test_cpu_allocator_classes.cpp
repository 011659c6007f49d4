// The caching CPU allocator's free lists, one per size class: a freed block comes back for the
// next request of its class (and of no other), across the classes from 64 bytes to 64 MiB, and
// empty_cache hands every cached block back, reserved_bytes dropping by exactly what they held.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "tensor/allocator.h"

namespace fabric {
namespace {

// The class a request rounds to, as the allocator documents it: 64-byte multiples up to 512
// bytes, 8 classes per power of two above.
size_t class_bytes(size_t n) {
  if (n <= 512) return std::max<size_t>(64, (n + 63) / 64 * 64);
  size_t top = 512;
  while (top * 2 < n) top *= 2;
  const size_t step = top / 8;
  return (n + step - 1) / step * step;
}

// Requests spread over the classes: the bounds around 64-byte steps up to 512, and each of the 8
// classes per power of two above (their bounds and a byte past them).
std::vector<size_t> request_sizes() {
  std::vector<size_t> out = {0, 1, 63, 64, 65, 128, 500, 511, 512};
  for (size_t top = 512; top < (size_t{64} << 20); top *= 2) {
    const size_t step = top / 8;
    for (size_t k = 1; k <= 8; ++k) {
      out.push_back(top + k * step);                 // a class's own size
      out.push_back(top + k * step - 1);             // just under: the same class
      if (k < 8) out.push_back(top + k * step + 1);  // just over: the next class
    }
  }
  return out;
}

TEST(CpuAllocatorClasses, AFreedBlockServesItsClassOnly) {
  Allocator& alloc = cpu_allocator();
  for (size_t n : request_sizes()) {
    void* p = alloc.allocate(n);
    alloc.deallocate(p, n);
    const AllocatorStats before = alloc.stats();
    void* q = alloc.allocate(n);  // the block just freed, from the cache
    EXPECT_EQ(q, p) << n << " bytes";
    const AllocatorStats after = alloc.stats();
    EXPECT_EQ(after.num_system_allocs, before.num_system_allocs) << n << " bytes";
    EXPECT_EQ(after.num_cache_hits, before.num_cache_hits + 1) << n << " bytes";
    // A request one byte past this class (the smallest of the next) must not get this block.
    const size_t bigger = class_bytes(n) + 1;
    alloc.deallocate(q, n);
    void* r = alloc.allocate(bigger);
    EXPECT_NE(r, q) << n << " then " << bigger << " bytes";
    alloc.deallocate(r, bigger);
  }
}

TEST(CpuAllocatorClasses, EmptyCacheReleasesWhatTheCacheHeld) {
  Allocator& alloc = cpu_allocator();
  alloc.empty_cache();
  const AllocatorStats start = alloc.stats();
  std::vector<std::pair<void*, size_t>> blocks;
  for (size_t n : request_sizes()) blocks.emplace_back(alloc.allocate(n), n);
  const AllocatorStats held = alloc.stats();
  const int64_t grown = held.reserved_bytes - start.reserved_bytes;
  EXPECT_GT(grown, 0);
  EXPECT_EQ(held.allocated_bytes - start.allocated_bytes, grown);  // all fresh, all in use
  for (auto [p, n] : blocks) alloc.deallocate(p, n);
  EXPECT_EQ(alloc.stats().allocated_bytes, start.allocated_bytes);
  EXPECT_EQ(alloc.stats().reserved_bytes, held.reserved_bytes);  // cached, not returned
  alloc.empty_cache();
  EXPECT_EQ(alloc.stats().reserved_bytes, start.reserved_bytes);
}

// The process's resident memory (VmRSS), in bytes.
int64_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

// Small blocks live in glibc's arenas, which keep freed memory: empty_cache trims them, so the
// cache's memory really leaves the process (100k 1 KiB blocks kept their 135 MB of RSS).
TEST(CpuAllocatorClasses, EmptyCacheGivesSmallBlocksBackToTheSystem) {
  Allocator& alloc = cpu_allocator();
  alloc.empty_cache();
  const int64_t before = resident_bytes();
  ASSERT_GT(before, 0);
  std::vector<void*> blocks;
  for (int i = 0; i < 60000; ++i) {
    blocks.push_back(alloc.allocate(1024));
    std::memset(blocks.back(), 1, 1024);  // touched: resident
  }
  const int64_t full = resident_bytes();
  EXPECT_GT(full - before, 40 << 20);
  for (void* p : blocks) alloc.deallocate(p, 1024);
  alloc.empty_cache();
  EXPECT_LT(resident_bytes() - before, (full - before) / 4)
      << "RSS " << before << " -> " << full << " -> " << resident_bytes();
}

}  // namespace
}  // namespace fabric
