// linalg.inv / inv_ex, det and slogdet (nn/linalg.h): partial-pivoting LU on the host
// (kernels/cpu/linalg_eigen.h), each a custom autograd function whose backward is torch 1.13's
// formula written with fabric ops (linalg_inv: -A^-H g A^-H; linalg_det_backward with its
// singular branch; slogdet_backward), so create_graph differentiates it again.
#include <any>
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

struct LinalgInvEx : Function<LinalgInvEx> {
  static std::vector<Tensor> forward(AutogradContext* ctx, const Tensor& A) {
    ctx->set_materialize_grads(false);
    const Tensor a = host(A);
    const int64_t n = A.size(-1);
    Tensor out = host_empty(A.sizes(), A.dtype());
    Tensor info = host_empty(batch_shape(A), DType::int32);
    visit_float(A.dtype(), [&](auto t) {
      using T = decltype(t);
      le::inverse<T>(a.data<T>(), out.data<T>(), batch_count(A), n, info.data<int32_t>());
    });
    out = out.to(A.device());
    ctx->save_for_backward({out});
    return {out, info.to(A.device())};
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    if (!g[0].defined()) return {Tensor()};
    const Tensor inv_h = mH(ctx->get_saved_variables()[0]);
    return {neg(matmul(inv_h, matmul(g[0], inv_h)))};
  }
};

// The host LU of A^T (kernels/cpu/linalg_eigen.h) with what det and slogdet read from it, and
// its factors, kept for their backward (torch's _linalg_det / _linalg_slogdet keep LU and pivots
// too): one factorization serves the forward and a plain backward.
struct LuDeterminants {
  Tensor sign, logabsdet, det;  // on A's device; undefined where not asked for
  Tensor lu, perm;              // host: the factors (column-major) and P's indices (int32)
};

LuDeterminants lu_determinants(const Tensor& A, bool want_det, bool want_log) {
  const Tensor a = host(A);
  const Shape batch = batch_shape(A);
  LuDeterminants r;
  Tensor det = want_det ? host_empty(batch, A.dtype()) : Tensor();
  Tensor sign = want_log ? host_empty(batch, A.dtype()) : Tensor();
  Tensor logabs = want_log ? host_empty(batch, A.dtype()) : Tensor();
  r.lu = host_empty(A.sizes(), A.dtype());
  r.perm = host_empty(with_dims(batch, {A.size(-1)}), DType::int32);
  visit_float(A.dtype(), [&](auto t) {
    using T = decltype(t);
    le::determinant<T>(a.data<T>(), batch_count(A), A.size(-1), want_det ? det.data<T>() : nullptr,
                       want_log ? sign.data<T>() : nullptr, want_log ? logabs.data<T>() : nullptr,
                       r.lu.data<T>(), r.perm.data<int32_t>());
  });
  const Device dev = A.device();
  if (want_log) {
    r.sign = sign.to(dev);
    r.logabsdet = logabs.to(dev);
  }
  if (want_det) r.det = det.to(dev);
  return r;
}

// A^-T (on A's device) from the factors lu_determinants kept; zero pivots nudged to eps when
// `perturb` (torch's non-singular stand-in for det's gradient).
Tensor inverse_transposed_from_lu(const Tensor& A, const std::any& lu, const std::any& perm,
                                  bool perturb) {
  const Tensor& f = std::any_cast<const Tensor&>(lu);
  const Tensor& p = std::any_cast<const Tensor&>(perm);
  Tensor inv = host_empty(A.sizes(), A.dtype());
  visit_float(A.dtype(), [&](auto t) {
    using T = decltype(t);
    le::lu_inverse_transposed<T>(f.data<T>(), p.data<int32_t>(), inv.data<T>(), batch_count(A),
                                 A.size(-1), perturb);
  });
  return inv.to(A.device());
}

// torch's prod_safe_zeros_backward along the last dim: grad * the product of every other element
// (exclusive cumulative products from both ends), no division, so zeros are fine.
Tensor prod_safe_zeros_backward(const Tensor& grad, const Tensor& inp) {
  const int64_t n = inp.size(-1);
  if (inp.numel() == 0) return grad.expand(inp.sizes());
  Shape ones_shape = inp.sizes();
  ones_shape.back() = 1;
  const Tensor one = ones(ones_shape, {.dtype = inp.dtype(), .device = inp.device()});
  const Tensor exclusive_normal = cumprod(cat({one, inp.narrow(-1, 0, n - 1)}, -1), -1);
  const Tensor narrow_reverse = flip(inp.narrow(-1, 1, n - 1), {-1});
  const Tensor exclusive_reverse = flip(cumprod(cat({one, narrow_reverse}, -1), -1), {-1});
  return mul(grad, mul(exclusive_normal, exclusive_reverse));
}

