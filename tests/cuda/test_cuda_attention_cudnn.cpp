// cuDNN's fused attention (kernels/cuda/attention_cudnn.cpp), selected with
// set_attention_backend(AttentionBackend::cudnn), against the float64 composition on the CPU:
// out and the q/k/v gradients through the op and autograd, bf16 and f16, causal or not, q/k/v
// contiguous and heads cut from a packed (B, T, 3C) projection (GPT's layout). The CPU side gets
// an explicit mask, which keeps it on the composition. cuDNN's counters show that cuDNN (not our
// kernel behind it) took the forward and the backward of the shapes it must take on an sm_80+
// device; shapes it may decline only have to match. Problems cuDNN declines (float32, dropout,
// head sizes past 128) must fall back to our kernels (or the composition) and still match.
// Tolerances are those of test_cuda_attention.cpp's fused-kernel tests: a fraction of the largest
// reference value plus a fraction of each value, a few rounding units of the dtype, more for
// gradients (D = rowsum(dO * O) is formed from the output rounded to the dtype).
// Without a GPU, CudnnAttentionGraph asks cuDNN's heuristics (cuDNN 9.8+ plans for a described
// device) whether its engines take the graphs we build, on H200 and A100 profiles: it runs where
// libcuda.so.1 loads (a driver, or the toolkit's stub on LD_LIBRARY_PATH) and skips elsewhere.
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
#include <dlfcn.h>

#include "kernels/cuda/attention_cudnn.h"
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

// Selects `b` for the scope, restoring the previous backend after.
class BackendScope {
 public:
  explicit BackendScope(AttentionBackend b) : was_(attention_backend()) {
    set_attention_backend(b);
  }
  ~BackendScope() { set_attention_backend(was_); }
  BackendScope(const BackendScope&) = delete;
  BackendScope& operator=(const BackendScope&) = delete;

 private:
  AttentionBackend was_;
};

// The switch itself needs no device: set_fused_attention keeps its meaning (ours or the
// composition), the three-way switch reports what was set.
TEST(CudnnAttentionSwitch, BackendFollowsTheSetters) {
  BackendScope scope(attention_backend());
  set_attention_backend(AttentionBackend::cudnn);
  EXPECT_EQ(attention_backend(), AttentionBackend::cudnn);
  EXPECT_TRUE(fused_attention_enabled());
  EXPECT_STREQ(attention_backend_name(attention_backend()), "cudnn");
  set_fused_attention(false);
  EXPECT_EQ(attention_backend(), AttentionBackend::composed);
  EXPECT_FALSE(fused_attention_enabled());
  EXPECT_STREQ(attention_backend_name(attention_backend()), "composed");
  set_fused_attention(true);
  EXPECT_EQ(attention_backend(), AttentionBackend::fused);
  EXPECT_TRUE(fused_attention_enabled());
  EXPECT_STREQ(attention_backend_name(attention_backend()), "fused");
}

// `build` on the GPU in `dt` under the cuDNN backend against the float64 CPU composition.
void check(const std::string& what, const std::vector<Tensor>& inputs, DType dt,
           const Build& build) {
  const std::vector<Tensor> want =
      forward_backward(inputs, dt, DType::float64, Device::cpu(), true, build);
  std::vector<Tensor> got;
  {
    BackendScope cudnn(AttentionBackend::cudnn);
    got = forward_backward(inputs, dt, dt, kGpu, false, build);
  }
  ASSERT_EQ(want.size(), got.size()) << what;
  EXPECT_EQ(got[0].device(), kGpu) << what;
  EXPECT_EQ(got[0].dtype(), dt) << what;
  expect_close(want[0], got[0], out_tol(dt), what + " out");
  for (size_t i = 1; i < want.size(); ++i)
    expect_close(want[i], got[i], grad_tol(dt), what + " grad " + std::to_string(i - 1));
}

std::vector<Tensor> qkv_inputs(const Shape& qs, const Shape& ks, const Shape& vs, DType dt) {
  return {test::uniform_tensor(qs, dt, -2, 2, 1), test::uniform_tensor(ks, dt, -2, 2, 2),
          test::uniform_tensor(vs, dt, -1, 1, 3)};
}

std::string name(const std::string& shape, DType dt, bool causal) {
  return shape + " " + std::string(dtype_name(dt)) + (causal ? " causal" : "");
}

