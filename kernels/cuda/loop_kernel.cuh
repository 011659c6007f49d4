// The elementwise kernel driver: a grid-stride loop over a StridedLoop's flat index (64-bit),
// launched on the compute stream of the device that owns the output. Functors get one element's
// pointer per operand (see loop_args.cuh).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/loop_args.cuh"
#include "kernels/cuda/loop_grid.h"
#include "kernels/cuda/loop_pieces.h"
#include "kernels/cuda/stream.h"

namespace fabric::cuda {

template <int N, typename F>
__global__ void loop_kernel(int64_t n, LoopArgs<N> args, F f) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    char* p[N];
    args.pointers(i, p);
    f(p);
  }
}

inline constexpr int kLoopThreads = 256;

// Runs f(p) for every element of `loop`, p[k] pointing at operand k's element, on the compute
// stream of the device owning operand 0. Returns without waiting.
template <int N, typename F>
void launch_loop(const StridedLoop& loop, const F& f) {
  const int64_t n = loop.numel();
  if (n == 0) return;
  const int device = loop_device(loop);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  const LoopArgs<N> args = make_loop_args<N>(loop);
  const int64_t blocks = loop_blocks(device, n, kLoopThreads);  // a few waves (loop_grid.h)
  loop_kernel<N, F><<<static_cast<unsigned>(blocks), kLoopThreads, 0, stream>>>(n, args, f);
  FABRIC_CUDA_CHECK_LAUNCH();
}

template <typename T, int N, int Loaded, typename F>
__global__ void piece_kernel(int64_t n, PieceArgs<N> args, F f) {
  const int64_t threads = static_cast<int64_t>(blockDim.x) * gridDim.x;
  run_piece_thread<T, N, Loaded>(
      args, n, static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x, threads, f);
}

// launch_loop in 16-byte pieces (loop_pieces.h) when the loop fits them: every operand a
// contiguous, aligned array of T, or (the last of N) absent, held by the functor. f reads its
// inputs and writes operand 0 through the pointers it is given, as for launch_loop. Returns
// false, launching nothing, when the loop does not fit.
template <typename T, int N, typename F>
bool launch_pieces(const StridedLoop& loop, DType dt, const F& f) {
  const int loaded = loop.num_operands;
  if (!(loaded == N || (N > 2 && loaded == N - 1)) || !fits_pieces(loop, dt)) return false;
  const int64_t n = loop.numel();
  if (n == 0) return true;
  const int device = loop_device(loop);
  DeviceGuard guard(device);
  cudaStream_t stream = compute_stream(device);
  PieceArgs<N> args{};
  for (int k = 0; k < loaded; ++k) args.data[k] = loop.ops[k].data;
  const int64_t pieces = (n + kPieceElems<T> - 1) / kPieceElems<T>;
  const auto blocks = static_cast<unsigned>(loop_blocks(device, pieces, kLoopThreads));
  if (loaded == N) {
    piece_kernel<T, N, N, F><<<blocks, kLoopThreads, 0, stream>>>(n, args, f);
  } else if constexpr (N > 2) {
    piece_kernel<T, N, N - 1, F><<<blocks, kLoopThreads, 0, stream>>>(n, args, f);
  }
  FABRIC_CUDA_CHECK_LAUNCH();
  return true;
}

template <typename T0, typename T1, typename T2, typename F>
__global__ void mixed_piece_kernel(int64_t n, PieceArgs<3> args, F f) {
  const int64_t threads = static_cast<int64_t>(blockDim.x) * gridDim.x;
  run_mixed_piece_thread<T0, T1, T2>(
      args, n, static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x, threads, f);
}

// launch_loop<3> in mixed pieces (loop_pieces.h) when the loop fits them: three contiguous arrays
// of T0 (the output), T1 and T2 from aligned addresses. Returns false, launching nothing, when it
// does not fit.
template <typename T0, typename T1, typename T2, typename F>
bool launch_mixed_pieces(const StridedLoop& loop, const F& f) {
  if (!fits_mixed_pieces(loop)) return false;
  const int64_t n = loop.numel();
  if (n == 0) return true;
  const int device = loop_device(loop);
  DeviceGuard guard(device);
  PieceArgs<3> args{};
  for (int k = 0; k < 3; ++k) args.data[k] = loop.ops[k].data;
  const int64_t pieces = (n + kMixedPieceElems - 1) / kMixedPieceElems;
  const auto blocks = static_cast<unsigned>(loop_blocks(device, pieces, kLoopThreads));
  mixed_piece_kernel<T0, T1, T2, F>
      <<<blocks, kLoopThreads, 0, compute_stream(device)>>>(n, args, f);
  FABRIC_CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace fabric::cuda
