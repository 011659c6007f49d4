// torch.utils.data.DistributedSampler's order, index for index: torch.randperm over torch's CPU
// generator (seeded with seed + epoch), padding or drop_last, then every num_replicas-th index.
#pragma once
#include <cstdint>
#include <vector>

namespace fabric::distributed {

// torch.randperm(n, generator=g) after g.manual_seed(seed), on the CPU, as PyTorch 1.13 computes
// it: std::mt19937 seeded with the low 32 bits of seed (torch's mt19937 keeps only those), then
// for i in [0, n-1): swap(p[i], p[i + mt() % (n - i)]). Bit for bit equal to torch 1.13 for every
// case of tests/distributed/data/sampler_fixture.json (n up to 2^24 + 1) and, compared by hand, in
// full at n = 10^6, 2^24 + 1 and 214748365. Later torch releases keep this order for
// n < 2^32 / 20 = 214748364 but use 64-bit draws and an inside-out shuffle from there on, so past
// that size only 1.13 matches. A negative Python seed s is 2^64 + s here, as manual_seed stores it.
std::vector<int64_t> torch_randperm(int64_t n, uint64_t seed);

struct DistributedSamplerOptions {
  int64_t num_replicas = 1;
  int64_t rank = 0;
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;
};

// The indices DistributedSampler(dataset of dataset_size, ...) yields to one rank after
// set_epoch(epoch). Without drop_last the order is padded to total_size by repeating it from its
// start (several times over when total_size > 2 * dataset_size); with drop_last its tail is cut.
// ValueError for a rank outside [0, num_replicas), num_replicas < 1 or dataset_size < 0.
class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, DistributedSamplerOptions options = {});

  // The shuffle of the next indices() is torch_randperm(n, seed + epoch), the sum taken modulo
  // 2^64 (torch's negative seeds wrap the same way).
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  int64_t epoch() const { return epoch_; }

  // Indices per rank: ceil(n / W), or with drop_last and n % W != 0, ceil((n - W) / W).
  int64_t num_samples() const { return num_samples_; }
  int64_t total_size() const { return num_samples_ * options_.num_replicas; }
  int64_t dataset_size() const { return dataset_size_; }
  const DistributedSamplerOptions& options() const { return options_; }

  // This rank's indices for the current epoch: num_samples() of them.
  std::vector<int64_t> indices() const;

 private:
  int64_t dataset_size_;
  DistributedSamplerOptions options_;
  int64_t num_samples_ = 0;
  int64_t epoch_ = 0;
};

}  // namespace fabric::distributed
