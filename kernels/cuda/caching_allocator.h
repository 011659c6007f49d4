// The CUDA memory of fabric: one caching allocator per device (registered as the allocator of
// DeviceType::cuda at load time) and a cache of pinned host buffers for staging copies.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "tensor/allocator.h"

namespace fabric::cuda {

// The caching allocator of device `index` (what device_allocator(Device::cuda(index)) returns).
// Throws DeviceError when there is no such device, or no CUDA device at all.
Allocator& cuda_allocator(int index);

// Keeps the block at `ptr` (a storage's data pointer on `device`) from being reused after it is
// freed until the work queued on `stream` at that time has finished: for memory read or written
// on a stream other than the device's compute stream (a collective's stream, say).
void record_stream(void* ptr, int device, cudaStream_t stream);

// Page-locked host buffers for staging copies, cached by power-of-two size. A released buffer is
// handed out again only once the copies queued on the stream it was released with have finished.
void* pinned_acquire(size_t nbytes);  // at least nbytes, cudaHostAlloc'd (portable to all devices)
// Gives `ptr` back; work queued on `stream` of `device` may still read or write it.
void pinned_release(void* ptr, int device, cudaStream_t stream);
AllocatorStats pinned_stats();
void pinned_empty_cache();  // frees the cached buffers whose copies have finished

}  // namespace fabric::cuda
