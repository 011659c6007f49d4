// The CUDA 2-D convolution (forward, backward data, backward weights) through cuDNN's legacy
// convolution API (libcudnn_cnn, still shipped by cuDNN 9 though marked deprecated): one handle
// per device bound to its compute stream, the algorithm picked by cuDNN's heuristics once per
// problem and cached, workspaces from the caching allocator. The bias add and bias gradient are
// our kernels (conv_bias.cu). float32 runs on FMA math unless TF32 is allowed (the GEMM's switch,
// off by default); float16/bfloat16 use tensor cores with float32 accumulation.
#include <cudnn.h>

#include <array>
#include <atomic>
#include <climits>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/caching_allocator.h"
#include "kernels/cuda/conv_bias.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm_cublaslt.h"
#include "kernels/cuda/stream.h"
#include "tensor/conv_kernels.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;

// Workspaces beyond this are not worth an algorithm's speed (and could starve the model).
constexpr size_t kMaxWorkspaceBytes = size_t{1} << 30;

// ---- per-device handle
// ----------------------------------------------------------------------------

struct Handle {
  cudnnHandle_t h = nullptr;
  std::mutex mu;  // a handle is used by one thread at a time
};

std::array<std::atomic<Handle*>, kMaxDevices> g_handles{};
std::mutex g_handle_mu;

// Never destroyed: convolutions may be queued by tensors that outlive main.
Handle& handle_for(int device) {
  check_device(device, "conv2d (CUDA)");
  FABRIC_CHECK(device < kMaxDevices, DeviceError, "conv2d (CUDA): device ", device, " is past the ",
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

// ---- descriptors (RAII)
// ---------------------------------------------------------------------------

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(cudnnDataType_t t, int64_t n, int64_t c, int64_t h, int64_t w) {
    FABRIC_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
    const cudnnStatus_t st =
        cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, t, static_cast<int>(n),
                                   static_cast<int>(c), static_cast<int>(h), static_cast<int>(w));
    if (st != CUDNN_STATUS_SUCCESS) {
      cudnnDestroyTensorDescriptor(d);
      throw_cudnn_error(static_cast<int>(st), "cudnnSetTensor4dDescriptor", __FILE__, __LINE__);
    }
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  FilterDesc(cudnnDataType_t t, int64_t k, int64_t c, int64_t h, int64_t w) {
    FABRIC_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
    const cudnnStatus_t st =
        cudnnSetFilter4dDescriptor(d, t, CUDNN_TENSOR_NCHW, static_cast<int>(k),
                                   static_cast<int>(c), static_cast<int>(h), static_cast<int>(w));
    if (st != CUDNN_STATUS_SUCCESS) {
      cudnnDestroyFilterDescriptor(d);
      throw_cudnn_error(static_cast<int>(st), "cudnnSetFilter4dDescriptor", __FILE__, __LINE__);
    }
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  ConvDesc(const Conv2dDesc& g, cudnnDataType_t compute, cudnnMathType_t math) {
    FABRIC_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
    try {
      FABRIC_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
          d, static_cast<int>(g.pad_h), static_cast<int>(g.pad_w), static_cast<int>(g.stride_h),
          static_cast<int>(g.stride_w), static_cast<int>(g.dil_h), static_cast<int>(g.dil_w),
          CUDNN_CROSS_CORRELATION, compute));
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
  throw DTypeError(cat("conv2d (CUDA): unsupported dtype ", dtype_name(t),
                       " (expected float64, float32, bfloat16 or float16)"));
}

// ---- one problem: the descriptors of a batch chunk
// --------------------------------------------------

enum class Pass : uint8_t { forward, backward_data, backward_filter };

struct Problem {
  Conv2dDesc g;
  int64_t n;  // images in this chunk
  cudnnDataType_t dt, compute;
  cudnnMathType_t math;  // what the descriptor starts with; the plan may narrow it
  bool fma_only;         // float32 without TF32: tensor-op algorithms are not allowed
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  Problem(const Conv2dDesc& d, int64_t chunk, cudnnMathType_t m, bool fma)
      : g(d),
        n(chunk),
        dt(data_type(d.dtype)),
        compute(d.dtype == DType::float64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT),
        math(m),
        fma_only(fma),
        x(dt, chunk, d.C, d.H, d.W),
        y(dt, chunk, d.OC, d.OH, d.OW),
        w(dt, d.OC, d.C / d.groups, d.KH, d.KW),
        conv(d, compute, m) {}
};

// ---- the plan cache -----------------------------------------------------------------------------

struct PlanKey {
  Conv2dDesc g;
  int64_t n;
  Pass pass;
  int device;
  bool tf32;
  auto tie() const {
    return std::tie(g.N, g.C, g.H, g.W, g.OC, g.KH, g.KW, g.OH, g.OW, g.stride_h, g.stride_w,
                    g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.groups, g.dtype, n, pass, device, tf32);
  }
  bool operator==(const PlanKey& o) const { return tie() == o.tie(); }
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) {
      h = (h ^ v) * 1099511628211ull;
      h ^= h >> 29;
    };
    const Conv2dDesc& g = k.g;
    for (int64_t v : {g.N, g.C, g.H, g.W, g.OC, g.KH, g.KW, g.OH, g.OW, g.stride_h, g.stride_w,
                      g.pad_h, g.pad_w, g.dil_h, g.dil_w, g.groups, k.n})
      mix(static_cast<uint64_t>(v));
    mix(uint64_t(g.dtype) | uint64_t(k.pass) << 8 | uint64_t(k.tf32) << 16 |
        uint64_t(k.device) << 24);
    return h;
  }
};

