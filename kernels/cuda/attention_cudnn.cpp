// cuDNN's fused flash attention through the backend graph API (contract: attention_cudnn.h).
//
// cuDNN has no "attention" call before 9.13 and no causal mask in its single SDPA operation before
// 9.21: its flash-attention engines are found by matching an operation graph of matmuls,
// pointwise ops and reductions against the pattern those engines implement. The graphs below are
// that pattern as NVIDIA's frontend (cudnn-frontend 1.x, "composite" SDPA nodes) spells it, with
// the same tensor roles, data types and order:
//
// forward (io = bf16 or f16; every virtual tensor float32 except P, which is io):
//   S = Q @ K^T                 (matmul; K^T is K's own memory seen as (b, h, E, S) by strides)
//   S = S * scale               (pointwise MUL with a by-value float scalar)
//   [causal] r = GEN_INDEX(S, axis 2), c = GEN_INDEX(S, axis 3) (int32), m = r >= c (boolean),
//            S = m ? S : lowest float                          (BINARY_SELECT)
//   M = max_row(S), E = exp(S - M), Z = sum_row(E)              (reductions MAX/ADD to (b,h,L,1))
//   Stats = M + log(Z)          (non-virtual float (b, h, L, 1): our lse)
//   P = E / Z                   (virtual, io type: the engine's second matmul operand)
//   O = P @ V
// backward (the same roles; cuDNN >= 9 style: dQ accumulated in float, softmax_sum in memory):
//   sum = rowsum(dO * O) * 1    (non-virtual float (b, h, L, 1), in our workspace)
//   S = Q @ K^T * scale, causal mask as above, P = exp(S - Stats)
//   dV = reshape(P)^T @ dO      (reshape to (b, h, S, L) with transposed strides, io type)
//   dS = (dO @ V^T - sum) * P * scale
//   dK = reshape(dS)^T @ Q
//   dQacc = dS @ reshape(K^T)   (non-virtual float (b, h, L, E), in our workspace), dQ = dQacc
// (virtual tensors float32 except the two reshaped-for-matmul ones, which are io; reshape(K^T)
// stays float as the frontend leaves it).
//
// Plans are built once per problem (device, dtype, causal, sizes, q/k/v strides; the scale is a
// by-value scalar supplied at each run, so it is not part of the key) and cached, declines too.
// Building runs every cuDNN call checked: a failing call becomes a DeviceError naming it, which
// the builder turns into a cached decline with that message (cudnn_attention_stats says why).
// Running a plan: every call checked, errors thrown. The handle (one per device, bound to the
// compute stream) and workspace come from cudnn_common.h, as the convolution's do.
#include "kernels/cuda/attention_cudnn.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cudnn_common.h"
#include "kernels/cuda/stream.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;

constexpr const char* kWhat = "scaled_dot_product_attention (cuDNN)";
constexpr int64_t kMaxHead = 128;  // our backward must take what cuDNN's forward takes
// Workspaces beyond this are not worth an engine's speed (and could starve the model).
constexpr int64_t kMaxWorkspaceBytes = int64_t{1} << 30;
constexpr int64_t kAlignment = 16;  // bytes; cuDNN's tensor-core engines need 16-byte alignment

// Unique ids of the tensors the caller supplies memory for (virtual ones count up from
// kFirstVirtual). One id space per graph.
enum Uid : int64_t {
  kQ = 1,
  kK,  // K's memory, described as K^T (b, h, E, S)
  kV,  // V's memory: (b, h, S, Ev) in the forward, V^T (b, h, Ev, S) in the backward
  kO,
  kStats,
  kDO,
  kDQ,
  kDK,
  kDV,
  kScale,       // by value: the attention scale
  kMaskValue,   // by value: the score of a masked pair
  kOne,         // by value: 1, the dropout-free softmax_sum factor
  kDQAccum,     // workspace: float dQ accumulator
  kSoftmaxSum,  // workspace: float rowsum(dO * O)
  kFirstVirtual = 100,
};

// ---- owned backend descriptors ----------------------------------------------------------------

// The call text of a set/get of attribute `name` (for messages).
#define FABRIC_CUDNN_ATTR_CALL(fn, name) fn "(" #name ")"

