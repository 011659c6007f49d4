// Harness cases for softmax, log_softmax, layer_norm, rms_norm, batch_norm, group_norm and the
// losses (cross_entropy, nll_loss, mse_loss), each against a naive float64 reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

// Applies f to every line along `dim` (a vector of that dim's values) and writes the results back.
RefTensor ref_along(const RefTensor& in, int64_t dim,
                    const std::function<std::vector<double>(const std::vector<double>&)>& f) {
  RefTensor out = in;
  const int64_t nd = static_cast<int64_t>(in.shape.size());
  if (nd == 0) {
    out.v = f(in.v);
    return out;
  }
  dim = (dim + nd) % nd;
  int64_t inner = 1, outer = 1;
  for (int64_t d = dim + 1; d < nd; ++d) inner *= in.shape[d];
  for (int64_t d = 0; d < dim; ++d) outer *= in.shape[d];
  const int64_t n = in.shape[dim];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      std::vector<double> line(static_cast<size_t>(n));
      for (int64_t j = 0; j < n; ++j) line[j] = in.v[(o * n + j) * inner + i];
      const std::vector<double> r = f(line);
      for (int64_t j = 0; j < n; ++j) out.v[(o * n + j) * inner + i] = r[j];
    }
  return out;
}

std::vector<double> softmax_line(const std::vector<double>& x, bool log) {
  double m = -std::numeric_limits<double>::infinity();
  for (double v : x) m = std::max(m, v);
  double s = 0;
  for (double v : x) s += std::exp(v - m);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = log ? x[i] - m - std::log(s) : std::exp(x[i] - m) / s;
  return y;
}

// layer_norm / rms_norm over the trailing `k` dims, with optional weight/bias inputs.
RefTensor ref_norm(const std::vector<RefTensor>& in, int64_t k, bool rms, bool has_w, bool has_b,
                   double eps) {
  const RefTensor& x = in[0];
  int64_t cols = 1;
  for (int64_t i = 0; i < k; ++i) cols *= x.shape[x.shape.size() - 1 - i];
  RefTensor out = x;
  for (int64_t r = 0; r * cols < x.numel(); ++r) {
    const double* p = x.v.data() + r * cols;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j) mean += p[j];
    mean /= static_cast<double>(cols);
    for (int64_t j = 0; j < cols; ++j) var += rms ? p[j] * p[j] : (p[j] - mean) * (p[j] - mean);
    var /= static_cast<double>(cols);
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (int64_t j = 0; j < cols; ++j) {
      double y = (rms ? p[j] : p[j] - mean) * rstd;
      if (has_w) y *= in[1].v[j];
      if (has_b) y += in[has_w ? 2 : 1].v[j];
      out.v[r * cols + j] = y;
    }
  }
  return out;
}

// Per-position cross-entropy / nll with PyTorch's ignore_index, smoothing and reductions.
RefTensor ref_loss(const RefTensor& x, const RefTensor& t, bool from_logits, int64_t ignore,
                   const std::string& red, double s) {
  const bool unbatched = x.shape.size() == 1;
  const int64_t C = unbatched ? x.shape[0] : x.shape[1];
  const int64_t N = unbatched ? 1 : x.shape[0];
  int64_t inner = 1;
  for (size_t d = 2; d < x.shape.size(); ++d) inner *= x.shape[d];
  RefTensor out{t.shape, std::vector<double>(static_cast<size_t>(N * inner))};
  double total = 0;
  int64_t valid = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t tg = static_cast<int64_t>(t.v[n * inner + i]);
      double l = 0;
      if (tg != ignore) {
        std::vector<double> row(static_cast<size_t>(C));
        for (int64_t c = 0; c < C; ++c) row[c] = x.v[(n * C + c) * inner + i];
        const std::vector<double> lp = from_logits ? softmax_line(row, true) : row;
        double smooth = 0;
        for (double v : lp) smooth -= v;
        l = (1 - s) * -lp[tg] + s / static_cast<double>(C) * smooth;
        ++valid;
      }
      out.v[n * inner + i] = l;
      total += l;
    }
  if (red == "none") return out;
  return {{}, {red == "sum" ? total : total / static_cast<double>(valid)}};
}

