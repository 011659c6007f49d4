// The host side of the deferred range checks: message text and the bookkeeping of armed checks.
#include "kernels/cuda/deferred_check_logic.h"

#include "tensor/error.h"

namespace fabric::cuda {

int64_t offending_value(const DeferredCheckRecord& r) {
  return r.lowest < 0 ? static_cast<int64_t>(r.lowest) : static_cast<int64_t>(r.highest);
}

std::string deferred_check_message(const DeferredCheckRecord& r, const RangeErrorText* text) {
  if (text && text->kind == RangeErrorText::Kind::value_count)
    return detail::cat(text->head, r.count, text->tail,
                       ". Raised by an earlier CUDA op (first at element ", r.position,
                       " of its input) and reported at this synchronisation: CUDA kernels "
                       "check values as they run, as PyTorch's device-side asserts; later ops run "
                       "normally");
  const int64_t v = offending_value(r);
  std::string msg =
      text ? detail::cat(text->head, v, text->tail)
           : detail::cat("index ", v, " is out of range (valid: 0 to ", r.bound - 1,
                         "; the op's description was dropped: over ", DeferredCheckSites::kMaxTexts,
                         " checks ran since the last synchronisation)");
  return detail::cat(
      msg, ". Raised by an earlier CUDA op (element ", r.position,
      " of its indices) and reported at this synchronisation: CUDA kernels check "
      "indices as they run, as PyTorch's device-side asserts; later ops run normally");
}

uint64_t DeferredCheckSites::arm(RangeErrorText text) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = ++last_id_;
  texts_.emplace(id, std::move(text));
  while (texts_.size() > kMaxTexts) texts_.erase(texts_.begin());
  return id;
}

DeferredCheckSites::Read DeferredCheckSites::begin_read() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {last_id_ > covered_, last_id_};
}

std::optional<std::string> DeferredCheckSites::finish_read(const Read& read,
                                                           const DeferredCheckRecord& r,
                                                           RangeErrorText::Kind* kind) {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<std::string> msg;
  if (kind) *kind = RangeErrorText::Kind::index;
  if (r.site != 0) {
    const auto it = texts_.find(r.site);
    const RangeErrorText* text = it == texts_.end() ? nullptr : &it->second;
    msg = deferred_check_message(r, text);
    if (kind && text) *kind = text->kind;
  }
  // Kernels armed before the previous read began were queued before this one: they are done.
  if (last_upto_ > covered_) covered_ = last_upto_;
  if (read.armed_upto > last_upto_) last_upto_ = read.armed_upto;
  texts_.erase(texts_.begin(), texts_.upper_bound(covered_));
  return msg;
}

size_t DeferredCheckSites::texts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return texts_.size();
}

}  // namespace fabric::cuda