class Desc {
 public:
  Desc(cudnnBackendDescriptorType_t type, const char* call) {
    cudnn_check(cudnnBackendCreateDescriptor(type, &d_), call);
  }
  ~Desc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

// `at` defaults to the caller's line: errors point at the attribute being set.
void set_attr(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
              cudnnBackendAttributeType_t type, int64_t count, const void* values, const char* call,
              std::source_location at = std::source_location::current()) {
  cudnn_check(cudnnBackendSetAttribute(d, name, type, count, values), call, at);
}
#define FABRIC_SET_ATTR(d, name, type, count, values) \
  set_attr(d, name, type, count, values, FABRIC_CUDNN_ATTR_CALL("cudnnBackendSetAttribute", name))

void finalize(cudnnBackendDescriptor_t d, const char* what,
              std::source_location at = std::source_location::current()) {
  cudnn_check(cudnnBackendFinalize(d), what, at);
}

using Dims = std::array<int64_t, 4>;

Dims packed_strides(const Dims& dims) {
  return {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
}

// Builds one operation graph: owns every descriptor it creates (tensors, op descriptors,
// operations) until the plan that uses them is gone.
class GraphBuilder {
 public:
  explicit GraphBuilder(cudnnHandle_t handle) : handle_(handle) {}
  // Operations before the tensors and descriptors they refer to: newest first.
  ~GraphBuilder() {
    while (!owned_.empty()) owned_.pop_back();
  }
  GraphBuilder(const GraphBuilder&) = delete;
  GraphBuilder& operator=(const GraphBuilder&) = delete;

  // A tensor descriptor; `uid` 0 gives a virtual tensor a fresh id.
  cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t dt, const Dims& dims,
                                  const Dims& strides, bool is_virtual, bool by_value = false) {
    Desc& t = own(CUDNN_BACKEND_TENSOR_DESCRIPTOR,
                  "cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR)");
    const int64_t id = uid != 0 ? uid : next_virtual_++;
    const int64_t alignment = kAlignment;
    FABRIC_SET_ATTR(t.get(), CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt);
    FABRIC_SET_ATTR(t.get(), CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims.data());
    FABRIC_SET_ATTR(t.get(), CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data());
    FABRIC_SET_ATTR(t.get(), CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &id);
    FABRIC_SET_ATTR(t.get(), CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment);
    FABRIC_SET_ATTR(t.get(), CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &is_virtual);
    if (by_value)
      FABRIC_SET_ATTR(t.get(), CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &by_value);
    finalize(t.get(), "cudnnBackendFinalize(tensor)");
    return t.get();
  }
  cudnnBackendDescriptor_t virt(cudnnDataType_t dt, const Dims& dims) {
    return tensor(0, dt, dims, packed_strides(dims), true);
  }
  cudnnBackendDescriptor_t virt(cudnnDataType_t dt, const Dims& dims, const Dims& strides) {
    return tensor(0, dt, dims, strides, true);
  }
  // A by-value float scalar (its value is passed by host pointer at each run).
  cudnnBackendDescriptor_t scalar(int64_t uid) {
    const Dims one{1, 1, 1, 1};
    return tensor(uid, CUDNN_DATA_FLOAT, one, one, false, true);
  }

  // y = mode(x[, b[, t]]) computed in `prec`; `axis` for GEN_INDEX.
  void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t prec, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                 int64_t axis = -1) {
    Desc& pw = own(CUDNN_BACKEND_POINTWISE_DESCRIPTOR,
                   "cudnnBackendCreateDescriptor(CUDNN_BACKEND_POINTWISE_DESCRIPTOR)");
    FABRIC_SET_ATTR(pw.get(), CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    FABRIC_SET_ATTR(pw.get(), CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    if (axis >= 0) FABRIC_SET_ATTR(pw.get(), CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis);
    finalize(pw.get(), "cudnnBackendFinalize(pointwise descriptor)");
    Desc& op = own(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR,
                   "cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR)");
    cudnnBackendDescriptor_t pwd = pw.get();
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR,
                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pwd);
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    1, &x);
    if (b)
      FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                      1, &b);
    if (t)
      FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                      1, &t);
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    1, &y);
    finalize(op.get(), "cudnnBackendFinalize(pointwise operation)");
    ops_.push_back(op.get());
  }
  void unary(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    pointwise(mode, CUDNN_DATA_FLOAT, x, nullptr, nullptr, y);
  }
  void binary(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
              cudnnBackendDescriptor_t y) {
    pointwise(mode, CUDNN_DATA_FLOAT, x, b, nullptr, y);
  }

  // c = a @ b (batched over the first two dims), float accumulation.
  void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c) {
    Desc& mm = own(CUDNN_BACKEND_MATMUL_DESCRIPTOR,
                   "cudnnBackendCreateDescriptor(CUDNN_BACKEND_MATMUL_DESCRIPTOR)");
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    FABRIC_SET_ATTR(mm.get(), CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    finalize(mm.get(), "cudnnBackendFinalize(matmul descriptor)");
    Desc& op = own(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR,
                   "cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR)");
    cudnnBackendDescriptor_t mmd = mm.get();
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &a);
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &b);
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &c);
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &mmd);
    finalize(op.get(), "cudnnBackendFinalize(matmul operation)");
    ops_.push_back(op.get());
  }

  // y = reduce(x) over the dims where y has size 1, in float.
  void reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t y) {
    Desc& red = own(CUDNN_BACKEND_REDUCTION_DESCRIPTOR,
                    "cudnnBackendCreateDescriptor(CUDNN_BACKEND_REDUCTION_DESCRIPTOR)");
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    FABRIC_SET_ATTR(red.get(), CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1,
                    &mode);
    FABRIC_SET_ATTR(red.get(), CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    finalize(red.get(), "cudnnBackendFinalize(reduction descriptor)");
    Desc& op = own(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR,
                   "cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR)");
    cudnnBackendDescriptor_t redd = red.get();
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    1, &x);
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    1, &y);
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &redd);
    finalize(op.get(), "cudnnBackendFinalize(reduction operation)");
    ops_.push_back(op.get());
  }

  // y = x seen with y's dims and strides (a transpose, for the backward's matmuls).
  void reshape(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    Desc& op = own(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR,
                   "cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR)");
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &x);
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                    &y);
    finalize(op.get(), "cudnnBackendFinalize(reshape operation)");
    ops_.push_back(op.get());
  }

  // scores = keep(row >= col) ? scores : lowest float (torch's is_causal: top-left aligned).
  cudnnBackendDescriptor_t causal_mask(cudnnBackendDescriptor_t scores, const Dims& dims,
                                       cudnnBackendDescriptor_t mask_value) {
    cudnnBackendDescriptor_t row = virt(CUDNN_DATA_INT32, dims);
    cudnnBackendDescriptor_t col = virt(CUDNN_DATA_INT32, dims);
    pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, scores, nullptr, nullptr, row, 2);
    pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, scores, nullptr, nullptr, col, 3);
    cudnnBackendDescriptor_t keep = virt(CUDNN_DATA_BOOLEAN, dims);
    pointwise(CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, nullptr, keep);
    cudnnBackendDescriptor_t masked = virt(CUDNN_DATA_FLOAT, dims);
    pointwise(CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, scores, mask_value, keep, masked);
    return masked;
  }

  // The operation graph of every operation added, finalized (the builder keeps it).
  cudnnBackendDescriptor_t graph() {
    Desc& g = own(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR,
                  "cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR)");
    FABRIC_SET_ATTR(g.get(), CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    static_cast<int64_t>(ops_.size()), ops_.data());
    // No handle: a graph checked against a device profile (cudnn_attention_engines_for).
    if (handle_)
      FABRIC_SET_ATTR(g.get(), CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle_);
    finalize(g.get(), "cudnnBackendFinalize(operation graph)");
    return g.get();
  }

  Desc& own(cudnnBackendDescriptorType_t type, const char* call) {
    owned_.push_back(std::make_unique<Desc>(type, call));
    return *owned_.back();
  }

 private:
  cudnnHandle_t handle_;
  int64_t next_virtual_ = kFirstVirtual;
  std::vector<cudnnBackendDescriptor_t> ops_;
  std::vector<std::unique_ptr<Desc>> owned_;
};

