// fabric-train end to end, through the binary: models on each kind of data (tokens files and
// tensors for the GPT, images for the MLP, text for sampling), a PyTorch fixture reproduced through
// the `tensors` dataset with `init` weights, QLoRA and FP8, and every bundled config.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"

#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

// IDX images + labels (MNIST's format): n images of 28x28 and labels 0..9, as
// `dir`/train-images-idx3-ubyte and train-labels-idx1-ubyte.
void write_idx_images(const fs::path& dir, int n) {
  auto be32 = [](std::ofstream& f, uint32_t v) {
    const unsigned char b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    f.write(reinterpret_cast<const char*>(b), 4);
  };
  std::ofstream img(dir / "train-images-idx3-ubyte", std::ios::binary), lab(dir / "train-labels-idx1-ubyte", std::ios::binary);
  be32(img, 0x803), be32(img, uint32_t(n)), be32(img, 28), be32(img, 28);
  be32(lab, 0x801), be32(lab, uint32_t(n));
  for (int i = 0; i < n; ++i) {
    for (int p = 0; p < 28 * 28; ++p) img.put(char((i * 7 + p * 13) % 256));
    lab.put(char(i % 10));
  }
}

// A GPT on a tokens file without model.vocab_size takes the largest id + 1, as on tensors data.
TEST_F(FabricTrain, GptOnTokensInfersTheVocabularySize) {
  std::vector<uint16_t> ids(600);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint16_t((i * 7) % 23);  // ids 0..22
  std::ofstream(dir_ / "train.bin", std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 2));
  const std::string cfg = (dir_ / "gpt.yaml").string();
  std::ofstream(cfg) << "model: {name: gpt, block_size: 8, n_layer: 1, n_head: 2, n_embd: 16}\n"
                        "data: {kind: tokens, path: " << (dir_ / "train.bin").string() << "}\n"
                        "optimizer: {name: adamw, lr: 0.01}\n"
                        "trainer: {max_steps: 2, batch_size: 4, run_dir: " << (dir_ / "run").string() << "}\n";
  const Result r = run("fit " + cfg);
  ASSERT_EQ(r.status, 0) << r.output;
  SafetensorsFile m = load_safetensors((dir_ / "run/checkpoints/last/model.safetensors").string());
  EXPECT_EQ(m.tensors.at("transformer.wte.weight").size(0), 23);
  // config.yaml keeps the size the model was built with, so a resume on data holding a larger id
  // is refused at the key (it was taken for a checkpoint that does not fit the config).
  const std::vector<std::string> config = lines((dir_ / "run/config.yaml").string());
  EXPECT_NE(std::find(config.begin(), config.end(), "  vocab_size: 23"), config.end());
  ids[5] = 40;
  std::ofstream(dir_ / "more.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 2));
  const Result more = run("resume " + (dir_ / "run").string() + " --set data.path=" +
                          (dir_ / "more.bin").string() + " trainer.max_steps=3");
  EXPECT_EQ(more.status, 2) << more.output;
  EXPECT_NE(more.output.find("model.vocab_size: 23 is too small for data.path"), std::string::npos)
      << more.output;
}

// Images feed the MLP as the configs do: flattened without data.flatten (which still works).
TEST_F(FabricTrain, MlpOnImagesFlattensThem) {
  write_idx_images(dir_, 16);
  const std::string images = " data.kind=images data.path=" + (dir_ / "train-images-idx3-ubyte").string();
  for (const std::string flatten : {"", " data.flatten=true"}) {
    const Result r = run("fit " + write_contract() + " --set trainer.max_steps=2 trainer.batch_size=8" + images + flatten);
    EXPECT_EQ(r.status, 0) << flatten << "\n" << r.output;
    EXPECT_EQ(lines((dir_ / "run/metrics.csv").string()).size(), 3u) << flatten;
  }
  // Labels 0..9 against 8 classes: a config error found before anything is written, not when
  // the batch holding label 9 comes.
  fs::remove_all(dir_ / "run");
  const Result few =
      run("fit " + write_contract() +
          " --set trainer.max_steps=1 trainer.batch_size=8 model.sizes=[784,16,8]" + images);
  EXPECT_EQ(few.status, 2) << few.output;
  EXPECT_NE(few.output.find("model.sizes: the last size, 8 classes, is too small for data.path"),
            std::string::npos)
      << few.output;
  EXPECT_NE(few.output.find("which holds target 8 (example 8;"), std::string::npos) << few.output;
  EXPECT_FALSE(fs::exists(dir_ / "run"));
}

