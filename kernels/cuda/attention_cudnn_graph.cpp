// The graph builder and the SDPA graphs of kernels/cuda/attention_cudnn_graph.h.
#include "kernels/cuda/attention_cudnn_graph.h"

#include <algorithm>

namespace fabric::cuda::sdpa {

void set_attr(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name,
              cudnnBackendAttributeType_t type, int64_t count, const void* values, const char* call,
              std::source_location at) {
  cudnn_check(cudnnBackendSetAttribute(d, name, type, count, values), call, at);
}

void finalize(cudnnBackendDescriptor_t d, const char* what, std::source_location at) {
  cudnn_check(cudnnBackendFinalize(d), what, at);
}

cudnnBackendDescriptor_t GraphBuilder::tensor(int64_t uid, cudnnDataType_t dt, const Dims& dims,
                                              const Dims& strides, bool is_virtual, bool by_value) {
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

cudnnBackendDescriptor_t GraphBuilder::virt(cudnnDataType_t dt, const Dims& dims) {
  return tensor(0, dt, dims, packed_strides(dims), true);
}

cudnnBackendDescriptor_t GraphBuilder::virt(cudnnDataType_t dt, const Dims& dims,
                                            const Dims& strides) {
  return tensor(0, dt, dims, strides, true);
}

cudnnBackendDescriptor_t GraphBuilder::scalar(int64_t uid) {
  const Dims one{1, 1, 1, 1};
  return tensor(uid, CUDNN_DATA_FLOAT, one, one, false, true);
}

void GraphBuilder::pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t prec,
                             cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                             cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y, int64_t axis) {
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
  FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &x);
  if (b)
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    1, &b);
  if (t)
    FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    1, &t);
  FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &y);
  finalize(op.get(), "cudnnBackendFinalize(pointwise operation)");
  ops_.push_back(op.get());
}

void GraphBuilder::unary(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                         cudnnBackendDescriptor_t y) {
  pointwise(mode, CUDNN_DATA_FLOAT, x, nullptr, nullptr, y);
}

void GraphBuilder::binary(cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                          cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t y) {
  pointwise(mode, CUDNN_DATA_FLOAT, x, b, nullptr, y);
}

void GraphBuilder::matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                          cudnnBackendDescriptor_t c) {
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

void GraphBuilder::reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x,
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
  FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &x);
  FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &y);
  FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &redd);
  finalize(op.get(), "cudnnBackendFinalize(reduction operation)");
  ops_.push_back(op.get());
}

void GraphBuilder::reshape(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
  Desc& op = own(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR,
                 "cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR)");
  FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &x);
  FABRIC_SET_ATTR(op.get(), CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &y);
  finalize(op.get(), "cudnnBackendFinalize(reshape operation)");
  ops_.push_back(op.get());
}

cudnnBackendDescriptor_t GraphBuilder::causal_mask(cudnnBackendDescriptor_t scores,
                                                   const Dims& dims,
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

cudnnBackendDescriptor_t GraphBuilder::graph() {
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

Desc& GraphBuilder::own(cudnnBackendDescriptorType_t type, const char* call) {
  owned_.push_back(std::make_unique<Desc>(type, call));
  return *owned_.back();
}

namespace {

cudnnDataType_t io_type(DType t) {
  return t == DType::bfloat16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
}

// The strides of a (b, h, rows, E) tensor whose last dim is contiguous.
Dims dims_of(const Strides3& s) { return {s.b, s.h, s.r, 1}; }

}  // namespace

void build_forward_graph(GraphBuilder& g, const Problem& p) {
  const cudnnDataType_t io = io_type(p.dtype);
  const Dims scores{p.b, p.h, p.L, p.S}, rowwise{p.b, p.h, p.L, 1};
  const Dims rowwise_strides{p.h * p.L, p.L, 1, 1};
  auto q = g.tensor(kQ, io, {p.b, p.h, p.L, p.E}, {p.q.b, p.q.h, p.q.r, 1}, false);
  auto kt = g.tensor(kK, io, {p.b, p.h, p.E, p.S}, {p.k.b, p.k.h, 1, p.k.r}, false);
  auto v = g.tensor(kV, io, {p.b, p.h, p.S, p.E}, {p.v.b, p.v.h, p.v.r, 1}, false);
  const Dims out{p.b, p.h, p.L, p.E};
  auto o = g.tensor(kO, io, out, dims_of(p.o), false);
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
  auto o = g.tensor(kO, io, qshape, dims_of(p.o), false);
  auto d_o = g.tensor(kDO, io, qshape, dims_of(p.d_o), false);
  auto stats = g.tensor(kStats, CUDNN_DATA_FLOAT, rowwise, rowwise_strides, false);
  auto dq = g.tensor(kDQ, io, qshape, dims_of(p.dq), false);
  auto dk = g.tensor(kDK, io, kshape, dims_of(p.dk), false);
  auto dv = g.tensor(kDV, io, kshape, dims_of(p.dv), false);
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

std::vector<std::unique_ptr<Desc>> heuristic_configs(cudnnBackendDescriptor_t heur) {
  int64_t count = 0;
  cudnn_check(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
              "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS, count)");
  if (count <= 0) return {};
  // cuDNN fills in descriptors the caller created.
  std::vector<std::unique_ptr<Desc>> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs.push_back(
        std::make_unique<Desc>(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR,
                               "cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR)"));
    raw.push_back(configs.back()->get());
  }
  int64_t returned = 0;
  cudnn_check(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, raw.data()),
              "cudnnBackendGetAttribute(CUDNN_ATTR_ENGINEHEUR_RESULTS)");
  configs.resize(static_cast<size_t>(std::clamp<int64_t>(returned, 0, count)));
  return configs;
}

}  // namespace fabric::cuda::sdpa
