// Harness cases for conv3d, conv_transpose3d and conv_transpose1d, each against a naive float64
// reference written here (a direct gather for the convolution, the definition's scatter for the
// transposed ones), with finite-difference gradients of input, weight and bias: batched and
// unbatched, stride, padding, dilation, groups and output_padding.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

struct Args3 {
  std::vector<int64_t> stride{1, 1, 1}, padding{0, 0, 0}, dilation{1, 1, 1};
  int64_t groups = 1;
  std::vector<int64_t> output_padding{0, 0, 0};  // transposed only
};

// x as (N, C, D, H, W): unbatched (C, D, H, W) gets N = 1.
RefTensor batched(const RefTensor& x) {
  RefTensor b = x;
  if (b.shape.size() == 4) b.shape.insert(b.shape.begin(), 1);
  return b;
}

RefTensor unbatched_like(RefTensor out, const RefTensor& x) {
  if (x.shape.size() == 4) out.shape.erase(out.shape.begin());
  return out;
}

// Direct nested-loop 3-D convolution; w (OC, C/groups, kD, kH, kW).
RefTensor ref_conv3d(const RefTensor& x_in, const RefTensor& w, const RefTensor* bias,
                     const Args3& a) {
  const RefTensor x = batched(x_in);
  const int64_t N = x.shape[0], OC = w.shape[0], Cg = w.shape[1], OCg = OC / a.groups;
  int64_t in[3], k[3], out[3];
  for (int i = 0; i < 3; ++i) {
    in[i] = x.shape[2 + i];
    k[i] = w.shape[2 + i];
    out[i] = (in[i] + 2 * a.padding[i] - a.dilation[i] * (k[i] - 1) - 1) / a.stride[i] + 1;
  }
  RefTensor y{{N, OC, out[0], out[1], out[2]},
              std::vector<double>(static_cast<size_t>(N * OC * out[0] * out[1] * out[2]))};
  size_t o = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oc = 0; oc < OC; ++oc)
      for (int64_t od = 0; od < out[0]; ++od)
        for (int64_t oh = 0; oh < out[1]; ++oh)
          for (int64_t ow = 0; ow < out[2]; ++ow) {
            double s = bias ? bias->v[oc] : 0.0;
            for (int64_t c = 0; c < Cg; ++c)
              for (int64_t kd = 0; kd < k[0]; ++kd)
                for (int64_t kh = 0; kh < k[1]; ++kh)
                  for (int64_t kw = 0; kw < k[2]; ++kw) {
                    const int64_t id = od * a.stride[0] - a.padding[0] + kd * a.dilation[0];
                    const int64_t ih = oh * a.stride[1] - a.padding[1] + kh * a.dilation[1];
                    const int64_t iw = ow * a.stride[2] - a.padding[2] + kw * a.dilation[2];
                    if (id < 0 || id >= in[0] || ih < 0 || ih >= in[1] || iw < 0 || iw >= in[2])
                      continue;
                    s += x.at({n, oc / OCg * Cg + c, id, ih, iw}) * w.at({oc, c, kd, kh, kw});
                  }
            y.v[o++] = s;
          }
  return unbatched_like(y, x_in);
}

