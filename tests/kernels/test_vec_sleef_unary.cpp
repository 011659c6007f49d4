// torch.tanh / sin / cos / expm1 / log1p / erf through the ops: torch 1.13's bits (its kernels map
// every element, tail and strided ones included, through Sleef_<op>f8_u10; kernels/cpu/
// vec_sleef_sincos.h and vec_sleef_exp_family.h transcribe them, also checked against Debian's
// libsleef 3.5.1 on all 2^32 inputs, bit for bit, NaNs included).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/fnv1a.h"

namespace fabric {
namespace {

using testing::fnv1a;

// torch 1.13, one thread (torch.set_num_threads(1)):
//   bits = torch.arange(0, 0x7f800000, 32771, dtype=torch.int64).to(torch.int32)
//   x = torch.cat([bits.view(torch.float32), -bits.view(torch.float32)])[:130000]
std::vector<float> probe_values() {
  std::vector<float> pos, v;
  for (int64_t b = 0; b < 0x7f800000; b += 32771)
    pos.push_back(std::bit_cast<float>(static_cast<uint32_t>(b)));
  v = pos;
  for (float p : pos) v.push_back(-p);
  v.resize(130000);
  return v;
}

//   tail = torch.tensor([0.5, 200.0, -3.0, 1e5, nan, 7.25, -0.0, 124.9, 125.0, -2e30, 1e-30,
//                        3.0e-39, 0.75, -15.5, 88.0, -104.5, 9.0, -1.0, 2.5, 1e38] * 2)
std::vector<float> tail_values() {
  const std::vector<float> once = {0.5f,   200.0f,  -3.0f,  1e5f,   std::nanf(""), 7.25f, -0.0f,
                                   124.9f, 125.0f,  -2e30f, 1e-30f, 3.0e-39f,      0.75f, -15.5f,
                                   88.0f,  -104.5f, 9.0f,   -1.0f,  2.5f,          1e38f};
  std::vector<float> v = once;
  v.insert(v.end(), once.begin(), once.end());
  return v;
}

struct Expected {
  uint64_t full, strided, bf16, tails;
};

// For each op f:
//   f(x), f(x[::3]) (gathered: strided), f(xb[keep]) with xb = x.to(torch.bfloat16) and keep the
//   inputs whose result is not NaN (torch's vectorised float -> bfloat16 cast writes NaN as
//   0xFFFF, fabric as 0x7FC0), and torch.cat([f(tail[:n]) for n in range(1, 41)]): FNV-1a of
//   their bytes.
template <typename Op, typename Ref>
void expect_torch_bits(const Op& op, const Ref& ref, const Expected& e) {
  const std::vector<float> values = probe_values();
  const auto n = static_cast<int64_t>(values.size());
  const Tensor x = from_vector<float>(values, {n});
  EXPECT_EQ(fnv1a(op(x)), e.full);
  EXPECT_EQ(fnv1a(op(x.slice(0, 0, n, 3))), e.strided);

  const Tensor xb = x.to(DType::bfloat16).to(DType::float32).contiguous();
  const auto* pb = static_cast<const float*>(xb.data_ptr());
  std::vector<float> kept;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(ref(static_cast<double>(pb[i])))) kept.push_back(pb[i]);
  const Tensor kb =
      from_vector<float>(kept, {static_cast<int64_t>(kept.size())}).to(DType::bfloat16);
  EXPECT_EQ(fnv1a(op(kb)), e.bf16) << kept.size() << " bfloat16 inputs";

