// Causal attention, forward-only and forward+backward, in milliseconds (medians): our fused
// scaled_dot_product_attention (is_causal), the same op made to take its composition of
// matmul/softmax (an explicit causal bool mask), and PyTorch's composition
// (tools/bench/torch_attention.py, the way nanoGPT writes it without flash attention) measured in
// the same run on the same shapes, float32 and bfloat16. With --dropout P both of ours drop
// attention probabilities with p = P (the fused kernel draws the composition's mask); PyTorch's
// column is then left out (its script has no dropout).
//   bench_attention [--shapes BxHxTxhs,...] [--runs N] [--threads N] [--dropout P] [--no-torch]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

using namespace fabric;

namespace {

struct Shape4 {
  int64_t B, H, T, hs;
};

double median_ms(int runs, const std::function<void()>& fn) {
  for (int i = 0; i < 2; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                    .count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// (B, H, T, hs, dtype) -> (forward ms, forward+backward ms) from the PyTorch script.
using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, std::string>;
std::map<Key, std::pair<double, double>> run_torch(const std::string& shapes, int runs,
                                                   int threads, std::string& status) {
  std::map<Key, std::pair<double, double>> res;
  std::string script = __FILE__;
  script = script.substr(0, script.find_last_of('/') + 1) + "torch_attention.py";
  const char* py = std::getenv("FABRIC_TORCH_PYTHON");
  const std::string cmd = std::string(py ? py : "/usr/bin/python3") + " " + script + " " + shapes +
                          " " + std::to_string(runs) + " " + std::to_string(threads) + " 2>&1";
  status = "torch: not available (no output from " + script + ")";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return res;
  char line[512], dt[64];
  long long B, H, T, hs;
  double fwd, both;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "%lld %lld %lld %lld %63s %lf %lf", &B, &H, &T, &hs, dt, &fwd, &both) ==
        7) {
      res[{B, H, T, hs, dt}] = {fwd, both};
    } else if (std::strncmp(line, "torch:", 6) == 0) {
      status = line;
      if (!status.empty() && status.back() == '\n') status.pop_back();
    }
  }
  pclose(f);
  return res;
}

// Forward and forward+backward ms of one attention call on fresh leaves.
std::pair<double, double> time_ours(const Shape4& s, DType dt, bool fused, double dropout, int runs) {
  const Shape shape{s.B, s.H, s.T, s.hs};
  Tensor q = randn(shape).to(dt).set_requires_grad(true);
  Tensor k = randn(shape).to(dt).set_requires_grad(true);
  Tensor v = randn(shape).to(dt).set_requires_grad(true);
  const Tensor g = randn(shape).to(dt);
  const Tensor mask = fused ? Tensor() : causal_mask(s.T, s.T);
  auto attend = [&] { return scaled_dot_product_attention(q, k, v, mask, dropout, fused); };
  const double fwd = median_ms(runs, [&] {
    NoGradGuard no_grad;
    attend();
  });
  const double both = median_ms(runs, [&] {
    attend().backward(g);
    for (const Tensor* t : {&q, &k, &v}) zero_grad(*t);
  });
  return {fwd, both};
}

}  // namespace

int main(int argc, char** argv) {
  std::string shapes = "4x12x256x64,1x12x1024x64";
  int runs = 7, threads = 2;
  double dropout = 0.0;
  bool torch = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--shapes" && i + 1 < argc) shapes = argv[++i];
    else if (a == "--runs" && i + 1 < argc) runs = std::atoi(argv[++i]);
    else if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (a == "--dropout" && i + 1 < argc) dropout = std::atof(argv[++i]);
    else if (a == "--no-torch") torch = false;
    else {
      std::fprintf(stderr, "usage: bench_attention [--shapes BxHxTxhs,...] [--runs N] [--threads N] "
                   "[--dropout P] [--no-torch]\n");
      return 2;
    }
  }
  if (runs < 1 || threads < 1 || !(dropout >= 0.0 && dropout < 1.0)) {
    std::fprintf(stderr,
                 "bench_attention: --runs and --threads must be >= 1 and --dropout in [0, 1), got "
                 "%d, %d, %g\n",
                 runs, threads, dropout);
    return 2;
  }
  std::vector<Shape4> list;
  for (size_t p = 0; p < shapes.size();) {
    size_t e = shapes.find(',', p);
    if (e == std::string::npos) e = shapes.size();
    Shape4 s{};
    if (std::sscanf(shapes.substr(p, e - p).c_str(), "%ldx%ldx%ldx%ld", &s.B, &s.H, &s.T, &s.hs) !=
            4 ||
        s.B < 1 || s.H < 1 || s.T < 1 || s.hs < 1) {
      std::fprintf(stderr, "bench_attention: bad shape '%s' (expected BxHxTxhs)\n",
                   shapes.substr(p, e - p).c_str());
      return 2;
    }
    list.push_back(s);
    p = e + 1;
  }
  omp_set_num_threads(threads);
  std::string status = "torch: skipped (--no-torch)";
  std::map<Key, std::pair<double, double>> ref;
  if (dropout > 0) status = "torch: left out (--dropout)";
  else if (torch) ref = run_torch(shapes, runs, threads, status);
  std::printf("causal attention, dropout %.2f, %d threads, median of %d runs, ms; ratios are the "
              "other's time / fused's\n%s\n\n", dropout, threads, runs, status.c_str());
  std::printf("%-17s %-9s %-8s %9s %9s %9s %9s %9s\n", "B x H x T x hs", "dtype", "pass", "fused",
              "composed", "torch", "vs comp", "vs torch");
  for (const Shape4& s : list) {
    for (DType dt : {DType::float32, DType::bfloat16}) {
      const auto fused = time_ours(s, dt, true, dropout, runs);
      const auto composed = time_ours(s, dt, false, dropout, runs);
      const std::string dn(dtype_name(dt));
      const auto it = ref.find({s.B, s.H, s.T, s.hs, dn});
      char name[64];
      std::snprintf(name, sizeof name, "%ldx%ldx%ldx%ld", s.B, s.H, s.T, s.hs);
      for (int pass = 0; pass < 2; ++pass) {
        const double f = pass ? fused.second : fused.first;
        const double c = pass ? composed.second : composed.first;
        const double t = it == ref.end() ? 0 : (pass ? it->second.second : it->second.first);
        if (t > 0)
          std::printf("%-17s %-9s %-8s %9.2f %9.2f %9.2f %8.2fx %8.2fx\n", name, dn.c_str(),
                      pass ? "fwd+bwd" : "forward", f, c, t, c / f, t / f);
        else
          std::printf("%-17s %-9s %-8s %9.2f %9.2f %9s %8.2fx %9s\n", name, dn.c_str(),
                      pass ? "fwd+bwd" : "forward", f, c, "-", c / f, "-");
      }
    }
  }
  return 0;
}
