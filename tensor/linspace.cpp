// torch.linspace, bit for bit as torch 1.13 computes it on the CPU (the reference torch's AVX2
// kernels, one thread).
//
// torch converts start and end to the dtype first (refusing a value the dtype cannot hold, as
// c10's checked Scalar conversion does), then computes in the dtype's own arithmetic (double for
// integer dtypes): step = (end - start) / (steps - 1), index i below steps / 2 is start + step * i,
// the others end - step * (steps - i - 1). Its kernel (RangeFactoriesKernel.cpp) writes whole
// chunks of 2 vectors through Vectorized<T>::arange(base, step), base being that formula at the
// vector's first index and lane j base + j * step (the product rounded first), and the scalar tail
// element by element. In float and double the formula is one fused multiply-add (the kernel is
// built with -mfma and g++ contracts a + b * c); every float16/bfloat16 operation rounds to the
// dtype (c10::Half / c10::BFloat16 arithmetic). An integer dtype's base is truncated to the dtype
// before its lanes add j * step. (torch with several threads splits a range over 32768 elements
// into chunks that each restart the vector pattern; one thread, as here, does not.)
//
// torch.logspace is here too: the same two-sided formula for its exponents, but a plain loop of
// its own in double (no vectors, no fma), then std::pow(base, exponent).
#include <cmath>
#include <limits>
#include <type_traits>

#include "tensor/factory.h"

// Every rounding below is written out: a contracted a + b * c would change the lanes' values.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace fabric {

