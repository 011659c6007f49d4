// The wide layer_norm / rms_norm kernels (kernels/cuda/norm_rows_wide.h) checked without a device:
// whole grids are replayed on the host with the header's per-thread functions and the kernels'
// folds (a row's lanes as row_allreduce folds them, the backward's thread rows in order, then the
// blocks' partial rows as the finish kernel folds them). Every output is held to a float64
// reference of the rounded inputs, over row lengths that give one to 256 lanes and each pieces
// count, grids smaller and larger than the rows, and both norms with and without affine
// parameters; on integer rows of a power-of-two length, where every sum is exact, the forward must
// equal the CPU's two-pass form bit for bit. plan/fits are checked on GPT-2's shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cuda/norm_rows_wide.h"
#include "tensor/float_formats.h"

namespace fabric {
namespace {

using cuda::NormRowsWide;

struct HostLoad {
  template <typename T, int E>
  void operator()(const T* p, float (&v)[E]) const {
    for (int j = 0; j < E; ++j) v[j] = static_cast<float>(p[j]);
  }
};
struct HostStore {
  template <typename T, int E>
  void operator()(T* p, const float (&v)[E]) const {
    for (int j = 0; j < E; ++j) p[j] = T(v[j]);
  }
};

// What row_allreduce(.., Plus) gives every lane of a row: each warp's xor butterfly (lanes
// t and t ^ m add their values, m = width / 2 down to 1), then the warps' results in warp order.
float row_allreduce(std::vector<float> v) {
  const int lanes = static_cast<int>(v.size());
  const int width = lanes < 32 ? lanes : 32;
  for (int m = width / 2; m > 0; m /= 2) {
    std::vector<float> next(v.size());
    for (int t = 0; t < lanes; ++t) next[t] = v[t] + v[t ^ m];
    v = next;
  }
  float r = v[0];
  for (int w = 1; w < lanes / 32; ++w) r += v[w * 32];
  return r;
}

struct Case {
  int64_t rows, cols;
  bool rms, weight, bias;
};

// x, weight and bias of T; dy of Y (T, or bf16/f16 beside float32 rows).
template <typename T, typename Y = T>
struct Data {
  std::vector<T> x, w, b;
  std::vector<Y> dy;
};

// Smooth rows, or with `integers` rows of small integers whose halves mirror each other about an
// integer mean (cols even), so that every sum the forward makes is exact.
template <typename T, typename Y = T>
Data<T, Y> make_data(const Case& c, bool integers) {
  Data<T, Y> d;
  const int64_t n = c.rows * c.cols, half = c.cols / 2;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i / c.cols, j = i % c.cols;
    float u = std::sin(0.37f * static_cast<float>(i)) * 3.0f + 0.5f + 0.01f * static_cast<float>(r);
    if (integers) {
      const float mean = static_cast<float>(r % 3) - 1.0f;
      const float k = static_cast<float>(((r * c.cols + j % half) * 37 + 11) % 17) - 8.0f;
      u = j < half ? mean + k : mean - k;
    }
    d.x.push_back(T(u));
    d.dy.push_back(Y(std::cos(0.23f * static_cast<float>(i)) - 0.2f));
  }
  for (int64_t j = 0; j < c.cols; ++j) {
    d.w.push_back(T(1.0f + 0.125f * static_cast<float>(j % 5)));
    d.b.push_back(T(-0.5f + 0.0625f * static_cast<float>(j % 7)));
  }
  return d;
}

struct Forward {
  std::vector<float> y, mean, rstd;
};

// The forward with its output rounded to O (x's T, or bf16/f16 beside float32 rows).
template <typename T, int K, typename O = T>
Forward replay_forward(const Case& c, const Data<T>& d, const NormRowsWide& s) {
  constexpr int E = cuda::kNormRowsPieceBytes / sizeof(T);
  std::vector<O> y(static_cast<size_t>(c.rows * c.cols), O(-777.0f));
  Forward f;
  const float inv_n = 1.0f / static_cast<float>(c.cols), eps = 1e-5f;
  const T* w = c.weight ? d.w.data() : nullptr;
  const T* b = c.bias ? d.b.data() : nullptr;
  for (int64_t row = 0; row < c.rows; ++row) {
    std::vector<float> part(s.lanes);
    auto slice = [&](int lane, float(&out)[K][E]) {
      cuda::norm_rows_load(d.x.data(), s, row, lane, s.live(lane), HostLoad{}, out);
    };
    float mean = 0.0f;
    if (!c.rms) {
      for (int lane = 0; lane < s.lanes; ++lane) {
        float v[K][E];
        slice(lane, v);
        part[lane] = cuda::norm_rows_thread_sum<true>(v, s.live(lane), 0.0f);
      }
      mean = fabric::rounded::mul(row_allreduce(part), inv_n);
    }
    for (int lane = 0; lane < s.lanes; ++lane) {
      float v[K][E];
      slice(lane, v);
      part[lane] = cuda::norm_rows_thread_sum<false>(v, s.live(lane), mean);
    }
    const float rstd = norm::norm_rstd(row_allreduce(part), inv_n, eps);
    for (int lane = 0; lane < s.lanes; ++lane) {
      float v[K][E];
      slice(lane, v);
      const int live = s.live(lane);
      if (w && b)
        cuda::norm_rows_write<true, true>(y.data(), w, b, s, row, lane, live, v, mean, rstd,
                                          HostLoad{}, HostStore{});
      else if (w)
        cuda::norm_rows_write<true, false>(y.data(), w, b, s, row, lane, live, v, mean, rstd,
                                           HostLoad{}, HostStore{});
      else
        cuda::norm_rows_write<false, false>(y.data(), w, b, s, row, lane, live, v, mean, rstd,
                                            HostLoad{}, HostStore{});
    }
    f.mean.push_back(mean);
    f.rstd.push_back(rstd);
  }
  for (const O& v : y) f.y.push_back(static_cast<float>(v));
  return f;
}

struct Backward {
  std::vector<float> dx, dw, db;
};

template <typename T, int K, typename Y = T>
Backward replay_backward(const Case& c, const Data<T, Y>& d, const Forward& f, NormRowsWide s) {
  constexpr int E = cuda::kNormRowsPieceBytes / sizeof(T);
  const float inv_n = 1.0f / static_cast<float>(c.cols);
  const T* w = c.weight ? d.w.data() : nullptr;
  std::vector<T> dx(static_cast<size_t>(c.rows * c.cols), T(-777.0f));
  const int rpb = s.rows_per_block();
  const int64_t cols = c.cols;
  std::vector<float> partial(static_cast<size_t>(s.blocks * 2 * cols), -555.0f);
  struct Acc {
    float dw[K][E] = {}, db[K][E] = {};
  };
  for (int64_t blk = 0; blk < s.blocks; ++blk) {
    std::vector<std::vector<Acc>> acc(rpb, std::vector<Acc>(s.lanes));
    const int64_t steps = cuda::norm_rows_backward_steps(s, blk);
    for (int64_t step = 0; step < steps; ++step) {
      for (int y = 0; y < rpb; ++y) {
        const int64_t row = cuda::norm_rows_backward_row(s, blk, y, step);
        if (row >= c.rows) continue;
        const float mean = c.rms ? 0.0f : f.mean[row], rstd = f.rstd[row];
        std::vector<float> sg(s.lanes), sgx(s.lanes);
        auto halves = [&](int lane, float(&xhat)[K][E], float(&g)[K][E]) {
          const int live = s.live(lane);
          cuda::norm_rows_load(d.x.data(), s, row, lane, live, HostLoad{}, xhat);
          cuda::norm_rows_load(d.dy.data(), s, row, lane, live, HostLoad{}, g);
          if (w)
            cuda::norm_rows_backward_sums<true>(xhat, g, w, s, lane, live, mean, rstd, HostLoad{},
                                                sg[lane], sgx[lane]);
          else
            cuda::norm_rows_backward_sums<false>(xhat, g, w, s, lane, live, mean, rstd, HostLoad{},
                                                 sg[lane], sgx[lane]);
        };
        for (int lane = 0; lane < s.lanes; ++lane) {
          float xhat[K][E], g[K][E];
          halves(lane, xhat, g);
        }
        const float mean_g = c.rms ? 0.0f : fabric::rounded::mul(row_allreduce(sg), inv_n);
        const float mean_gx = fabric::rounded::mul(row_allreduce(sgx), inv_n);
        for (int lane = 0; lane < s.lanes; ++lane) {
          float xhat[K][E], g[K][E];
          halves(lane, xhat, g);
          Acc& a = acc[y][lane];
          if (w)
            cuda::norm_rows_backward_dx<true>(dx.data(), xhat, g, w, s, row, lane, s.live(lane),
                                              rstd, mean_g, mean_gx, HostLoad{}, HostStore{}, a.dw,
                                              a.db);
          else
            cuda::norm_rows_backward_dx<false>(dx.data(), xhat, g, w, s, row, lane, s.live(lane),
                                               rstd, mean_g, mean_gx, HostLoad{}, HostStore{}, a.dw,
                                               a.db);
        }
      }
    }
    // The thread rows fold into thread row 0 in order; its live slots make the partial row.
    for (int lane = 0; lane < s.lanes; ++lane) {
      for (int y = 1; y < rpb; ++y)
        for (int k = 0; k < K; ++k)
          for (int j = 0; j < E; ++j) {
            acc[0][lane].dw[k][j] += acc[y][lane].dw[k][j];
            acc[0][lane].db[k][j] += acc[y][lane].db[k][j];
          }
      for (int k = 0; k < s.live(lane); ++k)
        for (int j = 0; j < E; ++j) {
          const int64_t col = s.slot_start(lane, k) + j;
          partial[blk * 2 * cols + col] = acc[0][lane].dw[k][j];
          partial[blk * 2 * cols + cols + col] = acc[0][lane].db[k][j];
        }
    }
  }
  Backward out;
  for (const T& v : dx) out.dx.push_back(static_cast<float>(v));
  // The finish kernel: thread row t sums blocks t, t + 8, ... from 0; then rows 1..7 onto row 0.
  for (int64_t col = 0; col < 2 * cols; ++col) {
    float sums[cuda::kNormRowsFinishY];
    for (int t = 0; t < cuda::kNormRowsFinishY; ++t) {
      sums[t] = 0.0f;
      for (int64_t blk = t; blk < s.blocks; blk += cuda::kNormRowsFinishY)
        sums[t] += partial[blk * 2 * cols + col];
    }
    float v = sums[0];
    for (int t = 1; t < cuda::kNormRowsFinishY; ++t) v += sums[t];
    (col < cols ? out.dw : out.db).push_back(v);
  }
  return out;
}

// float64 forward and backward of the rounded inputs.
template <typename T>
void reference(const Case& c, const Data<T>& d, std::vector<double>& y, std::vector<double>& dx,
               std::vector<double>& dw, std::vector<double>& db) {
  const int64_t n = c.cols;
  y.assign(c.rows * n, 0.0);
  dx.assign(c.rows * n, 0.0);
  dw.assign(n, 0.0);
  db.assign(n, 0.0);
  for (int64_t r = 0; r < c.rows; ++r) {
    auto X = [&](int64_t j) { return static_cast<double>(static_cast<float>(d.x[r * n + j])); };
    auto G = [&](int64_t j) { return static_cast<double>(static_cast<float>(d.dy[r * n + j])); };
    auto W = [&](int64_t j) {
      return c.weight ? static_cast<double>(static_cast<float>(d.w[j])) : 1.0;
    };
    double mean = 0.0, sq = 0.0;
    if (!c.rms) {
      for (int64_t j = 0; j < n; ++j) mean += X(j);
      mean /= static_cast<double>(n);
    }
    for (int64_t j = 0; j < n; ++j) sq += (X(j) - mean) * (X(j) - mean);
    const double rstd = 1.0 / std::sqrt(sq / static_cast<double>(n) + 1e-5);
    double mg = 0.0, mgx = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      const double xhat = (X(j) - mean) * rstd;
      const double b = c.bias ? static_cast<double>(static_cast<float>(d.b[j])) : 0.0;
      y[r * n + j] = xhat * W(j) + b;
      mg += G(j) * W(j);
      mgx += G(j) * W(j) * xhat;
      dw[j] += G(j) * xhat;
      db[j] += G(j);
    }
    mg = c.rms ? 0.0 : mg / static_cast<double>(n);
    mgx /= static_cast<double>(n);
    for (int64_t j = 0; j < n; ++j) {
      const double xhat = (X(j) - mean) * rstd;
      dx[r * n + j] = rstd * (G(j) * W(j) - mg - xhat * mgx);
    }
  }
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rel,
                  const char* what, const Case& c, int64_t blocks) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double scale = 1e-3;
  for (double v : want) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], rel * scale)
        << what << " element " << i << " rows " << c.rows << " cols " << c.cols << " rms " << c.rms
        << " weight " << c.weight << " bias " << c.bias << " blocks " << blocks;
}

