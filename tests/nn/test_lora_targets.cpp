// apply_lora's targets follow PEFT's target_modules: a layer's whole dotted path or a dotted tail
// of it. Only the last component used to match, so an MLP's "layers.0" (its state_dict's name) and
// one block's "h.0.attn.c_attn" were refused. LoRALinear's dtypes: PEFT's order of casts and adds
// beside a 16-bit base, against torch 1.13's bits.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/gpt.h"
#include "nn/lora.h"
#include "nn/mlp.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/cpu_autocast.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

std::shared_ptr<GPT> tiny_gpt() {
  return std::make_shared<GPT>(
      GPTConfig{.vocab_size = 16, .block_size = 8, .n_layer = 2, .n_head = 2, .n_embd = 8});
}

TEST(LoRATargets, AWholePathOrADottedTailNamesALayer) {
  EXPECT_EQ(
      apply_lora(*tiny_gpt(), {.target = {"c_attn"}}),
      (std::vector<std::string>{"transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"}));
  EXPECT_EQ(apply_lora(*tiny_gpt(), {.target = {"h.1.attn.c_attn"}}),
            (std::vector<std::string>{"transformer.h.1.attn.c_attn"}));
  EXPECT_EQ(apply_lora(*tiny_gpt(), {.target = {"transformer.h.0.mlp.c_fc"}}),
            (std::vector<std::string>{"transformer.h.0.mlp.c_fc"}));
  // A tail must start at a dot: "attn" is no tail of "c_attn".
  EXPECT_CONTAINS(thrown<ValueError>([] { apply_lora(*tiny_gpt(), {.target = {"_attn"}}); }),
                  "no layer of this GPT is named any of ['_attn']");
  // An empty name shows as '', and layers an earlier call adapted are named as such.
  EXPECT_CONTAINS(thrown<ValueError>([] { apply_lora(*tiny_gpt(), {.target = {""}}); }),
                  "no layer of this GPT is named any of ['']");
  auto twice = tiny_gpt();
  apply_lora(*twice, {.target = {"c_attn"}});
  EXPECT_CONTAINS(thrown<ValueError>([&] { apply_lora(*twice, {.target = {"c_attn"}}); }),
                  "apply_lora: every layer named by ['c_attn'] (2) is already adapted");
  auto mlp = std::make_shared<MLP>(MLPConfig{.sizes = {4, 8, 3}});
  EXPECT_EQ(apply_lora(*mlp, {.target = {"layers.0"}}), (std::vector<std::string>{"layers.0"}));
}

// ---- LoRALinear's dtypes ---------------------------------------------------------------------
// PEFT's lora.Linear (default autocast_adapter_dtype: float32 adapters beside a 16-bit base)
// computes y = (base(x) + B(A(dropout(x.float()))) * scaling).to(base(x).dtype): the update is
// added in float32 and the sum rounded once. Adding the update rounded to bf16 moved about a third
// of these outputs by one ulp. PEFT's bitsandbytes layers do round the update before the add.
// Literals: tools/fixtures/make_lora_dtype_rows.py (its inputs are exact in every dtype here and
// every product and sum of them exact in float32, so only the casts and the 16-bit GEMMs round).

// ((i * mul + add) % mod - off) / den, as the generator's ramp.
Tensor ramp(Shape shape, int64_t mul, int64_t add, int64_t mod, int64_t off, double den) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v;
  for (int64_t i = 0; i < n; ++i)
    v.push_back(static_cast<float>(((i * mul + add) % mod - off) / den));
  return from_vector(v, shape);
}

Tensor lora_x() { return ramp({4, 16}, 37, 11, 97, 48, 64); }

// One nonzero per row (column (5r + 3) % 16): torch 1.13's small bfloat16 GEMMs of grad @ weight's
// layout round after every term and fabric's once; with one term they agree, which keeps that
// (not LoRA's) difference out of the input gradient's bits.
Tensor lora_gy() {
  std::vector<float> v = ramp({4, 16}, 19, 1, 23, 11, 8).to_vector<float>();
  for (size_t i = 0; i < v.size(); ++i)
    if (static_cast<int64_t>(i % 16) != (static_cast<int64_t>(i / 16) * 5 + 3) % 16) v[i] = 0.0f;
  return from_vector(v, {4, 16});
}

