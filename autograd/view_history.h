// Views under autograd, with PyTorch's rules: the base a view's history follows, a view's history
// rebuilt after its storage was written through another alias, and the checks and history of an
// in-place write into a view (the base takes CopySlices, the view AsStridedBackward0).
#pragma once
#include "tensor/op_record.h"
#include "tensor/tensor.h"

namespace fabric {

// The base whose history a view's follows; undefined for a tensor that is no such view (not a
// view, a detach()ed tensor, a view whose base got other data through set_data).
Tensor differentiable_base(const Tensor& t);

// Called before a tensor's history is read. When t is a view whose storage was written since its
// history was set (through its base or another view of it), the history becomes
// AsStridedBackward0 of the base's current one, so that t's gradient sees the write.
void sync_view_history(const Tensor& t);

// Called for every op handed to the recorder, also in no-grad mode: marks the views among its
// outputs made in no-grad mode, or from such a view (see AutogradMeta::view_made_without_grad).
void note_view_outputs(const OpRecord& rec);

// An in-place write into a view, in grad mode, that autograd must see: check_inplace_view() runs
// before the op computes (PyTorch's errors for a view made in no-grad mode and for a view of a
// leaf that requires grad; brings the view's history up to date), rebase_view() after it wrote
// `result` into the view (result's history becomes the base's through CopySlices).
void check_inplace_view(const char* op, const Tensor& view);
void rebase_view(const Tensor& view, const Tensor& result);

}  // namespace fabric
