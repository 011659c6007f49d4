// CPU nonzero and masked_select's compaction (nonzero_kernels.h): chunks of kNonzeroChunk elements
// counted in parallel, then each chunk, from its offset in the result, writes its nonzero
// elements' coordinates (carrying an odometer of coordinates along instead of dividing each flat
// position by the sizes) or copies its selected values.
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/run_tasks.h"
#include "tensor/nonzero_kernels.h"

namespace fabric::cpu {
namespace {

// Nonzero as torch counts it. Floats compare (NaN != 0, -0.0 == 0); the 16-bit floats test
// their bits without the sign, which is the same thing; bool and the bytes read as uint8.
template <typename T>
struct Truthy {
  bool operator()(T v) const { return v != T(0); }
};
struct Truthy16 {
  bool operator()(uint16_t bits) const { return (bits & 0x7fffu) != 0; }
};

template <typename T, typename P>
void count_chunks(const NonzeroDesc& d, int64_t* chunk_counts) {
  const T* src = static_cast<const T*>(d.src);
  const int64_t chunks = (d.numel + kNonzeroChunk - 1) / kNonzeroChunk;
  const P truthy;
  run_tasks(chunks, /*parallel=*/true, [&](int64_t c) {  // a chunk is worth a thread
    const int64_t lo = c * kNonzeroChunk, hi = std::min(d.numel, lo + kNonzeroChunk);
    int64_t n = 0;
    for (int64_t i = lo; i < hi; ++i) n += truthy(src[i]) ? 1 : 0;
    chunk_counts[c] = n;
  });
}

template <typename T, typename P>
void write_chunks(const NonzeroDesc& d, const int64_t* chunk_begin, int64_t* out) {
  const T* src = static_cast<const T*>(d.src);
  const int64_t chunks = (d.numel + kNonzeroChunk - 1) / kNonzeroChunk;
  const int64_t nd = d.ndim, last = d.sizes[nd - 1];
  const P truthy;
  run_tasks(chunks, /*parallel=*/true, [&](int64_t c) {  // a chunk is worth a thread
    const int64_t lo = c * kNonzeroChunk, hi = std::min(d.numel, lo + kNonzeroChunk);
    // Branch-free, as masked_compact: every element's coordinates are written at the cursor,
    // which moves on past the nonzero ones only, and the writes stop at the chunk's last row.
    int64_t* row = out + chunk_begin[c] * nd;
    int64_t* const row_end = out + chunk_begin[c + 1] * nd;
    if (nd == 1) {
      for (int64_t i = lo; i < hi && row < row_end; ++i) {
        *row = i;
        row += truthy(src[i]) ? 1 : 0;
      }
      return;
    }
    // The coordinates of lo, then walked along: the last dim in an inner loop, a carry at its end.
    int64_t coord[64];
    for (int64_t k = nd - 1, rest = lo; k >= 0; --k) {
      coord[k] = rest % d.sizes[k];
      rest /= d.sizes[k];
    }
    for (int64_t i = lo; i < hi;) {
      const int64_t run = std::min(hi - i, last - coord[nd - 1]);
      const int64_t start = coord[nd - 1];
      for (int64_t j = 0; j < run && row < row_end; ++j) {
        for (int64_t k = 0; k < nd - 1; ++k) row[k] = coord[k];
        row[nd - 1] = start + j;
        row += truthy(src[i + j]) ? nd : 0;
      }
      if (row == row_end) break;
      i += run;
      coord[nd - 1] = start + run;
      for (int64_t k = nd - 1; k > 0 && coord[k] == d.sizes[k]; --k) {
        coord[k] = 0;
        ++coord[k - 1];
      }
    }
  });
}

// Element copies of itemsize bytes as one integer type, so the compaction loop is a load and a
// store per selected element.
template <typename U>
void compact_chunks(const NonzeroDesc& mask, const void* values, const int64_t* chunk_begin,
                    void* out) {
  const uint8_t* m = static_cast<const uint8_t*>(mask.src);
  const U* v = static_cast<const U*>(values);
  const int64_t chunks = (mask.numel + kNonzeroChunk - 1) / kNonzeroChunk;
  run_tasks(chunks, /*parallel=*/true, [&](int64_t c) {  // a chunk is worth a thread
    const int64_t lo = c * kNonzeroChunk, hi = std::min(mask.numel, lo + kNonzeroChunk);
    U* o = static_cast<U*>(out) + chunk_begin[c];
    // Branch-free (a half-set mask would mispredict a branch every other element): every
    // element is stored at the cursor, which moves on only past the selected ones. The stores
    // stay inside the chunk's rows: once the cursor reaches their end, the chunk has no more.
    U* const o_end = static_cast<U*>(out) + chunk_begin[c + 1];
    for (int64_t i = lo; i < hi && o < o_end; ++i) {
      *o = v[i];
      o += m[i] != 0 ? 1 : 0;
    }
  });
}

void masked_compact(const NonzeroDesc& mask, const void* values, int64_t itemsize,
                    const int64_t* chunk_begin, void* out) {
  switch (itemsize) {
    case 1: return compact_chunks<uint8_t>(mask, values, chunk_begin, out);
    case 2: return compact_chunks<uint16_t>(mask, values, chunk_begin, out);
    case 4: return compact_chunks<uint32_t>(mask, values, chunk_begin, out);
    case 8: return compact_chunks<uint64_t>(mask, values, chunk_begin, out);
    default: throw DTypeError("masked_select: the CPU kernel copies 1, 2, 4 or 8-byte elements");
  }
}

template <template <typename, typename> class Pass, typename... Args>
void by_dtype(const NonzeroDesc& d, Args... args) {
  switch (d.dtype) {
    case DType::bool_: case DType::uint8: case DType::int8:
      return Pass<uint8_t, Truthy<uint8_t>>::run(d, args...);
    case DType::int32: return Pass<int32_t, Truthy<int32_t>>::run(d, args...);
    case DType::int64: return Pass<int64_t, Truthy<int64_t>>::run(d, args...);
    case DType::float16: case DType::bfloat16: return Pass<uint16_t, Truthy16>::run(d, args...);
    case DType::float32: return Pass<float, Truthy<float>>::run(d, args...);
    case DType::float64: return Pass<double, Truthy<double>>::run(d, args...);
    default: throw DTypeError("nonzero: the CPU kernel has no case for this dtype");
  }
}

template <typename T, typename P>
struct CountPass {
  static void run(const NonzeroDesc& d, int64_t* counts) { count_chunks<T, P>(d, counts); }
};
template <typename T, typename P>
struct WritePass {
  static void run(const NonzeroDesc& d, const int64_t* begin, int64_t* out) {
    write_chunks<T, P>(d, begin, out);
  }
};

void nonzero_count(const NonzeroDesc& d, int64_t* chunk_counts) {
  by_dtype<CountPass>(d, chunk_counts);
}
void nonzero_write(const NonzeroDesc& d, const int64_t* chunk_begin, int64_t* out) {
  by_dtype<WritePass>(d, chunk_begin, out);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(nonzero_count_stub, cpu, &cpu::nonzero_count);
FABRIC_REGISTER_KERNEL(nonzero_write_stub, cpu, &cpu::nonzero_write);
FABRIC_REGISTER_KERNEL(masked_compact_stub, cpu, &cpu::masked_compact);
}  // namespace fabric
