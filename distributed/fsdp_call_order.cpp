// The log and check that let the ranks of a FullyShardedModule see that they issued different
// collectives, and the errors that say so (fsdp_call_order.h).
#include "distributed/fsdp_call_order.h"

#include <algorithm>

#include "distributed/collective_staging.h"
#include "distributed/fsdp.h"
#include "distributed/fsdp_detail.h"
#include "tensor/error.h"
#include "tensor/factory.h"

namespace fabric::distributed::fsdp_detail {

namespace {

constexpr int64_t kFields = 4;
constexpr uint64_t kHashBits = (uint64_t{1} << 62) - 1;  // so that -hash fits an int64

const char* why(int64_t reason) {
  switch (reason) {
    case Call::forward:
      return "for its forward";
    case Call::forward_prefetch:
      return "ahead of its forward (prefetch)";
    case Call::backward:
      return "for its backward";
    case Call::backward_prefetch:
      return "ahead of its backward (prefetch)";
    case Call::end_of_backward:
      return "at the end of backward";
  }
  return "";
}

}  // namespace

std::string describe(const Call& c, const UnitNamer& name, const char* reduction) {
  if (c.kind == Call::all_gather)
    return detail::cat("all-gathers the parameters of ", name(c.unit, -1), " ", why(c.reason));
  const char* when =
      c.reason == Call::end_of_backward ? "at the end of backward" : "as its backward finished";
  return detail::cat(reduction, " the gradients of ", name(c.unit, c.flat), " ", when);
}

void CallLog::record(const Call& call) {
  calls_.push_back(call);
  for (int64_t v : {call.kind, call.unit, call.flat}) {
    hash_ ^= static_cast<uint64_t>(v);
    hash_ *= 1099511628211ull;
  }
}

std::vector<int64_t> CallLog::fingerprint() const {
  const auto n = static_cast<int64_t>(calls_.size());
  const auto h = static_cast<int64_t>(hash_ & kHashBits);
  return {n, -n, h, -h};
}

bool CallLog::agrees(const int64_t* reduced) {
  // max(n) == min(n) and max(h) == min(h) on every rank alike.
  return reduced[0] == -reduced[1] && reduced[2] == -reduced[3];
}

std::vector<Call> CallLog::first_disagreement(ProcessGroup& group, const Device& device) const {
  const int size = group.size();
  // Every log ends with a `none` entry: a rank whose log is shorter shows it there.
  std::vector<int64_t> mine;
  for (const Call& c : calls_) mine.insert(mine.end(), {c.kind, c.unit, c.flat, c.reason});
  mine.insert(mine.end(), {Call::none, -1, -1, 0});
  Tensor count = from_vector<int64_t>({static_cast<int64_t>(mine.size())}).to(device);
  Tensor counts = empty({size}, {.dtype = DType::int64, .device = device});
  staged_all_gather(group, counts, count);
  const std::vector<int64_t> n = counts.to(Device::cpu()).to_vector<int64_t>();
  int64_t total = 0;
  for (int64_t c : n) total += c;
  Tensor all = empty({total}, {.dtype = DType::int64, .device = device});
  staged_all_gather_v(group, all, from_vector<int64_t>(mine).to(device), n);
  const std::vector<int64_t> v = all.to(Device::cpu()).to_vector<int64_t>();
  std::vector<std::vector<Call>> logs(static_cast<size_t>(size));
  for (int r = 0, at = 0; r < size; at += static_cast<int>(n[size_t(r)]), ++r)
    for (int64_t i = 0; i < n[size_t(r)]; i += kFields)
      logs[size_t(r)].push_back({v[at + i], v[at + i + 1], v[at + i + 2], v[at + i + 3]});
  size_t longest = 0;
  for (const auto& log : logs) longest = std::max(longest, log.size());
  for (size_t i = 0; i < longest; ++i) {
    std::vector<Call> at_i;
    for (const auto& log : logs)
      at_i.push_back(i < log.size() ? log[i] : Call{Call::none, -1, -1, 0});
    for (const Call& c : at_i)
      if (!c.same_collective(at_i.front())) return at_i;
  }
  return {};  // the hashes collided: nothing to name
}

void CallLog::clear() {
  calls_.clear();
  hash_ = CallLog().hash_;
}

std::string CallLog::last(size_t n, const UnitNamer& name, const char* reduction) const {
  std::string out;
  for (size_t i = calls_.size() > n ? calls_.size() - n : 0; i < calls_.size(); ++i)
    out += (out.empty() ? "" : "; ") + describe(calls_[i], name, reduction);
  return out.empty() ? "none" : out;
}

std::string describe_disagreement(const std::vector<Call>& calls, const UnitNamer& name,
                                  const char* reduction, const char* end) {
  size_t r = 1;
  while (r < calls.size() && calls[r].same_collective(calls[0])) ++r;
  if (r == calls.size()) return "the ranks' collectives differ";
  auto one = [&](const Call& c) {
    return c.kind == Call::none ? detail::cat("issues no more collectives before ", end)
                                : describe(c, name, reduction);
  };
  return detail::cat("rank 0 ", one(calls[0]), ", but rank ", r, " ", one(calls[r]));
}

void break_group(ProcessGroup& group) {
  if (group.backend() != "gloo" || group.size() < 2) return;
  Tensor t = zeros({1}, {.dtype = DType::int64});
  // Not waited for: it fails once it meets a peer's call, and everything queued after it with it.
  group.broadcast(t, group.rank());
}

}  // namespace fabric::distributed::fsdp_detail

