// pad (torch.nn.functional.pad, torch 1.13's checks) as compositions of recorded ops, so its
// gradient and double backward come from theirs: "constant" crops negative pads with slices and
// concatenates value-filled blocks; "reflect", "replicate" and "circular" index_select each padded
// dimension with source indices computed here (one gather per dimension: no new kernels, and the
// gradient is index_select's scatter-add).
#include <algorithm>
#include <string>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/torch_names.h"

namespace fabric {
namespace {

// pad = (last dim's left, right, the dim before's left, right, ...): dimension i of the pairs.
int64_t padded_dim(const Tensor& x, size_t pair) {
  return x.dim() - 1 - static_cast<int64_t>(pair);
}

Tensor constant_pad(Tensor x, const std::vector<int64_t>& pad, double value) {
  const size_t pairs = pad.size() / 2;
  // torch's constant_pad_nd crops each negative side in turn (left, then right), each crop within
  // what is left, and with any positive pad every padded dim must stay above 0.
  const bool grows = std::any_of(pad.begin(), pad.end(), [](int64_t p) { return p > 0; });
  for (size_t i = 0; i < pairs; ++i) {
    const int64_t d = padded_dim(x, i), in = x.size(d), l = pad[2 * i], r = pad[2 * i + 1];
    FABRIC_CHECK(in + l + r > 0 || (!grows && in + l + r == 0), ShapeError, "pad: The input size ",
                 in, ", plus negative padding ", l, " and ", r,
                 " resulted in a negative output size, which is invalid. Check dimension ", d,
                 " of your input ", shape_str(x.sizes()), ".");
    const int64_t after_left = in + std::min<int64_t>(l, 0);
    FABRIC_CHECK(after_left >= 0 && after_left + std::min<int64_t>(r, 0) >= 0, ShapeError,
                 "pad: the negative padding (", l, ", ", r, ") crops more than dimension ", d,
                 " of your input ", shape_str(x.sizes()), " holds (", in, ")");
  }
  bool copied = false;
  for (size_t i = 0; i < pairs; ++i) {
    const int64_t d = padded_dim(x, i), l = pad[2 * i], r = pad[2 * i + 1];
    if (l < 0 || r < 0) {
      const int64_t start = std::max<int64_t>(-l, 0);
      const int64_t end = std::max(start, x.size(d) - std::max<int64_t>(-r, 0));
      x = x.slice(d, start, end);
    }
    if (l <= 0 && r <= 0) continue;
    auto block = [&](int64_t n) {
      Shape s = x.sizes();
      s[d] = n;
      return full(s, value, {.dtype = x.dtype(), .device = x.device()});
    };
    std::vector<Tensor> parts;
    if (l > 0) parts.push_back(block(l));
    parts.push_back(x);
    if (r > 0) parts.push_back(block(r));
    x = cat(parts, d);
    copied = true;
  }
  // As torch, the result never aliases the input (crop-only and zero pads copy too).
  return copied ? x : x.clone();
}

// Source index of output j along a dimension of `in` elements padded by (l, r): reflect mirrors
// about the edge elements (not repeating them), replicate repeats them, circular wraps around the
// input left after the negative pads' crop (torch's _pad_circular crops first, then copies the
// cropped input's ends around it).
int64_t source_index(int64_t j, int64_t in, int64_t l, int64_t r, std::string_view mode) {
  const int64_t s = j - l;
  if (mode == "reflect") return s < 0 ? -s : (s >= in ? 2 * (in - 1) - s : s);
  if (mode == "replicate") return std::clamp<int64_t>(s, 0, in - 1);
  const int64_t first = std::max<int64_t>(-l, 0);
  const int64_t kept = in - first - std::max<int64_t>(-r, 0);
  const int64_t k = (j - std::max<int64_t>(l, 0)) % kept;
  return first + (k < 0 ? k + kept : k);
}

// torch's _pad_circular checks: it pads the spatial dims of an (N, C, ...) input only.
void check_circular(const Tensor& x, const std::vector<int64_t>& pad) {
  const size_t pairs = pad.size() / 2;
  FABRIC_CHECK(x.dim() == static_cast<int64_t>(pairs) + 2, ShapeError,
               "pad: Invalid padding size, expected ", 2 * (x.dim() - 2), " but got ", pad.size(),
               " (circular pads the last dims of an (N, C, ...) input ", shape_str(x.sizes()),
               ", all but N and C)");
  for (size_t i = 0; i < pairs; ++i) {
    const int64_t d = padded_dim(x, i), in = x.size(d), l = pad[2 * i], r = pad[2 * i + 1];
    FABRIC_CHECK(l <= in && r <= in, ValueError,
                 "pad: Padding value causes wrapping around more than once. (padding (", l, ", ", r,
                 ") at dimension ", d, " of input ", shape_str(x.sizes()),
                 " must be at most its size ", in, ")");
    FABRIC_CHECK(in + l + r >= 0, ShapeError,
                 "pad: Negative padding value is resulting in an empty dimension (padding (", l,
                 ", ", r, ") at dimension ", d, " of input ", shape_str(x.sizes()), ")");
    // torch reads memory it has not written when the crop leaves nothing to wrap around.
    const int64_t kept = in - std::max<int64_t>(-l, 0) - std::max<int64_t>(-r, 0);
    FABRIC_CHECK(in + l + r == 0 || (kept > 0 && std::max(l, r) <= kept), ValueError,
                 "pad: circular padding (", l, ", ", r, ") at dimension ", d, " of input ",
                 shape_str(x.sizes()), " wraps around the ", kept,
                 " elements left after the negative pads' crop more than once");
  }
}

Tensor index_pad(const Tensor& x, std::string_view mode, const std::vector<int64_t>& pad) {
  const bool reflect = mode == "reflect";
  const size_t pairs = pad.size() / 2;
  const bool batched = x.dim() == static_cast<int64_t>(pairs) + 2;
  if (mode == "circular") {
    check_circular(x, pad);
  } else {
    for (int64_t i = batched ? 1 : 0; i < x.dim(); ++i)
      FABRIC_CHECK(x.size(i) > 0, ShapeError, "pad: Expected ", pairs + 1, "D or ", pairs + 2,
                   "D (batch mode) tensor with possibly 0 batch size and other non-zero "
                   "dimensions for input, but got: ",
                   torch_int_list(x.sizes()));
  }
  const char* names[] = {"W", "H", "D"};
  for (size_t i = 0; i < pairs && mode != "circular"; ++i) {
    const int64_t d = padded_dim(x, i), in = x.size(d), l = pad[2 * i], r = pad[2 * i + 1];
    FABRIC_CHECK(!reflect || (l < in && r < in), ValueError,
                 "pad: Padding size should be less than the corresponding input dimension, but "
                 "got: padding (",
                 l, ", ", r, ") at dimension ", d, " of input ", shape_str(x.sizes()),
                 " (reflect mirrors inside the input)");
    // torch's 3-d pads allow an empty output dimension, its 1-d and 2-d ones do not.
    const int64_t least = pairs == 3 ? 0 : 1;
    FABRIC_CHECK(in + l + r >= least, ShapeError, "pad: input (", names[i], ": ", in,
                 ") is too small. Calculated output ", names[i], ": ", in + l + r);
  }
  Tensor y = x;
  for (size_t i = 0; i < pairs; ++i) {
    const int64_t d = padded_dim(x, i), in = x.size(d), l = pad[2 * i], r = pad[2 * i + 1];
    std::vector<int64_t> idx(static_cast<size_t>(in + l + r));
    for (int64_t j = 0; j < in + l + r; ++j) idx[j] = source_index(j, in, l, r, mode);
    const Tensor index =
        from_vector(idx, {static_cast<int64_t>(idx.size())}, {.dtype = DType::int64})
            .to(x.device());
    y = index_select(y, d, index);
  }
  return y;
}

}  // namespace

Tensor pad(const Tensor& x_in, std::vector<int64_t> pad, std::string_view mode, double value) {
  FABRIC_CHECK(x_in.defined(), ValueError, "pad: undefined input");
  FABRIC_CHECK(pad.size() % 2 == 0, ValueError, "pad: Padding length must be divisible by 2, got ",
               pad.size(), " values ", shape_str(pad));
  FABRIC_CHECK(static_cast<int64_t>(pad.size() / 2) <= x_in.dim(), ValueError,
               "pad: Padding length too large: ", pad.size(), " values pad ", pad.size() / 2,
               " dimensions of a ", x_in.dim(), "-D input ", shape_str(x_in.sizes()));
  Tensor x = x_in;
  if (mode == "constant") {
    apply_autocast(OpId::pad, {&x});
    return constant_pad(x, pad, value);
  }
  FABRIC_CHECK(mode == "reflect" || mode == "replicate" || mode == "circular", NotImplementedError,
               "pad: Unrecognised padding mode ", mode,
               " (expected constant, reflect, replicate or circular)");
  FABRIC_CHECK(value == 0, ValueError, "pad: Padding mode \"", mode,
               "\" doesn't take in value argument (got value ", value, ")");
  const int64_t pairs = static_cast<int64_t>(pad.size() / 2);
  const int64_t nd = x.dim();
  FABRIC_CHECK(pairs >= 1 && pairs <= 3 && (nd == pairs + 1 || nd == pairs + 2),
               NotImplementedError,
               "pad: Only 2D, 3D, 4D, 5D padding with non-constant padding are supported for now; "
               "got ",
               pad.size(), " pad values for a ", nd, "-D input ", shape_str(x.sizes()),
               " (expected 2 values for a 2-D/3-D input, 4 for a 3-D/4-D one, 6 for a 4-D/5-D "
               "one)");
  // Circular pad is torch's _pad_circular, a composition of copies on no autocast list; the CPU
  // float32 list names reflection_pad1d/2d and replication_pad1d/2d/3d, not reflection_pad3d.
  if (mode == "replicate" || (mode == "reflect" && pairs < 3))
    apply_autocast(mode == "reflect" ? OpId::reflection_pad : OpId::replication_pad, {&x});
  return index_pad(x, mode, pad);
}

}  // namespace fabric
