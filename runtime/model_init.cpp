// model.init loading with tied parameters completed (safetensors.torch.load_model's rule).
#include "runtime/model_init.h"

#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "tensor/error.h"
#include "tensor/safetensors.h"

namespace fabric {
namespace {

// Same dtype, shape and bytes: two names whose values agree are no conflict.
bool same_values(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), static_cast<size_t>(ca.nbytes())) == 0;
}

}  // namespace

nn::StateDict complete_tied_names(const nn::Module& model, nn::StateDict file) {
  // The model's names grouped by the memory they view (state_dict's handles share the module's
  // storage). Empty tensors have no memory to share, so they are never tied.
  using Where = std::tuple<const void*, DType, Shape, Strides>;
  std::map<Where, std::vector<std::string>> ties;
  for (const auto& [name, t] : model.state_dict())
    if (t.numel() > 0) ties[{t.data_ptr(), t.dtype(), t.sizes(), t.strides()}].push_back(name);
  for (const auto& [where, names] : ties) {
    if (names.size() < 2) continue;
    const std::string* given = nullptr;
    for (const std::string& n : names) {
      const Tensor* t = file.find(n);
      if (t == nullptr || !t->defined()) continue;
      if (given == nullptr) {
        given = &n;
        continue;
      }
      const bool same = same_values(*file.find(*given), *t);
      FABRIC_CHECK(
          same, ValueError, "'", *given, "' and '", n,
          "' are one tied tensor in the model, but the file holds different values under them; ",
          "keep one of the names (as safetensors' save_model does) or give both the same values");
    }
    if (given == nullptr) continue;  // neither name: the strict load reports them missing
    const Tensor value = *file.find(*given);
    for (const std::string& n : names)
      if (!file.contains(n)) file.insert(n, value);
  }
  return file;
}

void load_model_init(nn::Module& model, const std::string& path) {
  SafetensorsFile f = load_safetensors(path);
  nn::StateDict sd;
  for (auto& [k, t] : f.tensors) sd.insert(k, t);
  model.load_state_dict(complete_tied_names(model, std::move(sd)), /*strict=*/true);
}

}  // namespace fabric
