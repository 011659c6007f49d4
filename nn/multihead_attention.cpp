// MultiheadAttention: torch 1.13's multi_head_attention_forward composed of existing ops.
#include "nn/multihead_attention.h"

#include <cmath>
#include <limits>

#include "nn/init.h"
#include "nn/recurrent_cells.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// A mask as torch adds it to the scores: bool (true = may not attend) becomes 0 / -inf, a floating
// mask is taken as is; both in the scores' dtype, as torch's zeros_like(dtype=q.dtype).
Tensor additive(const Tensor& mask, DType dtype) {
  if (mask.dtype() == DType::bool_)
    return masked_fill(zeros(mask.sizes(), {.dtype = dtype, .device = mask.device()}), mask,
                       kNegInf);
  return mask.to(dtype);
}

void check_mask_dtype(const Tensor& mask, const char* what) {
  FABRIC_CHECK(mask.dtype() == DType::bool_ || mask.is_floating_point(), DTypeError,
               "MultiheadAttention: ", what, " must be bool or floating, got ",
               dtype_name(mask.dtype()));
}

}  // namespace

MultiheadAttention::MultiheadAttention(const MultiheadAttentionOptions& o) : options_(o) {
  FABRIC_CHECK(o.embed_dim > 0 && o.num_heads > 0, ValueError,
               "MultiheadAttention: embed_dim and num_heads must be positive, got embed_dim=",
               o.embed_dim, ", num_heads=", o.num_heads);
  FABRIC_CHECK(o.embed_dim % o.num_heads == 0, ValueError, "MultiheadAttention: embed_dim (",
               o.embed_dim, ") must be divisible by num_heads (", o.num_heads, ")");
  FABRIC_CHECK(o.dropout >= 0.0 && o.dropout <= 1.0, ValueError,
               "MultiheadAttention: dropout must be in [0, 1], got ", o.dropout);
  const int64_t E = o.embed_dim;
  // torch's registration order, which is the state_dict order.
  in_proj_weight = register_parameter("in_proj_weight", empty({3 * E, E}));
  if (o.bias) in_proj_bias = register_parameter("in_proj_bias", empty({3 * E}));
  out_proj = register_module<NonDynamicallyQuantizableLinear>(
      "out_proj", {.in_features = E, .out_features = E, .bias = o.bias});
  // out_proj drew its Linear init on construction, as torch's does; the rest is reset here.
  init::xavier_uniform_(in_proj_weight);
  if (o.bias) {
    init::zeros_(in_proj_bias);
    init::zeros_(out_proj->bias);
  }
}

void MultiheadAttention::reset_parameters(Generator* gen) {
  if (out_proj) out_proj->reset_parameters(gen);
  init::xavier_uniform_(in_proj_weight, 1.0, gen);
  if (in_proj_bias.defined()) init::zeros_(in_proj_bias);
  if (out_proj && out_proj->bias.defined()) init::zeros_(out_proj->bias);
}

void MultiheadAttention::child_replaced(const std::string& name,
                                        const std::shared_ptr<Module>& now) {
  if (name == "out_proj") out_proj = std::dynamic_pointer_cast<Linear>(now);
}

Tensor MultiheadAttention::forward(const Tensor& x) {
  return forward(x, x, x, Tensor(), /*need_weights=*/false).first;
}

std::pair<Tensor, Tensor> MultiheadAttention::operator()(const Tensor& query, const Tensor& key,
                                                         const Tensor& value,
                                                         const Tensor& key_padding_mask,
                                                         bool need_weights, const Tensor& attn_mask,
                                                         bool average_attn_weights) {
  // Each distinct tensor is one input: forward's self-attention test (query is key is value)
  // still holds on the inputs the hooks hand on, and a pre-hook's query reaches key and value
  // where they were query.
  std::vector<Tensor> inputs{query};
  const size_t k = key.is_same(query) ? 0 : (inputs.push_back(key), inputs.size() - 1);
  const size_t v = value.is_same(query) ? 0
                   : value.is_same(key) ? k
                                        : (inputs.push_back(value), inputs.size() - 1);
  const size_t masks = inputs.size();
  inputs.push_back(key_padding_mask);
  inputs.push_back(attn_mask);
  const std::vector<Tensor> out = call_forward_outputs(
      std::move(inputs), [self = this, k, v, masks, need_weights,
                          average_attn_weights](const std::vector<Tensor>& in) {
        auto [y, weights] = self->forward(in[0], in[k], in[v], in[masks], need_weights,
                                          in[masks + 1], average_attn_weights);
        return std::vector<Tensor>{y, weights};
      });
  return {out[0], out[1]};
}

