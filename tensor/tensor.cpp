// Tensor metadata, data access, views and copies. Views share storage and are recorded for
// autograd like any op; copies go through the copy kernels of the tensor's device.
#include "tensor/tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>
#include <utility>

#include "tensor/copy_kernels.h"
#include "tensor/elementwise_operands.h"
#include "tensor/factory.h"
#include "tensor/inplace_graph.h"
#include "tensor/memory_overlap.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/promotion.h"
#include "tensor/storage_view.h"
#include "tensor/strided_loop.h"

namespace fabric {
namespace {

// Resolves a single -1 in a requested shape against numel; throws naming `op`.
Shape infer_shape(const Shape& requested, int64_t numel, const Shape& from, const char* op) {
  Shape out = requested;
  int64_t known = 1;
  int infer = -1;
  bool overflow = false, has_zero = false;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      FABRIC_CHECK(infer < 0, ShapeError, op, ": only one dimension can be -1 in ", shape_str(requested));
      infer = static_cast<int>(i);
    } else {
      FABRIC_CHECK(out[i] >= 0, ShapeError, op, ": invalid size ", out[i], " in ", shape_str(requested));
      has_zero |= out[i] == 0;
      overflow |= __builtin_mul_overflow(known, out[i], &known);
    }
  }
  // A product past int64 can match no tensor's numel (a wrapped one could), unless a 0 makes it 0.
  if (overflow) {
    FABRIC_CHECK(has_zero, ShapeError, op, ": shape ", shape_str(requested),
                 " is invalid for input of shape ", shape_str(from), " (", numel,
                 " elements): its element count overflows int64");
    known = 0;
  }
  if (infer >= 0) {
    FABRIC_CHECK(known != 0 && numel % known == 0, ShapeError, op, ": shape ", shape_str(requested),
                 " is invalid for input of shape ", shape_str(from), " (", numel, " elements)");
    out[infer] = numel / known;
  } else {
    FABRIC_CHECK(known == numel, ShapeError, op, ": shape ", shape_str(requested), " is invalid for input of shape ",
                 shape_str(from), " (", numel, " elements)");
  }
  return out;
}

