// PyTorch's type promotion: the result dtype of an op from its tensor operands and scalars.
// Categories bool < integer < floating; a dimensioned tensor beats a 0-dim tensor, which beats a
// Python-style scalar, of the same category; a higher category always wins.
#pragma once
#include <initializer_list>

#include "tensor/dtype.h"
#include "tensor/scalar.h"
#include "tensor/tensor.h"

namespace fabric {

// Promotes two dtypes as torch.promote_types does. fp8 mixed with anything else throws DTypeError.
DType promote_types(DType a, DType b);

// torch.result_type over tensors (0-dim ones ranked below dimensioned) and scalars.
DType result_type(std::initializer_list<const Tensor*> tensors,
                  std::initializer_list<const Scalar*> scalars = {});

// The dtype a unary float op (exp, sigmoid, ...) returns for an input dtype: floats keep theirs,
// integers and bool go to the default float dtype.
DType float_result_dtype(DType t);

// The largest finite value of a floating dtype (torch.finfo(dtype).max); 0 for the others.
double max_finite(DType t);

// PyTorch's checked conversion of a scalar argument into the dtype an op writes it in (fill_ and
// so full, where, clamp): ValueError when the value lies outside the dtype's range (1000 for
// uint8, 1e39 for float32, NaN or infinity for an integer dtype). As c10's `overflows`: an
// unsigned dtype also takes negative integers down to -max (they wrap, -1 is 255), floats are
// compared in double (1.5 fits uint8 and truncates), infinities and NaN pass into the float
// dtypes that hold them, and nothing overflows into bool.
void check_scalar_fits(const char* op, const Scalar& value, DType dtype);

}  // namespace fabric
