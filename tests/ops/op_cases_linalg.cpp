// Harness cases for the linear-algebra ops (matmul, mm, bmm, linear, gelu_mlp,
// scaled_dot_product_attention)
// and convolution/pooling (conv2d, conv1d, conv_transpose2d, max_pool2d, avg_pool2d,
// adaptive_avg_pool2d), each against a naive float64 reference written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

// Calls f(idx) for every multi-index of `shape` in row-major order.
template <typename F>
void for_each_index(const Shape& shape, F&& f) {
  const int64_t n = numel_of(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    f(idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

// torch.matmul on RefTensors: 1-D operands promoted and their dim dropped, batch dims broadcast.
RefTensor ref_matmul(const RefTensor& a, const RefTensor& b, const RefTensor* bias = nullptr) {
  Shape as = a.shape, bs = b.shape;
  const bool a1 = as.size() == 1, b1 = bs.size() == 1;
  if (a1) as.insert(as.begin(), 1);
  if (b1) bs.push_back(1);
  const int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  const Shape ba(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  const Shape batch = broadcast_shapes(ba, bb, "ref_matmul");
  Shape full = batch;
  full.push_back(M);
  full.push_back(N);
  RefTensor out{full, std::vector<double>(numel_of(full))};
  auto offset = [&](const Shape& s, const std::vector<int64_t>& bi, int64_t r, int64_t c) {
    int64_t flat = 0;
    const size_t lead = batch.size() - (s.size() - 2);
    for (size_t d = 0; d + 2 < s.size(); ++d) flat = flat * s[d] + (s[d] == 1 ? 0 : bi[lead + d]);
    return (flat * s[s.size() - 2] + r) * s.back() + c;
  };
  int64_t o = 0;
  for_each_index(batch, [&](const std::vector<int64_t>& bi) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = bias ? bias->v[j] : 0.0;
        for (int64_t k = 0; k < K; ++k) s += a.v[offset(as, bi, i, k)] * b.v[offset(bs, bi, k, j)];
        out.v[o++] = s;
      }
  });
  Shape final_shape = batch;
  if (!a1) final_shape.push_back(M);
  if (!b1) final_shape.push_back(N);
  out.shape = final_shape;
  return out;
}

RefTensor transpose_last2(const RefTensor& w) {
  const int64_t r = w.shape[0], c = w.shape[1];
  RefTensor t{{c, r}, std::vector<double>(w.v.size())};
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) t.v[j * r + i] = w.v[i * c + j];
  return t;
}

struct ConvArgs {
  std::vector<int64_t> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  int64_t groups = 1;
};

// Direct nested-loop convolution; x is (N, C, H, W) or (C, H, W).
RefTensor ref_conv(const RefTensor& x_in, const RefTensor& w, const RefTensor* bias,
                   const ConvArgs& a) {
  const bool unbatched = x_in.shape.size() == 3;
  RefTensor x = x_in;
  if (unbatched) x.shape.insert(x.shape.begin(), 1);
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t OC = w.shape[0], Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3], G = a.groups,
                OCg = OC / G;
  const int64_t OH = (H + 2 * a.padding[0] - a.dilation[0] * (KH - 1) - 1) / a.stride[0] + 1;
  const int64_t OW = (W + 2 * a.padding[1] - a.dilation[1] * (KW - 1) - 1) / a.stride[1] + 1;
  RefTensor out{{N, OC, OH, OW}, std::vector<double>(N * OC * OH * OW)};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oc = 0; oc < OC; ++oc)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double s = bias ? bias->v[oc] : 0.0;
          const int64_t g = oc / OCg;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t ih = oh * a.stride[0] - a.padding[0] + kh * a.dilation[0];
                const int64_t iw = ow * a.stride[1] - a.padding[1] + kw * a.dilation[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += x.at({n, g * Cg + c, ih, iw}) * w.at({oc, c, kh, kw});
              }
          out.v[((n * OC + oc) * OH + oh) * OW + ow] = s;
        }
  (void)C;
  if (unbatched) out.shape.erase(out.shape.begin());
  return out;
}

