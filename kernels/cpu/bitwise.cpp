// CPU kernels of tensor/bitwise.h's integer ops, with torch 1.13's CPU results: and/or/xor (bool:
// logical), not, gcd/lcm (ATen's calc_gcd on absolute values; lcm = |a / g * b| in int, wrapping
// into the dtype), and the shifts as torch's x86 build computes them: 8-bit operands promote to
// int, the count is taken modulo the width of the shifted register (32 bits, 64 for int64) as the
// shift instructions do, a left shift shifts the unsigned bit pattern and a right shift of a
// signed value is arithmetic.
#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "kernels/cpu/elementwise_common.h"
#include "tensor/error.h"
#include "tensor/math_extra_kernels.h"

namespace fabric::cpu {
namespace {

using ew::load_elem;
using ew::store_elem;

template <typename T>
T gcd_value(T a, T b) {
  if constexpr (std::is_signed_v<T>) {  // torch's abs(): |MIN| wraps back to MIN, without UB here
    using U = std::make_unsigned_t<T>;
    if (a < 0) a = static_cast<T>(static_cast<U>(0u - static_cast<U>(a)));
    if (b < 0) b = static_cast<T>(static_cast<U>(0u - static_cast<U>(b)));
  }
  while (a != 0) {
    const T c = a;
    a = static_cast<T>(b % a);
    b = c;
  }
  return b;
}

template <typename T>
T lcm_value(T a, T b) {
  const T g = gcd_value(a, b);
  if (g == 0) return T(0);
  if constexpr (std::is_same_v<T, int64_t>) {  // a / g * b in int64, wrapping, then |.|
    const auto p = static_cast<int64_t>(static_cast<uint64_t>(a / g) * static_cast<uint64_t>(b));
    return p < 0 ? static_cast<int64_t>(0 - static_cast<uint64_t>(p)) : p;
  } else {  // narrower types compute in int (int32: wrapping)
    const auto p = static_cast<int32_t>(static_cast<uint32_t>(a / g) * static_cast<uint32_t>(b));
    return static_cast<T>(p < 0 ? static_cast<int32_t>(0u - static_cast<uint32_t>(p)) : p);
  }
}

template <typename T>
T shift_left(T a, T b) {
  if constexpr (std::is_same_v<T, int64_t>) {
    return static_cast<T>(static_cast<uint64_t>(a) << (static_cast<uint64_t>(b) & 63));
  } else {
    using U = std::make_unsigned_t<T>;
    const uint32_t bits = static_cast<uint32_t>(static_cast<U>(a));
    return static_cast<T>(bits << (static_cast<uint32_t>(static_cast<int32_t>(b)) & 31));
  }
}

template <typename T>
T shift_right(T a, T b) {
  if constexpr (std::is_same_v<T, int64_t>) {
    return static_cast<T>(a >> (static_cast<uint64_t>(b) & 63));
  } else {
    const auto wide = static_cast<int32_t>(a);  // sign- or zero-extended, as C++ promotes
    return static_cast<T>(wide >> (static_cast<uint32_t>(static_cast<int32_t>(b)) & 31));
  }
}

template <typename T>
void bitwise_typed(BitwiseOp op, const StridedLoop& loop) {
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    for (int64_t i = 0; i < n; ++i) {
      const T a = load_elem<T>(p[1] + i * s[1]);
      const T b = load_elem<T>(p[2] + i * s[2]);
      T r{};
      if constexpr (std::is_same_v<T, bool>) {
        r = op == BitwiseOp::bit_and ? (a && b) : op == BitwiseOp::bit_or ? (a || b) : (a != b);
      } else {
        switch (op) {
          case BitwiseOp::bit_and:
            r = static_cast<T>(a & b);
            break;
          case BitwiseOp::bit_or:
            r = static_cast<T>(a | b);
            break;
          case BitwiseOp::bit_xor:
            r = static_cast<T>(a ^ b);
            break;
          case BitwiseOp::shift_left:
            r = shift_left(a, b);
            break;
          case BitwiseOp::shift_right:
            r = shift_right(a, b);
            break;
          case BitwiseOp::gcd:
            r = gcd_value(a, b);
            break;
          case BitwiseOp::lcm:
            r = lcm_value(a, b);
            break;
        }
      }
      store_elem<T>(p[0] + i * s[0], r);
    }
  });
}

void bitwise_kernel(BitwiseOp op, const StridedLoop& loop) {
  switch (loop.ops[0].dtype) {
    case DType::int64:
      return bitwise_typed<int64_t>(op, loop);
    case DType::int32:
      return bitwise_typed<int32_t>(op, loop);
    case DType::int8:
      return bitwise_typed<int8_t>(op, loop);
    case DType::uint8:
      return bitwise_typed<uint8_t>(op, loop);
    case DType::bool_:
      if (op == BitwiseOp::bit_and || op == BitwiseOp::bit_or || op == BitwiseOp::bit_xor)
        return bitwise_typed<bool>(op, loop);
      break;
    default:
      break;
  }
  throw DTypeError(::fabric::detail::cat("bitwise kernel: op ", static_cast<int>(op),
                                         " has no CPU kernel for ", dtype_name(loop.ops[0].dtype)));
}

void bitwise_not_kernel(const StridedLoop& loop) {
  visit_dtype(loop.ops[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, bool> || std::is_integral_v<T>) {
      for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
        for (int64_t i = 0; i < n; ++i) {
          const T a = load_elem<T>(p[1] + i * s[1]);
          if constexpr (std::is_same_v<T, bool>) {
            store_elem<T>(p[0] + i * s[0], !a);
          } else {
            store_elem<T>(p[0] + i * s[0], static_cast<T>(~a));
          }
        }
      });
    } else {
      throw DTypeError(::fabric::detail::cat("bitwise_not kernel: no CPU kernel for ",
                                             dtype_name(loop.ops[0].dtype)));
    }
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(bitwise_stub, cpu, &cpu::bitwise_kernel);
FABRIC_REGISTER_KERNEL(bitwise_not_stub, cpu, &cpu::bitwise_not_kernel);
}  // namespace fabric
