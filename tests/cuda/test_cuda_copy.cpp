// CUDA copies, conversions and fills against the CPU kernels: every dtype round trips bit for
// bit, every dtype pair converts as on the CPU (fp8 saturating and not), fills of every dtype,
// strided sources and destinations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "tensor/copy_kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;

constexpr DType kAllDTypes[] = {DType::float64,  DType::float32,       DType::float16,
                                DType::bfloat16, DType::float8_e4m3fn, DType::float8_e5m2,
                                DType::int64,    DType::int32,         DType::int8,
                                DType::uint8,    DType::bool_};

std::vector<uint8_t> bytes_of(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();
  std::vector<uint8_t> b(static_cast<size_t>(c.nbytes()));
  if (!b.empty()) std::memcpy(b.data(), c.data_ptr(), b.size());
  return b;
}

TEST(CudaCopy, EveryDTypeRoundTripsBitForBit) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kAllDTypes) {
    const Tensor h = test::awkward_tensor({7, 13}, dt);
    const Tensor d = h.to(kGpu);
    EXPECT_EQ(d.device(), kGpu);
    EXPECT_EQ(d.dtype(), dt);
    EXPECT_EQ(bytes_of(d), bytes_of(h)) << dtype_name(dt);
    // A 0-dim tensor and an empty one.
    const Tensor s = scalar_tensor(3, {.dtype = dt}).to(kGpu);
    EXPECT_EQ(bytes_of(s), bytes_of(scalar_tensor(3, {.dtype = dt}))) << dtype_name(dt);
    EXPECT_EQ(empty({0, 4}, {.dtype = dt}).to(kGpu).to(Device::cpu()).numel(), 0);
  }
}

// The CPU's conversion is the spec: NaN, infinities, overflow to fp8/fp16, out-of-range floats to
// integers (INT_MIN as on x86), wrapping integers, anything to bool.
TEST(CudaCopy, EveryDTypePairConvertsAsOnTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType from : kAllDTypes) {
    const Tensor h = test::awkward_tensor({301}, from);
    const Tensor d = h.to(kGpu);
    for (DType to : kAllDTypes) {
      const std::string what = std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to));
      const Tensor got = d.to(to);
      EXPECT_EQ(got.device(), kGpu) << what;
      test::expect_matches(h.to(to), got, {}, what);
    }
  }
  // Integers beyond float's awkward values: wrap-around between integer widths.
  const Tensor big = test::random_ints({500}, DType::int64, INT64_MIN / 2, INT64_MAX / 2);
  for (DType to : kAllDTypes)
    test::expect_matches(big.to(to), big.to(kGpu).to(to), {}, "int64 -> any");
}

TEST(CudaCopy, StridedSourcesAndDestinationsConvert) {
  FABRIC_REQUIRE_CUDA();
  const Tensor h = test::awkward_tensor({19, 23}, DType::float32);
  const Tensor d = h.to(kGpu);
  for (DType to :
       {DType::bfloat16, DType::float16, DType::int32, DType::float8_e4m3fn, DType::float64}) {
    test::expect_matches(h.t().to(to), d.t().to(to), {}, "transposed source");
    test::expect_matches(h.slice(1, 1, 23, 3).to(to), d.slice(1, 1, 23, 3).to(to), {},
                         "sliced source");
    // Into a strided destination of another dtype.
    Tensor hd = zeros({23, 19}, {.dtype = to});
    Tensor dd = zeros({23, 19}, {.dtype = to, .device = kGpu});
    hd.t().copy_(h);
    dd.t().copy_(d);
    test::expect_matches(hd, dd, {}, "strided destination");
  }
  // Broadcast source: one row copied into every row.
  Tensor hb = zeros({5, 23}, {.dtype = DType::bfloat16});
  Tensor db = zeros({5, 23}, {.dtype = DType::bfloat16, .device = kGpu});
  hb.copy_(h[3]);
  db.copy_(d[3]);
  test::expect_matches(hb, db, {}, "broadcast source");
}

// The wide paths of copy_kernels.cu: dense float32 <-> bfloat16/float16 four elements a thread
// (aligned starts; a remainder and unaligned starts one element a thread), and same-dtype copies
// in 16-byte pieces when the innermost run allows (the attention heads' permutations); both give
// the CPU's bits, and what they cannot take falls back.
TEST(CudaCopy, WidePathsMatchTheCpu) {
  FABRIC_REQUIRE_CUDA();
  const Tensor h = test::awkward_tensor({1027}, DType::float32, 13);
  const Tensor d = h.to(kGpu);
  for (int64_t off = 0; off < 4; ++off) {
    const Tensor hs = h.slice(0, off, 1027), ds = d.slice(0, off, 1027);
    for (DType to : {DType::bfloat16, DType::float16}) {
      const std::string what = std::string("float32 -> ") + std::string(dtype_name(to)) +
                               " from element " + std::to_string(off);
      const Tensor narrow = ds.to(to);
      test::expect_matches(hs.to(to), narrow, {}, what);
      test::expect_matches(hs.to(to).to(DType::float32), narrow.to(DType::float32), {},
                           what + " and back");
    }
  }
  for (int64_t hs : {int64_t{64}, int64_t{3}}) {
    const Tensor x = test::awkward_tensor({2, 5, 4, hs}, DType::bfloat16, 17);
    const Tensor xd = x.to(kGpu);
    const std::string what = "(B, T, nh, " + std::to_string(hs) + ") -> (B, nh, T, hs)";
    test::expect_matches(x.transpose(1, 2).contiguous(), xd.transpose(1, 2).contiguous(), {}, what);
    Tensor hd = zeros({2, 4, 5, hs}, {.dtype = DType::bfloat16});
    Tensor dd = zeros({2, 4, 5, hs}, {.dtype = DType::bfloat16, .device = kGpu});
    hd.transpose(1, 2).copy_(x);
    dd.transpose(1, 2).copy_(xd);
    test::expect_matches(hd, dd, {}, what + " into a strided destination");
  }
  // 128-byte runs starting 2 bytes past an aligned address: no 16-byte pieces.
  const Tensor w = test::awkward_tensor({2, 5, 4, 72}, DType::bfloat16, 19);
  const Tensor wd = w.to(kGpu);
  test::expect_matches(w.slice(3, 1, 65).transpose(1, 2).contiguous(),
                       wd.slice(3, 1, 65).transpose(1, 2).contiguous(), {}, "unaligned runs");
}

