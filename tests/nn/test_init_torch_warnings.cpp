// nn::init's warnings, as torch.nn.init's: kaiming_* on a zero-element tensor ("a no-op", the
// tensor untouched) and trunc_normal_ with a mean more than 2 std outside [a, b] (the values
// still drawn, clamped to [a, b]).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "nn/init.h"
#include "tensor/factory.h"
#include "tests/common/capture_warnings.h"

namespace fabric::nn::init {
namespace {

TEST(InitTorchWarnings, KaimingOnAZeroElementTensorWarnsAndLeavesIt) {
  for (const Shape& shape : {Shape{0, 3}, Shape{4, 0, 2}}) {
    test::CapturedWarnings warnings;
    const Tensor t = empty(shape);
    EXPECT_TRUE(kaiming_uniform_(t).is_same(t));
    EXPECT_TRUE(kaiming_normal_(t).is_same(t));
    EXPECT_EQ(warnings.messages(),
              (std::vector<std::string>{"Initializing zero-element tensors is a no-op",
                                        "Initializing zero-element tensors is a no-op"}));
  }
}

TEST(InitTorchWarnings, TruncNormalWarnsWhenTheMeanIsMoreThanTwoStdFromTheRange) {
  const std::string message =
      "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of values "
      "may be incorrect.";
  struct Row {
    double mean, std, a, b;
    bool warns;
  };
  // torch's test: mean < a - 2 std or mean > b + 2 std (the bounds themselves do not warn).
  const Row rows[] = {{5.0, 1.0, -2.0, 2.0, true},
                      {-4.5, 1.0, -2.0, 2.0, true},
                      {4.0, 1.0, -2.0, 2.0, false},
                      {-4.0, 1.0, -2.0, 2.0, false},
                      {0.0, 1.0, -2.0, 2.0, false}};
  for (const Row& r : rows) {
    SCOPED_TRACE(r.mean);
    test::CapturedWarnings warnings;
    Tensor t = empty({64});
    trunc_normal_(t, r.mean, r.std, r.a, r.b);
    EXPECT_EQ(warnings.messages(),
              r.warns ? std::vector<std::string>{message} : std::vector<std::string>{});
    for (float v : t.to_vector<float>()) {
      EXPECT_GE(v, r.a);
      EXPECT_LE(v, r.b);
    }
  }
}

}  // namespace
}  // namespace fabric::nn::init
