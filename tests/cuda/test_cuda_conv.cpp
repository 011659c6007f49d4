// The CUDA convolution (cuDNN) and pooling kernels against the CPU through the public ops and
// autograd: conv2d forward and gradients of input, weight and bias over strides, padding,
// dilation, groups, unbatched inputs and every floating dtype; max/avg pooling forward and
// backward, with ties and NaN; double backward through all three (a gradient penalty's parameter
// gradients). Convolution sums in another order than oneDNN: tolerances are a few rounding units
// of the dtype scaled by sqrt(terms summed); pooling is bit-exact.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;
using test::Tolerance;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

constexpr DType kFloatTypes[] = {DType::float32, DType::float64, DType::float16, DType::bfloat16};

// A few rounding units of `t`, absolute part scaled by sqrt(terms) (values are O(1)).
Tolerance conv_tol(DType t, int64_t terms) {
  const double s = std::sqrt(static_cast<double>(terms));
  switch (t) {
    case DType::float64:
      return {1e-13 * s, 1e-12};
    case DType::float16:
      return {2e-3 * s, 4e-3};
    case DType::bfloat16:
      return {1.6e-2 * s, 3e-2};
    default:
      return {4e-6 * s, 2e-5};
  }
}

// Leaves on `device` (grads wanted where `wants`), out = fn, sum(out * probe).backward().
// Returns {out, grads of the leaves that want one...}.
std::vector<Tensor> run(const std::vector<Tensor>& cpu_leaves, const std::vector<bool>& wants,
                        const Device& device, const Fn& fn, const Tensor& probe) {
  std::vector<Tensor> leaves;
  for (size_t i = 0; i < cpu_leaves.size(); ++i) {
    if (!cpu_leaves[i].defined()) {
      leaves.emplace_back();
      continue;
    }
    Tensor l = cpu_leaves[i].to(device).clone().detach();
    if (wants[i]) l.set_requires_grad(true);
    leaves.push_back(l);
  }
  Tensor out = fn(leaves);
  sum(mul(out, probe.to(device).to(out.dtype()))).backward();
  std::vector<Tensor> r = {out};
  for (size_t i = 0; i < leaves.size(); ++i)
    if (wants[i]) r.push_back(leaves[i].grad());
  return r;
}

struct ConvCase {
  Shape x;  // (N, C, H, W) or (C, H, W)
  int64_t oc, kh, kw;
  std::vector<int64_t> stride, padding, dilation;
  int64_t groups;
  bool bias;
};

std::string describe(const ConvCase& c, DType t) {
  return "conv2d " + std::string(dtype_name(t)) + " x" + shape_str(c.x) +
         " oc=" + std::to_string(c.oc) + " k=" + std::to_string(c.kh) + "x" + std::to_string(c.kw) +
         " s=" + shape_str(c.stride) + " p=" + shape_str(c.padding) +
         " d=" + shape_str(c.dilation) + " g=" + std::to_string(c.groups) + (c.bias ? " bias" : "");
}

TEST(CudaConv, ForwardAndGradientsMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  const std::vector<ConvCase> cases = {
      {{2, 3, 16, 16}, 8, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true},
      {{4, 16, 15, 13}, 32, 3, 3, {2, 2}, {1, 1}, {1, 1}, 1, true},
      {{3, 8, 12, 12}, 8, 5, 3, {1, 2}, {2, 0}, {1, 1}, 1, false},
      {{2, 8, 17, 17}, 12, 3, 3, {1, 1}, {2, 2}, {2, 2}, 2, true},  // dilated, grouped
      {{2, 16, 9, 9}, 16, 3, 3, {1, 1}, {1, 1}, {1, 1}, 16, true},  // depthwise
      {{5, 4, 8, 8}, 6, 1, 1, {1, 1}, {0, 0}, {1, 1}, 1, true},     // 1x1
      {{3, 10, 11}, 4, 3, 3, {1, 1}, {0, 0}, {1, 1}, 1, true},      // unbatched
      {{1, 1, 28, 28}, 6, 5, 5, {1, 1}, {2, 2}, {1, 1}, 1, true},   // LeNet-style first layer
  };
  uint64_t seed = 1;
  for (const ConvCase& c : cases) {
    const bool batched = c.x.size() == 4;
    const int64_t C = batched ? c.x[1] : c.x[0];
    for (DType dt : kFloatTypes) {
      const Tensor x = test::uniform_tensor(c.x, dt, -1, 1, seed++);
      const Tensor w = test::uniform_tensor({c.oc, C / c.groups, c.kh, c.kw}, dt, -1, 1, seed++);
      const Tensor b = c.bias ? test::uniform_tensor({c.oc}, dt, -1, 1, seed++) : Tensor();
      const Fn fn = [&c](const std::vector<Tensor>& v) {
        return conv2d(v[0], v[1], v[2], c.stride, c.padding, c.dilation, c.groups);
      };
      const Tensor shape_probe = fn({x, w, b});
      const Tensor probe = test::uniform_tensor(shape_probe.sizes(), DType::float32, -1, 1, seed++);
      const std::vector<bool> wants = {true, true, c.bias};
      const std::vector<Tensor> want = run({x, w, b}, wants, Device::cpu(), fn, probe);
      const std::vector<Tensor> got = run({x, w, b}, wants, kGpu, fn, probe);
      ASSERT_EQ(want.size(), got.size());
      const std::string what = describe(c, dt);
      const int64_t n = batched ? c.x[0] : 1;
      const int64_t oh = shape_probe.size(-2), ow = shape_probe.size(-1);
      const int64_t taps = (C / c.groups) * c.kh * c.kw;
      EXPECT_EQ(got[0].device(), kGpu) << what;
      test::expect_matches(want[0], got[0], conv_tol(dt, taps), what + " output");
      test::expect_matches(want[1], got[1], conv_tol(dt, c.oc * c.kh * c.kw), what + " grad input");
      test::expect_matches(want[2], got[2], conv_tol(dt, n * oh * ow), what + " grad weight");
      if (c.bias)
        test::expect_matches(want[3], got[3], conv_tol(dt, n * oh * ow), what + " grad bias");
    }
  }
}

