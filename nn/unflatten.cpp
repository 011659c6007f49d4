// Unflatten with torch's checks of the sizes (non-empty, at most one -1, multiplying to the dim).
#include "nn/unflatten.h"

#include <algorithm>

namespace fabric::nn {

Unflatten::Unflatten(const UnflattenOptions& options) : options_(options) {
  const auto& s = options.unflattened_size;
  FABRIC_CHECK(!s.empty(), ValueError, "Unflatten: unflattened_size must be non-empty");
  FABRIC_CHECK(std::count(s.begin(), s.end(), -1) <= 1, ValueError,
               "Unflatten: only one dimension can be inferred, got unflattened_size ",
               shape_str(s));
  FABRIC_CHECK(std::all_of(s.begin(), s.end(), [](int64_t v) { return v >= -1; }), ValueError,
               "Unflatten: unflattened_size must hold sizes >= 0 or one -1, got ", shape_str(s));
}

Tensor Unflatten::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "Unflatten: the input is undefined");
  FABRIC_CHECK(x.dim() > 0, IndexError, "Unflatten: dimension specified as ", options_.dim,
               " but the input has no dimensions (0-dim)");
  const int64_t dim = wrap_dim(options_.dim, x.dim(), "Unflatten");
  const int64_t size = x.size(dim);
  Shape sizes = options_.unflattened_size;
  int64_t known = 1;
  for (int64_t v : sizes)
    if (v != -1) known *= v;
  const auto inferred = std::find(sizes.begin(), sizes.end(), int64_t{-1});
  if (inferred != sizes.end() && known != 0 && size % known == 0) *inferred = size / known;
  FABRIC_CHECK(inferred == sizes.end() ? known == size : (known != 0 && size % known == 0),
               ShapeError, "unflatten: Provided sizes ", shape_str(options_.unflattened_size),
               " don't multiply up to the size of dim ", dim, " (", size,
               ") in the input tensor of shape ", shape_str(x.sizes()));
  Shape shape = x.sizes();
  shape.erase(shape.begin() + dim);
  shape.insert(shape.begin() + dim, sizes.begin(), sizes.end());
  return x.reshape(shape);
}

// torch prints the sizes as a tuple, a single one with its trailing comma: (5,).
std::string Unflatten::extra_repr() const {
  const auto& s = options_.unflattened_size;
  std::string sizes = shape_str(s);
  if (s.size() == 1) sizes = detail::cat("(", s[0], ",)");
  return detail::cat("dim=", options_.dim, ", unflattened_size=", sizes);
}

}  // namespace fabric::nn