TEST(CudaCopy, Fp8SaturatingCastMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (DType from : {DType::float32, DType::bfloat16, DType::float16, DType::float64}) {
    const Tensor h = test::awkward_tensor({257}, from);
    const Tensor d = h.to(kGpu);
    for (DType to : {DType::float8_e4m3fn, DType::float8_e5m2}) {
      for (bool saturate : {false, true}) {
        Tensor want = empty(h.sizes(), {.dtype = to});
        Tensor got = empty(h.sizes(), {.dtype = to, .device = kGpu});
        StridedLoop lw = make_strided_loop("test", want, {&h});
        StridedLoop lg = make_strided_loop("test", got, {&d});
        copy_stub(Device::cpu())(lw, saturate);
        copy_stub(kGpu)(lg, saturate);
        EXPECT_EQ(bytes_of(got), bytes_of(want))
            << dtype_name(from) << " -> " << dtype_name(to) << (saturate ? " saturating" : "");
      }
    }
  }
  // The spec's values: 500 saturates to 448 in E4M3 and is NaN without saturation.
  const Tensor v = from_vector<float>({500.0f, -1e6f, 70000.0f}, {3}).to(kGpu);
  Tensor sat = empty({3}, {.dtype = DType::float8_e4m3fn, .device = kGpu});
  StridedLoop l = make_strided_loop("test", sat, {&v});
  copy_stub(kGpu)(l, true);
  const std::vector<float> s = sat.to_vector<float>();
  EXPECT_EQ(s[0], 448.0f);
  EXPECT_EQ(s[1], -448.0f);
  EXPECT_TRUE(std::isnan(v.to(DType::float8_e4m3fn).to_vector<float>()[0]));
  EXPECT_TRUE(std::isinf(v.to(DType::float8_e5m2).to_vector<float>()[2]));
}

TEST(CudaFill, EveryDTypeAndValueMatchesTheCpu) {
  FABRIC_REQUIRE_CUDA();
  // 0 and -1 (all bytes equal) take the memset path; the others the kernel.
  const std::vector<Scalar> values = {Scalar(0),    Scalar(-1),      Scalar(1),
                                      Scalar(2.5),  Scalar(-300.75), Scalar(1e10),
                                      Scalar(true), Scalar(16843009)};
  for (DType dt : kAllDTypes) {
    for (const Scalar& v : values) {
      const std::string what = std::string("fill ") + std::string(dtype_name(dt)) + " with " +
                               std::to_string(v.to_double());
      // A value past the dtype's range (1e10 as float16) raises on both, as in PyTorch.
      test::expect_same_outcome(
          [&] {
            return full({3, 33}, v, {.dtype = dt});
          },
          [&] {
            return full({3, 33}, v, {.dtype = dt, .device = kGpu});
          },
          {}, what);
      test::expect_same_outcome([&] { return scalar_tensor(v, {.dtype = dt}); },
                                [&] { return scalar_tensor(v, {.dtype = dt, .device = kGpu}); }, {},
                                what + " (0-dim)");
    }
  }
}

TEST(CudaFill, StridedViewsAndLargeTensors) {
  FABRIC_REQUIRE_CUDA();
  Tensor h = zeros({6, 50}, {.dtype = DType::float16});
  Tensor d = zeros({6, 50}, {.dtype = DType::float16, .device = kGpu});
  h.slice(1, 1, 50, 3).fill_(5.5);
  d.slice(1, 1, 50, 3).fill_(5.5);
  h.t()[7].fill_(-2);
  d.t()[7].fill_(-2);
  test::expect_matches(h, d, {}, "fill of strided views");
  // More elements than one grid covers at once: the grid-stride loop reaches the end.
  const int64_t n = (int64_t{1} << 25) + 7;
  Tensor big = full({n}, 3.25, {.dtype = DType::float32, .device = kGpu});
  const std::vector<float> v = big.to_vector<float>();
  EXPECT_EQ(v.front(), 3.25f);
  EXPECT_EQ(v.back(), 3.25f);
  EXPECT_EQ(std::count(v.begin(), v.end(), 3.25f), n);
}

}  // namespace
}  // namespace fabric
