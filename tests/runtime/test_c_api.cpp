// The C API's model forward (runtime/c_api.h) against the C++ API on the same checkpoint: the
// model as load_checkpoint_model builds it, run in eval mode under the precision plugin's forward
// context, no gradients. c_api_test.c covers the rest of the C API from C.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "runtime/c_api.h"
#include "runtime/checkpoint_model.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {

// A run of mlp-tensors.yaml fit through the C API under `precision`; its checkpoints/last.
std::string fit_mlp(const std::filesystem::path& dir, const std::string& precision) {
  const std::string run_set = "trainer.run_dir=" + (dir / "run").string();
  const std::string precision_set = "fabric.precision=" + precision;
  const char* sets[] = {"trainer.max_steps=2", run_set.c_str(), precision_set.c_str()};
  EXPECT_EQ(fabric_fit(FABRIC_CONFIG_DIR "/mlp-tensors.yaml", sets, 3, nullptr), FABRIC_OK)
      << fabric_last_error();
  return (dir / "run/checkpoints/last").string();
}

std::vector<float> c_api_forward(const std::string& checkpoint, const Tensor& x) {
  fabric_model* model = nullptr;
  fabric_tensor* input = nullptr;
  fabric_tensor* output = nullptr;
  EXPECT_EQ(fabric_model_load(checkpoint.c_str(), &model), FABRIC_OK) << fabric_last_error();
  const int64_t shape[] = {x.shape()[0], x.shape()[1]};
  EXPECT_EQ(fabric_tensor_create(x.data_ptr(), shape, 2, FABRIC_FLOAT32, &input), FABRIC_OK);
  EXPECT_EQ(fabric_model_forward(model, input, &output), FABRIC_OK) << fabric_last_error();
  int64_t numel = 0;
  fabric_dtype dtype = FABRIC_INT8;
  EXPECT_EQ(fabric_tensor_numel(output, &numel), FABRIC_OK);
  EXPECT_EQ(fabric_tensor_dtype(output, &dtype), FABRIC_OK);
  EXPECT_EQ(dtype, FABRIC_FLOAT32);
  std::vector<float> values(static_cast<size_t>(numel));
  EXPECT_EQ(fabric_tensor_copy_to(output, values.data(), values.size() * sizeof(float)), FABRIC_OK);
  EXPECT_EQ(fabric_tensor_free(output), FABRIC_OK);
  EXPECT_EQ(fabric_tensor_free(input), FABRIC_OK);
  EXPECT_EQ(fabric_model_free(model), FABRIC_OK);
  return values;
}

// The C++ API's forward on the same checkpoint: in the plugin's context, or (`in_context`
// false) the converted model called plainly.
std::vector<float> cpp_forward(const std::string& checkpoint, const Tensor& x, bool in_context) {
  CheckpointModel c = read_checkpoint_config(checkpoint);
  load_checkpoint_model(c, checkpoint);
  c.model->eval();
  NoGradGuard no_grad;
  Tensor y;
  if (in_context) {
    precision::ContextGuard guard = c.plugin->forward_context();
    y = (*c.model)(c.plugin->convert_input(x));
  } else {
    y = (*c.model)(x);
  }
  y = c.plugin->convert_output(y).to(DType::float32).contiguous();
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

TEST(CApi, ForwardIsTheCppApisOnTheSameCheckpoint) {
  const auto dir = train_test::fresh_test_dir("c_api_forward");
  const std::string checkpoint = fit_mlp(dir, "32-true");
  manual_seed(3);
  const Tensor x = randn({5, 784});
  const std::vector<float> c = c_api_forward(checkpoint, x);
  ASSERT_EQ(c.size(), 50u);
  EXPECT_EQ(c, cpp_forward(checkpoint, x, true));
  std::filesystem::remove_all(dir);
}

// Under bf16-mixed the forward runs in the autocast region training ran in (bfloat16 GEMMs):
// not the float32 values of the same weights called outside it.
TEST(CApi, ForwardRunsInThePrecisionPluginsContext) {
  const auto dir = train_test::fresh_test_dir("c_api_forward_bf16");
  const std::string checkpoint = fit_mlp(dir, "bf16-mixed");
  manual_seed(4);
  const Tensor x = randn({5, 784});
  const std::vector<float> c = c_api_forward(checkpoint, x);
  EXPECT_EQ(c, cpp_forward(checkpoint, x, true));
  EXPECT_NE(c, cpp_forward(checkpoint, x, false));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fabric
