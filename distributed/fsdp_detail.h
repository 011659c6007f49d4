// The inside of a FullyShardedModule (shared by fsdp.cpp, which runs the collectives around forward
// and backward, and fsdp_state.cpp, which converts state dicts and optimizer state).
#pragma once
#include <string>
#include <vector>

#include "distributed/fsdp.h"

namespace fabric::distributed {

// One flat parameter: the parameters of one unit that share an optimizer group and trainability,
// laid out back to back in `full` (padded to a multiple of the shard-group size S). Shard rank r
// holds elements [r * shard_numel, (r + 1) * shard_numel).
struct FullyShardedModule::Flat {
  int64_t index = 0;                // in its unit's flats
  std::vector<Tensor> params;       // the module's parameter handles (their identity is kept)
  std::vector<std::string> names;   // state_dict names, relative to the root
  std::vector<int64_t> offsets;     // element offset of each parameter in the flat parameter
  int64_t group = -1;               // the optimizer group it belongs to (-1: none yet)
  bool trainable = true;
  int64_t numel = 0, padded = 0, shard_numel = 0;
  DType dtype = DType::float32;     // the shard's (master) dtype: the parameters' dtype at setup
  DType compute = DType::float32;   // param_dtype: the all-gather's and the parameters' dtype
  Tensor shard;                     // (shard_numel,) leaf: what the optimizer steps
  Tensor full;                      // (padded,) compute dtype; released while resharded
  bool aliased = false;             // full is the shard itself (S == 1, same dtype): never released
  // In flight.
  Tensor send;                      // the shard as sent by the all-gather
  WorkPtr gather_work;
  std::vector<uint8_t> ready;       // per parameter: its gradient arrived in this backward
  int64_t pending = 0;              // parameters still waiting for their gradient
  bool reduced = false;
  bool local_grad = false;          // a parameter had a gradient when this rank packed them
  Tensor reduce_out;
  WorkPtr reduce_work;
  fsdp_detail::Call reduce_call;  // of reduce_work (errors name it)
};

struct FullyShardedModule::Unit {
  int64_t index = 0;  // in units_
  nn::Module* module = nullptr;
  std::string name;                 // dotted path from the root ("" for the root)
  bool is_root = false;
  // false: a BatchNorm unit under an auto-wrap policy, which keeps its parameters, gradient
  // reduction and buffers in their own dtype (spec §9's _module_classes_to_ignore).
  bool mixed_precision = true;
  std::vector<Tensor> params;       // every parameter the unit owns, in traversal order
  std::vector<std::string> names;
  std::vector<std::unique_ptr<Flat>> flats;
  bool gathered = false, gathering = false;
  fsdp_detail::Call gather_call;    // of the all-gathers in flight (errors name it)
  bool backward_started = false;    // its pre-backward hook ran in this backward
  std::vector<int64_t> hook_handles;
};

// Spec §9: divide by `pre` before the SUM reduction and by world / pre after it.
double gradient_predivide_factor(int world_size);

}  // namespace fabric::distributed
