// The FP8 meta state of one module (spec §8): per-GEMM scales and amax histories for the forward
// (input, weight, output) and backward (grad_output, grad_input) tensors, the delayed-scaling
// update, the optional amax all-reduce, and save/restore.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "precision/fp8_recipe.h"
#include "precision/precision_state.h"
#include "tensor/tensor.h"

namespace fabric::precision {

// Slot of a tensor within its GEMM; the meta index is gemm * slots_per_gemm + slot.
enum class Fp8ForwardSlot : int64_t { input = 0, weight = 1, output = 2 };
enum class Fp8BackwardSlot : int64_t { grad_output = 0, grad_input = 1 };

// What a checkpoint holds: the four tensors (CPU float32 copies) and the scalar entries
// (recipe fields plus num_gemms).
struct FP8MetaState {
  std::map<std::string, Tensor> tensors;  // scale_fwd (K), amax_history_fwd (len, K), *_bwd
  PrecisionState extra;                   // margin, fp8_format, ..., num_gemms
};

// `history` ((len0, K) float32) cut or zero-padded to `len` rows, as Transformer Engine's
// adjust_amax_history_length does: a shorter history keeps rows 0..len-1 (row 0 is the current
// step; after rolls the dropped last rows are the newest, which TE drops all the same), a longer
// one gets zero rows appended at the end. A fresh contiguous CPU tensor. ValueError: len < 1;
// ShapeError: history not 2-D.
Tensor resize_amax_history(const Tensor& history, int64_t len);

class FP8Meta {
 public:
  static constexpr int64_t kForwardSlotsPerGemm = 3;
  static constexpr int64_t kBackwardSlotsPerGemm = 2;

  // In-place MAX all-reduce of a 1-D float32 CPU tensor over the amax group (what a process
  // group's all_reduce(MAX) does); used when recipe.reduce_amax and world_size > 1.
  using AmaxReducer = std::function<void(Tensor& amaxes)>;

  // ValueError: num_gemms < 1, or a recipe that fails validate().
  explicit FP8Meta(int64_t num_gemms = 1, const DelayedScaling& recipe = {});

  static int64_t index(int64_t gemm, Fp8ForwardSlot s) {
    return gemm * kForwardSlotsPerGemm + static_cast<int64_t>(s);
  }
  static int64_t index(int64_t gemm, Fp8BackwardSlot s) {
    return gemm * kBackwardSlotsPerGemm + static_cast<int64_t>(s);
  }

  int64_t num_gemms() const { return num_gemms_; }
  const DelayedScaling& recipe() const { return recipe_; }
  int64_t num_slots(Fp8Direction d) const;
  // The element format (and its max) tensors of a direction are cast to.
  Fp8Format format(Fp8Direction d) const { return recipe_.format_for(d); }

  // (K) float32, initially 1, and (len, K) float32, initially 0; row 0 is the current step.
  // Returned handles alias the live state.
  const Tensor& scale(Fp8Direction d) const { return scale_[dir(d)]; }
  const Tensor& amax_history(Fp8Direction d) const {
    flush_recorded_amaxes(d);
    return history_[dir(d)];
  }
  float scale_at(Fp8Direction d, int64_t slot) const;
  float scale_inv_at(Fp8Direction d, int64_t slot) const;  // f32(1 / scale)
  float amax_at(Fp8Direction d, int64_t row, int64_t slot) const;

  // amax_history[0][slot] = max(that, max|x|), NaNs ignored (the fused kernel's fmaxf); an inf
  // element records inf. DTypeError for non-floating x, IndexError for a bad slot. max|x| stays
  // on x's device until flush_recorded_amaxes (update(), the fp8 region's exit and every reader of
  // the history call it): reading it back per GEMM would make the host wait for a GPU at every
  // FP8 GEMM.
  void record_amax(Fp8Direction d, int64_t slot, const Tensor& x);
  // The same with a precomputed amax (NaN ignored).
  void record_amax_value(Fp8Direction d, int64_t slot, float amax);
  // Folds the amaxes record_amax left on a device into row 0 of the history: one read back (one
  // wait) per device for all of them. Nothing to do (no wait) when none is pending.
  void flush_recorded_amaxes(Fp8Direction d) const;

  // The delayed-scaling update of every slot of a direction (spec §8 steps 1-4, fused-kernel
  // rules): reduce row 0 if configured; a slot whose row-0 amax is exactly 0 is left alone (no
  // roll, scale kept); otherwise amax = max over the history (row 0 included, NaN skipped) or
  // row 0 alone ("most_recent"), the history rolls up by one with row 0 zeroed, and
  // scale = scaled_max / amax when amax is finite and > 0 (inf -> FLT_MAX), else kept.
  void update(Fp8Direction d);

  // MAX-reduces row 0 of both histories now (when update() would: recipe.reduce_amax and
  // world_size > 1), collective over the amax group. Amaxes recorded without grad mode (an
  // evaluation) wait in row 0 per rank until the next update reduces them; a checkpoint written
  // from rank 0 must hold every rank's, and reducing early changes nothing (MAX is idempotent).
  void reduce_current_amaxes();

  // Installs the all-reduce used by update() when recipe.reduce_amax and world_size > 1.
  // ValueError: world_size < 1, or world_size > 1 with an empty reducer.
  void set_amax_reducer(AmaxReducer reducer, int64_t world_size);
  int64_t world_size() const { return world_size_; }

  // Whether any amax was recorded or any update ran (the reference saves an empty state for
  // a module that never used FP8).
  bool used() const { return used_; }

  // Replaces the recipe, keeping the scales. A different amax_history_len resizes both histories
  // with resize_amax_history, as Transformer Engine does when a module meets a recipe of another
  // history length; the amax_history() handles keep their identity and take the new data.
  // ValueError for a recipe that fails validate(); nothing is changed then.
  void set_recipe(const DelayedScaling& recipe);

  FP8MetaState state_dict() const;
  // Restores recipe, scales and histories. ValueError / KeyError / ShapeError / DTypeError name
  // the key when the state is incomplete, of another num_gemms, or its shapes disagree with its
  // amax_history_len; nothing is changed then.
  void load_state_dict(const FP8MetaState& state);

 private:
  static int dir(Fp8Direction d) { return d == Fp8Direction::forward ? 0 : 1; }
  void check_slot(const char* op, Fp8Direction d, int64_t slot) const;
  void reduce_row0(Fp8Direction d);
  float* scale_ptr(Fp8Direction d) const { return scale_[dir(d)].data<float>(); }
  float* history_ptr(Fp8Direction d) const { return history_[dir(d)].data<float>(); }
  static void flush_all(const std::vector<const FP8Meta*>& metas, Fp8Direction d);

  int64_t num_gemms_;
  DelayedScaling recipe_;
  Tensor scale_[2];
  Tensor history_[2];
  // Per direction, (slot, 0-d float32 max|x| on a device) not yet in history_'s row 0.
  mutable std::vector<std::pair<int64_t, Tensor>> pending_amax_[2];
  friend void flush_recorded_amaxes(const std::vector<std::shared_ptr<FP8Meta>>& metas,
                                    Fp8Direction d);
  AmaxReducer reducer_;
  int64_t world_size_ = 1;
  bool used_ = false;
};

// flush_recorded_amaxes of every meta, with one read back per device for all of them (the fp8
// region's exit and the backward update flush every module's meta at once).
void flush_recorded_amaxes(const std::vector<std::shared_ptr<FP8Meta>>& metas, Fp8Direction d);

}  // namespace fabric::precision
