// The markers of functions that both the host compiler and nvcc compile: the arithmetic the CPU
// and CUDA kernels share so that they round alike (float_formats.h, norm_element.h,
// channel_norm_affine.h, upsample_math.h, ...) and index arithmetic the host tests check.
//   FABRIC_HD         __host__ __device__ under nvcc, nothing otherwise.
//   FABRIC_HD_INLINE  the same, forced inline on the device (a call per element there costs more
//                     than the arithmetic), plain inline on the host.
#pragma once

#if defined(__CUDACC__)
#define FABRIC_HD __host__ __device__
#define FABRIC_HD_INLINE __host__ __device__ __forceinline__
#else
#define FABRIC_HD
#define FABRIC_HD_INLINE inline
#endif
