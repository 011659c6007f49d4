// FractionalMaxPool2d/3d: torch's construction checks and messages, the samples buffer, forward
// by the functional. Sizes are checked by the functional at the call, as torch's.
#include "nn/fractional_max_pool.h"

#include "nn/py_repr.h"
#include "nn/return_indices.h"
#include "tensor/error.h"
#include "tensor/fractional_max_pool.h"

namespace fabric::nn {
namespace {

using detail::cat;

// The ratio as torch's message prints the argument: a number, or a tuple of them.
std::string ratio_repr(const std::vector<double>& r) {
  if (r.size() == 1) return py_float(r[0]);
  std::string s = "(";
  for (size_t i = 0; i < r.size(); ++i) s += cat(i ? ", " : "", py_float(r[i]));
  return s + ")";
}

}  // namespace

FractionalMaxPool::FractionalMaxPool(const char* layer, int64_t dims,
                                     std::vector<int64_t> kernel_size,
                                     std::optional<std::vector<int64_t>> output_size,
                                     std::optional<std::vector<double>> output_ratio,
                                     bool return_indices, const Tensor& samples)
    : layer_(layer),
      dims_(dims),
      kernel_size_(std::move(kernel_size)),
      output_size_(std::move(output_size)),
      output_ratio_(std::move(output_ratio)),
      return_indices_(return_indices) {
  FABRIC_CHECK(output_size_ || output_ratio_, ValueError, layer,
               " requires specifying either an output size, or a pooling ratio");
  FABRIC_CHECK(!(output_size_ && output_ratio_), ValueError, layer,
               ": only one of output_size and output_ratio may be specified");
  if (output_ratio_) {
    bool inside = !output_ratio_->empty();
    for (double r : *output_ratio_) inside = inside && 0 < r && r < 1;
    FABRIC_CHECK(inside, ValueError, layer, ": output_ratio must be between 0 and 1 (got ",
                 ratio_repr(*output_ratio_), ")");
  }
  // torch registers the buffer either way; a None buffer is in no state_dict.
  if (samples.defined()) random_samples = register_buffer("_random_samples", samples);
}

Tensor FractionalMaxPool::forward(const Tensor& x) {
  check_values_only_forward(layer_, return_indices_);
  return std::get<0>(forward_with_indices(x));
}

std::tuple<Tensor, Tensor> FractionalMaxPool::forward_with_indices(const Tensor& x) {
  return dims_ == 2 ? fractional_max_pool2d_with_indices(x, kernel_size_, output_size_,
                                                         output_ratio_, random_samples)
                    : fractional_max_pool3d_with_indices(x, kernel_size_, output_size_,
                                                         output_ratio_, random_samples);
}

}  // namespace fabric::nn
