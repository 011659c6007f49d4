// The data loader: batches from a Dataset in a seeded, resumable order (epochs over a shuffled,
// DistributedSampler-strided order or a torch.utils.data sampler's order, or random windows), made
// ahead by a background thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/datasets.h"
#include "runtime/samplers.h"
#include "tensor/device.h"

namespace fabric::data {

struct DataLoaderOptions {
  int64_t batch_size = 1;  // per rank
  bool shuffle = false;    // indexed datasets (window datasets always draw random windows)
  bool drop_last = false;  // indexed: drop each epoch's last, incomplete batch
  uint64_t seed = 0;
  // Distributed training: this process's share, in torch.utils.data.DistributedSampler's order.
  int64_t rank = 0;
  int64_t world_size = 1;
  bool sampler_drop_last =
      false;             // DistributedSampler(drop_last=True): drop the tail instead of padding
  int64_t prefetch = 2;  // batches made ahead by a background thread; 0: made inside next()
  // Where next() hands each batch out (Fabric::setup_dataloaders sets the Fabric's device, as the
  // reference's _FabricDataLoader moves batches); unset: where the dataset made it. The copy runs
  // on the consumer's thread, so that it is ordered with the consumer's work on that device.
  std::optional<Device> device;
  // torch's DataLoader(sampler=...): each epoch's order is sampler->epoch_indices(epoch) (torch's
  // indices for its sampler's (epoch + 1)-th iter()), batched by batch_size and drop_last as
  // without one; batches_per_epoch() counts sampler->size() indices. The order comes from the
  // sampler's own seed, not `seed`: resume with a sampler built as the saved loader's was. With
  // world_size > 1 each rank takes its share of the sampler's epoch as Lightning's
  // DistributedSamplerWrapper gives it: DistributedSampler(shuffle=False, drop_last=
  // sampler_drop_last) over the sampler's list (every rank builds the same sampler). An indexed
  // dataset only, with shuffle off ("sampler option is mutually exclusive with shuffle");
  // ValueError otherwise, and for a sampler index outside the dataset (when the loader is built
  // where the sampler knows its index_bound(), else by next() when the epoch's order is drawn).
  std::shared_ptr<const Sampler> sampler;
};

// Where a loader is, as plain integers a checkpoint can store; set_state() resumes from it.
struct DataLoaderState {
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;    // batches already drawn in `epoch`
  int64_t batches_drawn = 0;     // in all epochs
  int64_t generator_seed = 0;    // the loader's seed (a uint64 stored bit for bit)
  int64_t generator_offset = 0;  // window datasets: Philox counter offset after the last batch
  friend bool operator==(const DataLoaderState&, const DataLoaderState&) = default;

  // {"epoch": ..., "batch_in_epoch": ..., ...}; from_map raises KeyError naming a missing key.
  std::map<std::string, int64_t> to_map() const;
  static DataLoaderState from_map(const std::map<std::string, int64_t>& values);
};

// ---- orders
// ----------------------------------------------------------------------------------------

struct SamplerOptions {
  bool shuffle = false;
  uint64_t seed = 0;
  int64_t rank = 0;
  int64_t world_size = 1;
  bool drop_last = false;
};
// The indices torch.utils.data.DistributedSampler(shuffle, seed, drop_last) yields to `rank` after
// set_epoch(epoch), index for index (distributed::DistributedSampler computes them): torch.randperm
// under seed + epoch (or 0..n-1 unshuffled), padded to a multiple of world_size by repeating from
// its start (or cut to one with drop_last), then every world_size-th from rank. With world_size 1
// and shuffle the epoch's order is torch.randperm(n) under seed + epoch.
std::vector<int64_t> distributed_sampler_indices(int64_t n, int64_t epoch,
                                                 const SamplerOptions& opts);

// ---- the loader
// ---------------------------------------------------------------------------------- next() gives
// an endless stream of batches: indexed datasets run epoch after epoch (a new shuffle each epoch),
// window datasets draw batch_size random windows per batch (with world_size W, each batch draws W *
// batch_size starts and rank r takes the r-th slice, so the W ranks together see exactly what one
// process with batch W * batch_size would). For window datasets an epoch is nominal:
// dataset.epoch_size() windows. Range-for visits the rest of the current epoch. With prefetch > 0 a
// background thread makes batches in exactly the order next() would; an exception there is rethrown
// by next() (and by every later next() until set_state()). Not thread-safe: one consumer thread.
class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions opts = {});
  // Takes a dataset by value: DataLoader(TextDataset("a.txt"), {...}).
  template <typename D>
  requires std::is_base_of_v<Dataset, std::decay_t<D>> DataLoader(D&& dataset,
                                                                  DataLoaderOptions opts = {})
      : DataLoader(std::make_shared<const std::decay_t<D>>(std::forward<D>(dataset)), opts) {}
  ~DataLoader();
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;

  Batch next();
  // Batches per epoch for this rank (indexed: ceil or floor of the rank's samples / batch_size
  // with drop_last; windows: epoch_size / (batch_size * world_size), at least 1).
  int64_t batches_per_epoch() const;
  int64_t epoch() const { return state().epoch; }
  // The position after the last batch next() returned (batches made ahead do not count).
  DataLoaderState state() const;
  // Continues from `s` (from state() of a loader over the same dataset and options): the batches
  // that follow are bit-identical to those the saved loader would have given. Discards batches
  // made ahead. ValueError for a state that does not fit this loader.
  void set_state(const DataLoaderState& s);

  const Dataset& dataset() const;
  // The dataset shared with this loader (a loader over the same data with other options shares it).
  const std::shared_ptr<const Dataset>& dataset_ptr() const;
  const DataLoaderOptions& options() const;

  // for (auto& [x, y] : loader): the remaining batches of the current epoch.
  class Iterator {
   public:
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    Batch& operator*() const { return *batch_; }
    Batch* operator->() const { return batch_.get(); }
    Iterator& operator++();
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return remaining_ == 0; }

   private:
    friend class DataLoader;
    DataLoader* loader_ = nullptr;
    int64_t remaining_ = 0;
    std::shared_ptr<Batch> batch_;
  };
  Iterator begin();
  std::default_sentinel_t end() { return {}; }

 private:
  Batch next_made();  // the next batch, where the dataset made it
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fabric::data
