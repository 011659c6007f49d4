// CPU layer_norm and rms_norm (forward and backward) over contiguous (rows, cols): one row per
// step in float32 (float64 for float64), two-pass mean/variance, rows spread over OpenMP threads.
// The weight/bias gradients are column sums over rows, taken in fixed row blocks so the result
// does not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/norm_backward_row.h"
#include "kernels/cpu/norm_forward_row.h"
#include "kernels/cpu/reduce_math.h"
#include "tensor/error.h"
#include "tensor/reduce_kernels.h"

namespace fabric::cpu {
namespace {

template <typename A>
std::vector<A> to_acc_vector(const void* p, DType dt, int64_t n) {
  std::vector<A> v(static_cast<size_t>(n));
  if (p && n) convert(dt, p, dtype_v<A>, v.data(), n);
  return v;
}

template <typename A>
void norm_acc(const NormArgs& a) {
  const int64_t M = a.rows, N = a.cols, xsz = itemsize(a.x_dtype), ysz = itemsize(a.y_dtype);
  const std::vector<A> w = to_acc_vector<A>(a.weight, a.weight_dtype, a.weight ? N : 0);
  const std::vector<A> b =
      to_acc_vector<A>(a.rms ? nullptr : a.bias, a.bias_dtype, a.bias && !a.rms ? N : 0);
  const A* wp = a.weight ? w.data() : nullptr;
  const A* bp = a.bias && !a.rms ? b.data() : nullptr;
  const A eps = static_cast<A>(a.eps);
  auto row = [&](int64_t r) {
    const char* xr = static_cast<const char*>(a.x) + r * N * xsz;
    char* yr = static_cast<char*>(a.y) + r * N * ysz;
    const A* x = load_row<A>(xr, a.x_dtype, N, scratch<A>(0, N));
    A* y = a.y_dtype == dtype_v<A> ? reinterpret_cast<A*>(yr) : scratch<A>(1, N);
    A mean = 0, rstd = 0;
    if constexpr (std::is_same_v<A, float>)
      norm_forward_row_f32(x, wp, bp, eps, N, a.rms, y, mean, rstd);
    else
      norm_forward_row<A>(x, wp, bp, eps, N, a.rms, y, mean, rstd);
    if (!a.rms) static_cast<A*>(a.mean)[r] = mean;
    static_cast<A*>(a.rstd)[r] = rstd;
    store_row<A>(y, yr, a.y_dtype, N);
  };
  const int64_t per = rows_per_task(N), tasks = (M + per - 1) / per;
  if (tasks > 1 && M * N >= 32768 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tasks; ++t)
      for (int64_t r = t * per; r < std::min(M, (t + 1) * per); ++r) row(r);
  } else {
    for (int64_t r = 0; r < M; ++r) row(r);
  }
}

// y (dy) as norm_takes_dtype allows: the kernels are reachable without the op's checks.
void check_narrow(const char* what, DType x, DType dt) {
  FABRIC_CHECK(norm_takes_dtype(x, dt), DTypeError, "layer_norm/rms_norm: ", what, " of ",
               dtype_name(dt), " beside a ", dtype_name(x),
               " input (expected the input's dtype, or float16/bfloat16 for float32)");
}

void norm_kernel(const NormArgs& a) {
  check_narrow("output", a.x_dtype, a.y_dtype);
  if (a.rows == 0) return;
  if (a.x_dtype == DType::float64) return norm_acc<double>(a);
  norm_acc<float>(a);
}

template <typename A>
void norm_backward_acc(const NormBackwardArgs& a) {
  const int64_t M = a.rows, N = a.cols, xsz = itemsize(a.x_dtype), dysz = itemsize(a.dy_dtype);
  const std::vector<A> w = to_acc_vector<A>(a.weight, a.weight_dtype, a.weight ? N : 0);
  const A* wp = a.weight ? w.data() : nullptr;
  const A* mean = static_cast<const A*>(a.mean);
  const A* rstd = static_cast<const A*>(a.rstd);
  const bool want_dw = a.dweight != nullptr, want_db = a.dbias != nullptr && !a.rms;
  // Row blocks with their own dweight/dbias partials; rows inside a block are summed 16 at a
  // time before joining the block's partial, keeping long column sums accurate.
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(64, M * N / 32768));
  const int64_t rows_per_block = (M + blocks - 1) / blocks;
  std::vector<A> pdw(want_dw ? static_cast<size_t>(blocks * N) : 0),
      pdb(want_db ? static_cast<size_t>(blocks * N) : 0);
  auto block = [&](int64_t bk) {
    const int64_t r0 = bk * rows_per_block, r1 = std::min(M, r0 + rows_per_block);
    A* bdw = want_dw ? pdw.data() + bk * N : nullptr;
    A* bdb = want_db ? pdb.data() + bk * N : nullptr;
    A* tdw = want_dw ? scratch<A>(4, N) : nullptr;
    A* tdb = want_db ? scratch<A>(5, N) : nullptr;
    A* xbuf = scratch<A>(0, N);
    A* dybuf = scratch<A>(1, N);
    A* xhat = scratch<A>(2, N);
    A* g = scratch<A>(3, N);
    if (tdw) std::fill(tdw, tdw + N, A(0));
    if (tdb) std::fill(tdb, tdb + N, A(0));
    for (int64_t r = r0; r < r1; ++r) {
      const A* x = load_row<A>(static_cast<const char*>(a.x) + r * N * xsz, a.x_dtype, N, xbuf);
      const A* dy =
          load_row<A>(static_cast<const char*>(a.dy) + r * N * dysz, a.dy_dtype, N, dybuf);
      const A m = a.rms ? A(0) : mean[r], rs = rstd[r];
      char* dxr = a.dx ? static_cast<char*>(a.dx) + r * N * xsz : nullptr;
      A* dx = !dxr ? nullptr : a.x_dtype == dtype_v<A> ? reinterpret_cast<A*>(dxr) : g;
      if constexpr (std::is_same_v<A, float>)
        norm_backward_row_f32(x, dy, wp, m, rs, N, a.rms, tdw, tdb, dx, xhat, g);
      else
        norm_backward_row<A>(x, dy, wp, m, rs, N, a.rms, tdw, tdb, dx, xhat, g);
      if ((r - r0) % 16 == 15 || r + 1 == r1) {
        if (tdw)
          for (int64_t j = 0; j < N; ++j) bdw[j] += tdw[j], tdw[j] = 0;
        if (tdb)
          for (int64_t j = 0; j < N; ++j) bdb[j] += tdb[j], tdb[j] = 0;
      }
      if (dx) store_row<A>(dx, dxr, a.x_dtype, N);
    }
  };
  if (blocks > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (int64_t bk = 0; bk < blocks; ++bk) block(bk);
  } else {
    for (int64_t bk = 0; bk < blocks; ++bk) block(bk);
  }
  auto finish = [&](std::vector<A>& p, void* dst, DType dt) {
    for (int64_t s = 1; s < blocks; s *= 2)
      for (int64_t k = 0; k + s < blocks; k += 2 * s)
        for (int64_t j = 0; j < N; ++j) p[k * N + j] += p[(k + s) * N + j];
    store_row<A>(p.data(), dst, dt, N);
  };
  if (want_dw) finish(pdw, a.dweight, a.weight_dtype);
  if (want_db) finish(pdb, a.dbias, a.dbias_dtype);
}

void norm_backward_kernel(const NormBackwardArgs& a) {
  check_narrow("gradient", a.x_dtype, a.dy_dtype);
  if (a.x_dtype == DType::float64) return norm_backward_acc<double>(a);
  norm_backward_acc<float>(a);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(norm_stub, cpu, &cpu::norm_kernel);
FABRIC_REGISTER_KERNEL(norm_backward_stub, cpu, &cpu::norm_backward_kernel);
}  // namespace fabric
