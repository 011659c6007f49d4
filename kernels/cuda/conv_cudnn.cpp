// The CUDA convolution, 2-D (NCHW) and 3-D (NCDHW) alike (forward, backward data, backward
// weights; transposed convolutions arrive as backward data), through cuDNN's legacy convolution
// API (libcudnn_cnn, still shipped by cuDNN 9 though marked deprecated) with N-d descriptors, as
// torch's: one handle per device bound to its compute stream, the algorithm picked by cuDNN's
// heuristics (no benchmarking runs) once per problem and cached with its workspace size,
// workspaces from the caching allocator, images in chunks that keep cuDNN's int sizes in range.
// The bias add and bias gradient are our kernels over the flattened spatial extent (conv_bias.cu).
// float32 runs on FMA math unless TF32 is allowed (the GEMM's switch, off by default);
// float16/bfloat16 use tensor cores with float32 accumulation. The handle, the checked-call helper
// and the workspace are shared with the cuDNN attention (cudnn_common.h).
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <memory>
#include <mutex>
#include <source_location>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/caching_allocator.h"
#include "kernels/cuda/conv_bias.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cudnn_common.h"
#include "kernels/cuda/gemm_cublaslt.h"
#include "kernels/cuda/stream.h"
#include "tensor/conv3d_kernels.h"
#include "tensor/conv_kernels.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;

// Workspaces beyond this are not worth an algorithm's speed (and could starve the model).
constexpr size_t kMaxWorkspaceBytes = size_t{1} << 30;

// A 2-D or 3-D problem with its spatial sizes as arrays (the first `rank` entries used, the rest
// 0): one shape for the descriptors, the plan key and the messages of both ranks.
struct Geometry {
  int rank = 2;
  int64_t N = 0, C = 0, OC = 0, groups = 1;
  std::array<int64_t, 3> in{}, k{}, out{}, stride{}, pad{}, dil{};
  DType dtype = DType::float32;

  const char* name() const { return rank == 2 ? "conv2d (CUDA)" : "conv3d (CUDA)"; }
  int64_t spatial(const std::array<int64_t, 3>& a) const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= a[i];
    return n;
  }
  int64_t x_image() const { return C * spatial(in); }    // one image's input elements
  int64_t y_image() const { return OC * spatial(out); }  // one image's output elements
  int64_t w_numel() const { return OC * (C / groups) * spatial(k); }
};

Geometry geometry(const Conv2dDesc& d) {
  Geometry g{2, d.N, d.C, d.OC, d.groups};
  g.in = {d.H, d.W}, g.k = {d.KH, d.KW}, g.out = {d.OH, d.OW};
  g.stride = {d.stride_h, d.stride_w}, g.pad = {d.pad_h, d.pad_w}, g.dil = {d.dil_h, d.dil_w};
  g.dtype = d.dtype;
  return g;
}

Geometry geometry(const Conv3dDesc& d) {
  return {3, d.N, d.C, d.OC, d.groups, d.in, d.k, d.out, d.stride, d.pad, d.dil, d.dtype};
}

// "a, b, c": the first `rank` entries of s.
std::string join(const Geometry& g, const std::array<int64_t, 3>& s) {
  std::string r;
  for (int i = 0; i < g.rank; ++i) r += cat(i ? ", " : "", s[i]);
  return r;
}

// The problem for n images, for messages.
std::string describe(const Geometry& g, int64_t n) {
  return cat("input (", n, ", ", g.C, ", ", join(g, g.in), "), weight (", g.OC, ", ",
             g.C / g.groups, ", ", join(g, g.k), "), stride (", join(g, g.stride), "), padding (",
             join(g, g.pad), "), dilation (", join(g, g.dil), "), groups ", g.groups, ", ",
             dtype_name(g.dtype));
}

// ---- per-device handle ----------------------------------------------------------------------

CudnnHandle& handle_for(int device, const Geometry& g) { return cudnn_handle(device, g.name()); }

// ---- descriptors (RAII) -------------------------------------------------------------------------

// (a, b, spatial...) as cuDNN's ints: rank + 2 of them (chunk_size keeps them in range).
struct Dims {
  std::array<int, 5> v{};
  int count = 0;
};

