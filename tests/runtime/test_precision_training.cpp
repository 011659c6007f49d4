// Training through Fabric under every CPU precision: the MLP (SGD momentum) and the GPT (AdamW)
// take the same steps on the same data from the same initial weights, and the losses stay within
// a stated tolerance of the float32 run. Also the 16-mixed loss-scaler contract end to end: an
// injected inf gradient skips exactly that step, and save -> load -> continue matches an
// uninterrupted run.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <unistd.h>
#include <vector>

#include "autograd/autograd.h"
#include "nn/gpt.h"
#include "nn/mlp.h"
#include "optim/optim.h"
#include "precision/mixed_precision.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

constexpr int kSteps = 8;

struct TrainRun {
  std::vector<double> losses;
};

// The MLP 16-32-10 on a fixed batch stream, SGD momentum 0.9.
TrainRun train_mlp(const std::string& precision) {
  Fabric fab({.accelerator = "cpu", .precision = precision});
  manual_seed(5);
  auto mlp = nn::make<nn::MLP>({.sizes = {16, 32, 10}, .activation = "relu"});
  optim::SGD sgd(mlp->parameters(), {.lr = 0.1, .momentum = 0.9});
  auto [model, opt] = fab.setup(mlp, sgd);
  Generator gen(17);
  // One fixed batch: the loss must fall as the MLP fits it.
  const Tensor x = randn({32, 16}, {.dtype = DType::float32}, &gen);
  const Tensor y = randint(0, 10, {32}, {.dtype = DType::int64}, &gen);
  TrainRun run;
  for (int s = 0; s < kSteps; ++s) {
    opt.zero_grad();
    Tensor loss = cross_entropy(model(x), y);
    EXPECT_EQ(loss.dtype(), DType::float32) << precision << ": outputs come back as float32";
    fab.backward(loss);
    opt.step();
    run.losses.push_back(loss.item<double>());
  }
  return run;
}

// A small GPT (2 layers, C=32) on random tokens, AdamW.
TrainRun train_gpt(const std::string& precision) {
  Fabric fab({.accelerator = "cpu", .precision = precision});
  manual_seed(9);
  auto gpt = nn::make<nn::GPT>({.vocab_size = 24, .block_size = 16, .n_layer = 2, .n_head = 2, .n_embd = 32});
  // eps 1e-4, not 1e-8: under 16-true the optimizer state is float16, where small squared
  // gradients underflow to 0 and 1e-8 itself rounds to 0, so m / (sqrt(v) + eps) would be inf
  // (PyTorch's AdamW on float16 parameters fails the same way). Same eps for every precision.
  optim::AdamW adamw(gpt->parameters(), {.lr = 3e-3, .eps = 1e-4, .weight_decay = 0.01});
  auto [model, opt] = fab.setup(gpt, adamw);
  Generator gen(23);
  TrainRun run;
  for (int s = 0; s < kSteps; ++s) {
    // A learnable stream: each target is the next token of a repeating pattern.
    const auto start = randint(0, 24, {4}, {.dtype = DType::int64}, &gen).to_vector<int64_t>();
    std::vector<int64_t> in, out;
    for (int64_t b = 0; b < 4; ++b)
      for (int64_t t = 0; t < 16; ++t) {
        in.push_back((start[size_t(b)] + t) % 24);
        out.push_back((start[size_t(b)] + t + 1) % 24);
      }
    const Tensor idx = from_vector(in, {4, 16}), tgt = from_vector(out, {4, 16});
    opt.zero_grad();
    Tensor logits = model(idx);
    Tensor loss = cross_entropy(logits.view({-1, 24}), tgt.view({-1}));
    fab.backward(loss);
    // Under 16-mixed the first steps overflow at scale 2^16 (and are skipped): the norm is then
    // inf, which must not raise here.
    fab.clip_gradients(model, opt, {.max_norm = 1.0, .error_if_nonfinite = false});
    opt.step();
    run.losses.push_back(loss.item<double>());
  }
  return run;
}

// Relative distance of the last loss from the float32 run's, and the loss must have gone down.
void expect_close_to_fp32(const TrainRun& run, const TrainRun& ref, double tol, const std::string& what) {
  ASSERT_EQ(run.losses.size(), ref.losses.size());
  for (double l : run.losses) ASSERT_TRUE(std::isfinite(l)) << what;
  const double last = run.losses.back(), ref_last = ref.losses.back();
  EXPECT_LE(std::abs(last - ref_last), tol * std::abs(ref_last))
      << what << ": final loss " << last << " vs float32 " << ref_last;
  EXPECT_LT(last, run.losses.front()) << what << ": the loss did not go down";
}

struct Case {
  const char* precision;
  double tol;  // relative to the float32 run's final loss
};
// float64 differs from float32 by rounding only; mixed modes by their half-precision compute
// (8-11 significant bits) with float32 weights; the true half modes also keep weights and
// optimizer state in 16 bits, so every update is rounded too.
const Case kCases[] = {{"64-true", 1e-4}, {"32-true", 0.0},   {"16-mixed", 2e-2},
                       {"bf16-mixed", 5e-2}, {"16-true", 1e-1}, {"bf16-true", 1e-1}};

TEST(PrecisionTraining, MlpUnderEveryPrecisionTracksFloat32) {
  const TrainRun ref = train_mlp("32-true");
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.precision);
    expect_close_to_fp32(train_mlp(c.precision), ref, c.tol, c.precision);
  }
}

