// FSDP (fully sharded data parallelism, spec §9) over any process group, on CPU (Gloo) as on GPU.
// The module is cut into units: every module whose type the auto-wrap policy names, then the root,
// which takes whatever parameters no other unit took. Each unit keeps its parameters in flat
// parameters (one per optimizer group and trainability), padded to a multiple of the shard-group
// size; a rank holds only its shard, which is what the optimizer steps. The unit's parameters are
// views of an unsharded buffer that is all-gathered (in param_dtype) before the unit's forward and,
// under FULL_SHARD, again before its backward, and released after use; gradients are
// reduce-scattered (in reduce_dtype, divided as spec §9) into the shard's gradient as soon as the
// unit's backward is done. ZeRO stage 3 is this machinery with every module that holds parameters
// as a unit.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "distributed/fsdp_call_order.h"
#include "distributed/process_group.h"
#include "nn/module.h"
#include "optim/optimizer.h"

namespace fabric::distributed {

enum class ShardingStrategy { full_shard, shard_grad_op, no_shard, hybrid_shard };
// "FULL_SHARD", "SHARD_GRAD_OP", "NO_SHARD", "HYBRID_SHARD" (any case); ValueError listing them.
ShardingStrategy parse_sharding_strategy(const std::string& name);
const char* to_string(ShardingStrategy s);

struct FSDPOptions {
  ShardingStrategy sharding_strategy = ShardingStrategy::full_shard;
  // type_name()s of the modules that become units (e.g. {"Block"}); empty: the root is the only unit.
  std::vector<std::string> auto_wrap_policy;
  // type_name()s of the modules whose forward is recomputed in backward instead of saved.
  std::vector<std::string> activation_checkpointing_policy;
  // Keep the shards (parameters, gradients, hence the optimizer state) in pinned host memory. On
  // the CPU they are there already; on CUDA the unsharded buffers stay on the device.
  bool cpu_offload = false;
  // How Fabric.save writes the model and optimizer: "sharded" (one file per rank + metadata) or
  // "full" (gathered to rank 0, the single-process layout).
  std::string state_dict_type = "sharded";
  // Mixed precision (FSDPPrecision fills these): the dtype of the all-gather and of compute, of the
  // gradient reduction, and of the buffers. Unset: the parameters' own dtype. Floating buffers
  // are cast to buffer_dtype at the first forward (not at setup) and checkpoints hold them in
  // their original dtype, as PyTorch's FSDP does (spec §9).
  std::optional<DType> param_dtype, reduce_dtype, buffer_dtype;
  // The shards' dtype (what the optimizer steps, what checkpoints hold): floating parameters are
  // cast to it when they are flattened. Unset: the parameters' own dtype. ZeRO-3 under a true half
  // mode sets float32 with param_dtype the half dtype: DeepSpeed's fp32 master partitions beside
  // a half module.
  std::optional<DType> master_dtype;
  // Issue the next unit's all-gather while the current one computes (forward and backward).
  bool forward_prefetch = true;
  bool backward_prefetch = true;
  // Divide gradients by the world size before the sum, as DeepSpeed does (ZeRO-3), instead of
  // FSDP's pre/post split (spec §9).
  bool divide_before_reduce = false;
  // A flat parameter none of whose parameters got a gradient on any rank in a backward keeps no
  // gradient, so the optimizer skips its shard (no weight decay, no state), as PyTorch's FSDP
  // leaves such a FlatParameter's grad None. (A parameter unused beside used ones in the same flat
  // parameter is stepped with a zero gradient, as in PyTorch's FSDP, whose _reset_is_grad_none
  // gives every parameter of a flat parameter that got a gradient one.) Off for ZeRO-3: DeepSpeed
  // steps its fp32 partitions whole.
  bool skip_flats_without_gradient = true;
  // What the messages call this machinery ("ZeRO-3" when deepspeed_stage_3 runs on it), so that
  // an error names the strategy the user chose.
  std::string label = "FSDP";
};

// What a rank holds of one original parameter (sharded checkpoints): elements
// [offset, offset + data.numel()) of the parameter flattened in row-major order.
struct ShardPiece {
  std::string name;  // the parameter's state_dict name ("transformer.h.0.attn.c_attn.weight")
  Shape shape;       // the whole parameter's shape
  int64_t offset = 0;
  Tensor data;       // 1-D
};

// The units, flat parameters and collectives of one FSDP-wrapped module. Built by FSDPStrategy
// (and by ZeRO-3) at setup; usable on its own with any process group. Every rank must run the same
// units in the same order each step (and each unit's backward on every rank or on none): ranks
// that do not get an error on every rank naming the units they ran (fsdp_call_order.h).
class FullyShardedModule {
 public:
  // shard_pg: the ranks a flat parameter is split across; replicate_pg (HYBRID_SHARD only, else
  // null): the ranks holding the same shard, across which shard gradients are all-reduced.
  // `world_size` is the whole data-parallel size (gradient division). `unit_filter` (optional)
  // overrides auto_wrap_policy: true for the modules that become units.
  FullyShardedModule(nn::Module& root, std::shared_ptr<ProcessGroup> shard_pg,
                     std::shared_ptr<ProcessGroup> replicate_pg, int world_size, FSDPOptions options,
                     std::function<bool(const nn::Module&)> unit_filter = {});
  ~FullyShardedModule();
  FullyShardedModule(const FullyShardedModule&) = delete;
  FullyShardedModule& operator=(const FullyShardedModule&) = delete;

