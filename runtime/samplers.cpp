// torch 1.13's samplers (torch/utils/data/sampler.py) over a torch_cpu Generator: randperm,
// randint and multinomial draw torch's numbers from it, and the generator is replayed from the seed
// epoch by epoch, since torch's sampler keeps one generator across iter()s.
#include "runtime/samplers.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/multinomial.h"
#include "tensor/randperm.h"

namespace fabric::data {

// ---- Sampler -----------------------------------------------------------------------------------

std::vector<int64_t> Sampler::epoch_indices(int64_t epoch) const {
  FABRIC_CHECK(epoch >= 0, ValueError, "Sampler::epoch_indices: epoch must be >= 0, got ", epoch);
  std::vector<int64_t> out;
  if (!seed_) {
    out = draw(nullptr);
  } else {
    std::lock_guard<std::mutex> lock(replay_.mu);
    if (!replay_.gen || replay_.next_epoch > epoch) {
      replay_.gen.emplace(*seed_, RngAlgorithm::torch_cpu);
      replay_.next_epoch = 0;
    }
    try {
      for (; replay_.next_epoch <= epoch; ++replay_.next_epoch) out = draw(&*replay_.gen);
    } catch (...) {
      replay_.gen.reset();  // stopped inside an epoch: the next call starts over from the seed
      throw;
    }
  }
  FABRIC_CHECK(static_cast<int64_t>(out.size()) == size(), ValueError,
               "Sampler::epoch_indices: epoch ", epoch, " gave ", out.size(),
               " indices, but the sampler's size() is ", size(),
               "; expected draw() to give size() indices");
  return out;
}

// ---- SequentialSampler -------------------------------------------------------------------------

SequentialSampler::SequentialSampler(int64_t n) : Sampler(std::nullopt), n_(n) {
  FABRIC_CHECK(n >= 0, ValueError, "SequentialSampler: n must be >= 0, got ", n);
}

std::vector<int64_t> SequentialSampler::draw(Generator*) const {
  std::vector<int64_t> out(static_cast<size_t>(n_));
  std::iota(out.begin(), out.end(), int64_t{0});
  return out;
}

// ---- RandomSampler -----------------------------------------------------------------------------

namespace {

void append(std::vector<int64_t>& out, const Tensor& t) {
  const std::vector<int64_t> v = t.to_vector<int64_t>();
  out.insert(out.end(), v.begin(), v.end());
}

}  // namespace

RandomSampler::RandomSampler(int64_t n, RandomSamplerOptions opts)
    : Sampler(opts.seed),
      n_(n),
      num_samples_(opts.num_samples.value_or(n)),
      replacement_(opts.replacement) {
  FABRIC_CHECK(n >= 0, ValueError, "RandomSampler: n must be >= 0, got ", n);
  FABRIC_CHECK(num_samples_ > 0, ValueError,
               "RandomSampler: num_samples should be a positive integer value, but got "
               "num_samples=",
               num_samples_);
  // torch gets as far as the first iter(): ZeroDivisionError (num_samples // n) without
  // replacement, "random_ expects 'from' to be less than 'to'" with it.
  FABRIC_CHECK(n > 0, ValueError, "RandomSampler: cannot draw num_samples=", num_samples_,
               " indices from an empty range (n=0); expected n >= 1");
}

std::vector<int64_t> RandomSampler::draw(Generator* gen) const {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(num_samples_));
  if (replacement_) {
    for (int64_t k = 0; k < num_samples_ / 32; ++k)
      append(out, randint(0, n_, {32}, {.dtype = DType::int64}, gen));
    // torch draws this one even when it is empty; an empty randint draws no numbers.
    if (num_samples_ % 32 != 0)
      append(out, randint(0, n_, {num_samples_ % 32}, {.dtype = DType::int64}, gen));
  } else {
    for (int64_t k = 0; k < num_samples_ / n_; ++k)
      append(out, randperm(n_, {.dtype = DType::int64}, gen));
    // Drawn whole and cut, even to nothing: the draw moves the generator on for later epochs.
    const std::vector<int64_t> last =
        randperm(n_, {.dtype = DType::int64}, gen).to_vector<int64_t>();
    out.insert(out.end(), last.begin(), last.begin() + num_samples_ % n_);
  }
  return out;
}

// ---- SubsetRandomSampler -----------------------------------------------------------------------

SubsetRandomSampler::SubsetRandomSampler(std::vector<int64_t> indices, uint64_t seed)
    : Sampler(seed), indices_(std::move(indices)) {}

