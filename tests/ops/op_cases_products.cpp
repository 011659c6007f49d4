// Harness cases for the products: addmm, baddbmm, addbmm, dot, outer, einsum, tensordot,
// diagonal, diag, trace, cdist, dist, cross, bilinear and addcdiv, against naive float64
// references (most through one loop-over-every-index einsum written here), with finite-difference
// gradients. torch's own values are in test_products_torch.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

using TV = std::vector<Tensor>;
using RV = std::vector<RefTensor>;
const double kInf = std::numeric_limits<double>::infinity();

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

// The einsum definition itself: every assignment of every subscript, the product of the operands'
// elements added into the output's. Letters and an explicit "->" only.
RefTensor ref_einsum(const std::string& eq, const RV& in) {
  const size_t arrow = eq.find("->");
  std::vector<std::string> terms;
  for (size_t s = 0;;) {
    const size_t c = eq.find(',', s);
    terms.push_back(eq.substr(s, std::min(c, arrow) - s));
    if (c == std::string::npos || c > arrow) break;
    s = c + 1;
  }
  const std::string out = eq.substr(arrow + 2);
  std::map<char, int64_t> size;
  for (size_t i = 0; i < terms.size(); ++i)
    for (size_t d = 0; d < terms[i].size(); ++d) size[terms[i][d]] = in[i].shape[d];
  std::string labels;
  Shape all;
  for (auto [c, n] : size) labels.push_back(c), all.push_back(n);
  Shape out_shape;
  for (char c : out) out_shape.push_back(size[c]);
  RefTensor r{out_shape, std::vector<double>(numel_of(out_shape), 0.0)};
  auto pick = [&](const std::string& term, const std::vector<int64_t>& idx) {
    std::vector<int64_t> at;
    for (char c : term) at.push_back(idx[labels.find(c)]);
    return at;
  };
  for_each_index(all, [&](const std::vector<int64_t>& idx) {
    double p = 1;
    for (size_t i = 0; i < terms.size(); ++i) p *= in[i].at(pick(terms[i], idx));
    r.v[r.index(pick(out, idx))] += p;
  });
  return r;
}

// a broadcast to b's shape, times sa, plus b times sb.
RefTensor ref_axpby(const RefTensor& a, double sa, const RefTensor& b, double sb) {
  RefTensor r = b;
  int64_t i = 0;
  for_each_index(b.shape, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> at;
    const size_t lead = b.shape.size() - a.shape.size();
    for (size_t d = 0; d < a.shape.size(); ++d) at.push_back(a.shape[d] == 1 ? 0 : idx[lead + d]);
    r.v[i] = (sa == 0 ? 0 : sa * a.at(at)) + sb * b.v[i];
    ++i;
  });
  return r;
}

OpCase einsum_case(std::string eq, std::vector<InputSpec> in, double tol = 1.0) {
  return {"einsum/" + eq,
          std::move(in),
          [eq](const TV& t) { return einsum(eq, t); },
          [eq](const RV& t) { return ref_einsum(eq, t); },
          {DType::float64, DType::float32, DType::bfloat16, DType::float16},
          tol};
}

// beta * self + alpha * product, the product written as an einsum.
OpCase add_product_case(std::string name, std::vector<InputSpec> in,
                        std::function<Tensor(const TV&, double, double)> op, std::string eq,
                        double beta, double alpha) {
  return {name, std::move(in), [op, beta, alpha](const TV& t) { return op(t, beta, alpha); },
          [eq, beta, alpha](const RV& t) {
            return ref_axpby(t[0], beta, ref_einsum(eq, {t[1], t[2]}), alpha);
          }};
}

