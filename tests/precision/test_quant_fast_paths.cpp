// The vectorised LLM.int8 and double-quantization kernels against straightforward scalar
// references (the scalar loops they replaced), bit for bit, at 1 and 2 OpenMP threads: odd
// shapes (K not a multiple of 16, one row, 3-D inputs), outlier columns, threshold 0, float32 /
// float16 / bfloat16 inputs, NaN, inf, all-zero rows and ties.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "precision/quant_4bit.h"
#include "precision/quant_int8.h"
#include "precision/torch_cpu_mean.h"
#include "tensor/factory.h"
#include "tests/common/omp_threads.h"

namespace fabric::precision {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kInv127 = static_cast<float>(7.874015718698502e-3);
constexpr float kInv127Sq = static_cast<float>(1.0 / (127.0 * 127.0));

// x rounded through dtype (the values the kernels see).
float through(DType dt, float v) {
  if (dt == DType::float16) return static_cast<float>(Half(v));
  if (dt == DType::bfloat16) return static_cast<float>(BFloat16(v));
  return v;
}

// a · b rounded once to float: the product is exact in double, and the explicit rounding keeps
// the compiler from fusing it into a following add (-ffp-contract=fast).
float mulf(float a, float b) { return static_cast<float>(static_cast<double>(a) * b); }

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

struct RefRowQuant {
  std::vector<int8_t> q;
  std::vector<float> stats;
  std::vector<int64_t> cols;
};

// bitsandbytes' row-wise quantizer (spec §7), one element at a time.
RefRowQuant ref_row_quant(const std::vector<float>& a, int64_t rows, int64_t K, float thr) {
  RefRowQuant r{std::vector<int8_t>(a.size()), std::vector<float>(rows), {}};
  std::vector<bool> outlier_col(K, false);
  for (int64_t i = 0; i < rows; ++i) {
    const float* x = &a[i * K];
    float m = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float v = std::fabs(x[k]);
      if (thr > 0.0f && v >= thr) {
        outlier_col[k] = true;
      } else if (v > m) {  // a NaN is never a maximum
        m = v;
      }
    }
    r.stats[i] = m;
    const float s = 127.0f / m;
    for (int64_t k = 0; k < K; ++k) {
      float y = (thr > 0.0f && std::fabs(x[k]) >= thr) ? 0.0f : x[k] * s;
      if (m == 0.0f || std::isnan(y)) y = 0.0f;
      y = std::min(127.0f, std::max(-127.0f, y));
      r.q[i * K + k] = static_cast<int8_t>(std::nearbyint(y));
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    if (outlier_col[k]) r.cols.push_back(k);
  }
  if (rows > 1) {
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t c : r.cols) r.q[i * K + c] = 0;
    }
  }
  return r;
}

// Random N(0, 1) values with, where asked, outliers in a few columns, NaN, ±inf, an all-zero row,
// ties (values that scale to k + 0.5) and subnormals.
std::vector<float> make_input(int64_t rows, int64_t K, uint32_t seed, bool specials) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(rows * K));
  for (float& v : a) v = nd(rng);
  if (specials && K >= 5) {
    for (int64_t r = 0; r < rows; r += 3) a[r * K + (r % K)] = (r % 2 ? 7.5f : -11.0f);
    a[K - 1] = 1e4f;  // an outlier in the last (tail) column of row 0
    if (rows > 2) {
      a[1 * K + 2] = kNaN;
      std::fill(a.begin() + 2 * K, a.begin() + 3 * K, 0.0f);  // an all-zero row
    }
    if (rows > 4) {
      // Row 3: absmax 2 (scale 63.5), so 1/127 · k scales to k/2: ties for odd k.
      for (int64_t k = 0; k < K; ++k) a[3 * K + k] = static_cast<float>(k % 9) / 127.0f;
      a[3 * K] = 2.0f;
      a[4 * K + 1] = -kInf;
      a[4 * K + 3] = 1e-41f;
    }
    // Exactly at the thresholds the tests use (|a| >= threshold is an outlier).
    a[(rows - 1) * K + 4] = -6.0f;
    a[(rows - 1) * K + 3] = 1.5f;
  }
  return a;
}

