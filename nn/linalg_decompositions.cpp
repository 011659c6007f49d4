// linalg.cholesky / cholesky_ex and linalg.qr (nn/linalg.h): host kernels
// (kernels/cpu/linalg_eigen.h) in custom autograd functions whose backward is torch 1.13's
// cholesky_backward and linalg_qr_backward, written with fabric ops (solve_triangular included)
// so that they differentiate again.
#include <algorithm>
#include <any>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/custom_function.h"
#include "kernels/cpu/linalg_eigen.h"
#include "nn/linalg.h"
#include "nn/linalg_internal.h"

namespace fabric::linalg {
namespace {

namespace le = cpu::linalg_eigen;
using namespace detail;

struct LinalgCholeskyEx : Function<LinalgCholeskyEx> {
  static std::vector<Tensor> forward(AutogradContext* ctx, const Tensor& A, bool upper) {
    ctx->set_materialize_grads(false);
    const Tensor a = host(A);
    Tensor L = host_empty(A.sizes(), A.dtype());
    Tensor info = host_empty(batch_shape(A), DType::int32);
    visit_float(A.dtype(), [&](auto t) {
      using T = decltype(t);
      le::cholesky<T>(a.data<T>(), L.data<T>(), batch_count(A), A.size(-1), upper,
                      info.data<int32_t>());
    });
    L = L.to(A.device());
    ctx->save_for_backward({L});
    ctx->saved_data["upper"] = upper;
    return {L, info.to(A.device())};
  }
  // torch's cholesky_backward: gA = L^-H phi*(tril(L^H gL)) L^-1 with
  // phi*(X) = (X + X^H - diag(X)) / 2, symmetric by construction.
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    if (!g[0].defined()) return {Tensor(), Tensor()};
    const bool upper = std::any_cast<bool>(ctx->saved_data["upper"]);
    const Tensor L = ctx->get_saved_variables()[0];
    const Tensor L_ = upper ? mH(L) : L;
    const Tensor gL_ = upper ? mH(g[0]) : g[0];
    Tensor gA = tril(matmul(mH(L_), gL_));
    gA = mul(add(gA, mH(tril(gA, -1))), 0.5);
    gA = solve_triangular(mH(L_), gA, /*upper=*/true, /*left=*/true);
    gA = solve_triangular(L_, gA, /*upper=*/false, /*left=*/false);
    return {gA, Tensor()};
  }
};

le::QrMode parse_qr_mode(std::string_view mode) {
  if (mode == "reduced") return le::QrMode::reduced;
  if (mode == "complete") return le::QrMode::complete;
  FABRIC_CHECK(mode == "r", ValueError, "qr received unrecognized mode '", mode,
               "' but expected one of 'reduced' (default), 'r', or 'complete'");
  return le::QrMode::r_only;
}

struct LinalgQr : Function<LinalgQr> {
  static std::vector<Tensor> forward(AutogradContext* ctx, const Tensor& A, le::QrMode mode) {
    ctx->set_materialize_grads(false);
    const Tensor a = host(A);
    const int64_t m = A.size(-2), n = A.size(-1), k = std::min(m, n);
    const Shape batch = batch_shape(A);
    const bool complete = mode == le::QrMode::complete;
    Tensor Q = mode == le::QrMode::r_only
                   ? host_empty({0}, A.dtype())
                   : host_empty(with_dims(batch, {m, complete ? m : k}), A.dtype());
    Tensor R = host_empty(with_dims(batch, {complete ? m : k, n}), A.dtype());
    visit_float(A.dtype(), [&](auto t) {
      using T = decltype(t);
      le::qr<T>(a.data<T>(), mode == le::QrMode::r_only ? nullptr : Q.data<T>(), R.data<T>(),
                batch_count(A), m, n, mode);
    });
    Q = Q.to(A.device());
    R = R.to(A.device());
    ctx->save_for_backward({Q, R});
    ctx->saved_data["mode"] = mode;
    return {Q, R};
  }
  // torch's linalg_qr_backward.
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const le::QrMode mode = std::any_cast<le::QrMode>(ctx->saved_data["mode"]);
    FABRIC_CHECK(mode != le::QrMode::r_only, ValueError,
                 "The derivative of linalg.qr depends on Q, which is not computed when mode='r'. "
                 "Please use linalg.qr(A, mode='reduced') if you are going to differentiate "
                 "through linalg.qr.");
    const std::vector<Tensor> s = ctx->get_saved_variables();
    const Tensor &Q = s[0], &R = s[1];
    const int64_t m = Q.size(-2), n = R.size(-1);
    FABRIC_CHECK(mode == le::QrMode::reduced || m <= n, ValueError,
                 "The QR decomposition is not differentiable when mode='complete' and nrows > "
                 "ncols.");
    const Tensor &gQ = g[0], &gR = g[1];
    if (!gQ.defined() && !gR.defined()) return {Tensor(), Tensor()};
    Tensor gA;
    if (gQ.defined()) {
      gA = gR.defined() ? sub(matmul(gR, mH(R)), matmul(mH(Q), gQ)) : neg(matmul(mH(Q), gQ));
    } else {
      gA = matmul(gR, mH(R));
    }
    if (m >= n) {
      // syminvadj(triu(gA)) = X + X^H with the diagonal halved, X = triu(gA).
      const Tensor X = triu(gA);
      const Tensor sym = add(X, mH(X));
      gA = matmul(Q, sub(sym, mul(diag_embed(diagonal(sym, 0, -2, -1)), 0.5)));
      if (gQ.defined()) gA = add(gA, gQ);
      return {solve_triangular(mH(R), gA, /*upper=*/false, /*left=*/false), Tensor()};
    }
    // m < n: trilImInvAdjSkew(-gA) = tril(-gA - (-gA)^H) for real matrices.
    const Tensor minus = neg(gA);
    gA = matmul(Q, tril(sub(minus, mH(minus))));
    gA = solve_triangular(mH(R.narrow(-1, 0, m)), gA, /*upper=*/false, /*left=*/false);
    Shape pad_shape = R.sizes();
    pad_shape.back() = n - m;
    gA = cat({gA, zeros(pad_shape, {.dtype = gA.dtype(), .device = gA.device()})}, -1);
    if (gR.defined()) gA = add(gA, matmul(Q, gR));
    return {gA, Tensor()};
  }
};

