// What the benchmarks with a PyTorch twin share: a median timer, the runner of their PyTorch script
// (run in the same run, so load hits both alike) and the reader of its "case threads fwd_ms
// fwdbwd_ms" rows.
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

// Runs tools/bench/<script_name> (beside `bench_source`, the caller's __FILE__) with `args` under
// $FABRIC_TORCH_PYTHON (default /usr/bin/python3) and hands every output line but the script's
// "torch: <version>" line to on_line(line). `status` gets that version line, or why there is none.
template <typename OnLine>
void run_torch_script(const std::string& bench_source, const char* script_name,
                      const std::string& args, std::string& status, const OnLine& on_line) {
  const std::string script =
      bench_source.substr(0, bench_source.find_last_of('/') + 1) + script_name;
  const char* py = std::getenv("FABRIC_TORCH_PYTHON");
  const std::string cmd =
      std::string(py ? py : "/usr/bin/python3") + " " + script + " " + args + " 2>&1";
  status = "torch: not available (no output from " + script + ")";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    // The version line first: "torch: 1.13..." could also scan as a row.
    if (std::strncmp(line, "torch:", 6) == 0) {
      status = line;
      if (!status.empty() && status.back() == '\n') status.pop_back();
    } else {
      on_line(line);
    }
  }
  pclose(f);
}

using TorchRows = std::map<std::pair<std::string, int>, std::pair<double, double>>;

// The script's "case threads fwd_ms fwdbwd_ms" rows for `reps` and `threads` (a comma-separated
// list): (case, threads) -> (forward ms, forward + backward ms).
inline TorchRows run_torch_rows(const std::string& bench_source, const char* script_name, int reps,
                                std::string& status, const std::string& threads = "1,2",
                                const std::string& extra_args = "") {
  TorchRows res;
  const std::string args =
      std::to_string(reps) + " " + threads + (extra_args.empty() ? "" : " " + extra_args);
  run_torch_script(bench_source, script_name, args, status, [&](const char* line) {
    char name[64];
    int thr;
    double fwd, both;
    if (std::sscanf(line, "%63s %d %lf %lf", name, &thr, &fwd, &both) == 4)
      res[{name, thr}] = {fwd, both};
  });
  return res;
}

}  // namespace fabric::bench
