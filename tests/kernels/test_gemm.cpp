// Tests of the CPU GEMM kernel (kernels/cpu/gemm.h) against a naive float64 reference: every dtype
// combination, transposes, strided/broadcast batches, padded leading dims, alpha/beta, bias,
// degenerate sizes, errors, the primitive cache and concurrent callers.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/gemm.h"
#include "tensor/error.h"

namespace fabric::cpu {
namespace {

// ---- typed buffers, with conversions independent of the kernel's -------------------------------
double bf16_round(double v) {  // RNE to bfloat16, through f32 (v is already f32-exact here)
  uint32_t x = std::bit_cast<uint32_t>(static_cast<float>(v));
  x += 0x7fffu + ((x >> 16) & 1u);
  return std::bit_cast<float>(x & 0xffff0000u);
}

struct Buf {
  DType t;
  std::vector<unsigned char> bytes;
  Buf(DType dt, int64_t n) : t(dt), bytes(size_t(std::max<int64_t>(n, 0) * itemsize(dt)) + 1) {}
  void* data() { return bytes.data(); }
  double get(int64_t i) const {
    const unsigned char* p = bytes.data() + i * itemsize(t);
    switch (t) {
      case DType::float64: {
        double v;
        std::memcpy(&v, p, 8);
        return v;
      }
      case DType::float32: {
        float v;
        std::memcpy(&v, p, 4);
        return v;
      }
      case DType::float16: {
        _Float16 v;
        std::memcpy(&v, p, 2);
        return static_cast<double>(v);
      }
      case DType::bfloat16: {
        uint16_t h;
        std::memcpy(&h, p, 2);
        return std::bit_cast<float>(uint32_t(h) << 16);
      }
      default:
        return NAN;
    }
  }
  void set(int64_t i, double v) {  // rounds to the buffer's dtype
    unsigned char* p = bytes.data() + i * itemsize(t);
    switch (t) {
      case DType::float64:
        std::memcpy(p, &v, 8);
        break;
      case DType::float32: {
        float f = float(v);
        std::memcpy(p, &f, 4);
        break;
      }
      case DType::float16: {
        _Float16 h = static_cast<_Float16>(static_cast<float>(v));
        std::memcpy(p, &h, 2);
        break;
      }
      case DType::bfloat16: {
        uint16_t h = uint16_t(std::bit_cast<uint32_t>(static_cast<float>(bf16_round(v))) >> 16);
        std::memcpy(p, &h, 2);
        break;
      }
      default:
        break;
    }
  }
  double round(double v) const {
    Buf tmp(t, 1);
    tmp.set(0, v);
    return tmp.get(0);
  }
};

double unit_roundoff(DType t) {
  switch (t) {
    case DType::float64:
      return 0x1p-53;
    case DType::float32:
      return 0x1p-24;
    case DType::float16:
      return 0x1p-11;
    case DType::bfloat16:
      return 0x1p-8;
    default:
      return 1;
  }
}

struct Combo {
  DType ab, c;
};
std::string combo_name(const Combo& c) {
  return std::string(dtype_name(c.ab)) + "_to_" + std::string(dtype_name(c.c));
}
const Combo kCombos[] = {{DType::float32, DType::float32},  {DType::float64, DType::float64},
                         {DType::bfloat16, DType::float32}, {DType::bfloat16, DType::bfloat16},
                         {DType::float16, DType::float32},  {DType::float16, DType::float16}};

enum class Batching { dense, gap, bcast_a, bcast_b, bcast_both };

struct Case {
  int64_t batch = 1, M = 1, N = 1, K = 1;
  bool ta = false, tb = false;
  int64_t pad = 0;  // added to every leading dim (views into wider rows)
  Batching batching = Batching::dense;
  double alpha = 1, beta = 0;
  bool bias = false;
  DType bias_dtype = DType::float32;
  bool exact = true;  // small dyadic values: f32 accumulation is exact, only the output rounds
};

std::string describe(const Case& c) {
  return "batch=" + std::to_string(c.batch) + " M=" + std::to_string(c.M) +
         " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) + " ta=" + std::to_string(c.ta) +
         " tb=" + std::to_string(c.tb) + " pad=" + std::to_string(c.pad) +
         " batching=" + std::to_string(int(c.batching)) + " alpha=" + std::to_string(c.alpha) +
         " beta=" + std::to_string(c.beta) + " bias=" + std::to_string(c.bias) +
         " exact=" + std::to_string(c.exact);
}

// Runs one case through gemm() and checks C (and that nothing outside C's view was written)
// against a float64 reference computed from the stored (already rounded) inputs.
void run_case(const Combo& combo, const Case& c, uint32_t seed) {
  SCOPED_TRACE(combo_name(combo) + " " + describe(c));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> small(-16, 16);
  std::uniform_real_distribution<double> unif(-1.0, 1.0);
  auto value = [&] { return c.exact ? small(rng) / 8.0 : unif(rng); };

  const int64_t ra = c.ta ? c.K : c.M, ca = c.ta ? c.M : c.K;
  const int64_t rb = c.tb ? c.N : c.K, cb = c.tb ? c.K : c.N;
  const int64_t lda = ca + c.pad, ldb = cb + c.pad, ldc = c.N + c.pad;
  const int64_t gap = c.batching == Batching::dense ? 0 : 5;
  int64_t sa = ra * lda + gap, sb = rb * ldb + gap, sc = c.M * ldc + gap;
  if (c.batching == Batching::bcast_a || c.batching == Batching::bcast_both) sa = 0;
  if (c.batching == Batching::bcast_b || c.batching == Batching::bcast_both) sb = 0;
  const int64_t na = sa == 0 ? ra * lda : c.batch * sa, nb = sb == 0 ? rb * ldb : c.batch * sb;
  const int64_t nc = c.batch * sc;

  Buf A(combo.ab, na), B(combo.ab, nb), C(combo.c, nc), C0(combo.c, nc);
  for (int64_t i = 0; i < na; ++i) A.set(i, value());
  for (int64_t i = 0; i < nb; ++i) B.set(i, value());
  // beta == 0 must not read C: fill it with NaN then (padding keeps a finite sentinel).
  for (int64_t i = 0; i < nc; ++i) C.set(i, c.beta == 0 ? NAN : value());
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = c.N; j < ldc; ++j) C.set(b * sc + i * ldc + j, 42.0);
  C0.bytes = C.bytes;
  Buf bias(c.bias_dtype, c.N);
  for (int64_t j = 0; j < c.N; ++j) bias.set(j, value());

