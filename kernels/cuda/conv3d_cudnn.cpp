// The CUDA 3-D convolution (forward, backward data, backward weights) through cuDNN's legacy
// convolution API with N-d (5-D) descriptors, as the 2-D path (conv_cudnn.cpp) with 4-D ones: a
// handle per device bound to its compute stream, the algorithm from cuDNN's heuristics (asked
// per call: no benchmarking runs, so cheap next to a 3-D convolution), workspaces from the
// caching allocator, images in chunks that keep cuDNN's int sizes in range. The bias add and bias
// gradient are the 2-D path's kernels over the flattened volume (conv_bias.cu). float32 runs on
// FMA math unless TF32 is allowed; float16/bfloat16 use tensor cores with float32 accumulation.
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda/caching_allocator.h"
#include "kernels/cuda/conv_bias.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_cublaslt.h"
#include "kernels/cuda/stream.h"
#include "tensor/conv3d_kernels.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;

// Workspaces beyond this are not worth an algorithm's speed (and could starve the model).
constexpr size_t kMaxWorkspaceBytes = size_t{1} << 30;

struct Handle {
  cudnnHandle_t h = nullptr;
  std::mutex mu;  // a handle is used by one thread at a time
};

std::array<std::atomic<Handle*>, kMaxDevices> g_handles{};
std::mutex g_handle_mu;

