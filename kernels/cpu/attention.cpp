// CPU fused scaled-dot-product attention (tensor/attention_kernels.h).
//
// Forward, per (batch, head) and block of kBlock query rows: the raw scores Q_blk K^T go through
// the GEMM kernel into a per-thread float buffer, each row is scaled, exponentiated against its max
// and normalised in place (its log-sum-exp saved), and P V is the output block, written through
// out's strides (the op gives out q's memory order: a transformer's heads side by side). Only one
// block's (kBlock x S) scores exist at a time, so they stay in cache where the composed op streams
// whole (L x S) tensors per head through memory four or five times; keys past the diagonal of a
// causal problem are neither computed nor read, which halves the work.
//
// Backward recomputes P from the saved log-sum-exp (the flash-attention scheme) per (batch, head),
// block by block: dV += P^T dO, dP = dO V^T, dS = scale * P * (dP - D) with D = rowsum(dO * O)
// (computed first for all heads, in one pass over O and dO in their memory order),
// dQ = dS K (each query block written once), dK += dS^T Q. dK and dV accumulate over query blocks,
// so a (batch, head) is one task. dO is read and dQ, dK, dV written through their strides (a
// transposed dO, gradients that are the pieces of one (..., 3 * heads * E) buffer). Strided
// bfloat16 q, k, v heads are read through dense per-thread copies of their rows, which keep every
// GEMM on oneDNN's brgemm (AMX) rather than gemm:jit (heads_made_dense).
//
// Dropout (training) multiplies each kept probability by 1/(1-p) and zeroes the others after the
// softmax, with the keep decisions of the dropout op's contract on the element's index in the
// (batch, heads, L, S) probabilities (tensor/attention_kernels.h): the same mask the composition
// would draw, regenerated block by block in the backward from the Philox counter. With Z that
// mask, the backward's dV takes P * Z and dS = scale * P * (Z * dP - D); D = rowsum(dO * O) is
// unchanged because O already holds the dropout.
//
// Precision: float32 and float64 problems compute in their dtype throughout. bfloat16/float16
// problems multiply in their dtype with float32 accumulation; the softmax math is float32, and P
// and dS are rounded to the dtype before the GEMMs that read them (as the flash-attention GPU
// kernels do, so those GEMMs run on the bf16 units). The scale is applied in the compute type
// rather than as the GEMM's float alpha, so float64 keeps full precision.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/philox.h"
#include "kernels/cpu/reduce_math.h"
#include "tensor/attention_kernels.h"
#include "tensor/random_kernels.h"

