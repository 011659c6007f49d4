// The GPT model: construction with nanoGPT's names and init, forward, loss and sampling.
#include "nn/gpt.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/grad_mode.h"
#include "nn/gpt_sampling.h"
#include "nn/init.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {

GPT::GPT(const GPTConfig& c) : config_(c) {
  FABRIC_CHECK(
      c.vocab_size > 0 && c.block_size > 0 && c.n_layer >= 0 && c.n_head > 0 && c.n_embd > 0,
      ValueError,
      "GPT: vocab_size, block_size, n_head and n_embd must be positive and n_layer >= 0, got "
      "vocab_size=",
      c.vocab_size, ", block_size=", c.block_size, ", n_layer=", c.n_layer, ", n_head=", c.n_head,
      ", n_embd=", c.n_embd);
  FABRIC_CHECK(c.n_embd % c.n_head == 0, ValueError, "GPT: n_embd (", c.n_embd,
               ") must be divisible by n_head (", c.n_head, ")");
  FABRIC_CHECK(c.dropout >= 0.0 && c.dropout < 1.0, ValueError,
               "GPT: dropout must be in [0, 1), got ", c.dropout);
  const BlockOptions bo{.n_embd = c.n_embd,
                        .n_head = c.n_head,
                        .block_size = c.block_size,
                        .dropout = c.dropout,
                        .bias = c.bias,
                        .gelu = c.gelu};
  transformer = register_module("transformer", std::make_shared<ModuleDict>());
  wte = make<Embedding>({.num_embeddings = c.vocab_size, .embedding_dim = c.n_embd});
  wpe = make<Embedding>({.num_embeddings = c.block_size, .embedding_dim = c.n_embd});
  drop = make<Dropout>({.p = c.dropout});
  h = std::make_shared<ModuleList>();
  for (int64_t i = 0; i < c.n_layer; ++i) {
    blocks.push_back(make<Block>(bo));
    h->push_back(blocks.back());
  }
  ln_f = make<LayerNorm>({.normalized_shape = {c.n_embd}, .bias = c.bias});
  transformer->insert("wte", wte);
  transformer->insert("wpe", wpe);
  transformer->insert("drop", drop);
  transformer->insert("h", h);
  transformer->insert("ln_f", ln_f);
  lm_head = register_module<Linear>(
      "lm_head", {.in_features = c.n_embd, .out_features = c.vocab_size, .bias = false});
  // Weight tying (nanoGPT: transformer.wte.weight = lm_head.weight): one tensor, two names.
  wte->weight = wte->register_parameter("weight", lm_head->weight);
  init_weights();
}

void GPT::init_weights() {
  // nanoGPT's _init_weights via apply(), then the scaled init of the residual projections.
  apply([](Module& m) {
    if (auto* lin = dynamic_cast<Linear*>(&m)) {
      init::normal_(lin->weight, 0.0, 0.02);
      if (lin->bias.defined()) init::zeros_(lin->bias);
    } else if (auto* emb = dynamic_cast<Embedding*>(&m)) {
      init::normal_(emb->weight, 0.0, 0.02);
    }
  });
  const double proj_std =
      0.02 / std::sqrt(2.0 * static_cast<double>(std::max<int64_t>(config_.n_layer, 1)));
  for (const auto& [name, p] : named_parameters()) {
    if (name.size() >= 13 && name.compare(name.size() - 13, 13, "c_proj.weight") == 0)
      init::normal_(p, 0.0, proj_std);
  }
}

Tensor GPT::trunk(const Tensor& idx) {
  FABRIC_CHECK(idx.defined(), ValueError, "GPT.forward: got an undefined tensor");
  FABRIC_CHECK(idx.dim() == 2, ShapeError,
               "GPT.forward: expected token indices of shape (B, T), got ", shape_str(idx.sizes()));
  FABRIC_CHECK(is_integral(idx.dtype()), DTypeError,
               "GPT.forward: token indices must be integers, got ", dtype_name(idx.dtype()));
  const int64_t T = idx.size(1);
  FABRIC_CHECK(T <= config_.block_size, ValueError,
               "GPT.forward: cannot forward a sequence of length ", T, ", block size is only ",
               config_.block_size);
  Tensor pos = arange(T, DType::int64, idx.device());    // (T)
  Tensor x = add((*wte)(idx), (*wpe)(pos));  // (B, T, C) + (T, C)
  x = (*drop)(x);
  for (const auto& block : blocks) x = (*block)(x);
  return x;
}

