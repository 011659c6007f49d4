// The GPT-2 / nanoGPT transformer pieces: causal self-attention with a fused QKV projection, the
// 4x MLP and the pre-LayerNorm residual block. Parameter names follow nanoGPT exactly.
#pragma once
#include <initializer_list>
#include <optional>
#include <string>

#include "nn/activation.h"
#include "nn/linear.h"
#include "nn/normalization.h"

namespace fabric::nn {

// Under autocast for x's device type, the dtype in which a float32 pre-norm can hand its output
// to `path`: modules each of which passes its input straight to the next, the last an exact
// nn::Linear. That is autocast's float16/bfloat16 when autocast runs linear layers in it (the
// linear would cast the norm's output first: the cast folds into the norm, the same bits, one pass
// over the activations fewer each way) and neither the norm nor a module of the path has hooks or
// checkpointing; unset otherwise (the modules then run as they are). FABRIC_NORM_CAST=0 turns it
// off (for timing the two against each other).
std::optional<DType> norm_feeds_linear_in(const Tensor& x, const LayerNorm& norm,
                                          std::initializer_list<const Module*> path);

struct BlockOptions {
  int64_t n_embd = 768;
  int64_t n_head = 12;
  int64_t block_size = 1024;  // the longest sequence; sizes the causal mask
  double dropout = 0.0;
  bool bias = true;           // biases in the Linear layers and LayerNorms
  std::string gelu = "tanh";  // the MLP's GELU approximation: "tanh" (GPT-2) or "none" (erf)
};

// Keys: c_attn.{weight,bias} (3C, C), c_proj.{weight,bias} (C, C). The causal mask is a
// non-persistent buffer ("mask", bool (block_size, block_size)), so it is not in state_dict.
class CausalSelfAttention : public Module {
 public:
  using Options = BlockOptions;
  explicit CausalSelfAttention(const BlockOptions& options);
  // (B, T, C) -> (B, T, C)
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "CausalSelfAttention"; }
  // c_attn / c_proj become null when replaced by something that is not an nn::Linear.
  void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) override;
  std::string extra_repr() const override;

  std::shared_ptr<Linear> c_attn, c_proj;
  std::shared_ptr<Dropout> attn_dropout, resid_dropout;

 private:
  BlockOptions options_;
};

// c_fc (4C, C) -> GELU -> c_proj (C, 4C) -> dropout. nanoGPT's class is called MLP; here it is
// BlockMLP so as not to clash with the nn::MLP model.
class BlockMLP : public Module {
 public:
  using Options = BlockOptions;
  explicit BlockMLP(const BlockOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "MLP"; }
  void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) override;
  // Whether forward runs c_fc, the tanh GELU and c_proj as one gelu_mlp op (the GELU in the
  // GEMMs' epilogues on CUDA; the same values as the three layers on the CPU).
  bool fused() const;

  std::shared_ptr<Linear> c_fc, c_proj;
  std::shared_ptr<GELU> gelu;
  std::shared_ptr<Dropout> dropout;
};

// x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)). Keys: ln_1.*, attn.*, ln_2.*, mlp.*.
class Block : public Module {
 public:
  using Options = BlockOptions;
  explicit Block(const BlockOptions& options);
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Block"; }

  std::shared_ptr<LayerNorm> ln_1;
  std::shared_ptr<CausalSelfAttention> attn;
  std::shared_ptr<LayerNorm> ln_2;
  std::shared_ptr<BlockMLP> mlp;
};

}  // namespace fabric::nn
