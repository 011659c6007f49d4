// CPU kernels for prod and cumprod over a contiguous (outer, len, inner) input (math_kernels.h).
// A product has no pairwise trick to speak of: the accumulator is wide instead (double for
// float32, as torch's CPU acc_type), and the loops run down len with inner innermost so they
// vectorise across columns.
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cpu/elementwise_common.h"
#include "tensor/math_kernels.h"

namespace fabric::cpu {
namespace {

template <typename T>
using prod_acc_t = std::conditional_t<std::is_same_v<T, float>, double, ew::opmath_t<T>>;

template <typename T>
void prod_typed(const ScanGeometry& g) {
  using A = std::conditional_t<std::is_integral_v<T>, int64_t, prod_acc_t<T>>;
  const T* in = static_cast<const T*>(g.in);
  T* out = static_cast<T*>(g.out);
  std::vector<A> acc(static_cast<size_t>(g.inner));
  for (int64_t o = 0; o < g.outer; ++o) {
    std::fill(acc.begin(), acc.end(), A(1));
    for (int64_t l = 0; l < g.len; ++l) {
      const T* row = in + (o * g.len + l) * g.inner;
      for (int64_t i = 0; i < g.inner; ++i) {
        if constexpr (std::is_integral_v<T>)  // wraps, as torch's int64 products
          acc[i] = static_cast<A>(static_cast<uint64_t>(acc[i]) * static_cast<uint64_t>(row[i]));
        else
          acc[i] *= static_cast<A>(row[i]);
      }
    }
    for (int64_t i = 0; i < g.inner; ++i) out[o * g.inner + i] = static_cast<T>(acc[i]);
  }
}

template <typename T>
void cumprod_typed(const ScanGeometry& g) {
  using A = std::conditional_t<std::is_integral_v<T>, int64_t, prod_acc_t<T>>;
  const T* in = static_cast<const T*>(g.in);
  T* out = static_cast<T*>(g.out);
  std::vector<A> acc(static_cast<size_t>(g.inner));
  for (int64_t o = 0; o < g.outer; ++o) {
    std::fill(acc.begin(), acc.end(), A(1));
    for (int64_t l = 0; l < g.len; ++l) {
      const int64_t off = (o * g.len + l) * g.inner;
      for (int64_t i = 0; i < g.inner; ++i) {
        if constexpr (std::is_integral_v<T>)
          acc[i] = static_cast<A>(static_cast<uint64_t>(acc[i]) *
                                  static_cast<uint64_t>(static_cast<int64_t>(in[off + i])));
        else
          acc[i] *= static_cast<A>(in[off + i]);
        out[off + i] = static_cast<T>(acc[i]);
      }
    }
  }
}

// kernel(T{}) for the dtypes torch's prod/cumprod have CPU kernels for (not fp8 or bool).
template <typename Kernel>
void run_typed(const char* name, const ScanGeometry& g, const Kernel& kernel) {
  FABRIC_CHECK(g.in_dtype == g.out_dtype, DTypeError, name, " kernel: input ",
               dtype_name(g.in_dtype), " and output ", dtype_name(g.out_dtype), " differ");
  if (g.outer * g.inner == 0) return;
  visit_dtype(g.out_dtype, [&](auto t) {
    using T = decltype(t);
    if constexpr (std::is_same_v<T, Float8E4M3> || std::is_same_v<T, Float8E5M2> ||
                  std::is_same_v<T, bool>) {
      throw DTypeError(
          ::fabric::detail::cat(name, " kernel: no CPU kernel for ", dtype_name(g.out_dtype)));
    } else {
      kernel(t);
    }
  });
}

void prod_kernel(const ScanGeometry& g) {
  run_typed("prod", g, [&](auto t) { prod_typed<decltype(t)>(g); });
}
void cumprod_kernel(const ScanGeometry& g) {
  if (g.len == 0) return;
  run_typed("cumprod", g, [&](auto t) { cumprod_typed<decltype(t)>(g); });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(prod_stub, cpu, &cpu::prod_kernel);
FABRIC_REGISTER_KERNEL(cumprod_stub, cpu, &cpu::cumprod_kernel);
}  // namespace fabric
