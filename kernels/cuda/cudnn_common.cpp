// The shared cuDNN handle, checks and workspace of kernels/cuda/cudnn_common.h.
#include "kernels/cuda/cudnn_common.h"

#include <array>
#include <atomic>
#include <memory>
#include <utility>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/stream.h"

namespace fabric::cuda {
namespace {

std::array<std::atomic<CudnnHandle*>, kMaxDevices> g_handles{};
std::mutex g_handle_mu;

}  // namespace

CudnnHandle& cudnn_handle(int device, const char* what) {
  check_device(device, what);
  FABRIC_CHECK(device < kMaxDevices, DeviceError, what, ": device ", device, " is past the ",
               kMaxDevices, " devices this backend supports");
  CudnnHandle* h = g_handles[device].load(std::memory_order_acquire);
  if (h) return *h;
  std::lock_guard<std::mutex> lock(g_handle_mu);
  h = g_handles[device].load(std::memory_order_relaxed);
  if (h) return *h;
  DeviceGuard guard(device);
  auto fresh = std::make_unique<CudnnHandle>();
  FABRIC_CUDNN_CHECK(cudnnCreate(&fresh->h));
  const cudnnStatus_t st = cudnnSetStream(fresh->h, compute_stream(device));
  if (st != CUDNN_STATUS_SUCCESS) {
    cudnnDestroy(fresh->h);
    throw_cudnn_error(static_cast<int>(st), "cudnnSetStream(handle, compute_stream)", __FILE__,
                      __LINE__);
  }
  h = fresh.release();
  g_handles[device].store(h, std::memory_order_release);
  return *h;
}

namespace {
thread_local cudnnStatus_t t_last_failed = CUDNN_STATUS_SUCCESS;
}  // namespace

void cudnn_check(cudnnStatus_t st, const char* call, std::source_location at) {
  if (st == CUDNN_STATUS_SUCCESS) return;
  t_last_failed = st;
  throw_cudnn_error(static_cast<int>(st), call, at.file_name(), static_cast<int>(at.line()));
}

cudnnStatus_t take_last_failed_cudnn_status() {
  return std::exchange(t_last_failed, CUDNN_STATUS_SUCCESS);
}

bool cudnn_status_is_transient(cudnnStatus_t st) {
  return st == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
         st == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED ||
         (static_cast<int>(st) >= 5000 && static_cast<int>(st) < 6000);  // EXECUTION_FAILED_*
}

}  // namespace fabric::cuda