std::shared_ptr<Linear> lora_base() {
  auto base = make<Linear>({.in_features = 16, .out_features = 16});
  NoGradGuard no_grad;
  base->weight.copy_(ramp({16, 16}, 53, 7, 89, 44, 256));
  base->bias.copy_(ramp({16}, 29, 3, 41, 20, 64));
  return base;
}

std::shared_ptr<LoRALinear> lora_around(std::shared_ptr<Module> base, double dropout = 0.0) {
  auto lora = std::make_shared<LoRALinear>(
      base, LoRALinearOptions{
                .in_features = 16, .out_features = 16, .rank = 4, .alpha = 8, .dropout = dropout});
  NoGradGuard no_grad;
  lora->lora_A->weight.copy_(ramp({4, 16}, 13, 5, 17, 8, 16));
  lora->lora_B->weight.copy_(ramp({16, 4}, 11, 2, 15, 7, 16));
  return lora;
}

template <typename H>
std::vector<uint16_t> bits_of(const Tensor& t) {
  EXPECT_EQ(t.dtype(), dtype_v<H>);
  std::vector<uint16_t> out;
  for (H h : t.contiguous().to_vector<H>()) out.push_back(h.x);
  return out;
}

// A base that computes as a bfloat16 Linear but reports a bitsandbytes type name, as Linear4bit
// does: LoRALinear tells the bases apart by that name (nn/ sits below precision/).
class BitsandbytesStandIn : public Module {
 public:
  explicit BitsandbytesStandIn(std::shared_ptr<Linear> linear) {
    register_module("linear", linear);
  }
  Tensor forward(const Tensor& x) override { return child("linear")(x); }
  std::string type_name() const override { return "Linear4bit"; }
};

TEST(LoRALinearDtypes, SixteenBitBaseAddsTheFloat32UpdateThenRoundsOnce) {
  // bfloat16 base, float32 adapters
  const std::vector<uint16_t> bf16_y = {
      0xBFF7, 0xBF5F, 0xBFCF, 0x3F64, 0x3F5D, 0x3F99, 0x3F1F, 0x3F28, 0x3F94, 0x3F1D, 0xBE8C,
      0xBE8E, 0x3D11, 0xBF1C, 0xBF46, 0xBFAF, 0xBF59, 0x3DEE, 0xBED4, 0x3ECC, 0x3F41, 0x3F54,
      0x3D86, 0xBD44, 0x3F2A, 0xBDA0, 0xBEA1, 0xBF13, 0x3D7B, 0xBF48, 0x3D7B, 0xBF2D, 0x3FAD,
      0x3FE1, 0x3FC2, 0xBEB5, 0x3EE6, 0xBE3D, 0xBF36, 0xBFB7, 0xBEDB, 0xBFA7, 0xBE90, 0xBF39,
      0xBE60, 0xBF99, 0x3FFE, 0x3F96, 0x3F38, 0x3F4E, 0x3F8A, 0xBFEB, 0xBEB5, 0xBFBD, 0xBDF6,
      0xBF9B, 0x3E99, 0xBEF8, 0x3ED9, 0x3F0C, 0x3F1E, 0x3E86, 0x3F5B, 0x3F37};
  // its input gradient for an output gradient gy
  const std::vector<uint16_t> bf16_gx = {
      0x3CC4, 0xBDBD, 0x3D0C, 0x3D50, 0x3A80, 0xBD93, 0x3C38, 0x3D92, 0x3CB0, 0xBDC2, 0x3D02,
      0x3D46, 0x3D2C, 0xBD98, 0xBDDC, 0x3C9C, 0xBF43, 0x3E82, 0x3EDC, 0x3C10, 0xBF1F, 0x3B90,
      0x3F12, 0x3E19, 0xBF5F, 0x3E14, 0x3EA5, 0x3E94, 0xBF3A, 0xBDD8, 0x3E26, 0x3EAD, 0xBE7C,
      0xBE90, 0xBC90, 0x3EC4, 0xBD4C, 0xBEB1, 0xBDA8, 0x3F14, 0xBDEA, 0xBE19, 0xBE16, 0x3F04,
      0x3DA8, 0xBE5B, 0xBE7F, 0xBE7C, 0xBDF6, 0xBDA5, 0x3E74, 0xBDF6, 0xBE19, 0x3CA8, 0x3E56,
      0xBC9C, 0xBE37, 0xBC10, 0x3E9F, 0xBD46, 0xBD9F, 0xBD1C, 0xBD8A, 0x3E81};
  // float16 base, float32 adapters
  const std::vector<uint16_t> f16_y = {
      0xBFB5, 0xBAF8, 0xBE7A, 0x3B1F, 0x3AEC, 0x3CCB, 0x38FC, 0x3943, 0x3C9E, 0x38E7, 0xB460,
      0xB46E, 0x2878, 0xB8E0, 0xBA33, 0xBD76, 0xBAC4, 0x2F74, 0xB6A3, 0x3661, 0x3A06, 0x3AA4,
      0x2C2C, 0xAA18, 0x3952, 0xACFE, 0xB50B, 0xB89A, 0x2BE8, 0xBA46, 0x2BF8, 0xB966, 0x3D64,
      0x3F0B, 0x3E12, 0xB5A8, 0x3737, 0xB1E3, 0xB9B1, 0xBDB6, 0xB6D9, 0xBD35, 0xB47C, 0xB9CE,
      0xB304, 0xBCC9, 0x3FEF, 0x3CAD, 0x39BE, 0x3A74, 0x3C4D, 0xBF56, 0xB5AB, 0xBDE8, 0xAFB6,
      0xBCDD, 0x34C0, 0xB7BA, 0x36C8, 0x385D, 0x38F3, 0x3433, 0x3AD8, 0x39BC};
  {
    auto base = lora_base();
    auto lora = lora_around(base);
    base->to(DType::bfloat16);
    Tensor x = lora_x().to(DType::bfloat16);
    x.set_requires_grad(true);
    const Tensor y = (*lora)(x);
    EXPECT_EQ(bits_of<BFloat16>(y.detach()), bf16_y);
    y.backward(lora_gy().to(DType::bfloat16));
    EXPECT_EQ(bits_of<BFloat16>(x.grad()), bf16_gx);
  }
  auto base = lora_base();
  auto lora = lora_around(base);
  base->to(DType::float16);
  EXPECT_EQ(bits_of<Half>((*lora)(lora_x().to(DType::float16)).detach()), f16_y);
}

