// Conv2d, Conv1d, ConvTranspose2d, MaxPool2d and AdaptiveAvgPool2d.
#include "nn/conv.h"

#include <algorithm>

#include "nn/conv_setup.h"
#include "nn/return_indices.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {

namespace {
std::string int2_str(const Int2& v) { return detail::cat("(", v.h, ", ", v.w, ")"); }
}  // namespace

Conv2d::Conv2d(const Conv2dOptions& o) : options_(o) {
  check_conv_channels("Conv2d", o.in_channels, o.out_channels, o.groups);
  FABRIC_CHECK(o.kernel_size.h > 0 && o.kernel_size.w > 0, ValueError,
               "Conv2d: kernel_size must be positive, got ", int2_str(o.kernel_size));
  FABRIC_CHECK(o.stride.h > 0 && o.stride.w > 0 && o.dilation.h > 0 && o.dilation.w > 0 &&
                   o.padding.h >= 0 && o.padding.w >= 0,
               ValueError, "Conv2d: stride ", int2_str(o.stride), " and dilation ",
               int2_str(o.dilation), " must be positive and padding ", int2_str(o.padding),
               " non-negative");
  weight = register_parameter("weight", empty({o.out_channels, o.in_channels / o.groups,
                                               o.kernel_size.h, o.kernel_size.w}));
  if (o.bias) bias = register_parameter("bias", empty({o.out_channels}));
  reset_parameters();
}

void Conv2d::reset_parameters(Generator* gen) { reset_conv_parameters(weight, bias, gen); }

Tensor Conv2d::forward(const Tensor& x) {
  return conv2d(x, weight, bias, options_.stride.vec(), options_.padding.vec(),
                options_.dilation.vec(), options_.groups);
}

std::string Conv2d::extra_repr() const {
  std::string s = detail::cat(options_.in_channels, ", ", options_.out_channels,
                              ", kernel_size=", int2_str(options_.kernel_size),
                              ", stride=", int2_str(options_.stride));
  if (options_.padding != Int2(0)) s += ", padding=" + int2_str(options_.padding);
  if (options_.dilation != Int2(1)) s += ", dilation=" + int2_str(options_.dilation);
  if (options_.groups != 1) s += detail::cat(", groups=", options_.groups);
  if (!bias.defined()) s += ", bias=False";
  return s;
}

Conv1d::Conv1d(const Conv1dOptions& o) : options_(o) {
  check_conv_channels("Conv1d", o.in_channels, o.out_channels, o.groups);
  FABRIC_CHECK(o.kernel_size > 0 && o.stride > 0 && o.dilation > 0 && o.padding >= 0, ValueError,
               "Conv1d: kernel_size (", o.kernel_size, "), stride (", o.stride, ") and dilation (",
               o.dilation, ") must be positive and padding (", o.padding, ") non-negative");
  weight = register_parameter("weight",
                              empty({o.out_channels, o.in_channels / o.groups, o.kernel_size}));
  if (o.bias) bias = register_parameter("bias", empty({o.out_channels}));
  reset_parameters();
}

void Conv1d::reset_parameters(Generator* gen) { reset_conv_parameters(weight, bias, gen); }

Tensor Conv1d::forward(const Tensor& x) {
  return conv1d(x, weight, bias, options_.stride, options_.padding, options_.dilation,
                options_.groups);
}

std::string Conv1d::extra_repr() const {
  std::string s = detail::cat(options_.in_channels, ", ", options_.out_channels,
                              ", kernel_size=", int1_str(options_.kernel_size),
                              ", stride=", int1_str(options_.stride));
  if (options_.padding != 0) s += ", padding=" + int1_str(options_.padding);
  if (options_.dilation != 1) s += ", dilation=" + int1_str(options_.dilation);
  if (options_.groups != 1) s += detail::cat(", groups=", options_.groups);
  if (!bias.defined()) s += ", bias=False";
  return s;
}

ConvTranspose2d::ConvTranspose2d(const ConvTranspose2dOptions& o) : options_(o) {
  check_conv_channels("ConvTranspose2d", o.in_channels, o.out_channels, o.groups);
  FABRIC_CHECK(o.kernel_size.h > 0 && o.kernel_size.w > 0, ValueError,
               "ConvTranspose2d: kernel_size must be positive, got ", int2_str(o.kernel_size));
  FABRIC_CHECK(o.stride.h > 0 && o.stride.w > 0 && o.dilation.h > 0 && o.dilation.w > 0 &&
                   o.padding.h >= 0 && o.padding.w >= 0,
               ValueError, "ConvTranspose2d: stride ", int2_str(o.stride), " and dilation ",
               int2_str(o.dilation), " must be positive and padding ", int2_str(o.padding),
               " non-negative");
  // torch only finds this in forward; a layer that can never run is refused when it is made.
  auto fits = [](int64_t op, int64_t s, int64_t d) { return op >= 0 && (op < s || op < d); };
  FABRIC_CHECK(fits(o.output_padding.h, o.stride.h, o.dilation.h) &&
                   fits(o.output_padding.w, o.stride.w, o.dilation.w),
               ValueError, "ConvTranspose2d: output_padding ", int2_str(o.output_padding),
               " must be smaller than either stride ", int2_str(o.stride), " or dilation ",
               int2_str(o.dilation), " on each side");
  weight = register_parameter("weight", empty({o.in_channels, o.out_channels / o.groups,
                                               o.kernel_size.h, o.kernel_size.w}));
  if (o.bias) bias = register_parameter("bias", empty({o.out_channels}));
  reset_parameters();
}

