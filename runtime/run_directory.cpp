// The checkpoints/ folder of a fabric-train run directory: its step-N checkpoints, the leftovers of
// a killed save, and which checkpoint a resume reads.
#include "runtime/run_directory.h"

#include <algorithm>
#include <cctype>
#include <iostream>

#include "runtime/sharded_checkpoint.h"
#include "tensor/error.h"

namespace fabric {
namespace fs = std::filesystem;

std::vector<std::pair<int64_t, fs::path>> step_checkpoints(const std::string& checkpoints_dir) {
  std::vector<std::pair<int64_t, fs::path>> steps;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step-", 0) != 0 || !e.is_directory() || n.size() == 5) continue;
    if (!std::all_of(n.begin() + 5, n.end(), [](unsigned char c) { return std::isdigit(c); }))
      continue;
    steps.emplace_back(std::stoll(n.substr(5)), e.path());
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

// Only names holding ".tmp-": no committed checkpoint (step-N, last, last.old) has one.
void remove_stale_temporaries(const std::string& checkpoints_dir) {
  std::vector<fs::path> stale;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir, ec))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) stale.push_back(e.path());
  for (const auto& p : stale) fs::remove_all(p, ec);
}

bool complete_checkpoint(const std::string& dir) {
  return fs::exists(dir + "/state.json") || fs::exists(dir + ".old/state.json") ||
         is_sharded_checkpoint(dir);
}

std::string checkpoint_to_resume(const std::string& run_dir, bool say) {
  const std::string last = run_dir + "/checkpoints/last";
  if (complete_checkpoint(last)) return last;
  const auto steps = step_checkpoints(run_dir + "/checkpoints");
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (!complete_checkpoint(it->second.string())) continue;
    if (say)
      std::cerr << "fabric-train: resume: " << last << " is missing or incomplete; resuming from "
                << it->second.string() << "\n";
    return it->second.string();
  }
  throw IOError("resume: no checkpoint at " + last +
                " (and no complete checkpoints/step-N to fall back on)");
}

void prune_step_checkpoints(const std::string& checkpoints_dir, int64_t keep_last) {
  if (keep_last <= 0) return;
  const auto steps = step_checkpoints(checkpoints_dir);
  for (size_t i = 0; i + size_t(keep_last) < steps.size(); ++i) fs::remove_all(steps[i].second);
}

}  // namespace fabric
