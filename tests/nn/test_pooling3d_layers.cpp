// The layers of nn/pooling3d.h (MaxPool3d, AvgPool3d, AdaptiveAvgPool3d, AdaptiveMaxPool1d/2d/3d,
// LPPool1d/2d, Unfold, Fold): reprs as torch 1.13 prints them (tools/fixtures' python printed the
// strings below), no state, forward equal to the functional op with the layer's arguments (the
// ops are matched to torch by tests/ops/test_pooling3d_torch.cpp), and errors at construction.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

using Sizes = std::vector<int64_t>;

TEST(Pooling3dLayers, ReprsAsTorch) {
  struct Row {
    std::shared_ptr<Module> layer;
    std::string repr;
  };
  const std::vector<Row> rows = {
      {make<MaxPool3d>({.kernel_size = {3}}),
       "MaxPool3d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=False)"},
      {make<MaxPool3d>({.kernel_size = {2, 3, 1}, .stride = Sizes{1}, .padding = {1, 1, 0}}),
       "MaxPool3d(kernel_size=(2, 3, 1), stride=1, padding=(1, 1, 0), dilation=1, "
       "ceil_mode=False)"},
      {make<AvgPool3d>({.kernel_size = {3}}), "AvgPool3d(kernel_size=3, stride=3, padding=0)"},
      {make<AvgPool3d>({.kernel_size = {2, 3, 1}, .stride = Sizes{1, 2, 1}, .padding = {1, 1, 0}}),
       "AvgPool3d(kernel_size=(2, 3, 1), stride=(1, 2, 1), padding=(1, 1, 0))"},
      {make<AdaptiveAvgPool3d>({.output_size = {3}}), "AdaptiveAvgPool3d(output_size=3)"},
      {make<AdaptiveAvgPool3d>({.output_size = {2, 3, 4}}),
       "AdaptiveAvgPool3d(output_size=(2, 3, 4))"},
      {make<AdaptiveMaxPool1d>({.output_size = 3}), "AdaptiveMaxPool1d(output_size=3)"},
      {make<AdaptiveMaxPool1d>({.output_size = 3, .return_indices = true}),
       "AdaptiveMaxPool1d(output_size=3)"},
      {make<AdaptiveMaxPool2d>({.output_size = {3}}), "AdaptiveMaxPool2d(output_size=3)"},
      {make<AdaptiveMaxPool2d>({.output_size = {2, 3}}), "AdaptiveMaxPool2d(output_size=(2, 3))"},
      {make<AdaptiveMaxPool3d>({.output_size = {3}}), "AdaptiveMaxPool3d(output_size=3)"},
      {make<AdaptiveMaxPool3d>({.output_size = {2, 3, 4}, .return_indices = true}),
       "AdaptiveMaxPool3d(output_size=(2, 3, 4))"},
      {make<LPPool1d>({.norm_type = 2, .kernel_size = 3}),
       "LPPool1d(norm_type=2, kernel_size=3, stride=None, ceil_mode=False)"},
      {make<LPPool1d>({.norm_type = 2, .kernel_size = 3, .stride = 2}),
       "LPPool1d(norm_type=2, kernel_size=3, stride=2, ceil_mode=False)"},
      {make<LPPool2d>({.norm_type = 3, .kernel_size = {2}}),
       "LPPool2d(norm_type=3, kernel_size=2, stride=None, ceil_mode=False)"},
      {make<LPPool2d>({.norm_type = 2.5, .kernel_size = {2, 3}, .stride = Sizes{1, 2}}),
       "LPPool2d(norm_type=2.5, kernel_size=(2, 3), stride=(1, 2), ceil_mode=False)"},
      {make<Unfold>({.kernel_size = {3}}),
       "Unfold(kernel_size=3, dilation=1, padding=0, stride=1)"},
      {make<Unfold>({.kernel_size = {2, 3}, .dilation = {2}, .padding = {1}, .stride = {1, 2}}),
       "Unfold(kernel_size=(2, 3), dilation=2, padding=1, stride=(1, 2))"},
      {make<Fold>({.output_size = {4, 5}, .kernel_size = {2}}),
       "Fold(output_size=(4, 5), kernel_size=2, dilation=1, padding=0, stride=1)"},
      {make<Fold>({.output_size = {4}, .kernel_size = {2, 3}, .padding = {1, 0}, .stride = {2}}),
       "Fold(output_size=4, kernel_size=(2, 3), dilation=1, padding=(1, 0), stride=2)"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.repr);
    EXPECT_EQ(r.layer->str(), r.repr);
    EXPECT_TRUE(r.layer->state_dict().keys().empty());
  }
}

