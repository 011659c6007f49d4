// The GPU benchmark of issue #8 (run by tools/gpu-check.sh), one compact table:
//   GEMM 4096^3 bf16 (and fp8 on sm_89+) through fabric's GEMM vs cuBLASLt called directly vs the
//   datasheet peak; device-to-device copy bandwidth vs the datasheet; causal attention forward +
//   backward at GPT-2's shape, our fused kernel vs cuDNN's fused attention vs the composition (the
//   fastest one trains); GPT-2 124M training
//   (12 layers, 12 heads, C=768, T=1024, batch 8, bf16-mixed, AdamW) tokens/s and MFU the way
//   llm.c counts it (6N + 6*L*C*T FLOPs per token against 989 TFLOP/s dense bf16).
// Device work is timed on the host between two synchronisations (a one-element copy back to the
// host waits for the compute stream), over enough iterations that launch gaps are hidden; each
// figure is the median of 5 repeats. Inputs are random, never zeros. Without a GPU it says so
// and exits 0. The "cuBLASLt directly" column needs the CUDA headers and libraries on this
// target (tools/CMakeLists.txt links CUDA::cudart and CUDA::cublasLt to bench_gpu); without
// them the column reads "n/a".
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "nn/gpt.h"
#include "optim/optim.h"
#include "runtime/connector.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tools/bench/gpt2_124m.h"

#ifdef FABRIC_WITH_CUDA
#include "kernels/cuda/attention_cudnn.h"  // CUDA-free headers: cuDNN attention's counters,
#include "kernels/cuda/gemm_cublaslt.h"    // fabric's own GEMM entry points
#include "kernels/cuda/gemm_fp8.h"
#if __has_include(<cublasLt.h>) && __has_include(<cuda_runtime_api.h>)
#define BENCH_DIRECT 1
#include <cublasLt.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>
#endif
#endif

using namespace fabric;

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Waits for the compute stream of the tensor's device (device-to-host copies wait for it).
void sync_on(const Tensor& t) { (void)t.view({-1}).slice(0, 0, 1).to(Device::cpu()); }

// Median seconds per call of fn() over 5 repeats of `iters` calls, after `warmup` calls.
double time_per_call(const std::function<void()>& fn, const std::function<void()>& sync, int iters,
                     int warmup = 3) {
  for (int i = 0; i < warmup; ++i) fn();
  sync();
  std::vector<double> s;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    for (int i = 0; i < iters; ++i) fn();
    sync();
    s.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / iters);
  }
  return median(s);
}

struct Datasheet {
  double bf16_tflops = 0, fp8_tflops = 0, hbm_gbs = 0;  // 0: unknown
};

// Dense (no sparsity) tensor-core rates and HBM bandwidth from NVIDIA's datasheets.
Datasheet datasheet_for(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H200")) return {989, 1979, 4800};
  if (has("H100") && (has("PCIe") || has("PCIE"))) return {756, 1513, 2000};
  if (has("H100") && has("NVL")) return {835, 1671, 3900};
  if (has("H100")) return {989, 1979, 3350};
  if (has("A100")) return {312, 0, has("80GB") ? 2039.0 : 1555.0};
  return {};
}

