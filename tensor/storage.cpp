// Storage blocks and the per-device allocator registry.
#include "tensor/storage.h"

#include "tensor/error.h"

namespace fabric {
namespace {
Allocator* (*g_cuda_allocator)(int) = nullptr;
}

void register_device_allocator(DeviceType type, Allocator* (*get)(int index)) {
  if (type == DeviceType::cuda) g_cuda_allocator = get;
}

Allocator& device_allocator(Device device) {
  if (device.is_cpu()) return cpu_allocator();
  if (!g_cuda_allocator) {
    throw DeviceError(detail::cat("cannot allocate on ", device.str(),
                                  ": this build has no CUDA backend (configure with FABRIC_CUDA=ON where nvcc exists)"));
  }
  return *g_cuda_allocator(device.index);
}

StorageImpl::StorageImpl(size_t nbytes, Device device)
    : nbytes_(nbytes), device_(device), allocator_(&device_allocator(device)) {
  data_ = allocator_->allocate(nbytes);
}

StorageImpl::StorageImpl(void* data, size_t nbytes, Device device, std::shared_ptr<void> owner)
    : data_(data), nbytes_(nbytes), device_(device), owner_(std::move(owner)) {}

StorageImpl::~StorageImpl() {
  if (allocator_ && !released_) allocator_->deallocate(data_, nbytes_);
}

void StorageImpl::release() {
  FABRIC_CHECK(allocator_, ValueError, "Storage.release: this storage wraps memory owned elsewhere");
  if (released_) return;
  allocator_->deallocate(data_, nbytes_);
  data_ = nullptr;
  released_ = true;
}

void StorageImpl::reallocate() {
  FABRIC_CHECK(allocator_, ValueError, "Storage.reallocate: this storage wraps memory owned elsewhere");
  if (!released_) return;
  data_ = allocator_->allocate(nbytes_);
  released_ = false;
}

}  // namespace fabric
