// Last-dim softmax and log_softmax (kernels/cpu/softmax.cpp over softmax_torch_row.h) give torch
// 1.13's bits: every row length 1..300 and some long ones, float32, float64 and bfloat16, against
// torch's own outputs (softmax_torch_rows.h, tools/fixtures/make_softmax_rows.py); the row that
// showed the summation order (a 5-value row whose log differed by an ulp); NaN rows' bits;
// cross_entropy's loss is the negated log_softmax at the target, bit for bit; and the backward of
// both over those rows (torch's _log_softmax_backward_data / _softmax_backward_data) in its bits.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tests/common/fnv1a.h"
#include "tests/kernels/softmax_torch_rows.h"

namespace fabric {
namespace {

// make_softmax_rows.py's softmax_inputs: k / 4096 - 8 for k the bits 12..27 of a linear
// congruential sequence from `seed` (exact in float and double).
std::vector<float> softmax_inputs(int64_t n, uint32_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& e : v) {
    seed = seed * 1664525u + 1013904223u;
    e = static_cast<float>((seed >> 12) & 0xFFFF) / 4096.0f - 8.0f;
  }
  return v;
}

// A (1, n) tensor of dtype dt holding v (bfloat16: the high 16 bits of each float, as the script).
Tensor row_tensor(const std::vector<float>& v, DType dt) {
  const int64_t n = static_cast<int64_t>(v.size());
  Tensor t = empty({1, n}, {.dtype = dt});
  for (int64_t i = 0; i < n; ++i) {
    const float f = v[static_cast<size_t>(i)];
    if (dt == DType::float32) {
      static_cast<float*>(t.data_ptr())[i] = f;
    } else if (dt == DType::float64) {
      static_cast<double*>(t.data_ptr())[i] = f;
    } else {
      const uint32_t u = std::bit_cast<uint32_t>(f);
      static_cast<uint16_t*>(t.data_ptr())[i] = static_cast<uint16_t>(u >> 16);
    }
  }
  return t;
}

using testing::fnv1a;

TEST(SoftmaxTorchRows, EveryLengthMatchesTorch113) {
  struct Case {
    DType dt;
    uint64_t SoftmaxTorchRow::*log, SoftmaxTorchRow::*soft;
  };
  const Case cases[] = {
      {DType::float32, &SoftmaxTorchRow::f32_log, &SoftmaxTorchRow::f32_softmax},
      {DType::float64, &SoftmaxTorchRow::f64_log, &SoftmaxTorchRow::f64_softmax},
      {DType::bfloat16, &SoftmaxTorchRow::bf16_log, &SoftmaxTorchRow::bf16_softmax}};
  for (const SoftmaxTorchRow& r : kSoftmaxTorchRows) {
    const std::vector<float> v = softmax_inputs(r.n, static_cast<uint32_t>(r.n));
    for (const Case& c : cases) {
      const Tensor x = row_tensor(v, c.dt);
      EXPECT_EQ(fnv1a(log_softmax(x, -1)), r.*c.log)
          << "log_softmax " << dtype_name(c.dt) << " n=" << r.n << ": not torch's bits";
      EXPECT_EQ(fnv1a(softmax(x, -1)), r.*c.soft)
          << "softmax " << dtype_name(c.dt) << " n=" << r.n << ": not torch's bits";
    }
  }
}

// The script's gradient: softmax_inputs(n, n + 1000003) / 3, divided in float32 (float64 for its
// rows; bfloat16: the float's high bits), so that no sum of it is exact and its order shows.
Tensor grad_tensor(const std::vector<float>& v, DType dt) {
  std::vector<float> third(v.size());
  for (size_t i = 0; i < v.size(); ++i) third[i] = v[i] / 3.0f;
  if (dt != DType::float64) return row_tensor(third, dt);
  Tensor t = row_tensor(v, dt);
  auto* p = static_cast<double*>(t.data_ptr());
  for (int64_t i = 0; i < t.numel(); ++i) p[i] /= 3.0;
  return t;
}

// The gradients of the same rows' outputs for that gradient, in the row's dtype. The outputs are
// fabric's own, which the test above holds to torch's bits.
TEST(SoftmaxTorchRows, BackwardEveryLengthMatchesTorch113) {
  struct Case {
    DType dt;
    uint64_t SoftmaxBackwardTorchRow::*log, SoftmaxBackwardTorchRow::*soft;
  };
  const Case cases[] = {
      {DType::float32, &SoftmaxBackwardTorchRow::f32_log, &SoftmaxBackwardTorchRow::f32_softmax},
      {DType::float64, &SoftmaxBackwardTorchRow::f64_log, &SoftmaxBackwardTorchRow::f64_softmax},
      {DType::bfloat16, &SoftmaxBackwardTorchRow::bf16_log,
       &SoftmaxBackwardTorchRow::bf16_softmax}};
  for (const SoftmaxBackwardTorchRow& r : kSoftmaxBackwardTorchRows) {
    const std::vector<float> v = softmax_inputs(r.n, static_cast<uint32_t>(r.n));
    const std::vector<float> w = softmax_inputs(r.n, static_cast<uint32_t>(r.n + 1000003));
    for (const Case& c : cases) {
      const Tensor x = row_tensor(v, c.dt), g = grad_tensor(w, c.dt);
      EXPECT_EQ(fnv1a(log_softmax_backward(g, log_softmax(x, -1), -1)), r.*c.log)
          << "log_softmax backward " << dtype_name(c.dt) << " n=" << r.n << ": not torch's bits";
      EXPECT_EQ(fnv1a(softmax_backward(g, softmax(x, -1), -1)), r.*c.soft)
          << "softmax backward " << dtype_name(c.dt) << " n=" << r.n << ": not torch's bits";
    }
  }
}

// A bfloat16 output's gradient for a wider input (log_softmax(x, dtype=bfloat16) of float32 or
// float64 x) is torch's bfloat16 gradient cast up: computed and rounded in bfloat16 first.
TEST(SoftmaxTorchRows, BackwardIntoAWiderInputIsTheBfloat16GradientCastUp) {
  for (int64_t n : {5, 40, 1000}) {
    const Tensor x = row_tensor(softmax_inputs(3 * n, 11), DType::bfloat16).reshape({3, n});
    const Tensor g = grad_tensor(softmax_inputs(3 * n, 12), DType::bfloat16).reshape({3, n});
    for (DType wide : {DType::float32, DType::float64}) {
      for (bool log : {true, false}) {
        const Tensor y = log ? log_softmax(x, -1) : softmax(x, -1);
        const Tensor want =
            (log ? log_softmax_backward(g, y, -1) : softmax_backward(g, y, -1)).to(wide);
        const Tensor got =
            log ? log_softmax_backward(g, y, -1, wide) : softmax_backward(g, y, -1, wide);
        EXPECT_EQ(fnv1a(got), fnv1a(want))
            << (log ? "log_softmax" : "softmax") << " backward into " << dtype_name(wide)
            << " n=" << n << ": not the bfloat16 gradient cast up";
      }
    }
  }
}

std::vector<uint32_t> bits_of(const Tensor& t) {
  std::vector<uint32_t> b(static_cast<size_t>(t.numel()));
  std::memcpy(b.data(), t.data_ptr(), b.size() * sizeof(uint32_t));
  return b;
}

// torch adds a row shorter than 8 floats one value at a time; a 16-lane tree gave the sum
// 1.8586468 for 1.8586469 and log_softmax's last value -0.61984867 for -0.61984873.
TEST(SoftmaxTorchRows, ShortRowSumsInTorchsOrder) {
  const Tensor x = from_vector<float>({0.21875f, -2.609375f, 0.125f, -2.1875f, 1.09375f}, {5});
  EXPECT_EQ(bits_of(log_softmax(x, 0)),
            (std::vector<uint32_t>{0xbfbf5734, 0xc08a55cd, 0xbfcb5734, 0xc079ab9a, 0xbf1eae68}));
  EXPECT_EQ(bits_of(softmax(x, 0)),
            (std::vector<uint32_t>{0x3e65aa51, 0x3c59421d, 0x3e511cd6, 0x3ca5a3bf, 0x3f09bc0f}));
}

// torch's vec::maximum makes a NaN row's max the all-ones NaN, which log_softmax's x - max
// carries to every other value (a NaN input keeps its own bits: it is the first operand).
TEST(SoftmaxTorchRows, NanRowsCarryTorchsNanBits) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const uint32_t ones = 0xffffffffu, q = 0x7fc00000u;
  EXPECT_EQ(bits_of(log_softmax(from_vector<float>({nan, 1.0f, 2.0f}, {3}), 0)),
            (std::vector<uint32_t>{q, ones, ones}));
  EXPECT_EQ(bits_of(log_softmax(from_vector<float>({1.0f, 2.0f, nan}, {3}), 0)),
            (std::vector<uint32_t>{ones, ones, q}));
  EXPECT_EQ(bits_of(log_softmax(from_vector<float>({nan}, {1}), 0)), (std::vector<uint32_t>{q}));
  std::vector<float> long_row(16, 1.0f);
  long_row[5] = nan;
  const std::vector<uint32_t> got = bits_of(log_softmax(from_vector(long_row, {16}), 0));
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], i == 5 ? q : ones) << "i=" << i;
}

