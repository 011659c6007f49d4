// The CUDA loss kernels against the CPU through the public ops and autograd: cross_entropy
// (fused log-softmax; ignore_index, label smoothing, every reduction, (N, C) and (N, C, d...)
// layouts, vocabulary-sized rows, int32/int64 targets, non-finite logits), its backward, nll_loss
// and mse_loss, the out-of-range target error and binary_cross_entropy's input check (raised at
// the next synchronisation). fp32 within ~1e-5 relative, fp16/bf16 two rounding units of the dtype
// (losses are fp32 for them until the reduction's output).
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tests/common/expect_error.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;
using test::Tolerance;

constexpr DType kFloatTypes[] = {DType::float32, DType::float16, DType::bfloat16, DType::float64};

Tolerance tol_of(DType t, double abs_scale = 1) { return test::rounding_tolerance(t, abs_scale); }
using test::check_op;

// Class targets in [0, classes) with every `ignore_every`-th (from the second) set to
// ignore_index.
Tensor targets(const Shape& shape, int64_t classes, int64_t ignore_index, int ignore_every,
               uint64_t seed, DType dt = DType::int64) {
  Tensor t = test::random_ints(shape, DType::int64, 0, classes - 1, seed);
  int64_t* p = t.data<int64_t>();
  if (ignore_every > 0)
    for (int64_t i = 1; i < t.numel(); i += ignore_every) p[i] = ignore_index;
  return t.reshape(shape).to(dt);
}

struct CeCase {
  Shape logits;
  Shape target;
};
const std::vector<CeCase> kCases = {
    {{7, 13}, {7}},
    {{64, 1001}, {64}},
    {{3, 50257}, {3}},
    {{13}, {}},
    {{3, 5, 7}, {3, 7}},
    {{2, 4, 3, 5}, {2, 3, 5}},
    {{300, 2}, {300}},
    // Classes a multiple of 8: rows read in 8-element pieces (GPT-2's padded vocabulary 50304).
    {{37, 1000}, {37}},
    {{16, 50304}, {16}},
};

std::string case_name(const std::string& op, DType dt, const CeCase& c) {
  return op + " " + std::string(dtype_name(dt)) + " " + shape_str(c.logits);
}

TEST(CudaLoss, CrossEntropyForward) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (const CeCase& c : kCases) {
      const int64_t classes = c.logits.size() == 1 ? c.logits[0] : c.logits[1];
      const Tensor x = test::uniform_tensor(c.logits, dt, -6, 6, 3);
      const Tensor t = targets(c.target, classes, -100, 5, 4);
      for (const char* red : {"mean", "sum", "none"}) {
        for (double smoothing : {0.0, 0.1}) {
          check_op(
              case_name(std::string("cross_entropy ") + red + " ls=" + std::to_string(smoothing),
                        dt, c),
              {x, t},
              [&](const std::vector<Tensor>& v) {
                return cross_entropy(v[0], v[1], -100, red, smoothing);
              },
              tol_of(dt, 10));
        }
      }
      // A custom ignore_index that is also a valid class, and int32 targets.
      const Tensor t2 = targets(c.target, classes, 1, 3, 5, DType::int32);
      check_op(
          case_name("cross_entropy ignore_index=1 int32", dt, c), {x, t2},
          [](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1], 1, "mean"); },
          tol_of(dt, 10));
      check_op(
          case_name("nll_loss", dt, c), {x, t},
          [](const std::vector<Tensor>& v) {
            return nll_loss(log_softmax(v[0], v[0].dim() == 1 ? 0 : 1), v[1]);
          },
          tol_of(dt, 10));
      check_op(
          case_name("nll_loss none", dt, c), {x, t2},
          [](const std::vector<Tensor>& v) { return nll_loss(v[0], v[1], 1, "none"); }, tol_of(dt));
    }
  }
}

// Logits whose rows start off 16-byte alignment (a contiguous view one element into its storage):
// the 8-element pieces are read one element at a time there, with the same values.
TEST(CudaLoss, CrossEntropyOnLogitsOffSixteenByteAlignment) {
  FABRIC_REQUIRE_CUDA();
  const auto offset_view = [](const Tensor& t) {
    Tensor storage = zeros({t.numel() + 1}, {.dtype = t.dtype(), .device = t.device()});
    Tensor view = storage.narrow(0, 1, t.numel()).view(t.sizes());
    view.copy_(t);
    return view;
  };
  for (DType dt : {DType::float32, DType::bfloat16}) {
    const Tensor x = test::uniform_tensor({37, 1000}, dt, -6, 6, 51);
    const Tensor t = targets({37}, 1000, -100, 3, 52);
    check_op(
        std::string("cross_entropy offset logits ") + std::string(dtype_name(dt)), {x, t},
        [&](const std::vector<Tensor>& v) {
          return cross_entropy(offset_view(v[0]), v[1], -100, "mean", 0.1);
        },
        tol_of(dt, 10));
    check_op(
        std::string("cross_entropy_backward offset logits ") + std::string(dtype_name(dt)), {x, t},
        [&](const std::vector<Tensor>& v) {
          const Tensor one = full({}, 1.0, {.dtype = DType::float32, .device = v[0].device()});
          return cross_entropy_backward(one, offset_view(v[0]), v[1], -100, "mean", 0.1);
        },
        tol_of(dt, 0.01));
  }
}

