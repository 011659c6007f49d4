// The fused embedding_bag forward's and weight gradient's stubs and their op-layer entries
// (embedding_bag_kernels.h).
#include "tensor/embedding_bag_kernels.h"

#include "tensor/factory.h"

namespace fabric {

FABRIC_DEFINE_STUB(embedding_bag_stub, EmbeddingBagFn);

namespace {

// The dtypes the kernels reduce; others are left to the caller's composition.
bool reducible(DType t) {
  return t == DType::float32 || t == DType::float64 || t == DType::bfloat16 || t == DType::float16;
}

void set_lookups(EmbeddingBagLookups& d, int64_t num_embeddings, int64_t dim, DType dtype,
                 const Tensor& indices, const std::vector<int64_t>& bag_begin, int64_t padding_idx,
                 const Tensor& per_sample_weights, EmbeddingBagMode mode) {
  d.num_embeddings = num_embeddings;
  d.dim = dim;
  d.dtype = dtype;
  d.indices = indices.data_ptr();
  d.index_dtype = indices.dtype();
  d.bag_begin = bag_begin.data();
  d.bags = static_cast<int64_t>(bag_begin.size()) - 1;
  d.padding_idx = padding_idx;
  d.per_sample_weights = per_sample_weights.defined() ? per_sample_weights.data_ptr() : nullptr;
  d.mode = mode;
}

}  // namespace
FABRIC_DEFINE_STUB(embedding_bag_backward_stub, EmbeddingBagBackwardFn);

bool embedding_bag_available(Device device) { return embedding_bag_stub.find(device) != nullptr; }

EmbeddingBagFused embedding_bag_fused(const Tensor& weight, const Tensor& indices,
                                      const std::vector<int64_t>& bag_begin, EmbeddingBagMode mode,
                                      const Tensor& per_sample_weights, int64_t padding_idx,
                                      bool want_argmax) {
  EmbeddingBagFused r;
  const Device device = weight.device();
  const EmbeddingBagFn kernel = embedding_bag_stub.find(device);
  const DType t = weight.dtype();
  // A per_sample_weights of another dtype would promote in the composition: leave it to that.
  if (!kernel || !reducible(t) || (per_sample_weights.defined() && per_sample_weights.dtype() != t))
    return r;
  const int64_t bags = static_cast<int64_t>(bag_begin.size()) - 1, dim = weight.size(1);
  // Rows are read in place when their elements are adjacent (a slice of a table needs no copy).
  const Tensor w = (weight.stride(1) == 1 || dim <= 1) ? weight : weight.detach().contiguous();
  const Tensor psw =
      per_sample_weights.defined() ? per_sample_weights.detach().contiguous() : Tensor();
  r.out = empty({bags, dim}, {.dtype = t, .device = device});
  if (want_argmax && mode == EmbeddingBagMode::max)
    r.argmax = empty({bags, dim}, {.dtype = DType::int64, .device = device});
  r.bag_size = empty({bags}, {.dtype = DType::int64, .device = device});
  if (bags == 0) return r;
  EmbeddingBagDesc d;
  d.weight = w.data_ptr();
  d.weight_stride0 = w.stride(0);
  set_lookups(d, w.size(0), dim, t, indices, bag_begin, padding_idx, psw, mode);
  d.out = r.out.data_ptr();
  d.argmax = r.argmax.defined() ? r.argmax.data<int64_t>() : nullptr;
  d.bag_size = r.bag_size.data<int64_t>();
  kernel(d);
  return r;
}

Tensor embedding_bag_backward_fused(const Tensor& grad_out, const Tensor& indices,
                                    const std::vector<int64_t>& bag_begin, int64_t num_embeddings,
                                    EmbeddingBagMode mode, const Tensor& per_sample_weights,
                                    int64_t padding_idx) {
  const Device device = grad_out.device();
  const EmbeddingBagBackwardFn kernel = embedding_bag_backward_stub.find(device);
  const DType t = grad_out.dtype();
  if (!kernel || !reducible(t) || mode == EmbeddingBagMode::max || grad_out.dim() != 2 ||
      indices.device() != device ||
      (per_sample_weights.defined() &&
       (per_sample_weights.dtype() != t || per_sample_weights.device() != device)))
    return Tensor();
  const int64_t dim = grad_out.size(1);
  const Tensor g = grad_out.detach().contiguous();
  const Tensor idx = indices.detach().contiguous();
  const Tensor psw =
      per_sample_weights.defined() ? per_sample_weights.detach().contiguous() : Tensor();
  // Written whole by the kernel (zeros first), so not zeroed here.
  Tensor grad_weight = empty({num_embeddings, dim}, {.dtype = t, .device = device});
  EmbeddingBagBackwardDesc d;
  d.grad_out = g.data_ptr();
  set_lookups(d, num_embeddings, dim, t, idx, bag_begin, padding_idx, psw, mode);
  d.grad_weight = grad_weight.data_ptr();
  if (grad_weight.numel() > 0) kernel(d);
  return grad_weight;
}

}  // namespace fabric