struct Plan {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
};

std::mutex g_plan_mu;
std::unordered_map<PlanKey, Plan, PlanKeyHash>& plans() {
  static auto* m = new std::unordered_map<PlanKey, Plan, PlanKeyHash>();
  return *m;
}

bool tensor_op(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// The first heuristic result that ran, fits the workspace cap and the math restriction;
// `prefer_deterministic` passes over non-deterministic ones while any deterministic one qualifies.
template <typename Perf>
const Perf* choose(const std::vector<Perf>& perf, int returned, bool fma_only,
                   bool prefer_deterministic) {
  for (int strict = prefer_deterministic ? 1 : 0; strict >= 0; --strict) {
    for (int i = 0; i < returned; ++i) {
      const Perf& p = perf[static_cast<size_t>(i)];
      if (p.status != CUDNN_STATUS_SUCCESS || p.memory > kMaxWorkspaceBytes) continue;
      if (fma_only && tensor_op(p.mathType)) continue;
      if (strict && p.determinism != CUDNN_DETERMINISTIC) continue;
      return &p;
    }
  }
  return nullptr;
}

std::string describe(const Conv2dDesc& g, int64_t n) {
  return cat("input (", n, ", ", g.C, ", ", g.H, ", ", g.W, "), weight (", g.OC, ", ",
             g.C / g.groups, ", ", g.KH, ", ", g.KW, "), stride (", g.stride_h, ", ", g.stride_w,
             "), padding (", g.pad_h, ", ", g.pad_w, "), dilation (", g.dil_h, ", ", g.dil_w,
             "), groups ", g.groups, ", ", dtype_name(g.dtype));
}

// Asks cuDNN's heuristics (no benchmarking runs) for this pass; the descriptor's math type is set
// to the chosen algorithm's.
Plan plan_for(cudnnHandle_t h, Problem& p, Pass pass) {
  Plan plan;
  int count = 0, returned = 0;
  const void* chosen = nullptr;
  switch (pass) {
    case Pass::forward: {
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &count));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(std::max(count, 1)));
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.d, p.w.d, p.conv.d, p.y.d,
                                                                count, &returned, perf.data()));
      if (const auto* c = choose(perf, returned, p.fma_only, false)) {
        plan.algo = c->algo;
        plan.math = c->mathType;
        chosen = c;
      }
      break;
    }
    case Pass::backward_data: {
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &count));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<size_t>(std::max(count, 1)));
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
          h, p.w.d, p.y.d, p.conv.d, p.x.d, count, &returned, perf.data()));
      if (const auto* c = choose(perf, returned, p.fma_only, true)) {
        plan.algo = c->algo;
        plan.math = c->mathType;
        chosen = c;
      }
      break;
    }
    case Pass::backward_filter: {
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &count));
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(
          static_cast<size_t>(std::max(count, 1)));
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
          h, p.x.d, p.y.d, p.conv.d, p.w.d, count, &returned, perf.data()));
      if (const auto* c = choose(perf, returned, p.fma_only, true)) {
        plan.algo = c->algo;
        plan.math = c->mathType;
        chosen = c;
      }
      break;
    }
  }
  FABRIC_CHECK(chosen != nullptr, DeviceError, "conv2d (CUDA): cuDNN offers no ",
               pass == Pass::forward         ? "forward"
               : pass == Pass::backward_data ? "backward-data"
                                             : "backward-filter",
               " algorithm for ", describe(p.g, p.n),
               p.fma_only ? " without TF32 (float32 math is FMA-only unless TF32 is allowed)" : "",
               " within a ", kMaxWorkspaceBytes >> 20, " MiB workspace");
  if (p.fma_only) plan.math = CUDNN_FMA_MATH;
  FABRIC_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv.d, plan.math));
  size_t ws = 0;
  switch (pass) {
    case Pass::forward:
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(
          h, p.x.d, p.w.d, p.conv.d, p.y.d, static_cast<cudnnConvolutionFwdAlgo_t>(plan.algo),
          &ws));
      break;
    case Pass::backward_data:
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
          h, p.w.d, p.y.d, p.conv.d, p.x.d, static_cast<cudnnConvolutionBwdDataAlgo_t>(plan.algo),
          &ws));
      break;
    case Pass::backward_filter:
      FABRIC_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
          h, p.x.d, p.y.d, p.conv.d, p.w.d, static_cast<cudnnConvolutionBwdFilterAlgo_t>(plan.algo),
          &ws));
      break;
  }
  plan.workspace = ws;
  return plan;
}