// model.batch_norm: the CNN's BatchNorm2d running statistics are trained, saved with the model
// and carried through a resume.
TEST_F(FabricTrain, CnnWithBatchNormSavesAndResumesItsRunningStatistics) {
  write_idx_images(dir_, 16);
  const std::string cfg = (dir_ / "cnn.yaml").string();
  std::ofstream(cfg) << "model: {name: cnn, batch_norm: true, channels1: 4, channels2: 8}\n"
                        "data: {kind: images, path: " << (dir_ / "train-images-idx3-ubyte").string() << "}\n"
                        "optimizer: {name: sgd, lr: 0.01}\n"
                        "trainer: {max_steps: 3, batch_size: 8, checkpoint_every: 1, run_dir: " << (dir_ / "run").string() << "}\n";
  Result r = run("fit " + cfg);
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string last = (dir_ / "run/checkpoints/last/model.safetensors").string();
  SafetensorsFile m = load_safetensors(last);
  EXPECT_EQ(m.tensors.at("features.1.num_batches_tracked").item<int64_t>(), 3);
  EXPECT_EQ(m.tensors.at("features.5.running_var").sizes(), (Shape{8}));
  r = run("resume " + (dir_ / "run").string() + " --set trainer.max_steps=5");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(load_safetensors(last).tensors.at("features.1.num_batches_tracked").item<int64_t>(), 5);
}

// The CNN's classifier trains when a precision or LoRA replaces it: a LoRA adapter on it (the run
// failed at its first backward), and an nf4 classifier (its bias stayed at its initial values: the
// forward ran the replaced float layer).
TEST_F(FabricTrain, CnnTrainsAReplacedClassifier) {
  write_idx_images(dir_, 16);
  const std::string cfg = (dir_ / "cnn.yaml").string();
  std::ofstream(cfg) << "model: {name: cnn, channels1: 4, channels2: 8}\n"
                        "data: {kind: images, path: "
                     << (dir_ / "train-images-idx3-ubyte").string()
                     << "}\n"
                        "optimizer: {name: sgd, lr: 0.1}\n"
                        "trainer: {max_steps: 2, batch_size: 8}\n";
  const auto bias_of = [&](const std::string& run_dir, const std::string& key) {
    return load_safetensors((dir_ / run_dir / "checkpoints/last/model.safetensors").string())
        .tensors.at(key)
        .to(DType::float32)
        .to_vector<float>();
  };
  const Result lora = run("fit " + cfg + " --set lora.rank=4 lora.target=[classifier] " +
                          "trainer.run_dir=" + (dir_ / "lora").string());
  ASSERT_EQ(lora.status, 0) << lora.output;
  for (const char* precision : {"nf4", "int8"}) {
    const std::string sets = std::string(" --set fabric.precision=") + precision + " trainer.run_dir=";
    ASSERT_EQ(run("fit " + cfg + sets + (dir_ / "init").string() + " trainer.max_steps=0").status,
              0);
    const Result trained = run("fit " + cfg + sets + (dir_ / "trained").string());
    ASSERT_EQ(trained.status, 0) << trained.output;
    EXPECT_NE(bias_of("trained", "classifier.bias"), bias_of("init", "classifier.bias"))
        << precision;
    fs::remove_all(dir_ / "init");
    fs::remove_all(dir_ / "trained");
  }
}

