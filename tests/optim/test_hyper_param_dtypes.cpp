// An optimizer's hyper-parameters read back from a safetensors file whose dtypes another tool (or a
// hand edit) changed: any numeric dtype is taken by value; an int64 a double cannot hold exactly (a
// float64 whose header dtype was edited to I64, its bytes read as a huge integer) and a non-finite
// lr are refused as a damaged file (IOError) naming the optimizer, the key, the stored dtype and
// what was expected; a value of the wrong kind stays a ValueError, now naming the stored dtype too.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <filesystem>

#include "optim/adam.h"
#include "optim/sgd.h"
#include "optim_test_util.h"
#include "tensor/safetensors.h"

namespace fabric::optim {
namespace {
using namespace testing;
namespace fs = std::filesystem;

class HyperParamDtypes : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (fs::temp_directory_path() /
             ("fabric_hyper_dtypes_" + std::to_string(::getpid()) + "_" +
              ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".safetensors"))
                .string();
  }
  void TearDown() override { fs::remove(path_); }

  // Saves `opt`'s state as a checkpoint does (optimizer.safetensors: flatten's names).
  void save(const Optimizer& opt) {
    save_safetensors(path_, opt.state_dict().flatten(), {{"optimizer", opt.name()}});
  }
  // Rewrites the file with tensor `key` replaced by `stored` (another dtype), the rest as they
  // were.
  void rewrite(const std::string& key, const Tensor& stored) {
    SafetensorsFile f = load_safetensors(path_);
    ASSERT_TRUE(f.tensors.count(key)) << key;
    f.tensors[key] = stored.contiguous().clone();
    save_safetensors(path_, {f.tensors.begin(), f.tensors.end()}, f.metadata);
  }
  // load_state_dict from the file, as Fabric.load and fabric-train resume do.
  void load(Optimizer& opt) {
    SafetensorsFile f = load_safetensors(path_);
    opt.load_state_dict(OptimizerState::unflatten({f.tensors.begin(), f.tensors.end()}));
  }

  std::string path_;
};

// A 0-dim int64 holding exactly `v` (scalar_tensor would round it through a double).
Tensor int64_scalar(int64_t v) { return from_vector<int64_t>({v}, {1}).reshape({}); }

TEST_F(HyperParamDtypes, AnyNumericDtypeIsTakenByValue) {
  struct Case {
    const char* key;
    Tensor stored;
    double lr, weight_decay;
    bool amsgrad;
    std::array<double, 2> betas;
  };
  const std::array<double, 2> b0 = {0.9, 0.999};
  const std::vector<Case> cases = {
      {"param_groups.0.lr", scalar_tensor(0.25, {.dtype = DType::float32}), 0.25, 0, false, b0},
      {"param_groups.0.lr", scalar_tensor(0.25, {.dtype = DType::float16}), 0.25, 0, false, b0},
      {"param_groups.0.lr", scalar_tensor(0.25, {.dtype = DType::bfloat16}), 0.25, 0, false, b0},
      {"param_groups.0.lr", int64_scalar(2), 2.0, 0, false, b0},
      {"param_groups.0.lr", scalar_tensor(3, {.dtype = DType::int32}), 3.0, 0, false, b0},
      {"param_groups.0.lr", scalar_tensor(4, {.dtype = DType::int8}), 4.0, 0, false, b0},
      {"param_groups.0.lr", scalar_tensor(5, {.dtype = DType::uint8}), 5.0, 0, false, b0},
      {"param_groups.0.lr", scalar_tensor(true, {.dtype = DType::bool_}), 1.0, 0, false, b0},
      // 2^53: the largest integer below which a double holds them all.
      {"param_groups.0.weight_decay", int64_scalar(int64_t{1} << 53), 0.001, 9007199254740992.0,
       false, b0},
      {"param_groups.0.amsgrad", scalar_tensor(1, {.dtype = DType::uint8}), 0.001, 0, true, b0},
      {"param_groups.0.amsgrad", int64_scalar(1), 0.001, 0, true, b0},
      {"param_groups.0.amsgrad", scalar_tensor(1.0, {.dtype = DType::float32}), 0.001, 0, true, b0},
      {"param_groups.0.betas",
       from_vector<double>({0.5, 0.75}).to(DType::float32),
       0.001,
       0,
       false,
       {0.5, 0.75}},
      {"param_groups.0.betas",
       from_vector<double>({0.5, 0.75}).to(DType::float16),
       0.001,
       0,
       false,
       {0.5, 0.75}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.key) + " stored as " + std::string(dtype_name(c.stored.dtype())));
    Tensor a = param({1.0, 2.0});
    Adam src({a}, {.lr = 0.001});
    save(src);
    rewrite(c.key, c.stored);
    Tensor b = param({1.0, 2.0});
    Adam dst({b}, {.lr = 0.1, .weight_decay = 0.5, .amsgrad = true});
    ASSERT_NO_THROW(load(dst));
    const AdamOptions& o = dst.param_groups()[0].options;
    EXPECT_EQ(o.lr, c.lr);
    EXPECT_EQ(o.weight_decay, c.weight_decay);
    EXPECT_EQ(o.amsgrad, c.amsgrad);
    EXPECT_EQ(o.betas, c.betas);
  }
}

