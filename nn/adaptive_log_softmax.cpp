// AdaptiveLogSoftmaxWithLoss as torch 1.13's Python (torch/nn/modules/adaptive.py), op for op:
// the values and the autograd graph are those of the same ops (see the header for the rounding).
#include "nn/adaptive_log_softmax.h"

#include <algorithm>
#include <cmath>

#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {

namespace {

constexpr const char* kName = "AdaptiveLogSoftmaxWithLoss";

// Python's float floor division a // b (CPython's float_floor_div), which torch's
// `in_features // div_value ** (i + 1)` is: the floor of the exact quotient, not of a / b rounded.
double py_floordiv(double a, double b) {
  FABRIC_CHECK(b != 0.0, ValueError, kName, ": div_value ** (cluster index) is 0 (div_value must ",
               "be nonzero), float floor division by zero");
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0.0) return std::copysign(0.0, a / b);
  double floordiv = std::floor(div);
  if (div - floordiv > 0.5) floordiv += 1.0;
  return floordiv;
}

void check_cutoffs(const AdaptiveLogSoftmaxWithLossOptions& o) {
  const std::vector<int64_t>& c = o.cutoffs;
  const bool sorted = std::is_sorted(c.begin(), c.end());
  const bool unique = std::adjacent_find(c.begin(), c.end()) == c.end();
  const bool ok = !c.empty() && sorted && unique && c.front() > 0 && c.back() <= o.n_classes - 1;
  FABRIC_CHECK(ok, ValueError, kName,
               ": cutoffs should be a non-empty sequence of unique, positive integers sorted in an "
               "increasing order, where each value is between 1 and n_classes-1 (n_classes=",
               o.n_classes, "), got ", shape_str(c));
}

// Cluster i's hidden size: int(in_features // div_value ** (i + 1)), as torch's float math.
int64_t hidden_size(int64_t in_features, double div_value, int64_t i) {
  const double h = py_floordiv(static_cast<double>(in_features),
                               std::pow(div_value, static_cast<double>(i + 1)));
  FABRIC_CHECK(std::isfinite(h), ValueError, kName, ": cluster ", i,
               "'s hidden size in_features // div_value ** ", i + 1,
               " is not finite (div_value=", div_value, ")");
  return static_cast<int64_t>(h);
}

// torch's gather takes int64 indices only; raised where torch's first gather would raise.
void check_int64_target(const Tensor& target) {
  FABRIC_CHECK(target.dtype() == DType::int64, DTypeError, kName,
               ": target must hold int64 class indices (gather(): expected dtype int64 for "
               "index), got ",
               dtype_name(target.dtype()));
}

// torch's checks of forward's dims, in its order.
void check_forward_shapes(const Tensor& input, const Tensor& target) {
  FABRIC_CHECK(input.defined() && target.defined(), ValueError, kName,
               ": input and target must be defined");
  const int64_t targ_dim = target.dim();
  if (targ_dim == 1) {
    FABRIC_CHECK(input.dim() > 0, IndexError, kName,
                 ": a 1D target needs a batch dimension in input, but input is 0-D");
    FABRIC_CHECK(input.size(0) == target.size(0), ShapeError, kName,
                 ": Input and target should have the same size in the batch dimension (input ",
                 shape_str(input.sizes()), ", target ", shape_str(target.sizes()), ")");
    FABRIC_CHECK(input.dim() == 2, ShapeError, kName,
                 ": 1D target tensor expects 2D input tensors, but found inputs with size ",
                 shape_str(input.sizes()));
  } else if (targ_dim == 0) {
    FABRIC_CHECK(input.dim() == 1, ShapeError, kName,
                 ": 0D target tensor expects 1D input tensors, but found inputs with size ",
                 shape_str(input.sizes()));
  } else {
    FABRIC_CHECK(false, ShapeError, kName,
                 ": 0D or 1D target tensor expected, multi-target not supported (target ",
                 shape_str(target.sizes()), ")");
  }
}

void check_2d_input(const Tensor& input, const char* method) {
  FABRIC_CHECK(input.defined() && input.dim() == 2, ShapeError, kName, ".", method,
               ": input must be 2-D (N, in_features), got ",
               input.defined() ? shape_str(input.sizes()) : "undefined");
}

}  // namespace

AdaptiveLogSoftmaxWithLoss::AdaptiveLogSoftmaxWithLoss(
    const AdaptiveLogSoftmaxWithLossOptions& options)
    : options_(options) {
  check_cutoffs(options);
  cutoffs_ = options.cutoffs;
  cutoffs_.push_back(options.n_classes);
  // Registered (and so initialised) in torch's order: head, then each cluster's two Linears.
  head = register_module<Linear>(
      "head",
      {.in_features = options.in_features, .out_features = head_size(), .bias = options.head_bias});
  tail = register_module("tail", std::make_shared<ModuleList>());
  for (int64_t i = 0; i < n_clusters(); ++i) {
    const int64_t hsz = hidden_size(options.in_features, options.div_value, i);
    const int64_t osz = cutoffs_[i + 1] - cutoffs_[i];
    tail->push_back(std::make_shared<Sequential>(std::vector<ModulePtr>{
        make<Linear>({.in_features = options.in_features, .out_features = hsz, .bias = false}),
        make<Linear>({.in_features = hsz, .out_features = osz, .bias = false})}));
  }
}

void AdaptiveLogSoftmaxWithLoss::child_replaced(const std::string& name,
                                                const std::shared_ptr<Module>& now) {
  if (name == "head") head = std::dynamic_pointer_cast<Linear>(now);
  if (name == "tail") tail = std::dynamic_pointer_cast<ModuleList>(now);
}

