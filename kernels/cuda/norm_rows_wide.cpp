// See norm_rows_wide.h.
#include "kernels/cuda/norm_rows_wide.h"

#include <algorithm>
#include <limits>

#include "kernels/cuda/alignment.h"
#include "kernels/cuda/float_family.h"
#include "kernels/cuda/speed_switches.h"

namespace fabric::cuda {
namespace {

// Rows of x's dtype with cols a whole number of pieces that kNormRowsMaxLanes threads hold.
bool rows_fit(int64_t rows, int64_t cols, DType dt) {
  if (!wide_paths_enabled() || !is_f32_family(dt) || rows < 1 || cols < 1) return false;
  const int64_t elems = kNormRowsPieceBytes / itemsize(dt);
  return cols % elems == 0 && cols <= static_cast<int64_t>(kNormRowsMaxLanes) * kNormRowsMaxElems;
}

// The output's (or dy's) dtype beside x's: the same, or bf16/f16 beside float32 rows, whose E
// elements a piece (4) then take 8 bytes, from an address aligned to them.
bool narrow_fits(const void* p, DType dt, DType x_dtype) {
  if (!norm_takes_dtype(x_dtype, dt)) return false;
  return dt == x_dtype ? aligned16(p) : aligned_to(p, 8);
}

// A weight or bias the kernels read in pieces: absent, or x's dtype from an aligned address.
bool param_fits(const void* p, DType dt, DType x_dtype) {
  return p == nullptr || (dt == x_dtype && aligned16(p));
}

}  // namespace

NormRowsWide plan_norm_rows_wide(int64_t rows, int64_t cols, int itemsize) {
  NormRowsWide s;
  s.rows = rows;
  s.cols = cols;
  s.elems = kNormRowsPieceBytes / itemsize;
  const int64_t pieces = cols / s.elems;
  const int64_t max_per_thread = kNormRowsMaxElems / s.elems;
  if (pieces < 32) {
    s.lanes = 1;
    while (s.lanes < pieces) s.lanes *= 2;
  } else {
    s.lanes = 32;
    while (s.lanes < kNormRowsMaxLanes && (pieces + s.lanes - 1) / s.lanes > max_per_thread)
      s.lanes *= 2;
  }
  const int64_t need = (pieces + s.lanes - 1) / s.lanes;
  s.per_thread = need <= 2 ? static_cast<int>(need) : need <= 4 ? 4 : need <= 6 ? 6 : 8;
  const int64_t rpb = s.rows_per_block();
  s.blocks = (rows + rpb - 1) / rpb;
  return s;
}

NormRowsWide norm_rows_backward_grid(NormRowsWide plan, int64_t resident) {
  const int64_t rpb = plan.rows_per_block();
  plan.blocks = std::clamp<int64_t>(std::min((plan.rows + rpb - 1) / rpb, resident), 1,
                                    std::numeric_limits<int32_t>::max());
  return plan;
}

bool norm_rows_wide_fits(const NormArgs& a, NormRowsWide* plan) {
  if (!rows_fit(a.rows, a.cols, a.x_dtype) || !aligned16(a.x) ||
      !narrow_fits(a.y, a.y_dtype, a.x_dtype))
    return false;
  const void* bias = a.rms ? nullptr : a.bias;
  // The kernels take weight and bias, weight alone, or neither.
  if (bias != nullptr && a.weight == nullptr) return false;
  if (!param_fits(a.weight, a.weight_dtype, a.x_dtype) ||
      !param_fits(bias, a.bias_dtype, a.x_dtype))
    return false;
  *plan = plan_norm_rows_wide(a.rows, a.cols, static_cast<int>(itemsize(a.x_dtype)));
  return true;
}

bool norm_rows_wide_fits(const NormBackwardArgs& a, NormRowsWide* plan) {
  if (!rows_fit(a.rows, a.cols, a.x_dtype) || a.dx == nullptr || !aligned16(a.x) ||
      !narrow_fits(a.dy, a.dy_dtype, a.x_dtype) || !aligned16(a.dx) ||
      !param_fits(a.weight, a.weight_dtype, a.x_dtype))
    return false;
  *plan = plan_norm_rows_wide(a.rows, a.cols, static_cast<int>(itemsize(a.x_dtype)));
  return true;
}

}  // namespace fabric::cuda
