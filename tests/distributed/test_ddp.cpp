// DDP through Fabric with real processes (Gloo over loopback): 2 ranks x batch B train to the same
// weights as one process with batch 2B, with and without gradient accumulation; unused parameters;
// Fabric's collectives; the loss scaler's found_inf agreed across ranks.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "autograd/autograd.h"
#include "nn/containers.h"
#include "nn/linear.h"
#include "nn/mlp.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "precision/fp8_linear.h"
#include "precision/mixed_precision.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/destroyed_module.h"
#include "tests/common/expect_error.h"
#include "tests/distributed/dist_test_util.h"

namespace fabric {
namespace {

using dist_test::self_argv;
using namespace std::chrono_literals;

constexpr int64_t kIn = 8, kHidden = 16, kOut = 4, kB = 6, kSteps = 20;

struct Problem {
  Tensor x, y;  // (kSteps, 2 * kB, kIn), (kSteps, 2 * kB, kOut)
};

Problem make_problem() {
  Generator g(1234);
  return {randn({kSteps, 2 * kB, kIn}, {.dtype = DType::float32}, &g),
          randn({kSteps, 2 * kB, kOut}, {.dtype = DType::float32}, &g)};
}

std::shared_ptr<nn::MLP> make_mlp(uint64_t seed) {
  manual_seed(seed);
  return std::make_shared<nn::MLP>(nn::MLPConfig{.sizes = {kIn, kHidden, kHidden, kOut}, .activation = "tanh"});
}

std::vector<Tensor> snapshot(const nn::Module& m) {
  std::vector<Tensor> out;
  for (const Tensor& p : m.parameters()) out.push_back(p.clone());
  return out;
}

double max_rel_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const Tensor da = a[i].to(DType::float64), db = b[i].to(DType::float64);
    const double num = amax(abs(da - db)).item<double>();
    const double den = std::max(amax(abs(db)).item<double>(), 1e-12);
    worst = std::max(worst, num / den);
  }
  return worst;
}

// One process, batch 2B: the reference.
std::vector<Tensor> train_single(const Problem& p, const std::string& optimizer) {
  auto mlp = make_mlp(7);
  std::unique_ptr<optim::Optimizer> opt;
  if (optimizer == "sgd")
    opt = std::make_unique<optim::SGD>(mlp->parameters(), optim::SGDOptions{.lr = 0.05, .momentum = 0.9});
  else
    opt = std::make_unique<optim::AdamW>(mlp->parameters(), optim::AdamWOptions{.lr = 1e-2, .eps = 1e-6});
  for (int64_t s = 0; s < kSteps; ++s) {
    opt->zero_grad();
    Tensor loss = mse_loss(mlp->forward(p.x[s]), p.y[s]);
    backward(loss);
    opt->step();
  }
  return snapshot(*mlp);
}

// DDP over the launched ranks, each with its B rows (in `micro` micro-batches, all but the last
// inside no_backward_sync).
std::vector<Tensor> train_ddp(Fabric& fab, const Problem& p, const std::string& optimizer, int micro) {
  // A different seed per rank: setup must broadcast rank 0's weights.
  auto mlp = make_mlp(7 + 100 * uint64_t(fab.global_rank()));
  std::unique_ptr<optim::Optimizer> opt;
  if (optimizer == "sgd")
    opt = std::make_unique<optim::SGD>(mlp->parameters(), optim::SGDOptions{.lr = 0.05, .momentum = 0.9});
  else
    opt = std::make_unique<optim::AdamW>(mlp->parameters(), optim::AdamWOptions{.lr = 1e-2, .eps = 1e-6});
  auto [model, fopt] = fab.setup(mlp, *opt);
  const int64_t r = fab.global_rank();
  const int64_t rows = kB / micro;
  for (int64_t s = 0; s < kSteps; ++s) {
    fopt.zero_grad();
    for (int m = 0; m < micro; ++m) {
      const Tensor x = p.x[s].narrow(0, r * kB + m * rows, rows);
      const Tensor y = p.y[s].narrow(0, r * kB + m * rows, rows);
      auto guard = fab.no_backward_sync(model, /*enabled=*/m + 1 < micro);
      Tensor loss = mse_loss(model(x), y) * (1.0 / micro);
      fab.backward(loss);
    }
    fopt.step();
  }
  return snapshot(*mlp);
}