namespace {

constexpr int64_t kAvx2Bytes = 32;  // Vectorized<T>::size() * sizeof(T) in torch's AVX2 kernels

// c10's overflow check for Scalar::to<T>() from a double: a floating dtype takes inf and NaN but
// no finite value past its largest; an integer dtype takes neither NaN nor values outside its range
// (before truncation).
void check_bound(const char* op, const char* what, double v, DType dt) {
  double lo, hi;
  switch (dt) {
    case DType::float64:
      return;
    case DType::float32:
      hi = std::numeric_limits<float>::max();
      lo = -hi;
      break;
    case DType::float16:
      hi = 65504.0;
      lo = -hi;
      break;
    case DType::bfloat16:
      hi = 0x1.fep127;
      lo = -hi;
      break;
    case DType::int64:
      hi = 0x1p63;
      lo = -0x1p63;
      break;  // hi: 2^63 itself overflows below
    case DType::int32:
      hi = 2147483647.0;
      lo = -2147483648.0;
      break;
    case DType::int8:
      hi = 127.0;
      lo = -128.0;
      break;
    case DType::uint8:
      hi = 255.0;
      lo = 0.0;
      break;
    default:
      return;
  }
  const bool floating = is_floating(dt);
  const bool overflows = floating
                             ? std::isfinite(v) && (v < lo || v > hi)
                             : std::isnan(v) || v < lo || v > hi || (dt == DType::int64 && v == hi);
  FABRIC_CHECK(!overflows, ValueError, op, ": ", what, " ", v, " cannot be converted to ",
               dtype_name(dt), " without overflow");
}

// T's arithmetic as torch's kernel does it: R rounds a float result to T (identity for float and
// double, whose operations round by themselves).
template <typename T>
struct Arith {
  using F = std::conditional_t<std::is_same_v<T, double>, double, float>;
  static F round(F x) {
    if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
      return static_cast<float>(T(x));
    else
      return x;
  }
};

template <typename T>
void fill_floating(T* out, double start_d, double end_d, int64_t steps) {
  using A = Arith<T>;
  using F = typename A::F;
  constexpr bool kHalfLike = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;
  const F start = A::round(static_cast<F>(start_d)), end = A::round(static_cast<F>(end_d));
  const F step = A::round(A::round(end - start) / A::round(static_cast<F>(steps - 1)));
  const int64_t halfway = steps / 2;
  auto two_sided = [&](int64_t i) -> F {
    if constexpr (kHalfLike) {
      return i < halfway ? A::round(start + A::round(step * A::round(static_cast<F>(i))))
                         : A::round(end - A::round(step * A::round(static_cast<F>(steps - i - 1))));
    } else {
      return i < halfway ? std::fma(step, static_cast<F>(i), start)
                         : std::fma(-step, static_cast<F>(steps - i - 1), end);
    }
  };
  constexpr int64_t lanes = kAvx2Bytes / static_cast<int64_t>(sizeof(T));
  int64_t i = 0;
  for (; i + 2 * lanes <= steps; i += 2 * lanes) {
    for (int64_t v = i; v < i + 2 * lanes; v += lanes) {
      const F base = two_sided(v);
      for (int64_t j = 0; j < lanes; ++j)
        out[v + j] = T(A::round(base + A::round(static_cast<F>(j) * step)));
    }
  }
  for (; i < steps; ++i) out[i] = T(two_sided(i));
}

template <typename T>
void fill_integral(T* out, double start_d, double end_d, int64_t steps) {
  const T start = static_cast<T>(start_d), end = static_cast<T>(end_d);  // truncation
  const double step =
      (static_cast<double>(end) - static_cast<double>(start)) / static_cast<double>(steps - 1);
  const int64_t halfway = steps / 2;
  auto two_sided = [&](int64_t i) -> double {
    return i < halfway
               ? std::fma(step, static_cast<double>(i), static_cast<double>(start))
               : std::fma(-step, static_cast<double>(steps - i - 1), static_cast<double>(end));
  };
  constexpr int64_t lanes = kAvx2Bytes / static_cast<int64_t>(sizeof(T));
  int64_t i = 0;
  for (; i + 2 * lanes <= steps; i += 2 * lanes) {
    for (int64_t v = i; v < i + 2 * lanes; v += lanes) {
      const T base = static_cast<T>(two_sided(v));
      for (int64_t j = 0; j < lanes; ++j)
        out[v + j] = static_cast<T>(static_cast<double>(base) + static_cast<double>(j) * step);
    }
  }
  for (; i < steps; ++i) out[i] = static_cast<T>(two_sided(i));
}

template <typename T>
void fill(Tensor& t, double start, double end, int64_t steps) {
  T* p = t.data<T>();
  if (steps == 1) {  // torch fills with start (the formula would give end)
    p[0] = static_cast<T>(start);
    return;
  }
  if constexpr (std::is_integral_v<T>)
    fill_integral(p, start, end, steps);
  else
    fill_floating(p, start, end, steps);
}

// torch.logspace's exponents, as its CPU loop (RangeFactories.cpp) computes them: start and end
// converted to T, step = (end - start) / (steps - 1) with the difference taken in T's arithmetic
// (float's for float32, float16's for float16, exact for integers) and then in double; exponent i
// is start + step * i below steps / 2 and end - step * (steps - i - 1) from there, each product
// rounded before the sum (no fma), in double.
template <typename T>
void logspace_exponents(double* out, double start_d, double end_d, int64_t steps) {
  double start, end, diff;
  if constexpr (std::is_integral_v<T>) {
    const T s = static_cast<T>(start_d), e = static_cast<T>(end_d);  // truncation
    start = s;
    end = e;
    diff = static_cast<double>(static_cast<int64_t>(e) - static_cast<int64_t>(s));
  } else if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    const T s = static_cast<T>(start_d), e = static_cast<T>(end_d);
    start = s;
    end = e;
    diff = e - s;  // rounded to T
  } else {
    const float s = static_cast<float>(T(start_d)), e = static_cast<float>(T(end_d));
    start = s;
    end = e;
    diff = static_cast<float>(T(e - s));  // c10's Half/BFloat16 difference rounds to the dtype
  }
  const double step = diff / static_cast<double>(steps - 1);
  const int64_t halfway = steps / 2;
  for (int64_t i = 0; i < steps; ++i)
    out[i] = i < halfway ? start + step * static_cast<double>(i)
                         : end - step * static_cast<double>(steps - i - 1);
}

}  // namespace

