// Elementwise ops beyond the harness: PyTorch's promotion results, error messages, special values
// (NaN/inf), integer wrap-around, in-place semantics, the vector math's accuracy in ulps and the
// streaming-store path of large outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

Tensor vec(std::vector<double> v, DType dt = DType::float32) {
  return from_vector(v, {}, {.dtype = DType::float64}).to(dt);
}
Tensor ivec(std::vector<int64_t> v, DType dt = DType::int64) {
  return from_vector(v, {}, {.dtype = DType::int64}).to(dt);
}

template <typename E, typename F>
void expect_error(F&& f, std::vector<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning " << parts[0];
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

// ---- type promotion
// ------------------------------------------------------------------------------
TEST(Elementwise, PromotionOfResults) {
  const Tensor i64 = ivec({1, 2, 3});
  const Tensor f32 = vec({1, 2, 3});
  const Tensor bf = vec({1, 2, 3}, DType::bfloat16);
  EXPECT_EQ((i64 + 2.5).dtype(), DType::float32);
  EXPECT_EQ((i64 + 2).dtype(), DType::int64);
  EXPECT_EQ((bf * 3.0).dtype(), DType::bfloat16);
  EXPECT_EQ((bf + f32).dtype(), DType::float32);
  EXPECT_EQ((vec({1}, DType::float16) + bf).dtype(), DType::float32);
  EXPECT_EQ((scalar_tensor(2.0, {.dtype = DType::float64}) + f32).dtype(), DType::float32);
  EXPECT_EQ((scalar_tensor(2.0, {.dtype = DType::float64}) + i64).dtype(), DType::float64);
  EXPECT_EQ((i64 / ivec({2, 2, 2})).dtype(), DType::float32);
  EXPECT_EQ((i64 / 2).dtype(), DType::float32);
  EXPECT_EQ(pow(i64, 2).dtype(), DType::int64);
  EXPECT_EQ(pow(i64, 0.5).dtype(), DType::float32);
  EXPECT_EQ(pow(ivec({2}, DType::int32), ivec({3})).dtype(), DType::int64);
  EXPECT_EQ((ivec({1}, DType::bool_) + 1).dtype(), DType::int64);
  EXPECT_EQ((ivec({1}, DType::uint8) + ivec({1}, DType::int8)).dtype(), DType::int32);
  EXPECT_EQ(lt(i64, 2.5).dtype(), DType::bool_);
  EXPECT_EQ(eq(bf, f32).dtype(), DType::bool_);
  EXPECT_EQ(exp(i64).dtype(), DType::float32);
  EXPECT_EQ(sqrt(ivec({4}, DType::uint8)).dtype(), DType::float32);
  EXPECT_EQ(neg(ivec({4}, DType::int8)).dtype(), DType::int8);
  EXPECT_EQ(abs(i64).dtype(), DType::int64);
  EXPECT_EQ(relu(ivec({-1}, DType::int32)).dtype(), DType::int32);
  EXPECT_EQ(clamp(i64, 0, 2).dtype(), DType::int64);
  EXPECT_EQ(clamp(i64, 0.5, std::nullopt).dtype(), DType::float32);
  const Tensor cond = ivec({1, 0, 1}, DType::bool_);
  EXPECT_EQ(where(cond, ivec({1, 2, 3}, DType::int32), f32).dtype(), DType::float32);
  EXPECT_EQ(where(cond, ivec({1, 2, 3}, DType::int32), 2).dtype(), DType::int32);
  EXPECT_EQ(where(cond, ivec({1, 2, 3}, DType::int32), 2.5).dtype(), DType::float32);
  EXPECT_EQ(addcmul(i64, i64, f32).dtype(), DType::float32);
  EXPECT_EQ(logical_and(f32, i64).dtype(), DType::bool_);
  EXPECT_EQ(logical_not(f32).dtype(), DType::bool_);
  // A fresh result takes the layout its operands share, as torch's TensorIterator gives it:
  //   t = torch.arange(0, 6.).view(2, 3).t(); t.exp().stride(), (t + t).stride()  # (1, 3) (1, 3)
  const Tensor t = arange(0, 6, 1, DType::float32).view({2, 3}).t();
  EXPECT_EQ(exp(t).strides(), (Strides{1, 3}));
  EXPECT_EQ((t + t).strides(), (Strides{1, 3}));
  EXPECT_FALSE((t + t).is_contiguous());
}

TEST(Elementwise, ValuesThroughOperators) {
  const Tensor a = vec({1, -2, 3});
  EXPECT_EQ((a + 1).to_vector<double>(), (std::vector<double>{2, -1, 4}));
  EXPECT_EQ((a - 1).to_vector<double>(), (std::vector<double>{0, -3, 2}));
  EXPECT_EQ((a * 2).to_vector<double>(), (std::vector<double>{2, -4, 6}));
  EXPECT_EQ((a / 2).to_vector<double>(), (std::vector<double>{0.5, -1, 1.5}));
  EXPECT_EQ((-a).to_vector<double>(), (std::vector<double>{-1, 2, -3}));
  EXPECT_EQ((a * a - a / a).to_vector<double>(), (std::vector<double>{0, 3, 8}));
  EXPECT_EQ(add(a, a, 3).to_vector<double>(), (std::vector<double>{4, -8, 12}));
  EXPECT_EQ(sub(a, a, 3).to_vector<double>(), (std::vector<double>{-2, 4, -6}));
  EXPECT_EQ(add(ivec({1, 2}), ivec({10, 20}), -2).to_vector<int64_t>(),
            (std::vector<int64_t>{-19, -38}));
}

// A bf16 tensor times a float scalar keeps the scalar in float (PyTorch's opmath) and rounds once.
TEST(Elementwise, ReducedPrecisionRoundsOnce) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-4, 4);
  std::vector<double> va(1000), vb(1000);
  for (size_t i = 0; i < va.size(); ++i) {
    va[i] = static_cast<float>(BFloat16(u(rng)));
    vb[i] = static_cast<float>(BFloat16(u(rng)));
  }
  const Tensor a = vec(va, DType::bfloat16), b = vec(vb, DType::bfloat16);
  const auto sum = (a + b).to_vector<BFloat16>();
  const auto scaled = (a * 3.1).to_vector<BFloat16>();
  const auto g = gelu(a).to_vector<BFloat16>();
  const auto g32 = gelu(a.to(DType::float32)).to_vector<float>();
  for (size_t i = 0; i < va.size(); ++i) {
    EXPECT_EQ(sum[i].x, BFloat16(static_cast<float>(va[i]) + static_cast<float>(vb[i])).x) << i;
    // The number is cast to bfloat16 first, as torch's wrapped scalar.
    EXPECT_EQ(scaled[i].x,
              BFloat16(static_cast<float>(va[i]) * static_cast<float>(BFloat16(3.1f))).x)
        << i;
    EXPECT_EQ(g[i].x, BFloat16(g32[i]).x) << i;
  }
  const auto h = (vec(va, DType::float16) * vec(vb, DType::float16)).to_vector<Half>();
  for (size_t i = 0; i < va.size(); ++i) {
    const float want = static_cast<float>(Half(static_cast<float>(va[i]))) *
                       static_cast<float>(Half(static_cast<float>(vb[i])));
    EXPECT_EQ(h[i].x, Half(want).x) << i;
  }
}