namespace fabric::cpu {
namespace {

constexpr int64_t kBlock = 64;  // query rows per block: 64 x S float scores stay in L2 to S ~ 2K

// Per-thread scratch slots of scratch<A>() and scratch<uint16_t>() (the bf16/f16 copies); the
// dropout mask uses slot 0 of scratch<uint8_t>() (keep flags) and scratch<uint32_t>() (words).
enum Slot { kScores = 0, kGradScores = 1, kGradK = 2, kGradV = 3, kDropped = 4 };

// One operand of one (batch, head), in bytes.
struct Mat {
  const char* p = nullptr;
  int64_t ld = 0;  // elements between rows
};

Mat head_of(const AttentionOperand& o, int64_t b, int64_t h, int64_t isz) {
  return {static_cast<const char*>(o.data) + (b * o.batch_stride + h * o.head_stride) * isz,
          o.row_stride};
}

// The layout of grad_out or a gradient: its strides when set, else a contiguous
// (batch, heads, rows, cols) block.
AttentionStrides layout_of(const std::optional<AttentionStrides>& strides, const AttentionArgs& a,
                           int64_t rows, int64_t cols) {
  return strides ? *strides : AttentionStrides{a.heads * rows * cols, rows * cols, cols};
}

Mat head_of(const void* data, const AttentionStrides& s, int64_t b, int64_t h, int64_t isz) {
  return {static_cast<const char*>(data) + (b * s.batch + h * s.head) * isz, s.row};
}

// One (batch, head) of a gradient being written.
struct OutMat {
  char* p = nullptr;
  int64_t ld = 0;  // elements between rows
};

OutMat head_of(void* data, const AttentionStrides& s, int64_t b, int64_t h, int64_t isz) {
  return {static_cast<char*>(data) + (b * s.batch + h * s.head) * isz, s.row};
}

// Keys attended from query row i, and from every row of a block ending (exclusively) at `end`.
int64_t keys_of_row(const AttentionArgs& a, int64_t i) {
  return a.causal ? std::min(a.S, i + 1) : a.S;
}
int64_t keys_of_block(const AttentionArgs& a, int64_t end) {
  return a.causal ? std::min(a.S, end) : a.S;
}

// The dropout mask of a block of rows [i0, i0 + rows) x keys [0, n) of one (batch, head), as one
// keep flag per element (rows x n, row-major): the dropout op's rule on the element's index in
// the (batch, heads, L, S) probabilities. Null without dropout.
const uint8_t* keep_flags(const AttentionArgs& a, int64_t bh, int64_t i0, int64_t rows, int64_t n) {
  if (a.dropout_p <= 0.0) return nullptr;
  const int32_t threshold = dropout_keep_threshold(a.dropout_p);
  uint8_t* keep = scratch<uint8_t>(0, rows * n);
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t first = static_cast<uint64_t>((bh * a.L + i0 + r) * a.S);  // element (i, 0)
    const uint64_t b0 = first / kDropoutValuesPerBlock;
    const uint64_t b1 = (first + static_cast<uint64_t>(n) + kDropoutValuesPerBlock - 1) / kDropoutValuesPerBlock;
    uint32_t* words = scratch<uint32_t>(0, static_cast<int64_t>(b1 - b0) * kDropoutValuesPerBlock);
    philox_blocks(a.seed, a.offset + b0, static_cast<int64_t>(b1 - b0), words);
    const uint32_t* w = words + (first - b0 * kDropoutValuesPerBlock);
    for (int64_t j = 0; j < n; ++j)
      keep[r * n + j] = static_cast<int32_t>(w[j] >> 8) < threshold ? 1 : 0;
  }
  return keep;
}

// The dropout op's scale for the problem's dtype (dropout_scale: torch's rounding).
template <typename A>
A dropout_scale(const AttentionArgs& a) {
  return static_cast<A>(dropout_scale(a.dropout_p, a.dtype));
}

// C (M x N, ldc) = op(A) op(B) [+ C when accumulate]; A is (M x K) or, transposed, stored (K x M).
void mm(int64_t M, int64_t N, int64_t K, const void* A, int64_t lda, bool trans_a, DType ab_dtype,
        const void* B, int64_t ldb, bool trans_b, void* C, int64_t ldc, DType c_dtype,
        bool accumulate = false) {
  GemmArgs g;
  g.M = M, g.N = N, g.K = K;
  g.a_dtype = g.b_dtype = ab_dtype;
  g.c_dtype = c_dtype;
  g.A = A, g.lda = lda, g.trans_a = trans_a;
  g.B = B, g.ldb = ldb, g.trans_b = trans_b;
  g.C = C, g.ldc = ldc;
  g.beta = accumulate ? 1.f : 0.f;
  gemm(g);
}

// `n` compute-type values as an operand of dtype dt: themselves, or rounded into a 2-byte scratch.
template <typename A>
const void* as_operand(const A* x, DType dt, int64_t n, int slot) {
  if (dt == dtype_v<A>) return x;
  void* low = scratch<uint16_t>(slot, n);
  convert(dtype_v<A>, x, dt, low, n);
  return low;
}

// Per-thread byte buffers for strided outputs and backward operands (slots as in Stage), 64-byte
// aligned like the allocator's tensors.
enum Stage {
  kStageGradOut = 0,
  kStageGradQ = 1,
  kStageGradKV = 2,
  kStageOut = 3,
  kStageQ = 4,  // dense copies of one head's q, k, v rows (heads_made_dense)
  kStageK = 5,
  kStageV = 6,
  kStages = 7
};
char* staging(Stage slot, int64_t bytes) {
  struct alignas(64) Line {
    char bytes[64];
  };
  thread_local std::vector<Line> bufs[kStages];
  std::vector<Line>& b = bufs[slot];
  const size_t lines = static_cast<size_t>((bytes + 63) / 64);
  if (b.size() < lines) b.resize(lines);
  return b.data()->bytes;
}

// Copies `rows` rows of `row_bytes` between buffers with the given byte strides between rows.
// A head's row is short (64 bfloat16 values: 128 bytes), so the common widths are copies of a
// compile-time size, inlined, instead of a memcpy call per row (those calls cost ~4 % of a GPT
// layer's bfloat16 attention forward+backward, 1 thread).
template <int64_t Bytes>
void copy_rows_of(const char* src, int64_t src_stride, char* dst, int64_t dst_stride,
                  int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * dst_stride, src + r * src_stride, Bytes);
}
void copy_rows(const char* src, int64_t src_stride, char* dst, int64_t dst_stride, int64_t rows,
               int64_t row_bytes) {
  switch (row_bytes) {
    case 64:
      return copy_rows_of<64>(src, src_stride, dst, dst_stride, rows);
    case 128:
      return copy_rows_of<128>(src, src_stride, dst, dst_stride, rows);
    case 256:
      return copy_rows_of<256>(src, src_stride, dst, dst_stride, rows);
    default:
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(dst + r * dst_stride, src + r * src_stride, static_cast<size_t>(row_bytes));
  }
}