// PEFT's bnb Linear4bit/Linear8bitLt keep rounding the update to the base output's dtype before
// the add.
TEST(LoRALinearDtypes, BitsandbytesBaseRoundsTheUpdateBeforeTheAdd) {
  // bitsandbytes order: update rounded to bfloat16, then added
  const std::vector<uint16_t> bnb_y = {
      0xBFF7, 0xBF5E, 0xBFCF, 0x3F64, 0x3F5D, 0x3F99, 0x3F1F, 0x3F28, 0x3F94, 0x3F1C, 0xBE8C,
      0xBE8E, 0x3D10, 0xBF1C, 0xBF46, 0xBFAF, 0xBF59, 0x3DEC, 0xBED5, 0x3ECC, 0x3F40, 0x3F54,
      0x3D85, 0xBD44, 0x3F2A, 0xBDA0, 0xBEA2, 0xBF14, 0x3D7C, 0xBF48, 0x3D80, 0xBF2D, 0x3FAC,
      0x3FE1, 0x3FC2, 0xBEB5, 0x3EE6, 0xBE3D, 0xBF36, 0xBFB6, 0xBEDA, 0xBFA7, 0xBE8F, 0xBF3A,
      0xBE62, 0xBF99, 0x3FFE, 0x3F96, 0x3F38, 0x3F4E, 0x3F8A, 0xBFEB, 0xBEB6, 0xBFBC, 0xBDF6,
      0xBF9C, 0x3E99, 0xBEF8, 0x3EDA, 0x3F0C, 0x3F1E, 0x3E86, 0x3F5C, 0x3F38};
  auto base = lora_base();
  base->to(DType::bfloat16);
  auto lora = lora_around(std::make_shared<BitsandbytesStandIn>(base));
  EXPECT_EQ(bits_of<BFloat16>((*lora)(lora_x().to(DType::bfloat16)).detach()), bnb_y);
}

