// linalg.eigh / eigvalsh and linalg.svd / svdvals (host kernels, kernels/cpu/linalg_eigen.h, in
// custom autograd functions with torch 1.13's linalg_eig_backward (hermitian) and svd_backward),
// and what is built on them: pinv (torch's pinv_backward as its derivative) and matrix_rank.
#include <algorithm>
#include <any>
#include <cctype>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/custom_function.h"
#include "autograd/grad_mode.h"
#include "kernels/cpu/linalg_eigen.h"
#include "nn/linalg.h"
#include "nn/linalg_internal.h"

namespace fabric::linalg {
namespace {

namespace le = cpu::linalg_eigen;
using namespace detail;

// Whether an op on t would be recorded: torch computes eigenvectors / singular vectors for the
// value-only functions only then (_may_require_fw_or_bw_grad).
bool may_need_grad(const Tensor& t) { return grad_enabled() && t.requires_grad(); }

// A matrix of the differences x_j - x_i (..., n, n) with ones on the diagonal: the denominators
// of the eigenvector and singular-vector gradients (only off-diagonal entries get divided).
Tensor differences_with_unit_diagonal(const Tensor& x) {
  const Tensor diff = sub(x.unsqueeze(-2), x.unsqueeze(-1));
  return add(diff, eye(x.size(-1), std::nullopt, {.dtype = x.dtype(), .device = x.device()}));
}

struct LinalgEigh : Function<LinalgEigh> {
  static std::vector<Tensor> forward(AutogradContext* ctx, const Tensor& A, bool upper,
                                     bool compute_v) {
    ctx->set_materialize_grads(false);
    const Tensor a = host(A);
    const int64_t n = A.size(-1);
    Tensor L = host_empty(with_dims(batch_shape(A), {n}), A.dtype());
    Tensor V = compute_v ? host_empty(A.sizes(), A.dtype()) : host_empty({0}, A.dtype());
    visit_float(A.dtype(), [&](auto t) {
      using T = decltype(t);
      le::eigh<T>(a.data<T>(), L.data<T>(), compute_v ? V.data<T>() : nullptr, batch_count(A), n,
                  upper);
    });
    L = L.to(A.device());
    V = V.to(A.device());
    ctx->save_for_backward({L, V});
    return {L, V};
  }
  // torch's linalg_eig_backward for Hermitian A: gA = V (skew(V^H gV) / E + diag(gL)) V^H.
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const Tensor &gL = g[0], &gV = g[1];
    if (!gL.defined() && !gV.defined()) return {Tensor(), Tensor(), Tensor()};
    const std::vector<Tensor> s = ctx->get_saved_variables();
    const Tensor &L = s[0], &V = s[1];
    if (!gV.defined()) return {matmul(mul(V, gL.unsqueeze(-2)), mH(V)), Tensor(), Tensor()};
    Tensor VhgV = matmul(mH(V), gV);
    VhgV = mul(sub(VhgV, mH(VhgV)), 0.5);
    Tensor ret = div(VhgV, differences_with_unit_diagonal(L));
    // ret's diagonal is exactly zero (a skew matrix's): adding diag(gL) is torch's copy_.
    if (gL.defined()) ret = add(ret, diag_embed(gL));
    return {matmul(V, matmul(ret, mH(V))), Tensor(), Tensor()};
  }
};

// torch's svd_backward for the reduced factors U (*, m, k), S (*, k), Vh (*, k, n).
Tensor svd_backward(const Tensor& gU, const Tensor& gS, const Tensor& gVh, const Tensor& U,
                    const Tensor& S, const Tensor& Vh) {
  if (!gS.defined() && !gU.defined() && !gVh.defined()) return Tensor();
  const int64_t m = U.size(-2), n = Vh.size(-1);
  if (!gU.defined() && !gVh.defined()) {
    return m >= n ? matmul(U, mul(gS.unsqueeze(-1), Vh)) : matmul(mul(U, gS.unsqueeze(-2)), Vh);
  }
  const auto skew = [](const Tensor& X) { return sub(X, mH(X)); };
  const Tensor UhgU = gU.defined() ? skew(matmul(mH(U), gU)) : Tensor();
  const Tensor VhgV = gVh.defined() ? skew(matmul(Vh, mH(gVh))) : Tensor();
  const Tensor E = differences_with_unit_diagonal(mul(S, S));
  Tensor gA;
  if (gU.defined() && gVh.defined()) {
    gA = div(add(mul(UhgU, S.unsqueeze(-2)), mul(S.unsqueeze(-1), VhgV)), E);
  } else if (gU.defined()) {
    gA = mul(div(UhgU, E), S.unsqueeze(-2));
  } else {
    gA = mul(S.unsqueeze(-1), div(VhgV, E));
  }
  if (gS.defined()) gA = add(gA, diag_embed(gS));
  if (m > n && gU.defined()) {
    gA = matmul(U, gA);
    const Tensor gUSinv = div(gU, S.unsqueeze(-2));
    gA = sub(add(gA, gUSinv), matmul(U, matmul(mH(U), gUSinv)));
    return matmul(gA, Vh);
  }
  if (m < n && gVh.defined()) {
    gA = matmul(gA, Vh);
    const Tensor SinvgVh = div(gVh, S.unsqueeze(-1));
    gA = sub(add(gA, SinvgVh), matmul(matmul(SinvgVh, mH(Vh)), Vh));
    return matmul(U, gA);
  }
  return m >= n ? matmul(U, matmul(gA, Vh)) : matmul(matmul(U, gA), Vh);
}

struct LinalgSvd : Function<LinalgSvd> {
  static std::vector<Tensor> forward(AutogradContext* ctx, const Tensor& A, bool full_matrices,
                                     bool compute_uv) {
    ctx->set_materialize_grads(false);
    const Tensor a = host(A);
    const int64_t m = A.size(-2), n = A.size(-1), k = std::min(m, n);
    const Shape batch = batch_shape(A);
    Tensor S = host_empty(with_dims(batch, {k}), A.dtype());
    Tensor U = compute_uv ? host_empty(with_dims(batch, {m, full_matrices ? m : k}), A.dtype())
                          : host_empty({0}, A.dtype());
    Tensor Vh = compute_uv ? host_empty(with_dims(batch, {full_matrices ? n : k, n}), A.dtype())
                           : host_empty({0}, A.dtype());
    visit_float(A.dtype(), [&](auto t) {
      using T = decltype(t);
      le::svd<T>(a.data<T>(), compute_uv ? U.data<T>() : nullptr, S.data<T>(),
                 compute_uv ? Vh.data<T>() : nullptr, batch_count(A), m, n, full_matrices);
    });
    U = U.to(A.device());
    S = S.to(A.device());
    Vh = Vh.to(A.device());
    ctx->save_for_backward({U, S, Vh});
    ctx->saved_data["full_matrices"] = full_matrices;
    return {U, S, Vh};
  }
  // derivatives.yaml's _linalg_svd: full_matrices narrows U, Vh and their gradients to k first.
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> s = ctx->get_saved_variables();
    const bool full = std::any_cast<bool>(ctx->saved_data["full_matrices"]);
    const Tensor& S = s[1];
    const int64_t k = S.size(-1);
    const auto narrow_cols = [&](const Tensor& t) {
      return full && t.defined() ? t.narrow(-1, 0, k) : t;
    };
    const auto narrow_rows = [&](const Tensor& t) {
      return full && t.defined() ? t.narrow(-2, 0, k) : t;
    };
    return {svd_backward(narrow_cols(g[0]), g[1], narrow_rows(g[2]), narrow_cols(s[0]), S,
                         narrow_rows(s[2])),
            Tensor(), Tensor()};
  }
};

