// ZeRO stages 1 and 2 (DeepSpeed's sharded data parallelism, spec §10) over any process group:
// each optimizer group's trainable parameters live in one flat buffer, padded to a multiple of
// 2 x world_size elements; rank r owns partition r, and the user's optimizer steps only a float32
// tensor for that partition (so its state exists only for it). In float32 that tensor is the
// partition of the flat buffer itself; in a half dtype (the 16/bf16 modes) the flat buffer and the
// module's parameters are half and the optimizer steps an fp32 master copy of the partition, as
// DeepSpeed does. Gradients are reduce-scattered (in the flat buffer's dtype) into the partition's
// gradient, which a half mode keeps in the half dtype until the step (prepare_optimizer_gradients,
// called by FabricOptimizer.step and Fabric.clip_gradients, makes it float32: DeepSpeed too creates
// the fp32 gradient only inside its step, and spec §10's per-rank formula counts no other); after
// the step every rank all-gathers the updated partitions. Step through the FabricOptimizer: a raw
// optimizer.step() neither removes a 16-mixed loss scale nor all-gathers the updated partitions
// into the module's parameters. Checkpoints and clip_gradients see the unsharded picture: the
// optimizer state is gathered into PyTorch's single-process layout, module state holds the fp32
// master values, and gradient norms are reduced across ranks. On one process, a half mode runs
// the same way over a group of one rank (the fp32 master is the whole model, as DeepSpeed's on one
// GPU); float32 on one process is left unsharded.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "distributed/strategy.h"

namespace fabric::distributed {

class ZeroStrategy : public Strategy {
 public:
  // options.zero_stage must be 1 or 2 (ValueError otherwise).
  explicit ZeroStrategy(StrategyOptions options);
  ~ZeroStrategy() override;

  int stage() const { return options_.zero_stage; }
  // Elements of one partition that one reduce-scatter bucket covers (DeepSpeed's
  // reduce_bucket_size; Lightning's default 2e8). Takes effect for optimizers set up afterwards.
  void set_reduce_bucket_elements(int64_t n);
  int64_t reduce_bucket_elements() const { return bucket_elements_; }
  // The dtype of the flat buffers and of the module's trainable parameters: float16 or bfloat16
  // (the half modes: float32 parameters are cast at setup_optimizer, each rank keeping an fp32
  // master partition), or float32 (the default: the parameters' own dtype, float32 or a half dtype
  // a precision plugin cast the module to). Fabric sets it from DeepSpeedPrecision. ValueError for
  // other dtypes; takes effect for optimizers set up afterwards.
  void set_half_dtype(DType dtype);
  DType half_dtype() const { return half_dtype_; }

