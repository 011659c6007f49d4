// The fused embedding_bag forward (torch's _embedding_bag_forward_only / _embedding_bag): each
// bag's rows of the table read and reduced in place, never gathered into a (lookups, dim) tensor;
// and the weight gradient of sum/mean, each lookup's bag gradient added straight into its row.
// The stub takes value types only; embedding_bag_fused() is the op-layer entry that checks
// nothing torch's nn layer has not checked already and records nothing (nn::embedding_bag
// builds the autograd node). Devices without the kernel get an undefined result, and the caller
// falls back to its composition of indexing ops.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/dispatch_stub.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace fabric {

enum class EmbeddingBagMode : int8_t { sum, mean, max };

// What the forward and backward kernels share: the lookups, their bags and the table's shape.
// Bag b is lookups [bag_begin[b], bag_begin[b + 1]); indices (int64 or int32) lie in
// [0, num_embeddings) (the op checked them); entries equal to padding_idx (< 0: none) are left
// out; per_sample_weights (sum only, the table's dtype, one per index) scale the rows.
struct EmbeddingBagLookups {
  int64_t num_embeddings = 0, dim = 0;
  DType dtype = DType::float32;
  const void* indices = nullptr;
  DType index_dtype = DType::int64;
  const int64_t* bag_begin = nullptr;  // bags + 1 entries
  int64_t bags = 0;
  int64_t padding_idx = -1;
  const void* per_sample_weights = nullptr;
  EmbeddingBagMode mode = EmbeddingBagMode::mean;
};

// out (bags, dim), contiguous <- per bag b the reduction of weight[indices[i], :] over
// i in [bag_begin[b], bag_begin[b + 1]), leaving out the entries equal to padding_idx (< 0: none).
// weight rows are contiguous, stepping by weight_stride0 elements; indices (int64 or int32) lie
// in [0, num_embeddings) (the op checked them). per_sample_weights (sum only, weight's dtype, one
// per index) scale the rows. mean divides by the bag's kept count; an empty bag gives zeros.
// max writes the first index of each element's maximum into argmax (bags, dim) when argmax is set
// (-1 in an empty bag). bag_size, when set, gets each bag's kept count. Float32, float64,
// bfloat16 and float16 (the 16-bit dtypes accumulate in float32 and round once).
struct EmbeddingBagDesc : EmbeddingBagLookups {
  const void* weight = nullptr;
  int64_t weight_stride0 = 0;
  void* out = nullptr;
  int64_t* argmax = nullptr;
  int64_t* bag_size = nullptr;
};
using EmbeddingBagFn = void (*)(const EmbeddingBagDesc& d);
FABRIC_DECLARE_STUB(embedding_bag_stub, EmbeddingBagFn);

// Whether `device` has the fused kernel (the caller then lays out the indices for it).
bool embedding_bag_available(Device device);

struct EmbeddingBagFused {
  Tensor out;       // (bags, dim), weight's dtype; undefined: no fused kernel on weight's device
  Tensor argmax;    // (bags, dim) int64 (max with want_argmax), -1 in empty bags
  Tensor bag_size;  // (bags) int64 kept counts (with want_argmax or for mean/sum alike)
};

// The fused forward on weight's device, or an undefined out where that device has no kernel or
// the dtype is not one the kernel reduces. indices: 1-D contiguous int64/int32 on weight's device,
// every entry in [0, weight.size(0)); bag_begin (bags + 1) as the layout above; per_sample_weights
// undefined or of indices' length. Nothing is recorded for autograd.
EmbeddingBagFused embedding_bag_fused(const Tensor& weight, const Tensor& indices,
                                      const std::vector<int64_t>& bag_begin, EmbeddingBagMode mode,
                                      const Tensor& per_sample_weights, int64_t padding_idx,
                                      bool want_argmax);

// The weight gradient of sum/mean (torch's _embedding_bag_dense_backward), the same bits as
// index_add(zeros(num, dim), 0, rows, g[bag] / count * per_sample_weights): grad_weight
// (num_embeddings, dim), contiguous <- zeros, then for every kept lookup i in index order (padding
// left out, as in the forward) row indices[i] += g[bag of i] (bags, dim, contiguous) divided by
// the bag's kept count as the dtype holds it (mean), times per_sample_weights[i] (sum), each
// product rounded to the dtype as the composed ops' intermediates are. The 16-bit dtypes
// accumulate in float32 and round once, as index_add. Rows add in index order whatever the
// thread count.
struct EmbeddingBagBackwardDesc : EmbeddingBagLookups {  // mode sum or mean
  const void* grad_out = nullptr;
  void* grad_weight = nullptr;
};
using EmbeddingBagBackwardFn = void (*)(const EmbeddingBagBackwardDesc& d);
FABRIC_DECLARE_STUB(embedding_bag_backward_stub, EmbeddingBagBackwardFn);

// The weight gradient above on grad_out's device, or undefined where that device has no kernel,
// the mode is max, or the dtypes differ from grad_out's (the caller then composes it). grad_out
// (bags, dim); indices and bag_begin as embedding_bag_fused's. Nothing is recorded for autograd.
Tensor embedding_bag_backward_fused(const Tensor& grad_out, const Tensor& indices,
                                    const std::vector<int64_t>& bag_begin, int64_t num_embeddings,
                                    EmbeddingBagMode mode, const Tensor& per_sample_weights,
                                    int64_t padding_idx);

}  // namespace fabric