TEST(Elementwise, ScalarComparedInTheTensorDtype) {
  // bf16(0.1) == 0.1 is true in PyTorch: the scalar is cast to bf16 first.
  const Tensor b = scalar_tensor(0.1, {.dtype = DType::bfloat16}).reshape({1});
  EXPECT_TRUE(eq(b, 0.1).item<bool>());
  EXPECT_FALSE(eq(b.to(DType::float64), 0.1).item<bool>());
  // An int tensor against 2.5 compares as float.
  EXPECT_EQ(lt(ivec({2, 3}), 2.5).to_vector<bool>(), (std::vector<bool>{true, false}));
  EXPECT_EQ(ge(ivec({2, 3}), 3).to_vector<bool>(), (std::vector<bool>{false, true}));
}

// ---- errors ------------------------------------------------------------------------------------
TEST(Elementwise, ErrorsNameOpShapesAndDtypes) {
  const Tensor a = zeros({2, 3}), b = zeros({4});
  expect_error<ShapeError>([&] { add(a, b); }, {"add", "(2, 3)", "(4,)"});
  expect_error<ShapeError>([&] { mul(a, b); }, {"mul", "(2, 3)", "(4,)"});
  expect_error<ShapeError>([&] { lt(a, b); }, {"lt", "(2, 3)"});
  expect_error<ShapeError>([&] { where(ones({2, 3}, {.dtype = DType::bool_}), a, b); }, {"where"});
  expect_error<ShapeError>([&] { addcmul(a, a, b); }, {"addcmul", "(4,)"});
  const Tensor f8 = zeros({3}).to(DType::float8_e4m3fn);
  expect_error<DTypeError>([&] { add(f8, f8); }, {"add", "float8_e4m3fn"});
  expect_error<DTypeError>([&] { mul(f8, 2.0); }, {"mul", "float8_e4m3fn"});
  expect_error<DTypeError>([&] { exp(f8); }, {"exp", "float8_e4m3fn"});
  expect_error<DTypeError>([&] { gelu(zeros({3}).to(DType::float8_e5m2)); },
                           {"gelu", "float8_e5m2"});
  expect_error<DTypeError>([&] { lt(f8, 0); }, {"lt", "float8_e4m3fn"});
  expect_error<DTypeError>([&] { where(zeros({3}), a, a); }, {"where", "bool", "float32"});
  expect_error<ValueError>([&] { gelu(a, "fast"); }, {"gelu", "fast", "tanh"});
  const Tensor bools = ones({3}, {.dtype = DType::bool_});
  expect_error<DTypeError>([&] { neg(bools); }, {"neg", "bool"});
  expect_error<DTypeError>([&] { -bools; }, {"neg", "logical_not"});
  expect_error<DTypeError>([&] { abs(bools); }, {"abs", "bool"});
  expect_error<DTypeError>([&] { sub(bools, bools); }, {"sub", "bool"});
  expect_error<DTypeError>([&] { gelu(ivec({1})); }, {"gelu", "int64"});
  expect_error<DTypeError>([&] { silu(ivec({1})); }, {"silu", "int64"});
  expect_error<ValueError>([&] { add(ivec({1}), ivec({1}), 0.5); }, {"add", "alpha", "int64"});
  expect_error<ValueError>([&] { addcmul(ivec({1}), ivec({1}), ivec({1}), 0.5); },
                           {"addcmul", "value"});
  expect_error<ValueError>([&] { pow(ivec({2}), -1); }, {"pow", "negative"});
  expect_error<ValueError>([&] { clamp(a, std::nullopt, std::nullopt); }, {"clamp", "min", "max"});
  expect_error<ValueError>([&] { add(Tensor(), a); }, {"add", "undefined"});
}