template <typename T, int K>
void check_case(const Case& c, double rel) {
  const NormRowsWide plan = cuda::plan_norm_rows_wide(c.rows, c.cols, sizeof(T));
  ASSERT_EQ(plan.per_thread, K) << c.cols;
  const Data<T> d = make_data<T>(c, false);
  std::vector<double> y, dx, dw, db;
  reference(c, d, y, dx, dw, db);
  const Forward f = replay_forward<T, K>(c, d, plan);
  expect_close(f.y, y, rel, "y", c, 0);
  for (const int64_t resident : {int64_t{1}, int64_t{3}, int64_t{1} << 20}) {
    const NormRowsWide s = cuda::norm_rows_backward_grid(plan, resident);
    const Backward b = replay_backward<T, K>(c, d, f, s);
    expect_close(b.dx, dx, rel, "dx", c, s.blocks);
    if (c.weight) expect_close(b.dw, dw, rel, "dweight", c, s.blocks);
    if (!c.rms) expect_close(b.db, db, rel, "dbias", c, s.blocks);
  }
}

// Rows over every pieces count and lane count, both norms, each affine form the kernels take.
template <typename T>
void check_dtype(double rel) {
  constexpr int64_t E = cuda::kNormRowsPieceBytes / sizeof(T);
  for (const bool rms : {false, true}) {
    for (const int affine : {0, 1, 2}) {  // none, weight, weight and bias
      auto run = [&](int64_t rows, int64_t pieces, auto k) {
        constexpr int K = decltype(k)::value;
        const Case c{rows, pieces * E, rms, affine >= 1, affine == 2 && !rms};
        check_case<T, K>(c, rel);
      };
      using I1 = std::integral_constant<int, 1>;
      using I2 = std::integral_constant<int, 2>;
      using I4 = std::integral_constant<int, 4>;
      run(5, 1, I1{});    // a lane a row, 256 rows a block
      run(9, 3, I1{});    // 4 lanes, the last idle
      run(40, 31, I1{});  // 32 lanes
      run(7, 33, I2{});   // a warp, 2 pieces for one lane
      run(3, 100, I4{});  // a warp, 4 slots, 4 live for the first lanes only
      if constexpr (E == 4) {
        using I6 = std::integral_constant<int, 6>;
        using I8 = std::integral_constant<int, 8>;
        run(33, 192, I6{});  // GPT-2's C = 768 in float32
        run(4, 256, I8{});   // C = 1024
        run(3, 400, I8{});   // C = 1600: 64 lanes, 4 rows a block
        run(5, 1000, I8{});  // 128 lanes, 2 rows a block
        run(2, 2048, I8{});  // 256 lanes, a row a block
        run(2, 2045, I8{});  // 256 lanes, the last row's last lanes short
      } else {
        run(33, 96, I4{});   // GPT-2's C = 768 in bf16/f16: 3 of 4 slots live
        run(3, 200, I4{});   // C = 1600: 64 lanes, 4 rows a block
        run(5, 500, I4{});   // 128 lanes, 2 rows a block
        run(2, 1024, I4{});  // 256 lanes, a row a block
        run(2, 1023, I4{});  // 256 lanes, the last lane 3 pieces
      }
    }
  }
}