std::vector<OpCase> softmax_cases() {
  std::vector<OpCase> cases;
  struct D {
    std::string name;
    Shape shape;
    int64_t dim;
  };
  for (const D& d : std::vector<D>{{"last", {3, 5}, 1},
                                   {"first", {4, 6}, 0},
                                   {"mid", {2, 5, 3}, 1},
                                   {"neg", {2, 3, 4}, -1},
                                   {"size1", {3, 1}, 1},
                                   {"empty", {0, 5}, 1},
                                   {"scalar", {}, 0},
                                   {"long", {3, 2000}, 1},
                                   {"wide_inner", {3, 7, 300}, 1}}) {
    for (bool log : {false, true}) {
      cases.push_back({.name = std::string(log ? "log_softmax/" : "softmax/") + d.name,
                       .inputs = {F(d.shape, -4, 4)},
                       .run =
                           [d, log](const std::vector<Tensor>& in) {
                             return log ? log_softmax(in[0], d.dim) : softmax(in[0], d.dim);
                           },
                       .reference =
                           [d, log](const std::vector<RefTensor>& in) {
                             return ref_along(in[0], d.dim, [log](const std::vector<double>& x) {
                               return softmax_line(x, log);
                             });
                           }});
    }
  }
  // dtype=: the result is float64 whatever the input dtype.
  cases.push_back(
      {.name = "softmax/dtype_f64",
       .inputs = {F({4, 9})},
       .run = [](const std::vector<Tensor>& in) { return softmax(in[0], 1, DType::float64); },
       .reference =
           [](const std::vector<RefTensor>& in) {
             return ref_along(in[0], 1,
                              [](const std::vector<double>& x) { return softmax_line(x, false); });
           }});
  cases.push_back(
      {.name = "log_softmax/dtype_f32",
       .inputs = {F({5, 8})},
       .run = [](const std::vector<Tensor>& in) { return log_softmax(in[0], 0, DType::float32); },
       .reference =
           [](const std::vector<RefTensor>& in) {
             return ref_along(in[0], 0,
                              [](const std::vector<double>& x) { return softmax_line(x, true); });
           },
       .dtypes = {DType::float32, DType::bfloat16, DType::float16}});
  return cases;
}

std::vector<OpCase> norm_cases() {
  std::vector<OpCase> cases;
  struct D {
    std::string name;
    Shape shape;
    Shape ns;
    bool w, b;
  };
  for (const D& d : std::vector<D>{{"affine", {4, 8}, {8}, true, true},
                                   {"plain", {4, 8}, {8}, false, false},
                                   {"weight_only", {3, 6}, {6}, true, false},
                                   {"bias_only", {3, 6}, {6}, false, true},
                                   {"two_dims", {2, 3, 4}, {3, 4}, true, true},
                                   {"size1", {3, 1}, {1}, true, true},
                                   {"empty_rows", {0, 5}, {5}, true, true},
                                   {"one_row", {7}, {7}, true, true},
                                   {"long", {3, 1500}, {1500}, true, true}}) {
    std::vector<InputSpec> ins = {F(d.shape)};
    if (d.w) ins.push_back(F(d.ns, 0.5, 1.5));
    if (d.b) ins.push_back(F(d.ns));
    const int64_t k = static_cast<int64_t>(d.ns.size());
    cases.push_back({.name = "layer_norm/" + d.name,
                     .inputs = ins,
                     .run =
                         [d](const std::vector<Tensor>& in) {
                           return layer_norm(in[0], d.ns, d.w ? in[1] : Tensor(),
                                             d.b ? in[d.w ? 2 : 1] : Tensor(), 1e-5);
                         },
                     .reference =
                         [d, k](const std::vector<RefTensor>& in) {
                           return ref_norm(in, k, false, d.w, d.b, 1e-5);
                         },
                     .tol_scale = 2});
    if (d.b && !d.w) continue;
    std::vector<InputSpec> rins = {F(d.shape)};
    if (d.w) rins.push_back(F(d.ns, 0.5, 1.5));
    cases.push_back({.name = "rms_norm/" + d.name,
                     .inputs = rins,
                     .run =
                         [d](const std::vector<Tensor>& in) {
                           return rms_norm(in[0], d.ns, d.w ? in[1] : Tensor(), 1e-6);
                         },
                     .reference =
                         [d, k](const std::vector<RefTensor>& in) {
                           return ref_norm(in, k, true, d.w, false, 1e-6);
                         },
                     .tol_scale = 2});
  }
  return cases;
}

