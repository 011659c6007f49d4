// The caching CPU allocator when memory is exhausted: a block freed while its class's free list
// cannot grow (operator new throwing std::bad_alloc) goes back to the system. The free happens in
// a storage's destructor, so a bad_alloc escaping it would abort the whole process (what a
// too-large fabric-train model did under `ulimit -v`).
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>

#include "tensor/allocator.h"

namespace {
thread_local bool g_refuse_new = false;  // set: every operator new on this thread throws
}  // namespace

// This test binary's operator new, so that the test can make the free list's growth fail. The
// library's default operator delete (free) matches it.
void* operator new(std::size_t n) {
  if (g_refuse_new) throw std::bad_alloc();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}

namespace fabric {
namespace {

TEST(CpuAllocatorOutOfMemory, ABlockFreedWhenTheCacheCannotGrowGoesBackToTheSystem) {
  // A class no other test uses (5 GiB and a little, never touched: only reserved address space),
  // so its free list has no capacity yet and caching the block must allocate. In a child process:
  // without the fallback the destructor path terminates it.
  EXPECT_EXIT(
      {
        Allocator& a = cpu_allocator();
        const size_t n = (size_t{5} << 30) + 12345;
        void* p = a.allocate(n);
        const AllocatorStats before = a.stats();
        g_refuse_new = true;
        a.deallocate(p, n);
        g_refuse_new = false;
        const AllocatorStats after = a.stats();
        const int64_t cls = before.reserved_bytes - after.reserved_bytes;  // handed back
        const bool ok = cls >= static_cast<int64_t>(n) &&
                        before.allocated_bytes - after.allocated_bytes == cls;
        std::exit(ok ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace fabric
