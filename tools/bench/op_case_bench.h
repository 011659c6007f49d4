// The driver bench_new_ops and bench_core_ops share: a list of op cases, each timed forward and
// forward + backward of sum(out * g) at each thread count, next to PyTorch's twin script (run in
// the same process run, so load hits both alike), printed as one table. The arguments are
//   <bench> [reps] [threads, e.g. 1 or 1,2] [cases, e.g. copy_16M,transpose_copy_2048]
// PyTorch gets bench_train's GLIBC_TUNABLES (its best configuration here) unless the environment
// sets them: without them every fresh tensor above glibc's mmap threshold is a new mapping whose
// page faults dominate torch's times on this VM. Tensors of 32 MiB and more are mapped afresh
// either way (a clone case of 16M floats shows what that costs).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/random.h"
#include "tools/bench/torch_rows.h"

namespace fabric::bench {

using Inputs = std::vector<Tensor>;

struct OpCase {
  const char* name;
  // Fresh inputs: the floating ones to differentiate come back with requires_grad set, index
  // tensors without it. Made per case so that only one case's tensors are alive at a time.
  std::function<Inputs()> make;
  std::function<Tensor(const Inputs&)> fn;
  bool backward = true;
};

inline Tensor leaf(const Shape& shape) { return randn(shape).set_requires_grad(true); }
inline Tensor rows(int64_t high, const Shape& shape) { return randint(0, high, shape); }

constexpr int64_t k16M = int64_t{16} << 20;

inline std::vector<int> parse_threads(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    out.push_back(std::max(1, std::atoi(item.c_str())));
  return out;
}

inline double memcpy_ms(int64_t n, int reps) {
  std::vector<float> src(n, 1.0f), dst(n);
  return median_ms([&] { std::memcpy(dst.data(), src.data(), n * sizeof(float)); }, reps);
}

// Runs `cases` (filtered by argv[3]) against tools/bench/<torch_script>, which sits beside
// `bench_source` (the caller's __FILE__). `bench_name` heads the table.
inline int run_op_cases(int argc, char** argv, const char* bench_name, const char* bench_source,
                        const char* torch_script, const std::vector<OpCase>& cases) {
  constexpr const char* kGlibcTunables =
      "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824";
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const std::string threads_arg = argc > 2 ? argv[2] : "1";
  const std::string only = argc > 3 ? argv[3] : "";  // comma-separated case names; empty: all
  const auto selected = [&](const std::string& name) {
    return only.empty() || ("," + only + ",").find("," + name + ",") != std::string::npos;
  };
  setenv("GLIBC_TUNABLES", kGlibcTunables, /*overwrite=*/0);  // for the torch child only
  std::string torch_status;
  const auto torch =
      run_torch_rows(bench_source, torch_script, reps, torch_status, threads_arg, only);
  std::printf("%s: medians of %d runs after 2 warm-up runs, ms\n%s (GLIBC_TUNABLES=%s)\n",
              bench_name, reps, torch_status.c_str(), std::getenv("GLIBC_TUNABLES"));
  std::printf("memcpy of 16M floats (64 MiB): %.3f ms\n\n", memcpy_ms(k16M, reps));
  std::printf("%-20s %3s %9s %9s %7s %9s %9s %7s\n", "case", "thr", "fwd", "torch", "/torch",
              "fwd+bwd", "torch", "/torch");
  manual_seed(0);
  for (const OpCase& c : cases) {
    if (!selected(c.name)) continue;
    try {
      const Inputs in = c.make();
      Tensor g;
      {
        NoGradGuard no_grad;
        g = randn(c.fn(in).sizes());
      }
      for (int thr : parse_threads(threads_arg)) {
        omp_set_num_threads(thr);
        const double fwd = median_ms(
            [&] {
              NoGradGuard no_grad;
              Tensor y = c.fn(in);
            },
            reps);
        double both = 0;
        if (c.backward) {
          both = median_ms(
              [&] {
                for (const Tensor& t : in)
                  if (t.requires_grad()) zero_grad(t);
                c.fn(in).backward(g);
              },
              reps);
        }
        std::printf("%-20s %3d %9.3f", c.name, thr, fwd);
        const auto it = torch.find({c.name, thr});
        const double tf = it == torch.end() ? 0 : it->second.first;
        const double tb = it == torch.end() ? 0 : it->second.second;
        // /torch > 1: we are faster.
        if (tf > 0)
          std::printf(" %9.3f %7.2f", tf, tf / fwd);
        else
          std::printf(" %9s %7s", "-", "-");
        if (!c.backward)
          std::printf(" %9s", "-");
        else
          std::printf(" %9.3f", both);
        if (c.backward && tb > 0)
          std::printf(" %9.3f %7.2f\n", tb, tb / both);
        else
          std::printf(" %9s %7s\n", "-", "-");
        std::fflush(stdout);
      }
    } catch (const std::exception& e) {
      std::printf("%-20s error: %s\n", c.name, e.what());
      std::fflush(stdout);
    }
  }
  std::printf("\n/torch: PyTorch's time over ours (above 1: ours is faster).\n");
  return 0;
}

}  // namespace fabric::bench