// batch_norm (per channel over N and the trailing dims) or group_norm (per (n, group)) of
// x (N, C, ...) with optional weight/bias; eval batch_norm reads running_mean/var from the inputs
// after them.
RefTensor ref_channel_norm(const std::vector<RefTensor>& in, int64_t groups, bool batch,
                           bool training, bool has_w, bool has_b, double eps) {
  const RefTensor& x = in[0];
  const int64_t N = x.shape[0], C = x.shape[1], L = x.numel() / std::max<int64_t>(N * C, 1);
  const size_t stats = 1 + (has_w ? 1 : 0) + (has_b ? 1 : 0);
  RefTensor out = x;
  auto at = [&](int64_t n, int64_t c, int64_t l) { return (n * C + c) * L + l; };
  // The (n, c) planes each statistic covers: one channel over every n, or one group of one n.
  const int64_t sets = batch ? C : N * groups;
  for (int64_t s = 0; s < sets; ++s) {
    std::vector<int64_t> idx;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        const bool mine = batch ? c == s : n == s / groups && c / (C / groups) == s % groups;
        if (mine)
          for (int64_t l = 0; l < L; ++l) idx.push_back(at(n, c, l));
      }
    double mean = 0, var = 0;
    if (batch && !training) {
      mean = in[stats].v[s];
      var = in[stats + 1].v[s];
    } else {
      for (int64_t i : idx) mean += x.v[i];
      mean /= static_cast<double>(idx.size());
      for (int64_t i : idx) var += (x.v[i] - mean) * (x.v[i] - mean);
      var /= static_cast<double>(idx.size());
    }
    for (int64_t i : idx) {
      const int64_t c = (i / L) % C;
      double y = (x.v[i] - mean) / std::sqrt(var + eps);
      if (has_w) y *= in[1].v[c];
      if (has_b) y += in[has_w ? 2 : 1].v[c];
      out.v[i] = y;
    }
  }
  return out;
}

// Values per group of group_norm over an (N, C, *) input.
int64_t group_len(const Shape& shape, int64_t groups) {
  int64_t n = shape[1] / groups;
  for (size_t i = 2; i < shape.size(); ++i) n *= shape[i];
  return n;
}

