// The affine map's per-element rounding order (tensor/channel_norm_affine.h), the one definition
// that kernels/cpu/channel_norm.cpp and kernels/cuda/channel_norm_kernels.cu both compile:
// - each form, compiled here for the host, is its spec: every fma and every product or
//   difference rounded once, against a float128 reference that rounds only there (inputs of at
//   most 24 significant bits in a narrow exponent range, so the float128 sums are exact);
// - the CPU kernel (plane_affine_stub) gives, element for element, the bits of that function,
//   for float32 and float64, long planes and planes of one value, with and without a period.
// The CUDA kernel compiles the same function; tests/cuda/test_cuda_rounding_order.cpp holds its
// bits to the CPU's on a machine with a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "tensor/channel_norm_affine.h"
#include "tensor/channel_norm_kernels.h"

namespace fabric {
namespace {

using channel_norm::affine_element;
using channel_norm::affine_shift;
using channel_norm::with_affine_terms;

// Floats with 24 significant bits in [offset - scale, offset + scale).
std::vector<float> pseudo_random(size_t n, uint32_t seed, float scale, float offset) {
  std::vector<float> v(n);
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = (static_cast<float>(s >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f) * scale + offset;
  }
  return v;
}

template <typename A>
uint64_t bits_of(A x) {
  if constexpr (std::is_same_v<A, float>) {
    uint32_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
  } else {
    uint64_t b;
    std::memcpy(&b, &x, sizeof b);
    return b;
  }
}

// The spec of each form (the header's comment), in float128 rounded to A exactly where the form
// rounds: fma(x, y, z) = R(x y + z), x * y = R(x y), x - y = R(x - y).
template <bool kA, bool kM, bool kB, bool kC, typename A>
A reference(A u, A a, A m, A v, A b, A c) {
  using Q = __float128;
  auto R = [](Q x) { return static_cast<A>(x); };
  A r = A(0);
  if constexpr (kA && kM && kC && !kB) {
    const A shift = R(-Q(a) * Q(m) + Q(c));
    r = R(Q(u) * Q(a) + Q(shift));
  } else if constexpr (kA && kM && kC) {
    r = R(Q(a) * Q(R(Q(u) - Q(m))) + Q(c));
  } else if constexpr (kA && kM) {
    r = R(Q(R(Q(u) - Q(m))) * Q(a));
  } else if constexpr (kA && kC) {
    r = R(Q(u) * Q(a) + Q(c));
  } else if constexpr (kA) {
    r = R(Q(u) * Q(a));
  } else if constexpr (kC) {
    r = c;
  }
  if constexpr (kB) r = kA || kC ? R(Q(v) * Q(b) + Q(r)) : R(Q(v) * Q(b));
  return r;
}

std::string terms_name(bool a, bool m, bool b, bool c) {
  return std::string("a ") + (a ? "1" : "0") + " center " + (m ? "1" : "0") + " b " +
         (b ? "1" : "0") + " c " + (c ? "1" : "0");
}

template <typename A>
void expect_forms_match_reference() {
  constexpr size_t n = 4096;
  // An offset mean (u and m near 40) so that the centred and the shifted forms round apart.
  const std::vector<float> u = pseudo_random(n, 11, 3.0f, 40.0f),
                           m = pseudo_random(n, 12, 1.0f, 40.0f);
  const std::vector<float> a = pseudo_random(n, 13, 1.7f, 0.2f), v = pseudo_random(n, 14, 2.0f, 0);
  const std::vector<float> b = pseudo_random(n, 15, 1.3f, 0), c = pseudo_random(n, 16, 0.9f, 0.1f);
  for (int terms = 0; terms < 16; ++terms) {
    const bool ha = terms & 1, hm = terms & 2, hb = terms & 4, hc = terms & 8;
    with_affine_terms(ha, hm, hb, hc, [&](auto ka, auto km, auto kb, auto kc) {
      constexpr bool kA = decltype(ka)::value, kM = decltype(km)::value;
      constexpr bool kB = decltype(kb)::value, kC = decltype(kc)::value;
      SCOPED_TRACE(terms_name(kA, kM, kB, kC));
      // The flags are the runtime ones, the center dropped without the a term.
      EXPECT_EQ(kA, ha);
      EXPECT_EQ(kM, ha && hm);
      EXPECT_EQ(kB, hb);
      EXPECT_EQ(kC, hc);
      int64_t mismatches = 0;
      for (size_t i = 0; i < n; ++i) {
        const A ui = u[i], ai = a[i], mi = m[i], vi = v[i], bi = b[i], ci = c[i];
        const A got =
            affine_element<kA, kM, kB, kC>(ui, ai, mi, affine_shift(ai, mi, ci), vi, bi, ci);
        const A want = reference<kA, kM, kB, kC>(ui, ai, mi, vi, bi, ci);
        if (bits_of(got) != bits_of(want) && mismatches++ < 3)
          ADD_FAILURE() << "element " << i << ": " << got << " want " << want;
      }
      EXPECT_EQ(mismatches, 0);
    });
  }
}

TEST(ChannelNormAffineShared, EachFormRoundsAsItsSpecFloat) {
  expect_forms_match_reference<float>();
}

TEST(ChannelNormAffineShared, EachFormRoundsAsItsSpecDouble) {
  expect_forms_match_reference<double>();
}

// The CPU kernel against the shared function, element by element: P planes of length L with
// coefficients per plane (period 0) or per channel (period K), and the same as planes of one
// value.
template <typename A>
void expect_cpu_kernel_uses_shared_function(int64_t P, int64_t L, int64_t K) {
  const size_t n = static_cast<size_t>(P * L), coefs = static_cast<size_t>(K ? K : P);
  auto as_a = [](const std::vector<float>& f) { return std::vector<A>(f.begin(), f.end()); };
  const std::vector<A> u = as_a(pseudo_random(n, 1, 3.0f, 20.5f)),
                       v = as_a(pseudo_random(n, 2, 2.0f, 0));
  const std::vector<A> a = as_a(pseudo_random(coefs, 3, 1.7f, 0.2f)),
                       b = as_a(pseudo_random(coefs, 4, 1.3f, 0));
  const std::vector<A> m = as_a(pseudo_random(coefs, 5, 1.1f, 20.5f)),
                       c = as_a(pseudo_random(coefs, 6, 0.9f, 0));
  for (int terms = 0; terms < 16; ++terms) {
    const bool ha = terms & 1, hm = terms & 2, hb = terms & 4, hc = terms & 8;
    SCOPED_TRACE(terms_name(ha, hm, hb, hc));
    std::vector<A> out(n, A(-7));
    PlaneAffineArgs args;
    args.planes = P;
    args.len = L;
    args.period = K;
    args.dtype = std::is_same_v<A, float> ? DType::float32 : DType::float64;
    args.u = ha ? u.data() : nullptr;
    args.a = ha ? a.data() : nullptr;
    args.center = hm ? m.data() : nullptr;
    args.v = hb ? v.data() : nullptr;
    args.b = hb ? b.data() : nullptr;
    args.c = hc ? c.data() : nullptr;
    args.out = out.data();
    plane_affine_stub(Device::cpu())(args);
    with_affine_terms(ha, hm, hb, hc, [&](auto ka, auto km, auto kb, auto kc) {
      constexpr bool kA = decltype(ka)::value, kM = decltype(km)::value;
      constexpr bool kB = decltype(kb)::value, kC = decltype(kc)::value;
      int64_t mismatches = 0;
      for (size_t i = 0; i < n; ++i) {
        const size_t k = K ? (i / L) % K : i / L;
        const A want = affine_element<kA, kM, kB, kC>(
            u[i], a[k], m[k], affine_shift(a[k], m[k], c[k]), v[i], b[k], c[k]);
        if (bits_of(out[i]) != bits_of(want) && mismatches++ < 3)
          ADD_FAILURE() << "element " << i << ": " << out[i] << " want " << want;
      }
      EXPECT_EQ(mismatches, 0);
    });
  }
}

TEST(ChannelNormAffineShared, CpuKernelGivesTheSharedFunctionsBits) {
  for (const auto& [P, L, K] : {std::tuple<int64_t, int64_t, int64_t>{12, 37, 0},
                                {12, 37, 5},
                                {3000, 1, 0},
                                {3000, 1, 7},
                                {40, 1000, 8}}) {
    SCOPED_TRACE("planes " + std::to_string(P) + " len " + std::to_string(L) + " period " +
                 std::to_string(K));
    expect_cpu_kernel_uses_shared_function<float>(P, L, K);
    expect_cpu_kernel_uses_shared_function<double>(P, L, K);
  }
}

}  // namespace
}  // namespace fabric