// ---- problems, plans, the cache -----------------------------------------------------------------

enum class Pass : int64_t { forward = 0, backward = 1 };

// One operand's (batch, head, row) element strides, those of size-1 dims replaced by the packed
// value (any stride addresses a size-1 dim; cuDNN should not decline over one).
struct Strides3 {
  int64_t b, h, r;
};

struct Problem {
  Pass pass;
  int device;
  DType dtype;
  bool causal;
  int64_t b, h, L, S, E;  // E == Ev
  Strides3 q, k, v;
};

Strides3 canonical(const AttentionOperand& o, int64_t batch, int64_t heads, int64_t rows,
                   int64_t cols) {
  Strides3 s{o.batch_stride, o.head_stride, o.row_stride};
  if (rows == 1) s.r = cols;
  if (heads == 1) s.h = rows * s.r;
  if (batch == 1) s.b = std::max(heads * s.h, rows * s.r);  // outermost, as a layout has it
  return s;
}

using Key = std::array<int64_t, 18>;

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;
    for (int64_t x : k) {
      h = (h ^ static_cast<uint64_t>(x)) * 1099511628211ull;
      h ^= h >> 29;
    }
    return h;
  }
};

Key key_of(const Problem& p) {
  return {static_cast<int64_t>(p.pass),
          p.device,
          static_cast<int64_t>(p.dtype),
          p.causal,
          p.b,
          p.h,
          p.L,
          p.S,
          p.E,
          p.q.b,
          p.q.h,
          p.q.r,
          p.k.b,
          p.k.h,
          p.k.r,
          p.v.b,
          p.v.h,
          p.v.r};
}

struct Plan {
  std::unique_ptr<GraphBuilder> graph;  // the descriptors the plan was built from
  std::vector<std::unique_ptr<Desc>> configs;
  std::unique_ptr<Desc> plan;
  int64_t workspace = 0;  // cuDNN's own, before ours (backward: dQ accumulator, softmax_sum)
  std::string declined;   // non-empty: no plan, and why
};

int64_t align_up(int64_t n) { return (n + 255) / 256 * 256; }

// The backward's workspace tensors after cuDNN's: (offset of dQacc, of softmax_sum, total).
struct BackwardWorkspace {
  int64_t dq_accum, softmax_sum, total;
};
BackwardWorkspace backward_workspace(const Problem& p, int64_t cudnn_bytes) {
  const int64_t rows = p.b * p.h * p.L;
  BackwardWorkspace w;
  w.dq_accum = align_up(cudnn_bytes);
  w.softmax_sum = w.dq_accum + align_up(rows * p.E * static_cast<int64_t>(sizeof(float)));
  w.total = w.softmax_sum + align_up(rows * static_cast<int64_t>(sizeof(float)));
  return w;
}

