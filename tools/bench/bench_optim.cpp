// AdamW step bandwidth: the fused kernel and the AdamW optimizer on 10M parameters (float32 and
// bfloat16) at 1 and 2 threads, in GB/s of the 7 streams a step must move (reads p, g, m, v;
// writes p, m, v), next to a memcpy of the same bytes and PyTorch's AdamW (for-loop and foreach,
// tools/bench/torch_optim.py) measured in the same run; then RMSprop's and Adagrad's steps
// (torch's defaults: 5 streams, reads p, g and one state, writes p and the state) on 10M float32
// parameters against PyTorch's for-loop.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "optim/adagrad.h"
#include "optim/adam.h"
#include "optim/rmsprop.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/optim_kernels.h"

using namespace fabric;

namespace {

int g_reps = 9;

double median_seconds(const std::function<void()>& fn) {
  fn();
  fn();  // warm-up: first touch, OpenMP's pool
  std::vector<double> t;
  for (int r = 0; r < g_reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// memcpy moving total_bytes (half read, half written), split over the OpenMP threads.
double memcpy_gbps(int64_t total_bytes) {
  const int64_t half = total_bytes / 2;
  std::vector<char> src(half, 1), dst(half, 0);
  const double s = median_seconds([&] {
#pragma omp parallel
    {
      const int nt = omp_get_num_threads(), id = omp_get_thread_num();
      const int64_t b = half * id / nt, e = half * (id + 1) / nt;
      std::memcpy(dst.data() + b, src.data() + b, e - b);
    }
  });
  return total_bytes / s / 1e9;
}

// "optimizer impl", threads -> seconds per step, from the PyTorch script.
std::map<std::pair<std::string, int>, double> run_torch(int64_t n, std::string& status) {
  std::map<std::pair<std::string, int>, double> res;
  std::string script = __FILE__;
  script = script.substr(0, script.find_last_of('/') + 1) + "torch_optim.py";
  const char* py = std::getenv("FABRIC_TORCH_PYTHON");
  const std::string cmd = std::string(py ? py : "/usr/bin/python3") + " " + script + " " + std::to_string(n) + " " +
                          std::to_string(g_reps) + " 1,2 2>&1";
  status = "torch: not available (no output from " + script + ")";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) {
    status = "torch: not available (popen failed)";
    return res;
  }
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    char opt[32], impl[64];
    int thr;
    double sec;
    if (std::sscanf(line, "%31s %63s %d %lf", opt, impl, &thr, &sec) == 4) {
      res[{std::string(opt) + " " + impl, thr}] = sec;
    } else if (std::strncmp(line, "torch:", 6) == 0) {
      status = line;
      if (!status.empty() && status.back() == '\n') status.pop_back();
    }
  }
  pclose(f);
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t n = 10'000'000;
  if (argc > 1) n = std::atoll(argv[1]);
  if (argc > 2) g_reps = std::max(1, std::atoi(argv[2]));
  std::printf("bench_optim: AdamW step on n = %lld parameters, median of %d steps after 2 warm-ups\n",
              static_cast<long long>(n), g_reps);
  std::printf("GB/s counts 7 streams per parameter (read p, g, m, v; write p, m, v)\n");
  std::string torch_status;
  const auto torch = run_torch(n, torch_status);
  std::printf("%s\n\n", torch_status.c_str());
  std::printf("%-9s %3s %-16s %9s %8s %9s %7s\n", "dtype", "thr", "impl", "ms/step", "GB/s", "memcpy", "/memcpy");

  for (DType dt : {DType::float32, DType::bfloat16}) {
    const char* dname = dt == DType::float32 ? "float32" : "bfloat16";
    const int64_t bytes = 7 * n * itemsize(dt);
    Tensor p = randn({n}).to(dt);
    p.set_requires_grad(true);
    set_grad(p, (randn({n}) * 1e-3).to(dt));
    optim::AdamW opt({p}, {.lr = 1e-3});
    Tensor kp = randn({n}).to(dt), kg = (randn({n}) * 1e-3).to(dt), km = zeros({n}, {.dtype = dt}),
           kv = zeros({n}, {.dtype = dt});
    AdamKernelArgs args{.lr = 1e-3, .weight_decay = 1e-2, .decoupled_weight_decay = true};
    for (int thr : {1, 2}) {
      omp_set_num_threads(thr);
      const double mc = memcpy_gbps(bytes);
      auto row = [&](const char* impl, double sec) {
        const double gbps = bytes / sec / 1e9;
        std::printf("%-9s %3d %-16s %9.3f %8.2f %9.2f %7.2f\n", dname, thr, impl, sec * 1e3, gbps, mc, gbps / mc);
        std::fflush(stdout);
      };
      row("fused kernel", median_seconds([&] {
            args.step += 1;
            adam_step_stub(Device::cpu())(dt, n, kp.data_ptr(), kg.data_ptr(), km.data_ptr(), kv.data_ptr(), nullptr,
                                          args);
          }));
      const double ours = median_seconds([&] { opt.step(); });
      row("AdamW.step()", ours);
      if (dt != DType::float32) continue;
      for (const char* impl : {"foreach=False", "foreach=True"}) {
        auto it = torch.find({std::string("adamw ") + impl, thr});
        if (it == torch.end()) continue;
        row((std::string("torch ") + impl).c_str(), it->second);
        std::printf("%-9s %3d %-16s %9s  ours/torch speed-up %.2fx\n", "", thr, "", "", it->second / ours);
      }
    }
  }

  std::printf(
      "\nRMSprop and Adagrad (torch's defaults), float32; GB/s counts 5 streams per parameter\n");
  for (const char* name : {"rmsprop", "adagrad"}) {
    const int64_t bytes = 5 * n * itemsize(DType::float32);
    Tensor p = randn({n});
    p.set_requires_grad(true);
    set_grad(p, randn({n}) * 1e-3);
    std::unique_ptr<optim::Optimizer> opt;
    if (std::string(name) == "rmsprop") {
      opt = std::make_unique<optim::RMSprop>(std::vector<Tensor>{p});
    } else {
      opt = std::make_unique<optim::Adagrad>(std::vector<Tensor>{p});
    }
    for (int thr : {1, 2}) {
      omp_set_num_threads(thr);
      const double mc = memcpy_gbps(bytes);
      const double ours = median_seconds([&] { opt->step(); });
      const double gbps = bytes / ours / 1e9;
      std::printf("%-9s %3d %-16s %9.3f %8.2f %9.2f %7.2f\n", "float32", thr,
                  (std::string(name) + ".step()").c_str(), ours * 1e3, gbps, mc, gbps / mc);
      auto it = torch.find({std::string(name) + " foreach=False", thr});
      if (it != torch.end()) {
        std::printf("%-9s %3d %-16s %9.3f  ours/torch speed-up %.2fx\n", "float32", thr,
                    "torch for-loop", it->second * 1e3, it->second / ours);
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