// Pooling with -inf (max) / zero counted (avg, count_include_pad) padding.
RefTensor ref_pool(const RefTensor& x, std::vector<int64_t> k, std::vector<int64_t> s,
                   std::vector<int64_t> p, bool max) {
  if (k.size() == 1) k = {k[0], k[0]};
  if (s.empty()) s = k;
  if (s.size() == 1) s = {s[0], s[0]};
  if (p.size() == 1) p = {p[0], p[0]};
  const size_t nd = x.shape.size();
  const int64_t H = x.shape[nd - 2], W = x.shape[nd - 1];
  const int64_t OH = (H + 2 * p[0] - k[0]) / s[0] + 1, OW = (W + 2 * p[1] - k[1]) / s[1] + 1;
  const int64_t planes = x.numel() / (H * W);
  Shape os = x.shape;
  os[nd - 2] = OH;
  os[nd - 1] = OW;
  RefTensor out{os, std::vector<double>(planes * OH * OW)};
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double acc = max ? -std::numeric_limits<double>::infinity() : 0.0;
        for (int64_t i = 0; i < k[0]; ++i)
          for (int64_t j = 0; j < k[1]; ++j) {
            const int64_t h = oh * s[0] - p[0] + i, w = ow * s[1] - p[1] + j;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            const double v = x.v[(pl * H + h) * W + w];
            acc = max ? std::max(acc, v) : acc + v;
          }
        out.v[(pl * OH + oh) * OW + ow] = max ? acc : acc / static_cast<double>(k[0] * k[1]);
      }
  return out;
}

OpCase matmul_case(std::string name, Shape a, Shape b, double tol = 1.0) {
  return {"matmul/" + name,
          {F(std::move(a)), F(std::move(b))},
          [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
          [](const std::vector<RefTensor>& in) { return ref_matmul(in[0], in[1]); },
          {DType::float64, DType::float32, DType::bfloat16, DType::float16},
          tol};
}

OpCase conv_case(std::string name, Shape x, Shape w, bool bias, ConvArgs a) {
  std::vector<InputSpec> in{F(std::move(x)), F(std::move(w))};
  if (bias) in.push_back(F({in[1].shape[0]}));
  const double k = static_cast<double>(in[1].shape[1] * in[1].shape[2] * in[1].shape[3]);
  return {"conv2d/" + name,
          in,
          [a](const std::vector<Tensor>& t) {
            return conv2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), a.stride, a.padding,
                          a.dilation, a.groups);
          },
          [a](const std::vector<RefTensor>& t) {
            return ref_conv(t[0], t[1], t.size() > 2 ? &t[2] : nullptr, a);
          },
          {DType::float64, DType::float32, DType::bfloat16, DType::float16},
          std::max(1.0, k / 32)};
}

// conv1d as the 2-D reference over a unit height: x (N, C, L) or (C, L), w (O, C/groups, K).
OpCase conv1d_case(std::string name, Shape x, Shape w, bool bias, int64_t stride = 1,
                   int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1) {
  std::vector<InputSpec> in{F(std::move(x)), F(std::move(w))};
  if (bias) in.push_back(F({in[1].shape[0]}));
  const double k = static_cast<double>(in[1].shape[1] * in[1].shape[2]);
  const ConvArgs a{{1, stride}, {0, padding}, {1, dilation}, groups};
  return {"conv1d/" + name,
          in,
          [=](const std::vector<Tensor>& t) {
            return conv1d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), stride, padding, dilation,
                          groups);
          },
          [a](const std::vector<RefTensor>& t) {
            RefTensor x = t[0], w = t[1];
            x.shape.insert(x.shape.end() - 1, 1);
            w.shape.insert(w.shape.end() - 1, 1);
            RefTensor out = ref_conv(x, w, t.size() > 2 ? &t[2] : nullptr, a);
            out.shape.erase(out.shape.end() - 2);
            return out;
          },
          {DType::float64, DType::float32, DType::bfloat16, DType::float16},
          std::max(1.0, k / 32)};
}

struct ConvTransposeArgs {
  std::vector<int64_t> stride{1, 1}, padding{0, 0}, output_padding{0, 0};
  int64_t groups = 1;
  std::vector<int64_t> dilation{1, 1};
};

