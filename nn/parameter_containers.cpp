// ParameterList and ParameterDict as torch 1.13's: entries registered as the container's own
// parameters, torch's index and key errors, and torch's reprs (ParameterList prints dtypes as
// "torch.float32", ParameterDict as torch.typename's "torch.FloatTensor").
#include "nn/parameter_containers.h"

#include <algorithm>

#include "autograd/autograd.h"
#include "tensor/error.h"

namespace fabric::nn {

namespace {

// torch's Parameter(t): a new leaf over the same storage for a non-leaf, and for a tensor whose
// requires_grad registering would change (the caller's plain tensor keeps requires_grad false and
// stays writable in place); a tensor that already is what is asked (a parameter) is itself.
Tensor as_parameter(const Tensor& t, bool requires_grad) {
  if (!t.defined()) return t;
  return !is_leaf(t) || t.requires_grad() != requires_grad ? t.detach() : t;
}

// The requires_grad a registered entry keeps when it is put into another container, as torch keeps
// a Parameter's.
bool keeps_requires_grad(const Tensor& t) { return t.defined() && t.requires_grad(); }

// torch.typename of a tensor: "torch.FloatTensor", "torch.cuda.HalfTensor", ...
std::string legacy_type_name(const Tensor& t) {
  std::string scalar;
  switch (t.dtype()) {
    case DType::float64:
      scalar = "Double";
      break;
    case DType::float32:
      scalar = "Float";
      break;
    case DType::float16:
      scalar = "Half";
      break;
    case DType::bfloat16:
      scalar = "BFloat16";
      break;
    case DType::float8_e4m3fn:
      scalar = "Float8_e4m3fn";
      break;
    case DType::float8_e5m2:
      scalar = "Float8_e5m2";
      break;
    case DType::int64:
      scalar = "Long";
      break;
    case DType::int32:
      scalar = "Int";
      break;
    case DType::int8:
      scalar = "Char";
      break;
    case DType::uint8:
      scalar = "Byte";
      break;
    case DType::bool_:
      scalar = "Bool";
      break;
  }
  return std::string(t.device().is_cuda() ? "torch.cuda." : "torch.") + scalar + "Tensor";
}

std::string torch_dtype_name(const Tensor& t) {
  return "torch." + std::string(dtype_name(t.dtype()));
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += (out.empty() ? "" : "\n") + line;
  return out;
}

// torch's register_parameter checks a ParameterDict key meets first (KeyError, its messages).
void check_key(const std::string& key) {
  FABRIC_CHECK(!key.empty(), KeyError, "ParameterDict: parameter name can't be empty string \"\"");
  FABRIC_CHECK(key.find('.') == std::string::npos, KeyError, "ParameterDict: parameter name \"",
               key, "\" can't contain \".\"");
}

}  // namespace

std::string parameter_repr_line(const std::string& name, const Tensor& t, const std::string& type) {
  if (!t.defined()) return "  (" + name + "): Object of type: NoneType";
  std::string sizes;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (d) sizes += 'x';
    sizes += std::to_string(t.size(d));  // appended apart: GCC 12's -Wrestrict misfired on a + b
  }
  const std::string device =
      t.device().is_cuda() ? " (GPU " + std::to_string(t.device().index) + ")" : "";
  return "  (" + name + "): Parameter containing: [" + type + " of size " + sizes + device + "]";
}

// ---- ParameterList ----------------------------------------------------------------------------

ParameterList::ParameterList(const std::vector<Tensor>& values) { extend(values); }

ParameterList& ParameterList::append(const Tensor& t, bool requires_grad) {
  const Tensor p = register_parameter(std::to_string(items_.size()), as_parameter(t, requires_grad),
                                      requires_grad);
  items_.push_back(p);
  return *this;
}

ParameterList& ParameterList::extend(const std::vector<Tensor>& values, bool requires_grad) {
  for (const Tensor& t : values) append(t, requires_grad);
  return *this;
}

