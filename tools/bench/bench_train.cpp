// Training throughput against PyTorch, measured in the same run (issue #3's benchmark):
//   mlp       the MLP 784-1024-1024-10, batch 256, SGD momentum 0.9, float32
//   cnn       the CNN (nn/cnn.h) with BatchNorm on CIFAR-shaped images: (64, 3, 32, 32), channels
//             32 and 64, 10 classes, SGD momentum 0.9, float32
//   gpt       GPT (nanoGPT architecture) 4 layers, 4 heads, C=256, T=128, batch 16, a character
//             vocabulary of 65, AdamW, float32
//   gpt-<precision>  the same GPT through Fabric under bf16-mixed, bf16-true or 16-mixed (the
//             precision plugins of issue #4); PyTorch's peer for each is
//             torch.autocast("cpu", bfloat16), its fastest mode here
// Each sample is a fresh child process (this executable with --worker, or
// tools/bench/torch_train.py) that builds the model, warms up, times --steps steps and reports
// steps/s and its peak resident memory; fabric and PyTorch samples alternate so that load from
// other processes hits both alike, and the medians are compared. PyTorch runs with Debian's
// OpenBLAS (tools/bench/torch_env.sh: the kernel set for this CPU) and GLIBC_TUNABLES malloc
// thresholds, its best configuration here. The fabric worker also reports the caching allocator's
// peak bytes during one forward+backward (autograd frees saved tensors as backward goes).
#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/cnn.h"
#include "nn/gpt.h"
#include "nn/mlp.h"
#include "optim/optim.h"
#include "runtime/fabric.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

using namespace fabric;

namespace {

constexpr const char* kGlibcTunables =
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824";

struct Sample {
  double steps_per_s = 0;
  long rss_before_kib = 0;  // after start-up (libraries, model, data), before training
  long peak_rss_kib = 0;
  double fwd_bwd_peak_mib = 0;  // fabric only: allocator peak during one forward+backward
};

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return 0;
}

// The OpenBLAS kernel set torch_env.sh exports for this CPU, i.e. the one the torch child uses.
std::string torch_env_coretype(const std::string& script) {
  FILE* p = popen(("bash '" + script + "' 2>/dev/null").c_str(), "r");
  if (!p) return "unknown";
  std::string core = "unknown";
  char buf[1024];
  const std::string key = "export OPENBLAS_CORETYPE=\"";
  while (std::fgets(buf, sizeof buf, p)) {
    const std::string line = buf;
    if (line.rfind(key, 0) == 0)
      core = line.substr(key.size(), line.find('"', key.size()) - key.size());
  }
  pclose(p);
  return core;
}

// ---- the fabric worker ----------------------------------------------------------------------------

