// ZeRO stages 1 and 2 (DeepSpeed's sharded data parallelism, spec §10) over any process group:
// each optimizer group's trainable parameters live in one flat float32 buffer, padded to a
// multiple of 2 x world_size elements; rank r owns partition r, and the user's optimizer steps
// only that partition (so its state exists only for it). Gradients are reduce-scattered into the
// partition's gradient; after the step every rank all-gathers the updated partitions. Checkpoints
// and clip_gradients see the unsharded picture: the optimizer state is gathered into PyTorch's
// single-process layout, and gradient norms are reduced across ranks.
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

  // Broadcasts rank 0's parameters and buffers.
  void setup_module(nn::Module& module) override;
  // Flattens each group's trainable parameters into the group's flat buffer (the module's
  // parameters become views of it) and gives the optimizer this rank's partition instead.
  // Stage 2 also hooks every parameter so that its gradient is reduce-scattered, bucket by bucket,
  // during backward and freed right after. Float32 parameters only (the 32-true and *-mixed
  // precisions); NotImplementedError for 16-true/bf16-true modules.
  void setup_optimizer(optim::Optimizer& optimizer, nn::Module* module) override;
  // Stage 1: reduce-scatters the (accumulated) module gradients into the partitions' gradients;
  // the module gradients stay until the step. Stage 2: finishes the buckets backward started.
  void post_backward() override;
  // While disabled, gradients only accumulate in the module's parameters (every module of this
  // strategy: the flag is strategy-wide because buckets are ordered across all of them).
  void set_backward_sync(nn::Module& module, bool enabled) override;
  // All-gathers the updated partitions into the flat buffers (when the step ran), and frees the
  // stage-1 module gradients.
  void post_optimizer_step(optim::Optimizer& optimizer, bool stepped) override;
  // Checkpoints hold the single-process layout (any world size, or one process, loads them).
  bool supports_checkpoints() const override { return true; }
  bool supports_clip_gradients() const override { return true; }
  // The norm over this rank's partition gradients, reduced across ranks in float64 (p-norms: the
  // sum of |g|^p; inf: the max), then every partition gradient scaled as clip_grad_norm_ does.
  // By value needs nothing special: Fabric clamps the partition gradients (the optimizer's).
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

  // Layout of one sharded group (tests, benchmarks).
  struct GroupLayout {
    int64_t numel = 0;      // trainable elements
    int64_t padded = 0;     // multiple of 2 x world_size
    int64_t partition = 0;  // padded / world_size
    int64_t num_buckets = 0;
  };
  // The sharded groups of `optimizer` (empty when it is not sharded, e.g. on one process).
  std::vector<GroupLayout> layout(const optim::Optimizer& optimizer) const;

 private:
  struct Group;
  struct Sharded;
  void on_grad_ready(Group& g, size_t param);
  void launch_ready();
  void launch(size_t bucket);
  void reset_backward();
  // The entry sharding `optimizer` (null if none): its address and its groups' shards match (an
  // address alone may be reused by a new optimizer once the old one is gone).
  const Sharded* find(const optim::Optimizer& optimizer) const;
  static bool owns(const Sharded& s, const optim::Optimizer& optimizer);

  int64_t bucket_elements_ = 200'000'000;
  std::vector<std::unique_ptr<Sharded>> sharded_;
  // Every bucket of every group, in the one order all ranks issue their reduce-scatters.
  std::vector<std::pair<Group*, size_t>> order_;
  size_t next_ = 0;
  bool sync_ = true;
  bool any_ready_ = false;
  std::shared_ptr<bool> alive_;  // hooks outlive the strategy: they check this first
};

}  // namespace fabric::distributed