RefTensor ref_diagonal(const RefTensor& a, int64_t offset, int64_t d1, int64_t d2) {
  const int64_t nd = static_cast<int64_t>(a.shape.size());
  d1 = (d1 + nd) % nd;
  d2 = (d2 + nd) % nd;
  const int64_t rows = a.shape[d1], cols = a.shape[d2];
  const int64_t len = std::max<int64_t>(
      0, offset >= 0 ? std::min(rows, cols - offset) : std::min(rows + offset, cols));
  Shape s;
  for (int64_t d = 0; d < nd; ++d)
    if (d != d1 && d != d2) s.push_back(a.shape[d]);
  s.push_back(len);
  RefTensor r{s, std::vector<double>(numel_of(s))};
  int64_t i = 0;
  for_each_index(s, [&](const std::vector<int64_t>& idx) {
    std::vector<int64_t> at(nd);
    size_t k = 0;
    for (int64_t d = 0; d < nd; ++d)
      if (d != d1 && d != d2) at[d] = idx[k++];
    at[d1] = idx.back() + std::max<int64_t>(-offset, 0);
    at[d2] = idx.back() + std::max<int64_t>(offset, 0);
    r.v[i++] = a.at(at);
  });
  return r;
}

OpCase diagonal_case(std::string name, Shape x, int64_t offset, int64_t d1, int64_t d2) {
  return {"diagonal/" + name,
          {F(std::move(x))},
          [=](const TV& t) { return diagonal(t[0], offset, d1, d2); },
          [=](const RV& t) { return ref_diagonal(t[0], offset, d1, d2); }};
}

OpCase diag_case(std::string name, Shape x, int64_t offset) {
  return {"diag/" + name,
          {F(std::move(x))},
          [=](const TV& t) { return diag(t[0], offset); },
          [=](const RV& t) {
            if (t[0].shape.size() == 2) return ref_diagonal(t[0], offset, 0, 1);
            const int64_t n = t[0].shape[0] + std::abs(offset);
            RefTensor r{{n, n}, std::vector<double>(n * n, 0.0)};
            for (int64_t i = 0; i < t[0].shape[0]; ++i)
              r.v[(i + std::max<int64_t>(-offset, 0)) * n + i + std::max<int64_t>(offset, 0)] =
                  t[0].v[i];
            return r;
          }};
}

// (..., P, M) and (..., R, M) with equal batch dims.
RefTensor ref_cdist(const RefTensor& a, const RefTensor& b, double p) {
  const size_t nd = a.shape.size();
  const int64_t P = a.shape[nd - 2], Rr = b.shape[nd - 2], M = a.shape[nd - 1];
  const int64_t batch = a.numel() / std::max<int64_t>(P * M, 1);
  Shape s(a.shape.begin(), a.shape.end() - 1);
  s.push_back(Rr);
  RefTensor r{s, std::vector<double>(numel_of(s))};
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t i = 0; i < P; ++i)
      for (int64_t j = 0; j < Rr; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < M; ++k) {
          const double d = std::abs(a.v[(n * P + i) * M + k] - b.v[(n * Rr + j) * M + k]);
          if (p == 0)
            acc += d != 0;
          else if (std::isinf(p))
            acc = std::max(acc, d);
          else
            acc += std::pow(d, p);
        }
        r.v[(n * P + i) * Rr + j] = (p == 0 || std::isinf(p)) ? acc : std::pow(acc, 1 / p);
      }
  return r;
}

OpCase cdist_case(std::string name, Shape a, Shape b, double p, double tol = 1.0,
                  std::vector<DType> dtypes = {DType::float64, DType::float32, DType::bfloat16,
                                               DType::float16}) {
  return {"cdist/" + name,
          {F(std::move(a)), F(std::move(b))},
          [p](const TV& t) { return cdist(t[0], t[1], p); },
          [p](const RV& t) { return ref_cdist(t[0], t[1], p); },
          std::move(dtypes),
          tol,
          true,
          false,
          p != 0};  // p = 0 counts: no gradient to check
}

RefTensor ref_cross(const RefTensor& a, const RefTensor& b, int64_t dim) {
  // Both already of one shape here; components along `dim`.
  const int64_t nd = static_cast<int64_t>(a.shape.size());
  const int64_t d = (dim + nd) % nd;
  int64_t inner = 1;
  for (int64_t i = d + 1; i < nd; ++i) inner *= a.shape[i];
  RefTensor r = a;
  const int64_t outer = a.numel() / (3 * inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      auto x = [&](const RefTensor& t, int k) { return t.v[(o * 3 + k) * inner + in]; };
      for (int k = 0; k < 3; ++k) {
        const int k1 = (k + 1) % 3, k2 = (k + 2) % 3;
        r.v[(o * 3 + k) * inner + in] = x(a, k1) * x(b, k2) - x(a, k2) * x(b, k1);
      }
    }
  return r;
}

}  // namespace