std::string fmt(double v, const char* f = "%.1f") {
  if (v <= 0) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

struct Row {
  std::string metric, fabric, direct, peak, ratio_direct, ratio_peak;
};

std::string ratio(double a, double b) { return (a > 0 && b > 0) ? fmt(a / b, "%.2f") : "n/a"; }

// ---- cuBLASLt called directly (the peer) -------------------------------------------------------

#ifdef BENCH_DIRECT
#define BENCH_CHECK(expr)                                                                         \
  do {                                                                                            \
    const int bench_rc_ = static_cast<int>(expr);                                                 \
    if (bench_rc_ != 0) throw DeviceError(detail::cat(#expr, " failed with status ", bench_rc_)); \
  } while (0)

// Row-major C (M x N) = A (M x K) @ op(B): bf16 with B (K x N), or fp8 with B stored (N x K).
// Median seconds per GEMM, timed as fabric's GEMM is.
double direct_gemm_seconds(const Tensor& a, const Tensor& b, Tensor& c, bool fp8,
                           const float* scale_a, const float* scale_b, int iters) {
  const int64_t M = a.size(0), K = a.size(1), N = c.size(1);
  cublasLtHandle_t handle = nullptr;
  BENCH_CHECK(cublasLtCreate(&handle));
  void* ws = nullptr;
  const size_t ws_bytes = size_t{32} << 20;
  BENCH_CHECK(cudaMalloc(&ws, ws_bytes));
  cudaStream_t stream = nullptr;
  BENCH_CHECK(cudaStreamCreate(&stream));
  cublasLtMatmulDesc_t op = nullptr;
  BENCH_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cudaDataType_t in = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
  const int32_t ta = fp8 ? CUBLAS_OP_T : CUBLAS_OP_N, tb = CUBLAS_OP_N;
  BENCH_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  BENCH_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  if (fp8) {
    BENCH_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scale_b,
                                               sizeof(scale_b)));
    BENCH_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &scale_a,
                                               sizeof(scale_a)));
  }
  // Column-major C^T (N x M) = op(B)^T (N x K) A^T (K x M).
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  BENCH_CHECK(cublasLtMatrixLayoutCreate(&la, in, fp8 ? K : N, fp8 ? N : K, fp8 ? K : N));
  BENCH_CHECK(cublasLtMatrixLayoutCreate(&lb, in, K, M, K));
  BENCH_CHECK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16BF, N, M, N));
  cublasLtMatmulPreference_t pref = nullptr;
  BENCH_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws_pref = ws_bytes;
  BENCH_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                   &ws_pref, sizeof(ws_pref)));
  cublasLtMatmulHeuristicResult_t h{};
  int found = 0;
  BENCH_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, op, la, lb, lc, lc, pref, 1, &h, &found));
  if (found == 0) throw DeviceError("cuBLASLt found no algorithm");
  const float alpha = 1.f, beta = 0.f;
  auto call = [&] {
    BENCH_CHECK(cublasLtMatmul(handle, op, &alpha, b.data_ptr(), la, a.data_ptr(), lb, &beta,
                               c.data_ptr(), lc, c.data_ptr(), lc, &h.algo, ws, h.workspaceSize,
                               stream));
  };
  const double s = time_per_call(
      call, [&] { BENCH_CHECK(cudaStreamSynchronize(stream)); }, iters);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(op);
  cudaStreamDestroy(stream);
  cudaFree(ws);
  cublasLtDestroy(handle);
  return s;
}

double direct_copy_seconds(const Tensor& src, Tensor& dst, int iters) {
  return time_per_call(
      [&] {
        BENCH_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), src.nbytes(),
                                    cudaMemcpyDeviceToDevice, 0));
      },
      [] { BENCH_CHECK(cudaDeviceSynchronize()); }, iters);
}
#endif

// ---- the rows
// ------------------------------------------------------------------------------------

constexpr int64_t kGemmN = 4096;

Row gemm_bf16_row(const Datasheet& ds) {
  const Device gpu = Device::cuda(0);
  const double flops = 2.0 * kGemmN * kGemmN * kGemmN;
  const Tensor a = randn({kGemmN, kGemmN}).to(DType::bfloat16).to(gpu);
  const Tensor b = randn({kGemmN, kGemmN}).to(DType::bfloat16).to(gpu);
  Tensor out;
  const double s = time_per_call([&] { out = mm(a, b); }, [&] { sync_on(a); }, 50);
  Row r{"GEMM bf16 4096^3 (TFLOP/s)",
        fmt(flops / s / 1e12),
        "n/a",
        fmt(ds.bf16_tflops, "%.0f"),
        "",
        ""};
#ifdef BENCH_DIRECT
  Tensor c = empty({kGemmN, kGemmN}, {.dtype = DType::bfloat16, .device = gpu});
  const double d = direct_gemm_seconds(a, b, c, false, nullptr, nullptr, 50);
  r.direct = fmt(flops / d / 1e12);
  r.ratio_direct = ratio(d, s);
#endif
  r.ratio_direct = r.ratio_direct.empty() ? "n/a" : r.ratio_direct;
  r.ratio_peak = ratio(flops / s / 1e12, ds.bf16_tflops);
  return r;
}

