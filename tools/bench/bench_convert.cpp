// Throughput of the bulk dtype conversions against memcpy of the same traffic, on 1 and 2
// threads: a conversion is memory-bound when its ratio is near 1.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "kernels/cpu/convert.h"

namespace {

using fabric::DType;
constexpr int64_t kN = int64_t{16} << 20;  // elements
constexpr int kReps = 25;

// Times a and b alternately kReps times and returns the best of each: alternating exposes both to
// the same machine state, and on a shared machine the minimum is the least disturbed run.
template <typename A, typename B>
std::pair<double, double> best_seconds_paired(A&& a, B&& b) {
  a();  // warm-up: caches, page tables
  b();
  double best_a = 1e30, best_b = 1e30;
  auto time = [](auto& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  for (int r = 0; r < kReps; ++r) {
    best_a = std::min(best_a, time(a));
    best_b = std::min(best_b, time(b));
  }
  return {best_a, best_b};
}

// 64-byte aligned like the tensor allocator's storage: misaligned 64-byte stores split cache lines
// and measure something else.
template <typename T>
std::unique_ptr<T[], decltype(&std::free)> aligned_buffer(int64_t n) {
  const auto bytes = static_cast<size_t>((n * static_cast<int64_t>(sizeof(T)) + 63) / 64 * 64);
  auto* p = static_cast<T*>(std::aligned_alloc(64, bytes));
  if (p == nullptr) {
    std::fprintf(stderr, "bench_convert: cannot allocate %zu bytes\n", bytes);
    std::exit(1);
  }
  std::memset(p, 0, bytes);  // first touch outside the timed region
  return {p, &std::free};
}

// memcpy split over the same threads the conversion uses.
void parallel_memcpy(char* dst, const char* src, int64_t bytes) {
  const int threads = omp_get_max_threads();
  const int64_t chunk = (bytes + threads - 1) / threads;
#pragma omp parallel for schedule(static)
  for (int t = 0; t < threads; ++t) {
    const int64_t lo = t * chunk, hi = std::min(bytes, lo + chunk);
    if (lo < hi) std::memcpy(dst + lo, src + lo, static_cast<size_t>(hi - lo));
  }
}

}  // namespace

int main() {
  // Each format has its own source buffer holding its rounding of the same normal(0, 10) values
  // (fp8 saturating, as Transformer Engine stores them), and each destination width its own
  // output buffer, so no case reads what another wrote in a different format.
  auto f32 = aligned_buffer<float>(kN);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 10.0f);
  for (int64_t i = 0; i < kN; ++i) f32[i] = nd(rng);
  auto bf16 = aligned_buffer<uint16_t>(kN);
  auto f16 = aligned_buffer<uint16_t>(kN);
  auto e4m3 = aligned_buffer<uint8_t>(kN);
  auto e5m2 = aligned_buffer<uint8_t>(kN);
  auto out32 = aligned_buffer<float>(kN);
  auto out16 = aligned_buffer<uint16_t>(kN);
  auto out8 = aligned_buffer<uint8_t>(kN);
  auto copy_src = aligned_buffer<char>(kN * 4);
  auto copy_dst = aligned_buffer<char>(kN * 4);
  fabric::cpu::convert(DType::float32, f32.get(), DType::bfloat16, bf16.get(), kN);
  fabric::cpu::convert(DType::float32, f32.get(), DType::float16, f16.get(), kN);
  fabric::cpu::convert(DType::float32, f32.get(), DType::float8_e4m3fn, e4m3.get(), kN, true);
  fabric::cpu::convert(DType::float32, f32.get(), DType::float8_e5m2, e5m2.get(), kN, true);

  struct Case {
    const char* name;
    DType s, d;
    const void* src;
    void* dst;
  };
  // The conversions of mixed-precision training: weights and activations to and from bf16/fp16,
  // fp8 quantisation and dequantisation, and the bf16 <-> fp16 hand-over between the two.
  const Case cases[] = {
      {"f32->bf16", DType::float32, DType::bfloat16, f32.get(), out16.get()},
      {"bf16->f32", DType::bfloat16, DType::float32, bf16.get(), out32.get()},
      {"f32->f16", DType::float32, DType::float16, f32.get(), out16.get()},
      {"f16->f32", DType::float16, DType::float32, f16.get(), out32.get()},
      {"bf16->f16", DType::bfloat16, DType::float16, bf16.get(), out16.get()},
      {"f16->bf16", DType::float16, DType::bfloat16, f16.get(), out16.get()},
      {"f32->e4m3", DType::float32, DType::float8_e4m3fn, f32.get(), out8.get()},
      {"f32->e5m2", DType::float32, DType::float8_e5m2, f32.get(), out8.get()},
      {"e4m3->f32", DType::float8_e4m3fn, DType::float32, e4m3.get(), out32.get()},
      {"e5m2->f32", DType::float8_e5m2, DType::float32, e5m2.get(), out32.get()},
  };

  std::printf(
      "bulk conversion, n = %lld elements; GB/s counts bytes read + written, best of %d alternated "
      "runs\n",
      static_cast<long long>(kN), kReps);
  std::printf("%-10s %7s %12s %14s %8s\n", "case", "threads", "convert GB/s", "memcpy GB/s",
              "ratio");
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (const Case& c : cases) {
      const int64_t src_bytes = kN * fabric::itemsize(c.s), dst_bytes = kN * fabric::itemsize(c.d);
      const double traffic = static_cast<double>(src_bytes + dst_bytes);
      // The peer moves the same number of bytes: a copy of (read + write) / 2 bytes.
      const int64_t copy_bytes = (src_bytes + dst_bytes) / 2;
      const auto [tc, tm] =
          best_seconds_paired([&] { fabric::cpu::convert(c.s, c.src, c.d, c.dst, kN); },
                              [&] { parallel_memcpy(copy_dst.get(), copy_src.get(), copy_bytes); });
      const double gc = traffic / tc / 1e9, gm = traffic / tm / 1e9;
      std::printf("%-10s %7d %12.2f %14.2f %8.2f\n", c.name, threads, gc, gm, gc / gm);
    }
  }
  return 0;
}
