// The CUDA caching allocator's block logic on a fake device (no GPU needed): rounding, pools,
// splitting and merging, the out-of-memory retry, deferred reuse after record_stream, and a
// randomized run that checks the segment invariants after every step.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "kernels/cuda/caching_allocator_core.h"
#include "tensor/error.h"
#include "tests/common/expect_error.h"

namespace fabric::cuda {
namespace {

using Core = CachingAllocatorCore;
constexpr size_t KiB = 1024, MiB = 1024 * 1024;

// Hands out fake, never dereferenced addresses from a bump pointer and tracks what is live, so a
// double free, a free of an unknown segment or a leak shows up; fails past `capacity` bytes.
struct FakeDevice {
  size_t capacity = size_t{1} << 40;
  size_t used = 0;
  uintptr_t next = 0x100000000;
  std::map<uintptr_t, size_t> live;
  int allocs = 0, frees = 0, failed = 0;
  // Events: one flag each, flipped by the test.
  std::map<void*, bool> events;
  int next_event = 1;
  std::vector<void*> recorded_on;
  int fail_record_after = -1;  // >= 0: that many more events record, then recording throws

  RawMemoryOps ops() {
    RawMemoryOps o;
    o.alloc = [this](size_t n) -> void* {
      if (used + n > capacity) {
        ++failed;
        return nullptr;
      }
      const uintptr_t p = next;
      next += n + 4096;  // a gap, so neighbouring segments are never contiguous
      live.emplace(p, n);
      used += n;
      ++allocs;
      return reinterpret_cast<void*>(p);
    };
    o.free = [this](void* p, size_t n) {
      auto it = live.find(reinterpret_cast<uintptr_t>(p));
      ASSERT_NE(it, live.end()) << "free of an unknown segment";
      EXPECT_EQ(it->second, n) << "free with the wrong size";
      used -= it->second;
      live.erase(it);
      ++frees;
    };
    o.record_event = [this](void* stream) -> void* {
      if (fail_record_after == 0) throw DeviceError("fake cudaEventRecord failed");
      if (fail_record_after > 0) --fail_record_after;
      recorded_on.push_back(stream);
      void* e = reinterpret_cast<void*>(static_cast<uintptr_t>(next_event++));
      events[e] = false;
      return e;
    };
    o.event_done = [this](void* e) { return events.at(e); };
    o.destroy_event = [this](void* e) { EXPECT_EQ(events.erase(e), 1u); };
    o.describe_memory = [this] {
      return detail::cat("fake device: ", capacity - used, " bytes free");
    };
    return o;
  }
  void complete_all_events() {
    for (auto& [e, done] : events) done = true;
  }
};

uintptr_t addr(void* p) { return reinterpret_cast<uintptr_t>(p); }

// Blocks tile each segment exactly, no two free blocks are adjacent (they would have merged), and
// the statistics agree with the blocks.
void check_invariants(const Core& core, const FakeDevice& dev) {
  int64_t allocated = 0, reserved = 0;
  for (const auto& seg : core.snapshot()) {
    reserved += static_cast<int64_t>(seg.size);
    ASSERT_EQ(dev.live.count(seg.base), 1u) << "segment not live on the device";
    EXPECT_EQ(dev.live.at(seg.base), seg.size);
    size_t offset = 0;
    bool prev_free = false;
    ASSERT_FALSE(seg.blocks.empty());
    for (const auto& b : seg.blocks) {
      EXPECT_EQ(b.offset, offset);
      EXPECT_EQ(b.size % Core::kMinBlockSize, 0u);
      EXPECT_FALSE(prev_free && !b.allocated) << "two adjacent free blocks were not merged";
      prev_free = !b.allocated;
      if (b.allocated) allocated += static_cast<int64_t>(b.size);
      offset += b.size;
    }
    EXPECT_EQ(offset, seg.size);
  }
  const AllocatorStats s = core.stats();
  EXPECT_EQ(s.reserved_bytes, reserved);
  EXPECT_EQ(s.allocated_bytes, allocated);
  EXPECT_GE(s.peak_allocated_bytes, s.allocated_bytes);
  EXPECT_EQ(static_cast<size_t>(reserved), dev.used);
}

TEST(CachingAllocatorLogic, RoundingAndSegmentSizes) {
  EXPECT_EQ(Core::round_size(0), 512u);
  EXPECT_EQ(Core::round_size(1), 512u);
  EXPECT_EQ(Core::round_size(512), 512u);
  EXPECT_EQ(Core::round_size(513), 1024u);
  EXPECT_EQ(Core::round_size(1000000), 1000448u);
  EXPECT_EQ(Core::segment_size(512), 2 * MiB);
  EXPECT_EQ(Core::segment_size(1 * MiB), 2 * MiB);
  EXPECT_EQ(Core::segment_size(1 * MiB + 512), 20 * MiB);
  EXPECT_EQ(Core::segment_size(10 * MiB - 512), 20 * MiB);
  EXPECT_EQ(Core::segment_size(10 * MiB), 10 * MiB);
  EXPECT_EQ(Core::segment_size(10 * MiB + 512), 12 * MiB);
}

TEST(CachingAllocatorLogic, ImpossibleRequestsAreRefusedBeforeRounding) {
  // round_size and segment_size would wrap past 2^64 for these and hand out a small block.
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  EXPECT_CONTAINS(thrown<DeviceError>([&] { core.allocate(std::numeric_limits<size_t>::max() - 10); }),
                  "more than any device holds");
  EXPECT_THROW(core.allocate((size_t{1} << 60) + 1), DeviceError);
  EXPECT_EQ(dev.allocs, 0);
}

TEST(CachingAllocatorLogic, SmallRequestsShareOneSegment) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* a = core.allocate(1000);
  void* b = core.allocate(1000);
  EXPECT_EQ(dev.allocs, 1);
  EXPECT_EQ(dev.live.begin()->second, 2 * MiB);
  EXPECT_EQ(addr(b), addr(a) + 1024);  // the remainder of a's segment, split off at 1024
  AllocatorStats s = core.stats();
  EXPECT_EQ(s.allocated_bytes, 2048);
  EXPECT_EQ(s.reserved_bytes, static_cast<int64_t>(2 * MiB));
  EXPECT_EQ(s.num_system_allocs, 1);
  EXPECT_EQ(s.num_cache_hits, 1);
  check_invariants(core, dev);
  core.deallocate(a);
  core.deallocate(b);
  check_invariants(core, dev);
  // Everything merged back into one free block of the whole segment.
  auto snap = core.snapshot();
  ASSERT_EQ(snap.size(), 1u);
  ASSERT_EQ(snap[0].blocks.size(), 1u);
  EXPECT_FALSE(snap[0].blocks[0].allocated);
  EXPECT_TRUE(snap[0].small_pool);
}

TEST(CachingAllocatorLogic, FreedBlockIsReusedWithoutTheDevice) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* a = core.allocate(300 * KiB);
  core.deallocate(a);
  void* b = core.allocate(300 * KiB);
  EXPECT_EQ(a, b);
  EXPECT_EQ(dev.allocs, 1);
  void* c = core.allocate(5 * MiB);
  core.deallocate(c);
  void* d = core.allocate(5 * MiB);
  EXPECT_EQ(c, d);
  EXPECT_EQ(dev.allocs, 2);
  core.deallocate(b);
  core.deallocate(d);
  check_invariants(core, dev);
}

