// Index writes against torch 1.13 (CPU, /usr/bin/python3): index_add's alpha rounding (fused for a
// self of 2+ dims, two roundings for 0-/1-D), scatter_reduce's exact integer mean, a 0-D self
// with a multi-element index, and the op named when a fill value does not fit the dtype.
// Expected bits are torch's outputs for the inputs given as bits.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

Tensor f32(const std::vector<uint32_t>& bits, Shape shape) {
  std::vector<float> v;
  for (uint32_t b : bits) v.push_back(std::bit_cast<float>(b));
  return from_vector(v, std::move(shape));
}

Tensor f64(const std::vector<uint64_t>& bits, Shape shape) {
  std::vector<double> v;
  for (uint64_t b : bits) v.push_back(std::bit_cast<double>(b));
  return from_vector(v, std::move(shape));
}

std::vector<uint32_t> bits32(const Tensor& t) {
  std::vector<uint32_t> out;
  for (float x : t.to_vector<float>()) out.push_back(std::bit_cast<uint32_t>(x));
  return out;
}

std::vector<uint64_t> bits64(const Tensor& t) {
  std::vector<uint64_t> out;
  for (double x : t.to_vector<double>()) out.push_back(std::bit_cast<uint64_t>(x));
  return out;
}

Tensor idx(const std::vector<int64_t>& v) {
  return from_vector(v, {static_cast<int64_t>(v.size())});
}

// self (3, 5), source (3, 4) along dim 1 at [4, 0, 4, 2] (a repeat), alpha 0.7.
struct Fused2d {
  Tensor self32 = f32({0xbe165174, 0x3f49408e, 0x3f7262e7, 0xbf8ea2d3, 0x3fd86bd0, 0xbf651371,
                       0xbeb6147c, 0x3f9dbed1, 0x3e0d7d22, 0xbfd75248, 0x3ea2a6bb, 0x3e07fe8d,
                       0x3e0c9eb0, 0x3e7651b9, 0x3fb29e22},
                      {3, 5});
  Tensor src32 = f32({0x3fac6b3d, 0x401c0b9a, 0x3e4f9fde, 0x401cd5ab, 0x4001a376, 0x3fe3bb5a,
                      0xbf6afd82, 0xbeea673d, 0xbf397715, 0x3fa3d30c, 0xbf7e7b20, 0x3fe85107},
                     {3, 4});
  std::vector<uint32_t> out32 = {0x3fc7ac76, 0x3f49408e, 0x402a617e, 0xbf8ea2d3, 0x4031a409,
                                 0x3eb37f4c, 0xbeb6147c, 0x3f69731a, 0x3e0d7d22, 0xbf6825ee,
                                 0x3f9b5704, 0x3e07fe8d, 0x3fb432f4, 0x3e7651b9, 0x3e4517b2};
  Tensor self64 = f64(
      {0xbfed84715e3e9984ULL, 0xbffe4e4c7f9b41bcULL, 0x3ff0171957c3071fULL, 0xbfe63c2fcdb643caULL,
       0x3fecffd24bfe9ca4ULL, 0x3fbb742d21981404ULL, 0x3fe399bc5e50492eULL, 0x3fd518e9233689f1ULL,
       0xbfec0a7ba6b9e825ULL, 0xbffad445f0594ac2ULL, 0xbfe730a36de0484aULL, 0x3feed41fe6d4f789ULL,
       0x3fc12ec6ebb6829aULL, 0x3fe18db4b7a1090dULL, 0x4001142e0e2b3945ULL},
      {3, 5});
  Tensor src64 = f64(
      {0xbfec19f96b3cfe0aULL, 0xc000a934eca39175ULL, 0x3ffd4ea8d970bef3ULL, 0xbfe1b6a9f9eff535ULL,
       0x3ff0a1b58190f63fULL, 0xbff42957a0cb77fbULL, 0x3fda9889a9d7adc9ULL, 0xbff4d98c8809a30fULL,
       0x3fdbd707739aacfcULL, 0xbff2659c6e5c227fULL, 0xbfea145b3a2d5330ULL, 0xbfed2d6776975d42ULL},
      {3, 4});
  std::vector<uint64_t> out64 = {
      0xc0030ac1639bbf66ULL, 0xbffe4e4c7f9b41bcULL, 0x3fe3c7eee6f7af66ULL, 0xbfe63c2fcdb643caULL,
      0x3ff92de1a578e179ULL, 0xbfe8cb5b701d0bdeULL, 0x3fe399bc5e50492eULL, 0xbfe2a41cf9a56c1cULL,
      0xbfec0a7ba6b9e825ULL, 0xbfe510c3fca8f326ULL, 0xbff8790c0430a2b1ULL, 0x3feed41fe6d4f789ULL,
      0xbfe020e37e7c53d4ULL, 0x3fe18db4b7a1090dULL, 0x3ffde6dd7c34da19ULL};
  Tensor index = idx({4, 0, 4, 2});
};