// torch 1.13 refuses subtraction with any bool operand, a bool scalar included (float - bool,
// bool - 1, f.sub_(True)): "with a bool tensor is not supported"; two bools: "with two bool
// tensors", pointing at logical_xor.
TEST(Elementwise, SubRefusesBoolOperands) {
  const Tensor f = ones({3}), bools = ones({3}, {.dtype = DType::bool_});
  const std::vector<std::string> one{"sub", "with a bool tensor is not supported", "logical_not()"};
  expect_error<DTypeError>([&] { sub(f, bools); }, one);
  expect_error<DTypeError>([&] { sub(bools, f); }, one);
  expect_error<DTypeError>([&] { sub(bools, 1); }, one);
  expect_error<DTypeError>([&] { sub(f, true); }, one);
  expect_error<DTypeError>([&] { sub(ivec({1, 2}), bools.narrow(0, 0, 2)); }, one);
  Tensor g = zeros({3});
  expect_error<DTypeError>([&] { sub_(g, bools); }, {"sub_", "with a bool tensor"});
  expect_error<DTypeError>([&] { sub(bools, bools); },
                           {"sub", "two bool tensors", "logical_xor()"});
  expect_error<DTypeError>([&] { sub(bools, false); }, {"sub", "two bool tensors"});
  EXPECT_EQ(sub(f, 1).to_vector<double>(), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(add(f, bools).to_vector<double>(), (std::vector<double>{2, 2, 2}));  // add takes bools
}

// torch 1.13 converts a scalar into the dtype where/clamp write it in with c10's overflow check:
// where(c, uint8, 1000) raises "value cannot be converted to type uint8_t without overflow"
// (it does not wrap to 232), as do 1e39 into float32 and 70000 into float16; -1 into uint8 wraps
// to 255 (two's complement is allowed), -256 raises, infinities pass into float dtypes. add/mul
// with such a scalar wrap in torch too, so they are left alone.
TEST(Elementwise, ScalarsTheResultDtypeCannotHoldAreRefused) {
  const Tensor c = ne(ivec({1, 0, 1}), 0);
  const Tensor u = ivec({1, 2, 3}, DType::uint8);
  expect_error<ValueError>([&] { where(c, u, 1000); }, {"where", "1000", "uint8", "overflow"});
  expect_error<ValueError>([&] { where(c, u, -256); }, {"where", "-256", "uint8"});
  expect_error<ValueError>([&] { where(c, ivec({1, 2, 3}, DType::int8), 200); }, {"where", "int8"});
  expect_error<ValueError>([&] { where(c, vec({1, 2, 3}), 1e39); }, {"where", "float32"});
  expect_error<ValueError>(
      [&] {
        where(c, vec({1, 2, 3}, DType::float16), 70000);
      },
      {"where", "float16"});
  expect_error<ValueError>([&] { clamp(u, 0, 1000); }, {"clamp", "1000", "uint8"});
  expect_error<ValueError>([&] { clamp(vec({1}), std::nullopt, -1e39); }, {"clamp", "float32"});
  EXPECT_EQ(where(c, u, -1).to_vector<int64_t>(), (std::vector<int64_t>{1, 255, 3}));
  EXPECT_EQ(where(c, u, 1000.0).dtype(), DType::float32);  // a float scalar promotes instead
  EXPECT_TRUE(std::isinf(where(c, vec({1, 2, 3}, DType::float16), kInf).to_vector<double>()[1]));
  EXPECT_EQ(clamp(u, -1, 5).to_vector<int64_t>(), (std::vector<int64_t>{5, 5, 5}));  // -1 is 255
  EXPECT_EQ(add(u, 1000).to_vector<int64_t>(), (std::vector<int64_t>{233, 234, 235}));
}

// add/sub convert alpha, and pow a scalar exponent, into the result dtype with the same check
// (torch 1.13: add(int8, int8, alpha=300) and pow(int8, 300) raise "value cannot be converted to
// type int8_t without overflow"); pow in float32/float64 computes in double and does not.
TEST(Elementwise, AlphaAndExponentTheResultDtypeCannotHoldAreRefused) {
  struct Row {
    DType dt;
    Scalar alpha;
    const char* shown;
  };
  const Row refused[] = {{DType::int8, 300, "300"},
                         {DType::uint8, 300, "300"},
                         {DType::uint8, -256, "-256"},
                         {DType::int32, int64_t{1} << 40, "1099511627776"},
                         {DType::float16, 70000.0, "float16"},
                         {DType::bfloat16, 1e39, "bfloat16"},
                         {DType::float32, 1e39, "float32"}};
  for (const Row& r : refused) {
    const Tensor a = vec({1, 2}, r.dt);
    expect_error<ValueError>([&] { add(a, a, r.alpha); }, {"add", r.shown, "overflow"});
    expect_error<ValueError>([&] { sub(a, a, r.alpha); }, {"sub", r.shown, "overflow"});
    Tensor b = vec({1, 2}, r.dt);
    expect_error<ValueError>([&] { add_(b, a, r.alpha); }, {"add_", r.shown});
    // (a negative integer exponent of an integer tensor is refused first, as in torch)
    if (r.dt != DType::float32 && !(r.alpha.is_integral() && r.alpha.to_int() < 0))
      expect_error<ValueError>([&] { pow(a, r.alpha); }, {"pow", r.shown, "overflow"});
  }
  EXPECT_TRUE(std::isinf(pow(vec({2}), 1e39).to_vector<double>()[0]));
  EXPECT_EQ(pow(ivec({2}, DType::int8), 6).to_vector<int64_t>(), (std::vector<int64_t>{64}));
  EXPECT_EQ(pow(ivec({2}, DType::int8), 2.5).dtype(), DType::float32);  // a float exponent promotes
  // In range (an unsigned dtype takes -1 as 255, as c10's check does), and float64 takes 1e39.
  EXPECT_EQ(add(ivec({1, 2}, DType::uint8), ivec({1, 1}, DType::uint8), -1).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(add(ivec({1}, DType::int8), ivec({1}, DType::int8), 100).to_vector<int64_t>(),
            (std::vector<int64_t>{101}));
  EXPECT_TRUE(std::isinf(
      add(vec({1}, DType::float64), vec({1}, DType::float64), kInf).to_vector<double>()[0]));
  EXPECT_EQ(add(vec({1}, DType::float64), vec({1}, DType::float64), 1e39).to_vector<double>()[0],
            1e39 + 1);
}

// ---- in place
// ------------------------------------------------------------------------------------
TEST(Elementwise, InPlaceWritesIntoSelfAndBumpsVersion) {
  Tensor a = vec({1, 2, 3});
  void* p = a.data_ptr();
  const uint64_t v0 = a.storage()->version();
  add_(a, vec({1, 1, 1}), 2);
  EXPECT_EQ(a.data_ptr(), p);
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{3, 4, 5}));
  EXPECT_GT(a.storage()->version(), v0);
  mul_(a, 2);
  sub_(a, vec({1, 1, 1}));
  div_(a, vec({5, 7, 9}));
  add_(a, 0.5);
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{1.5, 1.5, 1.5}));
  div_(a, 3);
  mul_(a, vec({2}));
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{1, 1, 1}));
  // A bf16 tensor updated by an fp32 one: computed in fp32, rounded once into bf16.
  Tensor h = vec({1, 1}, DType::bfloat16);
  add_(h, vec({1e-3, 1.0}));
  EXPECT_EQ(h.dtype(), DType::bfloat16);
  EXPECT_EQ(h.to_vector<float>(), (std::vector<float>{1.0f, 2.0f}));
  // int += int keeps int; integer 'a' can take an integer result.
  Tensor i = ivec({1, 2});
  add_(i, ivec({3, 4}, DType::int32));
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{4, 6}));
  // In-place into a strided view writes only the view.
  Tensor base = zeros({2, 4});
  Tensor col = base.slice(1, 1, 2);
  add_(col, 1);
  EXPECT_EQ(base.to_vector<double>(), (std::vector<double>{0, 1, 0, 0, 0, 1, 0, 0}));
}