namespace fabric::distributed {

using fsdp_detail::Call;

namespace {

std::string rule(const std::string& label) {
  return detail::cat(
      "Every rank must run the same ", label,
      " units in the same order each step, call each as often, and use each unit's output in the "
      "loss on every rank or on none: a unit that data-dependent control flow runs, or leaves out "
      "of the loss, on some ranks only makes the ranks issue different collectives. Run it on "
      "every rank (multiplying its output by 0 where it should not count)");
}

}  // namespace

ProcessGroup* FullyShardedModule::call_group() const {
  // Forward and backward use one group: the shard group's all-gathers and reduce-scatters, or
  // without one (NO_SHARD) the replicas' all-reduces. HYBRID_SHARD's reductions across replicas
  // come at the end of backward, in one fixed order, once the shard group's calls agreed.
  if (shard_size_ > 1) return shard_pg_.get();
  return replicate_pg_.get();
}

fsdp_detail::UnitNamer FullyShardedModule::unit_namer() const {
  return [this](int64_t unit, int64_t flat) {
    const Unit& u = *units_.at(static_cast<size_t>(unit));
    const std::string whole = u.is_root
                                  ? detail::cat("the root module (", u.module->type_name(), ")")
                                  : "unit '" + u.name + "'";
    // A unit has one flat parameter per optimizer group and trainability: most have one.
    return flat < 0 || u.flats.size() < 2 ? whole
                                          : detail::cat("flat parameter ", flat, " of ", whole);
  };
}

const char* FullyShardedModule::reduction_name() const {
  return shard_size_ > 1 ? "reduce-scatters" : "all-reduces";
}

std::vector<int64_t> FullyShardedModule::compare_calls(std::vector<int64_t> extra,
                                                       const Device& device, const char* end) {
  ProcessGroup* group = call_group();
  // NO_SHARD under no_backward_sync issues no collective at all (as DDP's no_sync): nor does this.
  if (!group || (!sync_ && shard_size_ == 1)) {
    calls_.clear();
    return extra;
  }
  std::vector<int64_t> fields = calls_.fingerprint();
  fields.insert(fields.end(), extra.begin(), extra.end());
  // `device` is the flat parameters' (the group's); a module without any leaves it on the host,
  // which the staging takes to the group's device.
  Tensor t = from_vector<int64_t>(fields).to(device);
  staged_all_reduce(*group, t, ReduceOp::max);
  const std::vector<int64_t> reduced = t.to(Device::cpu()).to_vector<int64_t>();
  if (!fsdp_detail::CallLog::agrees(reduced.data())) {
    const std::vector<Call> calls = calls_.first_disagreement(*group, device);
    broken_ =
        detail::cat(options_.label, ": the ranks do not run the same units: ",
                    fsdp_detail::describe_disagreement(calls, unit_namer(), reduction_name(), end),
                    ". ", rule(options_.label),
                    ". This module and its process group cannot be used again");
    fsdp_detail::break_group(*group);
    throw DistributedError(broken_);
  }
  calls_.clear();
  return {reduced.begin() + 4, reduced.end()};
}

void FullyShardedModule::rethrow_with_context(const std::string& doing) const {
  const std::string context =
      detail::cat(options_.label, ", rank ", call_group() ? call_group()->rank() : 0, " (", doing,
                  "): ");
  const std::string after = detail::cat(
      ". ", options_.label, "'s collectives line up across ranks only while they run the same units: ",
      rule(options_.label), ". This rank's ", options_.label,
      " collectives since the last check, the last ones: ",
      calls_.last(4, unit_namer(), reduction_name()));
  try {
    throw;
  } catch (const TimeoutError& e) {
    throw TimeoutError(context + e.what() + after);
  } catch (const DistributedError& e) {
    throw DistributedError(context + e.what() + after);
  } catch (const ShapeError& e) {
    throw ShapeError(context + e.what() + after);
  } catch (const DTypeError& e) {
    throw DTypeError(context + e.what() + after);
  } catch (const ValueError& e) {
    throw ValueError(context + e.what() + after);
  }
}

void FullyShardedModule::throw_if_broken() const {
  if (!broken_.empty()) throw DistributedError(broken_);
}

}  // namespace fabric::distributed
