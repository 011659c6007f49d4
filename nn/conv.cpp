// Conv2d, MaxPool2d and AdaptiveAvgPool2d.
#include "nn/conv.h"

#include <algorithm>
#include <cmath>

#include "nn/init.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {

namespace {
std::string int2_str(const Int2& v) { return detail::cat("(", v.h, ", ", v.w, ")"); }
}  // namespace

Conv2d::Conv2d(const Conv2dOptions& o) : options_(o) {
  FABRIC_CHECK(o.in_channels > 0 && o.out_channels > 0, ValueError,
               "Conv2d: in_channels and out_channels must be positive, got ", o.in_channels,
               " and ", o.out_channels);
  FABRIC_CHECK(o.groups > 0 && o.in_channels % o.groups == 0 && o.out_channels % o.groups == 0,
               ValueError, "Conv2d: in_channels (", o.in_channels, ") and out_channels (",
               o.out_channels, ") must both be divisible by groups (", o.groups, ")");
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

void Conv2d::reset_parameters(Generator* gen) {
  init::kaiming_uniform_(weight, std::sqrt(5.0), init::FanMode::fan_in, "leaky_relu", gen);
  if (bias.defined()) {
    const int64_t fan_in = init::calculate_fan_in_and_fan_out(weight).first;
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    init::uniform_(bias, -bound, bound, gen);
  }
}

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
  if (!bias.defined()) s += ", bias=false";
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
  return max_pool2d(x, options_.kernel_size.vec(),
                    options_.stride.value_or(options_.kernel_size).vec(), options_.padding.vec());
}

std::string MaxPool2d::extra_repr() const {
  return detail::cat("kernel_size=", int2_str(options_.kernel_size),
                     ", stride=", int2_str(options_.stride.value_or(options_.kernel_size)),
                     ", padding=", int2_str(options_.padding));
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
