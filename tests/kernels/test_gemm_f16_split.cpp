// Tests of the f16 GEMM's bf16 hi/lo split on AMX (kernels/cpu/gemm_f16_split.cpp): results
// against a float64 reference of the (exactly widened) f16 operands, exactness where f32
// accumulation is exact, subnormals and the +-65504 extremes, the inf/NaN fallback to
// gemm_via_f32 (bit for bit) and which problems take the route.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace fabric::cpu {
namespace {

using detail::f16_split_stats;

// Routes every f16 problem through the split (where AMX is there) for the test's lifetime.
class ForceSplit {
 public:
  ForceSplit() : saved_(detail::force_f16_split(true)) {}
  ~ForceSplit() { detail::force_f16_split(saved_); }

 private:
  bool saved_;
};

// Whether this machine (oneDNN's effective ISA) runs the split at all.
bool split_available() {
  ForceSplit force;
  _Float16 a = 1, b = 1;
  float c = 0;
  GemmArgs g{.M = 1,
             .N = 1,
             .K = 1,
             .a_dtype = DType::float16,
             .b_dtype = DType::float16,
             .A = &a,
             .lda = 1,
             .B = &b,
             .ldb = 1,
             .C = &c,
             .ldc = 1};
  const uint64_t before = f16_split_stats().split;
  gemm(g);
  return f16_split_stats().split == before + 1;
}

#define REQUIRE_SPLIT()                                                         \
  if (!split_available()) GTEST_SKIP() << "oneDNN has no AMX bf16 on this CPU"; \
  static_assert(true)

struct Problem {
  int64_t batch = 1, M = 1, N = 1, K = 1;
  bool ta = false, tb = false;
  int64_t pad = 0;       // added to every leading dim
  bool bcast_b = false;  // stride_b = 0 (a shared weight)
  DType c_dtype = DType::float32;
  float alpha = 1.f, beta = 0.f;
  bool bias = false;
  DType bias_dtype = DType::float16;
};

std::string describe(const Problem& p) {
  return "batch=" + std::to_string(p.batch) + " M=" + std::to_string(p.M) +
         " N=" + std::to_string(p.N) + " K=" + std::to_string(p.K) + " ta=" + std::to_string(p.ta) +
         " tb=" + std::to_string(p.tb) + " pad=" + std::to_string(p.pad) +
         " bcast_b=" + std::to_string(p.bcast_b) + " C=" + std::string(dtype_name(p.c_dtype)) +
         " alpha=" + std::to_string(p.alpha) + " beta=" + std::to_string(p.beta) +
         " bias=" + std::to_string(p.bias);
}

// Operands and output of one problem, filled by the caller, and the GemmArgs over them.
struct Buffers {
  Problem p;
  int64_t lda, ldb, ldc, sa, sb, sc;
  std::vector<_Float16> A, B, bias16;
  std::vector<float> bias32;
  std::vector<float> C32;
  std::vector<_Float16> C16;