TEST(PrecisionTraining, GptUnderEveryPrecisionTracksFloat32) {
  const TrainRun ref = train_gpt("32-true");
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.precision);
    expect_close_to_fp32(train_gpt(c.precision), ref, c.tol, c.precision);
  }
}

std::vector<std::vector<float>> snapshot(const std::vector<Tensor>& params) {
  std::vector<std::vector<float>> out;
  for (const Tensor& p : params) out.push_back(p.to(DType::float32).contiguous().to_vector<float>());
  return out;
}

TEST(MixedPrecision16, InjectedInfGradientSkipsExactlyThatStep) {
  Fabric fab({.accelerator = "cpu", .precision = "16-mixed"});
  auto* mp = dynamic_cast<precision::MixedPrecision*>(&fab.precision());
  ASSERT_NE(mp, nullptr);
  ASSERT_NE(mp->scaler(), nullptr);
  manual_seed(1);
  auto mlp = nn::make<nn::MLP>({.sizes = {8, 16, 4}});
  optim::SGD sgd(mlp->parameters(), {.lr = 0.1, .momentum = 0.9});
  auto [model, opt] = fab.setup(mlp, sgd);
  Generator gen(2);
  const Tensor x = randn({16, 8}, {}, &gen);
  const Tensor y = randint(0, 4, {16}, {.dtype = DType::int64}, &gen);
  for (int step = 0; step < 4; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy(model(x), y);
    fab.backward(loss);
    const double scale_before = mp->scaler()->get_scale();
    const auto before = snapshot(model.parameters());
    if (step == 2) {
      // One inf in one gradient: the whole step must be skipped.
      Tensor g = model.parameters()[1].grad();
      g.fill_(std::numeric_limits<double>::infinity());
    }
    const bool stepped = opt.step();
    const auto after = snapshot(model.parameters());
    if (step == 2) {
      EXPECT_FALSE(stepped);
      EXPECT_EQ(after, before) << "weights must stay bit-identical on a skipped step";
      EXPECT_EQ(mp->scaler()->get_scale(), scale_before * 0.5);
    } else {
      EXPECT_TRUE(stepped) << "step " << step;
      EXPECT_NE(after, before) << "step " << step;
      EXPECT_EQ(mp->scaler()->get_scale(), scale_before);
    }
  }
  EXPECT_EQ(mp->scaler()->get_scale(), 32768.0);
}

TEST(MixedPrecision16, PlainBackwardThroughWrappedModelRaises) {
  Fabric fab({.accelerator = "cpu", .precision = "16-mixed"});
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 3}});
  auto model = fab.setup(mlp);
  Tensor loss = sum(model(ones({2, 4})));
  EXPECT_THROW(loss.backward(), Error);
  // Through Fabric it works.
  Tensor loss2 = sum(model(ones({2, 4})));
  EXPECT_NO_THROW(fab.backward(loss2));
  EXPECT_TRUE(mlp->parameters()[0].grad().defined());
}

// Trains `steps` steps of the 16-mixed MLP from a checkpoint (or from scratch) and returns the
// losses; saves a checkpoint after `save_after` steps when given.
std::vector<double> mixed_run(int from_step, int to_step, const std::string& load_dir,
                              const std::string& save_dir, int save_after) {
  Fabric fab({.accelerator = "cpu", .precision = "16-mixed"});
  manual_seed(3);
  auto mlp = nn::make<nn::MLP>({.sizes = {8, 32, 4}});
  optim::AdamW adamw(mlp->parameters(), {.lr = 1e-2});
  auto [model, opt] = fab.setup(mlp, adamw);
  auto* scaler = dynamic_cast<precision::MixedPrecision&>(fab.precision()).scaler();
  scaler->set_growth_interval(3);  // let the scale move during the run
  int64_t step = from_step;
  if (!load_dir.empty()) {
    State state{{"model", model}, {"optimizer", opt}, {"step", int64_t(0)}};
    fab.load(load_dir, state);
    EXPECT_EQ(std::get<int64_t>(state.at("step").value()), from_step);
  }
  std::vector<double> losses;
  for (; step < to_step; ++step) {
    Generator gen(1000 + uint64_t(step));  // the data depends on the step only
    const Tensor x = randn({16, 8}, {}, &gen);
    const Tensor y = randint(0, 4, {16}, {.dtype = DType::int64}, &gen);
    opt.zero_grad();
    Tensor loss = cross_entropy(model(x), y);
    fab.backward(loss);
    opt.step();
    losses.push_back(loss.item<double>());
    if (step + 1 == save_after)
      fab.save(save_dir, {{"model", model}, {"optimizer", opt}, {"step", int64_t(step + 1)}});
  }
  return losses;
}

TEST(MixedPrecision16, SaveLoadContinueMatchesUninterrupted) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("fabric_mixed_ckpt_" + std::to_string(::getpid()))).string();
  const std::vector<double> full = mixed_run(0, 10, "", dir, 5);
  const std::vector<double> resumed = mixed_run(5, 10, dir, "", -1);
  ASSERT_EQ(resumed.size(), 5u);
  for (size_t i = 0; i < resumed.size(); ++i) EXPECT_EQ(resumed[i], full[5 + i]) << "step " << 5 + i;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fabric