Tensor tensor_of(const std::vector<float>& a, Shape shape, DType dt) {
  return from_vector(a, std::move(shape)).to(dt);
}

struct Case {
  Shape shape;
  bool specials;
};

const std::vector<Case> kShapes = {{{1, 1}, false},     {{1, 37}, true},    {{3, 15}, true},
                                   {{7, 16}, true},     {{5, 17}, true},    {{33, 100}, true},
                                   {{2, 3, 129}, true}, {{70, 1000}, true}, {{1, 70000}, true}};

TEST(QuantFastPaths, RowQuantMatchesScalarReference) {
  for (int threads : {1, 2}) {
    OmpThreads omp(threads);
    for (DType dt : {DType::float32, DType::float16, DType::bfloat16}) {
      for (const Case& c : kShapes) {
        const int64_t K = c.shape.back();
        const int64_t rows = numel_of(c.shape) / K;
        std::vector<float> a =
            make_input(rows, K, static_cast<uint32_t>(rows * 131 + K), c.specials);
        for (float& v : a) v = through(dt, v);
        const Tensor A = tensor_of(a, c.shape, dt);
        for (double thr : {0.0, -1.0, 6.0, 1.5}) {
          SCOPED_TRACE(testing::Message() << threads << " threads, " << dtype_name(dt) << ", shape "
                                          << shape_str(c.shape) << ", threshold " << thr);
          const RefRowQuant want =
              ref_row_quant(a, rows, K, static_cast<float>(std::max(thr, 0.0)));
          const Int8RowQuant got = int8_vectorwise_quant(A, thr);
          ASSERT_EQ(got.CA.sizes(), c.shape);
          ASSERT_EQ(got.outlier_cols, want.cols);
          const std::vector<float> stats = got.SCA.to_vector<float>();
          for (int64_t r = 0; r < rows; ++r)
            ASSERT_EQ(bits(stats[r]), bits(want.stats[r])) << "row " << r;
          const std::vector<int8_t> q = got.CA.to_vector<int8_t>();
          for (size_t i = 0; i < q.size(); ++i) {
            ASSERT_EQ(q[i], want.q[i])
                << "row " << i / K << " column " << i % K << ": a = " << a[i];
          }
        }
      }
    }
  }
}

// The Linear8bitLt forward of spec §7 one output element at a time, from the reference row
// quantization: f32(acc · f32(SCA · SCB) · 1/127²) + bias, rounded to X's dtype; then the outlier
// columns X[:, cols] · (CB[:, cols] · SCB / 127 rounded to X's dtype), one fma each in column
// order on top of the rounded partial result, rounded once more.
std::vector<float> ref_linear(const std::vector<float>& x, int64_t M, int64_t K, DType dt,
                              const std::vector<int8_t>& cb, const std::vector<float>& scb,
                              int64_t N, const std::vector<float>* bias, float thr) {
  const RefRowQuant xq = ref_row_quant(x, M, K, thr);
  std::vector<float> out(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      int32_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += int32_t(xq.q[m * K + k]) * int32_t(cb[n * K + k]);
      float v = mulf(mulf(static_cast<float>(acc), mulf(xq.stats[m], scb[n])), kInv127Sq);
      if (bias) v = v + (*bias)[n];
      v = through(dt, v);
      if (!xq.cols.empty()) {
        for (int64_t c : xq.cols) {
          const float w =
              through(dt, mulf(static_cast<float>(cb[n * K + c]), mulf(scb[n], kInv127)));
          v = std::fma(x[m * K + c], w, v);
        }
        v = through(dt, v);
      }
      out[m * N + n] = v;
    }
  }
  return out;
}