Dims dims(const Geometry& g, int64_t a, int64_t b, const std::array<int64_t, 3>& s) {
  Dims d;
  d.v[0] = static_cast<int>(a);
  d.v[1] = static_cast<int>(b);
  for (int i = 0; i < g.rank; ++i) d.v[2 + i] = static_cast<int>(s[i]);
  d.count = g.rank + 2;
  return d;
}

void check(cudnnStatus_t st, const char* call,
           std::source_location at = std::source_location::current()) {
  cudnn_check(st, call, at);
}

// Owns one cuDNN descriptor: created here, destroyed with its owner, also when the rest of the
// owner's constructor (setting the descriptor up) throws.
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
struct Owned {
  T d = nullptr;
  explicit Owned(const char* create_call) { check(Create(&d), create_call); }
  ~Owned() { Destroy(d); }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
};

using OwnedTensor =
    Owned<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using OwnedFilter =
    Owned<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using OwnedConv = Owned<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                        cudnnDestroyConvolutionDescriptor>;

// A packed NC(D)HW tensor.
struct TensorDesc : OwnedTensor {
  TensorDesc(cudnnDataType_t t, const Dims& dims) : OwnedTensor("cudnnCreateTensorDescriptor(&d)") {
    std::array<int, 5> strides{};
    strides[dims.count - 1] = 1;
    for (int i = dims.count - 2; i >= 0; --i) strides[i] = strides[i + 1] * dims.v[i + 1];
    check(cudnnSetTensorNdDescriptor(d, t, dims.count, dims.v.data(), strides.data()),
          "cudnnSetTensorNdDescriptor");
  }
};

// A packed OI(D)HW filter.
struct FilterDesc : OwnedFilter {
  FilterDesc(cudnnDataType_t t, const Dims& dims) : OwnedFilter("cudnnCreateFilterDescriptor(&d)") {
    check(cudnnSetFilterNdDescriptor(d, t, CUDNN_TENSOR_NCHW, dims.count, dims.v.data()),
          "cudnnSetFilterNdDescriptor");
  }
};

struct ConvDesc : OwnedConv {
  ConvDesc(const Geometry& g, cudnnDataType_t compute, cudnnMathType_t math)
      : OwnedConv("cudnnCreateConvolutionDescriptor(&d)") {
    std::array<int, 3> pad{}, stride{}, dil{};
    for (int i = 0; i < g.rank; ++i) {
      pad[i] = static_cast<int>(g.pad[i]);
      stride[i] = static_cast<int>(g.stride[i]);
      dil[i] = static_cast<int>(g.dil[i]);
    }
    FABRIC_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(
        d, g.rank, pad.data(), stride.data(), dil.data(), CUDNN_CROSS_CORRELATION, compute));
    FABRIC_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d, static_cast<int>(g.groups)));
    FABRIC_CUDNN_CHECK(cudnnSetConvolutionMathType(d, math));
  }
};

cudnnDataType_t data_type(const Geometry& g) {
  switch (g.dtype) {
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
  throw DTypeError(cat(g.name(), ": unsupported dtype ", dtype_name(g.dtype),
                       " (expected float64, float32, bfloat16 or float16)"));
}

// ---- one problem: the descriptors of a batch chunk ----------------------------------------------

enum class Pass : uint8_t { forward, backward_data, backward_filter };

struct Problem {
  const Geometry& g;
  int64_t n;  // images in this chunk
  cudnnDataType_t dt, compute;
  bool fma_only;  // float32 without TF32: tensor-op algorithms are not allowed
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;  // its math type starts as the context's; the plan may narrow it
  Problem(const Geometry& geo, int64_t chunk, cudnnMathType_t math, bool fma)
      : g(geo),
        n(chunk),
        dt(data_type(geo)),
        compute(geo.dtype == DType::float64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT),
        fma_only(fma),
        x(dt, dims(geo, chunk, geo.C, geo.in)),
        y(dt, dims(geo, chunk, geo.OC, geo.out)),
        w(dt, dims(geo, geo.OC, geo.C / geo.groups, geo.k)),
        conv(geo, compute, math) {}
};

// ---- the plan cache -----------------------------------------------------------------------------

// The chunk's problem as flat integers: rank, sizes, stride, padding, dilation, groups, then dtype,
// pass, TF32 mode and device packed in one.
struct PlanKey {
  std::array<int64_t, 24> v{};
  bool operator==(const PlanKey& o) const { return v == o.v; }
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    uint64_t h = 1469598103934665603ull;
    for (int64_t x : k.v) {
      h = (h ^ static_cast<uint64_t>(x)) * 1099511628211ull;
      h ^= h >> 29;
    }
    return h;
  }
};

