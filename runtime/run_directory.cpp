// The checkpoints/ folder of a fabric-train run directory: its step-N checkpoints, the leftovers of
// a killed save, and which checkpoint a resume reads.
#include "runtime/run_directory.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <iostream>
#include <limits>
#include <optional>
#include <string_view>

#include "runtime/checkpoint.h"
#include "runtime/sharded_checkpoint.h"
#include "tensor/error.h"
#include "tensor/write_target.h"

namespace fabric {
namespace fs = std::filesystem;

namespace {
// The int64 that `digits` spells with decimal digits alone (no sign, nothing after); nullopt
// otherwise, a number past int64 included.
std::optional<int64_t> whole_number(std::string_view digits) {
  int64_t v = 0;
  if (digits.empty() || digits.front() == '-' || digits.front() == '+') return std::nullopt;
  const auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (err != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return v;
}
}  // namespace

std::vector<std::pair<int64_t, fs::path>> step_checkpoints(const std::string& checkpoints_dir) {
  std::vector<std::pair<int64_t, fs::path>> steps;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step-", 0) != 0 || !e.is_directory() || n.size() == 5) continue;
    // Only step-<an int64>: a name of more digits than any step is not a checkpoint of ours.
    const std::optional<int64_t> step = whole_number(std::string_view(n).substr(5));
    if (step) steps.emplace_back(*step, e.path());
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

std::set<int64_t> steps_of_run(const std::string& checkpoints_dir, int64_t up_to,
                               std::optional<int64_t> run_id) {
  std::set<int64_t> own;
  for (const auto& [n, path] : step_checkpoints(checkpoints_dir)) {
    if (n > up_to) continue;
    if (!run_id) {
      own.insert(n);
      continue;
    }
    try {
      const std::optional<StateEntry> id = read_checkpoint_value(path.string(), kRunIdKey);
      const int64_t* v = id ? std::get_if<int64_t>(&id->value()) : nullptr;
      if (v && *v == *run_id) own.insert(n);
    } catch (const IOError&) {
      // Damaged or not a checkpoint: not known to be the run's, so never pruned.
    }
  }
  return own;
}

namespace {

// The process a temporary's name ends with (after `marker`: ".tmp-" or ".tmp."), when it is gone;
// 0 for a live one (another fabric-train writing here: its write in progress) or no such name.
int64_t dead_writer(const std::string& name, const char* marker) {
  const size_t at = name.rfind(marker);
  if (at == std::string::npos || at == 0) return 0;
  const int64_t pid = whole_number(std::string_view(name).substr(at + 5)).value_or(0);
  if (pid <= 0) return 0;
  if (pid != ::getpid() && pid <= std::numeric_limits<pid_t>::max() &&
      (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM))
    return 0;  // that process is alive
  return pid;
}

}  // namespace

void remove_stale_temporaries(const std::string& checkpoints_dir) {
  std::vector<fs::path> stale;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir, ec)) {
    // Only what a save names so: a directory <name>.tmp-<pid> whose process is gone; anything else
    // holding ".tmp-" is not ours to delete.
    if (!e.is_directory(ec) || e.is_symlink(ec)) continue;
    if (dead_writer(e.path().filename().string(), ".tmp-") != 0) stale.push_back(e.path());
  }
  for (const auto& p : stale) fs::remove_all(p, ec);
}

void remove_stale_file_temporaries(const std::string& run_dir) {
  std::vector<fs::path> stale;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run_dir, ec)) {
    const std::string n = e.path().filename().string();
    const bool ours = n.rfind("metrics.csv.tmp.", 0) == 0 || n.rfind("config.yaml.tmp.", 0) == 0 ||
                      n.rfind("vocab.json.tmp.", 0) == 0;
    if (!ours || !e.is_regular_file(ec) || e.is_symlink(ec)) continue;
    if (dead_writer(n, ".tmp.") != 0) stale.push_back(e.path());
  }
  for (const auto& p : stale) fs::remove(p, ec);
}

RunDirectoryLock::RunDirectoryLock(const std::string& run_dir) {
  fd_ = ::open(run_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) return;  // the run's own writes say why the directory cannot be used
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  const int err = errno;
  ::close(fd_);
  fd_ = -1;
  if (err == EWOULDBLOCK)
    throw IOError(
        run_dir +
        ": the run directory is in use by another fabric-train fit or resume; wait for it to "
        "end, or set another trainer.run_dir");
}

RunDirectoryLock::~RunDirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

