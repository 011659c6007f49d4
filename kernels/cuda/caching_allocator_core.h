// The device-independent heart of the CUDA caching allocator (PyTorch's CUDACachingAllocator,
// simplified): size rounding, small/large pools of free blocks, splitting and merging within a
// segment, deferred reuse of blocks used on other streams. It never calls CUDA itself; the raw
// memory and event operations are callbacks, so it is tested on the CPU with a fake backend.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor/allocator.h"

namespace fabric::cuda {

struct RawMemoryOps {
  // Returns nullptr when the device is out of memory; throws for any other failure.
  std::function<void*(size_t nbytes)> alloc;
  std::function<void(void* ptr, size_t nbytes)> free;
  // Cross-stream use (record_stream): an event recorded on `stream` at free time, polled until it
  // has completed before the block is reused. Optional when record_stream is never called.
  std::function<void*(void* stream)> record_event;
  std::function<bool(void* event)> event_done;
  std::function<void(void* event)> destroy_event;
  // A line on the device's memory for out-of-memory messages ("3.2 GiB free of 80 GiB"); optional.
  std::function<std::string()> describe_memory;
};

class CachingAllocatorCore {
 public:
  static constexpr size_t kMinBlockSize = 512;        // every size is a multiple of this
  static constexpr size_t kSmallSize = 1 << 20;       // requests up to here use the small pool
  static constexpr size_t kSmallBuffer = 2 << 20;     // segments of the small pool
  static constexpr size_t kLargeBuffer = 20 << 20;    // segments for 1 MiB < size < 10 MiB
  static constexpr size_t kMinLargeAlloc = 10 << 20;  // from here a segment of its own size...
  static constexpr size_t kRoundLarge = 2 << 20;      // ...rounded up to a multiple of this

  static size_t round_size(size_t nbytes);     // to a multiple of 512, at least 512
  static size_t segment_size(size_t rounded);  // how much a new segment for it reserves

  // `name` is the device's name in messages ("cuda:0").
  CachingAllocatorCore(std::string name, RawMemoryOps ops);
  // Returns every segment to the backend (blocks still in use included).
  ~CachingAllocatorCore();
  CachingAllocatorCore(const CachingAllocatorCore&) = delete;
  CachingAllocatorCore& operator=(const CachingAllocatorCore&) = delete;

  // A cached block if one fits, else a new segment; on out-of-memory frees the whole cache and
  // tries once more, then throws DeviceError with the request and the allocator's totals.
  void* allocate(size_t nbytes);
  // `ptr` must be a pointer allocate() returned (ValueError otherwise). Without recorded streams
  // the block is reusable at once: later work on the allocating stream runs after earlier work.
  void deallocate(void* ptr);
  // Marks the block holding `ptr` (an allocate() result) as used by `stream`, so that after
  // deallocate() it is reused only once the work queued on `stream` by then has finished.
  void record_stream(void* ptr, void* stream);

  AllocatorStats stats() const;
  void reset_peak();
  // Returns every segment that is entirely free to the backend.
  void empty_cache();

  // For tests and debugging: each segment's base, and its blocks in address order.
  struct BlockInfo {
    size_t offset;
    size_t size;
    bool allocated;
  };
  struct SegmentInfo {
    uintptr_t base;
    size_t size;
    bool small_pool;
    std::vector<BlockInfo> blocks;
  };
  std::vector<SegmentInfo> snapshot() const;
  // Blocks waiting for events of record_stream before they can be reused.
  size_t pending_blocks() const;

 private:
  struct Block {
    char* ptr;
    size_t size;
    bool small_pool;
    bool allocated = false;  // also true while waiting for stream events
    Block* prev = nullptr;   // neighbours within the same segment
    Block* next = nullptr;
    std::vector<void*> stream_uses;
  };
  struct BlockLess {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
    }
  };
  using Pool = std::set<Block*, BlockLess>;
  struct PendingFree {
    Block* block;
    std::vector<void*> events;
  };

  Pool& pool_for(bool small) { return small ? small_pool_ : large_pool_; }
  Block* take_free_block(Pool& pool, size_t size);
  void split(Block* b, size_t size);
  void free_block(Block* b);  // back to its pool, merged with free neighbours
  void process_events();
  void release_cached();  // frees every whole free segment
  [[noreturn]] void throw_oom(size_t nbytes, size_t rounded, size_t seg) const;

  const std::string name_;
  RawMemoryOps ops_;
  mutable std::mutex mu_;
  Pool small_pool_;
  Pool large_pool_;
  std::unordered_map<const void*, Block*> active_;
  std::map<char*, size_t> segments_;  // base -> size
  std::deque<PendingFree> pending_;
  AllocatorStats stats_;
};

}  // namespace fabric::cuda
