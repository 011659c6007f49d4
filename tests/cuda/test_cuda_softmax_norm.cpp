// The CUDA softmax/log_softmax, layer_norm/rms_norm, batch_norm/group_norm and fused activation
// backward against the CPU through the public ops and autograd: last and inner dims, odd sizes,
// rows longer than a block, non-contiguous inputs, the NaN/inf rows, fp32/fp16/bf16/fp64 and
// widened outputs.
// Tolerances: fp32 ~1e-5 relative (exp and the sums' order differ), fp16/bf16 two rounding units
// of the dtype, fp64 ~1e-12.
#include <gtest/gtest.h>

#include <functional>

#include "tensor/activation_backward.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tensor/ops_backward_norm.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;
using test::Tolerance;
using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

constexpr DType kFloatTypes[] = {DType::float32, DType::float16, DType::bfloat16, DType::float64};

std::string name_of(const std::string& op, DType t, const Shape& s) {
  return op + " " + std::string(dtype_name(t)) + " " + shape_str(s);
}

// Rounding units of `t` (relative), with the same absolute floor scaled.
Tolerance tol_of(DType t, double fp32_rel = 1e-5, double abs_scale = 1) {
  return test::rounding_tolerance(t, abs_scale, fp32_rel);
}

// Runs `fn` on CPU inputs and on the same inputs on the GPU; compares every output.
void check_outputs(const std::string& what, const std::vector<Tensor>& inputs, const Fn& fn,
                   Tolerance tol) {
  std::vector<Tensor> gpu;
  for (const Tensor& t : inputs) gpu.push_back(t.defined() ? t.to(kGpu) : t);
  const std::vector<Tensor> want = fn(inputs), got = fn(gpu);
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!want[i].defined()) {
      EXPECT_FALSE(got[i].defined()) << what << " output " << i;
      continue;
    }
    EXPECT_EQ(got[i].device(), kGpu) << what;
    test::expect_matches(want[i], got[i], tol, what + " output " + std::to_string(i));
  }
}

// Makes leaves of `inputs` on `device` (undefined inputs stay undefined), runs `fn`, and
// backpropagates sum(out * probe); returns out followed by each leaf's gradient.
std::vector<Tensor> forward_backward(const std::vector<Tensor>& inputs, const Device& device,
                                     const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                                     const Tensor& probe) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : inputs) {
    if (!t.defined()) {
      leaves.push_back(t);
      continue;
    }
    Tensor l = t.to(device).clone().detach();
    l.set_requires_grad(true);
    leaves.push_back(l);
  }
  const Tensor out = fn(leaves);
  sum(mul(out, probe.to(device).to(out.dtype()))).backward();
  std::vector<Tensor> r{out.detach()};
  for (const Tensor& l : leaves)
    if (l.defined()) r.push_back(l.grad());
  return r;
}

// Gradients through autograd on both devices, compared leaf by leaf.
void check_grads(const std::string& what, const std::vector<Tensor>& inputs,
                 const std::function<Tensor(const std::vector<Tensor>&)>& fn, Tolerance tol) {
  const Tensor out_shape_probe = fn(inputs);
  const Tensor probe = test::uniform_tensor(out_shape_probe.sizes(), DType::float32, -1, 1, 99);
  const std::vector<Tensor> want = forward_backward(inputs, Device::cpu(), fn, probe);
  const std::vector<Tensor> got = forward_backward(inputs, kGpu, fn, probe);
  ASSERT_EQ(want.size(), got.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_TRUE(got[i].defined()) << what << " result " << i;
    EXPECT_EQ(got[i].device(), kGpu) << what;
    test::expect_matches(
        want[i], got[i], tol,
        what + (i == 0 ? std::string(" output") : " grad " + std::to_string(i - 1)));
  }
}

// ---- softmax ---------------------------------------------------------------------------------

struct SoftmaxCase {
  Shape shape;
  int64_t dim;
};
const std::vector<SoftmaxCase> kSoftmaxCases = {
    {{7, 13}, 1},    {{5, 3001}, -1}, {{2, 50257}, 1}, {{37, 29}, 0},
    {{4, 33, 5}, 1}, {{3, 1}, 1},     {{200, 3}, 1},
};

