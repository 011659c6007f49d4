// The per-element rounding order of batch_norm/group_norm's affine map (plane_affine_stub,
// tensor/channel_norm_kernels.h), one definition for both devices: kernels/cpu/channel_norm.cpp
// and kernels/cuda/channel_norm_kernels.cu compile these functions, so the CUDA kernel gives the
// CPU's float32 bits (float64's for float64) instead of whatever nvcc's contraction makes of
// `c + a * (u - center) + b * v`. tests/ops/test_channel_norm_affine_shared.cpp holds each form
// to a float128 reference rounded once per fma and the CPU kernel to these functions;
// tests/cuda/test_cuda_rounding_order.cpp the CUDA kernel to the CPU's bits.
//
// Every sum is an explicit fma; the remaining products ((u - m) * a, u * a, v * b) feed no add
// (in a form or in the kernels, which store the result), so neither GCC's -ffp-contract=fast nor
// nvcc's -fmad=true can fuse them, and on the device they are written __fmul_rn anyway. On the host
// the product stays a plain `*`, which the CPU's element loops vectorise (an opaque one would not).
#pragma once
#include <cmath>
#include <type_traits>

#include "tensor/host_device.h"
#include "tensor/rounded_arith.h"

namespace fabric::channel_norm {

using rounded::fma;
using rounded::mul;

// The affine map's rounding order, one for every plane length (torch 1.13's where it has one),
// with kA, kM, kB, kC saying which of the a (times u), center, b (times v) and c terms are there:
// - a, center and c (batch_norm's forward): fma(u, a, shift) with shift = affine_shift(a, center,
//   c) = fma(-a, center, c), torch's batch_norm x * alpha + beta with beta = bias - mean * alpha;
// - a and center, no c (group_norm without weight and bias): (u - center) * a, torch's;
// - a and c, no center: fma(u, a, c) (a shift the op computed itself);
// - a alone: u * a; no a: c (or 0);
// - with the b * v term (the backward's, whose coefficients are not torch's anyway) the a term
//   stays centred, fma(a, u - center, c), keeping the precision that the first form gives up
//   for an offset mean, and b * v goes on last: fma(v, b, ...).
// Arguments of absent terms are ignored.
template <bool kA, bool kM, bool kB, bool kC, typename A>
FABRIC_HD_INLINE A affine_element(A u, A a, A m, A shift, A v, A b, A c) {
  A r;
  if constexpr (kA && kM && kC && !kB)
    r = fma(u, a, shift);
  else if constexpr (kA && kM && kC)
    r = fma(a, u - m, c);
  else if constexpr (kA && kM)
    r = mul(u - m, a);
  else if constexpr (kA && kC)
    r = fma(u, a, c);
  else if constexpr (kA)
    r = mul(u, a);
  else
    r = kC ? c : A(0);
  if constexpr (kB) r = kA || kC ? fma(v, b, r) : mul(v, b);
  return r;
}

// batch_norm's beta for the first form above: fma(-a, center, c), once per plane.
template <typename A>
FABRIC_HD_INLINE A affine_shift(A a, A m, A c) {
  return fma(-a, m, c);
}

// f(has_a, has_center, has_b, has_c), the four flags as std::integral_constant<bool>s (host
// code: the kernels' dispatch to affine_element's instantiations). The center belongs to the a
// term: without a it is dropped.
template <typename F>
void with_affine_terms(bool a, bool m, bool b, bool c, const F& f) {
  auto flag = [](bool v, const auto& g) {
    if (v)
      g(std::true_type{});
    else
      g(std::false_type{});
  };
  auto rest = [&](auto ka, auto km) {
    flag(b, [&](auto kb) { flag(c, [&](auto kc) { f(ka, km, kb, kc); }); });
  };
  flag(a, [&](auto ka) {
    if constexpr (decltype(ka)::value)
      flag(m, [&](auto km) { rest(ka, km); });
    else
      rest(ka, std::false_type{});  // no instantiation with a center but no a term
  });
}

}  // namespace fabric::channel_norm
