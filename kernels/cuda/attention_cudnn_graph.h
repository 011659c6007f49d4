// The operation graphs of cuDNN's fused flash attention (attention_cudnn.cpp runs them): owned
// backend descriptors, a builder that makes the tensors and operations of one graph, and the
// forward and backward graphs of a problem, as NVIDIA's frontend (cudnn-frontend 1.x, composite
// SDPA nodes) spells them so that cuDNN's heuristics match them to its flash-attention engines:
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
// stays float as the frontend leaves it). Every cuDNN call is checked (a DeviceError naming it).
// Included only by CUDA sources (it includes cudnn.h).
#pragma once
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <memory>
#include <source_location>
#include <vector>

#include "kernels/cuda/cudnn_common.h"
#include "tensor/dtype.h"

namespace fabric::cuda::sdpa {

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
              std::source_location at = std::source_location::current());
#define FABRIC_SET_ATTR(d, name, type, count, values)          \
  ::fabric::cuda::sdpa::set_attr(d, name, type, count, values, \
                                 FABRIC_CUDNN_ATTR_CALL("cudnnBackendSetAttribute", name))

void finalize(cudnnBackendDescriptor_t d, const char* what,
              std::source_location at = std::source_location::current());

using Dims = std::array<int64_t, 4>;

inline Dims packed_strides(const Dims& dims) {
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
                                  const Dims& strides, bool is_virtual, bool by_value = false);
  cudnnBackendDescriptor_t virt(cudnnDataType_t dt, const Dims& dims);
  cudnnBackendDescriptor_t virt(cudnnDataType_t dt, const Dims& dims, const Dims& strides);
  // A by-value float scalar (its value is passed by host pointer at each run).
  cudnnBackendDescriptor_t scalar(int64_t uid);
  // y = mode(x[, b[, t]]) computed in `prec`; `axis` for GEN_INDEX.
  void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t prec, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                 int64_t axis = -1);
  void unary(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y);
  void binary(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
              cudnnBackendDescriptor_t y);
  // c = a @ b (batched over the first two dims), float accumulation.
  void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c);
  // y = reduce(x) over the dims where y has size 1, in float.
  void reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t y);
  // y = x seen with y's dims and strides (a transpose, for the backward's matmuls).
  void reshape(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y);
  // scores = keep(row >= col) ? scores : lowest float (torch's is_causal: top-left aligned).
  cudnnBackendDescriptor_t causal_mask(cudnnBackendDescriptor_t scores, const Dims& dims,
                                       cudnnBackendDescriptor_t mask_value);
  // The operation graph of every operation added, finalized (the builder keeps it).
  cudnnBackendDescriptor_t graph();
  Desc& own(cudnnBackendDescriptorType_t type, const char* call);

 private:
  cudnnHandle_t handle_;
  int64_t next_virtual_ = kFirstVirtual;
  std::vector<cudnnBackendDescriptor_t> ops_;
  std::vector<std::unique_ptr<Desc>> owned_;
};

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
  // Where out lies (both passes), and grad_out and the gradients (the backward's; the forward
  // leaves them packed): GPT's out lies as (b, L, h, E) and its gradients as pieces of one
  // (b, L, 3 h E) buffer, so that the op needs no copies around the attention.
  Strides3 o, d_o, dq, dk, dv;
};

// The operation graph of `p` (forward or backward by p.pass) in `g`.
void build_forward_graph(GraphBuilder& g, const Problem& p);
void build_backward_graph(GraphBuilder& g, const Problem& p);

// The engine configurations that finalized heuristics `heur` offer, in its order (configurations
// of engines that turn the graph down are left out, so there may be fewer than the count query
// said).
std::vector<std::unique_ptr<Desc>> heuristic_configs(cudnnBackendDescriptor_t heur);

}  // namespace fabric::cuda::sdpa