TEST(CudaSoftmax, ForwardMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (const SoftmaxCase& c : kSoftmaxCases) {
      const Tensor a = test::uniform_tensor(c.shape, dt, -8, 8, 3);
      for (bool log : {false, true}) {
        check_outputs(
            name_of(log ? "log_softmax" : "softmax", dt, c.shape), {a},
            [&](const std::vector<Tensor>& x) {
              return std::vector<Tensor>{log ? log_softmax(x[0], c.dim) : softmax(x[0], c.dim)};
            },
            tol_of(dt, 1e-5, log ? 10 : 0.01));
      }
    }
    // fp16/bf16 inputs read and widened to fp32 outputs in the kernel.
    if (dt != DType::float32 && dt != DType::float64) {
      const Tensor a = test::uniform_tensor({9, 777}, dt, -8, 8, 4);
      check_outputs(
          name_of("softmax -> fp32", dt, a.sizes()), {a},
          [](const std::vector<Tensor>& x) {
            return std::vector<Tensor>{softmax(x[0], 1, DType::float32)};
          },
          tol_of(DType::float32, 1e-5, 0.01));
      check_outputs(
          name_of("log_softmax -> fp64", dt, a.sizes()), {a},
          [](const std::vector<Tensor>& x) {
            return std::vector<Tensor>{log_softmax(x[0], 1, DType::float64)};
          },
          tol_of(DType::float64, 1e-5, 10));
    }
  }
}

TEST(CudaSoftmax, NonFiniteRowsAndNonContiguousInputs) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    Tensor a = test::uniform_tensor({6, 300}, DType::float32, -5, 5, 5);
    float* p = a.data<float>();
    p[0 * 300 + 17] = NAN;                                     // NaN: the row is NaN
    p[1 * 300 + 299] = INFINITY;                               // +inf: the row is NaN
    for (int j = 0; j < 300; ++j) p[2 * 300 + j] = -INFINITY;  // all -inf: NaN
    p[3 * 300 + 0] = -INFINITY;                                // one -inf: 0 / -inf there
    p[3 * 300 + 150] = -INFINITY;
    const Tensor t = a.to(dt);
    for (bool log : {false, true}) {
      for (int64_t dim : {1, 0}) {
        check_outputs(
            name_of(std::string(log ? "log_softmax" : "softmax") + " specials dim " +
                        std::to_string(dim),
                    dt, t.sizes()),
            {t},
            [&](const std::vector<Tensor>& x) {
              return std::vector<Tensor>{log ? log_softmax(x[0], dim) : softmax(x[0], dim)};
            },
            tol_of(dt, 1e-5, log ? 10 : 0.01));
      }
    }
    const Tensor m = test::uniform_tensor({64, 90}, dt, -4, 4, 6);
    check_outputs(
        name_of("softmax transposed", dt, m.sizes()), {m},
        [](const std::vector<Tensor>& x) {
          return std::vector<Tensor>{softmax(x[0].t(), 1), log_softmax(x[0].slice(1, 1, 90, 3), 0)};
        },
        tol_of(dt, 1e-5, 10));
  }
}

TEST(CudaSoftmax, BackwardMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (const SoftmaxCase& c : kSoftmaxCases) {
      const Tensor a = test::uniform_tensor(c.shape, dt, -4, 4, 7);
      const Tensor g = test::uniform_tensor(c.shape, dt, -1, 1, 8);
      check_outputs(
          name_of("softmax_backward", dt, c.shape), {a, g},
          [&](const std::vector<Tensor>& x) {
            const Tensor y = softmax(x[0], c.dim), ly = log_softmax(x[0], c.dim);
            return std::vector<Tensor>{softmax_backward(x[1], y, c.dim),
                                       log_softmax_backward(x[1], ly, c.dim)};
          },
          tol_of(dt, 1e-4, 0.1));
      check_grads(
          name_of("softmax autograd", dt, c.shape), {a},
          [&](const std::vector<Tensor>& x) { return softmax(x[0], c.dim); },
          tol_of(dt, 1e-4, 0.1));
      check_grads(
          name_of("log_softmax autograd", dt, c.shape), {a},
          [&](const std::vector<Tensor>& x) { return log_softmax(x[0], c.dim); },
          tol_of(dt, 1e-4, 10));
    }
  }
}

