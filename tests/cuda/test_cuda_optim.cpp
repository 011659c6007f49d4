// The fused CUDA optimizer and loss-scaler kernels against the CPU kernels on the same inputs:
// Adam/AdamW (weight decay both ways, amsgrad, maximize) and SGD (momentum, dampening, nesterov,
// weight decay, maximize, first step), RMSprop (momentum, centered, weight decay, maximize) and
// Adagrad (lr decay, weight decay, maximize) over several steps in
// float64/float32/bfloat16/float16, bit for bit; the fused unscale + inf/NaN check with and without
// non-finite values, read-only, strided and large.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "tensor/amp_kernels.h"
#include "tensor/factory.h"
#include "tensor/optim_kernels.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;

constexpr DType kDTypes[] = {DType::float64, DType::float32, DType::bfloat16, DType::float16};
constexpr int64_t kN = 10007;  // odd: no vector width divides it

// One tensor's buffers on the CPU and their copies on the GPU.
struct Buffers {
  std::vector<Tensor> cpu, gpu;
  Buffers(DType dt, int count, float lo, float hi, uint64_t seed) {
    for (int i = 0; i < count; ++i) {
      cpu.push_back(test::uniform_tensor({kN}, dt, lo, hi, seed + i));
      gpu.push_back(cpu.back().to(kGpu));
    }
  }
  void* c(int i) { return cpu[i].data_ptr(); }
  void* g(int i) { return gpu[i].data_ptr(); }
};

void expect_bitwise(const Buffers& b, const char* const* names, int count,
                    const std::string& what) {
  for (int i = 0; i < count; ++i)
    test::expect_matches(b.cpu[i], b.gpu[i], {}, what + ": " + names[i]);
}

struct AdamCase {
  const char* name;
  AdamKernelArgs args;
};

