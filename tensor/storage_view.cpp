// The view maker of tensor/storage_view.h.
#include "tensor/storage_view.h"

#include <memory>
#include <utility>

namespace fabric {

Tensor make_view(const Tensor& base, Shape sizes, Strides strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->offset = offset;
  impl->sizes = std::move(sizes);
  impl->strides = std::move(strides);
  impl->dtype = base.dtype();
  impl->is_view = true;
  const TensorImpl& b = *base.impl();
  impl->view_base = b.view_base ? b.view_base : base.impl_ptr();
  impl->view_version = b.storage->version();
  return Tensor(std::move(impl));
}

}  // namespace fabric
