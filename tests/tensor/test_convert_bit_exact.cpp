// The bulk conversion (cpu::convert) against the per-element encoders and decoders of
// tensor/float_formats.h, bit for bit: every 16-bit and 8-bit source pattern, and for fp32 sources
// a sweep through every exponent with the rounding ties at each dropped-bit position, subnormals,
// the overflow and saturation thresholds, inf and NaNs. Each runs on 1 and 2 threads, at lengths
// with tails, at source and destination addresses off the 64-byte lines, and long enough that the
// destination passes the size from which convert writes with non-temporal stores. Converting
// copies of strided and offset tensor views are checked against the same references.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/convert.h"
#include "tensor/factory.h"
#include "tensor/float_formats.h"
#include "tensor/tensor.h"
#include "tests/common/omp_threads.h"

namespace fabric {
namespace {

// convert() streams destinations of 4 MiB and more (kStreamBytes in kernels/cpu/convert.cpp);
// the long runs pass it with a tail that is no multiple of any vector width.
constexpr int64_t kStreamingDstBytes = int64_t{4} << 20;

// The source patterns of one conversion and the destination bytes each must give.
struct Patterns {
  DType s, d;
  bool sat = false;
  std::vector<uint8_t> src, want;  // count() elements each
  int64_t count() const { return static_cast<int64_t>(src.size()) / itemsize(s); }
};

template <typename T>
void append(std::vector<uint8_t>& v, T x) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &x, sizeof(T));
  v.insert(v.end(), b, b + sizeof(T));
}

// Every pattern of a 16- or 8-bit source, mapped by `ref` (source bits -> destination value).
template <typename S, typename D>
Patterns every_pattern(DType s, DType d, const std::function<D(S)>& ref, bool sat = false) {
  Patterns p{s, d, sat, {}, {}};
  for (uint32_t u = 0; u <= std::numeric_limits<S>::max(); ++u) {
    append(p.src, static_cast<S>(u));
    append(p.want, ref(static_cast<S>(u)));
  }
  return p;
}

// fp32 bit patterns that decide every rounding: for each exponent and sign, mantissas with a
// single set bit or two adjacent set bits at every position, each +-1 (the ties of every target
// precision, normal and subnormal, with an even and an odd kept bit), the extremes, and the
// thresholds of precision-spec §1; then a stride through all 2^32 patterns.
std::vector<uint32_t> fp32_sweep() {
  std::vector<uint32_t> v;
  for (uint32_t sign : {0u, 0x80000000u}) {
    for (uint32_t e = 0; e < 256; ++e) {
      const uint32_t base = sign | (e << 23);
      for (uint32_t m : {0u, 1u, 0x7FFFFFu, 0x400000u, 0x3FFFFFu}) v.push_back(base | m);
      for (int j = 0; j < 23; ++j) {
        for (uint32_t k : {1u, 3u, 5u}) {
          const uint32_t m = (k << j) & 0x7FFFFFu;
          for (uint32_t mm : {m - 1, m, m + 1}) v.push_back(base | (mm & 0x7FFFFFu));
        }
      }
    }
  }
  for (float f : {448.0f, 464.0f, 465.0f, 480.0f, 57344.0f, 61439.996f, 61440.0f, 65504.0f,
                  65519.996f, 65520.0f, std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::min(), std::numeric_limits<float>::denorm_min()}) {
    v.push_back(std::bit_cast<uint32_t>(f));
    v.push_back(std::bit_cast<uint32_t>(-f));
    v.push_back(std::bit_cast<uint32_t>(f) + 1);
    v.push_back(std::bit_cast<uint32_t>(f) - 1);
  }
  for (uint32_t nan :
       {0x7F800001u, 0x7FBFFFFFu, 0x7FC00000u, 0x7FC00001u, 0x7FFFFFFFu, 0x7F80FFFFu, 0x7FFF0000u})
    for (uint32_t sign : {0u, 0x80000000u}) v.push_back(sign | nan);
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 65521) v.push_back(static_cast<uint32_t>(u));
  return v;
}

template <typename D>
Patterns from_fp32(DType d, const std::function<D(float)>& ref, bool sat = false) {
  Patterns p{DType::float32, d, sat, {}, {}};
  for (uint32_t u : fp32_sweep()) {
    append(p.src, u);
    append(p.want, ref(std::bit_cast<float>(u)));
  }
  return p;
}

