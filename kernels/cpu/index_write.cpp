// CPU scatter kernel of the index-write ops (scatter, scatter_reduce): each line of the index
// (every position but along dim) writes its own destination line, so lines run in parallel and
// each folds its elements in order, the last one winning for assign. The walk (line by line, or
// strips of adjacent lines when dim is not the innermost) is kernels/cpu/index_line_walk.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/index_line_walk.h"
#include "tensor/index_write_kernels.h"

namespace fabric::cpu {
namespace {

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

template <typename T, typename Op>
void scatter_typed(const ScatterGatherDesc& d) {
  T* data = reinterpret_cast<T*>(d.data);
  const T* other = reinterpret_cast<const T*>(d.other);
  index_walk::for_each_element(d, sizeof(T), [data, other](int64_t od, int64_t oo) {
    T& dst = data[od];
    dst = Op::fold(dst, other[oo]);
  });
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
