// LLM.int8's CUDA kernels (kernels/cuda/llm_int8_kernels.cu) checked without a device: each
// kernel's algorithm is replayed here on the host, element by element with the arithmetic it
// runs (kernels/cuda/llm_int8_math.h), and must give the CPU kernels' bits (the stubs of
// tensor/quant_kernels.h on the CPU), awkward values included: NaN and infinities, outliers at the
// threshold, all-zero and all-outlier rows and columns, one row, odd K.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/llm_int8_math.h"
#include "tensor/quant_kernels.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

namespace li8 = cuda::llm_int8;

struct Case {
  int64_t rows, K;
  float threshold;
};

const std::vector<Case> kCases = {{1, 1, 0.0f},   {1, 17, 6.0f},  {7, 33, 0.0f}, {7, 33, 2.5f},
                                  {64, 48, 6.0f}, {3, 100, 1.0f}, {40, 9, 0.5f}, {33, 65, 6.0f}};

// Input values as the kernels read them (the dtype's value widened to float).
std::vector<float> widened(const Tensor& a) { return a.to(DType::float32).to_vector<float>(); }

// A case's input: awkward values, one row all zero, one row all outliers, one column at the
// threshold exactly.
Tensor input_for(const Case& c, DType dt, uint64_t seed) {
  std::vector<float> v = test::awkward_floats(static_cast<size_t>(c.rows * c.K), seed);
  if (c.rows > 2) {
    for (int64_t k = 0; k < c.K; ++k) v[k] = 0.0f;
    for (int64_t k = 0; k < c.K; ++k) v[c.K + k] = 50.0f + static_cast<float>(k);
  }
  if (c.threshold > 0 && c.K > 3) {
    for (int64_t r = 0; r < c.rows; ++r) v[r * c.K + 3] = r % 2 ? c.threshold : 0.25f;
  }
  return from_vector<float>(v, {c.rows, c.K}).to(dt);
}

void expect_same_bytes(const void* want, const void* got, size_t n, const std::string& what) {
  EXPECT_EQ(std::memcmp(want, got, n), 0) << what;
}

std::string name_of(const Case& c, DType dt) {
  return std::string(dtype_name(dt)) + " rows " + std::to_string(c.rows) + " K " +
         std::to_string(c.K) + " threshold " + std::to_string(c.threshold);
}

TEST(CudaInt8Math, RowQuantizerReplayGivesTheCpuBits) {
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16}) {
    for (const Case& c : kCases) {
      const std::string what = name_of(c, dt);
      const Tensor A = input_for(c, dt, static_cast<uint64_t>(c.rows * 31 + c.K));
      const std::vector<float> a = widened(A);
      const auto n = static_cast<size_t>(c.rows * c.K);
      std::vector<int8_t> q_cpu(n);
      std::vector<float> s_cpu(static_cast<size_t>(c.rows));
      std::vector<uint8_t> m_cpu(static_cast<size_t>(c.K), 0);
      int8_row_quant_stub(Device::cpu())(A.data_ptr(), dt, c.rows, c.K, c.threshold, q_cpu.data(),
                                         s_cpu.data(), m_cpu.data());
      // row_absmax_kernel, then row_codes_kernel.
      std::vector<float> stats(static_cast<size_t>(c.rows));
      std::vector<uint8_t> mask(static_cast<size_t>(c.K), 0);
      for (int64_t r = 0; r < c.rows; ++r) {
        float m = 0.0f;
        for (int64_t k = 0; k < c.K; ++k) {
          const float v = a[r * c.K + k];
          if (li8::is_outlier(std::fabs(v), c.threshold)) mask[k] = 1;
          m = std::fmax(m, li8::absmax_term(v, c.threshold));
        }
        stats[r] = m;
      }
      std::vector<int8_t> q(n);
      for (size_t i = 0; i < n; ++i) {
        const int64_t r = static_cast<int64_t>(i) / c.K, k = static_cast<int64_t>(i) % c.K;
        q[i] = c.threshold > 0 && mask[k] ? int8_t{0}
                                          : li8::quant_code(a[i], li8::quant_factor(stats[r]));
      }
      expect_same_bytes(s_cpu.data(), stats.data(), stats.size() * sizeof(float), what + " stats");
      expect_same_bytes(m_cpu.data(), mask.data(), mask.size(), what + " outlier columns");
      expect_same_bytes(q_cpu.data(), q.data(), n, what + " codes");
    }
  }
}

