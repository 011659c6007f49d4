// End to end on the CUDA backend: a small GPT trained 20 steps through Fabric on cuda:0 follows the
// same run on the CPU (same initial weights, same batches, AdamW, gradient clipping), per-step
// losses and final weights, in 32-true, bf16-mixed and LLM.int8's int8 and int8-training.
// Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

constexpr int kSteps = 20;
constexpr int64_t kVocab = 32, kBlock = 32, kBatch = 8, kEmbd = 64;
constexpr double kLr = 3e-3;

struct Run {
  std::vector<double> losses;
  std::map<std::string, std::vector<double>> weights;  // final parameters, by state_dict key
};

Run train_gpt(const std::string& accelerator, const std::string& precision) {
  Fabric fab({.accelerator = accelerator, .precision = precision});
  manual_seed(11);  // the same initial weights on both devices: made on the CPU, then moved
  auto gpt = nn::make<nn::GPT>(
      {.vocab_size = kVocab, .block_size = kBlock, .n_layer = 2, .n_head = 4, .n_embd = kEmbd});
  optim::AdamW adamw(gpt->parameters(), {.lr = kLr, .weight_decay = 0.01});
  auto [model, opt] = fab.setup(gpt, adamw);
  Generator gen(29);
  Run run;
  for (int s = 0; s < kSteps; ++s) {
    // A learnable stream: each target is the next token of a repeating pattern.
    const auto start = randint(0, kVocab, {kBatch}, {.dtype = DType::int64}, &gen).to_vector<int64_t>();
    std::vector<int64_t> in, out;
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t t = 0; t < kBlock; ++t) {
        in.push_back((start[size_t(b)] + 3 * t) % kVocab);
        out.push_back((start[size_t(b)] + 3 * t + 3) % kVocab);
      }
    const Tensor idx = fab.to_device(from_vector(in, {kBatch, kBlock}));
    const Tensor tgt = fab.to_device(from_vector(out, {kBatch, kBlock}));
    opt.zero_grad();
    Tensor loss = cross_entropy(model(idx).view({-1, kVocab}), tgt.view({-1}));
    fab.backward(loss);
    fab.clip_gradients(model, opt, {.max_norm = 1.0});
    opt.step();
    run.losses.push_back(loss.item<double>());
  }
  for (const auto& [key, value] : gpt->state_dict())
    run.weights[key] = value.to(Device::cpu()).to(DType::float64).to_vector<double>();
  return run;
}

// Per-step losses within rel_loss of the CPU's; every final weight within abs_weight (AdamW moves
// weights by about lr per step, so this bounds how far the two runs drifted apart).
void expect_parity(const std::string& precision, double rel_loss, double abs_weight) {
  std::string why;
  if (test::cuda_devices(&why) == 0) GTEST_SKIP() << "no usable GPU: " << why;
  const Run cpu = train_gpt("cpu", precision), gpu = train_gpt("cuda", precision);
  ASSERT_EQ(gpu.losses.size(), cpu.losses.size());
  for (size_t s = 0; s < cpu.losses.size(); ++s)
    EXPECT_LE(std::abs(gpu.losses[s] - cpu.losses[s]), rel_loss * std::abs(cpu.losses[s]))
        << precision << " step " << s << ": cuda loss " << gpu.losses[s] << ", cpu "
        << cpu.losses[s];
  EXPECT_LT(gpu.losses.back(), gpu.losses.front()) << precision << ": the loss did not go down";
  ASSERT_EQ(gpu.weights.size(), cpu.weights.size());
  for (const auto& [key, w] : cpu.weights) {
    const auto& g = gpu.weights.at(key);
    ASSERT_EQ(g.size(), w.size()) << key;
    // The key third of c_attn's bias has no gradient but rounding noise (a bias added to every
    // key shifts each query's logits by one constant, which softmax ignores), and AdamW turns
    // noise into steps of about lr: those elements wander on each device alone (seen on an H200:
    // 0.044 apart after 20 steps), so they are held only to AdamW's bound, 2 * lr * steps.
    const bool qkv_bias = key.find("attn.c_attn.bias") != std::string::npos;
    double worst = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      const bool key_bias = qkv_bias && i >= size_t(kEmbd) && i < size_t(2 * kEmbd);
      const double d = std::abs(g[i] - w[i]);
      if (key_bias)
        EXPECT_LE(d, 2 * kLr * kSteps) << key << "[" << i << "]";
      else
        worst = std::max(worst, d);
    }
    EXPECT_LE(worst, abs_weight) << precision << " " << key << ": max |cuda - cpu| = " << worst;
  }
}

// float32 on both sides (TF32 is off by default, as in PyTorch): only summation orders differ.
TEST(CudaTraining, GptTwentyStepsFloat32MatchesTheCpu) { expect_parity("32-true", 1e-4, 1e-3); }

// bf16 GEMMs round their outputs on both devices, but cuBLASLt and oneDNN block K differently.
TEST(CudaTraining, GptTwentyStepsBf16MixedMatchesTheCpu) {
  expect_parity("bf16-mixed", 2e-2, 3e-2);
}

// LLM.int8 (float16 compute): the int8 GEMMs and quantizers give the CPU's bits, the float32 ones
// (dX, the outlier columns' dW) differ in summation order, and a code one rounding away moves a
// weight's product by a 127th of its row's absmax: bf16-mixed's bounds. Not yet run on a GPU.
TEST(CudaTraining, GptTwentyStepsInt8MatchesTheCpu) { expect_parity("int8", 2e-2, 3e-2); }
TEST(CudaTraining, GptTwentyStepsInt8TrainingMatchesTheCpu) {
  expect_parity("int8-training", 2e-2, 3e-2);
}

}  // namespace
}  // namespace fabric
