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

}  // namespace fabric::nn::init
