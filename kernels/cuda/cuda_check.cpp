// CUDA/cuBLAS/cuDNN error messages and the device queries. No driver, or no device, is a normal
// state here: device_count() says 0 and everything that needs a device throws DeviceError.
#include "kernels/cuda/cuda_check.h"

#include <cublasLt.h>
#include <cublas_api.h>
#include <cudnn.h>

#include <atomic>
#include <mutex>

#include "kernels/cuda/deferred_check.h"
#include "kernels/cuda/stream.h"
#include "tensor/device_control.h"

namespace fabric::cuda {
namespace {

std::string where(const char* file, int line) {
  if (!file) return "";
  return detail::cat(" [", file, ":", line, "]");
}

struct DeviceCountProbe {
  int count = 0;
  std::string why_none;
};

const DeviceCountProbe& probe() {
  static const DeviceCountProbe p = [] {
    DeviceCountProbe r;
    int n = 0;  // cudaGetDeviceCount leaves it unwritten on error
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      cudaGetLastError();  // not sticky: leave no trace for later calls
      r.why_none = cuda_error_message(err, "cudaGetDeviceCount");
      if (err == cudaErrorInsufficientDriver) r.why_none += " (no NVIDIA driver on this machine)";
      return r;
    }
    r.count = n;
    if (n == 0) r.why_none = "cudaGetDeviceCount found no CUDA device";
    return r;
  }();
  return p;
}

}  // namespace

std::string cuda_error_message(cudaError_t err, const char* call, const char* file, int line) {
  return detail::cat(call, " failed: ", cudaGetErrorName(err), " (code ", static_cast<int>(err),
                     "): ", cudaGetErrorString(err), where(file, line));
}

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  // Clear the error slot; a sticky error (a kernel fault) stays and every later call reports it.
  cudaGetLastError();
  throw DeviceError(cuda_error_message(err, call, file, line));
}

void throw_cublas_error(int status, const char* call, const char* file, int line) {
  const auto s = static_cast<cublasStatus_t>(status);
  throw DeviceError(detail::cat(call, " failed: ", cublasGetStatusName(s), " (code ", status,
                                "): ", cublasGetStatusString(s), where(file, line)));
}

// cuBLASLt names its own codes: asking cuBLAS would open libcublas just for an error message.
void throw_cublaslt_error(int status, const char* call, const char* file, int line) {
  const auto s = static_cast<cublasStatus_t>(status);
  throw DeviceError(detail::cat(call, " failed: ", cublasLtGetStatusName(s), " (code ", status,
                                "): ", cublasLtGetStatusString(s), where(file, line)));
}

void throw_cudnn_error(int status, const char* call, const char* file, int line) {
  const auto s = static_cast<cudnnStatus_t>(status);
  std::string msg = detail::cat(call, " failed: ", cudnnGetErrorString(s), " (code ", status, ")");
  char last[512] = {};
  cudnnGetLastErrorString(last, sizeof(last));
  if (last[0] != '\0') msg += detail::cat("; cuDNN's last error: ", last);
  throw DeviceError(msg + where(file, line));
}

namespace {

// One attribute of every device, read once per device (0 means not read yet: no attribute asked
// here is 0 on a real device).
template <cudaDeviceAttr Attr>
int cached_attribute(int device) {
  static std::atomic<int> values[kMaxDevices] = {};
  if (device < 0 || device >= kMaxDevices) return 0;
  int v = values[device].load(std::memory_order_relaxed);
  if (v == 0) {
    FABRIC_CUDA_CHECK(cudaDeviceGetAttribute(&v, Attr, device));
    values[device].store(v, std::memory_order_relaxed);
  }
  return v;
}

}  // namespace

int compute_capability(int device) {
  return 10 * cached_attribute<cudaDevAttrComputeCapabilityMajor>(device) +
         cached_attribute<cudaDevAttrComputeCapabilityMinor>(device);
}

int multiprocessor_count(int device) {
  return cached_attribute<cudaDevAttrMultiProcessorCount>(device);
}

int max_threads_per_multiprocessor(int device) {
  return cached_attribute<cudaDevAttrMaxThreadsPerMultiProcessor>(device);
}

int device_count(std::string* why_none) {
  const DeviceCountProbe& p = probe();
  if (why_none) *why_none = p.why_none;
  return p.count;
}

bool is_available() { return device_count() > 0; }

void check_device(int index, const char* what) {
  std::string why;
  const int n = device_count(&why);
  FABRIC_CHECK(n > 0, DeviceError, what, ": no CUDA device is available (", why, ")");
  FABRIC_CHECK(index >= 0 && index < n, DeviceError, what, ": CUDA device ", index,
               " does not exist (", n, " visible); expected 0 <= index < ", n);
}

int current_device() {
  check_device(0, "current_device");
  int d = 0;
  FABRIC_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

void set_device(int index) {
  check_device(index, "set_device");
  FABRIC_CUDA_CHECK(cudaSetDevice(index));
}

void synchronize(int index) {
  check_device(index, "synchronize");
  DeviceGuard guard(index);
  FABRIC_CUDA_CHECK(cudaDeviceSynchronize());
  // Range checks that failed in the kernels just waited for surface here (deferred_check.h).
  cudaStream_t stream = compute_stream(index);
  DeferredCheckRead checks(index, stream);
  FABRIC_CUDA_CHECK(cudaStreamSynchronize(stream));
  checks.finish();
}

DeviceGuard::DeviceGuard(int index) {
  check_device(index, "DeviceGuard");
  int prev = 0;
  FABRIC_CUDA_CHECK(cudaGetDevice(&prev));
  if (prev != index) {
    FABRIC_CUDA_CHECK(cudaSetDevice(index));
    prev_ = prev;
  }
}

DeviceGuard::~DeviceGuard() {
  if (prev_ >= 0) cudaSetDevice(prev_);  // a destructor cannot throw; the next call reports
}

}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(device_synchronize_stub, cuda, &cuda::synchronize);
}  // namespace fabric
