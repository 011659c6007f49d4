// Quantizer throughput on 16M fp32 values at 1 thread: NF4/FP4 quantize and dequantize (bs 64)
// and LLM.int8 row-wise quantization (4096 x 4096), in GB/s of fp32 data (the input of a
// quantize, the output of a dequantize) next to a memcpy of the same 64 MB in the same run.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <vector>

#include "nn/gpt.h"
#include "nn/linear.h"
#include "precision/bitsandbytes_precision.h"
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

}  // namespace

int main() {
  omp_set_num_threads(1);
  const int64_t rows = 4096, cols = 4096, n = rows * cols;
  const double bytes = static_cast<double>(n) * sizeof(float);
  Generator gen(1);
  const Tensor x = randn({rows, cols}, {.dtype = DType::float32}, &gen);

  std::vector<char> src(static_cast<size_t>(bytes), 1), dst(static_cast<size_t>(bytes), 0);
  const double t_memcpy = median_seconds([&] { std::memcpy(dst.data(), src.data(), src.size()); });
  const double memcpy_gbps = bytes / t_memcpy / 1e9;
  std::printf("quantizers, 16M fp32 (64 MB), 1 thread; GB/s of fp32 data; memcpy %.2f GB/s\n",
              memcpy_gbps);
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
  const double t8 = median_seconds([&] { (void)int8_vectorwise_quant(x, 6.0); });
  report("int8_vectorwise_quant", t8);
  const Tensor xh = x.to(DType::float16);
  const double t8h = median_seconds([&] { (void)int8_vectorwise_quant(xh, 6.0); });
  std::printf("%-24s %10.2f %10.2f   (fp16 input, 32 MB; GB/s of the fp32-equivalent)\n",
              "int8_vectorwise_quant f16", t8h * 1e3, bytes / t8h / 1e9);
  report_gpt_memory();
  return 0;
}
