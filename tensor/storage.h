// A reference-counted block of memory on a device. Views share one Storage; the storage frees
// its block through the allocator it came from, or drops its owner (e.g. a memory-mapped file).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/allocator.h"
#include "tensor/device.h"

namespace fabric {

class StorageImpl {
 public:
  // Allocates nbytes on `device` (CPU: the caching allocator; CUDA: the CUDA backend's allocator).
  StorageImpl(size_t nbytes, Device device);
  // Wraps memory owned elsewhere; `owner` keeps it alive (a mapping, a vector, ...).
  StorageImpl(void* data, size_t nbytes, Device device, std::shared_ptr<void> owner);
  ~StorageImpl();
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // Bumped by in-place writes, so autograd can tell a saved tensor was modified.
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

  // Frees the memory but keeps this object, and with it every view of it (tensors autograd saved
  // for backward included); reallocate() brings back nbytes() of fresh, uninitialised memory at a
  // possibly different address. FSDP frees unsharded parameters between their uses this way.
  // Only storage from an allocator (not wrapped memory): ValueError otherwise.
  void release();
  void reallocate();
  bool is_released() const { return released_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;
  std::shared_ptr<void> owner_;
  uint64_t version_ = 0;
  bool released_ = false;
};

using Storage = std::shared_ptr<StorageImpl>;

// Device allocators registered by a backend (the CUDA backend registers itself at load time).
void register_device_allocator(DeviceType type, Allocator* (*get)(int index));
Allocator& device_allocator(Device device);

}  // namespace fabric
