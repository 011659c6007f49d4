// CausalSelfAttention, BlockMLP and Block.
#include "nn/transformer.h"

#include <cstdlib>
#include <string_view>
#include <typeinfo>

#include "nn/functional.h"
#include "tensor/autocast.h"

namespace fabric::nn {

CausalSelfAttention::CausalSelfAttention(const BlockOptions& o) : options_(o) {
  FABRIC_CHECK(o.n_embd > 0 && o.n_head > 0 && o.n_embd % o.n_head == 0, ValueError,
               "CausalSelfAttention: n_embd (", o.n_embd,
               ") must be a positive multiple of n_head (", o.n_head, ")");
  FABRIC_CHECK(o.block_size > 0, ValueError,
               "CausalSelfAttention: block_size must be positive, got ", o.block_size);
  c_attn = register_module<Linear>(
      "c_attn", {.in_features = o.n_embd,
                 .out_features = checked_size_mul(3, o.n_embd, "CausalSelfAttention"),
                 .bias = o.bias});
  c_proj = register_module<Linear>(
      "c_proj", {.in_features = o.n_embd, .out_features = o.n_embd, .bias = o.bias});
  attn_dropout = register_module<Dropout>("attn_dropout", {.p = o.dropout});
  resid_dropout = register_module<Dropout>("resid_dropout", {.p = o.dropout});
}

namespace {

// FABRIC_NORM_CAST=0 keeps the norm's float32 output and the linear layer's cast (the same bits;
// for timing one against the other). Read once; "1" or unset leaves the fusion on.
bool norm_cast_fusion_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("FABRIC_NORM_CAST");
    if (v == nullptr || *v == '\0') return true;
    const std::string_view s(v);
    FABRIC_CHECK(s == "0" || s == "1", ValueError,
                 "FABRIC_NORM_CAST must be 0 (off) or 1 (on), got '", s, "'");
    return s == "1";
  }();
  return on;
}

}  // namespace

std::optional<DType> norm_feeds_linear_in(const Tensor& x, const LayerNorm& norm,
                                          std::initializer_list<const Module*> path) {
  const DeviceType dev = x.device().type;
  if (!norm_cast_fusion_enabled() || !x.defined() || x.dtype() != DType::float32 ||
      !autocast_enabled(dev) || autocast_policy(OpId::linear, dev) != AutocastPolicy::lower)
    return std::nullopt;
  const DType low = autocast_state(dev).dtype;
  if (low != DType::bfloat16 && low != DType::float16) return std::nullopt;
  const auto plain = [](const Module* m) { return m != nullptr && m->is_called_plainly(); };
  if (!plain(&norm) || typeid(norm) != typeid(LayerNorm) || path.size() == 0 ||
      typeid(**(path.end() - 1)) != typeid(Linear))
    return std::nullopt;
  for (const Tensor* p : {&norm.weight, &norm.bias})
    if (p->defined() && p->dtype() != DType::float32) return std::nullopt;
  for (const Module* m : path)
    if (!plain(m)) return std::nullopt;
  return low;
}

Tensor CausalSelfAttention::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "CausalSelfAttention: got an undefined tensor");
  FABRIC_CHECK(x.dim() == 3 && x.size(2) == options_.n_embd, ShapeError,
               "CausalSelfAttention: expected input (B, T, ", options_.n_embd, "), got ",
               shape_str(x.sizes()));
  const int64_t B = x.size(0), T = x.size(1), C = options_.n_embd, nh = options_.n_head,
                hs = C / nh;
  FABRIC_CHECK(T <= options_.block_size, ValueError, "CausalSelfAttention: sequence length ", T,
               " exceeds block_size ", options_.block_size);
  Tensor qkv = child("c_attn")(x);  // (B, T, 3C); the registered layer (it may be replaced)
  // Heads as strided views into qkv: (B, T, C) slice -> (B, T, nh, hs) -> (B, nh, T, hs). No copy:
  // each head's (T, hs) matrix has row stride 3C, which the attention kernels read directly.
  // One split (nanoGPT's qkv.split), not three narrows: its backward is one cat of dq, dk, dv,
  // where each narrow's would be a zero-filled (B, T, 3C) buffer, summed three ways. On the CPU
  // not even the cat: the attention backward writes dq, dk, dv into one (B, T, 3C) buffer, which
  // the split's backward passes on as qkv's gradient (tensor/ops_attention.cpp).
  const std::vector<Tensor> qkv_parts = split(qkv, C, 2);
  auto heads = [&](int64_t i) {
    return qkv_parts[static_cast<size_t>(i)].view({B, T, nh, hs}).transpose(1, 2);
  };
  const double p = is_training() ? options_.dropout : 0.0;
  Tensor y = functional::scaled_dot_product_attention(
      heads(0), heads(1), heads(2), Tensor(), p, /*is_causal=*/true, std::nullopt,
      attn_dropout->options().generator);  // (B, nh, T, hs)
  // The heads side by side again. On the CPU without a copy: the fused op lays y out as q lies,
  // (B, T, nh, hs) in memory, so the transpose is contiguous and contiguous() returns it.
  y = y.transpose(1, 2).contiguous().view({B, T, C});
  return (*resid_dropout)(child("c_proj")(y));
}

