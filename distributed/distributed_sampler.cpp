// DistributedSampler's padding and striding over torch.randperm's permutation (tensor/randperm.h
// with a torch_cpu generator).
#include "distributed/distributed_sampler.h"

#include "tensor/error.h"
#include "tensor/randperm.h"

namespace fabric::distributed {

std::vector<int64_t> torch_randperm(int64_t n, uint64_t seed) {
  FABRIC_CHECK(n >= 0, ValueError, "torch_randperm: n must be >= 0, got ", n);
  // torch.Generator().manual_seed(seed) drawing torch.randperm's permutation (tensor/randperm.h).
  Generator gen(seed, RngAlgorithm::torch_cpu);
  return randperm(n, {.dtype = DType::int64}, &gen).to_vector<int64_t>();
}

DistributedSampler::DistributedSampler(int64_t dataset_size, DistributedSamplerOptions options)
    : dataset_size_(dataset_size), options_(options) {
  const int64_t W = options_.num_replicas;
  FABRIC_CHECK(W >= 1, ValueError, "DistributedSampler: num_replicas must be >= 1, got ", W);
  FABRIC_CHECK(options_.rank >= 0 && options_.rank < W, ValueError,
               "DistributedSampler: invalid rank ", options_.rank,
               ", rank should be in the interval [0, ", W - 1, "] (num_replicas=", W, ")");
  FABRIC_CHECK(dataset_size >= 0, ValueError, "DistributedSampler: dataset_size must be >= 0, got ",
               dataset_size);
  if (options_.drop_last && dataset_size % W != 0) {
    // torch: math.ceil((n - W) / W), which for n % W != 0 is floor(n / W) (0 when n < W).
    num_samples_ = dataset_size / W;
  } else {
    num_samples_ = (dataset_size + W - 1) / W;
  }
}

std::vector<int64_t> DistributedSampler::indices() const {
  const int64_t n = dataset_size_;
  const int64_t W = options_.num_replicas;
  std::vector<int64_t> out;
  if (num_samples_ == 0) return out;
  std::vector<int64_t> base;
  if (options_.shuffle) base = torch_randperm(n, options_.seed + static_cast<uint64_t>(epoch_));
  // Padding appends the order's own head (cyclically when it must add more than n) and drop_last
  // keeps a prefix, so item k of the padded or cut order is base[k % n] either way.
  const int64_t total = total_size();
  out.reserve(static_cast<size_t>(num_samples_));
  for (int64_t k = options_.rank; k < total; k += W) {
    const int64_t j = k % n;
    out.push_back(options_.shuffle ? base[static_cast<size_t>(j)] : j);
  }
  return out;
}

}  // namespace fabric::distributed
