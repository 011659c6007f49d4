// torch 1.13's dim moving, splitting and stacking functions that ops.h lacks: movedim/moveaxis,
// swapaxes/swapdims, tensor_split and hsplit/vsplit/dsplit (views of the input), hstack/vstack/
// row_stack/dstack/column_stack, atleast_1d/2d/3d and rot90. Each is a composition of recorded ops
// (permute, transpose, slice/split, reshape/unsqueeze, cat, flip), so autograd, autocast and CUDA
// tensors come with them, and the values, dtypes (cat's promotion), strides and storage offsets are
// torch's. Negative dims wrap; errors name the function and carry torch's message.
//
// A one-element braced list picks the integer overload, as in libtorch: tensor_split(x, {3}) is
// three sections; write tensor_split(x, std::vector<int64_t>{3}) for the index 3.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

// torch.movedim / moveaxis: x's dims `source` moved to positions `destination` (the others keep
// their order), a view (permute). The lists must have the same length and no repeated dim (after
// wrapping); a 0-dim tensor takes dims 0 and -1 and comes back as a view of itself.
Tensor movedim(const Tensor& x, int64_t source, int64_t destination);
Tensor movedim(const Tensor& x, const std::vector<int64_t>& source,
               const std::vector<int64_t>& destination);
Tensor moveaxis(const Tensor& x, int64_t source, int64_t destination);
Tensor moveaxis(const Tensor& x, const std::vector<int64_t>& source,
                const std::vector<int64_t>& destination);

// torch.swapaxes / swapdims: transpose(dim0, dim1), a view.
Tensor swapaxes(const Tensor& x, int64_t axis0, int64_t axis1);
Tensor swapdims(const Tensor& x, int64_t dim0, int64_t dim1);

// torch.tensor_split: views of x along `dim`. `sections` pieces (sections > 0): the first
// size % sections hold size / sections + 1 elements, the rest size / sections (pieces past the
// end are empty). `indices`: the pieces [0, i0), [i0, i1), ..., [ik, size), each bound clamped as
// a slice's is (negative ones count from the end; a piece whose end lies before its start is
// empty). Pieces that tile x are outputs of one autograd node (split's); others are slices.
// x must have at least one dim.
std::vector<Tensor> tensor_split(const Tensor& x, int64_t sections, int64_t dim = 0);
std::vector<Tensor> tensor_split(const Tensor& x, const std::vector<int64_t>& indices,
                                 int64_t dim = 0);

// torch.hsplit / vsplit / dsplit: tensor_split along dim 1 (dim 0 for a 1-D x), 0 and 2. x needs
// at least 1, 2 and 3 dims; `sections` must divide that dim's size.
std::vector<Tensor> hsplit(const Tensor& x, int64_t sections);
std::vector<Tensor> hsplit(const Tensor& x, const std::vector<int64_t>& indices);
std::vector<Tensor> vsplit(const Tensor& x, int64_t sections);
std::vector<Tensor> vsplit(const Tensor& x, const std::vector<int64_t>& indices);
std::vector<Tensor> dsplit(const Tensor& x, int64_t sections);
std::vector<Tensor> dsplit(const Tensor& x, const std::vector<int64_t>& indices);

// torch.atleast_1d / 2d / 3d: x itself when it has enough dims, else a view with size-1 dims
// added as torch adds them (0-d -> (1), (1, 1), (1, 1, 1); 1-D (n) -> (1, n) and (1, n, 1); 2-D
// (m, n) -> (m, n, 1)). The list forms apply it to each tensor.
Tensor atleast_1d(const Tensor& x);
Tensor atleast_2d(const Tensor& x);
Tensor atleast_3d(const Tensor& x);
std::vector<Tensor> atleast_1d(const std::vector<Tensor>& tensors);
std::vector<Tensor> atleast_2d(const std::vector<Tensor>& tensors);
std::vector<Tensor> atleast_3d(const std::vector<Tensor>& tensors);

// torch.hstack (cat of atleast_1d's along dim 0 when they are 1-D, else dim 1), vstack / row_stack
// (atleast_2d's along dim 0), dstack (atleast_3d's along dim 2) and column_stack (0-d and 1-D
// tensors as columns (n, 1), then hstack). The dtype is cat's promotion of the inputs'; the list
// must not be empty.
Tensor hstack(const std::vector<Tensor>& tensors);
Tensor vstack(const std::vector<Tensor>& tensors);
Tensor row_stack(const std::vector<Tensor>& tensors);
Tensor dstack(const std::vector<Tensor>& tensors);
Tensor column_stack(const std::vector<Tensor>& tensors);

// torch.rot90: x rotated k quarter turns in the plane of dims {dims[0], dims[1]}, from the first
// towards the second (k may be negative; k % 4 == 0 gives a contiguous copy). Two distinct dims of
// an x with at least 2 dims. A copy (flip), transposed for odd k as torch's (its strides too).
Tensor rot90(const Tensor& x, int64_t k = 1, const std::vector<int64_t>& dims = {0, 1});

}  // namespace fabric