TEST(CudaLoss, CrossEntropyNonFiniteLogitsAndAllIgnored) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    Tensor x = test::uniform_tensor({6, 40}, DType::float32, -3, 3, 6);
    float* p = x.data<float>();
    p[0 * 40 + 3] = NAN;
    p[1 * 40 + 39] = INFINITY;
    for (int j = 0; j < 40; ++j) p[2 * 40 + j] = -INFINITY;
    p[3 * 40 + 7] = -INFINITY;  // the target of row 3 below: an infinite loss
    const Tensor xs = x.to(dt);
    const Tensor t = from_vector<int64_t>({1, 2, 3, 7, -100, 9}, {6});
    for (const char* red : {"none", "sum"}) {
      check_op(
          std::string("cross_entropy specials ") + red + " " + std::string(dtype_name(dt)), {xs, t},
          [&](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1], -100, red, 0.2); },
          tol_of(dt, 10));
    }
    const Tensor none = from_vector<int64_t>({-100, -100}, {2});
    check_op(std::string("cross_entropy all ignored ") + std::string(dtype_name(dt)),
             {test::uniform_tensor({2, 5}, dt, -1, 1, 7), none},
             [](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1]); }, {});
  }
}

TEST(CudaLoss, CrossEntropyBackwardAndAutograd) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (const CeCase& c : kCases) {
      const int64_t classes = c.logits.size() == 1 ? c.logits[0] : c.logits[1];
      const Tensor x = test::uniform_tensor(c.logits, dt, -6, 6, 8);
      const Tensor t = targets(c.target, classes, -100, 4, 9);
      const Tensor gpos = test::uniform_tensor(c.target, DType::float32, -1, 1, 10)
                              .reshape(c.target)
                              .to(dt == DType::float64 ? DType::float64 : DType::float32);
      const Tensor gone =
          full({}, 0.75, {.dtype = dt == DType::float64 ? DType::float64 : DType::float32});
      for (double smoothing : {0.0, 0.1}) {
        const std::string ls = " ls=" + std::to_string(smoothing);
        check_op(
            case_name("cross_entropy_backward none" + ls, dt, c), {gpos, x, t},
            [&](const std::vector<Tensor>& v) {
              return cross_entropy_backward(v[0], v[1], v[2], -100, "none", smoothing);
            },
            tol_of(dt, 0.01));
        for (const char* red : {"mean", "sum"}) {
          check_op(
              case_name(std::string("cross_entropy_backward ") + red + ls, dt, c), {gone, x, t},
              [&](const std::vector<Tensor>& v) {
                return cross_entropy_backward(v[0], v[1], v[2], -100, red, smoothing);
              },
              tol_of(dt, 0.01));
        }
      }
      // The whole chain through autograd: loss.backward() on each device.
      Tensor grads[2];
      Tensor losses[2];
      const Device devs[2] = {Device::cpu(), kGpu};
      for (int d = 0; d < 2; ++d) {
        Tensor leaf = x.to(devs[d]).clone().detach();
        leaf.set_requires_grad(true);
        losses[d] = cross_entropy(leaf, t.to(devs[d]), -100, "mean", 0.1);
        losses[d].backward();
        grads[d] = leaf.grad();
      }
      ASSERT_TRUE(grads[1].defined());
      EXPECT_EQ(grads[1].device(), kGpu);
      test::expect_matches(losses[0], losses[1], tol_of(dt, 10), case_name("autograd loss", dt, c));
      test::expect_matches(grads[0], grads[1], tol_of(dt, 0.01), case_name("autograd grad", dt, c));
    }
  }
}

