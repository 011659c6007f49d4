// The collectives the runtime builds on the host (a loss, shape records, byte strings, flags, a
// norm), run on a one-rank NCCL group on cuda:0, which takes only cuda tensors: each goes through
// the staging of collective_staging.h, and so do bool tensors, which NCCL moves as uint8. One rank
// is what one GPU allows (NCCL refuses two ranks on a device), and a one-process Strategy makes no
// group: the strategy here is given the NCCL group directly, so that its collectives run what N
// processes on CUDA run. Skipped without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "distributed/collective_staging.h"
#include "distributed/ddp.h"
#include "distributed/fsdp_call_order.h"
#include "distributed/nccl_process_group.h"
#include "distributed/sharded_clip.h"
#include "distributed/store.h"
#include "distributed/strategy.h"
#include "nn/linear.h"
#include "optim/sgd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric::distributed {
namespace {

using namespace std::chrono_literals;
using test::kGpu;

// The one-process Strategy with a one-rank NCCL group on cuda:0 in place of none.
class OneRankNcclStrategy : public Strategy {
 public:
  OneRankNcclStrategy() : Strategy(StrategyOptions{.accelerator = "cuda"}) {
    pg_ = make_nccl_process_group(std::make_shared<HashStore>(), 0, 1, 0, {.timeout = 60s});
  }
  ProcessGroup& group() const { return *pg_; }
};

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// A layer the forward uses, one it leaves out, a bool buffer moved to the GPU with them and an
// int64 buffer left on the host.
struct HalfUsed : nn::Module {
  HalfUsed() {
    used = register_module("used", std::make_shared<nn::Linear>(
                                       nn::LinearOptions{.in_features = 3, .out_features = 2}));
    unused = register_module("unused", std::make_shared<nn::Linear>(
                                           nn::LinearOptions{.in_features = 3, .out_features = 2}));
    register_buffer("flags", from_vector<bool>({true, false, true}));
  }
  Tensor forward(const Tensor& x) override { return used->forward(x); }
  std::string type_name() const override { return "HalfUsed"; }
  std::shared_ptr<nn::Linear> used, unused;
};

struct Case {
  const char* name;
  std::function<void(OneRankNcclStrategy& s)> run;
};

const std::vector<Case> kCases = {
    {"Fabric.all_reduce(double): a host float64 scalar, mean",
     [](OneRankNcclStrategy& s) {
       const Tensor mean =
           s.all_reduce(scalar_tensor(2.5, {.dtype = DType::float64}), ReduceOp::avg);
       EXPECT_EQ(mean.device(), Device::cpu());
       EXPECT_EQ(mean.item<double>(), 2.5);
     }},
    {"the trainer's host (sum, count) pair, and an integer mean",
     [](OneRankNcclStrategy& s) {
       EXPECT_EQ(values(s.all_reduce(from_vector<double>({3, 4}), ReduceOp::sum)),
                 (std::vector<double>{3, 4}));
       const Tensor mean = s.all_reduce(from_vector<int64_t>({6}), ReduceOp::avg);
       EXPECT_EQ(mean.dtype(), DType::float32);
       EXPECT_EQ(values(mean), std::vector<double>{6});
     }},
    {"a cuda tensor is reduced where it is",
     [](OneRankNcclStrategy& s) {
       const Tensor r = s.all_reduce(from_vector<float>({1, 2}).to(kGpu), ReduceOp::max);
       EXPECT_EQ(r.device(), kGpu);
       EXPECT_EQ(values(r), (std::vector<double>{1, 2}));
     }},
    {"all_gather (gather_shapes' int64 records) of host and cuda tensors",
     [](OneRankNcclStrategy& s) {
       for (const Device d : {Device::cpu(), kGpu}) {
         const Tensor out = s.all_gather(from_vector<int64_t>({1, 2, 3}).to(d));
         EXPECT_EQ(out.device(), d);
         EXPECT_EQ(out.sizes(), (Shape{1, 3}));
         EXPECT_EQ(values(out), (std::vector<double>{1, 2, 3}));
       }
     }},
    {"all_gather_uneven of a host tensor (the sharded checkpoint's strings)",
     [](OneRankNcclStrategy& s) {
       const Tensor out = s.all_gather_uneven(from_vector<uint8_t>({7, 8, 9, 10}, {2, 2}));
       EXPECT_EQ(out.device(), Device::cpu());
       EXPECT_EQ(out.sizes(), (Shape{2, 2}));
       EXPECT_EQ(values(out), (std::vector<double>{7, 8, 9, 10}));
     }},
    {"broadcast of host bytes, and of host and cuda tensors",
     [](OneRankNcclStrategy& s) {
       EXPECT_EQ(s.broadcast(Bytes{'a', 'b', 'c'}, 0), (Bytes{'a', 'b', 'c'}));
       EXPECT_EQ(s.broadcast(Bytes{}, 0), Bytes{});
       for (const Device d : {Device::cpu(), kGpu}) {
         const Tensor out = s.broadcast(from_vector<float>({1.5, -2}).to(d), 0);
         EXPECT_EQ(out.device(), d);
         EXPECT_EQ(values(out), (std::vector<double>{1.5, -2}));
       }
     }},
    {"sharded clip's float64 norm terms (sum for p = 2, max for inf)",
     [](OneRankNcclStrategy& s) {
       for (const double norm_type : {2.0, std::numeric_limits<double>::infinity()}) {
         Tensor p = zeros({2}, {.device = kGpu});
         p.set_requires_grad(true);
         set_grad(p, from_vector<float>({3, 4}).to(kGpu));
         optim::SGD opt(std::vector<Tensor>{p}, {.lr = 0.1});
         const Tensor total = clip_sharded_grad_norm(
             opt, [](const Tensor&) { return true; }, &s.group(), 1.0, norm_type, false, "test");
         const double want = norm_type == 2.0 ? 5.0 : 4.0;
         EXPECT_NEAR(total.item<double>(), want, 1e-6) << norm_type;
         const std::vector<double> g = values(p.grad());
         EXPECT_NEAR(g[0], 3.0 / want, 1e-5) << norm_type;
         EXPECT_NEAR(g[1], 4.0 / want, 1e-5) << norm_type;
       }
     }},
    {"DDP's used-parameter flags, and the broadcast of a bool and a host buffer",
     [](OneRankNcclStrategy& s) {
       auto m = std::make_shared<HalfUsed>();
       m->to(kGpu);
       m->register_buffer("steps", from_vector<int64_t>({5, 6}));  // left on the host
       // DDP broadcasts every parameter and buffer at construction.
       GradientReducer reducer(*m, s.process_group(), {.find_unused_parameters = true});
       for (const auto& [name, b] : m->named_buffers()) {
         const std::vector<double> want =
             name == "flags" ? std::vector<double>{1, 0, 1} : std::vector<double>{5, 6};
         EXPECT_EQ(values(b), want) << name;
         EXPECT_EQ(b.device(), name == "flags" ? kGpu : Device::cpu()) << name;
       }
       sum(m->forward(ones({4, 3}, {.device = kGpu}))).backward();
       reducer.finalize();
       for (const auto& [name, p] : m->named_parameters())
         EXPECT_EQ(p.grad().defined(), name.rfind("used.", 0) == 0) << name;
     }},
    {"bool under NCCL: moved as uint8, reduced with max/min only",
     [](OneRankNcclStrategy& s) {
       ProcessGroup& pg = s.group();
       Tensor flags = from_vector<bool>({true, false, true}).to(kGpu);
       pg.broadcast(flags, 0)->wait();
       pg.all_reduce(flags, ReduceOp::max)->wait();
       pg.all_reduce(flags, ReduceOp::min)->wait();
       Tensor all = zeros({3}, {.dtype = DType::bool_, .device = kGpu});
       pg.all_gather(all, flags)->wait();
       EXPECT_EQ(values(flags), (std::vector<double>{1, 0, 1}));
       EXPECT_EQ(values(all), (std::vector<double>{1, 0, 1}));
       EXPECT_CONTAINS(thrown<DTypeError>([&] { pg.all_reduce(flags, ReduceOp::sum); }),
                       "cannot reduce a bool tensor with ReduceOp sum");
       // The broadcast of a bool tensor through the strategy (a model's bool buffer).
       EXPECT_EQ(values(s.broadcast(from_vector<bool>({false, true}), 0)),
                 (std::vector<double>{0, 1}));
     }},
    {"the precision plugins' host reducers (overflow flag, FP8 amax row), a strided view",
     [](OneRankNcclStrategy& s) {
       Tensor flag = scalar_tensor(1.0, {.dtype = DType::float32});
       staged_all_reduce(s.group(), flag, ReduceOp::max);
       EXPECT_EQ(flag.item<double>(), 1.0);
       Tensor amax = from_vector<float>({0.5, 2, 8});
       staged_all_reduce(s.group(), amax, ReduceOp::max);
       EXPECT_EQ(values(amax), (std::vector<double>{0.5, 2, 8}));
       Tensor t = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}).t();  // (3, 2), strided
       staged_all_reduce(s.group(), t, ReduceOp::sum);
       EXPECT_EQ(values(t), (std::vector<double>{1, 4, 2, 5, 3, 6}));
       // The group's own contract is unchanged: a host tensor handed to it directly is refused.
       EXPECT_CONTAINS(thrown<DeviceError>([&] { s.group().all_reduce(flag); }),
                       "NCCL process group takes cuda:0 tensors; got cpu");
     }},
    {"FSDP's call-order exchange of host logs",
     [](OneRankNcclStrategy& s) {
       fsdp_detail::CallLog log;
       log.record({.kind = fsdp_detail::Call::all_gather, .unit = 0});
       log.record({.kind = fsdp_detail::Call::reduce, .unit = 0, .flat = 0});
       EXPECT_TRUE(log.first_disagreement(s.group(), Device::cpu()).empty());
     }},
};

TEST(CudaCollectives, HostTensorsGoThroughAOneRankNcclGroup) {
  FABRIC_REQUIRE_CUDA();
  OneRankNcclStrategy strategy;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    c.run(strategy);
  }
}

}  // namespace
}  // namespace fabric::distributed
