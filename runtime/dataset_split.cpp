#include "runtime/dataset_split.h"

#include <cmath>

#include "distributed/distributed_sampler.h"
#include "tensor/error.h"
#include "tensor/warning.h"

namespace fabric::data {

Subset::Subset(std::shared_ptr<const Dataset> dataset, std::vector<int64_t> indices)
    : dataset_(std::move(dataset)), indices_(std::move(indices)) {
  FABRIC_CHECK(dataset_ != nullptr, ValueError, "Subset: the dataset is null");
}

Batch Subset::get(std::span<const int64_t> indices) const {
  const int64_t n = size();
  std::vector<int64_t> mapped;
  mapped.reserve(indices.size());
  for (int64_t i : indices) {
    FABRIC_CHECK(i >= -n && i < n, IndexError, "Subset: index ", i, " out of range for ", n,
                 " indices (list index out of range); expected one in [-", n, ", ", n, ")");
    mapped.push_back(indices_[static_cast<size_t>(i < 0 ? i + n : i)]);
  }
  return dataset_->get(mapped);
}

std::string Subset::describe() const {
  return detail::cat("subset of ", size(), " examples of ", dataset_->describe());
}

namespace {

// Python's math.isclose(a, b) with its defaults (rel_tol 1e-9, abs_tol 0), step for step.
bool isclose(double a, double b) {
  if (a == b) return true;
  if (std::isinf(a) || std::isinf(b)) return false;
  const double diff = std::fabs(b - a);
  return diff <= std::fabs(1e-9 * b) || diff <= std::fabs(1e-9 * a);
}

// random_split with the lengths as Python numbers (counts or fractions): torch 1.13's steps.
std::vector<Subset> split(const std::shared_ptr<const Dataset>& dataset,
                          std::vector<double> lengths, uint64_t seed) {
  FABRIC_CHECK(dataset != nullptr, ValueError, "random_split: the dataset is null");
  const int64_t n = dataset->size();
  // sum(lengths) as Python adds a list of numbers: left to right.
  auto sum_of = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s;
  };
  std::vector<int64_t> counts;
  const double total = sum_of(lengths);
  if (isclose(total, 1) && total <= 1) {
    // Fractions (torch 1.13): floor(n * f) each, the remainder dealt round-robin from split 0.
    int64_t assigned = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      const double f = lengths[i];
      FABRIC_CHECK(!(f < 0 || f > 1), ValueError, "Fraction at index ", i,
                   " is not between 0 and 1");
      counts.push_back(static_cast<int64_t>(std::floor(static_cast<double>(n) * f)));
      assigned += counts.back();
    }
    // `for i in range(remainder)`: nothing when the floors already reach n.
    if (const int64_t remainder = n - assigned; remainder > 0) {
      const auto k = static_cast<int64_t>(counts.size());
      for (int64_t i = 0; i < k; ++i)
        counts[static_cast<size_t>(i)] += remainder / k + (i < remainder % k ? 1 : 0);
    }
    for (size_t i = 0; i < counts.size(); ++i)
      if (counts[i] == 0)
        warn(detail::cat("Length of split at index ", i,
                         " is 0. This might result in an empty dataset."));
    int64_t sum = 0;
    for (int64_t c : counts) sum += c;
    FABRIC_CHECK(sum == n, ValueError,
                 "Sum of input lengths does not equal the length of the input dataset!");
  } else {
    FABRIC_CHECK(total == static_cast<double>(n), ValueError,
                 "Sum of input lengths does not equal the length of the input dataset!");
    for (size_t i = 0; i < lengths.size(); ++i) {
      const double c = lengths[i];
      FABRIC_CHECK(c >= 0 && c == std::floor(c), ValueError, "random_split: length at index ", i,
                   " is ", c, "; expected a whole number >= 0 (a count) or fractions summing to 1");
      counts.push_back(static_cast<int64_t>(c));
    }
  }
  const std::vector<int64_t> perm = distributed::torch_randperm(n, seed);
  std::vector<Subset> out;
  out.reserve(counts.size());
  auto at = perm.begin();
  for (int64_t c : counts) {
    out.emplace_back(dataset, std::vector<int64_t>(at, at + c));
    at += c;
  }
  return out;
}

}  // namespace

std::vector<Subset> random_split(const std::shared_ptr<const Dataset>& dataset,
                                 const std::vector<double>& lengths, uint64_t seed) {
  return split(dataset, lengths, seed);
}

std::vector<Subset> random_split(const std::shared_ptr<const Dataset>& dataset,
                                 std::span<const int64_t> lengths, uint64_t seed) {
  // Exact as doubles up to 2^53 each; beyond that no dataset's size can be met anyway (a sum that
  // rounds onto n would need n itself past 2^53 examples).
  std::vector<double> as_double;
  as_double.reserve(lengths.size());
  for (int64_t c : lengths) as_double.push_back(static_cast<double>(c));
  return split(dataset, std::move(as_double), seed);
}

}  // namespace fabric::data