// Runs convert on `n` elements of the patterns, starting at pattern `phase`, with source and
// destination `src_off` / `dst_off` elements past a 64-byte aligned address, and compares
// every byte; guard bytes around the destination catch writes outside it.
void check(const Patterns& p, int64_t n, int64_t phase, int64_t src_off, int64_t dst_off) {
  const int64_t ss = itemsize(p.s), ds = itemsize(p.d), count = p.count();
  std::vector<uint8_t> src_buf(static_cast<size_t>((n + src_off) * ss + 64));
  std::vector<uint8_t> dst_buf(static_cast<size_t>((n + dst_off + 2) * ds + 64), 0xA5);
  const auto line = [](std::vector<uint8_t>& b) {
    return b.data() + ((64 - reinterpret_cast<uintptr_t>(b.data()) % 64) % 64);
  };
  uint8_t* src = line(src_buf) + src_off * ss;
  uint8_t* dst = line(dst_buf) + (dst_off + 1) * ds;  // one guard element before
  for (int64_t i = 0; i < n;) {
    const int64_t k = (phase + i) % count, m = std::min(n - i, count - k);
    std::memcpy(src + i * ss, p.src.data() + k * ss, static_cast<size_t>(m * ss));
    i += m;
  }
  cpu::convert(p.s, src, p.d, dst, n, p.sat);
  for (int64_t g = 0; g < ds; ++g) {
    ASSERT_EQ(dst[g - ds], 0xA5) << "wrote before the destination";
    ASSERT_EQ(dst[n * ds + g], 0xA5) << "wrote past the destination";
  }
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = (phase + i) % count;
    if (std::memcmp(dst + i * ds, p.want.data() + k * ds, static_cast<size_t>(ds)) != 0) {
      uint64_t got = 0, want = 0, in = 0;
      std::memcpy(&got, dst + i * ds, static_cast<size_t>(ds));
      std::memcpy(&want, p.want.data() + k * ds, static_cast<size_t>(ds));
      std::memcpy(&in, p.src.data() + k * ss, static_cast<size_t>(ss));
      ADD_FAILURE() << p.s << " -> " << p.d << " sat=" << p.sat << " n=" << n << " i=" << i
                    << std::hex << ": source 0x" << in << " gave 0x" << got << ", want 0x" << want;
      if (++bad == 5) return;
    }
  }
}

