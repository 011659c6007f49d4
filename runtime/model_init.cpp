// model.init loading with tied parameters completed (safetensors.torch.load_model's rule).
#include "runtime/model_init.h"

#include <cstring>
#include <map>
#include <string_view>
#include <tuple>
#include <vector>

#include "precision/bitsandbytes_precision.h"
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

nn::StateDict read_model_init(const std::string& path) {
  SafetensorsFile f = load_safetensors(path);
  nn::StateDict sd;
  for (auto& [k, t] : f.tensors) sd.insert(k, t);
  return sd;
}

InitStage model_init_stage(const nn::Module& built, const nn::StateDict& file) {
  if (lora_rank_saved(file) > 0) return InitStage::with_lora;
  const nn::StateDict own = built.state_dict();
  for (const auto& [k, t] : file)
    if (!own.contains(k)) return InitStage::converted;
  try {
    (void)complete_tied_names(built, file);
  } catch (const ValueError&) {
    return InitStage::converted;
  }
  return InitStage::built;
}

void load_model_init(nn::Module& model, const nn::StateDict& file) {
  precision::load_bnb_state_dict(model, complete_tied_names(model, file), /*strict=*/true);
}

void load_model_init(nn::Module& model, const std::string& path) {
  load_model_init(model, read_model_init(path));
}

namespace {

bool ends_with(const std::string& s, std::string_view end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

}  // namespace

std::string precision_saved_under(const nn::StateDict& file) {
  // bitsandbytes' Linear4bit saves its quant type in the name of its quant_state blob, and its
  // nested (double) quantization's statistics as nested_absmax; Linear8bitLt saves its row scales
  // as SCB; TransformerEngine's FP8 layers their scaling state under _extra_state.
  std::string four_bit;
  bool nested = false, int8 = false;
  std::string fp8_prefix;
  for (const auto& [k, t] : file) {
    if (ends_with(k, ".quant_state.bitsandbytes__nf4")) four_bit = "nf4";
    if (ends_with(k, ".quant_state.bitsandbytes__fp4")) four_bit = "fp4";
    if (ends_with(k, ".weight.nested_absmax")) nested = true;
    if (ends_with(k, ".SCB") || k == "SCB") int8 = true;
    const size_t extra = k.find("._extra_state.");
    if (extra != std::string::npos && fp8_prefix.empty()) fp8_prefix = k.substr(0, extra);
  }
  if (!four_bit.empty()) return nested ? four_bit + "-dq" : four_bit;
  if (int8) return "int8";
  if (!fp8_prefix.empty()) {
    const Tensor* w = file.find(fp8_prefix + ".weight");
    return w != nullptr && w->dtype() == DType::float16 ? "transformer-engine-float16"
                                                        : "transformer-engine";
  }
  return "";
}

int64_t lora_rank_saved(const nn::StateDict& file) {
  for (const auto& [k, t] : file)
    if (ends_with(k, ".lora_A.weight") && t.dim() == 2) return t.size(0);
  return 0;
}

}  // namespace fabric
