// CUDA kernels of LLM.int8 (tensor/quant_kernels.h states what each computes; the CPU kernels are
// kernels/cpu/llm_int8_kernels.cpp): the row-wise quantizer with the outlier threshold (a block
// per row finds the absmax and flags outlier columns, then one pass writes the codes), the
// column-wise quantizer of the weight gradient (column maxima folded down the rows and merged
// with atomicMax, then 32 x 32 tiles quantized and written transposed through shared memory), the
// row dequantizer and the forward epilogue (one thread per output element). Every pointer is in
// the memory of the device the work runs on; the element arithmetic is llm_int8_math.h, shared
// with the host tests.
#include <cuda_runtime.h>

#include <algorithm>
#include <utility>

#include "kernels/cuda/grid_stride.cuh"
#include "kernels/cuda/llm_int8_math.h"
#include "kernels/cuda/reduce_util.cuh"
#include "tensor/quant_kernels.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;
namespace li8 = llm_int8;

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// ---- row-wise quantization --------------------------------------------------------------------

// Block b takes rows b, b + gridDim.x, ...: the row's absmax over its non-outliers, the outlier
// columns flagged in colmask (several threads may store the same 1: no race on the value).
template <typename T>
__global__ void row_absmax_kernel(const T* a, int64_t rows, int64_t K, float thr, float* stats,
                                  uint8_t* colmask) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = a + r * K;
    float m = 0.0f;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const float v = static_cast<float>(row[k]);
      if (li8::is_outlier(fabsf(v), thr)) colmask[k] = 1;
      m = fmaxf(m, li8::absmax_term(v, thr));
    }
    m = row_allreduce(m, MaxOp{});
    if (threadIdx.x == 0) stats[r] = m;
  }
}

// The codes, once every row's absmax and every outlier column is known: an outlier column is 0 in
// every row (with one row its only element is the outlier itself, which is 0 as well).
template <typename T>
__global__ void row_codes_kernel(const T* a, int64_t rows, int64_t K, float thr, const float* stats,
                                 const uint8_t* colmask, int8_t* q) {
  FABRIC_GRID_STRIDE(i, rows * K) {
    const int64_t r = i / K, k = i - r * K;
    q[i] = thr > 0.0f && colmask[k] != 0
               ? int8_t{0}
               : li8::quant_code(static_cast<float>(a[i]), li8::quant_factor(stats[r]));
  }
}

template <typename T>
void row_quant(const T* a, int64_t rows, int64_t K, float thr, int8_t* q, float* stats,
               uint8_t* colmask, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>(rows, 65536));
  row_absmax_kernel<T><<<blocks, kThreads, 0, stream>>>(a, rows, K, thr, stats, colmask);
  FABRIC_CUDA_CHECK_LAUNCH();
  row_codes_kernel<T>
      <<<grid_for(rows * K), kThreads, 0, stream>>>(a, rows, K, thr, stats, colmask, q);
  FABRIC_CUDA_CHECK_LAUNCH();
}

// ---- column-wise quantization, written transposed ---------------------------------------------

constexpr int kTile = 32;     // columns (and rows) of a tile
constexpr int kTileRows = 8;  // threadIdx.y: each thread takes every 8th row of a tile
constexpr int kMaxRowChunks = 1024;

// Pass 1: block (x, y) folds columns 32x .. 32x+31 over its chunk of rows (threadIdx.y strides
// the chunk by 8), then merges the column maxima into stats (zeroed by the caller) with atomicMax
// on the bits: the maxima are non-negative and not NaN, whose bits order as their values.
template <typename T>
__global__ void col_absmax_kernel(const T* a, int64_t rows, int64_t K, int64_t chunk, float thr,
                                  float* stats, uint8_t* colmask) {
  const int64_t k = static_cast<int64_t>(blockIdx.x) * kTile + threadIdx.x;
  const int64_t r_begin = static_cast<int64_t>(blockIdx.y) * chunk;
  const int64_t r_end = std::min(rows, r_begin + chunk);
  float m = 0.0f;
  if (k < K) {
    for (int64_t r = r_begin + threadIdx.y; r < r_end; r += blockDim.y) {
      const float v = static_cast<float>(a[r * K + k]);
      if (li8::is_outlier(fabsf(v), thr)) colmask[k] = 1;
      m = fmaxf(m, li8::absmax_term(v, thr));
    }
  }
  m = col_reduce(m, MaxOp{});
  if (threadIdx.y == 0 && k < K && m > 0.0f) {
    atomicMax(reinterpret_cast<int*>(stats + k), __float_as_int(m));
  }
}