std::vector<OpCase> channel_norm_cases() {
  std::vector<OpCase> cases;
  struct D {
    std::string name;
    Shape shape;
    bool w, b;
    int64_t groups;
  };
  for (const D& d : std::vector<D>{{"1d_affine", {6, 4}, true, true, 2},
                                   {"1d_plain", {5, 3}, false, false, 3},
                                   {"1d_seq", {3, 4, 5}, true, true, 2},
                                   {"2d_affine", {2, 6, 3, 4}, true, true, 3},
                                   {"2d_weight_only", {3, 4, 2, 3}, true, false, 1},
                                   {"2d_bias_only", {2, 4, 3, 3}, false, true, 4},
                                   {"2d_wide", {2, 3, 40, 40}, true, true, 3},
                                   {"long_1d", {3000, 5}, true, true, 5},
                                   // past the CPU kernels' ~32K elements per thread task
                                   {"threaded_1d", {8200, 4}, true, true, 2},
                                   {"threaded_2d", {40, 6, 12, 12}, true, true, 3},
                                   {"empty_batch", {0, 4, 3}, true, true, 2}}) {
    const int64_t C = d.shape[1];
    std::vector<InputSpec> ins = {F(d.shape)};
    if (d.w) ins.push_back(F({C}, 0.5, 1.5));
    if (d.b) ins.push_back(F({C}));
    auto wb = [d](const std::vector<Tensor>& in) {
      return std::pair{d.w ? in[1] : Tensor(), d.b ? in[d.w ? 2 : 1] : Tensor()};
    };
    cases.push_back({.name = "batch_norm/train_" + d.name,
                     .inputs = ins,
                     .run =
                         [wb](const std::vector<Tensor>& in) {
                           auto [w, b] = wb(in);
                           return batch_norm(in[0], Tensor(), Tensor(), w, b, true, 0.1, 1e-5);
                         },
                     .reference =
                         [d](const std::vector<RefTensor>& in) {
                           return ref_channel_norm(in, 0, true, true, d.w, d.b, 1e-5);
                         },
                     .tol_scale = 2});
    std::vector<InputSpec> eval_ins = ins;
    eval_ins.push_back(NoGrad(F({C}, -0.5, 0.5)));
    eval_ins.push_back(NoGrad(P({C}, 0.5, 2)));
    const size_t stats = ins.size();
    cases.push_back({.name = "batch_norm/eval_" + d.name,
                     .inputs = eval_ins,
                     .run =
                         [wb, stats](const std::vector<Tensor>& in) {
                           auto [w, b] = wb(in);
                           return batch_norm(in[0], in[stats], in[stats + 1], w, b, false, 0.1,
                                             1e-5);
                         },
                     .reference =
                         [d](const std::vector<RefTensor>& in) {
                           return ref_channel_norm(in, 0, true, false, d.w, d.b, 1e-5);
                         },
                     .tol_scale = 2});
    cases.push_back({.name = "group_norm/" + d.name,
                     .inputs = ins,
                     .run =
                         [wb, d](const std::vector<Tensor>& in) {
                           auto [w, b] = wb(in);
                           return group_norm(in[0], d.groups, w, b, 1e-5);
                         },
                     .reference =
                         [d](const std::vector<RefTensor>& in) {
                           return ref_channel_norm(in, d.groups, false, true, d.w, d.b, 1e-5);
                         },
                     // torch 1.13's order, x * scale + (-scale * mean + bias): where a group
                     // holds one value, rstd is eps^-1/2 (~316) and the shift's roundings
                     // lose ~1e-7 |scale * mean| against the bias left (torch's own error
                     // there: 5.1e-5 relative).
                     .tol_scale = group_len(d.shape, d.groups) == 1 ? 4.0 : 2.0});
  }
  return cases;
}

