// A character-level GPT's prompt as vocabulary ids (fabric-train sample, and the sample at the end
// of a text run), with an error that lists every character the vocabulary lacks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/datasets.h"

namespace fabric {

// The prompt's ids, one character (UTF-8 sequence) at a time. Characters the model never saw are
// a ConfigError naming `key` ("sample --prompt") and listing them all, except in the default
// prompt, a newline ("start of a line"), which starts from the vocabulary's first character when
// the text had no newline; an empty prompt starts there too.
std::vector<int64_t> encode_prompt(const data::CharVocab& vocab, const std::string& prompt, const char* key);

}  // namespace fabric
