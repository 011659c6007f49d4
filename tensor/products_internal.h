// Internals shared by the product ops (ops_addmm.cpp, ops_products.cpp, ops_einsum.cpp,
// ops_diagonal.cpp, ops_cdist.cpp): their autograd attributes, the GEMM entry of ops_linalg.cpp
// with torch's beta/alpha, and the guard that keeps inner ops from re-applying autocast.
#pragma once
#include <cstdint>

#include "tensor/autocast.h"
#include "tensor/scalar.h"
#include "tensor/shape.h"
#include "tensor/tensor.h"

namespace fabric {

struct AddmmAttrs {
  Scalar beta, alpha;
};  // addmm, baddbmm, addbmm
struct DiagonalAttrs {
  Shape input_shape;
  int64_t offset, dim1, dim2;
};

namespace detail {

// The GEMM epilogues of tensor/linalg_kernels.h, for a device that registers their stub, K > 0
// and beta == 0. gelu: out = gelu_tanh(product + bias), the pre-activation to aux (contiguous,
// shaped as out; undefined when not wanted). dgelu: out = product * gelu_tanh'(aux). bias_grad:
// aux (M) = the sums over K of a; 2-D operands only; `fused` says whether the device took it
// (else out holds the plain product and aux is untouched).
struct GemmEpilogue {
  enum class Kind { gelu, dgelu, bias_grad } kind;
  Tensor aux;
  bool fused = true;
};

// out (batch..., M, N) = alpha * a (batch_a..., M, K) @ b (batch_b..., K, N) + bias (N) +
// beta * out, the batch dims of a and b broadcast to `batch`; out is contiguous; beta == 0 never
// reads out. With `epilogue`, that is applied too (above). Nothing is recorded.
void gemm_into(const Tensor& a, const Tensor& b, const Tensor& bias, const Tensor& out,
               const Shape& batch, float alpha = 1.f, float beta = 0.f,
               GemmEpilogue* epilogue = nullptr);

// A view built without recording an op: the internal reshapes of the product ops must not add
// nodes to the autograd graph (the op records itself once, with its real inputs).
Tensor raw_view(const Tensor& t, Shape sizes, Strides strides);
// A matrix's transpose (a linear weight's (out, in) as the (in, out) the GEMM multiplies by), and
// a 1-D operand as one (1, n) row (others as they are): raw views, no copy, nothing recorded.
Tensor transposed_matrix(const Tensor& m);
Tensor as_rows(const Tensor& t);
// t (..., k) as a (rows, k) matrix, rows the product of the leading dims: reshape({-1, k})
// cannot infer the rows when k is 0 (a layer of zero features, whose empty gradients torch computes).
Tensor leading_rows(const Tensor& t);
// An operand's batch dims: all but its last two.
Shape batch_of(const Tensor& t);

// The FLOP counter's entries (tensor/flop_counter.h) of torch's ops for linear(x, w, bias) and
// matmul(a, b) with broadcast batch dims `batch`, for ops that run them as parts.
void report_linear_flops(const Tensor& x, const Tensor& w, const Tensor& bias);
void report_matmul_flops(const Tensor& a, const Tensor& b, const Shape& batch);
// False for the matmuls torch runs as a dot or a matrix-vector product, which its counter (and so
// report_matmul_flops) counts as 0, forward and backward.
bool matmul_counts_flops(const Tensor& a, const Tensor& b);

// While alive, autocast is off for `device`: a composite op applies its own autocast class once,
// at its entry, and its inner ops run in the dtypes it chose (ATen excludes the Autocast key
// inside an autocast wrapper the same way).
class AutocastOff {
 public:
  explicit AutocastOff(Device device) : type_(device.type), active_(autocast_enabled(type_)) {
    if (active_) {
      const AutocastState& st = autocast_state(type_);
      autocast_enter(type_, false, st.dtype, st.cache_enabled);
    }
  }
  ~AutocastOff() {
    if (active_) autocast_exit(type_);
  }
  AutocastOff(const AutocastOff&) = delete;
  AutocastOff& operator=(const AutocastOff&) = delete;

 private:
  DeviceType type_;
  bool active_;
};

}  // namespace detail
}  // namespace fabric
