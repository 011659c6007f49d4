// CUDA indexing kernels: index range scan, row gather (embedding forward, index_select), index_add
// (embedding backward), gather / scatter_add along a dim, tril/triu and one_hot. The accumulating
// kernels use no atomics: index_add sorts the indices (stable radix sort) and sums each
// destination row's sources in index order, scatter_add walks each line in order, so both give
// the CPU's sums bit for bit and are deterministic. Where the op armed a range check, the kernels
// check each index themselves (deferred_check.cuh) instead of the op waiting for a range scan.
#include <cuda_runtime.h>

#include <algorithm>
#include <bit>
#include <cub/device/device_radix_sort.cuh>
#include <limits>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/deferred_check.cuh"
#include "kernels/cuda/device_scratch.h"
#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/stream.h"
#include "tensor/index_kernels.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;

constexpr int64_t kMaxGrid = 65536;

__device__ __forceinline__ int64_t load_index(const void* p, bool i64, int64_t i) {
  return i64 ? static_cast<const int64_t*>(p)[i] : static_cast<const int32_t*>(p)[i];
}

// ---- index_minmax: per-block partial (min, max), then one block folds the partials ------------

__device__ __forceinline__ void block_minmax(int64_t& lo, int64_t& hi) {
  __shared__ int64_t s_lo[kThreads], s_hi[kThreads];
  s_lo[threadIdx.x] = lo;
  s_hi[threadIdx.x] = hi;
  __syncthreads();
  for (int w = kThreads / 2; w > 0; w /= 2) {
    if (static_cast<int>(threadIdx.x) < w) {
      const int64_t l = s_lo[threadIdx.x + w], h = s_hi[threadIdx.x + w];
      if (l < s_lo[threadIdx.x]) s_lo[threadIdx.x] = l;
      if (h > s_hi[threadIdx.x]) s_hi[threadIdx.x] = h;
    }
    __syncthreads();
  }
  lo = s_lo[0];
  hi = s_hi[0];
}

__global__ void minmax_partial_kernel(const void* index, bool i64, int64_t n, int64_t* part) {
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  FABRIC_GRID_STRIDE(i, n) {
    const int64_t v = load_index(index, i64, i);
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  block_minmax(lo, hi);
  if (threadIdx.x == 0) {
    part[2 * blockIdx.x] = lo;
    part[2 * blockIdx.x + 1] = hi;
  }
}

__global__ void minmax_final_kernel(const int64_t* part, int nparts, int64_t* out) {
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  for (int b = threadIdx.x; b < nparts; b += blockDim.x) {
    lo = part[2 * b] < lo ? part[2 * b] : lo;
    hi = part[2 * b + 1] > hi ? part[2 * b + 1] : hi;
  }
  block_minmax(lo, hi);
  if (threadIdx.x == 0) {
    out[0] = lo;
    out[1] = hi;
  }
}

// one_hot validates (and sizes by) its indices with this, so it waits for the device (the stub
// returns host values); the other index ops check inside their kernels instead.
std::pair<int64_t, int64_t> index_minmax(const void* index, DType t, int64_t n) {
  if (n <= 0) {
    return {std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()};
  }
  const int device = device_of_pointer(index);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const int nparts = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 1024));
  DeviceScratch scratch(device, sizeof(int64_t) * (2 * static_cast<size_t>(nparts) + 2));
  int64_t* part = scratch.as<int64_t>();
  minmax_partial_kernel<<<nparts, kThreads, 0, stream>>>(index, t == DType::int64, n, part);
  FABRIC_CUDA_CHECK_LAUNCH();
  minmax_final_kernel<<<1, kThreads, 0, stream>>>(part, nparts, part + 2 * nparts);
  FABRIC_CUDA_CHECK_LAUNCH();
  int64_t host[2] = {0, 0};
  FABRIC_CUDA_CHECK(
      cudaMemcpyAsync(host, part + 2 * nparts, sizeof(host), cudaMemcpyDeviceToHost, stream));
  FABRIC_CUDA_CHECK(cudaStreamSynchronize(stream));
  return {host[0], host[1]};
}

// ---- index_select: rows are contiguous byte runs, moved in units of U, the widest power of two
// (<= 16 bytes) that divides both base addresses, the row length and the strides in bytes --------

