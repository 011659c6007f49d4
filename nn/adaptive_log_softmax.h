// nn::AdaptiveLogSoftmaxWithLoss: torch 1.13's efficient softmax approximation (Grave et al.),
// a head Linear over the shortlist classes plus one logit per cluster, and per cluster a
// Sequential(Linear, Linear) projection to its classes. Built from the same ops in the same order
// as torch's Python (gather of log_softmax, index_copy into a zero output, (-output).mean()), so
// outputs, loss and gradients are torch's up to the rounding of the kernels themselves (matrix
// products, log_softmax's backward: a few ulp), and the state_dict keys are torch's: head.weight,
// [head.bias,] tail.<i>.0.weight, tail.<i>.1.weight.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/containers.h"
#include "nn/linear.h"

namespace fabric::nn {

struct AdaptiveLogSoftmaxWithLossOptions {
  int64_t in_features = 0;
  int64_t n_classes = 0;
  // Unique, positive, increasing and below n_classes: [0, cutoffs[0]) is the head's shortlist,
  // [cutoffs[i], cutoffs[i + 1]) (n_classes closing the last) cluster i.
  std::vector<int64_t> cutoffs;
  // Cluster i's hidden size is floor(in_features / div_value^(i + 1)) (Python's float `//`).
  double div_value = 4.0;
  bool head_bias = false;
  // torch's device/dtype arguments are not offered, as for every module here: build on the CPU in
  // float32 and move with Module::to.
};

// torch's _ASMoutput: the target log-probabilities, (N) or () unbatched, and their mean negated.
struct AdaptiveLogSoftmaxOutput {
  Tensor output;
  Tensor loss;
};

class AdaptiveLogSoftmaxWithLoss : public Module {
 public:
  using Options = AdaptiveLogSoftmaxWithLossOptions;
  // ValueError for cutoffs that are empty, unsorted, repeated, < 1 or > n_classes - 1.
  explicit AdaptiveLogSoftmaxWithLoss(const AdaptiveLogSoftmaxWithLossOptions& options);

  // input (N, in_features) with int64 target (N), or unbatched (in_features) with target ().
  // Only the clusters some target falls in are computed (their weights get no gradient
  // otherwise, as in torch). ShapeError for torch's shape checks, IndexError naming the targets'
  // range for a target outside [0, n_classes), DTypeError for a target that is not int64.
  AdaptiveLogSoftmaxOutput forward(const Tensor& input, const Tensor& target);
  // The log-probabilities of all n_classes: (N, in_features) -> (N, n_classes).
  Tensor log_prob(const Tensor& input);
  // The most likely class of each row, as log_prob(input).argmax(1) but computing the clusters
  // only for rows whose head argmax is a cluster: (N, in_features) -> int64 (N).
  Tensor predict(const Tensor& input);
  // Draws fresh values as torch's reset_parameters does: head, then each cluster's two Linears.
  void reset_parameters(Generator* gen = nullptr);
  std::string type_name() const override { return "AdaptiveLogSoftmaxWithLoss"; }
  void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) override;
  const AdaptiveLogSoftmaxWithLossOptions& options() const { return options_; }

  // torch's attributes: cutoffs with n_classes appended, the shortlist (cutoffs[0]), the number
  // of clusters and the head's out_features (shortlist_size + n_clusters).
  const std::vector<int64_t>& cutoffs() const { return cutoffs_; }
  int64_t shortlist_size() const { return cutoffs_.front(); }
  int64_t n_clusters() const { return static_cast<int64_t>(cutoffs_.size()) - 1; }
  int64_t head_size() const { return shortlist_size() + n_clusters(); }

  // The registered children (forward calls them through child(), so a replaced one is used);
  // null once replaced by a module of another type.
  std::shared_ptr<Linear> head;
  std::shared_ptr<ModuleList> tail;  // of Sequential(Linear(in, hsz), Linear(hsz, osz)), no bias

 private:
  ModuleSequence& tail_list() const;
  // torch's _get_full_log_prob: the head's shortlist log-probabilities, then each cluster's
  // log_softmax plus the head's log-probability of that cluster.
  Tensor full_log_prob(const Tensor& input, const Tensor& head_output);

  AdaptiveLogSoftmaxWithLossOptions options_;
  std::vector<int64_t> cutoffs_;
};

}  // namespace fabric::nn
