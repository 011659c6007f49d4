// BatchNorm1d/BatchNorm2d/GroupNorm against torch 1.13 (batch_norm_fixture.h: outputs, running
// statistics after two training steps with momentum and with the cumulative average, gradients in
// train and eval mode), and the layers' torch contract: state_dict keys and dtypes, printout,
// modes, errors, running statistics outside autograd, half inputs with float32 statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"
#include "tests/nn/batch_norm_fixture.h"

namespace fabric::nn {
namespace {

using testing::NormLayerFixture;

std::shared_ptr<Module> make_layer(const NormLayerFixture& f) {
  const std::string layer = f.layer;
  if (layer == "GroupNorm")
    return std::make_shared<GroupNorm>(
        GroupNormOptions{.num_groups = f.groups, .num_channels = f.channels, .affine = f.affine});
  BatchNormOptions o{.num_features = f.channels, .affine = f.affine};
  o.momentum = f.momentum < 0 ? std::nullopt : std::optional<double>(f.momentum);
  if (layer == "BatchNorm1d") return std::make_shared<BatchNorm1d>(o);
  return std::make_shared<BatchNorm2d>(o);
}

void expect_close(const Tensor& got, const std::vector<double>& want, double tol,
                  const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  const std::vector<double> g = got.to(DType::float64).to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_NEAR(g[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << what << " element " << i;
}

// sum(layer(x) * gy) backpropagated: {y, dx, dweight, dbias}.
std::vector<Tensor> run(Module& layer, const Tensor& x_in, const Tensor& gy) {
  Tensor x = x_in.detach().clone().set_requires_grad(true);
  layer.zero_grad();
  Tensor y = layer(x);
  backward(sum(mul(y, gy)));
  std::vector<Tensor> out = {y, x.grad(), Tensor(), Tensor()};
  const Module::NamedTensors params = layer.named_parameters();  // weight, bias when affine
  for (size_t i = 0; i < params.size(); ++i) out[2 + i] = params[i].second.grad();
  return out;
}

TEST(BatchNormTorch, MatchesTorchFixtures) {
  for (const DType dt : {DType::float64, DType::float32}) {
    const double tol = dt == DType::float64 ? 1e-10 : 2e-5;
    for (const NormLayerFixture& f : testing::norm_layer_fixtures()) {
      SCOPED_TRACE(std::string(f.name) + " " + std::string(dtype_name(dt)));
      std::shared_ptr<Module> layer = make_layer(f);
      layer->to(dt);
      const TensorOptions o{.dtype = dt};
      if (f.affine) {
        layer->named_parameters()[0].second.detach().copy_(from_vector(f.weight, {f.channels}, o));
        layer->named_parameters()[1].second.detach().copy_(from_vector(f.bias, {f.channels}, o));
      }
      const Tensor x1 = from_vector(f.x1, f.shape, o), x2 = from_vector(f.x2, f.shape, o);
      const Tensor gy = from_vector(f.gy, f.shape, o);
      layer->train();
      (*layer)(x1);
      std::vector<Tensor> t = run(*layer, x2, gy);
      expect_close(t[0], f.y2, tol, "train output");
      expect_close(t[1], f.dx2, tol, "train dx");
      if (f.affine) {
        expect_close(t[2], f.dweight, tol, "train dweight");
        expect_close(t[3], f.dbias, tol, "train dbias");
      }
      if (auto* bn = dynamic_cast<BatchNorm*>(layer.get())) {
        expect_close(bn->running_mean, f.running_mean, tol, "running_mean");
        expect_close(bn->running_var, f.running_var, tol, "running_var");
        EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), f.num_batches_tracked);
      }
      layer->eval();
      std::vector<Tensor> e = run(*layer, x1, gy);
      expect_close(e[0], f.y_eval, tol, "eval output");
      expect_close(e[1], f.dx_eval, tol, "eval dx");
      if (f.affine) {
        expect_close(e[2], f.dweight_eval, tol, "eval dweight");
        expect_close(e[3], f.dbias_eval, tol, "eval dbias");
      }
    }
  }
}

// The float32 running statistics round as torch 1.13's CPU update: the mean as (1 - m) * rm +
// m * mean, each product rounded; the variance adds m * unbiased to the rounded (1 - m) * rv with
// one rounding (an fma). On integer data the batch statistics are exact in any order, so these
// are torch's bits (F.batch_norm(x, rm, rv, training=True, momentum=m) with x[n][c][l] =
// (7n + 3c + 5l) % 17 - 8, rv = 0.5 + 0.137c, rm = 0.25 - 0.41c): rv[1] at m = 0.1 was one ulp
// off with every product rounded.
TEST(BatchNormTorch, Float32RunningStatisticsRoundAsTorchs) {
  const int64_t N = 4, C = 5, L = 8;
  std::vector<float> xv;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t l = 0; l < L; ++l)
        xv.push_back(static_cast<float>((n * 7 + c * 3 + l * 5) % 17 - 8));
  const Tensor x = from_vector<float>(xv, {N, C, L});
  struct Row {
    double momentum;
    std::vector<float> var, mean;
  };
  const std::vector<Row> rows = {
      {0.1,
       {0x1.77baa2p+1f, 0x1.7d33a6p+1f, 0x1.827484p+1f, 0x1.a66b0ep+1f, 0x1.bfa2p+1f},
       {0x1.399998p-3f, -0x1.73b644p-3f, -0x1.da1ca8p-2f, -0x1.b3958p-1f, -0x1.4aa7eep+0f}},
      {0.3,
       {0x1.f397f4p+2f, 0x1.ea4444p+2f, 0x1.e09c58p+2f, 0x1.028278p+3f, 0x1.0ca712p+3f},
       {-0x1.4cccdp-5f, -0x1.cbc6a8p-3f, -0x1.fdf3b4p-3f, -0x1.2f3b64p-1f, -0x1.1849bap+0f}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.momentum);
    std::vector<float> rv0, rm0;
    for (int64_t c = 0; c < C; ++c) {
      rv0.push_back(static_cast<float>(0.5 + 0.137 * static_cast<double>(c)));
      rm0.push_back(static_cast<float>(0.25 - 0.41 * static_cast<double>(c)));
    }
    Tensor rv = from_vector<float>(rv0, {C}), rm = from_vector<float>(rm0, {C});
    batch_norm(x, rm, rv, Tensor(), Tensor(), /*training=*/true, r.momentum, 1e-5);
    EXPECT_EQ(rv.to_vector<float>(), r.var);
    EXPECT_EQ(rm.to_vector<float>(), r.mean);
  }
}

TEST(BatchNormLayers, StateDictKeysAndDtypesAsTorch) {
  struct Row {
    std::string name;
    std::shared_ptr<Module> layer;
    std::vector<std::string> keys;
  };
  const std::vector<Row> rows = {
      {"bn2d",
       std::make_shared<BatchNorm2d>(BatchNormOptions{.num_features = 8}),
       {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}},
      {"bn1d_no_affine",
       std::make_shared<BatchNorm1d>(BatchNormOptions{.num_features = 4, .affine = false}),
       {"running_mean", "running_var", "num_batches_tracked"}},
      {"bn2d_untracked",
       std::make_shared<BatchNorm2d>(
           BatchNormOptions{.num_features = 4, .track_running_stats = false}),
       {"weight", "bias"}},
      {"gn",
       std::make_shared<GroupNorm>(GroupNormOptions{.num_groups = 2, .num_channels = 4}),
       {"weight", "bias"}},
      {"gn_no_affine",
       std::make_shared<GroupNorm>(
           GroupNormOptions{.num_groups = 2, .num_channels = 4, .affine = false}),
       {}}};
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    StateDict sd = r.layer->state_dict();
    std::vector<std::string> keys;
    for (const auto& [k, v] : sd) keys.push_back(k);
    EXPECT_EQ(keys, r.keys);
    for (const auto& [k, v] : sd) {
      if (k == "num_batches_tracked") {
        EXPECT_EQ(v.dtype(), DType::int64);
        EXPECT_EQ(v.dim(), 0);
        EXPECT_EQ(v.item<int64_t>(), 0);
      } else {
        EXPECT_EQ(v.dtype(), DType::float32) << k;
      }
    }
  }
  // Module::to(dtype) leaves the int64 counter alone, as torch's .half().
  BatchNorm2d bn({.num_features = 3});
  bn.to(DType::bfloat16);
  EXPECT_EQ(bn.running_var.dtype(), DType::bfloat16);
  EXPECT_EQ(bn.num_batches_tracked.dtype(), DType::int64);
}

