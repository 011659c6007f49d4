// linalg.solve / solve_ex, solve_triangular and lstsq (nn/linalg.h): torch 1.13's argument rules
// (the vector right-hand side, batch broadcasting, left=False through transposes) around host
// kernels (kernels/cpu/linalg_eigen.h), each a custom autograd function with torch's backward:
// solve's gB = A^-H gX, gA = -gB X^H; solve_triangular's, projected onto the triangle read;
// lstsq's, the gradient of pinv(A) B (linalg_lstsq_backward, pinv_backward).
#include <algorithm>
#include <any>
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

// A (*, n, n), B (*, n, k), the same batch dims -> (X, info). The LU (of A^T, as torch's) is kept
// for a plain backward: gB = A^-T gX by torch's lu_solve, not a second factorization.
struct LinalgSolve : Function<LinalgSolve> {
  static std::vector<Tensor> forward(AutogradContext* ctx, const Tensor& A, const Tensor& B) {
    ctx->set_materialize_grads(false);
    const Tensor a = host(A), b = host(B);
    Tensor x = host_empty(B.sizes(), A.dtype());
    Tensor info = host_empty(batch_shape(A), DType::int32);
    Tensor lu = host_empty(A.sizes(), A.dtype());
    Tensor perm = host_empty(with_dims(batch_shape(A), {A.size(-1)}), DType::int32);
    visit_float(A.dtype(), [&](auto t) {
      using T = decltype(t);
      le::solve<T>(a.data<T>(), b.data<T>(), x.data<T>(), batch_count(A), A.size(-1), B.size(-1),
                   info.data<int32_t>(), lu.data<T>(), perm.data<int32_t>());
    });
    x = x.to(A.device());
    ctx->save_for_backward({A, x});
    ctx->saved_data["lu"] = lu;
    ctx->saved_data["perm"] = perm;
    return {x, info.to(A.device())};
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    if (!g[0].defined()) return {Tensor(), Tensor()};
    const std::vector<Tensor> s = ctx->get_saved_variables();
    Tensor gB;
    if (grad_enabled()) {
      gB = std::get<0>(solve_ex(mH(s[0]), g[0]));
    } else {
      const Tensor& lu = std::any_cast<const Tensor&>(ctx->saved_data["lu"]);
      const Tensor& perm = std::any_cast<const Tensor&>(ctx->saved_data["perm"]);
      const Tensor gx = host(g[0]);
      Tensor out = host_empty(gx.sizes(), gx.dtype());
      visit_float(gx.dtype(), [&](auto t) {
        using T = decltype(t);
        le::lu_solve<T>(lu.data<T>(), perm.data<int32_t>(), gx.data<T>(), out.data<T>(),
                        batch_count(gx), gx.size(-2), gx.size(-1), true);
      });
      gB = out.to(g[0].device());
    }
    const Tensor gA = ctx->needs_input_grad(0) ? neg(matmul(gB, mH(s[1]))) : Tensor();
    return {gA, ctx->needs_input_grad(1) ? gB : Tensor()};
  }
};

