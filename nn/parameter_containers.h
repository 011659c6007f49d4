// torch.nn.ParameterList and ParameterDict: containers whose entries are registered parameters of
// the container, named "0", "1", ... (or by key), so a model holding one as child "plist" has
// state_dict keys "plist.0", "plist.1", and parameters() walks them in the container's order.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

// torch's Parameter(t): what either container registers for t, with requires_grad as asked
// (register_parameter's convention: pass false for a frozen or integer entry). A leaf that already
// has that requires_grad is registered itself (as torch keeps a Parameter); a plain tensor or a
// non-leaf is registered as a new leaf sharing its storage (torch wraps a plain tensor in a new
// Parameter), so the caller's tensor keeps its own requires_grad. An undefined tensor is torch's
// None: kept as an entry, not a parameter (repr "Object of type: NoneType").

// make<ParameterList>({w0, w1}). Entries are set through the container (append, extend, set);
// register_parameter("0", ...) called from outside bypasses the list.
class ParameterList : public Module {
 public:
  using Options = std::vector<Tensor>;
  ParameterList() = default;
  explicit ParameterList(const std::vector<Tensor>& values);
  // Registers t as parameter std::to_string(size()).
  ParameterList& append(const Tensor& t, bool requires_grad = true);
  ParameterList& extend(const std::vector<Tensor>& values, bool requires_grad = true);
  // torch's plist[i] = t: replaces entry i in place (negative i counts from the end).
  void set(int64_t i, const Tensor& t, bool requires_grad = true);
  // Negative i counts from the end; IndexError "index 5 is out of range" as torch's.
  const Tensor& operator[](int64_t i) const;
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }
  std::string type_name() const override { return "ParameterList"; }
  // torch's: one line per entry, "  (0): Parameter containing: [torch.float32 of size 2x3]".
  std::string extra_repr() const override;
  // NotImplementedError "ParameterList should not be called." (torch's message).
  Tensor forward(const Tensor& x) override;

 private:
  size_t index_of(int64_t i) const;
  std::vector<Tensor> items_;
};

// make<ParameterDict>({{"weight", w}, {"bias", b}}): an ordered dict. The constructor and update
// take (key, tensor) pairs in their order, as torch's OrderedDict or list of pairs (torch sorts a
// plain dict's keys: pass them sorted, or a std::map's items, to get its order). Keys: non-empty,
// no "." (KeyError, as torch's).
class ParameterDict : public Module {
 public:
  using Item = std::pair<std::string, Tensor>;
  using Options = std::vector<Item>;
  ParameterDict() = default;
  explicit ParameterDict(const Options& items);
  // torch's pdict[key] = t: a new key goes last; an existing one is replaced in place.
  void insert(const std::string& key, const Tensor& t, bool requires_grad = true);
  void update(const Options& items, bool requires_grad = true);
  // Another dict's entries in its order (their tensors registered here too, shared).
  void update(const ParameterDict& other);
  bool contains(const std::string& key) const;
  // KeyError "'ParameterDict' object has no attribute 'key'" (torch's AttributeError) when absent.
  Tensor operator[](const std::string& key) const;
  Tensor at(const std::string& key) const { return (*this)[key]; }
  // The entry, or `fallback` when absent.
  Tensor get(const std::string& key, const Tensor& fallback = Tensor()) const;
  // The entry; inserts `fallback` first when absent.
  Tensor setdefault(const std::string& key, const Tensor& fallback = Tensor());
  // torch's del pdict[key]; KeyError naming the key when absent.
  void erase(const std::string& key);
  // The entry, removed (AttributeError's message, as KeyError, when absent).
  Tensor pop(const std::string& key);
  // The last inserted entry, removed; KeyError when empty.
  Item popitem();
  void clear();
  const std::vector<std::string>& keys() const { return keys_; }
  std::vector<Tensor> values() const;
  std::vector<Item> items() const;
  size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty(); }
  // Iterates the keys, as a Python dict.
  auto begin() const { return keys_.begin(); }
  auto end() const { return keys_.end(); }
  std::string type_name() const override { return "ParameterDict"; }
  // torch's: "  (weight): Parameter containing: [torch.FloatTensor of size 2x3]" per entry.
  std::string extra_repr() const override;
  // NotImplementedError "ParameterDict should not be called." (torch's message).
  Tensor forward(const Tensor& x) override;

 private:
  std::vector<std::string> keys_;  // insertion order; the tensors are the registered entries
};

// torch's ParameterList.extra_repr line for one entry t at `name`, with `type` the dtype as the
// container prints it: "  (0): Parameter containing: [torch.float32 of size 2x3]".
std::string parameter_repr_line(const std::string& name, const Tensor& t, const std::string& type);

}  // namespace fabric::nn
