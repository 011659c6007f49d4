// fabric-train sample as it goes: the text written while it is generated, not once at the end.
#pragma once
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

namespace fabric {

struct CheckpointModel;  // runtime/checkpoint_model.h

// sample_checkpoint (trainer.h), written to `out` as it is generated: the prompt (as the
// vocabulary reads it back) at once, then each character as soon as it is drawn, flushing after
// each, so that a long --tokens shows its progress and the text is never held in memory. The
// bytes are those sample_checkpoint returns. Errors as sample_checkpoint's; one raised while
// generating leaves what was written so far.
void stream_sample_checkpoint(std::ostream& out, const std::string& checkpoint_dir,
                              const std::string& prompt, int64_t tokens, double temperature = 1.0,
                              int64_t top_k = 0, uint64_t seed = 0);

// What sample and the C API's fabric_model_generate share once the checkpoint is loaded: a GPT
// trained on text (`loaded.model`, in eval mode; `loaded.vocab_json` its characters) generates
// `tokens` characters after `prompt` (temperature 0: greedy; top_k 0: all characters) under the
// precision plugin's forward context, as the model ran in training. `emit` receives the prompt as
// the vocabulary reads it back, then each character as soon as it is drawn; the pieces make the
// whole text's bytes. A prompt character the vocabulary lacks is a ConfigError naming
// `prompt_name` (encode_prompt).
void generate_text(const CheckpointModel& loaded, const std::string& prompt,
                   const char* prompt_name, int64_t tokens, double temperature, int64_t top_k,
                   uint64_t seed, const std::function<void(const std::string&)>& emit);

}  // namespace fabric