bool parse_uplo(std::string_view uplo) {
  const char c =
      uplo.size() == 1 ? static_cast<char>(std::toupper(static_cast<unsigned char>(uplo[0]))) : 0;
  FABRIC_CHECK(c == 'L' || c == 'U', ValueError,
               "Expected UPLO argument to be 'L' or 'U', but got ", uplo);
  return c == 'U';
}

std::vector<Tensor> eigh_impl(const Tensor& A, std::string_view UPLO, bool compute_v) {
  check_square("linalg.eigh", A);
  const bool upper = parse_uplo(UPLO);
  check_kernel_dtype("linalg.eigh", "linalg_eigh_cpu", A);
  return LinalgEigh::apply(A, upper, compute_v);
}

std::vector<Tensor> svd_impl(const Tensor& A, bool full_matrices, bool compute_uv) {
  check_matrix("linalg.svd", A);
  check_floating("linalg.svd", A);
  check_kernel_dtype("linalg.svd", "linalg_svd_cpu", A);
  return LinalgSvd::apply(A, full_matrices, compute_uv);
}

// torch's get_atol_rtol with float tolerances: atol defaults to 0, rtol to eps * max(m, n) unless
// a positive atol is given (then 0).
std::pair<double, double> atol_rtol(const Tensor& A, std::optional<double> atol,
                                    std::optional<double> rtol) {
  const double a = atol.value_or(0.0);
  if (rtol) return {a, *rtol};
  const double def = epsilon(A.dtype()) * static_cast<double>(std::max(A.size(-1), A.size(-2)));
  return {a, atol && *atol > 0 ? 0.0 : def};
}