// cross_entropy's fused rows share log_softmax's sum and log: loss = -log_softmax(x)[target].
TEST(SoftmaxTorchRows, CrossEntropyIsTheNegatedLogSoftmaxPick) {
  for (DType dt : {DType::float32, DType::float64}) {
    for (int64_t n : {1, 3, 7, 8, 9, 17, 49, 100, 257, 1000}) {
      const int64_t rows = 4;
      std::vector<float> v = softmax_inputs(rows * n, static_cast<uint32_t>(n + 77));
      Tensor x = from_vector(v, {rows, n}).to(dt);
      std::vector<int64_t> t(rows);
      for (int64_t r = 0; r < rows; ++r) t[static_cast<size_t>(r)] = (r * 7 + 3) % n;
      const Tensor target = from_vector(t, {rows});
      const std::vector<double> loss = cross_entropy(x, target, -100, "none").to_vector<double>();
      const std::vector<double> lp = log_softmax(x, 1).to_vector<double>();
      for (int64_t r = 0; r < rows; ++r) {
        const double want = -lp[static_cast<size_t>(r * n + t[static_cast<size_t>(r)])];
        EXPECT_EQ(std::bit_cast<uint64_t>(loss[static_cast<size_t>(r)]),
                  std::bit_cast<uint64_t>(want))
            << dtype_name(dt) << " n=" << n << " row " << r << ": " << loss[r] << " vs " << want;
      }
    }
  }
}

}  // namespace
}  // namespace fabric