TEST_F(FabricTrain, ReproducesPyTorchFixtureIn64True) {
  const std::string data = std::string(FABRIC_TEST_DATA_DIR);
  const std::string cfg = (dir_ / "fixture.yaml").string();
  std::ofstream(cfg) << "fabric: {precision: 64-true}\n"
                        "model: {name: mlp, sizes: [8, 16, 4], init: " << data << "/cli_mlp_init.safetensors}\n"
                        "data: {kind: tensors, path: " << data << "/cli_mlp_data.safetensors, shuffle: false}\n"
                        "optimizer: {name: sgd, lr: 0.1}\n"
                        "trainer: {max_steps: 4, batch_size: 16, run_dir: " << (dir_ / "run").string() << "}\n";
  const Result r = run("fit " + cfg);
  ASSERT_EQ(r.status, 0) << r.output;
  SafetensorsFile ours = load_safetensors((dir_ / "run/checkpoints/last/model.safetensors").string());
  SafetensorsFile torch = load_safetensors(data + "/cli_mlp_final.safetensors");
  for (const auto& [k, t] : ours.tensors) {
    ASSERT_TRUE(torch.tensors.count(k)) << k;
    EXPECT_EQ(t.dtype(), DType::float64) << k;
    const double err = amax(abs(sub(t, torch.tensors.at(k)))).item<double>();
    const double scale = amax(abs(torch.tensors.at(k))).item<double>();
    EXPECT_LE(err, 1e-10 * scale) << k;
  }
  const auto csv = lines((dir_ / "run/metrics.csv").string());
  const auto losses = torch.tensors.at("losses").to_vector<double>();
  ASSERT_EQ(csv.size(), 5u);
  for (size_t i = 0; i < 4; ++i) {
    const double got = train_loss(csv, i + 1);
    EXPECT_NEAR(got, losses[i], 1e-12) << "step " << i + 1;
  }
}

// Every bundled config (tools/configs) trains a few steps, on small generated data of its kind.
TEST_F(FabricTrain, EveryBundledConfigTrainsAFewSteps) {
#ifdef FABRIC_CONFIG_DIR
  // A text, and IDX images + labels (28x28, 10 classes).
  std::string text;
  for (int i = 0; i < 200; ++i) text += "It is a truth universally acknowledged, that a single man. ";
  std::ofstream(dir_ / "text.txt") << text;
  write_idx_images(dir_, 64);
  int configs = 0;
  for (const auto& e : fs::directory_iterator(FABRIC_CONFIG_DIR)) {
    if (e.path().extension() != ".yaml") continue;
    ++configs;
    const std::string name = e.path().stem().string();
    std::ifstream in(e.path());
    const std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string data = "data.path=" + (dir_ / "data.safetensors").string();
    if (yaml.find("kind: text") != std::string::npos) data = "data.path=" + (dir_ / "text.txt").string();
    if (yaml.find("kind: images") != std::string::npos) data = "data.path=" + (dir_ / "train-images-idx3-ubyte").string();
    const std::string sets = " --set " + data + " trainer.max_steps=2 trainer.max_epochs=-1 trainer.run_dir=" +
                             (dir_ / ("run-" + name)).string() +
                             (yaml.find("sample_tokens") != std::string::npos ? " trainer.sample_tokens=5" : "");
    const Result r = run("fit " + e.path().string() + sets);
    EXPECT_EQ(r.status, 0) << name << "\n" << r.output;
    EXPECT_TRUE(fs::exists(dir_ / ("run-" + name) / "checkpoints/last/model.safetensors")) << name;
  }
  EXPECT_GE(configs, 4);
#else
  GTEST_SKIP() << "FABRIC_CONFIG_DIR not set";
#endif
}

// The tensors dataset feeds the GPT: integer (N, T) inputs and targets; vocab_size 0 takes the
// largest token id + 1.
TEST_F(FabricTrain, GptOnTokenTensors) {
  Generator gen(3);
  save_safetensors((dir_ / "tok.safetensors").string(),
                   {{"inputs", randint(0, 20, {32, 8}, {.dtype = DType::int32}, &gen)},
                    {"targets", randint(0, 20, {32, 8}, {.dtype = DType::int64}, &gen)}});
  const std::string cfg = (dir_ / "gpt.yaml").string();
  std::ofstream(cfg) << "model: {name: gpt, block_size: 8, n_layer: 1, n_head: 2, n_embd: 16}\n"
                        "data: {kind: tensors, path: " << (dir_ / "tok.safetensors").string() << ", drop_last: true}\n"
                        "optimizer: {name: adamw, lr: 0.01}\n"
                        "trainer: {max_epochs: 2, batch_size: 5, run_dir: " << (dir_ / "run").string() << "}\n";
  const Result r = run("fit " + cfg);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(lines((dir_ / "run/metrics.csv").string()).size(), 1u + 2 * 6) << "32 examples, batches of 5, drop_last";
  SafetensorsFile m = load_safetensors((dir_ / "run/checkpoints/last/model.safetensors").string());
  EXPECT_EQ(m.tensors.at("transformer.wte.weight").size(0), 20);
}