TEST(Elementwise, InPlaceErrors) {
  Tensor i = ivec({1, 2});
  expect_error<DTypeError>([&] { div_(i, ivec({1, 2})); }, {"div_", "float32", "int64"});
  expect_error<DTypeError>([&] { add_(i, 0.5); }, {"add_", "float32", "int64"});
  expect_error<DTypeError>([&] { mul_(i, vec({1, 2})); }, {"mul_", "float32", "int64"});
  Tensor bo = ones({2}, {.dtype = DType::bool_});
  expect_error<DTypeError>([&] { add_(bo, ivec({1, 1})); }, {"add_", "int64", "bool"});
  Tensor small = zeros({3});
  expect_error<ShapeError>([&] { add_(small, zeros({2, 3})); }, {"add_", "(3,)", "(2, 3)"});
  Tensor expanded = zeros({1, 3}).expand({4, 3});
  expect_error<ValueError>([&] { add_(expanded, 1); }, {"add_", "(4, 3)"});
  Tensor f = zeros({2});
  expect_error<ValueError>([&] { sub_(i, ivec({1, 1}), 0.5); }, {"sub_", "alpha"});
  EXPECT_NO_THROW(sub_(f, vec({1, 1}), 0.5));
}

TEST(Elementwise, InPlaceWithAliasingOperand) {
  // An operand partly overlapping the written tensor (row 0 broadcast over a's rows, a square's
  // transpose) is torch 1.13's RuntimeError, before anything is written; the tensor itself is fine.
  Tensor a = arange(0, 6, 1, DType::float32).view({2, 3});
  expect_error<ValueError>([&] { add_(a, a[0]); }, {"add_", "unsupported operation"});
  EXPECT_EQ(a.to_vector<double>(), (std::vector<double>{0, 1, 2, 3, 4, 5}));
  Tensor s = arange(0, 4, 1, DType::float32).view({2, 2});
  expect_error<ValueError>([&] { mul_(s, s.t()); }, {"mul_", "Please clone()"});
  EXPECT_EQ(s.to_vector<double>(), (std::vector<double>{0, 1, 2, 3}));
  Tensor x = vec({1, 2, 3});
  mul_(x, x);
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{1, 4, 9}));
}

// Operands laid out alike in a permuted order (a.t() + b.t(), a channels-last activation) give a
// result in that layout, as torch's TensorIterator does, computed over contiguous memory: the same
// bits as on contiguous copies. Strides from torch 1.13:
//   a, b = torch.randn(160, 130), torch.randn(160, 130)
//   (a.t() + b.t()).stride(), torch.relu(a.t()).stride(), (a.t() * 2.5).stride()  # (1, 130) x3
//   p4 = torch.randn(3, 90, 2, 80).permute(0, 2, 3, 1); p4.exp().stride()  # (14400, 80, 1, 160)
//   (a.t() > 0).stride(), a.t().clamp(0, 1).stride(), torch.addcmul(a.t(), a.t(), a.t()).stride(),
//   torch.where(a.t() > 0, a.t(), a.t()).stride(), (a.t() + torch.tensor(2.)).stride(),
//   F.gelu(a.t()).stride(), torch.atan2(a.t(), a.t()).stride()  # all (1, 130)
//   x = torch.randn(20000, 1); x.relu().stride()  # (1, 1): contiguous operands stay row-major
// Operands laid out differently: the first one whose strides tell two dims apart orders them;
// broadcast dims have no say:
//   c, bias = torch.randn(130, 160), torch.randn(160)
//   (a.t() + c).stride(), (c + a.t()).stride(), (a.t() + bias).stride(), (bias + a.t()).stride(),
//   torch.where(c > 0, a.t(), c).stride(), torch.where(a.t() > 0, c, c).stride()
//     # (1, 130) (160, 1) (1, 130) (1, 130) (160, 1) (1, 130)
//   x = torch.randn(2, 3, 4, 5).permute(0, 2, 3, 1); y = torch.randn(2, 4, 5, 3)
//   (x + y).stride(), (y + x).stride(), (x * torch.randn(3)).stride(),
//   (x + torch.randn(4, 1, 1)).stride()  # (60, 5, 1, 20) (60, 15, 3, 1) (60, 5, 1, 20) x2
//   z = torch.randn(8, 1, 6).transpose(0, 2); z.relu().stride()  # (1, 6, 6): z's own strides
//   w = torch.randn(5, 1, 7).permute(2, 1, 0); (w + torch.randn(7, 3, 5)).stride()  # (15, 5, 1)
TEST(Elementwise, PermutedOperandsGiveResultsInTheirLayoutWithTheSameBits) {
  const Tensor a = randn({160, 130}), b = randn({160, 130});
  const Tensor at = a.t(), bt = b.t();
  const Strides transposed{1, 130};
  const Tensor sum_t = add(at, bt), want = add(at.contiguous(), bt.contiguous());
  EXPECT_EQ(sum_t.strides(), transposed);
  EXPECT_EQ(sum_t.to_vector<float>(), want.to_vector<float>());
  EXPECT_EQ(relu(at).strides(), transposed);
  EXPECT_EQ(relu(at).to_vector<float>(), relu(at.contiguous()).to_vector<float>());
  EXPECT_EQ(mul(at, 2.5).strides(), transposed);
  EXPECT_EQ(mul(at, 2.5).to_vector<float>(), mul(at.contiguous(), 2.5).to_vector<float>());
  EXPECT_EQ(gt(at, 0.0).strides(), transposed);
  EXPECT_EQ(clamp(at, 0.0, 1.0).strides(), transposed);
  EXPECT_EQ(addcmul(at, at, at).strides(), transposed);
  EXPECT_EQ(where(gt(at, 0.0), at, at).strides(), transposed);
  EXPECT_EQ(add(at, scalar_tensor(2.0)).strides(), transposed);
  EXPECT_EQ(gelu(at).strides(), transposed);
  EXPECT_EQ(atan2(at, at).strides(), transposed);
  EXPECT_EQ(atan2(at, at).to_vector<float>(),
            atan2(at.contiguous(), at.contiguous()).to_vector<float>());
  const Tensor p4 = randn({3, 90, 2, 80}).permute({0, 2, 3, 1});
  EXPECT_EQ(exp(p4).to_vector<float>(), exp(p4.contiguous()).to_vector<float>());
  EXPECT_EQ(exp(p4).strides(), (Strides{14400, 80, 1, 160}));
  // Operands whose layouts differ: torch's order, the same bits.
  const Tensor c = randn({130, 160}), bias = randn({160});
  EXPECT_EQ(add(at, c).strides(), transposed);
  EXPECT_EQ(add(at, c).to_vector<float>(), add(at.contiguous(), c).to_vector<float>());
  EXPECT_EQ(add(c, at).strides(), (Strides{160, 1}));
  EXPECT_EQ(add(c, at).to_vector<float>(), add(c, at.contiguous()).to_vector<float>());
  EXPECT_EQ(add(at, bias).strides(), transposed);
  EXPECT_EQ(add(bias, at).strides(), transposed);
  EXPECT_EQ(where(gt(c, 0.0), at, c).strides(), (Strides{160, 1}));
  EXPECT_EQ(where(gt(at, 0.0), c, c).strides(), transposed);
  const Tensor x = randn({2, 3, 4, 5}).permute({0, 2, 3, 1}), y = randn({2, 4, 5, 3});
  EXPECT_EQ(add(x, y).strides(), (Strides{60, 5, 1, 20}));
  EXPECT_EQ(add(y, x).strides(), (Strides{60, 15, 3, 1}));
  EXPECT_EQ(mul(x, randn({3})).strides(), (Strides{60, 5, 1, 20}));
  EXPECT_EQ(add(x, randn({4, 1, 1})).strides(), (Strides{60, 5, 1, 20}));
  EXPECT_EQ(add(x, y).to_vector<float>(), add(x.contiguous(), y).to_vector<float>());
  EXPECT_EQ(relu(randn({8, 1, 6}).transpose(0, 2)).strides(), (Strides{1, 6, 6}));
  const Tensor w = randn({5, 1, 7}).permute({2, 1, 0});
  EXPECT_EQ(add(w, randn({7, 3, 5})).strides(), (Strides{15, 5, 1}));
  for (const Shape& shape : {Shape{20000, 1}, Shape{200, 1, 100}, Shape{3, 90, 1, 80}}) {
    const Tensor x = randn(shape);
    EXPECT_EQ(relu(x).strides(), x.strides()) << shape_str(shape);
    EXPECT_EQ(add(x, x).strides(), x.strides()) << shape_str(shape);
  }
}