TEST(QuantFastPaths, LinearForwardMatchesScalarReference) {
  struct LinCase {
    int64_t M, K, N;
    bool specials;
  };
  const std::vector<LinCase> cases = {{1, 5, 1, false},
                                      {1, 37, 19, true},
                                      {6, 17, 33, true},
                                      {9, 64, 16, true},
                                      {70, 40, 1000, true}};
  for (int threads : {1, 2}) {
    OmpThreads omp(threads);
    for (DType dt : {DType::float16, DType::bfloat16, DType::float32}) {
      for (const LinCase& c : cases) {
        std::vector<float> x = make_input(c.M, c.K, static_cast<uint32_t>(c.M * 7 + c.K), false);
        if (c.specials) {  // outliers in two columns (no NaN/inf: they would poison whole rows)
          for (int64_t m = 0; m < c.M; m += 2) x[m * c.K + (c.K - 1)] = m % 4 ? 9.0f : -6.0f;
          x[(c.M - 1) * c.K + 1] = 7.25f;
        }
        for (float& v : x) v = through(dt, v);
        std::vector<float> w = make_input(c.N, c.K, static_cast<uint32_t>(c.N * 5 + 1), false);
        for (float& v : w) v = through(dt, v);
        const Int8RowQuant wq = int8_vectorwise_quant(tensor_of(w, {c.N, c.K}, dt), 0.0);
        const std::vector<int8_t> cb = wq.CA.to_vector<int8_t>();
        const std::vector<float> scb = wq.SCA.to_vector<float>();
        std::vector<float> bias = make_input(1, c.N, 99, false);
        for (float& v : bias) v = through(dt, v);
        for (bool with_bias : {false, true}) {
          for (double thr : {6.0, 0.0}) {
            SCOPED_TRACE(testing::Message()
                         << threads << " threads, " << dtype_name(dt) << ", M " << c.M << " K "
                         << c.K << " N " << c.N << ", bias " << with_bias << ", threshold " << thr);
            const std::vector<float> want =
                ref_linear(x, c.M, c.K, dt, cb, scb, c.N, with_bias ? &bias : nullptr,
                           static_cast<float>(thr));
            const Tensor out =
                int8_linear_forward(tensor_of(x, {c.M, c.K}, dt), wq.CA, wq.SCA,
                                    with_bias ? tensor_of(bias, {c.N}, dt) : Tensor(), thr);
            ASSERT_EQ(out.dtype(), dt);
            const std::vector<float> got = out.to_vector<float>();
            for (size_t i = 0; i < got.size(); ++i) {
              ASSERT_EQ(bits(got[i]), bits(want[i])) << "(" << i / c.N << ", " << i % c.N
                                                     << "): got " << got[i] << ", want " << want[i];
            }
          }
        }
      }
    }
  }
}

TEST(QuantFastPaths, LinearForwardKeepsLeadingDims) {
  std::vector<float> x = make_input(6, 20, 3, false);
  x[7] = 8.0f;
  const Tensor X = tensor_of(x, {2, 3, 20}, DType::float16);
  const Int8RowQuant wq =
      int8_vectorwise_quant(tensor_of(make_input(5, 20, 4, false), {5, 20}, DType::float16), 0.0);
  const Tensor out = int8_linear_forward(X, wq.CA, wq.SCA, Tensor(), 6.0);
  EXPECT_EQ(out.sizes(), (Shape{2, 3, 5}));
  EXPECT_TRUE(bits_equal(out.reshape({6, 5}),
                         int8_linear_forward(X.reshape({6, 20}), wq.CA, wq.SCA, Tensor(), 6.0)));
}

// bitsandbytes' 8-bit blockwise quantizer with the dynamic code, one element at a time.
void ref_blockwise_8bit(const std::vector<float>& x, int64_t bs, std::vector<uint8_t>& codes,
                        std::vector<float>& absmax) {
  const auto& mid = dynamic_code_8bit_midpoints();
  const int64_t n = static_cast<int64_t>(x.size());
  codes.assign(x.size(), 0);
  absmax.assign(static_cast<size_t>((n + bs - 1) / bs), 0.0f);
  for (int64_t b = 0; b * bs < n; ++b) {
    const int64_t s = b * bs, e = std::min(n, s + bs);
    float m = 0.0f;
    bool nan = false;
    for (int64_t i = s; i < e; ++i) {
      nan |= std::isnan(x[i]);
      if (std::fabs(x[i]) > m) m = std::fabs(x[i]);
    }
    if (nan) m = kNaN;
    absmax[b] = m;
    const float r = m == 0.0f ? 0.0f : 1.0f / m;
    for (int64_t i = s; i < e; ++i) {
      const float v = x[i] * r;
      uint8_t c = 0;
      while (c < 255 && mid[c] < v) ++c;  // midpoints strictly below v
      codes[i] = c;
    }
  }
}