// A (*, n, n) triangular, B (*, n, k), the same batch dims -> X with A X = B. A or B given as a
// transposed view of a contiguous CPU tensor (solve_triangular's left=False path, the backward's
// A^H, cholesky's backward) is read in place, column-major, rather than copied.
struct LinalgSolveTriangular : Function<LinalgSolveTriangular> {
  static Tensor forward(AutogradContext* ctx, const Tensor& A, const Tensor& B, bool upper,
                        bool unitriangular) {
    ctx->set_materialize_grads(false);
    bool a_col_major = false, b_col_major = false;
    const Tensor a = host_either_layout(A, a_col_major), b = host_either_layout(B, b_col_major);
    Tensor x = host_empty(B.sizes(), A.dtype());
    visit_float(A.dtype(), [&](auto t) {
      using T = decltype(t);
      le::solve_triangular<T>(a.data<T>(), b.data<T>(), x.data<T>(), batch_count(A), A.size(-1),
                              B.size(-1), upper, unitriangular, a_col_major, b_col_major);
    });
    x = x.to(A.device());
    ctx->save_for_backward({A, x});
    ctx->saved_data["upper"] = upper;
    ctx->saved_data["unitriangular"] = unitriangular;
    return x;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    if (!g[0].defined()) return {Tensor(), Tensor(), Tensor(), Tensor()};
    const std::vector<Tensor> s = ctx->get_saved_variables();
    const bool upper = std::any_cast<bool>(ctx->saved_data["upper"]);
    const bool unit = std::any_cast<bool>(ctx->saved_data["unitriangular"]);
    const Tensor gB = solve_triangular(mH(s[0]), g[0], !upper, true, unit);
    Tensor gA;
    if (ctx->needs_input_grad(0)) {
      gA = neg(matmul(gB, mH(s[1])));
      gA = upper ? triu(gA, unit ? 1 : 0) : tril(gA, unit ? -1 : 0);
    }
    return {gA, ctx->needs_input_grad(1) ? gB : Tensor(), Tensor(), Tensor()};
  }
};

le::LstsqDriver driver_of(std::string_view name) {
  if (name == "gels") return le::LstsqDriver::gels;
  if (name == "gelsd") return le::LstsqDriver::gelsd;
  if (name == "gelss") return le::LstsqDriver::gelss;
  return le::LstsqDriver::gelsy;
}

bool svd_driver(le::LstsqDriver d) {
  return d == le::LstsqDriver::gelsd || d == le::LstsqDriver::gelss;
}

// (X, rank, singular values) of the host kernel for A (*, m, n), B (*, m, k) of one batch shape.
std::vector<Tensor> lstsq_kernel(const Tensor& A, const Tensor& B, double rcond,
                                 le::LstsqDriver driver) {
  const Tensor a = host(A), b = host(B);
  const int64_t m = A.size(-2), n = A.size(-1), k = B.size(-1);
  Tensor x = host_empty(with_dims(batch_shape(A), {n, k}), A.dtype());
  Tensor rank = host_empty(batch_shape(A), DType::int64);
  Tensor s = host_empty(with_dims(batch_shape(A), {std::min(m, n)}), A.dtype());
  visit_float(A.dtype(), [&](auto t) {
    using T = decltype(t);
    le::lstsq<T>(a.data<T>(), b.data<T>(), x.data<T>(), rank.data<int64_t>(), s.data<T>(),
                 batch_count(A), m, n, k, rcond, driver);
  });
  return {x, rank, s};
}

struct LinalgLstsq : Function<LinalgLstsq> {
  static std::vector<Tensor> forward(AutogradContext* ctx, const Tensor& A, const Tensor& B,
                                     double rcond, le::LstsqDriver driver) {
    ctx->set_materialize_grads(false);
    std::vector<Tensor> r = lstsq_kernel(A, B, rcond, driver);
    for (Tensor& t : r) t = t.to(A.device());
    ctx->save_for_backward({A, B});
    ctx->mark_non_differentiable({r[2]});
    return r;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
    if (!g[0].defined()) return {Tensor(), Tensor(), Tensor(), Tensor()};
    const std::vector<Tensor> s = ctx->get_saved_variables();
    const Tensor pinvA = pinv(s[0]);
    Tensor gA, gB;
    if (ctx->needs_input_grad(0)) gA = pinv_backward(matmul(g[0], mH(s[1])), pinvA, s[0]);
    if (ctx->needs_input_grad(1)) gB = matmul(mH(pinvA), g[0]);
    return {gA, gB, Tensor(), Tensor()};
  }
};

}  // namespace