TEST(CudaOptim, AdamStepsMatchTheCpuBitForBit) {
  FABRIC_REQUIRE_CUDA();
  const AdamCase cases[] = {
      {"adam", {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}},
      {"adam L2 decay",
       {.lr = 3e-3, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.05}},
      {"adamw",
       {.lr = 3e-4,
        .beta1 = 0.9,
        .beta2 = 0.95,
        .eps = 1e-8,
        .weight_decay = 0.1,
        .decoupled_weight_decay = true}},
      {"adamw amsgrad maximize",
       {.lr = 1e-2,
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .weight_decay = 0.01,
        .decoupled_weight_decay = true,
        .amsgrad = true,
        .maximize = true}},
      // A small beta1: 1 - beta1 >= 0.5.
      {"adam beta1 0.3", {.lr = 1e-3, .beta1 = 0.3, .beta2 = 0.9, .eps = 1e-8}},
  };
  const char* names[] = {"param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  uint64_t seed = 1;
  for (DType dt : kDTypes) {
    for (const AdamCase& c : cases) {
      // param, exp_avg, exp_avg_sq (non-negative), max_exp_avg_sq (non-negative)
      Buffers b(dt, 2, -1.f, 1.f, seed);
      Buffers sq(dt, 2, 0.f, 1e-2f, seed + 10);
      b.cpu.insert(b.cpu.end(), sq.cpu.begin(), sq.cpu.end());
      b.gpu.insert(b.gpu.end(), sq.gpu.begin(), sq.gpu.end());
      for (int step = 1; step <= 3; ++step) {
        const Tensor grad = test::uniform_tensor({kN}, dt, -2.f, 2.f, seed + 100 + step);
        const Tensor ggrad = grad.to(kGpu);
        AdamKernelArgs a = c.args;
        a.step = step;
        void* mx_c = a.amsgrad ? b.c(3) : nullptr;
        void* mx_g = a.amsgrad ? b.g(3) : nullptr;
        adam_step_stub(Device::cpu())(dt, kN, b.c(0), grad.data_ptr(), b.c(1), b.c(2), mx_c, a);
        adam_step_stub(kGpu)(dt, kN, b.g(0), ggrad.data_ptr(), b.g(1), b.g(2), mx_g, a);
        expect_bitwise(b, names, a.amsgrad ? 4 : 3,
                       detail::cat(c.name, " ", dtype_name(dt), " step ", step));
      }
      seed += 1000;
    }
  }
}

// 30 tensors (more than one launch holds, one of them split across launches, empty and one-element
// ones among them) in one multi-tensor call against the CPU's per-tensor kernel.
TEST(CudaOptim, MultiTensorAdamMatchesTheCpuBitForBit) {
  FABRIC_REQUIRE_CUDA();
  std::vector<int64_t> sizes = {0, 1, 65535, 65536, 65537, 200003, 3};
  for (int i = 0; i < 23; ++i) sizes.push_back(1000 + 517 * i);
  for (DType dt : {DType::float32, DType::bfloat16, DType::float16, DType::float64}) {
    for (const bool amsgrad : {false, true}) {
      const std::string what = detail::cat(dtype_name(dt), amsgrad ? " amsgrad" : "");
      std::vector<std::vector<Tensor>> cpu, gpu;  // per tensor: param, m, v, vmax
      uint64_t seed = 7;
      for (const int64_t n : sizes) {
        std::vector<Tensor> c;
        for (int k = 0; k < 4; ++k) {
          c.push_back(k == 0 ? test::uniform_tensor({n}, dt, -1.f, 1.f, seed++)
                             : test::uniform_tensor({n}, dt, 0.f, 1e-2f, seed++));
        }
        std::vector<Tensor> g;
        for (const Tensor& t : c) g.push_back(t.to(kGpu));
        cpu.push_back(c);
        gpu.push_back(g);
      }
      for (int step = 1; step <= 2; ++step) {
        const AdamKernelArgs a{.lr = 3e-4,
                               .beta1 = 0.9,
                               .beta2 = 0.95,
                               .eps = 1e-8,
                               .weight_decay = 0.1,
                               .step = static_cast<double>(step),
                               .decoupled_weight_decay = true,
                               .amsgrad = amsgrad};
        std::vector<AdamTensorPtrs> list;
        std::vector<Tensor> grads;
        for (size_t i = 0; i < sizes.size(); ++i) {
          const Tensor grad = test::uniform_tensor({sizes[i]}, dt, -2.f, 2.f, 500 + step * 40 + i);
          grads.push_back(grad.to(kGpu));
          adam_step_stub(Device::cpu())(dt, sizes[i], cpu[i][0].data_ptr(), grad.data_ptr(),
                                        cpu[i][1].data_ptr(), cpu[i][2].data_ptr(),
                                        amsgrad ? cpu[i][3].data_ptr() : nullptr, a);
          list.push_back({sizes[i], gpu[i][0].data_ptr(), grads.back().data_ptr(),
                          gpu[i][1].data_ptr(), gpu[i][2].data_ptr(),
                          amsgrad ? gpu[i][3].data_ptr() : nullptr});
        }
        adam_multi_step_stub(kGpu)(dt, list, a);
        for (size_t i = 0; i < sizes.size(); ++i) {
          for (int k = 0; k < (amsgrad ? 4 : 3); ++k) {
            test::expect_matches(cpu[i][k], gpu[i][k], {},
                                 detail::cat(what, " step ", step, " tensor ", i, " buffer ", k));
          }
        }
      }
    }
  }
}

TEST(CudaOptim, SgdStepsMatchTheCpuBitForBit) {
  FABRIC_REQUIRE_CUDA();
  const struct {
    const char* name;
    SgdKernelArgs args;
  } cases[] = {
      {"plain", {.lr = 0.1}},
      {"weight decay maximize", {.lr = 0.05, .weight_decay = 1e-2, .maximize = true}},
      {"momentum", {.lr = 0.01, .momentum = 0.9}},
      {"momentum dampening decay",
       {.lr = 0.01, .momentum = 0.9, .dampening = 0.1, .weight_decay = 5e-4}},
      {"nesterov", {.lr = 0.02, .momentum = 0.8, .weight_decay = 1e-3, .nesterov = true}},
  };
  const char* names[] = {"param", "momentum_buffer"};
  uint64_t seed = 7;
  for (DType dt : kDTypes) {
    for (const auto& c : cases) {
      Buffers b(dt, 2, -1.f, 1.f, seed);
      const bool mom = c.args.momentum != 0;
      for (int step = 1; step <= 3; ++step) {
        const Tensor grad = test::uniform_tensor({kN}, dt, -2.f, 2.f, seed + 100 + step);
        const Tensor ggrad = grad.to(kGpu);
        SgdKernelArgs a = c.args;
        a.first_step = step == 1;
        sgd_step_stub(Device::cpu())(dt, kN, b.c(0), grad.data_ptr(), mom ? b.c(1) : nullptr, a);
        sgd_step_stub(kGpu)(dt, kN, b.g(0), ggrad.data_ptr(), mom ? b.g(1) : nullptr, a);
        expect_bitwise(b, names, mom ? 2 : 1,
                       detail::cat(c.name, " ", dtype_name(dt), " step ", step));
      }
      seed += 1000;
    }
  }
}

TEST(CudaOptim, RmspropStepsMatchTheCpuBitForBit) {
  FABRIC_REQUIRE_CUDA();
  const struct {
    const char* name;
    RmspropKernelArgs args;
  } cases[] = {
      {"plain", {.lr = 1e-2, .alpha = 0.99, .eps = 1e-8}},
      {"weight decay maximize",
       {.lr = 3e-3, .alpha = 0.9, .eps = 1e-6, .weight_decay = 0.05, .maximize = true}},
      {"momentum", {.lr = 1e-2, .alpha = 0.99, .eps = 1e-8, .momentum = 0.9}},
      {"centered", {.lr = 1e-2, .alpha = 0.95, .eps = 1e-8, .centered = true}},
      {"centered momentum decay",
       {.lr = 2e-2,
        .alpha = 0.9,
        .eps = 1e-8,
        .weight_decay = 1e-2,
        .momentum = 0.5,
        .centered = true}},
  };
  const char* names[] = {"param", "square_avg", "grad_avg", "momentum_buffer"};
  uint64_t seed = 11;
  for (DType dt : kDTypes) {
    for (const auto& c : cases) {
      Buffers b(dt, 1, -1.f, 1.f, seed);
      Buffers sq(dt, 1, 1e-3f, 1e-2f, seed + 10);  // above grad_avg^2, and it stays so: no NaN
      Buffers rest(dt, 2, -1e-3f, 1e-3f, seed + 20);
      for (Buffers* x : {&sq, &rest}) {
        b.cpu.insert(b.cpu.end(), x->cpu.begin(), x->cpu.end());
        b.gpu.insert(b.gpu.end(), x->gpu.begin(), x->gpu.end());
      }
      for (int step = 1; step <= 3; ++step) {
        const Tensor grad = test::uniform_tensor({kN}, dt, -2.f, 2.f, seed + 100 + step);
        const Tensor ggrad = grad.to(kGpu);
        const RmspropKernelArgs& a = c.args;
        const bool mom = a.momentum > 0;
        rmsprop_step_stub(Device::cpu())(dt, kN, b.c(0), grad.data_ptr(), b.c(1),
                                         a.centered ? b.c(2) : nullptr, mom ? b.c(3) : nullptr, a);
        rmsprop_step_stub(kGpu)(dt, kN, b.g(0), ggrad.data_ptr(), b.g(1),
                                a.centered ? b.g(2) : nullptr, mom ? b.g(3) : nullptr, a);
        expect_bitwise(b, names, 4, detail::cat(c.name, " ", dtype_name(dt), " step ", step));
      }
      seed += 1000;
    }
  }
}

TEST(CudaOptim, AdagradStepsMatchTheCpuBitForBit) {
  FABRIC_REQUIRE_CUDA();
  const struct {
    const char* name;
    AdagradKernelArgs args;
  } cases[] = {
      {"plain", {.lr = 1e-2, .eps = 1e-10}},
      {"lr decay weight decay", {.lr = 0.1, .lr_decay = 0.05, .eps = 1e-10, .weight_decay = 1e-2}},
      {"maximize eps", {.lr = 0.05, .eps = 1e-3, .maximize = true}},
  };
  const char* names[] = {"param", "sum"};
  uint64_t seed = 13;
  for (DType dt : kDTypes) {
    for (const auto& c : cases) {
      Buffers b(dt, 1, -1.f, 1.f, seed);
      Buffers sum(dt, 1, 0.f, 1.f, seed + 10);
      b.cpu.push_back(sum.cpu[0]);
      b.gpu.push_back(sum.gpu[0]);
      for (int step = 1; step <= 3; ++step) {
        const Tensor grad = test::uniform_tensor({kN}, dt, -2.f, 2.f, seed + 100 + step);
        const Tensor ggrad = grad.to(kGpu);
        AdagradKernelArgs a = c.args;
        a.step = step;
        adagrad_step_stub(Device::cpu())(dt, kN, b.c(0), grad.data_ptr(), b.c(1), a);
        adagrad_step_stub(kGpu)(dt, kN, b.g(0), ggrad.data_ptr(), b.g(1), a);
        expect_bitwise(b, names, 2, detail::cat(c.name, " ", dtype_name(dt), " step ", step));
      }
      seed += 1000;
    }
  }
}

TEST(CudaOptim, BadArgumentsAreErrors) {
  FABRIC_REQUIRE_CUDA();
  Tensor p = zeros({4}, {.dtype = DType::int32, .device = kGpu});
  EXPECT_THROW(adam_step_stub(kGpu)(DType::int32, 4, p.data_ptr(), p.data_ptr(), p.data_ptr(),
                                    p.data_ptr(), nullptr, {}),
               DTypeError);
  Tensor f = zeros({4}, {.device = kGpu});
  AdamKernelArgs ams;
  ams.amsgrad = true;
  EXPECT_THROW(adam_step_stub(kGpu)(DType::float32, 4, f.data_ptr(), f.data_ptr(), f.data_ptr(),
                                    f.data_ptr(), nullptr, ams),
               ValueError);
  SgdKernelArgs mom;
  mom.momentum = 0.9;
  EXPECT_THROW(sgd_step_stub(kGpu)(DType::float32, 4, f.data_ptr(), f.data_ptr(), nullptr, mom),
               ValueError);
  RmspropKernelArgs centered;
  centered.centered = true;
  EXPECT_THROW(rmsprop_step_stub(kGpu)(DType::float32, 4, f.data_ptr(), f.data_ptr(), f.data_ptr(),
                                       nullptr, nullptr, centered),
               ValueError);
  EXPECT_THROW(
      adagrad_step_stub(kGpu)(DType::int32, 4, p.data_ptr(), p.data_ptr(), p.data_ptr(), {}),
      DTypeError);
}

// ---- the fused unscale + inf/NaN check --------------------------------------------------------

TEST(CudaAmpUnscale, FiniteGradientsAreUnscaledAsOnTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kDTypes) {
    Tensor cpu = test::uniform_tensor({37, 291}, dt, -1000.f, 1000.f, 3);
    Tensor gpu = cpu.to(kGpu);
    const float inv = 1.0f / 65536.0f * 3.0f;  // not a power of two: every element rounds
    const bool want = amp_unscale_and_check_(cpu, inv);
    const bool got = amp_unscale_and_check_(gpu, inv);
    EXPECT_FALSE(want);
    EXPECT_EQ(got, want) << dtype_name(dt);
    test::expect_matches(cpu, gpu, {}, detail::cat("unscale ", dtype_name(dt)));
  }
}