std::pair<Tensor, Tensor> MultiheadAttention::forward(const Tensor& query, const Tensor& key,
                                                      const Tensor& value,
                                                      const Tensor& key_padding_mask,
                                                      bool need_weights, const Tensor& attn_mask,
                                                      bool average_attn_weights) {
  const int64_t E = options_.embed_dim, nh = options_.num_heads, hd = E / nh;
  // ---- the argument checks of torch's _mha_shape_check and multi_head_attention_forward -----
  FABRIC_CHECK(query.defined() && key.defined() && value.defined(), ValueError,
               "MultiheadAttention: query, key and value must all be given, got an undefined ",
               !query.defined() ? "query"
               : !key.defined() ? "key"
                                : "value");
  FABRIC_CHECK(query.dim() == 2 || query.dim() == 3, ShapeError,
               "MultiheadAttention: query must be unbatched (L, E) or batched 3-D, got ",
               shape_str(query.sizes()));
  const bool batched = query.dim() == 3;
  // In its own name and shapes (the projections would name linear and a reshaped input).
  for (const auto& [t, name] :
       {std::pair{&query, "query"}, std::pair{&key, "key"}, std::pair{&value, "value"}})
    FABRIC_CHECK(is_floating(t->dtype()) && !is_fp8(t->dtype()), DTypeError,
                 "MultiheadAttention: ", name,
                 " must be float64, float32, float16 or bfloat16, got ", dtype_name(t->dtype()),
                 " of shape ", shape_str(t->sizes()));
  FABRIC_CHECK(key.dim() == query.dim() && value.dim() == query.dim(), ShapeError,
               "MultiheadAttention: for a ", query.dim(), "-D query, key and value must be ",
               query.dim(), "-D too, got key ", shape_str(key.sizes()), " and value ",
               shape_str(value.sizes()));
  FABRIC_CHECK(key.sizes() == value.sizes(), ShapeError, "MultiheadAttention: key shape ",
               shape_str(key.sizes()), " does not match value shape ", shape_str(value.sizes()));
  if (key_padding_mask.defined()) {
    check_mask_dtype(key_padding_mask, "key_padding_mask");
    FABRIC_CHECK(key_padding_mask.dim() == (batched ? 2 : 1), ShapeError,
                 "MultiheadAttention: for a ", batched ? "batched (3-D)" : "unbatched (2-D)",
                 " query, key_padding_mask must be ", batched ? "2-D (N, S)" : "1-D (S)", ", got ",
                 shape_str(key_padding_mask.sizes()));
  }
  Tensor mask = attn_mask;
  if (mask.defined()) {
    if (mask.dtype() == DType::uint8) mask = ne(mask, Scalar(0));  // torch's deprecated bytes
    check_mask_dtype(mask, "attn_mask");
    FABRIC_CHECK(mask.dim() == 2 || mask.dim() == 3, ShapeError,
                 "MultiheadAttention: attn_mask must be 2-D (L, S) or 3-D (N * num_heads, L, S), "
                 "got ",
                 shape_str(mask.sizes()));
  }

  // Work in torch's (L, N, E) layout; an unbatched input is a batch of one.
  Tensor q = query, k = key, v = value, kpm = key_padding_mask;
  if (!batched) {
    q = q.unsqueeze(1), k = k.unsqueeze(1), v = v.unsqueeze(1);
    if (kpm.defined()) kpm = kpm.unsqueeze(0);
  } else if (options_.batch_first) {
    q = q.transpose(0, 1), k = k.transpose(0, 1), v = v.transpose(0, 1);
  }
  const int64_t L = q.size(0), N = q.size(1), S = k.size(0);
  FABRIC_CHECK(q.size(2) == E && k.size(2) == E, ShapeError,
               "MultiheadAttention: expected embedding dimension ", E, ", got query ",
               shape_str(query.sizes()), " and key ", shape_str(key.sizes()));
  FABRIC_CHECK(k.size(1) == N, ShapeError, "MultiheadAttention: query ", shape_str(query.sizes()),
               " and key ", shape_str(key.sizes()), " have different batch sizes");
  if (mask.defined()) {
    const Shape want = mask.dim() == 2 ? Shape{L, S} : Shape{N * nh, L, S};
    FABRIC_CHECK(mask.sizes() == want, ShapeError, "MultiheadAttention: the shape of the ",
                 mask.dim(), "-D attn_mask is ", shape_str(mask.sizes()), ", but should be ",
                 shape_str(want));
  }
  if (kpm.defined())
    FABRIC_CHECK(kpm.sizes() == (Shape{N, S}), ShapeError,
                 "MultiheadAttention: expected key_padding_mask of shape ", shape_str(Shape{N, S}),
                 ", got ", shape_str(key_padding_mask.sizes()));

  // ---- packed input projection: one GEMM for self-attention, slices of it otherwise ---------
  // Pieces by one split each, not three narrows: a split's backward is one cat of the pieces'
  // gradients, three narrows' a zero-filled full-size buffer each, summed.
  Tensor qp, kp, vp;  // (L or S, N, E)
  if (query.is_same(key) && key.is_same(value)) {
    Tensor qkv = linear(q, in_proj_weight, in_proj_bias);  // (L, N, 3E)
    const std::vector<Tensor> parts = split(qkv, E, 2);
    qp = parts[0], kp = parts[1], vp = parts[2];
  } else {
    const std::vector<Tensor> w = split(in_proj_weight, E, 0);
    const std::vector<Tensor> b =
        in_proj_bias.defined() ? split(in_proj_bias, E, 0) : std::vector<Tensor>(3);
    qp = linear(q, w[0], b[0]);
    kp = linear(k, w[1], b[1]);
    vp = linear(v, w[2], b[2]);
  }
  // (T, N, E) -> (N, nh, T, hd)
  auto heads = [&](const Tensor& t, int64_t T) {
    return t.reshape({T, N, nh, hd}).permute({1, 2, 0, 3});
  };
  qp = heads(qp, L), kp = heads(kp, S), vp = heads(vp, S);

  // ---- masks: both become one additive mask, broadcast to (N, nh, L, S) ---------------------
  Tensor bias;
  if (mask.defined())
    bias = additive(mask, qp.dtype())
               .reshape(mask.dim() == 2 ? Shape{1, 1, L, S} : Shape{N, nh, L, S});
  if (kpm.defined()) {
    Tensor padding = additive(kpm, qp.dtype()).reshape({N, 1, 1, S});
    bias = bias.defined() ? add(bias, padding) : padding;
  }

  const double p = is_training() ? options_.dropout : 0.0;
  Tensor out, weights;  // (N, nh, L, hd), (N, nh, L, S)
  if (!need_weights) {
    out = scaled_dot_product_attention(qp, kp, vp, bias, p, /*is_causal=*/false, std::nullopt,
                                       options_.generator);
  } else {
    // torch scales q before the product (q / sqrt(hd)), then adds the mask.
    Tensor scores =
        matmul(div(qp, Scalar(std::sqrt(static_cast<double>(hd)))), kp.transpose(-2, -1));
    if (bias.defined()) scores = add(scores, bias);
    weights = softmax(scores, -1);
    if (p > 0.0) weights = dropout(weights, p, /*train=*/true, options_.generator);
    out = matmul(weights, vp);
  }
  out = out.permute({2, 0, 1, 3}).contiguous().view({L, N, E});  // heads side by side again
  out = child("out_proj")(out);                                  // (L, N, E)

  if (weights.defined() && average_attn_weights) weights = div(sum(weights, {1}), Scalar(nh));
  if (!batched) {
    out = out.squeeze(1);
    if (weights.defined()) weights = weights.squeeze(0);
  } else if (options_.batch_first) {
    out = out.transpose(0, 1);
  }
  return {out, weights};
}

}  // namespace fabric::nn
