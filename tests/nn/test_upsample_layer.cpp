// nn::Upsample and its fixed-mode forms, the padding layers and PixelShuffle/PixelUnshuffle: reprs
// as torch 1.13 prints them, output shapes, and each layer is its functional op (whose values are
// matched to torch in tests/ops).
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {
namespace {

TEST(Upsample, ReprShapesAndFunctional) {
  struct Row {
    UpsampleOptions options;
    Shape x, want;
    std::string repr;
  };
  const std::vector<Row> rows = {
      {{.scale_factor = {2}},
       {2, 3, 4, 5},
       {2, 3, 8, 10},
       "Upsample(scale_factor=2.0, mode=nearest)"},
      {{.size = {3, 4}, .mode = "bilinear", .align_corners = true},
       {1, 2, 5, 5},
       {1, 2, 3, 4},
       "Upsample(size=(3, 4), mode=bilinear)"},
      {{.size = {5}, .mode = "bilinear"},
       {1, 1, 2, 3},
       {1, 1, 5, 5},
       "Upsample(size=5, mode=bilinear)"},
      {{.scale_factor = {2.0, 1.5}},
       {1, 1, 2, 4},
       {1, 1, 4, 6},
       "Upsample(scale_factor=(2.0, 1.5), mode=nearest)"},
      {{.scale_factor = {2}, .mode = "bicubic", .align_corners = true},
       {1, 2, 3, 3},
       {1, 2, 6, 6},
       "Upsample(scale_factor=2.0, mode=bicubic)"},
      {{.size = {7}, .mode = "linear"}, {2, 3, 4}, {2, 3, 7}, "Upsample(size=7, mode=linear)"},
      {{.scale_factor = {0.5}, .mode = "area"},
       {1, 1, 4, 6},
       {1, 1, 2, 3},
       "Upsample(scale_factor=0.5, mode=area)"},
      {{.size = {5, 3}, .mode = "nearest-exact"},
       {1, 1, 2, 2},
       {1, 1, 5, 3},
       "Upsample(size=(5, 3), mode=nearest-exact)"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.repr);
    auto up = make<Upsample>(r.options);
    EXPECT_EQ(up->str(), r.repr);
    Tensor x = randn(r.x);
    Tensor y = (*up)(x);
    EXPECT_EQ(y.sizes(), r.want);
    EXPECT_EQ(y.to_vector<float>(),
              nn::functional::interpolate(x, r.options.size, r.options.scale_factor, r.options.mode,
                                          r.options.align_corners)
                  .to_vector<float>());
    EXPECT_TRUE(up->named_parameters().empty());
  }
  // torch checks the arguments on the first forward, not at construction.
  auto bad = make<Upsample>(UpsampleOptions{.size = {2, 2}, .scale_factor = {2.0}});
  EXPECT_THROW((*bad)(randn({1, 1, 2, 2})), ValueError);
}

// Each layer, an input, the functional call it must equal, and torch's repr.
struct LayerRow {
  std::shared_ptr<Module> layer;
  Shape x;
  std::function<Tensor(const Tensor&)> functional;
  std::string repr;
};

TEST(Upsample, PaddingShuffleAndFixedModeLayersAreTheirOps) {
  const std::vector<LayerRow> rows = {
      {make<UpsamplingNearest2d>({.scale_factor = {2}}),
       {1, 2, 3, 3},
       [](const Tensor& x) { return interpolate(x, {}, {2.0}); },
       "UpsamplingNearest2d(scale_factor=2.0, mode=nearest)"},
      {make<UpsamplingBilinear2d>({.size = {3, 4}}),
       {1, 2, 2, 2},
       [](const Tensor& x) {
         return interpolate(x, {3, 4}, {}, "bilinear", true);
       },
       "UpsamplingBilinear2d(size=(3, 4), mode=bilinear)"},
      {make<ZeroPad2d>({.padding = {2}}),
       {1, 2, 3, 3},
       [](const Tensor& x) {
         return pad(x, {2, 2, 2, 2});
       },
       "ZeroPad2d((2, 2, 2, 2))"},
      {make<ZeroPad2d>({.padding = {1, 2, 3, 4}}),
       {2, 3, 3},
       [](const Tensor& x) {
         return pad(x, {1, 2, 3, 4});
       },
       "ZeroPad2d((1, 2, 3, 4))"},
      {make<ConstantPad1d>({.padding = {2}, .value = 3.5}),
       {2, 3},
       [](const Tensor& x) {
         return pad(x, {2, 2}, "constant", 3.5);
       },
       "ConstantPad1d(padding=(2, 2), value=3.5)"},
      {make<ConstantPad2d>({.padding = {1, 2, 3, 4}, .value = -1}),
       {1, 2, 3},
       [](const Tensor& x) {
         return pad(x, {1, 2, 3, 4}, "constant", -1);
       },
       "ConstantPad2d(padding=(1, 2, 3, 4), value=-1.0)"},
      {make<ConstantPad3d>({.padding = {1}}),
       {1, 2, 2, 2},
       [](const Tensor& x) {
         return pad(x, {1, 1, 1, 1, 1, 1});
       },
       "ConstantPad3d(padding=(1, 1, 1, 1, 1, 1), value=0.0)"},
      {make<ReflectionPad1d>({.padding = {2}}),
       {2, 4},
       [](const Tensor& x) {
         return pad(x, {2, 2}, "reflect");
       },
       "ReflectionPad1d((2, 2))"},
      {make<ReflectionPad2d>({.padding = {1, 0, 2, 1}}),
       {1, 1, 3, 3},
       [](const Tensor& x) {
         return pad(x, {1, 0, 2, 1}, "reflect");
       },
       "ReflectionPad2d((1, 0, 2, 1))"},
      {make<ReflectionPad3d>({.padding = {1}}),
       {1, 1, 2, 3, 3},
       [](const Tensor& x) {
         return pad(x, {1, 1, 1, 1, 1, 1}, "reflect");
       },
       "ReflectionPad3d((1, 1, 1, 1, 1, 1))"},
      {make<ReplicationPad1d>({.padding = {1, 2}}),
       {1, 2, 3},
       [](const Tensor& x) {
         return pad(x, {1, 2}, "replicate");
       },
       "ReplicationPad1d((1, 2))"},
      {make<ReplicationPad2d>({.padding = {1}}),
       {2, 2, 2},
       [](const Tensor& x) {
         return pad(x, {1, 1, 1, 1}, "replicate");
       },
       "ReplicationPad2d((1, 1, 1, 1))"},
      {make<ReplicationPad3d>({.padding = {1, 2, 3, 4, 5, 6}}),
       {1, 2, 2, 2},
       [](const Tensor& x) {
         return pad(x, {1, 2, 3, 4, 5, 6}, "replicate");
       },
       "ReplicationPad3d((1, 2, 3, 4, 5, 6))"},
      {make<PixelShuffle>({.upscale_factor = 3}),
       {1, 9, 2, 2},
       [](const Tensor& x) { return pixel_shuffle(x, 3); },
       "PixelShuffle(upscale_factor=3)"},
      {make<PixelUnshuffle>({.downscale_factor = 2}),
       {1, 1, 4, 4},
       [](const Tensor& x) { return pixel_unshuffle(x, 2); },
       "PixelUnshuffle(downscale_factor=2)"},
  };
  for (const LayerRow& r : rows) {
    SCOPED_TRACE(r.repr);
    EXPECT_EQ(r.layer->str(), r.repr);
    const Tensor x = randn(r.x);
    const Tensor y = (*r.layer)(x);
    const Tensor want = r.functional(x);
    EXPECT_EQ(y.sizes(), want.sizes());
    EXPECT_EQ(y.to_vector<float>(), want.to_vector<float>());
    EXPECT_TRUE(r.layer->named_parameters().empty());
  }
}

TEST(Upsample, PaddingLayersCheckTheirArguments) {
  EXPECT_THROW(make<ReflectionPad2d>({.padding = {1, 2}}), ValueError);
  EXPECT_THROW(make<ReplicationPad1d>({.padding = {1}, .value = 2.0}), ValueError);
  // torch checks the shuffle factor on forward.
  auto shuffle = make<PixelShuffle>({.upscale_factor = 2});
  EXPECT_THROW((*shuffle)(randn({1, 3, 2, 2})), ShapeError);
}

}  // namespace
}  // namespace fabric::nn