// max(atol, rtol * s_max) in float64 as torch's (its tolerances are double tensors), for
// s_max (*, 1).
Tensor tolerance(const Tensor& s_max, double atol, double rtol) {
  return maximum(mul(s_max.detach().to(DType::float64), rtol),
                 full({1}, atol, {.dtype = DType::float64, .device = s_max.device()}));
}

// pinv(A) from the unpivoted QR (kernels/cpu/linalg_eigen.h's pinv_full_rank: A^+ = R^-1 Q1^T)
// where that proves every singular value of every matrix kept by pinv's tolerance, so the SVD's
// result is this one to rounding; undefined otherwise (some matrix rank-deficient or near the
// tolerance). Wide matrices through A^T: pinv(A) = pinv(A^T)^T. On one core the QR took a
// 1024 x 1024 pinv from 0.7 s to 0.1 s (float64) and 256 64 x 64 ones from 325 ms to 29 ms
// (tools/bench/bench_linalg.cpp); the SVD path is kept for whatever it cannot prove.
Tensor pinv_by_qr(const Tensor& A, double a_tol, double r_tol) {
  const bool wide = A.size(-2) < A.size(-1);
  const Tensor a = host(wide ? mH(A) : A);
  const int64_t m = a.size(-2), n = a.size(-1);
  Tensor out = host_empty(with_dims(batch_shape(A), {n, m}), A.dtype());
  Tensor ok = host_empty(batch_shape(A), DType::int32);
  visit_float(A.dtype(), [&](auto t) {
    using T = decltype(t);
    le::pinv_full_rank<T>(a.data<T>(), out.data<T>(), ok.data<int32_t>(), batch_count(A), m, n,
                          a_tol, r_tol);
  });
  for (int32_t proven : ok.to_vector<int32_t>())
    if (!proven) return Tensor();
  out = out.to(A.device());
  return wide ? mH(out) : out;
}