  GemmArgs g;
  g.batch = c.batch;
  g.M = c.M;
  g.N = c.N;
  g.K = c.K;
  g.a_dtype = g.b_dtype = combo.ab;
  g.c_dtype = combo.c;
  g.A = A.data();
  g.lda = lda;
  g.stride_a = sa;
  g.trans_a = c.ta;
  g.B = B.data();
  g.ldb = ldb;
  g.stride_b = sb;
  g.trans_b = c.tb;
  g.C = C.data();
  g.ldc = ldc;
  g.stride_c = sc;
  g.alpha = float(c.alpha);
  g.beta = float(c.beta);
  if (c.bias) {
    g.bias = bias.data();
    g.bias_dtype = c.bias_dtype;
  }
  ASSERT_NO_THROW(gemm(g));

  const double u_acc = combo.ab == DType::float64 ? 0x1p-53 : 0x1p-24;
  const double u_out = unit_roundoff(combo.c);
  const double alpha = double(float(c.alpha)), beta = double(float(c.beta));
  // Decode the stored inputs once: the reference loop below is the slow part of the suite.
  std::vector<double> Ad(static_cast<size_t>(na)), Bd(static_cast<size_t>(nb));
  for (int64_t i = 0; i < na; ++i) Ad[size_t(i)] = A.get(i);
  for (int64_t i = 0; i < nb; ++i) Bd[size_t(i)] = B.get(i);
  std::vector<bool> inside(size_t(nc), false);
  int64_t bad = 0;
  for (int64_t b = 0; b < c.batch; ++b) {
    for (int64_t i = 0; i < c.M; ++i) {
      for (int64_t j = 0; j < c.N; ++j) {
        double acc = 0, mag = 0;
        for (int64_t k = 0; k < c.K; ++k) {
          const double a = Ad[size_t(b * sa + (c.ta ? k * lda + i : i * lda + k))];
          const double bb = Bd[size_t(b * sb + (c.tb ? j * ldb + k : k * ldb + j))];
          acc += a * bb;
          mag += std::fabs(a * bb);
        }
        const int64_t ci = b * sc + i * ldc + j;
        inside[size_t(ci)] = true;
        double ref = alpha * acc, refmag = std::fabs(alpha) * mag;
        if (c.bias) {
          ref += bias.get(j);
          refmag += std::fabs(bias.get(j));
        }
        if (beta != 0) {
          ref += beta * C0.get(ci);
          refmag += std::fabs(beta * C0.get(ci));
        }
        // Exact inputs: the f32 (or f64) accumulation is exact, only the final rounding remains.
        // Otherwise: a K-scaled bound on the accumulation error plus the output rounding.
        const double tol = (c.exact ? 0.0 : 2.0 * double(c.K + 3) * u_acc * refmag) +
                           u_out * std::fabs(ref) +
                           (combo.c == DType::float16 ? 0x1p-25 : 0.0);  // f16 subnormal spacing
        const double got = C.get(ci);
        if (!(std::fabs(got - ref) <= tol)) {
          if (++bad <= 5)
            ADD_FAILURE() << "C[" << b << "](" << i << "," << j << ") = " << got << ", expected "
                          << ref << " (tol " << tol << ")";
        }
      }
    }
  }
  for (int64_t i = 0; i < nc; ++i) {
    if (inside[size_t(i)]) continue;
    if (std::memcmp(C.bytes.data() + i * itemsize(combo.c), C0.bytes.data() + i * itemsize(combo.c),
                    size_t(itemsize(combo.c))) != 0) {
      if (++bad <= 10) ADD_FAILURE() << "element " << i << " outside the C views was written";
    }
  }
  EXPECT_EQ(bad, 0);
}

// A dtype combination, and whether f32 work is forced onto the dnnl_sgemm path (normally taken
// only by large problems, too slow for the float64 reference here).
struct Route {
  Combo combo;
  bool sgemm = false;
};

class GemmCombo : public ::testing::TestWithParam<Route> {
 protected:
  void SetUp() override {
    if (GetParam().sgemm) saved_ = detail::set_sgemm_min_volume(0);
  }
  void TearDown() override {
    if (GetParam().sgemm) detail::set_sgemm_min_volume(saved_);
  }
  Combo combo() const { return GetParam().combo; }
  int64_t saved_ = 0;
};

TEST_P(GemmCombo, AllTransposesNonSquare) {
  uint32_t seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool exact : {true, false}) {
        run_case(combo(), {.M = 37, .N = 53, .K = 71, .ta = ta, .tb = tb, .exact = exact}, seed++);
        run_case(combo(), {.M = 64, .N = 48, .K = 200, .ta = ta, .tb = tb, .exact = exact}, seed++);
      }
}