// The cached plan of (problem, pass, device, TF32 mode), asked for on a miss; sets the
// descriptor's math type either way.
Plan cached_plan(cudnnHandle_t h, Problem& p, Pass pass, int device, bool tf32) {
  const PlanKey key{p.g, p.n, pass, device, tf32};
  {
    std::lock_guard<std::mutex> lock(g_plan_mu);
    auto it = plans().find(key);
    if (it != plans().end()) {
      FABRIC_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv.d, it->second.math));
      return it->second;
    }
  }
  const Plan plan = plan_for(h, p, pass);
  std::lock_guard<std::mutex> lock(g_plan_mu);
  plans().emplace(key, plan);
  return plan;
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

// cuDNN's legacy descriptors hold int sizes and strides: images go in chunks whose tensors stay
// below 2^31 elements.
int64_t chunk_size(const Conv2dDesc& g) {
  const int64_t in = g.C * g.H * g.W, out = g.OC * g.OH * g.OW;
  const int64_t weights = g.OC * (g.C / g.groups) * g.KH * g.KW;
  FABRIC_CHECK(in <= INT_MAX && out <= INT_MAX && weights <= INT_MAX, ValueError,
               "conv2d (CUDA): one image's input (", in, " elements), output (", out,
               ") or the weight (", weights,
               ") exceeds cuDNN's 2^31-1 element limit: ", describe(g, g.N));
  return std::max<int64_t>(1, std::min<int64_t>(g.N, INT_MAX / std::max(in, out)));
}

struct Context {
  int device;
  Handle& handle;
  bool tf32;
  cudnnMathType_t math;
  bool fma_only;
};

Context context_for(const Conv2dDesc& d, const void* out) {
  const int device = device_of_pointer(out);
  const bool tf32 = d.dtype == DType::float32 && allow_tf32();
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  if (d.dtype == DType::float32 && !tf32) math = CUDNN_FMA_MATH;
  if (d.dtype == DType::float16 || d.dtype == DType::bfloat16) math = CUDNN_TENSOR_OP_MATH;
  return {device, handle_for(device), tf32, math, d.dtype == DType::float32 && !tf32};
}

size_t bytes_per(const Conv2dDesc& d, int64_t elems) {
  return static_cast<size_t>(elems) * static_cast<size_t>(itemsize(d.dtype));
}