std::optional<int64_t> SubsetRandomSampler::index_bound() const {
  // A negative index has no bound that would let it pass: the loader's per-epoch check names it.
  if (std::any_of(indices_.begin(), indices_.end(), [](int64_t i) { return i < 0; }))
    return std::nullopt;
  return indices_.empty() ? 0 : *std::max_element(indices_.begin(), indices_.end()) + 1;
}

std::vector<int64_t> SubsetRandomSampler::draw(Generator* gen) const {
  const std::vector<int64_t> perm =
      randperm(size(), {.dtype = DType::int64}, gen).to_vector<int64_t>();
  std::vector<int64_t> out;
  out.reserve(perm.size());
  for (int64_t i : perm) out.push_back(indices_[static_cast<size_t>(i)]);
  return out;
}

// ---- WeightedRandomSampler ---------------------------------------------------------------------

WeightedRandomSampler::WeightedRandomSampler(std::vector<double> weights, int64_t num_samples,
                                             bool replacement, uint64_t seed)
    : Sampler(seed), num_samples_(num_samples), replacement_(replacement) {
  FABRIC_CHECK(num_samples > 0, ValueError,
               "WeightedRandomSampler: num_samples should be a positive integer value, but got "
               "num_samples=",
               num_samples);
  // torch.multinomial's checks, in its order and words, made here rather than at the first iter().
  const int64_t n = static_cast<int64_t>(weights.size());
  FABRIC_CHECK(replacement || num_samples <= n, ValueError,
               "WeightedRandomSampler: cannot sample n_sample > prob_dist.size(-1) samples without "
               "replacement (num_samples=",
               num_samples, ", ", n, " weights)");
  FABRIC_CHECK(n <= (int64_t{1} << 24), ValueError,
               "WeightedRandomSampler: number of categories cannot exceed 2^24, got ", n,
               " weights");
  double sum = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const double w = weights[i];
    // NaN fails this first, as in torch ("< 0" for a NaN weight).
    FABRIC_CHECK(w >= 0, ValueError,
                 "WeightedRandomSampler: invalid multinomial distribution (encountering "
                 "probability entry < 0): weights[",
                 i, "]=", w);
    FABRIC_CHECK(std::isfinite(w), ValueError,
                 "WeightedRandomSampler: invalid multinomial distribution (encountering "
                 "probability entry = infinity or NaN): weights[",
                 i, "]=", w);
    sum += w;
  }
  FABRIC_CHECK(sum > 0, ValueError,
               "WeightedRandomSampler: invalid multinomial distribution (sum of probabilities <= "
               "0): expected at least one positive weight among ",
               n);
  weights_ = from_vector<double>(weights, {n});
}

std::vector<int64_t> WeightedRandomSampler::draw(Generator* gen) const {
  return multinomial(weights_, num_samples_, replacement_, gen).to_vector<int64_t>();
}

// ---- BatchSampler ------------------------------------------------------------------------------

BatchSampler::BatchSampler(std::shared_ptr<const Sampler> sampler, int64_t batch_size,
                           bool drop_last)
    : sampler_(std::move(sampler)), batch_size_(batch_size), drop_last_(drop_last) {
  FABRIC_CHECK(sampler_ != nullptr, ValueError, "BatchSampler: the sampler is null");
  FABRIC_CHECK(batch_size > 0, ValueError,
               "BatchSampler: batch_size should be a positive integer value, but got batch_size=",
               batch_size);
}

int64_t BatchSampler::size() const {
  const int64_t n = sampler_->size();
  // Rounded up without n + batch_size - 1, which overflows for a huge batch_size.
  return n / batch_size_ + (!drop_last_ && n % batch_size_ != 0 ? 1 : 0);
}

std::vector<std::vector<int64_t>> BatchSampler::epoch_batches(int64_t epoch) const {
  const std::vector<int64_t> indices = sampler_->epoch_indices(epoch);
  std::vector<std::vector<int64_t>> out;
  const auto n = static_cast<int64_t>(indices.size());
  int64_t len = 0;
  for (int64_t start = 0; start < n; start += len) {  // += len: no overflow for a huge batch_size
    len = std::min(batch_size_, n - start);
    if (len < batch_size_ && drop_last_) break;
    out.emplace_back(indices.begin() + start, indices.begin() + start + len);
  }
  return out;
}

}  // namespace fabric::data
