// nn::Upsample: reprs as torch 1.13 prints them, output shapes, and the module is interpolate.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace fabric::nn