TEST(CudaInt8Math, ColumnQuantizerReplayGivesTheCpuBits) {
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16}) {
    for (const Case& c : kCases) {
      const std::string what = name_of(c, dt);
      const Tensor A = input_for(c, dt, static_cast<uint64_t>(c.rows * 17 + c.K));
      const std::vector<float> a = widened(A);
      const auto n = static_cast<size_t>(c.rows * c.K);
      std::vector<int8_t> qt_cpu(n);
      std::vector<float> s_cpu(static_cast<size_t>(c.K));
      std::vector<uint8_t> m_cpu(static_cast<size_t>(c.K), 0);
      int8_col_quant_stub(Device::cpu())(A.data_ptr(), dt, c.rows, c.K, c.threshold, qt_cpu.data(),
                                         s_cpu.data(), m_cpu.data());
      // col_absmax_kernel (stats zeroed, maxima merged; the order does not change a maximum),
      // then col_codes_kernel writing qt (K, rows).
      std::vector<float> stats(static_cast<size_t>(c.K), 0.0f);
      std::vector<uint8_t> mask(static_cast<size_t>(c.K), 0);
      for (int64_t k = 0; k < c.K; ++k) {
        float m = 0.0f;
        for (int64_t r = 0; r < c.rows; ++r) {
          const float v = a[r * c.K + k];
          if (li8::is_outlier(std::fabs(v), c.threshold)) mask[k] = 1;
          m = std::fmax(m, li8::absmax_term(v, c.threshold));
        }
        if (m > 0.0f) stats[k] = m;
      }
      std::vector<int8_t> qt(n);
      for (int64_t k = 0; k < c.K; ++k) {
        const float factor = c.threshold > 0 && mask[k] ? 0.0f : li8::quant_factor(stats[k]);
        for (int64_t r = 0; r < c.rows; ++r) {
          qt[k * c.rows + r] = li8::quant_code(a[r * c.K + k], factor);
        }
      }
      expect_same_bytes(s_cpu.data(), stats.data(), stats.size() * sizeof(float), what + " stats");
      expect_same_bytes(m_cpu.data(), mask.data(), mask.size(), what + " outlier columns");
      expect_same_bytes(qt_cpu.data(), qt.data(), n, what + " codes");
    }
  }
}

TEST(CudaInt8Math, RowDequantizationReplayGivesTheCpuBits) {
  const int64_t rows = 37, K = 29;
  const std::vector<int8_t> q = [&] {
    std::vector<int8_t> v(static_cast<size_t>(rows * K));
    std::mt19937 rng(5);
    for (int8_t& x : v) x = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
    return v;
  }();
  std::vector<float> stats = test::awkward_floats(static_cast<size_t>(rows), 9);
  for (float& s : stats) s = std::fabs(s);
  const float scale = static_cast<float>(7.874015718698502e-3);
  std::vector<float> want(q.size()), got(q.size());
  int8_row_dequant_stub(Device::cpu())(q.data(), stats.data(), rows, K, scale, want.data());
  for (size_t i = 0; i < q.size(); ++i) {
    got[i] = li8::dequant_row_value(q[i], stats[i / K], scale);
  }
  expect_same_bytes(want.data(), got.data(), want.size() * sizeof(float), "row dequantization");
}

