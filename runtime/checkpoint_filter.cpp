// Fabric.save's filter (checkpoint.h): which tensors of a module or optimizer entry are written.
#include <string>
#include <utility>
#include <vector>

#include "runtime/checkpoint.h"
#include "runtime/checkpoint_detail.h"
#include "tensor/error.h"

namespace fabric {

void check_save_filters(const State& state, const SaveFilters& filters) {
  for (const auto& [key, fn] : filters) {
    auto it = state.find(key);
    if (it == state.end()) {
      std::string keys;
      for (const auto& [k, v] : state) keys += (keys.empty() ? "" : ", ") + k;
      throw ValueError("Fabric.save: the filter key '" + key +
                       "' is not present in the state keys {" + keys + "}");
    }
    FABRIC_CHECK(static_cast<bool>(fn), ValueError, "Fabric.save: the filter for key '", key,
                 "' is an empty function; give a predicate (name, tensor) -> bool");
    const std::string kind = it->second.kind();
    FABRIC_CHECK(kind == "module" || kind == "optimizer", ValueError,
                 "Fabric.save: the filter for key '", key,
                 "' selects tensors of a module or optimizer, but state['", key, "'] is of kind ",
                 kind, " (saved whole); drop its filter, or leave the entry out of the state");
  }
}

namespace checkpoint_detail {

std::vector<std::pair<std::string, Tensor>> apply_save_filter(
    const std::string& key, std::vector<std::pair<std::string, Tensor>> items,
    const SaveFilters& filters) {
  auto it = filters.find(key);
  if (it == filters.end()) return items;
  std::vector<std::pair<std::string, Tensor>> kept;
  for (auto& item : items)
    if (it->second(item.first, item.second)) kept.push_back(std::move(item));
  return kept;
}

}  // namespace checkpoint_detail
}  // namespace fabric