std::vector<OpCase> loss_cases() {
  std::vector<OpCase> cases;
  struct D {
    std::string name;
    Shape x;
    Shape t;
    int64_t C;
    int64_t ignore;
    std::string red;
    double s;
  };
  const std::vector<D> ds = {
      {"mean", {32, 5}, {32}, 5, -100, "mean", 0.0},
      {"sum", {32, 5}, {32}, 5, -100, "sum", 0.0},
      {"none", {32, 5}, {32}, 5, -100, "none", 0.0},
      {"ignore_mean", {32, 5}, {32}, 5, 1, "mean", 0.0},
      {"ignore_sum", {32, 5}, {32}, 5, 1, "sum", 0.0},
      {"ignore_none", {32, 5}, {32}, 5, 1, "none", 0.0},
      {"smooth_mean", {32, 5}, {32}, 5, 1, "mean", 0.1},
      {"smooth_sum", {32, 5}, {32}, 5, 1, "sum", 0.1},
      {"smooth_none", {32, 5}, {32}, 5, -100, "none", 0.1},
      {"spatial_mean", {4, 5, 3}, {4, 3}, 5, 2, "mean", 0.0},
      {"spatial_none", {2, 4, 3, 2}, {2, 3, 2}, 4, -100, "none", 0.1},
      {"unbatched", {6}, {}, 6, -100, "mean", 0.0},
      {"unbatched_none", {6}, {}, 6, -100, "none", 0.1},
      {"empty_sum", {0, 5}, {0}, 5, -100, "sum", 0.0},
      {"many_classes", {8, 3000}, {8}, 3000, -100, "mean", 0.1},
  };
  for (const D& d : ds) {
    cases.push_back({.name = "cross_entropy/" + d.name,
                     .inputs = {F(d.x, -3, 3), Idx(d.t, d.C)},
                     .run =
                         [d](const std::vector<Tensor>& in) {
                           return cross_entropy(in[0], in[1], d.ignore, d.red, d.s);
                         },
                     .reference =
                         [d](const std::vector<RefTensor>& in) {
                           return ref_loss(in[0], in[1], true, d.ignore, d.red, d.s);
                         },
                     .tol_scale = 2});
    if (d.s != 0.0) continue;
    cases.push_back(
        {.name = "nll_loss/" + d.name,
         .inputs = {F(d.x, -5, 0), Idx(d.t, d.C)},
         .run =
             [d](const std::vector<Tensor>& in) { return nll_loss(in[0], in[1], d.ignore, d.red); },
         .reference =
             [d](const std::vector<RefTensor>& in) {
               return ref_loss(in[0], in[1], false, d.ignore, d.red, 0.0);
             }});
  }
  cases.push_back({.name = "cross_entropy/int32_target",
                   .inputs = {F({6, 4}), Idx({6}, 4, DType::int32)},
                   .run = [](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1]); },
                   .reference =
                       [](const std::vector<RefTensor>& in) {
                         return ref_loss(in[0], in[1], true, -100, "mean", 0);
                       }});
  for (const std::string red : {"none", "mean", "sum"}) {
    auto ref = [red](const std::vector<RefTensor>& in) {
      RefTensor sq = ref_binary([](double a, double b) { return (a - b) * (a - b); })(in);
      if (red == "none") return sq;
      double s = 0;
      for (double v : sq.v) s += v;
      return RefTensor{{}, {red == "sum" ? s : s / static_cast<double>(sq.v.size())}};
    };
    cases.push_back(
        {.name = "mse_loss/" + red,
         .inputs = {F({3, 4}), F({3, 4})},
         .run = [red](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], red); },
         .reference = ref});
    cases.push_back(
        {.name = "mse_loss/broadcast_" + red,
         .inputs = {F({2, 3, 4}), F({4})},
         .run = [red](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], red); },
         .reference = ref});
  }
  cases.push_back(
      {.name = "mse_loss/empty_mean",
       .inputs = {F({0, 3}), F({0, 3})},
       .run = [](const std::vector<Tensor>& in) { return mse_loss(in[0], in[1], "mean"); },
       .reference =
           [](const std::vector<RefTensor>&) {
             return RefTensor{{}, {std::nan("")}};
           }});
  return cases;
}

}  // namespace

std::vector<OpCase> softmax_and_norm_cases() {
  std::vector<OpCase> cases = softmax_cases();
  for (auto& c : norm_cases()) cases.push_back(std::move(c));
  for (auto& c : channel_norm_cases()) cases.push_back(std::move(c));
  return cases;
}

TEST(OpHarness, Norm) { run_cases(softmax_and_norm_cases()); }
TEST(OpHarnessCuda, Norm) { run_cases_on_cuda(softmax_and_norm_cases()); }
TEST(OpHarness, Loss) { run_cases(loss_cases()); }
TEST(OpHarnessCuda, Loss) { run_cases_on_cuda(loss_cases()); }

}  // namespace fabric::harness
