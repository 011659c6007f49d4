// A character-level GPT's prompt as vocabulary ids (fabric-train sample, and the sample at the end
// of a text run), with an error that lists every character the vocabulary lacks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/datasets.h"

namespace fabric {

// The prompt's ids, one character (UTF-8 sequence) at a time. Characters the model never saw are
// a ConfigError naming `key` ("sample --prompt") and listing them all. The empty prompt is the
// start of a line: a newline when the text had one, else the vocabulary's first character.
std::vector<int64_t> encode_prompt(const data::CharVocab& vocab, const std::string& prompt, const char* key);

// trainer.sample_prompt as encode_prompt takes it: its default, a newline, is the start of a line
// (empty), so that a text without newlines samples at the end of its fit instead of refusing the
// config; any other value as it is.
std::string configured_sample_prompt(const std::string& sample_prompt);

}  // namespace fabric
