// InstanceNorm3d against torch 1.13 (tests/nn/instance_norm3d_torch_rows.h): outputs, input/weight/
// bias gradients, running statistics and the eval output, batched and unbatched, in float32 and
// float64. Bit for bit where the statistics are exact in any order ("exact_" rows: the training and
// eval forwards), as batch_norm's (README: "bit for bit where the statistics agree");
// elsewhere within a few ulps, the sums being ours. Its repr, state_dict keys, torch's errors and
// the num_features check.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/functional_instance_norm.h"
#include "nn/instance_norm.h"
#include "tensor/factory.h"
#include "tests/common/capture_warnings.h"
#include "tests/common/expect_error.h"
#include "tests/common/same_bits.h"
#include "tests/common/tensor_from_bits.h"
#include "tests/nn/instance_norm3d_torch_rows.h"

namespace fabric::nn {
namespace {

namespace fx = instance_norm3d_fixture;

using test::from_bits;

Tensor channels(const std::vector<uint64_t>& bits, DType dtype) {
  return from_bits(bits, {static_cast<int64_t>(bits.size())}, dtype);
}

// The layer of each fixture row, as the generator builds torch's.
std::shared_ptr<InstanceNorm3d> fixture_layer(const std::string& name) {
  static const std::map<std::string, InstanceNormOptions> options = {
      {"default_f32", {.num_features = 3}},
      {"unbatched_f32", {.num_features = 3}},
      {"affine_f32", {.num_features = 3, .affine = true}},
      {"affine_tracked_momentum0.2_f32",
       {.num_features = 3, .momentum = 0.2, .affine = true, .track_running_stats = true}},
      {"tracked_eps1e-3_unbatched_f32",
       {.num_features = 2, .eps = 1e-3, .track_running_stats = true}},
      {"long_planes_f32", {.num_features = 2, .affine = true}},
      {"affine_tracked_f64", {.num_features = 2, .affine = true, .track_running_stats = true}},
      {"exact_affine_tracked_momentum0.2_f32",
       {.num_features = 3, .momentum = 0.2, .affine = true, .track_running_stats = true}},
      {"exact_unbatched_f32", {.num_features = 2}},
      {"exact_tracked_eps1e-3_f32", {.num_features = 2, .eps = 1e-3, .track_running_stats = true}},
      {"exact_affine_tracked_f64",
       {.num_features = 2, .affine = true, .track_running_stats = true}},
  };
  const auto it = options.find(name);
  if (it == options.end()) return nullptr;
  return make<InstanceNorm3d>(it->second);
}

// Bit for bit when `exact`, else within 1e-5 (float32) or 1e-12 (float64) relative.
void expect_matches(const Tensor& got, const Tensor& want, bool exact, const std::string& what) {
  if (exact) return expect_same_bits(got, want, what);
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double tol = got.dtype() == DType::float64 ? 1e-12 : 1e-5;
  const auto g = got.to(DType::float64).contiguous().reshape({-1}).to_vector<double>();
  const auto w = want.to(DType::float64).contiguous().reshape({-1}).to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], w[i], tol * std::max(1.0, std::abs(w[i]))) << what << " element " << i;
}

TEST(InstanceNorm3d, MatchesTorch) {
  ASSERT_EQ(fx::rows().size(), 11u);
  for (const fx::Row& row : fx::rows()) {
    SCOPED_TRACE(row.name);
    const std::string name = row.name;
    const DType dtype = name.ends_with("_f64") ? DType::float64 : DType::float32;
    // Exact statistics: the forward is torch's bits; gradients still sum in our order.
    const bool exact = name.starts_with("exact_");
    auto layer = fixture_layer(row.name);
    ASSERT_NE(layer, nullptr) << "no layer for fixture row " << row.name;
    layer->to(dtype);
    if (!row.weight.empty()) {
      NoGradGuard no_grad;
      layer->weight.copy_(channels(row.weight, dtype));
      layer->bias.copy_(channels(row.bias, dtype));
    }
    Tensor x = from_bits(row.x, row.x_shape, dtype);
    x.set_requires_grad(true);
    const Tensor y = (*layer)(x);
    expect_matches(y, from_bits(row.y, row.x_shape, dtype), exact, "output");
    y.backward(from_bits(row.g, row.x_shape, dtype));
    expect_matches(x.grad(), from_bits(row.dx, row.x_shape, dtype), false, "input gradient");
    if (!row.dweight.empty()) {
      expect_matches(layer->weight.grad(), channels(row.dweight, dtype), false, "weight grad");
      expect_matches(layer->bias.grad(), channels(row.dbias, dtype), false, "bias gradient");
    }
    if (!row.running_mean.empty()) {
      // Not bit for bit even on exact rows: batch_norm updates each copy in float32 steps, torch
      // in double rounded once (tensor/ops_batch_norm.cpp; 1 ulp on exact_tracked_eps1e-3_f32).
      expect_matches(layer->running_mean, channels(row.running_mean, dtype), false, "running_mean");
      expect_matches(layer->running_var, channels(row.running_var, dtype), false, "running_var");
      EXPECT_EQ(layer->num_batches_tracked.item<int64_t>(), 0);  // torch never counts either
      layer->eval();
      expect_matches((*layer)(x.detach()), from_bits(row.eval_y, row.x_shape, dtype), exact,
                     "eval output");
    }
  }
}