// Transposed convolution written as its definition, a scatter: input pixel (ih, iw) of channel c
// adds x * w[c, oc, kh, kw] to output (ih * stride - padding + kh * dilation, ...) of channel
// group(c) * O/groups + oc; output rows no pixel reaches (output_padding) stay at the bias.
RefTensor ref_conv_transpose(const RefTensor& x_in, const RefTensor& w, const RefTensor* bias,
                             const ConvTransposeArgs& a) {
  const bool unbatched = x_in.shape.size() == 3;
  RefTensor x = x_in;
  if (unbatched) x.shape.insert(x.shape.begin(), 1);
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t OCg = w.shape[1], KH = w.shape[2], KW = w.shape[3], G = a.groups, Cg = C / G,
                OC = OCg * G;
  const int64_t OH =
      (H - 1) * a.stride[0] - 2 * a.padding[0] + a.dilation[0] * (KH - 1) + a.output_padding[0] + 1;
  const int64_t OW =
      (W - 1) * a.stride[1] - 2 * a.padding[1] + a.dilation[1] * (KW - 1) + a.output_padding[1] + 1;
  RefTensor out{{N, OC, OH, OW}, std::vector<double>(N * OC * OH * OW)};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oc = 0; oc < OC; ++oc)
      for (int64_t i = 0; i < OH * OW; ++i)
        out.v[(n * OC + oc) * OH * OW + i] = bias ? bias->v[oc] : 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ih = 0; ih < H; ++ih)
        for (int64_t iw = 0; iw < W; ++iw)
          for (int64_t oc = 0; oc < OCg; ++oc)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                const int64_t oh = ih * a.stride[0] - a.padding[0] + kh * a.dilation[0];
                const int64_t ow = iw * a.stride[1] - a.padding[1] + kw * a.dilation[1];
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                out.v[((n * OC + (c / Cg) * OCg + oc) * OH + oh) * OW + ow] +=
                    x.at({n, c, ih, iw}) * w.at({c, oc, kh, kw});
              }
  if (unbatched) out.shape.erase(out.shape.begin());
  return out;
}

OpCase conv_transpose_case(std::string name, Shape x, Shape w, bool bias, ConvTransposeArgs a) {
  std::vector<InputSpec> in{F(std::move(x)), F(std::move(w))};
  if (bias) in.push_back(F({in[1].shape[1] * a.groups}));
  // Terms per output: at most in/groups * kh * kw.
  const double k = static_cast<double>(in[1].shape[0] / a.groups * in[1].shape[2] * in[1].shape[3]);
  return {"conv_transpose2d/" + name,
          in,
          [a](const std::vector<Tensor>& t) {
            return conv_transpose2d(t[0], t[1], t.size() > 2 ? t[2] : Tensor(), a.stride, a.padding,
                                    a.output_padding, a.groups, a.dilation);
          },
          [a](const std::vector<RefTensor>& t) {
            return ref_conv_transpose(t[0], t[1], t.size() > 2 ? &t[2] : nullptr, a);
          },
          {DType::float64, DType::float32, DType::bfloat16, DType::float16},
          std::max(1.0, k / 32)};
}

// softmax(q k^T * scale [+ causal mask]) v for q (..., L, E), k (..., S, E), v (..., S, Ev) with
// equal leading dims, one (L, S) matrix at a time.
RefTensor ref_attention(const RefTensor& q, const RefTensor& k, const RefTensor& v, bool causal) {
  const size_t d = q.shape.size();
  const int64_t L = q.shape[d - 2], E = q.shape[d - 1], S = k.shape[d - 2], Ev = v.shape[d - 1];
  const int64_t heads = q.numel() / (L * E);
  const double scale = 1.0 / std::sqrt(static_cast<double>(E));
  Shape out_shape = q.shape;
  out_shape.back() = Ev;
  RefTensor out{out_shape, std::vector<double>(numel_of(out_shape))};
  std::vector<double> w(S);
  for (int64_t h = 0; h < heads; ++h) {
    const double* qh = &q.v[h * L * E];
    const double* kh = &k.v[h * S * E];
    const double* vh = &v.v[h * S * Ev];
    for (int64_t i = 0; i < L; ++i) {
      const int64_t keys = causal ? std::min(S, i + 1) : S;
      double m = -std::numeric_limits<double>::infinity(), sum = 0;
      for (int64_t j = 0; j < keys; ++j) {
        double s = 0;
        for (int64_t e = 0; e < E; ++e) s += qh[i * E + e] * kh[j * E + e];
        w[j] = s * scale;
        m = std::max(m, w[j]);
      }
      for (int64_t j = 0; j < keys; ++j) sum += (w[j] = std::exp(w[j] - m));
      for (int64_t c = 0; c < Ev; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < keys; ++j) acc += w[j] * vh[j * Ev + c];
        out.v[(h * L + i) * Ev + c] = acc / sum;
      }
    }
  }
  return out;
}

