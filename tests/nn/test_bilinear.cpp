// nn::Bilinear as torch.nn.Bilinear: its keys and shapes, torch's init bound (1/sqrt(in1)) for
// weight and bias, its printout, and its forward and parameter gradients on the weights of a
// torch 1.13 row (tools/fixtures/make_products_rows.py, the F.bilinear row with bias).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "nn/nn.h"
#include "tensor/factory.h"
#include "tests/ops/products_torch_rows.h"

namespace fabric::nn {
namespace {

Tensor from_array(const ProductsTorchArray& a) {
  // Made 1-D and then shaped: an empty shape is a 0-dim tensor here, not from_vector's default.
  const int64_t n = static_cast<int64_t>(a.values.size());
  return from_vector(a.values, {n}, {.dtype = DType::float64}).reshape(a.shape);
}

void expect_close(const Tensor& got, const ProductsTorchArray& want, const char* what) {
  ASSERT_EQ(got.sizes(), Shape(want.shape.begin(), want.shape.end())) << what;
  const std::vector<double> g = got.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_NEAR(g[i], want.values[i], 1e-10 * std::max(1.0, std::abs(want.values[i]))) << what;
}

TEST(BilinearModule, KeysInitAndReprAsTorch) {
  struct Row {
    BilinearOptions options;
    std::vector<std::string> keys;
    std::string repr;
  };
  const std::vector<Row> rows = {
      {{3, 4, 5, true},
       {"weight", "bias"},
       "Bilinear(in1_features=3, in2_features=4, out_features=5, bias=True)"},
      {{16, 2, 3, false},
       {"weight"},
       "Bilinear(in1_features=16, in2_features=2, out_features=3, bias=False)"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.repr);
    Bilinear m(r.options);
    EXPECT_EQ(m.state_dict().keys(), r.keys);
    EXPECT_EQ(m.weight.sizes(),
              (Shape{r.options.out_features, r.options.in1_features, r.options.in2_features}));
    EXPECT_EQ(m.bias.defined(), r.options.bias);
    EXPECT_EQ(m.str(), r.repr);
    const double bound = 1.0 / std::sqrt(static_cast<double>(r.options.in1_features));
    for (const Tensor& p : m.parameters())
      for (double v : p.to_vector<double>()) EXPECT_LE(std::abs(v), bound);
  }
}

TEST(BilinearModule, ForwardAndGradientsMatchTorch113) {
  for (const ProductsTorchRow& r : products_torch_rows()) {
    if (r.op != "bilinear" || r.inputs.size() != 4) continue;
    SCOPED_TRACE(r.name);
    const ProductsTorchArray& w = r.inputs[2];
    Bilinear m({w.shape[1], w.shape[2], w.shape[0], true});
    m.to(DType::float64);
    m.weight.detach().copy_(from_array(w));
    m.bias.detach().copy_(from_array(r.inputs[3]));
    const Tensor y = m(from_array(r.inputs[0]), from_array(r.inputs[1]));
    expect_close(y, r.out, "output");
    y.backward(from_array(r.grad_out));
    expect_close(m.weight.grad(), r.grads[2], "weight gradient");
    expect_close(m.bias.grad(), r.grads[3], "bias gradient");
  }
}

}  // namespace
}  // namespace fabric::nn