TEST_P(GemmCombo, PaddedLeadingDims) {
  uint32_t seed = 100;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      run_case(combo(), {.M = 33, .N = 20, .K = 45, .ta = ta, .tb = tb, .pad = 7, .exact = false},
               seed++);
}

TEST_P(GemmCombo, AlphaBetaBias) {
  const Combo combo = this->combo();
  const DType own_bias = combo.ab == DType::float32 ? DType::float32 : combo.ab;
  uint32_t seed = 200;
  for (DType bias_dtype : {DType::float32, own_bias}) {
    // Powers of two keep the exact cases exact.
    run_case(combo,
             {.M = 19,
              .N = 23,
              .K = 31,
              .alpha = 0.5,
              .beta = 2,
              .bias = true,
              .bias_dtype = bias_dtype},
             seed++);
    run_case(
        combo,
        {.M = 19, .N = 23, .K = 31, .alpha = 1, .beta = 1, .bias = true, .bias_dtype = bias_dtype},
        seed++);
    run_case(
        combo,
        {.M = 19, .N = 23, .K = 31, .alpha = 1, .beta = 0, .bias = true, .bias_dtype = bias_dtype},
        seed++);
    run_case(combo,
             {.M = 19,
              .N = 23,
              .K = 31,
              .ta = true,
              .tb = true,
              .pad = 3,
              .alpha = -0.3,
              .beta = 0.7,
              .bias = true,
              .bias_dtype = bias_dtype,
              .exact = false},
             seed++);
  }
  run_case(combo, {.M = 16, .N = 16, .K = 16, .alpha = -1.5, .beta = -1}, seed++);
  run_case(combo, {.M = 16, .N = 16, .K = 16, .alpha = 0, .beta = 0.5, .exact = false}, seed++);
}

