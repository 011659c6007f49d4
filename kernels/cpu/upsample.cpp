// CPU 2-D and 3-D upsampling (nearest, bilinear, trilinear; the 3-D kernels at the end) over
// contiguous planes and volumes, forward and backward, with the source indices of
// tensor/upsample_kernels.h computed once per call into per-dimension tables. The 2-D backward
// gathers (each input element sums the outputs that read it, in (oh, ow) order) as the CUDA kernel
// does, so both devices add in one order and rows run in parallel without atomics: each
// input-gradient row accumulates whole output-gradient rows at a time, its columns side by side
// (vectorised where the columns double), from per-column reader tables. Reduced precision computes
// in float32. The per-element arithmetic (rounding order included) is tensor/upsample_math.h's,
// shared with the CUDA kernels.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cpu/run_tasks.h"
#include "tensor/conv_kernels.h"
#include "tensor/upsample_kernels.h"
#include "tensor/upsample_math.h"

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
  run_tasks(total, total * row_work > 32768, [&](int64_t pr) { f(pr / rows, pr % rows); });
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
      yr[ow] = static_cast<T>(upsample::bilinear(r.l0, r.l1, c.l0, c.l1, static_cast<A>(x0[c.i0]),
                                                 static_cast<A>(x0[c.i1]), static_cast<A>(x1[c.i0]),
                                                 static_cast<A>(x1[c.i1])));
    }
  });
}

// For each input column c, the outputs [first[c], first[c] + count[c]) that read it (contiguous:
// both taps are non-decreasing in ow) and the weight each gives c, stored weight-major
// (w[k * W + c], the k-th reader's) so a run of columns loads its k-th weights contiguously.
template <typename A>
struct ColumnReaders {
  std::vector<int64_t> first, count;
  std::vector<A> w;
  int64_t max_count = 0;
  // Columns [lo, hi) whose readers are `count[lo]` outputs from 2c + offset (doubling): there
  // the gather runs with a fixed count and stride, which vectorises; empty (lo == hi) if none.
  int64_t lo = 0, hi = 0, offset = 0;
};

template <typename A>
ColumnReaders<A> column_readers(const UpsampleDesc& d) {
  const auto cols = taps_table<A>(d, false);
  const auto readers = readers_table<A>(d, false);
  ColumnReaders<A> r;
  if (d.W == 0) return r;
  r.first.resize(static_cast<size_t>(d.W));
  r.count.resize(static_cast<size_t>(d.W));
  for (int64_t c = 0; c < d.W; ++c) {
    r.first[c] = readers[c].first;
    r.count[c] = readers[c].second - readers[c].first;
    r.max_count = std::max(r.max_count, r.count[c]);
  }
  r.w.assign(static_cast<size_t>(r.max_count * d.W), A(0));
  for (int64_t c = 0; c < d.W; ++c)
    for (int64_t k = 0; k < r.count[c]; ++k)
      r.w[k * d.W + c] = upsample_weight(cols[r.first[c] + k], c);
  // The doubling run around the middle column, for the counts the gather has a fast path for.
  const int64_t mid = d.W / 2, count = r.count[mid], offset = r.first[mid] - 2 * mid;
  if (count != 2 && count != 4) return r;
  auto regular = [&](int64_t c) { return r.count[c] == count && r.first[c] - 2 * c == offset; };
  int64_t lo = mid, hi = mid + 1;
  while (lo > 0 && regular(lo - 1)) --lo;
  while (hi < d.W && regular(hi)) ++hi;
  r.lo = lo;
  r.hi = hi;
  r.offset = offset;
  return r;
}

// acc[c] += (wh * w) * g[ow] over c's readers ow in increasing order: for each input element the
// same terms, products and order as a gather over (oh, ow), so the sums are the same bits (each
// step upsample::gather_step, the CUDA kernel's too).
template <typename A, typename T>
void gather_columns(const ColumnReaders<A>& r, int64_t W, A wh, const T* g, A* acc, int64_t lo,
                    int64_t hi) {
  for (int64_t c = lo; c < hi; ++c) {
    A a = acc[c];
    const T* gc = g + r.first[c];
    for (int64_t k = 0; k < r.count[c]; ++k)
      a = upsample::gather_step(wh, r.w[k * W + c], static_cast<A>(gc[k]), a);
    acc[c] = a;
  }
}

