// f16 GEMM on AMX through an exact bf16 hi/lo split. oneDNN 2.6 has no f16 matmul, and AMX
// multiplies only bf16 (8 significant bits) with f32 accumulation. A finite f16 x (11 significant
// bits, exponents 2^-24..2^15) is exactly hi + lo with hi = x truncated to bf16 and lo = x - hi
// (exact in f32, at most 3 significant bits, same sign as x, |lo| >= 2^-24 or 0: a normal bf16, so
// neither AMX's nor vcvtne2ps2bf16's denormal flushing touches it). Hence
//   op(A) op(B) = Ah Bh + Al Bh + Ah Bl + Al Bl = [Ah Al Ah Al] [Bh; Bh; Bl; Bl]   (K' = 4K)
// where every bf16 x bf16 product is exact in f32 and oneDNN accumulates in f32: the result is
// gemm_via_f32's (the f32 GEMM of the exactly widened operands) up to summation order. Since
// |hi| + |lo| = |x|, the terms' magnitudes sum to those of the f32 GEMM; the worst-case
// accumulation bound is that of a 4K-long f32 sum.
// inf/NaN do not split (inf - inf = NaN; inf * 0 = NaN where f32 gives inf), and the 16-mixed loss
// scaler depends on them propagating as in f32: the split pass notices them (free there) and the
// caller runs gemm_via_f32 instead.
// GCC 12 flags its own AVX-512 intrinsics (_mm512_undefined_*) as uninitialised once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <omp.h>

#include <atomic>
#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_f16_scratch.h"
#include "kernels/cpu/run_tasks.h"

namespace fabric::cpu::detail {
namespace {

std::atomic<uint64_t> split_calls{0}, nonfinite_calls{0};

// Where the split is faster than gemm_via_f32, measured on the AMX machine (thread CPU time on 1
// thread and wall time on 2, medians of 9 interleaved samples, f16 output; 2026-12-02):
// - K: with K = 256 the GPT's 2048 x {256, 768, 1024} products ran 1.14-1.21x faster (1 and 2
//   threads), 2048 x 256 x K for K = 64/72/128/200 1.12-1.32x; 512^3 broke even and
//   K = 768/1024/2048 lost (0.88-1.0x): oneDNN's AMX rate falls as K' = 4K grows (A' no longer
//   stays in cache) until 4x the work costs more than AMX saves. K not a multiple of 8 (K' not
//   whole 64-byte AMX tile rows) lost or barely won (K = 65, 255: 0.95-0.98x; 100: 1.06x).
// - M: on 2 threads M <= 384 lost (256^3, 384^3, 128 x 256 x 256: 0.86-0.89x; on 1 thread they
//   won 1.08-1.3x) while M = 512/1024/2048 with K = 256 won 1.11-1.27x: too few row blocks to
//   keep both threads on AMX.
// - size: 64 x 256 x 256 lost (0.91x, 1 thread), the lm_head's N = 65 too (0.94x), attention's
//   batched 128 x 128 x 64 (0.84-0.97x): the split's fixed cost outweighs the product there.
constexpr int64_t kMaxK = 384;
constexpr int64_t kMinM = 512;
constexpr int64_t kMinN = 128;
constexpr int64_t kMinVolume = int64_t(1) << 23;  // M * N * K of one batch entry
std::atomic<bool> forced{false};

bool faster_than_via_f32(const GemmArgs& g) {
  return g.K <= kMaxK && g.K % 8 == 0 && g.M >= kMinM && g.N >= kMinN &&
         double(g.M) * double(g.N) * double(g.K) >= kMinVolume;
}

// Below this many elements a split runs on the calling thread: waking the pool costs more.
constexpr int64_t kParallelElements = int64_t(1) << 16;

bool onednn_has_amx_bf16() {
  static const bool has = (int(dnnl::get_effective_cpu_isa()) & dnnl_cpu_isa_avx512_core_amx) ==
                          dnnl_cpu_isa_avx512_core_amx;
  return has;
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512BF16__)
constexpr bool kCompiled = true;

// Splits 32 f16 values (the lanes of m; the others read as 0 and are not written) into hi (to h0
// and h1) and lo (to l0 and l1), all bf16. Returns the lanes holding inf or NaN.
inline __mmask32 split32(const uint16_t* s, __mmask32 m, uint16_t* h0, uint16_t* h1, uint16_t* l0,
                         uint16_t* l1) {
  const __m512i exponent = _mm512_set1_epi16(0x7c00);
  const __m512i high_half = _mm512_set1_epi32(int(0xffff0000u));
  const __m512i v = _mm512_maskz_loadu_epi16(m, s);
  const __m512 x0 = _mm512_cvtph_ps(_mm512_castsi512_si256(v));
  const __m512 x1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
  const __m512 t0 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x0), high_half));
  const __m512 t1 = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x1), high_half));
  // Both are bf16 values already, so the RNE conversion is exact.
  const __m512i hi = __m512i(_mm512_cvtne2ps_pbh(t1, t0));
  const __m512i lo = __m512i(_mm512_cvtne2ps_pbh(_mm512_sub_ps(x1, t1), _mm512_sub_ps(x0, t0)));
  if (m == __mmask32(~0u)) {  // full vectors: plain stores are faster than masked ones
    _mm512_storeu_si512(h0, hi);
    _mm512_storeu_si512(h1, hi);
    _mm512_storeu_si512(l0, lo);
    _mm512_storeu_si512(l1, lo);
  } else {
    _mm512_mask_storeu_epi16(h0, m, hi);
    _mm512_mask_storeu_epi16(h1, m, hi);
    _mm512_mask_storeu_epi16(l0, m, lo);
    _mm512_mask_storeu_epi16(l1, m, lo);
  }
  return _mm512_mask_cmpeq_epi16_mask(m, _mm512_and_si512(v, exponent), exponent);
}

