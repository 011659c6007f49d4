// Autocast at op entry (spec §3): per-thread, per-device-type state, the op policy table from
// op_list.h, and the weight-cast cache for fp32 leaf parameters.
#include "tensor/autocast.h"

#include <unordered_map>
#include <vector>

#include "tensor/autocast_promote.h"

namespace fabric {
namespace {

constexpr AutocastPolicy none = AutocastPolicy::none, lower = AutocastPolicy::lower, fp32 = AutocastPolicy::fp32,
                         fp32_out = AutocastPolicy::fp32_out, promote = AutocastPolicy::promote;
struct PolicyPair { AutocastPolicy cpu, cuda; };
constexpr PolicyPair kPolicies[] = {
#define FABRIC_OP_POLICY(name, cpu, cuda) {cpu, cuda},
    FABRIC_OP_LIST(FABRIC_OP_POLICY)
#undef FABRIC_OP_POLICY
};

// Cast cache: source impl -> (source kept alive, its cast). Keyed by identity, as in PyTorch.
using CastCache = std::unordered_map<const TensorImpl*, std::pair<Tensor, Tensor>>;

struct ThreadAutocast {
  AutocastState state[2] = {{false, DType::bfloat16, true, 0}, {false, DType::float16, true, 0}};
  std::vector<AutocastState> saved[2];
  CastCache cache;
};
thread_local ThreadAutocast g_tl;

int slot(DeviceType d) { return d == DeviceType::cpu ? 0 : 1; }

bool affected(const Tensor& t, DeviceType dev) {
  if (!t.defined() || t.device().type != dev) return false;
  DType d = t.dtype();
  return is_floating(d) && d != DType::float64 && !is_fp8(d);
}

bool cacheable(const Tensor& t) {
  const TensorImpl* i = t.impl();
  bool leaf = !i->autograd || i->autograd->is_leaf();
  return t.dtype() == DType::float32 && leaf && i->requires_grad && !i->is_view;
}

Tensor cast_to(const Tensor& t, DType target, const AutocastState& st) {
  if (t.dtype() == target) return t;
  if (target == st.dtype && st.cache_enabled && cacheable(t)) {
    auto it = g_tl.cache.find(t.impl());
    if (it != g_tl.cache.end()) return it->second.second;
    Tensor c = t.to(target);
    g_tl.cache.emplace(t.impl(), std::make_pair(t, c));
    return c;
  }
  return t.to(target);
}
}  // namespace

AutocastPolicy autocast_policy(OpId op, DeviceType device) {
  const PolicyPair& p = kPolicies[static_cast<size_t>(op)];
  return device == DeviceType::cpu ? p.cpu : p.cuda;
}

AutocastState& autocast_state(DeviceType device) { return g_tl.state[slot(device)]; }
bool autocast_enabled(DeviceType device) { return g_tl.state[slot(device)].enabled; }

void autocast_enter(DeviceType device, bool enabled, DType dtype, bool cache_enabled) {
  // A disabled region takes any dtype (torch warns and disables): nothing is cast to it.
  FABRIC_CHECK(!enabled || dtype == DType::bfloat16 || dtype == DType::float16, DTypeError,
               "autocast: the lower-precision dtype must be bfloat16 or float16, got ",
               dtype_name(dtype));
  auto& st = g_tl.state[slot(device)];
  g_tl.saved[slot(device)].push_back(st);
  const int nesting = st.nesting + 1;
  st = {enabled, dtype, cache_enabled, nesting};
}

void autocast_exit(DeviceType device) {
  auto& saved = g_tl.saved[slot(device)];
  FABRIC_CHECK(!saved.empty(), ValueError, "autocast_exit without a matching autocast_enter");
  g_tl.state[slot(device)] = saved.back();
  saved.pop_back();
  if (g_tl.state[0].nesting == 0 && g_tl.state[1].nesting == 0) g_tl.cache.clear();
}

void autocast_clear_cache() { g_tl.cache.clear(); }

struct PrivateAutocastCache::Saved {
  CastCache cache;
};

PrivateAutocastCache::PrivateAutocastCache() : saved_(std::make_unique<Saved>()) {
  saved_->cache.swap(g_tl.cache);
}

PrivateAutocastCache::~PrivateAutocastCache() { g_tl.cache.swap(saved_->cache); }

namespace {

// torch's prioritize: under autocast a PROMOTE op's floating operands (float64 aside) may be
// float32 or the autocast dtype; another 16-bit dtype raises, even when every operand has it.
void check_promote_operand(OpId op, DType next, const AutocastState& st) {
  FABRIC_CHECK(next == DType::float32 || next == st.dtype, DTypeError, op_name(op), ": under ",
               dtype_name(st.dtype), " autocast its operands may be float32, ",
               dtype_name(st.dtype), " or float64, got a ", dtype_name(next),
               " one (torch raises 'Unexpected floating ScalarType in at::autocast::prioritize'; "
               "cast it first)");
}

}  // namespace

void check_autocast_promote(OpId op, const std::vector<Tensor>& inputs) {
  if (inputs.empty() || !inputs[0].defined()) return;
  const DeviceType dev = inputs[0].device().type;
  const AutocastState& st = g_tl.state[slot(dev)];
  if (!st.enabled || autocast_policy(op, dev) != AutocastPolicy::promote) return;
  for (const Tensor& t : inputs)
    if (affected(t, dev)) check_promote_operand(op, t.dtype(), st);
}

bool apply_autocast(OpId op, std::initializer_list<Tensor*> inputs) {
  DeviceType dev = DeviceType::cpu;
  bool found = false;
  for (Tensor* t : inputs) {
    if (t && t->defined()) {
      dev = t->device().type;
      found = true;
      break;
    }
  }
  if (!found) return false;
  const AutocastState& st = g_tl.state[slot(dev)];
  if (!st.enabled) return false;
  switch (autocast_policy(op, dev)) {
    case AutocastPolicy::none:
      return false;
    case AutocastPolicy::lower:
      for (Tensor* t : inputs)
        if (t && affected(*t, dev)) *t = cast_to(*t, st.dtype, st);
      return false;
    case AutocastPolicy::fp32:
      for (Tensor* t : inputs)
        if (t && affected(*t, dev)) *t = cast_to(*t, DType::float32, st);
      return false;
    case AutocastPolicy::fp32_out: {
      for (Tensor* t : inputs)
        if (t && t->defined()) return affected(*t, dev);
      return false;
    }
    case AutocastPolicy::promote: {
      // torch's prioritize: from the autocast dtype, float32 wins; any other 16-bit dtype (a
      // float16 operand under bfloat16 autocast, even when every operand is float16) raises.
      bool any = false;
      DType widest = st.dtype;
      for (Tensor* t : inputs) {
        if (!t || !affected(*t, dev)) continue;
        any = true;
        check_promote_operand(op, t->dtype(), st);
        if (t->dtype() == DType::float32) widest = DType::float32;
      }
      if (!any) return false;
      for (Tensor* t : inputs)
        if (t && affected(*t, dev)) *t = cast_to(*t, widest, st);
      return false;
    }
  }
  return false;
}

}  // namespace fabric
