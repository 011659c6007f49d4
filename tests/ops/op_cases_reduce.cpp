// Harness cases for the reductions and scans: sum, mean, max/min (values and indices), amax,
// amin, argmax, argmin, var, std, norm, logsumexp, cumsum, each against a naive float64 reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using Fold = std::function<double(const std::vector<double>&)>;

// Groups the values of `in` by output position (reduced dims folded; empty dims = all).
RefTensor ref_reduce(const RefTensor& in, std::vector<int64_t> dims, bool keepdim, const Fold& f) {
  const int64_t nd = static_cast<int64_t>(in.shape.size());
  std::vector<bool> mask(static_cast<size_t>(nd), dims.empty());
  for (int64_t d : dims)
    if (nd > 0) mask[(d + nd) % nd] = true;
  Shape out_shape, kept;
  for (int64_t d = 0; d < nd; ++d) {
    if (!mask[d])
      out_shape.push_back(in.shape[d]), kept.push_back(in.shape[d]);
    else if (keepdim)
      out_shape.push_back(1);
  }
  const int64_t nout = numel_of(kept);
  std::vector<std::vector<double>> groups(static_cast<size_t>(nout));
  std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
  for (int64_t i = 0; i < in.numel(); ++i) {
    int64_t o = 0;
    for (int64_t d = 0; d < nd; ++d)
      if (!mask[d]) o = o * in.shape[d] + idx[d];
    groups[o].push_back(in.v[i]);
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[d] < in.shape[d]) break;
      idx[d] = 0;
    }
  }
  RefTensor out{out_shape, std::vector<double>(static_cast<size_t>(nout))};
  for (int64_t o = 0; o < nout; ++o) out.v[o] = f(groups[o]);
  return out;
}

