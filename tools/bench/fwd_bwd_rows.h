// The table of the benchmarks that time a forward and a forward + backward next to their PyTorch
// twin's rows (bench_norm, bench_pool, bench_rnn): one row per case and thread count, with
// PyTorch's time over ours.
#pragma once
#include <omp.h>

#include <cstdio>
#include <functional>

#include "autograd/grad_mode.h"
#include "tools/bench/torch_rows.h"

namespace fabric::bench {

// name_width: the case column's width.
inline void print_fwd_bwd_header(int name_width) {
  std::printf("%-*s %3s %9s %9s %7s %9s %9s %7s\n", name_width, "case", "thr", "fwd", "torch",
              "/torch", "fwd+bwd", "torch", "/torch");
}

// Times forward (under no_grad) and forward_backward at 1 and 2 threads (medians of reps), and
// prints a row for each beside PyTorch's (dashes where its script gave none).
inline void time_fwd_bwd_rows(const TorchRows& torch, const char* name, int name_width, int reps,
                              const std::function<void()>& forward,
                              const std::function<void()>& forward_backward) {
  for (int thr : {1, 2}) {
    omp_set_num_threads(thr);
    const double fwd = median_ms(
        [&] {
          NoGradGuard no_grad;
          forward();
        },
        reps);
    const double both = median_ms(forward_backward, reps);
    std::printf("%-*s %3d %9.3f", name_width, name, thr, fwd);
    auto it = torch.find({name, thr});
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

inline void print_fwd_bwd_footer() {
  std::printf("\n/torch: PyTorch's time over ours (above 1: ours is faster).\n");
}

}  // namespace fabric::bench
