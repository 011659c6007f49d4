// CPU indexing kernels: index range scan, row gather (embedding/index_select), index_add,
// gather/scatter_add along a dim, tril/triu and one_hot. Parallel over OpenMP where rows are
// independent; accumulating kernels split the work so that no two threads write one element.
// gather/scatter_add walk the index as kernels/cpu/index_line_walk.h does (shared with scatter).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/cpu/index_line_walk.h"
#include "kernels/cpu/run_tasks.h"
#include "tensor/index_kernels.h"

namespace fabric::cpu {
namespace {

constexpr int64_t kGrain = 32768;  // elements below which a loop stays serial

inline int64_t load_index(const void* p, DType t, int64_t i) {
  return t == DType::int64 ? static_cast<const int64_t*>(p)[i] : static_cast<const int32_t*>(p)[i];
}

std::pair<int64_t, int64_t> index_minmax(const void* index, DType t, int64_t n) {
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  auto scan = [&](auto* p) {
    if (n > 4 * kGrain) {
#pragma omp parallel for reduction(min : lo) reduction(max : hi)
      for (int64_t i = 0; i < n; ++i) {
        lo = std::min<int64_t>(lo, p[i]);
        hi = std::max<int64_t>(hi, p[i]);
      }
    } else {  // no parallel region at all: entering one costs small calls more than the scan
      for (int64_t i = 0; i < n; ++i) {
        lo = std::min<int64_t>(lo, p[i]);
        hi = std::max<int64_t>(hi, p[i]);
      }
    }
  };
  if (t == DType::int64)
    scan(static_cast<const int64_t*>(index));
  else
    scan(static_cast<const int32_t*>(index));
  return {lo, hi};
}

template <typename T>
void select_rows(const IndexSelectDesc& d) {
  const T* src = static_cast<const T*>(d.src);
  T* out = static_cast<T*>(d.out);
  const int64_t rows = d.outer * d.num_index, inner = d.inner;
  run_tasks(rows, rows * inner > kGrain, [&](int64_t r) {
    const int64_t o = r / d.num_index, i = r % d.num_index;
    const T* s =
        src + o * d.src_stride_outer + load_index(d.index, d.index_dtype, i) * d.src_stride_dim;
    T* dst = out + r * inner;
    if (inner == 1)
      *dst = *s;
    else
      std::memcpy(dst, s, static_cast<size_t>(inner) * sizeof(T));
  });
}

void index_select(const IndexSelectDesc& d) {
  if (d.outer * d.num_index * d.inner == 0) return;
  switch (d.itemsize) {
    case 8:
      select_rows<uint64_t>(d);
      break;
    case 4:
      select_rows<uint32_t>(d);
      break;
    case 2:
      select_rows<uint16_t>(d);
      break;
    default:
      select_rows<uint8_t>(d);
      break;
  }
}

template <typename T>
void index_add_typed(const IndexAddDesc& d) {
  T* out = static_cast<T*>(d.out);
  const T* src = static_cast<const T*>(d.src);
  const int64_t inner = d.inner, n = d.num_index;
  const T alpha = static_cast<T>(d.alpha);
  const bool scaled = std::is_floating_point_v<T> && d.alpha != 1.0;
  auto add_cols = [&](int64_t o, int64_t c0, int64_t c1) {
    T* ob = out + o * d.out_size * inner;
    const T* sb = src + o * n * inner;
    for (int64_t i = 0; i < n; ++i) {
      T* dst = ob + load_index(d.index, d.index_dtype, i) * inner;
      const T* s = sb + i * inner;
      if constexpr (std::is_floating_point_v<T>) {
        if (scaled) {  // torch's add_(src, alpha): one rounding
          for (int64_t c = c0; c < c1; ++c) dst[c] = std::fma(s[c], alpha, dst[c]);
          continue;
        }
      }
      for (int64_t c = c0; c < c1; ++c) dst[c] += s[c];
    }
  };
  const int64_t work = d.outer * n * inner;
  if (d.outer > 1 && work > kGrain) {
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < d.outer; ++o) add_cols(o, 0, inner);
  } else if (inner >= 128 && work > kGrain) {
    // One destination row can receive many source rows: split the columns, not the rows.
    const int64_t nchunks = std::min<int64_t>(omp_get_max_threads(), inner / 64);
    for (int64_t o = 0; o < d.outer; ++o) {
#pragma omp parallel for schedule(static)
      for (int64_t ch = 0; ch < nchunks; ++ch)
        add_cols(o, inner * ch / nchunks, inner * (ch + 1) / nchunks);
    }
  } else {
    for (int64_t o = 0; o < d.outer; ++o) add_cols(o, 0, inner);
  }
}

void index_add(const IndexAddDesc& d) {
  if (d.outer * d.num_index * d.inner == 0) return;
  switch (d.dtype) {
    case DType::float64:
      index_add_typed<double>(d);
      break;
    case DType::float32:
      index_add_typed<float>(d);
      break;
    case DType::int64:
      index_add_typed<int64_t>(d);
      break;
    case DType::int32:
      index_add_typed<int32_t>(d);
      break;
    case DType::int8:
      index_add_typed<int8_t>(d);
      break;
    case DType::uint8:
      index_add_typed<uint8_t>(d);
      break;
    default:
      throw DTypeError(
          fabric::detail::cat("index_add kernel: unsupported dtype ", dtype_name(d.dtype)));
  }
}

template <typename T>
void gather_typed(const ScatterGatherDesc& d) {
  const T* data = reinterpret_cast<const T*>(d.data);
  T* other = reinterpret_cast<T*>(d.other);
  index_walk::for_each_element(d, sizeof(T),
                               [data, other](int64_t od, int64_t oo) { other[oo] = data[od]; });
}

// Each destination receives its elements in index order (index_line_walk.h), as torch's serial
// CPU loop does, so sums are the same bits at any thread count.
template <typename T>
void scatter_add_typed(const ScatterGatherDesc& d) {
  T* data = reinterpret_cast<T*>(d.data);
  const T* other = reinterpret_cast<const T*>(d.other);
  index_walk::for_each_element(d, sizeof(T), [data, other](int64_t od, int64_t oo) {
    T& dst = data[od];
    if constexpr (std::is_same_v<T, bool>)
      dst = dst || other[oo];
    else
      dst = static_cast<T>(dst + other[oo]);
  });
}

void gather(const ScatterGatherDesc& d) {
  // Bytes move unchanged: dispatch on the element size only.
  switch (itemsize(d.dtype)) {
    case 8:
      gather_typed<uint64_t>(d);
      break;
    case 4:
      gather_typed<uint32_t>(d);
      break;
    case 2:
      gather_typed<uint16_t>(d);
      break;
    default:
      gather_typed<uint8_t>(d);
      break;
  }
}

void scatter_add(const ScatterGatherDesc& d) {
  switch (d.dtype) {
    case DType::float64:
      scatter_add_typed<double>(d);
      break;
    case DType::float32:
      scatter_add_typed<float>(d);
      break;
    case DType::int64:
      scatter_add_typed<int64_t>(d);
      break;
    case DType::int32:
      scatter_add_typed<int32_t>(d);
      break;
    case DType::int8:
      scatter_add_typed<int8_t>(d);
      break;
    case DType::uint8:
      scatter_add_typed<uint8_t>(d);
      break;
    case DType::bool_:
      scatter_add_typed<bool>(d);
      break;
    default:
      throw DTypeError(
          fabric::detail::cat("scatter_add kernel: unsupported dtype ", dtype_name(d.dtype)));
  }
}

void tri(const TriDesc& d) {
  const int64_t rows = d.batch * d.rows, cols = d.cols, es = d.itemsize;
  const char* src = static_cast<const char*>(d.src);
  char* dst = static_cast<char*>(d.dst);
  run_tasks(rows, rows * cols > kGrain, [&](int64_t r) {
    const int64_t i = r % d.rows;
    // tril keeps columns j <= i + diagonal; triu keeps j >= i + diagonal.
    const int64_t edge =
        std::clamp<int64_t>(d.lower ? i + d.diagonal + 1 : i + d.diagonal, 0, cols);
    const char* s = src + r * cols * es;
    char* o = dst + r * cols * es;
    if (d.lower) {
      std::memcpy(o, s, edge * es);
      std::memset(o + edge * es, 0, (cols - edge) * es);
    } else {
      std::memset(o, 0, edge * es);
      std::memcpy(o + edge * es, s + edge * es, (cols - edge) * es);
    }
  });
}

void one_hot(const int64_t* index, int64_t n, int64_t num_classes, int64_t* out) {
  run_tasks(n, n * num_classes > kGrain, [&](int64_t i) {
    int64_t* row = out + i * num_classes;
    std::memset(row, 0, num_classes * sizeof(int64_t));
    row[index[i]] = 1;
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(index_minmax_stub, cpu, &cpu::index_minmax);
FABRIC_REGISTER_KERNEL(index_select_stub, cpu, &cpu::index_select);
FABRIC_REGISTER_KERNEL(index_add_stub, cpu, &cpu::index_add);
FABRIC_REGISTER_KERNEL(gather_stub, cpu, &cpu::gather);
FABRIC_REGISTER_KERNEL(scatter_add_stub, cpu, &cpu::scatter_add);
FABRIC_REGISTER_KERNEL(tri_stub, cpu, &cpu::tri);
FABRIC_REGISTER_KERNEL(one_hot_stub, cpu, &cpu::one_hot);
}  // namespace fabric
