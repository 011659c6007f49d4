// FP8Meta: amax recording, the delayed-scaling update of Transformer Engine's fused kernel, and
// the checkpoint state (spec §8).
#include "precision/fp8_meta.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <utility>

#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::precision {

namespace {

const char* suffix(Fp8Direction d) { return d == Fp8Direction::forward ? "fwd" : "bwd"; }

// max ignoring NaN, as CUDA's fmaxf: NaN only when both are NaN.
float nan_max(float a, float b) { return std::fmax(a, b); }

}  // namespace

Tensor resize_amax_history(const Tensor& history, int64_t len) {
  FABRIC_CHECK(len >= 1, ValueError, "resize_amax_history: len must be >= 1, got ", len);
  FABRIC_CHECK(history.defined() && history.dim() == 2, ShapeError,
               "resize_amax_history: expected a (len, K) history, got ",
               history.defined() ? shape_str(history.shape()) : std::string("an undefined tensor"));
  NoGradGuard no_grad;
  const Tensor src = history.detach().to(Device::cpu()).to(DType::float32).contiguous();
  const int64_t kept = std::min(len, src.size(0));
  const int64_t k = src.size(1);
  Tensor out = zeros({len, k}, {.dtype = DType::float32});
  // Row-major (len, K): the kept rows are one leading block of both tensors.
  if (kept * k > 0) {
    std::memcpy(out.data<float>(), src.data<float>(),
                static_cast<size_t>(kept * k) * sizeof(float));
  }
  return out;
}

FP8Meta::FP8Meta(int64_t num_gemms, const DelayedScaling& recipe)
    : num_gemms_(num_gemms), recipe_(recipe) {
  FABRIC_CHECK(num_gemms >= 1, ValueError, "FP8Meta: num_gemms must be >= 1, got ", num_gemms);
  recipe_.validate();
  for (Fp8Direction d : {Fp8Direction::forward, Fp8Direction::backward}) {
    const int64_t k = num_slots(d);
    scale_[dir(d)] = ones({k}, {.dtype = DType::float32});
    history_[dir(d)] = zeros({recipe_.amax_history_len, k}, {.dtype = DType::float32});
  }
}

int64_t FP8Meta::num_slots(Fp8Direction d) const {
  return num_gemms_ * (d == Fp8Direction::forward ? kForwardSlotsPerGemm : kBackwardSlotsPerGemm);
}

void FP8Meta::check_slot(const char* op, Fp8Direction d, int64_t slot) const {
  FABRIC_CHECK(slot >= 0 && slot < num_slots(d), IndexError, "FP8Meta.", op, ": slot ", slot,
               " out of range for the ", fp8_direction_name(d), " meta with ", num_slots(d),
               " slots (", num_gemms_, " GEMMs)");
}

float FP8Meta::scale_at(Fp8Direction d, int64_t slot) const {
  check_slot("scale_at", d, slot);
  return scale_ptr(d)[slot];
}

float FP8Meta::scale_inv_at(Fp8Direction d, int64_t slot) const { return 1.0f / scale_at(d, slot); }

float FP8Meta::amax_at(Fp8Direction d, int64_t row, int64_t slot) const {
  check_slot("amax_at", d, slot);
  flush_recorded_amaxes(d);
  FABRIC_CHECK(row >= 0 && row < recipe_.amax_history_len, IndexError, "FP8Meta.amax_at: row ", row,
               " out of range for amax_history_len ", recipe_.amax_history_len);
  return history_ptr(d)[row * num_slots(d) + slot];
}

void FP8Meta::record_amax_value(Fp8Direction d, int64_t slot, float amax) {
  check_slot("record_amax", d, slot);
  float& row0 = history_ptr(d)[slot];
  row0 = nan_max(row0, amax);
  used_ = true;
}

void FP8Meta::record_amax(Fp8Direction d, int64_t slot, const Tensor& x) {
  check_slot("record_amax", d, slot);
  FABRIC_CHECK(x.defined(), ValueError, "FP8Meta.record_amax: undefined tensor for ",
               fp8_direction_name(d), " slot ", slot);
  FABRIC_CHECK(x.is_floating_point(), DTypeError,
               "FP8Meta.record_amax: expected a floating tensor for ", fp8_direction_name(d),
               " slot ", slot, ", got ", dtype_name(x.dtype()));
  if (x.numel() == 0) {
    used_ = true;
    return;
  }
  NoGradGuard no_grad;
  Tensor v = x.detach();
  if (is_fp8(v.dtype())) v = v.to(DType::float32);  // the elementwise kernels take no fp8
  Tensor a = abs(v);
  // NaN elements drop out (NaN != NaN), as the fused amax kernel's fmaxf skips them.
  // Kept where x lives (on every device, so the CPU's tests check the same path).
  pending_amax_[dir(d)].emplace_back(slot, amax(where(eq(a, a), a, 0.0)));
  used_ = true;
}