FabricOptions ddp_options(int devices = 2) {
  return {.accelerator = "cpu", .strategy = "ddp", .devices = devices, .timeout = 60s, .launch_argv = self_argv()};
}

TEST(DDP, TwoRanksMatchOneProcessWithTheGlobalBatch) {
  const Problem p = make_problem();
  const auto ref_sgd = train_single(p, "sgd");
  const auto ref_adam = train_single(p, "adamw");
  Fabric fab(ddp_options());
  const auto [sgd, adam] = fab.launch([&](Fabric& f) {
    EXPECT_EQ(f.world_size(), 2);
    auto a = train_ddp(f, p, "sgd", 1);
    auto b = train_ddp(f, p, "adamw", 1);
    return std::make_pair(a, b);
  });
  EXPECT_LE(max_rel_diff(sgd, ref_sgd), 1e-6) << "rank " << fab.global_rank();
  EXPECT_LE(max_rel_diff(adam, ref_adam), 1e-6) << "rank " << fab.global_rank();
}

// A backward that raises on every rank (here a hook on the first layer's output, as an error
// mid-backward would: out of memory, a check) has launched the later layers' bucket all-reduces.
// Fabric.backward lets them finish and resets the reducer, so the next backward starts clean:
// one good step after the failed one gives the weights of that step alone (the reducer kept its
// half-done state until 2026-12-05, and finalize handed the failed backward's reduced gradients
// to the next step).
TEST(DDP, ABackwardThatRaisesLeavesNoStateBehind) {
  const Problem p = make_problem();
  FabricOptions options = ddp_options();
  options.ddp.bucket_cap_mb = options.ddp.first_bucket_mb = 1e-4;  // ~100 bytes: many buckets
  Fabric fab(options);
  const auto [after_failure, clean] = fab.launch([&](Fabric& f) {
    const int64_t r = f.global_rank();
    auto run = [&](bool fail_first) {
      auto mlp = make_mlp(7);
      bool armed = false;
      mlp->layers->child("0").register_forward_hook(
          [&](nn::Module&, const Tensor&, const Tensor& out) {
            register_hook(out, [&](const Tensor& g) -> Tensor {
              if (armed) throw ValueError("injected failure in backward");
              return g;
            });
            return out;
          });
      optim::SGD opt(mlp->parameters(), {.lr = 0.05, .momentum = 0.9});
      auto [model, fopt] = f.setup(mlp, opt);
      auto rows = [&](int64_t s, const Tensor& t) { return t[s].narrow(0, r * kB, kB); };
      if (fail_first) {
        armed = true;
        fopt.zero_grad();
        EXPECT_CONTAINS(
            thrown<ValueError>([&] { f.backward(mse_loss(model(rows(1, p.x)), rows(1, p.y))); }),
            "injected failure");
        armed = false;
      }
      fopt.zero_grad();
      f.backward(mse_loss(model(rows(0, p.x)), rows(0, p.y)));
      fopt.step();
      return snapshot(*mlp);
    };
    return std::make_pair(run(true), run(false));
  });
  EXPECT_EQ(max_rel_diff(after_failure, clean), 0.0) << "rank " << fab.global_rank();
}

TEST(DDP, DestroyedModuleTakesItsReducerAlong) {
  Fabric fab(ddp_options());
  const int64_t left = fab.launch([](Fabric& f) { return test_util::bytes_left_by_destroyed_module(f); });
  EXPECT_LT(left, 64 * 1024) << "rank " << fab.global_rank();
}