// conv1d and conv_transpose2d are compositions over conv2d and its recorded input gradient: the
// same cuDNN kernels, checked through the ops (output and the three gradients) against the CPU.
TEST(CudaConv, Conv1dAndConvTranspose2dMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  struct Row {
    std::string name;
    Shape x, w;
    int64_t out_channels;
    Fn fn;
    int64_t taps;  // the most products one output or gradient element sums
  };
  const std::vector<Row> rows = {
      {"conv1d stride 2 padding 1 groups 2",
       {4, 8, 33},
       {12, 4, 5},
       12,
       [](const std::vector<Tensor>& v) { return conv1d(v[0], v[1], v[2], 2, 1, 1, 2); },
       4 * 33},
      {"conv1d unbatched dilated",
       {6, 40},
       {4, 6, 3},
       4,
       [](const std::vector<Tensor>& v) { return conv1d(v[0], v[1], v[2], 1, 2, 3); },
       40},
      {"conv_transpose2d stride 2 output_padding 1",
       {2, 8, 7, 6},
       {8, 4, 3, 3},
       4,
       [](const std::vector<Tensor>& v) {
         return conv_transpose2d(v[0], v[1], v[2], {2}, {1}, {1});
       },
       2 * 15 * 13},
      {"conv_transpose2d grouped dilated, output_padding past the stride",
       {2, 6, 5, 5},
       {6, 2, 3, 2},
       6,
       [](const std::vector<Tensor>& v) {
         return conv_transpose2d(v[0], v[1], v[2], {1}, {1, 0}, {1, 2}, 3, {2, 3});
       },
       2 * 9 * 11},
      {"conv_transpose2d unbatched",
       {4, 6, 6},
       {4, 3, 2, 2},
       3,
       [](const std::vector<Tensor>& v) { return conv_transpose2d(v[0], v[1], v[2], {2}); },
       12 * 12},
  };
  uint64_t seed = 900;
  for (const Row& r : rows) {
    for (DType dt : kFloatTypes) {
      const std::string what = r.name + " " + std::string(dtype_name(dt));
      const Tensor x = test::uniform_tensor(r.x, dt, -1, 1, seed++);
      const Tensor w = test::uniform_tensor(r.w, dt, -1, 1, seed++);
      const Tensor b = test::uniform_tensor({r.out_channels}, dt, -1, 1, seed++);
      const Tensor probe_shape = r.fn({x, w, b});
      const Tensor probe = test::uniform_tensor(probe_shape.sizes(), DType::float32, -1, 1, seed++);
      const std::vector<Tensor> want =
          run({x, w, b}, {true, true, true}, Device::cpu(), r.fn, probe);
      const std::vector<Tensor> got = run({x, w, b}, {true, true, true}, kGpu, r.fn, probe);
      ASSERT_EQ(want.size(), got.size()) << what;
      const char* parts[] = {" output", " grad input", " grad weight", " grad bias"};
      for (size_t i = 0; i < want.size(); ++i)
        test::expect_matches(want[i], got[i], conv_tol(dt, r.taps), what + parts[i]);
    }
  }
}

// A repeated problem reuses its cached plan and gives the same bits (deterministic algorithms).
TEST(CudaConv, RepeatedCallsAreDeterministic) {
  FABRIC_REQUIRE_CUDA();
  const Tensor x = test::uniform_tensor({8, 16, 20, 20}, DType::float32, -1, 1, 41).to(kGpu);
  const Tensor w = test::uniform_tensor({32, 16, 3, 3}, DType::float32, -1, 1, 42).to(kGpu);
  const Tensor probe = test::uniform_tensor({8, 32, 20, 20}, DType::float32, -1, 1, 43).to(kGpu);
  Tensor first_grad;
  for (int rep = 0; rep < 3; ++rep) {
    Tensor wl = w.clone().detach();
    wl.set_requires_grad(true);
    sum(mul(conv2d(x, wl, Tensor(), {1, 1}, {1, 1}), probe)).backward();
    if (rep == 0) {
      first_grad = wl.grad();
    } else {
      test::expect_matches(first_grad.to(Device::cpu()), wl.grad(), {},
                           "repeat " + std::to_string(rep));
    }
  }
}