template <int kCount, typename A, typename T>
void gather_doubling(const ColumnReaders<A>& r, int64_t W, A wh, const T* g, A* acc) {
  const T* g0 = g + r.offset;
  const A* w = r.w.data();
  for (int64_t c = r.lo; c < r.hi; ++c) {
    A a = acc[c];
    for (int k = 0; k < kCount; ++k)
      a = upsample::gather_step(wh, w[k * W + c], static_cast<A>(g0[2 * c + k]), a);
    acc[c] = a;
  }
}

template <typename A, typename T>
void gather_row(const ColumnReaders<A>& r, int64_t W, A wh, const T* g, A* acc) {
  gather_columns(r, W, wh, g, acc, 0, r.lo);
  if (r.hi - r.lo > 0) {
    if (r.count[r.lo] == 2)
      gather_doubling<2>(r, W, wh, g, acc);
    else
      gather_doubling<4>(r, W, wh, g, acc);
  }
  gather_columns(r, W, wh, g, acc, r.hi, W);
}

template <typename T>
void backward(const UpsampleDesc& d, const void* dyv, void* dxv) {
  using A = acc_t<T>;
  const T* dy = static_cast<const T*>(dyv);
  T* dx = static_cast<T*>(dxv);
  const auto rows = taps_table<A>(d, true);
  const auto row_readers = readers_table<A>(d, true);
  const ColumnReaders<A> cols = column_readers<A>(d);
  const int64_t total = d.planes * d.H;
  run_tasks_with_scratch(
      total, total * d.W > 32768,
      [&] { return std::vector<A>(std::is_same_v<T, A> ? 0 : static_cast<size_t>(d.W)); },
      [&](int64_t ph, std::vector<A>& buffer) {
        const int64_t p = ph / d.H, h = ph % d.H;
        const T* gp = dy + p * d.OH * d.OW;
        T* dr = dx + ph * d.W;
        A* acc;
        if constexpr (std::is_same_v<T, A>)
          acc = dr;
        else
          acc = buffer.data();
        std::fill(acc, acc + d.W, A(0));
        const auto [oh0, oh1] = row_readers[h];
        for (int64_t oh = oh0; oh < oh1; ++oh)
          gather_row(cols, d.W, upsample_weight(rows[oh], h), gp + oh * d.OW, acc);
        if constexpr (!std::is_same_v<T, A>)
          for (int64_t c = 0; c < d.W; ++c) dr[c] = static_cast<T>(acc[c]);
      });
}

void upsample2d_forward(const UpsampleDesc& d, const void* x, void* y) {
  visit_conv_dtype(d.dtype, "upsample2d", [&](auto t) { forward<decltype(t)>(d, x, y); });
}
void upsample2d_backward(const UpsampleDesc& d, const void* dy, void* dx) {
  visit_conv_dtype(d.dtype, "upsample2d_backward",
                   [&](auto t) { backward<decltype(t)>(d, dy, dx); });
}

// ---- 3-D (nearest, trilinear) ----------------------------------------------------------------

template <typename A>
std::vector<UpsampleTaps<A>> taps_table3(const Upsample3dDesc& d, const UpsampleAxis& a) {
  std::vector<UpsampleTaps<A>> t(static_cast<size_t>(a.out));
  for (int64_t o = 0; o < a.out; ++o) t[o] = upsample3d_taps<A>(d, a, o);
  return t;
}

template <typename T>
void forward3d(const Upsample3dDesc& d, const void* xv, void* yv) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(xv);
  T* y = static_cast<T*>(yv);
  const auto td = taps_table3<A>(d, d.d), th = taps_table3<A>(d, d.h), tw = taps_table3<A>(d, d.w);
  const int64_t H = d.h.in, W = d.w.in, OW = d.w.out, rows = d.d.out * d.h.out;
  for_rows(d.planes, rows, OW, [&](int64_t p, int64_t r) {
    const int64_t od = r / d.h.out, oh = r % d.h.out;
    const T* xp = x + p * d.d.in * H * W;
    T* yr = y + (p * rows + r) * OW;
    const UpsampleTaps<A>&a = td[od], &b = th[oh];
    const T* x00 = xp + (a.i0 * H + b.i0) * W;
    if (!d.trilinear) {
      for (int64_t ow = 0; ow < OW; ++ow) yr[ow] = x00[tw[ow].i0];
      return;
    }
    const T* x01 = xp + (a.i0 * H + b.i1) * W;
    const T* x10 = xp + (a.i1 * H + b.i0) * W;
    const T* x11 = xp + (a.i1 * H + b.i1) * W;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const UpsampleTaps<A>& c = tw[ow];
      const A p0[4] = {static_cast<A>(x00[c.i0]), static_cast<A>(x00[c.i1]),
                       static_cast<A>(x01[c.i0]), static_cast<A>(x01[c.i1])};
      const A p1[4] = {static_cast<A>(x10[c.i0]), static_cast<A>(x10[c.i1]),
                       static_cast<A>(x11[c.i0]), static_cast<A>(x11[c.i1])};
      yr[ow] = static_cast<T>(upsample::trilinear(a.l0, a.l1, b.l0, b.l1, c.l0, c.l1, p0, p1));
    }
  });
}

