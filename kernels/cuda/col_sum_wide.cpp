// See col_sum_wide.h.
#include "kernels/cuda/col_sum_wide.h"

#include <algorithm>

#include "kernels/cuda/alignment.h"
#include "kernels/cuda/speed_switches.h"

namespace fabric::cuda {

bool col_sum_wide_fits(ReduceOp op, const ReduceGeometry& g, const ReduceParams& p,
                       ColSumWide* shape) {
  if (!wide_paths_enabled() || op != ReduceOp::sum || p.finish != ReduceFinish::none ||
      p.divisor != 1.0 || p.center != nullptr)
    return false;
  const DType dt = g.in_dtype;
  if (dt != DType::float32 && dt != DType::bfloat16 && dt != DType::float16) return false;
  if (g.nkeep != 1 || g.keep_in[0] != 1 || g.keep_out[0] != 1 || g.nred < 1) return false;
  const int64_t cols = g.keep_sizes[0];
  if (cols % kColSumPiece != 0 || !aligned16(g.in)) return false;
  // The reduced dims, outermost first, must step over whole rows of cols elements, contiguously.
  int64_t stride = cols;
  for (int d = g.nred - 1; d >= 0; --d) {
    if (g.red_sizes[d] != 1 && g.red_in[d] != stride) return false;
    stride *= g.red_sizes[d];
  }
  shape->rows = g.num_red();
  shape->cols = cols;
  return shape->rows > 0;
}

ColSumWide plan_col_sum_wide(int64_t rows, int64_t cols, int sms) {
  ColSumWide s;
  s.rows = rows;
  s.cols = cols;
  const int64_t target = 4 * static_cast<int64_t>(std::max(sms, 1));
  const int64_t col_blocks = s.col_blocks();
  s.splits = 1;
  if (col_blocks < target) {
    s.splits = std::clamp<int64_t>(
        std::min((target + col_blocks - 1) / col_blocks, rows / (kColSumBlockY * 32)), 1, 1024);
  }
  s.rows_per_split = (rows + s.splits - 1) / s.splits;
  s.splits = (rows + s.rows_per_split - 1) / s.rows_per_split;
  return s;
}

}  // namespace fabric::cuda
