// The C API's tensors (runtime/c_api.h): made from a caller's buffer, queried, copied out, freed.
#include <cstring>
#include <limits>
#include <string>

#include "runtime/c_api_detail.h"
#include "tensor/factory.h"

namespace fabric::c_api {
namespace {

constexpr DType kDTypes[] = {DType::float32,       DType::float64,    DType::bfloat16,
                             DType::float16,       DType::int64,      DType::int32,
                             DType::int8,          DType::uint8,      DType::bool_,
                             DType::float8_e4m3fn, DType::float8_e5m2};
constexpr int kNumCDTypes = int(sizeof(kDTypes) / sizeof(kDTypes[0]));
static_assert(kNumCDTypes == kNumDTypes, "every DType has a fabric_dtype");

// Dimensions a tensor of the C API may have: far more than any model takes, few enough that a
// garbage ndim is refused before its sizes are read.
constexpr size_t kMaxNDim = 64;

}  // namespace

Registry<fabric_tensor>& tensors() {
  static auto* registry = new Registry<fabric_tensor>();  // never destroyed: handles outlive main
  return *registry;
}

DType dtype_from_c(fabric_dtype dtype, const char* function) {
  const int i = int(dtype);
  if (i < 0 || i >= kNumCDTypes)
    bad_argument(function, "dtype " + std::to_string(i) + " is no fabric_dtype (expected 0.." +
                               std::to_string(kNumCDTypes - 1) + ")");
  return kDTypes[i];
}

fabric_dtype dtype_to_c(DType dtype) {
  for (int i = 0; i < kNumCDTypes; ++i)
    if (kDTypes[i] == dtype) return fabric_dtype(i);
  throw Error("fabric_dtype of " + std::string(dtype_name(dtype)) + ": none");  // unreachable
}

const Tensor& tensor_of(const fabric_tensor* handle, const char* function, const char* argument) {
  require_argument(handle, function, argument);
  if (!tensors().contains(handle))
    bad_argument(function, std::string(argument) +
                               " is no live fabric_tensor (freed already, or not made by "
                               "fabric_tensor_create / fabric_model_forward)");
  return handle->tensor;
}

fabric_tensor* new_tensor_handle(const Tensor& t) {
  Tensor cpu = t.device().is_cpu() ? t : t.to(Device::cpu());
  return tensors().add(new fabric_tensor{cpu.contiguous()});
}

}  // namespace fabric::c_api

using namespace fabric;
using namespace fabric::c_api;

