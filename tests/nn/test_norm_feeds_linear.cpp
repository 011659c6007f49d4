// A pre-norm whose output goes straight to an autocast linear layer hands it the autocast dtype
// (layer_norm's out_dtype): the cast the linear would make folds into the norm. On the CPU the op
// with out_dtype equals the norm followed by the cast bit for bit, forward and backward; a GPT
// block and a whole GPT under bf16 autocast give the same loss and gradients as with the fusion
// off (a hook on each norm turns it off), and the fusion stays off wherever the norm's output
// could be seen or the consumer would not cast it.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "nn/lora.h"
#include "nn/transformer.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/reduce_kernels.h"

namespace fabric::nn {
namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.numel() * itemsize(ca.dtype())) == 0;
}

// Autocast on the CPU in bf16 for the guard's life.
struct CpuAutocast {
  CpuAutocast() { autocast_enter(DeviceType::cpu, true, DType::bfloat16, true); }
  ~CpuAutocast() { autocast_exit(DeviceType::cpu); }
};

TEST(NormOutDtype, EqualsTheNormThenTheCastBitForBit) {
  for (const int64_t cols : {int64_t{24}, int64_t{13}, int64_t{768}}) {
    for (const DType low : {DType::bfloat16, DType::float16}) {
      for (const bool rms : {false, true}) {
        manual_seed(7);
        const Tensor x0 = add(mul(randn({3, 5, cols}), 2.0), 0.5);
        const Tensor w0 = add(randn({cols}), 1.0), b0 = randn({cols});
        const Tensor r = randn({3, 5, cols}).to(low);
        const auto run = [&](bool fused) {
          Tensor x = x0.detach().clone().set_requires_grad(true);
          Tensor w = w0.detach().clone().set_requires_grad(true);
          Tensor b = b0.detach().clone().set_requires_grad(true);
          Tensor y;
          if (rms)
            y = fused ? rms_norm(x, {cols}, w, 1e-6, low) : rms_norm(x, {cols}, w, 1e-6).to(low);
          else
            y = fused ? layer_norm(x, {cols}, w, b, 1e-5, low)
                      : layer_norm(x, {cols}, w, b, 1e-5).to(low);
          sum(mul(y, r)).backward();
          return std::vector<Tensor>{y.detach(), x.grad(), w.grad(), rms ? Tensor() : b.grad()};
        };
        const std::vector<Tensor> fused = run(true), cast = run(false);
        const std::string what = std::string(rms ? "rms_norm " : "layer_norm ") +
                                 std::string(dtype_name(low)) + " cols " + std::to_string(cols);
        EXPECT_EQ(fused[0].dtype(), low) << what;
        for (size_t i = 0; i < fused.size(); ++i) {
          if (!cast[i].defined()) continue;
          EXPECT_TRUE(same_bits(fused[i], cast[i])) << what << ": result " << i;
        }
      }
    }
  }
}

TEST(NormOutDtype, RejectsWhatTheKernelsDoNotTake) {
  const Tensor x = randn({2, 8});
  EXPECT_THROW(layer_norm(x, {8}, Tensor(), Tensor(), 1e-5, DType::float64), DTypeError);
  EXPECT_THROW(layer_norm(x.to(DType::bfloat16), {8}, Tensor(), Tensor(), 1e-5, DType::float16),
               DTypeError);
  EXPECT_THROW(rms_norm(x, {8}, Tensor(), std::nullopt, DType::int32), DTypeError);
  EXPECT_EQ(layer_norm(x.to(DType::bfloat16), {8}, Tensor(), Tensor(), 1e-5, DType::bfloat16)
                .dtype(),
            DType::bfloat16);
  try {
    layer_norm(x, {8}, Tensor(), Tensor(), 1e-5, DType::float64);
  } catch (const DTypeError& e) {
    EXPECT_NE(std::string(e.what()).find("out_dtype float64"), std::string::npos) << e.what();
  }
  // The CPU kernel itself refuses an output of another width than the pairings it converts.
  const Tensor xb = x.to(DType::bfloat16), y = empty({2, 8}), rstd = empty({2});
  NormArgs a;
  a.rows = 2;
  a.cols = 8;
  a.x = xb.data_ptr();
  a.x_dtype = DType::bfloat16;
  a.y = y.data_ptr();
  a.y_dtype = DType::float32;
  a.rstd = rstd.data_ptr();
  a.rms = true;
  EXPECT_THROW(norm_stub(Device::cpu())(a), DTypeError);
}

TEST(NormOutDtype, LayerNormModuleKeepsFloat32WhereCallingItDoesMore) {
  auto ln = make<LayerNorm>(LayerNormOptions{.normalized_shape = {8}});
  const Tensor x = randn({2, 8});
  EXPECT_EQ(ln->forward_to(x, DType::bfloat16).dtype(), DType::bfloat16);
  EXPECT_EQ(ln->forward_to(x, std::nullopt).dtype(), DType::float32);
  ln->set_activation_checkpointing(true);
  EXPECT_EQ(ln->forward_to(x, DType::bfloat16).dtype(), DType::float32);
  ln->set_activation_checkpointing(false);
  ln->register_forward_pre_hook([](Module&, const Tensor& t) { return t; });
  EXPECT_EQ(ln->forward_to(x, DType::bfloat16).dtype(), DType::float32);
}

