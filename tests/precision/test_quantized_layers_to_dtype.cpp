// Module::to(dtype) on the quantized and FP8 layers: bitsandbytes keeps absmax, the code tables
// and SCB in the quant state (and Int8Params), Transformer Engine its fp8_meta, outside the
// module's buffers, so `model.to(bfloat16)` converts only the bias (and a trainable weight) and
// the layer goes on as before. Here they are buffers kept out of the conversion; before, the
// statistics became bfloat16/float16 and the next forward threw (or an FP8 scale overflowed to
// inf).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/linear.h"
#include "precision/fp8_linear.h"
#include "precision/linear_4bit.h"
#include "precision/linear_8bit.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric::precision {
namespace {

// Every floating state_dict entry but the bias (and a trainable weight) is float32.
void expect_statistics_float32(const nn::Module& m, DType to) {
  for (const auto& [key, t] : m.state_dict()) {
    if (!t.is_floating_point()) continue;
    const bool converted = key == "bias" || (key == "weight" && t.requires_grad());
    EXPECT_EQ(t.dtype(), converted ? to : DType::float32) << key;
  }
}

TEST(QuantizedLayersToDtype, Linear4bitKeepsItsStatistics) {
  manual_seed(0);
  nn::Linear lin({.in_features = 64, .out_features = 300});
  const Tensor x = randn({2, 64}).to(DType::bfloat16);
  for (const bool nested : {false, true})
    for (const DType to : {DType::bfloat16, DType::float16}) {
      SCOPED_TRACE(std::string(nested ? "nf4-dq" : "nf4") + " to " + std::string(dtype_name(to)));
      auto layer = Linear4bit::from_linear(lin, "nf4", nested, DType::bfloat16);
      const Tensor before = layer->forward(x);
      layer->to(to);
      expect_statistics_float32(*layer, to);
      EXPECT_EQ(layer->forward(x).sizes(), before.sizes());
    }
}

TEST(QuantizedLayersToDtype, Linear8bitKeepsItsScb) {
  manual_seed(0);
  nn::Linear lin({.in_features = 64, .out_features = 300});
  const Tensor x = randn({2, 64}).to(DType::float16);
  auto layer = Linear8bitLt::from_linear(lin, /*has_fp16_weights=*/false, 6.0);
  const Tensor before = layer->forward(x);
  layer->to(DType::float16);
  expect_statistics_float32(*layer, DType::float16);
  ASSERT_EQ(layer->SCB.dtype(), DType::float32);
  // The bias was float16 already: the output is the same.
  EXPECT_EQ(layer->forward(x).to(DType::float32).to_vector<float>(),
            before.to(DType::float32).to_vector<float>());
}

// int8-training quantizes its trainable weight from float16 on every forward, as bitsandbytes'
// MatMul8bitLt quantizes B.to(float16) (spec §7: the int8 modes compute in fp16), whatever dtype
// Module::to gave the weight: a float64 one works (int8_vectorwise_quant refused it), and a
// float32 or float64 weight off the float16 grid (as training in that dtype leaves it) gives the
// layer of its float16 rounding, forward and input gradient bit for bit; its weight gradient comes
// in its own dtype.
TEST(QuantizedLayersToDtype, Int8TrainingQuantizesTheWeightFromFloat16) {
  manual_seed(0);
  nn::Linear lin({.in_features = 64, .out_features = 48});
  Generator gen(1);
  // Off the float16 grid: a float16 weight plus less than half its ulp, in float64.
  const Tensor w64 = add(lin.weight.detach().to(DType::float16).to(DType::float64),
                         mul(randn({48, 64}, {.dtype = DType::float64}, &gen), 1e-5));
  std::vector<float> xv = randn({5, 64}, {.dtype = DType::float32}, &gen).to_vector<float>();
  for (int r = 0; r < 5; ++r) xv[size_t(r * 64 + 3)] = 8.0f;  // an outlier column (threshold 6)
  for (const DType to : {DType::float32, DType::float64}) {
    SCOPED_TRACE(std::string("to ") + std::string(dtype_name(to)));
    auto wide = Linear8bitLt::from_linear(lin, /*has_fp16_weights=*/true, 6.0);
    wide->to(to);
    auto ref = Linear8bitLt::from_linear(lin, /*has_fp16_weights=*/true, 6.0);  // float16
    {
      NoGradGuard no_grad;
      wide->weight.copy_(w64.to(to));
      ref->weight.copy_(w64.to(to).to(DType::float16));  // wide's weight rounded to float16
    }
    ASSERT_EQ(wide->weight.dtype(), to);
    ASSERT_NE(wide->weight.to(DType::float16).to(to).to_vector<double>(),
              wide->weight.to_vector<double>());
    const Tensor x = from_vector(xv, {5, 64}).to(to);
    Tensor xw = x.clone(), xr = x.clone();
    xw.set_requires_grad(true);
    xr.set_requires_grad(true);
    const Tensor yw = wide->forward(xw), yr = ref->forward(xr);
    ASSERT_EQ(yw.dtype(), to);
    EXPECT_EQ(yw.to_vector<double>(), yr.to_vector<double>());
    EXPECT_EQ(wide->dequantized_weight().to_vector<float>(),
              ref->dequantized_weight().to_vector<float>());
    backward(sum(yw));
    backward(sum(yr));
    EXPECT_EQ(xw.grad().to_vector<double>(), xr.grad().to_vector<double>());
    ASSERT_TRUE(wide->weight.grad().defined());
    EXPECT_EQ(wide->weight.grad().dtype(), to);
    const auto gw = wide->weight.grad().to_vector<double>();
    const auto gr = ref->weight.grad().to_vector<double>();
    ASSERT_EQ(gw.size(), gr.size());
    // ref's dW is rounded to float16, wide's to float32 (spec §7: matched with a tolerance).
    for (size_t i = 0; i < gw.size(); ++i) {
      EXPECT_NEAR(gw[i], gr[i], 2e-3 * std::fabs(gr[i]) + 1e-3) << i;
    }
  }
}

TEST(QuantizedLayersToDtype, Fp8LinearKeepsItsMetaInFloat32) {
  manual_seed(0);
  FP8Linear layer({.in_features = 16,
                   .out_features = 16,
                   .recipe = {.fp8_format = Fp8Format::HYBRID, .amax_history_len = 4}});
  auto step = [&] {
    const Tensor x = full({4, 16}, 1.0).to(layer.weight.dtype());
    Tensor y;
    {
      auto guard = fp8_autocast();
      y = layer.forward(x);
    }
    backward(mul(sum(y.to(DType::float32)), scalar_tensor(1e-3)));  // grad_output amax 1e-3
    fp8_update_backward_metas();
  };
  step();
  const float scale = layer.fp8_meta().scale_at(Fp8Direction::backward, 0);
  ASSERT_GT(scale, 65504.f);  // 57344 / 1e-3: past float16's range
  layer.to(DType::float16);
  for (const auto& [key, t] : layer.state_dict())
    if (key.rfind("_extra_state.", 0) == 0) EXPECT_EQ(t.dtype(), DType::float32) << key;
  EXPECT_EQ(layer.fp8_meta().scale_at(Fp8Direction::backward, 0), scale);
  EXPECT_NO_THROW(step());
}

}  // namespace
}  // namespace fabric::precision