// Gradients on two devices in one call: one entry per device in order of first appearance, each
// device's flag raised only by its own tensors.
TEST(CudaAmpUnscale, ListReportsEachDeviceOnce) {
  FABRIC_REQUIRE_CUDA();
  Tensor g1 = from_vector<float>({1.f, 2.f}).to(kGpu), g2 = from_vector<float>({NAN, 4.f}).to(kGpu);
  Tensor c1 = from_vector<float>({8.f});
  const auto found = amp_unscale_and_check_all_({g1, c1, g2}, 0.5f);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].first, kGpu);
  EXPECT_TRUE(found[0].second);
  EXPECT_EQ(found[1].first, Device::cpu());
  EXPECT_FALSE(found[1].second);
  EXPECT_EQ(g1.to(Device::cpu()).to_vector<float>(), (std::vector<float>{0.5f, 1.f}));
  EXPECT_EQ(c1.to_vector<float>(), std::vector<float>{4.f});
}

TEST(CudaAmpUnscale, InfAndNanAreFoundWhereverTheyAre) {
  FABRIC_REQUIRE_CUDA();
  const double specials[] = {std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             std::numeric_limits<double>::quiet_NaN()};
  for (DType dt : kDTypes) {
    for (double sp : specials) {
      for (int64_t pos : {int64_t{0}, int64_t{5000}, int64_t{10006}}) {
        Tensor cpu = test::uniform_tensor({kN}, dt, -1.f, 1.f, 4);
        cpu.select(0, pos).fill_(sp);
        Tensor gpu = cpu.to(kGpu);
        EXPECT_TRUE(amp_unscale_and_check_(cpu, 0.5f));
        EXPECT_TRUE(amp_unscale_and_check_(gpu, 0.5f))
            << dtype_name(dt) << " " << sp << " at " << pos;
        // The finite elements are still unscaled (PyTorch's kernel writes every element).
        test::expect_matches(cpu, gpu, {}, detail::cat("unscale with ", sp, " ", dtype_name(dt)));
      }
    }
    // Values that overflow the dtype when scaled up stay finite when scaled down: only the input
    // decides.
    Tensor big = full({64}, 60000.0, {.dtype = dt, .device = kGpu});
    EXPECT_FALSE(amp_unscale_and_check_(big, 2.0f / 65536.0f)) << dtype_name(dt);
  }
}

