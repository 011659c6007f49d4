// CPU kernels for binary elementwise ops, comparisons, where and addcmul. fp32/bf16/fp16 run in
// AVX-512 fp32 vectors; float64, integers and bool in scalar code (integers wrap on overflow).
#include <cmath>
#include <limits>

#include "kernels/cpu/elementwise_common.h"
#include "tensor/elementwise_kernels.h"

namespace fabric::cpu {
namespace {

using namespace ew;

// ---- scalar arithmetic for float64 / integers / bool
// ---------------------------------------------
template <typename T>
inline T wrap_add(T a, T b) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
  } else {
    return a + b;
  }
}
template <typename T>
inline T wrap_sub(T a, T b) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
  } else {
    return a - b;
  }
}
template <typename T>
inline T wrap_mul(T a, T b) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    using U = std::make_unsigned_t<T>;
    return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
  } else {
    return a * b;
  }
}

// Integer power by squaring; negative exponents give 1, +-1 or 0 as PyTorch's powi does.
// libm's powf lane by lane: the general pow, bit for bit torch's (no vector pow matches it).
__m512 pow_per_lane(__m512 a, __m512 b) {
  alignas(64) float x[16], y[16];
  _mm512_store_ps(x, a);
  _mm512_store_ps(y, b);
  for (int i = 0; i < 16; ++i) x[i] = std::pow(x[i], y[i]);
  return _mm512_load_ps(x);
}

template <typename T>
inline T int_pow(T base, T exp) {
  if constexpr (std::is_signed_v<T>) {
    if (exp < 0) {
      if (base == 1) return 1;
      if (base == -1) return (exp % 2) ? T(-1) : T(1);
      return 0;
    }
  }
  using U = std::make_unsigned_t<T>;
  U result = 1, b = static_cast<U>(base);
  for (auto e = static_cast<U>(exp); e; e >>= 1) {
    if (e & 1) result = static_cast<U>(result * b);
    b = static_cast<U>(b * b);
  }
  return static_cast<T>(result);
}

template <typename T>
inline T nan_max(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return a + b;
  }
  return a < b ? b : a;
}
template <typename T>
inline T nan_min(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return a + b;
  }
  return b < a ? b : a;
}

// op(a, b) in the scalar type T (float64, an integer, or bool computed as int).
template <typename T>
struct ScalarBinary {
  BinaryOp op;
  T alpha;
  T operator()(T a, T b) const {
    if constexpr (std::is_same_v<T, bool>) {
      switch (op) {
        case BinaryOp::add:
          return a || (alpha && b);
        case BinaryOp::mul:
        case BinaryOp::minimum:
        case BinaryOp::logical_and:
          return a && b;
        case BinaryOp::maximum:
        case BinaryOp::logical_or:
          return a || b;
        default:
          return false;  // sub/div/pow on bool are rejected by the op layer
      }
    } else {
      switch (op) {
        case BinaryOp::add:
          return wrap_add(a, wrap_mul(alpha, b));
        case BinaryOp::sub:
          return wrap_sub(a, wrap_mul(alpha, b));
        case BinaryOp::mul:
          return wrap_mul(a, b);
        case BinaryOp::div:
          if constexpr (std::is_floating_point_v<T>)
            return a / b;
          else
            return 0;
        case BinaryOp::maximum:
          return nan_max(a, b);
        case BinaryOp::minimum:
          return nan_min(a, b);
        case BinaryOp::pow:
          if constexpr (std::is_floating_point_v<T>)
            return std::pow(a, b);
          else
            return int_pow(a, b);
        case BinaryOp::logical_and:
          return (a != T(0)) && (b != T(0));
        case BinaryOp::logical_or:
          return (a != T(0)) || (b != T(0));
      }
      return a;
    }
  }
};

// An input element of type S as the compute type T (exact: S is T or narrower).
template <typename T, typename S>
inline T widen(S v) {
  if constexpr (std::is_same_v<S, T>)
    return v;
  else
    return static_cast<T>(static_cast<opmath_t<S>>(v));
}

