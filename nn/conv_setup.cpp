// The shared construction steps of the convolution layers (nn/conv_setup.h).
#include "nn/conv_setup.h"

#include <cmath>

#include "nn/init.h"
#include "tensor/error.h"

namespace fabric::nn {

void reset_conv_parameters(const Tensor& weight, const Tensor& bias, Generator* gen) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", gen);
  if (bias.defined()) {
    const int64_t fan_in = init::calculate_fan_in_and_fan_out(weight).first;
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, -bound, bound, gen);
  }
}

void check_conv_channels(const char* layer, int64_t in, int64_t out, int64_t groups) {
  FABRIC_CHECK(in > 0 && out > 0, ValueError, layer,
               ": in_channels and out_channels must be positive, got ", in, " and ", out);
  FABRIC_CHECK(groups > 0 && in % groups == 0 && out % groups == 0, ValueError, layer,
               ": in_channels (", in, ") and out_channels (", out,
               ") must both be divisible by groups (", groups, ")");
}

std::string int1_str(int64_t v) { return fabric::detail::cat("(", v, ",)"); }

}  // namespace fabric::nn