struct PoolCase {
  Shape x;
  std::vector<int64_t> kernel, stride, padding;
};

TEST(CudaPool, MaxAndAvgForwardBackwardBitExact) {
  FABRIC_REQUIRE_CUDA();
  const std::vector<PoolCase> cases = {
      {{2, 3, 8, 8}, {2, 2}, {}, {0, 0}},
      {{2, 4, 9, 11}, {3, 3}, {2, 2}, {1, 1}},
      {{1, 2, 7, 7}, {3, 3}, {1, 1}, {1, 1}},  // overlapping windows
      {{3, 5, 10, 9}, {3, 2}, {1, 2}, {1, 0}},
      {{4, 6, 5}, {2, 2}, {1, 1}, {0, 0}},  // unbatched, overlapping
      {{1, 1, 33, 47}, {5, 4}, {3, 2}, {2, 2}},
  };
  uint64_t seed = 100;
  for (const PoolCase& c : cases) {
    for (DType dt : kFloatTypes) {
      // Small integers: many ties, so "the first maximum" decides where max pool's gradient goes.
      const Tensor ties = test::random_ints(c.x, DType::int64, 0, 3, seed++).to(dt);
      const Tensor awkward = test::awkward_tensor(c.x, dt, seed++);
      for (const Tensor& x : {ties, awkward}) {
        const std::string what = "pool " + std::string(dtype_name(dt)) + " x" + shape_str(c.x) +
                                 " k=" + shape_str(c.kernel) + " s=" + shape_str(c.stride) +
                                 " p=" + shape_str(c.padding);
        for (bool is_max : {true, false}) {
          const Fn fn = [&c, is_max](const std::vector<Tensor>& v) {
            return is_max ? max_pool2d(v[0], c.kernel, c.stride, c.padding)
                          : avg_pool2d(v[0], c.kernel, c.stride, c.padding);
          };
          const Tensor out_shape = fn({x});
          const Tensor probe =
              test::uniform_tensor(out_shape.sizes(), DType::float32, -1, 1, seed++);
          const std::vector<Tensor> want = run({x}, {true}, Device::cpu(), fn, probe);
          const std::vector<Tensor> got = run({x}, {true}, kGpu, fn, probe);
          const std::string name = (is_max ? "max " : "avg ") + what;
          test::expect_matches(want[0], got[0], {}, name + " output");
          test::expect_matches(want[1], got[1], {}, name + " grad");
        }
      }
    }
  }
}

// The gradients recorded for double backward (conv2d_backward_input/_weight, the pool gradients,
// max pool's argmax positions) run on the same kernels as the fused ones: a gradient penalty's
// parameter gradients on the GPU against the CPU's, in float64. Windows of relu's zeros are max
// pool ties whose first position gets the second-order gradient, so the argmax positions must
// agree too. Several convolutions deep: a looser tolerance than a single one's.
TEST(CudaConv, DoubleBackwardThroughConvAndPoolsMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  const DType dt = DType::float64;
  const std::vector<Tensor> cpu_leaves = {
      test::uniform_tensor({2, 2, 7, 7}, dt, -1, 1, 300),  // x
      test::uniform_tensor({4, 1, 3, 3}, dt, -1, 1, 301),  // w1 (groups 2)
      test::uniform_tensor({4}, dt, -1, 1, 302),           // b1
      test::uniform_tensor({6, 4, 2, 2}, dt, -1, 1, 303),  // w2
      test::uniform_tensor({6}, dt, -1, 1, 304)};          // b2
  auto penalty_grads = [&](const Device& device) {
    std::vector<Tensor> v;
    for (const Tensor& t : cpu_leaves)
      v.push_back(t.to(device).clone().detach().set_requires_grad(true));
    Tensor h = relu(conv2d(v[0], v[1], v[2], {1}, {2}, {2}, 2));  // (2, 4, 7, 7)
    h = max_pool2d(h, {2});                                       // (2, 4, 3, 3)
    h = conv2d(h, v[3], v[4], {2}, {1});                          // (2, 6, 2, 2)
    Tensor out = sum(tanh(avg_pool2d(h, {2}, {1}, {1})));
    Tensor gx = grad({out}, {v[0]}, {}, std::nullopt, /*create_graph=*/true)[0];
    return grad({sum(mul(gx, gx))}, {v[1], v[2], v[3], v[4]});
  };
  const std::vector<Tensor> want = penalty_grads(Device::cpu());
  const std::vector<Tensor> got = penalty_grads(kGpu);
  const char* names[] = {"w1", "b1", "w2", "b2"};
  for (size_t i = 0; i < want.size(); ++i)
    test::expect_matches(want[i], got[i], {1e-10, 1e-10},
                         std::string("penalty gradient of ") + names[i]);
}

}  // namespace
}  // namespace fabric