TEST(IndexWriteFixes, IndexAddAlphaRoundsOnceFor2dSelf) {
  // The audit's repro: fabric's two roundings gave -0.118933797.
  const Tensor s = full({1, 8}, 0.26543229818344116f), src = full({1, 8}, -0.5490944385528564f);
  for (float v : index_add(s, 0, idx({0}), src, 0.7).to_vector<float>())
    EXPECT_EQ(std::bit_cast<uint32_t>(v), std::bit_cast<uint32_t>(-0.118933804f));
  const Fused2d c;
  EXPECT_EQ(bits32(index_add(c.self32, 1, c.index, c.src32, 0.7)), c.out32);
  EXPECT_EQ(bits64(index_add(c.self64, 1, c.index, c.src64, 0.7)), c.out64);
  // The same bits with int32 indices and when a graph is recorded.
  EXPECT_EQ(bits32(index_add(c.self32, 1, c.index.to(DType::int32), c.src32, 0.7)), c.out32);
  const Tensor leaf = c.src32.detach().set_requires_grad(true);
  const Tensor out = index_add(c.self32, 1, c.index, leaf, 0.7);
  EXPECT_EQ(bits32(out), c.out32);
  // torch: source's gradient is alpha * grad at the rows it went to (0.7f everywhere here).
  sum(out).backward();
  for (float g : leaf.grad().to_vector<float>())
    EXPECT_EQ(std::bit_cast<uint32_t>(g), std::bit_cast<uint32_t>(0.7f));
}

TEST(IndexWriteFixes, IndexAddAlphaRoundsTwiceFor1dSelf) {
  // torch's element loop: self += src * alpha (6 of these 12 float32 differ from one rounding).
  const Tensor s32 = f32({0x3f3cd549, 0x3ff91435, 0xbf331529, 0xbfa6b1ae, 0xbf036527, 0xbe8a0b93,
                          0x3e7c17d5, 0x3ef7c50e, 0x3ee69d29, 0xbf74f309, 0x3fc026ed, 0xbea08cba},
                         {12});
  const Tensor src32 = f32({0xbe6fe83f, 0xbf8920a9, 0x3e28c0ec, 0x3decdc43, 0x3ec44ddb, 0xbdfcc175,
                            0x3f6493e2, 0xbefa658e, 0xbfb937fa, 0x3f98d745, 0x3f0bd672, 0xc004cd0d},
                           {12});
  const std::vector<uint32_t> out32 = {0x3f12d971, 0x3f9916f2, 0xbf158d00, 0xbf9c54d8,
                                       0xbe7ac136, 0xbeb64708, 0x3f5f0713, 0x3e10fbf0,
                                       0xbf0fffca, 0xbdf7c6e0, 0x3ff11862, 0xbfe20f0e};
  const Tensor all = arange(0, 12);
  EXPECT_EQ(bits32(index_add(s32, 0, all, src32, 0.7)), out32);
  const Tensor s64 = f64(
      {0xbfef02f9a4aca7b1ULL, 0xc001155d22135df7ULL, 0xbff0b08265d5fab2ULL, 0xbffb51465e6ccb39ULL,
       0x3ff63bb41b7043cfULL, 0x3fc61e8c4c2e9f96ULL, 0xbfef78dd6e1afdadULL, 0xbff17fd63fa56384ULL,
       0x3fc0df9f3f101d15ULL, 0x3fc8de1c044b68cfULL, 0xbfd5b2113e81518eULL, 0x3ffa8ced5f243ddcULL},
      {12});
  const Tensor src64 = f64(
      {0xbfcedc32ec3cf631ULL, 0xbfebd6fff6755b2eULL, 0xbfa3b8655725de13ULL, 0x3fdd5714db312766ULL,
       0xbff782680f2d6743ULL, 0x3fe630db08628f2bULL, 0xbfd38eb300a98c89ULL, 0x3fc9fa4356d42f80ULL,
       0x3fe6065bffad5f31ULL, 0x3febdefdb2a7eaf8ULL, 0x3fe151fcdf7f9ba6ULL, 0x3fe1c87375f5055cULL},
      {12});
  const std::vector<uint64_t> out64 = {
      0xbff234c147020fcaULL, 0xc005f496ba01811fULL, 0xbff11ef16a24685aULL, 0xbff62ed5eb443121ULL,
      0x3fd71b46a9a85480ULL, 0x3fe5103c65b70c1dULL, 0xbff3289ad72b2aa2ULL, 0xbfee73e0b67f3eb8ULL,
      0x3fe3a2c1cf8a304eULL, 0x3fe9ba0564886514ULL, 0x3fa46c1fd32442d0ULL, 0x400063247dd03311ULL};
  EXPECT_EQ(bits64(index_add(s64, 0, all, src64, 0.7)), out64);
}

