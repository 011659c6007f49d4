// The checkpoints/ folder of a fabric-train run directory (see trainer.h for the whole layout):
// checkpoints/step-N/, checkpoints/last/, and what a killed save leaves beside them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace fabric {

// checkpoints/step-N directories, oldest first (temporaries and `.old` leftovers excluded).
std::vector<std::pair<int64_t, std::filesystem::path>> step_checkpoints(
    const std::string& checkpoints_dir);
// Removes all but the keep_last newest of the run's own step-N checkpoints, those whose N is in
// `own_steps` (keep_last <= 0: keeps all). Any other step-N (an earlier run's, left in a run
// directory that a new fit reuses) is never removed: it is the user's, not the run's.
void prune_step_checkpoints(const std::string& checkpoints_dir, int64_t keep_last,
                            const std::set<int64_t>& own_steps);
// The key of a fabric-train checkpoint that names the run which wrote it: a number drawn when a
// fit starts and kept by its resumes, so that a resume knows its own step-N checkpoints from an
// earlier run's left in the same directory.
inline constexpr const char* kRunIdKey = "run.id";
// The step-N checkpoints up to step `up_to` that the run `run_id` wrote (their kRunIdKey equals
// it; one that cannot be read is not the run's). Without a run id (a checkpoint written before
// fabric-train recorded one), every step-N up to `up_to`.
std::set<int64_t> steps_of_run(const std::string& checkpoints_dir, int64_t up_to,
                               std::optional<int64_t> run_id);
// The committed checkpoints in `checkpoints_dir` (`last`, then step-N oldest first; temporaries
// excluded): what a new fit into a used run directory would mix with its own.
std::vector<std::string> committed_checkpoints(const std::string& checkpoints_dir);

// What a process killed while saving leaves beside the checkpoints: `<name>.tmp-<pid>`
// directories whose process is gone (a live one's is a save in progress). To be called when a run
// starts, before any save of its own; committed checkpoints (and the `.old` that a commit without
// atomic exchange keeps), other names and files stay.
void remove_stale_temporaries(const std::string& checkpoints_dir);
// The same for the run directory's own files: `metrics.csv`, `config.yaml` or `vocab.json` +
// `.tmp.<pid>` (the atomic writes' temporaries, write_target.h) of a process since gone, e.g. a
// resume killed while it cut metrics.csv back to its step.
void remove_stale_file_temporaries(const std::string& run_dir);

// An exclusive advisory lock (flock) on the run directory itself, held by the process that writes
// it (rank 0) for the run's life: a second fit or resume of the same directory is an IOError
// instead of interleaving its metrics.csv and saves with this one's (and deleting its save in
// progress). No file is made; on a file system without flock there is no lock.
class RunDirectoryLock {
 public:
  explicit RunDirectoryLock(const std::string& run_dir);
  ~RunDirectoryLock();
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

// Whether `dir` holds a checkpoint that Fabric::load reads: a full one (also as the `.old` that an
// interrupted commit leaves) or a sharded one.
bool complete_checkpoint(const std::string& dir);

// run_dir/checkpoints/last, which fit keeps the newest complete checkpoint (it saves `last` before
// each step-N) or, when it is missing or incomplete (deleted, or left so by a fabric-train that
// saved step-N first), the newest complete checkpoints/step-N, said on stderr when `say`. IOError
// when there is neither.
std::string checkpoint_to_resume(const std::string& run_dir, bool say);

// A resume from a step-N because run_dir/checkpoints/last is there but incomplete: that `last`
// is moved to checkpoints/last.incomplete (.1, .2, ... when taken), so that the run's next save of
// `last` neither refuses it (it holds no checkpoint, and saving would delete it) nor loses it.
// Returns where it went ("" when `last` is complete or absent); IOError when it cannot be moved.
std::string set_aside_incomplete_last(const std::string& run_dir);

// The command lines that start a new run from the weights of `checkpoint` (a checkpoint of the run
// `run_dir`): `fabric-train fit RUN/config.yaml --set model.init=CHECKPOINT/model.safetensors
// trainer.run_dir=NEW_RUN_DIR`, and for a sharded checkpoint, which has no such file, a
// `fabric-train consolidate` into RUN/weights.safetensors first.
std::string fit_from_weights_advice(const std::string& run_dir, const std::string& checkpoint);

// The checkpoint directory that a `sample` or `export` argument names: a checkpoint directory
// (full or sharded) as it is, a run directory as its checkpoints/last, a full checkpoint's
// model.safetensors as its directory. IOError naming those three forms for anything else
// (`command` starts the message); the path must exist (fabric-train checks that first).
std::string checkpoint_named_by(const std::string& path, const std::string& command);

}  // namespace fabric
