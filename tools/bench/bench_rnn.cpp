// Recurrent layers on the CPU: nn::LSTM and nn::GRU (2 layers, float32), forward and forward +
// backward of sum(output * g), at 1 and 2 threads, in ms, next to PyTorch's nn.LSTM / nn.GRU
// (tools/bench/torch_rnn.py) measured in the same run. Ours step the cells one time step at a
// time as compositions of linear and pointwise ops (tensor/ops_rnn.cpp). Run it after
// `eval "$(tools/bench/torch_env.sh)"`, or torch's matmuls run on the reference BLAS.
//   bench_rnn [reps]
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
#include "tools/bench/fwd_bwd_rows.h"

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
  bench::print_fwd_bwd_header(18);
  for (const Case& c : cases) {
    Tensor x = randn(c.input).set_requires_grad(true);
    Tensor g;
    {
      NoGradGuard no_grad;
      g = randn(c.layer->forward(x).sizes());
    }
    bench::time_fwd_bwd_rows(
        torch, c.name, 18, g_reps, [&] { c.layer->forward(x); },
        [&] {
          zero_grad(x);
          c.layer->zero_grad();
          c.layer->forward(x).backward(g);
        });
  }
  bench::print_fwd_bwd_footer();
  return 0;
}