// Rows (o, k) of the output go to the block's 8 warps (threadIdx.y); a warp's lanes stride over
// the row's units, so every load and store of a warp is contiguous.
constexpr int kRowLanes = 32, kRowsPerBlock = 8;

unsigned row_grid(int64_t rows) {
  return static_cast<unsigned>(
      std::clamp<int64_t>((rows + kRowsPerBlock - 1) / kRowsPerBlock, 1, kMaxGrid));
}

#define FABRIC_ROW_STRIDE(r, rows)                                                             \
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.y; r < (rows); \
       r += static_cast<int64_t>(gridDim.x) * kRowsPerBlock)

// A row whose index is out of range is zeroed (and reported once, by its first lane).
template <typename U>
__global__ void select_kernel(const U* src, int64_t stride_outer, int64_t stride_dim, U* out,
                              const void* index, bool i64, int64_t num_index, int64_t inner,
                              int64_t rows, DeviceRangeCheck check) {
  FABRIC_ROW_STRIDE(r, rows) {
    const int64_t o = r / num_index, k = r - o * num_index;
    const int64_t row = load_index(index, i64, k);
    U* d = out + r * inner;
    if (row < 0 || row >= check.bound) {
      if (threadIdx.x == 0) report_out_of_range(check, row, k);
      for (int64_t c = threadIdx.x; c < inner; c += kRowLanes) d[c] = U{};
      continue;
    }
    const U* s = src + o * stride_outer + row * stride_dim;
    for (int64_t c = threadIdx.x; c < inner; c += kRowLanes) d[c] = s[c];
  }
}

template <typename U>
void launch_select(const IndexSelectDesc& d, const DeviceRangeCheck& check, cudaStream_t stream) {
  const int64_t es = d.itemsize;
  const auto units = [&](int64_t elems) { return elems * es / static_cast<int64_t>(sizeof(U)); };
  const int64_t rows = d.outer * d.num_index;
  select_kernel<U><<<row_grid(rows), dim3(kRowLanes, kRowsPerBlock), 0, stream>>>(
      static_cast<const U*>(d.src), units(d.src_stride_outer), units(d.src_stride_dim),
      static_cast<U*>(d.out), d.index, d.index_dtype == DType::int64, d.num_index, units(d.inner),
      rows, check);
}