cudnnDataType_t io_type(DType t) {
  return t == DType::bfloat16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
}

void build_forward_graph(GraphBuilder& g, const Problem& p) {
  const cudnnDataType_t io = io_type(p.dtype);
  const Dims scores{p.b, p.h, p.L, p.S}, rowwise{p.b, p.h, p.L, 1};
  const Dims rowwise_strides{p.h * p.L, p.L, 1, 1};
  auto q = g.tensor(kQ, io, {p.b, p.h, p.L, p.E}, {p.q.b, p.q.h, p.q.r, 1}, false);
  auto kt = g.tensor(kK, io, {p.b, p.h, p.E, p.S}, {p.k.b, p.k.h, 1, p.k.r}, false);
  auto v = g.tensor(kV, io, {p.b, p.h, p.S, p.E}, {p.v.b, p.v.h, p.v.r, 1}, false);
  const Dims out{p.b, p.h, p.L, p.E};
  auto o = g.tensor(kO, io, out, packed_strides(out), false);
  auto stats = g.tensor(kStats, CUDNN_DATA_FLOAT, rowwise, rowwise_strides, false);
  auto scale = g.scalar(kScale);

  auto s = g.virt(CUDNN_DATA_FLOAT, scores);
  g.matmul(q, kt, s);
  auto scaled = g.virt(CUDNN_DATA_FLOAT, scores);
  g.binary(CUDNN_POINTWISE_MUL, s, scale, scaled);
  if (p.causal) scaled = g.causal_mask(scaled, scores, g.scalar(kMaskValue));

  auto max = g.virt(CUDNN_DATA_FLOAT, rowwise, rowwise_strides);
  g.reduction(CUDNN_REDUCE_TENSOR_MAX, scaled, max);
  auto shifted = g.virt(CUDNN_DATA_FLOAT, scores);
  g.binary(CUDNN_POINTWISE_SUB, scaled, max, shifted);
  auto e = g.virt(CUDNN_DATA_FLOAT, scores);
  g.unary(CUDNN_POINTWISE_EXP, shifted, e);
  auto z = g.virt(CUDNN_DATA_FLOAT, rowwise, rowwise_strides);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, e, z);
  auto log_z = g.virt(CUDNN_DATA_FLOAT, rowwise, rowwise_strides);
  g.unary(CUDNN_POINTWISE_LOG, z, log_z);
  g.binary(CUDNN_POINTWISE_ADD, max, log_z, stats);
  auto probs = g.virt(io, scores);  // the second matmul's operand: io type
  g.binary(CUDNN_POINTWISE_DIV, e, z, probs);
  g.matmul(probs, v, o);
}

