// torch.nn.utils.parameters_to_vector / vector_to_parameters: a model's parameters as one flat
// vector and back (what second-order and evolutionary methods, and weight averaging by hand, use).
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace fabric::optim {

// The parameters flattened and concatenated in order, as one 1-D tensor. Differentiable, as
// torch's (cat of views): a loss of the vector backpropagates into the parameters. DeviceError
// when the parameters live on different devices (torch's TypeError), ValueError for an empty list
// (torch's cat error) or an undefined parameter.
Tensor parameters_to_vector(const std::vector<Tensor>& parameters);

// torch's `param.data = vec[offset:offset + numel].view_as(param)` for each parameter in order:
// afterwards every parameter is a view of vec's storage (its handle, identity and requires_grad
// kept; its dtype becomes vec's). Values past the parameters' total are ignored, as in torch.
// ValueError when vec is undefined, not 1-D or shorter than the parameters' total; DeviceError
// when the parameters live on different devices.
void vector_to_parameters(const Tensor& vec, const std::vector<Tensor>& parameters);

}  // namespace fabric::optim