  const Tensor tail = from_vector<float>(tail_values(), {40});
  uint64_t h = testing::kFnv1aStart;
  for (int64_t k = 1; k <= 40; ++k) h = fnv1a(op(tail.narrow(0, 0, k)), h);
  EXPECT_EQ(h, e.tails);
}

TEST(VecSleefUnary, TanhGivesTorchsBits) {
  expect_torch_bits([](const Tensor& t) { return tanh(t); }, [](double v) { return std::tanh(v); },
                    {0xf36bee864fc4d329ull, 0x19f79309c9325dc9ull, 0x777493e99f820715ull,
                     0x9994899014edc1edull});  // bfloat16: all 130000 kept
}

// sin / cos: SLEEF reduces an AVX2 vector of 8 by Cody-Waite only when all 8 are below 125 in
// magnitude (NaN counts as large), else all 8 by Payne-Hanek, so the tails (mixing both within
// vectors, cut at every length) check the 8-lane grouping as well.
TEST(VecSleefUnary, SinGivesTorchsBits) {
  expect_torch_bits([](const Tensor& t) { return sin(t); }, [](double v) { return std::sin(v); },
                    {0xfc01303918116ee6ull, 0xf314e492abd29987ull, 0x44c5d7581c1b9ce8ull,
                     0x5be416c5f551b9cdull});  // bfloat16: 129999 kept (max float rounds to inf)
}

TEST(VecSleefUnary, CosGivesTorchsBits) {
  expect_torch_bits([](const Tensor& t) { return cos(t); }, [](double v) { return std::cos(v); },
                    {0x9b936d2ee63baef9ull, 0xa1ac681f948a7c9full, 0xc03cb1396f2b18dcull,
                     0x30b0d19e014aa375ull});  // bfloat16: 129999 kept
}

// A long row is cut into parallel chunks; torch's 8-lane vectors start at multiples of 8 from the
// row's start all the same. 7.3595171 (0x40eb812a) has different sin and cos bits in an all-small
// vector and in one with a large lane; 65544 elements make two chunks (a plain n * c / chunks cut
// falls at 32772, inside the vector 32768..32775 whose first lane is 1e6).
//   y = torch.full((65544,), 7.3595171); y[32768] = 1e6
//   FNV-1a of torch.sin(y): 0x1b20575ea238cac3, of torch.cos(y): 0xaf889343fc4fa356
TEST(VecSleefUnary, SinCosKeepTorchsVectorsAcrossChunks) {
  std::vector<float> v(65544, std::bit_cast<float>(0x40eb812au));
  v[32768] = 1e6f;
  const Tensor y = from_vector<float>(v, {65544});
  EXPECT_EQ(fnv1a(sin(y)), 0x1b20575ea238cac3ull);
  EXPECT_EQ(fnv1a(cos(y)), 0xaf889343fc4fa356ull);
}

TEST(VecSleefUnary, Expm1GivesTorchsBits) {
  expect_torch_bits([](const Tensor& t) { return expm1(t); },
                    [](double v) { return std::expm1(v); },
                    {0xd1496871001eed54ull, 0x8871b669e9249299ull, 0xa232419a6a4dd75aull,
                     0x2d971ee533efbb55ull});  // bfloat16: 130000 kept
}

TEST(VecSleefUnary, Log1pGivesTorchsBits) {
  expect_torch_bits([](const Tensor& t) { return log1p(t); },
                    [](double v) { return std::log1p(v); },
                    {0x07a36de373d2a6c2ull, 0x851ffc5f5082799eull, 0x64fa1e17e84b171eull,
                     0x4bc3566734034d55ull});  // bfloat16: 97786 kept (not below -1)
}

// torch 1.13's Vectorized<float>::erf is Sleef_erff8_u10 in this build (not a polynomial of its
// own): torch.erf equals libsleef's erff on every non-NaN float sampled.
TEST(VecSleefUnary, ErfGivesTorchsBits) {
  expect_torch_bits([](const Tensor& t) { return erf(t); }, [](double v) { return std::erf(v); },
                    {0x99f30b62656024f9ull, 0x578fa59b0b3ffe6aull, 0xc82d27f6c8786715ull,
                     0x383edad4e5bde785ull});  // bfloat16: 130000 kept
}

}  // namespace
}  // namespace fabric