// ---- layer_norm / rms_norm -------------------------------------------------------------------

struct NormCase {
  Shape shape;
  Shape normalized;
};
const std::vector<NormCase> kNormCases = {
    {{7, 13}, {13}},
    {{16, 4099}, {4099}},
    {{3, 5, 64}, {64}},
    {{3, 5, 64}, {5, 64}},
    {{2048, 48}, {48}},
    {{5, 1}, {1}},
    // GPT-2's rows (a warp a row: 6 float32 pieces a thread, 3 of bf16/f16), and rows long
    // enough for 128 lanes (norm_rows_wide.h).
    {{2, 300, 768}, {768}},
    {{6, 4096}, {4096}},
    // 64 lanes; and the widest rows held in registers (256 lanes, 8 float32 pieces a thread), in a
    // row count no block's row count divides.
    {{5, 2048}, {2048}},
    {{37, 8192}, {8192}},
};

TEST(CudaNorm, LayerNormAndRmsNormForward) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (const NormCase& c : kNormCases) {
      // An offset mean: the variance must not lose it.
      const Tensor x = test::uniform_tensor(c.shape, dt, 2, 6, 11);
      const Tensor w = test::uniform_tensor(c.normalized, dt, 0.5f, 1.5f, 12);
      const Tensor b = test::uniform_tensor(c.normalized, dt, -1, 1, 13);
      const Tolerance tol = tol_of(dt, 2e-5, 4);
      check_outputs(
          name_of("layer_norm stats", dt, c.shape), {x, w, b},
          [&](const std::vector<Tensor>& v) {
            auto [y, mean, rstd] = layer_norm_with_stats(v[0], c.normalized, v[1], v[2], 1e-5);
            return std::vector<Tensor>{y, mean, rstd};
          },
          tol);
      check_outputs(
          name_of("layer_norm no affine", dt, c.shape), {x},
          [&](const std::vector<Tensor>& v) {
            return std::vector<Tensor>{layer_norm(v[0], c.normalized)};
          },
          tol);
      check_outputs(
          name_of("layer_norm weight only", dt, c.shape), {x, w},
          [&](const std::vector<Tensor>& v) {
            return std::vector<Tensor>{layer_norm(v[0], c.normalized, v[1])};
          },
          tol);
      check_outputs(
          name_of("rms_norm stats", dt, c.shape), {x, w},
          [&](const std::vector<Tensor>& v) {
            auto [y, rstd] = rms_norm_with_stats(v[0], c.normalized, v[1], 1e-6);
            return std::vector<Tensor>{y, rstd};
          },
          tol);
    }
  }
  // Mixed: bf16 activations with fp32 parameters.
  const Tensor x = test::uniform_tensor({33, 777}, DType::bfloat16, -3, 3, 14);
  const Tensor w = test::uniform_tensor({777}, DType::float32, 0.5f, 1.5f, 15);
  const Tensor b = test::uniform_tensor({777}, DType::float32, -1, 1, 16);
  check_outputs(
      "layer_norm bf16 x fp32 params", {x, w, b},
      [](const std::vector<Tensor>& v) {
        return std::vector<Tensor>{layer_norm(v[0], {777}, v[1], v[2])};
      },
      tol_of(DType::bfloat16));
}