  explicit Buffers(const Problem& pr) : p(pr) {
    const int64_t ra = p.ta ? p.K : p.M, ca = p.ta ? p.M : p.K;
    const int64_t rb = p.tb ? p.N : p.K, cb = p.tb ? p.K : p.N;
    lda = ca + p.pad, ldb = cb + p.pad, ldc = p.N + p.pad;
    sa = ra * lda + 3, sb = p.bcast_b ? 0 : rb * ldb + 3, sc = p.M * ldc + 3;
    A.resize(size_t(p.batch * sa));
    B.resize(size_t(p.bcast_b ? rb * ldb : p.batch * sb));
    bias16.resize(size_t(p.N));
    bias32.resize(size_t(p.N));
    if (p.c_dtype == DType::float32)
      C32.assign(size_t(p.batch * sc), 0.f);
    else
      C16.assign(size_t(p.batch * sc), _Float16(0));
  }
  double a(int64_t b, int64_t i, int64_t k) const {
    return double(A[size_t(b * sa + (p.ta ? k * lda + i : i * lda + k))]);
  }
  double bv(int64_t b, int64_t k, int64_t j) const {
    return double(B[size_t(b * sb + (p.tb ? j * ldb + k : k * ldb + j))]);
  }
  double c(int64_t b, int64_t i, int64_t j) const {
    const size_t at = size_t(b * sc + i * ldc + j);
    return p.c_dtype == DType::float32 ? double(C32[at]) : double(C16[at]);
  }
  double bias(int64_t j) const {
    return p.bias_dtype == DType::float32 ? double(bias32[size_t(j)]) : double(bias16[size_t(j)]);
  }
  void* c_data() { return p.c_dtype == DType::float32 ? (void*)C32.data() : (void*)C16.data(); }
  GemmArgs args() {
    GemmArgs g;
    g.batch = p.batch, g.M = p.M, g.N = p.N, g.K = p.K;
    g.a_dtype = g.b_dtype = DType::float16;
    g.c_dtype = p.c_dtype;
    g.A = A.data(), g.lda = lda, g.stride_a = sa, g.trans_a = p.ta;
    g.B = B.data(), g.ldb = ldb, g.stride_b = sb, g.trans_b = p.tb;
    g.C = c_data(), g.ldc = ldc, g.stride_c = sc;
    g.alpha = p.alpha, g.beta = p.beta;
    if (p.bias) {
      g.bias =
          p.bias_dtype == DType::float32 ? (const void*)bias32.data() : (const void*)bias16.data();
      g.bias_dtype = p.bias_dtype;
    }
    return g;
  }
};

// Compares C (after gemm) against the float64 reference computed from the operands and C0 (C
// before the call). tol_terms: the accumulation's length in the error bound (4K for the split: its
// terms' magnitudes sum to those of the K-long f32 sum, but there are 4K of them); 0 demands
// exactness up to the output rounding.
void check_against_float64(const Buffers& x, const std::vector<double>& C0, int64_t tol_terms) {
  const Problem& p = x.p;
  SCOPED_TRACE(describe(p));
  const double u_out = p.c_dtype == DType::float32 ? 0x1p-24 : 0x1p-11;
  int64_t bad = 0;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t i = 0; i < p.M; ++i)
      for (int64_t j = 0; j < p.N; ++j) {
        double acc = 0, mag = 0;
        for (int64_t k = 0; k < p.K; ++k) {
          const double t = x.a(b, i, k) * x.bv(b, k, j);
          acc += t;
          mag += std::fabs(t);
        }
        double ref = double(p.alpha) * acc, refmag = std::fabs(double(p.alpha)) * mag;
        if (p.bias) ref += x.bias(j), refmag += std::fabs(x.bias(j));
        const double c0 = C0[size_t(b * x.sc + i * x.ldc + j)];
        if (p.beta != 0.f) ref += double(p.beta) * c0, refmag += std::fabs(double(p.beta) * c0);
        const double tol = 2.0 * double(tol_terms + 3) * 0x1p-24 * refmag + u_out * std::fabs(ref) +
                           (p.c_dtype == DType::float16 ? 0x1p-25 : 0.0);  // f16 subnormal ulp/2
        double r = ref;
        if (p.c_dtype == DType::float16 && std::fabs(ref) >= 65520.0)  // RNE overflows to inf
          r = std::copysign(std::numeric_limits<double>::infinity(), ref);
        const double got = x.c(b, i, j);
        const bool ok = std::isinf(r) ? got == r : std::fabs(got - r) <= tol;
        if (!ok && ++bad <= 5)
          ADD_FAILURE() << "C[" << b << "](" << i << "," << j << ") = " << got << ", expected " << r
                        << " (tol " << tol << ")";
      }
  EXPECT_EQ(bad, 0);
}

