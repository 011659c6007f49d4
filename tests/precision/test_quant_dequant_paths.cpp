// The per-step dequantizations of quantized training (QLoRA's frozen 4-bit weights, LLM.int8's
// int8 weight in the backward) against straightforward scalar references, bit for bit, at 1 and 2
// OpenMP threads: the double-quantized (nested) absmax of a 4-bit state (code[q] · absmax2, then
// + offset, two roundings), dequantize_4bit of nested NF4/FP4 states to float32/float16/bfloat16,
// dequantize_blockwise_8bit, and int8_vectorwise_dequant. Sizes that are not a multiple of the
// block (or of 16 lanes), a single element, every 4-bit blocksize, and sizes large enough for the
// kernels to go parallel.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "precision/quant_4bit.h"
#include "precision/quant_int8.h"
#include "tensor/factory.h"
#include "tensor/quant_kernels.h"
#include "tests/common/omp_threads.h"

namespace fabric::precision {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kInv127 = static_cast<float>(7.874015718698502e-3);

// a · b rounded once to float: the product is exact in double, and the explicit rounding keeps
// the compiler from fusing it into a following add (-ffp-contract=fast).
float mulf(float a, float b) { return static_cast<float>(static_cast<double>(a) * b); }

float through(DType dt, float v) {
  if (dt == DType::float16) return static_cast<float>(Half(v));
  if (dt == DType::bfloat16) return static_cast<float>(BFloat16(v));
  return v;
}

// A tensor's elements as float (float32, float16 or bfloat16), exactly.
std::vector<float> as_floats(const Tensor& t) { return t.to(DType::float32).to_vector<float>(); }

// Bitwise equality of two float vectors (NaN == NaN, -0 != +0), naming the first difference.
::testing::AssertionResult same_bits(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << got.size() << " values, expected " << want.size();
  }
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], 4) != 0) {
      return ::testing::AssertionFailure()
             << "element " << i << ": " << got[i] << ", expected " << want[i];
    }
  }
  return ::testing::AssertionSuccess();
}

// The scalar reference of the nested absmax: f32(code[q[b]] · absmax2[b / bs2]), then + offset.
std::vector<float> ref_nested_absmax(const QuantState4bit& st) {
  const std::vector<uint8_t> q = st.absmax.to_vector<uint8_t>();
  const std::vector<float> a2 = st.nested_absmax.to_vector<float>();
  std::vector<float> code(dynamic_code_8bit().begin(), dynamic_code_8bit().end());
  if (st.nested_code.defined()) code = st.nested_code.to_vector<float>();
  std::vector<float> out(q.size());
  for (size_t b = 0; b < q.size(); ++b) {
    // volatile: g++ narrows mulf's double product back to a float multiply and would then fuse
    // it with the add into one fma (-ffp-contract=fast); the reference rounds twice.
    const volatile float centred = mulf(code[q[b]], a2[b / st.nested_blocksize]);
    out[b] = centred + st.nested_offset;
  }
  return out;
}

// The scalar reference of dequantize_4bit: code[nibble i] · absmax[i / bs] in fp32, rounded once
// to the state's dtype.
std::vector<float> ref_dequantize_4bit(const Tensor& packed, const QuantState4bit& st,
                                       const std::vector<float>& absmax) {
  const std::vector<uint8_t> p = packed.to_vector<uint8_t>();
  const auto& code = st.quant_type == "nf4" ? kNF4Code : kFP4Code;
  const int64_t n = st.numel();
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int nib = i % 2 == 0 ? p[i / 2] >> 4 : p[i / 2] & 0x0F;
    out[i] = through(st.dtype, mulf(code[nib], absmax[i / st.blocksize]));
  }
  return out;
}

// Random values with a spread of magnitudes (so that blocks' absmax differ), an all-zero block.
Tensor random_input(int64_t n, DType dt, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale(-6.0f, 3.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng) * std::exp2(scale(rng));
  for (int64_t i = 0; i < std::min<int64_t>(n, 32); ++i) v[i] = 0.0f;
  return from_vector(v, {n}).to(dt);
}

TEST(QuantDequantPaths, Nested4bitMatchesScalarReference) {
  const std::vector<int64_t> blocksizes = {32, 64, 128, 256, 4096};
  for (const char* qt : {"nf4", "fp4"}) {
    for (int64_t bs : blocksizes) {
      // One element, odd counts inside one block, several nested blocks with a partial last one,
      // and (bs 32) enough blocks for the nested kernel and the 4-bit kernel to go parallel.
      std::vector<int64_t> sizes = {1, 31, bs * 256 + 17, bs * 3 * 256 - 5};
      if (bs == 32) sizes.push_back(32 * 70000 + 9);
      for (int64_t n : sizes) {
        for (DType dt : {DType::float32, DType::float16, DType::bfloat16}) {
          SCOPED_TRACE(::testing::Message() << qt << " bs " << bs << " n " << n << " "
                                            << dtype_name(dt));
          const Quantized4bit q = quantize_4bit(random_input(n, dt, uint32_t(n + bs)), bs, qt, true);
          ASSERT_TRUE(q.state.nested);
          const std::vector<float> absmax = ref_nested_absmax(q.state);
          const std::vector<float> want = ref_dequantize_4bit(q.packed, q.state, absmax);
          for (int threads : {1, 2}) {
            OmpThreads omp(threads);
            EXPECT_TRUE(same_bits(absmax_of(q.state).to_vector<float>(), absmax)) << threads;
            const Tensor got = dequantize_4bit(q.packed, q.state);
            EXPECT_EQ(got.dtype(), dt);
            EXPECT_EQ(got.sizes(), Shape({n}));
            EXPECT_TRUE(same_bits(as_floats(got), want)) << threads << " thread(s)";
          }
        }
      }
    }
  }
}