TEST(DDP, GradientAccumulationWithNoBackwardSync) {
  const Problem p = make_problem();
  const auto ref = train_single(p, "sgd");
  Fabric fab(ddp_options());
  const auto w = fab.launch([&](Fabric& f) { return train_ddp(f, p, "sgd", 3); });
  EXPECT_LE(max_rel_diff(w, ref), 1e-6) << "rank " << fab.global_rank();
}

// A model whose second head is used only on rank 1, and whose third is never used.
struct TwoHeads : nn::Module {
  std::shared_ptr<nn::Linear> trunk, head_a, head_b, unused;
  TwoHeads() {
    manual_seed(3);
    trunk = register_module("trunk", std::make_shared<nn::Linear>(nn::LinearOptions{4, 4}));
    head_a = register_module("head_a", std::make_shared<nn::Linear>(nn::LinearOptions{4, 1}));
    head_b = register_module("head_b", std::make_shared<nn::Linear>(nn::LinearOptions{4, 1}));
    unused = register_module("unused", std::make_shared<nn::Linear>(nn::LinearOptions{4, 1}));
  }
  int64_t rank = 0;
  Tensor forward(const Tensor& x) override {
    const Tensor h = trunk->forward(x);
    return rank == 1 ? head_a->forward(h) + head_b->forward(h) : head_a->forward(h);
  }
};

TEST(DDP, UnusedParameters) {
  Fabric fab({.accelerator = "cpu", .strategy = "ddp_find_unused_parameters_true", .devices = 2, .timeout = 60s,
              .launch_argv = self_argv()});
  fab.launch([](Fabric& f) {
    auto m = std::make_shared<TwoHeads>();
    m->rank = f.global_rank();
    FabricModule model = f.setup_module(m);
    const Tensor x = ones({3, 4});
    f.backward(sum(model(x)));
    // head_b: used on rank 1 only -> every rank gets rank 1's gradient / 2.
    EXPECT_TRUE(m->head_b->weight.grad().defined()) << "rank " << f.global_rank();
    // unused: no rank used it -> no gradient anywhere, as in PyTorch.
    EXPECT_FALSE(m->unused->weight.grad().defined());
    const Tensor g = f.all_gather(m->head_b->weight.grad());
    EXPECT_EQ(amax(abs(g[0] - g[1])).item<double>(), 0.0);
  });
}

// One Linear applied twice, each call under activation checkpointing: its weight is read by two
// segments, so its gradient arrives from two recomputes. It accumulates once with the sum, so the
// reducer all-reduces the whole gradient (not the share of the segment recomputed first).
struct TiedCheckpointed : nn::Module {
  std::shared_ptr<nn::Linear> lin = std::make_shared<nn::Linear>(nn::LinearOptions{4, 4});
  TiedCheckpointed() {
    register_module("lin", lin);
    lin->set_activation_checkpointing(true);
  }
  Tensor forward(const Tensor& x) override { return (*lin)(tanh((*lin)(x))); }
};

TEST(DDP, AWeightReadByTwoCheckpointedSegmentsIsReducedWhole) {
  Generator g(99);
  const Tensor x = randn({4, 4}, {}, &g), y = randn({4, 4}, {}, &g);
  manual_seed(5);
  auto ref = std::make_shared<TiedCheckpointed>();
  ref->lin->set_activation_checkpointing(false);
  backward(mse_loss(ref->forward(x), y));
  const Tensor want = ref->lin->weight.grad().clone();
  Fabric fab(ddp_options());
  fab.launch([&](Fabric& f) {
    manual_seed(5);
    auto m = std::make_shared<TiedCheckpointed>();
    FabricModule model = f.setup_module(m);
    const int64_t r = f.global_rank();
    // Each rank's half of the batch; the mean of the two halves' gradients is the whole batch's.
    f.backward(mse_loss(model(x.narrow(0, 2 * r, 2)), y.narrow(0, 2 * r, 2)));
    EXPECT_LE(max_rel_diff({m->lin->weight.grad()}, {want}), 1e-6) << "rank " << r;
  });
}

