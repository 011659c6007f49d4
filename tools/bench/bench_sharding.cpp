// Sharding benchmark: the GPT trained by 4 processes under DDP, ZeRO-1/2/3 and FSDP FULL_SHARD
// (Gloo over loopback): per-rank allocator peak, steps/s, and bytes sent per step per rank next to spec §10.
//   bench_sharding [--steps 10]
//   bench_sharding --worker <strategy> [--steps 10]   (rank 0 prints one "result ..." line)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "nn/gpt.h"
#include "optim/adam.h"
#include "runtime/fabric.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

using namespace fabric;

namespace {

constexpr int kRanks = 4;
constexpr int64_t kBatch = 8;  // per rank
const nn::GPTConfig kGPT{.vocab_size = 65, .block_size = 64, .n_layer = 2, .n_head = 4, .n_embd = 128,
                         .dropout = 0.0};

struct Result {
  double peak_mib = 0;       // max over ranks of the allocator peak during the timed steps
  double steps_per_s = 0;
  double sent_per_step = 0;  // bytes, mean over ranks
  double ops_per_step = 0;   // collectives per step (rank 0): latency, not volume, when many are small
  double psi = 0;            // parameters
  bool ok = false;
};

int run_worker(const std::string& strategy, int steps) {
  FabricOptions options{.accelerator = "cpu", .strategy = strategy, .devices = kRanks};
  options.fsdp.auto_wrap_policy = {"Block"};  // FSDP: one unit per transformer block, the root last
  Fabric fab(options);
  fab.launch();
  manual_seed(0);
  auto gpt = nn::make<nn::GPT>(kGPT);
  const int64_t psi = gpt->get_num_params(/*non_embedding=*/false);
  optim::AdamW adamw(gpt->parameters(), {.lr = 3e-4, .betas = {0.9, 0.95}, .weight_decay = 0.1});
  auto [model, opt] = fab.setup(gpt, adamw);
  Generator g(uint64_t(fab.global_rank()) + 1);
  const Tensor x = randint(0, kGPT.vocab_size, {kBatch, kGPT.block_size}, {.dtype = DType::int64}, &g);
  const Tensor y = randint(0, kGPT.vocab_size, {kBatch, kGPT.block_size}, {.dtype = DType::int64}, &g);
  auto step = [&] {
    opt.zero_grad();
    fab.backward(cross_entropy(model(x).view({-1, kGPT.vocab_size}), y.view({-1})));
    opt.step();
  };
  step();  // warm-up: gradients, optimizer state and buckets exist from here on
  fab.barrier();
  distributed::ProcessGroup& pg = *fab.strategy_object().process_group();
  Allocator& alloc = cpu_allocator();
  alloc.reset_peak();
  pg.reset_traffic();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double sent = double(pg.traffic().bytes_sent) / steps;  // read before the reductions below
  const double ops = double(pg.traffic().ops) / steps;
  const double peak = double(alloc.stats().peak_allocated_bytes) / (1 << 20);
  const double peak_max = fab.all_reduce(peak, "max");
  const double sent_mean = fab.all_reduce(sent, "mean");
  const double dt_max = fab.all_reduce(dt, "max");
  if (fab.global_rank() == 0)
    std::printf("result %.6f %.6f %.1f %lld %.2f\n", peak_max, steps / dt_max, sent_mean, (long long)psi, ops);
  return 0;
}

Result run_config(const std::string& cmd, std::string& error) {
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char line[4096];
  std::string all;
  while (std::fgets(line, sizeof line, p)) {
    all += line;
    long long psi = 0;
    if (std::sscanf(line, "result %lf %lf %lf %lld %lf", &r.peak_mib, &r.steps_per_s, &r.sent_per_step, &psi,
                    &r.ops_per_step) == 5) {
      r.psi = double(psi);
      r.ok = true;
    }
  }
  const int status = pclose(p);
  if (!r.ok || status != 0) {
    r.ok = false;
    error = all.substr(0, 600);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  int steps = 10;
  std::string worker;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--worker" && i + 1 < argc) worker = argv[++i];
    else if (a == "--steps" && i + 1 < argc) steps = std::max(1, std::atoi(argv[++i]));
    else {
      std::printf("usage: bench_sharding [--steps 10] | --worker <strategy> [--steps 10]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  if (!worker.empty()) {
    try {
      return run_worker(worker, steps);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_sharding worker (%s): %s\n", worker.c_str(), e.what());
      return 1;
    }
  }
  namespace fs = std::filesystem;
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  std::printf("bench_sharding: GPT (vocab 65, block 64, 2 layers, 4 heads, 128 embd), AdamW, float32, batch %lld "
              "per rank, %d ranks x 1 thread (Gloo, loopback), %d timed steps after setup + 1 warm-up step.\n"
              "Note: %d processes on a machine with %u cores: oversubscribed, steps/s is a lower bound.\n",
              (long long)kBatch, kRanks, steps, kRanks, std::max(1u, std::thread::hardware_concurrency()));
  struct Config {
    const char* label;
    const char* strategy;  // null: not available
    double volume;         // spec §10: elements moved per step, in units of Psi
  };
  const std::vector<Config> configs = {{"DDP", "ddp", 2},
                                       {"ZeRO-1", "deepspeed_stage_1", 2},
                                       {"ZeRO-2", "deepspeed_stage_2", 2},
                                       {"ZeRO-3", "deepspeed_stage_3", 3},
                                       {"FSDP FULL_SHARD", "fsdp", 3}};
  std::printf("\n%-16s %10s %9s %14s %14s %7s %9s\n", "strategy", "peak MiB", "steps/s", "sent B/step",
              "spec B/step", "ratio", "ops/step");
  for (const Config& c : configs) {
    if (!c.strategy) {
      std::printf("%-16s not available yet\n", c.label);
      continue;
    }
    std::string err;
    const Result r = run_config("OMP_NUM_THREADS=1 exec '" + self + "' --worker " + c.strategy +
                                    " --steps " + std::to_string(steps) + " 2>&1",
                                err);
    if (!r.ok) {
      std::printf("%-16s failed: %s\n", c.label, err.c_str());
      continue;
    }
    // Spec §10: DP, ZeRO-1 and ZeRO-2 move 2Ψ per step, ZeRO-3 and FULL_SHARD 3Ψ; a ring sends
    // (N-1)/N of it per rank; fp32.
    const double spec = double(kRanks - 1) / kRanks * c.volume * r.psi * 4.0;
    std::printf("%-16s %10.2f %9.3f %14.0f %14.0f %7.3f %9.1f\n", c.label, r.peak_mib, r.steps_per_s,
                r.sent_per_step, spec, r.sent_per_step / spec, r.ops_per_step);
  }
  std::printf("\npeak MiB: max over ranks of the CPU allocator's peak during the timed steps. sent B/step: bytes "
              "this rank put on the wire per step (ProcessGroup::traffic(), mean over ranks). spec: (N-1)/N x 2Psi "
              "(DP, ZeRO-1/2) or 3Psi (ZeRO-3, FULL_SHARD) x 4 bytes; sharded flat parameters are padded to a "
              "multiple of N, so their volume is a few elements above. ops/step: collectives a rank issues per "
              "step (rank 0).\n");
  return 0;
}