  nn::Module& root() const { return root_; }
  // Whether the module this wraps still exists (root() must not be used once it is destroyed).
  bool root_alive() const { return !root_lifetime_.expired(); }
  // Whether this wraps `module`: alive, same address and the same parameter handles.
  bool wraps(const nn::Module& module) const;
  // Whether `param` is one of the module's parameters (a handle this sharded module manages).
  bool holds(const Tensor& param) const;
  const FSDPOptions& options() const { return options_; }

  // Replaces the parameters of `optimizer` that belong to this module by the shards of their flat
  // parameters (regrouping the flat parameters by optimizer group first when needed). Parameters
  // of other modules stay as they are. ValueError when a parameter is already sharded elsewhere.
  void shard_optimizer(optim::Optimizer& optimizer);
  bool owns_optimizer(const optim::Optimizer& optimizer) const;

  // Waits for the gradient reductions backward launched, reduces what backward left (parameters
  // without a gradient count as zeros), adds the results to the shards' gradients (not to those of
  // flat parameters no rank gave a gradient: see skip_flats_without_gradient) and reshards.
  void finish_backward();
  // After a Fabric.backward that raised: lets its gathers and reductions finish (their errors
  // dropped), reshards every unit and starts the next backward clean, its collective log too
  // (every rank failed alike).
  void abandon_backward();
  // While disabled, NO_SHARD accumulates unreduced gradients locally (as DDP); the sharded
  // strategies keep reduce-scattering every backward into the shard gradients, so no unsharded
  // gradient outlives its unit's backward (the memory the reference's no_sync costs).
  void set_gradient_sync(bool enabled) { sync_ = enabled; }

  // The shards the optimizer of `optimizer` steps, and for clipping: true for a shard tensor.
  bool is_shard(const Tensor& t) const;
  // Whether a shard's elements are disjoint across the replicate group too (false under
  // HYBRID_SHARD: replicas hold equal copies, so a norm counts them on replica 0 only).
  bool counts_shard_norm() const;
  // The group a flat parameter is split across (null under NO_SHARD).
  const std::shared_ptr<ProcessGroup>& shard_group() const { return shard_pg_; }

  // ---- state (collective: every rank of the shard group calls these in the same order) ----------
  // The module's state_dict in the single-process layout (parameters gathered, in their original
  // dtype: float32 master values for mixed precision), on every rank. Buffers are in their
  // original dtype too: exact before the first forward; after it, the compute copy (buffer_dtype)
  // cast back, as PyTorch's FULL_STATE_DICT holds them.
  nn::StateDict full_state_dict();
  // Each rank keeps its shard of `state` (the single-process layout); buffers are copied whole,
  // in their original dtype (cast again for compute at the next forward).
  nn::LoadResult load_full_state_dict(const nn::StateDict& state, bool strict);
  // This rank's pieces of every parameter (master dtype) and, on shard rank 0, the whole buffers
  // (original dtype, as full_state_dict).
  std::vector<ShardPiece> local_state_pieces() const;
  // Loads a checkpoint cut into pieces by any world size: `read(name, offset, numel)` returns
  // elements [offset, offset + numel) of the flattened parameter or buffer `name` (or an undefined
  // tensor when the checkpoint lacks it: a missing key).
  nn::LoadResult load_state_pieces(const std::function<Tensor(const std::string&, int64_t, int64_t)>& read,
                                   bool strict);
  // Optimizer state: single-process layout (gathered; one entry per original parameter) and back.
  optim::OptimizerState full_optimizer_state(const optim::Optimizer& optimizer);
  void load_full_optimizer_state(optim::Optimizer& optimizer, const optim::OptimizerState& state);
  // This rank's pieces of each per-element optimizer state tensor (e.g. AdamW's exp_avg), named
  // "<param index>.<key>" in the single-process layout's numbering, plus what every rank holds
  // alike: the group options, the scalar entries (e.g. "step") and which keys were cut in pieces.
  struct OptimizerPieces {
    optim::OptimizerState scalars;  // param_groups and the entries that are not per element
    std::map<int64_t, std::vector<std::string>> element_keys;  // param index -> keys in pieces
    std::vector<ShardPiece> pieces;  // empty on replicas (they hold the same shards)
  };
  OptimizerPieces local_optimizer_pieces(const optim::Optimizer& optimizer) const;
  // `saved.scalars` and `saved.element_keys` as saved (by any world size); `read` as for
  // load_state_pieces, with the piece names above.
  void load_optimizer_pieces(optim::Optimizer& optimizer, const OptimizerPieces& saved,
                             const std::function<Tensor(const std::string&, int64_t, int64_t)>& read);