std::shared_ptr<Block> block() {
  manual_seed(21);
  return make<Block>(BlockOptions{.n_embd = 16, .n_head = 2, .block_size = 8});
}

// Forward and backward of sum(out * r); the output, x's gradient and every parameter's.
std::vector<Tensor> run(Module& m, const Tensor& x0, const Tensor& r) {
  Tensor x = x0.detach().clone().set_requires_grad(true);
  m.zero_grad();
  Tensor out;
  {
    CpuAutocast autocast;
    out = m(x);
  }
  sum(mul(out.to(DType::float32), r)).backward();
  std::vector<Tensor> all{out.detach(), x.grad()};
  for (const Tensor& p : m.parameters()) all.push_back(p.grad());
  return all;
}

void expect_same(const std::vector<Tensor>& a, const std::vector<Tensor>& b,
                 const std::string& what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i], b[i])) << what << " " << i;
}

TEST(NormFeedsLinear, BlockUnderBf16AutocastEqualsTheUnfusedBlock) {
  auto b = block();
  manual_seed(3);
  const Tensor x = randn({2, 8, 16}), r = randn({2, 8, 16});
  {
    CpuAutocast autocast;
    ASSERT_EQ(norm_feeds_linear_in(x, *b->ln_2, {b->mlp.get(), &b->mlp->child("c_fc")}),
              DType::bfloat16);
  }
  const std::vector<Tensor> fused = run(*b, x, r);
  // A forward hook on a norm shows its output as the module makes it: no fusion.
  for (auto& ln : {b->ln_1, b->ln_2})
    ln->register_forward_hook([](Module&, const Tensor&, const Tensor& y) {
      EXPECT_EQ(y.dtype(), DType::float32);
      return y;
    });
  expect_same(fused, run(*b, x, r), "block");
}

TEST(NormFeedsLinear, GptUnderBf16AutocastEqualsTheUnfusedGpt) {
  manual_seed(5);
  auto gpt = make<GPT>(
      GPTConfig{.vocab_size = 40, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 16});
  const Tensor idx = randint(0, 40, {2, 8}), targets = randint(0, 40, {2, 8});
  const auto step = [&] {
    gpt->zero_grad();
    Tensor loss;
    {
      CpuAutocast autocast;
      loss = gpt->loss(idx, targets);
    }
    loss.backward();
    std::vector<Tensor> all{loss.detach()};
    for (const Tensor& p : gpt->parameters()) all.push_back(p.grad());
    return all;
  };
  {
    CpuAutocast autocast;
    ASSERT_EQ(norm_feeds_linear_in(randn({2, 8, 16}), *gpt->ln_f, {&gpt->child("lm_head")}),
              DType::bfloat16);
  }
  const std::vector<Tensor> fused = step();
  for (auto& b : gpt->blocks)
    for (auto& ln : {b->ln_1, b->ln_2})
      ln->register_forward_pre_hook([](Module&, const Tensor& x) { return x; });
  gpt->ln_f->register_forward_pre_hook([](Module&, const Tensor& x) { return x; });
  expect_same(fused, step(), "gpt");
}

TEST(NormFeedsLinear, OnlyWhereTheLinearWouldCastAndNothingSeesTheNorm) {
  auto b = block();
  const Tensor x = randn({2, 8, 16});
  const auto into_attn = [&] {
    return norm_feeds_linear_in(x, *b->ln_1, {b->attn.get(), &b->attn->child("c_attn")});
  };
  EXPECT_FALSE(into_attn()) << "autocast off";
  CpuAutocast autocast;
  EXPECT_EQ(into_attn(), DType::bfloat16);
  EXPECT_FALSE(norm_feeds_linear_in(x.to(DType::bfloat16), *b->ln_1,
                                    {b->attn.get(), &b->attn->child("c_attn")}))
      << "a bf16 input";
  b->attn->set_activation_checkpointing(true);
  EXPECT_FALSE(into_attn()) << "a checkpointed attention";
  b->attn->set_activation_checkpointing(false);
  b->attn->register_forward_pre_hook([](Module&, const Tensor& t) { return t; });
  EXPECT_FALSE(into_attn()) << "a hook on the attention sees its input";
  auto c = block();
  apply_lora(*c, {.rank = 2, .target = {"c_attn"}});
  EXPECT_FALSE(norm_feeds_linear_in(x, *c->ln_1, {c->attn.get(), &c->attn->child("c_attn")}))
      << "a LoRA c_attn";
  auto d = block();
  d->ln_1->to(DType::bfloat16);
  EXPECT_FALSE(norm_feeds_linear_in(x, *d->ln_1, {d->attn.get(), &d->attn->child("c_attn")}))
      << "bf16 norm parameters";
}

}  // namespace
}  // namespace fabric::nn
