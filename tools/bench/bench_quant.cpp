// Quantizer throughput on 16M fp32 values: NF4/FP4 quantize and dequantize (bs 64) and LLM.int8
// row-wise quantization (4096 x 4096), in GB/s of fp32 data (the input of a quantize, the output
// of a dequantize) next to a memcpy of the same 64 MB in the same run; then the LLM.int8 linear
// forward (M, K, N) = (2048, 1024, 1024) next to its int8 GEMM alone. The per-step dequantizations
// of training (nf4-dq/fp4-dq dequantize_4bit, int8_vectorwise_dequant, the 4-bit and 8-bit
// linears' weights) and a forward+backward of those linears at (2048, 1024, 1024), whose frozen
// weight is dequantized every step (QLoRA's base layers), and of the int8-training Linear8bitLt,
// whose fp16 weight gets its gradient too.
// Usage: bench_quant [threads] (default 1).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "autograd/autograd.h"
#include "nn/gpt.h"
#include "nn/linear.h"
#include "precision/bitsandbytes_precision.h"
#include "precision/linear_4bit.h"
#include "precision/linear_8bit.h"
#include "precision/quant_4bit.h"
#include "precision/quant_int8.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/random.h"

using namespace fabric;
using namespace fabric::precision;

namespace {

double median_seconds(const std::function<void()>& fn, int reps = 7) {
  fn();  // warm-up: first touch of the outputs
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Bits per weight of the quantized GPT (4 layers, C=256; every Linear except the tied lm_head),
// read from the caching allocator: the live bytes after convert_module, minus what was live
// before, plus the float32 weights it released (biases are re-created at the same size).
void report_gpt_memory() {
  std::printf("\nquantized GPT (4 layers, C=256), measured from the allocator:\n");
  for (const char* mode : {"nf4", "nf4-dq", "fp4", "int8"}) {
    manual_seed(0);
    auto gpt = nn::make<nn::GPT>({.vocab_size = 65, .block_size = 128, .n_layer = 4, .n_head = 4, .n_embd = 256});
    int64_t weights = 0;
    for (const auto& [name, m] : gpt->named_modules())
      if (auto* l = dynamic_cast<nn::Linear*>(m.get()); l && name != "lm_head") weights += l->weight.numel();
    const int64_t before = cpu_allocator().stats().allocated_bytes;
    precision::BitsandbytesPrecision(mode, std::nullopt, {"lm_head"}).convert_module(*gpt);
    const int64_t after = cpu_allocator().stats().allocated_bytes;
    const double bytes = double(after - before) + 4.0 * double(weights);
    std::printf("  %-8s %10.0f bytes for %lld weights = %.3f bits per weight (bf16: 16, fp32: 32)\n", mode, bytes,
                (long long)weights, 8.0 * bytes / double(weights));
  }
}

// The LLM.int8 forward of an fp16 (M, K) activation through frozen (N, K) int8 weights, with and
// without outlier columns, next to the int8 GEMM alone (the part that is oneDNN's).
void report_int8_linear() {
  const int64_t M = 2048, K = 1024, N = 1024;
  Generator gen(3);
  const Tensor W = randn({N, K}, {.dtype = DType::float32}, &gen).to(DType::float16);
  const Tensor bias = randn({N}, {.dtype = DType::float32}, &gen).to(DType::float16);
  const Int8RowQuant wq = int8_vectorwise_quant(W, 0.0);
  std::vector<float> xv = randn({M, K}, {.dtype = DType::float32}, &gen).to_vector<float>();
  const Tensor X = from_vector(xv, {M, K}).to(DType::float16);
  // LLM.int8's regime: a handful of feature columns carry |x| >= 6 in some rows.
  for (int64_t c : {17, 300, 301, 777}) {
    for (int64_t m = c % 5; m < M; m += 97) xv[m * K + c] = (m % 2 ? 8.0f : -9.5f);
  }
  const Tensor Xo = from_vector(xv, {M, K}).to(DType::float16);
  const Int8RowQuant xq = int8_vectorwise_quant(X, 6.0);
  const double t_gemm = median_seconds([&] { (void)int8_matmul(xq.CA, wq.CA); });
  const double t_fwd =
      median_seconds([&] { (void)int8_linear_forward(X, wq.CA, wq.SCA, bias, 6.0); });
  const double t_fwd_o =
      median_seconds([&] { (void)int8_linear_forward(Xo, wq.CA, wq.SCA, bias, 6.0); });
  const double flop = 2.0 * M * N * K;
  std::printf("\nLLM.int8 linear forward, fp16 X (M, K, N) = (%lld, %lld, %lld), threshold 6:\n",
              (long long)M, (long long)K, (long long)N);
  std::printf("  %-34s %8.2f ms %8.1f GOP/s\n", "int8_matmul alone (oneDNN s8s8s32)", t_gemm * 1e3,
              flop / t_gemm / 1e9);
  std::printf("  %-34s %8.2f ms (%.2f ms outside the GEMM)\n", "int8_linear_forward, no outliers",
              t_fwd * 1e3, (t_fwd - t_gemm) * 1e3);
  std::printf("  %-34s %8.2f ms (%.2f ms outside the GEMM)\n",
              "int8_linear_forward, 4 outlier cols", t_fwd_o * 1e3, (t_fwd_o - t_gemm) * 1e3);
}

// One training step's work in a frozen quantized linear (QLoRA's base layer: only the input
// gets a gradient): forward of a bf16 activation (M, K) through an (N, K) weight, then backward
// of a bf16 gradient; next to dequantized_weight() alone (done once per forward).
void report_quantized_linear_step() {
  const int64_t M = 2048, K = 1024, N = 1024;
  std::printf("\nquantized linear, forward+backward, bf16 X (M, K, N) = (%lld, %lld, %lld):\n",
              (long long)M, (long long)K, (long long)N);
  Generator gen(5);
  const Tensor g = randn({M, N}, {.dtype = DType::float32}, &gen).to(DType::bfloat16);
  Tensor x =
      randn({M, K}, {.dtype = DType::float32}, &gen).to(DType::bfloat16).set_requires_grad(true);
  auto step = [&](nn::Module& layer) {
    layer.forward(x).backward(g);
    zero_grad(x);
  };
  manual_seed(0);
  const nn::Linear lin({.in_features = K, .out_features = N});
  for (const char* qt : {"nf4", "fp4"}) {
    auto l4 = Linear4bit::from_linear(lin, qt, /*compress_statistics=*/true, DType::bfloat16);
    const double td = median_seconds([&] { (void)l4->dequantized_weight(); });
    const double ts = median_seconds([&] { step(*l4); });
    std::printf("  Linear4bit %s-dq: dequantized_weight %7.2f ms, fwd+bwd %7.2f ms\n", qt, td * 1e3,
                ts * 1e3);
  }
  auto l8 = Linear8bitLt::from_linear(lin, /*has_fp16_weights=*/false, 6.0);
  const double td8 = median_seconds([&] { (void)l8->dequantized_weight(); });
  const double ts8 = median_seconds([&] { step(*l8); });
  std::printf("  Linear8bitLt int8:  dequantized_weight %7.2f ms, fwd+bwd %7.2f ms\n", td8 * 1e3,
              ts8 * 1e3);
  // int8-training: the fp16 weight is trainable, re-quantized every forward, and gets dW too.
  auto l8t = Linear8bitLt::from_linear(lin, /*has_fp16_weights=*/true, 6.0);
  const double ts8t = median_seconds([&] {
    step(*l8t);
    zero_grad(l8t->weight);
  });
  std::printf("  Linear8bitLt int8-training (dX, db and dW): fwd+bwd %7.2f ms\n", ts8t * 1e3);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  if (threads < 1) {
    std::fprintf(stderr, "usage: bench_quant [threads >= 1]\n");
    return 2;
  }
  omp_set_num_threads(threads);
  const int64_t rows = 4096, cols = 4096, n = rows * cols;
  const double bytes = static_cast<double>(n) * sizeof(float);
  Generator gen(1);
  const Tensor x = randn({rows, cols}, {.dtype = DType::float32}, &gen);

  // The reference copies between two tensors of the same allocator as the quantizers' inputs and
  // outputs (huge pages for blocks this size; a std::vector sits on 4 KiB pages and copies
  // 15-30 % slower here), both touched before timing. memcpy is single-threaded whatever
  // `threads` is.
  const Tensor src = zeros({n * 4}, {.dtype = DType::uint8});
  Tensor dst = zeros({n * 4}, {.dtype = DType::uint8});
  const double t_memcpy = median_seconds(
      [&] { std::memcpy(dst.data_ptr(), src.data_ptr(), static_cast<size_t>(bytes)); });
  const double memcpy_gbps = bytes / t_memcpy / 1e9;
  std::printf("quantizers, 16M fp32 (64 MB), %d thread(s); GB/s of fp32 data; memcpy %.2f GB/s\n",
              threads, memcpy_gbps);
  std::printf("%-24s %10s %10s %12s\n", "op", "ms", "GB/s", "vs memcpy");
  auto report = [&](const char* name, double s) {
    const double gbps = bytes / s / 1e9;
    std::printf("%-24s %10.2f %10.2f %11.2fx\n", name, s * 1e3, gbps, gbps / memcpy_gbps);
  };

  for (const char* qt : {"nf4", "fp4"}) {
    Quantized4bit q;
    const double tq = median_seconds([&] { q = quantize_4bit(x, 64, qt); });
    const double td = median_seconds([&] { (void)dequantize_4bit(q.packed, q.state); });
    char name[64];
    std::snprintf(name, sizeof name, "quantize_4bit %s", qt);
    report(name, tq);
    std::snprintf(name, sizeof name, "dequantize_4bit %s", qt);
    report(name, td);
  }
  {
    Quantized4bit q;
    const double tq = median_seconds([&] { q = quantize_4bit(x, 64, "nf4", true); });
    report("quantize_4bit nf4-dq", tq);
  }
  for (const char* qt : {"nf4", "fp4"}) {
    const Quantized4bit q = quantize_4bit(x, 64, qt, /*compress_statistics=*/true);
    char name[64];
    std::snprintf(name, sizeof name, "dequantize_4bit %s-dq", qt);
    report(name, median_seconds([&] { (void)dequantize_4bit(q.packed, q.state); }));
  }
  {
    // QLoRA's layer: the weight quantized from float16 (the state's dtype), read in bf16.
    // Linear4bit reads it in one pass (dequantize_4bit(..., dtype)); the two passes beside it.
    const Quantized4bit q = quantize_4bit(x.to(DType::float16), 64, "nf4", true);
    const double t =
        median_seconds([&] { (void)dequantize_4bit(q.packed, q.state, DType::bfloat16); });
    const double t2 =
        median_seconds([&] { (void)dequantize_4bit(q.packed, q.state).to(DType::bfloat16); });
    std::printf(
        "%-24s %10.2f %10.2f   (f16 state read in bf16, one pass as Linear4bit; GB/s "
        "fp32-equiv.)\n",
        "dequant nf4-dq f16->bf16", t * 1e3, bytes / t / 1e9);
    std::printf("%-24s %10.2f %10.2f   (the same as dequantize_4bit then .to(bf16))\n",
                "  two passes", t2 * 1e3, bytes / t2 / 1e9);
  }
  const double t8 = median_seconds([&] { (void)int8_vectorwise_quant(x, 6.0); });
  report("int8_vectorwise_quant", t8);
  const Tensor xh = x.to(DType::float16);
  const double t8h = median_seconds([&] { (void)int8_vectorwise_quant(xh, 6.0); });
  std::printf("%-24s %10.2f %10.2f   (fp16 input, 32 MB; GB/s of the fp32-equivalent)\n",
              "int8_vectorwise_quant f16", t8h * 1e3, bytes / t8h / 1e9);
  {
    const Int8RowQuant q = int8_vectorwise_quant(x, 0.0);
    report("int8_vectorwise_dequant",
           median_seconds([&] { (void)int8_vectorwise_dequant(q.CA, q.SCA); }));
  }
  report_int8_linear();
  report_quantized_linear_step();
  report_gpt_memory();
  return 0;
}