bool complete_checkpoint(const std::string& dir) {
  std::error_code ec;  // an unreadable or over-long name is no complete checkpoint
  return fs::exists(dir + "/state.json", ec) ||
         fs::exists(sibling_named(dir, ".old") + "/state.json", ec) || is_sharded_checkpoint(dir);
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

std::string set_aside_incomplete_last(const std::string& run_dir) {
  const std::string last = run_dir + "/checkpoints/last";
  std::error_code ec;
  if (complete_checkpoint(last) || !fs::exists(fs::symlink_status(last, ec))) return "";
  std::string aside = last + ".incomplete";
  for (int n = 1; fs::exists(fs::symlink_status(aside, ec)); ++n)
    aside = last + ".incomplete." + std::to_string(n);
  fs::rename(last, aside, ec);
  if (ec)
    throw IOError("resume: " + last + " is incomplete and cannot be moved to " + aside + " (" +
                  ec.message() + "); the run's next save of last would delete it: move it away");
  return aside;
}

void prune_step_checkpoints(const std::string& checkpoints_dir, int64_t keep_last,
                            const std::set<int64_t>& own_steps) {
  if (keep_last <= 0) return;
  auto steps = step_checkpoints(checkpoints_dir);
  std::erase_if(steps, [&](const auto& s) { return !own_steps.count(s.first); });
  for (size_t i = 0; i + size_t(keep_last) < steps.size(); ++i) {
    // Renamed first: a kill in the middle of removing it leaves a temporary, which the next run's
    // remove_stale_temporaries takes, not a half-empty step-N no run owns any more.
    const fs::path doomed = steps[i].second.string() + ".tmp-" + std::to_string(::getpid());
    std::error_code ec;
    fs::rename(steps[i].second, doomed, ec);
    fs::remove_all(ec ? steps[i].second : doomed, ec);
  }
}

std::vector<std::string> committed_checkpoints(const std::string& checkpoints_dir) {
  std::vector<std::string> names;
  const std::string last = checkpoints_dir + "/last";
  if (fs::exists(last) || fs::exists(last + ".old")) names.push_back("last");
  for (const auto& [step, path] : step_checkpoints(checkpoints_dir))
    names.push_back(path.filename().string());
  return names;
}

std::string fit_from_weights_advice(const std::string& run_dir, const std::string& checkpoint) {
  const std::string fit = "fabric-train fit " + run_dir + "/config.yaml --set model.init=";
  const std::string rest = " trainer.run_dir=NEW_RUN_DIR";
  if (!is_sharded_checkpoint(checkpoint)) return fit + checkpoint + "/model.safetensors" + rest;
  const std::string weights = run_dir + "/weights.safetensors";
  return "fabric-train consolidate " + checkpoint + " " + weights +
         " (the checkpoint is sharded), then " + fit + weights + rest;
}

std::string checkpoint_named_by(const std::string& path, const std::string& command) {
  const fs::path p(path);
  std::error_code ec;
  const auto is_checkpoint = [](const fs::path& dir) {
    return fs::exists(dir / "state.json") || is_sharded_checkpoint(dir.string());
  };
  const std::string expected =
      "; " + command +
      " takes a checkpoint directory (RUN_DIR/checkpoints/last or step-N: state.json, or "
      "meta.json when sharded), a run directory (RUN_DIR: its checkpoints/last) or a "
      "checkpoint's model.safetensors";
  if (fs::is_regular_file(p, ec)) {
    // Only a checkpoint's own weights file: it lies beside the config and vocabulary that build
    // the model. A weights file elsewhere (export's output) holds the weights alone.
    const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
    if (p.filename() == "model.safetensors" && is_checkpoint(dir)) return dir.string();
    if (is_checkpoint(dir))
      throw IOError(command + ": " + path + " is a file of the checkpoint " + dir.string() +
                    ", not its model.safetensors; pass the checkpoint directory " + dir.string() +
                    expected);
    throw IOError(command + ": " + path +
                  " is a file but not a checkpoint's model.safetensors (no state.json beside it)" +
                  expected);
  }
  if (is_checkpoint(p)) return path;
  if (fs::is_directory(p / "checkpoints", ec) || fs::exists(p / "config.yaml", ec)) {
    const fs::path last = p / "checkpoints" / "last";
    if (is_checkpoint(last)) return last.string();
    throw IOError(command + ": " + path +
                  " is a run directory without a complete checkpoints/last (its fit failed or " +
                  "was killed before the first save?); give one of its checkpoints/step-N "
                  "directories instead");
  }
  throw IOError(command + ": " + path + ": not a checkpoint directory (no state.json)" + expected);
}

}  // namespace fabric