TEST(CudaNorm, BackwardMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (const NormCase& c : kNormCases) {
      const Tensor x = test::uniform_tensor(c.shape, dt, -2, 2, 21);
      const Tensor w = test::uniform_tensor(c.normalized, dt, 0.5f, 1.5f, 22);
      const Tensor b = test::uniform_tensor(c.normalized, dt, -1, 1, 23);
      const Tensor g = test::uniform_tensor(c.shape, dt, -1, 1, 24);
      // Parameter gradients are sums over up to 2048 rows.
      const Tolerance tol = tol_of(dt, 1e-4, 10);
      check_outputs(
          name_of("layer_norm_backward", dt, c.shape), {x, w, b, g},
          [&](const std::vector<Tensor>& v) {
            auto [y, mean, rstd] = layer_norm_with_stats(v[0], c.normalized, v[1], v[2], 1e-5);
            auto [dx, dw, db] = layer_norm_backward(v[3], v[0], c.normalized, v[1], mean, rstd);
            return std::vector<Tensor>{dx, dw, db};
          },
          tol);
      check_outputs(
          name_of("layer_norm_backward no weight", dt, c.shape), {x, g},
          [&](const std::vector<Tensor>& v) {
            auto [y, mean, rstd] =
                layer_norm_with_stats(v[0], c.normalized, Tensor(), Tensor(), 1e-5);
            auto [dx, dw, db] = layer_norm_backward(v[1], v[0], c.normalized, Tensor(), mean, rstd);
            return std::vector<Tensor>{dx, dw, db};
          },
          tol);
      check_outputs(
          name_of("rms_norm_backward", dt, c.shape), {x, w, g},
          [&](const std::vector<Tensor>& v) {
            auto [y, rstd] = rms_norm_with_stats(v[0], c.normalized, v[1], 1e-6);
            auto [dx, dw] = rms_norm_backward(v[2], v[0], c.normalized, v[1], rstd);
            return std::vector<Tensor>{dx, dw};
          },
          tol);
      check_grads(
          name_of("layer_norm autograd", dt, c.shape), {x, w, b},
          [&](const std::vector<Tensor>& v) { return layer_norm(v[0], c.normalized, v[1], v[2]); },
          tol);
      check_grads(
          name_of("rms_norm autograd", dt, c.shape), {x, w},
          [&](const std::vector<Tensor>& v) { return rms_norm(v[0], c.normalized, v[1]); }, tol);
    }
  }
}

// Rows that start off 16-byte alignment (a contiguous view one element into its storage): the wide
// kernels refuse them (their fit checks every pointer) and the general ones give the CPU's values.
TEST(CudaNorm, RowsOffSixteenByteAlignmentMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::float32, DType::bfloat16}) {
    const Tensor x = test::uniform_tensor({9, 768}, dt, -2, 2, 31);
    const Tensor w = test::uniform_tensor({768}, dt, 0.5f, 1.5f, 32);
    const Tensor b = test::uniform_tensor({768}, dt, -1, 1, 33);
    const Tensor g = test::uniform_tensor({9, 768}, dt, -1, 1, 34);
    const auto offset_view = [](const Tensor& t) {
      Tensor storage = zeros({t.numel() + 1}, {.dtype = t.dtype(), .device = t.device()});
      Tensor view = storage.narrow(0, 1, t.numel()).view(t.sizes());
      view.copy_(t);
      return view;
    };
    check_outputs(
        name_of("layer_norm offset rows", dt, x.sizes()), {x, w, b, g},
        [&](const std::vector<Tensor>& v) {
          const Tensor xo = offset_view(v[0]), go = offset_view(v[3]);
          auto [y, mean, rstd] = layer_norm_with_stats(xo, {768}, v[1], v[2], 1e-5);
          auto [dx, dw, db] = layer_norm_backward(go, xo, {768}, v[1], mean, rstd);
          return std::vector<Tensor>{y, dx, dw, db};
        },
        tol_of(dt, 1e-4, 10));
  }
}

