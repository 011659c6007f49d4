// What bench_norm and bench_pool share: a median timer, and the reader of their PyTorch script's
// "case threads fwd_ms fwdbwd_ms" rows (the script runs in the same run, so load hits both alike).
#pragma once
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

namespace fabric::bench {

// Median wall time of `reps` calls of fn, in ms, after two warm-up calls.
inline double median_ms(const std::function<void()>& fn, int reps) {
  fn();
  fn();
  std::vector<double> ts;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    ts.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                     .count());
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

using TorchRows = std::map<std::pair<std::string, int>, std::pair<double, double>>;

// Runs tools/bench/<script> (beside `bench_source`, the caller's __FILE__) with `reps` and
// `threads` (a comma-separated list) under $FABRIC_TORCH_PYTHON (default /usr/bin/python3):
// (case, threads) -> (forward ms, forward + backward ms). `status` gets the script's
// "torch: <version>" line, or why there is none.
inline TorchRows run_torch_rows(const std::string& bench_source, const char* script_name, int reps,
                                std::string& status, const std::string& threads = "1,2",
                                const std::string& extra_args = "") {
  TorchRows res;
  const std::string script =
      bench_source.substr(0, bench_source.find_last_of('/') + 1) + script_name;
  const char* py = std::getenv("FABRIC_TORCH_PYTHON");
  const std::string cmd = std::string(py ? py : "/usr/bin/python3") + " " + script + " " +
                          std::to_string(reps) + " " + threads +
                          (extra_args.empty() ? "" : " " + extra_args) + " 2>&1";
  status = "torch: not available (no output from " + script + ")";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return res;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    char name[64];
    int thr;
    double fwd, both;
    // The version line first: "torch: 1.13..." would also scan as a row.
    if (std::strncmp(line, "torch:", 6) == 0) {
      status = line;
      if (!status.empty() && status.back() == '\n') status.pop_back();
    } else if (std::sscanf(line, "%63s %d %lf %lf", name, &thr, &fwd, &both) == 4) {
      res[{name, thr}] = {fwd, both};
    }
  }
  pclose(f);
  return res;
}

}  // namespace fabric::bench