void scatter_rows(const char* src, int64_t rows, int64_t row_bytes, char* dst, int64_t dst_stride) {
  copy_rows(src, row_bytes, dst, dst_stride, rows, row_bytes);
}

// m's (rows x cols) block, contiguous: m itself when it is, else gathered into a per-thread block.
Mat gathered(const Mat& m, int64_t rows, int64_t cols, int64_t isz, Stage slot = kStageGradOut) {
  if (m.ld == cols) return m;
  char* block = staging(slot, rows * cols * isz);
  copy_rows(m.p, m.ld * isz, block, cols * isz, rows, cols * isz);
  return {block, cols};
}

// Whether strided q, k and v heads (a transformer's, cut from one packed (..., 3 * heads * E)
// projection) are first gathered into dense per-thread blocks. oneDNN runs a GEMM with a non-dense
// leading dim on gemm:jit, a dense one on the brgemm, which for bfloat16 is AMX: at the GPT's
// per-head shapes (64 x 64..128 x 64..128, 1 thread) the bf16 GEMMs took 1.3-2.8x less time with
// dense operands, far more than the row copies cost. Float32 gains 1.1-1.2x on
// most of them but loses 0.7x on dK += dS^T Q, about 1 % of a step either way: left in place, so
// float32 keeps its bits. float16 GEMMs of this size widen their operands to f32 anyway.
bool heads_made_dense(DType dt) { return dt == DType::bfloat16; }

// Rounds a contiguous (rows x cols) compute-type block into `dst` of dtype dt: in one conversion
// (a call per row costs more than its 64 values), then row by row into a strided dst.
template <typename A>
void store_rows(const A* src, int64_t rows, int64_t cols, DType dt, const OutMat& dst) {
  if (dst.ld == cols) {
    convert(dtype_v<A>, src, dt, dst.p, rows * cols);
    return;
  }
  const int64_t isz = itemsize(dt);
  const char* block = reinterpret_cast<const char*>(src);
  if (dt != dtype_v<A>) {
    char* rounded = staging(kStageGradKV, rows * cols * isz);
    convert(dtype_v<A>, src, dt, rounded, rows * cols);
    block = rounded;
  }
  scatter_rows(block, rows, cols * isz, dst.p, dst.ld * isz);
}

// Runs task(t) for t in [0, tasks) over the OpenMP threads (serially inside a parallel region).
template <typename Fn>
void for_each_task(int64_t tasks, const Fn& task) {
  if (tasks > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) task(t);
  } else {
    for (int64_t t = 0; t < tasks; ++t) task(t);
  }
}

// ---- forward ------------------------------------------------------------------------------------