int run_worker(const std::string& model, int steps, int warmup) {
  manual_seed(0);
  std::shared_ptr<nn::Module> net;
  std::shared_ptr<optim::Optimizer> opt_holder;
  std::shared_ptr<Fabric> fab;
  std::function<Tensor()> loss_fn;
  std::function<void(const Tensor&)> backward_fn;
  std::function<void()> step_fn, zero_fn;
  Tensor x, y;
  if (model == "mlp") {
    auto mlp = nn::make<nn::MLP>({.sizes = {784, 1024, 1024, 10}, .activation = "relu"});
    auto sgd = std::make_shared<optim::SGD>(mlp->parameters(), optim::SGDOptions{.lr = 0.01, .momentum = 0.9});
    opt_holder = sgd;
    x = randn({256, 784});
    y = randint(0, 10, {256}, {.dtype = DType::int64});
    loss_fn = [mlp, &x, &y] { return cross_entropy((*mlp)(x), y); };
    backward_fn = [](const Tensor& l) { l.backward(); };
    step_fn = [sgd] { sgd->step(); };
    zero_fn = [sgd] { sgd->zero_grad(); };
    net = mlp;
  } else if (model == "cnn") {
    auto cnn = nn::make<nn::CNN>(nn::CNNConfig{
        .in_channels = 3, .image_size = 32, .num_classes = 10, .channels1 = 32, .channels2 = 64,
        .batch_norm = true});
    auto sgd = std::make_shared<optim::SGD>(cnn->parameters(), optim::SGDOptions{.lr = 0.01, .momentum = 0.9});
    opt_holder = sgd;
    x = randn({64, 3, 32, 32});
    y = randint(0, 10, {64}, {.dtype = DType::int64});
    loss_fn = [cnn, &x, &y] { return cross_entropy((*cnn)(x), y); };
    backward_fn = [](const Tensor& l) { l.backward(); };
    step_fn = [sgd] { sgd->step(); };
    zero_fn = [sgd] { sgd->zero_grad(); };
    net = cnn;
  } else {
    const nn::GPTConfig c{.vocab_size = 65, .block_size = 128, .n_layer = 4, .n_head = 4, .n_embd = 256,
                          .dropout = 0.0};
    // "gpt" is plain float32 without Fabric; "gpt-<precision>" goes through Fabric's plugin.
    const std::string precision = model == "gpt" ? "" : model.substr(4);
    auto gpt = nn::make<nn::GPT>(c);
    auto adamw = std::make_shared<optim::AdamW>(
        gpt->parameters(), optim::AdamWOptions{.lr = 3e-4, .betas = {0.9, 0.95}, .weight_decay = 0.1});
    x = randint(0, c.vocab_size, {16, c.block_size}, {.dtype = DType::int64});
    y = randint(0, c.vocab_size, {16, c.block_size}, {.dtype = DType::int64});
    if (precision.empty()) {
      opt_holder = adamw;
      loss_fn = [gpt, &x, &y] { return gpt->loss(x, y); };
      backward_fn = [](const Tensor& l) { l.backward(); };
      step_fn = [adamw] { adamw->step(); };
      zero_fn = [adamw] { adamw->zero_grad(); };
    } else {
      fab = std::make_shared<Fabric>(FabricOptions{.accelerator = "cpu", .precision = precision});
      auto [m, o] = fab->setup(gpt, *adamw);
      auto wrapped = std::make_shared<FabricModule>(m);
      auto wopt = std::make_shared<FabricOptimizer>(o);
      opt_holder = adamw;
      loss_fn = [wrapped, &x, &y, V = c.vocab_size] {
        return cross_entropy((*wrapped)(x).view({-1, V}), y.view({-1}));
      };
      backward_fn = [f = fab](const Tensor& l) { f->backward(l); };
      step_fn = [wopt] { wopt->step(); };
      zero_fn = [wopt] { wopt->zero_grad(); };
    }
    net = gpt;
  }
  auto step = [&] {
    zero_fn();
    Tensor loss = loss_fn();
    backward_fn(loss);
    step_fn();
    return loss;
  };
  Sample s;
  s.rss_before_kib = rss_kib();
  for (int i = 0; i < warmup; ++i) step();
  // Allocator peak of one forward+backward, gradients already allocated (steady state).
  Allocator& alloc = cpu_allocator();
  alloc.reset_peak();
  const int64_t base = alloc.stats().allocated_bytes;
  {
    Tensor loss = loss_fn();
    backward_fn(loss);
  }
  s.fwd_bwd_peak_mib = double(alloc.stats().peak_allocated_bytes - base) / (1 << 20);
  const auto t0 = std::chrono::steady_clock::now();
  Tensor loss;
  for (int i = 0; i < steps; ++i) loss = step();
  (void)loss.item<double>();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("result %.4f %ld %ld %.2f\n", steps / secs, s.rss_before_kib, ru.ru_maxrss,
              s.fwd_bwd_peak_mib);
  return 0;
}

// ---- the driver -----------------------------------------------------------------------------------

// Runs `cmd` through /bin/sh and parses its "result ..." line; steps_per_s stays 0 on failure.
Sample run_sample(const std::string& cmd, std::string& error) {
  Sample s;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    error = "popen failed";
    return s;
  }
  char buf[4096];
  std::string last;
  while (std::fgets(buf, sizeof buf, p)) {
    std::string line = buf;
    if (line.rfind("result ", 0) == 0) {
      std::sscanf(line.c_str() + 7, "%lf %ld %ld %lf", &s.steps_per_s, &s.rss_before_kib,
                  &s.peak_rss_kib, &s.fwd_bwd_peak_mib);
    } else if (!line.empty()) {
      last = line;
    }
  }
  const int rc = pclose(p);
  if (s.steps_per_s <= 0) error = "exit status " + std::to_string(rc) + (last.empty() ? "" : ": " + last);
  return s;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

struct ModelSpec {
  std::string name;        // fabric worker model
  std::string torch_args;  // torch_train.py arguments
  int steps;
  int tokens_per_step;  // 0: not a language model
};