// epilogue_kernel's element (m, n), as T's bits widened to float.
template <typename T>
float epilogue_element(const Int8LinearEpilogue& e, int64_t m, int64_t n) {
  const T* x = static_cast<const T*>(e.x);
  float v = li8::epilogue_int8_part(e.acc[m * e.N + n], e.row_stats[m], e.col_stats[n], e.scale,
                                    e.bias != nullptr ? e.bias + n : nullptr);
  if (e.ncols > 0) {
    v = li8::round_through<T>(v);
    for (int64_t j = 0; j < e.ncols; ++j) {
      v = rounded::fma(static_cast<float>(x[m * e.K + e.cols[j]]), e.w_cols[j * e.N + n], v);
    }
  }
  return static_cast<float>(T(v));
}

template <typename T>
void expect_epilogue_bits(DType dt, bool with_bias, int64_t ncols) {
  const int64_t M = 13, N = 37, K = 21;
  const std::string what = std::string(dtype_name(dt)) + (with_bias ? " with bias" : "") + ", " +
                           std::to_string(ncols) + " outlier columns";
  std::mt19937 rng(static_cast<unsigned>(ncols * 2 + (with_bias ? 1 : 0)));
  std::vector<int32_t> acc(static_cast<size_t>(M * N));
  // Up to 127² · K and beyond 2^24, where the int32 -> float conversion rounds.
  for (int32_t& v : acc) v = static_cast<int32_t>(rng() % (1u << 26)) - (1 << 25);
  acc[0] = 127 * 127 * K;
  acc[1] = -127 * 127 * K;
  std::vector<float> row = test::awkward_floats(static_cast<size_t>(M), 3);
  std::vector<float> col = test::awkward_floats(static_cast<size_t>(N), 4);
  for (float& s : row) s = std::fabs(s);
  for (float& s : col) s = std::fabs(s);
  const std::vector<float> bias = test::awkward_floats(static_cast<size_t>(N), 5);
  const Tensor x =
      from_vector<float>(test::awkward_floats(static_cast<size_t>(M * K), 6), {M, K}).to(dt);
  std::vector<int64_t> cols;
  for (int64_t j = 0; j < ncols; ++j) cols.push_back((j * 7 + 2) % K);
  const std::vector<float> w_cols = test::awkward_floats(static_cast<size_t>(ncols * N), 8);
  Tensor out = empty({M, N}, {.dtype = dt});
  Int8LinearEpilogue e;
  e.M = M;
  e.N = N;
  e.acc = acc.data();
  e.row_stats = row.data();
  e.col_stats = col.data();
  e.scale = static_cast<float>(1.0 / (127.0 * 127.0));
  e.bias = with_bias ? bias.data() : nullptr;
  e.dtype = dt;
  e.x = x.data_ptr();
  e.K = K;
  e.cols = cols.data();
  e.ncols = ncols;
  e.w_cols = w_cols.data();
  e.out = out.data_ptr();
  int8_linear_epilogue_stub(Device::cpu())(e);
  const std::vector<float> want = out.to(DType::float32).to_vector<float>();
  int bad = 0;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      const float w = want[m * N + n], g = epilogue_element<T>(e, m, n);
      const bool same = (std::isnan(w) && std::isnan(g)) || std::memcmp(&w, &g, sizeof w) == 0;
      if (!same && ++bad <= 5) {
        ADD_FAILURE() << what << ": (" << m << ", " << n << ") CPU " << w << ", replay " << g;
      }
    }
  }
}

TEST(CudaInt8Math, ForwardEpilogueReplayGivesTheCpuBits) {
  for (bool with_bias : {false, true}) {
    for (int64_t ncols : {0, 1, 3}) {
      expect_epilogue_bits<float>(DType::float32, with_bias, ncols);
      expect_epilogue_bits<Half>(DType::float16, with_bias, ncols);
      expect_epilogue_bits<BFloat16>(DType::bfloat16, with_bias, ncols);
    }
  }
}

}  // namespace
}  // namespace fabric
