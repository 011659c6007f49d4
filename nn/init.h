// Parameter initialisation as torch.nn.init does it: the same formulas for gains, fans and bounds,
// drawing from a fabric Generator (the default generator when none is given). Every function
// fills its tensor in place without recording for autograd and returns it.
#pragma once
#include <optional>
#include <string_view>
#include <utility>

#include "tensor/tensor.h"

namespace fabric {
class Generator;
}

namespace fabric::nn::init {

enum class FanMode { fan_in, fan_out };

// torch.nn.init.calculate_gain: linear/conv*/sigmoid 1, tanh 5/3, relu sqrt(2),
// leaky_relu sqrt(2/(1+a^2)) (a = 0.01 when param is unset), selu 3/4.
double calculate_gain(std::string_view nonlinearity, std::optional<double> param = std::nullopt);

// (fan_in, fan_out) of a tensor with at least 2 dims: dim 1 / dim 0 times the receptive field
// (the product of dims 2..). ValueError for fewer than 2 dims, as torch.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t);

Tensor uniform_(const Tensor& t, double a = 0.0, double b = 1.0, Generator* gen = nullptr);
Tensor normal_(const Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
Tensor constant_(const Tensor& t, double value);
Tensor zeros_(const Tensor& t);
Tensor ones_(const Tensor& t);
// U(-bound, bound), bound = gain * sqrt(3 / fan); gain = calculate_gain(nonlinearity, a).
Tensor kaiming_uniform_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                        std::string_view nonlinearity = "leaky_relu", Generator* gen = nullptr);
// N(0, std^2), std = gain / sqrt(fan).
Tensor kaiming_normal_(const Tensor& t, double a = 0.0, FanMode mode = FanMode::fan_in,
                       std::string_view nonlinearity = "leaky_relu", Generator* gen = nullptr);
// U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)).
Tensor xavier_uniform_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
Tensor xavier_normal_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// N(mean, std^2) restricted to [a, b] by inverse-CDF sampling, as torch.nn.init.trunc_normal_.
Tensor trunc_normal_(const Tensor& t, double mean = 0.0, double std = 1.0, double a = -2.0,
                     double b = 2.0, Generator* gen = nullptr);
// A (semi-)orthogonal matrix times gain, as torch: a standard normal draw of the (rows, cols)
// flattening (rows = dim 0), QR-decomposed (transposed when rows < cols) with q's columns
// sign-corrected by r's diagonal. Not torch's values for a seed (fabric draws from Philox).
// ValueError for fewer than 2 dims.
Tensor orthogonal_(const Tensor& t, double gain = 1.0, Generator* gen = nullptr);
// The identity (ones on the main diagonal of a 2-D tensor, rectangular allowed).
Tensor eye_(const Tensor& t);
// The identity convolution of a 3/4/5-D weight: per group, output channel d's centre tap reads
// input channel d. ValueError unless dim 0 divides by groups.
Tensor dirac_(const Tensor& t, int64_t groups = 1);
// N(0, std^2) with ceil(sparsity * rows) randomly chosen rows of each column set to zero (2-D).
Tensor sparse_(const Tensor& t, double sparsity, double std = 0.01, Generator* gen = nullptr);

}  // namespace fabric::nn::init