// An in-place op on a transposed view walks the view's memory order: the same values as through
// a contiguous copy, written where the view points.
TEST(Elementwise, InPlaceOnATransposedViewWritesItsElements) {
  Tensor a = randn({96, 200});
  const Tensor b = randn({200, 96});
  const Tensor want = add(a.t().contiguous(), b);
  Tensor view = a.t();
  add_(view, b);
  EXPECT_EQ(a.t().contiguous().to_vector<float>(), want.to_vector<float>());
}

// ---- special values and semantics ---------------------------------------------------------------
std::vector<double> v64(const Tensor& t) { return t.to_vector<double>(); }

TEST(Elementwise, NaNPropagationAndLimits) {
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor a = vec({kNaN, 1, kNaN, -kInf}, dt), b = vec({1, kNaN, kNaN, 2}, dt);
    for (const Tensor& r : {maximum(a, b), minimum(a, b)}) {
      const auto v = v64(r);
      EXPECT_TRUE(std::isnan(v[0]) && std::isnan(v[1]) && std::isnan(v[2]));
    }
    EXPECT_EQ(v64(maximum(a, b))[3], 2);
    EXPECT_EQ(v64(minimum(a, b))[3], -kInf);
    auto r = v64(relu(vec({kNaN, -1, 2, -kInf}, dt)));
    EXPECT_TRUE(std::isnan(r[0]));
    EXPECT_EQ(r[1], 0);
    EXPECT_EQ(r[2], 2);
    EXPECT_EQ(r[3], 0);
    auto e = v64(exp(vec({kInf, -kInf, kNaN, 0}, dt)));
    EXPECT_EQ(e[0], kInf);
    EXPECT_EQ(e[1], 0);
    EXPECT_TRUE(std::isnan(e[2]));
    EXPECT_EQ(e[3], 1);
    auto l = v64(log(vec({0, -1, kInf, kNaN, 1}, dt)));
    EXPECT_EQ(l[0], -kInf);
    EXPECT_TRUE(std::isnan(l[1]));
    EXPECT_EQ(l[2], kInf);
    EXPECT_TRUE(std::isnan(l[3]));
    EXPECT_EQ(l[4], 0);
    auto t = v64(tanh(vec({kInf, -kInf, kNaN, 30, -30}, dt)));
    EXPECT_EQ(t[0], 1);
    EXPECT_EQ(t[1], -1);
    EXPECT_TRUE(std::isnan(t[2]));
    EXPECT_EQ(t[3], 1);
    EXPECT_EQ(t[4], -1);
    auto s = v64(sigmoid(vec({kInf, -kInf, kNaN, 200, -800}, dt)));
    EXPECT_EQ(s[0], 1);
    EXPECT_EQ(s[1], 0);
    EXPECT_TRUE(std::isnan(s[2]));
    EXPECT_EQ(s[3], 1);
    EXPECT_EQ(s[4], 0);
    auto g = v64(gelu(vec({kInf, kNaN, 0, 30, -30}, dt)));
    EXPECT_EQ(g[0], kInf);
    EXPECT_TRUE(std::isnan(g[1]));
    EXPECT_EQ(g[2], 0);
    EXPECT_EQ(g[3], 30);
    EXPECT_NEAR(g[4], 0, 1e-150);  // float64 keeps erfc's tail (-1.5e-196); float32 underflows
    auto gt = v64(gelu(vec({kInf, kNaN, 0, 30, -30}, dt), "tanh"));
    EXPECT_EQ(gt[0], kInf);
    EXPECT_TRUE(std::isnan(gt[1]));
    EXPECT_EQ(gt[3], 30);
    EXPECT_NEAR(gt[4], 0, 1e-150);
    auto q = v64(sqrt(vec({-1, kInf, 0}, dt)));
    EXPECT_TRUE(std::isnan(q[0]));
    EXPECT_EQ(q[1], kInf);
    EXPECT_EQ(q[2], 0);
    auto rs = v64(rsqrt(vec({0, kInf, 4}, dt)));
    EXPECT_EQ(rs[0], kInf);
    EXPECT_EQ(rs[1], 0);
    EXPECT_EQ(rs[2], 0.5);
    EXPECT_EQ(v64(reciprocal(vec({0}, dt)))[0], kInf);
    auto d = v64(vec({1, -1, 0}, dt) / vec({0, 0, 0}, dt));
    EXPECT_EQ(d[0], kInf);
    EXPECT_EQ(d[1], -kInf);
    EXPECT_TRUE(std::isnan(d[2]));
    // clamp: NaN in the input or a bound propagates; min > max gives max.
    auto c = v64(clamp(vec({kNaN, -5, 5, 0.5}, dt), 0, 1));
    EXPECT_TRUE(std::isnan(c[0]));
    EXPECT_EQ(c[1], 0);
    EXPECT_EQ(c[2], 1);
    EXPECT_EQ(c[3], 0.5);
    auto cn = v64(clamp(vec({1, 2}, dt), kNaN, std::nullopt));
    EXPECT_TRUE(std::isnan(cn[0]) && std::isnan(cn[1]));
    EXPECT_EQ(v64(clamp(vec({-3, 0, 3}, dt), 2, 1)), (std::vector<double>{1, 1, 1}));
    // Comparisons with NaN: only ne is true.
    const Tensor n = vec({kNaN}, dt);
    EXPECT_FALSE(eq(n, n).item<bool>());
    EXPECT_TRUE(ne(n, n).item<bool>());
    EXPECT_FALSE(lt(n, 0).item<bool>());
    EXPECT_FALSE(ge(n, 0).item<bool>());
    // NaN is truthy for the logical ops.
    EXPECT_TRUE(logical_and(n, n).item<bool>());
    EXPECT_FALSE(logical_not(n).item<bool>());
  }
}

