// Collective bandwidth on the CPU: all_reduce through fabric's Gloo process group (2 ranks as 2
// processes on this host, so all_reduce takes the shared-memory segment), through the same group
// with shared_memory off (Gloo's TCP ring), and gloo::allreduce called directly (same ring, plain
// FileStore rendezvous), in the same run; plus reduce_scatter and all_gather through ours, with
// and without the segment.
// Prints median algbw (bytes / time) and the ratios to direct; never asserts anything.
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "distributed/gloo_process_group.h"
#include "distributed/tcp_store.h"
#include "tensor/factory.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace fabric;
using namespace fabric::distributed;

struct Options {
  int runs = 20;  // samples per measurement; the median is reported
  std::vector<int64_t> sizes{1 << 20, 16 << 20};
  bool extra = true;  // reduce_scatter and all_gather through ours, with and without the segment
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      o.runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--sizes" && i + 1 < argc) {
      o.sizes.clear();
      std::string s = argv[++i], item;
      for (size_t p = 0; p <= s.size(); ++p) {
        if (p == s.size() || s[p] == ',') {
          if (!item.empty()) o.sizes.push_back(std::stoll(item));
          item.clear();
        } else {
          item += s[p];
        }
      }
    } else if (a == "--no-extra") {
      o.extra = false;
    } else {
      std::printf("usage: bench_collectives [--runs 20] [--sizes 1048576,16777216] [--no-extra]\n");
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  return o;
}

std::string read_first(const char* path, const char* key) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (key == nullptr || line.rfind(key, 0) == 0) return line;
  return "?";
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

std::string human(int64_t n) {
  if (n % (1 << 20) == 0) return std::to_string(n >> 20) + "M";
  if (n % (1 << 10) == 0) return std::to_string(n >> 10) + "K";
  return std::to_string(n);
}

