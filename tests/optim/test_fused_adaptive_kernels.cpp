// The fused RMSprop and Adagrad kernels called directly (their numbers against torch are in
// test_adaptive_optim_torch.cpp): each element's update is independent of the length, OpenMP
// chunks and vector tails (a long call equals one call per element, bit for bit), bfloat16/float16
// are the float32 step on the widened inputs rounded once, and bad arguments are errors.
#include <gtest/gtest.h>

#include <bit>
#include <functional>
#include <random>
#include <string>

#include "tensor/optim_kernels.h"

namespace fabric {
namespace {

// One step of either kernel over n elements of `buffers` (param, grad, then the states).
using Step = std::function<void(DType, int64_t, std::vector<void*>&)>;

struct KernelCase {
  const char* name;
  int states;  // state buffers after param and grad
  Step step;
};

const std::vector<KernelCase>& kernel_cases() {
  static const std::vector<KernelCase> cases = {
      {"rmsprop", 1,
       [](DType dt, int64_t n, std::vector<void*>& b) {
         rmsprop_step_stub(Device::cpu())(dt, n, b[0], b[1], b[2], nullptr, nullptr,
                                          {.lr = 1e-2, .weight_decay = 0.1});
       }},
      {"rmsprop centered momentum maximize", 3,
       [](DType dt, int64_t n, std::vector<void*>& b) {
         rmsprop_step_stub(Device::cpu())(
             dt, n, b[0], b[1], b[2], b[3], b[4],
             {.lr = 1e-2, .alpha = 0.9, .momentum = 0.9, .centered = true, .maximize = true});
       }},
      {"adagrad", 1,
       [](DType dt, int64_t n, std::vector<void*>& b) {
         adagrad_step_stub(Device::cpu())(
             dt, n, b[0], b[1], b[2],
             {.lr = 0.1, .lr_decay = 0.01, .weight_decay = 0.01, .step = 3});
       }},
  };
  return cases;
}

// param in [-2, 2], grad in [-1, 1], square_avg/sum and momentum buffer in [1e-3, 1e-2], grad_avg
// in
// [-1e-3, 1e-3] (its square below square_avg: no NaN).
template <class T>
std::vector<std::vector<T>> random_buffers(int count, int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<T>> out;
  for (int k = 0; k < count; ++k) {
    const double lo = k == 0 ? -2 : k == 1 ? -1 : k == 3 ? -1e-3 : 1e-3;
    const double hi = k == 0 ? 2 : k == 1 ? 1 : k == 3 ? 1e-3 : 1e-2;
    std::uniform_real_distribution<double> d(lo, hi);
    std::vector<T> v(n);
    for (auto& x : v) x = T(static_cast<float>(d(rng)));
    out.push_back(std::move(v));
  }
  return out;
}

template <class T>
std::vector<void*> pointers(std::vector<std::vector<T>>& bufs, int64_t offset) {
  std::vector<void*> p;
  for (auto& b : bufs) p.push_back(b.data() + offset);
  return p;
}

template <class T>
void check_length_independent(DType dt) {
  const int64_t n = 100003;  // past one OpenMP chunk, no vector width divides it
  for (const KernelCase& c : kernel_cases()) {
    auto whole = random_buffers<T>(2 + c.states, n, 5);
    auto single = whole;
    for (int s = 0; s < 2; ++s) {
      auto pw = pointers(whole, 0);
      c.step(dt, n, pw);
      for (int64_t i = 0; i < n; i += 997) {  // a sample of elements, one call each
        auto pe = pointers(single, i);
        c.step(dt, 1, pe);
      }
    }
    for (size_t k = 0; k < whole.size(); ++k) {
      if (k == 1) continue;  // the gradient is read only
      for (int64_t i = 0; i < n; i += 997) {
        ASSERT_EQ(std::bit_cast<uint64_t>(static_cast<double>(whole[k][i])),
                  std::bit_cast<uint64_t>(static_cast<double>(single[k][i])))
            << c.name << " " << dtype_name(dt) << " buffer " << k << " element " << i;
      }
    }
  }
}

TEST(FusedAdaptive, ElementsDoNotDependOnLengthOrChunking) {
  check_length_independent<double>(DType::float64);
  check_length_independent<float>(DType::float32);
}

// bf16/fp16: the float32 kernel on the widened inputs, each stored tensor rounded once.
template <class H>
void check_half(DType dt) {
  const int64_t n = 1001;
  for (const KernelCase& c : kernel_cases()) {
    auto half = random_buffers<H>(2 + c.states, n, 9);
    std::vector<std::vector<float>> wide;
    for (const auto& b : half) wide.emplace_back(b.begin(), b.end());
    auto ph = pointers(half, 0);
    auto pw = pointers(wide, 0);
    c.step(dt, n, ph);
    c.step(DType::float32, n, pw);
    for (size_t k = 0; k < half.size(); ++k) {
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(static_cast<float>(half[k][i]), static_cast<float>(H(wide[k][i])))
            << c.name << " " << dtype_name(dt) << " buffer " << k << " element " << i;
      }
    }
  }
}

TEST(FusedAdaptive, HalfPrecisionIsTheFloat32StepRoundedOnce) {
  check_half<BFloat16>(DType::bfloat16);
  check_half<Half>(DType::float16);
}

TEST(FusedAdaptive, BadArgumentsAreErrors) {
  std::vector<int64_t> x(4);
  std::vector<float> f(4);
  EXPECT_THROW(rmsprop_step_stub(Device::cpu())(DType::int64, 4, x.data(), x.data(), x.data(),
                                                nullptr, nullptr, {}),
               DTypeError);
  EXPECT_THROW(adagrad_step_stub(Device::cpu())(DType::int64, 4, x.data(), x.data(), x.data(), {}),
               DTypeError);
  EXPECT_THROW(rmsprop_step_stub(Device::cpu())(DType::float32, 4, f.data(), f.data(), f.data(),
                                                nullptr, nullptr, {.centered = true}),
               ValueError);
  EXPECT_THROW(rmsprop_step_stub(Device::cpu())(DType::float32, 4, f.data(), f.data(), f.data(),
                                                nullptr, nullptr, {.momentum = 0.5}),
               ValueError);
  EXPECT_THROW(adagrad_step_stub(Device::cpu())(DType::float32, 4, f.data(), f.data(), nullptr, {}),
               ValueError);
}

}  // namespace
}  // namespace fabric