// Equal dtypes and CPU autocast: the sum is in the base output's dtype either way.
TEST(LoRALinearDtypes, EqualDtypesAndAutocastAddInTheBaseDtype) {
  // base and adapters bfloat16
  const std::vector<uint16_t> all_bf16_y = {
      0xBFF7, 0xBF5E, 0xBFCF, 0x3F63, 0x3F5D, 0x3F99, 0x3F1F, 0x3F28, 0x3F94, 0x3F1E, 0xBE8D,
      0xBE8E, 0x3D14, 0xBF1C, 0xBF46, 0xBFAF, 0xBF59, 0x3DEC, 0xBED5, 0x3ECC, 0x3F40, 0x3F54,
      0x3D86, 0xBD44, 0x3F2A, 0xBDA0, 0xBEA1, 0xBF13, 0x3D80, 0xBF48, 0x3D80, 0xBF2D, 0x3FAD,
      0x3FE1, 0x3FC2, 0xBEB5, 0x3EE6, 0xBE3D, 0xBF36, 0xBFB6, 0xBEDC, 0xBFA7, 0xBE90, 0xBF3A,
      0xBE62, 0xBF99, 0x3FFE, 0x3F96, 0x3F38, 0x3F4E, 0x3F8A, 0xBFEB, 0xBEB4, 0xBFBC, 0xBDF6,
      0xBF9C, 0x3E98, 0xBEF8, 0x3EDA, 0x3F0C, 0x3F1E, 0x3E86, 0x3F5C, 0x3F38};
  // float32 base and adapters under CPU autocast to bfloat16
  const std::vector<uint16_t> autocast_y = {
      0xBFF7, 0xBF5E, 0xBFCF, 0x3F63, 0x3F5D, 0x3F99, 0x3F1F, 0x3F28, 0x3F94, 0x3F1E, 0xBE8D,
      0xBE8E, 0x3D14, 0xBF1C, 0xBF46, 0xBFAF, 0xBF59, 0x3DEC, 0xBED5, 0x3ECC, 0x3F40, 0x3F54,
      0x3D86, 0xBD44, 0x3F2A, 0xBDA0, 0xBEA1, 0xBF13, 0x3D80, 0xBF48, 0x3D80, 0xBF2D, 0x3FAD,
      0x3FE1, 0x3FC2, 0xBEB5, 0x3EE6, 0xBE3D, 0xBF36, 0xBFB6, 0xBEDC, 0xBFA7, 0xBE90, 0xBF3A,
      0xBE62, 0xBF99, 0x3FFE, 0x3F96, 0x3F38, 0x3F4E, 0x3F8A, 0xBFEB, 0xBEB4, 0xBFBC, 0xBDF6,
      0xBF9C, 0x3E98, 0xBEF8, 0x3EDA, 0x3F0C, 0x3F1E, 0x3E86, 0x3F5C, 0x3F38};
  {
    auto lora = lora_around(lora_base());
    lora->to(DType::bfloat16);
    EXPECT_EQ(bits_of<BFloat16>((*lora)(lora_x().to(DType::bfloat16)).detach()), all_bf16_y);
  }
  auto lora = lora_around(lora_base());
  NoGradGuard no_grad;
  CpuAutocast region(DType::bfloat16);
  EXPECT_EQ(bits_of<BFloat16>((*lora)(lora_x())), autocast_y);
}

// The dropout runs on x already in the adapters' float32 (PEFT casts first): a kept bf16 input
// is scaled by float32's 1 / (1 - p), not by that scale rounded to bf16 (1.109375 for p = 0.1).
// With a bitsandbytes base outside autocast too.
TEST(LoRALinearDtypes, DropoutRunsInTheAdapterDtype) {
  for (bool bnb : {false, true}) {
    SCOPED_TRACE(bnb ? "bitsandbytes base" : "Linear base");
    auto base = lora_base();
    base->to(DType::bfloat16);
    auto lora = bnb ? lora_around(std::make_shared<BitsandbytesStandIn>(base), 0.1)
                    : lora_around(base, 0.1);
    Tensor seen;
    lora->lora_A->register_forward_hook([&](Module&, const Tensor& in, const Tensor& out) {
      seen = in;
      return out;
    });
    const Tensor x = ramp({64, 16}, 37, 11, 97, 48, 64).to(DType::bfloat16);
    (*lora)(x);
    ASSERT_EQ(seen.dtype(), DType::float32);
    const std::vector<float> got = seen.to_vector<float>(),
                             xs = x.to(DType::float32).to_vector<float>();
    const float scale = 1.0f / 0.9f;  // torch: noise.div_(1 - p) in float32
    int kept = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] == 0.0f && xs[i] != 0.0f) continue;
      EXPECT_EQ(got[i], xs[i] * scale) << i;
      kept += xs[i] != 0.0f;
    }
    EXPECT_GT(kept, 800);  // of 1024, about 0.9 kept
  }
}

}  // namespace
}  // namespace fabric::nn