std::vector<double> snapshot_c(const Buffers& x) {
  std::vector<double> c(x.p.c_dtype == DType::float32 ? x.C32.size() : x.C16.size());
  for (size_t i = 0; i < c.size(); ++i)
    c[i] = x.p.c_dtype == DType::float32 ? double(x.C32[i]) : double(x.C16[i]);
  return c;
}

// Random f16 operands that use all 11 significant bits (so the lo halves matter) over several
// binades, bias and C.
void fill_random(Buffers& x, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> unif(-1.f, 1.f);
  std::uniform_int_distribution<int> expo(-6, 4);
  auto value = [&] { return _Float16(std::ldexp(unif(rng), expo(rng))); };
  for (auto& v : x.A) v = value();
  for (auto& v : x.B) v = value();
  for (auto& v : x.bias16) v = value();
  for (auto& v : x.bias32) v = unif(rng);
  for (auto& v : x.C32) v = unif(rng);
  for (auto& v : x.C16) v = value();
}

// Runs p through gemm() with the split forced and checks it against float64; expects the route
// unless told otherwise.
void run_forced(const Problem& p, uint32_t seed, bool expect_split = true) {
  Buffers x(p);
  fill_random(x, seed);
  const std::vector<double> C0 = snapshot_c(x);
  ForceSplit force;
  const uint64_t before = f16_split_stats().split;
  gemm(x.args());
  EXPECT_EQ(f16_split_stats().split, before + (expect_split ? 1 : 0))
      << describe(p) << (expect_split ? ": the split was not taken" : ": the split was taken");
  check_against_float64(x, C0, 4 * p.K);
}

TEST(GemmF16Split, AllTransposesOddSizesBothOutputs) {
  REQUIRE_SPLIT();
  uint32_t seed = 1;
  for (DType c : {DType::float32, DType::float16})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (auto [M, N, K] : {std::array<int64_t, 3>{37, 45, 53},
                               {1, 70, 33},
                               {65, 1, 97},
                               {128, 96, 256},
                               {19, 33, 1}})
          run_forced({.M = M, .N = N, .K = K, .ta = ta, .tb = tb, .c_dtype = c}, seed++);
}

TEST(GemmF16Split, BiasAlphaBetaPaddedBatched) {
  REQUIRE_SPLIT();
  uint32_t seed = 100;
  for (DType c : {DType::float32, DType::float16})
    for (DType bias_dtype : {DType::float16, DType::float32})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          // oneDNN 2.6 has only its reference bf16 kernel for a padded f32 C with both a sum and
          // a binary (bias after alpha) post-op: the split declines and gemm_via_f32 runs it (an
          // f16 C is staged densely, so there the split runs).
          run_forced({.M = 29,
                      .N = 41,
                      .K = 35,
                      .ta = ta,
                      .tb = tb,
                      .pad = 7,
                      .c_dtype = c,
                      .alpha = 0.75f,
                      .beta = -1.5f,
                      .bias = true,
                      .bias_dtype = bias_dtype},
                     seed++, c == DType::float16);
          run_forced({.M = 33,
                      .N = 50,
                      .K = 40,
                      .ta = ta,
                      .tb = tb,
                      .c_dtype = c,
                      .bias = true,
                      .bias_dtype = bias_dtype},
                     seed++);
          run_forced({.batch = 3,
                      .M = 17,
                      .N = 23,
                      .K = 31,
                      .ta = ta,
                      .tb = tb,
                      .pad = 2,
                      .c_dtype = c,
                      .alpha = 2.f,
                      .beta = 0.5f},
                     seed++);
          run_forced({.batch = 4,
                      .M = 20,
                      .N = 36,
                      .K = 18,
                      .ta = ta,
                      .tb = tb,
                      .bcast_b = true,
                      .c_dtype = c,
                      .bias = true,
                      .bias_dtype = bias_dtype},
                     seed++);
        }
}