std::tuple<Tensor, Tensor> solve_ex(const Tensor& A, const Tensor& B, bool left,
                                    bool check_errors) {
  check_floating("linalg.solve", A);
  FABRIC_CHECK(A.dtype() == B.dtype(), DTypeError,
               "linalg.solve: Expected A and B to have the same dtype, but found A of type ",
               torch_type_name(A.dtype()), " and B of type ", torch_type_name(B.dtype()),
               " instead");
  // NumPy's rule: B is a vector when 1-D, or when it is A's shape without the last dim.
  const bool vector_case =
      B.dim() == 1 || (A.dim() >= 1 && A.dim() - 1 == B.dim() &&
                       Shape(A.sizes().begin(), A.sizes().end() - 1) == B.sizes());
  const Tensor B_ = vector_case ? B.unsqueeze(-1) : B;
  check_square("linalg.solve", A);
  check_matrix("linalg.solve", B_, "B");
  FABRIC_CHECK(left ? A.size(-2) == B_.size(-2) : A.size(-1) == B_.size(-1), ShapeError,
               "linalg.solve: Incompatible shapes of A and B for the equation ",
               left ? "AX = B" : "XA = B", " (", A.size(-2), "x", A.size(-1), " and ", B_.size(-2),
               "x", B_.size(-1), ")");
  const Shape batch = broadcast_shapes(batch_shape(A), batch_shape(B_), "linalg.solve");
  FABRIC_CHECK(left || !vector_case, ShapeError,
               "linalg.solve: Vector broadcasting of the left hand side is not supported for "
               "left=False. In this case linalg.solve is equivalent to B / A.squeeze(-1)");
  check_kernel_dtype("linalg.solve", "lu_cpu", A);
  const int64_t n = A.size(-1);
  Tensor X, info;
  if (left) {
    std::vector<Tensor> r = LinalgSolve::apply(A.expand(with_dims(batch, {n, n})),
                                               B_.expand(with_dims(batch, {n, B_.size(-1)})));
    X = vector_case ? r[0].squeeze(-1) : r[0];
    info = r[1];
  } else {
    // X A = B is A^T X^T = B^T.
    std::vector<Tensor> r = LinalgSolve::apply(mH(A).expand(with_dims(batch, {n, n})),
                                               mH(B_).expand(with_dims(batch, {n, B_.size(-2)})));
    X = mH(r[0]);
    info = r[1];
  }
  if (check_errors)
    raise_on_info("torch.linalg.solve_ex", "solve", info.to(Device::cpu()), info.dim() > 0);
  return {X, info};
}

Tensor solve(const Tensor& A, const Tensor& B, bool left) {
  auto [X, info] = solve_ex(A, B, left, false);
  raise_on_info("torch.linalg.solve", "solve", info.to(Device::cpu()), info.dim() > 0);
  return X;
}

Tensor solve_triangular(const Tensor& A, const Tensor& B, bool upper, bool left,
                        bool unitriangular) {
  const char* fn = "linalg.solve_triangular";
  check_square(fn, A);
  check_matrix(fn, B, "B");
  check_kernel_dtype(fn, "triangular_solve_cpu", A);
  FABRIC_CHECK(A.dtype() == B.dtype(), DTypeError, fn,
               ": Expected A and B to have the same dtype, but found A of type ",
               torch_type_name(A.dtype()), " and B of type ", torch_type_name(B.dtype()),
               " instead");
  FABRIC_CHECK(left ? A.size(-2) == B.size(-2) : A.size(-1) == B.size(-1), ShapeError, fn,
               ": Incompatible shapes of A and B for the equation ", left ? "AX = B" : "XA = B",
               " (", A.size(-2), "x", A.size(-1), " and ", B.size(-2), "x", B.size(-1), ")");
  // X A = B is A^T X^T = B^T, A^T's triangle the other one.
  if (!left) return mH(solve_triangular(mH(A), mH(B), !upper, true, unitriangular));
  const Shape batch = broadcast_shapes(batch_shape(A), batch_shape(B), fn);
  const int64_t n = A.size(-1);
  return LinalgSolveTriangular::apply(A.expand(with_dims(batch, {n, n})),
                                      B.expand(with_dims(batch, {n, B.size(-1)})), upper,
                                      unitriangular);
}

