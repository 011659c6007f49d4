// A 4-bit checkpoint quantized with another blocksize than the layer's (bitsandbytes uses 128 on
// ROCm, any power of two from 32 to 4096 through its API) loads as bitsandbytes' prequantized
// load does: the layer takes the checkpoint's quant state, blocksize included. A checkpoint whose
// absmax length does not fit its own quant state is refused instead of read out of bounds.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "nn/linear.h"
#include "precision/bitsandbytes_precision.h"
#include "precision/linear_4bit.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
using precision::Linear4bit;

std::shared_ptr<Linear4bit> layer(bool nested, int64_t blocksize, uint64_t seed) {
  manual_seed(seed);
  // 256 x 256: 1024 blocks of 64 (4 nested blocks), 512 of 128 (2 nested blocks).
  return Linear4bit::from_linear(nn::Linear({.in_features = 256, .out_features = 256}), "nf4",
                                 nested, DType::float32, blocksize);
}

class Linear4bitOtherBlocksize : public ::testing::TestWithParam<bool> {};

TEST_P(Linear4bitOtherBlocksize, CheckpointBlocksizeIsTaken) {
  const bool nested = GetParam();
  const auto saved = layer(nested, 128, 1);
  const auto target = layer(nested, 64, 2);
  Generator gen(3);
  const Tensor x = randn({3, 256}, {.dtype = DType::float32}, &gen);
  ASSERT_NE(saved->forward(x).to_vector<float>(), target->forward(x).to_vector<float>());

  target->load_state_dict(saved->state_dict());
  EXPECT_EQ(target->forward(x).to_vector<float>(), saved->forward(x).to_vector<float>());
  EXPECT_EQ(target->quant_state().blocksize, 128);
  EXPECT_EQ(target->dequantized_weight().to_vector<float>(),
            saved->dequantized_weight().to_vector<float>());
  // It saves what it holds: the checkpoint's layout comes back out.
  const nn::StateDict again = target->state_dict();
  EXPECT_EQ(again.at("weight.absmax").numel(), saved->state_dict().at("weight.absmax").numel());

  // And a checkpoint of its own blocksize loads back over it.
  const auto own = layer(nested, 64, 4);
  target->load_state_dict(own->state_dict());
  EXPECT_EQ(target->forward(x).to_vector<float>(), own->forward(x).to_vector<float>());
  EXPECT_EQ(target->quant_state().blocksize, 64);
}

TEST_P(Linear4bitOtherBlocksize, AbsmaxThatDoesNotFitTheQuantStateIsRefused) {
  const bool nested = GetParam();
  nn::StateDict damaged = layer(nested, 64, 1)->state_dict();
  damaged.insert("weight.absmax",
                 layer(nested, 128, 1)->state_dict().at("weight.absmax"));  // blob says 64
  const auto target = layer(nested, 64, 2);
  const std::string msg = thrown<ShapeError>([&] {
    target->load_state_dict(damaged);
    (void)target->forward(zeros({1, 256}));
  });
  EXPECT_CONTAINS(msg, "absmax");
}

// The getters describe the loaded checkpoint at once, not only after the next forward (a plain
// load_state_dict, as Fabric::load, has no hook after its copy; each getter re-reads a changed
// quant state itself). Each getter is asked first on a layer of its own.
TEST_P(Linear4bitOtherBlocksize, GettersSeeTheLoadedStateBeforeAnyForward) {
  const bool nested = GetParam();
  const auto saved = layer(nested, 128, 1);
  const nn::StateDict sd = saved->state_dict();
  auto loaded = [&] {
    auto target = layer(nested, 64, 2);
    target->load_state_dict(sd);
    return target;
  };
  EXPECT_EQ(loaded()->quant_state().blocksize, 128);
  EXPECT_EQ(loaded()->quant_state().absmax.numel(), 512);
  if (nested) {
    EXPECT_EQ(loaded()->quant_state().nested_offset, saved->quant_state().nested_offset);
    EXPECT_EQ(loaded()->quant_state().nested_absmax.numel(), 2);
  }
  EXPECT_EQ(loaded()->quantized_weight_bytes(), saved->quantized_weight_bytes());
  EXPECT_EQ(precision::quantized_footprint(*loaded()).bytes,
            precision::quantized_footprint(*saved).bytes);
  EXPECT_EQ(loaded()->dequantized_weight().to_vector<float>(),
            saved->dequantized_weight().to_vector<float>());
}

INSTANTIATE_TEST_SUITE_P(Nested, Linear4bitOtherBlocksize, ::testing::Bool());

}  // namespace
}  // namespace fabric
