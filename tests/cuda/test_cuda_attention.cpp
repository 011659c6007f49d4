// The CUDA fused attention (kernels/cuda/attention_kernels.cu) against the float64 composition
// of matmul/softmax on the CPU: outputs and q/k/v gradients through autograd, for float32,
// bfloat16 and float16, causal or not, L < S and L > S, E != Ev, sizes that are no multiple of
// the kernel's 32-row tiles, heads split as strided views out of a fused QKV tensor, and 3-D
// inputs. The CPU side gets an explicit mask (all true, or causal_mask) instead of is_causal,
// which keeps it on the composition path, and its inputs are the test dtype's values widened to
// float64, so it is the exact answer for the GPU's inputs. A direct call of the stubs makes sure
// the fused kernel (not the op's fallback) takes these problems, and declines the ones it should.
// With dropout, the GPU and the CPU draw from generators in the same state: the fused kernel
// regenerates the mask the dropout op of the composition draws, so the two still agree.
// bf16/f16 problems without dropout go to the tensor-core kernels (attention_mma_kernels.cu) on
// sm_80+; TensorCoreKernel* call that path directly to make sure it is the one taking them.
//
// Tolerances are a fraction of the largest reference value (at least 0.1; absolute) plus a
// fraction of each value (relative): float32 1e-5 (out) and 1e-4 (gradients: dS = P (dP - D) cancels); float16
// and bfloat16 a few rounding units of the dtype, gradients more, since D is formed from the
// output rounded to the dtype and each gradient is rounded again.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "nn/functional.h"
#include "tensor/attention_kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/cuda/attention_test_util.h"
#include "tests/cuda/cuda_test_util.h"

#ifdef FABRIC_WITH_CUDA
#include <cuda_runtime_api.h>

#include <cstdlib>

#include "kernels/cuda/attention_mma.h"
#endif

