// Error checking for every CUDA, cuBLAS, cuBLASLt and cuDNN call (a failure becomes a
// fabric::DeviceError naming the call, the error name and its message), and the device queries.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "tensor/error.h"

namespace fabric::cuda {

// "cudaMalloc(&p, n) failed: cudaErrorMemoryAllocation (code 2): out of memory [file:line]"
std::string cuda_error_message(cudaError_t err, const char* call, const char* file = nullptr,
                               int line = 0);
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line);
// Status codes of cuBLAS/cuBLASLt (cublasStatus_t) and cuDNN (cudnnStatus_t), passed as int so
// that this header needs neither library's headers.
[[noreturn]] void throw_cublas_error(int status, const char* call, const char* file, int line);
[[noreturn]] void throw_cublaslt_error(int status, const char* call, const char* file, int line);
[[noreturn]] void throw_cudnn_error(int status, const char* call, const char* file, int line);

}  // namespace fabric::cuda

// A failed call also clears CUDA's sticky "last error" slot for non-sticky errors, so the next
// cudaGetLastError() reports only what happened after it.
#define FABRIC_CUDA_CHECK(expr)                                                      \
  do {                                                                               \
    const cudaError_t fabric_cuda_err_ = (expr);                                     \
    if (fabric_cuda_err_ != cudaSuccess) {                                           \
      ::fabric::cuda::throw_cuda_error(fabric_cuda_err_, #expr, __FILE__, __LINE__); \
    }                                                                                \
  } while (0)

#define FABRIC_CUBLAS_CHECK(expr)                                                           \
  do {                                                                                      \
    const int fabric_cublas_status_ = static_cast<int>(expr);                               \
    if (fabric_cublas_status_ != 0) {                                                       \
      ::fabric::cuda::throw_cublas_error(fabric_cublas_status_, #expr, __FILE__, __LINE__); \
    }                                                                                       \
  } while (0)
// cuBLASLt reports through cublasStatus_t as well, named by cuBLASLt itself.
#define FABRIC_CUBLASLT_CHECK(expr)                                                           \
  do {                                                                                        \
    const int fabric_cublaslt_status_ = static_cast<int>(expr);                               \
    if (fabric_cublaslt_status_ != 0) {                                                       \
      ::fabric::cuda::throw_cublaslt_error(fabric_cublaslt_status_, #expr, __FILE__, __LINE__); \
    }                                                                                         \
  } while (0)

#define FABRIC_CUDNN_CHECK(expr)                                                          \
  do {                                                                                    \
    const int fabric_cudnn_status_ = static_cast<int>(expr);                              \
    if (fabric_cudnn_status_ != 0) {                                                      \
      ::fabric::cuda::throw_cudnn_error(fabric_cudnn_status_, #expr, __FILE__, __LINE__); \
    }                                                                                     \
  } while (0)

// Checks the launch of the kernel just issued (bad configuration, no kernel image for this GPU).
#define FABRIC_CUDA_CHECK_LAUNCH() FABRIC_CUDA_CHECK(cudaGetLastError())

namespace fabric::cuda {

// The number of visible CUDA devices; 0 when there is no driver (cudaGetDeviceCount returns
// cudaErrorInsufficientDriver there) or no device. Never throws; probed once per process.
// `why_none`, if given, receives the reason when the count is 0.
int device_count(std::string* why_none = nullptr);
bool is_available();
// Throws DeviceError naming `what` when `index` is not a visible device (or there is none).
void check_device(int index, const char* what);

// `device`'s compute capability as major * 10 + minor (90 on an H100/H200) and its streaming
// multiprocessors, each asked of the driver once per device; 0 for an index past kMaxDevices.
int compute_capability(int device);
int multiprocessor_count(int device);
// The most threads resident on one multiprocessor: 2048 on sm_80 and sm_90, 1536 on sm_86/89.
int max_threads_per_multiprocessor(int device);

int current_device();
void set_device(int index);
// Waits for all work on `index` (every stream) to finish, and reports errors it raised.
void synchronize(int index);

// Makes `index` the current device of this thread, and restores the previous one on exit.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

}  // namespace fabric::cuda
