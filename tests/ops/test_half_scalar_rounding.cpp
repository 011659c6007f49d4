// float16/bfloat16 arithmetic with a number, with alpha, and addcdiv, as torch 1.13 computes them
// on the CPU: the number (and bfloat16's alpha) cast to the dtype first, float16's alpha * b
// rounded before the sum, addcdiv as self + (value * t1) / t2. The expected values are torch
// 1.13's (printed by /usr/bin/python3 with Debian's python3-torch).
#include <gtest/gtest.h>

#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric {
namespace {

const std::vector<double> kX = {0.1279296875, -0.1298828125, 1.5,       0.214111328125,
                                -2.75,        3.140625,      0.0078125, 100.5};
const std::vector<double> kY = {-2.3, 0.7, -2.296875, 1.25, 0.3, -0.0625, 5.5, -7.0};
const std::vector<double> kT2 = {1.53125, 0.75, -3.0, 2.5, 0.1, 7.0, -0.3, 1.1};

// As torch.tensor(list) (float32) then .to(dt); float64 directly, as torch.tensor(list,
// dtype=float64).
Tensor of(const std::vector<double>& v, DType dt) {
  const Tensor t = from_vector<double>(v);
  return dt == DType::float64 ? t : t.to(DType::float32).to(dt);
}
std::vector<double> values(const Tensor& t) { return t.to(DType::float64).to_vector<double>(); }
// The first 8 values; the inputs of 64 (the 8 repeated) take torch's vectorized bfloat16 path,
// which fabric's matches (torch's scalar path for a tensor shorter than a vector rounds alpha * b
// before the sum, and so differs from its own vectorized one in the last bit).
std::vector<double> first8(const Tensor& t) {
  std::vector<double> v = values(t);
  v.resize(8);
  return v;
}
std::vector<double> repeated(const std::vector<double>& v) {
  std::vector<double> out;
  for (int i = 0; i < 8; ++i) out.insert(out.end(), v.begin(), v.end());
  return out;
}

// add(x, y, 0.3) and its in-place twin give `expected` (read through `read`: all or the first 8).
template <typename Read>
void expect_added_with_alpha(const Tensor& x, const Tensor& y, Read read,
                             const std::vector<double>& expected) {
  EXPECT_EQ(read(add(x, y, 0.3)), expected);
  Tensor z = x.clone();
  z.add_(y, 0.3);
  EXPECT_EQ(read(z), expected);
}

TEST(HalfScalarRounding, Bfloat16AsTorch) {
  const DType dt = DType::bfloat16;
  const Tensor x = of(repeated(kX), dt), y = of(repeated(kY), dt);
  EXPECT_EQ(first8(add(x, 0.1)),
            (std::vector<double>{0.228515625, -0.02978515625, 1.6015625, 0.314453125, -2.65625,
                                 3.234375, 0.10791015625, 100.5}));
  EXPECT_EQ(first8(sub(x, 0.1)),
            (std::vector<double>{0.02783203125, -0.23046875, 1.3984375, 0.11376953125, -2.84375,
                                 3.046875, -0.09228515625, 100.5}));
  EXPECT_EQ(first8(mul(x, 0.1)),
            (std::vector<double>{0.0128173828125, -0.01300048828125, 0.150390625, 0.0213623046875,
                                 -0.275390625, 0.314453125, 0.000782012939453125, 10.0625}));
  EXPECT_EQ(first8(div(x, 0.3)), (std::vector<double>{0.42578125, -0.431640625, 5.0, 0.7109375,
                                                      -9.125, 10.4375, 0.0260009765625, 334.0}));
  const std::vector<double> added = {-0.5625,  0.08056640625, 0.80859375, 0.58984375,
                                     -2.65625, 3.125,         1.6640625,  98.5};
  expect_added_with_alpha(x, y, first8, added);
  EXPECT_EQ(first8(sub(x, y, 0.3)),
            (std::vector<double>{0.8203125, -0.33984375, 2.1875, -0.162109375, -2.84375, 3.15625,
                                 -1.6484375, 102.5}));
  EXPECT_EQ(first8(addcdiv(x, y, of(repeated(kT2), dt), 0.3)),
            (std::vector<double>{-0.322265625, 0.1494140625, 1.7265625, 0.36328125, -1.8515625,
                                 3.140625, -5.46875, 98.5}));
}

TEST(HalfScalarRounding, Float16AsTorch) {
  const DType dt = DType::float16;
  const Tensor x = of(kX, dt), y = of(kY, dt);
  EXPECT_EQ(values(add(x, 0.1)),
            (std::vector<double>{0.2279052734375, -0.0299072265625, 1.599609375, 0.31396484375,
                                 -2.650390625, 3.240234375, 0.1077880859375, 100.625}));
  EXPECT_EQ(values(sub(x, 0.1)),
            (std::vector<double>{0.0279541015625, -0.2298583984375, 1.400390625, 0.1141357421875,
                                 -2.849609375, 3.041015625, -0.0921630859375, 100.375}));
  EXPECT_EQ(values(mul(x, 0.1)),
            (std::vector<double>{0.012786865234375, -0.0129852294921875, 0.14990234375,
                                 0.0214080810546875, -0.27490234375, 0.31396484375,
                                 0.0007810592651367188, 10.046875}));
  EXPECT_EQ(values(div(x, 0.3)),
            (std::vector<double>{0.42626953125, -0.432861328125, 5.0, 0.71337890625, -9.1640625,
                                 10.46875, 0.026031494140625, 335.0}));
  const std::vector<double> added = {-0.5625,     0.0802001953125, 0.81103515625, 0.5888671875,
                                     -2.66015625, 3.12109375,      1.658203125,   98.375};
  expect_added_with_alpha(x, y, values, added);
  EXPECT_EQ(values(sub(x, y, 0.3)),
            (std::vector<double>{0.818359375, -0.33984375, 2.189453125, -0.160888671875,
                                 -2.83984375, 3.16015625, -1.642578125, 102.625}));
}

TEST(HalfScalarRounding, AddcdivIsSelfPlusValueTimesT1OverT2) {
  EXPECT_EQ(
      values(addcdiv(of(kX, DType::float64), of(kY, DType::float64), of(kT2, DType::float64), 0.3)),
      (std::vector<double>{-0.32268255739795915, 0.15011718749999997, 1.7296875, 0.364111328125,
                           -1.85, 3.1379464285714285, -5.4921875, 98.5909090909091}));
  EXPECT_EQ(
      values(addcdiv(of(kX, DType::float32), of(kY, DType::float32), of(kT2, DType::float32), 0.3)),
      (std::vector<double>{-0.32268255949020386, 0.1501171886920929, 1.7296874523162842,
                           0.3641113340854645, -1.8499999046325684, 3.137946367263794, -5.4921875,
                           98.59091186523438}));
}

}  // namespace
}  // namespace fabric
