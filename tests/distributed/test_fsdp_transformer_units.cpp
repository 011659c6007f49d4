// Transformer layers as FSDP units (auto_wrap_policy naming them): the stacks call their layers
// through the hooks that gather a unit's parameters, masks or not. A TransformerEncoder given a
// mask, and every TransformerDecoder, used to call the layers' forward() directly: the parameters
// were still released ("a tensor ... was used while its storage is released").
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

using dist_test::self_argv;
using namespace std::chrono_literals;

// One launch per test: the launched processes rerun the test up to its launch.
void expect_layers_gather_and_match(const std::string& policy) {
  {
    const bool decoder = policy == "TransformerDecoderLayer";
    FabricOptions o{.accelerator = "cpu",
                    .strategy = "fsdp",
                    .devices = 2,
                    .timeout = 120s,
                    .launch_argv = self_argv()};
    o.fsdp.auto_wrap_policy = {policy};
    Fabric fab(o);
    std::vector<std::shared_ptr<nn::Module>> keep;
    fab.launch([&](Fabric& f) {
      const nn::TransformerEncoderLayerOptions enc_layer{
          .d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0};
      const nn::TransformerDecoderLayerOptions dec_layer{
          .d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0};
      auto build = [&]() -> std::shared_ptr<nn::Module> {
        manual_seed(0);
        if (decoder)
          return std::make_shared<nn::TransformerDecoder>(
              nn::TransformerDecoderOptions{dec_layer, 2});
        return std::make_shared<nn::TransformerEncoder>(
            nn::TransformerEncoderOptions{enc_layer, 2});
      };
      auto sharded = build(), plain = build();
      keep.push_back(sharded);
      manual_seed(1);
      const Tensor x = randn({5, 3, 8}), memory = randn({6, 3, 8});
      const Tensor mask = nn::Transformer::generate_square_subsequent_mask(5);
      auto forward = [&](nn::Module& m) {
        if (decoder) return dynamic_cast<nn::TransformerDecoder&>(m).forward(x, memory, mask);
        return dynamic_cast<nn::TransformerEncoder&>(m).forward(x, mask);
      };
      auto model = f.setup_module(sharded);
      const Tensor y = model.run([&] { return forward(model.module()); });
      f.backward(sum(y));
      const Tensor expected = forward(*plain);
      const std::vector<float> got = y.to_vector<float>(), want = expected.to_vector<float>();
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
    });
  }
}

TEST(FSDPTransformerUnits, MaskedEncoderLayersGatherAndMatchTheUnshardedModule) {
  expect_layers_gather_and_match("TransformerEncoderLayer");
}

TEST(FSDPTransformerUnits, DecoderLayersGatherAndMatchTheUnshardedModule) {
  expect_layers_gather_and_match("TransformerDecoderLayer");
}

}  // namespace
}  // namespace fabric