TEST(QuantFastPaths, Blockwise8bitMatchesScalarReference) {
  const auto& mid = dynamic_code_8bit_midpoints();
  for (int threads : {1, 2}) {
    OmpThreads omp(threads);
    for (int64_t n :
         {int64_t{1}, int64_t{7}, int64_t{255}, int64_t{256}, int64_t{1000}, int64_t{70001}}) {
      std::vector<float> x = make_input(1, n, static_cast<uint32_t>(n), false);
      if (n >= 1000) {
        // Block 0 (of 256): the midpoints themselves next to a 1, so x · r lands on each tie.
        x[0] = 1.0f;
        for (int i = 0; i < 255 && i + 1 < 256; ++i) x[i + 1] = mid[i];
        x[300] = kNaN;                                       // block 1 absmax NaN
        x[600] = kInf;                                       // block 2 absmax inf
        std::fill(x.begin() + 768, x.begin() + 1000, 0.0f);  // block 3 all zero
      }
      for (int64_t bs : {int64_t{1}, int64_t{7}, int64_t{256}, int64_t{300}}) {
        SCOPED_TRACE(testing::Message() << threads << " threads, n " << n << ", blocksize " << bs);
        std::vector<uint8_t> want_codes;
        std::vector<float> want_absmax;
        ref_blockwise_8bit(x, bs, want_codes, want_absmax);
        const Quantized8bit got = quantize_blockwise_8bit(from_vector(x, {n}), bs);
        const std::vector<float> absmax = got.absmax.to_vector<float>();
        ASSERT_EQ(absmax.size(), want_absmax.size());
        for (size_t b = 0; b < absmax.size(); ++b) {
          ASSERT_EQ(bits(absmax[b]), bits(want_absmax[b])) << "block " << b;
        }
        const std::vector<uint8_t> codes = got.codes.to_vector<uint8_t>();
        for (size_t i = 0; i < codes.size(); ++i) {
          ASSERT_EQ(int(codes[i]), int(want_codes[i])) << "element " << i << ": x = " << x[i];
        }
      }
    }
  }
}

// Double quantization end to end: the nested state is the reference quantization of the plain
// absmax minus its mean (torch's CPU mean: torch_cpu_mean.h, tested against torch itself).
TEST(QuantFastPaths, DoubleQuantizedStateMatchesScalarReference) {
  for (int threads : {1, 2}) {
    OmpThreads omp(threads);
    for (int64_t n : {int64_t{64 * 300 + 5}, int64_t{64 * 1100}}) {
      SCOPED_TRACE(testing::Message() << threads << " threads, n " << n);
      const Tensor A = from_vector(make_input(1, n, 17, true), {n});
      const std::vector<float> plain = quantize_4bit(A, 64, "nf4").state.absmax.to_vector<float>();
      const float offset = torch_cpu_mean_float32(plain.data(), static_cast<int64_t>(plain.size()));
      std::vector<float> centred = plain;
      for (float& v : centred) v -= offset;
      std::vector<uint8_t> want_codes;
      std::vector<float> want_absmax2;
      ref_blockwise_8bit(centred, 256, want_codes, want_absmax2);
      const QuantState4bit st = quantize_4bit(A, 64, "nf4", true).state;
      ASSERT_TRUE(st.nested);
      EXPECT_EQ(bits(st.nested_offset), bits(offset));
      EXPECT_EQ(st.absmax.to_vector<uint8_t>(), want_codes);
      const std::vector<float> absmax2 = st.nested_absmax.to_vector<float>();
      ASSERT_EQ(absmax2.size(), want_absmax2.size());
      for (size_t b = 0; b < absmax2.size(); ++b)
        EXPECT_EQ(bits(absmax2[b]), bits(want_absmax2[b]));
    }
  }
}

}  // namespace
}  // namespace fabric::precision
