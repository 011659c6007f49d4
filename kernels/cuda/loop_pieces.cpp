// See loop_pieces.h.
#include "kernels/cuda/loop_pieces.h"

#include "kernels/cuda/speed_switches.h"

namespace fabric::cuda {

bool fits_pieces(const StridedLoop& loop, DType dt) {
  if (!wide_paths_enabled() || loop.ndim != 1 || itemsize(dt) > kPieceBytes) return false;
  for (int k = 0; k < loop.num_operands; ++k) {
    const LoopOperand& op = loop.ops[k];
    if (op.dtype != dt || op.strides[0] != itemsize(dt) ||
        reinterpret_cast<uintptr_t>(op.data) % kPieceBytes != 0)
      return false;
  }
  return true;
}

}  // namespace fabric::cuda