// Scalar-type row loop with a contiguous fast path GCC vectorises for the simple cases. TA/TB:
// the inputs' element types when narrower than T (float64 output only; see mixed_binary).
template <typename T, typename TA = T, typename TB = T, typename F>
void scalar_binary_loop(const StridedLoop& loop, const T* b_scalar, const F& f) {
  constexpr bool one_type = std::is_same_v<TA, T> && std::is_same_v<TB, T>;
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    constexpr int64_t sz = sizeof(T), asz = sizeof(TA), bsz = sizeof(TB);
    if (one_type && b_scalar) {  // (mixed inputs come without a scalar)
      const T bv = *b_scalar;
      if (s[0] == sz && s[1] == asz) {
        T* o = reinterpret_cast<T*>(p[0]);
        const TA* a = reinterpret_cast<const TA*>(p[1]);
        for (int64_t i = 0; i < n; ++i) o[i] = f(widen<T>(a[i]), bv);
      } else {
        for (int64_t i = 0; i < n; ++i)
          store_elem<T>(p[0] + i * s[0], f(widen<T>(load_elem<TA>(p[1] + i * s[1])), bv));
      }
    } else if (s[0] == sz && s[1] == asz && s[2] == bsz) {
      T* o = reinterpret_cast<T*>(p[0]);
      const TA* a = reinterpret_cast<const TA*>(p[1]);
      const TB* b = reinterpret_cast<const TB*>(p[2]);
      for (int64_t i = 0; i < n; ++i) o[i] = f(widen<T>(a[i]), widen<T>(b[i]));
    } else {
      for (int64_t i = 0; i < n; ++i)
        store_elem<T>(p[0] + i * s[0], f(widen<T>(load_elem<TA>(p[1] + i * s[1])),
                                         widen<T>(load_elem<TB>(p[2] + i * s[2]))));
    }
  });
}

// add/sub/mul/div in a scalar type, inputs of types TA/TB as in scalar_binary_loop.
template <typename T, typename TA = T, typename TB = T>
void scalar_arith(BinaryOp op, const StridedLoop& loop, T alpha, const T* b_scalar) {
  switch (op) {
    case BinaryOp::add:
      if (alpha == T(1))
        return scalar_binary_loop<T, TA, TB>(loop, b_scalar,
                                             [](T a, T b) { return wrap_add(a, b); });
      break;
    case BinaryOp::mul:
      if constexpr (!std::is_same_v<T, bool>) {
        return scalar_binary_loop<T, TA, TB>(loop, b_scalar,
                                             [](T a, T b) { return wrap_mul(a, b); });
      }
      break;
    default:
      break;
  }
  const ScalarBinary<T> f{op, alpha};
  scalar_binary_loop<T, TA, TB>(loop, b_scalar, f);
}

// Specialised so the hot ones compile to a clean loop (the switch above would stay in it).
template <typename T>
void scalar_binary(BinaryOp op, const StridedLoop& loop, T alpha, const T* b_scalar) {
  if constexpr (std::is_floating_point_v<T>) {
    if (op == BinaryOp::pow && b_scalar) {  // as in vec_binary
      const T e = *b_scalar;
      if (e == T(1)) return scalar_binary_loop<T>(loop, b_scalar, [](T a, T) { return a; });
      if (e == T(2)) return scalar_binary_loop<T>(loop, b_scalar, [](T a, T) { return a * a; });
      if (e == T(3)) return scalar_binary_loop<T>(loop, b_scalar, [](T a, T) { return a * a * a; });
      if (e == T(0.5))
        return scalar_binary_loop<T>(loop, b_scalar, [](T a, T) { return std::sqrt(a); });
      if (e == T(-0.5))
        return scalar_binary_loop<T>(loop, b_scalar, [](T a, T) { return T(1) / std::sqrt(a); });
      if (e == T(-1)) return scalar_binary_loop<T>(loop, b_scalar, [](T a, T) { return T(1) / a; });
      if (e == T(-2))
        return scalar_binary_loop<T>(loop, b_scalar, [](T a, T) { return T(1) / (a * a); });
    }
  }
  scalar_arith<T>(op, loop, alpha, b_scalar);
}

