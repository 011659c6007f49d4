// fabric-train end to end, through the binary: the element-wise losses (mse, l1, smooth_l1, huber,
// bce_with_logits) train an MLP on a `tensors` file of float targets shaped like its output and
// write train_loss and val_loss to metrics.csv; targets that do not fit the loss, and a GPT or
// token data with one of them, exit 2 naming `loss`; the schema and the key's error list them.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"

#include "tests/runtime/fabric_train_contract.h"
#include "tests/runtime/fabric_train_metrics.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;

using namespace train_test;

// The contract's 64 examples of 784 features with float targets (64, 10): standard-normal values
// (regression) and 0/1 labels (multi-label classification).
void save_float_target_data(const fs::path& dir) {
  Generator gen(11);
  save_safetensors(
      (dir / "regression.safetensors").string(),
      {{"inputs", randn({64, 784}, {}, &gen)}, {"targets", randn({64, 10}, {}, &gen)}});
  save_safetensors(
      (dir / "multilabel.safetensors").string(),
      {{"inputs", randn({64, 784}, {}, &gen)},
       {"targets", randint(0, 2, {64, 10}, {.dtype = DType::int64}, &gen).to(DType::float32)}});
}

struct LossCase {
  const char* name;
  std::string set;  // --set overrides of the contract
  const char* data;
};

TEST_F(FabricTrain, EachElementwiseLossTrainsAndValidatesOnFloatTargets) {
  const std::string cfg = write_contract();
  save_float_target_data(dir_);
  const std::vector<LossCase> cases = {
      {"mse", "loss=mse", "regression"},
      {"l1", "loss=l1", "regression"},
      {"smooth_l1", "loss=smooth_l1", "regression"},
      {"huber", "loss=huber", "regression"},
      {"bce_with_logits", "loss=bce_with_logits", "multilabel"},
      // The losses follow the autocast policy; the step widens the bf16 output to float32 first.
      {"huber under bf16-mixed", "loss=huber fabric.precision=bf16-mixed", "regression"},
      {"bce_with_logits under bf16-mixed", "loss=bce_with_logits fabric.precision=bf16-mixed",
       "multilabel"},
  };
  for (const LossCase& c : cases) {
    fs::remove_all(dir_ / "run");
    const Result r = run(
        "fit " + cfg + " --set " + c.set +
        " data.path=" + (dir_ / (std::string(c.data) + ".safetensors")).string() +
        " model.sizes=[784,16,10] trainer.max_steps=2 data.val_fraction=0.25 trainer.val_every=1");
    ASSERT_EQ(r.status, 0) << c.name << "\n" << r.output;
    // Lightning's CSVLogger layout: a row per logged step and a row per validation.
    for (const char* name : {"train_loss", "val_loss"}) {
      std::vector<double> values;
      for (const std::string& v : column(dir_ / "run/metrics.csv", name))
        if (!v.empty()) values.push_back(std::stod(v));
      ASSERT_EQ(values.size(), 2u) << c.name << " " << name << "\n"
                                   << slurp(dir_ / "run/metrics.csv");
      for (double v : values)
        EXPECT_TRUE(std::isfinite(v) && v > 0) << c.name << " " << name << " " << v;
    }
  }
}

TEST_F(FabricTrain, LossesThatDoNotFitTheTargetsOrTheModelExit2NamingLoss) {
  const std::string mlp = write_contract();
  // uint16 token ids for a GPT and for an mlp on tokens.
  std::vector<uint16_t> ids(400);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = uint16_t((i * 5) % 17);
  std::ofstream(dir_ / "tokens.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 2));
  const std::string gpt = (dir_ / "gpt.yaml").string();
  std::ofstream(gpt) << "model: {name: gpt, block_size: 8, n_layer: 1, n_head: 2, n_embd: 16}\n"
                        "data: {kind: tokens, path: "
                     << (dir_ / "tokens.bin").string()
                     << "}\n"
                        "trainer: {max_steps: 2, batch_size: 4, run_dir: "
                     << (dir_ / "run").string() << "}\n";
  struct Case {
    std::string config, sets, message;
  };
  const std::vector<Case> cases = {
      // The contract's int64 class indices (N,) against the MLP's (N, 10) outputs.
      {mlp, "loss=l1",
       "loss: l1 needs one target per output value, got targets (1,) for the model's output (1, "
       "10)"},
      {mlp, "loss=bce_with_logits", "loss: bce_with_logits needs one target per output value"},
      {gpt, "loss=bce_with_logits",
       "loss: bce_with_logits needs float targets shaped like the model's output, but "
       "model.name gpt trains on token ids (class indices): use loss: cross_entropy"},
      {gpt, "loss=mse data.kind=text",
       "loss: mse needs float targets shaped like the model's output, but model.name gpt"},
      {mlp, "loss=huber data.kind=tokens data.path=" + (dir_ / "tokens.bin").string(),
       "loss: huber needs float targets shaped like the model's output, but data.kind tokens "
       "trains on token ids"},
      {mlp, "loss=l2",
       "loss: 'l2' is not one of: cross_entropy, mse, l1, smooth_l1, huber, bce_with_logits"},
  };
  for (const auto& [config, sets, message] : cases) {
    for (const std::string command : {"fit ", "validate "}) {
      const Result r = run(command + config + " --set " + sets);
      EXPECT_EQ(r.status, 2) << command << sets << "\n" << r.output;
      EXPECT_NE(r.output.find(message), std::string::npos) << command << sets << "\n" << r.output;
      EXPECT_FALSE(fs::exists(dir_ / "run"))
          << command << sets << ": the run directory must not be created";
    }
  }
}

TEST_F(FabricTrain, SchemaListsTheLosses) {
  const Result schema = run("schema");
  ASSERT_EQ(schema.status, 0) << schema.output;
  const size_t row = schema.output.find("| `loss` |");
  ASSERT_NE(row, std::string::npos) << schema.output;
  const std::string line = schema.output.substr(row, schema.output.find('\n', row) - row);
  for (const char* loss : {"cross_entropy", "mse", "l1", "smooth_l1", "huber", "bce_with_logits"})
    EXPECT_NE(line.find(loss), std::string::npos) << loss << " in " << line;
}

}  // namespace
}  // namespace fabric