// Never destroyed: convolutions may be queued by tensors that outlive main.
Handle& handle_for(int device) {
  check_device(device, "conv3d (CUDA)");
  FABRIC_CHECK(device < kMaxDevices, DeviceError, "conv3d (CUDA): device ", device, " is past the ",
               kMaxDevices, " devices this backend supports");
  Handle* h = g_handles[device].load(std::memory_order_acquire);
  if (h) return *h;
  std::lock_guard<std::mutex> lock(g_handle_mu);
  h = g_handles[device].load(std::memory_order_relaxed);
  if (h) return *h;
  DeviceGuard guard(device);
  auto fresh = std::make_unique<Handle>();
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

cudnnDataType_t data_type(DType t) {
  switch (t) {
    case DType::float32:
      return CUDNN_DATA_FLOAT;
    case DType::float64:
      return CUDNN_DATA_DOUBLE;
    case DType::float16:
      return CUDNN_DATA_HALF;
    case DType::bfloat16:
      return CUDNN_DATA_BFLOAT16;
    default:
      break;
  }
  throw DTypeError(cat("conv3d (CUDA): unsupported dtype ", dtype_name(t),
                       " (expected float64, float32, bfloat16 or float16)"));
}

std::array<int, 5> ints(int64_t a, int64_t b, const std::array<int64_t, 3>& s) {
  return {static_cast<int>(a), static_cast<int>(b), static_cast<int>(s[0]), static_cast<int>(s[1]),
          static_cast<int>(s[2])};
}

std::array<int, 3> ints(const std::array<int64_t, 3>& s) {
  return {static_cast<int>(s[0]), static_cast<int>(s[1]), static_cast<int>(s[2])};
}

// ---- descriptors (RAII) ---------------------------------------------------------------------

// A packed NCDHW tensor.
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(cudnnDataType_t t, std::array<int, 5> dims) {
    std::array<int, 5> strides{};
    strides[4] = 1;
    for (int i = 3; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
    FABRIC_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
    const cudnnStatus_t st = cudnnSetTensorNdDescriptor(d, t, 5, dims.data(), strides.data());
    if (st != CUDNN_STATUS_SUCCESS) {
      cudnnDestroyTensorDescriptor(d);
      throw_cudnn_error(static_cast<int>(st), "cudnnSetTensorNdDescriptor", __FILE__, __LINE__);
    }
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc(cudnnDataType_t t, std::array<int, 5> dims) {
    FABRIC_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
    const cudnnStatus_t st = cudnnSetFilterNdDescriptor(d, t, CUDNN_TENSOR_NCHW, 5, dims.data());
    if (st != CUDNN_STATUS_SUCCESS) {
      cudnnDestroyFilterDescriptor(d);
      throw_cudnn_error(static_cast<int>(st), "cudnnSetFilterNdDescriptor", __FILE__, __LINE__);
    }
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc(const Conv3dDesc& g, cudnnDataType_t compute, cudnnMathType_t math) {
    FABRIC_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
    try {
      const std::array<int, 3> pad = ints(g.pad), stride = ints(g.stride), dil = ints(g.dil);
      FABRIC_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(
          d, 3, pad.data(), stride.data(), dil.data(), CUDNN_CROSS_CORRELATION, compute));
      FABRIC_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d, static_cast<int>(g.groups)));
      FABRIC_CUDNN_CHECK(cudnnSetConvolutionMathType(d, math));
    } catch (...) {
      cudnnDestroyConvolutionDescriptor(d);
      throw;
    }
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

// ---- one batch chunk ------------------------------------------------------------------------

struct Context {
  int device;
  Handle& handle;
  cudnnMathType_t math;
  bool fma_only;  // float32 without TF32: tensor-op algorithms are not allowed
};

Context context_for(const Conv3dDesc& d, const void* out) {
  const int device = device_of_pointer(out);
  const bool tf32 = d.dtype == DType::float32 && allow_tf32();
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  if (d.dtype == DType::float32 && !tf32) math = CUDNN_FMA_MATH;
  if (d.dtype == DType::float16 || d.dtype == DType::bfloat16) math = CUDNN_TENSOR_OP_MATH;
  return {device, handle_for(device), math, d.dtype == DType::float32 && !tf32};
}

struct Problem {
  cudnnDataType_t dt, compute;
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  Problem(const Conv3dDesc& d, int64_t n, const Context& c)
      : dt(data_type(d.dtype)),
        compute(d.dtype == DType::float64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT),
        x(dt, ints(n, d.C, d.in)),
        y(dt, ints(n, d.OC, d.out)),
        w(dt, ints(d.OC, d.C / d.groups, d.k)),
        conv(d, compute, c.math) {}
};

std::string describe(const Conv3dDesc& g) {
  return cat("input (", g.N, ", ", g.C, ", ", g.in[0], ", ", g.in[1], ", ", g.in[2], "), weight (",
             g.OC, ", ", g.C / g.groups, ", ", g.k[0], ", ", g.k[1], ", ", g.k[2], "), groups ",
             g.groups, ", ", dtype_name(g.dtype));
}

bool tensor_op(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// The first heuristic result that ran and fits the workspace cap and the math restriction
// (deterministic ones first where asked); sets the descriptor's math type to its.
template <typename Perf>
Perf pick(const std::vector<Perf>& perf, int returned, const Context& c, Problem& p,
          bool prefer_deterministic, const char* pass, const Conv3dDesc& d) {
  for (int strict = prefer_deterministic ? 1 : 0; strict >= 0; --strict) {
    for (int i = 0; i < returned; ++i) {
      const Perf& q = perf[static_cast<size_t>(i)];
      if (q.status != CUDNN_STATUS_SUCCESS || q.memory > kMaxWorkspaceBytes) continue;
      if (c.fma_only && tensor_op(q.mathType)) continue;
      if (strict && q.determinism != CUDNN_DETERMINISTIC) continue;
      FABRIC_CUDNN_CHECK(
          cudnnSetConvolutionMathType(p.conv.d, c.fma_only ? CUDNN_FMA_MATH : q.mathType));
      return q;
    }
  }
  throw DeviceError(cat("conv3d (CUDA): cuDNN offers no ", pass, " algorithm for ", describe(d),
                        c.fma_only ? " without TF32" : "", " within a ", kMaxWorkspaceBytes >> 20,
                        " MiB workspace"));
}

// Workspace memory from the caching allocator, given back (in stream order) on every path out.
class Workspace {
 public:
  Workspace(int device, size_t bytes) : device_(device), bytes_(bytes) {
    if (bytes_) ptr_ = cuda_allocator(device).allocate(bytes_);
  }
  ~Workspace() {
    if (!ptr_) return;
    try {
      cuda_allocator(device_).deallocate(ptr_, bytes_);
    } catch (...) {
      // A device in an error state: the next checked call reports it.
    }
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  void* get() const { return ptr_; }
  size_t size() const { return bytes_; }

 private:
  int device_;
  size_t bytes_;
  void* ptr_ = nullptr;
};

// alpha/beta in the compute type (double for float64 problems, float otherwise).
struct Scale {
  float f;
  double d;
  const void* of(const Problem& p) const {
    return p.compute == CUDNN_DATA_DOUBLE ? static_cast<const void*>(&d)
                                          : static_cast<const void*>(&f);
  }
};
constexpr Scale kOne{1.0f, 1.0}, kZero{0.0f, 0.0};

// Images per chunk: each chunk's tensors stay below 2^31 elements.
int64_t chunk_size(const Conv3dDesc& d) {
  const int64_t in = d.C * d.in_numel(), out = d.OC * d.out_numel();
  FABRIC_CHECK(in <= INT_MAX && out <= INT_MAX && d.w_numel() <= INT_MAX, ValueError,
               "conv3d (CUDA): one image's input (", in, " elements), output (", out,
               ") or the weight (", d.w_numel(),
               ") exceeds cuDNN's 2^31-1 element limit: ", describe(d));
  return std::max<int64_t>(1, std::min<int64_t>(d.N, INT_MAX / std::max(in, out)));
}

const char* at(const void* base, DType t, int64_t elems) {
  return static_cast<const char*>(base) +
         static_cast<size_t>(elems) * static_cast<size_t>(itemsize(t));
}
char* at(void* base, DType t, int64_t elems) {
  return static_cast<char*>(base) + static_cast<size_t>(elems) * static_cast<size_t>(itemsize(t));
}

void forward(const Conv3dDesc& d, const void* x, const void* w, const void* bias, void* y) {
  if (d.N == 0 || d.OC == 0) return;
  Context c = context_for(d, y);
  DeviceGuard guard(c.device);
  const int64_t chunk = chunk_size(d), xs = d.C * d.in_numel(), ys = d.OC * d.out_numel();
  {
    std::lock_guard<std::mutex> lock(c.handle.mu);
    for (int64_t n0 = 0; n0 < d.N; n0 += chunk) {
      Problem p(d, std::min(chunk, d.N - n0), c);
      int count = 0, returned = 0;
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(c.handle.h, &count));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(std::max(count, 1)));
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
          c.handle.h, p.x.d, p.w.d, p.conv.d, p.y.d, count, &returned, perf.data()));
      const auto algo = pick(perf, returned, c, p, false, "forward", d).algo;
      size_t bytes = 0;
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(c.handle.h, p.x.d, p.w.d, p.conv.d,
                                                                 p.y.d, algo, &bytes));
      Workspace ws(c.device, bytes);
      FABRIC_CUDNN_CHECK(cudnnConvolutionForward(
          c.handle.h, kOne.of(p), p.x.d, at(x, d.dtype, n0 * xs), p.w.d, w, p.conv.d, algo,
          ws.get(), ws.size(), kZero.of(p), p.y.d, at(y, d.dtype, n0 * ys)));
    }
  }
  if (bias) conv_add_bias(c.device, d.dtype, y, bias, d.N, d.OC, d.out_numel());
}