TEST(Pooling3dLayers, ForwardIsTheFunctionalOp) {
  struct Row {
    const char* name;
    std::shared_ptr<Module> layer;
    Shape x;
    std::function<Tensor(const Tensor&)> op;
  };
  const std::vector<Row> rows = {
      {"max_pool3d",
       make<MaxPool3d>({.kernel_size = {3}, .stride = Sizes{2}, .padding = {1}}),
       {1, 2, 5, 6, 7},
       [](const Tensor& x) { return max_pool3d(x, {3}, {2}, {1}); }},
      {"avg_pool3d",
       make<AvgPool3d>({.kernel_size = {2, 3, 1}}),
       {2, 4, 6, 3},
       [](const Tensor& x) {
         return avg_pool3d(x, {2, 3, 1});
       }},
      {"adaptive_avg_pool3d",
       make<AdaptiveAvgPool3d>({.output_size = {3, 2, 4}}),
       {1, 2, 5, 5, 5},
       [](const Tensor& x) {
         return adaptive_avg_pool3d(x, {3, 2, 4});
       }},
      {"adaptive_max_pool1d",
       make<AdaptiveMaxPool1d>({.output_size = 4}),
       {2, 3, 11},
       [](const Tensor& x) { return std::get<0>(adaptive_max_pool1d(x, 4)); }},
      {"adaptive_max_pool2d",
       make<AdaptiveMaxPool2d>({.output_size = {3, 4}}),
       {2, 7, 5},
       [](const Tensor& x) {
         return std::get<0>(adaptive_max_pool2d(x, {3, 4}));
       }},
      {"adaptive_max_pool3d",
       make<AdaptiveMaxPool3d>({.output_size = {3, 2, 4}}),
       {1, 2, 5, 5, 5},
       [](const Tensor& x) {
         return std::get<0>(adaptive_max_pool3d(x, {3, 2, 4}));
       }},
      {"lp_pool1d",
       make<LPPool1d>({.norm_type = 2, .kernel_size = 3}),
       {2, 3, 9},
       [](const Tensor& x) { return lp_pool1d(x, 2, 3); }},
      {"lp_pool2d",
       make<LPPool2d>({.norm_type = 2, .kernel_size = {2, 3}, .stride = Sizes{1, 2}}),
       {1, 2, 5, 7},
       [](const Tensor& x) {
         return lp_pool2d(x, 2, {2, 3}, {1, 2});
       }},
      {"unfold",
       make<Unfold>({.kernel_size = {3, 2}, .padding = {1}}),
       {2, 3, 5, 6},
       [](const Tensor& x) {
         return unfold(x, {3, 2}, {1}, {1});
       }},
      {"fold",
       make<Fold>({.output_size = {4, 5}, .kernel_size = {2}}),
       {2, 12, 12},
       [](const Tensor& x) {
         return fold(x, {4, 5}, {2});
       }},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    const Tensor x = randn(r.x, {.dtype = DType::float64});
    EXPECT_EQ(r.layer->forward(x).to_vector<double>(), r.op(x).to_vector<double>());
  }
  // return_indices: both from forward_with_indices, and forward refuses.
  auto pool = make<AdaptiveMaxPool2d>({.output_size = {2}, .return_indices = true});
  const Tensor x = randn({1, 2, 5, 5});
  auto [v, i] = pool->forward_with_indices(x);
  auto [v2, i2] = adaptive_max_pool2d(x, {2});
  EXPECT_EQ(v.to_vector<float>(), v2.to_vector<float>());
  EXPECT_EQ(i.to_vector<int64_t>(), i2.to_vector<int64_t>());
  EXPECT_CONTAINS(thrown<ValueError>([&] { pool->forward(x); }),
                  "AdaptiveMaxPool2d: return_indices=true returns (values, indices): call "
                  "forward_with_indices");
}

