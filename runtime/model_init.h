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

// Reads `path` (safetensors) and loads it into `model` strictly, tied names completed as above.
// IOError for an unreadable file; ValueError listing missing, unexpected and mis-shaped keys.
void load_model_init(nn::Module& model, const std::string& path);

}  // namespace fabric
