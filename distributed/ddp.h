// Data-parallel gradient synchronisation (PyTorch DDP's Reducer, in our words): parameters are
// grouped into buckets of about bucket_cap_mb in reverse registration order (the order backward
// produces their gradients); when every gradient of a bucket has been accumulated, the bucket is
// copied into one flat buffer and all-reduced (average) asynchronously, so communication overlaps
// the rest of backward. finalize() — called once backward returned — launches what is left, waits,
// and writes the averaged gradients back.
//
// Buckets are launched strictly in index order on every rank, so all ranks issue the same sequence
// of collectives even when gradients become ready in a different order.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distributed/process_group.h"
#include "nn/module.h"

namespace fabric::distributed {

struct DDPOptions {
  double bucket_cap_mb = 25.0;
  // The first bucket (the last layers) closes early so that its all-reduce starts while most of
  // backward is still ahead (PyTorch's 1 MiB first bucket).
  double first_bucket_mb = 1.0;
  // Parameters that received no gradient in a backward are reduced as zeros; a parameter no rank
  // used keeps an undefined .grad (as in PyTorch). Without it, such a parameter is an error naming it.
  bool find_unused_parameters = false;
  // Broadcast rank 0's parameters and buffers at construction.
  bool broadcast_at_init = true;
  // torch DDP's broadcast_buffers: before every forward, rank 0's buffers (BatchNorm's running
  // statistics) replace the other ranks', so all compute with and save the same ones. Modules
  // whose ddp_broadcasts_buffers() is false keep their own (FP8 metadata, quantization state).
  bool broadcast_buffers = true;
};

class GradientReducer {
 public:
  GradientReducer(nn::Module& module, std::shared_ptr<ProcessGroup> pg, const DDPOptions& options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // While disabled (no_backward_sync), gradients only accumulate locally.
  void set_sync(bool enabled) { sync_ = enabled; }
  bool sync() const { return sync_; }
  // After backward: launches the buckets not yet launched, waits for all and copies the averaged
  // gradients back into .grad. No-op when sync is off or nothing was accumulated.
  void finalize();
  // After a backward that raised: waits for the buckets it launched (dropping their errors) and
  // starts over, so that none of that backward's gradients reach the next one.
  void abandon();

  int64_t num_buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Parameter indices (in module.named_parameters() order) of each bucket.
  std::vector<std::vector<int64_t>> bucket_assignment() const;

 private:
  struct Bucket {
    std::vector<int64_t> params;  // indices into params_
    Tensor flat;                  // contiguous buffer of the bucket's dtype
    std::vector<int64_t> offsets; // element offset of each parameter in flat
    int64_t pending = 0;          // gradients not yet ready in this backward
    WorkPtr work;
  };
  void on_grad_ready(int64_t param_index);
  void launch_ready_buckets();
  void launch(Bucket& b);
  void reset_for_next_backward();

  std::shared_ptr<ProcessGroup> pg_;
  DDPOptions options_;
  std::vector<std::string> names_;
  std::vector<Tensor> params_;
  std::vector<int64_t> bucket_of_;  // per parameter
  std::vector<uint8_t> ready_;      // per parameter, this backward
  std::vector<Bucket> buckets_;
  size_t next_bucket_ = 0;
  bool sync_ = true;
  bool any_ready_ = false;
  std::shared_ptr<bool> alive_;     // hooks outlive the reducer: they check this first
};

// Broadcasts every parameter and buffer of `module` from `root` (coalesced per dtype).
void broadcast_module_states(nn::Module& module, ProcessGroup& pg, int root = 0);

}  // namespace fabric::distributed