// 11-bit integers (every lo half non-zero in general) and K = 3: each product needs 22 bits and
// every partial sum fits f32's 24, so f32 accumulation in any order is exact, and so must the split
// be: dropping or mis-pairing any of Ah Bh, Al Bh, Ah Bl, Al Bl shows here.
TEST(GemmF16Split, ExactWhereF32AccumulationIsExact) {
  REQUIRE_SPLIT();
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> mag(1025, 2047), sign(0, 1);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Buffers x({.M = 40, .N = 37, .K = 3, .ta = ta, .tb = tb});
      for (auto& v : x.A) v = _Float16(float(sign(rng) ? mag(rng) : -mag(rng)));
      for (auto& v : x.B) v = _Float16(float(sign(rng) ? mag(rng) : -mag(rng)) * 0x1p-10f);
      ForceSplit force;
      gemm(x.args());
      check_against_float64(x, snapshot_c(x), -3);  // tolerance 0 (f32 out: + u_out|ref| only)
      for (int64_t i = 0; i < 40; ++i)
        for (int64_t j = 0; j < 37; ++j) {
          double ref = 0;
          for (int64_t k = 0; k < 3; ++k) ref += x.a(0, i, k) * x.bv(0, k, j);
          ASSERT_EQ(x.c(0, i, j), ref) << "(" << i << "," << j << ") ta=" << ta << " tb=" << tb;
        }
    }
}

// f16 subnormals (down to 2^-24) and the +-65504 extremes, to f32 and to f16 (where sums beyond
// 65504 round to inf, as in gemm_via_f32).
TEST(GemmF16Split, SubnormalsAndExtremes) {
  REQUIRE_SPLIT();
  const float specials[] = {0x1p-24f, -0x1p-24f,  1023 * 0x1p-24f, -1023 * 0x1p-24f, 0x1p-14f,
                            65504.f,  -65504.f,   65504.f / 3,     2047.f,           0.f,
                            -0.f,     0x1.ffcp-1f};
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> pick(0, int(std::size(specials)) - 1);
  for (DType c : {DType::float32, DType::float16})
    for (bool ta : {false, true}) {
      Buffers x({.M = 24, .N = 31, .K = 21, .ta = ta, .tb = !ta, .c_dtype = c});
      for (auto& v : x.A) v = _Float16(specials[pick(rng)]);
      for (auto& v : x.B) v = _Float16(specials[pick(rng)] * (pick(rng) < 6 ? 1.f : 0x1p-16f));
      const std::vector<double> C0 = snapshot_c(x);
      ForceSplit force;
      const uint64_t before = f16_split_stats().split;
      gemm(x.args());
      EXPECT_EQ(f16_split_stats().split, before + 1);
      check_against_float64(x, C0, 4 * 21);
    }
}

// An inf or NaN in A or B: the split would turn inf into NaN (inf - inf) and inf * 0 into NaN, so
// the problem must run exactly as gemm_via_f32 runs it.
TEST(GemmF16Split, NonFiniteOperandsFallBackBitForBit) {
  REQUIRE_SPLIT();
  const float inf = std::numeric_limits<float>::infinity();
  for (int where = 0; where < 4; ++where)
    for (DType c : {DType::float32, DType::float16}) {
      Buffers x({.M = 40, .N = 48, .K = 64, .tb = true, .c_dtype = c, .bias = true});
      fill_random(x, 50 + uint32_t(where));
      // Zeros meet the inf, so that the split's inf * 0 would show as NaN in a finite row.
      switch (where) {
        case 0:
          x.A[5 * size_t(x.lda) + 7] = _Float16(inf);
          break;
        case 1:
          x.A[9 * size_t(x.lda) + 63] = _Float16(std::nanf(""));
          break;
        case 2:
          x.B[3 * size_t(x.ldb) + 10] = _Float16(-inf);
          break;
        case 3:
          x.A[2 * size_t(x.lda) + 1] = _Float16(inf);
          x.B[7 * size_t(x.ldb) + 1] = _Float16(-inf);
          break;
      }
      for (int64_t k = 0; k < 64; ++k) x.A[size_t(11 * x.lda + k)] = _Float16(0.f);
      Buffers y = x;
      detail::gemm_via_f32(y.args());
      ForceSplit force;
      const auto before = f16_split_stats();
      gemm(x.args());
      const auto after = f16_split_stats();
      EXPECT_EQ(after.split, before.split) << "case " << where;
      EXPECT_EQ(after.nonfinite, before.nonfinite + 1) << "case " << where;
      if (c == DType::float32)
        EXPECT_EQ(std::memcmp(x.C32.data(), y.C32.data(), x.C32.size() * sizeof(float)), 0)
            << "case " << where << ": f32 output differs from gemm_via_f32";
      else
        EXPECT_EQ(std::memcmp(x.C16.data(), y.C16.data(), x.C16.size() * 2), 0)
            << "case " << where << ": f16 output differs from gemm_via_f32";
      // The fallback really propagated: row 5/9/2 (or column 10) holds non-finite values.
      bool any_nonfinite = false;
      for (int64_t j = 0; j < 48; ++j)
        for (int64_t i = 0; i < 40; ++i) any_nonfinite |= !std::isfinite(x.c(0, i, j));
      EXPECT_TRUE(any_nonfinite) << "case " << where;
    }
}

