// Contiguous elementwise loops in 16-byte pieces: what one thread of loop_kernel.cuh's
// launch_pieces does, as plain functions that the host can run too (tests/cuda/
// test_loop_pieces.cpp replays a whole grid with them). Free of CUDA headers.
//
// A thread takes kPieceBytes / sizeof(T) consecutive elements of every operand (8 of bf16/f16, 4 of
// float), loads each input's piece at once into registers, runs the loop's functor on each element
// there, and stores the output's piece at once. One two-byte access a step left an H200 at a sixth
// of its bandwidth on GPT-2's logits (session 29); wide accesses issue a quarter to an eighth of
// the memory instructions. The functor and its per-element arithmetic are those of the plain loop,
// so the results are the same bits.
#pragma once
#include <cstdint>

#include "tensor/strided_loop.h"

#if defined(__CUDACC__)
#define FABRIC_PIECE_HD __host__ __device__ __forceinline__
#define FABRIC_PIECE_UNROLL _Pragma("unroll")
#else
#define FABRIC_PIECE_HD inline
#define FABRIC_PIECE_UNROLL _Pragma("GCC unroll 16")
#endif

namespace fabric::cuda {

inline constexpr int kPieceBytes = 16;

// Whether `loop` can run in pieces: the wide paths on (FABRIC_CUDA_WIDE, speed_switches.h), a 1-D
// loop whose operands all have `dt` (of itemsize kPieceBytes or less) and advance by its itemsize
// from 16-byte aligned addresses.
bool fits_pieces(const StridedLoop& loop, DType dt);

template <typename T>
inline constexpr int kPieceElems = kPieceBytes / static_cast<int>(sizeof(T));

template <typename T>
struct alignas(kPieceBytes) Piece {
  T v[kPieceElems<T>];
};

// Operand k's first element; operands [0, Loaded) are contiguous arrays of T (operand 0 the
// output), the others absent (null: the functor holds a scalar in their place, as in launch_loop).
template <int N>
struct PieceArgs {
  char* data[N];
};

// Elements [i0, i0 + kPieceElems<T>) of every operand, i0 a multiple of the piece size. The
// output's piece is not read: the functor must write p[0] of every element and never read it
// (every functor given to launch_pieces does: FloatBinary, FloatUnary, FloatActGrad), or the
// pieces and the per-element tail would disagree.
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <typename T, int N, int Loaded, typename F>
FABRIC_PIECE_HD void run_piece(const PieceArgs<N>& a, int64_t i0, const F& f) {
  constexpr int E = kPieceElems<T>;
  const int64_t at = i0 * static_cast<int64_t>(sizeof(T));
  Piece<T> buf[Loaded];
  FABRIC_PIECE_UNROLL
  for (int k = 1; k < Loaded; ++k) buf[k] = *reinterpret_cast<const Piece<T>*>(a.data[k] + at);
  FABRIC_PIECE_UNROLL
  for (int j = 0; j < E; ++j) {
    char* p[N];
    FABRIC_PIECE_UNROLL
    for (int k = 0; k < N; ++k) p[k] = k < Loaded ? reinterpret_cast<char*>(&buf[k].v[j]) : nullptr;
    f(p);
  }
  *reinterpret_cast<Piece<T>*>(a.data[0] + at) = buf[0];
}

// Element i alone (the elements after the last whole piece).
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <typename T, int N, int Loaded, typename F>
FABRIC_PIECE_HD void run_element(const PieceArgs<N>& a, int64_t i, const F& f) {
  const int64_t at = i * static_cast<int64_t>(sizeof(T));
  char* p[N];
  FABRIC_PIECE_UNROLL
  for (int k = 0; k < N; ++k) p[k] = k < Loaded ? a.data[k] + at : nullptr;
  f(p);
}

// What thread `t` of `threads` (the whole grid) does for a loop of n elements: the pieces
// t, t + threads, ..., then element t of the tail.
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <typename T, int N, int Loaded, typename F>
FABRIC_PIECE_HD void run_piece_thread(const PieceArgs<N>& a, int64_t n, int64_t t, int64_t threads,
                                      const F& f) {
  constexpr int64_t E = kPieceElems<T>;
  const int64_t pieces = n / E;
  for (int64_t q = t; q < pieces; q += threads) run_piece<T, N, Loaded>(a, q * E, f);
  for (int64_t r = t; r < n - pieces * E; r += threads)
    run_element<T, N, Loaded>(a, pieces * E + r, f);
}

// ---- mixed dtypes: a float32 output and inputs of float32, bf16 or f16 --------------------------
// (mixed precision's residual adds: a float32 stream plus a bf16 layer output.) A thread takes
// kMixedPieceElems consecutive elements of every operand, each operand's at once: 16 bytes of
// float32, 8 of bf16/f16, from addresses aligned to that size. Ts: operand k's element type.

inline constexpr int kMixedPieceElems = 4;

// Whether `loop` can run in mixed pieces: the wide paths on, a 1-D loop of three operands of the
// float32 family, each advancing by its itemsize from an address aligned to 4 of its elements.
bool fits_mixed_pieces(const StridedLoop& loop);

template <typename T>
struct alignas(sizeof(T) * kMixedPieceElems) MixedPiece {
  T v[kMixedPieceElems];
};

// Elements [i0, i0 + kMixedPieceElems) of every operand.
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <typename T0, typename T1, typename T2, typename F>
FABRIC_PIECE_HD void run_mixed_piece(const PieceArgs<3>& a, int64_t i0, const F& f) {
  MixedPiece<T0> out;
  const MixedPiece<T1> in1 =
      reinterpret_cast<const MixedPiece<T1>*>(a.data[1])[i0 / kMixedPieceElems];
  const MixedPiece<T2> in2 =
      reinterpret_cast<const MixedPiece<T2>*>(a.data[2])[i0 / kMixedPieceElems];
  FABRIC_PIECE_UNROLL
  for (int j = 0; j < kMixedPieceElems; ++j) {
    char* p[3] = {reinterpret_cast<char*>(&out.v[j]),
                  const_cast<char*>(reinterpret_cast<const char*>(&in1.v[j])),
                  const_cast<char*>(reinterpret_cast<const char*>(&in2.v[j]))};
    f(p);
  }
  reinterpret_cast<MixedPiece<T0>*>(a.data[0])[i0 / kMixedPieceElems] = out;
}

// Thread t of `threads` over a mixed loop of n elements: the pieces t, t + threads, ..., then
// element t of the tail, one at a time.
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <typename T0, typename T1, typename T2, typename F>
FABRIC_PIECE_HD void run_mixed_piece_thread(const PieceArgs<3>& a, int64_t n, int64_t t,
                                            int64_t threads, const F& f) {
  constexpr int64_t E = kMixedPieceElems;
  const int64_t pieces = n / E;
  for (int64_t q = t; q < pieces; q += threads) run_mixed_piece<T0, T1, T2>(a, q * E, f);
  for (int64_t r = t; r < n - pieces * E; r += threads) {
    const int64_t i = pieces * E + r;
    char* p[3] = {a.data[0] + i * static_cast<int64_t>(sizeof(T0)),
                  a.data[1] + i * static_cast<int64_t>(sizeof(T1)),
                  a.data[2] + i * static_cast<int64_t>(sizeof(T2))};
    f(p);
  }
}

}  // namespace fabric::cuda
