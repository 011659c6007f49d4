// The optimizers without a CUDA kernel of their own, on cuda:0. NAdam, RAdam, Adamax, Adadelta,
// Rprop and ASGD take the tensor-op step (optim/cpu_param_loop.h), whose ops round as the CPU's, so
// torch 1.13's CPU trajectories (tests/optim/optim2_torch_cases.*) hold bit for bit on the GPU
// too, state included. LBFGS keeps its flat vectors on the host and reads and writes the
// parameters there.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "optim/lbfgs.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/optim/optim2_torch_cases.h"

namespace fabric {
namespace {

using optim::testing::Optim2Inputs;
using optim::testing::Optim2Row;

Tensor on_gpu(const std::vector<double>& v, DType dt) {
  return from_vector<double>(v).to(dt).to(test::kGpu);
}

void expect_bitwise(const Tensor& got_gpu, const std::vector<double>& want,
                    const std::string& what) {
  const std::vector<double> got = got_gpu.to(Device::cpu()).to_vector<double>();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::bit_cast<uint64_t>(got[i]) != std::bit_cast<uint64_t>(want[i])) {
      ADD_FAILURE() << what << " [" << i << "]: " << std::hexfloat << got[i] << " vs torch "
                    << want[i];
      return;
    }
  }
}

TEST(CudaOptim, TensorOpOptimizersMatchTorchBitForBit) {
  FABRIC_REQUIRE_CUDA();
  for (const Optim2Row& row : optim::testing::optim2_rows()) {
    const Optim2Inputs* in = nullptr;
    for (const Optim2Inputs& i : optim::testing::optim2_inputs())
      if (i.dtype == row.dtype) in = &i;
    ASSERT_NE(in, nullptr) << row.name;
    std::vector<Tensor> ps;
    for (const auto& init : in->init) ps.push_back(on_gpu(init, row.dtype).set_requires_grad(true));
    auto opt = row.make(ps);
    for (size_t s = 0; s < in->grads.size(); ++s) {
      for (size_t k = 0; k < ps.size(); ++k) set_grad(ps[k], on_gpu(in->grads[s][k], row.dtype));
      opt->step();
      for (size_t k = 0; k < ps.size(); ++k)
        expect_bitwise(ps[k], row.params[k][s],
                       std::string(row.name) + " param " + std::to_string(k) + " after step " +
                           std::to_string(s + 1));
    }
    for (size_t k = 0; k < ps.size(); ++k) {
      const optim::ParamState* st = opt->state(ps[k]);
      ASSERT_NE(st, nullptr) << row.name;
      for (const auto& [key, want] : row.state[k])
        expect_bitwise(st->at(key), want, std::string(row.name) + " state " + key);
    }
  }
}

// A separable quadratic whose gradient is elementwise (the same bits on both devices); its loss is
// a sum, whose order may differ, so the trajectories are compared closely rather than by bits.
TEST(CudaOptim, LbfgsOnTheGpuFollowsTheCpu) {
  FABRIC_REQUIRE_CUDA();
  for (const std::string line_search : {"", "strong_wolfe"}) {
    std::vector<double> final_params[2];
    for (int on_gpu_run = 0; on_gpu_run < 2; ++on_gpu_run) {
      const Device dev = on_gpu_run ? test::kGpu : Device::cpu();
      const Tensor target = from_vector<double>({1.0, -2.0, 3.0, 0.5, -1.5}).to(dev);
      const Tensor weight = from_vector<double>({1.0, 4.0, 0.5, 2.0, 8.0}).to(dev);
      Tensor x = zeros({5}, {.dtype = DType::float64}).to(dev).set_requires_grad(true);
      optim::LBFGS opt(
          {x}, {.lr = 0.5, .max_iter = 10, .history_size = 4, .line_search_fn = line_search});
      for (int s = 0; s < 3; ++s) {
        opt.step([&] {
          opt.zero_grad();
          const Tensor d = sub(x, target);
          Tensor loss = sum(mul(mul(d, d), weight));
          backward(loss);
          return loss;
        });
      }
      EXPECT_EQ(x.device(), dev);
      final_params[on_gpu_run] = x.to_vector<double>();
    }
    for (size_t i = 0; i < 5; ++i)
      EXPECT_NEAR(final_params[1][i], final_params[0][i], 1e-9) << line_search << " [" << i << "]";
  }
}

}  // namespace
}  // namespace fabric