std::vector<OpCase> product_cases() {
  auto addmm_op = [](const TV& t, double beta, double alpha) {
    return addmm(t[0], t[1], t[2], beta, alpha);
  };
  auto baddbmm_op = [](const TV& t, double beta, double alpha) {
    return baddbmm(t[0], t[1], t[2], beta, alpha);
  };
  auto addbmm_op = [](const TV& t, double beta, double alpha) {
    return addbmm(t[0], t[1], t[2], beta, alpha);
  };
  std::vector<OpCase> cases = {
      // self as a full matrix, a row (the GEMM's bias), a column and a scalar; beta 0 never
      // reads self; 0.1 is not a float, so float64 scales after the GEMM.
      add_product_case("addmm/full", {F({3, 5}), F({3, 4}), F({4, 5})}, addmm_op, "ij,jk->ik", 1,
                       1),
      add_product_case("addmm/row_bias", {F({5}), F({3, 4}), F({4, 5})}, addmm_op, "ij,jk->ik", 1,
                       1),
      add_product_case("addmm/row_beta_alpha", {F({1, 5}), F({3, 4}), F({4, 5})}, addmm_op,
                       "ij,jk->ik", 0.5, -2),
      add_product_case("addmm/column", {F({3, 1}), F({3, 4}), F({4, 5})}, addmm_op, "ij,jk->ik", 2,
                       0.5),
      add_product_case("addmm/scalar_self", {F({}), F({3, 4}), F({4, 5})}, addmm_op, "ij,jk->ik",
                       1.5, 1),
      add_product_case("addmm/beta0", {F({3, 5}), F({3, 4}), F({4, 5})}, addmm_op, "ij,jk->ik", 0,
                       1.5),
      add_product_case("addmm/inexact_scalars", {F({3, 5}), F({3, 4}), F({4, 5})}, addmm_op,
                       "ij,jk->ik", 0.1, 0.3),
      add_product_case("addmm/K0", {F({3, 5}), F({3, 0}), F({0, 5})}, addmm_op, "ij,jk->ik", 0.5,
                       1),
      add_product_case("baddbmm/full", {F({2, 3, 5}), F({2, 3, 4}), F({2, 4, 5})}, baddbmm_op,
                       "bij,bjk->bik", 0.5, 2),
      add_product_case("baddbmm/row_bias", {F({5}), F({2, 3, 4}), F({2, 4, 5})}, baddbmm_op,
                       "bij,bjk->bik", 1, 1),
      add_product_case("baddbmm/batch_broadcast", {F({3, 5}), F({2, 3, 4}), F({2, 4, 5})},
                       baddbmm_op, "bij,bjk->bik", -1, 0.5),
      add_product_case("baddbmm/beta0", {F({2, 3, 5}), F({2, 3, 4}), F({2, 4, 5})}, baddbmm_op,
                       "bij,bjk->bik", 0, 1),
      add_product_case("addbmm/full", {F({3, 5}), F({4, 3, 2}), F({4, 2, 5})}, addbmm_op,
                       "bij,bjk->ik", 0.5, 2),
      add_product_case("addbmm/row_bias", {F({5}), F({2, 3, 4}), F({2, 4, 5})}, addbmm_op,
                       "bij,bjk->ik", 1, 1),
      add_product_case("addbmm/inexact_scalars", {F({3, 5}), F({2, 3, 4}), F({2, 4, 5})}, addbmm_op,
                       "bij,bjk->ik", 0.7, 0.1),
      {"dot/basic",
       {F({7}), F({7})},
       [](const TV& t) { return dot(t[0], t[1]); },
       [](const RV& t) { return ref_einsum("i,i->", t); }},
      {"dot/empty",
       {F({0}), F({0})},
       [](const TV& t) { return dot(t[0], t[1]); },
       [](const RV& t) { return ref_einsum("i,i->", t); }},
      {"outer/basic",
       {F({4}), F({3})},
       [](const TV& t) { return outer(t[0], t[1]); },
       [](const RV& t) { return ref_einsum("i,j->ij", t); }},
      einsum_case("ij,jk->ik", {F({3, 4}), F({4, 5})}),
      einsum_case("bij,bjk->bik", {F({2, 3, 4}), F({2, 4, 2})}),
      einsum_case("ii->i", {F({4, 4})}),
      einsum_case("ii->", {F({4, 4})}),
      einsum_case("ij->ji", {F({3, 4})}),
      einsum_case("ij->", {F({3, 4})}),
      einsum_case("i,j->ij", {F({3}), F({4})}),
      einsum_case("ijk,ikl,ilm->ijm", {F({2, 3, 2}), F({2, 2, 3}), F({2, 3, 2})}),
      einsum_case("bn,anm,bm->ba", {F({2, 3}), F({4, 3, 2}), F({2, 2})}),
      einsum_case("iij,jk->ik", {F({3, 3, 2}), F({2, 4})}),
      einsum_case("ij,ij->i", {F({3, 4}), F({3, 4})}),
      einsum_case("abc,cd,ae->bde", {F({2, 3, 2}), F({2, 3}), F({2, 2})}),
      // Implicit output and "...": checked against the explicit equation's reference.
      {"einsum/implicit_ij,jk",
       {F({3, 4}), F({4, 5})},
       [](const TV& t) { return einsum("ij,jk", t); },
       [](const RV& t) { return ref_einsum("ij,jk->ik", t); }},
      {"einsum/implicit_ba_sorted",
       {F({3, 4})},
       [](const TV& t) { return einsum("ba", t); },
       [](const RV& t) { return ref_einsum("ba->ab", t); }},
      {"einsum/ellipsis_batch",
       {F({2, 3, 4}), F({4, 5})},
       [](const TV& t) { return einsum("...ij,jk->...ik", t); },
       [](const RV& t) { return ref_einsum("bij,jk->bik", t); }},
      {"tensordot/dims2",
       {F({2, 3, 4}), F({3, 4, 5})},
       [](const TV& t) { return tensordot(t[0], t[1], 2); },
       [](const RV& t) { return ref_einsum("ijk,jkl->il", t); }},
      {"tensordot/dims0_outer",
       {F({2, 3}), F({4})},
       [](const TV& t) { return tensordot(t[0], t[1], 0); },
       [](const RV& t) { return ref_einsum("ij,k->ijk", t); }},
      {"tensordot/lists",
       {F({4, 3, 2}), F({2, 5, 4})},
       [](const TV& t) {
         return tensordot(t[0], t[1], {0, 2}, {2, 0});
       },
       [](const RV& t) { return ref_einsum("ijk,kli->jl", t); }},
      diagonal_case("main", {4, 4}, 0, 0, 1),
      diagonal_case("offset_pos", {3, 5}, 2, 0, 1),
      diagonal_case("offset_neg", {5, 3}, -1, 0, 1),
      diagonal_case("offset_past_end", {3, 3}, 4, 0, 1),
      diagonal_case("3d_dims", {2, 3, 4}, 1, 2, 0),
      diagonal_case("negative_dims", {2, 3, 3}, 0, -1, -2),
      diag_case("vector", {4}, 0),
      diag_case("vector_offset", {3}, 2),
      diag_case("vector_neg_offset", {3}, -1),
      diag_case("matrix", {4, 5}, 1),
      {"trace/square",
       {F({4, 4})},
       [](const TV& t) { return trace(t[0]); },
       [](const RV& t) { return ref_einsum("ii->", t); }},
      {"trace/rect",
       {F({3, 5})},
       [](const TV& t) { return trace(t[0]); },
       [](const RV& t) {
         double s = 0;
         for (int64_t i = 0; i < 3; ++i) s += t[0].v[i * 5 + i];
         return RefTensor{{}, {s}};
       }},
      cdist_case("p2", {4, 3}, {5, 3}, 2),
      cdist_case("p1", {2, 4, 3}, {2, 5, 3}, 1),
      cdist_case("p_inf", {4, 3}, {5, 3}, kInf),
      cdist_case("p0", {4, 3}, {5, 3}, 0),
      cdist_case("p3", {3, 4}, {2, 4}, 3),
      cdist_case("p0_5", {3, 4}, {2, 4}, 0.5),
      // More than 25 rows: torch's matmul formula for p = 2, whose cancellation (|x|^2 - 2 x.y +
      // |y|^2) a half dtype cannot hold, in torch as here: float32 and float64 only.
      cdist_case("p2_mm_path", {30, 4}, {6, 4}, 2, 4.0, {DType::float64, DType::float32}),
      {"dist/p2",
       {F({3, 4}), F({4})},
       [](const TV& t) { return dist(t[0], t[1]); },
       [](const RV& t) {
         double s = 0;
         for (int64_t i = 0; i < 12; ++i) s += std::pow(t[0].v[i] - t[1].v[i % 4], 2);
         return RefTensor{{}, {std::sqrt(s)}};
       }},
      {"dist/p1",
       {F({5}), F({5})},
       [](const TV& t) { return dist(t[0], t[1], 1); },
       [](const RV& t) {
         double s = 0;
         for (int64_t i = 0; i < 5; ++i) s += std::abs(t[0].v[i] - t[1].v[i]);
         return RefTensor{{}, {s}};
       }},
      {"cross/last_dim",
       {F({4, 3}), F({4, 3})},
       [](const TV& t) { return cross(t[0], t[1]); },
       [](const RV& t) { return ref_cross(t[0], t[1], -1); }},
      {"cross/dim0",
       {F({3, 2, 2}), F({3, 2, 2})},
       [](const TV& t) { return cross(t[0], t[1], 0); },
       [](const RV& t) { return ref_cross(t[0], t[1], 0); }},
      {"cross/broadcast",
       {F({2, 3}), F({1, 3})},
       [](const TV& t) { return cross(t[0], t[1]); },
       [](const RV& t) {
         RefTensor b{{2, 3}, {}};
         for (int r = 0; r < 2; ++r) b.v.insert(b.v.end(), t[1].v.begin(), t[1].v.end());
         return ref_cross(t[0], b, -1);
       }},
      {"bilinear/bias",
       {F({4, 3}), F({4, 2}), F({5, 3, 2}), F({5})},
       [](const TV& t) { return bilinear(t[0], t[1], t[2], t[3]); },
       [](const RV& t) {
         return ref_axpby(t[3], 1, ref_einsum("ni,oij,nj->no", {t[0], t[2], t[1]}), 1);
       }},
      {"bilinear/3d_no_bias",
       {F({2, 3, 3}), F({2, 3, 4}), F({2, 3, 4})},
       [](const TV& t) { return bilinear(t[0], t[1], t[2]); },
       [](const RV& t) {
         return ref_einsum("abi,oij,abj->abo", {t[0], t[2], t[1]});
       }},
      {"addcdiv/broadcast",
       {F({2, 3}), F({3}), P({2, 1})},
       [](const TV& t) { return addcdiv(t[0], t[1], t[2], 0.5); },
       [](const RV& t) {
         RefTensor q = ref_axpby(t[1], 1, RefTensor{{2, 3}, std::vector<double>(6, 0.0)}, 0);
         for (int64_t i = 0; i < 6; ++i) q.v[i] /= t[2].v[i / 3];
         return ref_axpby(t[0], 1, q, 0.5);
       }},
      {"addcdiv/default_value",
       {F({4}), F({4}), P({4})},
       [](const TV& t) { return addcdiv(t[0], t[1], t[2]); },
       [](const RV& t) {
         RefTensor r = t[0];
         for (int64_t i = 0; i < 4; ++i) r.v[i] += t[1].v[i] / t[2].v[i];
         return r;
       }},
  };
  return cases;
}

TEST(OpHarness, Products) { run_cases(product_cases()); }
TEST(OpHarnessCuda, Products) { run_cases_on_cuda(product_cases()); }

}  // namespace fabric::harness
