// ctc_loss (tensor/ctc_loss.h) as torch 1.13 composes it: _ctc_loss (the kernel, recorded as
// CtcLossBackward0) on the (T, N, C) log-probabilities, then where() for zero_infinity, the
// division by the clamped target lengths and mean() for "mean", sum() for "sum", squeeze(0) for
// one sample: the same ops, so the same values, gradients and node names as torch's.
#include <cmath>
#include <limits>

#include "tensor/autocast.h"
#include "tensor/ctc_loss.h"
#include "tensor/ctc_loss_kernels.h"
#include "tensor/factory.h"
#include "tensor/loss_reduction.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"

namespace fabric {

FABRIC_DEFINE_STUB(ctc_loss_stub, CtcLossFn);
FABRIC_DEFINE_STUB(ctc_loss_backward_stub, CtcLossBackwardFn);

namespace {

constexpr const char* kOp = "ctc_loss";

std::string lengths_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// A lengths tensor's values (any shape, any device), as torch reads them: integral dtypes only.
std::vector<int64_t> lengths_of(const char* what, const Tensor& t) {
  FABRIC_CHECK(t.defined(), ValueError, kOp, ": got an undefined tensor (", what, ")");
  FABRIC_CHECK(is_integral(t.dtype(), /*include_bool=*/false), DTypeError, kOp, ": ", what,
               " must be integral (int64 or another integer dtype), got ", dtype_name(t.dtype()));
  return t.detach().to(Device::cpu()).to(DType::int64).contiguous().to_vector<int64_t>();
}

// torch's ctc_loss_allocate_outputs checks, in its order, plus those later torch releases added
// where 1.13 reads memory outside the sample (negative lengths) and one for labels outside
// [0, C) (torch reads outside log_probs' class row for them). Returns each sample's target
// offset into the contiguous int64 targets and the longest target.
std::vector<int64_t> check_layout(const Tensor& lp3, const Tensor& tg,
                                  const std::vector<int64_t>& il, const std::vector<int64_t>& tl,
                                  int64_t blank, int64_t& max_target_length) {
  const int64_t T = lp3.size(0), N = lp3.size(1), C = lp3.size(2);
  FABRIC_CHECK(tg.dim() == 1 || tg.dim() == 2, ShapeError, kOp,
               ": expected targets padded (N, S) or concatenated (sum(target_lengths)), got a ",
               tg.dim(), "-dimensional tensor of shape ", shape_str(tg.sizes()));
  FABRIC_CHECK(0 <= blank && blank < C, ValueError, kOp,
               ": blank must be in label range: expected a class in [0, ", C, "), got ", blank);
  FABRIC_CHECK(static_cast<int64_t>(il.size()) == N, ShapeError, kOp,
               ": input_lengths must be of size batch_size: expected ", N, " values, got ",
               il.size());
  FABRIC_CHECK(static_cast<int64_t>(tl.size()) == N, ShapeError, kOp,
               ": target_lengths must be of size batch_size: expected ", N, " values, got ",
               tl.size());
  std::vector<int64_t> offset(static_cast<size_t>(N));
  max_target_length = 0;
  int64_t pos = 0;
  for (int64_t b = 0; b < N; ++b) {
    FABRIC_CHECK(tl[b] >= 0, ValueError, kOp,
                 ": expected target_lengths to have value at least 0, but got value ", tl[b],
                 " (sample ", b, ")");
    offset[b] = tg.dim() == 1 ? pos : b * tg.size(1);
    pos += tl[b];
    max_target_length = std::max(max_target_length, tl[b]);
  }
  if (tg.dim() == 1) {
    FABRIC_CHECK(tg.size(0) == pos, ShapeError, kOp,
                 ": concatenated targets must hold sum(target_lengths) = ", pos,
                 " labels, got shape ", shape_str(tg.sizes()), " for target_lengths ",
                 lengths_str(tl));
  } else {
    FABRIC_CHECK(tg.size(0) == N, ShapeError, kOp, ": padded targets must have ", N,
                 " rows (one per sample), got shape ", shape_str(tg.sizes()));
    FABRIC_CHECK(tg.size(1) >= max_target_length, ShapeError, kOp,
                 ": padded targets must have at least max(target_lengths) = ", max_target_length,
                 " columns, got shape ", shape_str(tg.sizes()));
  }
  for (int64_t b = 0; b < N; ++b) {
    FABRIC_CHECK(il[b] >= 0, ValueError, kOp,
                 ": expected input_lengths to have value at least 0, but got value ", il[b],
                 " (sample ", b, ")");
    FABRIC_CHECK(il[b] <= T, ValueError, kOp, ": expected input_lengths to have value at most ", T,
                 ", but got value ", il[b], " (sample ", b, "; log_probs' T is ", T, ")");
  }
  FABRIC_CHECK(T > 0, ShapeError, kOp, ": log_probs of shape ", shape_str(lp3.sizes()),
               " has no time steps (torch 1.13 raises for T = 0 too)");
  const int64_t* t = tg.data<int64_t>();
  for (int64_t b = 0; b < N; ++b) {
    for (int64_t k = 0; k < tl[b]; ++k) {
      const int64_t label = t[offset[b] + k];
      FABRIC_CHECK(label >= 0 && label < C, IndexError, kOp, ": target label ", label, " (sample ",
                   b, ", position ", k, ") is out of range: expected a class in [0, ", C, ")");
    }
  }
  return offset;
}

CtcLossOperands operands(const Tensor& lp, const Tensor& tg, const CtcLossAttrs& a) {
  CtcLossOperands d;
  d.dtype = lp.dtype();
  d.T = lp.size(0);
  d.N = lp.size(1);
  d.C = lp.size(2);
  d.blank = a.blank;
  d.width = a.log_alpha.size(2);
  d.log_probs = lp.data_ptr();
  d.targets = tg.data<int64_t>();
  d.target_offset = a.target_offset.data();
  d.input_lengths = a.input_lengths.data();
  d.target_lengths = a.target_lengths.data();
  return d;
}

}  // namespace

Tensor ctc_loss(const Tensor& log_probs_in, const Tensor& targets,
                const std::vector<int64_t>& input_lengths,
                const std::vector<int64_t>& target_lengths, int64_t blank,
                std::string_view reduction, bool zero_infinity) {
  using Reduction = detail::LossReduction;
  const Reduction red = detail::parse_loss_reduction(kOp, reduction);
  FABRIC_CHECK(log_probs_in.defined(), ValueError, kOp, ": got an undefined tensor (log_probs)");
  FABRIC_CHECK(targets.defined(), ValueError, kOp, ": got an undefined tensor (targets)");
  Tensor log_probs = log_probs_in;
  apply_autocast(OpId::ctc_loss, {&log_probs});
  FABRIC_CHECK(log_probs.dtype() == DType::float32 || log_probs.dtype() == DType::float64,
               DTypeError, kOp,
               ": expected log_probs of dtype float32 or float64 (torch's ctc_loss_cpu has no "
               "kernel for others), got ",
               dtype_name(log_probs.dtype()));
  FABRIC_CHECK(log_probs.dim() == 3 || log_probs.dim() == 2, ShapeError, kOp,
               ": expected log_probs of shape (T, N, C), or (T, C) for one sample, got shape ",
               shape_str(log_probs.sizes()));
  const bool batched = log_probs.dim() == 3;
  const Tensor lp3 = batched ? log_probs : log_probs.unsqueeze(1);
  // torch reads the targets as int64 whatever their dtype; the kernel runs on the host.
  const Tensor tg = targets.detach().to(Device::cpu()).to(DType::int64).contiguous();
  CtcLossAttrs attrs{input_lengths, target_lengths, {}, blank, zero_infinity, Tensor()};
  int64_t max_target_length = 0;
  attrs.target_offset =
      check_layout(lp3, tg, input_lengths, target_lengths, blank, max_target_length);
  const Device device = log_probs.device();
  const Tensor lp = lp3.detach().to(Device::cpu()).contiguous();
  const int64_t T = lp.size(0), N = lp.size(1);
  const TensorOptions host{.dtype = lp.dtype(), .device = Device::cpu()};
  attrs.log_alpha = empty({N, T, 2 * max_target_length + 1}, host);
  Tensor nll = empty({N}, host);
  if (N > 0) {
    CtcLossDesc d;
    static_cast<CtcLossOperands&>(d) = operands(lp, tg, attrs);
    d.log_alpha = attrs.log_alpha.data_ptr();
    d.nll = nll.data_ptr();
    ctc_loss_stub(Device::cpu())(d);
  }
  Tensor res = nll.to(device);
  record_op(OpId::ctc_loss, {lp3, tg}, {&res}, &attrs, "CtcLossBackward0");
  const TensorOptions opts{.dtype = res.dtype(), .device = device};
  if (zero_infinity)
    res = where(eq(res, std::numeric_limits<double>::infinity()), zeros({}, opts), res);
  if (red == Reduction::mean) {
    std::vector<double> lengths(target_lengths.begin(), target_lengths.end());
    const Tensor clamped =
        clamp(from_vector(lengths, {N}).to(res.dtype()).to(device), Scalar(1), std::nullopt);
    return mean(div(res, clamped));
  }
  if (red == Reduction::sum) return sum(res);
  return batched ? res : res.squeeze(0);
}

Tensor ctc_loss(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                const Tensor& target_lengths, int64_t blank, std::string_view reduction,
                bool zero_infinity) {
  detail::parse_loss_reduction(kOp, reduction);  // Python's check comes first
  std::vector<int64_t> il = lengths_of("input_lengths", input_lengths);
  std::vector<int64_t> tl = lengths_of("target_lengths", target_lengths);
  return ctc_loss(log_probs, targets, il, tl, blank, reduction, zero_infinity);
}

Tensor ctc_loss_backward(const Tensor& grad_out, const Tensor& log_probs, const Tensor& targets,
                         const Tensor& nll, const CtcLossAttrs& a) {
  const Device device = log_probs.device();
  const Tensor lp = log_probs.detach().to(Device::cpu()).contiguous();
  FABRIC_CHECK(lp.dim() == 3 && grad_out.numel() == lp.size(1), ShapeError,
               "ctc_loss_backward: expected one incoming gradient per sample of log_probs ",
               shape_str(lp.sizes()), ", got shape ", shape_str(grad_out.sizes()));
  const Tensor go = grad_out.detach().to(Device::cpu()).to(lp.dtype()).contiguous();
  const Tensor nl = nll.detach().to(Device::cpu()).to(lp.dtype()).contiguous();
  const Tensor tg = targets.detach().to(Device::cpu()).to(DType::int64).contiguous();
  Tensor grad = empty(lp.sizes(), {.dtype = lp.dtype(), .device = Device::cpu()});
  if (grad.numel() > 0) {
    Tensor log_beta = empty(a.log_alpha.sizes(), {.dtype = lp.dtype(), .device = Device::cpu()});
    CtcLossBackwardDesc d;
    static_cast<CtcLossOperands&>(d) = operands(lp, tg, a);
    d.grad_out = go.data_ptr();
    d.nll = nl.data_ptr();
    d.log_alpha = a.log_alpha.data_ptr();
    d.log_beta = log_beta.data_ptr();
    d.grad = grad.data_ptr();
    d.zero_infinity = a.zero_infinity;
    ctc_loss_backward_stub(Device::cpu())(d);
  }
  return grad.to(device);
}

}  // namespace fabric
