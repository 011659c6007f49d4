// Sequential, ModuleList, ModuleDict.
#include "nn/containers.h"

namespace fabric::nn {

ModuleSequence::ModuleSequence(const std::vector<ModulePtr>& modules) {
  for (const auto& m : modules) push_back(m);
}

void ModuleSequence::push_back(ModulePtr m) {
  FABRIC_CHECK(m != nullptr, ValueError, type_name(), ".push_back: null module at index ",
               items_.size());
  register_module(std::to_string(items_.size()), std::move(m));  // child_added lists it
}

void ModuleSequence::sync_items() {
  items_.clear();
  for (const auto& [name, child] : registered_children()) items_.push_back(child);
}

void ModuleSequence::child_replaced(const std::string&, const std::shared_ptr<Module>&) {
  sync_items();
}

void ModuleSequence::child_added(const std::string&, const std::shared_ptr<Module>&) {
  sync_items();
}

const ModulePtr& ModuleSequence::operator[](int64_t i) const {
  const auto n = static_cast<int64_t>(items_.size());
  FABRIC_CHECK(i >= -n && i < n, IndexError, type_name(), ": index ", i, " is out of range for ", n,
               " modules");
  return items_[static_cast<size_t>(i < 0 ? i + n : i)];
}

void ModuleSequence::throw_wrong_type(int64_t i) const {
  throw ValueError(detail::cat(type_name(), ": module ", i, " is a ", (*this)[i]->type_name(),
                               ", not the requested type"));
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& m : *this) y = (*m)(y);
  return y;
}

ModuleDict::ModuleDict(const Options& modules) {
  for (const auto& [k, m] : modules) insert(k, m);
}

void ModuleDict::insert(const std::string& key, ModulePtr m) { register_module(key, std::move(m)); }

bool ModuleDict::contains(const std::string& key) const {
  for (const auto& [k, m] : registered_children()) {
    if (k == key) return true;
  }
  return false;
}

ModulePtr ModuleDict::operator[](const std::string& key) const {
  std::string keys;
  for (const auto& [k, m] : registered_children()) {
    if (k == key) return m;
    keys += (keys.empty() ? "" : ", ") + k;
  }
  throw ValueError(detail::cat("ModuleDict: no module \"", key, "\" (keys: ", keys, ")"));
}

}  // namespace fabric::nn
