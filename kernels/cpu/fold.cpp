// CPU unfold (im2col) and fold (col2im) over contiguous tensors (fold_kernels.h). unfold runs in
// parallel over the N*C*KH*KW column rows, each written by one thread; fold in parallel over the
// N*C image planes, since the rows of one channel all add into its plane. Reduced precision
// accumulates fold's sums in float32.
#include <cstdint>
#include <type_traits>
#include <vector>

#include "tensor/conv_kernels.h"
#include "tensor/fold_kernels.h"

namespace fabric::cpu {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename T>
void unfold_rows(const FoldDesc& d, const void* imv, void* colv) {
  const T* im = static_cast<const T*>(imv);
  T* col = static_cast<T*>(colv);
  const int64_t kk = d.KH * d.KW, rows = d.N * d.C * kk, L = d.BH * d.BW;
#pragma omp parallel for schedule(static) if (rows * L > 32768 && rows > 1)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t plane = r / kk, ki = (r % kk) / d.KW, kj = r % d.KW;  // plane = n*C + c
    const T* ip = im + plane * d.H * d.W;
    T* out = col + r * L;
    for (int64_t bh = 0; bh < d.BH; ++bh) {
      const int64_t h = bh * d.SH - d.PH + ki * d.DH;
      for (int64_t bw = 0; bw < d.BW; ++bw) {
        const int64_t w = bw * d.SW - d.PW + kj * d.DW;
        const bool inside = h >= 0 && h < d.H && w >= 0 && w < d.W;
        *out++ = inside ? ip[h * d.W + w] : T(0.0f);
      }
    }
  }
}

template <typename T>
void fold_planes(const FoldDesc& d, const void* colv, void* imv) {
  using A = acc_t<T>;
  const T* col = static_cast<const T*>(colv);
  T* im = static_cast<T*>(imv);
  const int64_t kk = d.KH * d.KW, planes = d.N * d.C, L = d.BH * d.BW, hw = d.H * d.W;
#pragma omp parallel for schedule(static) if (planes * kk * L > 32768 && planes > 1)
  for (int64_t p = 0; p < planes; ++p) {
    std::vector<A> acc(static_cast<size_t>(hw), A(0));
    const T* rows = col + p * kk * L;
    for (int64_t ki = 0; ki < d.KH; ++ki)
      for (int64_t kj = 0; kj < d.KW; ++kj) {
        const T* row = rows + (ki * d.KW + kj) * L;
        for (int64_t bh = 0; bh < d.BH; ++bh) {
          const int64_t h = bh * d.SH - d.PH + ki * d.DH;
          if (h < 0 || h >= d.H) continue;
          for (int64_t bw = 0; bw < d.BW; ++bw) {
            const int64_t w = bw * d.SW - d.PW + kj * d.DW;
            if (w >= 0 && w < d.W) acc[h * d.W + w] += static_cast<A>(row[bh * d.BW + bw]);
          }
        }
      }
    T* ip = im + p * hw;
    for (int64_t i = 0; i < hw; ++i) ip[i] = static_cast<T>(acc[i]);
  }
}

void unfold(const FoldDesc& d, const void* image, void* cols) {
  visit_conv_dtype(d.dtype, "unfold", [&](auto t) { unfold_rows<decltype(t)>(d, image, cols); });
}
void fold(const FoldDesc& d, const void* cols, void* image) {
  visit_conv_dtype(d.dtype, "fold", [&](auto t) { fold_planes<decltype(t)>(d, cols, image); });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(unfold_stub, cpu, &cpu::unfold);
FABRIC_REGISTER_KERNEL(fold_stub, cpu, &cpu::fold);
}  // namespace fabric
