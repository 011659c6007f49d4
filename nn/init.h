// Parameter initialisation as torch.nn.init does it: the same formulas for gains, fans and bounds,
// drawing from a fabric Generator (the default generator when none is given). Every function
// fills its tensor in place without recording for autograd and returns it, unless an
// EmptyInitGuard is active on the calling thread (then it returns the tensor untouched).
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

// Lightning's _EmptyInit (Fabric::init_module(empty_init = true)), for models whose weights are
// loaded from a checkpoint right after they are built: while a guard is alive on this thread,
// every fill function below (uniform_ ... sparse_) returns its tensor at once, writing nothing and
// drawing nothing from any generator. Parameters built in the scope keep whatever their
// allocation held: unspecified values (the CPU allocator hands back freed blocks as they are), to
// be overwritten by load_state_dict. What a module writes without nn::init, as torch's modules do
// without torch.nn.init, is still written: BatchNorm's running_mean/running_var/
// num_batches_tracked, spectral_norm's u and v. Guards nest; one made with enabled = false
// changes nothing (an enclosing guard still applies, as a disabled _EmptyInit inside an enabled
// one). Thread-local: other threads initialise normally. Destroy a guard on the thread that made
// it.
class EmptyInitGuard {
 public:
  explicit EmptyInitGuard(bool enabled = true);
  ~EmptyInitGuard();
  EmptyInitGuard(const EmptyInitGuard&) = delete;
  EmptyInitGuard& operator=(const EmptyInitGuard&) = delete;

 private:
  bool enabled_;
};
// Whether an EmptyInitGuard is active on this thread (the fill functions are then no-ops).
bool empty_init_enabled();

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
