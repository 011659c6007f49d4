// DeepSpeed's documented config keys (https://www.deepspeed.ai/docs/config-json/), by what this
// runtime does with each: real DeepSpeed configs carry many keys that tune DeepSpeed's own engine
// (bucket sizes, overlap, logging), which must not stop a run, while a typo must.
#pragma once
#include <string>
#include <vector>

namespace fabric::precision {

enum class DeepSpeedKeyUse {
  unknown,   // not a DeepSpeed key: a typo, refused with "did you mean"
  block,     // a mapping of keys, each classified on its own (fp16, zero_optimization, ...)
  honoured,  // read by DeepSpeedConfig and acted on
  ignored,   // documented, but this runtime does not use it: accepted with one warning; a key
             // under an ignored one (optimizer.params.lr) is ignored too, whatever its value
};

// `path`: the key's dotted path from the config's root ("zero_optimization.overlap_comm").
DeepSpeedKeyUse deepspeed_key_use(const std::string& path);

// The documented key names one level under `prefix` ("" = the root), for "did you mean"; empty
// under a key that is not a block.
std::vector<std::string> deepspeed_documented_children(const std::string& prefix);

// "; did you mean 'X'?" naming the documented key under `prefix` nearest to `key` when it is a
// typo away, else "".
std::string deepspeed_did_you_mean(const std::string& key, const std::string& prefix);

}  // namespace fabric::precision