// A state dict without num_batches_tracked (torch before 0.4.1, or made by hand) loads with the
// counter 0, as torch fills it for a state dict without a version; a load of other modules' keys
// only (strict = false) leaves the counter alone.
TEST(BatchNormLayers, AStateWithoutTheBatchCounterLoadsWithZero) {
  BatchNorm2d bn({.num_features = 2});
  bn.num_batches_tracked.fill_(7);
  StateDict old;
  for (const auto& [k, v] : bn.state_dict())
    if (k != "num_batches_tracked") old.insert(k, v.clone());
  bn.load_state_dict(old);
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 0);
  // As torch loading a dict without version metadata: the missing counter is 0 whatever else the
  // state lacks.
  bn.num_batches_tracked.fill_(7);
  StateDict other;
  other.insert("weight", ones({2}));
  bn.load_state_dict(other, /*strict=*/false);
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 0);
}

TEST(BatchNormLayers, PrintsAsTorch) {
  EXPECT_EQ(BatchNorm2d({.num_features = 8}).str(),
            "BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
  EXPECT_EQ(BatchNorm1d({.num_features = 4,
                         .eps = 1e-3,
                         .momentum = std::nullopt,
                         .affine = false,
                         .track_running_stats = false})
                .str(),
            "BatchNorm1d(4, eps=0.001, momentum=None, affine=False, track_running_stats=False)");
  EXPECT_EQ(GroupNorm({.num_groups = 2, .num_channels = 8}).str(),
            "GroupNorm(2, 8, eps=1e-05, affine=True)");
}

TEST(BatchNormLayers, ModesAndResets) {
  manual_seed(7);
  BatchNorm2d bn({.num_features = 3});
  const Tensor x = add(mul(randn({4, 3, 2, 2}), 3.0), 1.0);
  // Train: batch statistics (each channel of the output has mean 0), running stats move.
  const Tensor y = bn(x);
  const std::vector<double> m = mean(y, {0, 2, 3}).to(DType::float64).to_vector<double>();
  for (double v : m) EXPECT_NEAR(v, 0.0, 1e-5);
  EXPECT_NE(bn.running_mean.to_vector<float>(), std::vector<float>(3, 0.0f));
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 1);
  // The running statistics are updated outside autograd, even from an input that requires grad.
  bn(x.detach().clone().set_requires_grad(true));
  EXPECT_FALSE(bn.running_mean.requires_grad());
  EXPECT_FALSE(bn.running_var.requires_grad());
  // Eval: running statistics, nothing updated.
  bn.eval();
  const std::vector<float> rm = bn.running_mean.to_vector<float>();
  const Tensor ye = bn(x);
  EXPECT_EQ(bn.running_mean.to_vector<float>(), rm);
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 2);
  const Tensor want =
      functional::batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, false);
  EXPECT_EQ(ye.to_vector<float>(), want.to_vector<float>());
  // Untracked statistics: eval normalises with the batch statistics too.
  BatchNorm2d untracked({.num_features = 3, .track_running_stats = false});
  untracked.eval();
  EXPECT_EQ(untracked(x).to_vector<float>(), y.to_vector<float>());
  bn.reset_running_stats();
  EXPECT_EQ(bn.running_mean.to_vector<float>(), std::vector<float>(3, 0.0f));
  EXPECT_EQ(bn.running_var.to_vector<float>(), std::vector<float>(3, 1.0f));
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 0);
}

