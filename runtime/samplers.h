// torch.utils.data's samplers (torch 1.13), index for index: SequentialSampler, RandomSampler,
// SubsetRandomSampler, WeightedRandomSampler and BatchSampler. A sampler here is built with a seed
// and gives the indices torch's sampler yields when it is built with
// generator=torch.Generator().manual_seed(seed); a DataLoader takes one as
// DataLoaderOptions::sampler (runtime/data_loader.h).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace fabric::data {

// A source of dataset indices, epoch by epoch. torch's samplers keep one generator whose state
// carries from one iter() to the next, so epoch e's indices depend on the e draws before it:
// epoch_indices(e) replays them from the seed, and keeps the generator after the last epoch it
// computed, so that consecutive epochs cost one epoch's draws each (going back, or resuming at
// epoch e in a new process, replays e epochs first). Safe to call from several threads (one
// sampler may serve several loaders and their prefetch threads).
//
// A sampler of your own derives from Sampler and implements size() and draw().
class Sampler {
 public:
  virtual ~Sampler() = default;
  // torch's len(sampler): the indices each epoch gives.
  virtual int64_t size() const = 0;
  // One more than the largest index the sampler can give, where that is known up front (a loader
  // refuses a dataset smaller than that when it is built); nullopt: each epoch is checked instead.
  virtual std::optional<int64_t> index_bound() const { return std::nullopt; }

  // The indices torch's sampler yields on its (epoch + 1)-th iter(). ValueError for epoch < 0, and
  // for a draw() that gives other than size() indices.
  std::vector<int64_t> epoch_indices(int64_t epoch) const;

 protected:
  // seed: the generator's seed, as torch.Generator().manual_seed(seed) takes it (a negative Python
  // seed s is 2^64 + s); nullopt for a sampler that draws nothing (its draw() gets null).
  explicit Sampler(std::optional<uint64_t> seed) : seed_(seed) {}
  Sampler(const Sampler&) = default;
  Sampler& operator=(const Sampler&) = default;

  // One epoch's indices, drawn from `gen` (a torch_cpu generator) as torch's __iter__ draws them
  // from its generator, leaving it where torch's would be after the epoch.
  virtual std::vector<int64_t> draw(Generator* gen) const = 0;

 private:
  // The generator after the epochs drawn so far. A copy of a sampler starts over from the seed.
  struct Replay {
    std::mutex mu;
    std::optional<Generator> gen;
    int64_t next_epoch = 0;  // the epoch `gen` draws next
    Replay() = default;
    Replay(const Replay&) {}
    Replay& operator=(const Replay&) {
      std::lock_guard<std::mutex> lock(mu);
      gen.reset();
      next_epoch = 0;
      return *this;
    }
  };
  std::optional<uint64_t> seed_;
  mutable Replay replay_;
};

// torch's SequentialSampler(range(n)): 0, 1, ..., n-1 every epoch. ValueError for n < 0.
class SequentialSampler : public Sampler {
 public:
  explicit SequentialSampler(int64_t n);
  int64_t size() const override { return n_; }
  std::optional<int64_t> index_bound() const override { return n_; }

 protected:
  std::vector<int64_t> draw(Generator* gen) const override;

 private:
  int64_t n_;
};

struct RandomSamplerOptions {
  bool replacement = false;
  std::optional<int64_t> num_samples;  // torch's default: n
  uint64_t seed = 0;
};

// torch's RandomSampler(range(n), replacement, num_samples, generator): without replacement
// num_samples // n whole torch.randperm(n)s, then randperm(n)[:num_samples % n] (drawn, and
// discarded, even when num_samples % n is 0); with replacement torch.randint(high=n, size=(32,))
// per 32 indices and one of num_samples % 32. ValueError as torch's for num_samples <= 0
// ("num_samples should be a positive integer value, but got num_samples=0", which is also what
// n = 0 without num_samples gives) and, where torch fails at the first iter(), for n = 0 with
// num_samples.
class RandomSampler : public Sampler {
 public:
  explicit RandomSampler(int64_t n, RandomSamplerOptions opts = {});
  int64_t size() const override { return num_samples_; }
  std::optional<int64_t> index_bound() const override { return n_; }
  bool replacement() const { return replacement_; }

 protected:
  std::vector<int64_t> draw(Generator* gen) const override;

 private:
  int64_t n_, num_samples_;
  bool replacement_;
};

// torch's SubsetRandomSampler(indices, generator): indices[i] for i in torch.randperm(len).
class SubsetRandomSampler : public Sampler {
 public:
  explicit SubsetRandomSampler(std::vector<int64_t> indices, uint64_t seed = 0);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  std::optional<int64_t> index_bound() const override;
  const std::vector<int64_t>& indices() const { return indices_; }

 protected:
  std::vector<int64_t> draw(Generator* gen) const override;

 private:
  std::vector<int64_t> indices_;
};

// torch's WeightedRandomSampler(weights, num_samples, replacement, generator): each epoch
// torch.multinomial(torch.as_tensor(weights, dtype=torch.double), num_samples, replacement),
// indices in [0, weights.size()). ValueError as torch's: num_samples <= 0 at once, and at once
// where torch waits for the first iter(): weights that are negative, NaN or infinite, sum to 0 (or
// are empty), more than 2^24 of them, and without replacement more samples than weights.
class WeightedRandomSampler : public Sampler {
 public:
  WeightedRandomSampler(std::vector<double> weights, int64_t num_samples, bool replacement = true,
                        uint64_t seed = 0);
  int64_t size() const override { return num_samples_; }
  std::optional<int64_t> index_bound() const override { return weights_.numel(); }
  bool replacement() const { return replacement_; }

 protected:
  std::vector<int64_t> draw(Generator* gen) const override;

 private:
  Tensor weights_;  // float64 (n,)
  int64_t num_samples_;
  bool replacement_;
};

// torch's BatchSampler(sampler, batch_size, drop_last): an epoch's indices in runs of batch_size,
// the last one shorter, or dropped with drop_last. For iterating batches of indices yourself; a
// DataLoader batches a sampler's indices on its own (DataLoaderOptions::batch_size, drop_last).
// ValueError as torch's for batch_size <= 0 ("batch_size should be a positive integer value, but
// got batch_size=0") and for a null sampler.
class BatchSampler {
 public:
  BatchSampler(std::shared_ptr<const Sampler> sampler, int64_t batch_size, bool drop_last);
  // torch's len: sampler size / batch_size, rounded down with drop_last, else up.
  int64_t size() const;
  std::vector<std::vector<int64_t>> epoch_batches(int64_t epoch) const;
  const Sampler& sampler() const { return *sampler_; }
  int64_t batch_size() const { return batch_size_; }
  bool drop_last() const { return drop_last_; }

 private:
  std::shared_ptr<const Sampler> sampler_;
  int64_t batch_size_;
  bool drop_last_;
};

}  // namespace fabric::data