Row gemm_fp8_row(const Datasheet& ds) {
  Row r{"GEMM fp8 e4m3 4096^3 (TFLOP/s)", "n/a", "n/a", fmt(ds.fp8_tflops, "%.0f"), "n/a", "n/a"};
#ifdef FABRIC_WITH_CUDA
  if (!cuda::fp8_gemm_supported(0)) {
    r.fabric = "no FP8 tensor cores";
    return r;
  }
  const Device gpu = Device::cuda(0);
  const double flops = 2.0 * kGemmN * kGemmN * kGemmN;
  // |randn| < 448 always in practice: a plain cast is the quantization with scale 1.
  const Tensor a = randn({kGemmN, kGemmN}).to(DType::float8_e4m3fn).to(gpu);
  const Tensor b =
      randn({kGemmN, kGemmN}).to(DType::float8_e4m3fn).to(gpu);  // (N x K), as a weight
  // Two scales 16 bytes apart: cuBLASLt's FP8 kernels take only 16-byte aligned pointers.
  const Tensor scale = full({8}, 1.0, {.dtype = DType::float32}).to(gpu);
  Tensor c = empty({kGemmN, kGemmN}, {.dtype = DType::bfloat16, .device = gpu});
  cuda::Fp8GemmDesc d;
  d.M = d.N = d.K = kGemmN;
  d.A = a.data_ptr();
  d.B = b.data_ptr();
  d.lda = d.ldb = d.ldc = kGemmN;
  d.C = c.data_ptr();
  d.c_dtype = DType::bfloat16;
  d.scale_a = scale.data<float>();
  d.scale_b = scale.data<float>() + 4;
  const double s = time_per_call([&] { cuda::gemm_fp8(d); }, [&] { sync_on(c); }, 100);
  r.fabric = fmt(flops / s / 1e12);
  r.ratio_peak = ratio(flops / s / 1e12, ds.fp8_tflops);
#ifdef BENCH_DIRECT
  const double t = direct_gemm_seconds(a, b, c, true, d.scale_a, d.scale_b, 100);
  r.direct = fmt(flops / t / 1e12);
  r.ratio_direct = ratio(t, s);
#endif
#else
  (void)ds;
#endif
  return r;
}

Row copy_row(const Datasheet& ds) {
  const Device gpu = Device::cuda(0);
  const int64_t n = int64_t{1} << 28;  // 1 GiB of float32: far past the 50-60 MB L2
  // 4 MiB of random values broadcast on the device (drawing 1 GiB on the host would take long).
  const Tensor src = randn({1 << 20}).to(gpu).expand({n >> 20, 1 << 20}).contiguous().view({-1});
  Tensor dst = empty({n}, {.device = gpu});
  const double bytes = 2.0 * static_cast<double>(src.nbytes());  // read + write
  const double s = time_per_call([&] { dst.copy_(src); }, [&] { sync_on(dst); }, 20);
  Row r{"D2D copy 1 GiB (GB/s, read+write)",
        fmt(bytes / s / 1e9, "%.0f"),
        "n/a",
        fmt(ds.hbm_gbs, "%.0f"),
        "n/a",
        ratio(bytes / s / 1e9, ds.hbm_gbs)};
#ifdef BENCH_DIRECT
  const double d = direct_copy_seconds(src, dst, 20);
  r.direct = fmt(bytes / d / 1e9, "%.0f");
  r.ratio_direct = ratio(d, s);
#endif
  return r;
}

