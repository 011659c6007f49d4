// See loop_pieces.h.
#include "kernels/cuda/loop_pieces.h"

#include "kernels/cuda/alignment.h"
#include "kernels/cuda/float_family.h"
#include "kernels/cuda/speed_switches.h"

namespace fabric::cuda {

bool fits_pieces(const StridedLoop& loop, DType dt) {
  if (!wide_paths_enabled() || loop.ndim != 1 || itemsize(dt) > kPieceBytes) return false;
  for (int k = 0; k < loop.num_operands; ++k) {
    const LoopOperand& op = loop.ops[k];
    if (op.dtype != dt || op.strides[0] != itemsize(dt) || !aligned_to(op.data, kPieceBytes))
      return false;
  }
  return true;
}

bool fits_mixed_pieces(const StridedLoop& loop) {
  if (!wide_paths_enabled() || loop.ndim != 1 || loop.num_operands != 3) return false;
  for (int k = 0; k < 3; ++k) {
    const LoopOperand& op = loop.ops[k];
    const DType dt = op.dtype;
    if (!is_f32_family(dt) || op.strides[0] != itemsize(dt) ||
        !aligned_to(op.data, kMixedPieceElems * itemsize(dt)))
      return false;
  }
  return true;
}

}  // namespace fabric::cuda