// ---- fp32-family vector functors ----------------------------------------------------------------
inline __m512 nan_fix(__m512 r, __m512 a, __m512 b) {
  return _mm512_mask_add_ps(r, _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q), a, b);
}

// add/sub/mul/div in fp32 vectors, inputs of types TA/TB as in binary_f32_loop.
template <typename T, typename TA = T, typename TB = T>
void vec_arith(BinaryOp op, const StridedLoop& loop, float alpha, const float* bs) {
  const __m512 va = vec::splat(alpha);
  switch (op) {
    case BinaryOp::add:
      if (alpha == 1.0f) {
        return binary_f32_loop<T, TA, TB>(loop, bs,
                                          [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); });
      }
      return binary_f32_loop<T, TA, TB>(
          loop, bs, [va](__m512 a, __m512 b) { return _mm512_fmadd_ps(va, b, a); });
    case BinaryOp::sub:
      if (alpha == 1.0f) {
        return binary_f32_loop<T, TA, TB>(loop, bs,
                                          [](__m512 a, __m512 b) { return _mm512_sub_ps(a, b); });
      }
      return binary_f32_loop<T, TA, TB>(
          loop, bs, [va](__m512 a, __m512 b) { return _mm512_fnmadd_ps(va, b, a); });
    case BinaryOp::mul:
      return binary_f32_loop<T, TA, TB>(loop, bs,
                                        [](__m512 a, __m512 b) { return _mm512_mul_ps(a, b); });
    default:  // div (the callers pass add/sub/mul/div only)
      return binary_f32_loop<T, TA, TB>(loop, bs,
                                        [](__m512 a, __m512 b) { return _mm512_div_ps(a, b); });
  }
}

// pow(tensor, scalar) on float16/bfloat16 as torch 1.13 computes it (pow_tensor_scalar_kernel):
// the exponent is first rounded to the dtype and every operation rounds to it. bfloat16's exact
// 0.5, -0.5 and -1 take torch's sqrt/rsqrt/reciprocal kernels (the float32 shortcuts below);
// otherwise float16 runs std::pow and bfloat16 x*x, x*x*x and 1/(x*x) for 2, 3 and -2 (x*x
// rounded to bfloat16 in between), else std::pow. Where std::pow's value is a float32 shortcut's
// (checked over every float16 and bfloat16 input), the shortcut runs: x*x, x*x*x (float16),
// 1/x, 1/(x*x) (float16), and the square root for +-0.5 with std::pow's answers at -0 and -inf
// (pow(-0, 0.5) = +0, pow(-inf, 0.5) = +inf; a square root gives -0 and NaN there).
// Returns false where the float32 shortcuts below give torch's values.
template <typename T>
bool pow_scalar_half_like(const StridedLoop& loop, float e) {
  using vec::splat;
  if constexpr (std::is_same_v<T, float>) {
    return false;
  } else {
    constexpr bool kBf16 = std::is_same_v<T, BFloat16>;
    if (e == 1.0f || (kBf16 && (e == 0.5f || e == -0.5f || e == -1.0f))) return false;
    const float et = static_cast<float>(T(e));
    auto run = [&](const auto& f) {
      binary_f32_loop<T>(loop, &et, f);
      return true;
    };
    // bfloat16's rounding of an intermediate product (c10::BFloat16 arithmetic); float16's
    // shortcuts keep float32 products, which std::pow's rounded values equal.
    auto mid = [](__m512 v) {
      if constexpr (kBf16)
        return vec::bf16_widen(vec::bf16_round(v));
      else
        return v;
    };
    if (et == 2.0f) return run([](__m512 a, __m512) { return _mm512_mul_ps(a, a); });
    if (et == 3.0f)
      return run([&](__m512 a, __m512) { return _mm512_mul_ps(mid(_mm512_mul_ps(a, a)), a); });
    if (et == -1.0f) return run([](__m512 a, __m512) { return _mm512_div_ps(splat(1.0f), a); });
    if (et == -2.0f) {
      return run(
          [&](__m512 a, __m512) { return _mm512_div_ps(splat(1.0f), mid(_mm512_mul_ps(a, a))); });
    }
    if (et == 0.5f || et == -0.5f) {
      const float at_minus_inf = et > 0 ? std::numeric_limits<float>::infinity() : 0.0f;
      const bool reciprocal = et < 0;
      return run([=](__m512 a, __m512) {
        const __m512 s = _mm512_sqrt_ps(_mm512_add_ps(a, _mm512_setzero_ps()));  // -0 + 0 = +0
        const __m512 r = reciprocal ? _mm512_div_ps(splat(1.0f), s) : s;
        const __mmask16 minus_inf =
            _mm512_cmp_ps_mask(a, splat(-std::numeric_limits<float>::infinity()), _CMP_EQ_OQ);
        return _mm512_mask_mov_ps(r, minus_inf, splat(at_minus_inf));
      });
    }
    binary_f32_loop<T>(
        loop, &et,
        pow_per_lane,
        true);
    return true;
  }
}

