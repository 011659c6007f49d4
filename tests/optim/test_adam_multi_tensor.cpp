// Adam/AdamW's multi-tensor path (adam_multi_step_stub: CUDA's kernel updates many tensors a
// launch) checked on the CPU, where no such kernel is registered: a recording stub is put in the
// CPU slot for the test. It must receive each run of contiguous parameters of one dtype with the
// same hyper-parameters and step count in one call, leave non-contiguous parameters to the
// per-tensor kernel, and give every parameter and state the bits of the per-tensor path; a
// parameter that raises leaves the ones before it updated, as before.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "optim/adam.h"
#include "tensor/factory.h"
#include "tensor/optim_kernels.h"
#include "tensor/random.h"

namespace fabric::optim {
namespace {

struct Call {
  size_t tensors;
  DType dtype;
  double lr, step;
};
std::vector<Call> g_calls;

void recording_multi_step(DType dt, const std::vector<AdamTensorPtrs>& tensors,
                          const AdamKernelArgs& args) {
  g_calls.push_back({tensors.size(), dt, args.lr, args.step});
  for (const AdamTensorPtrs& t : tensors) {
    adam_step_stub(Device::cpu())(dt, t.n, t.param, t.grad, t.exp_avg, t.exp_avg_sq,
                                  t.max_exp_avg_sq, args);
  }
}

// The recording stub in the CPU slot for the test's lifetime.
class MultiStepOnTheCpu {
 public:
  MultiStepOnTheCpu() {
    g_calls.clear();
    adam_multi_step_stub.cpu = &recording_multi_step;
  }
  ~MultiStepOnTheCpu() { adam_multi_step_stub.cpu = nullptr; }
  MultiStepOnTheCpu(const MultiStepOnTheCpu&) = delete;
  MultiStepOnTheCpu& operator=(const MultiStepOnTheCpu&) = delete;
};

Tensor randn_seeded(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, {}, &gen);
}

Tensor leaf(Tensor t) {
  t = t.detach();
  t.set_requires_grad(true);
  return t;
}

// Group A (lr 1e-2): two float32, one non-contiguous float32, one bfloat16, one without a
// gradient, one float32; group B (lr 3e-3): two float32.
struct Model {
  std::vector<Tensor> a, b;
  static Model make() {
    Model m;
    m.a = {leaf(randn_seeded({3, 4}, 1)),     leaf(randn_seeded({5}, 2)),
           leaf(randn_seeded({4, 3}, 3).t()), leaf(randn_seeded({6}, 4).to(DType::bfloat16)),
           leaf(randn_seeded({7}, 5)),        leaf(randn_seeded({2}, 6))};
    m.b = {leaf(randn_seeded({8}, 7)), leaf(randn_seeded({3}, 8))};
    return m;
  }
  void set_grads(int step) {
    uint64_t seed = 100 + 10 * static_cast<uint64_t>(step);
    for (auto* list : {&a, &b}) {
      for (size_t i = 0; i < list->size(); ++i) {
        const Tensor& p = (*list)[i];
        if (list == &a && i == 4) continue;  // never has a gradient
        set_grad(p, randn_seeded(p.sizes(), seed++).to(p.dtype()));
      }
    }
  }
  std::vector<Tensor> all() const {
    std::vector<Tensor> v = a;
    v.insert(v.end(), b.begin(), b.end());
    return v;
  }
};

AdamW make_optimizer(const Model& m) {
  AdamWOptions fast;
  fast.lr = 1e-2;
  AdamWOptions slow;
  slow.lr = 3e-3;
  return AdamW({{m.a, fast}, {m.b, slow}}, fast);
}

void expect_same_bits(const Tensor& want, const Tensor& got, const std::string& what) {
  ASSERT_EQ(want.dtype(), got.dtype()) << what;
  EXPECT_EQ(want.contiguous().to_vector<double>(), got.contiguous().to_vector<double>()) << what;
}

TEST(AdamMultiTensor, RunsOfMatchingParametersGoInOneCallWithTheSameBits) {
  Model plain = Model::make(), batched = Model::make();
  AdamW plain_opt = make_optimizer(plain);
  MultiStepOnTheCpu stub;
  AdamW batched_opt = make_optimizer(batched);
  for (int step = 1; step <= 3; ++step) {
    plain.set_grads(step);
    batched.set_grads(step);
    adam_multi_step_stub.cpu = nullptr;
    plain_opt.step();
    adam_multi_step_stub.cpu = &recording_multi_step;
    const size_t before = g_calls.size();
    batched_opt.step();
    // [a0, a1] float32 (a2 is not contiguous: its own kernel), [a3] bfloat16, [a5] float32,
    // [b0, b1] at group B's lr.
    ASSERT_EQ(g_calls.size() - before, 4u) << "step " << step;
    const std::vector<size_t> sizes = {2, 1, 1, 2};
    const std::vector<DType> dtypes = {DType::float32, DType::bfloat16, DType::float32,
                                       DType::float32};
    const std::vector<double> lrs = {1e-2, 1e-2, 1e-2, 3e-3};
    for (size_t k = 0; k < 4; ++k) {
      const Call& c = g_calls[before + k];
      EXPECT_EQ(c.tensors, sizes[k]) << "step " << step << " call " << k;
      EXPECT_EQ(c.dtype, dtypes[k]) << "step " << step << " call " << k;
      EXPECT_EQ(c.lr, lrs[k]) << "step " << step << " call " << k;
      EXPECT_EQ(c.step, static_cast<double>(step)) << "step " << step << " call " << k;
    }
  }
  const std::vector<Tensor> want = plain.all(), got = batched.all();
  for (size_t i = 0; i < want.size(); ++i) {
    expect_same_bits(want[i], got[i], "parameter " + std::to_string(i));
  }
  const auto want_state = plain_opt.state_dict(), got_state = batched_opt.state_dict();
  EXPECT_EQ(want_state.state.size(), got_state.state.size());
  for (const auto& [index, entries] : want_state.state) {
    for (const auto& [key, t] : entries) {
      expect_same_bits(t, got_state.state.at(index).at(key),
                       "state " + std::to_string(index) + "." + key);
    }
  }
}

TEST(AdamMultiTensor, AParameterThatRaisesLeavesTheOnesBeforeItUpdated) {
  Model plain = Model::make(), batched = Model::make();
  AdamW plain_opt = make_optimizer(plain);
  MultiStepOnTheCpu stub;
  AdamW batched_opt = make_optimizer(batched);
  plain.set_grads(1);
  batched.set_grads(1);
  // Group B's first parameter gets a gradient of the wrong shape: group A is updated first.
  set_grad_unchecked(plain.b[0], zeros({2}));
  set_grad_unchecked(batched.b[0], zeros({2}));
  adam_multi_step_stub.cpu = nullptr;
  EXPECT_THROW(plain_opt.step(), ShapeError);
  adam_multi_step_stub.cpu = &recording_multi_step;
  EXPECT_THROW(batched_opt.step(), ShapeError);
  EXPECT_EQ(g_calls.size(), 3u);  // group A's three runs, flushed before the error propagates
  const std::vector<Tensor> want = plain.all(), got = batched.all();
  for (size_t i = 0; i < want.size(); ++i) {
    expect_same_bits(want[i], got[i], "parameter " + std::to_string(i));
  }
}

}  // namespace
}  // namespace fabric::optim
