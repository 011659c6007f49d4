// fabric-train's model.init: loading a safetensors file of initial weights into the model.
#pragma once
#include <string>

#include "nn/module.h"

namespace fabric {

// The state to load into `model` from `file`, with tied parameters completed: a tied tensor
// (one tensor under several state_dict names, as the GPT's lm_head.weight and
// transformer.wte.weight) given under any one of its names fills every name, as
// safetensors.torch.load_model accepts the files save_model writes (PyTorch cannot save a tied
// pair with save_file, and save_model keeps only one name of it). A file holding several names
// of one tie with different values is a ValueError naming them: which one the model should get
// is ambiguous (torch's load_state_dict would keep whichever it copies last).
nn::StateDict complete_tied_names(const nn::Module& model, nn::StateDict file);

// Reads `path` (safetensors): IOError for an unreadable file.
nn::StateDict read_model_init(const std::string& path);

// When a model.init file loads: into the model as built (a float file, which the precision plugin
// then converts, quantizing it where the precision quantizes), after the precision plugin converted
// the model (a file saved under a quantized or FP8 precision: its layers' weights are packed or
// come with statistics, `weight.absmax`, `SCB`, `_extra_state`, ..., that only the converted layers
// hold and read), or after LoRA adapters were added too (a file holding `lora_A`/`lora_B`).
enum class InitStage { built, converted, with_lora };
// The stage for `file` given the model as built (before any conversion): `built` when the file
// holds no key the model lacks and no tie of the model with different values under its names (a
// precision such as int8-training unties lm_head from the embedding as it converts the model).
InitStage model_init_stage(const nn::Module& built, const nn::StateDict& file);

// Loads `file` into `model` strictly, tied names completed as above; bitsandbytes' quantized layers
// re-read their quantization state from it. ValueError listing missing, unexpected and mis-shaped
// keys.
void load_model_init(nn::Module& model, const nn::StateDict& file);
// read_model_init and load_model_init.
void load_model_init(nn::Module& model, const std::string& path);

// The fabric.precision a state was saved under, as its keys and dtypes tell it: "nf4", "nf4-dq",
// "fp4", "fp4-dq" (bitsandbytes' 4-bit statistics), "int8" (Linear8bitLt's SCB),
// "transformer-engine" or "transformer-engine-float16" (FP8 layers' _extra_state beside bfloat16 or
// float16 weights); "" when they do not tell (a float file).
std::string precision_saved_under(const nn::StateDict& file);
// The rank of the LoRA adapters `file` holds (0: none).
int64_t lora_rank_saved(const nn::StateDict& file);

}  // namespace fabric