// Under CUDA autocast, cross_entropy reads bf16/f16 logits as they are instead of a float32 copy
// (ops_loss.cpp): the loss (float32) and the input's gradient (its dtype) are bit for bit those of
// the explicit path, a float32 cast whose backward rounds the float32 gradient.
TEST(CudaLoss, AutocastCrossEntropyWidensInTheKernelWithTheCastsBits) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : {DType::bfloat16, DType::float16}) {
    const Tensor x = test::uniform_tensor({37, 1000}, dt, -8, 8, 41).to(kGpu);
    const Tensor t = targets({37}, 1000, -100, 3, 42).to(kGpu);
    for (double smoothing : {0.0, 0.1}) {
      Tensor a = x.clone(), b = x.clone();
      a.set_requires_grad(true);
      b.set_requires_grad(true);
      const Tensor want = cross_entropy(b.to(DType::float32), t, -100, "mean", smoothing);
      want.backward();
      autocast_enter(DeviceType::cuda, true, dt, true);
      Tensor got;
      try {
        got = cross_entropy(a, t, -100, "mean", smoothing);
      } catch (...) {
        autocast_exit(DeviceType::cuda);
        throw;
      }
      autocast_exit(DeviceType::cuda);
      got.backward();
      const std::string what = std::string(dtype_name(dt)) + " ls=" + std::to_string(smoothing);
      EXPECT_EQ(got.dtype(), DType::float32) << what;
      test::expect_matches(want, got, {}, what + " loss");
      ASSERT_TRUE(a.grad().defined()) << what;
      EXPECT_EQ(a.grad().dtype(), dt) << what;
      test::expect_matches(b.grad(), a.grad(), {}, what + " gradient");
    }
  }
}

// The kernels check the targets as they run and the mean divides by the valid count on the
// device, so no call waits for it: the next synchronisation (item(), a copy to the CPU) raises the
// CPU's error, naming the lowest position's bad target, then says where it came from. The record
// is cleared then, and a later valid loss matches the CPU again.
TEST(CudaLoss, OutOfRangeTargetsRaiseTheCpuErrorAtTheNextSynchronisation) {
  FABRIC_REQUIRE_CUDA();
  const Tensor x = test::uniform_tensor({4, 10}, DType::float32, -1, 1, 11);
  const Tensor one = full({}, 1.0);
  struct Case {
    std::string what;
    std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)> fn;  // (x, t, grad)
  };
  const std::vector<Case> cases = {
      {"cross_entropy",
       [](const Tensor& a, const Tensor& t, const Tensor&) { return cross_entropy(a, t); }},
      {"cross_entropy sum", [](const Tensor& a, const Tensor& t,
                               const Tensor&) { return cross_entropy(a, t, -100, "sum"); }},
      {"nll_loss", [](const Tensor& a, const Tensor& t, const Tensor&) { return nll_loss(a, t); }},
      // The class-weighted compositions check through the same armed kernel check (they used to
      // read every target back on each call).
      {"cross_entropy weighted",
       [](const Tensor& a, const Tensor& t, const Tensor&) {
         return cross_entropy(a, t, -100, "mean", 0.0, full({10}, 0.5, {.device = a.device()}));
       }},
      {"nll_loss weighted",
       [](const Tensor& a, const Tensor& t, const Tensor&) {
         return nll_loss(a, t, -100, "sum", full({10}, 0.5, {.device = a.device()}));
       }},
      {"cross_entropy_backward",
       [](const Tensor& a, const Tensor& t, const Tensor& g) {
         return cross_entropy_backward(g, a, t, -100, "mean", 0.0);
       }},
  };
  for (DType tdt : {DType::int64, DType::int32}) {
    // Two bad targets: the lowest position's value (12) is the one named.
    const Tensor t = from_vector<int64_t>({3, 12, -100, -7}, {4}).to(tdt);
    for (const Case& c : cases) {
      const std::string what = c.what + " " + std::string(dtype_name(tdt));
      const std::string cpu_msg = thrown<IndexError>([&] { c.fn(x, t, one); });
      EXPECT_NE(cpu_msg.find("target 12 is out of bounds"), std::string::npos) << cpu_msg;
      Tensor out;
      EXPECT_NO_THROW(out = c.fn(x.to(kGpu), t.to(kGpu), one.to(kGpu)))
          << what << ": the op must not wait for the device";
      const std::string gpu_msg = thrown<IndexError>([&] { out.to(Device::cpu()); });
      EXPECT_EQ(gpu_msg.substr(0, cpu_msg.size()), cpu_msg) << what;
      EXPECT_NE(gpu_msg.find("element 1 of its indices"), std::string::npos) << gpu_msg;
      EXPECT_NO_THROW(out.to(Device::cpu())) << what << ": reported once";
    }
  }
  // item() is a synchronisation too; then valid targets give the CPU's loss (mean over the valid).
  const Tensor bad = from_vector<int64_t>({3, 10, -100, 0}, {4});
  const Tensor loss = cross_entropy(x.to(kGpu), bad.to(kGpu));
  EXPECT_NE(thrown<IndexError>([&] { loss.item<float>(); }).find("target 10 is out of bounds"),
            std::string::npos);
  const Tensor good = from_vector<int64_t>({3, 9, -100, 0}, {4});
  check_op(
      "cross_entropy after the error", {x, good},
      [](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1]); },
      tol_of(DType::float32, 10));
  check_op("cross_entropy all ignored (0/0)", {x, full({4}, -100, {.dtype = DType::int64})},
           [](const std::vector<Tensor>& v) { return cross_entropy(v[0], v[1]); }, {});
}

