#include "runtime/concat_dataset.h"

#include <algorithm>

#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::data {

ConcatDataset::ConcatDataset(std::vector<std::shared_ptr<const Dataset>> datasets)
    : datasets_(std::move(datasets)) {
  FABRIC_CHECK(!datasets_.empty(), ValueError,
               "ConcatDataset: datasets should not be an empty iterable");
  int64_t total = 0;
  for (size_t k = 0; k < datasets_.size(); ++k) {
    FABRIC_CHECK(datasets_[k] != nullptr, ValueError, "ConcatDataset: dataset ", k, " is null");
    total += datasets_[k]->size();
    cumulative_sizes_.push_back(total);
  }
}

Batch ConcatDataset::get(std::span<const int64_t> indices) const {
  const int64_t n = size();
  // Each example's dataset and index there, gathered per dataset so that each is read once.
  std::vector<std::vector<int64_t>> local(datasets_.size());
  std::vector<size_t> part_of(indices.size());
  for (size_t b = 0; b < indices.size(); ++b) {
    int64_t i = indices[b];
    if (i < 0) {
      FABRIC_CHECK(-i <= n, ValueError, "ConcatDataset: index ", i,
                   ": absolute value of index should not exceed dataset length (", n, ")");
      i += n;
    }
    FABRIC_CHECK(i < n, IndexError, "ConcatDataset: index ", i, " out of range for ", n,
                 " examples (list index out of range); expected one in [-", n, ", ", n, ")");
    const auto k = static_cast<size_t>(
        std::upper_bound(cumulative_sizes_.begin(), cumulative_sizes_.end(), i) -
        cumulative_sizes_.begin());
    local[k].push_back(k == 0 ? i : i - cumulative_sizes_[k - 1]);
    part_of[b] = k;
  }
  std::vector<size_t> used;
  for (size_t k = 0; k < local.size(); ++k)
    if (!local[k].empty()) used.push_back(k);
  // No examples asked for: the first dataset's empty batch has the right trailing shape.
  if (used.empty()) return datasets_[0]->get({});
  if (used.size() == 1) return datasets_[used[0]]->get(local[used[0]]);
  // Several datasets: read each one's examples, join them and put the rows back in asked order.
  std::vector<Tensor> xs, ys;
  std::vector<int64_t> first_row(datasets_.size(), 0);
  int64_t rows = 0;
  for (size_t k : used) {
    Batch part = datasets_[k]->get(local[k]);
    first_row[k] = rows;
    rows += static_cast<int64_t>(local[k].size());
    xs.push_back(std::move(part.inputs));
    ys.push_back(std::move(part.targets));
  }
  Tensor x = cat(xs, 0), y = cat(ys, 0);
  std::vector<int64_t> order(indices.size());
  std::vector<int64_t> taken(datasets_.size(), 0);
  for (size_t b = 0; b < indices.size(); ++b)
    order[b] = first_row[part_of[b]] + taken[part_of[b]]++;
  const auto count = static_cast<int64_t>(order.size());
  auto rows_of = [&](const Tensor& t) {
    return index_select(
        t, 0, from_vector<int64_t>(order, {count}, {.dtype = DType::int64, .device = t.device()}));
  };
  return {rows_of(x), rows_of(y)};
}

std::string ConcatDataset::describe() const {
  std::string parts;
  for (const auto& d : datasets_) parts += (parts.empty() ? "" : "; ") + d->describe();
  return detail::cat("concatenation of ", datasets_.size(), " datasets (", size(),
                     " examples): ", parts);
}

}  // namespace fabric::data