void build_backward_graph(GraphBuilder& g, const Problem& p) {
  const cudnnDataType_t io = io_type(p.dtype);
  const Dims scores{p.b, p.h, p.L, p.S}, rowwise{p.b, p.h, p.L, 1};
  const Dims rowwise_strides{p.h * p.L, p.L, 1, 1};
  // (b, h, S, L) views of (b, h, L, S) score-shaped tensors: transposed strides.
  const Dims transposed{p.b, p.h, p.S, p.L};
  const Dims transposed_strides{p.h * p.L * p.S, p.L * p.S, 1, p.S};
  const Dims qshape{p.b, p.h, p.L, p.E}, kshape{p.b, p.h, p.S, p.E};

  auto q = g.tensor(kQ, io, qshape, {p.q.b, p.q.h, p.q.r, 1}, false);
  auto kt = g.tensor(kK, io, {p.b, p.h, p.E, p.S}, {p.k.b, p.k.h, 1, p.k.r}, false);
  auto vt = g.tensor(kV, io, {p.b, p.h, p.E, p.S}, {p.v.b, p.v.h, 1, p.v.r}, false);
  auto o = g.tensor(kO, io, qshape, packed_strides(qshape), false);
  auto d_o = g.tensor(kDO, io, qshape, packed_strides(qshape), false);
  auto stats = g.tensor(kStats, CUDNN_DATA_FLOAT, rowwise, rowwise_strides, false);
  auto dq = g.tensor(kDQ, io, qshape, packed_strides(qshape), false);
  auto dk = g.tensor(kDK, io, kshape, packed_strides(kshape), false);
  auto dv = g.tensor(kDV, io, kshape, packed_strides(kshape), false);
  auto scale = g.scalar(kScale);
  auto one = g.scalar(kOne);
  auto softmax_sum = g.tensor(kSoftmaxSum, CUDNN_DATA_FLOAT, rowwise, rowwise_strides, false);
  auto dq_accum = g.tensor(kDQAccum, CUDNN_DATA_FLOAT, qshape, packed_strides(qshape), false);

  // softmax_sum = rowsum(dO * O) * 1
  auto do_o = g.virt(CUDNN_DATA_FLOAT, qshape);
  g.binary(CUDNN_POINTWISE_MUL, d_o, o, do_o);
  auto row_dot = g.virt(CUDNN_DATA_FLOAT, rowwise, rowwise_strides);
  g.reduction(CUDNN_REDUCE_TENSOR_ADD, do_o, row_dot);
  g.binary(CUDNN_POINTWISE_MUL, row_dot, one, softmax_sum);

  // P = exp(scale * Q K^T [masked] - stats)
  auto s = g.virt(CUDNN_DATA_FLOAT, scores);
  g.matmul(q, kt, s);
  auto scaled = g.virt(CUDNN_DATA_FLOAT, scores);
  g.binary(CUDNN_POINTWISE_MUL, s, scale, scaled);
  if (p.causal) scaled = g.causal_mask(scaled, scores, g.scalar(kMaskValue));
  auto shifted = g.virt(CUDNN_DATA_FLOAT, scores);
  g.binary(CUDNN_POINTWISE_SUB, scaled, stats, shifted);
  auto probs = g.virt(CUDNN_DATA_FLOAT, scores);
  g.unary(CUDNN_POINTWISE_EXP, shifted, probs);

  // dV = P^T dO
  auto probs_t = g.virt(io, transposed, transposed_strides);
  g.reshape(probs, probs_t);
  g.matmul(probs_t, d_o, dv);

  // dS = (dO V^T - softmax_sum) * P * scale
  auto dp = g.virt(CUDNN_DATA_FLOAT, scores);
  g.matmul(d_o, vt, dp);
  auto centred = g.virt(CUDNN_DATA_FLOAT, scores);
  g.binary(CUDNN_POINTWISE_SUB, dp, softmax_sum, centred);
  auto weighted = g.virt(CUDNN_DATA_FLOAT, scores);
  g.binary(CUDNN_POINTWISE_MUL, centred, probs, weighted);
  auto ds = g.virt(CUDNN_DATA_FLOAT, scores);
  g.binary(CUDNN_POINTWISE_MUL, weighted, scale, ds);

  // dK = dS^T Q
  auto ds_t = g.virt(io, transposed, transposed_strides);
  g.reshape(ds, ds_t);
  g.matmul(ds_t, q, dk);

  // dQ = dS K, accumulated in float, then converted
  auto k = g.virt(CUDNN_DATA_FLOAT, kshape, {p.k.b, p.k.h, p.k.r, 1});
  g.reshape(kt, k);
  g.matmul(ds, k, dq_accum);
  g.unary(CUDNN_POINTWISE_IDENTITY, dq_accum, dq);
}

// The execution plan of the first engine configuration of `mode` that finalizes within the
// workspace cap, or null (the statuses of the ones that did not, in `why`).
std::unique_ptr<Desc> plan_from_heuristics(cudnnHandle_t handle, cudnnBackendDescriptor_t graph,
                                           cudnnBackendHeurMode_t mode, Plan& out,
                                           std::string& why) {
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR,
            "cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR)");
  FABRIC_SET_ATTR(heur.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                  1, &graph);
  FABRIC_SET_ATTR(heur.get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  finalize(heur.get(), "cudnnBackendFinalize(engine heuristics)");
  int64_t count = 0;
  cudnn_check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
              "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS, count)");
  if (count <= 0) {
    why += cat(mode == CUDNN_HEUR_MODE_A ? "heuristics A" : "fallback heuristics",
               " offer no engine; ");
    return nullptr;
  }
  // The configurations are filled in by cuDNN; the plan keeps the one it was built from alive.
  std::vector<std::unique_ptr<Desc>> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs.push_back(
        std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR,
                               "cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR)"));
    raw.push_back(configs.back()->get());
  }
  int64_t returned = 0;
  cudnn_check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, raw.data()),
              "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS)");
  for (int64_t i = 0; i < returned && i < count; ++i) {
    auto plan = std::make_unique<Desc>(
        CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR,
        "cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR)");
    FABRIC_SET_ATTR(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    FABRIC_SET_ATTR(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw[static_cast<size_t>(i)]);
    const cudnnStatus_t st = cudnnBackendFinalize(plan->get());
    if (st != CUDNN_STATUS_SUCCESS) {  // this engine does not take the graph: try the next
      why += cat("engine config ", i, ": ", cudnnGetErrorString(st), "; ");
      continue;
    }
    int64_t workspace = 0, got = 0;
    cudnn_check(cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                         CUDNN_TYPE_INT64, 1, &got, &workspace),
                "cudnnBackendGetAttribute(CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)");
    if (workspace < 0 || workspace > kMaxWorkspaceBytes) {
      why += cat("engine config ", i, ": workspace ", workspace, " bytes; ");
      continue;
    }
    out.workspace = workspace;
    out.configs = std::move(configs);  // holds raw[i], which the plan refers to
    return plan;
  }
  why += cat(mode == CUDNN_HEUR_MODE_A ? "heuristics A: " : "fallback heuristics: ", returned,
             " of ", count, " engine configs tried, none taken; ");
  return nullptr;
}