size_t ParameterList::index_of(int64_t i) const {
  const auto n = static_cast<int64_t>(items_.size());
  FABRIC_CHECK(i >= -n && i < n, IndexError, "index ", i, " is out of range");
  return static_cast<size_t>(i < 0 ? i + n : i);
}

void ParameterList::set(int64_t i, const Tensor& t, bool requires_grad) {
  const size_t at = index_of(i);
  items_[at] =
      register_parameter(std::to_string(at), as_parameter(t, requires_grad), requires_grad);
}

const Tensor& ParameterList::operator[](int64_t i) const { return items_[index_of(i)]; }

std::string ParameterList::extra_repr() const {
  std::vector<std::string> lines;
  for (size_t i = 0; i < items_.size(); ++i) {
    const Tensor& t = items_[i];
    lines.push_back(parameter_repr_line(std::to_string(i), t,
                                        t.defined() ? torch_dtype_name(t) : std::string()));
  }
  return join_lines(lines);
}

Tensor ParameterList::forward(const Tensor&) {
  throw NotImplementedError("ParameterList should not be called.");
}

// ---- ParameterDict ----------------------------------------------------------------------------

ParameterDict::ParameterDict(const Options& items) { update(items); }

void ParameterDict::insert(const std::string& key, const Tensor& t, bool requires_grad) {
  check_key(key);
  // Registered before the key is listed: a rejected tensor leaves the dict as it was.
  register_parameter(key, as_parameter(t, requires_grad), requires_grad);
  if (!contains(key)) keys_.push_back(key);
}

void ParameterDict::update(const Options& items, bool requires_grad) {
  for (const auto& [key, t] : items) insert(key, t, requires_grad);
}

void ParameterDict::update(const ParameterDict& other) {
  for (const auto& [key, t] : other.items()) insert(key, t, keeps_requires_grad(t));
}

bool ParameterDict::contains(const std::string& key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

Tensor ParameterDict::operator[](const std::string& key) const {
  FABRIC_CHECK(contains(key), KeyError, "'ParameterDict' object has no attribute '", key, "'");
  return own_tensor(key);
}

Tensor ParameterDict::get(const std::string& key, const Tensor& fallback) const {
  return contains(key) ? own_tensor(key) : fallback;
}

Tensor ParameterDict::setdefault(const std::string& key, const Tensor& fallback) {
  if (!contains(key)) insert(key, fallback);
  return own_tensor(key);
}

void ParameterDict::erase(const std::string& key) {
  const auto it = std::find(keys_.begin(), keys_.end(), key);
  FABRIC_CHECK(it != keys_.end(), KeyError, "'", key, "'");
  keys_.erase(it);
  // Module cannot unregister a name: the entry becomes None, which parameters(), state_dict and
  // load_state_dict skip. A key inserted again takes that old place among the parameters (torch:
  // the end); keys() has torch's order either way.
  register_parameter(key, Tensor());
}

Tensor ParameterDict::pop(const std::string& key) {
  Tensor t = (*this)[key];
  erase(key);
  return t;
}

ParameterDict::Item ParameterDict::popitem() {
  FABRIC_CHECK(!keys_.empty(), KeyError, "'popitem(): dictionary is empty'");
  const std::string key = keys_.back();
  return {key, pop(key)};
}

void ParameterDict::clear() {
  while (!keys_.empty()) erase(keys_.back());
}

std::vector<Tensor> ParameterDict::values() const {
  std::vector<Tensor> out;
  for (const std::string& key : keys_) out.push_back(own_tensor(key));
  return out;
}

std::vector<ParameterDict::Item> ParameterDict::items() const {
  std::vector<Item> out;
  for (const std::string& key : keys_) out.emplace_back(key, own_tensor(key));
  return out;
}

std::string ParameterDict::extra_repr() const {
  std::vector<std::string> lines;
  for (const auto& [key, t] : items())
    lines.push_back(parameter_repr_line(key, t, t.defined() ? legacy_type_name(t) : std::string()));
  return join_lines(lines);
}

Tensor ParameterDict::forward(const Tensor&) {
  throw NotImplementedError("ParameterDict should not be called.");
}

}  // namespace fabric::nn