template <typename A>
void forward_block(const AttentionArgs& a, int64_t b, int64_t h, int64_t blk, char* out, A* lse) {
  const DType dt = a.dtype;
  const int64_t isz = itemsize(dt);
  const int64_t i0 = blk * kBlock, rows = std::min(kBlock, a.L - i0);
  const int64_t n = keys_of_block(a, i0 + rows);
  Mat q = head_of(a.q, b, h, isz), k = head_of(a.k, b, h, isz), v = head_of(a.v, b, h, isz);
  q.p += i0 * q.ld * isz;  // this block's rows
  if (heads_made_dense(dt)) {
    q = gathered(q, rows, a.E, isz, kStageQ);
    k = gathered(k, n, a.E, isz, kStageK);
    v = gathered(v, n, a.Ev, isz, kStageV);
  }
  A* s = scratch<A>(kScores, rows * n);
  mm(rows, n, a.E, q.p, q.ld, false, dt, k.p, k.ld, true, s, n, dtype_v<A>);
  const A scale = static_cast<A>(a.scale);
  const int64_t bh = b * a.heads + h;
  const uint8_t* keep = keep_flags(a, bh, i0, rows, n);
  const A kept = keep ? dropout_scale<A>(a) : A(1);
  for (int64_t r = 0; r < rows; ++r) {
    A* x = s + r * n;
    const int64_t valid = keys_of_row(a, i0 + r);
    for (int64_t j = 0; j < valid; ++j) x[j] *= scale;
    const A m = row_max(x, valid);
    const A l = exp_shift_sum(x, x, valid, m);
    const A inv = A(1) / l;
    for (int64_t j = 0; j < valid; ++j) x[j] *= inv;
    if (keep)
      for (int64_t j = 0; j < valid; ++j) x[j] *= keep[r * n + j] ? kept : A(0);
    std::fill(x + valid, x + n, A(0));  // masked keys (causal rows of this block end early)
    lse[bh * a.L + i0 + r] = m + std::log(l);
  }
  const void* p = as_operand(s, dt, rows * n, kScores);
  // P V goes straight into out, also a strided one (in q's memory order), unless only
  // out's leading dim would be non-dense: a non-dense operand moves oneDNN from the brgemm (AMX for
  // bf16) to gemm:jit, slower and free to round differently. With V still strided (a float32
  // transformer's heads cut from a packed qkv) gemm:jit runs either way and its rows land where
  // they are stored; with a dense V (also a bf16 head gathered above) they go through a per-thread
  // block, as the backward stages its
  // strided gradients (the row copies cost more than writing in place: only where they keep the
  // brgemm).
  const OutMat o = head_of(out, layout_of(a.out_strides, a, a.L, a.Ev), b, h, isz);
  char* o_blk = o.p + i0 * o.ld * isz;
  const bool stage_out = o.ld != a.Ev && v.ld == a.Ev;
  char* stage = stage_out ? staging(kStageOut, rows * a.Ev * isz) : nullptr;
  mm(rows, a.Ev, n, p, n, false, dt, v.p, v.ld, false, stage ? stage : o_blk, stage ? a.Ev : o.ld,
     dt);
  if (stage) scatter_rows(stage, rows, a.Ev * isz, o_blk, o.ld * isz);
}

template <typename A>
void forward(const AttentionArgs& a, void* out, void* lse) {
  const int64_t blocks = (a.L + kBlock - 1) / kBlock, heads = a.batch * a.heads;
  for_each_task(heads * blocks, [&](int64_t t) {
    const int64_t bh = t / blocks;
    forward_block<A>(a, bh / a.heads, bh % a.heads, t % blocks, static_cast<char*>(out),
                     static_cast<A*>(lse));
  });
}

bool attention_kernel(const AttentionArgs& a, void* out, void* lse) {
  switch (a.dtype) {
    case DType::float64:
      forward<double>(a, out, lse);
      return true;
    case DType::float32:
    case DType::bfloat16:
    case DType::float16:
      forward<float>(a, out, lse);
      return true;
    default:
      return false;
  }
}

// ---- backward -----------------------------------------------------------------------------------