// torch's masked_fmap: f_true on the batch entries where mask holds, f_false on the others, each
// called as f(A, d, g) on the matching entries of the three tensors.
template <typename F1, typename F2>
Tensor masked_fmap(const Tensor& mask, const F1& f_true, const F2& f_false, const Tensor& A,
                   const Tensor& d, const Tensor& g) {
  const int64_t count = sum(mask).item<int64_t>();
  if (count == mask.numel()) return f_true(A, d, g);
  if (count == 0) return f_false(A, d, g);
  const Tensor no = logical_not(mask);
  const Tensor out = index_put(zeros_like(A), {mask},
                               f_true(index(A, {mask}), index(d, {mask}), index(g, {mask})));
  return index_put(out, {no}, f_false(index(A, {no}), index(d, {no}), index(g, {no})));
}

struct LinalgDet : Function<LinalgDet> {
  static Tensor forward(AutogradContext* ctx, const Tensor& A) {
    ctx->set_materialize_grads(false);
    LuDeterminants r = lu_determinants(A, true, false);
    ctx->save_for_backward({A, r.det});
    ctx->saved_data["lu"] = r.lu;
    ctx->saved_data["perm"] = r.perm;
    return r.det;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    const std::vector<Tensor> saved = ctx->get_saved_variables();
    const Tensor& A = saved[0];
    const Tensor& value = saved[1];
    if (!g[0].defined() || A.numel() == 0) return {Tensor()};
    const double eps = epsilon(A.dtype());
    if (!grad_enabled()) {
      // torch's plain backward: (g det) A^-T from the forward's LU, zero pivots nudged to eps (so
      // an exactly singular A, whose det is 0, gets a zero gradient rather than NaN).
      const Tensor c = mul(g[0], value).unsqueeze(-1).unsqueeze(-1);
      return {mul(
          c, inverse_transposed_from_lu(A, ctx->saved_data["lu"], ctx->saved_data["perm"], true))};
    }
    // create_graph: recompute through differentiable ops (det and A carry their history), the
    // adjugate via the SVD where A is (numerically) singular, as torch.
    const Tensor d =
        diag_embed(mul(g[0], value).unsqueeze(-1).expand(with_dims(batch_shape(A), {A.size(-1)})));
    const auto non_singular = [](const Tensor& a, const Tensor& dd, const Tensor&) {
      return solve(mH(a), dd);
    };
    const auto singular = [](const Tensor& a, const Tensor&, const Tensor& grad) {
      auto [U, S, Vh] = svd(a);
      const Tensor alpha = mul(mul(det(U), det(Vh)), grad);
      const Tensor D = prod_safe_zeros_backward(alpha.unsqueeze(-1), S);
      return matmul(mul(U, D.unsqueeze(-2)), Vh);
    };
    const Tensor mask = lt(abs(value.detach()), 100.0 * eps);
    return {masked_fmap(mask, singular, non_singular, A, d, g[0])};
  }
};

struct LinalgSlogdet : Function<LinalgSlogdet> {
  static std::vector<Tensor> forward(AutogradContext* ctx, const Tensor& A) {
    ctx->set_materialize_grads(false);
    LuDeterminants r = lu_determinants(A, false, true);
    ctx->save_for_backward({A});
    ctx->saved_data["lu"] = r.lu;
    ctx->saved_data["perm"] = r.perm;
    return {r.sign, r.logabsdet};
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    // Real matrices: sign is locally constant, only logabsdet carries a gradient, A^-H g.
    if (!g[1].defined()) return {Tensor()};
    const Tensor A = ctx->get_saved_variables()[0];
    if (A.numel() == 0) return {Tensor()};
    if (!grad_enabled()) {
      // From the forward's LU, as torch's lu_solve: A^-T g (inf/NaN where A is singular).
      return {mul(
          g[1].unsqueeze(-1).unsqueeze(-1),
          inverse_transposed_from_lu(A, ctx->saved_data["lu"], ctx->saved_data["perm"], false))};
    }
    const Tensor d = diag_embed(g[1].unsqueeze(-1).expand(with_dims(batch_shape(A), {A.size(-1)})));
    return {std::get<0>(solve_ex(mH(A), d))};
  }
};

}  // namespace

std::tuple<Tensor, Tensor> inv_ex(const Tensor& A, bool check_errors) {
  check_square("linalg.inv", A);
  check_float_or_double("linalg.inv", A);
  std::vector<Tensor> r = LinalgInvEx::apply(A);
  if (check_errors) raise_on_info("linalg.inv_ex", "inv", r[1].to(Device::cpu()), A.dim() > 2);
  return {r[0], r[1]};
}

Tensor inv(const Tensor& A) {
  check_square("linalg.inv", A);
  check_float_or_double("linalg.inv", A);
  std::vector<Tensor> r = LinalgInvEx::apply(A);
  raise_on_info("linalg.inv", "inv", r[1].to(Device::cpu()), A.dim() > 2);
  return r[0];
}

Tensor det(const Tensor& A) {
  check_square("linalg.det", A);
  check_floating("linalg.det", A);
  check_kernel_dtype("linalg.det", "lu_cpu", A);
  return LinalgDet::apply(A);
}

std::tuple<Tensor, Tensor> slogdet(const Tensor& A) {
  check_square("linalg.slogdet", A);
  check_float_or_double("linalg.slogdet", A);
  std::vector<Tensor> r = LinalgSlogdet::apply(A);
  return {r[0], r[1]};
}

}  // namespace fabric::linalg