// Causal attention at GPT-2 124M's shape (B=8, 12 heads, T=1024, hs=64), bf16, forward+backward,
// three ways: our fused kernel, cuDNN's fused flash attention (kernels/cuda/attention_cudnn.h) and
// the composition (cuBLASLt batched GEMMs and the softmax kernels). The fastest stays selected
// for the GPT row: the benchmark decides which the training uses. cuDNN counts only when it took
// the forward (it declines what it has no engine for, and our kernel then runs: that time is
// not cuDNN's); the row says so when it declined. Columns: fabric = ours, cuBLASLt/CUDA = cuDNN,
// datasheet = composition, fabric/direct = cuDNN's time over ours, fabric/peak = the choice.
Row attention_row() {
  const Device gpu = Device::cuda(0);
  const Shape shape{8, 12, 1024, 64};
  auto leaf = [&] { return randn(shape).to(DType::bfloat16).to(gpu).set_requires_grad(true); };
  Tensor q = leaf(), k = leaf(), v = leaf();
  const Tensor g = randn(shape).to(DType::bfloat16).to(gpu);
  auto pass = [&] {
    scaled_dot_product_attention(q, k, v, Tensor(), 0.0, /*is_causal=*/true).backward(g);
    for (const Tensor* t : {&q, &k, &v}) zero_grad(*t);
  };
  auto time_with = [&](AttentionBackend b) {
    set_attention_backend(b);
    return time_per_call(
        pass, [&] { sync_on(q); }, 10);
  };
  const double fused = time_with(AttentionBackend::fused);
  std::string cudnn_note = "not built with CUDA";
  double cudnn = 0;  // 0: cuDNN did not run the forward
#ifdef FABRIC_WITH_CUDA
  try {  // a failing cuDNN run costs this column, not the rest of the table
    const cuda::CudnnAttentionStats s0 = cuda::cudnn_attention_stats();
    const double cudnn_time = time_with(AttentionBackend::cudnn);
    const cuda::CudnnAttentionStats s1 = cuda::cudnn_attention_stats();
    const bool fwd = s1.forward_taken > s0.forward_taken;
    const bool bwd = s1.backward_taken > s0.backward_taken;
    if (fwd) cudnn = cudnn_time;
    cudnn_note = fwd && bwd ? "forward and backward"
                 : fwd      ? "forward only, backward declined (" + s1.last_decline + ")"
                            : "declined (" + s1.last_decline + ")";
  } catch (const std::exception& e) {
    cudnn_note = std::string("failed: ") + e.what();
  }
#endif
  const double composed = time_with(AttentionBackend::composed);
  AttentionBackend choice =
      fused <= composed ? AttentionBackend::fused : AttentionBackend::composed;
  const double best = std::min(fused, composed);
  if (cudnn > 0 && cudnn < best) choice = AttentionBackend::cudnn;
  set_attention_backend(choice);
  std::printf(
      "attention: fused %.2f ms, cuDNN %s (%s), composed %.2f ms per fwd+bwd: the GPT row runs "
      "%s\n",
      fused * 1e3, cudnn > 0 ? fmt(cudnn * 1e3, "%.2f ms").c_str() : "n/a", cudnn_note.c_str(),
      composed * 1e3, attention_backend_name(choice));
  return {"attn bf16 f+b ms fused|cuDNN|composed",
          fmt(fused * 1e3, "%.2f"),
          cudnn > 0                            ? fmt(cudnn * 1e3, "%.2f")
          : cudnn_note.rfind("failed", 0) == 0 ? std::string("failed")
                                               : std::string("declined"),
          fmt(composed * 1e3, "%.2f"),
          cudnn > 0 ? ratio(cudnn, fused) : std::string("n/a"),
          std::string("-> ") + attention_backend_name(choice)};
}

// GPT-2 124M as llm.c trains it (tools/bench/gpt2_124m.h).
struct GptSetup {
  nn::GPTConfig c = bench::gpt2_124m();
  static constexpr int64_t B = bench::kGpt2Batch, T = bench::kGpt2Tokens;
  std::shared_ptr<nn::GPT> gpt;
  std::shared_ptr<optim::AdamW> adamw;
  Fabric fab{FabricOptions{.accelerator = "cuda", .precision = "bf16-mixed"}};
  std::unique_ptr<FabricModule> m;
  std::unique_ptr<FabricOptimizer> o;
  Tensor x, y, loss;

  GptSetup() {
    manual_seed(0);
    gpt = nn::make<nn::GPT>(c);
    adamw = std::make_shared<optim::AdamW>(
        gpt->parameters(),
        optim::AdamWOptions{.lr = 6e-4, .betas = {0.9, 0.95}, .weight_decay = 0.1});
    auto [mm, oo] = fab.setup(gpt, *adamw);
    m = std::make_unique<FabricModule>(mm);
    o = std::make_unique<FabricOptimizer>(oo);
    x = randint(0, c.vocab_size, {B, T}, {.dtype = DType::int64}).to(fab.device());
    y = randint(0, c.vocab_size, {B, T}, {.dtype = DType::int64}).to(fab.device());
  }
  // The loss inside the module's precision context, as nanoGPT and llm.c compute it (GPT.loss
  // through FabricModule::run): cross_entropy then runs under autocast on the bf16 logits instead
  // of on a float32 copy the plugin would make of the module's output.
  void forward() {
    o->zero_grad();
    loss = m->run([&] { return gpt->loss(x, y); });
  }
  void backward() { fab.backward(loss); }
  void update() { o->step(); }
  void step() {
    forward();
    backward();
    update();
  }
  double num_params() const {
    return static_cast<double>(gpt->get_num_params(/*non_embedding=*/false));
  }
};