void check_everywhere(const Patterns& p) {
  SCOPED_TRACE(::testing::Message() << p.s << " -> " << p.d << " sat=" << p.sat);
  const int64_t count = p.count();
  const int64_t streaming = kStreamingDstBytes / itemsize(p.d) + 1229;
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    for (int64_t n :
         {int64_t{1}, int64_t{7}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{31}, int64_t{33},
          int64_t{63}, int64_t{65}, int64_t{127}, int64_t{129}, int64_t{2047}, int64_t{2049}}) {
      check(p, n, (n * 7919) % count, n % 3, n % 5);
    }
    for (int64_t off : {0, 1, 3}) {
      check(p, count, 0, off, (off * 7) % 11);  // every pattern once
      check(p, count + 37, 5, 2 - off % 2, off);
    }
    // Past the streaming size: aligned, and with a destination off its 64-byte lines.
    check(p, streaming, 3, 0, 0);
    check(p, streaming, 11, 1, 3);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(ConvertBitExact, SixteenBitSourcesEveryPattern) {
  check_everywhere(every_pattern<uint16_t, float>(
      DType::bfloat16, DType::float32, [](uint16_t b) { return bf16_bits_to_float(b); }));
  check_everywhere(every_pattern<uint16_t, float>(
      DType::float16, DType::float32, [](uint16_t h) { return half_bits_to_float_portable(h); }));
  check_everywhere(every_pattern<uint16_t, uint16_t>(
      DType::bfloat16, DType::float16,
      [](uint16_t b) { return float_to_half_bits_portable(bf16_bits_to_float(b)); }));
  check_everywhere(every_pattern<uint16_t, uint16_t>(
      DType::float16, DType::bfloat16,
      [](uint16_t h) { return float_to_bf16_bits(half_bits_to_float_portable(h)); }));
  for (bool sat : {false, true}) {
    check_everywhere(every_pattern<uint16_t, uint8_t>(
        DType::bfloat16, DType::float8_e4m3fn,
        [sat](uint16_t b) { return float_to_fp8_e4m3_bits(bf16_bits_to_float(b), sat); }, sat));
    check_everywhere(every_pattern<uint16_t, uint8_t>(
        DType::float16, DType::float8_e5m2,
        [sat](uint16_t h) { return float_to_fp8_e5m2_bits(half_bits_to_float_portable(h), sat); },
        sat));
  }
}

TEST(ConvertBitExact, Fp8SourcesEveryPattern) {
  check_everywhere(every_pattern<uint8_t, float>(
      DType::float8_e4m3fn, DType::float32, [](uint8_t v) { return fp8_e4m3_bits_to_float(v); }));
  check_everywhere(every_pattern<uint8_t, float>(
      DType::float8_e5m2, DType::float32, [](uint8_t v) { return fp8_e5m2_bits_to_float(v); }));
  check_everywhere(every_pattern<uint8_t, uint16_t>(
      DType::float8_e4m3fn, DType::bfloat16,
      [](uint8_t v) { return float_to_bf16_bits(fp8_e4m3_bits_to_float(v)); }));
  check_everywhere(every_pattern<uint8_t, uint16_t>(
      DType::float8_e5m2, DType::float16,
      [](uint8_t v) { return float_to_half_bits_portable(fp8_e5m2_bits_to_float(v)); }));
}

TEST(ConvertBitExact, Fp32SourcesSweep) {
  check_everywhere(
      from_fp32<uint16_t>(DType::bfloat16, [](float x) { return float_to_bf16_bits(x); }));
  check_everywhere(
      from_fp32<uint16_t>(DType::float16, [](float x) { return float_to_half_bits_portable(x); }));
  for (bool sat : {false, true}) {
    check_everywhere(from_fp32<uint8_t>(
        DType::float8_e4m3fn, [sat](float x) { return float_to_fp8_e4m3_bits(x, sat); }, sat));
    check_everywhere(from_fp32<uint8_t>(
        DType::float8_e5m2, [sat](float x) { return float_to_fp8_e5m2_bits(x, sat); }, sat));
  }
  // fp64 is exact (the NaN quieted with its payload kept, as cvtss2sd does).
  check_everywhere(
      from_fp32<double>(DType::float64, [](float x) { return static_cast<double>(x); }));
}

TEST(ConvertBitExact, Fp64ToFp32Sweep) {
  Patterns p{DType::float64, DType::float32, false, {}, {}};
  std::mt19937_64 rng(3);
  for (uint32_t u : fp32_sweep()) {
    // The fp32 value itself, the ties half an fp32 ulp either side, and a random neighbour.
    const double x = static_cast<double>(std::bit_cast<float>(u));
    const uint64_t b = std::bit_cast<uint64_t>(x);
    for (uint64_t v :
         {b, b + (uint64_t{1} << 28), b - (uint64_t{1} << 28), b ^ (rng() & 0xFFFFFFFFFFFFF)}) {
      append(p.src, v);
      append(p.want, static_cast<float>(std::bit_cast<double>(v)));
    }
  }
  check_everywhere(p);
}

// Converting copies of views: a strided view (the copy kernel's per-element loop) and an offset
// contiguous one (cpu::convert with a misaligned source) give the reference bits.
TEST(ConvertBitExact, StridedAndOffsetViews) {
  const Patterns p = every_pattern<uint16_t, float>(
      DType::bfloat16, DType::float32, [](uint16_t b) { return bf16_bits_to_float(b); });
  Tensor x = empty({p.count()}, {.dtype = DType::bfloat16});
  std::memcpy(x.data_ptr(), p.src.data(), p.src.size());
  const auto expect_rows = [&](const Tensor& y, int64_t start, int64_t step) {
    const Tensor c = y.contiguous();
    const auto* got = static_cast<const uint32_t*>(c.data_ptr());
    const auto* want = reinterpret_cast<const uint32_t*>(p.want.data());
    int bad = 0;
    for (int64_t i = 0; i < c.numel() && bad < 5; ++i) {
      if (got[i] != want[start + i * step]) {
        ++bad;
        ADD_FAILURE() << "element " << i << " of a view from " << start << " step " << step;
      }
    }
  };
  for (int threads : {1, 2}) {
    OmpThreads scope(threads);
    expect_rows(x.slice(0, 1, p.count(), 3).to(DType::float32), 1, 3);
    expect_rows(x.narrow(0, 3, p.count() - 10).to(DType::float32), 3, 1);
    Tensor into = empty({2, p.count()}, {.dtype = DType::float32});
    into.select(0, 1).copy_(x);  // a destination row 256 KiB in
    expect_rows(into.select(0, 1), 0, 1);
  }
}

}  // namespace
}  // namespace fabric
