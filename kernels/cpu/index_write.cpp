// CPU scatter kernel of the index-write ops (scatter, scatter_reduce): each line of the index
// (every position but along dim) writes its own destination line, so lines run in parallel and
// each folds its elements in order, the last one winning for assign.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "tensor/index_write_kernels.h"

namespace fabric::cpu {
namespace {

constexpr int64_t kGrain = 32768;  // elements below which the walk stays serial

// Calls line(data_off, other_off, index_off) for the first element of every line, parallel over
// lines (disjoint destinations: race-free).
template <typename LineFn>
void for_each_line(const ScatterGatherDesc& d, LineFn&& line) {
  int64_t lines = 1;
  for (int k = 0; k < d.ndim; ++k)
    if (k != d.dim) lines *= d.sizes[k];
  const int64_t len = d.sizes[d.dim];
  if (lines == 0 || len == 0) return;
  const int64_t per_task = std::max<int64_t>(1, kGrain / len);
  const int64_t tasks = (lines + per_task - 1) / per_task;
#pragma omp parallel for schedule(static) if (tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t begin = t * per_task, end = std::min(lines, begin + per_task);
    int64_t idx[kMaxIndexDims] = {};
    int64_t r = begin;
    for (int k = d.ndim - 1; k >= 0; --k) {
      if (k == d.dim) continue;
      idx[k] = r % d.sizes[k];
      r /= d.sizes[k];
    }
    for (int64_t l = begin; l < end; ++l) {
      int64_t od = 0, oo = 0, oi = 0;
      for (int k = 0; k < d.ndim; ++k) {
        od += idx[k] * d.data_strides[k];
        oo += idx[k] * d.other_strides[k];
        oi += idx[k] * d.index_strides[k];
      }
      line(od, oo, oi);
      for (int k = d.ndim - 1; k >= 0; --k) {
        if (k == d.dim) continue;
        if (++idx[k] < d.sizes[k]) break;
        idx[k] = 0;
      }
    }
  }
}

template <typename T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>)
    return std::isnan(v);
  else
    return false;
}

// torch's scatter_reduce folds (ReduceMaximum/ReduceMinimum keep a NaN from either side).
template <typename T>
T fold(ScatterReduceOp op, T have, T v) {
  switch (op) {
    case ScatterReduceOp::sum:
      return static_cast<T>(have + v);
    case ScatterReduceOp::prod:
      return static_cast<T>(have * v);
    case ScatterReduceOp::amax:
      return is_nan(v) ? v : std::max(have, v);
    case ScatterReduceOp::amin:
      return is_nan(v) ? v : std::min(have, v);
    default:
      return v;
  }
}

template <typename T>
void scatter_typed(const ScatterReduceDesc& r) {
  const ScatterGatherDesc& d = r.sg;
  T* data = reinterpret_cast<T*>(d.data);
  const T* other = reinterpret_cast<const T*>(d.other);
  const int64_t len = d.sizes[d.dim], sd = d.data_strides[d.dim], so = d.other_strides[d.dim],
                si = d.index_strides[d.dim];
  const ScatterReduceOp op = r.op;
  for_each_line(d, [&](int64_t od, int64_t oo, int64_t oi) {
    for (int64_t i = 0; i < len; ++i) {
      T& dst = data[od + d.index[oi + i * si] * sd];
      dst = fold(op, dst, other[oo + i * so]);
    }
  });
}

void scatter_reduce(const ScatterReduceDesc& r) {
  if (r.op == ScatterReduceOp::assign) {
    // Bytes move unchanged: dispatch on the element size only.
    switch (itemsize(r.sg.dtype)) {
      case 8:
        return scatter_typed<uint64_t>(r);
      case 4:
        return scatter_typed<uint32_t>(r);
      case 2:
        return scatter_typed<uint16_t>(r);
      default:
        return scatter_typed<uint8_t>(r);
    }
  }
  switch (r.sg.dtype) {
    case DType::float64:
      return scatter_typed<double>(r);
    case DType::float32:
      return scatter_typed<float>(r);
    case DType::int64:
      return scatter_typed<int64_t>(r);
    case DType::int32:
      return scatter_typed<int32_t>(r);
    case DType::int8:
      return scatter_typed<int8_t>(r);
    case DType::uint8:
      return scatter_typed<uint8_t>(r);
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