TEST(DDP, UnusedParametersWithoutTheFlagIsAnErrorNamingThem) {
  Fabric fab(ddp_options());
  fab.launch([](Fabric& f) {
    auto m = std::make_shared<TwoHeads>();
    FabricModule model = f.setup_module(m);
    const std::string msg = thrown<ValueError>([&] { f.backward(sum(model(ones({3, 4})))); });
    EXPECT_CONTAINS(msg, "head_b.weight");
    EXPECT_CONTAINS(msg, "find_unused_parameters");
  });
}

TEST(DDP, FabricCollectives) {
  Fabric fab(ddp_options());
  fab.launch([](Fabric& f) {
    const int64_t r = f.global_rank();
    const Tensor t = full({2, 3}, double(r + 1));
    EXPECT_EQ(sum(f.all_reduce(full({2, 3}, double(r + 1)), "sum")).item<double>(), 6 * 3.0);
    EXPECT_EQ(sum(f.all_reduce(full({2, 3}, double(r + 1)), "mean")).item<double>(), 6 * 1.5);
    EXPECT_EQ(sum(f.all_reduce(full({2, 3}, double(r + 1)), "max")).item<double>(), 6 * 2.0);
    EXPECT_EQ(f.all_reduce(double(r), "sum"), 1.0);
    // In place, as torch.distributed.all_reduce: the caller's tensor holds the result.
    Tensor in_place = full({2, 3}, double(r + 1));
    const Tensor returned = f.all_reduce(in_place, "sum");
    EXPECT_EQ(returned.data<float>(), in_place.data<float>());
    EXPECT_EQ(sum(in_place).item<double>(), 6 * 3.0);
    // Integer mean: the sum divided by the world size, truncated toward zero in the same dtype
    // (the reference's result.copy_(result / world_size)).
    Tensor im = from_vector<int64_t>({r + 2, -(r + 2), 7});
    const Tensor im_out = f.all_reduce(im, "mean");
    EXPECT_EQ(im_out.dtype(), DType::int64);
    EXPECT_EQ(im.to_vector<int64_t>(), (std::vector<int64_t>{2, -2, 7}));
    EXPECT_EQ(im_out.to_vector<int64_t>(), (std::vector<int64_t>{2, -2, 7}));

    const Tensor g = f.all_gather(t);
    EXPECT_EQ(g.sizes(), (Shape{2, 2, 3}));
    EXPECT_EQ(sum(g[1]).item<double>(), 12.0);
    const Tensor s = f.all_gather(double(r) * 10);
    EXPECT_EQ(s.sizes(), (Shape{2}));
    EXPECT_EQ(s[1].item<double>(), 10.0);
    // Uneven: rank r contributes r + 1 rows.
    const Tensor u = f.all_gather_uneven(full({r + 1, 2}, double(r)));
    EXPECT_EQ(u.sizes(), (Shape{3, 2}));
    EXPECT_EQ(sum(u).item<double>(), 4.0);
    EXPECT_CONTAINS(thrown<ShapeError>([&] { f.all_gather(zeros({r + 1})); }), "shape");

    EXPECT_EQ(f.broadcast(std::string(r == 0 ? "from rank 0" : "ignored"), 0), "from rank 0");
    EXPECT_EQ(sum(f.broadcast(full({3}, double(r)), 1)).item<double>(), 3.0);
    {
      auto first = f.rank_zero_first();
      (void)first;
    }
    f.barrier("end");
  });
}

