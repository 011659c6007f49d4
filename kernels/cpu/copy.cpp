// CPU copy/convert and fill kernels over a StridedLoop (operand 0 is the destination).
#include <algorithm>
#include <cstring>

#include "kernels/cpu/convert.h"
#include "tensor/copy_kernels.h"

namespace fabric::cpu {
namespace {

template <typename D, typename S>
void copy_row(char* dst, int64_t ds, const char* src, int64_t ss, int64_t n, bool saturate) {
  for (int64_t i = 0; i < n; ++i) {
    S s;
    std::memcpy(&s, src + i * ss, sizeof(S));
    D d;
    if constexpr (std::is_same_v<D, Float8E4M3> || std::is_same_v<D, Float8E5M2>) {
      d = saturate ? D::saturating(scalar_cast<float>(s)) : scalar_cast<D>(s);
    } else {
      d = scalar_cast<D>(s);
    }
    std::memcpy(dst + i * ds, &d, sizeof(D));
  }
}

void copy_kernel(const StridedLoop& loop, bool saturate_fp8) {
  const DType dt = loop.ops[0].dtype, st = loop.ops[1].dtype;
  const int64_t di = itemsize(dt), si = itemsize(st);
  // Source and destination contiguous along different dims (a transpose) walk in tiles: see
  // for_each_row.
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    if (s[0] == di && s[1] == si) {
      if (dt == st) {
        std::memcpy(p[0], p[1], n * di);
      } else {
        convert(st, p[1], dt, p[0], n, saturate_fp8);
      }
      return;
    }
    visit_dtype(dt, [&](auto d) {
      visit_dtype(st, [&](auto sv) {
        copy_row<decltype(d), decltype(sv)>(p[0], s[0], p[1], s[1], n, saturate_fp8);
      });
    });
  });
}

void fill_kernel(const StridedLoop& loop, const Scalar& value) {
  visit_dtype(loop.ops[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    const T v = value.is_floating() ? scalar_cast<T>(value.to_double()) : scalar_cast<T>(value.to_int());
    // All-zero bytes (zeros_like, gradient buffers; not -0.0) take memset: the element loop over
    // the 16-bit float classes does not vectorise.
    T zero{};
    std::memset(&zero, 0, sizeof(T));
    const bool zero_bytes = std::memcmp(&v, &zero, sizeof(T)) == 0;
    for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
      if (zero_bytes && s[0] == static_cast<int64_t>(sizeof(T))) {
        std::memset(p[0], 0, size_t(n) * sizeof(T));
      } else if (s[0] == static_cast<int64_t>(sizeof(T))) {
        T* out = reinterpret_cast<T*>(p[0]);
        for (int64_t i = 0; i < n; ++i) out[i] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) std::memcpy(p[0] + i * s[0], &v, sizeof(T));
      }
    });
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(copy_stub, cpu, &cpu::copy_kernel);
FABRIC_REGISTER_KERNEL(fill_stub, cpu, &cpu::fill_kernel);
}  // namespace fabric
