// FabricOptions::fsdp's param/reduce/buffer dtypes win over the precision plugin's, as Lightning's
// FSDPStrategy(mixed_precision=...) overrides FSDPPrecision's config. The plugin's replaced them
// silently: under 32-true an asked-for bfloat16 compute ran in float32, and bf16-mixed's float32
// reduction could not be asked for at all.
#include <gtest/gtest.h>

#include <vector>

#include "nn/linear.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

TEST(FSDPUserMixedPrecision, TheUsersParamDtypeWinsOverThePlugins) {
  manual_seed(5);
  const Tensor x = randn({4, 64});
  FabricOptions o{.accelerator = "cpu", .strategy = "fsdp", .devices = 1, .precision = "32-true"};
  o.fsdp.param_dtype = DType::bfloat16;
  Fabric fab(o);
  manual_seed(0);
  auto lin = nn::make<nn::Linear>({.in_features = 64, .out_features = 8});
  const Tensor w = lin->weight.detach().clone(), b = lin->bias.detach().clone();
  auto model = fab.setup_module(lin);
  const Tensor got = model(x);
  const Tensor in_bf16 =
      linear(x.to(DType::bfloat16), w.to(DType::bfloat16), b.to(DType::bfloat16));
  EXPECT_EQ(got.to(DType::float32).to_vector<float>(),
            in_bf16.to(DType::float32).to_vector<float>());
  EXPECT_NE(got.to(DType::float32).to_vector<float>(), linear(x, w, b).to_vector<float>());
}

TEST(FSDPUserMixedPrecision, WithoutUserDtypesThePluginsApply) {
  manual_seed(5);
  const Tensor x = randn({4, 64});
  Fabric fab(FabricOptions{
      .accelerator = "cpu", .strategy = "fsdp", .devices = 1, .precision = "bf16-mixed"});
  manual_seed(0);
  auto lin = nn::make<nn::Linear>({.in_features = 64, .out_features = 8});
  const Tensor w = lin->weight.detach().clone(), b = lin->bias.detach().clone();
  auto model = fab.setup_module(lin);
  const Tensor in_bf16 =
      linear(x.to(DType::bfloat16), w.to(DType::bfloat16), b.to(DType::bfloat16));
  EXPECT_EQ(model(x).to(DType::float32).to_vector<float>(),
            in_bf16.to(DType::float32).to_vector<float>());
}

}  // namespace
}  // namespace fabric