TEST(BatchNormLayers, HalfInputsWithFloatStatistics) {
  // torch's native batch_norm (as autocast runs it): a bf16/f16 input with float32 weight and
  // running statistics gives an output in the input's dtype and float32 statistics.
  manual_seed(3);
  for (const DType dt : {DType::bfloat16, DType::float16}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    BatchNorm2d half({.num_features = 4}), full({.num_features = 4});
    const Tensor x = randn({3, 4, 2, 2}).to(dt);
    const Tensor y = half(x);
    const Tensor ref = full(x.to(DType::float32));
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_EQ(half.running_mean.dtype(), DType::float32);
    const std::vector<float> a = y.to(DType::float32).to_vector<float>(),
                             b = ref.to_vector<float>();
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_NEAR(a[i], b[i], 2e-2 * std::max(1.0f, std::abs(b[i])));
    const std::vector<float> ra = half.running_var.to_vector<float>(),
                             rb = full.running_var.to_vector<float>();
    for (size_t i = 0; i < ra.size(); ++i) EXPECT_NEAR(ra[i], rb[i], 1e-6);
    GroupNorm gn({.num_groups = 2, .num_channels = 4});
    EXPECT_EQ(gn(x).dtype(), dt);
  }
}

TEST(BatchNormLayers, ErrorsNameTheProblem) {
  struct Row {
    std::string name;
    std::function<void()> f;
    std::string message;
  };
  BatchNorm1d bn1({.num_features = 4});
  BatchNorm2d bn2({.num_features = 4});
  GroupNorm gn({.num_groups = 2, .num_channels = 4});
  const std::vector<Row> rows = {
      {"one_value_per_channel",
       [&] {
         bn1(randn({1, 4}));
       },
       "Expected more than 1 value per channel when training, got input size (1, 4)"},
      {"bn1d_4d",
       [&] {
         bn1(randn({2, 4, 2, 2}));
       },
       "BatchNorm1d: expected 2D or 3D input (got 4D"},
      {"bn2d_3d",
       [&] {
         bn2(randn({2, 4, 3}));
       },
       "BatchNorm2d: expected 4D input (got 3D"},
      {"channels",
       [&] {
         bn2(randn({2, 3, 2, 2}));
       },
       "expected weight of shape (3)"},
      {"eval_without_stats",
       [&] {
         batch_norm(randn({2, 3}), Tensor(), Tensor(), {}, {}, false);
       },
       "running_mean and running_var are required when not training"},
      {"groups_op",
       [&] {
         group_norm(randn({2, 6, 3}), 4);
       },
       "num_groups must divide"},
      {"groups_layer", [&] { GroupNorm({.num_groups = 3, .num_channels = 4}); },
       "num_channels must be divisible by num_groups"},
      {"gn_channels",
       [&] {
         gn(randn({2, 6, 3}));
       },
       "expected weight of shape (6)"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    try {
      r.f();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(r.message), std::string::npos) << e.what();
    }
  }
}