// rank_zero_first's waiting ranks wait as long as rank 0 takes, past fabric.timeout (a Gloo
// barrier gave up after it, killing the run); code after launch(fn) runs on every rank, its
// collectives included (rank 0 used to wait for its children inside launch(fn) while they waited
// for it in the collective); a tensor of more than 8 dims gathers and broadcasts, and one past
// the limit fails on every rank alike (the refusing rank used to leave the others waiting).
TEST(DDP, RankZeroFirstOutlastsTheTimeoutAndCodeAfterLaunchRunsEverywhere) {
  FabricOptions o = ddp_options();
  o.timeout = std::chrono::seconds(8);  // long enough for a loaded machine to connect
  Fabric fab(o);
  const int64_t r = fab.launch([](Fabric& f) {
    {
      auto first = f.rank_zero_first();
      if (f.global_rank() == 0) std::this_thread::sleep_for(std::chrono::seconds(10));
    }
    const Tensor nine = full({1, 1, 1, 1, 1, 1, 1, 1, 2}, double(f.global_rank()));
    EXPECT_EQ(f.all_gather(nine).sizes(), (Shape{2, 1, 1, 1, 1, 1, 1, 1, 1, 2}));
    EXPECT_EQ(f.broadcast(nine, 1).sizes(), nine.sizes());
    EXPECT_EQ(sum(f.broadcast(nine, 1)).item<double>(), 2.0);
    // 33 dims on rank 1 only: every rank hears of it at once.
    const Tensor many = f.global_rank() == 1 ? ones(Shape(33, 1)) : ones({1});
    EXPECT_CONTAINS(thrown<ValueError>([&] { f.all_gather(many); }),
                    "rank 1's tensor has 33 dims; at most 32");
    return f.global_rank();
  });
  const Tensor after = fab.all_reduce(scalar_tensor(double(r) + 1), "sum");
  EXPECT_EQ(after.item<double>(), 3.0) << "rank " << r;
}

// As the reference's broadcast (src's object, whatever the others pass): every rank gets src's
// dtype, shape and values. A placeholder of another dtype used to come back with src's bytes
// reinterpreted, another shape kept its own, and a smaller one aborted the job inside Gloo.
TEST(DDP, BroadcastGivesEveryRankTheSourcesTensorWhateverThePlaceholder) {
  Fabric fab(ddp_options());
  fab.launch([](Fabric& f) {
    const int64_t r = f.global_rank();
    const Tensor src = from_vector<float>({1.5f, 2.5f, 3.5f}).view({3, 1});
    for (const Tensor& placeholder : {zeros({3, 1}, {.dtype = DType::float64}), zeros({3}, {.dtype = DType::int32}),
                                      zeros({1, 3}), zeros({8}), zeros({1}), zeros({0})}) {
      const Tensor got = f.broadcast(r == 1 ? src : placeholder, 1);
      EXPECT_EQ(got.dtype(), DType::float32) << "rank " << r;
      EXPECT_EQ(got.sizes(), (Shape{3, 1})) << "rank " << r;
      EXPECT_EQ(got.contiguous().to_vector<float>(), (std::vector<float>{1.5f, 2.5f, 3.5f})) << "rank " << r;
    }
    const Tensor scalar = f.broadcast(r == 0 ? scalar_tensor(7.0, {.dtype = DType::int64}) : zeros({2}), 0);
    EXPECT_EQ(scalar.dim(), 0);
    EXPECT_EQ(scalar.item<int64_t>(), 7);
    EXPECT_EQ(f.broadcast(r == 0 ? zeros({0, 4}) : ones({3}), 0).sizes(), (Shape{0, 4}));
    // The reference's `fabric.broadcast(x if rank == 0 else None)`: the others may pass none.
    const Tensor from_none = f.broadcast(r == 1 ? src : Tensor(), 1);
    EXPECT_EQ(from_none.contiguous().to_vector<float>(), (std::vector<float>{1.5f, 2.5f, 3.5f}))
        << "rank " << r;
    EXPECT_EQ(from_none.device(), f.device());
    // None at the source: an error on every rank, and the group goes on.
    try {
      f.broadcast(r == 0 ? Tensor() : ones({2}), 0);
      ADD_FAILURE() << "rank " << r << ": no error";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("the tensor of the source rank 0 is undefined"),
                std::string::npos)
          << e.what();
    }
    f.barrier("end");
  });
}

