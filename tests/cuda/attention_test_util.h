// What the CUDA attention tests share (test_cuda_attention.cpp: our kernels;
// test_cuda_attention_cudnn.cpp: cuDNN's): the tolerances per dtype, the comparison against the
// float64 CPU composition, the op on either side, and one forward + backward through autograd.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "nn/functional.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric::test {

struct Tol {
  double abs;  // times max(largest |reference| value, 0.1)
  double rel;  // times each |reference| value
};

inline Tol out_tol(DType t) {
  switch (t) {
    case DType::bfloat16:
      return {1.2e-2, 1.2e-2};
    case DType::float16:
      return {2e-3, 2e-3};
    default:
      return {2e-5, 2e-5};
  }
}

inline Tol grad_tol(DType t) {
  switch (t) {
    case DType::bfloat16:
      return {4e-2, 4e-2};
    case DType::float16:
      return {6e-3, 6e-3};
    default:
      return {1e-4, 1e-4};
  }
}

// `got` (any device and dtype) against the float64 CPU `want`; reports the worst element. The
// absolute part scales with max(largest |want|, 0.1): a gradient that is exactly zero in float64
// (one key: dS = P (dP - D) = 0) comes out as rounding noise of dP - D on the GPU.
inline void expect_close(const Tensor& want, const Tensor& got, Tol tol, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const std::vector<double> w = want.to(DType::float64).contiguous().to_vector<double>();
  const std::vector<double> h =
      got.to(Device::cpu()).to(DType::float64).contiguous().to_vector<double>();
  double scale = 0.1;
  for (double x : w) scale = std::max(scale, std::fabs(x));
  size_t worst = 0, bad = 0;
  double worst_excess = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < w.size(); ++i) {
    const double err = std::fabs(w[i] - h[i]);
    const double excess = std::isnan(err) ? std::numeric_limits<double>::infinity()
                                          : err - (tol.abs * scale + tol.rel * std::fabs(w[i]));
    if (excess > 0) ++bad;
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << w.size() << " elements off; worst at "
                     << worst << ": CPU " << w[worst] << ", CUDA " << h[worst]
                     << " (tolerance scale " << scale << ")";
}

// The fused op on the GPU (is_causal, no mask; dropout `p` drawn from `gen`); on the CPU the
// composition with an explicit (L, S) bool mask that means the same. Both draw the mask of the
// dropout op over the (..., L, S) probabilities.
inline Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, bool reference,
                     double p = 0.0, Generator* gen = nullptr) {
  if (!reference)
    return nn::functional::scaled_dot_product_attention(q, k, v, Tensor(), p, causal, std::nullopt,
                                                        gen);
  const int64_t L = q.size(-2), S = k.size(-2);
  const Tensor mask =
      causal ? nn::functional::causal_mask(L, S) : ones({L, S}, {.dtype = DType::bool_});
  return nn::functional::scaled_dot_product_attention(q, k, v, mask, p, false, std::nullopt, gen);
}

// Builds the output from autograd leaves; `reference` selects the CPU composition.
using Build = std::function<Tensor(const std::vector<Tensor>& leaves, bool reference)>;

// Leaves of `inputs` (CPU values of the test dtype) as `dtype` on `device`, the output of
// `build`, and the gradients of sum(out * probe), probe being seeded values of `test_dtype` (so
// both devices see the same grad_out). Returns out followed by the leaves' gradients.
inline std::vector<Tensor> forward_backward(const std::vector<Tensor>& inputs, DType test_dtype,
                                            DType dtype, Device device, bool reference,
                                            const Build& build) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    Tensor l = t.to(dtype).to(device).clone().detach();
    l.set_requires_grad(true);
    leaves.push_back(l);
  }
  const Tensor out = build(leaves, reference);
  const Tensor probe = test::uniform_tensor(out.sizes(), test_dtype, -1, 1, 5).to(dtype).to(device);
  sum(mul(out, probe)).backward();
  std::vector<Tensor> r{out.detach()};
  for (const Tensor& l : leaves) r.push_back(l.grad());
  return r;
}

}  // namespace fabric::test
