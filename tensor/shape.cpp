// Shape arithmetic shared by every op.
#include "tensor/shape.h"

#include "tensor/error.h"

namespace fabric {

namespace {
// Off the hot path: only reached once the product has overflowed.
[[noreturn, gnu::cold]] void throw_numel_overflow(const Shape& s) {
  throw ShapeError(detail::cat("shape ", shape_str(s),
                               " has too many elements: its element count overflows int64"));
}
[[noreturn, gnu::cold]] void throw_stride_overflow(const Shape& s) {
  throw ShapeError(
      detail::cat("shape ", shape_str(s), ": the contiguous stride calculation overflows int64"));
}
}  // namespace

int64_t numel_of(const Shape& s) {
  // One multiply per dim with the overflow flag folded in: numel() is called everywhere.
  int64_t n = 1;
  bool overflow = false;
  for (int64_t d : s) overflow |= __builtin_mul_overflow(n, d, &n);
  if (overflow) [[unlikely]] {
    for (int64_t d : s)
      if (d == 0) return 0;
    throw_numel_overflow(s);
  }
  return n;
}

Strides contiguous_strides(const Shape& s) {
  Strides st(s.size());
  int64_t acc = 1;
  bool overflow = false;
  for (size_t i = s.size(); i-- > 0;) {
    // Only a stride that is stored must fit: the product past the outermost dim is never used.
    // Zero dims count as 1 (as PyTorch), so (0, 2^40, 2^40) overflows here though it is empty.
    if (overflow) [[unlikely]]
      throw_stride_overflow(s);
    st[i] = acc;
    overflow = __builtin_mul_overflow(acc, std::max<int64_t>(s[i], 1), &acc);
  }
  return st;
}

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  if (s.size() == 1) out += ",";
  return out + ")";
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1) {
      throw ShapeError(detail::cat(op, ": shapes ", shape_str(a), " and ", shape_str(b),
                                   " cannot be broadcast (dim ", i, ": ", da, " vs ", db, ")"));
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

void throw_size_overflow(const char* op, int64_t a, char sign, int64_t b) {
  throw ShapeError(detail::cat(op, ": size ", a, " ", sign, " ", b, " overflows int64"));
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t n = std::max<int64_t>(ndim, 1);
  if (dim < -n || dim >= n) {
    throw IndexError(detail::cat(op, ": dim ", dim, " out of range for a tensor of ", ndim,
                                 " dims (expected in [", -n, ", ", n - 1, "])"));
  }
  return dim < 0 ? dim + n : dim;
}

}  // namespace fabric