std::shared_ptr<Plan> build_plan(cudnnHandle_t handle, const Problem& p) {
  auto plan = std::make_shared<Plan>();
  try {
    plan->graph = std::make_unique<GraphBuilder>(handle);
    if (p.pass == Pass::forward) {
      build_forward_graph(*plan->graph, p);
    } else {
      build_backward_graph(*plan->graph, p);
    }
    cudnnBackendDescriptor_t graph = plan->graph->graph();
    std::string why;
    for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
      try {
        plan->plan = plan_from_heuristics(handle, graph, mode, *plan, why);
      } catch (const Error& e) {  // these heuristics refuse the graph: the next may not
        why += cat(e.what(), "; ");
      }
      if (plan->plan) break;
    }
    if (!plan->plan) plan->declined = "no cuDNN engine takes the graph (" + why + ")";
  } catch (const Error& e) {
    plan->plan.reset();
    plan->declined = cat("building the cuDNN graph failed: ", e.what());
  }
  if (!plan->declined.empty()) {  // keep only the reason
    plan->plan.reset();
    plan->configs.clear();
    plan->graph.reset();
  }
  return plan;
}

std::mutex g_plan_mu;
std::unordered_map<Key, std::shared_ptr<Plan>, KeyHash>& plans() {
  static auto* m = new std::unordered_map<Key, std::shared_ptr<Plan>, KeyHash>();
  return *m;
}

// The cached plan of `p`, built on a miss. The caller holds the device's handle, so one device
// builds once per problem.
std::shared_ptr<Plan> cached_plan(cudnnHandle_t handle, const Problem& p) {
  const Key key = key_of(p);
  {
    std::lock_guard<std::mutex> lock(g_plan_mu);
    auto it = plans().find(key);
    if (it != plans().end()) return it->second;
  }
  std::shared_ptr<Plan> plan = build_plan(handle, p);
  std::lock_guard<std::mutex> lock(g_plan_mu);
  return plans().emplace(key, std::move(plan)).first->second;
}

// ---- statistics ---------------------------------------------------------------------------------

std::atomic<int64_t> g_forward_taken{0}, g_forward_declined{0}, g_backward_taken{0},
    g_backward_declined{0};
std::mutex g_decline_mu;
std::string g_last_decline;

bool decline(Pass pass, const std::string& why) {
  (pass == Pass::forward ? g_forward_declined : g_backward_declined)
      .fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(g_decline_mu);
  g_last_decline = cat(pass == Pass::forward ? "forward" : "backward", ": ", why);
  return false;
}

// ---- what cuDNN is offered ----------------------------------------------------------------------

int64_t runtime_version() {
  static const int64_t v = static_cast<int64_t>(cudnnGetVersion());
  return v;
}

int compute_major(int device) {
  static std::array<std::atomic<int>, kMaxDevices> majors{};
  if (device < 0 || device >= kMaxDevices) return 0;
  int m = majors[static_cast<size_t>(device)].load(std::memory_order_relaxed);
  if (m == 0) {
    FABRIC_CUDA_CHECK(cudaDeviceGetAttribute(&m, cudaDevAttrComputeCapabilityMajor, device));
    majors[static_cast<size_t>(device)].store(m, std::memory_order_relaxed);
  }
  return m;
}

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kAlignment == 0; }
bool aligned(const Strides3& s) { return s.b % 8 == 0 && s.h % 8 == 0 && s.r % 8 == 0; }

// Why cuDNN is not offered `a` at all, or nothing. `device` owns the output.
std::optional<std::string> static_decline(const AttentionArgs& a, Pass pass, int device) {
  if (a.dtype != DType::bfloat16 && a.dtype != DType::float16)
    return cat("dtype ", dtype_name(a.dtype), " (cuDNN's flash attention takes bfloat16, float16)");
  if (a.dropout_p != 0.0) return cat("dropout_p ", a.dropout_p, " (no dropout on this path)");
  if (a.out_strides) return std::string("a strided output");
  if (a.E != a.Ev) return cat("E ", a.E, " != Ev ", a.Ev);
  if (a.E < 8 || a.E % 8 != 0 || a.E > kMaxHead)
    return cat("head size ", a.E, " (a multiple of 8 up to ", kMaxHead, ")");
  if (a.L < 1 || a.S < 1 || a.batch < 1 || a.heads < 1)
    return cat("an empty problem (batch ", a.batch, ", heads ", a.heads, ", L ", a.L, ", S ", a.S,
               ")");
  if (a.L > std::numeric_limits<int32_t>::max() || a.S > std::numeric_limits<int32_t>::max())
    return std::string("L or S past 2^31");
  const int64_t v = runtime_version();
  if (v < 90000) return cat("cuDNN runtime ", v, " (needs 9.0 or newer)");
  // NVIDIA's frontend refuses these releases for fp16/bf16 SDPA (known bugs).
  if (v == 91000 || v == 91001) return cat("cuDNN runtime ", v, " (9.10.0/9.10.1 have SDPA bugs)");
  // Before 9.16 the backward needs a padding-mask workaround for S not a multiple of 128.
  if (pass == Pass::backward && v <= 91500 && a.S % 128 != 0)
    return cat("S ", a.S, " not a multiple of 128 on cuDNN runtime ", v, " (needs 9.15.1+)");
  const int major = compute_major(device);
  if (major < 8) return cat("compute capability ", major, ".x (needs 8.0 or newer)");
  return std::nullopt;
}