// Fused where nothing stops it (causal or no mask); `via_mask` passes the causal mask explicitly,
// which takes the composition of matmul/softmax instead.
OpCase attention_case(std::string name, Shape q, Shape k, Shape v, bool causal,
                      bool via_mask = false) {
  return {"scaled_dot_product_attention/" + name,
          {F(std::move(q)), F(std::move(k)), F(std::move(v))},
          [=](const std::vector<Tensor>& t) {
            const int64_t L = t[0].size(-2), S = t[1].size(-2);
            if (via_mask) return scaled_dot_product_attention(t[0], t[1], t[2], causal_mask(L, S, t[0].device()));
            return scaled_dot_product_attention(t[0], t[1], t[2], Tensor(), 0.0, causal);
          },
          [=](const std::vector<RefTensor>& t) { return ref_attention(t[0], t[1], t[2], causal); },
          {DType::float64, DType::float32, DType::bfloat16, DType::float16},
          2.0};
}

// torch's adaptive windows, written with floating floor/ceil: output i of `out` averages inputs
// [floor(i * in / out), ceil((i + 1) * in / out)).
RefTensor ref_adaptive_pool(const RefTensor& x, std::vector<int64_t> output_size) {
  if (output_size.size() == 1) output_size.push_back(output_size[0]);
  const size_t nd = x.shape.size();
  const int64_t H = x.shape[nd - 2], W = x.shape[nd - 1], OH = output_size[0], OW = output_size[1];
  const int64_t planes = x.numel() / (H * W);
  Shape os = x.shape;
  os[nd - 2] = OH;
  os[nd - 1] = OW;
  RefTensor out{os, std::vector<double>(numel_of(os))};
  auto lo = [](int64_t i, int64_t in, int64_t o) {
    return static_cast<int64_t>(std::floor(static_cast<double>(i) * in / o));
  };
  auto hi = [](int64_t i, int64_t in, int64_t o) {
    return static_cast<int64_t>(std::ceil(static_cast<double>(i + 1) * in / o));
  };
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double acc = 0;
        int64_t n = 0;
        for (int64_t h = lo(oh, H, OH); h < hi(oh, H, OH); ++h)
          for (int64_t w = lo(ow, W, OW); w < hi(ow, W, OW); ++w, ++n)
            acc += x.v[(pl * H + h) * W + w];
        out.v[(pl * OH + oh) * OW + ow] = acc / static_cast<double>(n);
      }
  return out;
}

OpCase adaptive_pool_case(std::string name, Shape x, std::vector<int64_t> output_size) {
  return {"adaptive_avg_pool2d/" + name,
          {F(std::move(x))},
          [=](const std::vector<Tensor>& t) { return adaptive_avg_pool2d(t[0], output_size); },
          [=](const std::vector<RefTensor>& t) { return ref_adaptive_pool(t[0], output_size); }};
}

OpCase pool_case(bool max, std::string name, Shape x, std::vector<int64_t> k,
                 std::vector<int64_t> s, std::vector<int64_t> p) {
  return {std::string(max ? "max_pool2d/" : "avg_pool2d/") + name,
          {F(std::move(x))},
          [=](const std::vector<Tensor>& t) {
            return max ? max_pool2d(t[0], k, s, p) : avg_pool2d(t[0], k, s, p);
          },
          [=](const std::vector<RefTensor>& t) { return ref_pool(t[0], k, s, p, max); }};
}

}  // namespace