template <typename T>
void vec_binary(BinaryOp op, const StridedLoop& loop, float alpha, const float* bs) {
  using vec::splat;
  switch (op) {
    case BinaryOp::add:
    case BinaryOp::sub:
    case BinaryOp::mul:
    case BinaryOp::div:
      return vec_arith<T>(op, loop, alpha, bs);
    case BinaryOp::maximum:
      return binary_f32_loop<T>(
          loop, bs, [](__m512 a, __m512 b) { return nan_fix(_mm512_max_ps(a, b), a, b); });
    case BinaryOp::minimum:
      return binary_f32_loop<T>(
          loop, bs, [](__m512 a, __m512 b) { return nan_fix(_mm512_min_ps(a, b), a, b); });
    case BinaryOp::pow:
      if (bs && pow_scalar_half_like<T>(loop, *bs)) return;
      if (bs) {
        // PyTorch's special exponents (pow_tensor_scalar_optimized_kernel): x*x, sqrt, ... rather
        // than libm's pow, for speed and to give the same values. x^1 is x (torch's pow_out
        // copies): libm's powf there made the backward of x^2 (2 * x^1 * g) 40x its forward.
        const float e = *bs;
        if (e == 1.0f) return binary_f32_loop<T>(loop, bs, [](__m512 a, __m512) { return a; });
        if (e == 2.0f)
          return binary_f32_loop<T>(loop, bs, [](__m512 a, __m512) { return _mm512_mul_ps(a, a); });
        if (e == 3.0f) {
          return binary_f32_loop<T>(
              loop, bs, [](__m512 a, __m512) { return _mm512_mul_ps(_mm512_mul_ps(a, a), a); });
        }
        if (e == 0.5f)
          return binary_f32_loop<T>(loop, bs, [](__m512 a, __m512) { return _mm512_sqrt_ps(a); });
        if (e == -0.5f) {
          return binary_f32_loop<T>(loop, bs, [](__m512 a, __m512) {
            return _mm512_div_ps(splat(1.0f), _mm512_sqrt_ps(a));
          });
        }
        if (e == -1.0f)
          return binary_f32_loop<T>(loop, bs,
                                    [](__m512 a, __m512) { return _mm512_div_ps(splat(1.0f), a); });
        if (e == -2.0f) {
          return binary_f32_loop<T>(loop, bs, [](__m512 a, __m512) {
            return _mm512_div_ps(splat(1.0f), _mm512_mul_ps(a, a));
          });
        }
      }
      return binary_f32_loop<T>(
          loop, bs,
          pow_per_lane,
          true);
    case BinaryOp::logical_and:
    case BinaryOp::logical_or:
      break;
  }
  throw DTypeError("binary kernel: logical_and/logical_or run on bool tensors only");
}