void ConvTranspose2d::reset_parameters(Generator* gen) { reset_conv_parameters(weight, bias, gen); }

Tensor ConvTranspose2d::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, options_.stride.vec(), options_.padding.vec(),
                          options_.output_padding.vec(), options_.groups, options_.dilation.vec());
}

// torch's order: padding, dilation, output_padding, groups, bias.
std::string ConvTranspose2d::extra_repr() const {
  const auto& o = options_;
  std::string s =
      detail::cat(o.in_channels, ", ", o.out_channels, ", kernel_size=", int2_str(o.kernel_size),
                  ", stride=", int2_str(o.stride));
  if (o.padding != Int2(0)) s += ", padding=" + int2_str(o.padding);
  if (o.dilation != Int2(1)) s += ", dilation=" + int2_str(o.dilation);
  if (o.output_padding != Int2(0)) s += ", output_padding=" + int2_str(o.output_padding);
  if (o.groups != 1) s += detail::cat(", groups=", o.groups);
  if (!bias.defined()) s += ", bias=False";
  return s;
}

MaxPool2d::MaxPool2d(const MaxPool2dOptions& o) : options_(o) {
  const Int2 stride = o.stride.value_or(o.kernel_size);
  FABRIC_CHECK(o.kernel_size.h > 0 && o.kernel_size.w > 0 && stride.h > 0 && stride.w > 0,
               ValueError, "MaxPool2d: kernel_size ", int2_str(o.kernel_size), " and stride ",
               int2_str(stride), " must be positive");
  FABRIC_CHECK(o.padding.h >= 0 && o.padding.w >= 0 && 2 * o.padding.h <= o.kernel_size.h &&
                   2 * o.padding.w <= o.kernel_size.w,
               ValueError, "MaxPool2d: padding ", int2_str(o.padding),
               " should be at most half of kernel_size ", int2_str(o.kernel_size));
}

Tensor MaxPool2d::forward(const Tensor& x) {
  check_values_only_forward("MaxPool2d", options_.return_indices);
  return max_pool2d(x, options_.kernel_size.vec(),
                    options_.stride.value_or(options_.kernel_size).vec(), options_.padding.vec());
}

std::tuple<Tensor, Tensor> MaxPool2d::forward_with_indices(const Tensor& x) {
  return max_pool2d_with_indices(x, options_.kernel_size.vec(),
                                 options_.stride.value_or(options_.kernel_size).vec(),
                                 options_.padding.vec());
}

// torch's MaxPool2d prints its arguments as given (MaxPool2d(2): kernel_size=2; (2, 3) as a
// tuple) and always dilation and ceil_mode. Int2 keeps no trace of how it was given: a square
// pair prints as the int that makes it, as torch's usual MaxPool2d(2) does. Dilation and
// ceil_mode are torch's defaults, the only values this layer computes.
std::string MaxPool2d::extra_repr() const {
  auto given = [](const Int2& v) { return v.h == v.w ? detail::cat(v.h) : int2_str(v); };
  return detail::cat("kernel_size=", given(options_.kernel_size),
                     ", stride=", given(options_.stride.value_or(options_.kernel_size)),
                     ", padding=", given(options_.padding), ", dilation=1, ceil_mode=False");
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(const AdaptiveAvgPool2dOptions& o) : options_(o) {
  const auto& s = o.output_size;
  FABRIC_CHECK((s.size() == 1 || s.size() == 2) &&
                   std::all_of(s.begin(), s.end(), [](int64_t v) { return v >= 0; }),
               ValueError, "AdaptiveAvgPool2d: output_size must be 1 or 2 sizes >= 0, got ",
               shape_str(s));
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  return adaptive_avg_pool2d(x, options_.output_size);
}

std::string AdaptiveAvgPool2d::extra_repr() const {
  const auto& s = options_.output_size;
  return s.size() == 1 ? detail::cat("output_size=", s[0])
                       : "output_size=" + int2_str({s[0], s[1]});
}

}  // namespace fabric::nn
