// CUDA scatter kernel of the index-write ops (scatter, scatter_reduce). One thread per line of
// the index (every position but along dim): lines write disjoint destination lines, so no two
// threads touch one element and no atomics are needed; each thread folds its line's elements in
// order, exactly as the CPU kernel does (same results, deterministic, the last write winning for
// assign). Where the op armed a range check, an out-of-range index is reported and skipped.
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/deferred_check.cuh"
#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/stream.h"
#include "tensor/index_write_kernels.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;

// Element offsets of line `line`'s first element (row-major over d.sizes without d.dim), its
// row-major number in d.sizes (what a range error names) and the elements one step along dim
// moves that number.
struct LineStart {
  int64_t data = 0, other = 0, index = 0, element = 0, after = 1;
};
__device__ __forceinline__ LineStart line_start(const ScatterGatherDesc& d, int64_t line) {
  LineStart o;
  int64_t step = 1;
  for (int k = d.ndim - 1; k >= 0; --k) {
    if (k == d.dim) {
      o.after = step;
      step *= d.sizes[k];
      continue;
    }
    const int64_t q = line / d.sizes[k], idx = line - q * d.sizes[k];
    o.element += idx * step;
    step *= d.sizes[k];
    line = q;
    o.data += idx * d.data_strides[k];
    o.other += idx * d.other_strides[k];
    o.index += idx * d.index_strides[k];
  }
  return o;
}

// Integers fold modulo 2^bits through their unsigned type (no signed overflow).
template <typename T, bool = std::is_integral_v<T>>
struct Wide {
  using type = T;
};
template <typename T>
struct Wide<T, true> {
  using type = std::make_unsigned_t<T>;
};

template <typename T>
__device__ __forceinline__ bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>)
    return v != v;
  else
    return false;
}

template <typename T, ScatterReduceOp Op>
__device__ __forceinline__ T fold(T have, T v) {
  using W = typename Wide<T>::type;
  if constexpr (Op == ScatterReduceOp::sum) {
    return static_cast<T>(static_cast<W>(have) + static_cast<W>(v));
  } else if constexpr (Op == ScatterReduceOp::prod) {
    return static_cast<T>(static_cast<W>(have) * static_cast<W>(v));
  } else if constexpr (Op == ScatterReduceOp::amax) {
    return is_nan(v) ? v : (have < v ? v : have);  // std::max's rule: a NaN `have` stays
  } else if constexpr (Op == ScatterReduceOp::amin) {
    return is_nan(v) ? v : (v < have ? v : have);
  } else {
    return v;
  }
}

template <typename T, ScatterReduceOp Op>
__global__ void scatter_kernel(ScatterGatherDesc d, int64_t lines, DeviceRangeCheck check) {
  T* data = reinterpret_cast<T*>(d.data);
  const T* other = reinterpret_cast<const T*>(d.other);
  const int64_t len = d.sizes[d.dim], sd = d.data_strides[d.dim], so = d.other_strides[d.dim],
                si = d.index_strides[d.dim];
  FABRIC_GRID_STRIDE(l, lines) {
    const LineStart o = line_start(d, l);
    for (int64_t i = 0; i < len; ++i) {
      const int64_t k = d.index[o.index + i * si];
      if (!in_range(check, k, o.element + i * o.after)) continue;
      T& dst = data[o.data + k * sd];
      dst = fold<T, Op>(dst, other[o.other + i * so]);
    }
  }
}

template <typename T>
void launch(const ScatterReduceDesc& r, int64_t lines, const DeviceRangeCheck& check,
            cudaStream_t stream) {
  const unsigned grid = grid_for(lines);
  switch (r.op) {
    case ScatterReduceOp::sum:
      scatter_kernel<T, ScatterReduceOp::sum><<<grid, kThreads, 0, stream>>>(r.sg, lines, check);
      break;
    case ScatterReduceOp::prod:
      scatter_kernel<T, ScatterReduceOp::prod><<<grid, kThreads, 0, stream>>>(r.sg, lines, check);
      break;
    case ScatterReduceOp::amax:
      scatter_kernel<T, ScatterReduceOp::amax><<<grid, kThreads, 0, stream>>>(r.sg, lines, check);
      break;
    case ScatterReduceOp::amin:
      scatter_kernel<T, ScatterReduceOp::amin><<<grid, kThreads, 0, stream>>>(r.sg, lines, check);
      break;
    default:
      scatter_kernel<T, ScatterReduceOp::assign><<<grid, kThreads, 0, stream>>>(r.sg, lines, check);
      break;
  }
}

void scatter_reduce(const ScatterReduceDesc& r) {
  const ScatterGatherDesc& d = r.sg;
  int64_t lines = 1;
  for (int k = 0; k < d.ndim; ++k)
    if (k != d.dim) lines *= d.sizes[k];
  if (lines == 0 || d.sizes[d.dim] == 0) return;
  const int device = device_of_pointer(d.data);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const DeviceRangeCheck check = device_range_check(device, d.check, d.dim_size);
  if (r.op == ScatterReduceOp::assign) {
    // Bytes move unchanged: dispatch on the element size only.
    switch (itemsize(d.dtype)) {
      case 8:
        launch<uint64_t>(r, lines, check, stream);
        break;
      case 4:
        launch<uint32_t>(r, lines, check, stream);
        break;
      case 2:
        launch<uint16_t>(r, lines, check, stream);
        break;
      default:
        launch<uint8_t>(r, lines, check, stream);
        break;
    }
    FABRIC_CUDA_CHECK_LAUNCH();
    return;
  }
  switch (d.dtype) {
    case DType::float64:
      launch<double>(r, lines, check, stream);
      break;
    case DType::float32:
      launch<float>(r, lines, check, stream);
      break;
    case DType::int64:
      launch<int64_t>(r, lines, check, stream);
      break;
    case DType::int32:
      launch<int32_t>(r, lines, check, stream);
      break;
    case DType::int8:
      launch<int8_t>(r, lines, check, stream);
      break;
    case DType::uint8:
      launch<uint8_t>(r, lines, check, stream);
      break;
    default:
      throw DTypeError(cat("scatter_reduce (CUDA): unsupported dtype ", dtype_name(d.dtype),
                           " (expected float64, float32, int64, int32, int8 or uint8; the op "
                           "reduces 16-bit floats in float32)"));
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(scatter_reduce_stub, cuda, &cuda::scatter_reduce);
}  // namespace fabric