  // Layout (tests, benchmarks).
  struct UnitInfo {
    std::string name;  // "" for the root
    int64_t numel = 0, padded = 0, shard_numel = 0;
    int64_t flat_params = 0;
  };
  std::vector<UnitInfo> units() const;
  // Bytes of unsharded parameter buffers currently allocated (0 between steps under FULL_SHARD).
  int64_t gathered_bytes() const;

  struct Unit;
  struct Flat;

 private:
  void build_units(const std::function<bool(const nn::Module&)>& is_unit);
  void build_flats(Unit& u, const std::function<int64_t(const Tensor&)>& group_of);
  void install_hooks(Unit& u);
  Tensor pre_forward(Unit& u, const Tensor& input);
  Tensor post_forward(Unit& u, const Tensor& output);
  void pre_backward(Unit& u);
  void on_grad_ready(Unit& u, size_t flat, size_t param);
  // All-gathers every flat of u (no-op if already gathered); `why` (a fsdp_detail::Call::Reason)
  // goes into the announcement.
  void gather(Unit& u, bool wait, int64_t why);
  void wait_gather(Unit& u);
  void reshard(Unit& u);
  void reduce(Unit& u, Flat& f, int64_t why);
  // ---- the ranks' collectives compared (fsdp_call_order.cpp) ----
  // The group the collectives of forward and backward go on (null: they make none), and the device
  // its tensors are on.
  ProcessGroup* call_group() const;
  Device call_device() const;
  fsdp_detail::UnitNamer unit_namer() const;
  const char* reduction_name() const;  // "reduce-scatters" or "all-reduces"
  // Compares this rank's collectives since the last check with the other ranks' inside one MAX
  // all-reduce over call_group(), on `device`, that reduces `extra` too (returned reduced). When
  // they differ: breaks the group and throws DistributedError on every rank, naming the first
  // collective where the ranks part (`end` names this point: "the end of backward"); the module
  // cannot be used again.
  std::vector<int64_t> compare_calls(std::vector<int64_t> extra, const Device& device,
                                     const char* end);
  // Inside a catch block for the error of an FSDP collective: rethrows it (the same type) with
  // what this rank was doing ("which all-gathers ..."), its last collectives and what every rank
  // must do added.
  [[noreturn]] void rethrow_with_context(const std::string& doing) const;
  // DistributedError after compare_calls failed.
  void throw_if_broken() const;
  // Per flat parameter finish_backward reduces (in unit order), 1 where this rank had a gradient
  // for one of its parameters. Empty when nothing needs it.
  std::vector<int64_t> local_gradient_flags() const;
  void prefetch_after(const Unit& u, bool backward);
  void reset_backward();
  bool reshard_after_forward(const Unit& u) const;
  // buffer_dtype: casts the floating buffers for compute (once, until a load restores them).
  void cast_buffers_for_compute();
  // A buffer as checkpoints hold it: in the dtype it had before cast_buffers_for_compute.
  Tensor buffer_to_save(const std::string& name, const Tensor& buffer) const;
  // Loads `src` into buffer `name`, in its original dtype (the next forward casts it again).
  void load_buffer(const std::string& name, Tensor& buffer, const Tensor& src);

  nn::Module& root_;
  std::shared_ptr<ProcessGroup> shard_pg_, replicate_pg_;
  int world_size_ = 1, shard_rank_ = 0, shard_size_ = 1;
  FSDPOptions options_;
  std::vector<std::unique_ptr<Unit>> units_;  // children before parents; the root last
  std::vector<Unit*> forward_order_;          // recorded in the first forward
  bool order_recorded_ = false;
  bool sync_ = true;
  bool in_backward_ = false;
  fsdp_detail::CallLog calls_;  // this rank's collectives since compare_calls
  std::string broken_;          // why the ranks cannot go on (compare_calls), or empty
  // buffer_dtype: whether the buffers hold their compute copies, and each cast buffer's dtype before.
  bool buffers_cast_ = false;
  std::map<std::string, DType> buffer_dtypes_;
  std::vector<const optim::Optimizer*> optimizers_;
  // Each set-up optimizer's parameters, group by group, as they were before sharding: the
  // numbering of the single-process optimizer-state layout.
  std::map<const optim::Optimizer*, std::vector<std::vector<Tensor>>> original_params_;
  // original_params_ of an optimizer this module set up (ValueError otherwise).
  const std::vector<std::vector<Tensor>>& original_params(const optim::Optimizer& optimizer) const;
  std::shared_ptr<bool> alive_;
  std::weak_ptr<const void> root_lifetime_;
};

}  // namespace fabric::distributed