Tensor GPT::hidden(const Tensor& idx) { return (*ln_f)(trunk(idx)); }

Tensor GPT::forward(const Tensor& idx) {
  Module& head = child("lm_head");
  const Tensor x = trunk(idx);
  return head(ln_f->forward_to(x, norm_feeds_linear_in(x, *ln_f, {&head})));
}

Tensor GPT::loss(const Tensor& idx, const Tensor& targets) {
  FABRIC_CHECK(targets.sizes() == idx.sizes(), ShapeError, "GPT.loss: targets ",
               shape_str(targets.sizes()), " must have the shape of idx ", shape_str(idx.sizes()));
  Tensor logits = (*this)(idx);  // (B, T, V); through operator() so that hooks (FSDP) run
  return cross_entropy(logits.view({-1, config_.vocab_size}), targets.reshape({-1}),
                       /*ignore_index=*/-1);
}

Tensor GPT::generate(const Tensor& idx_in, int64_t max_new_tokens, double temperature,
                     std::optional<int64_t> top_k, Generator* gen, int64_t allowed_ids) {
  // The drawn ids, step by step (B per step), placed after the context once at the end: appending
  // each step to one growing tensor copied all of it every step (quadratic in max_new_tokens).
  std::vector<int64_t> new_ids;
  generate_each(idx_in, max_new_tokens, temperature, top_k, gen, allowed_ids,
                [&](const std::vector<int64_t>& next) {
                  new_ids.insert(new_ids.end(), next.begin(), next.end());
                });
  Tensor idx = idx_in.to(DType::int64);
  if (max_new_tokens == 0) return idx;
  const int64_t B = idx.size(0);
  std::vector<int64_t> rows(new_ids.size());  // (B, max_new_tokens), row-major
  for (int64_t s = 0; s < max_new_tokens; ++s)
    for (int64_t b = 0; b < B; ++b)
      rows[size_t(b * max_new_tokens + s)] = new_ids[size_t(s * B + b)];
  return cat({idx, from_vector(rows, {B, max_new_tokens}).to(idx.device())}, 1);
}