// As AdaptiveMaxPool2d: with return_indices, forward_with_indices gives the op's pair and
// forward refuses.
TEST(Pooling3dLayers, AdaptiveMaxPool3dReturnsIndicesOnRequest) {
  auto pool = make<AdaptiveMaxPool3d>({.output_size = {2, 3, 2}, .return_indices = true});
  const Tensor x = randn({2, 4, 5, 3});
  auto [v, i] = pool->forward_with_indices(x);
  auto [v2, i2] = adaptive_max_pool3d(x, {2, 3, 2});
  EXPECT_EQ(v.sizes(), (Shape{2, 2, 3, 2}));
  EXPECT_EQ(v.to_vector<float>(), v2.to_vector<float>());
  EXPECT_EQ(i.to_vector<int64_t>(), i2.to_vector<int64_t>());
  EXPECT_CONTAINS(thrown<ValueError>([&] { pool->forward(x); }),
                  "AdaptiveMaxPool3d: return_indices=true returns (values, indices): call "
                  "forward_with_indices");
}

TEST(Pooling3dLayers, ErrorsNameTheProblem) {
  struct Row {
    const char* name;
    std::function<void()> build;
    std::string fragment;
  };
  const std::vector<Row> rows = {
      {"MaxPool3d ceil_mode", [] { make<MaxPool3d>({.kernel_size = {2}, .ceil_mode = true}); },
       "MaxPool3d: ceil_mode=True is not supported (only ceil_mode=False, torch's default)"},
      {"MaxPool3d dilation", [] { make<MaxPool3d>({.kernel_size = {2}, .dilation = 2}); },
       "MaxPool3d: dilation=2 is not supported"},
      {"MaxPool3d padding", [] { make<MaxPool3d>({.kernel_size = {2}, .padding = {2}}); },
       "MaxPool3d: padding 2 should be at most half of kernel_size 2"},
      {"AvgPool3d kernel arity",
       [] {
         make<AvgPool3d>({.kernel_size = {2, 2}});
       },
       "AvgPool3d: kernel_size must be 1 or 3 sizes >= 1, got (2, 2)"},
      {"AvgPool3d count_include_pad",
       [] { make<AvgPool3d>({.kernel_size = {2}, .count_include_pad = false}); },
       "AvgPool3d: count_include_pad=False is not supported"},
      {"AdaptiveAvgPool3d negative", [] { make<AdaptiveAvgPool3d>({.output_size = {-1}}); },
       "AdaptiveAvgPool3d: output_size must be 1 or 3 sizes >= 0, got (-1,)"},
      {"AdaptiveMaxPool3d arity",
       [] {
         make<AdaptiveMaxPool3d>({.output_size = {2, 2}});
       },
       "AdaptiveMaxPool3d: output_size must be 1 or 3 sizes >= 0, got (2, 2)"},
      {"AdaptiveMaxPool3d negative",
       [] {
         make<AdaptiveMaxPool3d>({.output_size = {2, -1, 2}});
       },
       "AdaptiveMaxPool3d: output_size must be 1 or 3 sizes >= 0, got (2, -1, 2)"},
      {"AdaptiveMaxPool1d negative", [] { make<AdaptiveMaxPool1d>({.output_size = -2}); },
       "AdaptiveMaxPool1d: output_size must be >= 0, got -2"},
      {"LPPool2d ceil_mode",
       [] { make<LPPool2d>({.norm_type = 2, .kernel_size = {2}, .ceil_mode = true}); },
       "LPPool2d: ceil_mode=True is not supported"},
      {"Unfold kernel", [] { make<Unfold>({.kernel_size = {0}}); },
       "Unfold: kernel_size must be 1 or 2 sizes >= 1, got (0,)"},
      {"Fold stride", [] { make<Fold>({.output_size = {4}, .kernel_size = {2}, .stride = {0}}); },
       "Fold: stride must be 1 or 2 sizes >= 1, got (0,)"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(thrown<ValueError>(r.build), r.fragment);
  }
}

}  // namespace
}  // namespace fabric::nn