// Without forcing, only the sizes measured faster take the split (K <= 384 and a multiple of 8,
// M >= 512, N >= 128, at least 2^23 multiply-adds per batch entry); the rest stay on gemm_via_f32.
TEST(GemmF16Split, TakenOnlyWhereMeasuredFaster) {
  REQUIRE_SPLIT();
  struct Shape {
    int64_t batch, M, N, K;
    bool tb, split;
  };
  const Shape shapes[] = {{1, 2048, 768, 256, true, true},    // GPT qkv forward
                          {1, 2048, 256, 256, false, true},   // GPT proj dX
                          {1, 512, 512, 256, true, true},     // M = 512
                          {1, 256, 256, 256, false, false},   // M = 256: loses on 2 threads
                          {1, 2048, 256, 200, false, true},   // K a multiple of 8
                          {1, 2048, 256, 65, false, false},   // lm_head dX: K = 65
                          {1, 2048, 256, 255, true, false},   // K = 255
                          {1, 2048, 256, 1024, true, false},  // K = 1024: 4x the work loses
                          {1, 256, 768, 2048, false, false},  // a weight gradient, K = 2048
                          {1, 2048, 65, 256, true, false},    // lm_head: N = 65
                          {1, 512, 128, 64, false, false},    // 2^22 multiply-adds
                          {64, 128, 128, 64, true, false}};   // attention scores, per batch small
  for (const Shape& s : shapes) {
    std::vector<_Float16> A(size_t(s.batch * s.M * s.K), _Float16(0.5f));
    std::vector<_Float16> B(size_t(s.batch * s.K * s.N), _Float16(0.25f));
    std::vector<float> C(size_t(s.batch * s.M * s.N), -1.f);
    GemmArgs g{.batch = s.batch,
               .M = s.M,
               .N = s.N,
               .K = s.K,
               .a_dtype = DType::float16,
               .b_dtype = DType::float16,
               .A = A.data(),
               .lda = s.K,
               .stride_a = s.M * s.K,
               .B = B.data(),
               .ldb = s.tb ? s.K : s.N,
               .stride_b = s.K * s.N,
               .trans_b = s.tb,
               .C = C.data(),
               .ldc = s.N,
               .stride_c = s.M * s.N};
    const uint64_t before = f16_split_stats().split;
    gemm(g);
    EXPECT_EQ(f16_split_stats().split - before, s.split ? 1u : 0u)
        << "batch=" << s.batch << " M=" << s.M << " N=" << s.N << " K=" << s.K;
    EXPECT_EQ(C[0], float(s.K) * 0.125f);
    EXPECT_EQ(C.back(), float(s.K) * 0.125f);
  }
}

}  // namespace
}  // namespace fabric::cpu
