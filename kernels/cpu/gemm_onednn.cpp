// The oneDNN (2.x API) path of the CPU GEMM: f32 and bf16 matmul primitives, transposes and
// leading dims expressed as memory-descriptor strides, kept in a thread-safe LRU primitive cache;
// large f32 problems on dnnl_sgemm.
#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "kernels/cpu/gemm.h"
#include "kernels/cpu/plan_cache.h"
#include "kernels/cpu/run_tasks.h"
#include "tensor/error.h"

namespace fabric::cpu {
namespace {

using dt = dnnl::memory::data_type;

dt to_dnnl(DType t) {
  switch (t) {
    case DType::float32:
      return dt::f32;
    case DType::bfloat16:
      return dt::bf16;
    case DType::float16:
      return dt::f16;
    default:
      return dt::undef;
  }
}

// Everything that defines a primitive. nthr belongs here because oneDNN blocks the problem for
// the thread count it was created with.
struct Key {
  int64_t batch, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c;
  int nthr;
  float alpha, beta;
  DType a, b, c, bias;
  bool trans_a, trans_b, has_bias;

  auto tie() const {
    return std::tie(batch, M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, nthr, alpha, beta,
                    a, b, c, bias, trans_a, trans_b, has_bias);
  }
  bool operator==(const Key& o) const { return tie() == o.tie(); }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) {
      h = (h ^ v) * 1099511628211ull;
      h ^= h >> 29;
    };
    for (int64_t v :
         {k.batch, k.M, k.N, k.K, k.lda, k.ldb, k.ldc, k.stride_a, k.stride_b, k.stride_c})
      mix(static_cast<uint64_t>(v));
    uint32_t fa, fb;
    std::memcpy(&fa, &k.alpha, 4);
    std::memcpy(&fb, &k.beta, 4);
    mix((uint64_t(fa) << 32) | fb);
    mix(uint64_t(k.nthr) | uint64_t(k.a) << 32 | uint64_t(k.b) << 40 | uint64_t(k.c) << 48);
    mix(uint64_t(k.bias) | uint64_t(k.trans_a) << 8 | uint64_t(k.trans_b) << 9 |
        uint64_t(k.has_bias) << 10);
    return h;
  }
};

// A cached decision: the primitive (absent when oneDNN offers only its reference code or nothing,
// so that the caller's fallback is chosen once, not per call) and how to feed it.
struct Plan {
  bool usable = false;
  bool per_batch = false;       // prim is a 2-D primitive run once per batch entry
  bool bias_as_binary = false;  // bias goes through a binary-add post-op (after the alpha scale)
  int bias_post_op = -1;
  dnnl::matmul prim;
  dnnl::memory::desc a_md, b_md, c_md, bias_md, scratch_md;
  size_t scratch_bytes = 0;
};