// A float32 norm whose output is bf16/f16 (out_dtype: the autocast cast folded into it) equals
// the norm followed by the cast on the GPU bit for bit, and so do the gradients that come back in
// that dtype: the wide kernels (rows of whole pieces) and the general ones (odd rows) alike.
TEST(CudaNorm, OutDtypeEqualsTheNormThenTheCast) {
  FABRIC_REQUIRE_CUDA();
  for (const NormCase& c : kNormCases) {
    for (const DType low : {DType::bfloat16, DType::float16}) {
      for (const bool rms : {false, true}) {
        const Tensor x0 = test::uniform_tensor(c.shape, DType::float32, -2, 2, 41).to(kGpu);
        const Tensor w0 = test::uniform_tensor(c.normalized, DType::float32, 0.5f, 1.5f, 42);
        const Tensor b0 = test::uniform_tensor(c.normalized, DType::float32, -1, 1, 43);
        const Tensor r = test::uniform_tensor(c.shape, low, -1, 1, 44).to(kGpu);
        const auto run = [&](bool fused) {
          Tensor x = x0.detach().clone().set_requires_grad(true);
          Tensor w = w0.to(kGpu).set_requires_grad(true), b = b0.to(kGpu).set_requires_grad(true);
          Tensor y = rms ? rms_norm(x, c.normalized, w, 1e-6, fused ? std::optional(low)
                                                                       : std::nullopt)
                         : layer_norm(x, c.normalized, w, b, 1e-5,
                                      fused ? std::optional(low) : std::nullopt);
          if (!fused) y = y.to(low);
          sum(mul(y, r)).backward();
          return std::vector<Tensor>{y.detach(), x.grad(), w.grad(), rms ? Tensor() : b.grad()};
        };
        const std::vector<Tensor> fused = run(true), cast = run(false);
        for (size_t i = 0; i < fused.size(); ++i) {
          if (!cast[i].defined()) continue;
          EXPECT_TRUE(test::same_bits(fused[i], cast[i]))
              << name_of(rms ? "rms_norm out_dtype" : "layer_norm out_dtype", low, c.shape)
              << ": result " << i;
        }
      }
    }
  }
}

// ---- batch_norm / group_norm -----------------------------------------------------------------

struct ChannelCase {
  Shape shape;  // (N, C, ...)
  int64_t groups;
};
// Planes longer than a block, many one-value planes (BatchNorm1d on (N, C)), a sequence, 1x1.
const std::vector<ChannelCase> kChannelCases = {
    {{8, 16, 33, 33}, 4}, {{4096, 6}, 3}, {{5, 12, 1000}, 6}, {{2, 3, 1, 1}, 1}};

TEST(CudaNorm, BatchNormAndGroupNormMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    // Half inputs keep float32 running statistics (torch's native batch_norm under autocast).
    const DType stat_dt = dt == DType::float64 ? DType::float64 : DType::float32;
    for (const ChannelCase& c : kChannelCases) {
      const Shape cs = {c.shape[1]};
      const Tensor x = test::uniform_tensor(c.shape, dt, 2, 6, 31);  // an offset mean
      const Tensor w = test::uniform_tensor(cs, dt, 0.5f, 1.5f, 32);
      const Tensor b = test::uniform_tensor(cs, dt, -1, 1, 33);
      const Tensor rm = test::uniform_tensor(cs, stat_dt, -1, 1, 34);
      const Tensor rv = test::uniform_tensor(cs, stat_dt, 0.5f, 2, 35);
      const Tolerance tol = tol_of(dt, 2e-5, 4);
      check_outputs(
          name_of("batch_norm train", dt, c.shape), {x, w, b, rm.clone(), rv.clone()},
          [](const std::vector<Tensor>& v) {
            auto [y, mean, invstd] =
                batch_norm_with_stats(v[0], v[3], v[4], v[1], v[2], true, 0.1, 1e-5);
            return std::vector<Tensor>{y, mean, invstd, v[3], v[4]};  // updated running stats
          },
          tol);
      check_outputs(
          name_of("batch_norm eval", dt, c.shape), {x, w, b, rm, rv},
          [](const std::vector<Tensor>& v) {
            return std::vector<Tensor>{batch_norm(v[0], v[3], v[4], v[1], v[2], false)};
          },
          tol);
      check_outputs(
          name_of("group_norm stats", dt, c.shape), {x, w, b},
          [&](const std::vector<Tensor>& v) {
            auto [y, mean, rstd] = group_norm_with_stats(v[0], c.groups, v[1], v[2], 1e-5);
            return std::vector<Tensor>{y, mean, rstd};
          },
          tol);
      // Parameter gradients are sums over up to 8 * 33 * 33 values per channel.
      const Tolerance grad_tol = tol_of(dt, 1e-4, 10);
      const Tensor xg = test::uniform_tensor(c.shape, dt, -2, 2, 36);
      check_grads(
          name_of("batch_norm train autograd", dt, c.shape), {xg, w, b},
          [](const std::vector<Tensor>& v) {
            return batch_norm(v[0], Tensor(), Tensor(), v[1], v[2], true);
          },
          grad_tol);
      check_grads(
          name_of("batch_norm eval autograd", dt, c.shape), {xg, w, b},
          [&](const std::vector<Tensor>& v) {
            const Device d = v[0].device();
            return batch_norm(v[0], rm.to(d), rv.to(d), v[1], v[2], false);
          },
          grad_tol);
      check_grads(
          name_of("group_norm autograd", dt, c.shape), {xg, w, b},
          [&](const std::vector<Tensor>& v) { return group_norm(v[0], c.groups, v[1], v[2]); },
          grad_tol);
    }
  }
  // Mixed: bf16 activations with float32 weight, bias and running statistics.
  const Tensor x = test::uniform_tensor({16, 8, 7, 7}, DType::bfloat16, -3, 3, 37);
  const Tensor w = test::uniform_tensor({8}, DType::float32, 0.5f, 1.5f, 38);
  const Tensor b = test::uniform_tensor({8}, DType::float32, -1, 1, 39);
  check_outputs(
      "batch_norm bf16 x fp32 params and stats", {x, w, b, zeros({8}), ones({8})},
      [](const std::vector<Tensor>& v) {
        Tensor y = batch_norm(v[0], v[3], v[4], v[1], v[2], true);
        return std::vector<Tensor>{y, v[3], v[4]};
      },
      tol_of(DType::bfloat16));
}