// Reads a Scalar into the compute type of T: integers wrap, floats go through double.
template <typename M>
M scalar_as(const Scalar& s) {
  if constexpr (std::is_floating_point_v<M>) {
    return static_cast<M>(s.to_double());
  } else if (s.is_floating()) {
    return scalar_cast<M>(s.to_double());
  } else {
    return scalar_cast<M>(s.to_int());
  }
}

// The float dtypes that widen exactly to T: f(S{}) for S the C++ type of `t`, which must be one.
template <typename T, typename F>
void visit_narrower(DType t, F&& f) {
  switch (t) {
    case DType::float64:
      if constexpr (std::is_same_v<T, double>) return f(double{});
      break;
    case DType::float32:
      return f(float{});
    case DType::float16:
      return f(Half{});
    case DType::bfloat16:
      return f(BFloat16{});
    default:
      break;
  }
}

bool widens_exactly(DType from, DType to) {
  const bool half = from == DType::float16 || from == DType::bfloat16;
  return from == to || (to == DType::float32 && half) ||
         (to == DType::float64 && (half || from == DType::float32));
}

// The input pairs passed as they are (the op layer casts in every other case): one input of the
// output dtype, fp32 or fp64, and one narrower float (bf16 or fp16; or fp32 beside fp64). Only
// these are compiled: each pair is a set of loops.
template <typename T, typename TA, typename TB>
inline constexpr bool kMixedPair =
    !std::is_same_v<TA, TB> && (std::is_same_v<TA, T> || std::is_same_v<TB, T>);

bool is_mixed_pair(DType out, DType a, DType b) {
  return a != b && widens_exactly(a, out) && widens_exactly(b, out) && (a == out || b == out);
}

// add/sub/mul/div with an input narrower than the output (f32 + bf16 in mixed precision): each
// input is widened as it is loaded, which is exact, so the result is bit for bit that of the
// kernel on copies cast to the output dtype, without writing and re-reading those copies.
void mixed_binary(BinaryOp op, const StridedLoop& loop, const Scalar& alpha) {
  const DType dt = loop.ops[0].dtype, da = loop.ops[1].dtype, db = loop.ops[2].dtype;
  const bool arith =
      op == BinaryOp::add || op == BinaryOp::sub || op == BinaryOp::mul || op == BinaryOp::div;
  FABRIC_CHECK(arith && is_mixed_pair(dt, da, db), DTypeError, "binary kernel: inputs ",
               dtype_name(da), " and ", dtype_name(db), " for a ", dtype_name(dt),
               " output (mixed inputs are for add/sub/mul/div: one input of the fp32 or fp64 "
               "output dtype, one narrower float; cast them first)");
  auto run = [&](auto out_tag) {
    using T = decltype(out_tag);
    visit_narrower<T>(da, [&](auto a_tag) {
      visit_narrower<T>(db, [&](auto b_tag) {
        using TA = decltype(a_tag);
        using TB = decltype(b_tag);
        if constexpr (!kMixedPair<T, TA, TB>)
          return;  // refused above
        else if constexpr (std::is_same_v<T, float>)
          vec_arith<float, TA, TB>(op, loop, scalar_as<float>(alpha), nullptr);
        else
          scalar_arith<double, TA, TB>(op, loop, scalar_as<double>(alpha), nullptr);
      });
    });
  };
  if (dt == DType::float32)
    run(float{});
  else
    run(double{});
}