const dnnl::engine& cpu_engine() {
  static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// One in-order stream per calling thread: oneDNN does not promise that a stream may be used from
// several threads at once, and gemm() is called concurrently (e.g. ranks as threads in tests).
dnnl::stream& thread_stream() {
  thread_local dnnl::stream s(cpu_engine());
  return s;
}

// Grow-only per-thread scratchpad: primitives use user-mode scratchpads, so that a primitive
// created on one thread can execute on another and several threads can execute it at once.
void* thread_scratch(size_t bytes) {
  struct Buf {
    void* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local Buf buf;
  if (bytes > buf.n) {
    std::free(buf.p);
    size_t n = (bytes + 4095) / 4096 * 4096;
    buf.p = std::aligned_alloc(64, n);
    if (!buf.p) {
      buf.n = 0;
      throw ValueError(
          fabric::detail::cat("gemm: could not allocate ", n, " bytes of oneDNN scratchpad"));
    }
    buf.n = n;
  }
  return buf.p;
}

// (rows x cols) matrix stored row-major with leading dim ld, or its transpose view.
dnnl::memory::desc matrix_md(int64_t batch, int64_t rows, int64_t cols, int64_t ld, int64_t stride,
                             bool trans, dt type) {
  const int64_t rs = trans ? 1 : ld, cs = trans ? ld : 1;
  if (batch == 0) return dnnl::memory::desc({rows, cols}, type, {rs, cs});
  // A size-1 batch dim is oneDNN's broadcast; its stride is then irrelevant but must be sane.
  if (stride == 0) stride = rows * cols > 0 ? (trans ? cols * ld : rows * ld) : 1;
  return dnnl::memory::desc({batch, rows, cols}, type, {stride, rs, cs});
}

std::shared_ptr<Plan> make_plan(const Key& k) {
  auto plan = std::make_shared<Plan>();
  const bool bcast_a = k.batch > 1 && k.stride_a == 0, bcast_b = k.batch > 1 && k.stride_b == 0;
  // per_batch: a 2-D primitive run once per batch entry; otherwise one 3-D primitive whose size-1
  // batch dims broadcast.
  auto build_descriptors = [&](bool per_batch) -> bool {
    const int64_t nb = per_batch || k.batch == 1 ? 0 : k.batch;  // 0: 2-D descriptors
    dnnl::memory::desc a_md = matrix_md(nb == 0 ? 0 : (bcast_a ? 1 : nb), k.M, k.K, k.lda,
                                        k.stride_a, k.trans_a, to_dnnl(k.a));
    dnnl::memory::desc b_md = matrix_md(nb == 0 ? 0 : (bcast_b ? 1 : nb), k.K, k.N, k.ldb,
                                        k.stride_b, k.trans_b, to_dnnl(k.b));
    dnnl::memory::desc c_md = matrix_md(nb, k.M, k.N, k.ldc, k.stride_c, false, to_dnnl(k.c));
    dnnl::memory::desc bias_md;
    if (k.has_bias) {
      dnnl::memory::dims d = nb == 0 ? dnnl::memory::dims{1, k.N} : dnnl::memory::dims{1, 1, k.N};
      dnnl::memory::dims s = nb == 0 ? dnnl::memory::dims{k.N, 1} : dnnl::memory::dims{k.N, k.N, 1};
      bias_md = dnnl::memory::desc(d, to_dnnl(k.bias), s);
    }
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    // oneDNN 2.x applies output scales after the bias argument, so with alpha != 1 the bias has to
    // come later, as a binary post-op.
    const bool bias_binary = k.has_bias && k.alpha != 1.f;
    if (k.alpha != 1.f) attr.set_output_scales(0, {k.alpha});
    dnnl::post_ops po;
    int n_po = 0;
    if (k.beta != 0.f) {
      po.append_sum(k.beta);
      ++n_po;
    }
    int bias_idx = -1;
    if (bias_binary) {
      po.append_binary(dnnl::algorithm::binary_add, bias_md);
      bias_idx = n_po++;
    }
    if (n_po) attr.set_post_ops(po);
    try {
      auto desc = k.has_bias && !bias_binary ? dnnl::matmul::desc(a_md, b_md, bias_md, c_md)
                                             : dnnl::matmul::desc(a_md, b_md, c_md);
      dnnl::matmul::primitive_desc pd(desc, attr, cpu_engine());
      // The reference implementation is orders of magnitude slower than the fallbacks.
      if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) return false;
      plan->prim = dnnl::matmul(pd);
      plan->scratch_md = pd.scratchpad_desc();
      plan->scratch_bytes = plan->scratch_md.get_size();
    } catch (const dnnl::error&) {
      return false;
    }
    plan->usable = true;
    plan->per_batch = per_batch && k.batch > 1;
    plan->bias_as_binary = bias_binary;
    plan->bias_post_op = bias_idx;
    plan->a_md = a_md;
    plan->b_md = b_md;
    plan->c_md = c_md;
    plan->bias_md = bias_md;
    return true;
  };
  auto build = [&](bool per_batch) -> bool {
    try {
      return build_descriptors(per_batch);
    } catch (const dnnl::error&) {
      // Strides oneDNN cannot describe (a 3-D view whose batch stride is below one matrix's
      // extent, as x.slice(1, 0, 5, 2).transpose(0, 1)): per batch, or the fallbacks, then.
      return false;
    }
  };
  // oneDNN 2.6's gemm:jit offsets a binary post-op's broadcast operand by the physical dst offset,
  // so with gaps between C batches the bias lands shifted (found by test_gemm): run per batch then.
  // With both operands broadcast oneDNN's dst batch would be 1: per batch as well.
  const bool binary_gap_bug = k.has_bias && k.alpha != 1.f && k.stride_c != k.M * k.ldc;
  if (k.batch > 1 && !(bcast_a && bcast_b) && !binary_gap_bug && build(false)) return plan;
  if (build(true)) return plan;
  plan->usable = false;
  return plan;
}

using GemmPlanCache = PlanCache<Key, Plan, KeyHash>;

GemmPlanCache& plan_cache() {
  // Enough for every distinct GEMM of a training step of a large model. Leaked: gemm may run
  // during static destruction.
  static GemmPlanCache* cache = new GemmPlanCache(2048);
  return *cache;
}

// Per-thread oneDNN memory objects for a plan, re-pointed with set_data_handle on every call:
// creating them costs a few microseconds, as much as a whole small GEMM.
struct Bound {
  std::shared_ptr<Plan> plan;  // keeps the plan (and so the pointer used as the key) alive
  dnnl::memory a, b, c, bias, scratch;
  dnnl_exec_arg_t args[5];
  int nargs = 0;
};

Bound& bind(const std::shared_ptr<Plan>& plan) {
  constexpr size_t kSlots = 16;
  thread_local std::array<Bound, kSlots> slots;
  thread_local size_t next = 0;
  for (Bound& s : slots)
    if (s.plan == plan) return s;
  Bound& s = slots[next];
  next = (next + 1) % kSlots;
  const dnnl::engine& eng = cpu_engine();
  s = Bound{};
  s.plan = plan;
  s.a = dnnl::memory(plan->a_md, eng, nullptr);
  s.b = dnnl::memory(plan->b_md, eng, nullptr);
  s.c = dnnl::memory(plan->c_md, eng, nullptr);
  s.args[s.nargs++] = {DNNL_ARG_SRC, s.a.get()};
  s.args[s.nargs++] = {DNNL_ARG_WEIGHTS, s.b.get()};
  s.args[s.nargs++] = {DNNL_ARG_DST, s.c.get()};
  if (!plan->bias_md.is_zero()) {
    s.bias = dnnl::memory(plan->bias_md, eng, nullptr);
    const int arg = plan->bias_as_binary
                        ? (DNNL_ARG_ATTR_MULTIPLE_POST_OP(plan->bias_post_op) | DNNL_ARG_SRC_1)
                        : DNNL_ARG_BIAS;
    s.args[s.nargs++] = {arg, s.bias.get()};
  }
  if (plan->scratch_bytes) {
    s.scratch = dnnl::memory(plan->scratch_md, eng, nullptr);
    s.args[s.nargs++] = {DNNL_ARG_SCRATCHPAD, s.scratch.get()};
  }
  return s;
}

// Large f32 GEMMs go to oneDNN's BLAS-like dnnl_sgemm (its gemm:jit driver) rather than the matmul
// primitive. Measured on the project's CPU machine (AMD EPYC, AVX-512, oneDNN 2.6) when quiet:
// brgemm falls 10-45 % behind sgemm from 1280^3 multiply-adds, and to half of it at 3072^3; at
// 1024^3 sgemm gave 347-379 GFLOP/s on 2 threads against brgemm's 338-348 (1 thread: even, both
// near the core's peak, within noise of OpenBLAS). Below that brgemm is as fast or faster, and it
// fuses the bias. (An earlier session saw sgemm lose 10-20 % at 1024^3 while other jobs held a
// core; no training step here has a problem that large.)
std::atomic<int64_t> sgemm_min_volume{int64_t(1) << 30};

// k: the problem after batch folding. Returns false to leave it to the matmul primitive.
bool run_sgemm(const GemmArgs& g, const Key& k) {
  if (k.a != DType::float32 || k.c != DType::float32) return false;
  const double min_volume = double(sgemm_min_volume.load(std::memory_order_relaxed));
  if (double(k.M) * double(k.N) * double(k.K) < min_volume) return false;
  const float* A = static_cast<const float*>(g.A);
  const float* B = static_cast<const float*>(g.B);
  float* C = static_cast<float*>(g.C);
  const float* bias = static_cast<const float*>(g.bias);
  for (int64_t b = 0; b < k.batch; ++b) {
    float* c = C + b * k.stride_c;
    float beta = k.beta;
    if (bias) {
      // sgemm has no bias: C = beta * C + bias first (beta == 0 never reads C), then accumulate.
      const int64_t M = k.M, N = k.N, ldc = k.ldc;
      run_tasks(M, M * N > (1 << 16) && !omp_in_parallel(), [&](int64_t i) {
        float* row = c + i * ldc;
        if (beta == 0.f)
          for (int64_t j = 0; j < N; ++j) row[j] = bias[j];
        else
          for (int64_t j = 0; j < N; ++j) row[j] = beta * row[j] + bias[j];
      });
      beta = 1.f;
    }
    const dnnl_status_t st =
        dnnl_sgemm(k.trans_a ? 'T' : 'N', k.trans_b ? 'T' : 'N', k.M, k.N, k.K, k.alpha,
                   A + b * k.stride_a, k.lda, B + b * k.stride_b, k.ldb, beta, c, k.ldc);
    if (st != dnnl_success) {
      // Only the first entry can fail (the arguments are the same for all): the caller falls back.
      if (b == 0 && !bias) return false;
      throw ValueError(fabric::detail::cat("gemm: dnnl_sgemm failed with status ", int(st),
                                           " for M=", k.M, " N=", k.N, " K=", k.K));
    }
  }
  return true;
}

// The matmul primitive (brgemm) loses speed on wide outputs: measured on the project's CPU machine
// (AMD EPYC, AVX-512 BF16, oneDNN 2.6, quiet, medians of 7, 3 repeats), a bf16 2048^3 GEMM ran at
// 329-357 GFLOP/s in one call and 367-385 as two 1024-column panels (1 thread; 668-706 vs 744-756 on
// 2 threads), f32 brgemm likewise (165-179 vs 187-195); at N = 1024 splitting gained nothing. So a
// problem wider than this runs as equal column panels no wider than it, each its own cached
// primitive. (Large f32 problems never get here: they go to dnnl_sgemm first.)
constexpr int64_t kMaxPanelColumns = 1024;

}  // namespace

