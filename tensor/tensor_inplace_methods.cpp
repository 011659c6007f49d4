// Tensor's in-place methods (t.mul_(3), as in PyTorch): each forwards to the free function of
// tensor/ops.h or tensor/factory.h, which holds the op and its autograd rules.
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace fabric {

Tensor& Tensor::add_(const Tensor& other, const Scalar& alpha) { return fabric::add_(*this, other, alpha); }
Tensor& Tensor::add_(const Scalar& other) { return fabric::add_(*this, other); }
Tensor& Tensor::sub_(const Tensor& other, const Scalar& alpha) { return fabric::sub_(*this, other, alpha); }
Tensor& Tensor::sub_(const Scalar& other) { return fabric::sub_(*this, other); }
Tensor& Tensor::mul_(const Tensor& other) { return fabric::mul_(*this, other); }
Tensor& Tensor::mul_(const Scalar& other) { return fabric::mul_(*this, other); }
Tensor& Tensor::div_(const Tensor& other) { return fabric::div_(*this, other); }
Tensor& Tensor::div_(const Scalar& other) { return fabric::div_(*this, other); }
Tensor& Tensor::uniform_(double low, double high, Generator* gen) { return fabric::uniform_(*this, low, high, gen); }
Tensor& Tensor::normal_(double mean, double std, Generator* gen) { return fabric::normal_(*this, mean, std, gen); }

}  // namespace fabric