int run_driver(const std::vector<std::string>& models, int runs, int threads, bool torch) {
  namespace fs = std::filesystem;
  const char* env_dir = std::getenv("FABRIC_BENCH_DIR");
  const fs::path dir = env_dir ? fs::path(env_dir) : fs::path(__FILE__).parent_path();
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string th = std::to_string(threads);
  const std::string torch_prefix = "eval \"$(bash '" + (dir / "torch_env.sh").string() +
                                   "')\"; GLIBC_TUNABLES=" + kGlibcTunables +
                                   " exec /usr/bin/python3 '" + (dir / "torch_train.py").string() + "' ";
  if (torch && !fs::exists(dir / "torch_train.py")) {
    std::printf("torch: script not found in %s (set FABRIC_BENCH_DIR); fabric only\n", dir.c_str());
    torch = false;
  }
  const std::vector<ModelSpec> specs = {{"mlp", "--model mlp", 30, 0},
                                        {"cnn", "--model cnn", 10, 0},
                                        {"gpt", "--model gpt", 6, 16 * 128},
                                        {"gpt-bf16-mixed", "--model gpt --dtype bf16", 10, 16 * 128},
                                        {"gpt-bf16-true", "--model gpt --dtype bf16", 10, 16 * 128},
                                        {"gpt-16-mixed", "--model gpt --dtype bf16", 6, 16 * 128}};
  for (const std::string& name : models)  // a typo would otherwise print an empty table, exit 0
    if (std::none_of(specs.begin(), specs.end(),
                     [&](const ModelSpec& m) { return m.name == name; })) {
      std::string known;
      for (const ModelSpec& m : specs) known += (known.empty() ? "" : ", ") + m.name;
      std::fprintf(stderr, "bench_train: unknown model '%s' in --models (known: %s)\n",
                   name.c_str(), known.c_str());
      return 2;
    }
  std::printf("bench_train: %d threads, %d alternating runs per side, each a fresh process\n", threads,
              runs);
  if (torch)
    std::printf("torch: /usr/bin/python3 (Debian python3-torch) with OpenBLAS (libopenblas0-openmp, "
                "OPENBLAS_CORETYPE=%s) and GLIBC_TUNABLES=%s\n",
                torch_env_coretype((dir / "torch_env.sh").string()).c_str(), kGlibcTunables);
  std::printf("\n%-14s %12s %12s %7s %11s %11s %11s %11s %12s\n", "model", "fabric st/s", "torch st/s",
              "ratio", "fabric tok/s", "torch tok/s", "fabric MiB", "torch MiB", "fwd+bwd MiB");
  std::map<std::string, double> fabric_median;
  for (const ModelSpec& m : specs) {
    if (std::find(models.begin(), models.end(), m.name) == models.end()) continue;
    std::vector<double> ours, theirs, our_rss, their_rss, fb;
    std::string err;
    const std::string steps = " --steps " + std::to_string(m.steps);
    for (int r = 0; r < runs; ++r) {
      const std::string ours_cmd = "OMP_NUM_THREADS=" + th + " exec '" + self + "' --worker " + m.name + steps;
      Sample a = run_sample(ours_cmd, err);
      if (a.steps_per_s > 0) {
        ours.push_back(a.steps_per_s);
        our_rss.push_back(a.peak_rss_kib / 1024.0);
        fb.push_back(a.fwd_bwd_peak_mib);
      } else {
        std::printf("%s: fabric run failed (%s)\n", m.name.c_str(), err.c_str());
      }
      if (!torch) continue;
      Sample b = run_sample(torch_prefix + m.torch_args + steps + " --threads " + th + " 2>&1", err);
      if (b.steps_per_s > 0) {
        theirs.push_back(b.steps_per_s);
        their_rss.push_back(b.peak_rss_kib / 1024.0);
      } else {
        std::printf("%s: torch run failed (%s)\n", m.name.c_str(), err.c_str());
      }
    }
    const double a = median(ours), b = median(theirs);
    std::printf("%-14s %12.3f %12.3f %7.2f %11.0f %11.0f %11.0f %11.0f %12.1f\n", m.name.c_str(), a, b,
                b > 0 ? a / b : 0.0, a * m.tokens_per_step, b * m.tokens_per_step, median(our_rss),
                median(their_rss), median(fb));
    std::fflush(stdout);
    fabric_median[m.name] = a;
  }
  if (fabric_median.count("gpt") && fabric_median["gpt"] > 0) {
    for (const char* p : {"gpt-bf16-mixed", "gpt-bf16-true", "gpt-16-mixed"})
      if (fabric_median.count(p))
        std::printf("%s / fabric gpt (32-true): %.2fx\n", p, fabric_median[p] / fabric_median["gpt"]);
  }
  std::printf("\nst/s: training steps per second (median); MiB: peak resident memory of the whole "
              "process (median); fwd+bwd MiB: fabric's allocator peak above the steady state during "
              "one forward+backward.\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> models = {"mlp", "cnn", "gpt", "gpt-bf16-mixed", "gpt-bf16-true", "gpt-16-mixed"};
  std::string worker;
  int runs = 5, threads = 2, steps = 10, warmup = 3;
  bool torch = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_train: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--worker") {
      worker = next();
    } else if (a == "--steps") {
      steps = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--warmup") {
      warmup = std::max(0, std::atoi(next().c_str()));
    } else if (a == "--runs") {
      runs = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--threads") {
      threads = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--models") {
      models.clear();
      std::string list = next();
      for (size_t p = 0; p <= list.size();) {
        const size_t q = std::min(list.find(',', p), list.size());
        models.push_back(list.substr(p, q - p));
        p = q + 1;
      }
    } else if (a == "--no-torch") {
      torch = false;
    } else {
      std::printf("usage: bench_train [--models mlp,cnn,gpt,gpt-bf16-mixed,gpt-bf16-true,gpt-16-mixed] [--runs 5] [--threads 2] [--no-torch]\n"
                  "       bench_train --worker mlp|cnn|gpt|gpt-<precision> [--steps 10] [--warmup 3]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (!worker.empty()) {
    try {
      return run_worker(worker, steps, warmup);
    } catch (const std::exception& e) {
      std::printf("error: %s\n", e.what());
      return 1;
    }
  }
  return run_driver(models, runs, threads, torch);
}