namespace fabric {
namespace {

namespace F = nn::functional;
using test::kGpu;
using test::attend;
using test::Build;
using test::expect_close;
using test::forward_backward;
using test::grad_tol;
using test::out_tol;

constexpr DType kTypes[] = {DType::float32, DType::bfloat16, DType::float16};

// Runs `build` on the GPU in `dt` and on the CPU in float64; compares out and every gradient.
void check(const std::string& what, const std::vector<Tensor>& inputs, DType dt,
           const Build& build) {
  const std::vector<Tensor> want =
      forward_backward(inputs, dt, DType::float64, Device::cpu(), true, build);
  const std::vector<Tensor> got = forward_backward(inputs, dt, dt, kGpu, false, build);
  ASSERT_EQ(want.size(), got.size()) << what;
  EXPECT_EQ(got[0].device(), kGpu) << what;
  EXPECT_EQ(got[0].dtype(), dt) << what;
  expect_close(want[0], got[0], out_tol(dt), what + " out");
  for (size_t i = 1; i < want.size(); ++i) {
    ASSERT_TRUE(got[i].defined()) << what << " grad " << i - 1;
    EXPECT_EQ(got[i].dtype(), dt) << what;
    expect_close(want[i], got[i], grad_tol(dt), what + " grad " + std::to_string(i - 1));
  }
}

std::string describe(const std::string& shape, DType dt, bool causal) {
  return shape + " " + std::string(dtype_name(dt)) + (causal ? " causal" : "");
}

// q in [-2, 2) and k in [-2, 2) give scores of a few units: softmax rows far from uniform.
std::vector<Tensor> qkv_inputs(const Shape& qs, const Shape& ks, const Shape& vs, DType dt) {
  return {test::uniform_tensor(qs, dt, -2, 2, 1), test::uniform_tensor(ks, dt, -2, 2, 2),
          test::uniform_tensor(vs, dt, -1, 1, 3)};
}

// ---- the stubs, directly --------------------------------------------------------------------

AttentionOperand operand(const Tensor& t) {
  return {t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}

AttentionArgs args_of(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  AttentionArgs a;
  a.batch = q.size(0), a.heads = q.size(1);
  a.L = q.size(2), a.S = k.size(2), a.E = q.size(3), a.Ev = v.size(3);
  a.dtype = q.dtype();
  a.q = operand(q), a.k = operand(k), a.v = operand(v);
  a.scale = 1.0 / std::sqrt(static_cast<double>(a.E));
  a.causal = causal;
  return a;
}

// The backward stub on a float32 problem the forward took (its out and lse on the GPU), with
// grad_out = probe, against the gradients of the float64 reference leaves `ref` (q, k, v).
void expect_stub_gradients(const AttentionArgs& a, const Tensor& out, const Tensor& lse,
                           const Tensor& probe, const std::vector<Tensor>& ref,
                           const std::string& what) {
  const TensorOptions f32{.dtype = DType::float32, .device = kGpu};
  AttentionBackwardArgs b;
  b.fwd = a;
  const Tensor grad_out = probe.to(kGpu);
  Tensor dq = empty({a.batch, a.heads, a.L, a.E}, f32), dk = empty({a.batch, a.heads, a.S, a.E}, f32),
         dv = empty({a.batch, a.heads, a.S, a.Ev}, f32);
  b.out = out.data_ptr();
  b.grad_out = grad_out.data_ptr();
  b.lse = lse.data_ptr();
  b.grad_q = dq.data_ptr();
  b.grad_k = dk.data_ptr();
  b.grad_v = dv.data_ptr();
  attention_backward_stub.find(kGpu)(b);
  expect_close(ref[0].grad(), dq, grad_tol(DType::float32), what + " grad q");
  expect_close(ref[1].grad(), dk, grad_tol(DType::float32), what + " grad k");
  expect_close(ref[2].grad(), dv, grad_tol(DType::float32), what + " grad v");
}

// Our kernels, whatever the default (cuDNN's first on CUDA): the backend is pinned to ours for
// each test and put back after.
class CudaAttention : public ::testing::Test {
 protected:
  void SetUp() override {
    was_ = attention_backend();
    set_attention_backend(AttentionBackend::fused);
  }
  void TearDown() override { set_attention_backend(was_); }

 private:
  AttentionBackend was_ = AttentionBackend::fused;
};

TEST_F(CudaAttention, KernelTakesSmallProblemsAndDeclinesOthers) {
  FABRIC_REQUIRE_CUDA();
  const AttentionFn forward = attention_stub.find(kGpu);
  const AttentionBackwardFn backward = attention_backward_stub.find(kGpu);
  ASSERT_NE(forward, nullptr);
  ASSERT_NE(backward, nullptr);
  const int64_t B = 1, H = 2, L = 9, S = 11, E = 16, Ev = 8;
  const TensorOptions f32{.dtype = DType::float32, .device = kGpu};

  for (bool causal : {false, true}) {
    const std::string what = causal ? "direct causal" : "direct";
    const std::vector<Tensor> in =
        qkv_inputs({B, H, L, E}, {B, H, S, E}, {B, H, S, Ev}, DType::float32);
    const Tensor q = in[0].to(kGpu), k = in[1].to(kGpu), v = in[2].to(kGpu);
    Tensor out = empty({B, H, L, Ev}, f32), lse = empty({B, H, L}, f32);
    ASSERT_TRUE(forward(args_of(q, k, v, causal), out.data_ptr(), lse.data_ptr())) << what;

    // The float64 reference: out and its gradients by autograd, lse from the masked scores.
    std::vector<Tensor> ref;
    for (const Tensor& t : in) {
      Tensor l = t.to(DType::float64).clone().detach();
      l.set_requires_grad(true);
      ref.push_back(l);
    }
    const Tensor want = attend(ref[0], ref[1], ref[2], causal, true);
    const Tensor probe = test::uniform_tensor({B, H, L, Ev}, DType::float32, -1, 1, 5);
    want.backward(probe.to(DType::float64));
    const Tensor scores = mul(matmul(ref[0].detach(), ref[1].detach().transpose(-2, -1)),
                              Scalar(1.0 / std::sqrt(static_cast<double>(E))));
    const Tensor mask = causal ? F::causal_mask(L, S) : ones({L, S}, {.dtype = DType::bool_});
    const Tensor want_lse =
        logsumexp(where(mask, scores, Scalar(-std::numeric_limits<double>::infinity())), {-1});
    expect_close(want.detach(), out, out_tol(DType::float32), what + " out");
    expect_close(want_lse, lse, out_tol(DType::float32), what + " lse");

    expect_stub_gradients(args_of(q, k, v, causal), out, lse, probe, ref, what);
  }

  // Declined problems leave out and lse as they were.
  struct Declined {
    std::string what;
    DType dtype;
    int64_t E, Ev;
  };
  for (const Declined& d : {Declined{"float64", DType::float64, 16, 8},
                            Declined{"E = 512", DType::float32, 512, 64},
                            Declined{"Ev = 512", DType::float32, 64, 512},
                            Declined{"E = 136", DType::bfloat16, 136, 64}}) {
    const TensorOptions opts{.dtype = d.dtype, .device = kGpu};
    const Tensor q = zeros({B, H, L, d.E}, opts), k = zeros({B, H, S, d.E}, opts),
                 v = zeros({B, H, S, d.Ev}, opts);
    const DType lse_dt = d.dtype == DType::float64 ? DType::float64 : DType::float32;
    Tensor out = full({B, H, L, d.Ev}, 7, opts);
    Tensor lse = full({B, H, L}, 7, {.dtype = lse_dt, .device = kGpu});
    EXPECT_FALSE(forward(args_of(q, k, v, false), out.data_ptr(), lse.data_ptr())) << d.what;
    EXPECT_FALSE(forward(args_of(q, k, v, true), out.data_ptr(), lse.data_ptr())) << d.what;
    expect_close(full({B, H, L, d.Ev}, 7, {.dtype = DType::float64}), out, {0, 0},
                 d.what + " out untouched");
    expect_close(full({B, H, L}, 7, {.dtype = DType::float64}), lse, {0, 0},
                 d.what + " lse untouched");
  }
}

// ---- through the op and autograd ------------------------------------------------------------

struct Case {
  int64_t B, H, L, S, E, Ev;
  const char* why;
};
const std::vector<Case> kCases = {
    {2, 3, 37, 53, 24, 40, "L < S, E != Ev, no size a multiple of a tile"},
    {2, 2, 70, 29, 64, 32, "L > S: causal rows past S attend every key"},
    {1, 2, 64, 64, 64, 64, "whole tiles, GPT-2's head size"},
    {1, 1, 129, 100, 128, 96, "the 128-wide kernels, a last query tile of one row"},
    {1, 2, 20, 90, 16, 16, "causal keys past every query get zero gradients"},
    {3, 1, 1, 1, 8, 8, "one query, one key"},
    {1, 1, 5, 300, 72, 8, "many key tiles, E in the 128 width and Ev small"},
};

TEST_F(CudaAttention, ForwardAndGradientsMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  const AttentionFn forward = attention_stub.find(kGpu);
  ASSERT_NE(forward, nullptr);
  for (DType dt : kTypes) {
    for (const Case& c : kCases) {
      const std::vector<Tensor> in =
          qkv_inputs({c.B, c.H, c.L, c.E}, {c.B, c.H, c.S, c.E}, {c.B, c.H, c.S, c.Ev}, dt);
      for (bool causal : {false, true}) {
        const std::string shape = "B" + std::to_string(c.B) + " H" + std::to_string(c.H) +
                                  " L" + std::to_string(c.L) + " S" + std::to_string(c.S) +
                                  " E" + std::to_string(c.E) + " Ev" + std::to_string(c.Ev) +
                                  " (" + c.why + ")";
        {  // the fused kernel takes this problem: the op below does not fall back
          const Tensor q = in[0].to(kGpu), k = in[1].to(kGpu), v = in[2].to(kGpu);
          Tensor out = empty({c.B, c.H, c.L, c.Ev}, {.dtype = dt, .device = kGpu});
          Tensor lse = empty({c.B, c.H, c.L}, {.dtype = DType::float32, .device = kGpu});
          EXPECT_TRUE(forward(args_of(q, k, v, causal), out.data_ptr(), lse.data_ptr()))
              << describe(shape, dt, causal);
        }
        check(describe(shape, dt, causal), in, dt,
              [&](const std::vector<Tensor>& x, bool reference) {
                return attend(x[0], x[1], x[2], causal, reference);
              });
      }
    }
  }
}

// q, k, v as nn/transformer.cpp makes them: heads split out of one (B, T, 3C) projection, so each
// is a strided view (head stride hs, row stride 3C); the gradient lands in the fused tensor.
TEST_F(CudaAttention, HeadsSplitFromAFusedQkvTensor) {
  FABRIC_REQUIRE_CUDA();
  struct Fused {
    int64_t B, T, nh, hs;
  };
  for (const Fused& f : {Fused{2, 45, 3, 20}, Fused{1, 70, 2, 64}}) {
    const int64_t C = f.nh * f.hs;
    for (DType dt : kTypes) {
      const Tensor qkv = test::uniform_tensor({f.B, f.T, 3 * C}, dt, -2, 2, 21);
      for (bool causal : {false, true}) {
        const std::string shape = "fused qkv B" + std::to_string(f.B) + " T" +
                                  std::to_string(f.T) + " nh" + std::to_string(f.nh) + " hs" +
                                  std::to_string(f.hs);
        check(describe(shape, dt, causal), {qkv}, dt,
              [&](const std::vector<Tensor>& x, bool reference) {
                auto head_split = [&](int64_t i) {
                  return x[0].narrow(2, i * C, C).view({f.B, f.T, f.nh, f.hs}).transpose(1, 2);
                };
                return attend(head_split(0), head_split(1), head_split(2), causal, reference);
              });
      }
    }
  }
}

// ---- the tensor-core kernels ------------------------------------------------------------------

#ifdef FABRIC_WITH_CUDA
// Whether the mma path should take bf16/f16 problems here: an sm_80+ device and
// FABRIC_ATTENTION_MMA not "0".
bool mma_expected() {
  const char* env = std::getenv("FABRIC_ATTENTION_MMA");
  if (env != nullptr && std::string(env) == "0") return false;
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess)
    return false;
  return major >= 8;
}

// The mma forward on q, k, v (GPU tensors, possibly strided views): whether it took the problem.
bool mma_takes(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  Tensor out =
      empty({q.size(0), q.size(1), q.size(2), v.size(3)}, {.dtype = q.dtype(), .device = kGpu});
  Tensor lse = empty({q.size(0), q.size(1), q.size(2)}, {.dtype = DType::float32, .device = kGpu});
  return cuda::attention_forward_mma(args_of(q, k, v, causal), out.data_ptr(), lse.data_ptr());
}

// Head sizes 64 and 128 (and smaller ones padded), L != S, lengths that are no multiple of the
// 64-row blocks or the 32-row backward tiles, causal or not: the mma path takes them (checked
// directly) and the op + autograd match the float64 composition.
TEST_F(CudaAttention, TensorCoreKernelMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  const bool expect_mma = mma_expected();
  const std::vector<Case> cases = {
      {1, 2, 130, 70, 64, 64, "L > S, three query blocks, a partial key tile"},
      {1, 1, 50, 200, 128, 128, "L < S, head size 128, four key tiles"},
      {2, 1, 65, 65, 64, 64, "one row past a block"},
      {1, 1, 1, 1, 128, 128, "one query, one key"},
      {1, 2, 100, 37, 40, 48, "E != Ev, both padded to 64, unaligned rows"},
  };
  for (DType dt : {DType::bfloat16, DType::float16}) {
    for (const Case& c : cases) {
      const std::vector<Tensor> in =
          qkv_inputs({c.B, c.H, c.L, c.E}, {c.B, c.H, c.S, c.E}, {c.B, c.H, c.S, c.Ev}, dt);
      for (bool causal : {false, true}) {
        const std::string what =
            describe("mma B" + std::to_string(c.B) + " H" + std::to_string(c.H) + " L" +
                         std::to_string(c.L) + " S" + std::to_string(c.S) + " E" +
                         std::to_string(c.E) + " Ev" + std::to_string(c.Ev) + " (" + c.why + ")",
                     dt, causal);
        EXPECT_EQ(mma_takes(in[0].to(kGpu), in[1].to(kGpu), in[2].to(kGpu), causal), expect_mma)
            << what;
        check(what, in, dt, [&](const std::vector<Tensor>& x, bool reference) {
          return attend(x[0], x[1], x[2], causal, reference);
        });
      }
    }
  }
}

// Heads split out of one fused (B, T, 3C) projection with head sizes 64 and 128: 16-byte aligned
// strided rows, the mma kernels' vector loads.
TEST_F(CudaAttention, TensorCoreKernelTakesFusedQkvHeads) {
  FABRIC_REQUIRE_CUDA();
  const bool expect_mma = mma_expected();
  struct Fused {
    int64_t B, T, nh, hs;
  };
  for (const Fused& f : {Fused{2, 100, 2, 64}, Fused{1, 67, 2, 128}}) {
    const int64_t C = f.nh * f.hs;
    for (DType dt : {DType::bfloat16, DType::float16}) {
      const Tensor qkv = test::uniform_tensor({f.B, f.T, 3 * C}, dt, -2, 2, 31);
      for (bool causal : {false, true}) {
        const std::string what =
            describe("mma fused qkv B" + std::to_string(f.B) + " T" + std::to_string(f.T) + " nh" +
                         std::to_string(f.nh) + " hs" + std::to_string(f.hs),
                     dt, causal);
        auto split = [&](const Tensor& t, int64_t i) {
          return t.narrow(2, i * C, C).view({f.B, f.T, f.nh, f.hs}).transpose(1, 2);
        };
        const Tensor g = qkv.to(kGpu);
        EXPECT_EQ(mma_takes(split(g, 0), split(g, 1), split(g, 2), causal), expect_mma) << what;
        check(what, {qkv}, dt, [&](const std::vector<Tensor>& x, bool reference) {
          return attend(split(x[0], 0), split(x[0], 1), split(x[0], 2), causal, reference);
        });
      }
    }
  }
}

// GPT-2's attention as tools/gpu-check.sh trains it (nn/transformer.cpp): causal heads of 64 split
// out of one fused (B, T, 3C) projection at T = 1024, so the double-buffered tile loops run up to
// their full length (16 tiles of 64 keys in the tensor-core forward, 32 tiles of 32 in its
// backward and in the CUDA-core kernels), cut per block by the causal bound: bfloat16 and float16
// on the tensor-core kernels, float32 on the CUDA-core ones. (The CPU's fused kernel, which rounds
// P and dS as these do, meets a quarter of these tolerances on this problem.)
TEST_F(CudaAttention, GptShapedCausalHeads) {
  FABRIC_REQUIRE_CUDA();
  const AttentionFn forward = attention_stub.find(kGpu);
  ASSERT_NE(forward, nullptr);
  const bool expect_mma = mma_expected();
  const int64_t B = 1, T = 1024, nh = 2, hs = 64, C = nh * hs;
  for (DType dt : kTypes) {
    const Tensor qkv = test::uniform_tensor({B, T, 3 * C}, dt, -2, 2, 41);
    auto split = [&](const Tensor& t, int64_t i) {
      return t.narrow(2, i * C, C).view({B, T, nh, hs}).transpose(1, 2);
    };
    const std::string what = describe("GPT-shaped fused qkv B1 T1024 nh2 hs64", dt, true);
    {  // the fused kernel takes it (the tensor-core one for bf16/f16): the op does not fall back
      const Tensor g = qkv.to(kGpu);
      const Tensor q = split(g, 0), k = split(g, 1), v = split(g, 2);
      Tensor out = empty({B, nh, T, hs}, {.dtype = dt, .device = kGpu});
      Tensor lse = empty({B, nh, T}, {.dtype = DType::float32, .device = kGpu});
      EXPECT_TRUE(forward(args_of(q, k, v, true), out.data_ptr(), lse.data_ptr())) << what;
      if (dt != DType::float32) EXPECT_EQ(mma_takes(q, k, v, true), expect_mma) << what;
    }
    check(what, {qkv}, dt, [&](const std::vector<Tensor>& x, bool reference) {
      return attend(split(x[0], 0), split(x[0], 1), split(x[0], 2), true, reference);
    });
  }
}

// What the mma path declines goes to the CUDA-core kernels: float32, dropout, head sizes past 128.
TEST_F(CudaAttention, TensorCoreKernelDeclines) {
  FABRIC_REQUIRE_CUDA();
  const int64_t B = 1, H = 1, L = 9, S = 11;
  for (DType dt : {DType::float32, DType::bfloat16}) {
    const TensorOptions opts{.dtype = dt, .device = kGpu};
    const Tensor q = zeros({B, H, L, 16}, opts), k = zeros({B, H, S, 16}, opts),
                 v = zeros({B, H, S, 16}, opts);
    Tensor out = full({B, H, L, 16}, 7, opts),
           lse = full({B, H, L}, 7, {.dtype = DType::float32, .device = kGpu});
    AttentionArgs a = args_of(q, k, v, false);
    if (dt == DType::bfloat16) a.dropout_p = 0.1;
    EXPECT_FALSE(cuda::attention_forward_mma(a, out.data_ptr(), lse.data_ptr())) << dtype_name(dt);
    expect_close(full({B, H, L, 16}, 7, {.dtype = DType::float64}), out, {0, 0}, "out untouched");
    expect_close(full({B, H, L}, 7, {.dtype = DType::float64}), lse, {0, 0}, "lse untouched");
  }
  const TensorOptions bf{.dtype = DType::bfloat16, .device = kGpu};
  const Tensor q = zeros({B, H, L, 136}, bf), k = zeros({B, H, S, 136}, bf),
               v = zeros({B, H, S, 64}, bf);
  Tensor out = empty({B, H, L, 64}, bf),
         lse = empty({B, H, L}, {.dtype = DType::float32, .device = kGpu});
  EXPECT_FALSE(
      cuda::attention_forward_mma(args_of(q, k, v, false), out.data_ptr(), lse.data_ptr()));
}
#endif

// ---- dropout --------------------------------------------------------------------------------

// The kernel directly (as in KernelTakesSmallProblemsAndDeclinesOthers) with dropout, against the
// float64 composition drawing from a generator at the kernel's (seed, offset); and it declines
// dropout_p = 1, leaving out and lse untouched.
TEST_F(CudaAttention, KernelTakesDropoutAndDeclinesDropoutOne) {
  FABRIC_REQUIRE_CUDA();
  const AttentionFn forward = attention_stub.find(kGpu);
  const AttentionBackwardFn backward = attention_backward_stub.find(kGpu);
  ASSERT_NE(forward, nullptr);
  ASSERT_NE(backward, nullptr);
  const int64_t B = 2, H = 2, L = 37, S = 45, E = 16, Ev = 24;
  const TensorOptions f32{.dtype = DType::float32, .device = kGpu};
  const std::vector<Tensor> in =
      qkv_inputs({B, H, L, E}, {B, H, S, E}, {B, H, S, Ev}, DType::float32);
  const Tensor q = in[0].to(kGpu), k = in[1].to(kGpu), v = in[2].to(kGpu);
  const uint64_t seed = 0x9E3779B97F4A7C15ull;
  for (bool causal : {false, true}) {
    for (double p : {0.1, 0.5}) {
      // An offset just below 2^32: the draw's counters cross into the counter's high word.
      const uint64_t offset = 0xFFFFFF00ull;
      const std::string what =
          std::string("direct dropout ") + std::to_string(p) + (causal ? " causal" : "");
      AttentionArgs a = args_of(q, k, v, causal);
      a.dropout_p = p;
      a.seed = seed;
      a.offset = offset;
      Tensor out = empty({B, H, L, Ev}, f32), lse = empty({B, H, L}, f32);
      ASSERT_TRUE(forward(a, out.data_ptr(), lse.data_ptr())) << what;

      std::vector<Tensor> ref;
      for (const Tensor& t : in) {
        Tensor l = t.to(DType::float64).clone().detach();
        l.set_requires_grad(true);
        ref.push_back(l);
      }
      Generator gen(seed);
      gen.set_offset(offset);
      const Tensor want = attend(ref[0], ref[1], ref[2], causal, true, p, &gen);
      const Tensor probe = test::uniform_tensor({B, H, L, Ev}, DType::float32, -1, 1, 5);
      want.backward(probe.to(DType::float64));
      expect_close(want.detach(), out, out_tol(DType::float32), what + " out");

      expect_stub_gradients(a, out, lse, probe, ref, what);
    }
    // dropout_p = 1 drops everything: left to the composition.
    AttentionArgs a = args_of(q, k, v, causal);
    a.dropout_p = 1.0;
    a.seed = seed;
    Tensor out = full({B, H, L, Ev}, 7, f32), lse = full({B, H, L}, 7, f32);
    EXPECT_FALSE(forward(a, out.data_ptr(), lse.data_ptr())) << "dropout_p = 1";
    expect_close(full({B, H, L, Ev}, 7, {.dtype = DType::float64}), out, {0, 0},
                 "dropout_p = 1 out untouched");
    expect_close(full({B, H, L}, 7, {.dtype = DType::float64}), lse, {0, 0},
                 "dropout_p = 1 lse untouched");
  }
}

// Through the op and autograd: the GPU's fused op and the CPU's float64 composition, each with
// its own generator in the same state, agree on the output and every gradient, and leave their
// generators in the same state. The float64 side scales kept values by 1/(1-p) in float64, the
// GPU by 1/(1-p) rounded to the dtype (as the dropout op does): within the dtype's tolerance.
TEST_F(CudaAttention, DropoutMatchesTheCompositionWithTheSameGenerator) {
  FABRIC_REQUIRE_CUDA();
  const AttentionFn forward = attention_stub.find(kGpu);
  ASSERT_NE(forward, nullptr);
  const std::vector<Case> cases = {kCases[0], kCases[1], kCases[3], kCases[6]};
  uint64_t seed = 0x243F6A8885A308D3ull;
  for (DType dt : kTypes) {
    for (const Case& c : cases) {
      const std::vector<Tensor> in =
          qkv_inputs({c.B, c.H, c.L, c.E}, {c.B, c.H, c.S, c.E}, {c.B, c.H, c.S, c.Ev}, dt);
      for (bool causal : {false, true}) {
        for (double p : {0.1, 0.5}) {
          const std::string what =
              describe("dropout " + std::to_string(p) + " B" + std::to_string(c.B) + " H" +
                           std::to_string(c.H) + " L" + std::to_string(c.L) + " S" +
                           std::to_string(c.S) + " E" + std::to_string(c.E) + " Ev" +
                           std::to_string(c.Ev),
                       dt, causal);
          ++seed;
          {  // the fused kernel takes this problem
            const Tensor q = in[0].to(kGpu), k = in[1].to(kGpu), v = in[2].to(kGpu);
            AttentionArgs a = args_of(q, k, v, causal);
            a.dropout_p = p;
            a.seed = seed;
            Tensor out = empty({c.B, c.H, c.L, c.Ev}, {.dtype = dt, .device = kGpu});
            Tensor lse = empty({c.B, c.H, c.L}, {.dtype = DType::float32, .device = kGpu});
            EXPECT_TRUE(forward(a, out.data_ptr(), lse.data_ptr())) << what;
          }
          Generator cpu_gen(seed), gpu_gen(seed);
          cpu_gen.set_offset(12345);
          gpu_gen.set_offset(12345);
          check(what, in, dt, [&](const std::vector<Tensor>& x, bool reference) {
            return attend(x[0], x[1], x[2], causal, reference, p,
                                  reference ? &cpu_gen : &gpu_gen);
          });
          EXPECT_EQ(cpu_gen.state(), gpu_gen.state()) << what;
        }
      }
    }
  }
  // Heads split out of a fused QKV projection (strided q, k, v), as nn/transformer.cpp does.
  const int64_t Bf = 2, T = 45, nh = 3, hs = 20, C = nh * hs;
  for (DType dt : kTypes) {
    const Tensor qkv = test::uniform_tensor({Bf, T, 3 * C}, dt, -2, 2, 21);
    for (bool causal : {false, true}) {
      ++seed;
      Generator cpu_gen(seed), gpu_gen(seed);
      check(describe("dropout 0.2 fused qkv B2 T45 nh3 hs20", dt, causal), {qkv}, dt,
            [&](const std::vector<Tensor>& x, bool reference) {
              auto head_split = [&](int64_t i) {
                return x[0].narrow(2, i * C, C).view({Bf, T, nh, hs}).transpose(1, 2);
              };
              return attend(head_split(0), head_split(1), head_split(2), causal,
                                    reference, 0.2, reference ? &cpu_gen : &gpu_gen);
            });
      EXPECT_EQ(cpu_gen.state(), gpu_gen.state());
    }
  }
}

// (batch, L, E) inputs without a heads dim.
TEST_F(CudaAttention, ThreeDimensionalInputs) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kTypes) {
    const std::vector<Tensor> in = qkv_inputs({3, 33, 16}, {3, 47, 16}, {3, 47, 20}, dt);
    for (bool causal : {false, true}) {
      check(describe("3-D B3 L33 S47 E16 Ev20", dt, causal), in, dt,
            [&](const std::vector<Tensor>& x, bool reference) {
              return attend(x[0], x[1], x[2], causal, reference);
            });
    }
  }
}

}  // namespace
}  // namespace fabric