void binary_kernel(BinaryOp op, const StridedLoop& loop, const Scalar& alpha,
                   const Scalar* b_scalar) {
  const DType dt = loop.ops[0].dtype;
  reject_fp8(dt, "binary kernel");
  if (!b_scalar && (loop.ops[1].dtype != dt || loop.ops[2].dtype != dt))
    return mixed_binary(op, loop, alpha);
  FABRIC_CHECK(!(is_integral(dt, true) && op == BinaryOp::div), DTypeError,
               "binary kernel: div on ", dtype_name(dt),
               " (true division runs on floating dtypes)");
  visit_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_f32_family_v<T>) {
      // torch 1.13 casts a number to the tensor's dtype before a float16/bfloat16 add, sub, mul
      // or div (its wrapped scalar tensor; pow reads its exponent itself), and its vectorized
      // bfloat16 add/sub scales by alpha cast to bfloat16 (the op layer gives float16's alpha its
      // two roundings).
      const auto as_dtype = [](const Scalar& v) {
        const float f = scalar_as<float>(v);
        return std::is_same_v<T, float> ? f : static_cast<float>(T(f));
      };
      const bool arith =
          op == BinaryOp::add || op == BinaryOp::sub || op == BinaryOp::mul || op == BinaryOp::div;
      const float bv = !b_scalar ? 0.0f : arith ? as_dtype(*b_scalar) : scalar_as<float>(*b_scalar);
      const float a = std::is_same_v<T, BFloat16> ? as_dtype(alpha) : scalar_as<float>(alpha);
      vec_binary<T>(op, loop, a, b_scalar ? &bv : nullptr);
    } else if constexpr (std::is_same_v<T, Float8E4M3> || std::is_same_v<T, Float8E5M2>) {
      // rejected above
    } else {
      const T bv = b_scalar ? scalar_as<T>(*b_scalar) : T{};
      scalar_binary<T>(op, loop, scalar_as<T>(alpha), b_scalar ? &bv : nullptr);
    }
  });
}

// ---- comparisons -------------------------------------------------------------------------------
template <typename T, typename C>
void compare_loop(const StridedLoop& loop, const T* b_scalar, const C& cmp) {
  using M = opmath_t<T>;
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    bool* o = reinterpret_cast<bool*>(p[0]);
    if (b_scalar) {
      const M bv = static_cast<M>(*b_scalar);
      if (s[0] == 1 && s[1] == sizeof(T)) {
        const T* a = reinterpret_cast<const T*>(p[1]);
        for (int64_t i = 0; i < n; ++i) o[i] = cmp(static_cast<M>(a[i]), bv);
      } else {
        for (int64_t i = 0; i < n; ++i)
          store_elem<bool>(p[0] + i * s[0], cmp(static_cast<M>(load_elem<T>(p[1] + i * s[1])), bv));
      }
    } else if (s[0] == 1 && s[1] == sizeof(T) && s[2] == sizeof(T)) {
      const T* a = reinterpret_cast<const T*>(p[1]);
      const T* b = reinterpret_cast<const T*>(p[2]);
      for (int64_t i = 0; i < n; ++i) o[i] = cmp(static_cast<M>(a[i]), static_cast<M>(b[i]));
    } else {
      for (int64_t i = 0; i < n; ++i)
        store_elem<bool>(p[0] + i * s[0], cmp(static_cast<M>(load_elem<T>(p[1] + i * s[1])),
                                              static_cast<M>(load_elem<T>(p[2] + i * s[2]))));
    }
  });
}

void compare_kernel(CompareOp op, const StridedLoop& loop, const Scalar* b_scalar) {
  const DType dt = loop.ops[1].dtype;
  reject_fp8(dt, "compare kernel");
  visit_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, Float8E4M3> && !std::is_same_v<T, Float8E5M2>) {
      // The scalar is first cast to the dtype (bf16 x == 0.1 compares with bf16(0.1)).
      const T bv = b_scalar ? (b_scalar->is_floating() ? scalar_cast<T>(b_scalar->to_double())
                                                       : scalar_cast<T>(b_scalar->to_int()))
                            : T{};
      const T* bp = b_scalar ? &bv : nullptr;
      using M = opmath_t<T>;
      switch (op) {
        case CompareOp::eq:
          return compare_loop<T>(loop, bp, [](M a, M b) { return a == b; });
        case CompareOp::ne:
          return compare_loop<T>(loop, bp, [](M a, M b) { return a != b; });
        case CompareOp::lt:
          return compare_loop<T>(loop, bp, [](M a, M b) { return a < b; });
        case CompareOp::le:
          return compare_loop<T>(loop, bp, [](M a, M b) { return a <= b; });
        case CompareOp::gt:
          return compare_loop<T>(loop, bp, [](M a, M b) { return a > b; });
        case CompareOp::ge:
          return compare_loop<T>(loop, bp, [](M a, M b) { return a >= b; });
      }
    }
  });
}