TEST_P(GemmCombo, BatchedStridesAndBroadcast) {
  uint32_t seed = 300;
  for (Batching bt :
       {Batching::dense, Batching::gap, Batching::bcast_a, Batching::bcast_b, Batching::bcast_both})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        run_case(combo(),
                 {.batch = 3, .M = 13, .N = 17, .K = 29, .ta = ta, .tb = tb, .batching = bt},
                 seed++);
        run_case(combo(),
                 {.batch = 4,
                  .M = 8,
                  .N = 12,
                  .K = 10,
                  .ta = ta,
                  .tb = tb,
                  .pad = 2,
                  .batching = bt,
                  .alpha = 0.75,
                  .beta = 0.25,
                  .bias = true,
                  .exact = false},
                 seed++);
      }
}

TEST_P(GemmCombo, DegenerateSizes) {
  uint32_t seed = 400;
  for (int64_t m : {0, 1, 5})
    for (int64_t n : {0, 1, 6})
      for (int64_t k : {0, 1, 7})
        for (bool t : {false, true}) {
          run_case(combo(), {.M = m, .N = n, .K = k, .ta = t, .tb = !t}, seed++);
          run_case(combo(),
                   {.batch = 2,
                    .M = m,
                    .N = n,
                    .K = k,
                    .ta = t,
                    .tb = t,
                    .batching = Batching::gap,
                    .alpha = 2,
                    .beta = 0.5,
                    .bias = true},
                   seed++);
        }
  run_case(combo(), {.batch = 0, .M = 4, .N = 4, .K = 4}, seed++);
}

TEST_P(GemmCombo, LargerThanOneBlock) {
  // Big enough for oneDNN's blocked kernels and for several threads to share the work.
  run_case(combo(), {.M = 300, .N = 260, .K = 515, .exact = false}, 500);
  run_case(combo(),
           {.M = 200,
            .N = 130,
            .K = 384,
            .ta = true,
            .tb = true,
            .pad = 16,
            .alpha = 0.5,
            .beta = 1,
            .bias = true},
           501);
  run_case(combo(),
           {.batch = 3,
            .M = 96,
            .N = 160,
            .K = 257,
            .tb = true,
            .batching = Batching::bcast_b,
            .bias = true,
            .exact = false},
           502);
}

TEST_P(GemmCombo, WideOutputInColumnPanels) {
  // N > 1024 runs as column panels (kMaxPanelColumns in gemm_onednn.cpp): B's columns, or a
  // transposed B's rows, C's columns and the bias are offset per panel; 2050 gives two widths.
  uint32_t seed = 600;
  for (bool tb : {false, true}) {
    run_case(combo(), {.M = 5, .N = 2050, .K = 24, .tb = tb, .pad = 3}, seed++);
    run_case(combo(),
             {.M = 6, .N = 1500, .K = 40, .ta = true, .tb = tb, .alpha = 0.5, .beta = 1,
              .bias = true, .exact = false},
             seed++);
  }
}

std::vector<Route> routes(bool sgemm) {
  std::vector<Route> out;
  for (const Combo& c : kCombos)
    if (!sgemm || c.ab == DType::float32 || c.ab == DType::float16) out.push_back({c, sgemm});
  return out;
}
std::string route_name(const ::testing::TestParamInfo<Route>& info) {
  return combo_name(info.param.combo);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GemmCombo, ::testing::ValuesIn(routes(false)), route_name);
INSTANTIATE_TEST_SUITE_P(LargeF32Sgemm, GemmCombo, ::testing::ValuesIn(routes(true)), route_name);