TEST(CachingAllocatorLogic, SplitsAndMergesNeighbours) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* a = core.allocate(4 * KiB);
  void* b = core.allocate(4 * KiB);
  void* c = core.allocate(4 * KiB);
  ASSERT_EQ(dev.allocs, 1);
  core.deallocate(b);
  auto blocks = core.snapshot().at(0).blocks;
  ASSERT_EQ(blocks.size(), 4u);  // a, (b), c, rest of the segment
  EXPECT_TRUE(blocks[0].allocated);
  EXPECT_FALSE(blocks[1].allocated);
  EXPECT_TRUE(blocks[2].allocated);
  EXPECT_FALSE(blocks[3].allocated);
  EXPECT_EQ(blocks[3].size, 2 * MiB - 12 * KiB);
  // A request that fits the hole takes it (best fit: the smallest free block that fits).
  void* b2 = core.allocate(2 * KiB);
  EXPECT_EQ(b2, b);
  core.deallocate(b2);
  core.deallocate(a);  // merges with the free block after it
  blocks = core.snapshot().at(0).blocks;
  ASSERT_EQ(blocks.size(), 3u);
  EXPECT_EQ(blocks[0].size, 8 * KiB);
  EXPECT_FALSE(blocks[0].allocated);
  core.deallocate(c);  // merges on both sides
  blocks = core.snapshot().at(0).blocks;
  ASSERT_EQ(blocks.size(), 1u);
  EXPECT_EQ(blocks[0].size, 2 * MiB);
  check_invariants(core, dev);
}