// all_reduce with a different element count or dtype on one rank: an error on every rank naming
// both (it used to return a sum over mismatched bytes through the shared-memory path), nothing
// written into the tensors, and the group fails at once afterwards instead of hanging.
template <class E>
void expect_mismatched_all_reduce_fails(const std::function<Tensor(int64_t)>& tensor_of_rank, const std::string& msg) {
  Fabric fab(ddp_options());
  fab.launch([&](Fabric& f) {
    const int64_t r = f.global_rank();
    Tensor t = tensor_of_rank(r);
    const std::vector<double> before = t.to(DType::float64).to_vector<double>();
    EXPECT_CONTAINS(thrown<E>([&] { f.all_reduce(t, "sum"); }), msg);
    EXPECT_EQ(t.to(DType::float64).to_vector<double>(), before) << "rank " << r;
    const auto t0 = std::chrono::steady_clock::now();
    Tensor next = ones({2});
    EXPECT_CONTAINS(thrown<DistributedError>([&] { f.all_reduce(next, "sum"); }), "all_reduce");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s) << "rank " << r;
  });
}

// Models of one element count but other shapes on each rank: setup refuses on every rank naming
// the first tensor that differs (torch's DDP refuses too); the flat broadcast took rank 0's values
// into the other shapes.
TEST(DDP, SetupRefusesModelsWhoseShapesDifferAcrossRanks) {
  Fabric fab(ddp_options());
  fab.launch([&](Fabric& f) {
    const int64_t r = f.global_rank();
    auto make = [](int64_t a, int64_t b) {
      return std::make_shared<nn::Sequential>(
          std::vector<nn::ModulePtr>{nn::make<nn::Linear>({.in_features = a, .out_features = b}),
                                     nn::make<nn::Linear>({.in_features = b, .out_features = a})});
    };
    auto m = r == 0 ? make(4, 6) : make(6, 4);
    const std::string msg = thrown<ValueError>([&] { f.setup_module(m); });
    EXPECT_CONTAINS(msg, "the model differs across processes") << "rank " << r;
    if (r == 1)
      EXPECT_CONTAINS(msg, "'0.weight' is float32 (4, 6) where rank 0's is float32 (6, 4)");
    f.barrier("end");
  });
}

TEST(DDP, AllReduceOfDifferentSizesFailsOnEveryRank) {
  expect_mismatched_all_reduce_fails<ShapeError>(
      [](int64_t r) { return full({r == 0 ? 4 : 8}, double(r + 1)); },
      "rank 0 passes shape (4,) (4 elements) but rank 1 passes shape (8,) (8 elements)");
}

TEST(DDP, AllReduceOfDifferentDTypesFailsOnEveryRank) {
  expect_mismatched_all_reduce_fails<DTypeError>(
      [](int64_t r) { return full({4}, double(r + 1), {.dtype = r == 0 ? DType::float32 : DType::float64}); },
      "rank 0 passes float32 (shape (4,)) but rank 1 passes float64 (shape (4,))");
}

