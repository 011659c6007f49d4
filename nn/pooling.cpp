// AvgPool2d, MaxPool1d, AvgPool1d and AdaptiveAvgPool1d: argument checks at construction, reprs as
// torch 1.13 prints them, forward by the functional pools.
#include "nn/pooling.h"

#include "nn/functional_pool1d.h"
#include "nn/return_indices.h"
#include "tensor/ops.h"

namespace fabric::nn {

namespace {

// torch prints what it was given; a square Int2 is printed as the one number that made it.
std::string int2_repr(const Int2& v) {
  return v.h == v.w ? detail::cat(v.h) : detail::cat("(", v.h, ", ", v.w, ")");
}

// The options a pool computes only at torch's default, named with the value given and the default.
void check_default(const char* layer, const char* option, bool is_default, const std::string& given,
                   const std::string& supported) {
  FABRIC_CHECK(is_default, ValueError, layer, ": ", option, "=", given, " is not supported (only ",
               option, "=", supported, ", torch's default)");
}

void check_window(const char* layer, int64_t kernel, int64_t stride, int64_t padding) {
  FABRIC_CHECK(kernel > 0 && stride > 0, ValueError, layer, ": kernel_size ", kernel,
               " and stride ", stride, " must be positive");
  FABRIC_CHECK(padding >= 0 && 2 * padding <= kernel, ValueError, layer, ": padding ", padding,
               " should be at most half of kernel_size ", kernel);
}

}  // namespace

AvgPool2d::AvgPool2d(const AvgPool2dOptions& o) : options_(o) {
  check_default("AvgPool2d", "ceil_mode", !o.ceil_mode, "True", "False");
  check_default("AvgPool2d", "count_include_pad", o.count_include_pad, "False", "True");
  check_default("AvgPool2d", "divisor_override", !o.divisor_override,
                detail::cat(o.divisor_override.value_or(0)), "None");
  const Int2 stride = o.stride.value_or(o.kernel_size);
  check_window("AvgPool2d", o.kernel_size.h, stride.h, o.padding.h);
  check_window("AvgPool2d", o.kernel_size.w, stride.w, o.padding.w);
}

Tensor AvgPool2d::forward(const Tensor& x) {
  return avg_pool2d(x, options_.kernel_size.vec(),
                    options_.stride.value_or(options_.kernel_size).vec(), options_.padding.vec());
}

std::string AvgPool2d::extra_repr() const {
  return detail::cat("kernel_size=", int2_repr(options_.kernel_size),
                     ", stride=", int2_repr(options_.stride.value_or(options_.kernel_size)),
                     ", padding=", int2_repr(options_.padding));
}

MaxPool1d::MaxPool1d(const MaxPool1dOptions& o) : options_(o) {
  check_default("MaxPool1d", "dilation", o.dilation == 1, detail::cat(o.dilation), "1");
  check_default("MaxPool1d", "ceil_mode", !o.ceil_mode, "True", "False");
  check_window("MaxPool1d", o.kernel_size, o.stride.value_or(o.kernel_size), o.padding);
}

Tensor MaxPool1d::forward(const Tensor& x) {
  check_values_only_forward("MaxPool1d", options_.return_indices);
  return max_pool1d(x, options_.kernel_size, options_.stride, options_.padding);
}

std::tuple<Tensor, Tensor> MaxPool1d::forward_with_indices(const Tensor& x) {
  return max_pool1d_with_indices(x, options_.kernel_size, options_.stride, options_.padding);
}

std::string MaxPool1d::extra_repr() const {
  return detail::cat("kernel_size=", options_.kernel_size,
                     ", stride=", options_.stride.value_or(options_.kernel_size),
                     ", padding=", options_.padding, ", dilation=", options_.dilation,
                     ", ceil_mode=False");
}

AvgPool1d::AvgPool1d(const AvgPool1dOptions& o) : options_(o) {
  check_default("AvgPool1d", "ceil_mode", !o.ceil_mode, "True", "False");
  check_default("AvgPool1d", "count_include_pad", o.count_include_pad, "False", "True");
  check_window("AvgPool1d", o.kernel_size, o.stride.value_or(o.kernel_size), o.padding);
}

Tensor AvgPool1d::forward(const Tensor& x) {
  return avg_pool1d(x, options_.kernel_size, options_.stride, options_.padding);
}

// torch's AvgPool1d stores its arguments as 1-tuples and prints them so: kernel_size=(3,).
std::string AvgPool1d::extra_repr() const {
  return detail::cat("kernel_size=(", options_.kernel_size, ",), stride=(",
                     options_.stride.value_or(options_.kernel_size), ",), padding=(",
                     options_.padding, ",)");
}

AdaptiveAvgPool1d::AdaptiveAvgPool1d(const AdaptiveAvgPool1dOptions& o) : options_(o) {
  FABRIC_CHECK(o.output_size >= 0, ValueError, "AdaptiveAvgPool1d: output_size must be >= 0, got ",
               o.output_size);
}

Tensor AdaptiveAvgPool1d::forward(const Tensor& x) {
  return adaptive_avg_pool1d(x, options_.output_size);
}

std::string AdaptiveAvgPool1d::extra_repr() const {
  return detail::cat("output_size=", options_.output_size);
}

}  // namespace fabric::nn
