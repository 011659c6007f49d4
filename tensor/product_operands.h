// The operand check that the GEMM-based products (matmul/mm/bmm/linear, dot, outer, tensordot,
// bilinear, ...) share: both defined, on one device, of one dtype (torch does not promote them).
#pragma once
#include "tensor/tensor.h"

namespace fabric {

// ValueError for an undefined operand, DeviceError for two devices, DTypeError for two dtypes
// (naming both dtypes and shapes).
void check_product_operands(const char* op, const Tensor& a, const Tensor& b);

}  // namespace fabric
