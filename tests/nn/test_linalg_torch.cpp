// fabric::linalg (nn/linalg.h) against torch 1.13 (tests/nn/linalg_torch_rows.h, from
// tools/fixtures/linalg_torch_rows.py): output shapes (empty batches and 0x0 matrices included),
// values, the gradients of a weighted sum of the outputs and, for some rows, a second-order
// gradient through create_graph. LAPACK (torch) and Eigen (fabric) do not give the same bits: the
// tolerance is 1e-12 (values) / 1e-10 (gradients) relative to max(1, |torch|) in float64 and
// 1e-5 / 1e-4 in float32. Eigen/singular vectors are compared with the script's column-sign
// fixing. Then torch's error messages for bad calls, and the exception types.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/linalg.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/nn/linalg_torch_rows.h"

namespace fabric {
namespace {

using linalg_torch::Row;

std::optional<double> opt(double v) {
  return std::isnan(v) ? std::nullopt : std::optional<double>(v);
}

Tensor signs_fixed(const Tensor& cols) {
  return mul(cols, sign(sum(cols.detach(), {-2})).unsqueeze(-2));
}

// tools/fixtures/linalg_torch_rows.py's call(): raw outputs, compared outputs, loss outputs.
struct Call {
  std::vector<Tensor> raw, outs;
  std::vector<size_t> loss;
};

Call call(const Row& r, const std::vector<Tensor>& in) {
  const std::string op = r.op, arg = r.arg;
  const Tensor& A = in[0];
  const Tensor B = in.size() > 1 ? in[1] : Tensor();
  const auto same = [](std::vector<Tensor> v, std::vector<size_t> loss) {
    return Call{v, v, std::move(loss)};
  };
  if (op == "inv") return same({linalg::inv(A)}, {0});
  if (op == "inv_ex") {
    auto [X, info] = linalg::inv_ex(A);
    return same({X, info}, {0});
  }
  if (op == "inv_ex_info" || op == "solve_ex_info" || op == "cholesky_ex_info") {
    auto [X, info] = op == "inv_ex_info"     ? linalg::inv_ex(A)
                     : op == "solve_ex_info" ? linalg::solve_ex(A, B)
                                             : linalg::cholesky_ex(A, r.flag);
    return Call{{X, info}, {info}, {}};
  }
  if (op == "det") return same({linalg::det(A)}, {0});
  if (op == "slogdet") {
    auto [s, l] = linalg::slogdet(A);
    return same({s, l}, {1});
  }
  if (op == "solve") return same({linalg::solve(A, B, r.flag)}, {0});
  if (op == "solve_ex") {
    auto [X, info] = linalg::solve_ex(A, B, r.flag);
    return same({X, info}, {0});
  }
  if (op == "solve_triangular") {
    const bool upper = arg.rfind("upper", 0) == 0;
    const bool unit = arg.size() >= 4 && arg.substr(arg.size() - 4) == "unit";
    return same({linalg::solve_triangular(A, B, upper, r.flag, unit)}, {0});
  }
  if (op == "cholesky") return same({linalg::cholesky(A, r.flag)}, {0});
  if (op == "cholesky_ex") {
    auto [L, info] = linalg::cholesky_ex(A, r.flag);
    return same({L, info}, {0});
  }
  if (op == "qr") {
    auto [Q, R] = linalg::qr(A, arg);
    return same({Q, R}, arg == "r" ? std::vector<size_t>{} : std::vector<size_t>{0, 1});
  }
  if (op == "eigh") {
    auto [L, V] = linalg::eigh(A, arg);
    return Call{{L, V}, {L, signs_fixed(V)}, {0, 1}};
  }
  if (op == "eigvalsh") return same({linalg::eigvalsh(A, arg)}, {0});
  if (op == "svd") {
    auto [U, S, Vh] = linalg::svd(A, r.flag);
    const int64_t k = S.size(-1);
    const Tensor Uk = U.narrow(-1, 0, k), Vhk = Vh.narrow(-2, 0, k);
    const Tensor s = sign(sum(Uk.detach(), {-2}));
    return Call{{U, S, Vh}, {mul(Uk, s.unsqueeze(-2)), S, mul(Vhk, s.unsqueeze(-1))}, {0, 1, 2}};
  }
  if (op == "svdvals") return same({linalg::svdvals(A)}, {0});
  if (op == "pinv") return same({linalg::pinv(A, opt(r.nums[0]), opt(r.nums[1]), r.flag)}, {0});
  if (op == "matrix_rank") {
    return same({linalg::matrix_rank(A, opt(r.nums[0]), opt(r.nums[1]), r.flag)}, {});
  }
  if (op == "lstsq") {
    auto [X, res, rank, sv] = linalg::lstsq(A, B, opt(r.nums[0]), arg);
    return same({X, res, rank, sv}, {0});
  }
  if (op == "matrix_norm") {
    const Tensor n = arg.empty() ? linalg::matrix_norm(A, r.nums[0], r.dims, r.flag)
                                 : linalg::matrix_norm(A, arg, r.dims, r.flag);
    return same({n}, {0});
  }
  if (op == "vector_norm") return same({linalg::vector_norm(A, r.nums[0], r.dims, r.flag)}, {0});
  if (op == "matrix_power") {
    return same({linalg::matrix_power(A, static_cast<int64_t>(r.nums[0]))}, {0});
  }
  if (op == "multi_dot") return same({linalg::multi_dot(in)}, {0});
  ADD_FAILURE() << "unknown op " << op;
  return {};
}

Tensor weights(const Tensor& t, double (*f)(size_t), DType dtype) {
  std::vector<double> w(static_cast<size_t>(t.numel()));
  for (size_t j = 0; j < w.size(); ++j) w[j] = f(j);
  return from_vector(w, {static_cast<int64_t>(w.size())}, {.dtype = DType::float64})
      .reshape(t.sizes())
      .to(dtype);
}

// The largest relative error seen per dtype and kind (values, gradients), for the summary line.
std::map<std::string, double>& worst() {
  static std::map<std::string, double> w;
  return w;
}

void expect_close(const Tensor& got, const std::vector<double>& want, double tol,
                  const std::string& what, const std::string& kind) {
  const std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  int shown = 0;
  double& w = worst()[kind];
  for (size_t i = 0; i < g.size() && shown < 4; ++i) {
    if (std::isnan(g[i]) && std::isnan(want[i])) continue;
    if (std::isinf(want[i]) && g[i] == want[i]) continue;
    const double err = std::abs(g[i] - want[i]) / std::max(1.0, std::abs(want[i]));
    w = std::max(w, err);
    if (err <= tol) continue;
    ADD_FAILURE() << what << "[" << i << "]: " << g[i] << " vs torch " << want[i]
                  << " (relative error " << err << ", tolerance " << tol << ")";
    ++shown;
  }
}

TEST(LinalgTorch, ShapesValuesAndGradientsMatchTorch) {
  for (const Row& r : linalg_torch::rows()) {
    SCOPED_TRACE(r.name);
    const DType dt = std::string(r.dtype) == "float64" ? DType::float64 : DType::float32;
    const bool grad = !r.grads.empty();
    std::vector<Tensor> in;
    for (size_t i = 0; i < r.ins.size(); ++i) {
      Tensor t = from_vector(r.ins[i], r.in_shapes[i], {.dtype = DType::float64}).to(dt);
      if (grad) t.set_requires_grad(true);
      in.push_back(t);
    }
    const Call c = call(r, in);
    ASSERT_EQ(c.raw.size(), r.out_shapes.size());
    for (size_t k = 0; k < c.raw.size(); ++k)
      EXPECT_EQ(c.raw[k].sizes(), r.out_shapes[k]) << "output " << k;
    ASSERT_EQ(c.outs.size(), r.outs.size());
    for (size_t k = 0; k < c.outs.size(); ++k)
      expect_close(c.outs[k], r.outs[k], r.tol, "output " + std::to_string(k),
                   std::string(r.dtype) + " values");
    if (!grad) continue;
    Tensor loss;
    for (size_t i : c.loss) {
      const double shift = 1.3 * static_cast<double>(i + 1);
      std::vector<double> w(static_cast<size_t>(c.outs[i].numel()));
      for (size_t j = 0; j < w.size(); ++j)
        w[j] = std::sin(0.37 * static_cast<double>(j + 1) + shift);
      const Tensor wt = from_vector(w, {static_cast<int64_t>(w.size())}, {.dtype = DType::float64})
                            .reshape(c.outs[i].sizes())
                            .to(c.outs[i].dtype());
      const Tensor term = sum(mul(c.outs[i], wt));
      loss = loss.defined() ? add(loss, term) : term;
    }
    const bool second = !r.grads2.empty();
    const std::vector<Tensor> g = fabric::grad({loss}, in, {}, std::nullopt, second, true);
    for (size_t i = 0; i < in.size(); ++i)
      expect_close(g[i].defined() ? g[i] : zeros_like(in[i]), r.grads[i], r.grad_tol,
                   "gradient of input " + std::to_string(i), std::string(r.dtype) + " gradients");
    if (!second) continue;
    const Tensor w2 = weights(
        g[0], [](size_t j) { return std::cos(0.23 * static_cast<double>(j + 1)); }, dt);
    const std::vector<Tensor> g2 =
        fabric::grad({sum(mul(g[0], w2))}, {in[0]}, {}, std::nullopt, false, true);
    expect_close(g2[0].defined() ? g2[0] : zeros_like(in[0]), r.grads2[0], r.grad_tol * 10,
                 "second-order gradient", std::string(r.dtype) + " second-order gradients");
  }
  for (const auto& [kind, err] : worst())
    std::printf("largest relative difference from torch, %s: %.3g\n", kind.c_str(), err);
}

Tensor m(std::vector<double> v, Shape s, DType dt = DType::float32) {
  return from_vector(v, std::move(s), {.dtype = DType::float64}).to(dt);
}
Tensor ones_of(Shape s, DType dt = DType::float32) { return ones(s, {.dtype = dt}); }
Tensor id(int64_t n) { return eye(n, std::nullopt, {.dtype = DType::float32}); }

// The calls of tools/fixtures/linalg_torch_rows.py's ERRORS, by name.
const std::map<std::string, std::function<void()>>& bad_calls() {
  using namespace linalg;
  const Tensor sing = m({1, 2, 2, 4}, {2, 2});
  const Tensor not_pd = m({1, 2, 2, 1}, {2, 2});
  static const std::map<std::string, std::function<void()>> calls = {
      {"inv_singular", [=] { inv(sing); }},
      {"inv_batch_singular",
       [=] {
         inv(stack({id(2), sing}));
       }},
      {"inv_ex_check",
       [] {
         inv_ex(zeros({2, 2}), true);
       }},
      {"inv_not_square",
       [] {
         inv(ones_of({2, 3}));
       }},
      {"inv_1d", [] { inv(ones_of({3})); }},
      {"inv_bf16",
       [] {
         inv(ones_of({2, 2}, DType::bfloat16));
       }},
      {"inv_half",
       [] {
         inv(ones_of({2, 2}, DType::float16));
       }},
      {"inv_long",
       [] {
         inv(ones_of({2, 2}, DType::int64));
       }},
      {"det_bf16",
       [] {
         det(ones_of({2, 2}, DType::bfloat16));
       }},
      {"det_long",
       [] {
         det(ones_of({2, 2}, DType::int64));
       }},
      {"det_not_square",
       [] {
         det(ones_of({2, 3}));
       }},
      {"slogdet_bf16",
       [] {
         slogdet(ones_of({2, 2}, DType::bfloat16));
       }},
      {"solve_singular",
       [] {
         solve(ones_of({2, 2}), ones_of({2}));
       }},
      {"solve_batch_singular",
       [] {
         solve(stack({id(2), ones_of({2, 2})}), ones_of({2, 2, 1}));
       }},
      {"solve_shapes", [] { solve(id(2), ones_of({3})); }},
      {"solve_shapes_left_false",
       [] {
         solve(id(2), ones_of({2, 3}), false);
       }},
      {"solve_dtypes",
       [] {
         solve(id(2), ones_of({2, 1}, DType::float64));
       }},
      {"solve_b_0d", [] { solve(id(2), scalar_tensor(1.0, {.dtype = DType::float32})); }},
      {"solve_bf16",
       [] {
         solve(ones_of({2, 2}, DType::bfloat16), ones_of({2}, DType::bfloat16));
       }},
      {"solve_long",
       [] {
         solve(ones_of({2, 2}, DType::int64), ones_of({2}, DType::int64));
       }},
      {"solve_triangular_b_1d", [] { solve_triangular(id(2), ones_of({2}), true); }},
      {"solve_triangular_shapes",
       [] {
         solve_triangular(id(2), ones_of({3, 2}), true);
       }},
      {"solve_triangular_long",
       [] {
         solve_triangular(ones_of({2, 2}, DType::int64), ones_of({2, 2}, DType::int64), true);
       }},
      {"cholesky_not_pd", [=] { cholesky(not_pd); }},
      {"cholesky_batch_not_pd",
       [=] {
         cholesky(stack({id(2), not_pd}));
       }},
      {"cholesky_first_minor",
       [] {
         cholesky(m({-1, 2, 2, 1}, {2, 2}));
       }},
      {"cholesky_ex_check",
       [] {
         cholesky_ex(zeros({2, 2}), false, true);
       }},
      {"cholesky_bf16",
       [] {
         cholesky(ones_of({2, 2}, DType::bfloat16));
       }},
      {"qr_mode",
       [] {
         qr(ones_of({2, 2}), "x");
       }},
      {"qr_1d", [] { qr(ones_of({3})); }},
      {"qr_bf16",
       [] {
         qr(ones_of({2, 2}, DType::bfloat16));
       }},
      {"qr_r_backward",
       [] {
         sum(std::get<1>(qr(ones_of({3, 2}).set_requires_grad(true), "r"))).backward();
       }},
      {"qr_complete_tall_backward",
       [] {
         sum(std::get<0>(qr(ones_of({3, 2}).set_requires_grad(true), "complete"))).backward();
       }},
      {"eigh_uplo",
       [] {
         eigh(ones_of({2, 2}), "X");
       }},
      {"eigh_not_square",
       [] {
         eigh(ones_of({2, 3}));
       }},
      {"eigh_bf16",
       [] {
         eigh(ones_of({2, 2}, DType::bfloat16));
       }},
      {"svd_1d", [] { svd(ones_of({3})); }},
      {"svd_half",
       [] {
         svd(ones_of({2, 2}, DType::float16));
       }},
      {"svd_long",
       [] {
         svd(ones_of({2, 2}, DType::int64));
       }},
      {"pinv_half",
       [] {
         pinv(ones_of({2, 2}, DType::float16));
       }},
      {"matrix_rank_1d", [] { matrix_rank(ones_of({3})); }},
      {"lstsq_1d", [] { lstsq(ones_of({4}), ones_of({4})); }},
      {"lstsq_b_0d",
       [] {
         lstsq(ones_of({2, 2}), scalar_tensor(1.0, {.dtype = DType::float32}));
       }},
      {"lstsq_dims",
       [] {
         lstsq(ones_of({4, 3}), ones_of({2, 4, 2}));
       }},
      {"lstsq_rows_vector",
       [] {
         lstsq(ones_of({2, 4, 3}), ones_of({4, 2}));
       }},
      {"lstsq_rows",
       [] {
         lstsq(ones_of({2, 3}), ones_of({3, 2}));
       }},
      {"lstsq_driver",
       [] {
         lstsq(ones_of({2, 3}), ones_of({2, 2}), std::nullopt, "foo");
       }},
      {"lstsq_dtypes",
       [] {
         lstsq(ones_of({2, 3}, DType::float64), ones_of({2, 2}));
       }},
      {"matrix_norm_order",
       [] {
         matrix_norm(ones_of({2, 2}), 3.0);
       }},
      {"matrix_norm_order_str",
       [] {
         matrix_norm(ones_of({2, 2}), "abc");
       }},
      {"matrix_norm_1d", [] { matrix_norm(ones_of({2})); }},
      {"matrix_norm_same_dims",
       [] {
         matrix_norm(ones_of({2, 2}), "fro", {0, 0});
       }},
      {"matrix_norm_three_dims",
       [] {
         matrix_norm(ones_of({2, 2}), "fro", {0, 1, 1});
       }},
      {"matrix_norm_half_nuc",
       [] {
         matrix_norm(ones_of({2, 2}, DType::float16), "nuc");
       }},
      {"matrix_norm_long",
       [] {
         matrix_norm(ones_of({2, 2}, DType::int64), 1.0);
       }},
      {"matrix_norm_dtype",
       [] {
         matrix_norm(ones_of({2, 2}), 1.0, {-2, -1}, false, DType::int64);
       }},
      {"matrix_power_not_square",
       [] {
         matrix_power(ones_of({2, 3}), 2);
       }},
      {"matrix_power_1d", [] { matrix_power(ones_of({3}), 2); }},
      {"multi_dot_one",
       [] {
         multi_dot({ones_of({2, 3})});
       }},
      {"multi_dot_first_3d",
       [] {
         multi_dot({ones_of({2, 3, 3}), ones_of({3, 3})});
       }},
      {"multi_dot_last_3d",
       [] {
         multi_dot({ones_of({2, 3}), ones_of({3, 3, 3})});
       }},
      {"multi_dot_middle_1d",
       [] {
         multi_dot({ones_of({2, 3}), ones_of({3}), ones_of({3, 3})});
       }},
      {"multi_dot_shapes",
       [] {
         multi_dot({ones_of({2, 3}), ones_of({4, 3})});
       }},
  };
  return calls;
}

TEST(LinalgTorch, ErrorMessagesContainTorchs) {
  for (const linalg_torch::ErrorRow& e : linalg_torch::error_rows()) {
    SCOPED_TRACE(e.name);
    const auto it = bad_calls().find(e.name);
    ASSERT_NE(it, bad_calls().end()) << "no call for " << e.name;
    EXPECT_CONTAINS(thrown<Error>(it->second), e.message);
  }
}

TEST(LinalgTorch, ErrorTypes) {
  const auto& c = bad_calls();
  // torch's LinAlgError is a ValueError here; shapes ShapeError; dtypes DTypeError.
  for (const char* n : {"inv_singular", "solve_batch_singular", "cholesky_not_pd", "qr_r_backward",
                        "qr_mode", "lstsq_driver"})
    thrown<ValueError>(c.at(n));
  for (const char* n :
       {"inv_not_square", "inv_1d", "solve_shapes", "lstsq_rows", "multi_dot_shapes"})
    thrown<ShapeError>(c.at(n));
  for (const char* n : {"inv_bf16", "det_bf16", "svd_half", "solve_dtypes", "matrix_norm_long"})
    thrown<DTypeError>(c.at(n));
  // The dtype errors name what is supported.
  EXPECT_CONTAINS(thrown<DTypeError>(c.at("det_bf16")), "supported: float32, float64");
}

}  // namespace
}  // namespace fabric