#ifdef FABRIC_WITH_CUDA
// Whether cuDNN must take the plain problems here: an sm_80+ device (cuDNN's flash attention
// engines need Ampere or newer) and a cuDNN 9 runtime other than 9.10.0/9.10.1 (declined: known
// SDPA bugs).
bool cudnn_expected() {
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess)
    return false;
  const int64_t v = cuda::cudnn_runtime_version();
  return major >= 8 && v >= 90000 && v != 91000 && v != 91001;
}

// Runs `body` and reports whether cuDNN took a forward and a backward meanwhile.
struct Taken {
  bool forward, backward;
  std::string last_decline;
};
Taken taken_during(const std::function<void()>& body) {
  const cuda::CudnnAttentionStats before = cuda::cudnn_attention_stats();
  body();
  const cuda::CudnnAttentionStats after = cuda::cudnn_attention_stats();
  return {after.forward_taken > before.forward_taken, after.backward_taken > before.backward_taken,
          after.last_decline};
}

// Counts of declines during `body`.
int64_t declines_during(const std::function<void()>& body) {
  const cuda::CudnnAttentionStats before = cuda::cudnn_attention_stats();
  body();
  const cuda::CudnnAttentionStats after = cuda::cudnn_attention_stats();
  return (after.forward_declined - before.forward_declined) +
         (after.backward_declined - before.backward_declined);
}

// ---- the graphs against a device profile, no GPU needed ---------------------------------------

// An H200 (sm_90) and an A100 (sm_80) as cuDNN 9.19 reads a device-property JSON (its field
// names; values from cudaDeviceProp of those parts).
constexpr const char* kH200 =
    R"({"maxGridSize":[2147483647,65535,65535],"maxBlockSize":[1024,1024,64],"regsPerBlock":65536,)"
    R"("multiProcessorCount":132,"warpSize":32,"maxSharedMemoryPerBlock":49152,)"
    R"("maxSharedMemoryPerBlockOptin":232448,"reservedSharedMemoryPerBlock":1024,)"
    R"("maxRegistersPerSM":65536,"maxCtasPerSM":32,"maxThreadsPerBlock":1024,"maxThreadsPerSM":2048,)"
    R"("pciDeviceId":9013,"isTccDriver":0,"supportCoopLaunch":1,"totalGlobalMem":150000000000,)"
    R"("smClockRateKHz":1980000,"memClockRateKHz":3201000,"l2CacheSize":52428800,"cudaDeviceId":0,)"
    R"("deviceVer":900,"driverVer":12080,"deviceName":"NVIDIA H200"})";
constexpr const char* kA100 =
    R"({"maxGridSize":[2147483647,65535,65535],"maxBlockSize":[1024,1024,64],"regsPerBlock":65536,)"
    R"("multiProcessorCount":108,"warpSize":32,"maxSharedMemoryPerBlock":49152,)"
    R"("maxSharedMemoryPerBlockOptin":166912,"reservedSharedMemoryPerBlock":1024,)"
    R"("maxRegistersPerSM":65536,"maxCtasPerSM":32,"maxThreadsPerBlock":1024,"maxThreadsPerSM":2048,)"
    R"("pciDeviceId":8370,"isTccDriver":0,"supportCoopLaunch":1,"totalGlobalMem":85000000000,)"
    R"("smClockRateKHz":1410000,"memClockRateKHz":1593000,"l2CacheSize":41943040,"cudaDeviceId":0,)"
    R"("deviceVer":800,"driverVer":12080,"deviceName":"NVIDIA A100-SXM4-80GB"})";

// The op's view of a (B, H, T, E) problem without data: heads cut from a packed (B, T, 3C)
// projection (GPT's layout: out laid out as (B, T, H, E), as are grad_out, and the gradients
// written into one (B, T, 3C) buffer, as the op hands them to cuDNN) or contiguous.
AttentionBackwardArgs shape_only(int64_t B, int64_t H, int64_t T, int64_t E, DType dt, bool causal,
                                 bool packed) {
  AttentionBackwardArgs b;
  AttentionArgs& a = b.fwd;
  a.batch = B, a.heads = H, a.L = T, a.S = T, a.E = E, a.Ev = E;
  a.dtype = dt;
  const int64_t C = H * E;
  const AttentionOperand op = packed ? AttentionOperand{nullptr, T * 3 * C, E, 3 * C}
                                     : AttentionOperand{nullptr, H * T * E, T * E, E};
  a.q = a.k = a.v = op;
  a.scale = 1.0 / std::sqrt(static_cast<double>(E));
  a.causal = causal;
  if (packed) {
    a.out_strides = b.grad_out_strides = AttentionStrides{T * C, E, C};
    b.grad_q_strides = b.grad_k_strides = b.grad_v_strides = AttentionStrides{T * 3 * C, E, 3 * C};
  }
  return b;
}