// One rank's share of the benchmark. Both ranks run the same sequence; rank 0 prints.
int run_rank(int rank, std::shared_ptr<Store> store, const std::string& file_store_dir,
             const Options& o) {
  auto pg = make_gloo_process_group(store, rank, 2, {.timeout = std::chrono::seconds(60)});
  // The same group with all_reduce kept on Gloo's TCP ring (no shared-memory segment): what the
  // runtime adds around Gloo, measured apart from the transport.
  auto pg_tcp = make_gloo_process_group(
      store, rank, 2, {.timeout = std::chrono::seconds(60), .shared_memory = false});

  // The peer: Gloo as its own examples use it.
  gloo::rendezvous::FileStore file_store(file_store_dir);
  gloo::rendezvous::PrefixStore prefix_store("direct", file_store);
  gloo::transport::tcp::attr attr;
  attr.hostname = "127.0.0.1";
  auto dev = gloo::transport::tcp::CreateDevice(attr);
  auto ctx = std::make_shared<gloo::rendezvous::Context>(rank, 2);
  ctx->setTimeout(std::chrono::seconds(60));
  ctx->connectFullMesh(prefix_store, dev);
  uint32_t direct_tag = 0;
  auto direct_barrier = [&] {
    gloo::BarrierOptions b(ctx);
    b.setTag(direct_tag++);
    gloo::barrier(b);
  };

  if (rank == 0) {
    std::printf("\n%-15s %9s %6s | %10s %10s %12s | %11s %10s\n", "op", "elements", "iters",
                "ours GB/s", "ours-tcp", "direct GB/s", "ours/direct", "tcp/direct");
    std::printf("%s\n", std::string(95, '-').c_str());
  }
  // Samples of several callables taken round-robin, starting one later each round, so that load
  // bursts from other processes hit all alike. A barrier lines both ranks up before each sample.
  auto measure = [&](const std::vector<std::function<void()>>& fns,
                     const std::function<void()>& refill, double bytes, int iters) {
    for (const auto& fn : fns) refill(), fn();  // warm-up: connections, page faults, buffers
    std::vector<std::vector<double>> rates(fns.size());
    for (int r = 0; r < o.runs; ++r)
      for (size_t j = 0; j < fns.size(); ++j) {
        const size_t i = (j + size_t(r)) % fns.size();
        refill();
        direct_barrier();
        const auto t0 = Clock::now();
        for (int k = 0; k < iters; ++k) fns[i]();
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        rates[i].push_back(bytes * iters / s / 1e9);
      }
    std::vector<double> med;
    for (auto& v : rates) med.push_back(median(v));
    return med;
  };

  for (int64_t n : o.sizes) {
    const double bytes = double(n) * 4;
    const int iters = int(std::max<int64_t>(1, (int64_t(128) << 20) / (n * 4)));
    Tensor t = empty({n}, {.dtype = DType::float32});
    float* p = t.data<float>();
    // Small values refilled before each sample keep the repeated sums finite and normal.
    auto refill = [&] {
      for (int64_t i = 0; i < n; ++i) p[i] = float((i + rank) % 7) * 0.125f;
    };
    auto ours = [&] { pg->all_reduce(t)->wait(); };
    auto ours_tcp = [&] { pg_tcp->all_reduce(t)->wait(); };
    auto direct = [&] {
      gloo::AllreduceOptions opts(ctx);
      opts.setOutput(p, size_t(n));
      opts.setAlgorithm(gloo::AllreduceOptions::Algorithm::RING);
      opts.setReduceFunction(
          static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
      opts.setTag(direct_tag++);
      gloo::allreduce(opts);
    };
    const auto r = measure({ours, ours_tcp, direct}, refill, bytes, iters);
    if (rank == 0) {
      std::printf("%-15s %9s %6d | %10.3f %10.3f %12.3f | %11.3f %10.3f\n", "all_reduce sum",
                  human(n).c_str(), iters, r[0], r[1], r[2], r[0] / r[2], r[1] / r[2]);
      std::fflush(stdout);
    }
  }

  // A small size (latency: ZeRO-3 and FSDP issue many) and a large one (bandwidth).
  for (const int64_t n : o.extra ? std::vector<int64_t>{1 << 16, 16 << 20} : std::vector<int64_t>{}) {
    const double bytes = double(n) * 4;
    const int iters = int(std::max<int64_t>(1, (int64_t(8) << 20) / (n * 4)));
    Tensor in = empty({n}, {.dtype = DType::float32}),
           half = empty({n / 2}, {.dtype = DType::float32});
    auto refill = [&] {
      float* q = in.data<float>();
      for (int64_t i = 0; i < n; ++i) q[i] = float((i + rank) % 7);
    };
    // Through the segment (ours) and over TCP (ours-tcp: our ring reduce-scatter, Gloo's
    // all-gather), sampled in turn; no direct Gloo peer (its reduce-scatter is broken here).
    const auto rs = measure({[&] { pg->reduce_scatter(half, in)->wait(); },
                             [&] { pg_tcp->reduce_scatter(half, in)->wait(); }},
                            refill, bytes, iters);
    const auto ag = measure({[&] { pg->all_gather(in, half)->wait(); },
                             [&] { pg_tcp->all_gather(in, half)->wait(); }},
                            [] {}, bytes, iters);
    if (rank == 0) {
      std::printf("%-15s %9s %6d | %10.3f %10.3f %12s | %11s %10s   (algbw: input bytes / time; "
                  "ours/tcp %.2f)\n",
                  "reduce_scatter", human(n).c_str(), iters, rs[0], rs[1], "-", "-", "-",
                  rs[0] / rs[1]);
      std::printf("%-15s %9s %6d | %10.3f %10.3f %12s | %11s %10s   (algbw: output bytes / time; "
                  "ours/tcp %.2f)\n",
                  "all_gather", human(n).c_str(), iters, ag[0], ag[1], "-", "-", "-",
                  ag[0] / ag[1]);
      std::fflush(stdout);
    }
  }
  direct_barrier();
  pg->barrier()->wait();
  pg_tcp->barrier()->wait();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::printf(
      "bench_collectives: 2 ranks as 2 processes, Gloo over loopback TCP (127.0.0.1), float32; "
      "algbw = "
      "bytes / time in GB/s, median of %d samples, each sample `iters` back-to-back ops after a "
      "barrier; "
      "ours (fabric's Gloo process group: worker thread, our reduce functions) and direct "
      "(gloo::allreduce ring with gloo::sum<float>) sampled round-robin in a rotating order.\n",
      o.runs);
  std::printf("machine: %s, %ld logical CPUs; load average at start: %s\n",
              read_first("/proc/cpuinfo", "model name").c_str(), sysconf(_SC_NPROCESSORS_ONLN),
              read_first("/proc/loadavg", nullptr).c_str());
  std::printf(
      "CAVEAT: a shared, noisy machine; compare the ratio (measured in the same run), not the "
      "absolute "
      "numbers.\n");
  std::fflush(stdout);

  char tmpl[] = "/tmp/bench_collectives_XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::perror("bench_collectives: mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  int port_pipe[2];
  if (pipe(port_pipe) != 0) {
    std::perror("bench_collectives: pipe");
    return 1;
  }
  // Fork before any thread exists: the child is rank 1.
  const pid_t child = fork();
  if (child < 0) {
    std::perror("bench_collectives: fork");
    return 1;
  }
  if (child == 0) {
    int port = 0;
    if (read(port_pipe[0], &port, sizeof port) != sizeof port) _exit(2);
    int code = 1;
    try {
      auto store = std::make_shared<TCPStore>(
          TCPStoreOptions{.port = port, .timeout = std::chrono::seconds(60)});
      code = run_rank(1, store, dir, o);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_collectives rank 1: %s\n", e.what());
    }
    std::fflush(stdout);
    _exit(code);
  }
  int code = 1;
  try {
    // Rank 0 hosts the store; its port reaches the child through the pipe.
    auto server = std::make_shared<TCPStore>(
        TCPStoreOptions{.port = 0, .is_server = true, .timeout = std::chrono::seconds(60)});
    const int port = server->port();
    if (write(port_pipe[1], &port, sizeof port) != sizeof port)
      throw std::runtime_error("pipe write failed");
    code = run_rank(0, server, dir, o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_collectives rank 0: %s\n", e.what());
    kill(child, SIGKILL);
  }
  int status = 0;
  waitpid(child, &status, 0);
  std::filesystem::remove_all(dir);
  std::printf("\ngoal: all_reduce ours >= 0.95x direct (ours-tcp: the runtime's overhead around the same "
      "transport). load average at end: %s\n",
              read_first("/proc/loadavg", nullptr).c_str());
  const bool child_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!child_ok) std::fprintf(stderr, "bench_collectives: rank 1 exited with status %d\n", status);
  return code == 0 && child_ok ? 0 : 1;
}
