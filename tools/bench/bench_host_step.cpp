// The host's own cost of a GPT-2 124M training step on the CUDA backend, measured without a GPU:
// the step runs against the null CUDA runtime (tools/null_cuda), where launches, cuBLASLt matmuls
// and copies return at once, so the time left is ours -- autograd, dispatch, shape and layout
// logic, the caching allocator, plan caches -- and not the driver's. Prints per phase (forward
// with the loss, backward, optimizer step) the median host time and what the step asked of CUDA:
// kernel launches, matmuls, GEMM heuristics (plans not found in the cache), host waits and device
// allocations (both 0 in a steady step). With a real GPU the driver adds its cost per launch
// (a few µs); the step is host-bound only if the sum nears the GPU's time per step.
//   bench_host_step [--steps N] [--precision bf16-mixed|32-true|16-mixed|bf16-true] [--kernels]
// --kernels also lists the kernels a step launches, by name, most launched first.
// Built with the CUDA backend only; re-runs itself with the null runtime first on
// LD_LIBRARY_PATH when the real one was loaded.
#include <cxxabi.h>
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "nn/gpt.h"
#include "optim/optim.h"
#include "precision/registry.h"
#include "runtime/fabric.h"
#include "tensor/factory.h"
#include "tensor/random.h"
#include "tools/bench/gpt2_124m.h"
#include "tools/null_cuda/null_cuda.h"

using namespace fabric;