// torch 1.13's values (identical in float32, float64 and bfloat16) with the sign of zero: round
// is half to even, sign(NaN) and sign(-0) are +0, ceil/round/trunc of small negatives are -0.
TEST(Elementwise, UnaryMathSpecialValuesAsTorch) {
  const std::vector<double> jumps = {0.5,  -0.5, 1.5,  -1.5, 2.5,   -2.5,
                                     -0.0, 0,    kNaN, kInf, -kInf, -0.25};
  struct Case {
    const char* name;
    Tensor (*op)(const Tensor&);
    std::vector<double> in, want;
  };
  const std::vector<Case> cases = {
      {"floor", floor, jumps, {0, -1, 1, -2, 2, -3, -0.0, 0, kNaN, kInf, -kInf, -1}},
      {"ceil", ceil, jumps, {1, -0.0, 2, -1, 3, -2, -0.0, 0, kNaN, kInf, -kInf, -0.0}},
      {"round", round, jumps, {0, -0.0, 2, -2, 2, -2, -0.0, 0, kNaN, kInf, -kInf, -0.0}},
      {"trunc", trunc, jumps, {0, -0.0, 1, -1, 2, -2, -0.0, 0, kNaN, kInf, -kInf, -0.0}},
      {"sign", sign, jumps, {1, -1, 1, -1, 1, -1, 0, 0, 0, 1, -1, -1}},
      {"log1p", log1p, {-1, -2, -0.0, kInf, -kInf, kNaN}, {-kInf, kNaN, -0.0, kInf, kNaN, kNaN}},
      {"expm1", expm1, {-0.0, kInf, -kInf, kNaN, -100}, {-0.0, kInf, -1, kNaN, -1}},
      {"erf", erf, {kInf, -kInf, -0.0, kNaN, 10}, {1, -1, -0.0, kNaN, 1}},
  };
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16, DType::float16}) {
    for (const Case& c : cases) {
      const auto got = v64(c.op(vec(c.in, dt)));
      for (size_t i = 0; i < c.in.size(); ++i) {
        const bool same =
            std::isnan(c.want[i])
                ? std::isnan(got[i])
                : got[i] == c.want[i] && std::signbit(got[i]) == std::signbit(c.want[i]);
        EXPECT_TRUE(same) << c.name << "(" << c.in[i] << ") in " << dtype_name(dt) << ": got "
                          << got[i] << ", torch gives " << c.want[i];
      }
    }
  }
}

// Integer and bool inputs as torch: the rounding ops and sign keep integer dtypes, sign keeps
// bool, log1p/expm1/erf give the default float dtype, and the rounding ops refuse bool.
TEST(Elementwise, UnaryMathIntegerAndBoolDtypes) {
  const Tensor i8 = ivec({-3, 0, 5}, DType::int8);
  for (auto op : {floor, ceil, round, trunc}) {
    EXPECT_EQ(op(i8).dtype(), DType::int8);
    EXPECT_EQ(v64(op(i8)), (std::vector<double>{-3, 0, 5}));
  }
  EXPECT_EQ(sign(i8).dtype(), DType::int8);
  EXPECT_EQ(v64(sign(i8)), (std::vector<double>{-1, 0, 1}));
  EXPECT_EQ(v64(sign(ivec({0, 7}, DType::uint8))), (std::vector<double>{0, 1}));
  const Tensor b = ivec({0, 1}, DType::bool_);
  EXPECT_EQ(sign(b).dtype(), DType::bool_);
  EXPECT_EQ(v64(sign(b)), (std::vector<double>{0, 1}));
  for (auto op : {log1p, expm1, erf}) {
    EXPECT_EQ(op(ivec({1, 2}, DType::int32)).dtype(), DType::float32);
    EXPECT_EQ(op(b).dtype(), DType::float32);
  }
  EXPECT_EQ(v64(log1p(ivec({-1}))), (std::vector<double>{-kInf}));
  expect_error<DTypeError>([&] { floor(b); }, {"floor", "bool"});
  expect_error<DTypeError>([&] { round(b); }, {"round", "bool"});
}