TEST(CudaNormRowsWide, Float32GridsMatchTheFloat64Reference) { check_dtype<float>(2e-5); }
TEST(CudaNormRowsWide, BFloat16GridsMatchTheFloat64Reference) { check_dtype<BFloat16>(2e-2); }
TEST(CudaNormRowsWide, Float16GridsMatchTheFloat64Reference) { check_dtype<Half>(3e-3); }

// Integer rows of 256 elements about an integer mean: every sum, the mean and each deviation's
// square are exact, so the mean and rstd equal the CPU's two passes (sum * 1/n, fma(sum of squares,
// 1/n, eps)) and the output equals norm_element's, bit for bit, whatever the lanes' order.
TEST(CudaNormRowsWide, ExactRowsGiveTheCpuFormsBitForBit) {
  const Case c{6, 256, false, true, true};
  const Data<float> d = make_data<float>(c, true);
  const NormRowsWide s = cuda::plan_norm_rows_wide(c.rows, c.cols, sizeof(float));
  ASSERT_EQ(s.lanes, 32);
  ASSERT_EQ(s.per_thread, 2);
  const Forward f = replay_forward<float, 2>(c, d, s);
  const float inv_n = 1.0f / 256.0f;
  for (int64_t r = 0; r < c.rows; ++r) {
    float sum = 0.0f, sq = 0.0f;
    for (int64_t j = 0; j < c.cols; ++j) sum += d.x[r * c.cols + j];
    const float mean = sum * inv_n;
    for (int64_t j = 0; j < c.cols; ++j) {
      const float dv = d.x[r * c.cols + j] - mean;
      sq = std::fma(dv, dv, sq);
    }
    const float rstd = norm::norm_rstd(sq, inv_n, 1e-5f);
    EXPECT_EQ(f.mean[r], mean);
    EXPECT_EQ(f.rstd[r], rstd);
    for (int64_t j = 0; j < c.cols; ++j) {
      const float want =
          norm::norm_element<true, true>(d.x[r * c.cols + j], mean, rstd, d.w[j], d.b[j]);
      const float got = f.y[r * c.cols + j];
      ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << r << " " << j;
    }
  }
}