// A save that fails fails on every rank, and the ranks stay in step for what follows: a bad state
// is refused on each rank before any collective (only rank 0 writes, and it alone checked it
// before: rank 1 went on to the barrier, rank 0 to the next collective, and the group broke), and
// rank 0's own failure to write reaches rank 1 as an IOError naming it.
TEST(DDP, AFailedSaveFailsOnEveryRankAndKeepsThemInStep) {
  const std::string dir = ::testing::TempDir() + "/ddp_failed_save";
  const bool launcher = !dist_test::is_launched_rank();  // the process that prepares and checks
  if (launcher) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir + "/busy");
    std::ofstream(dir + "/busy/notes.txt") << "mine";
  }
  Fabric fab(ddp_options());
  fab.launch([&](Fabric& f) {
    const int r = f.global_rank();
    auto model = f.setup_module(make_mlp(1));
    EXPECT_CONTAINS(thrown<ValueError>([&] {
                      f.save(dir + "/ck", {{"model", model}, {"name", std::string("\xff")}});
                    }),
                    "is not valid UTF-8")
        << "rank " << r;
    const std::string msg = thrown<IOError>([&] { f.save(dir + "/busy", {{"model", model}}); });
    EXPECT_CONTAINS(msg, "holds something other than a checkpoint") << "rank " << r;
    if (r == 1) EXPECT_CONTAINS(msg, "rank 0 could not write");
    EXPECT_EQ(f.all_reduce(1.0, "sum"), 2.0) << "rank " << r;
    f.save(dir + "/ck", {{"model", model}});
  });
  if (!launcher) return;
  EXPECT_TRUE(std::filesystem::exists(dir + "/ck/state.json"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/busy/notes.txt"));
  std::filesystem::remove_all(dir);
}

TEST(DDP, CollectivesOnOneProcessHaveTheDistributedShapes) {
  Fabric fab({.accelerator = "cpu"});
  const Tensor t = ones({2, 3});
  // all_reduce on one process: the tensor itself, unchanged (an integer mean stays integer).
  const Tensor i = from_vector<int64_t>({3, -3});
  const Tensor i_out = fab.all_reduce(i, "mean");
  EXPECT_EQ(i_out.dtype(), DType::int64);
  EXPECT_EQ(i_out.data<int64_t>(), i.data<int64_t>());
  EXPECT_EQ(i_out.to_vector<int64_t>(), (std::vector<int64_t>{3, -3}));
  EXPECT_EQ(fab.all_gather(t).sizes(), (Shape{1, 2, 3}));
  EXPECT_EQ(fab.all_gather(1.5).sizes(), (Shape{1}));
  EXPECT_EQ(sum(fab.all_reduce(t, "sum")).item<double>(), 6.0);
  EXPECT_EQ(fab.broadcast(std::string("x")), "x");
  fab.barrier();
}

TEST(DDP, SetupBeforeLaunchIsAnError) {
  Fabric fab(ddp_options());
  EXPECT_CONTAINS(thrown<Error>([&] { fab.setup_module(make_mlp(1)); }), "launch");
}

// The reference's barrier/broadcast/all_reduce/all_gather call _validate_launched(): with several
// processes, before launch() they are errors rather than one process's identities.
TEST(DDP, CollectivesBeforeLaunchAreAnError) {
  Fabric fab(ddp_options());
  const Tensor t = ones({2});
  EXPECT_CONTAINS(thrown<Error>([&] { fab.all_reduce(t); }), "launch");
  EXPECT_CONTAINS(thrown<Error>([&] { fab.all_reduce(1.0, "sum"); }), "launch");
  EXPECT_CONTAINS(thrown<Error>([&] { fab.all_gather(t); }), "launch");
  EXPECT_CONTAINS(thrown<Error>([&] { fab.all_gather(1.0); }), "launch");
  EXPECT_CONTAINS(thrown<Error>([&] { fab.all_gather_uneven(t); }), "launch");
  EXPECT_CONTAINS(thrown<Error>([&] { fab.broadcast(t); }), "launch");
  EXPECT_CONTAINS(thrown<Error>([&] { fab.broadcast(std::string("x")); }), "launch");
  EXPECT_CONTAINS(thrown<Error>([&] { fab.barrier(); }), "launch");
  EXPECT_CONTAINS(thrown<Error>([&] { fab.rank_zero_first(); }), "launch");
  EXPECT_CONTAINS(thrown<Error>([&] { fab.save(::testing::TempDir() + "/never_written", {{"step", 1}}); }), "launch");
  EXPECT_FALSE(std::filesystem::exists(::testing::TempDir() + "/never_written"));
  // One device needs no launch.
  Fabric one({.accelerator = "cpu", .strategy = "ddp", .devices = 1});
  EXPECT_EQ(sum(one.all_reduce(t, "sum")).item<double>(), 2.0);
  one.barrier();
}

// Several nodes: Fabric is built as the reference builds it (ddp over devices x nodes); without the
// rendezvous variables, launch() says what to set instead of waiting for nodes that never come.
TEST(DDP, SeveralNodesWithoutRendezvousFailAtLaunch) {
  if (std::getenv("MASTER_ADDR") || std::getenv("MASTER_PORT") || dist_test::is_launched_rank())
    GTEST_SKIP() << "the test runs inside a launcher's environment";
  Fabric fab({.accelerator = "cpu", .num_nodes = 2, .timeout = 5s});
  EXPECT_EQ(fab.strategy(), "ddp");
  EXPECT_EQ(fab.world_size(), 2);
  const std::string msg = thrown<ValueError>([&] { fab.launch(); });
  EXPECT_CONTAINS(msg, "MASTER_ADDR");
  EXPECT_CONTAINS(msg, "MASTER_PORT");
}

// 16-mixed: rank 1's gradient overflows; both ranks must skip the step and back off together.
TEST(DDP, GradScalerSkipsOnEveryRankWhenOneOverflows) {
  FabricOptions o = ddp_options();
  o.precision = "16-mixed";
  Fabric fab(o);
  fab.launch([](Fabric& f) {
    auto mlp = make_mlp(5);
    optim::SGD sgd(mlp->parameters(), {.lr = 0.1});
    auto [model, opt] = f.setup(mlp, sgd);
    const auto before = snapshot(*mlp);
    opt.zero_grad();
    const double big = f.global_rank() == 1 ? 1e30 : 1.0;  // overflows float16 only on rank 1
    f.backward(sum(model(full({2, kIn}, big))));
    opt.step();
    EXPECT_EQ(max_rel_diff(snapshot(*mlp), before), 0.0) << "rank " << f.global_rank() << " stepped";
    auto* mixed = dynamic_cast<precision::MixedPrecision*>(&f.precision());
    ASSERT_NE(mixed, nullptr);
    EXPECT_EQ(mixed->scaler()->get_scale(), 32768.0) << "rank " << f.global_rank();
  });
}

// transformer-engine precision: the ranks see inputs of different magnitudes, yet after a step
// their FP8 scales agree (the amaxes are MAX-reduced before each delayed-scaling update).
TEST(DDP, Fp8AmaxesAreReducedAcrossRanks) {
  FabricOptions o = ddp_options();
  o.precision = "transformer-engine";
  Fabric fab(o);
  fab.launch([](Fabric& f) {
    manual_seed(2);
    auto net = std::make_shared<nn::MLP>(nn::MLPConfig{.sizes = {16, 32, 16}});
    FabricModule model = f.setup_module(net);
    precision::FP8Linear* fp8 = nullptr;
    for (auto& [name, m] : net->named_modules())
      if (auto* l = dynamic_cast<precision::FP8Linear*>(m.get())) fp8 = fp8 ? fp8 : l;
    ASSERT_NE(fp8, nullptr) << "transformer-engine did not replace the Linear layers";
    const double magnitude = f.global_rank() == 0 ? 1.0 : 50.0;
    for (int step = 0; step < 2; ++step) {
      Tensor x = full({4, 16}, magnitude);
      f.backward(sum(model(x)));
    }
    const Tensor scales = f.all_gather(fp8->fp8_meta().scale(precision::Fp8Direction::forward));
    EXPECT_EQ(amax(abs(scales[0] - scales[1])).item<double>(), 0.0) << "rank " << f.global_rank();
  });
}

}  // namespace
}  // namespace fabric
