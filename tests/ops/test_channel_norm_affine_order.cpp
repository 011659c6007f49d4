// The per-plane affine map of batch_norm/group_norm (plane_affine_stub) rounds every element in
// one order whatever the plane length: the same coefficients give the same bits on planes of one
// value (BatchNorm1d's (N, C)) as on longer planes; and batch_norm's forward gives torch 1.13's
// bits (x * alpha + beta, beta = bias - mean * alpha, fused) at both lengths
// (tools/fixtures/make_channel_norm_affine_rows.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tensor/channel_norm_kernels.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/ops/channel_norm_affine_torch_rows.h"

namespace fabric {
namespace {

std::vector<float> pseudo_random(size_t n, uint32_t seed, float scale, float offset) {
  std::vector<float> v(n);
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = (static_cast<float>(s >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f) * scale + offset;
  }
  return v;
}

std::vector<uint32_t> bits(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

// Every combination of the (a, u), center, (b, v) and c terms: P planes of length L, and the same
// elements as P * L planes of length 1 with each plane's coefficients repeated L times.
TEST(ChannelNormAffineOrder, PlaneLengthOneGivesTheLongPlanesBits) {
  constexpr int64_t P = 12, L = 37;
  const size_t n = P * L;
  const std::vector<float> u = pseudo_random(n, 1, 3.0f, 1.5f), v = pseudo_random(n, 2, 2.0f, 0);
  const std::vector<float> a = pseudo_random(P, 3, 1.7f, 0.2f), b = pseudo_random(P, 4, 1.3f, 0);
  const std::vector<float> m = pseudo_random(P, 5, 1.1f, 1.5f), c = pseudo_random(P, 6, 0.9f, 0);
  auto repeat = [&](const std::vector<float>& per_plane) {
    std::vector<float> r(n);
    for (size_t i = 0; i < n; ++i) r[i] = per_plane[i / L];
    return r;
  };
  const std::vector<float> a1 = repeat(a), b1 = repeat(b), m1 = repeat(m), c1 = repeat(c);
  for (int terms = 1; terms < 16; ++terms) {
    const bool has_a = terms & 1, has_m = terms & 2, has_b = terms & 4, has_c = terms & 8;
    if (has_m && !has_a) continue;  // the center belongs to the a term
    SCOPED_TRACE("a " + std::to_string(has_a) + " center " + std::to_string(has_m) + " b " +
                 std::to_string(has_b) + " c " + std::to_string(has_c));
    std::vector<float> long_out(n), unit_out(n);
    auto run = [&](int64_t planes, int64_t len, const std::vector<float>& ka,
                   const std::vector<float>& km, const std::vector<float>& kb,
                   const std::vector<float>& kc, std::vector<float>& out) {
      PlaneAffineArgs args;
      args.planes = planes;
      args.len = len;
      args.dtype = DType::float32;
      args.u = has_a ? u.data() : nullptr;
      args.a = has_a ? ka.data() : nullptr;
      args.center = has_m ? km.data() : nullptr;
      args.v = has_b ? v.data() : nullptr;
      args.b = has_b ? kb.data() : nullptr;
      args.c = has_c ? kc.data() : nullptr;
      args.out = out.data();
      plane_affine_stub(Device::cpu())(args);
    };
    run(P, L, a, m, b, c, long_out);
    run(P * L, 1, a1, m1, b1, c1, unit_out);
    EXPECT_EQ(bits(unit_out), bits(long_out));
  }
}

Tensor from_bits(const std::vector<uint32_t>& b, const Shape& shape) {
  std::vector<float> f(b.size());
  std::memcpy(f.data(), b.data(), b.size() * sizeof(float));
  return from_vector(f).reshape(shape);
}

TEST(ChannelNormAffineOrder, BatchNormEvalMatchesTorch113Bits) {
  for (const channel_norm_affine_fixture::Row& r : channel_norm_affine_fixture::rows()) {
    SCOPED_TRACE(r.name);
    const int64_t C = static_cast<int64_t>(r.weight.size());
    const Tensor x = from_bits(r.x, r.shape);
    const Tensor y = batch_norm(x, from_bits(r.running_mean, {C}), from_bits(r.running_var, {C}),
                                from_bits(r.weight, {C}), from_bits(r.bias, {C}),
                                /*training=*/false, 0.1, /*eps=*/0.0);
    EXPECT_EQ(bits(y.contiguous().reshape({-1}).to_vector<float>()), r.y);
  }
}

}  // namespace
}  // namespace fabric