// An undefined Tensor() names the op or layer it was given to, and an integer input to
// instance_norm names instance_norm and the input's own shape (not the batch_norm it runs as).
TEST(BatchNormLayers, UndefinedOrIntegerInputNamesTheOp) {
  const Tensor U, i = zeros({2, 3, 4}, {.dtype = DType::int64});
  BatchNorm1d bn1({.num_features = 3});
  BatchNorm2d bn2({.num_features = 3});
  GroupNorm gn({.num_groups = 1, .num_channels = 3});
  InstanceNorm1d in1({.num_features = 3});
  struct Row {
    std::function<void()> f;
    std::string message;
  };
  const std::vector<Row> undefined = {
      {[&] { batch_norm(U, zeros({3}), ones({3})); }, "batch_norm: got an undefined tensor"},
      {[&] { batch_norm(U, Tensor(), Tensor(), {}, {}, true); },
       "batch_norm: got an undefined tensor"},
      {[&] { group_norm(U, 1); }, "group_norm: got an undefined tensor"},
      {[&] { bn1(U); }, "BatchNorm1d: got an undefined tensor"},
      {[&] { bn2(U); }, "BatchNorm2d: got an undefined tensor"},
      {[&] { gn(U); }, "group_norm: got an undefined tensor"},
  };
  for (const Row& r : undefined) {
    SCOPED_TRACE(r.message);
    EXPECT_CONTAINS(thrown<ValueError>(r.f), r.message);
  }
  const std::string int_input =
      "instance_norm: expected a float64/float32/float16/bfloat16 input, got int64 of shape "
      "(2, 3, 4)";
  EXPECT_CONTAINS(thrown<DTypeError>([&] { instance_norm(i); }), int_input);
  EXPECT_CONTAINS(thrown<DTypeError>([&] { in1(i); }), int_input);
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    instance_norm(zeros({2, 3, 4}, {.dtype = DType::bool_}));
                  }),
                  "instance_norm: expected a float64/float32/float16/bfloat16 input, got bool");
}