Row gpt_row(double budget_s, double& mfu) {
  GptSetup g;
  const double N = g.num_params();
  // Warm-up (allocator, plans), then as many steps as fit the budget, at least 3.
  const auto w0 = Clock::now();
  g.step();
  g.step();
  (void)g.loss.to(Device::cpu()).item<double>();
  const double warm = std::chrono::duration<double>(Clock::now() - w0).count() / 2;
  const int steps = static_cast<int>(std::clamp(budget_s / std::max(warm, 1e-3), 3.0, 50.0));
  const auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) g.step();
  const double last = g.loss.to(Device::cpu()).item<double>();
  const double s = std::chrono::duration<double>(Clock::now() - t0).count() / steps;
  const double tokens_per_s = GptSetup::B * GptSetup::T / s;
  const double flops_per_token = 6 * N + 6.0 * g.c.n_layer * g.c.n_embd * GptSetup::T;
  mfu = tokens_per_s * flops_per_token / 989e12;
  std::printf("gpt: %.1fM parameters, %d timed steps of %.1f ms, last loss %.4f\n", N / 1e6, steps,
              s * 1e3, last);
  return {"GPT-2 124M bf16-mixed train (tok/s)", fmt(tokens_per_s, "%.0f"), "-", "-", "-",
          "MFU " + fmt(100 * mfu, "%.1f") + "%"};
}

// --profile-gpt: where a GPT-2 124M step's time goes. Each phase (forward with the loss, backward,
// optimizer step) timed alone between synchronisations; the host's time to queue a whole step
// against the synchronised step (equal: the host is the bottleneck, the GPU waits for launches);
// then one step between cudaProfilerStart/Stop for `ncu --profile-from-start off`.
void profile_gpt() {
  // The attention the GPT row ends up with on an H200 (cuDNN's, which declines to ours where it
  // cannot), unless FABRIC_ATTENTION names one.
  if (!std::getenv("FABRIC_ATTENTION")) set_attention_backend(AttentionBackend::cudnn);
  std::printf("profile-gpt: attention backend %s\n", attention_backend_name(attention_backend()));
  GptSetup g;
  for (int i = 0; i < 3; ++i) g.step();
  auto sync = [&] { sync_on(g.x); };
  sync();
  auto ms_of = [&](const std::function<void()>& fn) {
    const auto t0 = Clock::now();
    fn();
    return 1e3 * std::chrono::duration<double>(Clock::now() - t0).count();
  };
  std::vector<double> fwd, bwd, upd, host, whole;
#ifdef BENCH_DIRECT
  // The epilogues give the fallback's values: only cuBLASLt's counts show whether they ran.
  const fabric::cuda::GemmPlanStats before = fabric::cuda::gemm_plan_stats();
  g.step();
  sync();
  const fabric::cuda::GemmPlanStats after = fabric::cuda::gemm_plan_stats();
  std::printf(
      "profile-gpt: GEMM epilogues a step: %llu fused in cuBLASLt, %llu declined\n",
      static_cast<unsigned long long>(after.fused_epilogues - before.fused_epilogues),
      static_cast<unsigned long long>(after.declined_epilogues - before.declined_epilogues));
#endif
  for (int r = 0; r < 7; ++r) {
    fwd.push_back(ms_of([&] { g.forward(), sync(); }));
    bwd.push_back(ms_of([&] { g.backward(), sync(); }));
    upd.push_back(ms_of([&] { g.update(), sync(); }));
    double queued = 0;
    whole.push_back(ms_of([&] { queued = ms_of([&] { g.step(); }), sync(); }));
    host.push_back(queued);
  }
  std::printf(
      "profile-gpt (median of 7, ms): forward+loss %.2f, backward %.2f, optimizer %.2f; a whole "
      "step %.2f, of which the host queued for %.2f\n",
      median(fwd), median(bwd), median(upd), median(whole), median(host));
#ifdef BENCH_DIRECT
  BENCH_CHECK(cudaProfilerStart());
  g.step();
  sync();
  BENCH_CHECK(cudaProfilerStop());
  std::printf("profile-gpt: one step ran between cudaProfilerStart and cudaProfilerStop\n");
#endif
}

