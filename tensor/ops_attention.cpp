// scaled_dot_product_attention (torch.nn.functional's) and its backward. The fused kernel behind
// attention_stub runs when the device has one and takes the problem: no explicit mask, q/k/v of
// one floating dtype with the same leading dims, dropout below 1 (drawn from the generator as the
// dropout op would draw it over the probabilities). Everything else is the composition
// softmax(q k^T * scale + mask) v of matmul/softmax/dropout ops, whose autograd covers it.
// attention_backend() chooses among our fused kernels, cuDNN's (on CUDA devices; the CUDA stub
// offers the problem to cuDNN first then) and the composition.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/attention_kernels.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/flop_counter.h"
#include "tensor/memory_overlap.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward.h"
#include "tensor/random.h"
#include "tensor/random_kernels.h"

namespace fabric {

FABRIC_DEFINE_STUB(attention_stub, AttentionFn);
FABRIC_DEFINE_STUB(attention_backward_stub, AttentionBackwardFn);

namespace {

// An AttentionBackend, or -1 until the first call reads FABRIC_ATTENTION.
std::atomic<int> g_attention_backend{-1};

// t's data as (batch, heads, R, D) with the last dim contiguous and rows apart: a 2-D/3-D tensor
// gains unit dims, leading dims beyond two fold into batch (a view when their strides allow). Rows
// that share memory (a query expanded over positions: stride 0; an overlapping window) are copied,
// as a GEMM's leading dimension must cover a row.
Tensor as_4d(const Tensor& t) {
  Tensor x = t.detach();
  if (x.dim() == 2) x = x.unsqueeze(0).unsqueeze(0);
  if (x.dim() == 3) x = x.unsqueeze(1);
  if (x.dim() > 4) x = x.reshape({-1, x.size(-3), x.size(-2), x.size(-1)});
  const bool strided_row = x.stride(3) != 1 && x.size(3) > 1;
  const bool rows_overlap = x.size(2) > 1 && x.stride(2) < x.size(3);
  if (strided_row || rows_overlap) x = x.contiguous();
  return x;
}

// The row stride the kernels' GEMMs take as a leading dimension. A single row's stride places
// nothing and may be anything (a (B, C, 1) feature map's heads transposed give 1), but a GEMM's
// leading dimension must cover a row: D then.
int64_t row_stride(const Tensor& x4) {
  return x4.size(2) == 1 ? std::max(x4.stride(2), x4.size(3)) : x4.stride(2);
}

AttentionOperand operand(const Tensor& x4) {
  return {x4.data_ptr(), x4.stride(0), x4.stride(1), row_stride(x4)};
}

AttentionStrides strides_of(const Tensor& x4) {
  return {x4.stride(0), x4.stride(1), row_stride(x4)};
}

// dq, dk, dv as the three pieces of one fresh buffer laid out like the tensor q, k and v are
// pieces of, when they are the three equal pieces of one tensor's last dim in order: (batch, heads,
// R, E) views of a (..., 3 * heads * E) tensor at element offsets 0, heads * E and 2 * heads * E,
// as nanoGPT's split of c_attn's output and MultiheadAttention's of its packed projection give
// them. The kernel writes the gradients straight into the buffer, and the split's backward hands
// it on as the packed tensor's gradient without a cat (autograd/derivatives_split.cpp). Empty
// otherwise (other orders, gaps, separate tensors; sdpa(x, x, x)): contiguous gradients then.
std::optional<std::array<Tensor, 3>> packed_gradients(const Tensor& q, const Tensor& k,
                                                      const Tensor& v) {
  if (q.dim() != 4 || k.sizes() != q.sizes() || v.sizes() != q.sizes()) return std::nullopt;
  if (k.strides() != q.strides() || v.strides() != q.strides()) return std::nullopt;
  if (k.storage() != q.storage() || v.storage() != q.storage()) return std::nullopt;
  const int64_t heads = q.size(1), E = q.size(3);
  if (q.stride(3) != 1 && E > 1) return std::nullopt;  // as_4d would copy: the kernel reads a copy
  // Heads side by side in the last dim (a single head's stride is free: any value addresses it).
  if (heads > 1 && q.stride(1) != E) return std::nullopt;
  const int64_t width = heads * E, at = q.storage_offset();
  if (k.storage_offset() != at + width || v.storage_offset() != at + 2 * width) return std::nullopt;
  // q's heads, then k's, then v's as one (batch, 3 * heads, R, E) view: it must fill memory
  // exactly once (it is the union of q, k and v, so it lies in their storage). The same geometry
  // in the buffer then keeps the three gradients apart and leaves no element unwritten.
  Strides strides = q.strides();
  strides[1] = E;
  const Shape whole_shape{q.size(0), 3 * heads, q.size(2), E};
  if (!is_non_overlapping_and_dense(
          Tensor::from_storage(q.storage(), q.dtype(), whole_shape, strides, at)))
    return std::nullopt;
  const Tensor buffer = empty({3 * q.numel()}, {.dtype = q.dtype(), .device = q.device()});
  auto piece = [&](int64_t i) {
    return Tensor::from_storage(buffer.storage(), q.dtype(), q.sizes(), strides, i * width);
  };
  return std::array<Tensor, 3>{piece(0), piece(1), piece(2)};
}

// Whether the device's attention kernels take out, grad_out and the gradients strided, so that a
// transformer's heads need no copies around the attention: the CPU kernel does; on CUDA cuDNN's
// does (when it is the backend) and ours take them through a contiguous copy each, so the op asks
// for strides there only when cuDNN is the backend. (Also for what cuDNN declines, float32 and
// dropout: our staging copies then stand in for the head split and merge copies a contiguous
// layout needs, and GPT-2's float32 step queues 394 launches so against 418 without.)
bool strided_layouts(Device device) {
  return device.is_cpu() || attention_backend() == AttentionBackend::cudnn;
}

// Whether a and b (of one shape) lie alike: equal strides wherever a dim has more than one index
// (a size-1 dim's stride places nothing).
bool same_layout(const Tensor& a, const Tensor& b) {
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.size(d) != 1 && a.stride(d) != b.stride(d)) return false;
  return true;
}

// A fresh tensor of `shape` (q's with the last dim Ev) laid out in q's memory order: its dims
// ordered by q's strides, largest first (ties in logical order), so that the output lies as q
// does. A transformer's q, heads cut from (B, T, 3C) as (B, H, T, D) views, gives an output
// lying as (B, T, H, D) (as torch's flash attention lays its output out), whose heads side by
// side are a view instead of a copy; MultiheadAttention's (T, N, H, D)-ordered q likewise. A
// contiguous q gives a contiguous output, and so does a q whose last dim is not innermost (the op
// reads a contiguous copy of it). A tensor of its own with those strides, not a view, as an op's
// output must be.
Tensor output_like(const Tensor& q, const Shape& shape) {
  const size_t n = shape.size();
  std::vector<size_t> order(n);  // dims from outermost to innermost in memory
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return q.stride(a) > q.stride(b); });
  const TensorOptions options{.dtype = q.dtype(), .device = q.device()};
  if (q.is_contiguous() || order.back() != n - 1) return empty(shape, options);
  Shape memory_shape(n);
  for (size_t i = 0; i < n; ++i) memory_shape[i] = shape[order[i]];
  const Strides memory_strides = contiguous_strides(memory_shape);
  Strides strides(n);
  for (size_t i = 0; i < n; ++i) strides[order[i]] = memory_strides[i];
  const Tensor buffer = empty({numel_of(shape)}, options);
  return Tensor::from_storage(buffer.storage(), q.dtype(), shape, strides, 0);
}