ModuleSequence& AdaptiveLogSoftmaxWithLoss::tail_list() const {
  auto* list = dynamic_cast<ModuleSequence*>(&child("tail"));
  FABRIC_CHECK(list != nullptr, ValueError, kName,
               ": the child tail must be a ModuleList of the clusters' projections, got a ",
               child("tail").type_name());
  return *list;
}

void AdaptiveLogSoftmaxWithLoss::reset_parameters(Generator* gen) {
  auto reset = [&](Module& m, const std::string& what) {
    auto* linear = dynamic_cast<Linear*>(&m);
    FABRIC_CHECK(linear != nullptr, ValueError, kName, ".reset_parameters: ", what,
                 " must be a Linear, got a ", m.type_name());
    linear->reset_parameters(gen);
  };
  reset(child("head"), "head");
  const ModuleSequence& clusters = tail_list();
  for (size_t i = 0; i < clusters.size(); ++i) {
    auto* pair = dynamic_cast<ModuleSequence*>(clusters[static_cast<int64_t>(i)].get());
    FABRIC_CHECK(pair != nullptr && pair->size() == 2, ValueError, kName,
                 ".reset_parameters: tail.", i, " must be a Sequential of two Linears");
    reset(*(*pair)[0], detail::cat("tail.", i, ".0"));
    reset(*(*pair)[1], detail::cat("tail.", i, ".1"));
  }
}

AdaptiveLogSoftmaxOutput AdaptiveLogSoftmaxWithLoss::forward(const Tensor& input_,
                                                             const Tensor& target_) {
  check_forward_shapes(input_, target_);
  const bool is_batched = target_.dim() > 0;
  const Tensor input = is_batched ? input_ : input_.unsqueeze(0);
  const Tensor target = is_batched ? target_ : target_.unsqueeze(0);
  const int64_t batch_size = target.size(0);

  Tensor output = zeros({batch_size}, {.dtype = input.dtype(), .device = input.device()});
  Tensor gather_inds = empty({batch_size}, {.dtype = target.dtype(), .device = target.device()});
  ModuleSequence& clusters = tail_list();
  int64_t used_rows = 0;
  for (int64_t i = 0; i <= n_clusters(); ++i) {
    const int64_t low_idx = i == 0 ? 0 : cutoffs_[i - 1];
    const int64_t high_idx = cutoffs_[i];
    const Tensor target_mask = logical_and(ge(target, low_idx), lt(target, high_idx));
    const Tensor row_indices = nonzero(target_mask).reshape({-1});
    if (row_indices.numel() == 0) continue;
    if (i == 0) {
      gather_inds = index_copy(gather_inds, 0, row_indices, masked_select(target, target_mask));
    } else {
      const Tensor relative_target = sub(masked_select(target, target_mask), low_idx);
      const Tensor input_subset = index_select(input, 0, row_indices);
      const Tensor cluster_output = (*clusters[i - 1])(input_subset);
      const int64_t cluster_index = shortlist_size() + i - 1;
      gather_inds = index_fill(gather_inds, 0, row_indices, cluster_index);
      const Tensor cluster_logprob = log_softmax(cluster_output, 1);
      check_int64_target(relative_target);
      const Tensor local_logprob = gather(cluster_logprob, 1, relative_target.unsqueeze(1));
      output = index_copy(output, 0, row_indices, local_logprob.squeeze(1));
    }
    used_rows += row_indices.numel();
  }
  FABRIC_CHECK(used_rows == batch_size, IndexError, kName, ": Target values should be in [0, ",
               options_.n_classes - 1, "], but values in range [", min(target).item<int64_t>(),
               ", ", max(target).item<int64_t>(), "] were found");

  const Tensor head_output = child("head")(input);
  const Tensor head_logprob = log_softmax(head_output, 1);
  check_int64_target(gather_inds);
  output = add(output, gather(head_logprob, 1, gather_inds.unsqueeze(1)).squeeze(1));
  const Tensor loss = mean(neg(output));
  return {is_batched ? output : output.squeeze(0), loss};
}

Tensor AdaptiveLogSoftmaxWithLoss::full_log_prob(const Tensor& input, const Tensor& head_output) {
  const Tensor head_logprob = log_softmax(head_output, 1);
  // torch writes each piece into a slice of one (N, n_classes) tensor; the concatenation holds the
  // same values and its backward hands each piece the same slice of the gradient.
  std::vector<Tensor> pieces{head_logprob.slice(1, 0, shortlist_size())};
  ModuleSequence& clusters = tail_list();
  for (int64_t i = 0; i < n_clusters(); ++i) {
    const Tensor cluster_logprob = log_softmax((*clusters[i])(input), 1);
    pieces.push_back(
        add(cluster_logprob, head_logprob.select(1, shortlist_size() + i).unsqueeze(1)));
  }
  return cat(pieces, 1);
}

Tensor AdaptiveLogSoftmaxWithLoss::log_prob(const Tensor& input) {
  check_2d_input(input, "log_prob");
  return full_log_prob(input, child("head")(input));
}

Tensor AdaptiveLogSoftmaxWithLoss::predict(const Tensor& input) {
  check_2d_input(input, "predict");
  const Tensor head_output = child("head")(input);
  const Tensor output = argmax(head_output, 1);
  const Tensor not_in_shortlist = ge(output, shortlist_size());
  if (!any(not_in_shortlist).item<bool>()) return output;
  if (all(not_in_shortlist).item<bool>()) return argmax(full_log_prob(input, head_output), 1);
  const Tensor log_prob =
      full_log_prob(index(input, {not_in_shortlist}), index(head_output, {not_in_shortlist}));
  return index_put(output, {not_in_shortlist}, argmax(log_prob, 1));
}

}  // namespace fabric::nn