// The autocast cast folded into the norm: a bf16 output beside float32 rows is the float32
// output rounded, bit for bit, and a bf16 gradient gives what its exact float32 widening gives.
TEST(CudaNormRowsWide, NarrowOutputsAndGradientsAreTheCastsBits) {
  const Case c{9, 768, false, true, true};
  const NormRowsWide s = cuda::plan_norm_rows_wide(c.rows, c.cols, sizeof(float));
  const Data<float, BFloat16> narrow = make_data<float, BFloat16>(c, false);
  Data<float> wide{narrow.x, narrow.w, narrow.b, {}};
  for (const BFloat16& g : narrow.dy) wide.dy.push_back(static_cast<float>(g));
  const Forward f32 = replay_forward<float, 6>(c, wide, s);
  const Forward bf16 = replay_forward<float, 6, BFloat16>(c, wide, s);
  for (size_t i = 0; i < f32.y.size(); ++i) {
    const float want = static_cast<float>(BFloat16(f32.y[i]));
    ASSERT_EQ(std::memcmp(&bf16.y[i], &want, 4), 0) << i;
  }
  const NormRowsWide grid = cuda::norm_rows_backward_grid(s, 4);
  const Backward from_f32 = replay_backward<float, 6>(c, wide, f32, grid);
  const Backward from_bf16 = replay_backward<float, 6, BFloat16>(c, narrow, f32, grid);
  for (const auto& [a, b] :
       {std::pair{&from_f32.dx, &from_bf16.dx}, std::pair{&from_f32.dw, &from_bf16.dw},
        std::pair{&from_f32.db, &from_bf16.db}}) {
    ASSERT_EQ(a->size(), b->size());
    EXPECT_EQ(std::memcmp(a->data(), b->data(), a->size() * 4), 0);
  }
}