// binary_cross_entropy's input check runs in a kernel too: the op never waits for the device, and
// the next synchronisation raises the CPU's ValueError (the count of inputs outside [0, 1], NaN
// among them) with the lowest offending position. Cleared once reported: a valid input then gives
// the CPU's loss.
TEST(CudaLoss, BceInputOutsideTheUnitIntervalRaisesTheCpuErrorAtTheNextSynchronisation) {
  FABRIC_REQUIRE_CUDA();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor bad = from_vector<double>({0.25, 1.5, nan, -0.5, 0.75, 1.0, 0.0, 0.5}, {2, 4});
  const Tensor target = from_vector<double>({0, 1, 1, 0, 1, 0, 1, 0}, {2, 4});
  for (DType dt : kFloatTypes) {
    const Tensor x = bad.to(dt), t = target.to(dt);
    struct Case {
      std::string what;
      std::function<Tensor(const Tensor&)> layout;  // contiguous, or a transposed view
      const char* position;
    };
    const std::vector<Case> cases = {
        {"contiguous", [](const Tensor& a) { return a; }, "element 1 of its input"},
        {"transposed", [](const Tensor& a) { return a.transpose(0, 1); }, "element 2 of its input"},
    };
    for (const Case& c : cases) {
      const std::string what = c.what + " " + std::string(dtype_name(dt));
      const std::string cpu_msg =
          thrown<ValueError>([&] { binary_cross_entropy(c.layout(x), c.layout(t)); });
      EXPECT_NE(cpu_msg.find("between 0 and 1; 3 of 8 in the input"), std::string::npos) << cpu_msg;
      Tensor out;
      EXPECT_NO_THROW(out = binary_cross_entropy(c.layout(x.to(kGpu)), c.layout(t.to(kGpu))))
          << what << ": the op must not wait for the device";
      const std::string gpu_msg = thrown<ValueError>([&] { out.to(Device::cpu()); });
      EXPECT_EQ(gpu_msg.substr(0, cpu_msg.size()), cpu_msg) << what;
      EXPECT_NE(gpu_msg.find(c.position), std::string::npos) << what << ": " << gpu_msg;
      EXPECT_NE(gpu_msg.find("reported at this synchronisation"), std::string::npos) << gpu_msg;
      EXPECT_NO_THROW(out.to(Device::cpu())) << what << ": reported once";
    }
  }
  const Tensor good = test::uniform_tensor({37, 129}, DType::float32, 0, 1, 21);
  const Tensor soft = test::uniform_tensor({37, 129}, DType::float32, 0, 1, 22);
  check_op(
      "binary_cross_entropy after the error", {good, soft},
      [](const std::vector<Tensor>& v) { return binary_cross_entropy(v[0], v[1]); },
      tol_of(DType::float32, 10));
}

TEST(CudaLoss, MseLoss) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    const Tensor a = test::uniform_tensor({37, 129}, dt, -3, 3, 12);
    const Tensor b = test::uniform_tensor({37, 129}, dt, -3, 3, 13);
    for (const char* red : {"none", "mean", "sum"}) {
      check_op(
          std::string("mse_loss ") + red + " " + std::string(dtype_name(dt)), {a, b},
          [&](const std::vector<Tensor>& v) { return mse_loss(v[0], v[1], red); }, tol_of(dt, 10));
    }
    check_op(
        std::string("mse_loss broadcast strided ") + std::string(dtype_name(dt)), {a, b},
        [](const std::vector<Tensor>& v) {
          return mse_loss(v[0].slice(1, 1, 129, 2), v[1].slice(0, 0, 1, 1).slice(1, 0, 128, 2),
                          "none");
        },
        tol_of(dt));
  }
  // Mixed dtypes promote (fp16 and fp32 -> fp32).
  check_op(
      "mse_loss fp16 vs fp32",
      {test::uniform_tensor({9, 31}, DType::float16, -1, 1, 14),
       test::uniform_tensor({9, 31}, DType::float32, -1, 1, 15)},
      [](const std::vector<Tensor>& v) { return mse_loss(v[0], v[1], "mean"); },
      tol_of(DType::float32));
}

}  // namespace
}  // namespace fabric