double f_sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}
double f_mean(const std::vector<double>& v) { return f_sum(v) / static_cast<double>(v.size()); }
double f_max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }
double f_min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double f_argmax(const std::vector<double>& v) {
  return static_cast<double>(std::max_element(v.begin(), v.end()) - v.begin());
}
double f_argmin(const std::vector<double>& v) {
  return static_cast<double>(std::min_element(v.begin(), v.end()) - v.begin());
}
Fold f_var(double correction) {
  return [correction](const std::vector<double>& v) {
    const double m = f_mean(v);
    double s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return s / std::max(0.0, static_cast<double>(v.size()) - correction);
  };
}
Fold f_norm(double p) {
  return [p](const std::vector<double>& v) {
    if (std::isinf(p)) {
      double r = p > 0 ? 0 : std::numeric_limits<double>::infinity();
      for (double x : v) r = p > 0 ? std::max(r, std::abs(x)) : std::min(r, std::abs(x));
      return r;
    }
    double s = 0;
    for (double x : v) s += p == 0 ? (x != 0) : std::pow(std::abs(x), p);
    return p == 0 || p == 1 ? s : std::pow(s, 1.0 / p);
  };
}
double f_lse(const std::vector<double>& v) {
  double m = -std::numeric_limits<double>::infinity();
  for (double x : v) m = std::max(m, x);
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

RefTensor ref_cumsum(const RefTensor& in, int64_t dim) {
  RefTensor out = in;
  const int64_t nd = static_cast<int64_t>(in.shape.size());
  if (nd == 0) return out;
  dim = (dim + nd) % nd;
  int64_t inner = 1;
  for (int64_t d = dim + 1; d < nd; ++d) inner *= in.shape[d];
  const int64_t len = in.shape[dim];
  for (int64_t i = 0; i < in.numel(); ++i) {
    const int64_t l = (i / inner) % len;
    if (l > 0) out.v[i] = out.v[i - inner] + in.v[i];
  }
  return out;
}

struct R {
  std::string name;
  Shape shape;
  std::vector<int64_t> dims;
  bool keepdim;
};

// Shapes shared by the dims-list reductions: plain, keepdim, negative and multiple dims, size-0
// and size-1 dims, 0-dim, long rows and column sums.
std::vector<R> reduce_shapes() {
  return {{"all_2d", {3, 4}, {}, false},
          {"all_keep", {3, 4}, {}, true},
          {"dim0", {3, 4}, {0}, false},
          {"dim1_keep", {3, 4}, {1}, true},
          {"neg_dim", {2, 3, 4}, {-1}, false},
          {"multi", {2, 3, 4}, {0, 2}, false},
          {"multi_keep", {2, 3, 4}, {2, 0}, true},
          {"mid", {2, 5, 3}, {1}, false},
          {"size1", {3, 1}, {1}, false},
          {"empty_kept", {0, 5}, {1}, false},
          {"scalar", {}, {}, false},
          {"scalar_dim", {}, {0}, true},
          {"long_row", {2, 1500}, {1}, false},
          {"columns", {300, 40}, {0}, false},
          {"all_3d", {4, 3, 5}, {}, false}};
}

std::vector<OpCase> reduce_cases() {
  std::vector<OpCase> cases;
  // no_grad_single: var/std of one element is 0/0, so its derivative is undefined there.
  // no_long: |x|^0.5 sums over long rows overflow float16 once raised back to the power 2.
  auto add_dims_op = [&](const std::string& op,
                         const std::function<Tensor(const Tensor&, const R&)>& fn, const Fold& fold,
                         bool allow_empty_reduce, double tol = 1.0, bool no_grad_single = false,
                         bool no_long = false) {
    for (const R& r : reduce_shapes()) {
      const bool single = r.name == "size1" || r.name == "scalar" || r.name == "scalar_dim";
      const bool is_long = r.name == "long_row" || r.name == "columns";
      if (no_long && is_long) continue;
      OpCase c;
      c.grad_check = !(no_grad_single && single);
      c.name = op + "/" + r.name;
      c.inputs = {F(r.shape)};
      c.run = [fn, r](const std::vector<Tensor>& in) { return fn(in[0], r); };
      c.reference = [fold, r](const std::vector<RefTensor>& in) {
        return ref_reduce(in[0], r.dims, r.keepdim, fold);
      };
      c.tol_scale = r.name == "long_row" || r.name == "columns" ? 4 * tol : tol;
      // torch 1.13's CPU norm folds bfloat16 in bfloat16 outside its p = 2 last-dim kernel (a
      // 1-norm of 1500 values stops near 512), and fabric's follows it; those bits are checked
      // against torch's in test_norm_torch_rows.cpp, not against a float64 sum here.
      if (op.rfind("norm", 0) == 0 && is_long)
        c.dtypes = {DType::float64, DType::float32, DType::float16};
      cases.push_back(c);
    }
    if (allow_empty_reduce) {
      OpCase c;
      c.name = op + "/empty_reduced";
      c.inputs = {F({0, 5})};
      R r{"", {0, 5}, {0}, false};
      c.run = [fn, r](const std::vector<Tensor>& in) { return fn(in[0], r); };
      c.reference = [fold, r](const std::vector<RefTensor>& in) {
        return ref_reduce(in[0], r.dims, r.keepdim,
                          [fold](const std::vector<double>& v) { return fold(v); });
      };
      cases.push_back(c);
    }
  };
  add_dims_op(
      "sum", [](const Tensor& a, const R& r) { return sum(a, r.dims, r.keepdim); }, f_sum, true);
  add_dims_op(
      "mean", [](const Tensor& a, const R& r) { return mean(a, r.dims, r.keepdim); },
      [](const std::vector<double>& v) { return v.empty() ? std::nan("") : f_mean(v); }, true);
  add_dims_op(
      "amax", [](const Tensor& a, const R& r) { return amax(a, r.dims, r.keepdim); }, f_max, false);
  add_dims_op(
      "amin", [](const Tensor& a, const R& r) { return amin(a, r.dims, r.keepdim); }, f_min, false);
  add_dims_op(
      "var", [](const Tensor& a, const R& r) { return var(a, r.dims, 1, r.keepdim); }, f_var(1),
      true, 2, true);
  add_dims_op(
      "var_c0", [](const Tensor& a, const R& r) { return var(a, r.dims, 0, r.keepdim); }, f_var(0),
      false, 2);
  add_dims_op(
      "std", [](const Tensor& a, const R& r) { return fabric::std(a, r.dims, 1, r.keepdim); },
      [](const std::vector<double>& v) { return std::sqrt(f_var(1)(v)); }, false, 2, true);
  for (double p : {2.0, 1.0, 3.0, 0.5, 0.0}) {
    std::ostringstream name;
    name << "norm_p" << p;
    add_dims_op(
        name.str(), [p](const Tensor& a, const R& r) { return norm(a, p, r.dims, r.keepdim); },
        f_norm(p), true, 2, false, p < 1);
  }
  for (double p :
       {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()}) {
    add_dims_op(
        p > 0 ? "norm_inf" : "norm_neginf",
        [p](const Tensor& a, const R& r) { return norm(a, p, r.dims, r.keepdim); }, f_norm(p),
        false);
  }
  add_dims_op(
      "logsumexp", [](const Tensor& a, const R& r) { return logsumexp(a, r.dims, r.keepdim); },
      [](const std::vector<double>& v) {
        return v.empty() ? -std::numeric_limits<double>::infinity() : f_lse(v);
      },
      true);
  // sum/mean with a dtype override, and sum of integers and bools (int64 result).
  cases.push_back(
      {.name = "sum/dtype_f64",
       .inputs = {F({3, 7})},
       .run = [](const std::vector<Tensor>& in) { return sum(in[0], {1}, false, DType::float64); },
       .reference =
           [](const std::vector<RefTensor>& in) { return ref_reduce(in[0], {1}, false, f_sum); }});
  cases.push_back(
      {.name = "mean/dtype_f32",
       .inputs = {F({4, 6})},
       .run = [](const std::vector<Tensor>& in) { return mean(in[0], {0}, true, DType::float32); },
       .reference =
           [](const std::vector<RefTensor>& in) { return ref_reduce(in[0], {0}, true, f_mean); },
       .dtypes = {DType::float32, DType::bfloat16, DType::float16}});
  for (DType it : {DType::int64, DType::int32, DType::int8, DType::uint8}) {
    cases.push_back(
        {.name = std::string("sum/int_") + std::string(dtype_name(it)),
         .inputs = {I({5, 6}, 0, 20, it)},
         .run = [](const std::vector<Tensor>& in) { return sum(in[0], {1}); },
         .reference =
             [](const std::vector<RefTensor>& in) { return ref_reduce(in[0], {1}, false, f_sum); },
         .dtypes = {DType::float64},
         .exact = true});
    cases.push_back(
        {.name = std::string("amax/int_") + std::string(dtype_name(it)),
         .inputs = {I({5, 6}, 0, 100, it)},
         .run = [](const std::vector<Tensor>& in) { return amax(in[0], {0}); },
         .reference =
             [](const std::vector<RefTensor>& in) { return ref_reduce(in[0], {0}, false, f_max); },
         .dtypes = {DType::float64},
         .exact = true});
  }
  cases.push_back(
      {.name = "sum/bool",
       .inputs = {B({4, 9})},
       .run = [](const std::vector<Tensor>& in) { return sum(in[0], {}, false); },
       .reference =
           [](const std::vector<RefTensor>& in) { return ref_reduce(in[0], {}, false, f_sum); },
       .dtypes = {DType::float64},
       .exact = true});
  return cases;
}

std::vector<OpCase> index_cases() {
  std::vector<OpCase> cases;
  struct D {
    std::string name;
    Shape shape;
    int64_t dim;
    bool keepdim;
  };
  const std::vector<D> shapes = {{"dim1", {3, 4}, 1, false},      {"dim0_keep", {3, 4}, 0, true},
                                 {"neg", {2, 3, 4}, -2, false},   {"size1", {3, 1}, 1, false},
                                 {"empty_kept", {0, 5}, 1, true}, {"scalar", {}, 0, false},
                                 {"long", {2, 3000}, 1, false},   {"columns", {500, 33}, 0, false}};
  for (const D& d : shapes) {
    for (int which = 0; which < 2; ++which) {
      const bool is_max = which == 0;
      const std::string op = is_max ? "max" : "min";
      const Fold vf = is_max ? Fold(f_max) : Fold(f_min);
      const Fold inf = is_max ? Fold(f_argmax) : Fold(f_argmin);
      cases.push_back({.name = op + "_dim/values_" + d.name,
                       .inputs = {F(d.shape)},
                       .run =
                           [d, is_max](const std::vector<Tensor>& in) {
                             return std::get<0>(is_max ? max(in[0], d.dim, d.keepdim)
                                                       : min(in[0], d.dim, d.keepdim));
                           },
                       .reference =
                           [d, vf](const std::vector<RefTensor>& in) {
                             return ref_reduce(in[0], {d.dim}, d.keepdim, vf);
                           }});
      cases.push_back({.name = op + "_dim/indices_" + d.name,
                       .inputs = {F(d.shape)},
                       .run =
                           [d, is_max](const std::vector<Tensor>& in) {
                             return std::get<1>(is_max ? max(in[0], d.dim, d.keepdim)
                                                       : min(in[0], d.dim, d.keepdim));
                           },
                       .reference =
                           [d, inf](const std::vector<RefTensor>& in) {
                             return ref_reduce(in[0], {d.dim}, d.keepdim, inf);
                           },
                       .exact = true});
      cases.push_back({.name = std::string(is_max ? "argmax/" : "argmin/") + d.name,
                       .inputs = {F(d.shape)},
                       .run =
                           [d, is_max](const std::vector<Tensor>& in) {
                             return is_max ? argmax(in[0], d.dim, d.keepdim)
                                           : argmin(in[0], d.dim, d.keepdim);
                           },
                       .reference =
                           [d, inf](const std::vector<RefTensor>& in) {
                             return ref_reduce(in[0], {d.dim}, d.keepdim, inf);
                           },
                       .exact = true});
    }
  }
  // Without a dim: the index into the flattened input; keepdim gives all-ones dims.
  for (bool keepdim : {false, true}) {
    cases.push_back(
        {.name = std::string("argmax/flat") + (keepdim ? "_keep" : ""),
         .inputs = {F({4, 5, 3})},
         .run = [keepdim](
                    const std::vector<Tensor>& in) { return argmax(in[0], std::nullopt, keepdim); },
         .reference =
             [keepdim](const std::vector<RefTensor>& in) {
               RefTensor flat{{in[0].numel()}, in[0].v};
               RefTensor r = ref_reduce(flat, {}, false, f_argmax);
               if (keepdim) r.shape = Shape(in[0].shape.size(), 1);
               return r;
             },
         .exact = true});
    cases.push_back(
        {.name = std::string("argmin/flat") + (keepdim ? "_keep" : ""),
         .inputs = {F({6, 7})},
         .run = [keepdim](
                    const std::vector<Tensor>& in) { return argmin(in[0], std::nullopt, keepdim); },
         .reference =
             [keepdim](const std::vector<RefTensor>& in) {
               RefTensor flat{{in[0].numel()}, in[0].v};
               RefTensor r = ref_reduce(flat, {}, false, f_argmin);
               if (keepdim) r.shape = Shape(in[0].shape.size(), 1);
               return r;
             },
         .exact = true});
  }
  cases.push_back(
      {.name = "max/all",
       .inputs = {F({5, 4})},
       .run = [](const std::vector<Tensor>& in) { return max(in[0]); },
       .reference =
           [](const std::vector<RefTensor>& in) { return ref_reduce(in[0], {}, false, f_max); }});
  cases.push_back(
      {.name = "min/all_scalar",
       .inputs = {F({})},
       .run = [](const std::vector<Tensor>& in) { return min(in[0]); },
       .reference =
           [](const std::vector<RefTensor>& in) { return ref_reduce(in[0], {}, false, f_min); }});
  cases.push_back(
      {.name = "argmax/int32",
       .inputs = {I({6, 5}, 0, 4, DType::int32)},
       .run = [](const std::vector<Tensor>& in) { return argmax(in[0], 0); },
       .reference =
           [](const std::vector<RefTensor>& in) { return ref_reduce(in[0], {0}, false, f_argmax); },
       .dtypes = {DType::float64},
       .exact = true});
  return cases;
}

std::vector<OpCase> cumsum_cases() {
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
                                   {"long", {2, 700}, 1}}) {
    cases.push_back(
        {.name = "cumsum/" + d.name,
         .inputs = {F(d.shape)},
         .run = [d](const std::vector<Tensor>& in) { return cumsum(in[0], d.dim); },
         .reference = [d](const std::vector<RefTensor>& in) { return ref_cumsum(in[0], d.dim); },
         .tol_scale = d.name == "long" ? 4.0 : 1.0});
  }
  cases.push_back(
      {.name = "cumsum/int32",
       .inputs = {I({4, 5}, -10, 10, DType::int32)},
       .run = [](const std::vector<Tensor>& in) { return cumsum(in[0], 0); },
       .reference = [](const std::vector<RefTensor>& in) { return ref_cumsum(in[0], 0); },
       .dtypes = {DType::float64},
       .exact = true});
  cases.push_back(
      {.name = "cumsum/dtype_f64",
       .inputs = {F({3, 6})},
       .run = [](const std::vector<Tensor>& in) { return cumsum(in[0], 1, DType::float64); },
       .reference = [](const std::vector<RefTensor>& in) { return ref_cumsum(in[0], 1); }});
  return cases;
}

}  // namespace

std::vector<OpCase> reduce_index_cumsum_cases() {
  std::vector<OpCase> cases = reduce_cases();
  for (auto& c : index_cases()) cases.push_back(std::move(c));
  for (auto& c : cumsum_cases()) cases.push_back(std::move(c));
  return cases;
}

TEST(OpHarness, Reduce) { run_cases(reduce_index_cumsum_cases()); }
TEST(OpHarnessCuda, Reduce) { run_cases_on_cuda(reduce_index_cumsum_cases()); }

}  // namespace fabric::harness