TEST(InstanceNorm3d, UnbatchedIsTheBatchOfOne) {
  auto layer = make<InstanceNorm3d>({.num_features = 2, .affine = true});
  const Tensor x = randn({2, 3, 4, 5});
  expect_same_bits((*layer)(x), (*layer)(x.unsqueeze(0)).squeeze(0), "unbatched");
  // The functional form takes the 5-D input directly.
  expect_same_bits(instance_norm(x.unsqueeze(0)),
                   (*make<InstanceNorm3d>({.num_features = 2}))(x).unsqueeze(0), "functional");
}

TEST(InstanceNorm3d, ReprAndStateDictKeysAsTorch) {
  EXPECT_EQ(make<InstanceNorm3d>({.num_features = 3})->str(),
            "InstanceNorm3d(3, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False)");
  auto full = make<InstanceNorm3d>({.num_features = 4,
                                    .eps = 1e-3,
                                    .momentum = 0.2,
                                    .affine = true,
                                    .track_running_stats = true});
  EXPECT_EQ(full->str(),
            "InstanceNorm3d(4, eps=0.001, momentum=0.2, affine=True, track_running_stats=True)");
  EXPECT_EQ(full->state_dict().keys(),
            (std::vector<std::string>{"weight", "bias", "running_mean", "running_var",
                                      "num_batches_tracked"}));
  EXPECT_TRUE(make<InstanceNorm3d>({.num_features = 4})->state_dict().empty());
}

TEST(InstanceNorm3d, TorchErrorsAndWarning) {
  auto layer = make<InstanceNorm3d>({.num_features = 3});
  // torch: "expected 4D or 5D input (got 6D input)".
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    (*layer)(zeros({1, 2, 3, 4, 5, 6}));
                  }),
                  "InstanceNorm3d: expected 4D or 5D input (got 6D input");
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    (*layer)(zeros({3, 4, 5}));
                  }),
                  "InstanceNorm3d: expected 4D or 5D input (got 3D input");
  // torch: "Expected more than 1 spatial element when training, got input size [2, 3, 1, 1, 1]".
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    (*layer)(zeros({2, 3, 1, 1, 1}));
                  }),
                  "expected more than 1 spatial element when training");
  // torch 1.13 refuses a channel count other than num_features where num_features sized
  // something ("weight should contain 6 elements not 10", "running_mean should contain ..."), and
  // normalises silently, without torch 2's warning, where it sized nothing.
  auto affine = make<InstanceNorm3d>({.num_features = 2, .affine = true});
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    (*affine)(zeros({1, 3, 2, 2, 2}));
                  }),
                  "expected input's size at dim=1 to match num_features (2), but got: 3 (the "
                  "weight and bias have 2 entries)");
  auto tracked = make<InstanceNorm3d>({.num_features = 2, .track_running_stats = true});
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    (*tracked)(zeros({1, 3, 2, 2, 2}));
                  }),
                  "(the running statistics have 2 entries)");
  test::CapturedWarnings warnings;
  const Tensor y = (*make<InstanceNorm3d>({.num_features = 2}))(randn({1, 3, 2, 2, 2}));
  EXPECT_EQ(y.sizes(), (Shape{1, 3, 2, 2, 2}));
  EXPECT_TRUE(warnings.messages().empty());
}

}  // namespace
}  // namespace fabric::nn