TEST(CachingAllocatorLogic, BestFitPrefersTheSmallestFreeBlock) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  // Holes of 64 KiB and 16 KiB, separated by live blocks.
  void* big = core.allocate(64 * KiB);
  void* sep1 = core.allocate(512);
  void* small = core.allocate(16 * KiB);
  void* sep2 = core.allocate(512);
  core.deallocate(big);
  core.deallocate(small);
  EXPECT_EQ(core.allocate(10 * KiB), small);
  EXPECT_EQ(core.allocate(40 * KiB), big);
  (void)sep1;
  (void)sep2;
  check_invariants(core, dev);
}

TEST(CachingAllocatorLogic, LargePoolSegmentsAndSplits) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* a = core.allocate(3 * MiB);  // a 20 MiB segment; 17 MiB left free in the large pool
  EXPECT_EQ(dev.allocs, 1);
  EXPECT_EQ(core.stats().reserved_bytes, static_cast<int64_t>(20 * MiB));
  void* b = core.allocate(15 * MiB);  // from the remainder
  EXPECT_EQ(dev.allocs, 1);
  EXPECT_EQ(addr(b), addr(a) + 3 * MiB);
  void* c = core.allocate(4 * MiB);  // 2 MiB left is too small: a new segment
  EXPECT_EQ(dev.allocs, 2);
  // A big request gets a segment of its own size, rounded to 2 MiB.
  void* d = core.allocate(33 * MiB + 1);
  EXPECT_EQ(dev.allocs, 3);
  EXPECT_EQ(core.stats().reserved_bytes, static_cast<int64_t>((20 + 20 + 34) * MiB));
  check_invariants(core, dev);
  for (void* p : {a, b, c, d}) core.deallocate(p);
  check_invariants(core, dev);
  EXPECT_EQ(core.stats().allocated_bytes, 0);
}

TEST(CachingAllocatorLogic, LargeRemaindersOfAtMostOneMiBStayAttached) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* a = core.allocate(19 * MiB + 512 * KiB);  // segment 20 MiB, remainder 0.5 MiB
  auto snap = core.snapshot();
  ASSERT_EQ(snap.size(), 1u);
  ASSERT_EQ(snap[0].blocks.size(), 1u);
  EXPECT_EQ(snap[0].blocks[0].size, 20 * MiB);
  EXPECT_EQ(core.stats().allocated_bytes, static_cast<int64_t>(20 * MiB));
  core.deallocate(a);
  check_invariants(core, dev);
}

TEST(CachingAllocatorLogic, SmallAndLargePoolsAreSeparate) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  core.deallocate(core.allocate(512 * KiB));  // a free 2 MiB small segment
  void* big = core.allocate(1536 * KiB);      // > 1 MiB: large pool, so a new segment
  EXPECT_EQ(dev.allocs, 2);
  core.deallocate(big);
  void* small = core.allocate(64 * KiB);  // the small segment, not the large one
  EXPECT_EQ(dev.allocs, 2);
  bool in_small = false;
  for (const auto& seg : core.snapshot())
    if (seg.small_pool && addr(small) >= seg.base && addr(small) < seg.base + seg.size)
      in_small = true;
  EXPECT_TRUE(in_small);
  core.deallocate(small);
  check_invariants(core, dev);
}

TEST(CachingAllocatorLogic, EmptyCacheReleasesOnlyWhollyFreeSegments) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* keep = core.allocate(100 * KiB);  // its segment stays
  void* tmp1 = core.allocate(5 * MiB);
  void* tmp2 = core.allocate(64 * MiB);
  core.deallocate(tmp1);
  core.deallocate(tmp2);
  EXPECT_EQ(core.stats().reserved_bytes, static_cast<int64_t>((2 + 20 + 64) * MiB));
  core.empty_cache();
  EXPECT_EQ(dev.frees, 2);
  EXPECT_EQ(core.stats().reserved_bytes, static_cast<int64_t>(2 * MiB));
  EXPECT_EQ(core.stats().allocated_bytes, static_cast<int64_t>(100 * KiB));
  check_invariants(core, dev);
  core.deallocate(keep);
  core.empty_cache();
  EXPECT_EQ(core.stats().reserved_bytes, 0);
  EXPECT_TRUE(dev.live.empty());
}

