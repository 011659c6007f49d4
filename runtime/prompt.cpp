// Prompts of the character-level GPT: text to vocabulary ids, refusing characters it never saw.
#include "runtime/prompt.h"

#include <algorithm>

#include "runtime/train_config.h"

namespace fabric {

std::vector<int64_t> encode_prompt(const data::CharVocab& vocab, const std::string& prompt, const char* key) {
  if (prompt.empty()) return {std::max<int64_t>(vocab.id_of(U'\n'), 0)};
  std::vector<int64_t> ids;
  std::vector<std::string> unknown;
  for (size_t i = 0; i < prompt.size();) {
    size_t n = 1;
    const auto lead = static_cast<unsigned char>(prompt[i]);
    if (lead >= 0xF0) n = 4;
    else if (lead >= 0xE0) n = 3;
    else if (lead >= 0xC0) n = 2;
    const std::string ch = prompt.substr(i, n);
    try {
      for (int64_t id : vocab.encode(ch)) ids.push_back(id);
    } catch (const ValueError&) {
      if (std::find(unknown.begin(), unknown.end(), ch) == unknown.end()) unknown.push_back(ch);
    }
    i += n;
  }
  if (!unknown.empty()) {
    std::string list;
    for (const auto& ch : unknown) list += (list.empty() ? "'" : ", '") + (ch == "\n" ? "\\n" : ch) + "'";
    throw ConfigError(std::string(key) + ": " + std::to_string(unknown.size()) + " character" +
                      (unknown.size() == 1 ? " is" : "s are") + " not in the model's vocabulary: " + list + " (its " +
                      std::to_string(vocab.size()) + " characters are those of the training text)");
  }
  return ids;
}

std::string configured_sample_prompt(const std::string& sample_prompt) {
  return sample_prompt == "\n" ? std::string() : sample_prompt;
}

}  // namespace fabric
