// GPT: nanoGPT's model (GPT-2 architecture) with its parameter names, initialisation and weight
// tying, so checkpoints map key for key:
//   transformer.wte.weight (V, C)      transformer.wpe.weight (block_size, C)
//   transformer.h.{i}.ln_1.{weight,bias}   transformer.h.{i}.attn.c_attn.{weight,bias}
//   transformer.h.{i}.attn.c_proj.{weight,bias}   transformer.h.{i}.ln_2.{weight,bias}
//   transformer.h.{i}.mlp.c_fc.{weight,bias}      transformer.h.{i}.mlp.c_proj.{weight,bias}
//   transformer.ln_f.{weight,bias}     lm_head.weight (the same tensor as transformer.wte.weight)
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "nn/containers.h"
#include "nn/linear.h"
#include "nn/normalization.h"
#include "nn/transformer.h"

namespace fabric::nn {

struct GPTConfig {
  int64_t vocab_size = 50304;
  int64_t block_size = 1024;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  int64_t n_embd = 768;
  double dropout = 0.0;
  bool bias = true;
  std::string gelu = "tanh";  // the MLP's GELU: "tanh" (GPT-2) or "none" (erf, nanoGPT's nn.GELU())
};

class GPT : public Module {
 public:
  using Options = GPTConfig;
  explicit GPT(const GPTConfig& config);
  // idx (B, T) integer tokens, T <= block_size -> logits (B, T, vocab_size)
  Tensor forward(const Tensor& idx) override;
  // nanoGPT's training loss: cross_entropy(logits (B*T, V), targets (B*T)), ignore_index -1.
  Tensor loss(const Tensor& idx, const Tensor& targets);
  // Appends max_new_tokens sampled tokens to idx (B, T) and returns (B, T + max_new_tokens), as
  // nanoGPT's generate: the context is cropped to the last block_size tokens, logits of the last
  // position are divided by temperature, only the top_k largest are kept, and one token is drawn
  // from the softmax. temperature == 0 picks the argmax (greedy). Runs without autograd; call
  // eval() first to switch dropout off. allowed_ids > 0 draws only ids below it (their logits
  // alone count, top_k among them): a model whose vocab_size exceeds its tokenizer's vocabulary
  // would otherwise emit ids that name nothing. With a torch_cpu generator (tensor/random.h) each
  // step is nanoGPT's own float32 computation (nn/gpt_sampling.h), so the same logits and seed
  // draw torch's ids; otherwise an inverse-CDF draw in float64 from one uniform per row.
  Tensor generate(const Tensor& idx, int64_t max_new_tokens, double temperature = 1.0,
                  std::optional<int64_t> top_k = std::nullopt, Generator* gen = nullptr,
                  int64_t allowed_ids = 0);
  // generate's draws handed out as they are made: `on_tokens` gets each step's B ids (one per batch
  // row) at once, and only the last block_size tokens are kept as the context, so that time and
  // memory per token stay the same however many tokens are asked for (fabric-train sample prints
  // them as they come). The same draws as generate with the same generator.
  void generate_each(const Tensor& idx, int64_t max_new_tokens, double temperature,
                     std::optional<int64_t> top_k, Generator* gen, int64_t allowed_ids,
                     const std::function<void(const std::vector<int64_t>&)>& on_tokens);
  // nanoGPT's get_num_params: every parameter once (the tied lm_head is wte), minus the position
  // embeddings when non_embedding. num_parameters() (Module) counts all.
  int64_t get_num_params(bool non_embedding = true) const;
  std::string type_name() const override { return "GPT"; }
  // lm_head becomes null when replaced by something that is not an nn::Linear.
  void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) override;
  const GPTConfig& config() const { return config_; }

  std::shared_ptr<ModuleDict> transformer;  // wte, wpe, drop, h, ln_f
  std::shared_ptr<Embedding> wte, wpe;
  std::shared_ptr<Dropout> drop;
  std::shared_ptr<ModuleList> h;
  std::vector<std::shared_ptr<Block>> blocks;
  std::shared_ptr<LayerNorm> ln_f;
  std::shared_ptr<Linear> lm_head;

 private:
  // The final hidden states (B, T, C), after ln_f.
  Tensor hidden(const Tensor& idx);
  // The blocks' output (B, T, C), before ln_f.
  Tensor trunk(const Tensor& idx);
  void init_weights();
  GPTConfig config_;
};

}  // namespace fabric::nn
