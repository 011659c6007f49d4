// Binary elementwise ops (arithmetic, comparisons, logical, where, addcmul) and their in-place
// forms: PyTorch's type promotion and broadcasting, argument checks, one kernel dispatch each.
#include "tensor/autocast.h"
#include "tensor/elementwise_kernels.h"
#include "tensor/elementwise_operands.h"
#include "tensor/factory.h"
#include "tensor/inplace_graph.h"
#include "tensor/memory_overlap.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"

namespace fabric {
namespace {

void check_pair(const char* op, const Tensor& a, const Tensor& b) {
  check_elementwise_operand(op, a);
  check_elementwise_operand(op, b);
  FABRIC_CHECK(a.device() == b.device(), DeviceError, op, ": tensors on different devices (",
               a.device(), " and ", b.device(), ")");
}

// PyTorch lets a 0-d CPU tensor meet a tensor on another device as if it were a number (a clip
// coefficient or a loss scale computed on the host times CUDA gradients): it moves to the other
// operand's device, through autograd's copy so that its gradient comes back to the host.
void move_host_scalar(Tensor& a, Tensor& b) {
  if (!a.defined() || !b.defined() || a.device() == b.device()) return;  // check_pair names it
  if (b.dim() == 0 && b.device().is_cpu()) {
    b = b.to(a.device());
  } else if (a.dim() == 0 && a.device().is_cpu()) {
    a = a.to(b.device());
  }
}

// add/sub/mul/div read a float operand narrower than the other one, which has the compute dtype
// (bf16/f16 beside f32; on the CPU also f16, bf16 or f32 beside f64), in its own dtype: the kernel
// widens it as it loads it, exactly, so the values are those of the cast copy without writing and
// re-reading one (the f32 residual + bf16 branch of mixed precision; PyTorch's TensorIterator
// also casts in its loop). Narrowing casts (a 0-d f64 tensor beside an f32 one rounds first),
// integers, bool, two narrower operands (bf16 + f16) and a float64 result on CUDA keep the cast.
Tensor operand_for_kernel(BinaryOp op, const Tensor& t, const Tensor& other, DType ct) {
  const bool arith =
      op == BinaryOp::add || op == BinaryOp::sub || op == BinaryOp::mul || op == BinaryOp::div;
  const bool half = t.dtype() == DType::float16 || t.dtype() == DType::bfloat16;
  const bool widens =
      (ct == DType::float32 && half) ||
      (ct == DType::float64 && (half || t.dtype() == DType::float32) && t.device().is_cpu());
  return arith && widens && other.dtype() == ct ? t : cast_for_kernel(t, ct);
}

// PyTorch's can_cast: no float -> integer and no number -> bool.
bool can_cast(DType from, DType to) {
  if (is_floating(from) && is_integral(to)) return false;
  if (from != DType::bool_ && to == DType::bool_) return false;
  return true;
}

// add/sub: PyTorch's alpha_check, and sub's refusal of bool operands (a bool scalar counts as
// a bool operand, as in PyTorch, where it becomes a bool tensor).
void check_alpha(const char* op, BinaryOp bop, DType ct, const Scalar& alpha, DType a_dt,
                 DType b_dt) {
  if (bop == BinaryOp::sub) {
    FABRIC_CHECK(
        a_dt != DType::bool_ || b_dt != DType::bool_, DTypeError, op,
        ": subtraction, the `-` operator, with two bool tensors is not supported. Use the `^` or "
        "`logical_xor()` operator instead");
    FABRIC_CHECK(a_dt != DType::bool_ && b_dt != DType::bool_, DTypeError, op,
                 ": subtraction, the `-` operator, with a bool tensor is not supported (got ",
                 dtype_name(a_dt), " - ", dtype_name(b_dt),
                 "). If you are trying to invert a mask, use the `~` or `logical_not()` "
                 "operator instead");
  }
  FABRIC_CHECK(!(alpha.is_bool() && ct != DType::bool_), ValueError, op,
               ": a bool alpha is only supported for bool results, got a ", dtype_name(ct),
               " result");
  FABRIC_CHECK(!(is_integral(ct, true) && alpha.is_floating()), ValueError, op,
               ": for integral input tensors (", dtype_name(ct),
               "), argument alpha must not be a floating point number, got ", alpha.to_double());
  // torch's kernel converts alpha into the result dtype with c10's overflow check (add(int8, int8,
  // alpha=300) raises rather than wrapping alpha to 44).
  check_scalar_fits(op, alpha, ct);
}

void check_pow(DType ct, const Scalar* exponent) {
  FABRIC_CHECK(ct != DType::bool_, DTypeError, "pow: not supported for bool tensors");
  if (exponent && is_integral(ct)) {
    FABRIC_CHECK(!(exponent->is_integral() && exponent->to_int() < 0), ValueError,
                 "pow: integers to negative integer powers are not allowed (", dtype_name(ct),
                 " tensor to the power ", exponent->to_int(), ")");
  }
  // torch's kernel converts the exponent into the result dtype with c10's overflow check, except
  // for float32/float64, which compute in double (pow(int8, 300) and pow(float16, 70000) raise,
  // pow(float32, 1e39) is inf).
  if (exponent && ct != DType::float32 && ct != DType::float64)
    check_scalar_fits("pow", *exponent, ct);
}

DType binary_result(BinaryOp op, DType ct) {
  return op == BinaryOp::div ? float_result_dtype(ct) : ct;
}

Tensor run_binary_scalar(const char* name, BinaryOp op, const Tensor& a, const Scalar& b, DType ct);

Tensor run_binary(const char* name, BinaryOp op, const Tensor& a, const Tensor& b, DType ct,
                  const Scalar& alpha) {
  // torch 1.13 adds float16 on the CPU in Half arithmetic: alpha * b rounds to float16 (alpha
  // cast to it first), then the sum does. bfloat16's vectorized form rounds once (the kernel).
  if (ct == DType::float16 && a.device().is_cpu() && (op == BinaryOp::add || op == BinaryOp::sub) &&
      alpha.to_double() != 1.0)
    return run_binary(name, op, a, run_binary_scalar(name, BinaryOp::mul, b, alpha, ct), ct, 1);
  const Shape shape = broadcast_shapes(a.sizes(), b.sizes(), name);
  Tensor out = empty_like_operands(shape, {.dtype = ct, .device = a.device()}, {&a, &b});
  if (out.numel() == 0) return out;
  const Tensor ac = operand_for_kernel(op, a, b, ct), bc = operand_for_kernel(op, b, a, ct);
  const StridedLoop loop = make_strided_loop(name, out, {&ac, &bc});
  binary_stub(out.device())(op, loop, alpha, nullptr);
  return out;
}

Tensor run_binary_scalar(const char* name, BinaryOp op, const Tensor& a, const Scalar& b,
                         DType ct) {
  Tensor out = empty_like_operands(a.sizes(), {.dtype = ct, .device = a.device()}, {&a});
  if (out.numel() == 0) return out;
  const Tensor ac = cast_for_kernel(a, ct);
  const StridedLoop loop = make_strided_loop(name, out, {&ac});
  binary_stub(out.device())(op, loop, Scalar(1), &b);
  return out;
}

Tensor binary_tt(OpId id, const char* name, BinaryOp op, const Tensor& a_in, const Tensor& b_in,
                 const Scalar& alpha = 1) {
  Tensor a = a_in, b = b_in;
  apply_autocast(id, {&a, &b});
  move_host_scalar(a, b);
  check_pair(name, a, b);
  const DType ct = binary_result(op, result_type({&a, &b}));
  if (op == BinaryOp::add || op == BinaryOp::sub)
    check_alpha(name, op, ct, alpha, a.dtype(), b.dtype());
  if (op == BinaryOp::pow) check_pow(ct, nullptr);
  Tensor out = run_binary(name, op, a, b, ct, alpha);
  if (op == BinaryOp::add || op == BinaryOp::sub) {
    AlphaAttrs attrs{alpha};
    record_op(id, {a, b}, {&out}, &attrs);
  } else {
    // torch's pow(Tensor, Tensor) is its second overload (pow(Tensor, Scalar) is the first).
    record_op(id, {a, b}, {&out}, nullptr, op == BinaryOp::pow ? "PowBackward1" : nullptr);
  }
  return out;
}

Tensor binary_ts(OpId id, const char* name, BinaryOp op, const Tensor& a_in, const Scalar& b) {
  Tensor a = a_in;
  apply_autocast(id, {&a});
  check_elementwise_operand(name, a);
  const DType ct = binary_result(op, result_type({&a}, {&b}));
  if (op == BinaryOp::sub) check_alpha(name, op, ct, 1, a.dtype(), b.natural_dtype());
  if (op == BinaryOp::pow) check_pow(ct, &b);
  Tensor out = run_binary_scalar(name, op, a, b, ct);
  ScalarAttrs attrs{b};
  record_op(id, {a}, {&out}, &attrs);
  return out;
}

// The out-of-place op an in-place one stands for when autograd must see it (a's rule may save
// its first operand, so it gets a copy of a's old value).
Tensor out_of_place(BinaryOp op, const Tensor& a, const Tensor* b, const Scalar* bs, const Scalar& alpha) {
  const Tensor old = op == BinaryOp::add || op == BinaryOp::sub ? a : a.clone();
  switch (op) {
    case BinaryOp::add:
      return b ? add(old, *b, alpha) : add(old, *bs);
    case BinaryOp::sub:
      return b ? sub(old, *b, alpha) : sub(old, *bs);
    case BinaryOp::mul:
      return b ? mul(old, *b) : mul(old, *bs);
    case BinaryOp::div:
      return b ? div(old, *b) : div(old, *bs);
    default:
      throw NotImplementedError("in-place binary op without an autograd form");
  }
}

// In place: computes in the promoted dtype, which must be castable to a's dtype; b broadcasts
// to a's shape, never the other way. Under autograd (a or b requires grad, grad mode on) the
// out-of-place op computes the values and its history becomes a's (PyTorch's in-place rules; a
// leaf that requires grad raises).
Tensor& binary_inplace(const char* name, BinaryOp op, Tensor& a, const Tensor* b_in,
                       const Scalar* bs, const Scalar& alpha) {
  check_elementwise_operand(name, a);
  Tensor b_moved;  // a 0-d host tensor b, on a's device (never a: it is written in place)
  if (b_in && b_in->defined() && b_in->dim() == 0 && b_in->device().is_cpu() &&
      !a.device().is_cpu())
    b_moved = b_in->to(a.device());
  const Tensor* b = b_moved.defined() ? &b_moved : b_in;
  if (b) check_pair(name, a, *b);
  const DType ct = binary_result(op, b ? result_type({&a, b}) : result_type({&a}, {bs}));
  FABRIC_CHECK(can_cast(ct, a.dtype()), DTypeError, name, ": result type ", dtype_name(ct),
               " can't be cast to the desired output type ", dtype_name(a.dtype()),
               " of the in-place tensor");
  if (op == BinaryOp::add || op == BinaryOp::sub)
    check_alpha(name, op, ct, alpha, a.dtype(), b ? b->dtype() : bs->natural_dtype());
  if (b) {
    const Shape shape = broadcast_shapes(a.sizes(), b->sizes(), name);
    FABRIC_CHECK(shape == a.sizes(), ShapeError, name, ": output with shape ", shape_str(a.sizes()),
                 " doesn't match the broadcast shape ", shape_str(shape), " (other has shape ",
                 shape_str(b->sizes()), ")");
  }
  check_no_internal_overlap(name, a);
  // torch's rule: an operand that partly overlaps the written tensor (x.add_(x.t()), a shifted
  // slice) is refused, as copy_ refuses it; one whose overlap cannot be decided (not dense) is read
  // as a copy below.
  if (b) check_no_partial_overlap(name, a, *b);
  if (a.numel() == 0) return a;
  if (inplace_joins_graph(name, a, {b})) {
    const Tensor result = out_of_place(op, a, b, bs, alpha).to(a.dtype());
    write_values(a, result);
    rebase_history(a, result);
    return a;
  }
  if (a.dtype() != ct) {
    // e.g. a bf16 tensor += an fp32 tensor: compute in fp32, round once into a.
    Tensor r = b ? run_binary(name, op, a, *b, ct, alpha) : run_binary_scalar(name, op, a, *bs, ct);
    a.copy_(r);
    return a;
  }
  if (b && ct == DType::float16 && a.device().is_cpu() &&
      (op == BinaryOp::add || op == BinaryOp::sub) && alpha.to_double() != 1.0) {
    // float16's alpha * b rounds first, as in run_binary (a fresh tensor: no aliasing).
    const Tensor scaled = run_binary_scalar(name, BinaryOp::mul, *b, alpha, ct);
    const StridedLoop loop = make_strided_loop(name, a, {&a, &scaled});
    binary_stub(a.device())(op, loop, Scalar(1), nullptr);
  } else if (b) {
    Tensor bc = operand_for_kernel(op, *b, a, ct);
    // An operand aliasing a's memory other than as a itself (an overlap too hard to decide above)
    // would read values already written.
    const bool alias = bc.storage() == a.storage() &&
                       !(bc.dtype() == a.dtype() && bc.sizes() == a.sizes() &&
                         bc.strides() == a.strides() && bc.storage_offset() == a.storage_offset());
    if (alias) bc = bc.detach().clone();
    const StridedLoop loop = make_strided_loop(name, a, {&a, &bc});
    binary_stub(a.device())(op, loop, alpha, nullptr);
  } else {
    const StridedLoop loop = make_strided_loop(name, a, {&a});
    binary_stub(a.device())(op, loop, Scalar(1), bs);
  }
  a.storage()->bump_version();
  return a;
}

Tensor compare_tt(const char* name, CompareOp op, const Tensor& a, const Tensor& b) {
  check_pair(name, a, b);
  const DType ct = result_type({&a, &b});
  Tensor out = empty_like_operands(broadcast_shapes(a.sizes(), b.sizes(), name),
                                   {.dtype = DType::bool_, .device = a.device()}, {&a, &b});
  if (out.numel() == 0) return out;
  const Tensor ac = cast_for_kernel(a, ct), bc = cast_for_kernel(b, ct);
  const StridedLoop loop = make_strided_loop(name, out, {&ac, &bc});
  compare_stub(out.device())(op, loop, nullptr);
  return out;  // comparisons are not differentiable: nothing to record
}

Tensor compare_ts(const char* name, CompareOp op, const Tensor& a, const Scalar& b) {
  check_elementwise_operand(name, a);
  const DType ct = result_type({&a}, {&b});
  Tensor out = empty_like_operands(a.sizes(), {.dtype = DType::bool_, .device = a.device()}, {&a});
  if (out.numel() == 0) return out;
  const Tensor ac = cast_for_kernel(a, ct);
  const StridedLoop loop = make_strided_loop(name, out, {&ac});
  compare_stub(out.device())(op, loop, &b);
  return out;
}

Tensor logical_tt(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  check_pair(name, a, b);
  // Truthiness first (NaN is true, as in PyTorch); the kernel then runs on bool.
  return run_binary(name, op, cast_for_kernel(a, DType::bool_), cast_for_kernel(b, DType::bool_),
                    DType::bool_, 1);
}

}  // namespace

// ---- arithmetic -------------------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b, const Scalar& alpha) {
  return binary_tt(OpId::add, "add", BinaryOp::add, a, b, alpha);
}
Tensor add(const Tensor& a, const Scalar& b) {
  return binary_ts(OpId::add, "add", BinaryOp::add, a, b);
}
Tensor sub(const Tensor& a, const Tensor& b, const Scalar& alpha) {
  return binary_tt(OpId::sub, "sub", BinaryOp::sub, a, b, alpha);
}
Tensor sub(const Tensor& a, const Scalar& b) {
  return binary_ts(OpId::sub, "sub", BinaryOp::sub, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary_tt(OpId::mul, "mul", BinaryOp::mul, a, b);
}
Tensor mul(const Tensor& a, const Scalar& b) {
  return binary_ts(OpId::mul, "mul", BinaryOp::mul, a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary_tt(OpId::div, "div", BinaryOp::div, a, b);
}
Tensor div(const Tensor& a, const Scalar& b) {
  return binary_ts(OpId::div, "div", BinaryOp::div, a, b);
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return binary_tt(OpId::maximum, "maximum", BinaryOp::maximum, a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return binary_tt(OpId::minimum, "minimum", BinaryOp::minimum, a, b);
}
Tensor pow(const Tensor& a, const Tensor& b) {
  return binary_tt(OpId::pow, "pow", BinaryOp::pow, a, b);
}
Tensor pow(const Tensor& a, const Scalar& exponent) {
  return binary_ts(OpId::pow, "pow", BinaryOp::pow, a, exponent);
}

// ---- in place -----------------------------------------------------------------------------------
Tensor& add_(Tensor& a, const Tensor& b, const Scalar& alpha) {
  return binary_inplace("add_", BinaryOp::add, a, &b, nullptr, alpha);
}
Tensor& add_(Tensor& a, const Scalar& b) {
  return binary_inplace("add_", BinaryOp::add, a, nullptr, &b, 1);
}
Tensor& sub_(Tensor& a, const Tensor& b, const Scalar& alpha) {
  return binary_inplace("sub_", BinaryOp::sub, a, &b, nullptr, alpha);
}
Tensor& sub_(Tensor& a, const Scalar& b) {
  return binary_inplace("sub_", BinaryOp::sub, a, nullptr, &b, 1);
}
Tensor& mul_(Tensor& a, const Tensor& b) {
  return binary_inplace("mul_", BinaryOp::mul, a, &b, nullptr, 1);
}
Tensor& mul_(Tensor& a, const Scalar& b) {
  return binary_inplace("mul_", BinaryOp::mul, a, nullptr, &b, 1);
}
Tensor& div_(Tensor& a, const Tensor& b) {
  return binary_inplace("div_", BinaryOp::div, a, &b, nullptr, 1);
}
Tensor& div_(Tensor& a, const Scalar& b) {
  return binary_inplace("div_", BinaryOp::div, a, nullptr, &b, 1);
}

// ---- comparisons and logical ops ----------------------------------------------------------------
Tensor eq(const Tensor& a, const Tensor& b) { return compare_tt("eq", CompareOp::eq, a, b); }
Tensor eq(const Tensor& a, const Scalar& b) { return compare_ts("eq", CompareOp::eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare_tt("ne", CompareOp::ne, a, b); }
Tensor ne(const Tensor& a, const Scalar& b) { return compare_ts("ne", CompareOp::ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare_tt("lt", CompareOp::lt, a, b); }
Tensor lt(const Tensor& a, const Scalar& b) { return compare_ts("lt", CompareOp::lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare_tt("le", CompareOp::le, a, b); }
Tensor le(const Tensor& a, const Scalar& b) { return compare_ts("le", CompareOp::le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare_tt("gt", CompareOp::gt, a, b); }
Tensor gt(const Tensor& a, const Scalar& b) { return compare_ts("gt", CompareOp::gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare_tt("ge", CompareOp::ge, a, b); }
Tensor ge(const Tensor& a, const Scalar& b) { return compare_ts("ge", CompareOp::ge, a, b); }
Tensor logical_and(const Tensor& a, const Tensor& b) {
  return logical_tt("logical_and", BinaryOp::logical_and, a, b);
}
Tensor logical_or(const Tensor& a, const Tensor& b) {
  return logical_tt("logical_or", BinaryOp::logical_or, a, b);
}

// ---- where, addcmul
// -------------------------------------------------------------------------------
Tensor where(const Tensor& cond, const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in, b = b_in;
  apply_autocast(OpId::where, {&a, &b});
  FABRIC_CHECK(cond.defined(), ValueError, "where: got an undefined condition");
  FABRIC_CHECK(cond.dtype() == DType::bool_, DTypeError,
               "where: the condition must be a bool tensor, got ", dtype_name(cond.dtype()),
               " (compare first, e.g. ne(mask, 0))");
  check_pair("where", a, b);
  FABRIC_CHECK(cond.device() == a.device(), DeviceError, "where: condition on ", cond.device(),
               ", values on ", a.device());
  const DType ct = result_type({&a, &b});
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.sizes(), a.sizes(), "where"), b.sizes(), "where");
  Tensor out = empty_like_operands(shape, {.dtype = ct, .device = a.device()}, {&cond, &a, &b});
  if (out.numel() > 0) {
    const Tensor ac = cast_for_kernel(a, ct), bc = cast_for_kernel(b, ct);
    const StridedLoop loop = make_strided_loop("where", out, {&cond, &ac, &bc});
    where_stub(out.device())(loop);
  }
  record_op(OpId::where, {cond, a, b}, {&out});
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a_in, const Scalar& b) {
  Tensor a = a_in;
  apply_autocast(OpId::where, {&a});
  check_elementwise_operand("where", a);
  const DType ct = result_type({&a}, {&b});
  // The scalar becomes a 0-dim tensor of the result dtype (exact: the result holds it anyway,
  // and one it cannot hold is refused, as in PyTorch: where(c, uint8 tensor, 1000)).
  check_scalar_fits("where", b, ct);
  const Tensor bt = scalar_tensor(b, {.dtype = ct, .device = a.device()});
  FABRIC_CHECK(cond.defined(), ValueError, "where: got an undefined condition");
  FABRIC_CHECK(cond.dtype() == DType::bool_, DTypeError,
               "where: the condition must be a bool tensor, got ", dtype_name(cond.dtype()),
               " (compare first, e.g. ne(mask, 0))");
  const Shape shape = broadcast_shapes(cond.sizes(), a.sizes(), "where");
  Tensor out = empty_like_operands(shape, {.dtype = ct, .device = a.device()}, {&cond, &a});
  if (out.numel() > 0) {
    const Tensor ac = cast_for_kernel(a, ct);
    const StridedLoop loop = make_strided_loop("where", out, {&cond, &ac, &bt});
    where_stub(out.device())(loop);
  }
  ScalarAttrs attrs{b};
  record_op(OpId::where, {cond, a}, {&out}, &attrs);
  return out;
}

Tensor addcmul(const Tensor& self_in, const Tensor& t1_in, const Tensor& t2_in,
               const Scalar& value) {
  Tensor self = self_in, t1 = t1_in, t2 = t2_in;
  apply_autocast(OpId::addcmul, {&self, &t1, &t2});
  check_pair("addcmul", self, t1);
  check_pair("addcmul", self, t2);
  const DType ct = result_type({&self, &t1, &t2});
  FABRIC_CHECK(!(is_integral(ct, true) && value.is_floating()), ValueError,
               "addcmul: for integral input tensors (", dtype_name(ct),
               "), argument value must not be a floating point number, got ", value.to_double());
  const Shape shape = broadcast_shapes(broadcast_shapes(self.sizes(), t1.sizes(), "addcmul"),
                                       t2.sizes(), "addcmul");
  Tensor out =
      empty_like_operands(shape, {.dtype = ct, .device = self.device()}, {&self, &t1, &t2});
  if (out.numel() > 0) {
    const Tensor s = cast_for_kernel(self, ct), a = cast_for_kernel(t1, ct),
                 b = cast_for_kernel(t2, ct);
    const StridedLoop loop = make_strided_loop("addcmul", out, {&s, &a, &b});
    addcmul_stub(out.device())(loop, value);
  }
  ScalarAttrs attrs{value};
  record_op(OpId::addcmul, {self, t1, t2}, {&out}, &attrs);
  return out;
}

}  // namespace fabric