// QLoRA (nf4-dq base + LoRA adapters) and FP8 (transformer-engine) through the config.
TEST_F(FabricTrain, QLoRAAndFp8Precisions) {
  std::string text;
  for (int i = 0; i < 60; ++i) text += "the cat sat on the mat. the dog sat on the log. ";
  std::ofstream(dir_ / "t.txt") << text;
  const std::string cfg = (dir_ / "q.yaml").string();
  std::ofstream(cfg) << "model: {name: gpt, block_size: 16, n_layer: 2, n_head: 2, n_embd: 32}\n"
                        "data: {kind: text, path: " << (dir_ / "t.txt").string() << "}\n"
                        "optimizer: {name: adamw, lr: 0.01}\n"
                        "trainer: {max_steps: 30, batch_size: 8, log_every: 10, run_dir: " << (dir_ / "q").string() << "}\n";
  const Result q = run("fit " + cfg + " --set fabric.precision=nf4-dq lora.rank=4 lora.alpha=8");
  ASSERT_EQ(q.status, 0) << q.output;
  SafetensorsFile m = load_safetensors((dir_ / "q/checkpoints/last/model.safetensors").string());
  EXPECT_TRUE(m.tensors.count("transformer.h.0.attn.c_attn.lora_A.weight")) << "LoRA adapters are saved";
  const auto csv = lines((dir_ / "q/metrics.csv").string());
  ASSERT_EQ(csv.size(), 4u);
  const double first = train_loss(csv, 1);
  const double last = train_loss(csv, 3);
  EXPECT_LT(last, first) << "QLoRA lowers the loss";
  const Result bad = run("fit " + cfg + " --set fabric.precision=nf4 lora.rank=4 lora.target=[nothing]");
  EXPECT_EQ(bad.status, 2) << bad.output;
  const Result f = run("fit " + cfg + " --set fabric.precision=transformer-engine model.n_embd=64 trainer.max_steps=3 "
                       "trainer.run_dir=" + (dir_ / "fp8").string());
  ASSERT_EQ(f.status, 0) << f.output;
  SafetensorsFile m8 = load_safetensors((dir_ / "fp8/checkpoints/last/model.safetensors").string());
  EXPECT_TRUE(m8.tensors.count("transformer.h.0.attn.c_attn._extra_state.scale_fwd")) << "FP8 meta state is saved";
}

TEST_F(FabricTrain, TextGptSamples) {
  std::ofstream(dir_ / "tiny.txt") << std::string(50, 'a') + "hello world, hello fabric. " + std::string(20, 'b') +
                                          "the quick brown fox jumps over the lazy dog. ";
  const std::string cfg = (dir_ / "gpt.yaml").string();
  std::ofstream(cfg) << "model: {name: gpt, block_size: 16, n_layer: 1, n_head: 2, n_embd: 16}\n"
                        "data: {kind: text, path: " << (dir_ / "tiny.txt").string() << "}\n"
                        "optimizer: {name: adamw, lr: 0.01}\n"
                        "trainer: {max_steps: 3, batch_size: 4, run_dir: " << (dir_ / "run").string()
                     << ", sample_tokens: 20}\n";
  const Result r = run("fit " + cfg);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("--- sample ---"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "run/vocab.json"));
  const Result s = run("sample " + (dir_ / "run/checkpoints/last").string() + " --prompt hello --tokens 10");
  ASSERT_EQ(s.status, 0) << s.output;
  EXPECT_EQ(s.output.rfind("hello", 0), 0u) << s.output;
  EXPECT_GE(s.output.size(), 16u);
  // Without vocab.json a resume takes the checkpoint's vocabulary, not one built anew from the
  // text now at data.path (as many characters, other ones: every id would mean another one).
  fs::remove(dir_ / "run/vocab.json");
  std::string other;
  for (const char c : std::string(50, 'a') + "hello world, hello fabric. " + std::string(20, 'b') +
                          "the quick brown fox jumps over the lazy dog. ")
    other += c == 'a' ? 'A' : c;
  std::ofstream(dir_ / "other.txt") << other;
  const Result resumed = run("resume " + (dir_ / "run").string() + " --set data.path=" +
                             (dir_ / "other.txt").string() + " trainer.max_steps=4");
  EXPECT_EQ(resumed.status, 2) << resumed.output;
  EXPECT_NE(resumed.output.find("character 'A' (U+0041) at byte 0 is not in the given vocabulary"),
            std::string::npos)
      << resumed.output;
}

}  // namespace
}  // namespace fabric