// Pass 2: a 32-row by 32-column tile of A is quantized with its columns' factors (0 for an
// outlier or all-zero column) into shared memory, then written as 32 rows of 32 bytes of qt.
// Column tiles along x, row tiles along y (striding when there are more than the grid holds).
template <typename T>
__global__ void col_codes_kernel(const T* a, int64_t rows, int64_t K, float thr, const float* stats,
                                 const uint8_t* colmask, int8_t* qt) {
  __shared__ int tile[kTile][kTile + 1];  // +1: the transposed reads fall in distinct banks
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int64_t k0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t k = k0 + tx;
  float factor = 0.0f;
  if (k < K && !(thr > 0.0f && colmask[k] != 0)) factor = li8::quant_factor(stats[k]);
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  for (int64_t t = blockIdx.y; t < row_tiles; t += gridDim.y) {
    const int64_t r0 = t * kTile;
    for (int i = ty; i < kTile; i += kTileRows) {
      const int64_t r = r0 + i;
      tile[i][tx] =
          r < rows && k < K ? li8::quant_code(static_cast<float>(a[r * K + k]), factor) : 0;
    }
    __syncthreads();
    for (int i = ty; i < kTile; i += kTileRows) {
      const int64_t kk = k0 + i, r = r0 + tx;  // qt's row kk, column r
      if (kk < K && r < rows) qt[kk * rows + r] = static_cast<int8_t>(tile[tx][i]);
    }
    __syncthreads();  // the tile is refilled by the next row tile
  }
}

template <typename T>
void col_quant(const T* a, int64_t rows, int64_t K, float thr, int8_t* qt, float* stats,
               uint8_t* colmask, cudaStream_t stream) {
  FABRIC_CUDA_CHECK(cudaMemsetAsync(stats, 0, static_cast<size_t>(K) * sizeof(float), stream));
  const int64_t col_tiles = (K + kTile - 1) / kTile;
  FABRIC_CHECK(col_tiles <= 0x7FFFFFFF, ValueError, "int8_col_quant kernel (CUDA): K = ", K,
               " needs more than 2^31-1 column tiles");
  // Row chunks of at least 256 rows, at most 1024 of them.
  const int64_t chunks = std::clamp<int64_t>((rows + 255) / 256, 1, kMaxRowChunks);
  const int64_t chunk = (rows + chunks - 1) / chunks;
  const dim3 block(kTile, kTileRows);
  col_absmax_kernel<T>
      <<<dim3(static_cast<unsigned>(col_tiles), static_cast<unsigned>(chunks)), block, 0, stream>>>(
          a, rows, K, chunk, thr, stats, colmask);
  FABRIC_CUDA_CHECK_LAUNCH();
  const int64_t row_tiles = std::min<int64_t>((rows + kTile - 1) / kTile, 65535);
  col_codes_kernel<T><<<dim3(static_cast<unsigned>(col_tiles), static_cast<unsigned>(row_tiles)),
                        block, 0, stream>>>(a, rows, K, thr, stats, colmask, qt);
  FABRIC_CUDA_CHECK_LAUNCH();
}

// ---- row-wise dequantization and the forward epilogue -----------------------------------------

__global__ void row_dequant_kernel(const int8_t* q, const float* stats, int64_t n, int64_t K,
                                   float scale, float* out) {
  FABRIC_GRID_STRIDE(i, n) { out[i] = li8::dequant_row_value(q[i], stats[i / K], scale); }
}

template <typename T>
__global__ void epilogue_kernel(Int8LinearEpilogue e) {
  const T* x = static_cast<const T*>(e.x);
  T* out = static_cast<T*>(e.out);
  FABRIC_GRID_STRIDE(i, e.M * e.N) {
    const int64_t m = i / e.N, n = i - m * e.N;
    float v = li8::epilogue_int8_part(e.acc[i], e.row_stats[m], e.col_stats[n], e.scale,
                                      e.bias != nullptr ? e.bias + n : nullptr);
    if (e.ncols > 0) {
      // addmm in the output dtype: the stored partial result plus the fp32 sum, rounded once.
      v = li8::round_through<T>(v);
      const T* xm = x + m * e.K;
      for (int64_t j = 0; j < e.ncols; ++j) {
        v = rounded::fma(static_cast<float>(xm[e.cols[j]]), e.w_cols[j * e.N + n], v);
      }
    }
    out[i] = T(v);
  }
}