std::tuple<Tensor, Tensor, Tensor, Tensor> lstsq(const Tensor& A, const Tensor& B,
                                                 std::optional<double> rcond,
                                                 std::optional<std::string_view> driver) {
  FABRIC_CHECK(A.dim() >= 2, ShapeError,
               "torch.linalg.lstsq: input must have at least 2 dimensions. (got shape ",
               shape_str(A.sizes()), ")");
  FABRIC_CHECK(B.dim() >= 1, ShapeError,
               "torch.linalg.lstsq: other must have at least 1 dimension.");
  FABRIC_CHECK(A.dtype() == B.dtype(), DTypeError,
               "torch.linalg.lstsq: Expected input and other to have the same dtype, but got "
               "input's dtype ",
               torch_type_name(A.dtype()), " and other's dtype ", torch_type_name(B.dtype()));
  const int64_t dim_diff = A.dim() - B.dim();
  FABRIC_CHECK(dim_diff == 0 || dim_diff == 1, ShapeError,
               "torch.linalg.lstsq: input.dim() must be greater or equal to other.dim() and "
               "(input.dim() - other.dim()) <= 1 (got ",
               shape_str(A.sizes()), " and ", shape_str(B.sizes()), ")");
  const Tensor B_ = dim_diff == 1 ? B.unsqueeze(-1) : B;
  FABRIC_CHECK(A.size(-2) == B_.size(-2), ShapeError,
               dim_diff == 1 ? "torch.linalg.lstsq: input.size(-2) should match other.size(-1)"
                             : "torch.linalg.lstsq: input.size(-2) should match other.size(-2)",
               " (got ", shape_str(A.sizes()), " and ", shape_str(B.sizes()), ")");
  const std::string_view name = driver.value_or("gelsy");
  FABRIC_CHECK(name == "gels" || name == "gelsy" || name == "gelsd" || name == "gelss", ValueError,
               "torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, "
               "gelss), got '",
               name, "'");
  FABRIC_CHECK(A.dtype() == DType::float32 || A.dtype() == DType::float64, DTypeError,
               "torch.linalg.lstsq: This function doesn't handle types other than float and "
               "double (got ",
               torch_type_name(A.dtype()), ")");
  const le::LstsqDriver drv = driver_of(name);
  const int64_t m = A.size(-2), n = A.size(-1), k = B_.size(-1);
  const double rc = rcond && *rcond > 0 ? *rcond : epsilon(A.dtype()) * std::max(m, n);
  const Shape a_batch = batch_shape(A);
  const Shape batch = broadcast_shapes(a_batch, batch_shape(B_), "torch.linalg.lstsq");
  const Tensor A_e = A.expand(with_dims(batch, {m, n}));
  const Tensor B_e = B_.expand(with_dims(batch, {m, k}));
  std::vector<Tensor> r = LinalgLstsq::apply(A_e, B_e, rc, drv);
  // rank and the singular values are A's own (torch does not broadcast them to B's batch).
  Tensor rank = r[1], sv = r[2];
  if (a_batch != batch) {
    std::vector<Tensor> own = lstsq_kernel(
        A, zeros(with_dims(a_batch, {m, 0}), {.dtype = A.dtype(), .device = A.device()}), rc, drv);
    rank = own[1].to(A.device());
    sv = own[2].to(A.device());
  }
  const TensorOptions real{.dtype = A.dtype(), .device = A.device()};
  Tensor residuals = empty({0}, real);
  if (m > n && drv != le::LstsqDriver::gelsy) {
    const bool full_rank = !svd_driver(drv) || all(eq(rank, n)).item<bool>();
    if (full_rank) {
      // LAPACK's rows n.. of the overwritten B, squared and summed: |A X - B|^2 per column.
      NoGradGuard no_grad;
      const Tensor res = sub(matmul(A_e.detach(), r[0].detach()), B_e.detach());
      residuals = sum(mul(res, res), {-2});
    }
  }
  if (drv == le::LstsqDriver::gels)
    rank = empty({0}, {.dtype = DType::int64, .device = A.device()});
  if (!svd_driver(drv)) sv = empty({0}, real);
  const Tensor X = dim_diff == 1 ? r[0].squeeze(-1) : r[0];
  return {X, residuals, rank, sv};
}

}  // namespace fabric::linalg