Problem problem_of(const AttentionArgs& a, Pass pass, int device) {
  Problem p;
  p.pass = pass;
  p.device = device;
  p.dtype = a.dtype;
  p.causal = a.causal;
  p.b = a.batch, p.h = a.heads, p.L = a.L, p.S = a.S, p.E = a.E;
  p.q = canonical(a.q, a.batch, a.heads, a.L, a.E);
  p.k = canonical(a.k, a.batch, a.heads, a.S, a.E);
  p.v = canonical(a.v, a.batch, a.heads, a.S, a.Ev);
  return p;
}

std::optional<std::string> layout_decline(const Problem& p, const AttentionArgs& a) {
  if (!aligned(a.q.data) || !aligned(a.k.data) || !aligned(a.v.data))
    return std::string("q, k or v not 16-byte aligned");
  if (!aligned(p.q) || !aligned(p.k) || !aligned(p.v))
    return std::string("q, k or v strides not multiples of 8 elements");
  return std::nullopt;
}

// The device's cuDNN handle, or null (the problem declined) when cuDNN cannot make one: a
// broken cuDNN install costs the speed of this path, not the op.
CudnnHandle* usable_handle(int device, Pass pass) {
  try {
    return &cudnn_handle(device, kWhat);
  } catch (const Error& e) {
    decline(pass, cat("no cuDNN handle: ", e.what()));
    return nullptr;
  }
}

// Runs `plan` with the (uid, pointer) pairs and `workspace`, on the handle's stream.
void execute(CudnnHandle& handle, const Plan& plan, const std::vector<int64_t>& uids,
             const std::vector<void*>& pointers, void* workspace) {
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR,
            "cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)");
  FABRIC_SET_ATTR(pack.get(), CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64,
                  static_cast<int64_t>(uids.size()), uids.data());
  FABRIC_SET_ATTR(pack.get(), CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
                  static_cast<int64_t>(pointers.size()), pointers.data());
  FABRIC_SET_ATTR(pack.get(), CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1,
                  &workspace);
  finalize(pack.get(), "cudnnBackendFinalize(variant pack)");
  cudnn_check(cudnnBackendExecute(handle.h, plan.plan->get(), pack.get()),
              "cudnnBackendExecute(scaled_dot_product_attention plan, variant pack)");
}

}  // namespace

