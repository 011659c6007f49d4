// Column sums (a sum over a dim that is not the innermost: bias gradients, batch means) in
// PyTorch 1.13's CPU order (SumKernel.cpp's vectorized_outer_sum / scalar_outer_sum, AVX2 build),
// so that they give torch's bits. Each column of the row's `width` contiguous columns is one of:
//   - cascade: multi_row_sum over its n values, a 4-level cascade carrying every 2^p values,
//     p = max(4, ceil_log2(n) / 4) (torch's blocks of 4 vectors of columns, or of 4 columns);
//   - split4: row_sum, the values read as (n / 4, 4), four such cascades over n / 4 items, the
//     last n mod 4 values into the first, then ((s0 + s1) + s2) + s3 (the columns after them).
// Rows are read in order either way, so any row layout the reducer walks will do.
// tests/kernels/test_reduce_cols_torch.cpp holds this to a transcription and to torch's results.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/reduce_math.h"
#include "kernels/cpu/reduce_row_sum.h"

namespace fabric::cpu {

// The columns [0, returned) of a row of `width` columns of dt take the cascade order, the rest
// split4: torch's vector path (width at least one vector of dt) sums blocks of 4 accumulator
// vectors (8 float or 4 double lanes each) by cascade; its scalar path blocks of 4 columns.
inline int64_t torch_cascade_columns(int64_t width, DType dt) {
  const int64_t lanes = dt == DType::float64 ? 4 : 8;
  const int64_t vector = dt == DType::float64                              ? 4
                         : (dt == DType::float16 || dt == DType::bfloat16) ? 16
                                                                           : 8;
  return width >= vector ? width / (4 * lanes) * (4 * lanes) : width / 4 * 4;
}

// acc[c] += row's value c, c < w, the row being w values of dt converted to A (a bfloat16 row
// widened as it is read: staging it through convert() took 1.8x torch's time).
template <typename A>
inline void add_row(A* acc, const char* p, DType dt, int64_t w, A* buf) {
  if constexpr (std::is_same_v<A, float>) {
    if (dt == DType::bfloat16) {
      const auto* h = reinterpret_cast<const uint16_t*>(p);
      for (int64_t c = 0; c < w; ++c) acc[c] += bf16_bits_to_float(h[c]);
      return;
    }
  }
  const A* x = load_row<A>(p, dt, w, buf);
  for (int64_t c = 0; c < w; ++c) acc[c] += x[c];
}

// Column sums of n rows of w (<= kW) columns, in torch's cascade (split4 false) or split4 order;
// next_row() gives each row's first column in turn. out gets w sums.
template <typename A, int64_t kW, typename NextRow>
void torch_column_sums(bool split4, int64_t n, DType dt, int64_t w, NextRow next_row_in, A* out) {
  // Rows are read kAhead ahead of their use and prefetched: a tile's part of a row is a short run
  // at a fixed stride, which the hardware prefetchers follow poorly ((8192, 768) float32 summed
  // over dim 0 read 17 GB/s, torch 27).
  constexpr int kAhead = 4;
  const int64_t bytes = w * static_cast<int64_t>(itemsize(dt));
  const char* ring[kAhead] = {};
  int64_t fetched = 0, used = 0;
  const auto fetch = [&] {
    const char* p = next_row_in();
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(p + b);
    ring[fetched++ % kAhead] = p;
  };
  while (fetched < std::min<int64_t>(n, kAhead)) fetch();
  const auto next_row = [&] {
    const char* p = ring[used++ % kAhead];
    if (fetched < n) fetch();
    return p;
  };
  const int sets = split4 ? 4 : 1;
  const int64_t items = split4 ? n / 4 : n;  // per set
  const int64_t power = std::max<int64_t>(4, torch_ceil_log2(items) / 4);
  const int64_t step = int64_t{1} << power, mask = step - 1;
  A lv[4][4][kW];  // [level][set][column]
  // Fewer items than one step never carry: the upper levels stay 0 and need no zeroing or fold
  // (a sum over a dim of 3 paid 7 passes over them for 3 rows of work).
  const int levels = items < step ? 1 : 4;
  for (int l = 0; l < levels; ++l)
    for (int k = 0; k < sets; ++k) std::fill_n(lv[l][k], w, A(0));
  A buf[kW];
  const auto add = [w](A* into, const A* from) {
    for (int64_t c = 0; c < w; ++c) into[c] += from[c];
  };
  int64_t i = 0;
  while (i + step <= items) {
    for (int64_t j = 0; j < step; ++j, ++i)
      for (int k = 0; k < sets; ++k) add_row(lv[0][k], next_row(), dt, w, buf);
    for (int l = 1; l < 4; ++l) {
      for (int k = 0; k < sets; ++k) {
        add(lv[l][k], lv[l - 1][k]);
        std::fill_n(lv[l - 1][k], w, A(0));
      }
      if ((i & (mask << (l * power))) != 0) break;
    }
  }
  for (; i < items; ++i)
    for (int k = 0; k < sets; ++k) add_row(lv[0][k], next_row(), dt, w, buf);
  for (int l = 1; l < levels; ++l)
    for (int k = 0; k < sets; ++k) add(lv[0][k], lv[l][k]);
  for (int64_t r = items * sets; r < n; ++r) add_row(lv[0][0], next_row(), dt, w, buf);
  for (int k = 1; k < sets; ++k) add(lv[0][0], lv[0][k]);
  std::memcpy(out, lv[0][0], static_cast<size_t>(w) * sizeof(A));
}

}  // namespace fabric::cpu