// ---- fused activation backward ---------------------------------------------------------------

TEST(CudaActivationBackward, EveryKindMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  const std::pair<ActGrad, const char*> kinds[] = {
      {ActGrad::gelu_erf, "gelu_erf"}, {ActGrad::gelu_tanh, "gelu_tanh"}, {ActGrad::silu, "silu"},
      {ActGrad::sigmoid, "sigmoid"},   {ActGrad::tanh, "tanh"},           {ActGrad::relu, "relu"},
      // the parameterised kinds, with their default parameters (tensor/activation_kernels.h)
      {ActGrad::leaky_relu, "leaky_relu"}, {ActGrad::elu, "elu"}, {ActGrad::softplus, "softplus"},
      {ActGrad::hardtanh, "hardtanh"}, {ActGrad::mish, "mish"}, {ActGrad::hardswish, "hardswish"},
      {ActGrad::hardsigmoid, "hardsigmoid"}};
  for (DType dt : kFloatTypes) {
    const Tensor s = test::uniform_tensor({77, 131}, dt, -6, 6, 31);
    const Tensor g = test::uniform_tensor({77, 131}, dt, -2, 2, 32);
    for (const auto& [kind, name] : kinds) {
      const ActGrad k = kind;
      check_outputs(
          name_of(std::string("activation_backward ") + name, dt, s.sizes()), {g, s},
          [k](const std::vector<Tensor>& v) {
            return std::vector<Tensor>{
                activation_backward(k, v[0], v[1]),
                activation_backward(k, v[0].t().t(), v[1].slice(1, 0, 131, 1)),
                activation_backward(k, v[0].slice(0, 0, 77, 2), v[1].slice(0, 0, 77, 2))};
          },
          test::transcendental_tolerance(dt));
    }
  }
  // Through autograd: gelu and silu record their input, tanh/sigmoid/relu their output.
  for (DType dt : {DType::float32, DType::bfloat16}) {
    const Tensor x = test::uniform_tensor({31, 65}, dt, -4, 4, 33);
    check_grads(
        name_of("gelu autograd", dt, x.sizes()), {x},
        [](const std::vector<Tensor>& v) { return gelu(v[0], "tanh"); },
        test::transcendental_tolerance(dt));
    check_grads(
        name_of("silu autograd", dt, x.sizes()), {x},
        [](const std::vector<Tensor>& v) { return silu(v[0]); },
        test::transcendental_tolerance(dt));
  }
}

}  // namespace
}  // namespace fabric