PlanKey plan_key(const Problem& p, Pass pass, int device, bool tf32) {
  const Geometry& g = p.g;
  PlanKey k;
  size_t i = 0;
  for (int64_t x : {int64_t{g.rank}, p.n, g.C, g.OC, g.groups}) k.v[i++] = x;
  for (const auto* a : {&g.in, &g.k, &g.out, &g.stride, &g.pad, &g.dil})
    for (int64_t x : *a) k.v[i++] = x;
  k.v[i++] = static_cast<int64_t>(g.dtype) | static_cast<int64_t>(pass) << 8 |
             static_cast<int64_t>(tf32) << 16 | static_cast<int64_t>(device) << 24;
  return k;
}

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
  FABRIC_CHECK(chosen != nullptr, DeviceError, p.g.name(), ": cuDNN offers no ",
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
// descriptor's math type either way. The caller holds the device's handle, so one device asks
// once per problem; another device asking at the same time finds the same plan.
Plan cached_plan(cudnnHandle_t h, Problem& p, Pass pass, int device, bool tf32) {
  const PlanKey key = plan_key(p, pass, device, tf32);
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

using Workspace = CudnnWorkspace;

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
int64_t chunk_size(const Geometry& g) {
  const int64_t in = g.x_image(), out = g.y_image(), weights = g.w_numel();
  FABRIC_CHECK(in <= INT_MAX && out <= INT_MAX && weights <= INT_MAX, ValueError, g.name(),
               ": one image's input (", in, " elements), output (", out, ") or the weight (",
               weights, ") exceeds cuDNN's 2^31-1 element limit: ", describe(g, g.N));
  return std::max<int64_t>(1, std::min<int64_t>(g.N, INT_MAX / std::max(in, out)));
}

struct Context {
  int device;
  CudnnHandle& handle;
  bool tf32;
  cudnnMathType_t math;
  bool fma_only;
};

Context context_for(const Geometry& g, const void* out) {
  const int device = device_of_pointer(out);
  const bool tf32 = g.dtype == DType::float32 && allow_tf32();
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  if (g.dtype == DType::float32 && !tf32) math = CUDNN_FMA_MATH;
  if (g.dtype == DType::float16 || g.dtype == DType::bfloat16) math = CUDNN_TENSOR_OP_MATH;
  return {device, handle_for(device, g), tf32, math, g.dtype == DType::float32 && !tf32};
}

// base + `images` whole images of `per_image` elements each.
const char* at(const void* base, const Geometry& g, int64_t images, int64_t per_image) {
  return static_cast<const char*>(base) +
         static_cast<size_t>(images * per_image) * static_cast<size_t>(itemsize(g.dtype));
}
char* at(void* base, const Geometry& g, int64_t images, int64_t per_image) {
  return static_cast<char*>(base) +
         static_cast<size_t>(images * per_image) * static_cast<size_t>(itemsize(g.dtype));
}

// Runs `run(problem, plan, workspace, first image)` for each chunk of the batch, holding the
// device's handle throughout.
template <class Run>
void for_each_chunk(const Geometry& g, const Context& c, Pass pass, Run&& run) {
  const int64_t chunk = chunk_size(g);
  std::lock_guard<std::mutex> lock(c.handle.mu);
  for (int64_t n0 = 0; n0 < g.N; n0 += chunk) {
    Problem p(g, std::min(chunk, g.N - n0), c.math, c.fma_only);
    const Plan plan = cached_plan(c.handle.h, p, pass, c.device, c.tf32);
    Workspace ws(c.device, plan.workspace);
    run(p, plan, ws, n0);
  }
}

void forward(const Geometry& g, const void* x, const void* w, const void* bias, void* y) {
  if (g.N == 0 || g.OC == 0) return;
  Context c = context_for(g, y);
  DeviceGuard guard(c.device);
  auto run = [&](Problem& p, const Plan& plan, Workspace& ws, int64_t n0) {
    FABRIC_CUDNN_CHECK(cudnnConvolutionForward(
        c.handle.h, kOne.of(p), p.x.d, at(x, g, n0, g.x_image()), p.w.d, w, p.conv.d,
        static_cast<cudnnConvolutionFwdAlgo_t>(plan.algo), ws.get(), ws.size(), kZero.of(p), p.y.d,
        at(y, g, n0, g.y_image())));
  };
  for_each_chunk(g, c, Pass::forward, run);
  if (bias) conv_add_bias(c.device, g.dtype, y, bias, g.N, g.OC, g.spatial(g.out));
}

void backward_data(const Geometry& g, const void* dy, const void* w, void* dx) {
  if (g.N == 0 || g.C == 0) return;
  Context c = context_for(g, dx);
  DeviceGuard guard(c.device);
  auto run = [&](Problem& p, const Plan& plan, Workspace& ws, int64_t n0) {
    FABRIC_CUDNN_CHECK(cudnnConvolutionBackwardData(
        c.handle.h, kOne.of(p), p.w.d, w, p.y.d, at(dy, g, n0, g.y_image()), p.conv.d,
        static_cast<cudnnConvolutionBwdDataAlgo_t>(plan.algo), ws.get(), ws.size(), kZero.of(p),
        p.x.d, at(dx, g, n0, g.x_image())));
  };
  for_each_chunk(g, c, Pass::backward_data, run);
}

void backward_weights(const Geometry& g, const void* dy, const void* x, void* dw, void* db) {
  if (!dw && !db) return;
  Context c = context_for(g, dw ? dw : db);
  DeviceGuard guard(c.device);
  // Later chunks accumulate into dw (beta = 1).
  auto run = [&](Problem& p, const Plan& plan, Workspace& ws, int64_t n0) {
    FABRIC_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        c.handle.h, kOne.of(p), p.x.d, at(x, g, n0, g.x_image()), p.y.d, at(dy, g, n0, g.y_image()),
        p.conv.d, static_cast<cudnnConvolutionBwdFilterAlgo_t>(plan.algo), ws.get(), ws.size(),
        n0 == 0 ? kZero.of(p) : kOne.of(p), p.w.d, dw));
  };
  if (dw) for_each_chunk(g, c, Pass::backward_filter, run);
  if (db) conv_bias_grad(c.device, g.dtype, dy, db, g.N, g.OC, g.spatial(g.out));
}