void conv2d_forward(const Conv2dDesc& d, const void* x, const void* w, const void* bias, void* y) {
  if (d.N == 0 || d.OC == 0) return;
  Context c = context_for(d, y);
  DeviceGuard guard(c.device);
  const int64_t chunk = chunk_size(d);
  {
    std::lock_guard<std::mutex> lock(c.handle.mu);
    for (int64_t n0 = 0; n0 < d.N; n0 += chunk) {
      const int64_t n = std::min(chunk, d.N - n0);
      Problem p(d, n, c.math, c.fma_only);
      const Plan plan = cached_plan(c.handle.h, p, Pass::forward, c.device, c.tf32);
      Workspace ws(c.device, plan.workspace);
      FABRIC_CUDNN_CHECK(cudnnConvolutionForward(
          c.handle.h, kOne.of(p), p.x.d,
          static_cast<const char*>(x) + bytes_per(d, n0 * d.C * d.H * d.W), p.w.d, w, p.conv.d,
          static_cast<cudnnConvolutionFwdAlgo_t>(plan.algo), ws.get(), ws.size(), kZero.of(p),
          p.y.d, static_cast<char*>(y) + bytes_per(d, n0 * d.OC * d.OH * d.OW)));
    }
  }
  if (bias) conv_add_bias(c.device, d.dtype, y, bias, d.N, d.OC, d.OH * d.OW);
}

void conv2d_backward_data(const Conv2dDesc& d, const void* dy, const void* w, void* dx) {
  if (d.N == 0 || d.C == 0) return;
  Context c = context_for(d, dx);
  DeviceGuard guard(c.device);
  const int64_t chunk = chunk_size(d);
  std::lock_guard<std::mutex> lock(c.handle.mu);
  for (int64_t n0 = 0; n0 < d.N; n0 += chunk) {
    const int64_t n = std::min(chunk, d.N - n0);
    Problem p(d, n, c.math, c.fma_only);
    const Plan plan = cached_plan(c.handle.h, p, Pass::backward_data, c.device, c.tf32);
    Workspace ws(c.device, plan.workspace);
    FABRIC_CUDNN_CHECK(cudnnConvolutionBackwardData(
        c.handle.h, kOne.of(p), p.w.d, w, p.y.d,
        static_cast<const char*>(dy) + bytes_per(d, n0 * d.OC * d.OH * d.OW), p.conv.d,
        static_cast<cudnnConvolutionBwdDataAlgo_t>(plan.algo), ws.get(), ws.size(), kZero.of(p),
        p.x.d, static_cast<char*>(dx) + bytes_per(d, n0 * d.C * d.H * d.W)));
  }
}

void conv2d_backward_weights(const Conv2dDesc& d, const void* dy, const void* x, void* dw,
                             void* db) {
  if (!dw && !db) return;
  Context c = context_for(d, dw ? dw : db);
  DeviceGuard guard(c.device);
  if (dw) {
    const int64_t chunk = chunk_size(d);
    std::lock_guard<std::mutex> lock(c.handle.mu);
    // Later chunks accumulate into dw (beta = 1).
    for (int64_t n0 = 0; n0 < d.N; n0 += chunk) {
      const int64_t n = std::min(chunk, d.N - n0);
      Problem p(d, n, c.math, c.fma_only);
      const Plan plan = cached_plan(c.handle.h, p, Pass::backward_filter, c.device, c.tf32);
      Workspace ws(c.device, plan.workspace);
      FABRIC_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
          c.handle.h, kOne.of(p), p.x.d,
          static_cast<const char*>(x) + bytes_per(d, n0 * d.C * d.H * d.W), p.y.d,
          static_cast<const char*>(dy) + bytes_per(d, n0 * d.OC * d.OH * d.OW), p.conv.d,
          static_cast<cudnnConvolutionBwdFilterAlgo_t>(plan.algo), ws.get(), ws.size(),
          n0 == 0 ? kZero.of(p) : kOne.of(p), p.w.d, dw));
    }
  }
  if (db) conv_bias_grad(c.device, d.dtype, dy, db, d.N, d.OC, d.OH * d.OW);
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(conv2d_forward_stub, cuda, &cuda::conv2d_forward);
FABRIC_REGISTER_KERNEL(conv2d_backward_data_stub, cuda, &cuda::conv2d_backward_data);
FABRIC_REGISTER_KERNEL(conv2d_backward_weights_stub, cuda, &cuda::conv2d_backward_weights);
}  // namespace fabric
