// export --dequantize: a quantized, FP8 or LoRA model's weights as the plain float state_dict of
// the same architecture (what a 32-true run's model.init and torch's load_state_dict take).
#pragma once
#include <string>
#include <vector>

#include "nn/module.h"

namespace fabric {

// Two names of one tied tensor of the plain model whose values differ in the converted one (a
// bitsandbytes precision quantizes the GPT's lm_head apart from the embedding it is tied to).
struct UntiedPair {
  std::string first, second;
};

// The state_dict of `plain` (the model of the same config built under 32-true, without LoRA
// adapters: its keys, shapes and ties are the result's), with the values `converted` (the model
// as fit built and trained it under its precision) computes with, in float32:
//  * a bitsandbytes 4-bit layer's weight: dequantize_4bit of its packed codes and quant state
//    (the float16 values bitsandbytes' dequantize_4bit gives, widened);
//  * an LLM.int8 layer's: CB · SCB / 127 (int8_vectorwise_dequant); int8-training's fp16 weight;
//  * an FP8 layer's: its stored high-precision weight (FP8 is the GEMMs' rounding, not storage);
//  * a LoRALinear's: its base's weight plus scaling · (lora_B · lora_A), scaling = alpha / rank,
//    computed as peft's merge_and_unload does (float32);
//  * everything else (biases, norms, embeddings, buffers): the stored tensor.
// Floating tensors are then cast to `dtype`; integer buffers keep theirs. Every name of a tie is
// filled (as the plain export writes them); a tie whose values differ is listed in `untied`.
// ValueError naming the key when `converted` holds no value of the right shape for one.
nn::StateDict dequantized_state_dict(const nn::Module& converted, const nn::Module& plain,
                                     DType dtype, std::vector<UntiedPair>* untied = nullptr);

// The dtypes --dtype takes: float32, bfloat16, float16. ConfigError naming `option` otherwise.
DType export_dtype_named(const std::string& name, const std::string& option);

// `fabric-train export CKPT OUT --dequantize [--dtype D]`: the checkpoint's model built as fit
// built it (as sample does), loaded, and its dequantized_state_dict written to out_file
// (safetensors, metadata format=pt; OUT's folders made as needed). A tie the precision untied is
// written under both names with their own values, with a warning on stderr: a float model that
// ties them (model.init of a 32-true run refuses the file) cannot compute what the quantized one
// did.
void export_dequantized_checkpoint(const std::string& checkpoint_dir, const std::string& out_file,
                                   DType dtype = DType::float32);

}  // namespace fabric