TEST(IndexWriteFixes, IndexAddAlphaRoundsOnceOnCuda) {
  FABRIC_REQUIRE_CUDA();
  const Fused2d c;
  const Device gpu = Device::cuda(0);
  EXPECT_EQ(bits32(index_add(c.self32.to(gpu), 1, c.index.to(gpu), c.src32.to(gpu), 0.7)), c.out32);
  EXPECT_EQ(bits64(index_add(c.self64.to(gpu), 1, c.index.to(gpu), c.src64.to(gpu), 0.7)), c.out64);
}

TEST(IndexWriteFixes, ScatterReduceIntegerMeanIsExact) {
  constexpr int64_t b = int64_t{1} << 60;
  const Tensor self = from_vector<int64_t>({b + 1, 7}, {2});
  const Tensor src = from_vector<int64_t>({b + 3}, {1});
  // torch: (2^60 + 1 + 2^60 + 3) // 2 = 2^60 + 2; through float64 it was 2^60 + 1 or + 3.
  EXPECT_EQ(scatter_reduce(self, 0, idx({0}), src, "mean", true).to_vector<int64_t>(),
            (std::vector<int64_t>{b + 2, 7}));
  // Floor rounding below zero, in the narrow dtypes too: (-7 + 2) // 2 = -3, (5 + 0 + 0) // 3 = 1.
  for (DType t : {DType::int64, DType::int32, DType::int8}) {
    const Tensor s = from_vector<int64_t>({-7, 5}, {2}).to(t);
    const Tensor v = from_vector<int64_t>({2, 0, 0}, {3}).to(t);
    EXPECT_EQ(scatter_reduce(s, 0, idx({0, 1, 1}), v, "mean", true).to_vector<int64_t>(),
              (std::vector<int64_t>{-3, 1}))
        << dtype_name(t);
  }
  // uint8 sums wrap as torch's: (200 + 101) mod 256 // 2 = 22; include_self false: 101 // 1.
  const Tensor u = from_vector<int64_t>({200, 9}, {2}).to(DType::uint8);
  const Tensor uv = from_vector<int64_t>({101}, {1}).to(DType::uint8);
  EXPECT_EQ(scatter_reduce(u, 0, idx({0}), uv, "mean", true).to_vector<int64_t>(),
            (std::vector<int64_t>{22, 9}));
  EXPECT_EQ(scatter_reduce(u, 0, idx({0}), uv, "mean", false).to_vector<int64_t>(),
            (std::vector<int64_t>{101, 9}));
}

TEST(IndexWriteFixes, ScatterReduceIntegerMeanOnCuda) {
  FABRIC_REQUIRE_CUDA();
  constexpr int64_t b = int64_t{1} << 60;
  const Device gpu = Device::cuda(0);
  const Tensor self = from_vector<int64_t>({b + 1, -7}, {2}).to(gpu);
  const Tensor src = from_vector<int64_t>({b + 3, 2}, {2}).to(gpu);
  const Tensor out = scatter_reduce(self, 0, idx({0, 1}).to(gpu), src, "mean", true);
  EXPECT_EQ(out.device(), gpu);
  EXPECT_EQ(out.to_vector<int64_t>(), (std::vector<int64_t>{b + 2, -3}));
}

TEST(IndexWriteFixes, ZeroDimSelfTakesAMultiElementIndex) {
  const Tensor five = full({}, 5.0f);
  // torch: every index writes the one element, in index order.
  EXPECT_EQ(index_fill(five, 0, idx({0, 0}), 3).item<float>(), 3.0f);
  EXPECT_EQ(index_fill(five, 0, idx({-1, 0}), 3).item<float>(), 3.0f);
  EXPECT_EQ(index_fill(five, -1, full({}, int64_t{0}), 3).item<float>(), 3.0f);
  const Tensor src = from_vector<float>({3, 4}, {2});
  EXPECT_EQ(index_add(five, 0, idx({0, 0}), src).item<float>(), 12.0f);
  EXPECT_EQ(index_add(five, 0, idx({0, 0}), src, 2).item<float>(), 19.0f);
  EXPECT_EQ(index_add(five, 0, idx({0, 0}).to(DType::int32), src).item<float>(), 12.0f);
  EXPECT_EQ(index_copy(five, 0, idx({0, 0}), src).item<float>(), 4.0f);
  // One-element index: a 0-D or (1,) source, as before.
  EXPECT_EQ(index_add(five, 0, idx({0}), full({}, 3.0f)).item<float>(), 8.0f);
  EXPECT_EQ(index_copy(five, 0, idx({0}), from_vector<float>({3}, {1})).item<float>(), 3.0f);
  // An empty index leaves self.
  EXPECT_EQ(index_add(five, 0, idx({}), from_vector<float>({}, {0})).item<float>(), 5.0f);
  EXPECT_EQ(index_fill(five, 0, idx({}), 3).item<float>(), 5.0f);
}