void CausalSelfAttention::child_replaced(const std::string& name, const std::shared_ptr<Module>& now) {
  if (name == "c_attn") c_attn = std::dynamic_pointer_cast<Linear>(now);
  if (name == "c_proj") c_proj = std::dynamic_pointer_cast<Linear>(now);
}

void BlockMLP::child_replaced(const std::string& name, const std::shared_ptr<Module>& now) {
  if (name == "c_fc") c_fc = std::dynamic_pointer_cast<Linear>(now);
  if (name == "c_proj") c_proj = std::dynamic_pointer_cast<Linear>(now);
}

std::string CausalSelfAttention::extra_repr() const {
  return detail::cat("n_embd=", options_.n_embd, ", n_head=", options_.n_head,
                     ", block_size=", options_.block_size);
}

BlockMLP::BlockMLP(const BlockOptions& o) {
  const int64_t hidden = checked_size_mul(4, o.n_embd, "BlockMLP");  // a wrapped width would pass
  c_fc = register_module<Linear>("c_fc",
                                 {.in_features = o.n_embd, .out_features = hidden, .bias = o.bias});
  gelu = register_module<GELU>("gelu", {.approximate = o.gelu});
  c_proj = register_module<Linear>(
      "c_proj", {.in_features = hidden, .out_features = o.n_embd, .bias = o.bias});
  dropout = register_module<Dropout>("dropout", {.p = o.dropout});
}

// The fused op applies when the three layers are exactly what this block made, with nothing that
// calling them would add: no forward or backward hooks (FSDP's gathers, weight_norm), no
// activation checkpointing of their own; a replaced layer (LoRA, quantized, FP8) is called as it
// is.
bool BlockMLP::fused() const {
  const auto plain = [](const Module* m) { return m != nullptr && m->is_called_plainly(); };
  return plain(c_fc.get()) && plain(c_proj.get()) && plain(gelu.get()) &&
         typeid(*c_fc) == typeid(Linear) && typeid(*c_proj) == typeid(Linear) &&
         gelu->options().approximate == "tanh";
}

Tensor BlockMLP::forward(const Tensor& x) {
  if (fused()) {
    return (*dropout)(gelu_mlp(x, c_fc->weight, c_fc->bias, c_proj->weight, c_proj->bias));
  }
  return (*dropout)(child("c_proj")((*gelu)(child("c_fc")(x))));
}

Block::Block(const BlockOptions& o) {
  ln_1 = register_module<LayerNorm>("ln_1", {.normalized_shape = {o.n_embd}, .bias = o.bias});
  attn = register_module<CausalSelfAttention>("attn", o);
  ln_2 = register_module<LayerNorm>("ln_2", {.normalized_shape = {o.n_embd}, .bias = o.bias});
  mlp = register_module<BlockMLP>("mlp", o);
}

Tensor Block::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "Block: got an undefined tensor");
  // attn hands its input to c_attn alone, the MLP to c_fc (or gelu_mlp's first GEMM) alone.
  const auto exact = [](const Module* m, const std::type_info& t) {
    return m != nullptr && typeid(*m) == t ? m : nullptr;
  };
  const Module* a = exact(attn.get(), typeid(CausalSelfAttention));
  const Module* m = exact(mlp.get(), typeid(BlockMLP));
  const auto into_attn =
      a ? norm_feeds_linear_in(x, *ln_1, {a, &a->child("c_attn")}) : std::nullopt;
  Tensor h = add(x, (*attn)(ln_1->forward_to(x, into_attn)));
  const auto into_mlp = m ? norm_feeds_linear_in(h, *ln_2, {m, &m->child("c_fc")}) : std::nullopt;
  return add(h, (*mlp)(ln_2->forward_to(h, into_mlp)));
}

}  // namespace fabric::nn
