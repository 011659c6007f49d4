// DDP throughput: the MLP 784-1024-1024-10 (SGD momentum, float32, batch 256 per process) trained
// by 2 processes x 1 thread through Fabric's DDP (Gloo over loopback), against PyTorch DDP (gloo)
// with the same layout, measured in the same run, alternating, each run a fresh set of processes.
//   bench_ddp [--runs 5] [--steps 30] [--warmup 5] [--batch 256] [--no-torch]
//   bench_ddp --worker [--steps 30] [--warmup 5] [--batch 256]     (rank 0 prints "result <steps/s>")
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "nn/mlp.h"
#include "optim/sgd.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

using namespace fabric;

namespace {

constexpr const char* kGlibcTunables =
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824";

int run_worker(int steps, int warmup, int64_t batch) {
  Fabric fab({.accelerator = "cpu", .strategy = "ddp", .devices = 2});
  fab.launch();
  manual_seed(0);
  auto mlp = std::make_shared<nn::MLP>(nn::MLPConfig{.sizes = {784, 1024, 1024, 10}, .activation = "relu"});
  optim::SGD sgd(mlp->parameters(), {.lr = 0.01, .momentum = 0.9});
  auto [model, opt] = fab.setup(mlp, sgd);
  Generator g(uint64_t(fab.global_rank()));
  const Tensor x = randn({batch, 784}, {.dtype = DType::float32}, &g);
  const Tensor y = randint(0, 10, {batch}, {.dtype = DType::int64}, &g);
  auto step = [&] {
    opt.zero_grad();
    fab.backward(cross_entropy(model(x), y));
    opt.step();
  };
  for (int i = 0; i < warmup; ++i) step();
  fab.barrier();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  fab.barrier();
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (fab.global_rank() == 0) std::printf("result %.4f\n", steps / dt);
  return 0;
}

double run_sample(const std::string& cmd, std::string& error) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return 0;
  char line[4096];
  double v = 0;
  std::string all;
  while (std::fgets(line, sizeof line, p)) {
    all += line;
    if (std::sscanf(line, "result %lf", &v) == 1) continue;
  }
  pclose(p);
  if (v <= 0) error = all.substr(0, 400);
  return v;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 5, steps = 30, warmup = 5;
  int64_t batch = 256;
  bool worker = false, torch = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> int { return i + 1 < argc ? std::atoi(argv[++i]) : 0; };
    if (a == "--worker") worker = true;
    else if (a == "--runs") runs = std::max(1, next());
    else if (a == "--steps") steps = std::max(1, next());
    else if (a == "--warmup") warmup = std::max(0, next());
    else if (a == "--batch") batch = std::max(1, next());
    else if (a == "--no-torch") torch = false;
    else {
      std::printf("usage: bench_ddp [--runs 5] [--steps 30] [--warmup 5] [--batch 256] [--no-torch]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (worker) {
    try {
      return run_worker(steps, warmup, batch);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_ddp worker: %s\n", e.what());
      return 1;
    }
  }
  namespace fs = std::filesystem;
  const char* env_dir = std::getenv("FABRIC_BENCH_DIR");
  const fs::path dir = env_dir ? fs::path(env_dir) : fs::path(__FILE__).parent_path();
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string args = " --steps " + std::to_string(steps) + " --warmup " + std::to_string(warmup) +
                           " --batch " + std::to_string(batch);
  if (torch && !fs::exists(dir / "torch_ddp.py")) {
    std::printf("torch: script not found in %s (set FABRIC_BENCH_DIR); fabric only\n", dir.c_str());
    torch = false;
  }
  const std::string torch_cmd = "eval \"$(bash '" + (dir / "torch_env.sh").string() + "')\"; OMP_NUM_THREADS=1 " +
                                "GLIBC_TUNABLES=" + kGlibcTunables + " exec /usr/bin/python3 '" +
                                (dir / "torch_ddp.py").string() + "'" + args + " 2>&1";
  std::printf("bench_ddp: MLP 784-1024-1024-10, SGD momentum, float32, batch %lld per process, 2 processes x 1 "
              "thread, %d steps after %d warm-up, %d alternating runs per side\n",
              (long long)batch, steps, warmup, runs);
  std::vector<double> ours, theirs;
  std::string err;
  for (int r = 0; r < runs; ++r) {
    const double a = run_sample("OMP_NUM_THREADS=1 exec '" + self + "' --worker" + args + " 2>&1", err);
    if (a > 0) ours.push_back(a);
    else std::printf("fabric run failed: %s\n", err.c_str());
    if (!torch) continue;
    const double b = run_sample(torch_cmd, err);
    if (b > 0) theirs.push_back(b);
    else std::printf("torch run failed: %s\n", err.c_str());
  }
  const double a = median(ours), b = median(theirs);
  std::printf("\n%-22s %12s %12s %7s\n", "case", "fabric st/s", "torch st/s", "ratio");
  std::printf("%-22s %12.2f %12.2f %7.2f\n", "ddp mlp 2x1 thread", a, b, b > 0 ? a / b : 0.0);
  std::printf("\nst/s: optimizer steps per second of the 2-process job (median of runs).\n");
  return 0;
}