// ---- rounding of narrow outputs ----------------------------------------------------------------
TEST(Gemm, F16OutputRoundsToNearestEvenAndOverflowsToInf) {
  // 1 x 1 x 1 products whose f32 results sit exactly on f16 ties, and past the f16 range.
  const float in[] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65520.0f, -70000.0f,
                      0x1p-25f,        3 * 0x1p-26f};
  const double want[] = {1.0, 1.0 + 4 * 0x1p-11, INFINITY, -INFINITY, 0.0, 0x1p-24};
  for (size_t i = 0; i < std::size(in); ++i) {
    _Float16 one = 1, out = 0;
    // A (f16) cannot hold these values, so scale through alpha: C = alpha * 1 * 1.
    GemmArgs g{.M = 1,
               .N = 1,
               .K = 1,
               .a_dtype = DType::float16,
               .b_dtype = DType::float16,
               .c_dtype = DType::float16,
               .A = &one,
               .lda = 1,
               .B = &one,
               .ldb = 1,
               .C = &out,
               .ldc = 1,
               .alpha = in[i]};
    gemm(g);
    EXPECT_EQ(static_cast<double>(out), want[i]) << "alpha=" << in[i];
  }
}

TEST(Gemm, Bf16OutputRoundsToNearestEven) {
  const uint16_t one = 0x3f80;  // bf16 1.0
  const float in[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -(1.0f + 0x1p-8f + 0x1p-20f)};
  const double want[] = {1.0, 1.0 + 4 * 0x1p-8, -(1.0 + 0x1p-7)};
  for (size_t i = 0; i < std::size(in); ++i) {
    uint16_t out = 0;
    GemmArgs g{.M = 1,
               .N = 1,
               .K = 1,
               .a_dtype = DType::bfloat16,
               .b_dtype = DType::bfloat16,
               .c_dtype = DType::bfloat16,
               .A = &one,
               .lda = 1,
               .B = &one,
               .ldb = 1,
               .C = &out,
               .ldc = 1,
               .alpha = in[i]};
    gemm(g);
    EXPECT_EQ(double(std::bit_cast<float>(uint32_t(out) << 16)), want[i]) << "alpha=" << in[i];
  }
}

// ---- errors
// --------------------------------------------------------------------------------------
GemmArgs small_f32(float* a, float* b, float* c) {
  return GemmArgs{.M = 2, .N = 2, .K = 2, .A = a, .lda = 2, .B = b, .ldb = 2, .C = c, .ldc = 2};
}

template <typename E>
void expect_error(const GemmArgs& g, const std::vector<std::string>& words) {
  try {
    gemm(g);
    ADD_FAILURE() << "gemm did not throw";
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("gemm"), std::string::npos) << msg;
    for (const auto& w : words)
      EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' missing in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST(Gemm, WideOutputPanelsShareOnePrimitivePerWidth) {
  // 2050 columns = panels of 684, 684 and 682: two cached primitives, both reused on a repeat.
  gemm_cache_clear();
  std::vector<float> a(4 * 8, 1.f), b(8 * 2050, 0.5f), c(4 * 2050, NAN);
  const GemmArgs g{.M = 4, .N = 2050, .K = 8, .A = a.data(), .lda = 8, .B = b.data(),
                   .ldb = 2050, .C = c.data(), .ldc = 2050};
  gemm(g);
  gemm(g);
  const GemmCacheStats s = gemm_cache_stats();
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.hits, 4u);
  for (float v : c) ASSERT_EQ(v, 4.f);
}

TEST(Gemm, RejectsUnsupportedDtypes) {
  float a[4] = {}, b[4] = {}, c[4] = {};
  GemmArgs g = small_f32(a, b, c);
  g.b_dtype = DType::bfloat16;
  expect_error<DTypeError>(g, {"float32", "bfloat16"});
  g = small_f32(a, b, c);
  g.a_dtype = g.b_dtype = DType::bfloat16;
  g.c_dtype = DType::float16;
  expect_error<DTypeError>(g, {"bfloat16", "float16"});
  g = small_f32(a, b, c);
  g.a_dtype = g.b_dtype = g.c_dtype = DType::int32;
  expect_error<DTypeError>(g, {"int32"});
  g = small_f32(a, b, c);
  g.a_dtype = g.b_dtype = DType::float64;
  expect_error<DTypeError>(g, {"float64", "float32"});
  g = small_f32(a, b, c);
  g.bias = a;
  g.bias_dtype = DType::bfloat16;
  expect_error<DTypeError>(g, {"bias", "bfloat16"});
}

