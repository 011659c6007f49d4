// Bilinear (nn/bilinear.h).
#include "nn/bilinear.h"

#include <cmath>

#include "nn/init.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {

Bilinear::Bilinear(const BilinearOptions& options) : options_(options) {
  FABRIC_CHECK(options.in1_features >= 0 && options.in2_features >= 0 && options.out_features >= 0,
               ValueError,
               "Bilinear: features must be >= 0, got in1_features=", options.in1_features,
               ", in2_features=", options.in2_features, ", out_features=", options.out_features);
  weight = register_parameter(
      "weight", empty({options.out_features, options.in1_features, options.in2_features}));
  if (options.bias) bias = register_parameter("bias", empty({options.out_features}));
  reset_parameters();
}

void Bilinear::reset_parameters(Generator* gen) {
  // torch bounds both by in1_features alone (weight.size(1)), not the weight's fan-in.
  const int64_t in1 = options_.in1_features;
  const double bound = in1 > 0 ? 1.0 / std::sqrt(static_cast<double>(in1)) : 0.0;
  init::uniform_(weight, -bound, bound, gen);
  if (bias.defined()) init::uniform_(bias, -bound, bound, gen);
}

Tensor Bilinear::forward(const Tensor& x1, const Tensor& x2) {
  return bilinear(x1, x2, weight, bias);
}

std::string Bilinear::extra_repr() const {
  return detail::cat(
      "in1_features=", options_.in1_features, ", in2_features=", options_.in2_features,
      ", out_features=", options_.out_features, ", bias=", bias.defined() ? "True" : "False");
}

}  // namespace fabric::nn
