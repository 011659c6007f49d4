// Row drivers for the float64 ops that give torch 1.13's bits through SLEEF's double functions
// (vec_sleef_f64_*.h), mapping elements to the vector function exactly as torch's CPU kernels do:
//   - map_all: every element through the vector function (torch's vml::v<op>: contiguous rows in
//     vectors from the row's start, the tail zero-padded; other layouts gathered into a buffer
//     first);
//   - blocks_then_scalar: whole blocks of 8 of a contiguous row (or of one broadcast input) through
//   the
//     vector function and the rest through the scalar one (torch's cpu_kernel_vec, two 4-lane
//     vectors per step; any other layout all scalar).
// torch (one thread) hands each loop row over whole; for_each_row would cut a long 1-D loop into
// chunks anywhere, which moves tails and, for sin / cos / tan, the 4-lane groups whose path SLEEF
// picks together (vec_sleef_f64_rempi.h). f64_rows cuts such loops at multiples of 8 instead, so
// the results equal one-thread torch's at any thread count.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/elementwise_common.h"
#include "kernels/cpu/vec_sleef_f64_simd.h"

namespace fabric::cpu::ew {

template <typename RowFn>
void f64_rows(const StridedLoop& loop, const RowFn& row) {
  constexpr int64_t kGrain = 32768;  // for_each_row's: rows below 2 grains stay whole there too
  const int64_t n = loop.numel();
  if (loop.ndim != 1 || n < 2 * kGrain) return for_each_row(loop, row);
  const int64_t chunks = (n + kGrain - 1) / kGrain;
  const auto cut = [&](int64_t c) { return c == chunks ? n : n * c / chunks / 8 * 8; };
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t b = cut(c), e = cut(c + 1);
    if (e <= b) continue;
    char* p[kMaxLoopOperands];
    int64_t s[kMaxLoopOperands];
    for (int k = 0; k < loop.num_operands; ++k) {
      s[k] = loop.ops[k].strides[0];
      p[k] = loop.ops[k].data + b * s[k];
    }
    row(p, e - b, s);
  }
}

// out[i] = f(in[i]) for a contiguous run, 8 lanes at a time; the last vector loads zeros past n.
template <typename V>
inline void f64_map_contig(double* out, const double* in, int64_t n, const V& f) {
  using namespace vec::sleef64;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store(out + i, f(load(in + i)));
  if (i < n) {
    const MD m = first_lanes(n - i);
    store(out + i, f(load(in + i, m)), m);
  }
}

// V: sleef64::VD(sleef64::VD).
template <typename V>
void f64_map_all(const StridedLoop& loop, const V& f) {
  constexpr int64_t sz = sizeof(double);
  f64_rows(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    if (s[0] == sz && s[1] == sz) {
      f64_map_contig(reinterpret_cast<double*>(p[0]), reinterpret_cast<const double*>(p[1]), n, f);
      return;
    }
    // kStage is a multiple of 4: the 4-lane groups start where torch's 1024-element buffers put
    // them
    alignas(64) double buf[kStage];
    for (int64_t base = 0; base < n; base += kStage) {
      const int64_t m = std::min(kStage, n - base);
      const char* src = p[1] + base * s[1];
      for (int64_t j = 0; j < m; ++j) buf[j] = load_elem<double>(src + j * s[1]);
      f64_map_contig(buf, buf, m, f);
      char* dst = p[0] + base * s[0];
      for (int64_t j = 0; j < m; ++j) store_elem<double>(dst + j * s[0], buf[j]);
    }
  });
}

// V: sleef64::VD(sleef64::VD); S: double(double).
template <typename V, typename S>
void f64_blocks_then_scalar(const StridedLoop& loop, const V& vf, const S& sf) {
  using namespace vec::sleef64;
  constexpr int64_t sz = sizeof(double);
  f64_rows(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    int64_t i = 0;
    if (s[0] == sz && (s[1] == sz || s[1] == 0)) {
      double* out = reinterpret_cast<double*>(p[0]);
      const double* in = reinterpret_cast<const double*>(p[1]);
      const int64_t m = n - n % 8;
      if (s[1] == sz) {
        for (; i < m; i += 8) store(out + i, vf(load(in + i)));
      } else if (m > 0) {
        const VD v = vf(splat(in[0]));
        for (; i < m; i += 8) store(out + i, v);
      }
    }
    for (; i < n; ++i) store_elem<double>(p[0] + i * s[0], sf(load_elem<double>(p[1] + i * s[1])));
  });
}

}  // namespace fabric::cpu::ew