// 30 gradients of each dtype in one call (multi-tensor launches: more tensors than a launch holds,
// one split across launches), an infinity in the last one only: the bits and the verdict of the
// CPU.
TEST(CudaAmpUnscale, ManyGradientsInMultiTensorLaunches) {
  FABRIC_REQUIRE_CUDA();
  std::vector<int64_t> sizes = {1, 65535, 65537, 200003};
  for (int i = 0; i < 26; ++i) sizes.push_back(700 + 311 * i);
  for (DType dt : kDTypes) {
    for (const bool with_inf : {false, true}) {
      std::vector<Tensor> cpu, gpu;
      for (size_t i = 0; i < sizes.size(); ++i) {
        cpu.push_back(test::uniform_tensor({sizes[i]}, dt, -1000.f, 1000.f, 40 + i));
      }
      if (with_inf) cpu.back().narrow(0, 5, 1).fill_(std::numeric_limits<double>::infinity());
      for (const Tensor& t : cpu) gpu.push_back(t.to(kGpu));
      const float inv = 3.0f / 65536.0f;
      const auto want = amp_unscale_and_check_all_(cpu, inv);
      const auto got = amp_unscale_and_check_all_(gpu, inv);
      const std::string what = detail::cat(dtype_name(dt), with_inf ? " with inf" : "");
      ASSERT_EQ(got.size(), 1u) << what;
      EXPECT_EQ(want[0].second, with_inf) << what;
      EXPECT_EQ(got[0].second, with_inf) << what;
      for (size_t i = 0; i < sizes.size(); ++i) {
        test::expect_matches(cpu[i], gpu[i], {}, detail::cat(what, " tensor ", i));
      }
    }
  }
}

