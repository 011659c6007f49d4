// Softmax, LogSoftmax, Softmin and Softmax2d modules over tensor/ops.h's softmax and log_softmax.
#include "nn/softmax_layers.h"

#include "tensor/ops.h"
#include "tensor/warning.h"

namespace fabric::nn {

namespace {

// torch's _get_softmax_dim: an unset dim is chosen from the input's rank, with a warning. x must
// be defined (checked here, in the layer's name).
int64_t softmax_dim(const char* layer, const std::optional<int64_t>& dim, const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, layer, ": got an undefined tensor");
  if (dim) return *dim;
  warn(detail::cat("Implicit dimension choice for ", layer,
                   " has been deprecated. Change the call to include dim=X as an argument."));
  return x.dim() == 0 || x.dim() == 1 || x.dim() == 3 ? 0 : 1;
}

std::string dim_repr(const std::optional<int64_t>& dim) {
  return dim ? detail::cat("dim=", *dim) : std::string("dim=None");
}

}  // namespace

Tensor Softmax::forward(const Tensor& x) {
  return softmax(x, softmax_dim("softmax", options_.dim, x));
}
std::string Softmax::extra_repr() const { return dim_repr(options_.dim); }

Tensor LogSoftmax::forward(const Tensor& x) {
  return log_softmax(x, softmax_dim("log_softmax", options_.dim, x));
}
std::string LogSoftmax::extra_repr() const { return dim_repr(options_.dim); }

Tensor Softmin::forward(const Tensor& x) {
  const int64_t dim = softmax_dim("softmin", options_.dim, x);  // checks x first
  return softmax(neg(x), dim);
}
std::string Softmin::extra_repr() const { return dim_repr(options_.dim); }

Tensor Softmax2d::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "Softmax2d: got an undefined tensor");
  FABRIC_CHECK(x.dim() == 3 || x.dim() == 4, ShapeError,
               "Softmax2d requires a 3D or 4D tensor as input, got a ", x.dim(),
               "D tensor of shape ", shape_str(x.sizes()));
  return softmax(x, -3);
}

}  // namespace fabric::nn