// A nested state with a checkpoint's own code table, an offset and centred statistics where
// fusing the product and the add into one fma would round differently (random values: most do).
TEST(QuantDequantPaths, NestedAbsmaxRoundsProductThenOffset) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int64_t nblocks : {int64_t{1}, int64_t{255}, int64_t{257}, int64_t{70001}}) {
    QuantState4bit st;
    st.quant_type = "nf4";
    st.blocksize = 64;
    st.dtype = DType::float32;
    st.shape = {nblocks * 64 - 3};
    st.nested = true;
    st.nested_blocksize = 256;
    std::vector<uint8_t> q(static_cast<size_t>(nblocks));
    for (auto& c : q) c = static_cast<uint8_t>(byte(rng));
    std::vector<float> a2(static_cast<size_t>((nblocks + 255) / 256));
    for (auto& a : a2) a = std::fabs(u(rng)) * 0.37f;
    a2[0] = 0.0f;  // an all-zero nested block: every centred value is ±0 (code 0.0 keeps +0)
    std::vector<float> code(256);
    for (auto& c : code) c = u(rng);
    code[0] = -0.0f;
    st.absmax = from_vector(q, {nblocks});
    st.nested_absmax = from_vector(a2, {int64_t(a2.size())});
    st.nested_code = from_vector(code, {256});
    st.nested_offset = 0.1234567f;
    const std::vector<float> want = ref_nested_absmax(st);
    for (int threads : {1, 2}) {
      OmpThreads omp(threads);
      EXPECT_TRUE(same_bits(absmax_of(st).to_vector<float>(), want))
          << nblocks << " blocks, " << threads << " thread(s)";
    }
  }
}

TEST(QuantDequantPaths, Blockwise8bitMatchesScalarReference) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  const auto& code = dynamic_code_8bit();
  for (int64_t bs : {1, 7, 16, 256, 4096}) {
    for (int64_t n : {int64_t{1}, int64_t{15}, int64_t{4097}, int64_t{200003}}) {
      std::vector<uint8_t> q(static_cast<size_t>(n));
      for (auto& c : q) c = static_cast<uint8_t>(byte(rng));
      std::vector<float> a((n + bs - 1) / bs);
      for (auto& v : a) v = u(rng);
      a[a.size() / 2] = kInf;
      if (a.size() > 2) a[1] = kNaN;
      std::vector<float> want(q.size());
      for (int64_t i = 0; i < n; ++i) want[i] = mulf(code[q[i]], a[i / bs]);
      const Tensor codes = from_vector(q, {n, 1});
      const Tensor absmax = from_vector(a, {int64_t(a.size())});
      for (int threads : {1, 2}) {
        OmpThreads omp(threads);
        const Tensor got = dequantize_blockwise_8bit(codes, absmax, bs);
        EXPECT_EQ(got.sizes(), Shape({n, 1}));
        EXPECT_TRUE(same_bits(got.to_vector<float>(), want))
            << "bs " << bs << " n " << n << ", " << threads << " thread(s)";
      }
    }
  }
}

TEST(QuantDequantPaths, Int8VectorwiseDequantMatchesScalarReference) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> i8(-128, 127);
  std::uniform_real_distribution<float> u(0.0f, 9.0f);
  const std::vector<Shape> shapes = {{1}, {1, 1}, {3, 17}, {5, 16}, {2, 3, 33},
                                     {1000, 33}, {300, 1000}, {70001, 1}, {1, 70001}};
  for (const Shape& shape : shapes) {
    const int64_t K = shape.back(), n = numel_of(shape), rows = n / K;
    std::vector<int8_t> q(static_cast<size_t>(n));
    for (auto& v : q) v = static_cast<int8_t>(i8(rng));
    q[0] = -128;
    std::vector<float> s(static_cast<size_t>(rows));
    for (auto& v : s) v = u(rng);
    if (rows > 3) {
      s[1] = 0.0f;
      s[2] = kInf;
      s[3] = 1e-40f;  // subnormal
    }
    std::vector<float> want(q.size());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t k = 0; k < K; ++k)  // bitsandbytes' A * stats * 1/127, left to right
        want[r * K + k] = mulf(mulf(static_cast<float>(q[r * K + k]), s[r]), kInv127);
    }
    const Tensor CA = from_vector(q, shape);
    const Tensor SCA = from_vector(s, {rows});
    for (int threads : {1, 2}) {
      OmpThreads omp(threads);
      const Tensor got = int8_vectorwise_dequant(CA, SCA);
      EXPECT_EQ(got.sizes(), shape);
      EXPECT_EQ(got.dtype(), DType::float32);
      EXPECT_TRUE(same_bits(got.to_vector<float>(), want))
          << shape_str(shape) << ", " << threads << " thread(s)";
    }
  }
}

TEST(QuantDequantPaths, Int8VectorwiseDequantEmptyRows) {
  const Tensor got = int8_vectorwise_dequant(zeros({4, 0}, {.dtype = DType::int8}),
                                             zeros({7}, {.dtype = DType::float32}));
  EXPECT_EQ(got.sizes(), Shape({4, 0}));
  EXPECT_EQ(got.dtype(), DType::float32);
  const Tensor none = int8_vectorwise_dequant(zeros({0, 5}, {.dtype = DType::int8}),
                                              zeros({0}, {.dtype = DType::float32}));
  EXPECT_EQ(none.sizes(), Shape({0, 5}));
}

}  // namespace
}  // namespace fabric::precision
