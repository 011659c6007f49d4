// Pooling on the CPU: max_pool2d with CNNs' 2x2/stride-2 window (the AVX-512 path) on the two
// stages of bench_train's CNN, ResNet's 3x3/stride-2/padding-1 stem pool (the generic loops) and
// avg_pool2d 2x2, float32 (and bfloat16 for one case), forward and forward + backward, at 1 and
// 2 threads, in ms, next to PyTorch (tools/bench/torch_pool.py) measured in the same run.
//   bench_pool [reps]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

using namespace fabric;

namespace {

int g_reps = 11;

double median_ms(const std::function<void()>& fn) {
  fn();
  fn();
  std::vector<double> ts;
  for (int r = 0; r < g_reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count());
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

// "case threads" -> (forward ms, forward + backward ms) from the PyTorch script.
std::map<std::pair<std::string, int>, std::pair<double, double>> run_torch(std::string& status) {
  std::map<std::pair<std::string, int>, std::pair<double, double>> res;
  std::string script = __FILE__;
  script = script.substr(0, script.find_last_of('/') + 1) + "torch_pool.py";
  const char* py = std::getenv("FABRIC_TORCH_PYTHON");
  const std::string cmd = std::string(py ? py : "/usr/bin/python3") + " " + script + " " +
                          std::to_string(g_reps) + " 1,2 2>&1";
  status = "torch: not available (no output from " + script + ")";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return res;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    char name[64];
    int thr;
    double fwd, both;
    if (std::strncmp(line, "torch:", 6) == 0) {  // the version line, before the rows
      status = line;
      if (!status.empty() && status.back() == '\n') status.pop_back();
    } else if (std::sscanf(line, "%63s %d %lf %lf", name, &thr, &fwd, &both) == 4) {
      res[{name, thr}] = {fwd, both};
    }
  }
  pclose(f);
  return res;
}

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
  const auto torch = run_torch(torch_status);
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
  std::printf("%-13s %3s %9s %9s %7s %9s %9s %7s\n", "case", "thr", "fwd", "torch", "/torch",
              "fwd+bwd", "torch", "/torch");
  manual_seed(0);
  for (const Case& c : cases) {
    Tensor x = randn(c.shape).to(c.dtype).set_requires_grad(true);
    Tensor g;
    {
      NoGradGuard no_grad;
      g = randn(c.fn(x).sizes()).to(c.dtype);
    }
    for (int thr : {1, 2}) {
      omp_set_num_threads(thr);
      const double fwd = median_ms([&] {
        NoGradGuard no_grad;
        Tensor y = c.fn(x);
      });
      const double both = median_ms([&] {
        zero_grad(x);
        c.fn(x).backward(g);
      });
      std::printf("%-13s %3d %9.3f", c.name, thr, fwd);
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
