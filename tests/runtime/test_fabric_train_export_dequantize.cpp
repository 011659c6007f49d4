// `fabric-train export CKPT OUT --dequantize`: a quantized (bitsandbytes), FP8 (transformer-engine)
// or LoRA run's weights as the plain float state_dict of its architecture. Each file loads through
// model.init into a 32-true run, and the float model computes what the run's own model computes
// with its own precision, up to that precision's compute rounding (tolerances at each case).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "precision/bitsandbytes_precision.h"
#include "precision/linear_4bit.h"
#include "precision/quant_4bit.h"
#include "precision/registry.h"
#include "runtime/checkpoint_model.h"
#include "runtime/datasets.h"
#include "runtime/model_init.h"
#include "runtime/train_builders.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

// max |a - b| over max(1, max |b|): the error relative to the outputs' scale.
double scaled_error(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to(DType::float32).contiguous().to_vector<float>();
  const std::vector<float> y = b.to(DType::float32).contiguous().to_vector<float>();
  EXPECT_EQ(x.size(), y.size());
  double diff = 0, scale = 1;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
    diff = std::max(diff, std::abs(double(x[i]) - double(y[i])));
    scale = std::max(scale, std::abs(double(y[i])));
  }
  return diff / scale;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.sizes() != b.sizes()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), size_t(ca.nbytes())) == 0;
}

// `model` on `x` as a run under `plugin` evaluates it: in eval mode, inside the plugin's forward
// context (autocast, the compute dtype, an FP8 region), its input and output converted.
Tensor evaluate(nn::Module& model, precision::Precision& plugin, const Tensor& x) {
  model.eval();
  NoGradGuard no_grad;
  precision::ContextGuard guard = plugin.forward_context();
  return plugin.convert_output(model(plugin.convert_input(x))).to(DType::float32);
}

struct Case {
  std::string model;  // "mlp" or "gpt": the config
  std::string sets;   // the run's precision (and LoRA)
  // Bound on scaled_error between the run's model under its own precision and the 32-true model
  // of the export; see the cases.
  double own_precision_tolerance;
};

