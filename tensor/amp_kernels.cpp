// The loss-scaler kernel's dispatch stub and its op-level entry (declared in amp_kernels.h):
// argument checks here, the element loop in each device's kernel.
#include "tensor/amp_kernels.h"

#include <algorithm>

#include "tensor/factory.h"
#include "tensor/shape.h"

namespace fabric {

FABRIC_DEFINE_STUB(amp_unscale_stub, AmpUnscaleFn);
FABRIC_DEFINE_STUB(amp_unscale_multi_stub, AmpUnscaleMultiFn);

namespace {

void check_unscalable(const Tensor& t, float inv_scale, const char* caller) {
  FABRIC_CHECK(t.defined(), ValueError, caller, ": got an undefined tensor");
  const DType dt = t.dtype();
  FABRIC_CHECK(
      dt == DType::float64 || dt == DType::float32 || dt == DType::bfloat16 || dt == DType::float16,
      DTypeError, caller, ": a ", dtype_name(dt), " tensor of shape ", shape_str(t.sizes()),
      " cannot be checked/unscaled (expected float64, float32, bfloat16 or float16)");
  // An in-place write through a stride-0 dim would scale the shared element several times.
  if (inv_scale != 1.0f) {
    for (int64_t d = 0; d < t.dim(); ++d) {
      FABRIC_CHECK(t.size(d) == 1 || t.stride(d) != 0, ValueError, caller, ": the tensor of shape ",
                   shape_str(t.sizes()), " has stride 0 in dim ", d,
                   " (an expanded tensor): elements share memory and cannot be unscaled in place");
    }
  }
}

}  // namespace

void amp_unscale_each(AmpUnscaleFn kernel, DType dtype,
                      const std::vector<std::pair<void*, int64_t>>& tensors, float inv_scale,
                      int32_t* found) {
  for (const auto& [data, n] : tensors) {
    StridedLoop loop;
    loop.ndim = 1;
    loop.sizes[0] = n;
    loop.num_operands = 1;
    loop.ops[0].data = static_cast<char*>(data);
    loop.ops[0].dtype = dtype;
    loop.ops[0].strides[0] = itemsize(dtype);
    kernel(loop, inv_scale, found);
  }
}

std::vector<std::pair<Device, bool>> amp_unscale_and_check_all_(const std::vector<Tensor>& ts,
                                                                float inv_scale,
                                                                const char* caller) {
  for (const Tensor& t : ts) check_unscalable(t, inv_scale, caller);
  std::vector<std::pair<Device, Tensor>> flags;  // one int32 per device, in its memory
  // Contiguous tensors of one device and dtype, for a device with a multi-tensor kernel. A launch
  // unscales its tensors concurrently: one that shares memory with a tensor already in the batch
  // (a gradient listed twice, overlapping views) first sends the batch off, so that the shared
  // elements are unscaled once per listing, in order, as by the per-tensor kernel.
  struct Batch {
    Device device;
    DType dtype;
    int32_t* flag;
    std::vector<std::pair<void*, int64_t>> tensors;
    bool overlaps(const char* lo, const char* hi) const {
      return std::any_of(tensors.begin(), tensors.end(), [&](const auto& e) {
        const char* a = static_cast<const char*>(e.first);
        return lo < a + e.second * itemsize(dtype) && a < hi;
      });
    }
    void launch(float inv_scale) {
      if (!tensors.empty()) amp_unscale_multi_stub(device)(dtype, tensors, inv_scale, flag);
      tensors.clear();
    }
  };
  std::vector<Batch> batches;
  for (const Tensor& t : ts) {
    auto it = std::find_if(flags.begin(), flags.end(),
                           [&](const auto& f) { return f.first == t.device(); });
    if (it == flags.end()) {
      flags.emplace_back(t.device(), zeros({1}, {.dtype = DType::int32, .device = t.device()}));
      it = flags.end() - 1;
    }
    if (t.numel() == 0) continue;
    int32_t* flag = it->second.data<int32_t>();
    if (amp_unscale_multi_stub.find(t.device()) != nullptr && t.is_contiguous()) {
      auto b = std::find_if(batches.begin(), batches.end(), [&](const Batch& x) {
        return x.device == t.device() && x.dtype == t.dtype();
      });
      if (b == batches.end()) {
        batches.push_back({t.device(), t.dtype(), flag, {}});
        b = batches.end() - 1;
      }
      const char* lo = static_cast<const char*>(t.data_ptr());
      if (b->overlaps(lo, lo + t.numel() * itemsize(t.dtype()))) b->launch(inv_scale);
      b->tensors.emplace_back(t.data_ptr(), t.numel());
      continue;
    }
    const StridedLoop loop = make_strided_loop(caller, t, {});
    amp_unscale_stub(t.device())(loop, inv_scale, flag);
  }
  for (Batch& b : batches) b.launch(inv_scale);
  std::vector<std::pair<Device, bool>> found;
  for (const auto& [device, flag] : flags) found.emplace_back(device, flag.item<int32_t>() != 0);
  return found;
}

bool amp_unscale_and_check_(const Tensor& t, float inv_scale, const char* caller) {
  const auto found = amp_unscale_and_check_all_({t}, inv_scale, caller);
  return found.front().second;
}

bool amp_has_non_finite(const Tensor& t, const char* caller) {
  return amp_unscale_and_check_(t, 1.0f, caller);
}

}  // namespace fabric
