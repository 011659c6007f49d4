// The check that the ranks of a FullyShardedModule issued the same collectives in the same order.
//
// They do only while every rank runs the same units in the same order, each as often, and runs
// each unit's backward on every rank or on none. Data-dependent control flow breaks that (a unit
// behind a branch one rank takes, a loss term one rank leaves out), and the collectives then meet
// the wrong peers. Where they differ in kind or size, the process group fails them on every rank
// (Gloo compares the calls); where they do not (an all-gather or reduce-scatter of one unit meeting
// an equal-sized one of another), the values would be swapped silently. So each rank logs its
// collectives, and once per step (the end of backward, where the gradients are about to reach the
// shards; or the end of a forward that no backward follows) the ranks compare the log's length and
// hash, inside the all-reduce of gradient flags that FSDP makes there anyway (ZeRO-3, which makes
// none, gets one of 4 integers): nothing is added per collective. Only when they differ are the
// logs exchanged, to name the first collective where the ranks part. Errors of the collectives
// themselves get this rank's part added: which collective it was waiting for, its last ones.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "distributed/process_group.h"

namespace fabric::distributed::fsdp_detail {

// One FSDP collective as the ranks compare them.
struct Call {
  enum Kind : int64_t { none = -1, all_gather = 0, reduce = 1 };
  // Only for messages: ranks may reach the same collective for different reasons (a flat parameter
  // whose gradients all arrived in backward on one rank may be reduced at the end on another).
  enum Reason : int64_t {
    forward = 0,
    forward_prefetch,
    backward,
    backward_prefetch,
    end_of_backward
  };
  int64_t kind = all_gather;
  int64_t unit = 0;   // index in the module's units
  int64_t flat = -1;  // reduce: the flat parameter's index in its unit; all-gather: -1 (every flat)
  int64_t reason = forward;

  bool same_collective(const Call& other) const {
    return kind == other.kind && unit == other.unit && flat == other.flat;
  }
};

// Names a unit by index ("unit 'h.0'"); `flat` >= 0 names one of its flat parameters.
using UnitNamer = std::function<std::string(int64_t unit, int64_t flat)>;

// "all-gathers the parameters of unit 'a' for its forward"; `reduction` names the gradient
// reduction ("reduce-scatters", "all-reduces").
std::string describe(const Call& call, const UnitNamer& name, const char* reduction);

// One rank's collectives since the last check.
class CallLog {
 public:
  void record(const Call& call);
  // The fields the ranks compare, to be MAX-reduced: (count, -count, hash, -hash). After a MAX
  // all-reduce, agrees() says whether every rank had the same.
  std::vector<int64_t> fingerprint() const;
  static bool agrees(const int64_t* reduced);
  // Collective on `group` (every rank calls it after a disagreement): every rank's call at the
  // first position where a rank's log differs from rank 0's (kind none: its log ended there).
  std::vector<Call> first_disagreement(ProcessGroup& group, const Device& device) const;
  void clear();
  // The last `n` calls, described, oldest first (for errors of the collectives themselves).
  std::string last(size_t n, const UnitNamer& name, const char* reduction) const;

 private:
  std::vector<Call> calls_;
  uint64_t hash_ = 1469598103934665603ull;  // FNV-1a
};

// "rank 0 all-gathers ..., but rank 1 ..." for the first rank whose call differs from rank 0's.
std::string describe_disagreement(const std::vector<Call>& calls, const UnitNamer& name,
                                  const char* reduction, const char* end);

// After the ranks parted ways their queues of collectives no longer line up, and one left
// without its peer would wait until the group's timeout (so would the group's destructor, which
// drains them). A group that compares the calls of its ranks before moving data (Gloo) is broken
// here by a broadcast from this rank's own root, which no peer can match (each issues its own,
// from its own root, or an FSDP collective): every rank's group fails from that point on, and
// what is still queued fails at once. Other groups (NCCL) are left alone: a mismatched call
// there would hang instead.
void break_group(ProcessGroup& group);

}  // namespace fabric::distributed::fsdp_detail