// Splits n f16 values into hi (to h0 and h1) and lo (to l0 and l1), all bf16. Returns whether any
// value is inf or NaN (the outputs are then meaningless).
bool split_row(const uint16_t* s, int64_t n, uint16_t* h0, uint16_t* h1, uint16_t* l0,
               uint16_t* l1) {
  __mmask32 nonfinite = 0;
  int64_t j = 0;
  for (; j + 32 <= n; j += 32)
    nonfinite |= split32(s + j, __mmask32(~0u), h0 + j, h1 + j, l0 + j, l1 + j);
  if (j < n)
    nonfinite |= split32(s + j, (__mmask32(1) << (n - j)) - 1, h0 + j, h1 + j, l0 + j, l1 + j);
  return nonfinite != 0;
}
#else
// Without AVX-512 BF16 at compile time the split would be scalar and slower than gemm_via_f32.
constexpr bool kCompiled = false;
bool split_row(const uint16_t*, int64_t, uint16_t*, uint16_t*, uint16_t*, uint16_t*) {
  return true;
}
#endif

// The four K segments of a split operand, in order: which are hi. A is [hi lo hi lo] and B
// [hi; hi; lo; lo], so that segment s of A meets segment s of B: Ah Bh, Al Bh, Ah Bl, Al Bl.
enum class Pattern { a, b };

// One stored operand (rows x cols, leading dim ld, `stride` between batches; 0 = broadcast, split
// once) into dense bf16 at `dst`, each batch 4 * rows * cols elements. k_along_cols: K runs along
// the stored rows (A untransposed, B transposed), so each row becomes 4 consecutive segments;
// otherwise the whole matrix becomes 4 stacked blocks. Returns whether any element is inf/NaN.
bool split_operand(const void* src, int64_t batch, int64_t stride, int64_t rows, int64_t cols,
                   int64_t ld, bool k_along_cols, Pattern pattern, uint16_t* dst) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  const int64_t nb = stride == 0 ? 1 : batch, total = nb * rows;
  std::atomic<bool> nonfinite{false};
  run_tasks(total, total * cols > kParallelElements && !omp_in_parallel(), [&](int64_t t) {
    const int64_t b = t / rows, r = t % rows;
    uint16_t* base = dst + b * 4 * rows * cols + (k_along_cols ? r * 4 * cols : r * cols);
    const int64_t seg = k_along_cols ? cols : rows * cols;
    uint16_t* p[4] = {base, base + seg, base + 2 * seg, base + 3 * seg};
    const bool bad = pattern == Pattern::a
                         ? split_row(s + b * stride + r * ld, cols, p[0], p[2], p[1], p[3])
                         : split_row(s + b * stride + r * ld, cols, p[0], p[1], p[2], p[3]);
    if (bad) nonfinite.store(true, std::memory_order_relaxed);
  });
  return nonfinite.load(std::memory_order_relaxed);
}

}  // namespace

bool force_f16_split(bool on) { return forced.exchange(on); }

F16SplitStats f16_split_stats() {
  return {split_calls.load(std::memory_order_relaxed),
          nonfinite_calls.load(std::memory_order_relaxed)};
}

bool gemm_f16_split(const GemmArgs& g) {
  if (!kCompiled || g.a_dtype != DType::float16 || g.b_dtype != DType::float16 || g.K == 0)
    return false;
  if (!(forced.load(std::memory_order_relaxed) || faster_than_via_f32(g)) || !onednn_has_amx_bf16())
    return false;
  thread_local ScratchBuffer<uint16_t> buf_a, buf_b;
  const int64_t K4 = 4 * g.K;
  GemmArgs f = g;
  f.a_dtype = f.b_dtype = DType::bfloat16;
  f.K = K4;
  const int64_t ra = g.trans_a ? g.K : g.M, ca = g.trans_a ? g.M : g.K;
  const int64_t rb = g.trans_b ? g.N : g.K, cb = g.trans_b ? g.K : g.N;
  const int64_t na = g.stride_a == 0 ? 1 : g.batch, nb = g.stride_b == 0 ? 1 : g.batch;
  uint16_t* a = buf_a.get(na * 4 * ra * ca);
  uint16_t* b = buf_b.get(nb * 4 * rb * cb);
  bool nonfinite =
      split_operand(g.A, g.batch, g.stride_a, ra, ca, g.lda, !g.trans_a, Pattern::a, a);
  if (!nonfinite)
    nonfinite = split_operand(g.B, g.batch, g.stride_b, rb, cb, g.ldb, g.trans_b, Pattern::b, b);
  if (nonfinite) {
    nonfinite_calls.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // Stored shapes of the split operands: A' is M x 4K (4K x M transposed), B' 4K x N (N x 4K).
  f.A = a;
  f.lda = g.trans_a ? g.M : K4;
  f.stride_a = na == 1 ? 0 : 4 * ra * ca;
  f.B = b;
  f.ldb = g.trans_b ? K4 : g.N;
  f.stride_b = nb == 1 ? 0 : 4 * rb * cb;
  if (!run_with_f32_output(g, f)) return false;
  split_calls.fetch_add(1, std::memory_order_relaxed);
  return true;
}

}  // namespace fabric::cpu::detail