TEST(IndexWriteFixes, ZeroDimSelfGradients) {
  // torch: index_add passes self's gradient and gives source alpha * grad; index_copy and
  // index_fill zero self's (overwritten) gradient, index_copy's source gets grad at each row.
  Tensor a = full({}, 5.0f).set_requires_grad(true);
  Tensor s = from_vector<float>({3, 4}, {2}).set_requires_grad(true);
  index_add(a, 0, idx({0, 0}), s, 2).backward();
  EXPECT_EQ(a.grad().item<float>(), 1.0f);
  EXPECT_EQ(s.grad().to_vector<float>(), (std::vector<float>{2, 2}));
  a = full({}, 5.0f).set_requires_grad(true);
  s = from_vector<float>({3, 4}, {2}).set_requires_grad(true);
  index_copy(a, 0, idx({0, 0}), s).backward();
  EXPECT_EQ(a.grad().item<float>(), 0.0f);
  EXPECT_EQ(s.grad().to_vector<float>(), (std::vector<float>{1, 1}));
  a = full({}, 5.0f).set_requires_grad(true);
  index_fill(a, 0, idx({0, 0}), 3).backward();
  EXPECT_EQ(a.grad().item<float>(), 0.0f);
}

TEST(IndexWriteFixes, ZeroDimSelfRefusesWhatTorchRefuses) {
  const Tensor five = full({}, 5.0f);
  const Tensor src2 = from_vector<float>({3, 4}, {2});
  // torch: IndexError for an index other than 0 (or -1 where index_fill wraps it).
  thrown<IndexError>([&] { index_fill(five, 0, idx({0, 1}), 3); });
  thrown<IndexError>([&] { index_fill(five, 0, idx({-2}), 3); });
  thrown<IndexError>([&] { index_add(five, 0, idx({0, 1}), src2); });
  thrown<IndexError>([&] { index_add(five, 0, idx({0, -1}), src2); });
  thrown<IndexError>([&] { index_copy(five, 0, idx({0, 1}), src2); });
  thrown<IndexError>([&] { index_copy(five, 0, idx({0, -1}), src2); });
  // torch: the source must be 1-D of the index's length (0-D only for one index).
  for (const Tensor& bad : {from_vector<float>({3, 4, 5}, {3}), from_vector<float>({3, 4}, {1, 2}),
                            from_vector<float>({3, 4}, {2, 1}), full({}, 3.0f)}) {
    SCOPED_TRACE(shape_str(bad.sizes()));
    thrown<ShapeError>([&] { index_add(five, 0, idx({0, 0}), bad); });
    thrown<ShapeError>([&] { index_copy(five, 0, idx({0, 0}), bad); });
  }
  thrown<ShapeError>([&] { index_add(five, 0, idx({0}), src2); });
}

TEST(IndexWriteFixes, FillValueOverflowNamesTheOp) {
  // torch: "value cannot be converted to type int8_t without overflow" (RuntimeError).
  const Tensor i8 = zeros({3}, {.dtype = DType::int8});
  const Tensor f16 = zeros({3}, {.dtype = DType::float16});
  const Tensor at0 = idx({0});
  EXPECT_CONTAINS(thrown<ValueError>([&] { index_fill(i8, 0, at0, 300); }),
                  "index_fill: value 300 cannot be converted to type int8");
  EXPECT_CONTAINS(thrown<ValueError>([&] { index_fill(f16, 0, at0, 1e6); }),
                  "index_fill: value 1000000 cannot be converted to type float16");
  EXPECT_CONTAINS(thrown<ValueError>([&] { scatter(i8, 0, at0, Scalar(300)); }),
                  "scatter: value 300 cannot be converted to type int8");
  EXPECT_CONTAINS(thrown<ValueError>([&] { scatter(f16, 0, at0, Scalar(1e6)); }),
                  "scatter: value 1000000 cannot be converted to type float16");
}

}  // namespace
}  // namespace fabric
