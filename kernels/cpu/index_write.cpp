// CPU scatter kernel of the index-write ops (scatter, scatter_reduce): each line of the index
// (every position but along dim) writes its own destination line, so lines run in parallel and
// each folds its elements in order, the last one winning for assign.
//
// Two walks, one per layout. When dim is the index's innermost dim, a line is contiguous and is
// walked element by element. Otherwise (the common scatter along dim 0 of (rows, cols)) walking
// one line means striding across every row of index and src, reading a whole cache line for one
// element; instead a strip of adjacent lines is walked together, position along dim outermost,
// so every row of index and src is read once, contiguously. Each destination still receives its
// elements in index order (a destination belongs to exactly one line), so results are the same.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "tensor/index_write_kernels.h"

namespace fabric::cpu {
namespace {

constexpr int64_t kGrain = 32768;  // elements below which the walk stays serial

// The folds, one type per op so that the element loop holds no switch. torch's amax/amin keep a
// NaN from either side (ReduceMaximum/ReduceMinimum): a NaN source wins, and a NaN already in
// place survives std::max/std::min, which return their first argument when a comparison fails.
template <typename T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>)
    return std::isnan(v);
  else
    return false;
}
struct Assign {
  template <typename T>
  static T fold(T, T v) {
    return v;
  }
};
struct Sum {
  template <typename T>
  static T fold(T have, T v) {
    return static_cast<T>(have + v);
  }
};
struct Prod {
  template <typename T>
  static T fold(T have, T v) {
    return static_cast<T>(have * v);
  }
};
struct Max {
  template <typename T>
  static T fold(T have, T v) {
    return is_nan(v) ? v : std::max(have, v);
  }
};
struct Min {
  template <typename T>
  static T fold(T have, T v) {
    return is_nan(v) ? v : std::min(have, v);
  }
};

// Offsets of the first element of line `l` (dims other than dim and `skip`, row-major order).
struct LineStart {
  int64_t data = 0, other = 0, index = 0;
};
LineStart line_start(const ScatterGatherDesc& d, int64_t l, int skip) {
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
int strip_dim(const ScatterGatherDesc& d) {
  int best = -1;
  for (int k = 0; k < d.ndim; ++k) {
    if (k == d.dim || d.sizes[k] <= 1) continue;
    if (best < 0 || d.index_strides[k] < d.index_strides[best]) best = k;
  }
  if (best < 0 || d.index_strides[d.dim] <= d.index_strides[best]) return -1;
  return best;
}

// Lines one by one, contiguous along dim: parallel over groups of lines.
template <typename T, typename Op>
void walk_lines(const ScatterGatherDesc& d) {
  T* data = reinterpret_cast<T*>(d.data);
  const T* other = reinterpret_cast<const T*>(d.other);
  const int64_t* index = d.index;
  int64_t lines = 1;
  for (int k = 0; k < d.ndim; ++k)
    if (k != d.dim) lines *= d.sizes[k];
  const int64_t len = d.sizes[d.dim], sd = d.data_strides[d.dim], so = d.other_strides[d.dim],
                si = d.index_strides[d.dim];
  const int64_t per_task = std::max<int64_t>(1, kGrain / len);
  const int64_t tasks = (lines + per_task - 1) / per_task;
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t end = std::min(lines, (t + 1) * per_task);
    for (int64_t l = t * per_task; l < end; ++l) {
      const LineStart s = line_start(d, l, -1);
      for (int64_t i = 0; i < len; ++i) {
        T& dst = data[s.data + index[s.index + i * si] * sd];
        dst = Op::fold(dst, other[s.other + i * so]);
      }
    }
  }
}

// One strip: lines j0..j1 side by side, position i along dim outermost. Stride types are
// int64_t or std::integral_constant (the contiguous case).
template <typename T, typename Op, typename JI, typename JO = JI, typename JD = JI>
void fold_strip(T* dst_line, const int64_t* index, int64_t si, const T* other, int64_t so,
                int64_t sd, int64_t len, int64_t j0, int64_t j1, JI ji, JO jo = {}, JD jd = {}) {
  for (int64_t i = 0; i < len; ++i) {
    const int64_t* idx = index + i * si;
    const T* src = other + i * so;
    for (int64_t j = j0; j < j1; ++j) {
      T& dst = dst_line[idx[j * ji] * sd + j * jd];
      dst = Op::fold(dst, src[j * jo]);
    }
  }
}

