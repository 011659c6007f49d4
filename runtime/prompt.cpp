// Prompts of the character-level GPT: text to vocabulary ids, refusing characters it never saw.
#include "runtime/prompt.h"

#include <algorithm>
#include <cstdio>

#include "runtime/train_config.h"
#include "tensor/utf8.h"

namespace fabric {

namespace {

// A prompt character for the message: quoted when printable; a control character (a tab, a CR that
// would move a terminal's cursor) as its code point, U+XXXX.
std::string shown(const std::string& ch) {
  char32_t cp = 0;
  utf8_next(ch, 0, cp);
  if (cp == U'\n') return "'\\n'";
  if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
    return buf;
  }
  return "'" + ch + "'";
}

}  // namespace

std::vector<int64_t> encode_prompt(const data::CharVocab& vocab, const std::string& prompt, const char* key) {
  if (prompt.empty()) return {std::max<int64_t>(vocab.id_of(U'\n'), 0)};
  // Not UTF-8 (a Latin-1 terminal, a cut byte): said as such, at its byte, as a data file's is.
  if (const size_t bad = utf8_invalid_at(prompt); bad < prompt.size()) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X",
                  static_cast<unsigned>(static_cast<unsigned char>(prompt[bad])));
    throw ConfigError(std::string(key) + ": invalid UTF-8 at byte " + std::to_string(bad) + " (" +
                      hex + "); the prompt must be UTF-8 text, as the training text was");
  }
  std::vector<int64_t> ids;
  std::vector<std::string> unknown;
  for (size_t i = 0; i < prompt.size();) {
    char32_t cp = 0;
    const size_t n = utf8_next(prompt, i, cp);
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
    for (const auto& ch : unknown) list += (list.empty() ? "" : ", ") + shown(ch);
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