TEST_F(HyperParamDtypes, Float64EditedToInt64IsRefused) {
  Tensor a = param({1.0, 2.0});
  Adam src({a}, {.lr = 0.01, .betas = {0.8, 0.9}});
  set_grad_values(a, {1.0, -1.0});
  src.step();
  save(src);
  const std::string expected =
      ", an integer a float64 cannot hold exactly (expected a number: a float, or an integer "
      "within +-2^53";
  // The header's dtype edited F64 -> I64, the bytes kept: 0.01's bits as an integer.
  for (double lr : {0.01, 1.0}) {  // 1.0's bits, 2^62 - 2^52, are a double too
    rewrite("param_groups.0.lr", int64_scalar(std::bit_cast<int64_t>(lr)));
    Tensor b = param({1.0, 2.0});
    Adam dst({b}, {.lr = 0.5});
    const std::string msg = thrown<IOError>([&] { load(dst); });
    EXPECT_CONTAINS(msg, "Adam: hyper-parameter 'lr' holds " +
                             std::to_string(std::bit_cast<int64_t>(lr)) +
                             " (stored as I64 under 'param_groups.0.lr')" + expected);
    // Nothing changed.
    EXPECT_EQ(dst.param_groups()[0].options.lr, 0.5);
    EXPECT_EQ(dst.state(b), nullptr);
  }
  save(src);
  rewrite("param_groups.0.betas",
          from_vector<int64_t>({std::bit_cast<int64_t>(0.8), std::bit_cast<int64_t>(0.9)}));
  Tensor c = param({1.0, 2.0});
  Adam dst({c});
  EXPECT_CONTAINS(thrown<IOError>([&] { load(dst); }),
                  "Adam: hyper-parameter 'betas' holds " +
                      std::to_string(std::bit_cast<int64_t>(0.8)) +
                      " (stored as I64 under 'param_groups.0.betas')" + expected);
  // One past 2^53 is refused as well: it reads as 2^53.
  save(src);
  rewrite("param_groups.0.weight_decay", int64_scalar((int64_t{1} << 53) + 1));
  EXPECT_CONTAINS(
      thrown<IOError>([&] { load(dst); }),
      "Adam: hyper-parameter 'weight_decay' holds 9007199254740993 (stored as I64 under "
      "'param_groups.0.weight_decay')" +
          expected);
  save(src);
  rewrite("param_groups.0.amsgrad", int64_scalar(std::int64_t{-1} << 60));
  EXPECT_CONTAINS(thrown<IOError>([&] { load(dst); }),
                  "Adam: hyper-parameter 'amsgrad' holds -1152921504606846976 (stored as I64 under "
                  "'param_groups.0.amsgrad')" +
                      expected);
}

TEST_F(HyperParamDtypes, NonFiniteLrAndWrongKindsNameTheStoredDtype) {
  Tensor a = param({1.0});
  SGD src({a}, {.lr = 0.1, .momentum = 0.9});
  save(src);
  // 1e5 overflows float16.
  rewrite("param_groups.0.lr", scalar_tensor(1e5, {.dtype = DType::float32}).to(DType::float16));
  Tensor b = param({1.0});
  SGD dst({b}, {.lr = 0.5});
  EXPECT_CONTAINS(thrown<IOError>([&] { load(dst); }),
                  "SGD: hyper-parameter 'lr' holds inf (stored as F16 under 'param_groups.0.lr') "
                  "(expected a finite "
                  "number)");
  save(src);
  rewrite("param_groups.0.lr", scalar_tensor(std::nan(""), {.dtype = DType::float32}));
  EXPECT_CONTAINS(thrown<IOError>([&] { load(dst); }),
                  "SGD: hyper-parameter 'lr' holds nan (stored as F32 under 'param_groups.0.lr') "
                  "(expected a finite "
                  "number)");
  save(src);
  rewrite("param_groups.0.nesterov", scalar_tensor(2, {.dtype = DType::int32}));
  EXPECT_CONTAINS(
      thrown<ValueError>([&] { load(dst); }),
      "SGD: hyper-parameter 'nesterov' must be a flag, got a number 2 (stored as I32 under "
      "'param_groups.0.nesterov')");
  save(src);
  rewrite("param_groups.0.momentum", from_vector<float>({0.9f, 0.9f}));
  EXPECT_CONTAINS(
      thrown<ValueError>([&] { load(dst); }),
      "SGD: hyper-parameter 'momentum' must be a number, got a tuple (stored as F32 under "
      "'param_groups.0.momentum')");
  EXPECT_EQ(dst.param_groups()[0].options.lr, 0.5);
  // A flag in memory is still no number (only a file's BOOL is read as 0 or 1).
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    dst.set_group_hyper_params(0, {{"lr", true}});
                  }),
                  "SGD: hyper-parameter 'lr' must be a number, got a flag");
}

}  // namespace
}  // namespace fabric::optim
