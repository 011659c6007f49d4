// Inline walking of a StridedLoop (included by strided_loop.h; kept apart so the value type
// reads on its own). OpenMP is the one thread pool, shared with oneDNN.
#pragma once
#include <algorithm>
#include <cstdint>

// Included on its own, this pulls in the declarations it walks (strided_loop.h includes this file
// at its end; #pragma once stops the cycle either way round).
#include "tensor/strided_loop.h"

// The omp pragmas sit under _OPENMP too: an app compiling these templates without -fopenmp (OpenMP
// is the library's private dependency) runs them serially either way, and g++ -Wall would warn that
// it ignores them.
#ifdef _OPENMP
#include <omp.h>
#endif

namespace fabric {

namespace detail {
inline constexpr int64_t kLoopGrain = 32768;  // elements per parallel task, below which we stay serial

template <typename RowFn>
inline void run_rows(const StridedLoop& loop, int64_t row_begin, int64_t row_end, RowFn& row) {
  const int nd = loop.ndim;
  const int nops = loop.num_operands;
  const int64_t inner = loop.sizes[nd - 1];
  char* ptrs[kMaxLoopOperands];
  int64_t inner_strides[kMaxLoopOperands];
  for (int k = 0; k < nops; ++k) inner_strides[k] = loop.ops[k].strides[nd - 1];
  // Decompose the first row index once, then advance like an odometer.
  int64_t idx[kMaxLoopDims] = {};
  int64_t r = row_begin;
  for (int d = nd - 2; d >= 0; --d) {
    idx[d] = r % loop.sizes[d];
    r /= loop.sizes[d];
  }
  for (int64_t rr = row_begin; rr < row_end; ++rr) {
    for (int k = 0; k < nops; ++k) {
      char* p = loop.ops[k].data;
      for (int d = 0; d < nd - 1; ++d) p += idx[d] * loop.ops[k].strides[d];
      ptrs[k] = p;
    }
    row(ptrs, inner, inner_strides);
    for (int d = nd - 2; d >= 0; --d) {
      if (++idx[d] < loop.sizes[d]) break;
      idx[d] = 0;
    }
  }
}

// Operands unit-stride along different dims (x.transpose(1, 2) + pos beside a row-major output):
// walked row by row, every element of the operand strided along the rows lands on its own cache
// line, and such loops ran at 1.2-4x torch's time. Walked in tiles instead, the lines of every
// operand stay in cache while the tile is walked. The rows handed to the callback are then
// tile-wide pieces of the loop's rows: every for_each_row callback is elementwise.
struct LoopTiles {
  int tile_dim = -1;   // an outer dim along which an operand strided along the rows is unit-stride
  int64_t height = 0;  // tile extent along tile_dim
  int64_t width = 0;   // tile extent along the rows (the loop's innermost dim)
};

inline LoopTiles loop_tiles_for(const StridedLoop& loop) {
  constexpr int64_t kMinExtent = 16;
  const int row = loop.ndim - 1;
  if (loop.ndim < 2 || loop.sizes[row] < kMinExtent) return {};
  bool some_rows = false;  // some operand walks its rows in memory order
  int64_t max_item = 1;
  for (int k = 0; k < loop.num_operands; ++k) {
    const int64_t item = static_cast<int64_t>(itemsize(loop.ops[k].dtype));
    some_rows |= loop.ops[k].strides[row] == item;
    max_item = std::max(max_item, item);
  }
  if (!some_rows) return {};
  for (int k = 0; k < loop.num_operands; ++k) {
    const auto& st = loop.ops[k].strides;
    const int64_t item = static_cast<int64_t>(itemsize(loop.ops[k].dtype));
    if (st[row] == 0 || st[row] == item) continue;
    for (int d = row - 1; d >= 0; --d)
      if (st[d] == item && loop.sizes[d] >= kMinExtent) {
        // 64 x 128 float32 tiles measured best (0.42 ms for the ViT add above against 0.58 at
        // 64 x 64 and 1.8 row by row; 2048^2 m + m.t() 10 ms against 36).
        const int64_t h = std::min<int64_t>(64, 256 / max_item);
        return {d, h, 2 * h};
      }
  }
  return {};
}

// Calls tile(origin, h, w) for every tile of the loop: origin points at each operand's element
// (i0, j0) of the tile, which spans h indices of tile_dim and w of the rows. Parallel over (every
// other dim, band of `height` indices of tile_dim).
template <typename TileFn>
void for_each_tile(const StridedLoop& loop, LoopTiles t, TileFn&& tile) {
  const int nd = loop.ndim, nops = loop.num_operands, rd = nd - 1, td = t.tile_dim;
  const int64_t rows_n = loop.sizes[rd], tile_n = loop.sizes[td];
  int64_t outer = 1;
  for (int d = 0; d < rd; ++d)
    if (d != td) outer *= loop.sizes[d];
  const int64_t bands = (tile_n + t.height - 1) / t.height, tasks = outer * bands;
  auto run = [&](int64_t task) {
    int64_t o = task / bands;
    const int64_t i0 = task % bands * t.height, h = std::min(tile_n - i0, t.height);
    char* base[kMaxLoopOperands];
    for (int k = 0; k < nops; ++k) base[k] = loop.ops[k].data + i0 * loop.ops[k].strides[td];
    for (int d = rd - 1; d >= 0; --d) {  // the outer index over the untiled dims
      if (d == td) continue;
      const int64_t i = o % loop.sizes[d];
      o /= loop.sizes[d];
      for (int k = 0; k < nops; ++k) base[k] += i * loop.ops[k].strides[d];
    }
    char* origin[kMaxLoopOperands];
    for (int64_t j0 = 0; j0 < rows_n; j0 += t.width) {
      for (int k = 0; k < nops; ++k) origin[k] = base[k] + j0 * loop.ops[k].strides[rd];
      tile(origin, h, std::min(t.width, rows_n - j0));
    }
  };
  if (outer * tile_n * rows_n < kLoopGrain || tasks == 1) {
    for (int64_t task = 0; task < tasks; ++task) run(task);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (int64_t task = 0; task < tasks; ++task) run(task);
}

// for_each_row over tiles: each tile's rows, `width` elements long.
template <typename RowFn>
void run_tiles(const StridedLoop& loop, LoopTiles t, RowFn& row) {
  const int nops = loop.num_operands, td = t.tile_dim;
  int64_t row_st[kMaxLoopOperands];
  for (int k = 0; k < nops; ++k) row_st[k] = loop.ops[k].strides[loop.ndim - 1];
  for_each_tile(loop, t, [&](char* const* origin, int64_t h, int64_t w) {
    char* ptrs[kMaxLoopOperands];
    for (int64_t i = 0; i < h; ++i) {
      for (int k = 0; k < nops; ++k) ptrs[k] = origin[k] + i * loop.ops[k].strides[td];
      row(ptrs, w, row_st);
    }
  });
}
}  // namespace detail

template <typename RowFn>
void for_each_row(const StridedLoop& loop, RowFn&& row) {
  const int nops = loop.num_operands;
  if (loop.ndim == 0) {
    char* ptrs[kMaxLoopOperands];
    int64_t zero[kMaxLoopOperands] = {};
    for (int k = 0; k < nops; ++k) ptrs[k] = loop.ops[k].data;
    row(ptrs, 1, zero);
    return;
  }
  const int64_t n = loop.numel();
  if (n == 0) return;
  if (loop.ndim == 1) {
    const int64_t chunks = std::max<int64_t>(1, n / detail::kLoopGrain);
    auto run_chunk = [&](int64_t c) {
      const int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
      char* ptrs[kMaxLoopOperands];
      int64_t strides[kMaxLoopOperands];
      for (int k = 0; k < nops; ++k) {
        strides[k] = loop.ops[k].strides[0];
        ptrs[k] = loop.ops[k].data + begin * strides[k];
      }
      row(ptrs, end - begin, strides);
    };
    if (chunks == 1) {
      run_chunk(0);
    } else {
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
      for (int64_t c = 0; c < chunks; ++c) run_chunk(c);
    }
    return;
  }
  if (const detail::LoopTiles t = detail::loop_tiles_for(loop); t.tile_dim >= 0) {
    detail::run_tiles(loop, t, row);
    return;
  }
  const int64_t inner = loop.sizes[loop.ndim - 1];
  const int64_t rows = n / inner;
  const int64_t rows_per_task = std::max<int64_t>(1, detail::kLoopGrain / std::max<int64_t>(inner, 1));
  const int64_t tasks = (rows + rows_per_task - 1) / rows_per_task;
  if (tasks <= 1) {
    detail::run_rows(loop, 0, rows, row);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (int64_t t = 0; t < tasks; ++t) {
    detail::run_rows(loop, t * rows_per_task, std::min(rows, (t + 1) * rows_per_task), row);
  }
}

}  // namespace fabric
