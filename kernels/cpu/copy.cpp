// CPU copy/convert and fill kernels over a StridedLoop (operand 0 is the destination).
#include <algorithm>
#include <cstring>

#include "kernels/cpu/convert.h"
#include "tensor/copy_kernels.h"

namespace fabric::cpu {
namespace {

template <typename D, typename S>
void copy_row(char* dst, int64_t ds, const char* src, int64_t ss, int64_t n, bool saturate) {
  for (int64_t i = 0; i < n; ++i) {
    S s;
    std::memcpy(&s, src + i * ss, sizeof(S));
    D d;
    if constexpr (std::is_same_v<D, Float8E4M3> || std::is_same_v<D, Float8E5M2>) {
      d = saturate ? D::saturating(scalar_cast<float>(s)) : scalar_cast<D>(s);
    } else {
      d = scalar_cast<D>(s);
    }
    std::memcpy(dst + i * ds, &d, sizeof(D));
  }
}

// One tile of a same-dtype transpose, h x w elements, through a buffer: the source is read along
// its contiguous dim and the destination written along its own, each in runs of whole cache lines.
// Walking the destination's rows alone read the source a line per element, and at power-of-two
// strides (2048 x 2048 float32) those lines all fell into one L1 set: 3.5x torch's time.
template <typename T>
void transpose_tile(char* dst, const int64_t* ds, const char* src, const int64_t* ss, int64_t h,
                    int64_t w) {
  constexpr int64_t item = sizeof(T);
  alignas(64) T buf[64 * 64];
  // ds/ss: byte strides along {tile dim, rows}. Either the source is contiguous along the tile
  // dim and the destination along the rows, or the other way round.
  if (ss[0] == item && ds[1] == item) {
    for (int64_t j = 0; j < w; ++j) {
      const T* col = reinterpret_cast<const T*>(src + j * ss[1]);
      for (int64_t i = 0; i < h; ++i) buf[i * w + j] = col[i];
    }
    for (int64_t i = 0; i < h; ++i) std::memcpy(dst + i * ds[0], buf + i * w, w * item);
  } else {  // ss[1] == item && ds[0] == item
    for (int64_t i = 0; i < h; ++i) {
      const T* row = reinterpret_cast<const T*>(src + i * ss[0]);
      for (int64_t j = 0; j < w; ++j) buf[j * h + i] = row[j];
    }
    for (int64_t j = 0; j < w; ++j) std::memcpy(dst + j * ds[1], buf + j * h, h * item);
  }
}

// A same-dtype copy whose two operands are contiguous along the two tiled dims: tiles of at most
// 64 x 64 through transpose_tile. False when the loop is not such a transpose.
bool copy_transposed(const StridedLoop& loop) {
  const int64_t item = itemsize(loop.ops[0].dtype);
  if (loop.ops[1].dtype != loop.ops[0].dtype || item > 8) return false;
  fabric::detail::LoopTiles t = fabric::detail::loop_tiles_for(loop);
  if (t.tile_dim < 0) return false;
  const int rd = loop.ndim - 1;
  const int64_t ds[2] = {loop.ops[0].strides[t.tile_dim], loop.ops[0].strides[rd]};
  const int64_t ss[2] = {loop.ops[1].strides[t.tile_dim], loop.ops[1].strides[rd]};
  if (!(ss[0] == item && ds[1] == item) && !(ss[1] == item && ds[0] == item)) return false;
  t.height = t.width = std::min<int64_t>(64, 256 / item);
  visit_dtype(loop.ops[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    fabric::detail::for_each_tile(loop, t, [&](char* const* o, int64_t h, int64_t w) {
      transpose_tile<T>(o[0], ds, o[1], ss, h, w);
    });
  });
  return true;
}

void copy_kernel(const StridedLoop& loop, bool saturate_fp8) {
  const DType dt = loop.ops[0].dtype, st = loop.ops[1].dtype;
  const int64_t di = itemsize(dt), si = itemsize(st);
  if (copy_transposed(loop)) return;
  // Converting copies between such operands walk in tiles too: see for_each_row.
  for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
    if (s[0] == di && s[1] == si) {
      if (dt == st) {
        std::memcpy(p[0], p[1], n * di);
      } else {
        convert(st, p[1], dt, p[0], n, saturate_fp8);
      }
      return;
    }
    visit_dtype(dt, [&](auto d) {
      visit_dtype(st, [&](auto sv) {
        copy_row<decltype(d), decltype(sv)>(p[0], s[0], p[1], s[1], n, saturate_fp8);
      });
    });
  });
}

void fill_kernel(const StridedLoop& loop, const Scalar& value) {
  visit_dtype(loop.ops[0].dtype, [&](auto tag) {
    using T = decltype(tag);
    const T v = value.is_floating() ? scalar_cast<T>(value.to_double()) : scalar_cast<T>(value.to_int());
    // All-zero bytes (zeros_like, gradient buffers; not -0.0) take memset: the element loop over
    // the 16-bit float classes does not vectorise.
    T zero{};
    std::memset(&zero, 0, sizeof(T));
    const bool zero_bytes = std::memcmp(&v, &zero, sizeof(T)) == 0;
    for_each_row(loop, [&](char* const* p, int64_t n, const int64_t* s) {
      if (zero_bytes && s[0] == static_cast<int64_t>(sizeof(T))) {
        std::memset(p[0], 0, size_t(n) * sizeof(T));
      } else if (s[0] == static_cast<int64_t>(sizeof(T))) {
        T* out = reinterpret_cast<T*>(p[0]);
        for (int64_t i = 0; i < n; ++i) out[i] = v;
      } else {
        for (int64_t i = 0; i < n; ++i) std::memcpy(p[0] + i * s[0], &v, sizeof(T));
      }
    });
  });
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(copy_stub, cpu, &cpu::copy_kernel);
FABRIC_REGISTER_KERNEL(fill_stub, cpu, &cpu::fill_kernel);
}  // namespace fabric