void index_select(const IndexSelectDesc& d) {
  if (d.outer * d.num_index * d.inner == 0) return;
  const int device = device_of_pointer(d.out);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const DeviceRangeCheck check = device_range_check(device, d.check, d.src_size);
  const uint64_t es = static_cast<uint64_t>(d.itemsize);
  uint64_t bits = 16 | reinterpret_cast<uintptr_t>(d.src) | reinterpret_cast<uintptr_t>(d.out) |
                  es * static_cast<uint64_t>(d.inner) |
                  es * static_cast<uint64_t>(d.src_stride_dim) |
                  (d.outer > 1 ? es * static_cast<uint64_t>(d.src_stride_outer) : 0);
  switch (bits & (~bits + 1)) {  // the lowest set bit
    case 16:
      launch_select<uint4>(d, check, stream);
      break;
    case 8:
      launch_select<uint64_t>(d, check, stream);
      break;
    case 4:
      launch_select<uint32_t>(d, check, stream);
      break;
    case 2:
      launch_select<uint16_t>(d, check, stream);
      break;
    default:
      launch_select<uint8_t>(d, check, stream);
      break;
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

// ---- index_add: sort (index, position) pairs, then one thread per (segment start, column) -----

// An index out of [0, out_size) gets the key out_size: it sorts last and adds nowhere.
__global__ void keys_kernel(const void* index, bool i64, int64_t n, uint64_t* keys,
                            int64_t* positions, DeviceRangeCheck check) {
  FABRIC_GRID_STRIDE(i, n) {
    const int64_t v = load_index(index, i64, i);
    keys[i] = static_cast<uint64_t>(in_range(check, v, i) ? v : check.bound);
    positions[i] = i;
  }
}

// Integers add modulo 2^bits (unsigned, so no signed overflow); floats add in T, in index order.
template <typename T, bool = std::is_integral_v<T> && !std::is_same_v<T, bool>>
struct AddType {
  using type = T;
};
template <typename T>
struct AddType<T, true> {
  using type = std::make_unsigned_t<T>;
};
template <typename T>
using add_t = typename AddType<T>::type;

// Row (o, j) of the sorted order starts a segment when its key differs from the previous one;
// its warp then adds the whole segment's source rows, in index order, into out row (o, key).
// Floats with alpha != 1 add fma(src, alpha, acc), one rounding as on the CPU (IndexAddDesc).
template <typename T>
__global__ void segment_add_kernel(T* out, const T* src, const uint64_t* keys,
                                   const int64_t* positions, int64_t n, int64_t out_size,
                                   int64_t inner, int64_t rows, T alpha, bool scaled) {
  FABRIC_ROW_STRIDE(r, rows) {
    const int64_t o = r / n, j = r - o * n;
    const uint64_t row = keys[j];
    if (row >= static_cast<uint64_t>(out_size)) continue;  // the out-of-range indices' segment
    if (j > 0 && keys[j - 1] == row) continue;             // not the first of its segment
    int64_t end = j + 1;
    while (end < n && keys[end] == row) ++end;
    T* dst = out + (o * out_size + static_cast<int64_t>(row)) * inner;
    const T* s = src + o * n * inner;
    for (int64_t c = threadIdx.x; c < inner; c += kRowLanes) {
      add_t<T> acc = static_cast<add_t<T>>(dst[c]);
      for (int64_t m = j; m < end; ++m) {
        const T v = s[positions[m] * inner + c];
        if constexpr (std::is_floating_point_v<T>) {
          if (scaled) {
            acc = fma(v, alpha, acc);
            continue;
          }
        }
        acc = static_cast<add_t<T>>(acc + static_cast<add_t<T>>(v));
      }
      dst[c] = static_cast<T>(acc);
    }
  }
}

void index_add(const IndexAddDesc& d) {
  const int64_t n = d.num_index;
  if (d.outer * n * d.inner == 0) return;
  const bool supported = d.dtype == DType::float64 || d.dtype == DType::float32 ||
                         d.dtype == DType::int64 || d.dtype == DType::int32 ||
                         d.dtype == DType::int8 || d.dtype == DType::uint8;
  FABRIC_CHECK(supported, DTypeError, "index_add (CUDA): unsupported dtype ", dtype_name(d.dtype),
               " (expected float64, float32, int64, int32, int8 or uint8; the op accumulates "
               "16-bit floats in float32)");
  const int device = device_of_pointer(d.out);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  // Keys lie in [0, out_size] (out_size: out of range): only their low bits need sorting.
  const int end_bit = std::max(
      1, static_cast<int>(std::bit_width(static_cast<uint64_t>(std::max<int64_t>(d.out_size, 1)))));
  const DeviceRangeCheck check = device_range_check(device, d.check, d.out_size);
  size_t sort_bytes = 0;
  FABRIC_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, sort_bytes, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr),
      static_cast<const int64_t*>(nullptr), static_cast<int64_t*>(nullptr), n, 0, end_bit, stream));
  const size_t arrays = 4 * sizeof(int64_t) * static_cast<size_t>(n);
  const size_t sort_off = (arrays + 255) / 256 * 256;
  DeviceScratch scratch(device, sort_off + std::max<size_t>(sort_bytes, 1));
  uint64_t* keys_in = scratch.as<uint64_t>();
  uint64_t* keys = keys_in + n;
  int64_t* pos_in = reinterpret_cast<int64_t*>(keys + n);
  int64_t* pos = pos_in + n;
  keys_kernel<<<grid_for(n), kThreads, 0, stream>>>(d.index, d.index_dtype == DType::int64, n,
                                                    keys_in, pos_in, check);
  FABRIC_CUDA_CHECK_LAUNCH();
  FABRIC_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(scratch.as<char>() + sort_off, sort_bytes,
                                                    keys_in, keys, pos_in, pos, n, 0, end_bit,
                                                    stream));
  const int64_t rows = d.outer * n;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    segment_add_kernel<T><<<row_grid(rows), dim3(kRowLanes, kRowsPerBlock), 0, stream>>>(
        static_cast<T*>(d.out), static_cast<const T*>(d.src), keys, pos, n, d.out_size, d.inner,
        rows, static_cast<T>(d.alpha), std::is_floating_point_v<T> && d.alpha != 1.0);
  };
  switch (d.dtype) {
    case DType::float64:
      run(double{});
      break;
    case DType::float32:
      run(float{});
      break;
    case DType::int64:
      run(int64_t{});
      break;
    case DType::int32:
      run(int32_t{});
      break;
    case DType::int8:
      run(int8_t{});
      break;
    default:
      run(uint8_t{});
      break;
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

// ---- gather / scatter_add --------------------------------------------------------------------

// Element offsets of position `flat`, row-major over d.sizes with dim `skip` left out when
// skip >= 0 (a line's first element); with skip < 0, data's offset leaves out dim d.dim and `pos`
// is the position along it. `element` is the position's row-major number in d.sizes (what a range
// error names); `after` the number of elements one step along `skip` moves it.
struct Offsets {
  int64_t data = 0, other = 0, index = 0, pos = 0, element = 0, after = 1;
};
__device__ __forceinline__ Offsets offsets_of(const ScatterGatherDesc& d, int64_t flat, int skip) {
  Offsets o;
  int64_t step = 1;
  for (int k = d.ndim - 1; k >= 0; --k) {
    if (k == skip) {
      o.after = step;
      step *= d.sizes[k];
      continue;
    }
    const int64_t q = flat / d.sizes[k], idx = flat - q * d.sizes[k];
    o.element += idx * step;
    step *= d.sizes[k];
    flat = q;
    if (k == d.dim) {
      o.pos = idx;
    } else {
      o.data += idx * d.data_strides[k];
    }
    o.other += idx * d.other_strides[k];
    o.index += idx * d.index_strides[k];
  }
  return o;
}

// Bytes move unchanged: T is an unsigned type of the element size.
// An out-of-range index gathers a zero.
template <typename T>
__global__ void gather_kernel(ScatterGatherDesc d, int64_t total, DeviceRangeCheck check) {
  const T* data = reinterpret_cast<const T*>(d.data);
  T* other = reinterpret_cast<T*>(d.other);
  const int64_t sd = d.data_strides[d.dim];
  FABRIC_GRID_STRIDE(i, total) {
    const Offsets o = offsets_of(d, i, -1);
    const int64_t k = d.index[o.index];
    other[o.other] = in_range(check, k, i) ? data[o.data + k * sd] : T{};
  }
}

// One thread per line (every position but along dim); lines write disjoint destinations, and
// each adds its elements in order, as the CPU does. An out-of-range index adds nothing.
template <typename T>
__global__ void scatter_add_kernel(ScatterGatherDesc d, int64_t lines, DeviceRangeCheck check) {
  T* data = reinterpret_cast<T*>(d.data);
  const T* other = reinterpret_cast<const T*>(d.other);
  const int64_t len = d.sizes[d.dim], sd = d.data_strides[d.dim], so = d.other_strides[d.dim],
                si = d.index_strides[d.dim];
  FABRIC_GRID_STRIDE(l, lines) {
    const Offsets o = offsets_of(d, l, d.dim);
    for (int64_t i = 0; i < len; ++i) {
      const int64_t k = d.index[o.index + i * si];
      if (!in_range(check, k, o.element + i * o.after)) continue;
      T& dst = data[o.data + k * sd];
      const T v = other[o.other + i * so];
      if constexpr (std::is_same_v<T, bool>) {
        dst = dst || v;
      } else {
        dst = static_cast<T>(static_cast<add_t<T>>(dst) + static_cast<add_t<T>>(v));
      }
    }
  }
}

int64_t numel_of(const ScatterGatherDesc& d, int skip) {
  int64_t n = 1;
  for (int k = 0; k < d.ndim; ++k)
    if (k != skip) n *= d.sizes[k];
  return n;
}

void gather(const ScatterGatherDesc& d) {
  const int64_t total = numel_of(d, -1);
  if (total == 0) return;
  const int device = device_of_pointer(d.other);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const unsigned grid = grid_for(total);
  const DeviceRangeCheck check = device_range_check(device, d.check, d.dim_size);
  switch (itemsize(d.dtype)) {
    case 8:
      gather_kernel<uint64_t><<<grid, kThreads, 0, stream>>>(d, total, check);
      break;
    case 4:
      gather_kernel<uint32_t><<<grid, kThreads, 0, stream>>>(d, total, check);
      break;
    case 2:
      gather_kernel<uint16_t><<<grid, kThreads, 0, stream>>>(d, total, check);
      break;
    default:
      gather_kernel<uint8_t><<<grid, kThreads, 0, stream>>>(d, total, check);
      break;
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

void scatter_add(const ScatterGatherDesc& d) {
  const int64_t lines = numel_of(d, d.dim);
  if (lines == 0 || d.sizes[d.dim] == 0) return;
  const int device = device_of_pointer(d.data);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const unsigned grid = grid_for(lines);
  const DeviceRangeCheck check = device_range_check(device, d.check, d.dim_size);
  switch (d.dtype) {
    case DType::float64:
      scatter_add_kernel<double><<<grid, kThreads, 0, stream>>>(d, lines, check);
      break;
    case DType::float32:
      scatter_add_kernel<float><<<grid, kThreads, 0, stream>>>(d, lines, check);
      break;
    case DType::int64:
      scatter_add_kernel<int64_t><<<grid, kThreads, 0, stream>>>(d, lines, check);
      break;
    case DType::int32:
      scatter_add_kernel<int32_t><<<grid, kThreads, 0, stream>>>(d, lines, check);
      break;
    case DType::int8:
      scatter_add_kernel<int8_t><<<grid, kThreads, 0, stream>>>(d, lines, check);
      break;
    case DType::uint8:
      scatter_add_kernel<uint8_t><<<grid, kThreads, 0, stream>>>(d, lines, check);
      break;
    case DType::bool_:
      scatter_add_kernel<bool><<<grid, kThreads, 0, stream>>>(d, lines, check);
      break;
    default:
      throw DTypeError(cat("scatter_add (CUDA): unsupported dtype ", dtype_name(d.dtype),
                           " (expected float64, float32, int64, int32, int8, uint8 or bool; the "
                           "op accumulates 16-bit floats in float32)"));
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

// ---- tril / triu and one_hot -------------------------------------------------------------------

// tril keeps column j of row i iff j - i <= diagonal, triu iff j - i >= diagonal (no overflow for
// any diagonal, unlike i + diagonal).
template <typename T>
__global__ void tri_kernel(const T* src, T* dst, int64_t rows, int64_t cols, int64_t diagonal,
                           bool lower, int64_t total) {
  FABRIC_GRID_STRIDE(e, total) {
    const int64_t r = e / cols, j = e - r * cols, i = r % rows;
    const bool keep = lower ? j - i <= diagonal : j - i >= diagonal;
    dst[e] = keep ? src[e] : T(0);
  }
}

void tri(const TriDesc& d) {
  const int64_t total = d.batch * d.rows * d.cols;
  if (total == 0) return;
  const int device = device_of_pointer(d.dst);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const unsigned grid = grid_for(total);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    tri_kernel<T><<<grid, kThreads, 0, stream>>>(static_cast<const T*>(d.src),
                                                 static_cast<T*>(d.dst), d.rows, d.cols, d.diagonal,
                                                 d.lower, total);
  };
  switch (d.itemsize) {
    case 8:
      run(uint64_t{});
      break;
    case 4:
      run(uint32_t{});
      break;
    case 2:
      run(uint16_t{});
      break;
    default:
      run(uint8_t{});
      break;
  }
  FABRIC_CUDA_CHECK_LAUNCH();
}

__global__ void one_hot_kernel(const int64_t* index, int64_t num_classes, int64_t* out,
                               int64_t total) {
  FABRIC_GRID_STRIDE(e, total) {
    const int64_t i = e / num_classes, c = e - i * num_classes;
    out[e] = index[i] == c ? 1 : 0;
  }
}

void one_hot(const int64_t* index, int64_t n, int64_t num_classes, int64_t* out) {
  const int64_t total = n * num_classes;
  if (total == 0) return;
  const int device = device_of_pointer(out);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  one_hot_kernel<<<grid_for(total), kThreads, 0, stream>>>(index, num_classes, out, total);
  FABRIC_CUDA_CHECK_LAUNCH();
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(index_minmax_stub, cuda, &cuda::index_minmax);
FABRIC_REGISTER_KERNEL(index_select_stub, cuda, &cuda::index_select);
FABRIC_REGISTER_KERNEL(index_add_stub, cuda, &cuda::index_add);
FABRIC_REGISTER_KERNEL(gather_stub, cuda, &cuda::gather);
FABRIC_REGISTER_KERNEL(scatter_add_stub, cuda, &cuda::scatter_add);
FABRIC_REGISTER_KERNEL(tri_stub, cuda, &cuda::tri);
FABRIC_REGISTER_KERNEL(one_hot_stub, cuda, &cuda::one_hot);
}  // namespace fabric