void FP8Meta::flush_recorded_amaxes(Fp8Direction d) const { flush_all({this}, d); }

void flush_recorded_amaxes(const std::vector<std::shared_ptr<FP8Meta>>& metas, Fp8Direction d) {
  std::vector<const FP8Meta*> raw;
  raw.reserve(metas.size());
  for (const auto& m : metas) {
    if (m) raw.push_back(m.get());
  }
  FP8Meta::flush_all(raw, d);
}

void FP8Meta::flush_all(const std::vector<const FP8Meta*>& metas, Fp8Direction d) {
  // The pending amaxes of all metas, grouped by device and dtype: one stack and one read back
  // per group (in a training step, one group).
  struct Group {
    Device device;
    DType dtype;
    std::vector<Tensor> values;
    std::vector<std::pair<const FP8Meta*, int64_t>> slots;
  };
  std::vector<Group> groups;
  for (const FP8Meta* m : metas) {
    for (const auto& [slot, value] : m->pending_amax_[dir(d)]) {
      auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) {
        return x.device == value.device() && x.dtype == value.dtype();
      });
      if (g == groups.end()) g = groups.insert(groups.end(), {value.device(), value.dtype()});
      g->values.push_back(value);
      g->slots.emplace_back(m, slot);
    }
  }
  if (groups.empty()) return;
  NoGradGuard no_grad;
  for (const Group& g : groups) {
    const std::vector<float> host =
        stack(g.values).to(Device::cpu()).to(DType::float32).to_vector<float>();
    for (size_t i = 0; i < host.size(); ++i) {
      float& row0 = g.slots[i].first->history_ptr(d)[g.slots[i].second];
      row0 = nan_max(row0, host[i]);
    }
  }
  // Cleared once folded: a failed read back leaves them pending for the next reader.
  for (const FP8Meta* m : metas) m->pending_amax_[dir(d)].clear();
}

void FP8Meta::set_amax_reducer(AmaxReducer reducer, int64_t world_size) {
  FABRIC_CHECK(world_size >= 1, ValueError,
               "FP8Meta.set_amax_reducer: world_size must be >= 1, got ", world_size);
  FABRIC_CHECK(world_size == 1 || static_cast<bool>(reducer), ValueError,
               "FP8Meta.set_amax_reducer: world_size ", world_size, " needs a reducer");
  reducer_ = std::move(reducer);
  world_size_ = world_size;
}

void FP8Meta::reduce_row0(Fp8Direction d) {
  if (!(recipe_.reduce_amax && world_size_ > 1 && reducer_)) return;
  const int64_t k = num_slots(d);
  float* h = history_ptr(d);
  Tensor row0 = empty({k}, {.dtype = DType::float32});
  std::memcpy(row0.data<float>(), h, static_cast<size_t>(k) * sizeof(float));
  reducer_(row0);
  FABRIC_CHECK(row0.defined() && row0.shape() == Shape{k}, ShapeError,
               "FP8Meta.update: the amax reducer must leave a (", k, ") tensor, got ",
               row0.defined() ? shape_str(row0.shape()) : std::string("an undefined tensor"));
  const std::vector<float> reduced = row0.to_vector<float>();
  std::memcpy(h, reduced.data(), static_cast<size_t>(k) * sizeof(float));
}

void FP8Meta::reduce_current_amaxes() {
  for (Fp8Direction d : {Fp8Direction::forward, Fp8Direction::backward}) {
    flush_recorded_amaxes(d);
    reduce_row0(d);
  }
}

void FP8Meta::update(Fp8Direction d) {
  flush_recorded_amaxes(d);
  const int64_t k = num_slots(d);
  const int64_t len = recipe_.amax_history_len;
  float* h = history_ptr(d);
  float* s = scale_ptr(d);
  reduce_row0(d);

  const float scaled_max = recipe_.scaled_max_for(d);
  for (int64_t j = 0; j < k; ++j) {
    const float last = h[j];
    // The fused kernel skips a slot whose (reduced) current amax is exactly 0: no roll, and the
    // amax it would compute stays 0, which keeps the scale.
    if (last == 0.0f) continue;
    float amax_all = last;
    for (int64_t i = 1; i < len; ++i) amax_all = nan_max(amax_all, h[i * k + j]);
    // Roll up by one: row i takes row i+1, the last row takes the old row 0; then row 0 = 0.
    for (int64_t i = 0; i + 1 < len; ++i) h[i * k + j] = h[(i + 1) * k + j];
    h[(len - 1) * k + j] = last;
    h[j] = 0.0f;

    const float amax = recipe_.amax_compute_algo == AmaxComputeAlgo::max ? amax_all : last;
    float scale = (std::isfinite(amax) && amax > 0.0f) ? scaled_max / amax : s[j];
    if (std::isinf(scale)) scale = FLT_MAX;  // tiny amax: the best the fp32 scale can do
    s[j] = scale;
  }
  used_ = true;
}