void print_table(const std::vector<Row>& rows) {
  std::printf("\n%-38s %12s %12s %10s %14s %12s\n", "metric", "fabric", "cuBLASLt/CUDA",
              "datasheet", "fabric/direct", "fabric/peak");
  for (const Row& r : rows)
    std::printf("%-38s %12s %12s %10s %14s %12s\n", r.metric.c_str(), r.fabric.c_str(),
                r.direct.c_str(), r.peak.c_str(), r.ratio_direct.c_str(), r.ratio_peak.c_str());
}

template <typename F>
Row guarded(const char* metric, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return {metric, std::string("not available: ") + e.what(), "", "", "", ""};
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered even into a file, and every row printed once measured (the table repeats them at
  // the end): when tools/gpu-check.sh's time limit kills the bench, or a row crashes it, the rows
  // measured so far are in its log instead of lost in an unflushed buffer.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string gpu_name;
  double gpt_budget = 60;
  bool profile = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--profile-gpt") {
      profile = true;
    } else if (a == "--gpu-name" && i + 1 < argc) {
      gpu_name = argv[++i];
    } else if (a == "--gpt-seconds" && i + 1 < argc) {
      gpt_budget = std::atof(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: bench_gpu [--gpu-name NAME] [--gpt-seconds S] [--profile-gpt]\n");
      return 2;
    }
  }
  std::string why;
  if (cuda_device_count(&why) == 0) {
    std::printf("bench_gpu: needs a GPU (%s); nothing measured\n", why.c_str());
    return 0;
  }
#ifdef BENCH_DIRECT
  if (gpu_name.empty()) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) gpu_name = prop.name;
  }
#else
  std::printf(
      "bench_gpu: built without the CUDA headers/libraries: the cuBLASLt/CUDA column is n/a\n");
#endif
  const Datasheet ds = datasheet_for(gpu_name);
  std::printf("bench_gpu: %s; datasheet peaks %s\n",
              gpu_name.empty() ? "GPU name unknown" : gpu_name.c_str(),
              ds.bf16_tflops > 0 ? "from NVIDIA's dense figures" : "unknown for this GPU");
  std::fflush(stdout);
  if (profile) {
    profile_gpt();
    return 0;
  }
  std::vector<Row> rows;
  auto add = [&rows](Row r) {
    std::printf("measured: %s: %s (cuBLASLt/CUDA %s, datasheet %s)\n", r.metric.c_str(),
                r.fabric.c_str(), r.direct.c_str(), r.peak.c_str());
    rows.push_back(std::move(r));
  };
  add(guarded("GEMM bf16 4096^3 (TFLOP/s)", [&] { return gemm_bf16_row(ds); }));
  add(guarded("GEMM fp8 e4m3 4096^3 (TFLOP/s)", [&] { return gemm_fp8_row(ds); }));
  add(guarded("D2D copy 1 GiB (GB/s, read+write)", [&] { return copy_row(ds); }));
  add(guarded("attn bf16 f+b ms fused|cuDNN|composed", [&] { return attention_row(); }));
  double mfu = 0;
  add(guarded("GPT-2 124M bf16-mixed train (tok/s)", [&] { return gpt_row(gpt_budget, mfu); }));
  print_table(rows);
  std::printf(
      "\nfabric/direct: time of the direct call over fabric's (1.00 = no overhead). MFU: llm.c's "
      "6N + 6*L*C*T FLOPs per token over 989 TFLOP/s dense bf16; the goal is 55%%.\n"
      "attn row: fabric = our fused kernel, cuBLASLt/CUDA = cuDNN's fused attention, datasheet = "
      "the composition, fabric/direct = cuDNN's time over ours, fabric/peak = what the GPT row "
      "runs.\n");
  return 0;
}
