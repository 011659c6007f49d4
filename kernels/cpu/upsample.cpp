// CPU 2-D upsampling (nearest, bilinear) over contiguous NCHW planes, forward and backward, with
// the source indices of tensor/upsample_kernels.h computed once per call into per-dimension
// tables. The backward gathers (each input element sums the outputs that read it, in (oh, ow)
// order) as the CUDA kernel does, so both devices add in one order and rows run in parallel
// without atomics. Reduced precision computes in float32.
#include <cstdint>
#include <type_traits>
#include <vector>

#include "tensor/conv_kernels.h"
#include "tensor/upsample_kernels.h"

namespace fabric::cpu {
namespace {

template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename A>
std::vector<UpsampleTaps<A>> taps_table(const UpsampleDesc& d, bool rows) {
  const int64_t out = rows ? d.OH : d.OW;
  std::vector<UpsampleTaps<A>> t(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) t[o] = upsample_taps<A>(d, rows, o);
  return t;
}

// For each input index, the outputs [lo, hi) that read it.
template <typename A>
std::vector<std::pair<int64_t, int64_t>> readers_table(const UpsampleDesc& d, bool rows) {
  const int64_t in = rows ? d.H : d.W;
  std::vector<std::pair<int64_t, int64_t>> r(static_cast<size_t>(in));
  for (int64_t i = 0; i < in; ++i) upsample_readers<A>(d, rows, i, r[i].first, r[i].second);
  return r;
}

// Rows of all planes in parallel: (plane, row) pairs are independent in both directions.
template <typename F>
void for_rows(int64_t planes, int64_t rows, int64_t row_work, F&& f) {
  const int64_t total = planes * rows;
#pragma omp parallel for schedule(static) if (total * row_work > 32768)
  for (int64_t pr = 0; pr < total; ++pr) f(pr / rows, pr % rows);
}

template <typename T>
void forward(const UpsampleDesc& d, const void* xv, void* yv) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  const auto rows = taps_table<A>(d, true), cols = taps_table<A>(d, false);
  for_rows(d.planes, d.OH, d.OW, [&](int64_t p, int64_t oh) {
    const T* xp = x + p * d.H * d.W;
    T* yr = y + (p * d.OH + oh) * d.OW;
    const UpsampleTaps<A>& r = rows[oh];
    const T* x0 = xp + r.i0 * d.W;
    if (!d.bilinear) {
      for (int64_t ow = 0; ow < d.OW; ++ow) yr[ow] = x0[cols[ow].i0];
      return;
    }
    const T* x1 = xp + r.i1 * d.W;
    for (int64_t ow = 0; ow < d.OW; ++ow) {
      const UpsampleTaps<A>& c = cols[ow];
      const A top = c.l0 * static_cast<A>(x0[c.i0]) + c.l1 * static_cast<A>(x0[c.i1]);
      const A bottom = c.l0 * static_cast<A>(x1[c.i0]) + c.l1 * static_cast<A>(x1[c.i1]);
      yr[ow] = static_cast<T>(r.l0 * top + r.l1 * bottom);
    }
  });
}

template <typename T>
void backward(const UpsampleDesc& d, const void* dyv, void* dxv) {
  using A = acc_t<T>;
  const T* dy = static_cast<const T*>(dyv);
  T* dx = static_cast<T*>(dxv);
  const auto rows = taps_table<A>(d, true), cols = taps_table<A>(d, false);
  const auto row_readers = readers_table<A>(d, true), col_readers = readers_table<A>(d, false);
  for_rows(d.planes, d.H, d.W, [&](int64_t p, int64_t h) {
    const T* gp = dy + p * d.OH * d.OW;
    T* dr = dx + (p * d.H + h) * d.W;
    const auto [oh0, oh1] = row_readers[h];
    for (int64_t c = 0; c < d.W; ++c) {
      const auto [ow0, ow1] = col_readers[c];
      A acc = 0;
      for (int64_t oh = oh0; oh < oh1; ++oh) {
        const A wh = upsample_weight(rows[oh], h);
        for (int64_t ow = ow0; ow < ow1; ++ow)
          acc += wh * upsample_weight(cols[ow], c) * static_cast<A>(gp[oh * d.OW + ow]);
      }
      dr[c] = static_cast<T>(acc);
    }
  });
}

void upsample2d_forward(const UpsampleDesc& d, const void* x, void* y) {
  visit_conv_dtype(d.dtype, "upsample2d", [&](auto t) { forward<decltype(t)>(d, x, y); });
}
void upsample2d_backward(const UpsampleDesc& d, const void* dy, void* dx) {
  visit_conv_dtype(d.dtype, "upsample2d_backward",
                   [&](auto t) { backward<decltype(t)>(d, dy, dx); });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(upsample2d_forward_stub, cpu, &cpu::upsample2d_forward);
FABRIC_REGISTER_KERNEL(upsample2d_backward_stub, cpu, &cpu::upsample2d_backward);
}  // namespace fabric