void FP8Meta::set_recipe(const DelayedScaling& recipe) {
  recipe.validate();
  for (Fp8Direction d : {Fp8Direction::forward, Fp8Direction::backward}) flush_recorded_amaxes(d);
  if (recipe.amax_history_len != recipe_.amax_history_len) {
    // Both resized before either is swapped in, so a failure leaves the meta as it was.
    Tensor resized[2];
    for (int i = 0; i < 2; ++i)
      resized[i] = resize_amax_history(history_[i], recipe.amax_history_len);
    NoGradGuard no_grad;
    // set_data, not a new handle: FP8Linear's _extra_state buffers alias these tensors.
    for (int i = 0; i < 2; ++i) history_[i].set_data(resized[i]);
  }
  recipe_ = recipe;
}

FP8MetaState FP8Meta::state_dict() const {
  FP8MetaState st;
  for (Fp8Direction d : {Fp8Direction::forward, Fp8Direction::backward}) {
    flush_recorded_amaxes(d);
    st.tensors[std::string("scale_") + suffix(d)] = scale_[dir(d)].clone();
    st.tensors[std::string("amax_history_") + suffix(d)] = history_[dir(d)].clone();
  }
  st.extra = recipe_.to_state();
  st.extra["num_gemms"] = num_gemms_;
  return st;
}

void FP8Meta::load_state_dict(const FP8MetaState& state) {
  PrecisionState recipe_kv = state.extra;
  auto ng = recipe_kv.find("num_gemms");
  FABRIC_CHECK(ng != recipe_kv.end(), KeyError, "FP8Meta.load_state_dict: missing key 'num_gemms'");
  const int64_t* ngv = std::get_if<int64_t>(&ng->second);
  FABRIC_CHECK(ngv != nullptr, ValueError,
               "FP8Meta.load_state_dict: 'num_gemms' must be an integer");
  FABRIC_CHECK(*ngv == num_gemms_, ValueError, "FP8Meta.load_state_dict: the state has num_gemms ",
               *ngv, ", this module has ", num_gemms_);
  recipe_kv.erase(ng);
  for (const char* key :
       {"margin", "fp8_format", "amax_history_len", "amax_compute_algo", "reduce_amax"}) {
    FABRIC_CHECK(recipe_kv.count(key), KeyError, "FP8Meta.load_state_dict: missing recipe key '",
                 key, "'");
  }
  const DelayedScaling recipe = DelayedScaling::from_map(recipe_kv);

  Tensor new_scale[2], new_history[2];
  for (Fp8Direction d : {Fp8Direction::forward, Fp8Direction::backward}) {
    const int64_t k = num_slots(d);
    const std::string sk = std::string("scale_") + suffix(d);
    const std::string hk = std::string("amax_history_") + suffix(d);
    for (const std::string& key : {sk, hk}) {
      auto it = state.tensors.find(key);
      FABRIC_CHECK(it != state.tensors.end() && it->second.defined(), KeyError,
                   "FP8Meta.load_state_dict: missing tensor '", key, "'");
      FABRIC_CHECK(it->second.dtype() == DType::float32, DTypeError, "FP8Meta.load_state_dict: '",
                   key, "' must be float32, got ", dtype_name(it->second.dtype()));
    }
    const Tensor& sc = state.tensors.at(sk);
    const Tensor& hi = state.tensors.at(hk);
    FABRIC_CHECK(sc.shape() == Shape{k}, ShapeError, "FP8Meta.load_state_dict: '", sk,
                 "' has shape ", shape_str(sc.shape()), ", expected (", k, ")");
    FABRIC_CHECK(hi.shape() == (Shape{recipe.amax_history_len, k}), ShapeError,
                 "FP8Meta.load_state_dict: '", hk, "' has shape ", shape_str(hi.shape()),
                 ", expected (", recipe.amax_history_len, ", ", k, ") from amax_history_len ",
                 recipe.amax_history_len);
    // Fresh contiguous CPU copies: the meta never aliases the caller's tensors.
    new_scale[dir(d)] = sc.detach().to(Device::cpu()).contiguous().clone();
    new_history[dir(d)] = hi.detach().to(Device::cpu()).contiguous().clone();
  }
  recipe_ = recipe;
  for (int i = 0; i < 2; ++i) {
    scale_[i] = new_scale[i];
    history_[i] = new_history[i];
    pending_amax_[i].clear();  // recorded into the history the state replaces
  }
  used_ = true;
}

}  // namespace fabric::precision