// Transposed 3-D convolution as its definition, a scatter: input voxel i of channel c adds
// x * w[c, oc, k] to output i * stride - padding + k * dilation of channel group(c) * O/groups +
// oc; output voxels no input reaches (output_padding) stay at the bias.
RefTensor ref_conv_transpose3d(const RefTensor& x_in, const RefTensor& w, const RefTensor* bias,
                               const Args3& a) {
  const RefTensor x = batched(x_in);
  const int64_t N = x.shape[0], C = x.shape[1], OCg = w.shape[1], Cg = C / a.groups,
                OC = OCg * a.groups;
  int64_t in[3], k[3], out[3];
  for (int i = 0; i < 3; ++i) {
    in[i] = x.shape[2 + i];
    k[i] = w.shape[2 + i];
    out[i] = (in[i] - 1) * a.stride[i] - 2 * a.padding[i] + a.dilation[i] * (k[i] - 1) +
             a.output_padding[i] + 1;
  }
  const int64_t per_channel = out[0] * out[1] * out[2];
  RefTensor y{{N, OC, out[0], out[1], out[2]},
              std::vector<double>(static_cast<size_t>(N * OC * per_channel))};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oc = 0; oc < OC; ++oc)
      for (int64_t i = 0; i < per_channel; ++i)
        y.v[static_cast<size_t>((n * OC + oc) * per_channel + i)] = bias ? bias->v[oc] : 0.0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t id = 0; id < in[0]; ++id)
        for (int64_t ih = 0; ih < in[1]; ++ih)
          for (int64_t iw = 0; iw < in[2]; ++iw)
            for (int64_t oc = 0; oc < OCg; ++oc)
              for (int64_t kd = 0; kd < k[0]; ++kd)
                for (int64_t kh = 0; kh < k[1]; ++kh)
                  for (int64_t kw = 0; kw < k[2]; ++kw) {
                    const int64_t od = id * a.stride[0] - a.padding[0] + kd * a.dilation[0];
                    const int64_t oh = ih * a.stride[1] - a.padding[1] + kh * a.dilation[1];
                    const int64_t ow = iw * a.stride[2] - a.padding[2] + kw * a.dilation[2];
                    if (od < 0 || od >= out[0] || oh < 0 || oh >= out[1] || ow < 0 || ow >= out[2])
                      continue;
                    y.v[static_cast<size_t>(
                        (((n * OC + c / Cg * OCg + oc) * out[0] + od) * out[1] + oh) * out[2] +
                        ow)] += x.at({n, c, id, ih, iw}) * w.at({c, oc, kd, kh, kw});
                  }
  return unbatched_like(y, x_in);
}

const std::vector<DType> kAllFloat = {DType::float64, DType::float32, DType::bfloat16,
                                      DType::float16};

OpCase conv3d_case(std::string name, Shape x, Shape w, bool bias, Args3 a) {
  std::vector<InputSpec> in{F(std::move(x)), F(std::move(w))};
  if (bias) in.push_back(F({in[1].shape[0]}));
  const double k = static_cast<double>(numel_of(in[1].shape) / in[1].shape[0]);
  return {"conv3d/" + name,
          in,
          [a](const std::vector<Tensor>& t) {
            return conv3d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), a.stride, a.padding,
                          a.dilation, a.groups);
          },
          [a](const std::vector<RefTensor>& t) {
            return ref_conv3d(t[0], t[1], t.size() > 2 ? &t[2] : nullptr, a);
          },
          kAllFloat,
          std::max(1.0, k / 32)};
}

OpCase conv_transpose3d_case(std::string name, Shape x, Shape w, bool bias, Args3 a) {
  std::vector<InputSpec> in{F(std::move(x)), F(std::move(w))};
  if (bias) in.push_back(F({in[1].shape[1] * a.groups}));
  // Terms per output: at most in/groups * kd * kh * kw.
  const double k = static_cast<double>(in[1].shape[0] / a.groups * in[1].shape[2] * in[1].shape[3] *
                                       in[1].shape[4]);
  return {"conv_transpose3d/" + name,
          in,
          [a](const std::vector<Tensor>& t) {
            return conv_transpose3d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), a.stride, a.padding,
                                    a.output_padding, a.groups, a.dilation);
          },
          [a](const std::vector<RefTensor>& t) {
            return ref_conv_transpose3d(t[0], t[1], t.size() > 2 ? &t[2] : nullptr, a);
          },
          kAllFloat,
          std::max(1.0, k / 32)};
}

// conv_transpose1d as the 3-D reference over unit depth and height: x (N, C, L) or (C, L),
// w (C, O/groups, K).
OpCase conv_transpose1d_case(std::string name, Shape x, Shape w, bool bias, int64_t stride = 1,
                             int64_t padding = 0, int64_t output_padding = 0, int64_t groups = 1,
                             int64_t dilation = 1) {
  std::vector<InputSpec> in{F(std::move(x)), F(std::move(w))};
  if (bias) in.push_back(F({in[1].shape[1] * groups}));
  const double k = static_cast<double>(in[1].shape[0] / groups * in[1].shape[2]);
  const Args3 a{{1, 1, stride}, {0, 0, padding}, {1, 1, dilation}, groups, {0, 0, output_padding}};
  return {"conv_transpose1d/" + name,
          in,
          [=](const std::vector<Tensor>& t) {
            return conv_transpose1d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), stride, padding,
                                    output_padding, groups, dilation);
          },
          [a](const std::vector<RefTensor>& t) {
            RefTensor x = t[0], w = t[1];
            const bool unbatched = x.shape.size() == 2;
            if (unbatched) x.shape.insert(x.shape.begin(), 1);
            x.shape.insert(x.shape.end() - 1, {1, 1});
            w.shape.insert(w.shape.end() - 1, {1, 1});
            RefTensor y = ref_conv_transpose3d(x, w, t.size() > 2 ? &t[2] : nullptr, a);
            y.shape.erase(y.shape.end() - 3, y.shape.end() - 1);
            if (unbatched) y.shape.erase(y.shape.begin());
            return y;
          },
          kAllFloat,
          std::max(1.0, k / 32)};
}

