// torch.utils.data's Subset and random_split over fabric's Dataset: a view of some examples of
// another dataset, and a seeded partition of a dataset into such views, index for index as
// PyTorch 1.13's.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/datasets.h"

namespace fabric::data {

// The examples of `dataset` at `indices`, in that order (repeats allowed): example i is
// dataset's example indices[i]. Always an indexed dataset, as torch's Subset is a map-style one:
// over a window dataset each listed window start is one example. The indices are not checked
// here but when read, by the dataset (torch checks them no earlier).
class Subset : public Dataset {
 public:
  // ValueError for a null dataset.
  Subset(std::shared_ptr<const Dataset> dataset, std::vector<int64_t> indices);
  // Takes a dataset by value: Subset(TensorDataset(x, y), {0, 2, 4}).
  template <typename D>
  requires std::is_base_of_v<Dataset, std::decay_t<D>> Subset(D&& dataset,
                                                              std::vector<int64_t> indices)
      : Subset(std::make_shared<const std::decay_t<D>>(std::forward<D>(dataset)),
               std::move(indices)) {}

  Access access() const override { return Access::indexed; }
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  // As torch's subset[i]: i may also be negative, counting from the end (Python list indexing);
  // outside [-size(), size()) an IndexError.
  Batch get(std::span<const int64_t> indices) const override;
  std::string describe() const override;

  const Dataset& dataset() const { return *dataset_; }
  const std::shared_ptr<const Dataset>& dataset_ptr() const { return dataset_; }
  const std::vector<int64_t>& indices() const { return indices_; }

 private:
  std::shared_ptr<const Dataset> dataset_;
  std::vector<int64_t> indices_;
};

// torch.utils.data.random_split(dataset, lengths,
//                               generator=torch.Generator().manual_seed(seed)) of PyTorch 1.13:
// Subsets of dataset.size() examples in total, split i holding the next lengths[i] indices of
// torch.randperm(n) under `seed` (distributed::torch_randperm; a negative Python seed s is
// 2^64 + s). The subsets share `dataset`.
//
// `lengths` are counts, or fractions when they sum to 1 (math.isclose(sum, 1) and sum <= 1, as
// torch decides; so do counts summing to 1): then split i holds floor(n * f_i) examples and the
// remainder is dealt one by one from the first split on; a fraction outside [0, 1] is a
// ValueError ("Fraction at index i is not between 0 and 1") and a split left empty is a warning
// ("Length of split at index i is 0. This might result in an empty dataset."). Lengths that do not
// add up to n are a ValueError ("Sum of input lengths does not equal the length of the input
// dataset!"). Where torch does not raise that but fails or misbehaves later, this raises a
// ValueError at once: counts that sum to n but are not whole numbers (torch: a TypeError from
// randperm) or are negative (torch slices its permutation from the end). ValueError for a null
// dataset.
std::vector<Subset> random_split(const std::shared_ptr<const Dataset>& dataset,
                                 const std::vector<double>& lengths, uint64_t seed);
// Counts as integers (a std::vector<int64_t>); the same rules.
std::vector<Subset> random_split(const std::shared_ptr<const Dataset>& dataset,
                                 std::span<const int64_t> lengths, uint64_t seed);

}  // namespace fabric::data
