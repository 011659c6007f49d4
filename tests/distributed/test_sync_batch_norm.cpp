// SyncBatchNorm (torch.nn.SyncBatchNorm) and convert_sync_batchnorm. Two Gloo ranks with local
// batches of different sizes: the output, input gradient, summed weight/bias gradients and running
// statistics equal BatchNorm's on the concatenated global batch, computed in float64 on each rank.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <optional>

#include "autograd/autograd.h"
#include "distributed/sync_batch_norm.h"
#include "nn/nn.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

using distributed::SyncBatchNorm;
using namespace std::chrono_literals;

constexpr double kTol = 1e-12;

void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const std::vector<double> g = got.to(DType::float64).to_vector<double>();
  const std::vector<double> w = want.to(DType::float64).to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_NEAR(g[i], w[i], kTol * std::max(1.0, std::abs(w[i]))) << what << " [" << i << "]";
}

// One layer configuration and the local batch of each rank: rank r holds dim-0 rows
// [offset_r, offset_r + rows[r]) of the global batch (rows[0] + rows[1], *sample).
struct SyncCase {
  std::string name;
  Shape sample;                    // (C, *) of one row
  std::array<int64_t, 2> rows;     // local batch sizes of rank 0 and rank 1
  std::optional<double> momentum;  // nullopt: cumulative average
  bool affine;
};

const std::vector<SyncCase> kCases = {
    {"(N, C), 3 and 5 rows", {4}, {3, 5}, 0.1, true},
    {"(N, C, H, W), 3 and 5 rows", {3, 4, 5}, {3, 5}, 0.1, true},
    {"(N, C, L), cumulative average, no affine", {2, 6}, {1, 4}, std::nullopt, false},
    {"(N, C), rank 1 empty", {3}, {6, 0}, 0.3, true},
};

// The float64 reference layer: BatchNorm1d/2d with the same options and parameters.
std::shared_ptr<nn::BatchNorm> reference_layer(const SyncCase& c, const nn::BatchNormOptions& o) {
  if (c.sample.size() == 3) return std::make_shared<nn::BatchNorm2d>(o);
  return std::make_shared<nn::BatchNorm1d>(o);
}

void check_case(Fabric& f, const SyncCase& c) {
  SCOPED_TRACE(c.name);
  const int rank = f.global_rank();
  const int64_t C = c.sample[0];
  const nn::BatchNormOptions o{.num_features = C, .momentum = c.momentum, .affine = c.affine};
  auto ref = reference_layer(c, o);
  auto sync = std::make_shared<SyncBatchNorm>(o);
  ref->to(DType::float64);
  sync->to(DType::float64);
  Generator gen(11);  // the same on both ranks: the global batch and parameters
  if (c.affine) {
    ref->weight.detach().copy_(add(randn({C}, {.dtype = DType::float64}, &gen), 1.0));
    ref->bias.detach().copy_(randn({C}, {.dtype = DType::float64}, &gen));
    sync->weight.detach().copy_(ref->weight.detach());
    sync->bias.detach().copy_(ref->bias.detach());
  }
  const int64_t global_rows = c.rows[0] + c.rows[1], offset = rank == 0 ? 0 : c.rows[0];
  Shape shape = {global_rows};
  shape.insert(shape.end(), c.sample.begin(), c.sample.end());
  for (int step = 0; step < 2; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const Tensor x_all = add(mul(randn(shape, {.dtype = DType::float64}, &gen), 3.0), 1.5);
    const Tensor dy_all = randn(shape, {.dtype = DType::float64}, &gen);  // d(loss)/d(output)
    Tensor x_ref = x_all.clone();
    x_ref.set_requires_grad(true);
    const Tensor out_ref = (*ref)(x_ref);
    backward(sum(mul(out_ref, dy_all)));

    Tensor x = x_all.narrow(0, offset, c.rows[size_t(rank)]).clone();
    x.set_requires_grad(true);
    const Tensor out = (*sync)(x);
    backward(sum(mul(out, dy_all.narrow(0, offset, c.rows[size_t(rank)]))));

    expect_close(out, out_ref.narrow(0, offset, c.rows[size_t(rank)]), "output");
    expect_close(x.grad(), x_ref.grad().narrow(0, offset, c.rows[size_t(rank)]), "input grad");
    if (c.affine) {
      // Local sums, as torch: their sum over the ranks is the global batch's gradient.
      expect_close(f.all_reduce(sync->weight.grad().clone(), "sum"), ref->weight.grad(), "dweight");
      expect_close(f.all_reduce(sync->bias.grad().clone(), "sum"), ref->bias.grad(), "dbias");
      sync->zero_grad();
      ref->zero_grad();
    }
    expect_close(sync->running_mean, ref->running_mean, "running_mean");
    expect_close(sync->running_var, ref->running_var, "running_var");
    EXPECT_EQ(sync->num_batches_tracked.item<int64_t>(), step + 1);
  }
  // Eval: plain batch_norm with the running statistics, no collective.
  sync->eval();
  Shape eval_shape = {2};
  eval_shape.insert(eval_shape.end(), c.sample.begin(), c.sample.end());
  const Tensor x = randn(eval_shape, {.dtype = DType::float64}, &gen);
  expect_close((*sync)(x),
               batch_norm(x, sync->running_mean, sync->running_var, sync->weight, sync->bias,
                          /*training=*/false, 0.0, o.eps),
               "eval output");
}