void backward_data(const Conv3dDesc& d, const void* dy, const void* w, void* dx) {
  if (d.N == 0 || d.C == 0) return;
  Context c = context_for(d, dx);
  DeviceGuard guard(c.device);
  const int64_t chunk = chunk_size(d), xs = d.C * d.in_numel(), ys = d.OC * d.out_numel();
  std::lock_guard<std::mutex> lock(c.handle.mu);
  for (int64_t n0 = 0; n0 < d.N; n0 += chunk) {
    Problem p(d, std::min(chunk, d.N - n0), c);
    int count = 0, returned = 0;
    FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(c.handle.h, &count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<size_t>(std::max(count, 1)));
    FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        c.handle.h, p.w.d, p.y.d, p.conv.d, p.x.d, count, &returned, perf.data()));
    const auto algo = pick(perf, returned, c, p, true, "backward-data", d).algo;
    size_t bytes = 0;
    FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(c.handle.h, p.w.d, p.y.d,
                                                                    p.conv.d, p.x.d, algo, &bytes));
    Workspace ws(c.device, bytes);
    FABRIC_CUDNN_CHECK(cudnnConvolutionBackwardData(
        c.handle.h, kOne.of(p), p.w.d, w, p.y.d, at(dy, d.dtype, n0 * ys), p.conv.d, algo, ws.get(),
        ws.size(), kZero.of(p), p.x.d, at(dx, d.dtype, n0 * xs)));
  }
}

void backward_weights(const Conv3dDesc& d, const void* dy, const void* x, void* dw, void* db) {
  if (!dw && !db) return;
  Context c = context_for(d, dw ? dw : db);
  DeviceGuard guard(c.device);
  if (dw) {
    const int64_t chunk = chunk_size(d), xs = d.C * d.in_numel(), ys = d.OC * d.out_numel();
    std::lock_guard<std::mutex> lock(c.handle.mu);
    // Later chunks accumulate into dw (beta = 1).
    for (int64_t n0 = 0; n0 < d.N; n0 += chunk) {
      Problem p(d, std::min(chunk, d.N - n0), c);
      int count = 0, returned = 0;
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(c.handle.h, &count));
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(
          static_cast<size_t>(std::max(count, 1)));
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
          c.handle.h, p.x.d, p.y.d, p.conv.d, p.w.d, count, &returned, perf.data()));
      const auto algo = pick(perf, returned, c, p, true, "backward-filter", d).algo;
      size_t bytes = 0;
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
          c.handle.h, p.x.d, p.y.d, p.conv.d, p.w.d, algo, &bytes));
      Workspace ws(c.device, bytes);
      FABRIC_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
          c.handle.h, kOne.of(p), p.x.d, at(x, d.dtype, n0 * xs), p.y.d, at(dy, d.dtype, n0 * ys),
          p.conv.d, algo, ws.get(), ws.size(), n0 == 0 ? kZero.of(p) : kOne.of(p), p.w.d, dw));
    }
  }
  if (db) conv_bias_grad(c.device, d.dtype, dy, db, d.N, d.OC, d.out_numel());
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(conv3d_forward_stub, cuda, &cuda::forward);
FABRIC_REGISTER_KERNEL(conv3d_backward_data_stub, cuda, &cuda::backward_data);
FABRIC_REGISTER_KERNEL(conv3d_backward_weights_stub, cuda, &cuda::backward_weights);
}  // namespace fabric
