// Device memory for the temporaries of one kernel call (partial sums, staging buffers, library
// workspaces), taken from the caching allocator and given back on every path out. Free of CUDA
// headers.
#pragma once
#include <cstddef>

#include "kernels/cuda/caching_allocator.h"

namespace fabric::cuda {

// The allocator orders its blocks' reuse on the compute stream, so giving the memory back right
// after queuing the work that uses it is safe. Zero bytes hold no memory (a null pointer).
class DeviceScratch {
 public:
  DeviceScratch(int device, size_t nbytes) : device_(device), nbytes_(nbytes) {
    if (nbytes_) ptr_ = cuda_allocator(device).allocate(nbytes_);
  }
  ~DeviceScratch() {
    if (!ptr_) return;
    try {
      cuda_allocator(device_).deallocate(ptr_, nbytes_);
    } catch (...) {
      // A device in an error state: the next checked call reports it.
    }
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  void* get() const { return ptr_; }
  size_t size() const { return nbytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }

 private:
  int device_;
  size_t nbytes_;
  void* ptr_ = nullptr;
};

}  // namespace fabric::cuda
