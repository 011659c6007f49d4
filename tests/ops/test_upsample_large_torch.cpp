// float32 interpolate at image sizes against torch 1.13 (upsample_large_torch_rows.h,
// tools/fixtures/make_upsample_large_rows.py): the source position is torch's double, so 1-d
// linear outputs are torch's bits also where a float position (ulp 2^-15 past 256 pixels) moved
// them, and the 2-d modes within a few ulp; input gradients (sums in another order) within a few
// float32 ulp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/ops/upsample_large_torch_rows.h"

namespace fabric {
namespace {

TEST(UpsampleLargeTorch, Float32OutputsAreTorchsBits) {
  for (const upsample_large::Row& r : upsample_large::rows()) {
    SCOPED_TRACE(r.name);
    const int64_t n = std::accumulate(r.x.begin(), r.x.end(), int64_t{1}, std::multiplies<>());
    std::vector<float> xs(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) xs[i] = static_cast<float>((i * 5) % 11) / 4 - 1;
    Tensor x = from_vector(xs, r.x).set_requires_grad(true);
    const Tensor y = r.call(x);
    ASSERT_EQ(y.sizes(), r.y);
    std::vector<float> gs(static_cast<size_t>(y.numel()));
    for (size_t i = 0; i < gs.size(); ++i) gs[i] = static_cast<float>((i * 3) % 7) / 8;
    y.backward(from_vector(gs, y.sizes()));
    const std::vector<float> got = y.to_vector<float>(), grad = x.grad().to_vector<float>();
    // 1-d linear is torch's bits. bilinear/bicubic combine their taps in another order than
    // torch's 2-d kernel (bicubic: 16 terms that cancel), a few float32 ulp of the inputs' scale;
    // a float source position was off by up to 2.3e-4.
    const bool exact = std::string(r.name).rfind("linear_", 0) == 0;
    int wrong = 0;
    for (size_t k = 0; k < r.y_bits.size(); ++k) {
      uint32_t b = 0;
      std::memcpy(&b, &got[5 * k], 4);
      float want = 0;
      std::memcpy(&want, &r.y_bits[k], 4);
      const bool ok = exact ? b == r.y_bits[k] : std::abs(got[5 * k] - want) <= 2e-6f;
      if (!ok && ++wrong <= 5)
        ADD_FAILURE() << "output " << 5 * k << ": " << got[5 * k] << " vs torch " << want;
    }
    EXPECT_EQ(wrong, 0) << "of " << r.y_bits.size() << " outputs compared";
    // torch's bicubic backward recomputes its weights from a float position (its forward's are
    // from the double one: up to 5e-5 apart at these sizes); fabric's gradient is the adjoint of
    // the forward it ran.
    const double grad_tol = std::string(r.name).rfind("bicubic_", 0) == 0 ? 1e-4 : 4e-7;
    for (size_t k = 0; k < r.grad.size(); ++k)
      EXPECT_NEAR(grad[5 * k], r.grad[k], grad_tol * std::max(1.0f, std::abs(r.grad[k])))
          << "input gradient " << 5 * k;
  }
}

}  // namespace
}  // namespace fabric