// cuDNN's heuristics offer engines for every graph we build (the pattern its flash-attention
// engines match; GPT's strided out, grad_out and gradients included), forward and backward, on an
// sm_90 and an sm_80 profile. Needs no GPU: cuDNN 9.8+ plans for a described device. Its
// runtime-compiled engines need libcuda loadable (a driver, or the toolkit's stub:
// LD_LIBRARY_PATH=<dir with libcuda.so.1 -> stubs/libcuda.so>); without it the test skips.
TEST(CudnnAttentionGraph, HeuristicsOfferEnginesForOurGraphs) {
  if (cuda::cudnn_runtime_version() < 90800)
    GTEST_SKIP() << "device profiles need cuDNN 9.8+, runtime is " << cuda::cudnn_runtime_version();
  void* libcuda = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!libcuda)
    GTEST_SKIP() << "no libcuda.so.1 (driver or toolkit stub): cuDNN offers no runtime-compiled "
                    "engine without it";
  dlclose(libcuda);
  struct Profile {
    const char* name;
    const char* json;
  };
  for (const Profile& profile : {Profile{"H200", kH200}, Profile{"A100", kA100}}) {
    for (DType dt : {DType::bfloat16, DType::float16}) {
      for (bool causal : {false, true}) {
        for (bool packed : {true, false}) {
          const AttentionBackwardArgs a = packed ? shape_only(8, 12, 1024, 64, dt, causal, true)
                                                 : shape_only(2, 3, 128, 128, dt, causal, false);
          for (bool backward : {false, true}) {
            const std::string what =
                std::string(profile.name) + " " + (backward ? "backward " : "forward ") +
                name(packed ? "GPT-2 packed qkv" : "contiguous E128", dt, causal);
            int64_t engines = 0;
            try {
              engines = cuda::cudnn_attention_engines_for(a, backward, profile.json);
            } catch (const DeviceError& e) {
              if (std::string(e.what()).find("device properties") != std::string::npos)
                GTEST_SKIP() << "this cuDNN reads another device-property JSON: " << e.what();
              ADD_FAILURE() << what << ": " << e.what();
              continue;
            }
            EXPECT_GT(engines, 0) << what << ": no cuDNN engine matches the graph";
          }
        }
      }
    }
  }
}

struct Case {
  int64_t B, H, L, S, E;
  bool must_take;  // a shape cuDNN takes on any sm_80+ device with a cuDNN 9 runtime
  const char* why;
};

TEST(CudnnAttention, ContiguousMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  const bool expect = cudnn_expected();
  const std::vector<Case> cases = {
      {2, 3, 128, 128, 64, true, "GPT-2's head size, whole 128-key blocks"},
      {1, 2, 256, 256, 128, true, "head size 128"},
      {1, 2, 256, 128, 64, false, "L > S: causal rows past S attend every key"},
      {1, 2, 128, 256, 32, false, "L < S, head size 32"},
      {2, 1, 100, 100, 64, false, "L, S no multiple of 64 (older runtimes decline the backward)"},
      {2, 2, 1, 1, 64, false, "L = S = 1 (the backward is declined, as NVIDIA's frontend does)"},
      {1, 2, 1, 128, 64, false, "one query row (causal declined on cuDNN 9.9 and older)"},
  };
  for (DType dt : {DType::bfloat16, DType::float16}) {
    for (const Case& c : cases) {
      const std::vector<Tensor> in =
          qkv_inputs({c.B, c.H, c.L, c.E}, {c.B, c.H, c.S, c.E}, {c.B, c.H, c.S, c.E}, dt);
      for (bool causal : {false, true}) {
        const std::string what = name("cudnn B" + std::to_string(c.B) + " H" + std::to_string(c.H) +
                                          " L" + std::to_string(c.L) + " S" + std::to_string(c.S) +
                                          " E" + std::to_string(c.E) + " (" + c.why + ")",
                                      dt, causal);
        const Taken t = taken_during([&] {
          check(what, in, dt, [&](const std::vector<Tensor>& x, bool reference) {
            return attend(x[0], x[1], x[2], causal, reference);
          });
        });
        if (expect && c.must_take) {
          EXPECT_TRUE(t.forward) << what << ": cuDNN declined the forward: " << t.last_decline;
          EXPECT_TRUE(t.backward) << what << ": cuDNN declined the backward: " << t.last_decline;
        } else if (!t.forward || !t.backward) {
          std::printf("%s: cuDNN declined (%s); our kernels ran\n", what.c_str(),
                      t.last_decline.c_str());
        }
      }
    }
  }
}

