// Recurrent layers on the CPU: nn::LSTM and nn::GRU (2 layers, float32), forward and forward +
// backward of sum(output * g), at 1 and 2 threads, in ms, next to PyTorch's nn.LSTM / nn.GRU
// (tools/bench/torch_rnn.py) measured in the same run. Ours step the cells one time step at a
// time as compositions of linear and pointwise ops (tensor/ops_rnn.cpp). Run it after
// `eval "$(tools/bench/torch_env.sh)"`, or torch's matmuls run on the reference BLAS.
//   bench_rnn [reps]
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/recurrent.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tools/bench/torch_rows.h"

using namespace fabric;

namespace {

int g_reps = 7;

struct Case {
  const char* name;
  Shape input;  // (L, N, H_in)
  std::shared_ptr<nn::Module> layer;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_reps = std::max(1, std::atoi(argv[1]));
  std::string torch_status;
  const auto torch = bench::run_torch_rows(__FILE__, "torch_rnn.py", g_reps, torch_status);
  std::printf("bench_rnn: medians of %d runs after 2 warm-up runs, ms\n%s\n\n", g_reps,
              torch_status.c_str());
  manual_seed(0);
  const std::vector<Case> cases = {
      {"lstm_L64_N32_H256",
       {64, 32, 256},
       nn::make<nn::LSTM>({.input_size = 256, .hidden_size = 256, .num_layers = 2})},
      {"gru_L64_N32_H256",
       {64, 32, 256},
       nn::make<nn::GRU>({.input_size = 256, .hidden_size = 256, .num_layers = 2})},
      {"lstm_L128_N8_H128",
       {128, 8, 128},
       nn::make<nn::LSTM>({.input_size = 128, .hidden_size = 128, .num_layers = 2})},
  };
  std::printf("%-18s %3s %9s %9s %7s %9s %9s %7s\n", "case", "thr", "fwd", "torch", "/torch",
              "fwd+bwd", "torch", "/torch");
  for (const Case& c : cases) {
    Tensor x = randn(c.input).set_requires_grad(true);
    Tensor g;
    {
      NoGradGuard no_grad;
      g = randn(c.layer->forward(x).sizes());
    }
    for (int thr : {1, 2}) {
      omp_set_num_threads(thr);
      const double fwd = bench::median_ms(
          [&] {
            NoGradGuard no_grad;
            Tensor y = c.layer->forward(x);
          },
          g_reps);
      const double both = bench::median_ms(
          [&] {
            zero_grad(x);
            c.layer->zero_grad();
            c.layer->forward(x).backward(g);
          },
          g_reps);
      std::printf("%-18s %3d %9.3f", c.name, thr, fwd);
      auto it = torch.find({c.name, thr});
      if (it == torch.end()) {
        std::printf(" %9s %7s %9.3f %9s %7s\n", "-", "-", both, "-", "-");
      } else {
        const auto [tf, tb] = it->second;
        // /torch > 1: we are faster.
        std::printf(" %9.3f %7.2f %9.3f %9.3f %7.2f\n", tf, tf / fwd, both, tb, tb / both);
      }
      std::fflush(stdout);
    }
  }
  std::printf("\n/torch: PyTorch's time over ours (above 1: ours is faster).\n");
  return 0;
}