TEST(Gemm, RejectsBadLayouts) {
  float a[8] = {}, b[8] = {}, c[8] = {};
  GemmArgs g = small_f32(a, b, c);
  g.M = -1;
  expect_error<ValueError>(g, {"M=-1"});
  g = small_f32(a, b, c);
  g.lda = 1;
  expect_error<ValueError>(g, {"lda=1"});
  g = small_f32(a, b, c);
  g.trans_b = true;
  g.ldb = 1;
  expect_error<ValueError>(g, {"ldb=1", "transposed"});
  g = small_f32(a, b, c);
  g.ldc = 1;
  expect_error<ValueError>(g, {"ldc=1"});
  g = small_f32(a, b, c);
  g.C = nullptr;
  expect_error<ValueError>(g, {"null"});
  g = small_f32(a, b, c);
  g.batch = 2;
  g.stride_c = 0;
  expect_error<ValueError>(g, {"stride_c=0", "overlap"});
  g = small_f32(a, b, c);
  g.batch = 2;
  g.stride_c = 4;
  g.stride_a = -4;
  expect_error<ValueError>(g, {"stride_a=-4"});
  // Nothing to compute: null pointers are fine.
  EXPECT_NO_THROW(gemm(GemmArgs{.M = 0, .N = 3, .K = 3}));
}

// ---- primitive cache
// -----------------------------------------------------------------------------
TEST(Gemm, RepeatedShapeHitsThePrimitiveCache) {
  gemm_cache_clear();
  std::vector<float> a(64 * 32, 1.f), b(32 * 48, 1.f), c(64 * 48);
  GemmArgs g{.M = 64,
             .N = 48,
             .K = 32,
             .A = a.data(),
             .lda = 32,
             .B = b.data(),
             .ldb = 48,
             .C = c.data(),
             .ldc = 48};
  gemm(g);
  GemmCacheStats s = gemm_cache_stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 0u);
  for (int i = 0; i < 5; ++i) gemm(g);
  s = gemm_cache_stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 5u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(c[0], 32.f);
  // Different data, same problem: still a hit. A different beta is a different primitive.
  std::vector<float> a2(64 * 32, 2.f);
  g.A = a2.data();
  gemm(g);
  EXPECT_EQ(gemm_cache_stats().hits, 6u);
  EXPECT_EQ(c[0], 64.f);
  g.beta = 1.f;
  gemm(g);
  s = gemm_cache_stats();
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.entries, 2u);
  EXPECT_EQ(c[0], 128.f);
  // float64 goes to Eigen and leaves the cache alone.
  std::vector<double> da(4, 1.0), dc(4);
  gemm(GemmArgs{.M = 2,
                .N = 2,
                .K = 2,
                .a_dtype = DType::float64,
                .b_dtype = DType::float64,
                .c_dtype = DType::float64,
                .A = da.data(),
                .lda = 2,
                .B = da.data(),
                .ldb = 2,
                .C = dc.data(),
                .ldc = 2});
  EXPECT_EQ(gemm_cache_stats().misses, 2u);
  EXPECT_EQ(dc[3], 2.0);
  gemm_cache_clear();
  EXPECT_EQ(gemm_cache_stats().entries, 0u);
}

// ---- concurrency
// ---------------------------------------------------------------------------------
TEST(Gemm, ConcurrentCallersGetTheirOwnResults) {
  // Ranks-as-threads (Gloo tests) call gemm at the same time on the same shapes.
  constexpr int kThreads = 4, kIters = 20;
  const int64_t M = 48, N = 40, K = 56;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int it = 0; it < kIters; ++it) {
        const float s = float(t + 1) * 0.25f;
        std::vector<float> a(M * K, s), b(K * N, 1.f), c(M * N, -1.f);
        std::vector<uint16_t> ab(M * K), bb(K * N, 0x3f80);
        for (auto& v : ab) v = uint16_t(std::bit_cast<uint32_t>(s) >> 16);
        GemmArgs g{.M = M,
                   .N = N,
                   .K = K,
                   .A = a.data(),
                   .lda = K,
                   .B = b.data(),
                   .ldb = N,
                   .C = c.data(),
                   .ldc = N};
        gemm(g);
        for (float v : c) failures[t] += v != s * float(K);
        GemmArgs h = g;
        h.a_dtype = h.b_dtype = DType::bfloat16;
        h.A = ab.data();
        h.B = bb.data();
        h.beta = 1.f;
        gemm(h);
        for (float v : c) failures[t] += v != 2 * s * float(K);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace fabric::cpu