// Training invstd as torch 1.13's CPU kernel: 1/sqrt(var + eps) in double, rounded once (a
// constant channel: invstd 316.2277527, not float32 arithmetic's 316.2277832), and 0 for a zero
// variance with eps 0, so a constant channel gives its bias and a zero gradient, not NaN.
TEST(BatchNormLayers, TrainingInvstdIsTorchs) {
  std::vector<float> b;
  for (int c = 0; c < 3; ++c) b.push_back(static_cast<float>(std::sin(2 + 0.7 * c) * 0.3));
  const Tensor y = batch_norm(full({4, 3, 2, 2}, 3.25), Tensor(), Tensor(), ones({3}),
                              from_vector(b, {3}), /*training=*/true, 0.1, 1e-5);
  const std::vector<float> v = y.to_vector<float>();
  EXPECT_EQ(v[0], 0x1.1756p-2f);  // torch 1.13's bits, channel by channel
  EXPECT_EQ(v[4], 0x1.06acp-3f);
  EXPECT_EQ(v[8], -0x1.3a28p-4f);

  Tensor x = full({3, 2, 2}, 1.5);
  x.set_requires_grad(true);
  const Tensor z = batch_norm(x, Tensor(), Tensor(), full({2}, 2.0), full({2}, 0.5),
                              /*training=*/true, 0.1, /*eps=*/0.0);
  for (float e : z.to_vector<float>()) EXPECT_EQ(e, 0.5f);
  sum(z).backward();
  for (float e : x.grad().to_vector<float>()) EXPECT_EQ(e, 0.0f);
}

// A bfloat16 input with bfloat16 parameters (or none) normalises with statistics rounded to
// bfloat16, as torch 1.13 keeps them in the parameters' dtype: torch's bits.
TEST(BatchNormLayers, HalfStatisticsInTheParametersDtype) {
  const Tensor x =
      from_vector(std::vector<float>{3.25f, 3.25f, 1, 2, 3.25f, 3.25f, 3, 4.5f}, {2, 2, 2})
          .to(DType::bfloat16);
  const std::vector<float> want = {0, 0, -0x1.42p+0f, -0x1.fp-2f, 0, 0, 0x1.28p-2f, 0x1.74p+0f};
  const Tensor w = ones({2}, {.dtype = DType::bfloat16}),
               b = zeros({2}, {.dtype = DType::bfloat16});
  EXPECT_EQ(batch_norm(x, Tensor(), Tensor(), w, b, true, 0.1, 1e-5).to_vector<float>(), want);
  EXPECT_EQ(
      batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1, 1e-5).to_vector<float>(),
      want);
}

// BatchNorm3d takes (N, C, D, H, W), as torch's.
TEST(BatchNormLayers, BatchNorm3dTakesFiveDimensions) {
  BatchNorm3d bn({.num_features = 2});
  const Tensor x = randn({2, 2, 3, 2, 2});
  const Tensor y = bn.forward(x);
  const Tensor want = batch_norm(x, Tensor(), Tensor(), ones({2}), zeros({2}), true, 0.1, 1e-5);
  EXPECT_EQ(y.to_vector<float>(), want.to_vector<float>());
  EXPECT_EQ(bn.str(),
            "BatchNorm3d(2, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    bn.forward(randn({2, 2, 3}));
                  }),
                  "BatchNorm3d: expected 5D input (got 3D input");
}

// A state without running statistics or counter reports the statistics missing, not the counter
// (torch fills a missing num_batches_tracked in whatever else is missing).
TEST(BatchNormLayers, AMissingCounterIsNeverReported) {
  BatchNorm2d bn({.num_features = 2});
  StateDict partial;
  partial.insert("weight", ones({2}));
  partial.insert("bias", zeros({2}));
  const auto result = bn.load_state_dict(partial, /*strict=*/false);
  EXPECT_EQ(result.missing_keys, (std::vector<std::string>{"running_mean", "running_var"}));
}

}  // namespace
}  // namespace fabric::nn
