// Conv3d, ConvTranspose1d and ConvTranspose3d.
#include "nn/conv3d.h"

#include "nn/conv_setup.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {

namespace {
std::string int3_str(const Int3& v) { return detail::cat("(", v.d, ", ", v.h, ", ", v.w, ")"); }

void check_geometry(const char* layer, const Int3& k, const Int3& s, const Int3& p,
                    const Int3& dil) {
  FABRIC_CHECK(k.d > 0 && k.h > 0 && k.w > 0, ValueError, layer,
               ": kernel_size must be positive, got ", int3_str(k));
  FABRIC_CHECK(s.d > 0 && s.h > 0 && s.w > 0 && dil.d > 0 && dil.h > 0 && dil.w > 0 && p.d >= 0 &&
                   p.h >= 0 && p.w >= 0,
               ValueError, layer, ": stride ", int3_str(s), " and dilation ", int3_str(dil),
               " must be positive and padding ", int3_str(p), " non-negative");
}

// torch finds this only in forward; a layer that can never run is refused when it is made.
bool output_padding_fits(int64_t op, int64_t s, int64_t d) { return op >= 0 && (op < s || op < d); }

// torch's _ConvNd.extra_repr: padding, dilation, output_padding, groups and bias only when not
// their defaults.
std::string conv_repr(int64_t in, int64_t out, const std::string& k, const std::string& s,
                      const std::string& p, bool p_default, const std::string& d, bool d_default,
                      const std::string& op, bool op_default, int64_t groups, bool has_bias) {
  std::string r = detail::cat(in, ", ", out, ", kernel_size=", k, ", stride=", s);
  if (!p_default) r += ", padding=" + p;
  if (!d_default) r += ", dilation=" + d;
  if (!op_default) r += ", output_padding=" + op;
  if (groups != 1) r += detail::cat(", groups=", groups);
  if (!has_bias) r += ", bias=False";
  return r;
}
}  // namespace

Conv3d::Conv3d(const Conv3dOptions& o) : options_(o) {
  check_conv_channels("Conv3d", o.in_channels, o.out_channels, o.groups);
  check_geometry("Conv3d", o.kernel_size, o.stride, o.padding, o.dilation);
  weight = register_parameter("weight", empty({o.out_channels, o.in_channels / o.groups,
                                               o.kernel_size.d, o.kernel_size.h, o.kernel_size.w}));
  if (o.bias) bias = register_parameter("bias", empty({o.out_channels}));
  reset_parameters();
}

void Conv3d::reset_parameters(Generator* gen) { reset_conv_parameters(weight, bias, gen); }

Tensor Conv3d::forward(const Tensor& x) {
  return conv3d(x, weight, bias, options_.stride.vec(), options_.padding.vec(),
                options_.dilation.vec(), options_.groups);
}

std::string Conv3d::extra_repr() const {
  const auto& o = options_;
  return conv_repr(o.in_channels, o.out_channels, int3_str(o.kernel_size), int3_str(o.stride),
                   int3_str(o.padding), o.padding == Int3(0), int3_str(o.dilation),
                   o.dilation == Int3(1), "", true, o.groups, bias.defined());
}

ConvTranspose1d::ConvTranspose1d(const ConvTranspose1dOptions& o) : options_(o) {
  check_conv_channels("ConvTranspose1d", o.in_channels, o.out_channels, o.groups);
  FABRIC_CHECK(o.kernel_size > 0 && o.stride > 0 && o.dilation > 0 && o.padding >= 0, ValueError,
               "ConvTranspose1d: kernel_size (", o.kernel_size, "), stride (", o.stride,
               ") and dilation (", o.dilation, ") must be positive and padding (", o.padding,
               ") non-negative");
  FABRIC_CHECK(output_padding_fits(o.output_padding, o.stride, o.dilation), ValueError,
               "ConvTranspose1d: output_padding (", o.output_padding,
               ") must be smaller than either stride (", o.stride, ") or dilation (", o.dilation,
               ")");
  weight = register_parameter("weight",
                              empty({o.in_channels, o.out_channels / o.groups, o.kernel_size}));
  if (o.bias) bias = register_parameter("bias", empty({o.out_channels}));
  reset_parameters();
}

void ConvTranspose1d::reset_parameters(Generator* gen) { reset_conv_parameters(weight, bias, gen); }

Tensor ConvTranspose1d::forward(const Tensor& x) {
  const auto& o = options_;
  return conv_transpose1d(x, weight, bias, o.stride, o.padding, o.output_padding, o.groups,
                          o.dilation);
}

std::string ConvTranspose1d::extra_repr() const {
  const auto& o = options_;
  return conv_repr(o.in_channels, o.out_channels, int1_str(o.kernel_size), int1_str(o.stride),
                   int1_str(o.padding), o.padding == 0, int1_str(o.dilation), o.dilation == 1,
                   int1_str(o.output_padding), o.output_padding == 0, o.groups, bias.defined());
}

ConvTranspose3d::ConvTranspose3d(const ConvTranspose3dOptions& o) : options_(o) {
  check_conv_channels("ConvTranspose3d", o.in_channels, o.out_channels, o.groups);
  check_geometry("ConvTranspose3d", o.kernel_size, o.stride, o.padding, o.dilation);
  FABRIC_CHECK(output_padding_fits(o.output_padding.d, o.stride.d, o.dilation.d) &&
                   output_padding_fits(o.output_padding.h, o.stride.h, o.dilation.h) &&
                   output_padding_fits(o.output_padding.w, o.stride.w, o.dilation.w),
               ValueError, "ConvTranspose3d: output_padding ", int3_str(o.output_padding),
               " must be smaller than either stride ", int3_str(o.stride), " or dilation ",
               int3_str(o.dilation), " on each side");
  weight = register_parameter("weight", empty({o.in_channels, o.out_channels / o.groups,
                                               o.kernel_size.d, o.kernel_size.h, o.kernel_size.w}));
  if (o.bias) bias = register_parameter("bias", empty({o.out_channels}));
  reset_parameters();
}

void ConvTranspose3d::reset_parameters(Generator* gen) { reset_conv_parameters(weight, bias, gen); }

Tensor ConvTranspose3d::forward(const Tensor& x) {
  const auto& o = options_;
  return conv_transpose3d(x, weight, bias, o.stride.vec(), o.padding.vec(), o.output_padding.vec(),
                          o.groups, o.dilation.vec());
}

std::string ConvTranspose3d::extra_repr() const {
  const auto& o = options_;
  return conv_repr(o.in_channels, o.out_channels, int3_str(o.kernel_size), int3_str(o.stride),
                   int3_str(o.padding), o.padding == Int3(0), int3_str(o.dilation),
                   o.dilation == Int3(1), int3_str(o.output_padding), o.output_padding == Int3(0),
                   o.groups, bias.defined());
}

}  // namespace fabric::nn
