// The Tensor handle: a shared, reference-counted view (sizes, strides, offset, dtype) onto a
// Storage. Copies of a Tensor alias; views share storage. Ops live in ops.h; this file holds
// the metadata, data access and the view/convenience methods that forward to those ops.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/scalar.h"
#include "tensor/shape.h"
#include "tensor/storage.h"

namespace fabric {

// What autograd keeps on a tensor (grad, grad_fn, hooks). Defined by the autograd layer; the
// tensor layer only holds it and asks the two questions it needs for autocast and views.
class Tensor;
class Generator;
class AutogradMetaBase {
 public:
  virtual ~AutogradMetaBase() = default;
  virtual bool is_leaf() const = 0;
  virtual Tensor grad() const = 0;
  // Tensor::detach_(): forget the node that produced the tensor (it becomes a leaf).
  virtual void clear_grad_fn() = 0;
};

struct TensorImpl {
  Storage storage;
  int64_t offset = 0;  // in elements
  Shape sizes;
  Strides strides;     // in elements
  DType dtype = DType::float32;
  bool requires_grad = false;
  bool is_view = false;  // shares storage with a tensor it was derived from
  // For a view autograd follows: the root tensor it was derived from (a view of a view has the
  // root's base) and the storage's version when autograd last matched the view's history to the
  // base's. An in-place write into the view then becomes part of the base's history (PyTorch's
  // CopySlices), and a view whose storage was written through another alias gets its history
  // rebuilt. Null for non-views and for detach() (a view autograd does not follow).
  std::shared_ptr<TensorImpl> view_base;
  uint64_t view_version = 0;
  std::shared_ptr<AutogradMetaBase> autograd;
};

struct TensorOptions {
  DType dtype = default_float_dtype();  // read when the options are made, as torch's default dtype
  Device device = Device::cpu();
  bool requires_grad = false;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Wraps a storage with explicit geometry (no copy). Checks the view fits in the storage.
  static Tensor from_storage(Storage storage, DType dtype, Shape sizes, Strides strides, int64_t offset);

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device(); }
  const Shape& shape() const { return checked().sizes; }
  const Shape& sizes() const { return checked().sizes; }
  const Strides& strides() const { return checked().strides; }
  int64_t dim() const { return static_cast<int64_t>(checked().sizes.size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const { return numel_of(checked().sizes); }
  int64_t storage_offset() const { return checked().offset; }
  int64_t element_size() const { return itemsize(dtype()); }
  int64_t nbytes() const { return numel() * element_size(); }
  bool is_contiguous() const;
  bool is_floating_point() const { return is_floating(dtype()); }
  const Storage& storage() const { return checked().storage; }

  // Pointer to the first element (storage base + offset).
  void* data_ptr() const;
  template <typename T>
  T* data() const {
    FABRIC_CHECK(dtype_v<T> == dtype(), DTypeError, "Tensor::data<", dtype_name(dtype_v<T>),
                 ">() called on a ", dtype_name(dtype()), " tensor");
    return static_cast<T*>(data_ptr());
  }
  // The value of a one-element tensor (any dtype, converted; moved to the CPU if needed).
  template <typename T>
  T item() const;
  // All elements, in row-major order, converted to T (copies to the CPU if needed).
  template <typename T>
  std::vector<T> to_vector() const;

  // ---- autograd flags (the autograd layer gives them meaning) -------------------------------
  // As in PyTorch, a view of a base that requires grad requires grad too, even one made under
  // no-grad or before its base required grad.
  bool requires_grad() const {
    const TensorImpl& t = checked();
    return t.requires_grad || (t.view_base != nullptr && t.view_base->requires_grad &&
                               t.view_base->storage == t.storage);
  }
  Tensor& set_requires_grad(bool r);
  // The accumulated gradient of a leaf (undefined when none), kept by autograd/.
  Tensor grad() const;
  // Backpropagates from this tensor (autograd's backward(); see autograd/autograd.h): unset,
  // retain_graph is create_graph, as in PyTorch.
  void backward(const Tensor& gradient = Tensor(), std::optional<bool> retain_graph = std::nullopt,
                bool create_graph = false) const;

  // ---- views (share storage) ------------------------------------------------------------------
  Tensor view(const Shape& shape) const;       // -1 allowed once; requires compatible strides
  Tensor reshape(const Shape& shape) const;    // a view when possible, else a copy
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;                            // 2-D transpose
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor operator[](int64_t index) const { return select(0, index); }
  Tensor expand(const Shape& shape) const;     // -1 keeps a size
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;                   // self when already contiguous

  // ---- copies and conversions ---------------------------------------------------------------
  Tensor clone() const;
  Tensor to(DType dtype) const;                // self when already that dtype
  Tensor to(Device device) const;
  Tensor& copy_(const Tensor& src);            // broadcasting, converting copy into self
  Tensor& fill_(const Scalar& value);
  Tensor& zero_() { return fill_(0); }
  // PyTorch's in-place methods: the free functions of tensor/ops.h and tensor/factory.h
  // (tensor_inplace_methods.cpp), with their autograd rules.
  Tensor& add_(const Tensor& other, const Scalar& alpha = 1);
  Tensor& add_(const Scalar& other);
  Tensor& sub_(const Tensor& other, const Scalar& alpha = 1);
  Tensor& sub_(const Scalar& other);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(const Scalar& other);
  Tensor& div_(const Tensor& other);
  Tensor& div_(const Scalar& other);
  Tensor& uniform_(double low = 0, double high = 1, Generator* gen = nullptr);
  Tensor& normal_(double mean = 0, double std = 1, Generator* gen = nullptr);
  Tensor detach() const;                       // shares storage, no autograd history
  // PyTorch's detach_(): this tensor itself stops requiring grad and loses its grad_fn (a leaf
  // from now on; graphs already built through it keep working). Hooks and .grad stay, as in
  // PyTorch. A view autograd follows (made by a view op, whatever its requires_grad) raises
  // Error, as torch 1.13 does for any view: detach() it instead.
  Tensor& detach_();
  // Makes this handle (and every other handle to the same tensor) hold `src`'s storage, geometry
  // and dtype, keeping its identity and autograd flags: how Module::to() and sharding swap a
  // parameter's data without invalidating references to it (PyTorch's `param.data = ...`).
  void set_data(const Tensor& src) const;

  std::string str() const;                     // a short printout: shape, dtype and values

 private:
  const TensorImpl& checked() const {
    if (!impl_) throw ValueError("operation on an undefined Tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace fabric
