// The autocast check of a PROMOTE op that takes a list of tensors (cat, stack): their result
// dtype is ordinary type promotion, which equals PROMOTE's casts wherever torch accepts the
// operands; torch's prioritize refuses a 16-bit dtype other than the autocast one.
#pragma once
#include <vector>

#include "tensor/op_record.h"
#include "tensor/tensor.h"

namespace fabric {

// Raises DTypeError, as torch's at::autocast::prioritize, when autocast is on for the inputs'
// device, `op` is PROMOTE there and a floating input (float64 aside) is neither float32 nor the
// autocast dtype (a float16 tensor under bfloat16 autocast).
void check_autocast_promote(OpId op, const std::vector<Tensor>& inputs);

}  // namespace fabric
