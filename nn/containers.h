// Module containers: Sequential (forward chains its children), ModuleList (indexable, no
// forward) and ModuleDict (named, no forward). Children are named "0", "1", ... (or by key), so
// their parameters appear as "<i>.weight", as in torch.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

using ModulePtr = std::shared_ptr<Module>;

// Shared by Sequential and ModuleList: an indexed list of children.
class ModuleSequence : public Module {
 public:
  ModuleSequence() = default;
  explicit ModuleSequence(const std::vector<ModulePtr>& modules);
  // Appends m under the name std::to_string(size()), as torch's append. The list is the
  // registered children in order: a child added with register_module joins it too (torch's
  // add_module), and one replaced keeps its place.
  void push_back(ModulePtr m);
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  // Negative indices count from the end; IndexError when out of range.
  const ModulePtr& operator[](int64_t i) const;
  // The child at i as an M; ValueError naming both types when it is not one.
  template <class M>
  std::shared_ptr<M> at(int64_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    if (!m) throw_wrong_type(i);
    return m;
  }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 protected:
  // Keep the indexed list (what forward and operator[] use) the registered children: one that
  // register_module replaces (convert_sync_batchnorm, quantized or LoRA layers) or adds.
  void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) override;
  void child_added(const std::string& name, const std::shared_ptr<Module>& now) override;

 private:
  [[noreturn]] void throw_wrong_type(int64_t i) const;
  void sync_items();
  std::vector<ModulePtr> items_;
};

class Sequential : public ModuleSequence {
 public:
  using Options = std::vector<ModulePtr>;  // nn::make<Sequential>({conv, relu, pool})
  Sequential() = default;
  explicit Sequential(const std::vector<ModulePtr>& modules) : ModuleSequence(modules) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Sequential"; }
};

class ModuleList : public ModuleSequence {
 public:
  using Options = std::vector<ModulePtr>;
  ModuleList() = default;
  explicit ModuleList(const std::vector<ModulePtr>& modules) : ModuleSequence(modules) {}
  std::string type_name() const override { return "ModuleList"; }
};

class ModuleDict : public Module {
 public:
  using Options = std::vector<std::pair<std::string, ModulePtr>>;
  ModuleDict() = default;
  explicit ModuleDict(const Options& modules);
  // Inserts (or replaces in place) a child.
  void insert(const std::string& key, ModulePtr m);
  bool contains(const std::string& key) const;
  // ValueError listing the keys when absent.
  ModulePtr operator[](const std::string& key) const;
  template <class M>
  std::shared_ptr<M> at(const std::string& key) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[key]);
    FABRIC_CHECK(m != nullptr, ValueError, "ModuleDict: \"", key, "\" holds a ",
                 (*this)[key]->type_name(), ", not the requested type");
    return m;
  }
  size_t size() const { return registered_children().size(); }
  std::string type_name() const override { return "ModuleDict"; }
};

}  // namespace fabric::nn
