// The one table-driven op harness: every op case runs in each of its dtypes on random inputs
// (contiguous and non-contiguous layouts) and is compared against a float64 reference, either
// an independent naive implementation (RefTensor lambdas) or the op itself run in float64 on the
// CPU on the same values. Family files (op_cases_*.cpp) hold the tables; each family has one TEST
// on the CPU (OpHarness.*) and one on the CUDA backend (OpHarnessCuda.*, skipped without a GPU).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"

namespace fabric::harness {

// Values of a tensor in row-major order, as doubles, with its shape: what naive references read
// and write.
struct RefTensor {
  Shape shape;
  std::vector<double> v;
  int64_t numel() const { return numel_of(shape); }
  // Flat index of a multi-index (row-major).
  int64_t index(const std::vector<int64_t>& idx) const;
  double at(const std::vector<int64_t>& idx) const { return v[index(idx)]; }
};
RefTensor to_ref(const Tensor& t);

struct InputSpec {
  enum class Kind { floating, positive, integer, boolean, index };
  Shape shape;
  Kind kind = Kind::floating;
  double lo = -2, hi = 2;   // floating/positive/integer range; index: [0, hi)
  // The dtype for non-floating kinds (integer: int64 unless set; index: int64; boolean: bool).
  DType int_dtype = DType::int64;
  // Fixed row-major values instead of random ones (points a random draw would miss: a branch
  // boundary, a domain edge).
  std::vector<double> values = {};
  // False for a floating argument the op has no derivative for (a loss weight: torch refuses one
  // that requires grad): the gradient check leaves it constant.
  bool differentiable = true;
};
inline InputSpec F(Shape s, double lo = -2, double hi = 2) { return {std::move(s), InputSpec::Kind::floating, lo, hi}; }
inline InputSpec P(Shape s, double lo = 0.1, double hi = 3) { return {std::move(s), InputSpec::Kind::positive, lo, hi}; }
inline InputSpec I(Shape s, double lo, double hi, DType dt = DType::int64) {
  return {std::move(s), InputSpec::Kind::integer, lo, hi, dt};
}
inline InputSpec B(Shape s) { return {std::move(s), InputSpec::Kind::boolean}; }
// A floating input holding exactly `values` (rounded to the case dtype like any other input).
inline InputSpec V(Shape s, std::vector<double> values) {
  return {std::move(s), InputSpec::Kind::floating, -2, 2, DType::int64, std::move(values)};
}
// `s` as an argument without a derivative (see InputSpec::differentiable).
inline InputSpec NoGrad(InputSpec s) {
  s.differentiable = false;
  return s;
}
inline InputSpec Idx(Shape s, int64_t n, DType dt = DType::int64) {
  return {std::move(s), InputSpec::Kind::index, 0, static_cast<double>(n), dt};
}

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;
using RefFn = std::function<RefTensor(const std::vector<RefTensor>&)>;

struct OpCase {
  std::string name;                 // "add/broadcast_row"
  std::vector<InputSpec> inputs;
  OpFn run;                         // the op under test (floating inputs arrive in the case dtype)
  RefFn reference;                  // optional naive float64 reference
  std::vector<DType> dtypes = {DType::float64, DType::float32, DType::bfloat16, DType::float16};
  double tol_scale = 1.0;           // multiplies the per-dtype tolerance (e.g. long reductions)
  bool layouts = true;              // also run with non-contiguous input views
  bool exact = false;               // integer/bool/index results: compare exactly
  // Finite-difference check of the autograd gradient (float64, contiguous inputs) for every
  // floating input; off only for ops that are not differentiable (comparisons, argmax) or whose
  // derivative is undefined on random inputs.
  bool grad_check = true;
};

// Runs every case on `device` (inputs made there in every layout, gradients checked there) against
// the float64 reference computed on the CPU; records gtest failures naming case, device, dtype,
// layout and the worst element.
void run_cases(const std::vector<OpCase>& cases, Device device = Device::cpu());
// run_cases on cuda:0, or the calling test skipped (naming why) when no GPU is usable.
void run_cases_on_cuda(const std::vector<OpCase>& cases);

// Element-wise reference helpers for the common shapes of cases.
RefFn ref_unary(std::function<double(double)> f);
RefFn ref_binary(std::function<double(double, double)> f);  // with broadcasting

}  // namespace fabric::harness