// Strips of adjacent lines along dim `sk`, position along dim outermost: parallel over strips
// (disjoint destinations). Strips are as wide as the threads allow: each strip streams index and
// src once, and narrow strips (one cache line of index per row) measured 2x slower than whole
// rows; at least two cache lines of data wide, so that no two threads write one cache line.
template <typename T, typename Op>
void walk_strips(const ScatterGatherDesc& d, int sk) {
  T* data = reinterpret_cast<T*>(d.data);
  const T* other = reinterpret_cast<const T*>(d.other);
  const int64_t* index = d.index;
  int64_t outer = 1;
  for (int k = 0; k < d.ndim; ++k)
    if (k != d.dim && k != sk) outer *= d.sizes[k];
  const int64_t len = d.sizes[d.dim], width = d.sizes[sk];
  const int64_t sd = d.data_strides[d.dim], so = d.other_strides[d.dim],
                si = d.index_strides[d.dim];
  const int64_t jd = d.data_strides[sk], jo = d.other_strides[sk], ji = d.index_strides[sk];
  // Strip width: enough elements per task to pay for a task, and one strip per thread.
  const int64_t align = std::max<int64_t>(1, 128 / static_cast<int64_t>(sizeof(T)));
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const int64_t want_strips = std::max<int64_t>(1, (threads + outer - 1) / outer);
  int64_t w = std::max((kGrain + len - 1) / len, (width + want_strips - 1) / want_strips);
  w = std::min(width, (w + align - 1) / align * align);
  const int64_t strips = (width + w - 1) / w, tasks = outer * strips;
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const LineStart s = line_start(d, t / strips, sk);
    const int64_t j0 = (t % strips) * w, j1 = std::min(width, j0 + w);
    T* dst_line = data + s.data;
    // The contiguous case with constant strides (no multiplies in the element loop).
    if (ji == 1 && jo == 1 && jd == 1)
      fold_strip<T, Op>(dst_line, index + s.index, si, other + s.other, so, sd, len, j0, j1,
                        std::integral_constant<int64_t, 1>{});
    else
      fold_strip<T, Op>(dst_line, index + s.index, si, other + s.other, so, sd, len, j0, j1, ji, jo,
                        jd);
  }
}

template <typename T, typename Op>
void scatter_typed(const ScatterGatherDesc& d) {
  for (int k = 0; k < d.ndim; ++k)
    if (d.sizes[k] == 0) return;
  const int sk = strip_dim(d);
  if (sk < 0)
    walk_lines<T, Op>(d);
  else
    walk_strips<T, Op>(d, sk);
}

template <typename T>
void reduce_typed(const ScatterReduceDesc& r) {
  switch (r.op) {
    case ScatterReduceOp::sum:
      return scatter_typed<T, Sum>(r.sg);
    case ScatterReduceOp::prod:
      return scatter_typed<T, Prod>(r.sg);
    case ScatterReduceOp::amax:
      return scatter_typed<T, Max>(r.sg);
    case ScatterReduceOp::amin:
      return scatter_typed<T, Min>(r.sg);
    default:
      return scatter_typed<T, Assign>(r.sg);
  }
}

void scatter_reduce(const ScatterReduceDesc& r) {
  if (r.op == ScatterReduceOp::assign) {
    // Bytes move unchanged: dispatch on the element size only.
    switch (itemsize(r.sg.dtype)) {
      case 8:
        return scatter_typed<uint64_t, Assign>(r.sg);
      case 4:
        return scatter_typed<uint32_t, Assign>(r.sg);
      case 2:
        return scatter_typed<uint16_t, Assign>(r.sg);
      default:
        return scatter_typed<uint8_t, Assign>(r.sg);
    }
  }
  switch (r.sg.dtype) {
    case DType::float64:
      return reduce_typed<double>(r);
    case DType::float32:
      return reduce_typed<float>(r);
    case DType::int64:
      return reduce_typed<int64_t>(r);
    case DType::int32:
      return reduce_typed<int32_t>(r);
    case DType::int8:
      return reduce_typed<int8_t>(r);
    case DType::uint8:
      return reduce_typed<uint8_t>(r);
    default:
      throw DTypeError(fabric::detail::cat("scatter_reduce kernel: unsupported dtype ",
                                           dtype_name(r.sg.dtype),
                                           " (expected float64, float32, int64, int32, int8 or "
                                           "uint8; the op reduces 16-bit floats in float32)"));
  }
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(scatter_reduce_stub, cpu, &cpu::scatter_reduce);
}  // namespace fabric