std::tuple<Tensor, Tensor> cholesky_impl(const char* api, const Tensor& A, bool upper,
                                         bool check_errors) {
  check_square("linalg.cholesky", A);
  check_floating("linalg.cholesky", A);
  check_kernel_dtype("linalg.cholesky", "cholesky_cpu", A);
  std::vector<Tensor> r = LinalgCholeskyEx::apply(A, upper);
  if (check_errors) raise_on_info(api, "cholesky", r[1].to(Device::cpu()), A.dim() > 2);
  return {r[0], r[1]};
}

}  // namespace

std::tuple<Tensor, Tensor> cholesky_ex(const Tensor& A, bool upper, bool check_errors) {
  return cholesky_impl("linalg.cholesky_ex", A, upper, check_errors);
}

Tensor cholesky(const Tensor& A, bool upper) {
  return std::get<0>(cholesky_impl("linalg.cholesky", A, upper, true));
}

std::tuple<Tensor, Tensor> qr(const Tensor& A, std::string_view mode) {
  check_matrix("linalg.qr", A);
  check_floating("linalg.qr", A);
  const le::QrMode m = parse_qr_mode(mode);
  check_kernel_dtype("linalg.qr", "geqrf_cpu", A);
  std::vector<Tensor> r = LinalgQr::apply(A, m);
  return {r[0], r[1]};
}

}  // namespace fabric::linalg