TEST(Elementwise, IntegerSemantics) {
  // Integer true division by zero goes to float: inf/nan, no crash.
  auto d = v64(ivec({1, -1, 0}) / ivec({0, 0, 0}));
  EXPECT_EQ(d[0], kInf);
  EXPECT_EQ(d[1], -kInf);
  EXPECT_TRUE(std::isnan(d[2]));
  // Overflow wraps as in PyTorch (two's complement).
  EXPECT_EQ((ivec({100, -100}, DType::int8) + ivec({100, -100}, DType::int8)).to_vector<int8_t>(),
            (std::vector<int8_t>{-56, 56}));
  EXPECT_EQ((ivec({200}, DType::uint8) * 2).to_vector<uint8_t>(), (std::vector<uint8_t>{144}));
  EXPECT_EQ(neg(ivec({1, 0}, DType::uint8)).to_vector<uint8_t>(), (std::vector<uint8_t>{255, 0}));
  const int64_t lo = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(neg(ivec({lo})).item<int64_t>(), lo);
  EXPECT_EQ(abs(ivec({lo, -3})).to_vector<int64_t>(), (std::vector<int64_t>{lo, 3}));
  EXPECT_EQ((ivec({std::numeric_limits<int64_t>::max()}) + 1).item<int64_t>(), lo);
  // Integer powers: exact beyond 2^53 and PyTorch's rule for negative exponent tensors.
  EXPECT_EQ(pow(ivec({3}), 39).item<int64_t>(), 4052555153018976267LL);
  EXPECT_EQ(pow(ivec({2, 1, -1, -1, 0}), ivec({-1, -3, -3, -2, -1})).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 1, -1, 1, 0}));
  // uint8 clamp with a negative bound: torch 1.13 converts the bound into uint8, so -5 wraps to
  // 251, above max = 100, and everything becomes 100 (clamp(min=-5) alone gives 251).
  EXPECT_EQ(clamp(ivec({3, 200}, DType::uint8), -5, 100).to_vector<uint8_t>(),
            (std::vector<uint8_t>{100, 100}));
  EXPECT_EQ(clamp(ivec({3, 200}, DType::uint8), -5, std::nullopt).to_vector<uint8_t>(),
            (std::vector<uint8_t>{251, 251}));
  // bool arithmetic: + is or, * is and, maximum/minimum too.
  const Tensor t = ivec({1, 1, 0, 0}, DType::bool_), f = ivec({1, 0, 1, 0}, DType::bool_);
  EXPECT_EQ((t + f).to_vector<bool>(), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ((t * f).to_vector<bool>(), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(maximum(t, f).to_vector<bool>(), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(minimum(t, f).to_vector<bool>(), (std::vector<bool>{true, false, false, false}));
  EXPECT_EQ(logical_or(t, f).to_vector<bool>(), (std::vector<bool>{true, true, true, false}));
  EXPECT_EQ(logical_and(t, f).to_vector<bool>(), (std::vector<bool>{true, false, false, false}));
}

TEST(Elementwise, PowSpecialExponentsMatchTheirOps) {
  for (DType dt : {DType::float32, DType::float64, DType::bfloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = vec({0.25, 1.5, 7, 1e-3, 0}, dt);
    EXPECT_EQ(v64(pow(x, 0.5)), v64(sqrt(x)));
    EXPECT_EQ(v64(pow(x, -0.5)), v64(rsqrt(x)));
    EXPECT_EQ(v64(pow(x, -1)), v64(reciprocal(x)));
    EXPECT_EQ(v64(pow(x, 2)), v64(x * x));
  }
  // As in PyTorch: pow(-inf, 0.5) is sqrt(-inf) = NaN (libm's pow would give inf).
  EXPECT_TRUE(std::isnan(pow(vec({-kInf}), 0.5).item<double>()));
}

TEST(Elementwise, WhereAndAddcmulValues) {
  const Tensor cond = ivec({1, 0, 1}, DType::bool_);
  EXPECT_EQ(where(cond, vec({1, 2, 3}), vec({-1})).to_vector<double>(),
            (std::vector<double>{1, -1, 3}));
  EXPECT_EQ(where(cond, ivec({1, 2, 3}), 7).to_vector<int64_t>(), (std::vector<int64_t>{1, 7, 3}));
  EXPECT_EQ(where(cond, vec({1, 2, 3}, DType::bfloat16), vec({0.5})).dtype(), DType::float32);
  EXPECT_EQ(addcmul(vec({1, 1}), vec({2, 3}), vec({4, 5}), 0.5).to_vector<double>(),
            (std::vector<double>{5, 8.5}));
  EXPECT_EQ(addcmul(ivec({1}), ivec({2}), ivec({4}), 3).to_vector<int64_t>(),
            (std::vector<int64_t>{25}));
}

TEST(Elementwise, EmptyAndZeroDim) {
  const Tensor e = zeros({0, 3});
  EXPECT_EQ((e + 1).sizes(), (Shape{0, 3}));
  EXPECT_EQ(gelu(e).sizes(), (Shape{0, 3}));
  EXPECT_EQ(add(e, zeros({4, 1, 3})).sizes(), (Shape{4, 0, 3}));
  Tensor ei = zeros({0});
  add_(ei, 1);
  const Tensor s = scalar_tensor(2.0);
  EXPECT_EQ((s * s).dim(), 0);
  EXPECT_EQ((s * s).item<double>(), 4);
  EXPECT_EQ(exp(s).dim(), 0);
  EXPECT_EQ(lt(s, 3).dim(), 0);
}

// ---- the vector math: float32 accuracy in ulps against double libm
// --------------------------------- Error in units of max(ulp(want), floor): floor = 0 is a plain
// ulp count; GELU uses 2^-26 because 1 + erf cancels where GELU is small (as PyTorch's formula
// does), so only absolute accuracy holds.
double ulps(float got, double want, double floor) {
  const float wf = static_cast<float>(want);
  if (std::isnan(want)) return std::isnan(got) ? 0 : 1e9;
  if (std::isinf(wf)) return got == wf ? 0 : 1e9;
  const double ulp = std::fabs(wf) < std::numeric_limits<float>::min()
                         ? std::ldexp(1.0, -149)
                         : std::ldexp(1.0, std::ilogb(wf) - 23);
  return std::fabs(static_cast<double>(got) - want) / std::max(ulp, floor);
}

void check_ulps(const char* name, Tensor (*op)(const Tensor&), double (*ref)(double), float lo,
                float hi, double max_ulps, double floor = 0) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> x(200000);
  for (float& v : x) v = u(rng);
  const Tensor in = from_vector(x);
  const auto got = op(in).to_vector<float>();
  double worst = 0;
  float at = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double e = ulps(got[i], ref(x[i]), floor);
    if (e > worst) {
      worst = e;
      at = x[i];
    }
  }
  EXPECT_LE(worst, max_ulps) << name << " at x = " << at;
}

TEST(Elementwise, VectorMathAccuracyUlps) {
  check_ulps(
      "exp", exp, [](double v) { return std::exp(v); }, -100, 88, 1.5);
  check_ulps(
      "log", log, [](double v) { return std::log(v); }, 1e-30f, 1e30f, 1.5);
  check_ulps(
      "log near 1", log, [](double v) { return std::log(v); }, 0.5f, 2.0f, 1.5);
  check_ulps(
      "tanh", tanh, [](double v) { return std::tanh(v); }, -10, 10, 2);
  check_ulps(
      "tanh small", tanh, [](double v) { return std::tanh(v); }, -0.7f, 0.7f, 2);
  check_ulps(
      "sigmoid", sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }, -80, 30, 3);
  check_ulps(
      "silu", silu, [](double v) { return v / (1 + std::exp(-v)); }, -80, 30, 3);
  check_ulps(
      "gelu", [](const Tensor& t) { return gelu(t); },
      [](double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); }, -12, 12, 4,
      std::ldexp(1.0, -26));
  check_ulps(
      "gelu right", [](const Tensor& t) { return gelu(t); },
      [](double v) { return 0.5 * v * std::erfc(-v / std::sqrt(2.0)); }, 0, 12, 2);
  check_ulps(
      "gelu tanh", [](const Tensor& t) { return gelu(t, "tanh"); },
      [](double v) {
        return v / (1 + std::exp(-2 * std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
      },
      -12, 12, 4, std::ldexp(1.0, -26));
  // log1p and expm1 near 0, where log(1 + x) and exp(x) - 1 would lose every digit.
  check_ulps(
      "log1p", log1p, [](double v) { return std::log1p(v); }, -0.999f, 1e6f, 2);
  check_ulps(
      "log1p near 0", log1p, [](double v) { return std::log1p(v); }, -1e-3f, 1e-3f, 2);
  check_ulps(
      "log1p tiny", log1p, [](double v) { return std::log1p(v); }, -1e-7f, 1e-7f, 2);
  check_ulps(
      "expm1", expm1, [](double v) { return std::expm1(v); }, -30, 88.7f, 2);
  check_ulps(
      "expm1 near 0", expm1, [](double v) { return std::expm1(v); }, -1e-3f, 1e-3f, 2);
  check_ulps(
      "expm1 tiny", expm1, [](double v) { return std::expm1(v); }, -1e-7f, 1e-7f, 2);
  check_ulps(
      "erf", erf, [](double v) { return std::erf(v); }, -5, 5, 2);
  // Subnormal inputs and outputs.
  check_ulps(
      "log subnormal", log, [](double v) { return std::log(v); }, 1e-44f, 1e-38f, 1.5);
  check_ulps(
      "exp to subnormal", exp, [](double v) { return std::exp(v); }, -103, -87.5, 1.5);
}

// The contiguous, strided and broadcast paths compute bit-identical values.
TEST(Elementwise, LayoutsAgreeBitwise) {
  const Tensor x = randn({37, 53});
  const Tensor xt = x.t().contiguous().t();  // same values, transposed layout
  for (auto op :
       {+[](const Tensor& t) { return gelu(t); }, +[](const Tensor& t) { return exp(t); },
        +[](const Tensor& t) { return tanh(t); }, +[](const Tensor& t) { return t * 1.7 + t; }}) {
    EXPECT_EQ(op(x).to_vector<float>(), op(xt).to_vector<float>());
  }
  const Tensor row = randn({53});
  EXPECT_EQ((x + row).to_vector<float>(),
            (x + row.unsqueeze(0).expand({37, 53}).contiguous()).to_vector<float>());
  EXPECT_EQ((xt * row).to_vector<float>(),
            (x * row.unsqueeze(0).expand({37, 53}).contiguous()).to_vector<float>());
}

// Outputs of 16 MiB and more take the non-temporal store path, with a head peeled to alignment
// when the output is misaligned (an in-place op on a view at an odd offset).
TEST(Elementwise, LargeOutputsStreamCorrectly) {
  const int64_t chunk = int64_t{1} << 20;  // 4 MiB pieces stay on the cached-store path
  for (DType dt : {DType::float32, DType::bfloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    const int64_t n = (int64_t{17} << 20) / itemsize(dt) + 13;  // 17 MiB and a ragged tail
    const Tensor x =
        (arange(0, n + 1, 1, DType::float32) * (8.0 / static_cast<double>(n)) - 4).to(dt);
    const Tensor a = x.slice(0, 1, n + 1);
    const Tensor g = gelu(a);
    const Tensor s = a + x.slice(0, 0, n);
    Tensor inplace = x.clone();
    Tensor view = inplace.slice(0, 1, n + 1);
    mul_(view, 3.0);
    for (int64_t off = 0; off < n; off += chunk) {
      const int64_t len = std::min(chunk, n - off);
      const Tensor pa = a.slice(0, off, off + len);
      ASSERT_EQ(g.slice(0, off, off + len).to_vector<float>(), gelu(pa).to_vector<float>()) << off;
      ASSERT_EQ(s.slice(0, off, off + len).to_vector<float>(),
                (pa + x.slice(0, off, off + len)).to_vector<float>());
      ASSERT_EQ(view.slice(0, off, off + len).to_vector<float>(), (pa * 3.0).to_vector<float>())
          << off;
    }
    EXPECT_EQ(inplace[0].item<float>(), x[0].item<float>());  // outside the view: untouched
  }
}

}  // namespace
}  // namespace fabric