class FabricTrainExportDequantize : public RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_export_dequantize");
    if (IsSkipped()) return;
    gpt_cfg_ = write_tiny_gpt_config("unused");
    Generator gen(3);
    save_classification_data(dir_ / "data.safetensors", 64, 8, 4, gen);
    mlp_cfg_ = (dir_ / "mlp.yaml").string();
    std::ofstream(mlp_cfg_) << "model: {name: mlp, sizes: [8, 32, 4]}\n"
                               "data: {kind: tensors, path: "
                            << (dir_ / "data.safetensors").string()
                            << "}\n"
                               "optimizer: {name: adamw, lr: 0.01}\n"
                               "trainer: {max_steps: 3, batch_size: 16, seed: 1}\n";
  }

  const std::string& config(const Case& c) { return c.model == "gpt" ? gpt_cfg_ : mlp_cfg_; }
  Result fit_case(const Case& c, const std::string& sets, const std::string& name) {
    return run("fit " + config(c) + " --set " + sets +
               " trainer.run_dir=" + (dir_ / name).string());
  }
  // An input batch of the case's model: 16 examples of 8 features, or 2 windows of 8 characters of
  // the training text (whose activations the FP8 layers' scales were set on).
  Tensor input(const Case& c, const CheckpointModel& m) {
    Generator gen(7);
    if (c.model == "mlp") return randn({16, 8}, {}, &gen);
    return from_vector(data::CharVocab::from_json(m.vocab_json).encode("the cat sat on t"), {2, 8});
  }

  // Trains the case, exports it with --dequantize and checks the file: the keys and shapes of the
  // float model of the config, float32, loadable by model.init into a 32-true run (its checkpoint
  // then holds the file's values), and the float model's outputs against the run's own.
  void check(const Case& c, const std::string& name) {
    SCOPED_TRACE(c.sets);
    const Result f = fit_case(c, c.sets, name);
    ASSERT_EQ(f.status, 0) << f.output;
    const fs::path last = dir_ / name / "checkpoints/last";
    const fs::path out = dir_ / (name + "-float.safetensors");
    const Result e = run("export " + last.string() + " " + out.string() + " --dequantize");
    ASSERT_EQ(e.status, 0) << e.output;
    EXPECT_EQ(e.output.find("warning"), std::string::npos) << e.output;

    CheckpointModel run_model = read_checkpoint_config(last.string());
    load_checkpoint_model(run_model, last.string());
    const std::shared_ptr<nn::Module> plain = build_model(run_model.cfg, run_model.vocab_size);
    const nn::StateDict want = plain->state_dict();
    const SafetensorsFile file = load_safetensors(out.string());
    ASSERT_EQ(file.tensors.size(), want.size());
    for (const auto& [key, t] : want) {
      auto it = file.tensors.find(key);
      ASSERT_NE(it, file.tensors.end()) << key;
      EXPECT_EQ(it->second.dtype(), DType::float32) << key;
      EXPECT_EQ(it->second.sizes(), t.sizes()) << key;
    }

    // model.init of a 32-true run (without adapters) takes the file and trains from it.
    const Result init = fit_case(
        c, "fabric.precision=32-true lora.rank=0 trainer.max_steps=0 model.init=" + out.string(),
        name + "-32-true");
    ASSERT_EQ(init.status, 0) << init.output;
    const SafetensorsFile loaded = load_safetensors(
        (dir_ / (name + "-32-true") / "checkpoints/last/model.safetensors").string());
    for (const auto& [key, t] : file.tensors)
      EXPECT_TRUE(same_bytes(loaded.tensors.at(key), t)) << key;

    load_model_init(*plain, out.string());
    const auto f32 = precision::make_precision("32-true", DeviceType::cpu);
    const Tensor x = input(c, run_model);
    const Tensor want_out = evaluate(*plain, *f32, x);
    const double own = scaled_error(evaluate(*run_model.model, *run_model.plugin, x), want_out);
    EXPECT_LE(own, c.own_precision_tolerance)
        << "the run's model under " << run_model.cfg.fabric.precision;
    // A bitsandbytes 4-bit model computing in float32 sees exactly the weights the export holds
    // (the float16 values dequantize_4bit gives): only float32 summation order differs.
    const std::string p = run_model.cfg.fabric.precision;
    if (p.rfind("nf4", 0) == 0 || p.rfind("fp4", 0) == 0) {
      precision::BitsandbytesPrecision in_float32(p, DType::float32);
      CheckpointModel again = read_checkpoint_config(last.string());
      load_checkpoint_model(again, last.string());  // for its config and vocabulary
      again.model = build_model_as_fit_does(again.cfg, again.vocab_size, in_float32);
      precision::load_bnb_state_dict(*again.model,
                                     read_model_init((last / "model.safetensors").string()));
      EXPECT_LE(scaled_error(evaluate(*again.model, in_float32, x), want_out), 1e-5)
          << "the run's model computing in float32";
    }
  }

  std::string gpt_cfg_, mlp_cfg_;
};

// 4-bit layers compute in bfloat16: the input, the dequantized weight (float16 values) and each
// layer's output are rounded to bfloat16's 8 significant bits (2^-9 relative each), a few roundings
// through two layers: the runs show up to 3.5e-3 of the outputs' scale, bounded at 1e-2. The
// float32-compute comparison inside check() is the exact one (0 difference seen, 1e-5 allowed).
TEST_F(FabricTrainExportDequantize, FourBitRunsDequantizeAsTheirLayersCompute) {
  for (const char* mode : {"nf4", "nf4-dq", "fp4"})
    check({"mlp", std::string("fabric.precision=") + mode, 1e-2}, mode);
}

// LLM.int8 computes in float16 with the input row-quantized to int8 (steps of 1/127 of each row's
// absmax, outlier columns above 6 kept in float16): 6.2e-3 of the outputs' scale seen, bounded at
// 2.5e-2. The exact check is on the weights: CB · SCB / 127 recomputed here in double from the
// checkpoint's int8 codes and row scales, to float32's rounding.
TEST_F(FabricTrainExportDequantize, Int8RunsDequantizeTheirRowScales) {
  check({"mlp", "fabric.precision=int8", 2.5e-2}, "int8");
  const SafetensorsFile stored =
      load_safetensors((dir_ / "int8/checkpoints/last/model.safetensors").string());
  const SafetensorsFile out = load_safetensors((dir_ / "int8-float.safetensors").string());
  for (const std::string layer : {"layers.0", "layers.1"}) {
    const Tensor& cb = stored.tensors.at(layer + ".weight");
    ASSERT_EQ(cb.dtype(), DType::int8) << layer;
    const std::vector<double> codes = cb.to(DType::float64).contiguous().to_vector<double>();
    const std::vector<double> scb =
        stored.tensors.at(layer + ".SCB").to(DType::float64).to_vector<double>();
    const std::vector<float> w = out.tensors.at(layer + ".weight").contiguous().to_vector<float>();
    const int64_t in = cb.size(1);
    for (size_t i = 0; i < codes.size(); ++i) {
      const double ref = codes[i] * scb[i / size_t(in)] / 127.0;
      EXPECT_NEAR(w[i], ref, 3e-7 * std::abs(ref) + 1e-30) << layer << " element " << i;
    }
  }
}

