// CUDA sort kernel behind sort, argsort and topk. Each element becomes an order-preserving uint64
// key (NaN the largest, -0.0 folded onto 0.0), so one code path serves every dtype. Rows of up to
// 2048 elements sort in one block each, a bitonic sort in shared memory on (key, position): the
// position breaks ties, so the order is the CPU's stable one exactly. Longer rows go through
// cub::DeviceSegmentedRadixSort, which is stable in both directions. A top-k sorts the whole row
// and keeps its first k.
#include <cuda_runtime.h>

#include <climits>
#include <cstring>
#include <cub/device/device_segmented_radix_sort.cuh>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device_scratch.h"
#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/stream.h"
#include "tensor/sort_kernels.h"

namespace fabric::cuda {
namespace {

constexpr int kBlockSortMax = 2048;  // 2048 * (8 + 4) bytes of shared memory per block

__device__ __forceinline__ uint64_t float_key(uint64_t bits, int width) {
  // IEEE bits to an unsigned key in value order: negatives flip entirely, positives gain the sign.
  const uint64_t sign = uint64_t{1} << (width - 1);
  return (bits & sign) ? ~bits & (width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1)
                       : bits | sign;
}

// The order-preserving key of element i of a row of `dtype` (NaN: all ones, above +inf).
__device__ uint64_t element_key(const void* src, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::float64: {
      const double v = static_cast<const double*>(src)[i];
      if (v != v) return ~uint64_t{0};
      return float_key(__double_as_longlong(v == 0.0 ? 0.0 : v), 64);
    }
    case DType::float32:
    case DType::float16:
    case DType::bfloat16: {
      float v;
      if (dtype == DType::float32) {
        v = static_cast<const float*>(src)[i];
      } else {
        const uint16_t b = static_cast<const uint16_t*>(src)[i];
        v = dtype == DType::float16 ? half_bits_to_float(b) : bf16_bits_to_float(b);
      }
      if (v != v) return ~uint64_t{0};
      return float_key(static_cast<uint32_t>(__float_as_uint(v == 0.0f ? 0.0f : v)), 32);
    }
    case DType::int64:
      return static_cast<uint64_t>(static_cast<const int64_t*>(src)[i]) ^ (uint64_t{1} << 63);
    case DType::int32:
      return static_cast<uint64_t>(static_cast<int64_t>(static_cast<const int32_t*>(src)[i])) ^
             (uint64_t{1} << 63);
    case DType::int8:
      return static_cast<uint64_t>(static_cast<int64_t>(static_cast<const int8_t*>(src)[i])) ^
             (uint64_t{1} << 63);
    default:  // uint8, bool
      return static_cast<const uint8_t*>(src)[i];
  }
}

__device__ __forceinline__ void copy_element(void* dst, int64_t j, const void* src, int64_t i,
                                             int itemsize) {
  switch (itemsize) {
    case 8:
      static_cast<uint64_t*>(dst)[j] = static_cast<const uint64_t*>(src)[i];
      break;
    case 4:
      static_cast<uint32_t*>(dst)[j] = static_cast<const uint32_t*>(src)[i];
      break;
    case 2:
      static_cast<uint16_t*>(dst)[j] = static_cast<const uint16_t*>(src)[i];
      break;
    default:
      static_cast<uint8_t*>(dst)[j] = static_cast<const uint8_t*>(src)[i];
      break;
  }
}

// a before b: by key in the requested direction, then by position (a total order).
__device__ __forceinline__ bool before(uint64_t ka, int ia, uint64_t kb, int ib, bool desc) {
  if (ka != kb) return desc ? ka > kb : ka < kb;
  return ia < ib;
}

// One block per row (n <= kBlockSortMax): bitonic sort over the row padded to a power of two
// with entries that sort after every real one (position INT_MAX, the extreme key).
__global__ void block_sort_kernel(SortDesc d, int itemsize, int padded) {
  __shared__ uint64_t keys[kBlockSortMax];
  __shared__ int pos[kBlockSortMax];
  const int64_t s = blockIdx.x;
  const int n = static_cast<int>(d.n);
  const char* row = static_cast<const char*>(d.src) + s * d.n * itemsize;
  for (int i = threadIdx.x; i < padded; i += blockDim.x) {
    if (i < n) {
      keys[i] = element_key(row, d.dtype, i);
      pos[i] = i;
    } else {
      keys[i] = d.descending ? 0 : ~uint64_t{0};
      pos[i] = INT_MAX;
    }
  }
  __syncthreads();
  for (int size = 2; size <= padded; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int i = threadIdx.x; i < padded; i += blockDim.x) {
        const int j = i ^ stride;
        if (j > i) {
          const bool up = (i & size) == 0;  // this half of the bitonic sequence sorts forward
          const bool swap = up ? before(keys[j], pos[j], keys[i], pos[i], d.descending)
                               : before(keys[i], pos[i], keys[j], pos[j], d.descending);
          if (swap) {
            const uint64_t tk = keys[i];
            keys[i] = keys[j];
            keys[j] = tk;
            const int tp = pos[i];
            pos[i] = pos[j];
            pos[j] = tp;
          }
        }
      }
      __syncthreads();
    }
  }
  for (int j = threadIdx.x; j < d.k; j += blockDim.x) {
    d.indices[s * d.k + j] = pos[j];
    copy_element(d.values, s * d.k + j, row, pos[j], itemsize);
  }
}

