// torch.utils.data.ConcatDataset over fabric's Dataset: several datasets read as one, the
// examples of the first, then those of the second, and so on.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/datasets.h"

namespace fabric::data {

// Example i is example i - cumulative_sizes()[k-1] of datasets()[k], k the first dataset whose
// cumulative size exceeds i (torch's bisect_right over cumulative_sizes). Always an indexed
// dataset (a window dataset inside one gives one example per window start), as torch's is a
// map-style one. A batch spanning several datasets is each one's examples stacked in the order
// asked for, so their examples must have the same shape (and dtype) for a loader to batch them.
class ConcatDataset : public Dataset {
 public:
  // ValueError for an empty list ("datasets should not be an empty iterable", torch's assertion)
  // or a null dataset in it. Datasets without examples are allowed, as in torch.
  explicit ConcatDataset(std::vector<std::shared_ptr<const Dataset>> datasets);

  Access access() const override { return Access::indexed; }
  int64_t size() const override { return cumulative_sizes_.back(); }
  // As torch's concat[i]: a negative i counts from the end, and below -size() is a ValueError
  // ("absolute value of index should not exceed dataset length"); i >= size() an IndexError
  // (torch's "list index out of range").
  Batch get(std::span<const int64_t> indices) const override;
  std::string describe() const override;

  const std::vector<std::shared_ptr<const Dataset>>& datasets() const { return datasets_; }
  // Running totals of the datasets' sizes (torch's cumulative_sizes): the last is size().
  const std::vector<int64_t>& cumulative_sizes() const { return cumulative_sizes_; }

 private:
  std::vector<std::shared_ptr<const Dataset>> datasets_;
  std::vector<int64_t> cumulative_sizes_;
};

}  // namespace fabric::data