GemmCacheStats gemm_cache_stats() {
  const PlanCacheStats s = plan_cache().stats();
  return {s.hits, s.misses, s.entries};
}

int64_t detail::set_sgemm_min_volume(int64_t volume) { return sgemm_min_volume.exchange(volume); }
void gemm_cache_clear() { plan_cache().clear(); }

namespace detail {
namespace {

// C[:, j0:j1] = op(A) * op(B)[:, j0:j1] (+ bias[j0:j1]) for equal panels of at most
// kMaxPanelColumns columns. k is the folded (batch 1) problem, so g's batch is folded here too.
bool run_column_panels(const GemmArgs& g, const Key& k) {
  const int64_t panels = (k.N + kMaxPanelColumns - 1) / kMaxPanelColumns;
  const int64_t width = (k.N + panels - 1) / panels;
  const int64_t eb = itemsize(g.b_dtype), ec = itemsize(g.c_dtype);
  for (int64_t j0 = 0; j0 < k.N; j0 += width) {
    GemmArgs p = g;
    p.batch = 1;
    p.M = k.M;
    p.N = std::min(width, k.N - j0);
    p.stride_a = p.stride_b = p.stride_c = 0;
    // op(B)'s column j is B's column j, or row j of a transposed B.
    p.B = static_cast<const char*>(g.B) + (g.trans_b ? j0 * g.ldb : j0) * eb;
    p.C = static_cast<char*>(g.C) + j0 * ec;
    if (g.bias) p.bias = static_cast<const char*>(g.bias) + j0 * itemsize(g.bias_dtype);
    if (gemm_onednn(p)) continue;
    // Primitive availability depends on dtypes and layout, which every panel shares: only the
    // first can be refused, before anything is written.
    if (j0 == 0) return false;
    throw ValueError(fabric::detail::cat("gemm: oneDNN refused column panel ", j0, " of M=", k.M,
                                         " N=", k.N, " K=", k.K));
  }
  return true;
}

}  // namespace

bool gemm_onednn(const GemmArgs& g) {
  const bool f32 =
      g.a_dtype == DType::float32 && g.b_dtype == DType::float32 && g.c_dtype == DType::float32;
  const bool bf16 = g.a_dtype == DType::bfloat16 && g.b_dtype == DType::bfloat16 &&
                    (g.c_dtype == DType::float32 || g.c_dtype == DType::bfloat16);
  if (!f32 && !bf16) return false;
  if (g.bias && !(g.bias_dtype == DType::float32 || (bf16 && g.bias_dtype == DType::bfloat16)))
    return false;

  Key k{g.batch,
        g.M,
        g.N,
        g.K,
        g.lda,
        g.ldb,
        g.ldc,
        g.stride_a,
        g.stride_b,
        g.stride_c,
        omp_get_max_threads(),
        g.alpha,
        g.beta,
        g.a_dtype,
        g.b_dtype,
        g.c_dtype,
        g.bias ? g.bias_dtype : DType::float32,
        g.trans_a,
        g.trans_b,
        g.bias != nullptr};
  // A shared B (a Linear weight) over batches whose A and C rows follow each other at a constant
  // pitch is one 2-D GEMM with batch*M rows: one primitive, better blocking.
  if (k.batch > 1 && k.stride_b == 0 && !k.trans_a && k.stride_a == k.M * k.lda &&
      k.stride_c == k.M * k.ldc) {
    k.M *= k.batch;
    k.batch = 1;
  }
  if (k.batch == 1) k.stride_a = k.stride_b = k.stride_c = 0;
  if (run_sgemm(g, k)) return true;
  if (k.batch == 1 && k.N > kMaxPanelColumns) return run_column_panels(g, k);

  std::shared_ptr<Plan> plan = plan_cache().get(k, make_plan);
  if (!plan->usable) return false;

  Bound& bound = bind(plan);
  void* scratch = plan->scratch_bytes ? thread_scratch(plan->scratch_bytes) : nullptr;
  const int64_t ea = itemsize(g.a_dtype), eb = itemsize(g.b_dtype), ec = itemsize(g.c_dtype);
  const int64_t runs = plan->per_batch ? g.batch : 1;
  try {
    if (g.bias) bound.bias.set_data_handle(const_cast<void*>(g.bias));
    if (scratch) bound.scratch.set_data_handle(scratch);
    for (int64_t b = 0; b < runs; ++b) {
      bound.a.set_data_handle(static_cast<char*>(const_cast<void*>(g.A)) + b * g.stride_a * ea);
      bound.b.set_data_handle(static_cast<char*>(const_cast<void*>(g.B)) + b * g.stride_b * eb);
      bound.c.set_data_handle(static_cast<char*>(g.C) + b * g.stride_c * ec);
      dnnl::error::wrap_c_api(
          dnnl_primitive_execute(plan->prim.get(), thread_stream().get(), bound.nargs, bound.args),
          "could not execute the matmul");
    }
    thread_stream().wait();
  } catch (const dnnl::error& e) {
    throw ValueError(fabric::detail::cat("gemm: oneDNN matmul failed (", e.what(), ") for batch=",
                                         g.batch, " M=", g.M, " N=", g.N, " K=", g.K));
  }
  return true;
}

}  // namespace detail
}  // namespace fabric::cpu