// int8-training trains a float16 weight, row-quantized inside each GEMM only: the export is that
// weight widened, exactly; the run computes as int8's does.
TEST_F(FabricTrainExportDequantize, Int8TrainingExportsItsFloat16Weights) {
  check({"mlp", "fabric.precision=int8-training", 2.5e-2}, "int8-training");
  const SafetensorsFile stored =
      load_safetensors((dir_ / "int8-training/checkpoints/last/model.safetensors").string());
  const SafetensorsFile out = load_safetensors((dir_ / "int8-training-float.safetensors").string());
  for (const auto& [key, t] : out.tensors) {
    ASSERT_TRUE(stored.tensors.count(key)) << key;
    EXPECT_TRUE(same_bytes(stored.tensors.at(key).to(DType::float32), t)) << key;
  }
  EXPECT_EQ(stored.tensors.at("layers.0.weight").dtype(), DType::float16);
}

// Transformer Engine's layers keep bfloat16 (float16) weights and run their GEMMs in FP8 (E4M3: 4
// significant bits per operand, scaled per tensor by the amax history): 3.6e-3 (2.6e-3) of the
// outputs' scale seen, bounded at 2e-2. The export is those weights widened, checked exactly; the
// GPT's tie survives the FP8 conversion. The float16 run uses SGD: AdamW's float16 state moves its
// weights by far more than lr in these 2 steps, and the FP8 scales of the last step's amaxes then
// saturate the next forward's inputs (delayed scaling), which says nothing about the export.
TEST_F(FabricTrainExportDequantize, TransformerEngineRunsExportTheirHighPrecisionWeights) {
  for (const std::string precision : {"transformer-engine", "transformer-engine-float16"}) {
    const std::string optimizer = precision == "transformer-engine" ? "" : " optimizer.name=sgd";
    check({"gpt", "fabric.precision=" + precision + optimizer, 2e-2}, precision);
    const SafetensorsFile stored =
        load_safetensors((dir_ / precision / "checkpoints/last/model.safetensors").string());
    const SafetensorsFile out =
        load_safetensors((dir_ / (precision + "-float.safetensors")).string());
    for (const auto& [key, t] : out.tensors) {
      auto it = stored.tensors.find(key);
      ASSERT_NE(it, stored.tensors.end()) << key;
      EXPECT_TRUE(same_bytes(it->second.to(DType::float32), t)) << precision << " " << key;
    }
    EXPECT_TRUE(
        same_bytes(out.tensors.at("lm_head.weight"), out.tensors.at("transformer.wte.weight")));
  }
}

// LoRA adapters merge as peft's merge_and_unload: W + (alpha / rank) · B A. The run computes
// base(x) + (alpha / rank) · B(A(x)) in float32, the merged model (W + ΔW) x: the same sum in
// another order (9e-8 seen), 1e-5. Under nf4-dq the base is dequantized first; its run computes in
// bfloat16 (1e-2, as the 4-bit runs), and check()'s float32-compute comparison is the tight one.
TEST_F(FabricTrainExportDequantize, LoRAAdaptersAreMerged) {
  check({"gpt", "fabric.precision=32-true lora.rank=4 lora.alpha=12", 1e-5}, "lora");
  check({"mlp", "fabric.precision=nf4-dq lora.rank=2 lora.alpha=6 lora.target=['0','1']", 1e-2},
        "qlora");
}