TEST(SyncBatchNorm, TwoRanksOfDifferentBatchSizesMatchBatchNormOnTheGlobalBatch) {
  Fabric fab({.accelerator = "cpu",
              .strategy = "ddp",
              .devices = 2,
              .timeout = 60s,
              .launch_argv = dist_test::self_argv()});
  fab.launch([](Fabric& f) {
    for (const SyncCase& c : kCases) check_case(f, c);
    return 0;
  });
}

// In training, a channel needs more than one value over all ranks (each rank here has one or
// none); every rank sees the counts, so all raise together instead of one waiting on the others.
TEST(SyncBatchNorm, OneValuePerChannelOverAllRanksRaisesOnEveryRank) {
  Fabric fab({.accelerator = "cpu",
              .strategy = "ddp",
              .devices = 2,
              .timeout = 60s,
              .launch_argv = dist_test::self_argv()});
  fab.launch([](Fabric& f) {
    SyncBatchNorm bn({.num_features = 3});
    const Tensor x = zeros({f.global_rank() == 0 ? 1 : 0, 3});
    EXPECT_CONTAINS(thrown<ValueError>([&] { bn(x); }),
                    "Expected more than 1 value per channel when training");
    // One value on each rank is two over the group: fine.
    EXPECT_EQ(bn(randn({1, 3})).sizes(), (Shape{1, 3}));
    return 0;
  });
}

TEST(SyncBatchNorm, RejectsAnInputOfFewerThanTwoDims) {
  SyncBatchNorm bn({.num_features = 3});
  EXPECT_CONTAINS(thrown<ValueError>([&] { bn(zeros({3})); }),
                  "SyncBatchNorm: expected at least 2D input (got 1D input");
}

// Without a multi-process group it is BatchNorm: same output and running statistics.
TEST(SyncBatchNorm, OneProcessIsPlainBatchNorm) {
  SyncBatchNorm sync({.num_features = 4});
  nn::BatchNorm2d bn({.num_features = 4});
  Generator gen(5);
  const Tensor x = randn({3, 4, 2, 2}, {}, &gen);
  EXPECT_EQ(sync(x).to_vector<float>(), bn(x).to_vector<float>());
  EXPECT_EQ(sync.running_var.to_vector<float>(), bn.running_var.to_vector<float>());
  EXPECT_EQ(sync.state_dict().keys(), bn.state_dict().keys());
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    sync(randn({1, 4}));
                  }),
                  "Expected more than 1 value per channel when training");
}

// convert_sync_batchnorm on the CNN (BatchNorm2d inside a Sequential): every BatchNorm becomes a
// SyncBatchNorm that holds the very same tensors, keys stay, the training mode is kept, and
// forward runs through the new layers.
TEST(SyncBatchNorm, ConvertSyncBatchnormSharesParametersAndKeepsKeys) {
  const nn::CNNConfig config{.image_size = 8, .channels1 = 4, .channels2 = 6, .batch_norm = true};
  manual_seed(2);
  auto cnn = std::make_shared<nn::CNN>(config);
  manual_seed(2);
  auto plain = std::make_shared<nn::CNN>(config);
  for (auto* m : {cnn.get(), plain.get()}) m->features->child("1").eval();  // kept in eval
  const nn::StateDict before = cnn->state_dict();
  const std::vector<Tensor> params = cnn->parameters();

  auto converted = distributed::convert_sync_batchnorm(cnn);
  EXPECT_EQ(converted.get(), cnn.get());
  const nn::Module& features = cnn->child("features");
  int forwards = 0;
  for (const char* i : {"1", "5"}) {
    auto* sync = dynamic_cast<SyncBatchNorm*>(&features.child(i));
    ASSERT_NE(sync, nullptr) << "features." << i << " is " << features.child(i).type_name();
    sync->register_forward_hook([&](nn::Module&, const Tensor&, const Tensor& out) {
      ++forwards;
      return out;
    });
  }
  EXPECT_FALSE(features.child("1").is_training());
  EXPECT_TRUE(features.child("5").is_training());
  const nn::StateDict after = cnn->state_dict();
  ASSERT_EQ(after.keys(), before.keys());
  for (const auto& [key, t] : before)
    EXPECT_EQ(after.at(key).data_ptr(), t.data_ptr()) << key << " is not the same tensor";
  const std::vector<Tensor> now = cnn->parameters();
  ASSERT_EQ(now.size(), params.size());
  for (size_t i = 0; i < now.size(); ++i) EXPECT_EQ(now[i].impl(), params[i].impl()) << i;
  // The model's forward goes through the new layers (one process: plain batch_norm).
  const Tensor x = randn({4, 1, 8, 8});
  EXPECT_EQ((*cnn)(x).to_vector<float>(), (*plain)(x).to_vector<float>());
  EXPECT_EQ(forwards, 2);
  EXPECT_EQ(before.at("features.5.num_batches_tracked").item<int64_t>(), 1);
  EXPECT_EQ(before.at("features.5.running_mean").to_vector<float>(),
            plain->state_dict().at("features.5.running_mean").to_vector<float>());

  // A BatchNorm at the root comes back as the new layer.
  auto bn = std::make_shared<nn::BatchNorm1d>(nn::BatchNormOptions{.num_features = 2});
  auto root = distributed::convert_sync_batchnorm(bn);
  EXPECT_EQ(root->type_name(), "SyncBatchNorm");
  EXPECT_EQ(dynamic_cast<SyncBatchNorm&>(*root).running_mean.impl(), bn->running_mean.impl());
}

}  // namespace
}  // namespace fabric
