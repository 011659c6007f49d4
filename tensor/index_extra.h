// torch 1.13's take, repeat_interleave, diag_embed, searchsorted/bucketize, unique,
// unique_consecutive and nonzero(as_tuple=True), with torch's CPU semantics and errors. The
// differentiable ones (take, repeat_interleave, diag_embed) are compositions of recorded ops
// (index_select, index_copy), so their gradients, double backward and CUDA come from autograd;
// the searches and unique run host loops over contiguous host copies (a CUDA input is copied to
// the host and the result back), as torch has no gradient for them.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "tensor/scalar.h"
#include "tensor/tensor.h"

namespace fabric {

// torch.take: x read as if flattened (row-major) at the int64 `index`; the result has index's
// shape and x's dtype. Negative indices count from the end; an index outside [-numel, numel) is
// torch's IndexError ("out of range: tried to access index 6 on a tensor of 6 elements."), an
// empty x with a non-empty index is IndexError too, a non-int64 index DTypeError. Gradient:
// grad_out scattered (accumulated, repeated indices adding up) into the flattened x.
Tensor take(const Tensor& x, const Tensor& index);

// torch.repeat_interleave(x, repeats, dim, output_size): each slice of x along `dim` repeated
// repeats[i] times (x flattened when dim is unset). repeats: an int, or an int64/int32 tensor of
// 0 dims or 1 element (used for every slice) or x.size(dim) elements. Negative repeats:
// ValueError ("repeats can not be negative"); output_size, when given, must equal the total
// (ValueError, torch's "allocated size does not match required size"). Gradient: grad_out summed
// back over each slice's copies.
Tensor repeat_interleave(const Tensor& x, int64_t repeats,
                         std::optional<int64_t> dim = std::nullopt,
                         std::optional<int64_t> output_size = std::nullopt);
Tensor repeat_interleave(const Tensor& x, const Tensor& repeats,
                         std::optional<int64_t> dim = std::nullopt,
                         std::optional<int64_t> output_size = std::nullopt);
// torch.repeat_interleave(repeats): the index form, i repeated repeats[i] times, in repeats'
// dtype (int64 or int32; 1-D only). The sized variant is torch's output_size argument; it has its
// own name so that repeat_interleave(t, 3) cannot mean "output_size 3" and "repeats 3" at once.
Tensor repeat_interleave(const Tensor& repeats);
Tensor repeat_interleave_sized(const Tensor& repeats, int64_t output_size);

// torch.diag_embed: the last dim of x (size n) placed on diagonal `offset` of new (dim1, dim2)
// planes of size n + |offset| (dims wrapped against x.dim() + 1; equal dims: ValueError), zeros
// elsewhere. Gradient: the same diagonal of grad_out.
Tensor diag_embed(const Tensor& x, int64_t offset = 0, int64_t dim1 = -2, int64_t dim2 = -1);

// torch.searchsorted: for each value, the index at which it would be inserted into the sorted
// last dim of `sorted_sequence` (the first index whose element is >= the value; > the value for
// right / side "right"). A 1-D sequence serves every value; an N-D one needs values with the same
// leading N-1 dims (a 0-dim value only with a 1-D sequence). `sorter` (int64, the sequence's
// shape) sorts an unsorted sequence (argsort per row). Compared in the promoted dtype of the two;
// int64 result, int32 with out_int32. NaN as torch's binary search leaves it: every comparison
// with NaN is false, so a NaN value goes past every element (index = length) and a NaN in the
// sequence counts as larger than every value met on the way. side "left"/"right" with right set
// to the opposite, or another side, is ValueError; bool is DTypeError (torch has no kernel).
// A sorter entry outside [0, length) is IndexError (torch reads out of bounds there).
Tensor searchsorted(const Tensor& sorted_sequence, const Tensor& values, bool out_int32 = false,
                    bool right = false, std::optional<std::string_view> side = std::nullopt,
                    const Tensor& sorter = Tensor());
// A Python number as the value: a 0-dim result (torch's wrapped-number promotion).
Tensor searchsorted(const Tensor& sorted_sequence, const Scalar& value, bool out_int32 = false,
                    bool right = false, std::optional<std::string_view> side = std::nullopt,
                    const Tensor& sorter = Tensor());
// torch.bucketize: searchsorted(boundaries, x, out_int32, right) with 1-D boundaries only
// (ShapeError otherwise); the result has x's shape.
Tensor bucketize(const Tensor& x, const Tensor& boundaries, bool out_int32 = false,
                 bool right = false);

// torch.unique / unique_consecutive's results. inverse (int64) and counts (int64) are defined
// only when asked for. values keeps x's dtype; inverse has x's shape (dim unset) or (size(dim)).
struct UniqueResult {
  Tensor values, inverse, counts;
};
// torch.unique. dim unset: the distinct elements of the flattened x in ascending order; -0 and
// +0 are one value, kept as the sign of its first occurrence; every NaN is a value of its own
// (torch 1.13 CPU, whose hash set never finds a NaN equal to another). Those NaNs come last, each
// with count 1 and its own inverse entry: torch places them by hash order and gives them count 0
// and inverse 0, an artifact of its hash map this does not copy. sorted=false returns the sorted
// order too (torch's is the hash set's order, unspecified). dim set: whole slices along dim,
// ordered lexicographically by torch's comparator (elements compared with < and >, so NaN ties),
// slices merged when all elements are == (a slice with a NaN stays separate; -0 equals +0). A
// size-0 dim is allowed only when no other dim is 0 (else ValueError, as torch). float16 is
// DTypeError (torch 1.13 has no CPU kernel). No gradient (values are detached).
UniqueResult unique(const Tensor& x, bool sorted = true, bool return_inverse = false,
                    bool return_counts = false, std::optional<int64_t> dim = std::nullopt);
// torch.unique_consecutive: runs of equal consecutive elements (dim unset, flattened) or slices
// along dim collapsed to their first; NaN never equals anything, -0 equals +0.
UniqueResult unique_consecutive(const Tensor& x, bool return_inverse = false,
                                bool return_counts = false,
                                std::optional<int64_t> dim = std::nullopt);

// torch.nonzero(x, as_tuple=True): one int64 1-D tensor of coordinates per dim of x (a 0-dim x
// gives one tensor, as torch treats it as 1-D of one element).
std::vector<Tensor> nonzero_tuple(const Tensor& x);

}  // namespace fabric