// D = rowsum(dO * O) for every (batch, head, row) into d ((batch, heads, L), in the compute type),
// over the rows in the order out lies in memory. A transformer's out and dO lie as
// (batch, L, heads, Ev) (out in q's memory order, dO the transpose of the next layer's gradient):
// read head by head, their rows would be strided reads, slower than this pass straight through.
template <typename A>
void row_dots(const AttentionBackwardArgs& g, A* d) {
  const AttentionArgs& a = g.fwd;
  const DType dt = a.dtype;
  const int64_t isz = itemsize(dt), blocks = (a.L + kBlock - 1) / kBlock;
  const AttentionStrides os = layout_of(a.out_strides, a, a.L, a.Ev);
  const AttentionStrides gs = layout_of(g.grad_out_strides, a, a.L, a.Ev);
  const bool heads_inner = os.head < os.row;
  for_each_task(a.batch * blocks, [&](int64_t t) {
    const int64_t b = t / blocks, i0 = t % blocks * kBlock, rows = std::min(kBlock, a.L - i0);
    A* ob = scratch<A>(kScores, a.Ev);
    A* gb = scratch<A>(kGradScores, a.Ev);
    auto dot_of_row = [&](int64_t h, int64_t i) {
      const char* o =
          static_cast<const char*>(g.out) + (b * os.batch + h * os.head + i * os.row) * isz;
      const char* go =
          static_cast<const char*>(g.grad_out) + (b * gs.batch + h * gs.head + i * gs.row) * isz;
      d[(b * a.heads + h) * a.L + i] =
          row_dot(load_row<A>(o, dt, a.Ev, ob), load_row<A>(go, dt, a.Ev, gb), a.Ev);
    };
    if (heads_inner) {
      for (int64_t i = i0; i < i0 + rows; ++i)
        for (int64_t h = 0; h < a.heads; ++h) dot_of_row(h, i);
    } else {
      for (int64_t h = 0; h < a.heads; ++h)
        for (int64_t i = i0; i < i0 + rows; ++i) dot_of_row(h, i);
    }
  });
}