  // Broadcasts rank 0's parameters and buffers.
  void setup_module(nn::Module& module) override;
  // Flattens each group's trainable parameters into the group's flat buffer (the module's
  // parameters become views of it, in its dtype) and gives the optimizer this rank's float32
  // partition instead (half: a master copy made from the parameters' values before the cast).
  // Stage 2 also hooks every parameter so that its gradient is reduce-scattered, bucket by bucket,
  // during backward and freed right after. Parameters must be float32, float16 or bfloat16
  // (NotImplementedError otherwise); DTypeError when a group mixes dtypes the flat buffer cannot
  // hold (with no half dtype set: different dtypes; with one: other than float32 or it).
  void setup_optimizer(optim::Optimizer& optimizer, nn::Module* module) override;
  // Stage 1: reduce-scatters the (accumulated) module gradients into the partitions' gradients;
  // the module gradients stay until the step (half: moved into one flat gradient buffer whose slice
  // of this rank receives the result, as DeepSpeed's). Stage 2: finishes the buckets backward
  // started. Gradients travel pre-divided by the world size in the flat buffer's dtype. Float32:
  // the result is the partition's gradient (stage 1 replaces it: the module gradients hold
  // everything since the step; stage 2 adds). Half: it stays in the half dtype as the master's
  // .grad (a later synchronised backward adds to it in that dtype, as DeepSpeed accumulates; an
  // optimizer.zero_grad() in between discards it) until prepare_optimizer_gradients.
  void post_backward() override;
  void abandon_backward() override;
  // Half: every master partition's half gradient becomes float32 (added to a float32 one that an
  // earlier call left), and the half buffers go. Float32 groups: nothing to do.
  void prepare_optimizer_gradients(optim::Optimizer& optimizer) override;
  // While disabled, gradients only accumulate in the module's parameters (every module of this
  // strategy: the flag is strategy-wide because buckets are ordered across all of them).
  void set_backward_sync(nn::Module& module, bool enabled) override;
  // All-gathers the updated partitions into the flat buffers (when the step ran; half: the fp32
  // master is first cast into this rank's slice, so the half values travel), and frees the
  // stage-1 module gradients.
  void post_optimizer_step(optim::Optimizer& optimizer, bool stepped) override;
  // Drops the module gradients of the optimizer's groups (stage 1 keeps them until the step, and
  // either stage while no_backward_sync accumulates) and the half flat gradient buffer.
  void discard_gradients(optim::Optimizer& optimizer) override;
  // Checkpoints hold the single-process layout (any world size, or one process, loads them).
  bool supports_checkpoints() const override { return true; }
  bool supports_clip_gradients() const override { return true; }
  // Prepares the optimizer's gradients first (DeepSpeedPrecision's grad-norm function calls this
  // too). The norm over this rank's partition gradients, reduced across ranks in float64
  // (p-norms: the sum of |g|^p; inf: the max), then every partition gradient scaled as
  // clip_grad_norm_ does. By value needs nothing special: Fabric clamps the partition gradients
  // (the optimizer's, prepared).
  Tensor clip_grad_norm(optim::Optimizer& optimizer, double max_norm, double norm_type,
                        bool error_if_nonfinite) override;
  // Collective: all-gathers every partitioned state tensor (e.g. AdamW's exp_avg) and cuts the
  // flat buffer back into one tensor per original parameter, shaped like it; scalar state (step)
  // is repeated for each; parameters that were not trainable get none; indices as before sharding.
  optim::OptimizerState optimizer_state_to_save(const optim::Optimizer& optimizer) override;
  // The inverse, local: each state tensor of the original parameters is flattened like the
  // parameters and this rank's partition kept (zeros for padding and for trainable parameters
  // without state). ValueError when the groups or their parameter counts differ.
  void load_optimizer_state(optim::Optimizer& optimizer, const optim::OptimizerState& state) override;
  // Collective: the module's state_dict with every parameter held in a half flat buffer replaced
  // by its float32 master values (gathered from every rank), so a checkpoint keeps full precision.
  nn::StateDict module_state_to_save(nn::Module& module) override;
  // Local: loads into the module (half parameters get the values rounded), then copies this
  // rank's partition of each such parameter's values into the fp32 master.
  nn::LoadResult load_module_state(nn::Module& module, const nn::StateDict& state, bool strict) override;

  // Layout of one sharded group (tests, benchmarks).
  struct GroupLayout {
    int64_t numel = 0;      // trainable elements
    int64_t padded = 0;     // multiple of 2 x world_size
    int64_t partition = 0;  // padded / world_size
    int64_t num_buckets = 0;
    DType dtype = DType::float32;  // of the flat buffer (the module's parameters, the collectives)
  };
  // The sharded groups of `optimizer` (empty when it is not sharded, e.g. float32 on one process).
  std::vector<GroupLayout> layout(const optim::Optimizer& optimizer) const;

 private:
  struct Group;
  struct Sharded;
  // `group` is the Group's token: the hook's parameter may outlive it.
  void on_grad_ready(const std::weak_ptr<const bool>& group, Group* g, size_t param);
  void launch_ready();
  void launch(size_t bucket);
  void reset_backward();
  void gather_module_grads(Group& g);
  void finish_reduction(Group& g);
  // Every bucket of every group, in the order all ranks issue their reduce-scatters.
  void build_flat(Group& g);
  void rebuild_order();
  // Drops the entries of destroyed optimizers, only between backwards (no bucket of this backward
  // launched yet): every rank destroys at the same program point, so every rank drops the same
  // collectives from the same backward on.
  void forget_destroyed_optimizers();
  // The entry sharding `optimizer` (null if none): a live entry whose address and groups' shards
  // match (an address alone may be reused by a new optimizer once the old one is gone).
  const Sharded* find(const optim::Optimizer& optimizer) const;
  static bool owns(const Sharded& s, const optim::Optimizer& optimizer);
  // The strategy's process group, or on one process a group of one rank (its collectives copy).
  ProcessGroup& group();
  // Whether setup_optimizer would give `optimizer` a half flat buffer (the half dtype is set, or
  // a trainable parameter is half already): on one process only these are sharded.
  bool has_half_parameters(const optim::Optimizer& optimizer) const;

  int64_t bucket_elements_ = 200'000'000;
  DType half_dtype_ = DType::float32;
  std::vector<std::unique_ptr<Sharded>> sharded_;
  // Every bucket of every group, in the one order all ranks issue their reduce-scatters.
  std::vector<std::pair<Group*, size_t>> order_;
  size_t next_ = 0;
  bool sync_ = true;
  bool any_ready_ = false;
  std::shared_ptr<ProcessGroup> self_group_;  // group() on one process
  std::shared_ptr<bool> alive_;  // hooks outlive the strategy: they check this first
};

}  // namespace fabric::distributed
