// Element-wise reduce functions handed to Gloo's collectives (and to our ring reduce-scatter):
// c = a (op) b over n elements, per dtype; private to the Gloo process group.
#pragma once
#include <cstddef>

#include "distributed/process_group.h"
#include "tensor/dtype.h"

namespace fabric::distributed::gloo_detail {

// Gloo's AllreduceOptions::Func signature; c may alias a or b (element for element).
using ReduceFn = void (*)(void* c, const void* a, const void* b, size_t n);

// The function for `dtype` and `op` (avg reduces with sum; the caller divides by the world size
// with divide_in_place). DTypeError naming `what` (the collective) when the pair is unsupported:
// fp8, integer avg, bool other than max/min.
ReduceFn reduce_function(DType dtype, ReduceOp op, const char* what);

// data[i] /= divisor in place (floating dtypes; reduced floats go through float).
void divide_in_place(void* data, DType dtype, size_t n, int divisor);

}  // namespace fabric::distributed::gloo_detail