TEST(CudaAmpUnscale, InvScaleOneOnlyReads) {
  FABRIC_REQUIRE_CUDA();
  Tensor cpu = test::awkward_tensor({501}, DType::float32, 9);  // NaN, infinities, subnormals
  Tensor gpu = cpu.to(kGpu);
  EXPECT_TRUE(amp_has_non_finite(gpu));
  test::expect_matches(cpu, gpu, {}, "has_non_finite leaves the tensor alone");
  EXPECT_FALSE(amp_has_non_finite(test::uniform_tensor({501}, DType::float32, -1, 1, 2).to(kGpu)));
}

TEST(CudaAmpUnscale, StridedAndLargeTensors) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::float32, DType::bfloat16}) {
    Tensor cpu = test::uniform_tensor({64, 97}, dt, -4.f, 4.f, 5);
    Tensor gpu = cpu.to(kGpu);
    // A transposed view and a slice with a step: only their elements change.
    EXPECT_FALSE(amp_unscale_and_check_(cpu.t(), 0.25f));
    EXPECT_FALSE(amp_unscale_and_check_(gpu.t(), 0.25f));
    EXPECT_FALSE(amp_unscale_and_check_(cpu.slice(1, 1, 97, 3), 0.125f));
    EXPECT_FALSE(amp_unscale_and_check_(gpu.slice(1, 1, 97, 3), 0.125f));
    test::expect_matches(cpu, gpu, {}, detail::cat("strided unscale ", dtype_name(dt)));
  }
  // Past one grid's worth of elements (65536 blocks x 256 threads): the grid-stride loop must
  // reach the last element.
  const int64_t n = int64_t{65536} * 256 * 2 + 17;
  Tensor big = full({n}, 2.0, {.device = kGpu});
  EXPECT_FALSE(amp_unscale_and_check_(big, 0.5f));
  big.select(0, n - 1).fill_(std::numeric_limits<double>::infinity());
  EXPECT_TRUE(amp_has_non_finite(big));
  const Tensor tail = big.slice(0, n - 3, n - 1).to(Device::cpu());
  EXPECT_EQ(tail.to_vector<float>(), std::vector<float>({1.0f, 1.0f}));
}

}  // namespace
}  // namespace fabric
