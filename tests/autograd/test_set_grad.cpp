// set_grad: torch's `.grad =` checks (a gradient of the tensor's dtype, device and shape), and
// set_grad_unchecked, which skips them for the strategies that need a gradient in another dtype.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tests/common/expect_error.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

Tensor param(Shape s, DType dt = DType::float32) {
  return zeros(s, {.dtype = dt, .requires_grad = true});
}

// Each refusal names what was assigned and what the tensor has, in torch's order of checks
// (type, device, size), and leaves the gradient that was there.
TEST(SetGrad, AGradientOfAnotherDtypeDeviceOrSizeIsRefused) {
  struct Row {
    const char* what;
    Tensor t, grad;
    std::function<void(const std::function<void()>&)> expect;
  };
  auto raises = [](auto tag, std::vector<std::string> parts) {
    return [parts](const std::function<void()>& fn) {
      const std::string msg = thrown<decltype(tag)>(fn);
      for (const std::string& p : parts) EXPECT_CONTAINS(msg, p);
    };
  };
  std::vector<Row> rows = {
      {"float64 for float32", param({2}), zeros({2}, {.dtype = DType::float64}),
       raises(DTypeError{""},
              {"set_grad", "different type", "float64 gradient", "float32 tensor"})},
      {"int64 for float32", param({2}), zeros({2}, {.dtype = DType::int64}),
       raises(DTypeError{""}, {"different type", "int64 gradient", "float32 tensor"})},
      {"bfloat16 for float32, also another size", param({2}),
       zeros({3}, {.dtype = DType::bfloat16}),
       raises(DTypeError{""}, {"different type", "bfloat16"})},
      {"(3,) for (2,)", param({2}), zeros({3}),
       raises(ShapeError{""}, {"set_grad", "different size", "shape (3,)", "shape (2,)"})},
      {"(2, 1) for (2,)", param({2}), zeros({2, 1}),
       raises(ShapeError{""}, {"different size", "(2, 1)", "(2,)"})},
      {"(1,) for 0-dim", param({}), zeros({1}), raises(ShapeError{""}, {"(1,)", "()"})},
  };
  if (test::cuda_devices() > 0) {
    rows.push_back({"cuda:0 for cpu", param({2}), zeros({2}).to(Device::cuda(0)),
                    raises(DeviceError{""}, {"set_grad", "different device", "cuda:0", "cpu"})});
  }
  for (const Row& r : rows) {
    SCOPED_TRACE(r.what);
    const Tensor before = ones_like(r.t);
    set_grad(r.t, before);
    r.expect([&] { set_grad(r.t, r.grad); });
    EXPECT_TRUE(r.t.grad().is_same(before));
  }
}

TEST(SetGrad, AMatchingOrUndefinedGradientIsKept) {
  Tensor p = param({2, 3});
  const Tensor g = full({2, 3}, 0.5);
  set_grad(p, g);
  EXPECT_TRUE(p.grad().is_same(g));
  const Tensor strided = full({3, 2}, 0.25).t();  // another layout is fine, as in torch
  set_grad(p, strided);
  EXPECT_TRUE(p.grad().is_same(strided));
  set_grad(p, Tensor());
  EXPECT_FALSE(p.grad().defined());
  // An integer tensor takes an integer gradient (torch allows it as well).
  Tensor i = zeros({2}, {.dtype = DType::int64});
  set_grad(i, ones({2}, {.dtype = DType::int64}));
  EXPECT_EQ(i.grad().dtype(), DType::int64);
}

TEST(SetGrad, UncheckedKeepsAnyGradient) {
  Tensor p = param({2});
  const Tensor half = ones({2}, {.dtype = DType::float16});
  set_grad_unchecked(p, half);
  EXPECT_TRUE(p.grad().is_same(half));
}

}  // namespace
}  // namespace fabric