// q, k, v as nn/transformer.cpp makes them: heads cut from one (B, T, 3C) projection (row stride
// 3C, head stride hs), the gradient landing in the packed tensor.
TEST(CudnnAttention, HeadsSplitFromAPackedQkvTensor) {
  FABRIC_REQUIRE_CUDA();
  const bool expect = cudnn_expected();
  struct Packed {
    int64_t B, T, nh, hs;
  };
  for (const Packed& f : {Packed{2, 128, 3, 64}, Packed{1, 256, 2, 128}}) {
    const int64_t C = f.nh * f.hs;
    // float32: cuDNN declines, and our kernels take the op's strided out and gradients through
    // contiguous copies (attention_dispatch.cpp).
    for (DType dt : {DType::bfloat16, DType::float16, DType::float32}) {
      const Tensor qkv = test::uniform_tensor({f.B, f.T, 3 * C}, dt, -2, 2, 21);
      for (bool causal : {false, true}) {
        const std::string what =
            name("cudnn packed qkv B" + std::to_string(f.B) + " T" + std::to_string(f.T) + " nh" +
                     std::to_string(f.nh) + " hs" + std::to_string(f.hs),
                 dt, causal);
        const Taken t = taken_during([&] {
          check(what, {qkv}, dt, [&](const std::vector<Tensor>& x, bool reference) {
            auto head = [&](int64_t i) {
              return x[0].narrow(2, i * C, C).view({f.B, f.T, f.nh, f.hs}).transpose(1, 2);
            };
            return attend(head(0), head(1), head(2), causal, reference);
          });
        });
        if (expect && dt != DType::float32) {
          EXPECT_TRUE(t.forward) << what << ": cuDNN declined the forward: " << t.last_decline;
          EXPECT_TRUE(t.backward) << what << ": cuDNN declined the backward: " << t.last_decline;
        }
      }
    }
  }
}