TEST(CudaNormRowsWide, PlansForGptShapes) {
  // GPT-2 124M: 8192 rows of C = 768.
  NormRowsWide s = cuda::plan_norm_rows_wide(8192, 768, 4);
  EXPECT_EQ(s.elems, 4);
  EXPECT_EQ(s.lanes, 32);
  EXPECT_EQ(s.per_thread, 6);
  EXPECT_EQ(s.rows_per_block(), 8);
  EXPECT_EQ(s.blocks, 1024);
  EXPECT_EQ(s.live(0), 6);
  EXPECT_EQ(s.live(31), 6);
  const NormRowsWide b = cuda::norm_rows_backward_grid(s, 2 * 132);
  EXPECT_EQ(b.blocks, 264);
  EXPECT_EQ(cuda::norm_rows_backward_steps(b, 0), 4);  // rows 0..7, 2112.., 4224.., 6336..
  EXPECT_EQ(cuda::norm_rows_backward_steps(b, 263),
            3);  // rows 2104.., 4216.., 6328..; 8440 is past
  EXPECT_EQ(cuda::norm_rows_backward_row(b, 263, 7, 2), 2 * 264 * 8 + 263 * 8 + 7);
  s = cuda::plan_norm_rows_wide(8192, 768, 2);
  EXPECT_EQ(s.elems, 8);
  EXPECT_EQ(s.lanes, 32);
  EXPECT_EQ(s.per_thread, 4);
  EXPECT_EQ(s.live(0), 3);
  s = cuda::plan_norm_rows_wide(10, 8192, 4);  // the longest float32 row: a block of 256
  EXPECT_EQ(s.lanes, 256);
  EXPECT_EQ(s.per_thread, 8);
  EXPECT_EQ(s.rows_per_block(), 1);
}

