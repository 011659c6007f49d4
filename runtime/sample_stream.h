// fabric-train sample as it goes: the text written while it is generated, not once at the end.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>

namespace fabric {

// sample_checkpoint (trainer.h), written to `out` as it is generated: the prompt (as the
// vocabulary reads it back) at once, then each character as soon as it is drawn, flushing after
// each, so that a long --tokens shows its progress and the text is never held in memory. The
// bytes are those sample_checkpoint returns. Errors as sample_checkpoint's; one raised while
// generating leaves what was written so far.
void stream_sample_checkpoint(std::ostream& out, const std::string& checkpoint_dir,
                              const std::string& prompt, int64_t tokens, double temperature = 1.0,
                              int64_t top_k = 0, uint64_t seed = 0);

}  // namespace fabric
