// flip, roll and repeat as torch, composed of recorded ops that each cost about one copy
// (index_select with a reversed arange, two narrows joined by cat, an expanded view made
// contiguous), so their gradients and double backward come from those ops' rules.
#include <algorithm>
#include <vector>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/shape.h"
#include "tensor/torch_names.h"

namespace fabric {
Tensor flip(const Tensor& x_in, std::vector<int64_t> dims) {
  Tensor x = x_in;
  apply_autocast(OpId::flip, {&x});
  FABRIC_CHECK(x.defined(), ValueError, "flip: undefined input");
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(x.dim(), 1)), false);
  for (int64_t& d : dims) {
    d = wrap_dim(d, std::max<int64_t>(x.dim(), 1), "flip");
    FABRIC_CHECK(!seen[d], ValueError, "flip: dim ", d, " appears more than once in dims ",
                 torch_int_list(dims), " (input ", shape_str(x.sizes()), ")");
    seen[d] = true;
  }
  Tensor out = x;
  bool copied = false;
  for (int64_t d : dims) {
    if (x.dim() == 0 || x.size(d) <= 1) continue;  // nothing to reverse
    const int64_t n = x.size(d);
    out = index_select(out, d, arange(n - 1, -1, -1, DType::int64, x.device()));
    copied = true;
  }
  return copied ? out : x.clone();  // always a new tensor, as torch
}

Tensor roll(const Tensor& x_in, std::vector<int64_t> shifts, std::vector<int64_t> dims) {
  Tensor x = x_in;
  apply_autocast(OpId::roll, {&x});
  FABRIC_CHECK(x.defined(), ValueError, "roll: undefined input");
  FABRIC_CHECK(!shifts.empty(), ValueError, "roll: shifts must not be empty (input ",
               shape_str(x.sizes()), ")");
  if (dims.empty()) {
    // torch: without dims, one shift rolls the flattened tensor, which keeps its shape.
    FABRIC_CHECK(shifts.size() == 1, ValueError,
                 "roll: without dims, expected exactly one shift, got ", torch_int_list(shifts));
    return roll(x.flatten(), shifts, {0}).reshape(x.sizes());
  }
  FABRIC_CHECK(shifts.size() == dims.size(), ValueError, "roll: shifts ", torch_int_list(shifts),
               " and dims ", torch_int_list(dims), " must have the same length");
  FABRIC_CHECK(x.dim() > 0, IndexError, "roll: dims ", torch_int_list(dims),
               " given for a 0-dim input (it has no dimensions)");
  Tensor out = x;
  bool copied = false;
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = wrap_dim(dims[i], x.dim(), "roll");
    const int64_t n = x.size(d);
    if (n == 0) continue;
    const int64_t s = ((shifts[i] % n) + n) % n;  // negative and large shifts wrap
    if (s == 0) continue;
    // The last s elements come first.
    out = cat({out.narrow(d, n - s, s), out.narrow(d, 0, n - s)}, d);
    copied = true;
  }
  return copied ? out : x.clone();
}

Tensor repeat(const Tensor& x_in, std::vector<int64_t> repeats) {
  Tensor x = x_in;
  apply_autocast(OpId::repeat, {&x});
  FABRIC_CHECK(x.defined(), ValueError, "repeat: undefined input");
  const int64_t nd = static_cast<int64_t>(repeats.size());
  FABRIC_CHECK(nd >= x.dim(), ShapeError, "repeat: repeats ", torch_int_list(repeats), " has ", nd,
               " entries, fewer than the input's ", x.dim(), " dims (input ", shape_str(x.sizes()),
               ")");
  for (int64_t r : repeats) {
    FABRIC_CHECK(r >= 0, ValueError, "repeat: repeats must be non-negative, got ",
                 torch_int_list(repeats));
  }
  // x as (1, s0, 1, s1, ...) with new leading dims of size 1, expanded to (r0, s0, r1, s1, ...),
  // then made contiguous and merged to (r0*s0, r1*s1, ...).
  Shape interleaved, expanded, result;
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t lead = nd - x.dim();
    const int64_t s = i < lead ? 1 : x.size(i - lead);
    interleaved.push_back(1);
    interleaved.push_back(s);
    expanded.push_back(repeats[i]);
    expanded.push_back(s);
    result.push_back(repeats[i] * s);
  }
  return x.reshape(interleaved).expand(expanded).contiguous().reshape(result);
}

}  // namespace fabric