template <typename A>
void backward_head(const AttentionBackwardArgs& g, const A* row_dots_all, int64_t b, int64_t h) {
  const AttentionArgs& a = g.fwd;
  const DType dt = a.dtype;
  const int64_t isz = itemsize(dt), bh = b * a.heads + h;
  Mat q = head_of(a.q, b, h, isz), k = head_of(a.k, b, h, isz), v = head_of(a.v, b, h, isz);
  if (heads_made_dense(dt)) {
    q = gathered(q, a.L, a.E, isz, kStageQ);
    k = gathered(k, a.S, a.E, isz, kStageK);
    v = gathered(v, a.S, a.Ev, isz, kStageV);
  }
  // The GEMMs below see dO, dQ, dK and dV as contiguous (rows, cols) blocks whatever their layout:
  // a strided dO is gathered into a per-thread block first, strided gradients are staged there and
  // scattered after. oneDNN picks its matmul implementation by the leading dims (a non-dense one
  // can move a bf16 or f32 problem from the AMX/AVX-512 brgemm to gemm:jit, which rounds
  // differently), so this keeps the bits of contiguous tensors; the rows stay in cache, unlike a
  // copy of the whole tensor before or after the kernel.
  const Mat dout = gathered(
      head_of(g.grad_out, layout_of(g.grad_out_strides, a, a.L, a.Ev), b, h, isz), a.L, a.Ev, isz);
  const A* lse = static_cast<const A*>(g.lse) + bh * a.L;
  const OutMat dq = head_of(g.grad_q, layout_of(g.grad_q_strides, a, a.L, a.E), b, h, isz);
  const OutMat dk = head_of(g.grad_k, layout_of(g.grad_k_strides, a, a.S, a.E), b, h, isz);
  const OutMat dv = head_of(g.grad_v, layout_of(g.grad_v_strides, a, a.S, a.Ev), b, h, isz);
  // Accumulate dK, dV in the outputs themselves when they are contiguous blocks of the compute
  // type.
  const bool direct_k = dt == dtype_v<A> && dk.ld == a.E;
  const bool direct_v = dt == dtype_v<A> && dv.ld == a.Ev;
  // dQ blocks go straight to the output when it is contiguous, else through a staging block.
  char* dq_stage = dq.ld == a.E ? nullptr : staging(kStageGradQ, kBlock * a.E * isz);

  const A* row_dot_buf = row_dots_all + bh * a.L;  // D_i = dO_i . O_i
  // Zeroed first: keys a causal problem never attends (S > L) are reached by no block.
  A* gk = direct_k ? reinterpret_cast<A*>(dk.p) : scratch<A>(kGradK, a.S * a.E);
  A* gv = direct_v ? reinterpret_cast<A*>(dv.p) : scratch<A>(kGradV, a.S * a.Ev);
  std::fill(gk, gk + a.S * a.E, A(0));
  std::fill(gv, gv + a.S * a.Ev, A(0));
  const A scale = static_cast<A>(a.scale);
  const A kept = a.dropout_p > 0.0 ? dropout_scale<A>(a) : A(1);

  for (int64_t i0 = 0; i0 < a.L; i0 += kBlock) {
    const int64_t rows = std::min(kBlock, a.L - i0), n = keys_of_block(a, i0 + rows);
    const char* q_blk = q.p + i0 * q.ld * isz;
    const char* do_blk = dout.p + i0 * a.Ev * isz;
    // P, recomputed from the saved log-sum-exp.
    A* p = scratch<A>(kScores, rows * n);
    mm(rows, n, a.E, q_blk, q.ld, false, dt, k.p, k.ld, true, p, n, dtype_v<A>);
    for (int64_t r = 0; r < rows; ++r) {
      A* x = p + r * n;
      const int64_t valid = keys_of_row(a, i0 + r);
      const A shift = lse[i0 + r];
      for (int64_t j = 0; j < valid; ++j) x[j] = x[j] * scale - shift;
      exp_inplace(x, valid);
      std::fill(x + valid, x + n, A(0));
    }
    // dV += (P * Z)^T dO.
    const uint8_t* keep = keep_flags(a, bh, i0, rows, n);
    const A* p_kept = p;
    if (keep) {
      A* pz = scratch<A>(kDropped, rows * n);
      for (int64_t e = 0; e < rows * n; ++e) pz[e] = keep[e] ? p[e] * kept : A(0);
      p_kept = pz;
    }
    const void* p_op = as_operand(p_kept, dt, rows * n, kScores);
    mm(n, a.Ev, rows, p_op, n, true, dt, do_blk, a.Ev, false, gv, a.Ev, dtype_v<A>, true);
    // dS = scale * P * (Z * dO V^T - D), zero where P is.
    A* ds = scratch<A>(kGradScores, rows * n);
    mm(rows, n, a.Ev, do_blk, a.Ev, false, dt, v.p, v.ld, true, ds, n, dtype_v<A>);
    for (int64_t r = 0; r < rows; ++r) {
      A* x = ds + r * n;
      const A* pr = p + r * n;
      const A d = row_dot_buf[i0 + r];
      if (keep) {
        const uint8_t* kr = keep + r * n;
        for (int64_t j = 0; j < n; ++j) x[j] = scale * pr[j] * ((kr[j] ? x[j] * kept : A(0)) - d);
      } else {
        for (int64_t j = 0; j < n; ++j) x[j] = scale * pr[j] * (x[j] - d);
      }
    }
    const void* ds_op = as_operand(ds, dt, rows * n, kGradScores);
    char* dq_blk = dq.p + i0 * dq.ld * isz;
    mm(rows, a.E, n, ds_op, n, false, dt, k.p, k.ld, false, dq_stage ? dq_stage : dq_blk, a.E, dt);
    if (dq_stage) scatter_rows(dq_stage, rows, a.E * isz, dq_blk, dq.ld * isz);
    mm(n, a.E, rows, ds_op, n, true, dt, q_blk, q.ld, false, gk, a.E, dtype_v<A>, true);
  }
  if (!direct_k) store_rows(gk, a.S, a.E, dt, dk);
  if (!direct_v) store_rows(gv, a.S, a.Ev, dt, dv);
}

template <typename A>
void backward(const AttentionBackwardArgs& g) {
  const AttentionArgs& a = g.fwd;
  std::vector<A> d(static_cast<size_t>(a.batch * a.heads * a.L));
  row_dots<A>(g, d.data());
  for_each_task(a.batch * a.heads,
                [&](int64_t t) { backward_head<A>(g, d.data(), t / a.heads, t % a.heads); });
}

void attention_backward_kernel(const AttentionBackwardArgs& g) {
  if (g.fwd.dtype == DType::float64)
    backward<double>(g);
  else
    backward<float>(g);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(attention_stub, cpu, &cpu::attention_kernel);
FABRIC_REGISTER_KERNEL(attention_backward_stub, cpu, &cpu::attention_backward_kernel);
}  // namespace fabric
