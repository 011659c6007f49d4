// torch.mean of a whole contiguous float32 row in one pass: the row sum of sum() (kernels/cpu/
// reduce_row_sum.h, torch's CPU order), without the reducer's split of rows longer than 128Ki
// values into chunks for the threads, then at::mean's float32 division.
#include "precision/torch_cpu_mean.h"

#include "kernels/cpu/reduce_row_sum.h"

namespace fabric::precision {

float torch_cpu_mean_float32(const float* x, int64_t n) {
  if (n <= 0) return 0.0f;
  return cpu::row_sum_f32(x, n) / static_cast<float>(n);
}

}  // namespace fabric::precision