std::vector<OpCase> conv3d_cases() {
  return {
      conv3d_case("basic_bias", {2, 3, 4, 5, 5}, {4, 3, 3, 3, 3}, true, {}),
      conv3d_case("stride2_pad1", {2, 2, 5, 6, 5}, {3, 2, 3, 3, 3}, false, {{2, 2, 2}, {1, 1, 1}}),
      conv3d_case("dilation2", {1, 2, 5, 5, 6}, {3, 2, 2, 2, 3}, true,
                  {{1, 1, 1}, {1, 0, 1}, {2, 2, 2}}),
      conv3d_case("groups2", {2, 4, 4, 4, 4}, {6, 2, 3, 1, 3}, true,
                  {{1, 2, 1}, {1, 0, 1}, {1, 1, 1}, 2}),
      conv3d_case("depthwise", {1, 3, 3, 4, 4}, {3, 1, 2, 3, 3}, false,
                  {{1, 1, 1}, {0, 1, 1}, {1, 1, 1}, 3}),
      conv3d_case("pointwise", {2, 4, 2, 3, 3}, {3, 4, 1, 1, 1}, true, {}),
      conv3d_case("unbatched", {3, 4, 4, 4}, {2, 3, 3, 3, 3}, true, {{1, 1, 1}, {1, 1, 1}}),
      conv3d_case("all_params", {2, 4, 5, 7, 6}, {4, 2, 2, 3, 2}, true,
                  {{2, 1, 2}, {1, 2, 0}, {2, 1, 2}, 2}),
      conv3d_case("empty_batch", {0, 3, 3, 3, 3}, {2, 3, 2, 2, 2}, true, {}),
      conv_transpose3d_case("basic_bias", {2, 3, 3, 4, 3}, {3, 4, 3, 3, 3}, true, {}),
      conv_transpose3d_case("stride2_pad1_output_padding1", {1, 2, 3, 3, 3}, {2, 2, 3, 3, 3}, false,
                            {{2, 2, 2}, {1, 1, 1}, {1, 1, 1}, 1, {1, 1, 0}}),
      // output_padding >= stride, allowed because < dilation: the voxels past the kernel's reach.
      conv_transpose3d_case("output_padding_below_dilation", {1, 2, 3, 3, 4}, {2, 2, 2, 3, 2}, true,
                            {{1, 2, 1}, {1, 0, 1}, {2, 2, 2}, 1, {1, 1, 1}}),
      conv_transpose3d_case("groups2_dilation", {2, 4, 3, 3, 3}, {4, 3, 2, 2, 2}, true,
                            {{2, 1, 1}, {0, 1, 1}, {1, 2, 1}, 2, {1, 0, 0}}),
      conv_transpose3d_case("unbatched", {3, 2, 3, 3}, {3, 2, 2, 2, 2}, true, {{2, 2, 2}}),
      conv_transpose3d_case("empty_batch", {0, 3, 2, 2, 2}, {3, 2, 2, 2, 2}, true, {}),
      conv_transpose1d_case("basic_bias", {2, 3, 6}, {3, 4, 3}, true),
      conv_transpose1d_case("stride2_output_padding1", {2, 3, 5}, {3, 2, 3}, false, 2, 1, 1),
      conv_transpose1d_case("groups_dilation", {2, 4, 5}, {4, 3, 3}, true, 2, 1, 1, 2, 2),
      // output_padding 2 >= stride 1, allowed because < dilation 3.
      conv_transpose1d_case("output_padding_below_dilation", {1, 2, 4}, {2, 2, 3}, true, 1, 1, 2, 1,
                            3),
      conv_transpose1d_case("unbatched", {3, 7}, {3, 2, 4}, true, 3, 2),
      conv_transpose1d_case("empty_batch", {0, 3, 4}, {3, 2, 3}, true),
  };
}

}  // namespace

TEST(OpHarness, Conv3d) { run_cases(conv3d_cases()); }
TEST(OpHarnessCuda, Conv3d) { run_cases_on_cuda(conv3d_cases()); }

}  // namespace fabric::harness