TEST(CachingAllocatorLogic, OutOfMemoryEmptiesTheCacheAndRetriesOnce) {
  FakeDevice dev;
  dev.capacity = 24 * MiB;
  Core core("fake:0", dev.ops());
  core.deallocate(core.allocate(4 * KiB));  // 2 MiB cached
  core.deallocate(core.allocate(3 * MiB));  // 20 MiB cached
  EXPECT_EQ(dev.used, 22 * MiB);
  // Needs a 22 MiB segment (no cached block is that big): fails once, fits once the cache is gone.
  void* p = core.allocate(21 * MiB);
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(dev.failed, 1);
  EXPECT_EQ(dev.frees, 2);
  EXPECT_EQ(core.stats().reserved_bytes, static_cast<int64_t>(22 * MiB));
  check_invariants(core, dev);
  core.deallocate(p);
}

TEST(CachingAllocatorLogic, OutOfMemoryThrowsDeviceErrorWithTheTotals) {
  FakeDevice dev;
  dev.capacity = 4 * MiB;
  Core core("fake:0", dev.ops());
  void* live = core.allocate(1 * MiB);
  const std::string msg = thrown<DeviceError>([&] { core.allocate(20 * MiB); });
  EXPECT_CONTAINS(msg, "fake:0");
  EXPECT_CONTAINS(msg, "out of memory");
  EXPECT_CONTAINS(msg, "tried to allocate 20.00 MiB (20971520 bytes)");
  EXPECT_CONTAINS(msg, "1.00 MiB (1048576 bytes) allocated");
  EXPECT_CONTAINS(msg, "2.00 MiB (2097152 bytes) reserved");
  EXPECT_CONTAINS(msg, "fake device:");
  EXPECT_EQ(dev.failed, 2);  // the first try and the retry
  // The allocator is still usable and consistent.
  check_invariants(core, dev);
  core.deallocate(live);
}

TEST(CachingAllocatorLogic, PeakFollowsAllocationsAndResets) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* a = core.allocate(1 * MiB);
  void* b = core.allocate(2 * MiB);
  EXPECT_EQ(core.stats().peak_allocated_bytes, static_cast<int64_t>(3 * MiB));
  core.deallocate(b);
  EXPECT_EQ(core.stats().allocated_bytes, static_cast<int64_t>(1 * MiB));
  EXPECT_EQ(core.stats().peak_allocated_bytes, static_cast<int64_t>(3 * MiB));
  core.reset_peak();
  EXPECT_EQ(core.stats().peak_allocated_bytes, static_cast<int64_t>(1 * MiB));
  core.deallocate(a);
  EXPECT_EQ(core.stats().peak_allocated_bytes, static_cast<int64_t>(1 * MiB));
}

TEST(CachingAllocatorLogic, BadFreesAreValueErrors) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* a = core.allocate(4 * KiB);
  EXPECT_CONTAINS(thrown<ValueError>([&] { core.deallocate(reinterpret_cast<char*>(a) + 512); }),
                  "did not hand out");
  core.deallocate(a);
  EXPECT_THROW(core.deallocate(a), ValueError);  // double free
  core.deallocate(nullptr);                      // a no-op, as free(nullptr)
  check_invariants(core, dev);
}

TEST(CachingAllocatorLogic, ZeroBytesGivesDistinctPointers) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* a = core.allocate(0);
  void* b = core.allocate(0);
  EXPECT_NE(a, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(core.stats().allocated_bytes, 1024);
}

TEST(CachingAllocatorLogic, RecordStreamDefersReuseUntilTheEventsComplete) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* side_stream = reinterpret_cast<void*>(0x5);
  void* a = core.allocate(8 * KiB);
  core.record_stream(a, side_stream);
  core.record_stream(a, side_stream);  // recorded once
  core.deallocate(a);
  EXPECT_EQ(dev.recorded_on, std::vector<void*>{side_stream});
  EXPECT_EQ(core.pending_blocks(), 1u);
  EXPECT_EQ(core.stats().allocated_bytes, 0);  // freed from the caller's point of view
  void* b = core.allocate(8 * KiB);
  EXPECT_NE(b, a);  // a may still be in use on the side stream
  dev.complete_all_events();
  void* c = core.allocate(8 * KiB);
  EXPECT_EQ(c, a);
  EXPECT_EQ(core.pending_blocks(), 0u);
  EXPECT_TRUE(dev.events.empty());  // destroyed once complete
  EXPECT_THROW(core.record_stream(reinterpret_cast<char*>(c) + 512, side_stream), ValueError);
  core.deallocate(b);
  core.deallocate(c);
  check_invariants(core, dev);
}

