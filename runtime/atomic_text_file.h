// Small text files a run writes beside its checkpoints (config.yaml, vocab.json): written to a
// temporary sibling `<path>.tmp.<pid>`, flushed to disk and renamed over `path`, so a reader sees
// the old file or the new one, never a torn one, and a crash leaves at most a temporary that the
// next run on the directory removes (run_directory.h, by the pid in its name).
#pragma once
#include <string>

namespace fabric {

// IOError "cannot write PATH (through TMP): CAUSE; the previous NAME, if any, is unchanged" when
// any step fails; the temporary is removed then.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace fabric