bool attention_forward_cudnn(const AttentionArgs& a, void* out, void* lse) {
  const int device = device_of_pointer(out);
  if (auto why = static_decline(a, Pass::forward, device)) return decline(Pass::forward, *why);
  const Problem p = problem_of(a, Pass::forward, device);
  if (auto why = layout_decline(p, a)) return decline(Pass::forward, *why);
  if (!aligned(out) || !aligned(lse)) return decline(Pass::forward, "out or lse not aligned");

  DeviceGuard guard(device);
  CudnnHandle* handle_ptr = usable_handle(device, Pass::forward);
  if (!handle_ptr) return false;
  CudnnHandle& handle = *handle_ptr;
  std::lock_guard<std::mutex> lock(handle.mu);
  const std::shared_ptr<Plan> plan = cached_plan(handle.h, p);
  if (!plan->plan) return decline(Pass::forward, plan->declined);

  // By-value scalars: cuDNN reads them from host memory during the call.
  float scale = static_cast<float>(a.scale);
  float mask_value = std::numeric_limits<float>::lowest();
  std::vector<int64_t> uids{kQ, kK, kV, kO, kStats, kScale};
  std::vector<void*> pointers{const_cast<void*>(a.q.data),
                              const_cast<void*>(a.k.data),
                              const_cast<void*>(a.v.data),
                              out,
                              lse,
                              &scale};
  if (p.causal) {
    uids.push_back(kMaskValue);
    pointers.push_back(&mask_value);
  }
  CudnnWorkspace workspace(device, static_cast<size_t>(plan->workspace));
  execute(handle, *plan, uids, pointers, workspace.get());
  g_forward_taken.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool attention_backward_cudnn(const AttentionBackwardArgs& args) {
  const AttentionArgs& a = args.fwd;
  const int device = device_of_pointer(args.grad_q);
  if (auto why = static_decline(a, Pass::backward, device)) return decline(Pass::backward, *why);
  if (args.grad_out_strides || args.grad_q_strides || args.grad_k_strides || args.grad_v_strides)
    return decline(Pass::backward, "strided grad_out or gradients");
  const Problem p = problem_of(a, Pass::backward, device);
  if (auto why = layout_decline(p, a)) return decline(Pass::backward, *why);
  for (const void* ptr :
       {args.out, args.grad_out, args.lse, static_cast<const void*>(args.grad_q),
        static_cast<const void*>(args.grad_k), static_cast<const void*>(args.grad_v)})
    if (!aligned(ptr)) return decline(Pass::backward, "out, grad_out, lse or a gradient unaligned");

  DeviceGuard guard(device);
  CudnnHandle* handle_ptr = usable_handle(device, Pass::backward);
  if (!handle_ptr) return false;
  CudnnHandle& handle = *handle_ptr;
  std::lock_guard<std::mutex> lock(handle.mu);
  const std::shared_ptr<Plan> plan = cached_plan(handle.h, p);
  if (!plan->plan) return decline(Pass::backward, plan->declined);

  const BackwardWorkspace w = backward_workspace(p, plan->workspace);
  CudnnWorkspace workspace(device, static_cast<size_t>(w.total));
  char* base = static_cast<char*>(workspace.get());
  void* dq_accum = base + w.dq_accum;
  void* softmax_sum = base + w.softmax_sum;
  // cuDNN zeroes the dQ accumulator itself from 9.6 on; before, the caller does.
  if (runtime_version() < 90600)
    FABRIC_CUDA_CHECK(cudaMemsetAsync(dq_accum, 0, static_cast<size_t>(w.softmax_sum - w.dq_accum),
                                      compute_stream(device)));
  float scale = static_cast<float>(a.scale);
  float one = 1.0f;
  float mask_value = std::numeric_limits<float>::lowest();
  std::vector<int64_t> uids{kQ,  kK,  kV,     kO,   kStats,   kDO,        kDQ,
                            kDK, kDV, kScale, kOne, kDQAccum, kSoftmaxSum};
  std::vector<void*> pointers{const_cast<void*>(a.q.data),
                              const_cast<void*>(a.k.data),
                              const_cast<void*>(a.v.data),
                              const_cast<void*>(args.out),
                              const_cast<void*>(args.lse),
                              const_cast<void*>(args.grad_out),
                              args.grad_q,
                              args.grad_k,
                              args.grad_v,
                              &scale,
                              &one,
                              dq_accum,
                              softmax_sum};
  if (p.causal) {
    uids.push_back(kMaskValue);
    pointers.push_back(&mask_value);
  }
  execute(handle, *plan, uids, pointers, base);
  g_backward_taken.fetch_add(1, std::memory_order_relaxed);
  return true;
}

int64_t cudnn_runtime_version() { return runtime_version(); }

int64_t cudnn_attention_engines_for(const AttentionArgs& a, bool backward,
                                    const std::string& device_json) {
  const Pass pass = backward ? Pass::backward : Pass::forward;
  FABRIC_CHECK(a.dtype == DType::bfloat16 || a.dtype == DType::float16, DTypeError, kWhat,
               ": engines_for takes bfloat16 or float16, got ", dtype_name(a.dtype));
  FABRIC_CHECK(a.E == a.Ev, ValueError, kWhat, ": engines_for needs E == Ev, got ", a.E, ", ",
               a.Ev);
  Desc prop(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR,
            "cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR)");
  FABRIC_SET_ATTR(prop.get(), CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
                  static_cast<int64_t>(device_json.size()), device_json.data());
  finalize(prop.get(), "cudnnBackendFinalize(device properties)");
  GraphBuilder g(nullptr);
  const Problem p = problem_of(a, pass, 0);
  if (backward) {
    build_backward_graph(g, p);
  } else {
    build_forward_graph(g, p);
  }
  cudnnBackendDescriptor_t graph = g.graph();
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR,
            "cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR)");
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  cudnnBackendDescriptor_t prop_desc = prop.get();
  FABRIC_SET_ATTR(heur.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                  1, &graph);
  FABRIC_SET_ATTR(heur.get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  FABRIC_SET_ATTR(heur.get(), CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &prop_desc);
  finalize(heur.get(), "cudnnBackendFinalize(engine heuristics)");
  // The count query can exceed what the results query then returns (configurations of engines
  // that turn the graph down are left out): only the second is an answer.
  int64_t count = 0;
  cudnn_check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
              "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS, count)");
  if (count <= 0) return 0;
  std::vector<std::unique_ptr<Desc>> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs.push_back(
        std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR,
                               "cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR)"));
    raw.push_back(configs.back()->get());
  }
  int64_t returned = 0;
  cudnn_check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, raw.data()),
              "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS)");
  return returned;
}

CudnnAttentionStats cudnn_attention_stats() {
  CudnnAttentionStats s;
  s.forward_taken = g_forward_taken.load(std::memory_order_relaxed);
  s.forward_declined = g_forward_declined.load(std::memory_order_relaxed);
  s.backward_taken = g_backward_taken.load(std::memory_order_relaxed);
  s.backward_declined = g_backward_declined.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(g_decline_mu);
  s.last_decline = g_last_decline;
  return s;
}

}  // namespace fabric::cuda
