// FP8Linear and the thread-local fp8 region with its delayed-scaling update points (spec §8).
#include "precision/fp8_linear.h"

#include <algorithm>
#include <utility>

#include "autograd/grad_mode.h"
#include "precision/fp8_ops.h"
#include "tensor/autocast.h"
#include "tensor/ops.h"

namespace fabric::precision {

namespace {

// Holds the meta tensors as buffers so they appear under "<layer>._extra_state.<name>".
class FP8ExtraState : public nn::Module {
 public:
  std::string type_name() const override { return "FP8ExtraState"; }
  // Per-rank delayed-scaling state: TE reduces amaxes (reduce_amax), DDP never broadcasts them.
  bool ddp_broadcasts_buffers() const override { return false; }
};

// The fp8 region of this thread. The region's metas are held by shared_ptr so a layer destroyed
// mid-region cannot leave a dangling entry; those waiting for a backward are held weakly, since a
// forward with grad mode on may never see one (a model freed after it must not stay alive here).
struct Fp8RegionState {
  std::vector<bool> enabled;                        // one entry per open region
  std::vector<std::shared_ptr<FP8Meta>> ran;        // forward metas to update on exit
  std::vector<std::weak_ptr<FP8Meta>> pending_bwd;  // backward metas to update after backward
};

thread_local Fp8RegionState g_region;

void add_unique(std::vector<std::shared_ptr<FP8Meta>>& v, const std::shared_ptr<FP8Meta>& m) {
  if (std::find(v.begin(), v.end(), m) == v.end()) v.push_back(m);
}

// Adds `m` once, dropping the entries of metas freed since.
void add_pending(std::vector<std::weak_ptr<FP8Meta>>& v, const std::shared_ptr<FP8Meta>& m) {
  std::erase_if(v, [](const std::weak_ptr<FP8Meta>& w) { return w.expired(); });
  for (const auto& w : v)
    if (w.lock() == m) return;
  v.push_back(m);
}

void region_exit() {
  const bool enabled = g_region.enabled.back();
  g_region.enabled.pop_back();
  if (!g_region.enabled.empty()) return;
  std::vector<std::shared_ptr<FP8Meta>> ran = std::move(g_region.ran);
  g_region.ran.clear();
  // The amaxes the region's GEMMs recorded (kept on their device), read back once for all.
  flush_recorded_amaxes(ran, Fp8Direction::forward);
  // Without grad mode (inference), or when the outermost region itself is disabled (an enabled
  // one nested inside it ran the GEMMs), the recorded amaxes stay in row 0 and join the next
  // update, as Transformer Engine's fp8_autocast_exit.
  if (!enabled || !grad_enabled()) return;
  for (const auto& m : ran) {
    m->update(Fp8Direction::forward);
    add_pending(g_region.pending_bwd, m);
  }
}

const char* const kMetaNames[4] = {"scale_fwd", "amax_history_fwd", "scale_bwd",
                                   "amax_history_bwd"};

}  // namespace

bool fp8_enabled() { return !g_region.enabled.empty() && g_region.enabled.back(); }

ContextGuard fp8_autocast(bool enabled) {
  g_region.enabled.push_back(enabled);
  return ContextGuard([] { region_exit(); });
}

int64_t fp8_update_backward_metas() {
  std::vector<std::shared_ptr<FP8Meta>> pending;
  for (const auto& w : g_region.pending_bwd)
    if (auto m = w.lock()) pending.push_back(std::move(m));
  g_region.pending_bwd.clear();
  flush_recorded_amaxes(pending, Fp8Direction::backward);  // one read back for all of them
  for (const auto& m : pending) m->update(Fp8Direction::backward);
  return static_cast<int64_t>(pending.size());
}

FP8Linear::FP8Linear(const FP8LinearOptions& options) : options_(options) {
  // nn::Linear draws the parameters exactly as torch does; adopt its handles.
  nn::Linear init({.in_features = options.in_features, .out_features = options.out_features,
                   .bias = options.bias});
  weight = register_parameter("weight", init.weight.detach());
  if (options.bias) bias = register_parameter("bias", init.bias.detach());
  meta_ = std::make_shared<FP8Meta>(1, options.recipe);
  bind_meta_buffers();
}

FP8Linear::FP8Linear(AdoptTag, const FP8LinearOptions& options, const Tensor& w, const Tensor& b)
    : options_(options) {
  weight = register_parameter("weight", w, w.requires_grad());
  if (b.defined()) bias = register_parameter("bias", b, b.requires_grad());
  meta_ = std::make_shared<FP8Meta>(1, options.recipe);
  bind_meta_buffers();
}

std::shared_ptr<FP8Linear> FP8Linear::from_linear(const nn::Linear& linear,
                                                  const DelayedScaling& recipe,
                                                  std::optional<DType> fallback_dtype) {
  const nn::LinearOptions& lo = linear.options();
  FP8LinearOptions o{.in_features = lo.in_features,
                     .out_features = lo.out_features,
                     .bias = linear.bias.defined(),
                     .recipe = recipe,
                     .fallback_dtype = fallback_dtype};
  return std::shared_ptr<FP8Linear>(new FP8Linear(AdoptTag{}, o, linear.weight, linear.bias));
}

void FP8Linear::bind_meta_buffers() {
  if (!extra_state_) {
    extra_state_ = std::make_shared<FP8ExtraState>();
    register_module("_extra_state", extra_state_);
  }
  const std::vector<Tensor> ts = meta_tensors();
  // Float32 under Module::to(dtype), as Transformer Engine's fp8_meta, which is no module buffer.
  for (size_t i = 0; i < ts.size(); ++i) {
    extra_state_->register_buffer(kMetaNames[i], ts[i]);
    extra_state_->keep_buffer_dtype(kMetaNames[i]);
  }
}

std::vector<Tensor> FP8Linear::meta_tensors() const {
  return {meta_->scale(Fp8Direction::forward), meta_->amax_history(Fp8Direction::forward),
          meta_->scale(Fp8Direction::backward), meta_->amax_history(Fp8Direction::backward)};
}

void FP8Linear::ensure_meta_float32() {
  NoGradGuard no_grad;
  for (const Tensor& t : meta_tensors()) {
    if (t.dtype() != DType::float32 || !t.is_contiguous()) {
      t.set_data(t.to(DType::float32).contiguous());
    }
  }
}

void FP8Linear::set_recipe(const DelayedScaling& recipe) {
  recipe.validate();
  ensure_meta_float32();
  // The meta swaps resized histories into the same handles, which the buffers alias.
  meta_->set_recipe(recipe);
  options_.recipe = recipe;
}

void FP8Linear::prepare_loaded_state(const std::string& prefix, nn::StateDict& state) const {
  const int64_t len = meta_->recipe().amax_history_len;
  for (Fp8Direction d : {Fp8Direction::forward, Fp8Direction::backward}) {
    const std::string key = prefix + "_extra_state." +
                            (d == Fp8Direction::forward ? "amax_history_fwd" : "amax_history_bwd");
    const Tensor* h = state.find(key);
    if (h == nullptr || !h->defined() || h->dim() != 2 || h->size(0) < 1 || h->size(0) == len ||
        h->size(1) != meta_->num_slots(d)) {
      continue;
    }
    state.insert(key, resize_amax_history(*h, len));
  }
}

void FP8Linear::load_fp8_state(const FP8MetaState& state) {
  meta_->load_state_dict(state);
  options_.recipe = meta_->recipe();
  bind_meta_buffers();  // the meta now holds fresh tensors
}

DType FP8Linear::fallback_dtype() const {
  return options_.fallback_dtype.value_or(weight.dtype());
}

Tensor FP8Linear::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined() && x.is_floating_point(), DTypeError,
               "FP8Linear.forward: expected a floating input, got ",
               x.defined() ? std::string(dtype_name(x.dtype())) : std::string("an undefined tensor"));
  const DeviceType dev = x.device().type;
  const DType compute = autocast_enabled(dev) ? autocast_state(dev).dtype : fallback_dtype();
  const Tensor xc = x.dtype() == compute ? x : x.to(compute);
  if (!fp8_enabled()) {
    const Tensor w = weight.dtype() == compute ? weight : weight.to(compute);
    const Tensor b = !bias.defined() || bias.dtype() == compute ? bias : bias.to(compute);
    return linear(xc, w, b);
  }
  ensure_meta_float32();
  Tensor y = fp8_linear(*meta_, 0, xc, weight, bias);
  add_unique(g_region.ran, meta_);
  return y;
}

std::string FP8Linear::extra_repr() const {
  return detail::cat("in_features=", options_.in_features, ", out_features=",
                     options_.out_features, ", bias=", bias.defined() ? "true" : "false",
                     ", recipe=DelayedScaling(", meta_->recipe().str(), ")");
}

}  // namespace fabric::precision
