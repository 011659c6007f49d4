// fabric-train's model.init with a GPT, whose lm_head.weight and transformer.wte.weight are one
// tied tensor: PyTorch cannot save_file a tied pair, and safetensors.torch.save_model keeps one of
// the names (lm_head.weight, the sorted-first). Either name fills the tie, as load_model does.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "nn/gpt.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tests/runtime/fabric_train_test_util.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

constexpr const char* kWte = "transformer.wte.weight";
constexpr const char* kHead = "lm_head.weight";

class FabricTrainInitTied : public RunDirTest {
 protected:
  void SetUp() override {
    start("fabric_train_init_tied");
    if (IsSkipped()) return;
    std::vector<uint16_t> ids(600);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint16_t((i * 7) % 23);  // vocabulary 23
    std::ofstream(dir_ / "train.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 2));
    cfg_ = (dir_ / "gpt.yaml").string();
    std::ofstream(cfg_)
        << "model: {name: gpt, vocab_size: 23, block_size: 8, n_layer: 1, n_head: 2, n_embd: 16}\n"
           "data: {kind: tokens, path: "
        << (dir_ / "train.bin").string()
        << "}\n"
           "optimizer: {name: adamw, lr: 0.01}\n"
           "trainer: {max_steps: 0, batch_size: 4}\n";
  }
};

// A GPT's state (every name, tied ones as separate copies) from its own seed, so that it differs
// from the one fabric-train initialises.
std::vector<std::pair<std::string, Tensor>> gpt_state() {
  manual_seed(123);
  auto gpt = nn::make<nn::GPT>(
      {.vocab_size = 23, .block_size = 8, .n_layer = 1, .n_head = 2, .n_embd = 16});
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, t] : gpt->state_dict()) out.emplace_back(name, t.clone());
  return out;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  return max(abs(sub(a.to(DType::float32), b.to(DType::float32)))).item<float>();
}

TEST_F(FabricTrainInitTied, EitherNameOfATiedPairFillsTheTie) {
  struct Case {
    std::string name;
    std::vector<std::string> drop;  // names left out of the file
    bool head_differs = false;      // lm_head.weight holds other values than transformer.wte.weight
    int status;
    std::vector<std::string> messages;  // in the output when status != 0
  };
  const std::vector<Case> cases = {
      {"both_names_equal", {}, false, 0, {}},
      {"lm_head_only_as_save_model_writes", {kWte}, false, 0, {}},
      {"wte_only", {kHead}, false, 0, {}},
      {"both_names_differing", {}, true, 2, {"model.init: ", kWte, kHead, "one tied tensor"}},
      {"neither_name", {kWte, kHead}, false, 2, {"Missing key(s) in state_dict", kWte, kHead}},
  };
  const auto state = gpt_state();
  for (const Case& c : cases) {
    std::vector<std::pair<std::string, Tensor>> file;
    Tensor wte;
    for (const auto& [name, t] : state) {
      if (name == kWte) wte = t;
      if (std::find(c.drop.begin(), c.drop.end(), name) != c.drop.end()) continue;
      file.emplace_back(name, name == kHead && c.head_differs ? add(t, 1.0) : t);
    }
    const fs::path init = dir_ / (c.name + ".safetensors");
    save_safetensors(init.string(), file);
    const Result r = fit("model.init=" + init.string(), c.name);
    ASSERT_EQ(r.status, c.status) << c.name << "\n" << r.output;
    for (const std::string& m : c.messages)
      EXPECT_NE(r.output.find(m), std::string::npos) << c.name << ": " << m << "\n" << r.output;
    if (c.status != 0) {
      EXPECT_FALSE(fs::exists(dir_ / c.name)) << c.name << ": a refused init file writes no run";
      continue;
    }
    // No step ran: the checkpoint holds the init file's weights, under both names.
    SafetensorsFile m =
        load_safetensors((dir_ / c.name / "checkpoints/last/model.safetensors").string());
    for (const char* name : {kWte, kHead})
      EXPECT_EQ(max_abs_diff(m.tensors.at(name), wte), 0.0f) << c.name << ": " << name;
    for (const auto& [name, t] : state)
      EXPECT_EQ(max_abs_diff(m.tensors.at(name), t), 0.0f) << c.name << ": " << name;
  }
}

}  // namespace
}  // namespace fabric
