// A sharded checkpoint whose meta.json is damaged: each fault is an IOError naming meta.json and
// what was expected. Before: a bad world_size read "expected format "fabric-sharded" ..., found
// format "fabric-sharded"", a damaged shape surfaced from reshape naming no file, and an alias of
// a missing tensor reached the writer as "save_safetensors: tensor 'x' is undefined".
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "runtime/sharded_checkpoint_reader.h"
#include "tensor/factory.h"
#include "tensor/safetensors.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace sharded_detail;

class ShardedReaderDamage : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fabric_sharded_damage_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    // One rank, a module entry of one tensor 'w' (2 elements) and its tied alias 'v'.
    save_safetensors((dir_ / rank_file_name(0, 1)).string(),
                     {{piece_key("model", "w", 0), ones({2})}});
    meta_ = json::parse(R"({"world_size": 1, "entries": {"model": {"kind": "module",
        "tensors": {"w": {"dtype": "float32", "shape": [2], "pieces": [{"rank": 0, "offset": 0, "numel": 2}]}},
        "aliases": {"v": "w"}}}})");
    meta_["format"] = kShardedFormat;
    meta_["version"] = kShardedVersion;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write_meta() const { std::ofstream(dir_ / "meta.json") << meta_.dump(); }
  std::string module_state_error() const {
    write_meta();
    return thrown<IOError>([&] {
      ShardedReader r(dir_.string());
      r.module_state("model");
    });
  }
  fs::path dir_;
  json meta_;
};

TEST_F(ShardedReaderDamage, TheUndamagedCheckpointReads) {
  write_meta();
  ShardedReader r(dir_.string());
  const nn::StateDict sd = r.module_state("model");
  EXPECT_EQ(sd.size(), 2u);
}

TEST_F(ShardedReaderDamage, AWrongWorldSizeIsNamed) {
  for (const json& w : {json(0), json(-2), json("2"), json(int64_t(1) << 40)}) {
    meta_["world_size"] = w;
    EXPECT_CONTAINS(module_state_error(),
                    "/meta.json: world_size is " + w.dump() +
                        "; expected the number of ranks that wrote it, an integer from 1");
  }
}

TEST_F(ShardedReaderDamage, ADamagedShapeNamesMetaJsonAndTheTensor) {
  meta_["entries"]["model"]["tensors"]["w"]["shape"] = json::array({-2});
  EXPECT_CONTAINS(
      module_state_error(),
      "/meta.json: 'model' tensor 'w' has the shape (-2,); expected non-negative sizes");
  meta_["entries"]["model"]["tensors"]["w"]["shape"] =
      json::array({int64_t(1) << 40, int64_t(1) << 40});
  EXPECT_CONTAINS(module_state_error(), "whose product fits int64");
}

// A shape edited smaller than its pieces (to no elements at all) read back as an empty tensor:
// consolidate wrote it and the weights were gone.
TEST_F(ShardedReaderDamage, APieceOutsideItsTensorIsNamed) {
  for (const json& shape : {json::array({2, 0}), json::array({1})}) {
    meta_["entries"]["model"]["tensors"]["w"]["shape"] = shape;
    EXPECT_CONTAINS(module_state_error(), "/meta.json: 'model' tensor 'w' of shape (" +
                                              std::string(shape.size() == 2 ? "2, 0" : "1,") + ")");
    EXPECT_CONTAINS(module_state_error(),
                    "lists a piece of elements [0, 2) (expected pieces inside the tensor");
  }
  meta_["entries"]["model"]["tensors"]["w"]["shape"] = json::array({2});
  meta_["entries"]["model"]["tensors"]["w"]["pieces"][0]["offset"] = -1;
  EXPECT_CONTAINS(module_state_error(), "lists a piece of elements [-1, 1)");
}

TEST_F(ShardedReaderDamage, AnAliasOfAMissingTensorIsNamed) {
  meta_["entries"]["model"]["aliases"] = json::parse(R"({"v": "nope"})");
  EXPECT_CONTAINS(
      module_state_error(),
      "/meta.json: 'model' lists 'v' as an alias of 'nope', which is not one of its tensors");
}

}  // namespace
}  // namespace fabric
