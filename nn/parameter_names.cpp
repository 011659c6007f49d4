#include "nn/parameter_names.h"

namespace fabric::nn {

std::map<const TensorImpl*, std::vector<std::string>> parameter_names_by_tensor(
    const Module& root) {
  std::map<const TensorImpl*, std::vector<std::string>> out;
  auto add = [&](const std::string& prefix, const Module& m) {
    for (auto& [name, p] : m.named_parameters(/*recurse=*/false))
      if (p.defined()) out[p.impl()].push_back(prefix.empty() ? name : prefix + "." + name);
  };
  add("", root);
  for (auto& [path, m] : root.named_modules()) add(path, *m);
  return out;
}

}  // namespace fabric::nn