// ---- where: a byte-width select, so one kernel serves every dtype ------------------------------
template <typename U>
void where_loop(const StridedLoop& loop) {
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    constexpr int64_t sz = sizeof(U);
    if (s[0] == sz && s[1] == 1 && s[2] == sz && s[3] == sz) {
      U* o = reinterpret_cast<U*>(p[0]);
      const uint8_t* c = reinterpret_cast<const uint8_t*>(p[1]);
      const U* a = reinterpret_cast<const U*>(p[2]);
      const U* b = reinterpret_cast<const U*>(p[3]);
      for (int64_t i = 0; i < n; ++i) o[i] = c[i] ? a[i] : b[i];
    } else if (s[0] == sz && s[1] == 1 && (s[2] == 0 || s[3] == 0) && s[2] + s[3] == sz) {
      // One side a broadcast 0-dim value (masked_fill, where(c, a, scalar)): without this the
      // generic loop below made masked_fill ~6x slower than a binary op.
      U* o = reinterpret_cast<U*>(p[0]);
      const uint8_t* c = reinterpret_cast<const uint8_t*>(p[1]);
      if (s[2] == 0) {
        const U a = *reinterpret_cast<const U*>(p[2]);
        const U* b = reinterpret_cast<const U*>(p[3]);
        for (int64_t i = 0; i < n; ++i) o[i] = c[i] ? a : b[i];
      } else {
        const U* a = reinterpret_cast<const U*>(p[2]);
        const U b = *reinterpret_cast<const U*>(p[3]);
        for (int64_t i = 0; i < n; ++i) o[i] = c[i] ? a[i] : b;
      }
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const bool c = load_elem<uint8_t>(p[1] + i * s[1]) != 0;
        store_elem<U>(p[0] + i * s[0],
                      c ? load_elem<U>(p[2] + i * s[2]) : load_elem<U>(p[3] + i * s[3]));
      }
    }
  });
}

void where_kernel(const StridedLoop& loop) {
  switch (itemsize(loop.ops[0].dtype)) {
    case 1:
      return where_loop<uint8_t>(loop);
    case 2:
      return where_loop<uint16_t>(loop);
    case 4:
      return where_loop<uint32_t>(loop);
    default:
      return where_loop<uint64_t>(loop);
  }
}

// ---- addcmul
// -------------------------------------------------------------------------------------
void addcmul_kernel(const StridedLoop& loop, const Scalar& value) {
  const DType dt = loop.ops[0].dtype;
  reject_fp8(dt, "addcmul kernel");
  visit_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, Float8E4M3> && !std::is_same_v<T, Float8E5M2>) {
      using M = std::conditional_t<std::is_same_v<T, bool>, int32_t, opmath_t<T>>;
      const M v = scalar_as<M>(value);
      auto f = [v](M s, M a, M b) -> M {
        if constexpr (std::is_floating_point_v<M>)
          return s + v * a * b;
        else
          return wrap_add(s, wrap_mul(wrap_mul(v, a), b));
      };
      for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* st) {
        for (int64_t i = 0; i < n; ++i) {
          const M r = f(static_cast<M>(load_elem<T>(p[1] + i * st[1])),
                        static_cast<M>(load_elem<T>(p[2] + i * st[2])),
                        static_cast<M>(load_elem<T>(p[3] + i * st[3])));
          if constexpr (std::is_same_v<T, bool>) {
            store_elem<T>(p[0] + i * st[0], r != 0);
          } else {
            store_elem<T>(p[0] + i * st[0], static_cast<T>(r));
          }
        }
      });
    }
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(binary_stub, cpu, &cpu::binary_kernel);
FABRIC_REGISTER_KERNEL(compare_stub, cpu, &cpu::compare_kernel);
FABRIC_REGISTER_KERNEL(where_stub, cpu, &cpu::where_kernel);
FABRIC_REGISTER_KERNEL(addcmul_stub, cpu, &cpu::addcmul_kernel);
}  // namespace fabric