namespace {

NullCudaCountsFn null_runtime() {
  return reinterpret_cast<NullCudaCountsFn>(dlsym(RTLD_DEFAULT, "null_cuda_counts"));
}

// Re-executes this program with the null runtime first on LD_LIBRARY_PATH (once).
[[noreturn]] void rerun_under_null_runtime(char** argv) {
#ifdef FABRIC_NULL_CUDA_DIR
  if (!std::getenv("FABRIC_BENCH_HOST_STEP_RERUN")) {
    const char* old = std::getenv("LD_LIBRARY_PATH");
    const std::string path =
        std::string(FABRIC_NULL_CUDA_DIR) + (old && *old ? ":" : "") + (old ? old : "");
    setenv("LD_LIBRARY_PATH", path.c_str(), 1);
    setenv("FABRIC_BENCH_HOST_STEP_RERUN", "1", 1);
    execv("/proc/self/exe", argv);
    std::perror("bench_host_step: execv");
  }
  std::fprintf(stderr, "bench_host_step: the null CUDA runtime did not load from %s\n",
               FABRIC_NULL_CUDA_DIR);
#else
  std::fprintf(stderr, "bench_host_step: this build has no CUDA backend (nothing to measure)\n");
#endif
  (void)argv;
  std::exit(2);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Phase {
  std::vector<double> ms;
  NullCudaCounts asked{};  // of the last timed step
};

// Launches so far per kernel, by demangled name (template arguments kept: they tell the dtypes).
std::map<std::string, long> launches_by_kernel() {
  std::map<std::string, long> out;
  const auto fn =
      reinterpret_cast<NullCudaKernelLaunchesFn>(dlsym(RTLD_DEFAULT, "null_cuda_kernel_launches"));
  if (!fn) return out;
  fn(
      [](const char* mangled, long launches, void* context) {
        int status = 0;
        char* name = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
        (*static_cast<std::map<std::string, long>*>(context))[status == 0 ? name : mangled] +=
            launches;
        std::free(name);
      },
      &out);
  return out;
}

void print_kernel_census(const std::map<std::string, long>& before,
                         const std::map<std::string, long>& after, int steps) {
  std::vector<std::pair<long, std::string>> rows;
  for (const auto& [name, n] : after) {
    const auto it = before.find(name);
    const long d = n - (it == before.end() ? 0 : it->second);
    if (d > 0) rows.emplace_back(d, name);
  }
  std::sort(rows.rbegin(), rows.rend());
  std::printf("\nkernels launched per step (%zu kinds):\n", rows.size());
  for (const auto& [n, name] : rows) {
    std::string shown = name.size() > 150 ? name.substr(0, 147) + "..." : name;
    std::printf("%7.1f  %s\n", static_cast<double>(n) / steps, shown.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 20;
  std::string precision = "bf16-mixed";
  bool census = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) {
      steps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--precision" && i + 1 < argc) {
      precision = argv[++i];
    } else if (a == "--kernels") {
      census = true;
    } else {
      std::fprintf(stderr, "usage: bench_host_step [--steps N] [--precision P] [--kernels]\n");
      return 2;
    }
  }
  try {
    precision = precision::canonical_precision(precision);
  } catch (const Error& e) {  // a usage error, not a crash
    std::fprintf(stderr, "bench_host_step: --precision: %s\n", e.what());
    return 2;
  }
  const NullCudaCountsFn counts = null_runtime();
  if (!counts) rerun_under_null_runtime(argv);

  // GPT-2 124M as bench_gpu's GPT row trains it, through Fabric.
  const nn::GPTConfig c = bench::gpt2_124m();
  const int64_t B = bench::kGpt2Batch, T = bench::kGpt2Tokens;
  manual_seed(0);
  auto gpt = nn::make<nn::GPT>(c);
  optim::AdamW adamw(gpt->parameters(),
                     optim::AdamWOptions{.lr = 6e-4, .betas = {0.9, 0.95}, .weight_decay = 0.1});
  Fabric fab{FabricOptions{.accelerator = "cuda", .precision = precision}};
  auto [m, o] = fab.setup(gpt, adamw);
  const Tensor x = randint(0, c.vocab_size, {B, T}, {.dtype = DType::int64}).to(fab.device());
  const Tensor y = randint(0, c.vocab_size, {B, T}, {.dtype = DType::int64}).to(fab.device());

  using Clock = std::chrono::steady_clock;
  Phase fwd, bwd, opt;
  Tensor loss;
  auto timed = [&](Phase& p, bool keep, const auto& fn) {
    NullCudaCounts before{}, after{};
    counts(&before);
    const auto t0 = Clock::now();
    fn();
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    counts(&after);
    if (keep) {
      p.ms.push_back(ms);
      p.asked = after - before;
    }
  };
  const int warmup = 3;  // the allocator's pools and the plan caches fill in the first steps
  std::map<std::string, long> census_before;
  for (int i = 0; i < warmup + steps; ++i) {
    const bool keep = i >= warmup;
    if (census && i == warmup) census_before = launches_by_kernel();
    timed(fwd, keep, [&] {
      o.zero_grad();
      loss = m.run([&] { return gpt->loss(x, y); });
    });
    timed(bwd, keep, [&] { fab.backward(loss); });
    timed(opt, keep, [&] { o.step(); });
  }

  std::printf(
      "GPT-2 124M (12 layers, C 768, T 1024, batch 8, vocab 50304), %s, AdamW, on the null "
      "CUDA runtime; medians of %d steps\n",
      precision.c_str(), steps);
  std::printf("%-16s %9s %9s %8s %11s %6s %8s %8s\n", "phase", "host ms", "launches", "matmuls",
              "heuristics", "waits", "mallocs", "µs/call");
  double total_ms = 0;
  long total_calls = 0;
  NullCudaCounts sum{};
  for (const auto& [name, p] : {std::pair<const char*, const Phase*>{"forward+loss", &fwd},
                                {"backward", &bwd},
                                {"optimizer", &opt}}) {
    const double ms = median(p->ms);
    const long calls = p->asked.launches + p->asked.matmuls;
    std::printf("%-16s %9.2f %9ld %8ld %11ld %6ld %8ld %8.2f\n", name, ms, p->asked.launches,
                p->asked.matmuls, p->asked.matmul_heuristics, p->asked.host_waits,
                p->asked.device_mallocs, calls ? 1e3 * ms / calls : 0.0);
    total_ms += ms;
    total_calls += calls;
    sum.launches += p->asked.launches;
    sum.matmuls += p->asked.matmuls;
    sum.matmul_heuristics += p->asked.matmul_heuristics;
    sum.host_waits += p->asked.host_waits;
    sum.device_mallocs += p->asked.device_mallocs;
  }
  std::printf("%-16s %9.2f %9ld %8ld %11ld %6ld %8ld %8.2f\n", "step", total_ms, sum.launches,
              sum.matmuls, sum.matmul_heuristics, sum.host_waits, sum.device_mallocs,
              total_calls ? 1e3 * total_ms / total_calls : 0.0);
  if (census) print_kernel_census(census_before, launches_by_kernel(), steps);
  return 0;
}
