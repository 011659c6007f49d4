// Every state_dict name of a module's parameters, by the tensor they name: tied parameters
// (GPT's lm_head.weight and transformer.wte.weight) share one entry. FSDP's state conversion and
// the sharded checkpoint's aliases both ask it.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nn/module.h"

namespace fabric::nn {

std::map<const TensorImpl*, std::vector<std::string>> parameter_names_by_tensor(const Module& root);

}  // namespace fabric::nn