// The GPT's lm_head is one tensor with its embedding in a float model; a bitsandbytes precision
// quantizes lm_head apart from it. Both are written as the run computed with them, with a warning
// saying model.init of a 32-true run refuses the file.
TEST_F(FabricTrainExportDequantize, AnUntiedGptSaysSo) {
  const Case c{"gpt", "fabric.precision=nf4", 0};
  ASSERT_EQ(fit_case(c, c.sets, "gpt-nf4").status, 0);
  const fs::path last = dir_ / "gpt-nf4/checkpoints/last";
  const fs::path out = dir_ / "gpt-nf4.safetensors";
  const Result e = run("export " + last.string() + " " + out.string() + " --dequantize");
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(
      e.output.find(
          "fabric-train: warning: export --dequantize: 'transformer.wte.weight' and "
          "'lm_head.weight' are one tied tensor in a float gpt, but under fabric.precision nf4 "
          "they hold different values"),
      std::string::npos)
      << e.output;
  CheckpointModel run_model = read_checkpoint_config(last.string());
  load_checkpoint_model(run_model, last.string());
  const SafetensorsFile file = load_safetensors(out.string());
  const auto& head =
      dynamic_cast<const precision::Linear4bit&>(*run_model.model->get_submodule("lm_head"));
  EXPECT_TRUE(
      same_bytes(file.tensors.at("lm_head.weight"),
                 precision::dequantize_4bit(head.weight, head.quant_state(), DType::float32)));
  EXPECT_TRUE(
      same_bytes(file.tensors.at("transformer.wte.weight"),
                 run_model.model->get_parameter("transformer.wte.weight").to(DType::float32)));
  const Result init = fit_case(c, "fabric.precision=32-true model.init=" + out.string(), "gpt-f32");
  EXPECT_EQ(init.status, 2) << init.output;
}

// --dtype casts the floating tensors; a float run's export is its state_dict, cast.
TEST_F(FabricTrainExportDequantize, DtypeCastsAndAFloatRunIsItsStateDict) {
  const Case c{"gpt", "fabric.precision=bf16-true", 0};
  ASSERT_EQ(fit_case(c, c.sets, "bf16").status, 0);
  const fs::path last = dir_ / "bf16/checkpoints/last";
  const SafetensorsFile stored = load_safetensors((last / "model.safetensors").string());
  for (const char* dtype : {"float32", "bfloat16", "float16"}) {
    const fs::path out = dir_ / (std::string(dtype) + ".safetensors");
    const Result e =
        run("export " + last.string() + " " + out.string() + " --dequantize --dtype " + dtype);
    ASSERT_EQ(e.status, 0) << e.output;
    const SafetensorsFile file = load_safetensors(out.string());
    ASSERT_EQ(file.tensors.size(), stored.tensors.size());
    for (const auto& [key, t] : stored.tensors) {
      const Tensor& got = file.tensors.at(key);
      EXPECT_TRUE(same_bytes(got, t.to(got.dtype()))) << dtype << " " << key;
      EXPECT_EQ(dtype_name(got.dtype()), std::string(dtype)) << key;
    }
  }
}

// --dtype needs --dequantize, and one of the three dtypes: a bad command line (exit 2) naming the
// option, with nothing written. A float32 run's --dequantize file is its plain export.
TEST_F(FabricTrainExportDequantize, BadDtypeOptionsAreCommandLineErrors) {
  const Case c{"mlp", "fabric.precision=32-true", 0};
  ASSERT_EQ(fit_case(c, c.sets, "f32").status, 0);
  const std::string ckpt = (dir_ / "f32/checkpoints/last").string(),
                    out = (dir_ / "x.safetensors").string();
  const Result alone = run("export " + ckpt + " " + out + " --dtype float16");
  EXPECT_EQ(alone.status, 2) << alone.output;
  EXPECT_NE(alone.output.find("--dtype requires --dequantize"), std::string::npos) << alone.output;
  // With a good command line, a float32 run's file is its plain export.
  const std::string plain = (dir_ / "plain.safetensors").string();
  ASSERT_EQ(run("export " + ckpt + " " + plain).status, 0);
  ASSERT_EQ(run("export " + ckpt + " " + out + " --dequantize").status, 0);
  const SafetensorsFile a = load_safetensors(plain), b = load_safetensors(out);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [key, t] : a.tensors) EXPECT_TRUE(same_bytes(b.tensors.at(key), t)) << key;
  fs::remove(out);
  const Result unknown = run("export " + ckpt + " " + out + " --dequantize --dtype float64");
  EXPECT_EQ(unknown.status, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("--dtype: float64 not in {float32,bfloat16,float16}"),
            std::string::npos)
      << unknown.output;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace fabric