// Strides for viewing (sizes, strides) as new_sizes without a copy, or nullopt when the memory
// layout does not allow it (PyTorch's computeStride: merge runs of dims that are contiguous
// with each other, then split them into the new dims).
std::optional<Strides> view_strides(const Shape& sizes, const Strides& strides, const Shape& new_sizes) {
  Strides out(new_sizes.size());
  if (sizes.empty()) {
    std::fill(out.begin(), out.end(), 1);
    return out;
  }
  if (numel_of(sizes) == 0) return contiguous_strides(new_sizes);
  int64_t view_d = static_cast<int64_t>(new_sizes.size()) - 1;
  int64_t chunk_base_stride = strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(sizes.size()) - 1; d >= 0; --d) {
    tensor_numel *= sizes[d];
    if (d == 0 || (sizes[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_sizes[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_sizes[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

}  // namespace

Tensor Tensor::from_storage(Storage storage, DType dtype, Shape sizes, Strides strides, int64_t offset) {
  FABRIC_CHECK(sizes.size() == strides.size(), ShapeError, "from_storage: ", sizes.size(), " sizes but ",
               strides.size(), " strides");
  int64_t max_index = offset;
  bool empty = false, overflow = false;
  for (size_t i = 0; i < sizes.size(); ++i) {
    FABRIC_CHECK(sizes[i] >= 0 && strides[i] >= 0, ShapeError, "from_storage: negative size or stride in ",
                 shape_str(sizes));
    if (sizes[i] == 0) empty = true;
    // Overflow-checked: a wrapped extent would pass the storage-size check below.
    int64_t span;
    overflow |= __builtin_mul_overflow(sizes[i] - 1, strides[i], &span);
    overflow |= __builtin_add_overflow(max_index, span, &max_index);
  }
  FABRIC_CHECK(offset >= 0, ShapeError, "from_storage: negative offset ", offset);
  if (!empty) {
    int64_t need;
    overflow |= __builtin_add_overflow(max_index, 1, &need);
    overflow |= __builtin_mul_overflow(need, itemsize(dtype), &need);
    FABRIC_CHECK(!overflow, ShapeError, "from_storage: a ", dtype_name(dtype), " view of shape ",
                 shape_str(sizes), " with strides ", shape_str(strides), " at offset ", offset,
                 " reaches past what int64 can address (its byte extent overflows)");
    FABRIC_CHECK(need <= static_cast<int64_t>(storage->nbytes()), ShapeError, "from_storage: a ",
                 dtype_name(dtype), " view of shape ", shape_str(sizes), " at offset ", offset,
                 " needs ", need, " bytes but the storage has ", storage->nbytes());
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->dtype = dtype;
  impl->sizes = std::move(sizes);
  impl->strides = std::move(strides);
  impl->offset = offset;
  return Tensor(std::move(impl));
}

// A 0-dim tensor has no dims to ask about (wrap_dim lets 0 and -1 through for the ops that treat a
// scalar as one element; here they would read past an empty vector): torch's IndexError.
int64_t Tensor::size(int64_t d) const {
  FABRIC_CHECK(dim() > 0, IndexError, "size: dimension specified as ", d,
               " but the tensor has no dimensions (0-dim)");
  return sizes()[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  FABRIC_CHECK(dim() > 0, IndexError, "stride: dimension specified as ", d,
               " but the tensor has no dimensions (0-dim)");
  return strides()[wrap_dim(d, dim(), "stride")];
}

bool Tensor::is_contiguous() const {
  const auto& s = sizes();
  const auto& st = strides();
  int64_t expected = 1;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == 1) continue;
    if (s[i] == 0) return true;
    if (st[i] != expected) return false;
    expected *= s[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  const auto& t = checked();
  FABRIC_CHECK(!t.storage->is_released(), ValueError, "a tensor of shape ", shape_str(t.sizes),
               " was used while its storage is released: it is a sharded (FSDP / ZeRO-3) parameter outside "
               "its module's forward or backward. Call modules as module(x), not module.forward(x), so "
               "that the strategy's hooks gather the parameters");
  return static_cast<char*>(t.storage->data()) + t.offset * itemsize(t.dtype);
}

Tensor& Tensor::set_requires_grad(bool r) {
  if (r) {
    FABRIC_CHECK(is_floating(dtype()), DTypeError, "only floating-point tensors can require gradients, not ",
                 dtype_name(dtype()));
  }
  // As in PyTorch: a non-leaf requires grad because its producer does; turning that off would cut
  // it from its graph behind autograd's back (turning it on is a no-op).
  const AutogradMetaBase* meta = impl_->autograd.get();
  FABRIC_CHECK(r || meta == nullptr || meta->is_leaf(), Error,
               "set_requires_grad(false): you can only change requires_grad flags of leaf "
               "variables, and this ", dtype_name(dtype()), " tensor of shape ", shape_str(sizes()),
               " was computed by an op that requires grad. If you want to use a computed "
               "variable in a subgraph that doesn't require differentiation use var_no_grad = "
               "var.detach()");
  impl_->requires_grad = r;
  return *this;
}

Tensor Tensor::grad() const {
  const auto& t = checked();
  return t.autograd ? t.autograd->grad() : Tensor();
}

void Tensor::backward(const Tensor& gradient, std::optional<bool> retain_graph,
                      bool create_graph) const {
  BackwardEntry entry = backward_entry();
  FABRIC_CHECK(entry != nullptr, Error, "backward: the autograd engine is not linked");
  entry(*this, gradient, retain_graph, create_graph);
}

// ---- views ------------------------------------------------------------------------------------

namespace {
// The view op once its sizes (no -1 left) and strides are worked out: reshape has them already
// and would otherwise work them out twice.
Tensor record_view(const Tensor& self, Shape new_sizes, Strides strides, const char* node_name) {
  Tensor out = make_view(self, std::move(new_sizes), std::move(strides), self.storage_offset());
  ShapeAttrs attrs{self.sizes()};
  record_op(OpId::view, {self}, {&out}, &attrs, node_name);
  return out;
}

// view() and transpose() under the name PyTorch gives their node when another method stands
// behind them (unsqueeze -> UnsqueezeBackward0, t() -> TBackward0); null keeps the op's own.
Tensor view_named(const Tensor& self, const Shape& shape, const char* node_name) {
  Shape new_sizes = infer_shape(shape, self.numel(), self.sizes(), "view");
  auto st = view_strides(self.sizes(), self.strides(), new_sizes);
  FABRIC_CHECK(st.has_value(), ShapeError, "view: cannot view a tensor of shape ",
               shape_str(self.sizes()), " with strides ", shape_str(self.strides()), " as ",
               shape_str(new_sizes), " without a copy; call reshape() or contiguous() first");
  return record_view(self, std::move(new_sizes), std::move(*st), node_name);
}

Tensor transpose_named(const Tensor& self, int64_t d0, int64_t d1, const char* node_name) {
  d0 = wrap_dim(d0, self.dim(), "transpose");
  d1 = wrap_dim(d1, self.dim(), "transpose");
  if (self.dim() == 0) return self;
  Shape s = self.sizes();
  Strides st = self.strides();
  std::swap(s[d0], s[d1]);
  std::swap(st[d0], st[d1]);
  Tensor out = make_view(self, std::move(s), std::move(st), self.storage_offset());
  TransposeAttrs attrs{d0, d1};
  record_op(OpId::transpose, {self}, {&out}, &attrs, node_name);
  return out;
}
}  // namespace

Tensor Tensor::view(const Shape& shape) const { return view_named(*this, shape, nullptr); }

// torch 1.13 names reshape's node ReshapeAliasBackward0 when it is a view and UnsafeViewBackward0
// when it had to copy first.
Tensor Tensor::reshape(const Shape& shape) const {
  Shape new_sizes = infer_shape(shape, numel(), sizes(), "reshape");
  if (auto st = view_strides(sizes(), strides(), new_sizes))
    return record_view(*this, std::move(new_sizes), std::move(*st), "ReshapeAliasBackward0");
  Tensor out = view_named(contiguous(), new_sizes, "UnsafeViewBackward0");
  // PyTorch's _unsafe_view: nothing else sees the copy, so the result is no view (an in-place
  // write into it is an ordinary one).
  out.impl()->is_view = false;
  out.impl()->view_base = nullptr;
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  return transpose_named(*this, d0, d1, nullptr);
}

Tensor Tensor::t() const {
  FABRIC_CHECK(dim() <= 2, ShapeError, "t: expects a tensor with <= 2 dims, got ", shape_str(sizes()));
  return dim() < 2 ? *this : transpose_named(*this, 0, 1, "TBackward0");
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  const int64_t n = dim();
  FABRIC_CHECK(static_cast<int64_t>(dims.size()) == n, ShapeError, "permute: got ", dims.size(),
               " dims for a tensor of shape ", shape_str(sizes()));
  std::vector<int64_t> wrapped(n);
  std::vector<bool> seen(n, false);
  Shape s(n);
  Strides st(n);
  for (int64_t i = 0; i < n; ++i) {
    int64_t d = wrap_dim(dims[i], n, "permute");
    FABRIC_CHECK(!seen[d], ShapeError, "permute: dim ", d, " repeated in the permutation");
    seen[d] = true;
    wrapped[i] = d;
    s[i] = sizes()[d];
    st[i] = strides()[d];
  }
  Tensor out = make_view(*this, std::move(s), std::move(st), storage_offset());
  PermuteAttrs attrs{wrapped};
  record_op(OpId::permute, {*this}, {&out}, &attrs);
  return out;
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  FABRIC_CHECK(dim() > 0, IndexError, "slice: cannot slice a 0-dim tensor");
  d = wrap_dim(d, dim(), "slice");
  FABRIC_CHECK(step > 0, ValueError, "slice: step must be positive, got ", step);
  const int64_t n = sizes()[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = sizes();
  Strides st = strides();
  // Not (end - start + step - 1) / step: that wraps for a step near INT64_MAX.
  s[d] = end == start ? 0 : (end - start - 1) / step + 1;
  // stride * step can only overflow when the slice keeps at most one element (a larger step
  // would reach past the dim); that element is never stepped over, so its stride stays.
  int64_t stepped;
  if (!__builtin_mul_overflow(st[d], step, &stepped))
    st[d] = stepped;
  else if (s[d] > 1)
    throw_size_overflow("slice", st[d], '*', step);
  Tensor out =
      make_view(*this, std::move(s), std::move(st), storage_offset() + start * strides()[d]);
  SliceAttrs attrs{sizes(), d, start, end, step};
  record_op(OpId::slice, {*this}, {&out}, &attrs);
  return out;
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  FABRIC_CHECK(dim() > 0, IndexError, "narrow: cannot narrow a 0-dim tensor");
  d = wrap_dim(d, dim(), "narrow");
  const int64_t n = sizes()[d];
  // As PyTorch, in this order; the last check is `length <= n - start`, not `start + length <= n`,
  // which wraps for a start or length near INT64_MAX.
  FABRIC_CHECK(length >= 0, IndexError, "narrow: length must be non-negative, got ", length);
  FABRIC_CHECK(start >= -n && start <= n, IndexError,
               "narrow: start out of range (expected to be in range of [", -n, ", ", n,
               "], but got ", start, ") for dim ", d, " of shape ", shape_str(sizes()));
  if (start < 0) start += n;
  FABRIC_CHECK(length <= n - start, IndexError, "narrow: start (", start, ") + length (", length,
               ") exceeds dimension size (", n, ") of dim ", d, " (shape ", shape_str(sizes()),
               ")");
  return slice(d, start, start + length);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  FABRIC_CHECK(dim() > 0, IndexError, "select: cannot index a 0-dim tensor");
  d = wrap_dim(d, dim(), "select");
  const int64_t n = sizes()[d];
  FABRIC_CHECK(index >= -n && index < n, IndexError, "select: index ", index, " out of range for dim ", d,
               " of size ", n, " (shape ", shape_str(sizes()), ")");
  if (index < 0) index += n;
  Shape s = sizes();
  Strides st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  Tensor out =
      make_view(*this, std::move(s), std::move(st), storage_offset() + index * strides()[d]);
  SelectAttrs attrs{sizes(), d, index};
  record_op(OpId::select, {*this}, {&out}, &attrs);
  return out;
}

Tensor Tensor::expand(const Shape& shape) const {
  const int64_t n = static_cast<int64_t>(shape.size());
  FABRIC_CHECK(n >= dim(), ShapeError, "expand: target ", shape_str(shape), " has fewer dims than ",
               shape_str(sizes()));
  Shape s(n);
  Strides st(n);
  const int64_t lead = n - dim();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t src = i - lead;
    const int64_t have = src >= 0 ? sizes()[src] : 1;
    const int64_t want = shape[i] == -1 ? have : shape[i];
    FABRIC_CHECK(src >= 0 || shape[i] != -1, ShapeError, "expand: -1 not allowed for new leading dim ", i);
    if (src >= 0 && have == want) {
      s[i] = have;
      st[i] = strides()[src];
    } else {
      FABRIC_CHECK(have == 1 && want >= 0, ShapeError, "expand: cannot expand ", shape_str(sizes()), " to ",
                   shape_str(shape), " (dim ", i, ": ", have, " vs ", want, ")");
      s[i] = want;
      st[i] = 0;
    }
  }
  // A stride-0 view allocates nothing, so nothing else would notice that its element count
  // overflows (PyTorch refuses such a view too).
  int64_t count = 1;
  bool overflow = false;
  for (int64_t v : s) overflow |= __builtin_mul_overflow(count, v, &count);
  FABRIC_CHECK(!overflow || std::find(s.begin(), s.end(), 0) != s.end(), ShapeError,
               "expand: cannot expand ", shape_str(sizes()), " to ", shape_str(shape),
               ": its element count overflows int64");
  Tensor out = make_view(*this, std::move(s), std::move(st), storage_offset());
  ShapeAttrs attrs{sizes()};
  record_op(OpId::expand, {*this}, {&out}, &attrs);
  return out;
}

Tensor Tensor::squeeze() const {
  Shape s;
  for (int64_t v : sizes())
    if (v != 1) s.push_back(v);
  return s.size() == sizes().size() ? *this : view_named(*this, s, "SqueezeBackward0");
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");  // a 0-dim tensor takes dims -1 and 0, as in PyTorch
  if (dim() == 0) return *this;
  if (sizes()[d] != 1) return *this;
  Shape s = sizes();
  s.erase(s.begin() + d);
  return view_named(*this, s, "SqueezeBackward1");
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = sizes();
  s.insert(s.begin() + d, 1);
  // Inserting a size-1 dim is always a valid view: give it the stride its neighbour implies.
  return view_named(*this, s, "UnsqueezeBackward0");
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  // Wrapped first: a 0-dim tensor takes dims -1 and 0 (as one dim of size 1), as in PyTorch.
  start_dim = wrap_dim(start_dim, dim(), "flatten");
  end_dim = wrap_dim(end_dim, dim(), "flatten");
  if (dim() == 0) return reshape({1});
  FABRIC_CHECK(start_dim <= end_dim, ShapeError, "flatten: start_dim ", start_dim, " > end_dim ", end_dim);
  Shape s(sizes().begin(), sizes().begin() + start_dim);
  int64_t m = 1;
  for (int64_t i = start_dim; i <= end_dim; ++i) m *= sizes()[i];
  s.push_back(m);
  s.insert(s.end(), sizes().begin() + end_dim + 1, sizes().end());
  return reshape(s);
}

// ---- copies -----------------------------------------------------------------------------------

namespace {

enum class Layout { row_major, preserve };

// A copy of src in dtype on device, laid out row-major or as torch's preserve_format lays out
// clone() and to(): src's own strides when src is dense, else its dims' order made dense.
Tensor copy_into_new(const Tensor& src, DType dtype, Device device, Layout layout) {
  const TensorOptions options{.dtype = dtype, .device = device};
  Tensor out = layout == Layout::row_major ? empty(src.sizes(), options)
                                           : empty_preserving_layout(src, options);
  if (src.numel() == 0) return out;
  if (device == src.device()) {
    StridedLoop loop = make_strided_loop("copy", out, {&src});
    copy_stub(device)(loop, false);
    return out;
  }
  // Across devices the bytes move in one piece: staged on src's device as out lies (same dense
  // layout, so the same span of memory from the lowest element on), cast there.
  const bool same_layout = src.strides() == out.strides() && is_non_overlapping_and_dense(src);
  Tensor staged = same_layout ? src : copy_into_new(src, src.dtype(), src.device(), layout);
  if (staged.dtype() != dtype) staged = copy_into_new(staged, dtype, src.device(), layout);
  const Device kernel_dev = device.is_cpu() ? src.device() : device;
  cross_device_copy_stub(kernel_dev)(out.data_ptr(), device, staged.data_ptr(), src.device(),
                                     static_cast<size_t>(out.nbytes()));
  return out;
}

}  // namespace

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor out = copy_into_new(*this, dtype(), device(), Layout::row_major);
  record_op(OpId::clone, {*this}, {&out});
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = copy_into_new(*this, dtype(), device(), Layout::preserve);
  record_op(OpId::clone, {*this}, {&out});
  return out;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  Tensor out = copy_into_new(*this, t, device(), Layout::preserve);
  ToDTypeAttrs attrs{dtype()};
  record_op(OpId::to_dtype, {*this}, {&out}, &attrs, "ToCopyBackward0");
  return out;
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  Tensor out = copy_into_new(*this, dtype(), d, Layout::preserve);
  record_op(OpId::to_device, {*this}, {&out}, nullptr, "ToCopyBackward0");
  return out;
}

Tensor& Tensor::copy_(const Tensor& src) {
  FABRIC_CHECK(defined() && src.defined(), ValueError, "copy_: undefined tensor");
  check_no_internal_overlap("copy_", *this);
  check_no_partial_overlap("copy_", *this, src);
  if (numel() == 0) return *this;
  if (inplace_joins_graph("copy_", *this, {&src})) {
    // The new values are src's (broadcast, converted): its gradient flows back through them
    // (summed to its shape, cast to its dtype); self's old value gets none. The sum makes the
    // history a node even when src is a leaf.
    Tensor history = overwritten_history(*this);
    if (src.requires_grad()) history = add(history, src.to(device())).to(dtype());
    write_values(*this, src);
    rebase_history(*this, history);
    return *this;
  }
  write_values(*this, src);
  return *this;
}

Tensor& Tensor::fill_(const Scalar& value) {
  check_scalar_fits("fill_", value, dtype());
  if (numel() == 0) return *this;
  const Tensor history = inplace_joins_graph("fill_", *this, {}) ? overwritten_history(*this) : Tensor();
  StridedLoop loop = make_strided_loop("fill_", *this, {});
  fill_stub(device())(loop, value);
  storage()->bump_version();
  if (history.defined()) rebase_history(*this, history);
  return *this;
}

Tensor Tensor::detach() const {
  Tensor out = make_view(*this, sizes(), strides(), storage_offset());
  out.impl()->is_view = impl_->is_view;
  out.impl()->view_base = nullptr;  // PyTorch's detach(): a view autograd does not follow
  return out;
}

Tensor& Tensor::detach_() {
  (void)checked();  // undefined: ValueError
  TensorImpl& t = *impl_;
  // A view's requires_grad and history follow its base's (and in-place writes through it join the
  // base's graph), so cutting the view alone would leave them disagreeing.
  FABRIC_CHECK(t.view_base == nullptr, Error,
               "detach_: Can't detach views in-place. Use detach() instead (this ",
               dtype_name(t.dtype), " tensor of shape ", shape_str(t.sizes),
               " is a view of a tensor of shape ", shape_str(t.view_base->sizes), ")");
  t.requires_grad = false;
  if (t.autograd) t.autograd->clear_grad_fn();
  return *this;
}

void Tensor::set_data(const Tensor& src) const {
  FABRIC_CHECK(defined() && src.defined(), ValueError, "set_data: undefined tensor");
  TensorImpl& dst = *impl_;
  const TensorImpl& s = *src.impl();
  dst.storage = s.storage;
  dst.offset = s.offset;
  dst.sizes = s.sizes;
  dst.strides = s.strides;
  dst.dtype = s.dtype;
  dst.is_view = s.is_view;
  dst.view_base = nullptr;  // the new data is not a view autograd follows (PyTorch's `.data =`)
}

// ---- reading values ---------------------------------------------------------------------------

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(Device::cpu()).to(dtype_v<T>).contiguous();
  const T* p = static_cast<const T*>(c.data_ptr());
  return std::vector<T>(p, p + c.numel());
}

template <typename T>
T Tensor::item() const {
  FABRIC_CHECK(numel() == 1, ValueError, "item: a tensor with ", numel(), " elements (shape ", shape_str(sizes()),
               ") cannot be converted to a scalar");
  return to_vector<T>()[0];
}

#define FABRIC_INSTANTIATE_READ(T)                     \
  template std::vector<T> Tensor::to_vector<T>() const; \
  template T Tensor::item<T>() const;
FABRIC_INSTANTIATE_READ(double)
FABRIC_INSTANTIATE_READ(float)
FABRIC_INSTANTIATE_READ(Half)
FABRIC_INSTANTIATE_READ(BFloat16)
FABRIC_INSTANTIATE_READ(Float8E4M3)
FABRIC_INSTANTIATE_READ(Float8E5M2)
FABRIC_INSTANTIATE_READ(int64_t)
FABRIC_INSTANTIATE_READ(int32_t)
FABRIC_INSTANTIATE_READ(int8_t)
FABRIC_INSTANTIATE_READ(uint8_t)
FABRIC_INSTANTIATE_READ(bool)
#undef FABRIC_INSTANTIATE_READ

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(shape=" << shape_str(sizes()) << ", dtype=" << dtype_name(dtype());
  if (!device().is_cpu()) os << ", device=" << device();
  os << ", [";
  // The first 16 values in row-major order, read from a view that holds them (leading dims
  // narrowed) rather than converting (or copying from a device) the whole tensor; integers printed
  // exactly.
  constexpr int64_t kShown = 16;
  Tensor head = detach();
  for (int64_t d = 0; d < head.dim(); ++d) {
    int64_t inner = 1;
    for (int64_t e = d + 1; e < head.dim(); ++e) inner *= std::max<int64_t>(head.size(e), 1);
    const int64_t need = (kShown + inner - 1) / inner;
    head = head.narrow(d, 0, std::min(head.size(d), need));
    if (need > 1) break;
  }
  const int64_t shown = std::min<int64_t>(head.numel(), kShown);
  if (is_floating(dtype())) {
    const std::vector<double> vals = head.to_vector<double>();
    for (int64_t i = 0; i < shown; ++i) os << (i ? ", " : "") << vals[size_t(i)];
  } else {
    const std::vector<int64_t> vals = head.to(DType::int64).to_vector<int64_t>();
    for (int64_t i = 0; i < shown; ++i) os << (i ? ", " : "") << vals[size_t(i)];
  }
  if (numel() > shown) os << ", ...";
  os << "])";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace fabric