void GPT::generate_each(const Tensor& idx_in, int64_t max_new_tokens, double temperature,
                        std::optional<int64_t> top_k, Generator* gen, int64_t allowed_ids,
                        const std::function<void(const std::vector<int64_t>&)>& on_tokens) {
  FABRIC_CHECK(max_new_tokens >= 0, ValueError, "GPT.generate: max_new_tokens must be >= 0, got ",
               max_new_tokens);
  FABRIC_CHECK(temperature >= 0.0 && std::isfinite(temperature), ValueError,
               "GPT.generate: temperature must be finite and >= 0, got ", temperature);
  FABRIC_CHECK(!top_k || *top_k > 0, ValueError, "GPT.generate: top_k must be positive, got ",
               top_k.value_or(0));
  FABRIC_CHECK(idx_in.dim() == 2 && idx_in.size(1) > 0, ShapeError,
               "GPT.generate: expected a non-empty context of shape (B, T), got ",
               shape_str(idx_in.sizes()));
  // As forward: token ids are integers (a float context would be truncated silently).
  FABRIC_CHECK(is_integral(idx_in.dtype(), /*include_bool=*/false), DTypeError,
               "GPT.generate: expected integer token ids, got a ", dtype_name(idx_in.dtype()),
               " context");
  FABRIC_CHECK(allowed_ids >= 0 && allowed_ids <= config_.vocab_size, ValueError,
               "GPT.generate: allowed_ids must be in [0, vocab_size ", config_.vocab_size, "] (0: all), got ",
               allowed_ids);
  NoGradGuard no_grad;
  const int64_t B = idx_in.size(0), V = config_.vocab_size;
  // Ids at or past `drawn` are never picked: the logits of [0, drawn) alone are sampled from.
  const int64_t drawn = allowed_ids > 0 ? allowed_ids : V;
  // The context: the last block_size tokens (the model sees no more), as nanoGPT crops it.
  const int64_t block = config_.block_size;
  Tensor cond = idx_in.to(DType::int64);
  if (cond.size(1) > block) cond = cond.narrow(1, cond.size(1) - block, block);
  std::vector<double> row(static_cast<size_t>(drawn));
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    Tensor last = hidden(cond);
    last = last.narrow(1, last.size(1) - 1, 1);  // (B, 1, C): only the last position
    std::vector<float> logits =
        child("lm_head")(last).to(DType::float32).to_vector<float>();  // (B, 1, V)
    std::vector<int64_t> next(static_cast<size_t>(B));
    Generator& g = gen ? *gen : default_generator();
    const bool sampled = g.torch_cpu() && temperature > 0.0;
    if (sampled) {
      // A torch_cpu generator samples as nanoGPT does, in float32 tensor ops, so that the same
      // logits and seed give torch's ids (nn/gpt_sampling.h).
      const Tensor l = from_vector(logits, {B, V}).narrow(1, 0, drawn);
      FABRIC_CHECK(all(isfinite(l)).item<bool>(), ValueError,
                   "GPT.generate: the logits are not finite (NaN or inf)");
      next = sample_next_token(l, temperature, top_k, &g).to_vector<int64_t>();
    }
    const std::vector<double> u =
        sampled ? std::vector<double>()
                : rand({B}, {.dtype = DType::float64}, gen).to_vector<double>();
    for (int64_t b = 0; !sampled && b < B; ++b) {
      const float* l = logits.data() + b * V;
      // A diverged model's NaN would be drawn as id 0 by greedy decoding (max_element) and its inf
      // as whatever sits at the top: every path refuses it.
      FABRIC_CHECK(std::all_of(l, l + drawn, [](float x) { return std::isfinite(x); }), ValueError,
                   "GPT.generate: the logits of batch row ", b, " are not finite (NaN or inf)");
      const float lmax = *std::max_element(l, l + drawn);
      if (temperature == 0.0) {
        next[static_cast<size_t>(b)] = std::max_element(l, l + drawn) - l;
        continue;
      }
      // (l - max) / T rather than nanoGPT's l / T: the same distribution, and a tiny temperature
      // gives -inf (probability 0) below the maximum instead of overflowing to inf - inf.
      for (int64_t v = 0; v < drawn; ++v)
        row[static_cast<size_t>(v)] = (static_cast<double>(l[v]) - lmax) / temperature;
      if (top_k && *top_k < drawn) {
        // nanoGPT: logits below the k-th largest become -inf (ties with it survive).
        std::vector<double> sorted = row;
        std::nth_element(sorted.begin(), sorted.begin() + (*top_k - 1), sorted.end(),
                         std::greater<>());
        const double kth = sorted[static_cast<size_t>(*top_k - 1)];
        for (double& r : row) {
          if (r < kth) r = -std::numeric_limits<double>::infinity();
        }
      }
      double total = 0.0;  // >= 1: the maximum's term is exp(0)
      for (double& r : row) total += (r = std::exp(r));
      // Inverse-CDF draw from the categorical distribution.
      const double target = u[static_cast<size_t>(b)] * total;
      double acc = 0.0;
      int64_t pick = -1;
      for (int64_t v = 0; v < drawn; ++v) {
        acc += row[static_cast<size_t>(v)];
        if (row[static_cast<size_t>(v)] > 0.0) pick = v;  // fallback: last token with mass
        if (acc > target) break;
      }
      next[static_cast<size_t>(b)] = pick;
    }
    Tensor nt = from_vector(next, {B, 1}).to(cond.device());
    cond = cat({cond, nt}, 1);
    if (cond.size(1) > block) cond = cond.narrow(1, 1, block);
    on_tokens(next);
  }
}

void GPT::child_replaced(const std::string& name, const std::shared_ptr<Module>& now) {
  if (name == "lm_head") lm_head = std::dynamic_pointer_cast<Linear>(now);
}

int64_t GPT::get_num_params(bool non_embedding) const {
  int64_t n = num_parameters();
  if (non_embedding) n -= wpe->weight.numel();
  return n;
}

}  // namespace fabric::nn