std::vector<OpCase> linalg_cases() {
  std::vector<OpCase> cases = {
      matmul_case("1d_1d", {5}, {5}),
      matmul_case("1d_2d", {4}, {4, 3}),
      matmul_case("2d_1d", {3, 4}, {4}),
      matmul_case("2d_2d", {3, 4}, {4, 5}),
      matmul_case("batched_broadcast", {2, 1, 3, 4}, {5, 4, 2}),
      matmul_case("3d_1d", {2, 3, 4}, {4}),
      matmul_case("1d_3d", {4}, {2, 4, 3}),
      matmul_case("3d_2d_folded", {2, 3, 4}, {4, 5}),
      matmul_case("2d_3d", {3, 4}, {2, 4, 5}),
      matmul_case("size1_dims", {3, 1, 1, 4}, {1, 2, 4, 1}),
      matmul_case("row_times_col", {1, 4}, {4, 1}),
      matmul_case("K0", {3, 0}, {0, 4}),
      matmul_case("M0", {0, 4}, {4, 5}),
      matmul_case("batch0", {0, 2, 3}, {3, 4}),
      matmul_case("long_K", {2, 8, 96}, {96, 16}, 3.0),
      matmul_case("batched_long_K", {3, 4, 80}, {3, 80, 6}, 2.5),
  };
  cases.push_back({"mm/basic",
                   {F({3, 4}), F({4, 5})},
                   [](const std::vector<Tensor>& t) { return mm(t[0], t[1]); },
                   [](const std::vector<RefTensor>& t) { return ref_matmul(t[0], t[1]); }});
  cases.push_back({"mm/1x1",
                   {F({1, 1}), F({1, 7})},
                   [](const std::vector<Tensor>& t) { return mm(t[0], t[1]); },
                   [](const std::vector<RefTensor>& t) { return ref_matmul(t[0], t[1]); }});
  cases.push_back({"bmm/basic",
                   {F({2, 3, 4}), F({2, 4, 5})},
                   [](const std::vector<Tensor>& t) { return bmm(t[0], t[1]); },
                   [](const std::vector<RefTensor>& t) { return ref_matmul(t[0], t[1]); }});
  cases.push_back({"bmm/M0",
                   {F({3, 0, 4}), F({3, 4, 2})},
                   [](const std::vector<Tensor>& t) { return bmm(t[0], t[1]); },
                   [](const std::vector<RefTensor>& t) { return ref_matmul(t[0], t[1]); }});
  auto linear_ref = [](const std::vector<RefTensor>& t) {
    return ref_matmul(t[0], transpose_last2(t[1]), t.size() > 2 ? &t[2] : nullptr);
  };
  auto linear_run = [](const std::vector<Tensor>& t) {
    return linear(t[0], t[1], t.size() > 2 ? t[2] : Tensor());
  };
  cases.push_back({"linear/3d_bias", {F({2, 3, 4}), F({5, 4}), F({5})}, linear_run, linear_ref});
  cases.push_back({"linear/2d_no_bias", {F({6, 4}), F({3, 4})}, linear_run, linear_ref});
  cases.push_back({"linear/1d_input", {F({4}), F({3, 4}), F({3})}, linear_run, linear_ref});
  cases.push_back(
      {"linear/4d_input", {F({2, 2, 3, 4}), F({5, 4}), F({5})}, linear_run, linear_ref});
  cases.push_back({"linear/long_K",
                   {F({6, 96}), F({8, 96}), F({8})},
                   linear_run,
                   linear_ref,
                   {DType::float64, DType::float32, DType::bfloat16, DType::float16},
                   3.0});
  // gelu_mlp: inputs (x, W1, b1, W2, b2), or (x, W1, W2) without biases. H = 8 is a width
  // cuBLASLt's GELU epilogue takes on CUDA; H = 6 (an aux leading dim off its multiple of 8) and
  // float64 take the product and then the GELU kernels there.
  auto gelu_mlp_ref = [](const std::vector<RefTensor>& t) {
    const bool bias = t.size() == 5;
    RefTensor h = ref_matmul(t[0], transpose_last2(t[1]), bias ? &t[2] : nullptr);
    for (double& v : h.v)
      v = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    return ref_matmul(h, transpose_last2(t[bias ? 3 : 2]), bias ? &t[4] : nullptr);
  };
  auto gelu_mlp_run = [](const std::vector<Tensor>& t) {
    if (t.size() == 3) return gelu_mlp(t[0], t[1], Tensor(), t[2], Tensor());
    return gelu_mlp(t[0], t[1], t[2], t[3], t[4]);
  };
  const auto gelu_mlp_case = [&](const std::string& name, std::vector<InputSpec> inputs) {
    OpCase c{"gelu_mlp/" + name, std::move(inputs), gelu_mlp_run, gelu_mlp_ref};
    c.tol_scale = 2.0;
    return c;
  };
  cases.push_back(gelu_mlp_case("3d_bias", {F({2, 3, 4}), F({8, 4}), F({8}), F({5, 8}), F({5})}));
  cases.push_back(gelu_mlp_case("2d_no_bias", {F({6, 4}), F({8, 4}), F({3, 8})}));
  cases.push_back(gelu_mlp_case("1d_input_H6", {F({4}), F({6, 4}), F({6}), F({3, 6}), F({3})}));
  cases.push_back(
      gelu_mlp_case("4d_input", {F({2, 2, 3, 4}), F({16, 4}), F({16}), F({5, 16}), F({5})}));
  cases.push_back(attention_case("causal", {2, 3, 5, 4}, {2, 3, 5, 4}, {2, 3, 5, 6}, true));
  cases.push_back(attention_case("cross_L_lt_S", {2, 4, 3}, {2, 7, 3}, {2, 7, 5}, false));
  cases.push_back(attention_case("causal_L_gt_S", {1, 2, 7, 3}, {1, 2, 4, 3}, {1, 2, 4, 2}, true));
  cases.push_back(attention_case("2d_no_mask", {6, 4}, {5, 4}, {5, 3}, false));
  cases.push_back(attention_case("5d", {2, 1, 2, 3, 2}, {2, 1, 2, 4, 2}, {2, 1, 2, 4, 3}, false));
  // More query rows than the CPU kernel's block (64): blocks end inside the causal triangle.
  cases.push_back(attention_case("causal_two_blocks", {1, 1, 70, 2}, {1, 1, 70, 2}, {1, 1, 70, 2}, true));
  cases.push_back(attention_case("causal_mask_composed", {2, 5, 3}, {2, 5, 3}, {2, 5, 4}, true, true));
  cases.push_back({"linear/K0_bias_only", {F({3, 0}), F({2, 0}), F({2})}, linear_run, linear_ref});
  return cases;
}

