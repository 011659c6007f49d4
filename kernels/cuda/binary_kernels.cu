// CUDA kernels for binary elementwise ops and comparisons, mirroring
// kernels/cpu/elementwise_binary.cpp: fp32/bf16/fp16 in fp32 with the CPU's fused alpha and its
// vmaxps NaN/zero rules, float64 as the CPU's (contracted) scalar code, integers wrapping.
#include <cmath>

#include "kernels/cuda/cast.cuh"
#include "kernels/cuda/float_family.h"
#include "kernels/cuda/loop_kernel.cuh"
#include "kernels/cuda/pow_form.h"
#include "tensor/elementwise_kernels.h"

namespace fabric::cuda {
namespace {

// Operands (out, a, b) or (out, a) with `b` held in b_value. M is the compute type.
template <typename T, typename M>
struct BinaryArgs {
  BinaryOp op;
  M alpha;
  bool b_is_scalar;
  M b_value;
  PowForm pow;
  __device__ __forceinline__ M a_of(char* (&p)[3]) const {
    if constexpr (std::is_same_v<T, bool>) {
      return load<uint8_t>(p[1]) != 0;
    } else {
      return static_cast<M>(load<T>(p[1]));
    }
  }
  __device__ __forceinline__ M b_of(char* (&p)[3]) const {
    if (b_is_scalar) return b_value;
    if constexpr (std::is_same_v<T, bool>) {
      return load<uint8_t>(p[2]) != 0;
    } else {
      return static_cast<M>(load<T>(p[2]));
    }
  }
};

// add/sub/mul/div in float32. alpha != 1 is one fused multiply-add, as the CPU's
// vfmadd/vfnmadd.
__device__ __forceinline__ float arith_f32(BinaryOp op, float alpha, float a, float b) {
  switch (op) {
    case BinaryOp::add:
      return alpha == 1.0f ? a + b : fmaf(alpha, b, a);
    case BinaryOp::sub:
      return alpha == 1.0f ? a - b : fmaf(-alpha, b, a);
    case BinaryOp::mul:
      return a * b;
    default:  // div (the caller passes only the four)
      return a / b;
  }
}

template <typename T>  // float, Half, BFloat16: computed in fp32
struct FloatBinary : BinaryArgs<T, float> {
  using Stored = T;  // contiguous loops of it go in pieces (launch_pieces)
  __device__ void operator()(char* (&p)[3]) const {
    const float a = this->a_of(p), b = this->b_of(p);
    float r = a;
    switch (this->op) {
      case BinaryOp::add:
      case BinaryOp::sub:
      case BinaryOp::mul:
      case BinaryOp::div:
        r = arith_f32(this->op, this->alpha, a, b);
        break;
      // vmaxps(a, b)/vminps(a, b) return b on ties and NaN; a NaN then becomes a + b.
      case BinaryOp::maximum:
        r = (isnan(a) || isnan(b)) ? a + b : (a > b ? a : b);
        break;
      case BinaryOp::minimum:
        r = (isnan(a) || isnan(b)) ? a + b : (a < b ? a : b);
        break;
      case BinaryOp::pow:
        r = pow_value(this->pow, a, b);
        break;
      case BinaryOp::logical_and:
      case BinaryOp::logical_or:
        break;  // rejected on the host
    }
    store<T>(p[0], T(r));
  }
};

// A float32 output from inputs of which one is bf16 or f16 (the f32 residual + bf16 branch of
// mixed precision): each input widened as it is loaded, exactly, so the bits are those of the
// float32 kernel on a cast copy, without writing and reading one (the CPU's mixed_binary).
template <typename TA, typename TB>
struct MixedFloatArith {
  BinaryOp op;
  float alpha;
  __device__ void operator()(char* (&p)[3]) const {
    store<float>(p[0], arith_f32(op, alpha, static_cast<float>(load<TA>(p[1])),
                                 static_cast<float>(load<TB>(p[2]))));
  }
};

struct DoubleBinary : BinaryArgs<double, double> {
  __device__ void operator()(char* (&p)[3]) const {
    const double a = a_of(p), b = b_of(p);
    double r = a;
    switch (op) {
      // g++ contracts the CPU's a + alpha*b into one fma (and a - alpha*b into fnmadd).
      case BinaryOp::add:
        r = alpha == 1.0 ? a + b : fma(alpha, b, a);
        break;
      case BinaryOp::sub:
        r = fma(-alpha, b, a);
        break;
      case BinaryOp::mul:
        r = a * b;
        break;
      case BinaryOp::div:
        r = a / b;
        break;
      case BinaryOp::maximum:
        r = (isnan(a) || isnan(b)) ? a + b : (a < b ? b : a);
        break;
      case BinaryOp::minimum:
        r = (isnan(a) || isnan(b)) ? a + b : (b < a ? b : a);
        break;
      case BinaryOp::pow:
        r = pow_value(pow, a, b);
        break;
      case BinaryOp::logical_and:
        r = (a != 0.0) && (b != 0.0);
        break;
      case BinaryOp::logical_or:
        r = (a != 0.0) || (b != 0.0);
        break;
    }
    store<double>(p[0], r);
  }
};

// Integer power by squaring; negative exponents give 1, +-1 or 0 as PyTorch's powi does.
template <typename T>
__device__ __forceinline__ T int_pow(T base, T exp) {
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

template <typename T>  // int64, int32, int8, uint8: wrap on overflow
struct IntBinary : BinaryArgs<T, T> {
  __device__ void operator()(char* (&p)[3]) const {
    using U = std::make_unsigned_t<T>;
    const T a = this->a_of(p), b = this->b_of(p);
    const U ua = static_cast<U>(a), ub = static_cast<U>(b), ualpha = static_cast<U>(this->alpha);
    T r = a;
    switch (this->op) {
      case BinaryOp::add:
        r = static_cast<T>(static_cast<U>(ua + static_cast<U>(ualpha * ub)));
        break;
      case BinaryOp::sub:
        r = static_cast<T>(static_cast<U>(ua - static_cast<U>(ualpha * ub)));
        break;
      case BinaryOp::mul:
        r = static_cast<T>(static_cast<U>(ua * ub));
        break;
      case BinaryOp::div:
        r = 0;
        break;  // rejected on the host
      case BinaryOp::maximum:
        r = a < b ? b : a;
        break;
      case BinaryOp::minimum:
        r = b < a ? b : a;
        break;
      case BinaryOp::pow:
        r = int_pow<T>(a, b);
        break;
      case BinaryOp::logical_and:
        r = (a != T(0)) && (b != T(0));
        break;
      case BinaryOp::logical_or:
        r = (a != T(0)) || (b != T(0));
        break;
    }
    store<T>(p[0], r);
  }
};

struct BoolBinary : BinaryArgs<bool, bool> {
  __device__ void operator()(char* (&p)[3]) const {
    const bool a = a_of(p), b = b_of(p);
    bool r = false;  // sub/div/pow on bool are rejected by the op layer
    switch (op) {
      case BinaryOp::add:
        r = a || (alpha && b);
        break;
      case BinaryOp::mul:
      case BinaryOp::minimum:
      case BinaryOp::logical_and:
        r = a && b;
        break;
      case BinaryOp::maximum:
      case BinaryOp::logical_or:
        r = a || b;
        break;
      default:
        break;
    }
    store<bool>(p[0], r);
  }
};

template <typename F, typename M>
void launch_binary(BinaryOp op, const StridedLoop& loop, const Scalar& alpha,
                   const Scalar* b_scalar) {
  F f{};
  f.op = op;
  f.alpha = scalar_as<M>(alpha);
  f.b_is_scalar = b_scalar != nullptr;
  f.b_value = b_scalar ? scalar_as<M>(*b_scalar) : M{};
  // Judged on the exponent in the compute type, as the CPU does (2.0000000001 is 2.0f in fp32).
  f.pow = (op == BinaryOp::pow && b_scalar && std::is_floating_point_v<M>)
              ? pow_form(static_cast<double>(f.b_value))
              : PowForm::general;
  // float16/bfloat16 round the exponent to the dtype and keep fewer shortcuts (pow_form.h).
  if constexpr (std::is_same_v<F, FloatBinary<Half>> || std::is_same_v<F, FloatBinary<BFloat16>>) {
    using T = std::conditional_t<std::is_same_v<F, FloatBinary<Half>>, Half, BFloat16>;
    if (op == BinaryOp::pow && b_scalar) f.pow = half_like_pow_form<T>(f.b_value, &f.b_value);
  }
  if constexpr (std::is_same_v<M, float>) {
    if (launch_pieces<typename F::Stored, 3>(loop, loop.ops[0].dtype, f)) return;
  }
  launch_loop<3>(loop, f);
}

void mixed_binary(BinaryOp op, const StridedLoop& loop, const Scalar& alpha) {
  const DType dt = loop.ops[0].dtype, da = loop.ops[1].dtype, db = loop.ops[2].dtype;
  const bool arith =
      op == BinaryOp::add || op == BinaryOp::sub || op == BinaryOp::mul || op == BinaryOp::div;
  FABRIC_CHECK(arith && dt == DType::float32 && is_f32_family(da) && is_f32_family(db) &&
                   (da == dt || db == dt),
               DTypeError, "binary kernel: inputs ", dtype_name(da), " and ", dtype_name(db),
               " for a ", dtype_name(dt),
               " output (on CUDA, mixed inputs are for add/sub/mul/div: one float32 input and "
               "output, one bfloat16 or float16 input; cast them first)");
  const float a = scalar_as<float>(alpha);
  visit_f32_family("mixed binary", da, [&](auto ta) {
    visit_f32_family("mixed binary", db, [&](auto tb) {
      using TA = decltype(ta);
      using TB = decltype(tb);
      if constexpr (!std::is_same_v<TA, TB>) {
        const MixedFloatArith<TA, TB> f{op, a};
        if (!launch_mixed_pieces<float, TA, TB>(loop, f)) launch_loop<3>(loop, f);
      }
    });
  });
}

void binary_kernel(BinaryOp op, const StridedLoop& loop, const Scalar& alpha,
                   const Scalar* b_scalar) {
  const DType dt = loop.ops[0].dtype;
  if (!b_scalar && loop.num_operands == 3 && (loop.ops[1].dtype != dt || loop.ops[2].dtype != dt))
    return mixed_binary(op, loop, alpha);
  FABRIC_CHECK(!is_fp8(dt), DTypeError, "binary kernel: no CUDA kernel for ", dtype_name(dt),
               " (fp8 values are converted, not computed on)");
  FABRIC_CHECK(!(is_integral(dt, true) && op == BinaryOp::div), DTypeError,
               "binary kernel: div on ", dtype_name(dt),
               " (true division runs on floating dtypes)");
  const bool logical = op == BinaryOp::logical_and || op == BinaryOp::logical_or;
  FABRIC_CHECK(
      !(logical && (dt == DType::float32 || dt == DType::float16 || dt == DType::bfloat16)),
      DTypeError, "binary kernel: logical_and/logical_or run on bool tensors only");
  switch (dt) {
    case DType::float32:
      return launch_binary<FloatBinary<float>, float>(op, loop, alpha, b_scalar);
    case DType::float16:
      return launch_binary<FloatBinary<Half>, float>(op, loop, alpha, b_scalar);
    case DType::bfloat16:
      return launch_binary<FloatBinary<BFloat16>, float>(op, loop, alpha, b_scalar);
    case DType::float64:
      return launch_binary<DoubleBinary, double>(op, loop, alpha, b_scalar);
    case DType::int64:
      return launch_binary<IntBinary<int64_t>, int64_t>(op, loop, alpha, b_scalar);
    case DType::int32:
      return launch_binary<IntBinary<int32_t>, int32_t>(op, loop, alpha, b_scalar);
    case DType::int8:
      return launch_binary<IntBinary<int8_t>, int8_t>(op, loop, alpha, b_scalar);
    case DType::uint8:
      return launch_binary<IntBinary<uint8_t>, uint8_t>(op, loop, alpha, b_scalar);
    case DType::bool_:
      return launch_binary<BoolBinary, bool>(op, loop, alpha, b_scalar);
    default:
      break;
  }
}

// ---- comparisons: (out bool, a, b) or (out, a) with b cast to a's dtype first
// ----------------------
template <typename T>
struct Compare {
  using M = opmath_t<T>;
  CompareOp op;
  bool b_is_scalar;
  M b_value;
  __device__ __forceinline__ M read(const char* p) const {
    if constexpr (std::is_same_v<T, bool>) {
      return load<uint8_t>(p) != 0;
    } else {
      return static_cast<M>(load<T>(p));
    }
  }
  __device__ void operator()(char* (&p)[3]) const {
    const M a = read(p[1]);
    const M b = b_is_scalar ? b_value : read(p[2]);
    bool r = false;
    switch (op) {
      case CompareOp::eq:
        r = a == b;
        break;
      case CompareOp::ne:
        r = a != b;
        break;
      case CompareOp::lt:
        r = a < b;
        break;
      case CompareOp::le:
        r = a <= b;
        break;
      case CompareOp::gt:
        r = a > b;
        break;
      case CompareOp::ge:
        r = a >= b;
        break;
    }
    store<bool>(p[0], r);
  }
};

void compare_kernel(CompareOp op, const StridedLoop& loop, const Scalar* b_scalar) {
  const DType dt = loop.ops[1].dtype;
  FABRIC_CHECK(!is_fp8(dt), DTypeError, "compare kernel: no CUDA kernel for ", dtype_name(dt),
               " (fp8 values are converted, not computed on)");
  visit_compute_dtype(dt, [&](auto tag) {
    using T = decltype(tag);
    using M = opmath_t<T>;
    // bf16 x == 0.1 compares with bf16(0.1), as PyTorch casts a wrapped scalar to the dtype.
    M bv{};
    if (b_scalar) {
      const T t = b_scalar->is_floating() ? cast_value<T>(b_scalar->to_double())
                                          : cast_value<T>(b_scalar->to_int());
      bv = static_cast<M>(t);
    }
    launch_loop<3>(loop, Compare<T>{op, b_scalar != nullptr, bv});
  });
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(binary_stub, cuda, &cuda::binary_kernel);
FABRIC_REGISTER_KERNEL(compare_stub, cuda, &cuda::compare_kernel);
}  // namespace fabric