Tensor logspace(double start, double end, int64_t steps, double base, const TensorOptions& opts) {
  FABRIC_CHECK(steps >= 0, ValueError, "logspace: number of steps must be non-negative, got ",
               steps);
  const DType dt = opts.dtype;
  // torch 1.13's CPU loop takes neither (its CUDA kernel takes float16).
  FABRIC_CHECK(dt != DType::bool_ && !(dt == DType::float16 && opts.device.is_cpu()), DTypeError,
               "logspace: not implemented for ", dtype_name(dt), " on ", opts.device,
               " (torch's CPU logspace takes float64, float32, bfloat16 and the integer dtypes)");
  Tensor out;
  if (steps == 1) {
    // torch fills with base^start, start taken as given (not converted to the dtype first).
    out = full({1}, std::pow(base, start), {.dtype = dt});
  } else {
    if (steps > 1 && !is_fp8(dt)) {
      check_bound("logspace", "start", start, dt);
      check_bound("logspace", "end", end, dt);
    }
    // The powers in double, then rounded into the dtype once (torch stores std::pow's double).
    Tensor x = empty({steps}, {.dtype = DType::float64});
    double* p = x.data<double>();
    if (steps > 1) {
      switch (dt) {
        case DType::float32:
          logspace_exponents<float>(p, start, end, steps);
          break;
        case DType::float16:
          logspace_exponents<Half>(p, start, end, steps);
          break;
        case DType::bfloat16:
          logspace_exponents<BFloat16>(p, start, end, steps);
          break;
        case DType::int64:
          logspace_exponents<int64_t>(p, start, end, steps);
          break;
        case DType::int32:
          logspace_exponents<int32_t>(p, start, end, steps);
          break;
        case DType::int8:
          logspace_exponents<int8_t>(p, start, end, steps);
          break;
        case DType::uint8:
          logspace_exponents<uint8_t>(p, start, end, steps);
          break;
        default:
          logspace_exponents<double>(p, start, end, steps);
          break;  // float64, fp8
      }
      for (int64_t i = 0; i < steps; ++i) p[i] = std::pow(base, p[i]);
    }
    out = x.to(dt);
  }
  out = out.to(opts.device);
  if (opts.requires_grad) out.set_requires_grad(true);
  return out;
}

Tensor linspace(double start, double end, int64_t steps, const TensorOptions& opts) {
  FABRIC_CHECK(steps >= 0, ValueError, "linspace: number of steps must be non-negative, got ",
               steps);
  const DType dt = opts.dtype;
  Tensor t;
  if (dt == DType::bool_ || is_fp8(dt)) {
    // Dtypes torch 1.13's linspace does not take: the two-sided formula in double, then cast.
    t = empty({steps}, {.dtype = DType::float64});
    double* p = t.data<double>();
    const double step = steps > 1 ? (end - start) / static_cast<double>(steps - 1) : 0.0;
    const int64_t half = steps / 2;
    for (int64_t i = 0; i < steps; ++i)
      p[i] = i < half ? start + step * static_cast<double>(i)
                      : end - step * static_cast<double>(steps - i - 1);
    if (steps == 1) p[0] = start;
    t = t.to(dt);
  } else {
    t = empty({steps}, {.dtype = dt});
    // One step is fill_(start): torch converts (and checks) only start then.
    if (steps > 0) check_bound("linspace", "start", start, dt);
    if (steps > 1) check_bound("linspace", "end", end, dt);
    switch (dt) {
      case DType::float64:
        fill<double>(t, start, end, steps);
        break;
      case DType::float32:
        fill<float>(t, start, end, steps);
        break;
      case DType::float16:
        fill<Half>(t, start, end, steps);
        break;
      case DType::bfloat16:
        fill<BFloat16>(t, start, end, steps);
        break;
      case DType::int64:
        fill<int64_t>(t, start, end, steps);
        break;
      case DType::int32:
        fill<int32_t>(t, start, end, steps);
        break;
      case DType::int8:
        fill<int8_t>(t, start, end, steps);
        break;
      case DType::uint8:
        fill<uint8_t>(t, start, end, steps);
        break;
      default:
        FABRIC_CHECK(false, DTypeError, "linspace: unsupported dtype ", dtype_name(dt));
    }
  }
  Tensor out = t.to(opts.device);
  if (opts.requires_grad) out.set_requires_grad(true);
  return out;
}

}  // namespace fabric