// ---- launches ---------------------------------------------------------------------------------

// Runs f<T>(...) for the kernel's float dtype.
template <template <typename> class F, typename... Args>
void with_float_type(DType dtype, const char* what, Args&&... args) {
  switch (dtype) {
    case DType::float32:
      return F<float>::run(std::forward<Args>(args)...);
    case DType::float16:
      return F<Half>::run(std::forward<Args>(args)...);
    case DType::bfloat16:
      return F<BFloat16>::run(std::forward<Args>(args)...);
    default:
      throw DTypeError(
          cat(what, " (CUDA): ", dtype_name(dtype), " (expected float32, float16 or bfloat16)"));
  }
}

template <typename T>
struct RowQuant {
  static void run(const void* A, int64_t rows, int64_t K, float thr, int8_t* q, float* stats,
                  uint8_t* colmask, cudaStream_t s) {
    row_quant(static_cast<const T*>(A), rows, K, thr, q, stats, colmask, s);
  }
};
template <typename T>
struct ColQuant {
  static void run(const void* A, int64_t rows, int64_t K, float thr, int8_t* qt, float* stats,
                  uint8_t* colmask, cudaStream_t s) {
    col_quant(static_cast<const T*>(A), rows, K, thr, qt, stats, colmask, s);
  }
};
template <typename T>
struct Epilogue {
  static void run(const Int8LinearEpilogue& e, cudaStream_t s) {
    epilogue_kernel<T><<<grid_for(e.M * e.N), kThreads, 0, s>>>(e);
    FABRIC_CUDA_CHECK_LAUNCH();
  }
};

void int8_row_quant(const void* A, DType dtype, int64_t rows, int64_t K, float threshold, int8_t* q,
                    float* stats, uint8_t* colmask) {
  FABRIC_CHECK(K >= 1, ValueError, "int8_row_quant kernel (CUDA): K = ", K, " (expected >= 1)");
  if (rows <= 0) return;
  const int device = device_of_pointer(q);
  DeviceGuard guard(device);
  const float thr = threshold > 0.0f ? threshold : 0.0f;
  with_float_type<RowQuant>(dtype, "int8_row_quant kernel", A, rows, K, thr, q, stats, colmask,
                            compute_stream(device));
}

void int8_col_quant(const void* A, DType dtype, int64_t rows, int64_t K, float threshold,
                    int8_t* qt, float* stats, uint8_t* colmask) {
  FABRIC_CHECK(rows >= 1 && K >= 1, ValueError, "int8_col_quant kernel (CUDA): rows = ", rows,
               ", K = ", K, " (expected both >= 1)");
  const int device = device_of_pointer(qt);
  DeviceGuard guard(device);
  const float thr = threshold > 0.0f ? threshold : 0.0f;
  with_float_type<ColQuant>(dtype, "int8_col_quant kernel", A, rows, K, thr, qt, stats, colmask,
                            compute_stream(device));
}

void int8_row_dequant(const int8_t* q, const float* stats, int64_t rows, int64_t K, float scale,
                      float* out) {
  FABRIC_CHECK(K >= 1, ValueError, "int8_row_dequant kernel (CUDA): K ", K, " (expected >= 1)");
  if (rows <= 0) return;
  const int device = device_of_pointer(out);
  DeviceGuard guard(device);
  row_dequant_kernel<<<grid_for(rows * K), kThreads, 0, compute_stream(device)>>>(
      q, stats, rows * K, K, scale, out);
  FABRIC_CUDA_CHECK_LAUNCH();
}

void int8_linear_epilogue(const Int8LinearEpilogue& e) {
  if (e.M <= 0 || e.N <= 0) return;
  const int device = device_of_pointer(e.out);
  DeviceGuard guard(device);
  with_float_type<Epilogue>(e.dtype, "int8_linear_epilogue kernel", e, compute_stream(device));
}

}  // namespace
}  // namespace fabric::cuda

namespace fabric {
FABRIC_REGISTER_KERNEL(int8_row_quant_stub, cuda, &cuda::int8_row_quant);
FABRIC_REGISTER_KERNEL(int8_col_quant_stub, cuda, &cuda::int8_col_quant);
FABRIC_REGISTER_KERNEL(int8_row_dequant_stub, cuda, &cuda::int8_row_dequant);
FABRIC_REGISTER_KERNEL(int8_linear_epilogue_stub, cuda, &cuda::int8_linear_epilogue);
}  // namespace fabric