// The kernel's view of q/k/v (as_4d'd: the tensors must outlive the call).
AttentionArgs attention_args(const Tensor& q4, const Tensor& k4, const Tensor& v4, double scale,
                             bool causal, const AttentionDropout& dropout) {
  AttentionArgs a;
  a.batch = q4.size(0), a.heads = q4.size(1);
  a.L = q4.size(2), a.S = k4.size(2), a.E = q4.size(3), a.Ev = v4.size(3);
  a.dtype = q4.dtype();
  a.q = operand(q4), a.k = operand(k4), a.v = operand(v4);
  a.scale = scale;
  a.causal = causal;
  a.dropout_p = dropout.p;
  a.seed = dropout.seed;
  a.offset = dropout.offset;
  a.prefer_cudnn = attention_backend() == AttentionBackend::cudnn;
  return a;
}

// torch's sdpa_flop_count (q·kᵀ and p·v as bmm's; causal masking not discounted) and
// sdpa_backward_flop_count (scores recomputed, then dp = g·vᵀ, dv = pᵀ·g, dq = ds·k, dk = dsᵀ·q).
int64_t attention_flops(const AttentionArgs& a) {
  return 2 * a.batch * a.heads * a.L * a.S * (a.E + a.Ev);
}
int64_t attention_backward_flops(const AttentionArgs& a) {
  return 2 * a.batch * a.heads * a.L * a.S * (3 * a.E + 2 * a.Ev);
}

