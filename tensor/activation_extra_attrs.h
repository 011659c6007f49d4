// The attribute structs of the activations of tensor/ops_activation_extra.cpp that op_attrs.h
// has no struct for (hardshrink/softshrink use ScalarAttrs, glu DimAttrs).
#pragma once
#include "tensor/scalar.h"

namespace fabric {

struct ThresholdAttrs {
  Scalar threshold, value;
};

}  // namespace fabric