TEST(OpHarness, Linalg) { run_cases(linalg_cases()); }
TEST(OpHarnessCuda, Linalg) { run_cases_on_cuda(linalg_cases()); }

std::vector<OpCase> conv_cases() {
  std::vector<OpCase> cases = {
      conv_case("basic_bias", {2, 3, 7, 7}, {4, 3, 3, 3}, true, {}),
      conv_case("stride2_pad1", {2, 3, 8, 8}, {4, 3, 3, 3}, false, {{2, 2}, {1, 1}, {1, 1}, 1}),
      conv_case("dilation2", {1, 2, 9, 9}, {3, 2, 3, 3}, true, {{1, 1}, {2, 2}, {2, 2}, 1}),
      conv_case("groups2", {2, 4, 6, 6}, {6, 2, 3, 3}, true, {{2, 1}, {1, 0}, {1, 1}, 2}),
      conv_case("depthwise", {1, 3, 5, 5}, {3, 1, 3, 3}, false, {{1, 1}, {1, 1}, {1, 1}, 3}),
      conv_case("pointwise", {2, 4, 5, 5}, {3, 4, 1, 1}, true, {}),
      conv_case("pointwise_groups", {2, 4, 3, 5}, {6, 2, 1, 1}, false, {{1, 1}, {0, 0}, {1, 1}, 2}),
      conv_case("unbatched", {3, 6, 6}, {2, 3, 3, 3}, true, {{1, 1}, {1, 1}, {1, 1}, 1}),
      conv_case("rect_kernel", {2, 3, 6, 7}, {2, 3, 2, 3}, false, {{1, 2}, {1, 1}, {1, 1}, 1}),
      conv_case("all_params", {2, 4, 10, 9}, {4, 2, 3, 3}, true, {{2, 2}, {1, 2}, {2, 1}, 2}),
      conv_case("empty_batch", {0, 3, 5, 5}, {2, 3, 3, 3}, true, {}),
      conv_case("wide", {1, 16, 6, 6}, {8, 16, 3, 3}, true, {{1, 1}, {1, 1}, {1, 1}, 1}),
      conv1d_case("basic_bias", {2, 3, 10}, {4, 3, 3}, true),
      conv1d_case("stride2_pad1", {2, 3, 9}, {4, 3, 3}, false, 2, 1),
      conv1d_case("dilation_groups", {2, 4, 11}, {6, 2, 3}, true, 1, 2, 2, 2),
      conv1d_case("depthwise", {1, 4, 7}, {4, 1, 5}, false, 1, 2, 1, 4),
      conv1d_case("unbatched", {3, 8}, {2, 3, 3}, true, 1, 1),
      conv1d_case("empty_batch", {0, 3, 5}, {2, 3, 3}, true),
      conv1d_case("kernel_equals_length", {2, 3, 4}, {5, 3, 4}, true),
      conv_transpose_case("basic_bias", {2, 3, 5, 5}, {3, 4, 3, 3}, true, {}),
      conv_transpose_case("stride2_pad1_output_padding1", {2, 3, 4, 4}, {3, 2, 3, 3}, false,
                          {{2, 2}, {1, 1}, {1, 1}}),
      conv_transpose_case("dilation2", {1, 2, 4, 4}, {2, 3, 3, 3}, true,
                          {{1, 1}, {1, 1}, {0, 0}, 1, {2, 2}}),
      // output_padding >= stride, allowed because < dilation: the rows past the kernel's reach.
      conv_transpose_case("output_padding_below_dilation", {1, 2, 4, 5}, {2, 2, 3, 3}, true,
                          {{1, 1}, {1, 1}, {1, 1}, 1, {2, 2}}),
      conv_transpose_case("output_padding_below_dilation_unpadded", {2, 2, 3, 4}, {2, 3, 2, 3},
                          false, {{1, 2}, {0, 0}, {2, 1}, 1, {3, 2}}),
      // padding 1 crops the only row the kernel reaches: the output is output_padding's row.
      conv_transpose_case("only_output_padding_rows", {1, 2, 1, 3}, {2, 2, 1, 1}, true,
                          {{1, 1}, {1, 0}, {2, 0}, 1, {3, 1}}),
      conv_transpose_case("groups2", {2, 4, 4, 4}, {4, 3, 3, 3}, true, {{2, 2}, {1, 1}, {1, 1}, 2}),
      conv_transpose_case("depthwise", {1, 3, 4, 4}, {3, 1, 3, 3}, false,
                          {{1, 1}, {1, 1}, {0, 0}, 3}),
      conv_transpose_case("unbatched", {3, 4, 4}, {3, 2, 3, 3}, true, {{2, 2}}),
      conv_transpose_case("all_params_rect", {2, 4, 3, 5}, {4, 2, 2, 3}, true,
                          {{2, 3}, {1, 0}, {1, 2}, 2, {1, 2}}),
      conv_transpose_case("padding_crops", {1, 2, 5, 5}, {2, 2, 3, 3}, false, {{1, 1}, {2, 2}}),
      conv_transpose_case("pointwise_upsample", {1, 2, 3, 3}, {2, 3, 1, 1}, true,
                          {{2, 2}, {0, 0}, {1, 1}}),
      conv_transpose_case("empty_batch", {0, 3, 4, 4}, {3, 2, 3, 3}, true, {}),
      pool_case(true, "k3_s2_p1", {2, 3, 7, 7}, {3}, {2}, {1}),
      pool_case(true, "k2_default_stride", {2, 2, 6, 5}, {2}, {}, {0}),
      pool_case(true, "rect", {1, 3, 5, 6}, {3, 2}, {1, 2}, {1, 0}),
      pool_case(true, "unbatched", {3, 5, 5}, {2}, {1}, {1}),
      pool_case(true, "k1", {1, 2, 3, 3}, {1}, {}, {0}),
      pool_case(false, "k3_s2_p1", {2, 3, 7, 7}, {3}, {2}, {1}),
      pool_case(false, "k2_default_stride", {2, 2, 6, 5}, {2}, {}, {0}),
      pool_case(false, "rect", {1, 3, 5, 6}, {3, 2}, {1, 2}, {1, 0}),
      pool_case(false, "unbatched", {3, 5, 5}, {2}, {1}, {1}),
      adaptive_pool_case("divisible", {2, 3, 8, 6}, {4, 3}),
      adaptive_pool_case("non_divisible_overlapping", {2, 2, 7, 5}, {3, 4}),
      adaptive_pool_case("global_1x1", {2, 4, 5, 7}, {1}),
      adaptive_pool_case("square_int", {1, 3, 9, 9}, {4}),
      adaptive_pool_case("larger_than_input", {1, 2, 3, 4}, {5, 7}),
      adaptive_pool_case("identity", {2, 2, 4, 5}, {4, 5}),
      adaptive_pool_case("unbatched", {3, 5, 6}, {2, 4}),
      adaptive_pool_case("empty_batch", {0, 3, 5, 5}, {2}),
      adaptive_pool_case("zero_output_rows", {1, 2, 4, 4}, {0, 3}),
      // 17 x 13 windows: long sums in each dtype's accumulator.
      adaptive_pool_case("large_windows", {1, 2, 33, 26}, {2, 2}),
  };
  return cases;
}

TEST(OpHarness, Conv) { run_cases(conv_cases()); }
TEST(OpHarnessCuda, Conv) { run_cases_on_cuda(conv_cases()); }

}  // namespace fabric::harness