// The stubs' entry points, one per rank's geometry struct.
template <class Desc>
void forward_of(const Desc& d, const void* x, const void* w, const void* bias, void* y) {
  forward(geometry(d), x, w, bias, y);
}
template <class Desc>
void backward_data_of(const Desc& d, const void* dy, const void* w, void* dx) {
  backward_data(geometry(d), dy, w, dx);
}
template <class Desc>
void backward_weights_of(const Desc& d, const void* dy, const void* x, void* dw, void* db) {
  backward_weights(geometry(d), dy, x, dw, db);
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(conv2d_forward_stub, cuda, &cuda::forward_of<Conv2dDesc>);
FABRIC_REGISTER_KERNEL(conv2d_backward_data_stub, cuda, &cuda::backward_data_of<Conv2dDesc>);
FABRIC_REGISTER_KERNEL(conv2d_backward_weights_stub, cuda, &cuda::backward_weights_of<Conv2dDesc>);
FABRIC_REGISTER_KERNEL(conv3d_forward_stub, cuda, &cuda::forward_of<Conv3dDesc>);
FABRIC_REGISTER_KERNEL(conv3d_backward_data_stub, cuda, &cuda::backward_data_of<Conv3dDesc>);
FABRIC_REGISTER_KERNEL(conv3d_backward_weights_stub, cuda, &cuda::backward_weights_of<Conv3dDesc>);
}  // namespace fabric
