// MaxPool3d, AvgPool3d, AdaptiveAvgPool3d, AdaptiveMaxPool1d/2d/3d, LPPool1d/2d, Unfold and Fold:
// argument checks at construction, reprs as torch 1.13 prints them, forward by the ops.
#include "nn/pooling3d.h"

#include <algorithm>
#include <cmath>

#include "nn/py_repr.h"
#include "nn/return_indices.h"
#include "tensor/ops.h"

namespace fabric::nn {
namespace {

using detail::cat;

// torch prints a size as it was given: one number, or a tuple.
std::string sizes_repr(const std::vector<int64_t>& v) {
  if (v.size() == 1) return cat(v[0]);
  std::string s = "(";
  for (size_t i = 0; i < v.size(); ++i) s += cat(i ? ", " : "", v[i]);
  return s + ")";
}

// norm_type as torch's LPPool prints the usual integer argument (2, not 2.0).
std::string norm_repr(double p) {
  return p == std::floor(p) && std::abs(p) < 1e15 ? cat(static_cast<int64_t>(p)) : py_float(p);
}

// `v` has 1 or `dims` entries, each at least `min`.
void check_sizes(const char* layer, const char* name, const std::vector<int64_t>& v, size_t dims,
                 int64_t min) {
  FABRIC_CHECK((v.size() == 1 || v.size() == dims) &&
                   std::all_of(v.begin(), v.end(), [&](int64_t x) { return x >= min; }),
               ValueError, layer, ": ", name, " must be ",
               dims == 1 ? std::string("one size") : "1 or " + std::to_string(dims) + " sizes",
               " >= ", min, ", got ", shape_str(v));
}

// torch divides by norm_type (x^p averaged, then ^(1/p)): 0 is a ZeroDivisionError there, a
// NaN has no norm.
void check_norm_type(const char* layer, double p) {
  FABRIC_CHECK(p != 0.0 && !std::isnan(p), ValueError, layer,
               ": norm_type must be non-zero (the power p of ", "the p-norm pooled), got ", p);
}

std::vector<int64_t> expand(const std::vector<int64_t>& v, size_t dims) {
  return v.size() == 1 ? std::vector<int64_t>(dims, v[0]) : v;
}

void check_default(const char* layer, const char* option, bool is_default, const std::string& given,
                   const std::string& supported) {
  FABRIC_CHECK(is_default, ValueError, layer, ": ", option, "=", given, " is not supported (only ",
               option, "=", supported, ", torch's default)");
}

// kernel, stride and padding of a fixed-window pool over `dims` dims.
void check_window(const char* layer, const std::vector<int64_t>& kernel,
                  const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                  size_t dims) {
  check_sizes(layer, "kernel_size", kernel, dims, 1);
  check_sizes(layer, "stride", stride, dims, 1);
  check_sizes(layer, "padding", padding, dims, 0);
  const auto k = expand(kernel, dims), p = expand(padding, dims);
  for (size_t i = 0; i < dims; ++i)
    FABRIC_CHECK(2 * p[i] <= k[i], ValueError, layer, ": padding ", sizes_repr(padding),
                 " should be at most half of kernel_size ", sizes_repr(kernel));
}

}  // namespace

MaxPool3d::MaxPool3d(const MaxPool3dOptions& o) : options_(o) {
  check_default("MaxPool3d", "dilation", o.dilation == 1, cat(o.dilation), "1");
  check_default("MaxPool3d", "ceil_mode", !o.ceil_mode, "True", "False");
  check_window("MaxPool3d", o.kernel_size, o.stride.value_or(o.kernel_size), o.padding, 3);
}

Tensor MaxPool3d::forward(const Tensor& x) {
  check_values_only_forward("MaxPool3d", options_.return_indices);
  return max_pool3d(x, options_.kernel_size, options_.stride.value_or(options_.kernel_size),
                    options_.padding);
}

std::tuple<Tensor, Tensor> MaxPool3d::forward_with_indices(const Tensor& x) {
  return max_pool3d_with_indices(x, options_.kernel_size,
                                 options_.stride.value_or(options_.kernel_size), options_.padding);
}

std::string MaxPool3d::extra_repr() const {
  return cat("kernel_size=", sizes_repr(options_.kernel_size),
             ", stride=", sizes_repr(options_.stride.value_or(options_.kernel_size)),
             ", padding=", sizes_repr(options_.padding), ", dilation=", options_.dilation,
             ", ceil_mode=False");
}

AvgPool3d::AvgPool3d(const AvgPool3dOptions& o) : options_(o) {
  check_default("AvgPool3d", "ceil_mode", !o.ceil_mode, "True", "False");
  check_default("AvgPool3d", "count_include_pad", o.count_include_pad, "False", "True");
  check_default("AvgPool3d", "divisor_override", !o.divisor_override,
                cat(o.divisor_override.value_or(0)), "None");
  check_window("AvgPool3d", o.kernel_size, o.stride.value_or(o.kernel_size), o.padding, 3);
}

Tensor AvgPool3d::forward(const Tensor& x) {
  return avg_pool3d(x, options_.kernel_size, options_.stride.value_or(options_.kernel_size),
                    options_.padding);
}

std::string AvgPool3d::extra_repr() const {
  return cat("kernel_size=", sizes_repr(options_.kernel_size),
             ", stride=", sizes_repr(options_.stride.value_or(options_.kernel_size)),
             ", padding=", sizes_repr(options_.padding));
}

AdaptiveAvgPool3d::AdaptiveAvgPool3d(const AdaptiveAvgPool3dOptions& o) : options_(o) {
  check_sizes("AdaptiveAvgPool3d", "output_size", o.output_size, 3, 0);
}

Tensor AdaptiveAvgPool3d::forward(const Tensor& x) {
  return adaptive_avg_pool3d(x, options_.output_size);
}

std::string AdaptiveAvgPool3d::extra_repr() const {
  return "output_size=" + sizes_repr(options_.output_size);
}

AdaptiveMaxPool1d::AdaptiveMaxPool1d(const AdaptiveMaxPool1dOptions& o) : options_(o) {
  FABRIC_CHECK(o.output_size >= 0, ValueError, "AdaptiveMaxPool1d: output_size must be >= 0, got ",
               o.output_size);
}

Tensor AdaptiveMaxPool1d::forward(const Tensor& x) {
  check_values_only_forward("AdaptiveMaxPool1d", options_.return_indices);
  return std::get<0>(adaptive_max_pool1d(x, options_.output_size));
}

std::tuple<Tensor, Tensor> AdaptiveMaxPool1d::forward_with_indices(const Tensor& x) {
  return adaptive_max_pool1d(x, options_.output_size);
}

std::string AdaptiveMaxPool1d::extra_repr() const {
  return cat("output_size=", options_.output_size);
}

AdaptiveMaxPool2d::AdaptiveMaxPool2d(const AdaptiveMaxPool2dOptions& o) : options_(o) {
  check_sizes("AdaptiveMaxPool2d", "output_size", o.output_size, 2, 0);
}

Tensor AdaptiveMaxPool2d::forward(const Tensor& x) {
  check_values_only_forward("AdaptiveMaxPool2d", options_.return_indices);
  return std::get<0>(adaptive_max_pool2d(x, options_.output_size));
}

std::tuple<Tensor, Tensor> AdaptiveMaxPool2d::forward_with_indices(const Tensor& x) {
  return adaptive_max_pool2d(x, options_.output_size);
}

std::string AdaptiveMaxPool2d::extra_repr() const {
  return "output_size=" + sizes_repr(options_.output_size);
}

AdaptiveMaxPool3d::AdaptiveMaxPool3d(const AdaptiveMaxPool3dOptions& o) : options_(o) {
  check_sizes("AdaptiveMaxPool3d", "output_size", o.output_size, 3, 0);
}

Tensor AdaptiveMaxPool3d::forward(const Tensor& x) {
  check_values_only_forward("AdaptiveMaxPool3d", options_.return_indices);
  return std::get<0>(adaptive_max_pool3d(x, options_.output_size));
}

std::tuple<Tensor, Tensor> AdaptiveMaxPool3d::forward_with_indices(const Tensor& x) {
  return adaptive_max_pool3d(x, options_.output_size);
}

std::string AdaptiveMaxPool3d::extra_repr() const {
  return "output_size=" + sizes_repr(options_.output_size);
}

LPPool1d::LPPool1d(const LPPool1dOptions& o) : options_(o) {
  check_default("LPPool1d", "ceil_mode", !o.ceil_mode, "True", "False");
  check_norm_type("LPPool1d", o.norm_type);
  check_window("LPPool1d", {o.kernel_size}, {o.stride.value_or(o.kernel_size)}, {0}, 1);
}

Tensor LPPool1d::forward(const Tensor& x) {
  return lp_pool1d(x, options_.norm_type, options_.kernel_size, options_.stride);
}

std::string LPPool1d::extra_repr() const {
  return cat("norm_type=", norm_repr(options_.norm_type), ", kernel_size=", options_.kernel_size,
             ", stride=", options_.stride ? cat(*options_.stride) : std::string("None"),
             ", ceil_mode=False");
}

LPPool2d::LPPool2d(const LPPool2dOptions& o) : options_(o) {
  check_default("LPPool2d", "ceil_mode", !o.ceil_mode, "True", "False");
  check_norm_type("LPPool2d", o.norm_type);
  check_window("LPPool2d", o.kernel_size, o.stride.value_or(o.kernel_size), {0}, 2);
}

Tensor LPPool2d::forward(const Tensor& x) {
  return lp_pool2d(x, options_.norm_type, options_.kernel_size,
                   options_.stride.value_or(options_.kernel_size));
}

std::string LPPool2d::extra_repr() const {
  return cat("norm_type=", norm_repr(options_.norm_type),
             ", kernel_size=", sizes_repr(options_.kernel_size),
             ", stride=", options_.stride ? sizes_repr(*options_.stride) : std::string("None"),
             ", ceil_mode=False");
}

Unfold::Unfold(const UnfoldOptions& o) : options_(o) {
  check_sizes("Unfold", "kernel_size", o.kernel_size, 2, 1);
  check_sizes("Unfold", "dilation", o.dilation, 2, 1);
  check_sizes("Unfold", "padding", o.padding, 2, 0);
  check_sizes("Unfold", "stride", o.stride, 2, 1);
}

Tensor Unfold::forward(const Tensor& x) {
  return unfold(x, options_.kernel_size, options_.dilation, options_.padding, options_.stride);
}

std::string Unfold::extra_repr() const {
  return cat("kernel_size=", sizes_repr(options_.kernel_size),
             ", dilation=", sizes_repr(options_.dilation),
             ", padding=", sizes_repr(options_.padding), ", stride=", sizes_repr(options_.stride));
}

Fold::Fold(const FoldOptions& o) : options_(o) {
  check_sizes("Fold", "output_size", o.output_size, 2, 1);
  check_sizes("Fold", "kernel_size", o.kernel_size, 2, 1);
  check_sizes("Fold", "dilation", o.dilation, 2, 1);
  check_sizes("Fold", "padding", o.padding, 2, 0);
  check_sizes("Fold", "stride", o.stride, 2, 1);
}

Tensor Fold::forward(const Tensor& x) {
  return fold(x, options_.output_size, options_.kernel_size, options_.dilation, options_.padding,
              options_.stride);
}

std::string Fold::extra_repr() const {
  return cat("output_size=", sizes_repr(options_.output_size),
             ", kernel_size=", sizes_repr(options_.kernel_size),
             ", dilation=", sizes_repr(options_.dilation),
             ", padding=", sizes_repr(options_.padding), ", stride=", sizes_repr(options_.stride));
}

}  // namespace fabric::nn