// What cuDNN declines (float32, dropout, a head size past 128) runs on our kernels or the
// composition under the cuDNN backend and matches the CPU; the stub itself declines such a
// problem (and head sizes that are no multiple of 8) without writing anything.
TEST(CudnnAttention, DeclinedProblemsFallBackAndMatch) {
  FABRIC_REQUIRE_CUDA();
  const int64_t B = 2, H = 2, L = 64, S = 64, E = 32;
  // float32: our CUDA-core kernel.
  {
    const std::vector<Tensor> in =
        qkv_inputs({B, H, L, E}, {B, H, S, E}, {B, H, S, E}, DType::float32);
    for (bool causal : {false, true}) {
      const int64_t declined = declines_during([&] {
        check(name("float32 declined", DType::float32, causal), in, DType::float32,
              [&](const std::vector<Tensor>& x, bool reference) {
                return attend(x[0], x[1], x[2], causal, reference);
              });
      });
      EXPECT_GE(declined, 2) << "float32 must be declined forward and backward";
    }
  }
  // Dropout: our kernel draws the dropout op's mask; the CPU composition from a generator in the
  // same state gives the same answer.
  for (DType dt : {DType::bfloat16, DType::float16}) {
    const std::vector<Tensor> in = qkv_inputs({B, H, L, E}, {B, H, S, E}, {B, H, S, E}, dt);
    for (bool causal : {false, true}) {
      Generator cpu_gen(1234), gpu_gen(1234);
      const int64_t declined = declines_during([&] {
        check(name("dropout 0.2 declined", dt, causal), in, dt,
              [&](const std::vector<Tensor>& x, bool reference) {
                return attend(x[0], x[1], x[2], causal, reference, 0.2,
                              reference ? &cpu_gen : &gpu_gen);
              });
      });
      EXPECT_GE(declined, 2) << "dropout must be declined forward and backward";
      EXPECT_EQ(cpu_gen.state(), gpu_gen.state());
    }
  }
  // The stub directly: declined, out and lse untouched, a reason recorded.
  struct Declined {
    const char* what;
    DType dtype;
    int64_t E;
    double dropout_p;
  };
  for (const Declined& d :
       {Declined{"float32", DType::float32, 32, 0.0}, Declined{"dropout", DType::bfloat16, 32, 0.1},
        Declined{"E 136", DType::bfloat16, 136, 0.0},
        Declined{"E 20 (no multiple of 8)", DType::float16, 20, 0.0}}) {
    const TensorOptions opts{.dtype = d.dtype, .device = kGpu};
    const Tensor q = zeros({B, H, L, d.E}, opts), k = zeros({B, H, S, d.E}, opts),
                 v = zeros({B, H, S, d.E}, opts);
    Tensor out = full({B, H, L, d.E}, 7, opts),
           lse = full({B, H, L}, 7, {.dtype = DType::float32, .device = kGpu});
    AttentionArgs a;
    a.batch = B, a.heads = H, a.L = L, a.S = S, a.E = d.E, a.Ev = d.E;
    a.dtype = d.dtype;
    a.q = {q.data_ptr(), q.stride(0), q.stride(1), q.stride(2)};
    a.k = {k.data_ptr(), k.stride(0), k.stride(1), k.stride(2)};
    a.v = {v.data_ptr(), v.stride(0), v.stride(1), v.stride(2)};
    a.scale = 1.0 / std::sqrt(static_cast<double>(d.E));
    a.dropout_p = d.dropout_p;
    const int64_t before = cuda::cudnn_attention_stats().forward_declined;
    EXPECT_FALSE(cuda::attention_forward_cudnn(a, out.data_ptr(), lse.data_ptr())) << d.what;
    const cuda::CudnnAttentionStats after = cuda::cudnn_attention_stats();
    EXPECT_EQ(after.forward_declined, before + 1) << d.what;
    EXPECT_FALSE(after.last_decline.empty()) << d.what;
    expect_close(full({B, H, L, d.E}, 7, {.dtype = DType::float64}), out, {0, 0},
                 std::string(d.what) + " out untouched");
    expect_close(full({B, H, L}, 7, {.dtype = DType::float64}), lse, {0, 0},
                 std::string(d.what) + " lse untouched");
  }
}

// The lse cuDNN writes is the statistic our backward reads: cuDNN's forward then our backward
// (and our forward then cuDNN's backward) match the CPU. The forward here runs under one backend,
// the backward under the other.
TEST(CudnnAttention, MixedForwardAndBackwardMatch) {
  FABRIC_REQUIRE_CUDA();
  const int64_t B = 1, H = 2, L = 128, S = 128, E = 64;
  for (DType dt : {DType::bfloat16, DType::float16}) {
    const std::vector<Tensor> in = qkv_inputs({B, H, L, E}, {B, H, S, E}, {B, H, S, E}, dt);
    const std::vector<Tensor> want = forward_backward(
        in, dt, DType::float64, Device::cpu(), true,
        [](const std::vector<Tensor>& x, bool ref) { return attend(x[0], x[1], x[2], true, ref); });
    for (bool cudnn_first : {true, false}) {
      std::vector<Tensor> leaves;
      for (const Tensor& t : in) {
        Tensor l = t.to(kGpu).clone().detach();
        l.set_requires_grad(true);
        leaves.push_back(l);
      }
      Tensor out;
      {
        BackendScope s(cudnn_first ? AttentionBackend::cudnn : AttentionBackend::fused);
        out = attend(leaves[0], leaves[1], leaves[2], true, false);
      }
      {
        BackendScope s(cudnn_first ? AttentionBackend::fused : AttentionBackend::cudnn);
        const Tensor probe = test::uniform_tensor(out.sizes(), dt, -1, 1, 5).to(kGpu);
        sum(mul(out, probe)).backward();
      }
      const std::string what = name(
          cudnn_first ? "cuDNN forward, our backward" : "our forward, cuDNN backward", dt, true);
      expect_close(want[0], out.detach(), out_tol(dt), what + " out");
      for (size_t i = 0; i < 3; ++i)
        expect_close(want[i + 1], leaves[i].grad(), grad_tol(dt),
                     what + " grad " + std::to_string(i));
    }
  }
}
#endif

}  // namespace
}  // namespace fabric