// torch 1.13's linalg_pinv: the SVD (hermitian: eigh) with the singular values at or below
// max(atol, rtol * s_max) dropped, or the QR where that drops none (pinv_by_qr). Its derivative
// is torch's pinv_backward (that of the pseudo-inverse at constant rank), not the truncated
// decomposition's.
Tensor pinv_value(const Tensor& A, double a_tol, double r_tol, bool hermitian) {
  if (A.numel() > 0 && !hermitian) {
    Tensor P = pinv_by_qr(A, a_tol, r_tol);
    if (P.defined()) return P;
  }
  if (A.numel() == 0 || !hermitian) {
    auto [U, S, Vh] = svd(A, false);
    if (A.numel() == 0) return matmul(mul(mH(Vh), reciprocal(S).unsqueeze(-2)), mH(U));
    const Tensor keep = gt(S.to(DType::float64), tolerance(S.narrow(-1, 0, 1), a_tol, r_tol));
    const Tensor S_pinv = where(keep, reciprocal(S), 0.0);
    return matmul(mul(mH(Vh), S_pinv.unsqueeze(-2)), mH(U));
  }
  auto [L, V] = eigh(A);
  const Tensor L_abs = abs(L);
  const Tensor keep =
      gt(L_abs.to(DType::float64), tolerance(amax(L_abs, {-1}, true), a_tol, r_tol));
  const Tensor L_pinv = where(keep, reciprocal(L), 0.0);
  return matmul(mul(V, L_pinv.unsqueeze(-2)), mH(V));
}

struct LinalgPinv : Function<LinalgPinv> {
  static Tensor forward(AutogradContext* ctx, const Tensor& A, double a_tol, double r_tol,
                        bool hermitian) {
    ctx->set_materialize_grads(false);
    Tensor P = pinv_value(A, a_tol, r_tol, hermitian);
    ctx->save_for_backward({A, P});
    return P;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    if (!g[0].defined()) return {Tensor(), Tensor(), Tensor(), Tensor()};
    const std::vector<Tensor> s = ctx->get_saved_variables();
    return {pinv_backward(g[0], s[1], s[0]), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

std::tuple<Tensor, Tensor> eigh(const Tensor& A, std::string_view UPLO) {
  std::vector<Tensor> r = eigh_impl(A, UPLO, true);
  return {r[0], r[1]};
}

Tensor eigvalsh(const Tensor& A, std::string_view UPLO) {
  return eigh_impl(A, UPLO, may_need_grad(A))[0];
}

std::tuple<Tensor, Tensor, Tensor> svd(const Tensor& A, bool full_matrices) {
  std::vector<Tensor> r = svd_impl(A, full_matrices, true);
  return {r[0], r[1], r[2]};
}

Tensor svdvals(const Tensor& A) { return svd_impl(A, false, may_need_grad(A))[1]; }

Tensor pinv(const Tensor& A, std::optional<double> atol, std::optional<double> rtol,
            bool hermitian) {
  FABRIC_CHECK((A.dtype() == DType::float32 || A.dtype() == DType::float64) && A.dim() >= 2,
               DTypeError, "linalg.pinv(", torch_type_name(A.dtype()), "{", torch_sizes(A.sizes()),
               "}): expected a tensor with 2 or more dimensions of float, double, cfloat or "
               "cdouble types");
  const auto [a_tol, r_tol] = atol_rtol(A, atol, rtol);
  return LinalgPinv::apply(A, a_tol, r_tol, hermitian);
}

Tensor matrix_rank(const Tensor& A, std::optional<double> atol, std::optional<double> rtol,
                   bool hermitian) {
  FABRIC_CHECK(A.dim() >= 2, ShapeError,
               "torch.linalg.matrix_rank: The input tensor input must have at least 2 "
               "dimensions. (got shape ",
               shape_str(A.sizes()), ")");
  FABRIC_CHECK(A.dtype() == DType::float32 || A.dtype() == DType::float64, DTypeError,
               "torch.linalg.matrix_rank: This function doesn't handle types other than float "
               "and double (got ",
               torch_type_name(A.dtype()), ")");
  if (A.numel() == 0) return zeros(batch_shape(A), {.dtype = DType::int64, .device = A.device()});
  const auto [a_tol, r_tol] = atol_rtol(A, atol, rtol);
  NoGradGuard no_grad;
  Tensor S, s_max;
  if (!hermitian) {
    S = svdvals(A);
    s_max = S.narrow(-1, 0, 1);
  } else {
    S = abs(eigvalsh(A));
    s_max = amax(S, {-1}, true);
  }
  return sum(gt(S.to(DType::float64), tolerance(s_max, a_tol, r_tol)), {-1});
}

}  // namespace fabric::linalg