TEST(CachingAllocatorLogic, AFailedEventRecordKeepsTheBlockAllocatedAndLeavesNoEvent) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* a = core.allocate(8 * KiB);
  core.record_stream(a, reinterpret_cast<void*>(0x5));
  core.record_stream(a, reinterpret_cast<void*>(0x6));
  dev.fail_record_after = 1;  // the first stream's event records, the second's fails
  EXPECT_THROW(core.deallocate(a), DeviceError);
  EXPECT_TRUE(dev.events.empty());                          // the recorded one was destroyed
  EXPECT_EQ(core.stats().allocated_bytes, int64_t{8 * KiB});  // still counted: not reusable
  EXPECT_EQ(core.pending_blocks(), 0u);
  EXPECT_NE(core.allocate(8 * KiB), a);  // never handed out again while it may be in use
  check_invariants(core, dev);
}

TEST(CachingAllocatorLogic, PendingBlocksAreNotMergedOrReleased) {
  FakeDevice dev;
  Core core("fake:0", dev.ops());
  void* a = core.allocate(8 * KiB);
  core.record_stream(a, reinterpret_cast<void*>(0x7));
  core.deallocate(a);
  core.empty_cache();  // the segment is not wholly free yet
  EXPECT_EQ(dev.frees, 0);
  dev.complete_all_events();
  core.empty_cache();
  EXPECT_EQ(dev.frees, 1);
  EXPECT_TRUE(dev.live.empty());
}

TEST(CachingAllocatorLogic, DestructorReturnsEverySegment) {
  FakeDevice dev;
  {
    Core core("fake:0", dev.ops());
    core.allocate(100);
    core.allocate(3 * MiB);
    core.deallocate(core.allocate(50 * MiB));
  }
  EXPECT_TRUE(dev.live.empty());
  EXPECT_EQ(dev.used, 0u);
}

// Random allocations and frees of mixed sizes: the invariants hold after every step, and live
// blocks never overlap.
TEST(CachingAllocatorLogic, RandomizedRunKeepsTheInvariants) {
  FakeDevice dev;
  dev.capacity = 400 * MiB;
  Core core("fake:0", dev.ops());
  std::mt19937_64 rng(1234);
  std::map<uintptr_t, size_t> live;  // ptr -> requested bytes
  auto random_size = [&]() -> size_t {
    switch (rng() % 4) {
      case 0:
        return rng() % 4096;
      case 1:
        return rng() % (1 * MiB);
      case 2:
        return 1 * MiB + rng() % (9 * MiB);
      default:
        return 10 * MiB + rng() % (30 * MiB);
    }
  };
  for (int step = 0; step < 3000; ++step) {
    const bool do_alloc = live.empty() || rng() % 100 < 55;
    if (do_alloc) {
      const size_t n = random_size();
      void* p = nullptr;
      try {
        p = core.allocate(n);
      } catch (const DeviceError&) {
        continue;  // the fake device is full: a legitimate outcome
      }
      const uintptr_t a = addr(p);
      auto next = live.lower_bound(a);
      if (next != live.end()) ASSERT_LE(a + n, next->first) << "overlaps the next live block";
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + prev->second, a) << "overlaps the previous live block";
      }
      live.emplace(a, n);
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      core.deallocate(reinterpret_cast<void*>(it->first));
      live.erase(it);
    }
    if (step % 500 == 250) core.empty_cache();
    ASSERT_NO_FATAL_FAILURE(check_invariants(core, dev)) << "after step " << step;
    if (HasFailure()) return;
  }
  for (auto& [p, n] : live) core.deallocate(reinterpret_cast<void*>(p));
  core.empty_cache();
  EXPECT_TRUE(dev.live.empty());
}

}  // namespace
}  // namespace fabric::cuda