bool fusable(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
             double dropout_p) {
  if (mask.defined() || dropout_p >= 1.0) return false;
  if (!is_floating(q.dtype()) || is_fp8(q.dtype())) return false;
  if (k.dtype() != q.dtype() || v.dtype() != q.dtype()) return false;
  if (k.device() != q.device() || v.device() != q.device()) return false;
  if (k.dim() != q.dim() || v.dim() != q.dim()) return false;
  for (int64_t d = 0; d + 2 < q.dim(); ++d)
    if (k.size(d) != q.size(d) || v.size(d) != q.size(d)) return false;
  return q.numel() > 0 && k.numel() > 0 && v.numel() > 0;
}

// The fused forward, or undefined when the device's kernel is missing or declines (a declined
// problem with dropout has consumed its draw; the composition then draws its own).
Tensor fused_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                       bool causal, double dropout_p, Generator* gen) {
  const AttentionFn kernel = attention_stub.find(q.device());
  if (!kernel) return Tensor();
  const Tensor q4 = as_4d(q), k4 = as_4d(k), v4 = as_4d(v);
  AttentionDropout dropout;
  if (dropout_p > 0.0) {
    // The draw of the (batch, heads, L, S) probabilities' dropout op.
    Generator& g = gen ? *gen : default_generator();
    const int64_t n = q4.size(0) * q4.size(1) * q4.size(2) * k4.size(2);
    dropout = {dropout_p, g.seed(), g.reserve(random_blocks_for(n, kDropoutValuesPerBlock))};
  }
  Shape out_shape = q.sizes();
  out_shape.back() = v.size(-1);
  const Shape lse_shape(q.sizes().begin(), q.sizes().end() - 1);
  const DType lse_dt = q.dtype() == DType::float64 ? DType::float64 : DType::float32;
  // Laid out as q lies where the kernel writes through strides (strided_layouts), else
  // contiguous. Contiguous too when out's leading dims would not fold into the kernel's one batch
  // dim as a view (as_4d would hand the kernel a copy).
  Tensor out = strided_layouts(q.device())
                   ? output_like(q, out_shape)
                   : empty(out_shape, {.dtype = q.dtype(), .device = q.device()});
  Tensor out4 = as_4d(out);
  if (out4.storage() != out.storage()) {
    out = empty(out_shape, {.dtype = q.dtype(), .device = q.device()});
    out4 = as_4d(out);
  }
  Tensor lse = empty(lse_shape, {.dtype = lse_dt, .device = q.device()});
  AttentionArgs args = attention_args(q4, k4, v4, scale, causal, dropout);
  if (!out4.is_contiguous()) args.out_strides = strides_of(out4);
  if (!kernel(args, out4.data_ptr(), lse.data_ptr())) return Tensor();
  // Our fused kernel is flash-style (it keeps the row log-sum-exp): torch's flash op name.
  if (counting_flops()) report_flops("_scaled_dot_product_flash_attention", attention_flops(args));
  AttentionAttrs attrs{scale, causal, dropout};
  record_op(OpId::scaled_dot_product_attention, {q, k, v}, {&out, &lse}, &attrs);
  return out;
}

}  // namespace

AttentionBackend attention_backend() {
  int b = g_attention_backend.load(std::memory_order_relaxed);
  if (b < 0) {
    const char* env = std::getenv("FABRIC_ATTENTION");
    // cuDNN's first by default, ours where it declines: on the H200, cuDNN's fused attention ran
    // GPT-2's causal fwd + bwd in 0.20 ms against our kernel's 0.49 (tools/gpu-check.sh, the
    // benchmark that decides); on the CPU there is no cuDNN and the choice changes nothing.
    AttentionBackend chosen = AttentionBackend::cudnn;
    if (env && *env) {
      const std::string_view v(env);
      FABRIC_CHECK(v == "fused" || v == "cudnn" || v == "composed", ValueError,
                   "FABRIC_ATTENTION must be 'fused', 'cudnn' or 'composed', got '", env, "'");
      chosen = v == "cudnn"      ? AttentionBackend::cudnn
               : v == "composed" ? AttentionBackend::composed
                                 : AttentionBackend::fused;
    }
    int unset = -1;
    g_attention_backend.compare_exchange_strong(unset, static_cast<int>(chosen));  // a set_ wins
    b = g_attention_backend.load(std::memory_order_relaxed);
  }
  return static_cast<AttentionBackend>(b);
}

