// Pooling on the CPU: max_pool2d with CNNs' 2x2/stride-2 window (the AVX-512 path) on the two
// stages of bench_train's CNN, ResNet's 3x3/stride-2/padding-1 stem pool (the generic loops) and
// avg_pool2d 2x2, float32 (and bfloat16 for one case), forward and forward + backward, at 1 and
// 2 threads, in ms, next to PyTorch (tools/bench/torch_pool.py) measured in the same run.
//   bench_pool [reps]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tools/bench/fwd_bwd_rows.h"

using namespace fabric;

namespace {

int g_reps = 11;

struct Case {
  const char* name;
  Shape shape;
  DType dtype;
  std::function<Tensor(const Tensor& x)> fn;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_reps = std::max(1, std::atoi(argv[1]));
  std::string torch_status;
  const auto torch = bench::run_torch_rows(__FILE__, "torch_pool.py", g_reps, torch_status);
  std::printf("bench_pool: medians of %d runs after 2 warm-up runs, ms\n%s\n\n", g_reps,
              torch_status.c_str());
  auto max2 = [](const Tensor& x) { return max_pool2d(x, {2}); };
  const std::vector<Case> cases = {
      {"max2x2_32x32", {64, 32, 32, 32}, DType::float32, max2},
      {"max2x2_16x16", {64, 64, 16, 16}, DType::float32, max2},
      {"max2x2_bf16", {64, 32, 32, 32}, DType::bfloat16, max2},
      {"max3x3s2p1", {32, 64, 56, 56}, DType::float32,
       [](const Tensor& x) { return max_pool2d(x, {3}, {2}, {1}); }},
      {"avg2x2_32x32", {64, 32, 32, 32}, DType::float32,
       [](const Tensor& x) { return avg_pool2d(x, {2}); }},
  };
  bench::print_fwd_bwd_header(13);
  manual_seed(0);
  for (const Case& c : cases) {
    Tensor x = randn(c.shape).to(c.dtype).set_requires_grad(true);
    Tensor g;
    {
      NoGradGuard no_grad;
      g = randn(c.fn(x).sizes()).to(c.dtype);
    }
    bench::time_fwd_bwd_rows(
        torch, c.name, 13, g_reps, [&] { c.fn(x); },
        [&] {
          zero_grad(x);
          c.fn(x).backward(g);
        });
  }
  bench::print_fwd_bwd_footer();
  return 0;
}
