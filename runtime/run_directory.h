// The checkpoints/ folder of a fabric-train run directory (see trainer.h for the whole layout):
// checkpoints/step-N/, checkpoints/last/, and what a killed save leaves beside them.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace fabric {

// checkpoints/step-N directories, oldest first (temporaries and `.old` leftovers excluded).
std::vector<std::pair<int64_t, std::filesystem::path>> step_checkpoints(
    const std::string& checkpoints_dir);
// Removes all but the keep_last newest step-N checkpoints (keep_last <= 0: keeps all).
void prune_step_checkpoints(const std::string& checkpoints_dir, int64_t keep_last);

// What a process killed while saving leaves beside the checkpoints: `<name>.tmp-<pid>`
// directories (and files). To be called when a run starts, before any save of its own, so that
// none of them can be in flight; committed checkpoints (and the `.old` that a commit without atomic
// exchange keeps) stay.
void remove_stale_temporaries(const std::string& checkpoints_dir);

// Whether `dir` holds a checkpoint that Fabric::load reads: a full one (also as the `.old` that an
// interrupted commit leaves) or a sharded one.
bool complete_checkpoint(const std::string& dir);

// run_dir/checkpoints/last or, when a kill during its first save left it missing (or it is
// incomplete), the newest complete checkpoints/step-N, said on stderr when `say`. IOError when
// there is neither.
std::string checkpoint_to_resume(const std::string& run_dir, bool say);

}  // namespace fabric
