// Generating text is inference: it neither changes the model nor keeps it alive. An FP8 model's
// region used to close with grad mode on (the no-grad guard was opened inside it), so a generate
// updated the FP8 scales as a training step does (the same input's logits changed after it) and
// queued the layers for a backward that never came, keeping every freed model's FP8 state.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "precision/fp8_linear.h"
#include "precision/precision.h"
#include "runtime/checkpoint_model.h"
#include "runtime/sample_stream.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
using namespace train_test;

class GenerateKeepsTheModel : public RunDirTest {};

TEST_F(GenerateKeepsTheModel, AnFP8ModelsLogitsAreTheSameAfterAGenerate) {
  start("fabric_generate_fp8");
  if (IsSkipped()) return;
  const Result fit =
      run("fit " + write_tiny_gpt_config("run") + " --set fabric.precision=transformer-engine");
  ASSERT_EQ(fit.status, 0) << fit.output;
  const std::string dir = (dir_ / "run" / "checkpoints" / "last").string();
  CheckpointModel c = read_checkpoint_config(dir);
  load_checkpoint_model(c, dir);
  c.model->eval();
  const Tensor x = from_vector(std::vector<int64_t>{1, 2, 3, 4}, {1, 4});
  auto logits = [&] {
    NoGradGuard no_grad;
    precision::ContextGuard context = c.plugin->forward_context();
    return (*c.model)(x).to_vector<float>();
  };
  const std::vector<float> before = logits();
  EXPECT_EQ(logits(), before);  // a forward alone changes nothing
  generate_text(c, "the", "prompt", 5, 1.0, 0, 7, [](const std::string&) {});
  EXPECT_EQ(logits(), before);
}

// A forward with grad mode on that never sees a backward (an evaluation without no_grad) queues the
// layer's backward meta; freeing the layer drops it from the queue instead of keeping it alive.
TEST(Fp8Region, AFreedLayerIsNotKeptForABackwardThatNeverCame) {
  precision::fp8_update_backward_metas();  // an empty queue to start from
  {
    auto layer = std::make_shared<precision::FP8Linear>(
        precision::FP8LinearOptions{.in_features = 16, .out_features = 16});
    precision::ContextGuard region = precision::fp8_autocast(true);
    (void)(*layer)(randn({4, 16}));
  }
  EXPECT_EQ(precision::fp8_update_backward_metas(), 0);
  auto kept = std::make_shared<precision::FP8Linear>(
      precision::FP8LinearOptions{.in_features = 16, .out_features = 16});
  {
    precision::ContextGuard region = precision::fp8_autocast(true);
    (void)(*kept)(randn({4, 16}));
  }
  EXPECT_EQ(precision::fp8_update_backward_metas(), 1);  // a live layer is still updated
}

}  // namespace
}  // namespace fabric