void set_attention_backend(AttentionBackend backend) {
  g_attention_backend.store(static_cast<int>(backend));
}

const char* attention_backend_name(AttentionBackend backend) {
  switch (backend) {
    case AttentionBackend::fused:
      return "fused";
    case AttentionBackend::cudnn:
      return "cudnn";
    case AttentionBackend::composed:
      return "composed";
  }
  return "unknown";
}

bool fused_attention_enabled() { return attention_backend() != AttentionBackend::composed; }

void set_fused_attention(bool enabled) {
  set_attention_backend(enabled ? AttentionBackend::fused : AttentionBackend::composed);
}

Tensor causal_mask(int64_t L, int64_t S, Device device) {
  FABRIC_CHECK(L >= 0 && S >= 0, ValueError, "causal_mask: sizes must be >= 0, got L=", L,
               ", S=", S);
  Tensor i = arange(L, DType::int64, device).unsqueeze(1);  // (L, 1)
  Tensor j = arange(S, DType::int64, device).unsqueeze(0);  // (1, S)
  return ge(i, j);                                          // (L, S) bool
}

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                    const Tensor& attn_mask_in, double dropout_p, bool is_causal,
                                    std::optional<double> scale, Generator* gen) {
  Tensor q = q_in, k = k_in, v = v_in, attn_mask = attn_mask_in;
  apply_autocast(OpId::scaled_dot_product_attention, {&q, &k, &v, &attn_mask});
  const std::pair<const Tensor*, const char*> operands[] = {{&q, "q"}, {&k, "k"}, {&v, "v"}};
  for (const auto& [t, name] : operands)
    FABRIC_CHECK(t->defined(), ValueError,
                 "scaled_dot_product_attention: got an undefined tensor (", name, ")");
  FABRIC_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2, ShapeError,
               "scaled_dot_product_attention: q, k, v need at least 2 dims, got ",
               shape_str(q.sizes()), ", ", shape_str(k.sizes()), ", ", shape_str(v.sizes()));
  const int64_t L = q.size(-2), E = q.size(-1), S = k.size(-2);
  FABRIC_CHECK(
      k.size(-1) == E && v.size(-2) == S, ShapeError,
      "scaled_dot_product_attention: expected q (..., L, E), k (..., S, E), v (..., S, Ev), got q ",
      shape_str(q.sizes()), ", k ", shape_str(k.sizes()), ", v ", shape_str(v.sizes()));
  FABRIC_CHECK(is_floating(q.dtype()) && k.dtype() == q.dtype() && v.dtype() == q.dtype(),
               DTypeError,
               "scaled_dot_product_attention: expected q, k and v of one floating dtype, got ",
               dtype_name(q.dtype()), ", ", dtype_name(k.dtype()), " and ", dtype_name(v.dtype()));
  // The batch dims broadcast (as the math path's matmuls do), and a mask with the scores: checked
  // here, so that a mismatch names this op rather than a matmul or where inside it.
  Shape scores =
      broadcast_shapes(broadcast_shapes(Shape(q.sizes().begin(), q.sizes().end() - 2),
                                        Shape(k.sizes().begin(), k.sizes().end() - 2),
                                        "scaled_dot_product_attention (the batch dims of q and k)"),
                       Shape(v.sizes().begin(), v.sizes().end() - 2),
                       "scaled_dot_product_attention (the batch dims of q, k and v)");
  scores.push_back(L);
  scores.push_back(S);
  FABRIC_CHECK(!(is_causal && attn_mask.defined()), ValueError,
               "scaled_dot_product_attention: pass either attn_mask or is_causal, not both");
  if (attn_mask.defined()) {
    FABRIC_CHECK(
        attn_mask.dtype() == DType::bool_ || is_floating(attn_mask.dtype()), DTypeError,
        "scaled_dot_product_attention: attn_mask must be bool (true: take part) or floating (added "
        "to the scores), got ",
        dtype_name(attn_mask.dtype()));
    broadcast_shapes(attn_mask.sizes(), scores,
                     "scaled_dot_product_attention (attn_mask and the scores (..., L, S))");
  }
  FABRIC_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0, ValueError,
               "scaled_dot_product_attention: dropout_p must be in [0, 1], got ", dropout_p);
  // A float mask is added to scores of q's dtype, as torch's attn_bias += attn_mask (in place, so
  // in q's dtype): a float32 mask beside bfloat16 q, k, v does not widen the scores.
  if (attn_mask.defined() && is_floating(attn_mask.dtype()) && attn_mask.dtype() != q.dtype())
    attn_mask = attn_mask.to(q.dtype());
  const double s = scale.value_or(E > 0 ? 1.0 / std::sqrt(static_cast<double>(E)) : 1.0);
  if (fusable(q, k, v, attn_mask, dropout_p) && fused_attention_enabled()) {
    Tensor out = fused_attention(q, k, v, s, is_causal, dropout_p, gen);
    if (out.defined()) return out;
  }
  // Scaling q (L x E values) is cheaper than scaling the scores (L x S per head).
  Tensor att = matmul(mul(q, Scalar(s)), k.transpose(-2, -1));  // (..., L, S)
  Tensor mask = is_causal ? causal_mask(L, S, q.device()) : attn_mask;
  if (mask.defined()) {
    if (mask.dtype() == DType::bool_) {
      att = where(mask, att, Scalar(-std::numeric_limits<double>::infinity()));
    } else {
      att = add(att, mask);
    }
  }
  att = softmax(att, -1);
  if (dropout_p > 0.0) att = dropout(att, dropout_p, true, gen);
  return matmul(att, v);  // (..., L, Ev)
}

