// The float64 ops that compute with SLEEF's double functions as torch 1.13's do
// (kernels/cpu/vec_sleef_f64_*.h): one thread, n float64 elements (1M by default), milliseconds per
// call (median), next to PyTorch (tools/bench/torch_sleef_f64.py) on the same inputs, measured in
// the same run. Run it after `eval "$(tools/bench/torch_env.sh)"`.
// Inputs per op: x_i = (u_i - 2^52) (R / 2^52) for the Weyl sequence u_i = (i + 1) 0x9E37...15 >>
// 11, uniform in [-R, R) (its absolute value for the logarithms), R as in the table below.
//   bench_sleef_f64 [n] [reps] [ops: comma-separated, all if absent]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"

using namespace fabric;

namespace {

struct Case {
  const char* name;
  double range;  // inputs in [-range, range)
  bool absolute;
  Tensor (*op)(const Tensor&);
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"exp", 8, false, exp},       {"log", 1000, true, log},       {"log2", 1000, true, log2},
      {"log10", 1000, true, log10}, {"log1p", 1000, true, log1p},   {"expm1", 8, false, expm1},
      {"tanh", 8, false, tanh},     {"sinh", 8, false, sinh},       {"cosh", 8, false, cosh},
      {"sin", 10, false, sin},      {"cos", 10, false, cos},        {"tan", 10, false, tan},
      {"asin", 1, false, asin},     {"acos", 1, false, acos},       {"atan", 8, false, atan},
      {"erf", 8, false, erf},       {"sigmoid", 8, false, sigmoid}, {"silu", 8, false, silu},
  };
  return c;
}

std::vector<double> inputs(int64_t n, double range, bool absolute) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t u = (static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull >> 11;
    const double x = static_cast<double>(static_cast<int64_t>(u) - (int64_t{1} << 52)) *
                     (range / 4503599627370496.0);
    v[static_cast<size_t>(i)] = absolute ? std::fabs(x) : x;
  }
  return v;
}

double median_ms(int reps, const std::function<void()>& fn) {
  fn();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// "op" -> ms from the PyTorch script's "op ms" lines.
std::map<std::string, double> run_torch(int64_t n, int reps, const std::string& ops,
                                        std::string& status) {
  std::map<std::string, double> res;
  std::string script = __FILE__;
  script = script.substr(0, script.find_last_of('/') + 1) + "torch_sleef_f64.py";
  const char* py = std::getenv("FABRIC_TORCH_PYTHON");
  const std::string cmd = std::string(py ? py : "/usr/bin/python3") + " " + script + " " +
                          std::to_string(n) + " " + std::to_string(reps) +
                          (ops.empty() ? "" : " " + ops) + " 2>&1";
  status = "torch: not available (no output from " + script + ")";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return res;
  char line[512], op[64];
  double ms;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "%63s %lf", op, &ms) == 2 && std::strcmp(op, "torch:") != 0) {
      res[op] = ms;
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
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : int64_t{1} << 20;
  const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 21;
  const std::string ops = argc > 3 ? argv[3] : "";
  omp_set_num_threads(1);
  std::string status;
  const auto torch = run_torch(n, reps, ops, status);
  std::printf(
      "bench_sleef_f64: n = %lld float64 elements, one thread, ms per call (median of %d)\n%s\n\n",
      static_cast<long long>(n), reps, status.c_str());
  std::printf("%-8s %9s %9s %11s\n", "op", "ours", "torch", "torch/ours");
  for (const Case& c : cases()) {
    if (!ops.empty() &&
        ("," + ops + ",").find(std::string(",") + c.name + ",") == std::string::npos)
      continue;
    const std::vector<double> v = inputs(n, c.range, c.absolute);
    const Tensor x = from_vector<double>(v, {n});
    const double ours = median_ms(reps, [&] { Tensor r = c.op(x); });
    const auto it = torch.find(c.name);
    const double t = it == torch.end() ? 0.0 : it->second;
    std::printf("%-8s %9.3f %9.3f %11.2f\n", c.name, ours, t, t > 0 ? t / ours : 0.0);
  }
  return 0;
}
