// The element walk shared by the CPU gather / scatter kernels (index.cpp: gather, scatter_add;
// index_write.cpp: scatter, scatter_reduce) over a ScatterGatherDesc: every element p of the
// index's shape, with data's offset at p[dim] = index[p] and other's offset at p.
//
// A "line" is every position along dim for one position of the other dims. A destination
// element belongs to exactly one line, so lines run in parallel without races, and within a line
// the elements are visited in index order, which keeps accumulating kernels (scatter_add,
// scatter_reduce) bit-identical at any thread count: torch folds serially in index order too.
//
// Two walks, one per layout. When dim is the index's innermost dim, a line is contiguous and is
// walked element by element. Otherwise (the common gather/scatter along dim 0 of (rows, cols))
// walking one line means striding across every row of index and src, reading a whole cache line
// for one element; instead a strip of adjacent lines is walked together, position along dim
// outermost, so every row of index and src is read once, contiguously. Each line still sees its
// positions along dim in order, so the results are the same bits as the line-by-line walk.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/cpu/run_tasks.h"
#include "tensor/index_kernels.h"

namespace fabric::cpu::index_walk {

constexpr int64_t kGrain = 32768;  // elements below which the walk stays serial

// Offsets of the first element of line `l` (dims other than dim and `skip`, row-major order).
struct LineStart {
  int64_t data = 0, other = 0, index = 0;
};
inline LineStart line_start(const ScatterGatherDesc& d, int64_t l, int skip) {
  LineStart s;
  for (int k = d.ndim - 1; k >= 0; --k) {
    if (k == d.dim || k == skip) continue;
    const int64_t i = l % d.sizes[k];
    l /= d.sizes[k];
    s.data += i * d.data_strides[k];
    s.other += i * d.other_strides[k];
    s.index += i * d.index_strides[k];
  }
  return s;
}

// The innermost dim other than dim (the one whose lines lie side by side), or -1 when dim is the
// only dim or already the innermost one (smallest index stride), where lines are walked one by one.
inline int strip_dim(const ScatterGatherDesc& d) {
  int best = -1;
  for (int k = 0; k < d.ndim; ++k) {
    if (k == d.dim || d.sizes[k] <= 1) continue;
    if (best < 0 || d.index_strides[k] < d.index_strides[best]) best = k;
  }
  if (best < 0 || d.index_strides[d.dim] <= d.index_strides[best]) return -1;
  return best;
}

// Lines one by one, contiguous along dim: parallel over groups of lines.
template <typename ElemFn>
void walk_lines(const ScatterGatherDesc& d, ElemFn& elem) {
  const int64_t* index = d.index;
  int64_t lines = 1;
  for (int k = 0; k < d.ndim; ++k)
    if (k != d.dim) lines *= d.sizes[k];
  const int64_t len = d.sizes[d.dim], sd = d.data_strides[d.dim], so = d.other_strides[d.dim],
                si = d.index_strides[d.dim];
  const int64_t per_task = std::max<int64_t>(1, kGrain / len);
  const int64_t tasks = (lines + per_task - 1) / per_task;
  // A task holds ~kGrain elements: more than one is worth the threads.
  run_tasks(tasks, /*parallel=*/true, [&](int64_t t) {
    const int64_t end = std::min(lines, (t + 1) * per_task);
    for (int64_t l = t * per_task; l < end; ++l) {
      const LineStart s = line_start(d, l, -1);
      for (int64_t i = 0; i < len; ++i)
        elem(s.data + index[s.index + i * si] * sd, s.other + i * so);
    }
  });
}

// One strip: lines j0..j1 side by side, position i along dim outermost. Stride types are
// int64_t or std::integral_constant (the contiguous case: no multiplies in the element loop).
template <typename ElemFn, typename JI, typename JO = JI, typename JD = JI>
void walk_strip(ElemFn& elem, const int64_t* index, int64_t si, int64_t so, int64_t sd, int64_t len,
                int64_t data0, int64_t other0, int64_t j0, int64_t j1, JI ji, JO jo = {},
                JD jd = {}) {
  for (int64_t i = 0; i < len; ++i) {
    const int64_t* idx = index + i * si;
    const int64_t other_i = other0 + i * so;
    for (int64_t j = j0; j < j1; ++j) elem(data0 + idx[j * ji] * sd + j * jd, other_i + j * jo);
  }
}

// Strips of adjacent lines along dim `sk`, position along dim outermost: parallel over strips
// (disjoint destinations). Strips are as wide as the threads allow: each strip streams index and
// src once, and narrow strips (one cache line of index per row) measured 2x slower than whole
// rows; at least two cache lines of elements wide, so that no two threads write one cache line.
template <typename ElemFn>
void walk_strips(const ScatterGatherDesc& d, int sk, int64_t elem_bytes, ElemFn& elem) {
  int64_t outer = 1;
  for (int k = 0; k < d.ndim; ++k)
    if (k != d.dim && k != sk) outer *= d.sizes[k];
  const int64_t len = d.sizes[d.dim], width = d.sizes[sk];
  const int64_t sd = d.data_strides[d.dim], so = d.other_strides[d.dim],
                si = d.index_strides[d.dim];
  const int64_t jd = d.data_strides[sk], jo = d.other_strides[sk], ji = d.index_strides[sk];
  // Strip width: enough elements per task to pay for a task, and one strip per thread.
  const int64_t align = std::max<int64_t>(1, 128 / elem_bytes);
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int64_t want_strips = std::max<int64_t>(1, (threads + outer - 1) / outer);
  int64_t w = std::max((kGrain + len - 1) / len, (width + want_strips - 1) / want_strips);
  w = std::min(width, (w + align - 1) / align * align);
  const int64_t strips = (width + w - 1) / w, tasks = outer * strips;
  // A strip holds at least ~kGrain elements: more than one task is worth the threads.
  run_tasks(tasks, /*parallel=*/true, [&](int64_t t) {
    const LineStart s = line_start(d, t / strips, sk);
    const int64_t j0 = (t % strips) * w, j1 = std::min(width, j0 + w);
    if (ji == 1 && jo == 1 && jd == 1)
      walk_strip(elem, d.index + s.index, si, so, sd, len, s.data, s.other, j0, j1,
                 std::integral_constant<int64_t, 1>{});
    else
      walk_strip(elem, d.index + s.index, si, so, sd, len, s.data, s.other, j0, j1, ji, jo, jd);
  });
}

// Calls elem(data_offset, other_offset) (element offsets) once for every element of the index,
// each line's elements in index order, lines in parallel. `elem_bytes` is the element size of
// the written tensor (strip widths are whole cache lines of it).
template <typename ElemFn>
void for_each_element(const ScatterGatherDesc& d, int64_t elem_bytes, ElemFn&& elem) {
  for (int k = 0; k < d.ndim; ++k)
    if (d.sizes[k] == 0) return;
  const int sk = strip_dim(d);
  if (sk < 0)
    walk_lines(d, elem);
  else
    walk_strips(d, sk, elem_bytes, elem);
}

}  // namespace fabric::cpu::index_walk