std::tuple<Tensor, Tensor, Tensor> scaled_dot_product_attention_backward(
    const Tensor& grad_out, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
    const Tensor& lse, double scale, bool is_causal, const AttentionDropout& dropout) {
  FABRIC_CHECK(grad_out.sizes() == out.sizes(), ShapeError,
               "scaled_dot_product_attention_backward: grad_out shape ",
               shape_str(grad_out.sizes()), " does not match the output shape ",
               shape_str(out.sizes()));
  const Tensor q4 = as_4d(q), k4 = as_4d(k), v4 = as_4d(v);
  // Where the kernel reads out and grad_out and writes the gradients through strides (the
  // forward lays out its out as q lies), they go as they lie and the gradients of heads cut from
  // one packed projection into one buffer (strided_layouts); elsewhere contiguous.
  const bool strided = strided_layouts(q.device());
  const Tensor o = strided ? as_4d(out) : out.detach().contiguous(), l = lse.detach().contiguous();
  AttentionBackwardArgs a;
  a.fwd = attention_args(q4, k4, v4, scale, is_causal, dropout);
  if (strided && !o.is_contiguous()) a.fwd.out_strides = strides_of(o);
  a.out = o.data_ptr();
  a.lse = l.data_ptr();
  // grad_out usually arrives as the transpose of the next layer's input gradient.
  const Tensor g = grad_out.detach().to(q.dtype());
  Tensor g4 = strided ? as_4d(g) : g.contiguous();
  if (strided && (!same_layout(g4, o) || !is_non_overlapping_and_dense(g4))) {
    // In out's layout, as GPT's head merge hands it back: cuDNN before 9.5.1 reads dO with O's
    // strides whatever dO's are (PyTorch's cuDNN attention copies it likewise), and a broadcast
    // (stride 0) grad_out is no layout for a kernel to read.
    Tensor laid = output_like(o, g4.sizes());
    laid.copy_(g4);
    g4 = laid;
  }
  a.grad_out = g4.data_ptr();
  if (strided && !g4.is_contiguous()) a.grad_out_strides = strides_of(g4);
  Tensor dq, dk, dv;
  if (auto packed = strided ? packed_gradients(q, k, v) : std::nullopt) {
    dq = (*packed)[0], dk = (*packed)[1], dv = (*packed)[2];  // 4-D, last dim contiguous
    a.grad_q_strides = strides_of(dq);
    a.grad_k_strides = strides_of(dk);
    a.grad_v_strides = strides_of(dv);
  } else {
    dq = empty(q.sizes(), {.dtype = q.dtype(), .device = q.device()});
    dk = empty(k.sizes(), {.dtype = k.dtype(), .device = k.device()});
    dv = empty(v.sizes(), {.dtype = v.dtype(), .device = v.device()});
  }
  a.grad_q = dq.data_ptr();
  a.grad_k = dk.data_ptr();
  a.grad_v = dv.data_ptr();
  attention_backward_stub(q.device())(a);
  if (counting_flops())
    report_flops("_scaled_dot_product_flash_attention_backward", attention_backward_flops(a.fwd));
  return {dq, dk, dv};
}

}  // namespace fabric