TEST(CudaNormRowsWide, FitsOnlyAlignedRowsOfWholePieces) {
  alignas(16) static float buf[4 * 1024 + 8];
  NormArgs a;
  a.rows = 4;
  a.cols = 768;
  a.x = buf;
  a.y = buf;
  a.weight = buf;
  a.bias = buf;
  a.rstd = buf;
  a.mean = buf;
  NormRowsWide plan;
  EXPECT_TRUE(cuda::norm_rows_wide_fits(a, &plan));
  NormArgs bad = a;
  bad.cols = 770;  // not whole pieces
  EXPECT_FALSE(cuda::norm_rows_wide_fits(bad, &plan));
  bad = a;
  bad.x = buf + 1;  // 4 bytes off 16
  EXPECT_FALSE(cuda::norm_rows_wide_fits(bad, &plan));
  bad = a;
  bad.weight_dtype = DType::bfloat16;  // the weight's dtype is not x's
  EXPECT_FALSE(cuda::norm_rows_wide_fits(bad, &plan));
  bad = a;
  bad.weight = nullptr;  // a bias without a weight
  EXPECT_FALSE(cuda::norm_rows_wide_fits(bad, &plan));
  bad.rms = true;  // rms_norm ignores the bias
  EXPECT_TRUE(cuda::norm_rows_wide_fits(bad, &plan));
  bad = a;
  bad.x_dtype = DType::float64;
  EXPECT_FALSE(cuda::norm_rows_wide_fits(bad, &plan));
  bad = a;
  bad.cols = 8192 + 4;  // longer than a block of 256 threads holds
  EXPECT_FALSE(cuda::norm_rows_wide_fits(bad, &plan));
  // A bf16 output beside float32 rows (the autocast cast folded in): pieces of 4 take 8 bytes.
  NormArgs narrow = a;
  narrow.y_dtype = DType::bfloat16;
  narrow.y = buf + 2;  // 8 bytes off 16
  EXPECT_TRUE(cuda::norm_rows_wide_fits(narrow, &plan));
  EXPECT_EQ(plan.elems, 4);
  narrow.y = reinterpret_cast<char*>(buf) + 4;  // 4 bytes off
  EXPECT_FALSE(cuda::norm_rows_wide_fits(narrow, &plan));
  narrow = a;
  narrow.x_dtype = narrow.weight_dtype = narrow.bias_dtype = DType::bfloat16;
  narrow.y_dtype = DType::float16;  // only float32 rows take another output dtype
  EXPECT_FALSE(cuda::norm_rows_wide_fits(narrow, &plan));

  NormBackwardArgs g;
  g.rows = 4;
  g.cols = 768;
  g.x = buf;
  g.dy = buf;
  g.dx = buf;
  g.rstd = buf;
  EXPECT_TRUE(cuda::norm_rows_wide_fits(g, &plan));
  g.dy_dtype = DType::float16;  // the gradient of a bf16/f16 output, read as it comes
  EXPECT_TRUE(cuda::norm_rows_wide_fits(g, &plan));
  g.dx = nullptr;  // only dweight/dbias wanted: the general kernels
  EXPECT_FALSE(cuda::norm_rows_wide_fits(g, &plan));
}

}  // namespace
}  // namespace fabric
