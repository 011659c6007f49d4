// The C API's models (runtime/c_api.h): a finished checkpoint's model loaded as `fabric-train
// sample` loads it, its forward, text generation as `sample`, and `fabric-train export`.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/gpt.h"
#include "runtime/c_api_detail.h"
#include "runtime/checkpoint_model.h"
#include "runtime/dequantized_export.h"
#include "runtime/run_directory.h"
#include "runtime/sample_stream.h"
#include "runtime/trainer.h"

struct fabric_model {
  fabric::CheckpointModel loaded;  // config, vocabulary, model (eval mode), precision plugin
  std::string checkpoint;          // as the caller named it, for messages
};

namespace fabric::c_api {
namespace {

Registry<fabric_model>& models() {
  static auto* registry = new Registry<fabric_model>();  // never destroyed: handles outlive main
  return *registry;
}

fabric_model& model_of(fabric_model* handle, const char* function) {
  require_argument(handle, function, "model");
  if (!models().contains(handle))
    bad_argument(function,
                 "model is no live fabric_model (freed already, or not made by fabric_model_load)");
  return *handle;
}

// The GPT trained on text that generate needs, with `sample`'s messages for anything else.
void require_text_gpt(const fabric_model& m, const char* function) {
  const TrainConfig& cfg = m.loaded.cfg;
  auto* gpt = dynamic_cast<nn::GPT*>(m.loaded.model.get());
  if (cfg.model.name != "gpt" || gpt == nullptr)
    bad_argument(function, m.checkpoint + " holds a " + cfg.model.name +
                               " model; generating text needs a GPT trained on text data "
                               "(data.kind: text)");
  if (m.loaded.vocab_json.empty())
    bad_argument(function, m.checkpoint + " holds a GPT trained on " + cfg.data.kind +
                               " data, whose token ids have no character vocabulary to read a "
                               "prompt with or write the output in; generating text needs a GPT "
                               "trained on text data (data.kind: text)");
}

}  // namespace
}  // namespace fabric::c_api

using namespace fabric;
using namespace fabric::c_api;

extern "C" {

fabric_status fabric_model_load(const char* checkpoint, fabric_model** out) {
  return guarded([&] {
    const char* fn = "fabric_model_load";
    require_existing_path(checkpoint, fn, "checkpoint", kACheckpoint);
    require_argument(out, fn, "out");
    auto handle = std::make_unique<fabric_model>();
    handle->checkpoint = checkpoint;
    {
      const FullCheckpoint full(checkpoint_named_by(checkpoint, fn));
      handle->loaded = read_checkpoint_config(full.dir());
      load_checkpoint_model(handle->loaded, full.dir());
    }  // a sharded checkpoint's consolidated copy is no longer needed: the model holds it
    handle->loaded.model->eval();
    *out = models().add(handle.release());
  });
}

fabric_status fabric_model_forward(fabric_model* model, const fabric_tensor* input,
                                   fabric_tensor** output) {
  return guarded([&] {
    const char* fn = "fabric_model_forward";
    fabric_model& m = model_of(model, fn);
    const Tensor& x = tensor_of(input, fn, "input");
    require_argument(output, fn, "output");
    // Checked before the plugin converts a floating input to its compute dtype, so the message
    // names the dtype the caller passed.
    if (m.loaded.cfg.model.name == "gpt" && is_floating(x.dtype()))
      bad_argument(fn, std::string("input: a GPT takes token indices (integers), got ") +
                           std::string(dtype_name(x.dtype())));
    // As FabricModule's forward in training: the input converted by the plugin, the forward in
    // its context (autocast, the compute dtype of quantized layers), the output converted back.
    precision::Precision& plugin = *m.loaded.plugin;
    NoGradGuard no_grad;
    Tensor y;
    {
      const Tensor converted = plugin.convert_input(x);
      precision::ContextGuard context = plugin.forward_context();
      y = (*m.loaded.model)(converted);
    }
    *output = new_tensor_handle(plugin.convert_output(y));
  });
}

fabric_status fabric_model_generate(fabric_model* model, const char* prompt, int64_t tokens,
                                    double temperature, int64_t top_k, uint64_t seed,
                                    fabric_text_callback callback, void* user_data, char** text) {
  return guarded([&] {
    const char* fn = "fabric_model_generate";
    fabric_model& m = model_of(model, fn);
    require_argument(prompt, fn, "prompt");
    if (tokens < 0)
      bad_argument(fn, "tokens: expected an integer >= 0, got " + std::to_string(tokens));
    if (!std::isfinite(temperature) || temperature < 0)
      bad_argument(
          fn, "temperature: expected a finite number >= 0, got " + std::to_string(temperature));
    if (top_k < 0)  // as fabric-train sample --top-k
      bad_argument(
          fn, "top_k: expected an integer >= 0 (0: every token), got " + std::to_string(top_k));
    if (callback == nullptr && text == nullptr)
      bad_argument(fn, "callback and text are both NULL (expected somewhere to put the text)");
    require_text_gpt(m, fn);
    std::string whole;
    // What `fabric-train sample` does after loading (stream_sample_checkpoint).
    generate_text(m.loaded, prompt, "fabric_model_generate prompt", tokens, temperature, top_k,
                  seed, [&](const std::string& piece) {
                    if (callback != nullptr) callback(piece.data(), piece.size(), user_data);
                    if (text != nullptr) whole += piece;
                  });
    if (text != nullptr) *text = malloc_copy(whole);
  });
}

fabric_status fabric_model_free(fabric_model* model) {
  return guarded([&] {
    if (model == nullptr) return;
    if (!models().remove(model))
      bad_argument(
          "fabric_model_free",
          "model is no live fabric_model (freed already, or not made by fabric_model_load)");
    delete model;
  });
}

fabric_status fabric_export(const char* checkpoint, const char* out_file, int dequantize,
                            fabric_dtype dtype) {
  return guarded([&] {
    const FileSizeLimitAsError file_size_limit;
    const char* fn = "fabric_export";
    require_existing_path(checkpoint, fn, "checkpoint", kACheckpoint);
    require_argument(out_file, fn, "out_file");
    const DType dt = dtype_from_c(dtype, fn);
    if (!dequantize) {
      if (dt != DType::float32)
        bad_argument(fn, "dtype " + std::string(dtype_name(dt)) +
                             " needs dequantize (the stored state_dict keeps its dtypes; "
                             "fabric-train export's --dtype needs --dequantize)");
      export_checkpoint(checkpoint, out_file);
      return;
    }
    export_dequantized_checkpoint(
        checkpoint, out_file,
        export_dtype_named(std::string(dtype_name(dt)), "fabric_export: dtype"));
  });
}

}  // extern "C"