extern "C" {

fabric_status fabric_tensor_create(const void* data, const int64_t* shape, size_t ndim,
                                   fabric_dtype dtype, fabric_tensor** out) {
  return guarded([&] {
    const char* fn = "fabric_tensor_create";
    require_argument(out, fn, "out");
    const DType dt = dtype_from_c(dtype, fn);
    if (ndim > kMaxNDim)
      bad_argument(fn, "ndim " + std::to_string(ndim) + " is more than the " +
                           std::to_string(kMaxNDim) + " dimensions a tensor may have");
    if (ndim > 0) require_argument(shape, fn, "shape");
    Shape sizes(shape, shape + ndim);
    // numel * itemsize must fit in the address space: checked before anything is allocated. The
    // sizes other than 0 count too (an empty tensor's strides are their products).
    const int64_t limit = std::numeric_limits<int64_t>::max() / itemsize(dt);
    int64_t numel = 1, extent = 1;
    for (size_t d = 0; d < ndim; ++d) {
      if (sizes[d] < 0)
        bad_argument(fn, "shape[" + std::to_string(d) + "] is " + std::to_string(sizes[d]) +
                             " (expected a size >= 0)");
      if (sizes[d] > 0 && extent > limit / sizes[d])
        bad_argument(fn, "the shape's " + std::string(dtype_name(dt)) +
                             " elements take more bytes than int64 counts (at shape[" +
                             std::to_string(d) + "] = " + std::to_string(sizes[d]) + ")");
      if (sizes[d] > 0) extent *= sizes[d];
      numel *= sizes[d];
    }
    if (numel > 0) require_argument(data, fn, "data");
    Tensor t = empty(sizes, {.dtype = dt});
    if (numel > 0) std::memcpy(t.data_ptr(), data, size_t(numel * itemsize(dt)));
    if (dt == DType::bool_) {
      // Any nonzero byte is true, as a C bool converts: stored as 1 as the kernels expect.
      auto* bytes = static_cast<uint8_t*>(t.data_ptr());
      for (int64_t i = 0; i < numel; ++i) bytes[i] = bytes[i] != 0;
    }
    *out = new_tensor_handle(t);
  });
}

fabric_status fabric_tensor_ndim(const fabric_tensor* tensor, size_t* ndim) {
  return guarded([&] {
    const Tensor& t = tensor_of(tensor, "fabric_tensor_ndim", "tensor");
    require_argument(ndim, "fabric_tensor_ndim", "ndim");
    *ndim = size_t(t.dim());
  });
}

fabric_status fabric_tensor_shape(const fabric_tensor* tensor, int64_t* shape, size_t capacity) {
  return guarded([&] {
    const char* fn = "fabric_tensor_shape";
    const Tensor& t = tensor_of(tensor, fn, "tensor");
    if (capacity < size_t(t.dim()))
      bad_argument(fn, "capacity " + std::to_string(capacity) + " is less than the tensor's " +
                           std::to_string(t.dim()) + " dimensions");
    if (t.dim() > 0) require_argument(shape, fn, "shape");
    for (int64_t d = 0; d < t.dim(); ++d) shape[d] = t.shape()[size_t(d)];
  });
}

fabric_status fabric_tensor_size(const fabric_tensor* tensor, int64_t dim, int64_t* size) {
  return guarded([&] {
    const char* fn = "fabric_tensor_size";
    const Tensor& t = tensor_of(tensor, fn, "tensor");
    require_argument(size, fn, "size");
    const int64_t n = t.dim();
    if (dim < -n || dim >= n)
      bad_argument(fn, "dim " + std::to_string(dim) + " is out of range for a tensor of " +
                           std::to_string(n) + " dimensions (expected " +
                           (n == 0 ? std::string("none: a scalar has no dimensions")
                                   : std::to_string(-n) + ".." + std::to_string(n - 1)) +
                           ")");
    *size = t.shape()[size_t(dim < 0 ? dim + n : dim)];
  });
}

fabric_status fabric_tensor_dtype(const fabric_tensor* tensor, fabric_dtype* dtype) {
  return guarded([&] {
    const Tensor& t = tensor_of(tensor, "fabric_tensor_dtype", "tensor");
    require_argument(dtype, "fabric_tensor_dtype", "dtype");
    *dtype = dtype_to_c(t.dtype());
  });
}

fabric_status fabric_tensor_numel(const fabric_tensor* tensor, int64_t* numel) {
  return guarded([&] {
    const Tensor& t = tensor_of(tensor, "fabric_tensor_numel", "tensor");
    require_argument(numel, "fabric_tensor_numel", "numel");
    *numel = t.numel();
  });
}

fabric_status fabric_tensor_nbytes(const fabric_tensor* tensor, size_t* nbytes) {
  return guarded([&] {
    const Tensor& t = tensor_of(tensor, "fabric_tensor_nbytes", "tensor");
    require_argument(nbytes, "fabric_tensor_nbytes", "nbytes");
    *nbytes = size_t(t.nbytes());
  });
}

fabric_status fabric_tensor_copy_to(const fabric_tensor* tensor, void* buffer,
                                    size_t buffer_bytes) {
  return guarded([&] {
    const char* fn = "fabric_tensor_copy_to";
    const Tensor& t = tensor_of(tensor, fn, "tensor");
    const size_t nbytes = size_t(t.nbytes());
    if (buffer_bytes < nbytes)
      bad_argument(fn, "the buffer holds " + std::to_string(buffer_bytes) +
                           " bytes; the tensor's " + std::to_string(t.numel()) + " " +
                           std::string(dtype_name(t.dtype())) + " elements take " +
                           std::to_string(nbytes));
    if (nbytes > 0) {
      require_argument(buffer, fn, "buffer");
      std::memcpy(buffer, t.data_ptr(), nbytes);
    }
  });
}

fabric_status fabric_tensor_free(fabric_tensor* tensor) {
  return guarded([&] {
    if (tensor == nullptr) return;
    if (!tensors().remove(tensor))
      bad_argument("fabric_tensor_free",
                   "tensor is no live fabric_tensor (freed already, or not made by this API)");
    delete tensor;
  });
}

}  // extern "C"