// Each input row (plane, id, ih) gathers, column by column, the terms torch's backward adds to
// it, in its order (Upsample3dDesc): outputs (od, oh) outer, then each column's readers ow, then
// the taps; the columns of one row are independent, so they sit side by side in `acc`.
template <typename T>
void backward3d(const Upsample3dDesc& d, const void* dyv, void* dxv) {
  using A = acc_t<T>;
  const T* dy = static_cast<const T*>(dyv);
  T* dx = static_cast<T*>(dxv);
  const auto td = taps_table3<A>(d, d.d), th = taps_table3<A>(d, d.h), tw = taps_table3<A>(d, d.w);
  const int64_t D = d.d.in, H = d.h.in, W = d.w.in, OH = d.h.out, OW = d.w.out;
  std::vector<int64_t> w_lo(static_cast<size_t>(W)), w_hi(static_cast<size_t>(W));
  for (int64_t c = 0; c < W; ++c) upsample3d_readers<A>(d, d.w, c, w_lo[c], w_hi[c]);
  const int64_t total = d.planes * D * H;
  run_tasks_with_scratch(
      total, total * W > 32768, [&] { return std::vector<A>(static_cast<size_t>(W)); },
      [&](int64_t row, std::vector<A>& acc) {
        const int64_t p = row / (D * H), id = row / H % D, ih = row % H;
        std::fill(acc.begin(), acc.end(), A(0));
        int64_t od0, od1, oh0, oh1;
        upsample3d_readers<A>(d, d.d, id, od0, od1);
        upsample3d_readers<A>(d, d.h, ih, oh0, oh1);
        for (int64_t od = od0; od < od1; ++od) {
          A wd[2];
          const int nd = upsample3d_tap_weights(td[od], d.trilinear, id, wd);
          for (int64_t oh = oh0; oh < oh1; ++oh) {
            A wh[2];
            const int nh = upsample3d_tap_weights(th[oh], d.trilinear, ih, wh);
            const T* g = dy + ((p * d.d.out + od) * OH + oh) * OW;
            for (int64_t c = 0; c < W; ++c) {
              A a = acc[c];
              for (int64_t ow = w_lo[c]; ow < w_hi[c]; ++ow) {
                A ww[2];
                const int nw = upsample3d_tap_weights(tw[ow], d.trilinear, c, ww);
                const A gv = static_cast<A>(g[ow]);
                for (int i = 0; i < nd; ++i)
                  for (int j = 0; j < nh; ++j)
                    for (int k = 0; k < nw; ++k)
                      a = upsample::gather_step3(wd[i], wh[j], ww[k], gv, a);
              }
              acc[c] = a;
            }
          }
        }
        T* dr = dx + row * W;
        for (int64_t c = 0; c < W; ++c) dr[c] = static_cast<T>(acc[c]);
      });
}

void upsample3d_forward(const Upsample3dDesc& d, const void* x, void* y) {
  visit_conv_dtype(d.dtype, "upsample3d", [&](auto t) { forward3d<decltype(t)>(d, x, y); });
}
void upsample3d_backward(const Upsample3dDesc& d, const void* dy, void* dx) {
  visit_conv_dtype(d.dtype, "upsample3d_backward",
                   [&](auto t) { backward3d<decltype(t)>(d, dy, dx); });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(upsample2d_forward_stub, cpu, &cpu::upsample2d_forward);
FABRIC_REGISTER_KERNEL(upsample2d_backward_stub, cpu, &cpu::upsample2d_backward);
FABRIC_REGISTER_KERNEL(upsample3d_forward_stub, cpu, &cpu::upsample3d_forward);
FABRIC_REGISTER_KERNEL(upsample3d_backward_stub, cpu, &cpu::upsample3d_backward);
}  // namespace fabric
