// CPU unfold (im2col) and fold (col2im) over contiguous tensors (fold_kernels.h). unfold runs in
// parallel over the N*C*KH*KW column rows, each written by one thread; fold in parallel over the
// N*C image planes, since the rows of one channel all add into its plane. Reduced precision
// accumulates fold's sums in float32.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cpu/run_tasks.h"
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
  run_tasks(rows, rows * L > 32768, [&](int64_t r) {
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
  });
}

// The blocks bw in [lo, hi) whose column w = bw*S + off lands inside [0, W).
struct BlockRange {
  int64_t lo, hi;
};
BlockRange inside_blocks(int64_t off, int64_t S, int64_t W, int64_t blocks) {
  const int64_t lo = off >= 0 ? 0 : (-off + S - 1) / S;
  const int64_t hi = W - 1 - off < 0 ? 0 : std::min(blocks, (W - 1 - off) / S + 1);
  return {lo, std::max(lo, hi)};
}

// Each kernel offset (ki, kj) in turn adds its column row into the plane, one output row at a
// time over the blocks that land inside it: no bounds test per element, and with stride 1 a
// contiguous run that vectorizes. Every pixel still sums its entries in (ki, kj) order from 0,
// as the per-element loop did. Float planes accumulate in place, reduced precision in a float
// plane per thread.
template <typename T>
void fold_planes(const FoldDesc& d, const void* colv, void* imv) {
  using A = acc_t<T>;
  constexpr bool in_place = std::is_same_v<T, A>;
  const T* col = static_cast<const T*>(colv);
  T* im = static_cast<T*>(imv);
  const int64_t kk = d.KH * d.KW, planes = d.N * d.C, L = d.BH * d.BW, hw = d.H * d.W;
  run_tasks_with_scratch(
      planes, planes * kk * L > 32768,
      [&] { return std::vector<A>(in_place ? 0 : static_cast<size_t>(hw)); },
      [&](int64_t p, std::vector<A>& scratch) {
        A* acc = in_place ? reinterpret_cast<A*>(im + p * hw) : scratch.data();
        std::fill(acc, acc + hw, A(0));
        const T* rows = col + p * kk * L;
        for (int64_t ki = 0; ki < d.KH; ++ki) {
          const BlockRange bh = inside_blocks(ki * d.DH - d.PH, d.SH, d.H, d.BH);
          for (int64_t kj = 0; kj < d.KW; ++kj) {
            const int64_t off_w = kj * d.DW - d.PW;
            const BlockRange bw = inside_blocks(off_w, d.SW, d.W, d.BW);
            const int64_t n = bw.hi - bw.lo;
            if (n <= 0) continue;
            const T* row = rows + (ki * d.KW + kj) * L;
            for (int64_t b = bh.lo; b < bh.hi; ++b) {
              const int64_t h = b * d.SH - d.PH + ki * d.DH;
              A* __restrict dst = acc + h * d.W + off_w + bw.lo * d.SW;
              const T* __restrict src = row + b * d.BW + bw.lo;
              if (d.SW == 1) {
#pragma omp simd
                for (int64_t i = 0; i < n; ++i) dst[i] += static_cast<A>(src[i]);
              } else {
                for (int64_t i = 0; i < n; ++i) dst[i * d.SW] += static_cast<A>(src[i]);
              }
            }
          }
        }
        if constexpr (!in_place) {
          T* ip = im + p * hw;
          for (int64_t i = 0; i < hw; ++i) ip[i] = static_cast<T>(acc[i]);
        }
      });
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
