// norm_backward_row_f32 (kernels/cpu/norm_backward_row.h), the AVX-512 row of float32
// layer_norm / rms_norm backward, must give norm_backward_row<float>'s bits (the plain loops that
// define the row) in every output: tdw, tdb, dx, for row lengths on and off the fused lane-sum
// path (multiples of 64 up to 1024) and with masked tails, with and without weight, under rms,
// with dx written over g, and on values whose sums depend on the order of the additions.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/norm_backward_row.h"
#include "tests/common/order_sensitive.h"
#include "tests/common/same_bits.h"

namespace fabric::cpu {
namespace {

struct Outputs {
  std::vector<float> tdw, tdb, dx;
};

// Runs `rows` rows through one of the two kernels into tdw/tdb/dx that start from the same
// values (accumulating, as a block of norm_backward does).
template <bool kF32>
Outputs run_rows(int64_t n, int rows, bool weight, bool rms, bool want_dx, bool dx_over_g,
                 uint32_t seed) {
  Outputs o;
  o.tdw = order_sensitive(n, seed + 1);
  o.tdb = order_sensitive(n, seed + 2);
  const std::vector<float> w = order_sensitive(n, seed + 3);
  std::vector<float> xhat(n), g(n), dxbuf(n);
  for (int r = 0; r < rows; ++r) {
    const std::vector<float> x = order_sensitive(n, seed + 10 + 2 * r);
    const std::vector<float> dy = order_sensitive(n, seed + 11 + 2 * r);
    const float m = rms ? 0.0f : 0.37f * static_cast<float>(r + 1);
    const float rs = 0.013f * static_cast<float>(r + 3);
    float* dx = !want_dx ? nullptr : dx_over_g ? g.data() : dxbuf.data();
    if constexpr (kF32) {
      norm_backward_row_f32(x.data(), dy.data(), weight ? w.data() : nullptr, m, rs, n, rms,
                            o.tdw.data(), o.tdb.data(), dx, xhat.data(), g.data());
    } else {
      norm_backward_row<float>(x.data(), dy.data(), weight ? w.data() : nullptr, m, rs, n, rms,
                               o.tdw.data(), o.tdb.data(), dx, xhat.data(), g.data());
    }
    if (dx) o.dx.insert(o.dx.end(), dx, dx + n);
  }
  return o;
}

TEST(NormBackwardRowF32, SameBitsAsTheDefinition) {
  for (int64_t n : {1, 5, 15, 16, 17, 63, 64, 100, 128, 256, 320, 768, 1000, 1024, 1088, 2048}) {
    for (int variant = 0; variant < 6; ++variant) {
      const bool weight = variant % 2 == 0, rms = variant / 2 == 1, dx_over_g = variant / 2 == 2;
      const std::string what = "n=" + std::to_string(n) + (weight ? " weight" : " no weight") +
                               (rms ? " rms" : "") + (dx_over_g ? " dx over g" : "");
      const Outputs want = run_rows<false>(n, 3, weight, rms, true, dx_over_g, 7 + variant);
      const Outputs got = run_rows<true>(n, 3, weight, rms, true, dx_over_g, 7 + variant);
      expect_same_bits(got.tdw, want.tdw, what + " tdw");
      expect_same_bits(got.tdb, want.tdb, what + " tdb");
      expect_same_bits(got.dx, want.dx, what + " dx");
    }
  }
}

TEST(NormBackwardRowF32, WithoutDxOnlyAccumulates) {
  for (int64_t n : {17, 256}) {
    const Outputs want = run_rows<false>(n, 2, true, false, false, false, 3);
    const Outputs got = run_rows<true>(n, 2, true, false, false, false, 3);
    expect_same_bits(got.tdw, want.tdw, "tdw without dx");
    expect_same_bits(got.tdb, want.tdb, "tdb without dx");
    EXPECT_TRUE(got.dx.empty());
  }
}

TEST(NormBackwardRowF32, DataTellsSumOrdersApart) {
  // The lane sums must be order-sensitive on this data, or a wrong lane order could pass: the
  // row_dot of the definition differs from a left-to-right dot product.
  const int64_t n = 256;
  const std::vector<float> a = order_sensitive(n, 21), b = order_sensitive(n, 22);
  float seq = 0;
  for (int64_t j = 0; j < n; ++j) seq += a[j] * b[j];
  EXPECT_NE(std::bit_cast<uint32_t>(seq), std::bit_cast<uint32_t>(row_dot(a.data(), b.data(), n)));
}

}  // namespace
}  // namespace fabric::cpu
