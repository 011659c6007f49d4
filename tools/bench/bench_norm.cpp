// Normalisations on the CPU: batch_norm in training mode (BatchNorm2d's (32, 64, 56, 56) and
// BatchNorm1d's (4096, 1024)), group_norm (32 groups) and layer_norm for scale, float32, forward
// and forward + backward (a given output gradient), at 1 and 2 threads, in ms, next to PyTorch
// (tools/bench/torch_norm.py) measured in the same run.
//   bench_norm [reps]
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

int g_reps = 7;

struct Case {
  const char* name;
  Shape shape;
  int64_t channels;
  std::function<Tensor(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
                       const Tensor& rv)>
      fn;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_reps = std::max(1, std::atoi(argv[1]));
  std::string torch_status;
  const auto torch = bench::run_torch_rows(__FILE__, "torch_norm.py", g_reps, torch_status);
  std::printf("bench_norm: float32, medians of %d runs after 2 warm-up runs, ms\n%s\n\n", g_reps,
              torch_status.c_str());
  const std::vector<Case> cases = {
      {"batch_norm2d", {32, 64, 56, 56}, 64,
       [](auto& x, auto& w, auto& b, auto& rm, auto& rv) {
         return batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5);
       }},
      {"batch_norm1d", {4096, 1024}, 1024,
       [](auto& x, auto& w, auto& b, auto& rm, auto& rv) {
         return batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5);
       }},
      {"group_norm", {32, 64, 56, 56}, 64,
       [](auto& x, auto& w, auto& b, auto&, auto&) { return group_norm(x, 32, w, b, 1e-5); }},
      {"layer_norm", {4096, 1024}, 1024,
       [](auto& x, auto& w, auto& b, auto&, auto&) { return layer_norm(x, {1024}, w, b, 1e-5); }},
  };
  bench::print_fwd_bwd_header(13);
  manual_seed(0);
  for (const Case& c : cases) {
    Tensor x = randn(c.shape).set_requires_grad(true);
    Tensor w = randn({c.channels}).set_requires_grad(true);
    Tensor b = randn({c.channels}).set_requires_grad(true);
    const Tensor rm = zeros({c.channels}), rv = ones({c.channels}), g = randn(c.shape);
    bench::time_fwd_bwd_rows(
        torch, c.name, 13, g_reps, [&] { c.fn(x, w, b, rm, rv); },
        [&] {
          for (const Tensor* t : {&x, &w, &b}) zero_grad(*t);
          c.fn(x, w, b, rm, rv).backward(g);
        });
  }
  bench::print_fwd_bwd_footer();
  return 0;
}