__global__ void keys_kernel(SortDesc d, uint64_t* keys, int* pos, int* offsets, int64_t total) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    keys[i] = element_key(d.src, d.dtype, i);
    pos[i] = static_cast<int>(i % d.n);
    if (i % d.n == 0) offsets[i / d.n] = static_cast<int>(i);
    if (i == total - 1) offsets[d.slices] = static_cast<int>(total);
  }
}

__global__ void take_prefix_kernel(SortDesc d, const int* pos, int itemsize) {
  const int64_t total = d.slices * d.k;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t s = t / d.k, j = t % d.k;
    const int p = pos[s * d.n + j];
    d.indices[t] = p;
    copy_element(d.values, t, d.src, s * d.n + p, itemsize);
  }
}

void segmented_sort(const SortDesc& d, int itemsize, int device, cudaStream_t stream) {
  const int64_t total = d.slices * d.n;
  FABRIC_CHECK(total < INT_MAX, NotImplementedError, "sort (CUDA): ", total,
               " elements in rows longer than ", kBlockSortMax,
               " are more than the segmented sort takes (", INT_MAX, ")");
  const int num = static_cast<int>(total), segs = static_cast<int>(d.slices);
  size_t sort_bytes = 0;
  auto run_sort = [&](void* temp, uint64_t* kin, uint64_t* kout, int* pin, int* pout,
                      const int* offsets) {
    if (d.descending) {
      return cub::DeviceSegmentedRadixSort::SortPairsDescending(
          temp, sort_bytes, kin, kout, pin, pout, num, segs, offsets, offsets + 1, 0, 64, stream);
    }
    return cub::DeviceSegmentedRadixSort::SortPairs(temp, sort_bytes, kin, kout, pin, pout, num,
                                                    segs, offsets, offsets + 1, 0, 64, stream);
  };
  FABRIC_CUDA_CHECK(run_sort(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr));
  auto align = [](size_t b) { return (b + 255) / 256 * 256; };
  const size_t keys_bytes = align(sizeof(uint64_t) * total), pos_bytes = align(sizeof(int) * total),
               offsets_bytes = align(sizeof(int) * (d.slices + 1));
  DeviceScratch scratch(device, 2 * keys_bytes + 2 * pos_bytes + offsets_bytes + sort_bytes + 1);
  char* p = scratch.as<char>();
  uint64_t* kin = reinterpret_cast<uint64_t*>(p);
  uint64_t* kout = reinterpret_cast<uint64_t*>(p + keys_bytes);
  int* pin = reinterpret_cast<int*>(p + 2 * keys_bytes);
  int* pout = reinterpret_cast<int*>(p + 2 * keys_bytes + pos_bytes);
  int* offsets = reinterpret_cast<int*>(p + 2 * keys_bytes + 2 * pos_bytes);
  void* temp = p + 2 * keys_bytes + 2 * pos_bytes + offsets_bytes;
  keys_kernel<<<grid_for(total), kThreads, 0, stream>>>(d, kin, pin, offsets, total);
  FABRIC_CUDA_CHECK_LAUNCH();
  FABRIC_CUDA_CHECK(run_sort(temp, kin, kout, pin, pout, offsets));
  take_prefix_kernel<<<grid_for(d.slices * d.k), kThreads, 0, stream>>>(d, pout, itemsize);
  FABRIC_CUDA_CHECK_LAUNCH();
}

void sort(const SortDesc& d) {
  if (d.slices * d.k == 0) return;
  FABRIC_CHECK(!is_fp8(d.dtype), DTypeError, "sort (CUDA): unsupported dtype ", dtype_name(d.dtype),
               " (the op converts fp8 inputs first)");
  const int device = device_of_pointer(d.indices);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const int item = static_cast<int>(itemsize(d.dtype));
  if (d.n <= kBlockSortMax) {
    int padded = 1;
    while (padded < d.n) padded <<= 1;
    FABRIC_CHECK(d.slices < INT_MAX, NotImplementedError, "sort (CUDA): ", d.slices,
                 " rows are more than one launch takes");
    block_sort_kernel<<<static_cast<unsigned>(d.slices), kThreads, 0, stream>>>(d, item, padded);
    FABRIC_CUDA_CHECK_LAUNCH();
    return;
  }
  segmented_sort(d, item, device, stream);
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(sort_stub, cuda, &cuda::sort);
}  // namespace fabric
