// README.md's ```cpp examples, each run here with small inputs and the promises of its comments
// checked, and a test that every ```cpp block of README.md appears in this file line for line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <numbers>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// The headers README's blocks include (the line check below skips #include lines; the installed
// package puts cmake/fabric.h at <fabric/fabric.h>, which tests/install compiles against), and
// what the preambles use.
#include "cmake/fabric.h"
#include "distributed/sync_batch_norm.h"
#include "nn/lora.h"
#include "nn/nn.h"
#include "runtime/concat_dataset.h"
#include "runtime/dataset_split.h"
#include "runtime/measure_flops.h"
#include "runtime/samplers.h"
#include "runtime/spike_detection.h"
#include "runtime/throughput.h"
#include "tensor/flop_counter.h"
#include "tensor/ops.h"
#include "tests/distributed/dist_test_util.h"
#include "tests/tensor/torch_cpu_rng_check.h"

namespace fabric {
namespace {

namespace fs = std::filesystem;

// ---- the blocks of README.md -------------------------------------------------------------------

std::string trimmed(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return "";
  const auto last = s.find_last_not_of(" \t\r");
  return std::string(s.substr(first, last - first + 1));
}

struct Line {
  int number;        // 1-based, in its file
  std::string text;  // trimmed
};

// The non-blank lines of a file, trimmed.
std::vector<Line> code_lines(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::vector<Line> lines;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (std::string t = trimmed(line); !t.empty()) lines.push_back({n, t});
  }
  return lines;
}

struct ReadmeBlock {
  int fence_line;           // the ```cpp line
  std::vector<Line> lines;  // non-blank, trimmed, without #include lines
};

std::vector<ReadmeBlock> cpp_blocks(const std::string& readme) {
  std::ifstream in(readme);
  EXPECT_TRUE(in.good()) << "cannot read " << readme;
  std::vector<ReadmeBlock> blocks;
  bool inside = false;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string t = trimmed(line);
    if (!inside && t == "```cpp") {
      blocks.push_back({n, {}});
      inside = true;
    } else if (inside && t.starts_with("```")) {
      inside = false;
    } else if (inside && !t.empty() && !t.starts_with("#include")) {
      blocks.back().lines.push_back({n, t});
    }
  }
  EXPECT_FALSE(inside) << readme << ": the ```cpp block of line " << blocks.back().fence_line
                       << " is never closed";
  return blocks;
}

// Where `block` runs longest inside `source` as consecutive lines: the index of its first line
// not matched there (block.size() when the whole block is found).
size_t longest_run(const std::vector<Line>& block, const std::vector<Line>& source) {
  size_t best = 0;
  for (size_t start = 0; start < source.size() && best < block.size(); ++start) {
    size_t k = 0;
    while (k < block.size() && start + k < source.size() &&
           source[start + k].text == block[k].text) {
      ++k;
    }
    best = std::max(best, k);
  }
  return best;
}

// Every README example is kept here verbatim (blank lines and indentation aside; #include lines
// are at the top of this file), so that an edit of README that is not made here, or the reverse,
// fails. FABRIC_TEST_README, when set, names another README to check (to see this test fail).
TEST(ReadmeExamples, EveryCppBlockOfTheReadmeIsInThisFile) {
  const char* other = std::getenv("FABRIC_TEST_README");
  const std::string readme = other ? other : FABRIC_README;
  const std::vector<ReadmeBlock> blocks = cpp_blocks(readme);
  ASSERT_FALSE(blocks.empty()) << "no ```cpp block found in " << readme;
  const std::vector<Line> source = code_lines(FABRIC_README_EXAMPLES_SOURCE);
  for (const ReadmeBlock& block : blocks) {
    ASSERT_FALSE(block.lines.empty()) << readme << ":" << block.fence_line << ": an empty block";
    const size_t found = longest_run(block.lines, source);
    if (found < block.lines.size()) {
      ADD_FAILURE() << readme << ":" << block.fence_line << ": this ```cpp block is not in "
                    << FABRIC_README_EXAMPLES_SOURCE << " as one run of lines; its first line "
                    << "not found (README line " << block.lines[found].number
                    << "): " << block.lines[found].text;
    }
  }
}

// ---- helpers for the examples ----------------------------------------------------------------

// Runs the scope in a new temporary directory (the examples write relative paths), removed after.
class InTempDir {
 public:
  explicit InTempDir(const std::string& name)
      : old_(fs::current_path()),
        dir_(fs::path(::testing::TempDir()) / (name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::current_path(dir_);
  }
  ~InTempDir() {
    fs::current_path(old_);
    fs::remove_all(dir_);
  }
  const fs::path& path() const { return dir_; }

 private:
  fs::path old_, dir_;
};

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  const std::vector<double> x = values(a), y = values(b);
  double d = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) d = std::max(d, std::abs(x[i] - y[i]));
  return d;
}

// ---- the examples, in README's order -----------------------------------------------------------

TEST(ReadmeExamples, CustomAutogradFunction) {
  struct MulConstant : Function<MulConstant> {
    static Tensor forward(AutogradContext* ctx, const Tensor& x, double c) {
      ctx->saved_data["c"] = c;
      return mul(x, c);
    }
    static std::vector<Tensor> backward(AutogradContext* ctx, std::vector<Tensor> g) {
      const double c = std::any_cast<double>(ctx->saved_data["c"]);
      return {mul(g[0], c), Tensor()};  // no gradient for the number c
    }
  };
  Tensor x = randn({3}, {.requires_grad = true});
  Tensor y = MulConstant::apply(x, 2.5);  // grad_fn_name(y) == "MulConstantBackward"
  sum(y).backward();                      // x.grad() == 2.5 everywhere
  EXPECT_EQ(grad_fn_name(y), "MulConstantBackward");
  EXPECT_EQ(x.grad().to_vector<float>(), std::vector<float>(3, 2.5f));
}

TEST(ReadmeExamples, MoreElementwiseMath) {
  // clang-format off
Tensor x = from_vector<double>({0.0, 0.5, 2.0, -1.5}, {4}).set_requires_grad(true);
Tensor y = from_vector<double>({0.0, 3.0, 0.25, 4.0}, {4});
Tensor loss = sum(add(xlogy(x, y), hypot(x, y)));  // xlogy is 0 where x == 0
loss.backward();                                   // x.grad(): torch's formulas
Tensor r = lgamma(x.detach());                     // log|Γ(x)|, +inf at 0
Tensor p = polygamma(1, from_vector<double>({1.0}, {1}));  // ≈ π²/6 (torch's 1.6449340676)
Tensor g = gcd(from_vector<int64_t>({12, -18}, {2}), from_vector<int64_t>({8, 24}, {2}));  // 4, 6
Tensor q = floor_divide(from_vector<int64_t>({7, -7}, {2}), from_vector<int64_t>({2, 2}, {2}));  // 3, -4
  // clang-format on
  const std::vector<double> xv = {0.0, 0.5, 2.0, -1.5}, yv = {0.0, 3.0, 0.25, 4.0};
  const std::vector<double> grad = x.grad().to_vector<double>();
  for (size_t i = 1; i < 4; ++i) {  // d/dx [x log y + hypot(x, y)] = log y + x / hypot
    EXPECT_NEAR(grad[i], std::log(yv[i]) + xv[i] / std::hypot(xv[i], yv[i]), 1e-12) << i;
  }
  EXPECT_TRUE(std::isinf(r.to_vector<double>()[0]));
  EXPECT_NEAR(p.item<double>(), std::numbers::pi * std::numbers::pi / 6, 1e-9);
  EXPECT_EQ(g.to_vector<int64_t>(), (std::vector<int64_t>{4, 6}));
  EXPECT_EQ(q.to_vector<int64_t>(), (std::vector<int64_t>{3, -4}));
}

TEST(ReadmeExamples, ShapeUtilities) {
  // clang-format off
Tensor x = arange(24.0).reshape({2, 3, 4});
Tensor last_first = movedim(x, -1, 0);                          // (4, 2, 3), a view
std::vector<Tensor> parts = tensor_split(x, 3, /*dim=*/2);      // widths 2, 1, 1
Tensor rows = vstack({arange(3.0), ones({2, 3})});              // (3, 3)
std::vector<Tensor> grid = meshgrid({arange(2.0), arange(3.0)}, "xy");  // two (3, 2) grids
Tensor pairs = combinations(arange(4), 2);                      // (6, 2) int64
Tensor blocks = block_diag({ones({2, 2}), full({1}, 5.0)});     // (3, 3)
Tensor d = diff(x, 1, -1);                                      // (2, 3, 3)
Tensor area = trapezoid(x, 0.5);                                // (2, 3)
Tensor c = cov(randn({3, 10}));                                 // (3, 3)
Tensor h = histc(randn({1000}), 10, -2.0, 2.0);                 // (10) float32 counts
Tensor counts = bincount(from_vector(std::vector<int64_t>{0, 2, 2, 5}));  // {1, 0, 2, 0, 0, 1}
bool near = allclose(x, mul(x, 1.000001));                     // true
Tensor windows = as_strided(arange(6.0), {4, 3}, {1, 1});       // sliding windows of 3
  // clang-format on
  EXPECT_EQ(last_first.sizes(), (Shape{4, 2, 3}));
  EXPECT_EQ(last_first.storage().get(), x.storage().get());
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].size(2), 2);
  EXPECT_EQ(parts[2].size(2), 1);
  EXPECT_EQ(rows.sizes(), (Shape{3, 3}));
  ASSERT_EQ(grid.size(), 2u);
  EXPECT_EQ(grid[0].sizes(), (Shape{3, 2}));
  EXPECT_EQ(pairs.sizes(), (Shape{6, 2}));
  EXPECT_EQ(pairs.dtype(), DType::int64);
  EXPECT_EQ(blocks.sizes(), (Shape{3, 3}));
  EXPECT_EQ(blocks.to_vector<float>()[8], 5.f);
  EXPECT_EQ(d.sizes(), (Shape{2, 3, 3}));
  EXPECT_EQ(amax(abs(d - 1.0)).item<float>(), 0.f);
  EXPECT_EQ(area.sizes(), (Shape{2, 3}));
  EXPECT_EQ(area.to_vector<float>()[0], 0.5f * (0.5f * 0 + 1 + 2 + 0.5f * 3));
  EXPECT_EQ(c.sizes(), (Shape{3, 3}));
  EXPECT_EQ(h.sizes(), (Shape{10}));
  EXPECT_LE(sum(h).item<float>(), 1000.f);
  EXPECT_EQ(counts.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 2, 0, 0, 1}));
  EXPECT_TRUE(near);
  EXPECT_EQ(windows.to_vector<float>(),
            (std::vector<float>{0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4, 5}));
}

TEST(ReadmeExamples, LinearAlgebra) {
  // clang-format off
Tensor x = randn({4, 4}, {.dtype = DType::float64});
Tensor a = add(matmul(x, x.t()), mul(eye(4, std::nullopt, {.dtype = DType::float64}), 4.0));
a.set_requires_grad(true);  // a symmetric positive-definite matrix
Tensor l = linalg::cholesky(a);                  // a = l l^T
Tensor b = randn({4, 2}, {.dtype = DType::float64});
Tensor sol = linalg::solve(a, b);                 // a sol = b
auto [sign, logdet] = linalg::slogdet(a);         // sign = 1
auto [evals, evecs] = linalg::eigh(a);            // ascending, all > 0
sum(sol).backward();                              // a.grad() = -a^-T 1 sol^T
  // clang-format on
  NoGradGuard no_grad;
  EXPECT_LT(amax(abs(matmul(l, l.t()) - a)).item<double>(), 1e-12);
  EXPECT_LT(amax(abs(matmul(a, sol) - b)).item<double>(), 1e-12);
  EXPECT_EQ(sign.item<double>(), 1.0);
  const std::vector<double> ev = evals.to_vector<double>();
  EXPECT_GT(ev[0], 0.0);
  EXPECT_TRUE(std::is_sorted(ev.begin(), ev.end()));
  const Tensor expected =
      neg(matmul(matmul(linalg::inv(a).t(), ones({4, 2}, {.dtype = DType::float64})), sol.t()));
  EXPECT_LT(amax(abs(a.grad() - expected)).item<double>(), 1e-12);
}

TEST(ReadmeExamples, LazyLayers) {
  // clang-format off
auto net = nn::make<nn::Sequential>({nn::make<nn::LazyConv2d>({.out_channels = 16, .kernel_size = 3}),
                                     nn::make<nn::LazyBatchNorm2d>(), nn::make<nn::ReLU>()});
optim::SGD opt(net->parameters(), {.lr = 0.1});  // before the dry run, as torch allows
(*net)(randn({8, 3, 32, 32}));                    // Conv2d(3, 16, ...), BatchNorm2d(16, ...)
  // clang-format on
  EXPECT_EQ(net->parameters()[0].sizes(), (Shape{16, 3, 3, 3}));
  EXPECT_NE(net->str().find("Conv2d(3, 16"), std::string::npos) << net->str();
  EXPECT_NE(net->str().find("BatchNorm2d(16"), std::string::npos) << net->str();
}

TEST(ReadmeExamples, TorchRandomNumbers) {
  const GeneratorState saved = default_generator().state();
  // clang-format off
fabric::default_generator().set_algorithm(fabric::RngAlgorithm::torch_cpu);
fabric::manual_seed(0);  // as torch.manual_seed(0)
fabric::nn::Linear layer({.in_features = 5, .out_features = 3});  // torch.nn.Linear(5, 3)'s weights
fabric::Tensor x = fabric::randn({2, 5});                          // torch.randn(2, 5)
  // clang-format on
  default_generator().set_state(saved);
  testing::expect_torch_values(
      "readme_linear_then_randn",
      cat({layer.weight.detach().reshape({-1}), layer.bias.detach(), x.reshape({-1})}));
}

TEST(ReadmeExamples, ModuleBackwardHooks) {
  // clang-format off
auto fc = nn::make<nn::Linear>({.in_features = 4, .out_features = 2});
int64_t h = fc->register_full_backward_hook(
    [](nn::Module&, const std::vector<Tensor>& grad_input, const std::vector<Tensor>& grad_output) {
      return std::vector<Tensor>{grad_input[0] * 0.5};  // scale what flows to fc's input
    });
Tensor x = randn({3, 4}, {.requires_grad = true});
sum((*fc)(x)).backward();  // x.grad() is half of what it would be; fc's weight grad is unchanged
fc->remove_backward_hook(h);
  // clang-format on
  const Tensor half = x.grad().clone(), weight_grad = fc->weight.grad().clone();
  zero_grad(x);
  zero_grad(fc->weight);
  sum((*fc)(x)).backward();
  EXPECT_EQ(amax(abs(x.grad() * 0.5 - half)).item<float>(), 0.0f);
  EXPECT_EQ(amax(abs(fc->weight.grad() - weight_grad)).item<float>(), 0.0f);
}

TEST(ReadmeExamples, TensorEngineQuickTour) {
  InTempDir dir("readme_tensor_engine");
  // clang-format off
using namespace fabric;

Tensor x = randn({4, 8});                                     // float32 on the CPU
Tensor w = randn({16, 8}, {.dtype = DType::float64, .requires_grad = true});
Tensor y = linear(x.to(DType::float64), w);                   // (4, 16)
Tensor loss = mean(gelu(y, "tanh"));
loss.backward();                                              // w.grad() is (16, 8)
Tensor h = x.to(DType::bfloat16);                             // round-to-nearest-even, subnormals kept
save_safetensors("t.safetensors", {{"x", x}, {"w", w}});     // loads in PyTorch / NumPy
  // clang-format on
  EXPECT_EQ(x.dtype(), DType::float32);
  EXPECT_EQ(x.device(), Device::cpu());
  EXPECT_EQ(y.sizes(), (Shape{4, 16}));
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().sizes(), (Shape{16, 8}));
  EXPECT_EQ(w.grad().dtype(), DType::float64);
  EXPECT_EQ(h.dtype(), DType::bfloat16);
  EXPECT_EQ(h.sizes(), (Shape{4, 8}));
  const SafetensorsFile file = load_safetensors("t.safetensors");
  ASSERT_EQ(file.tensors.size(), 2u);
  ASSERT_TRUE(file.tensors.count("x") && file.tensors.count("w"));
  EXPECT_EQ(file.tensors.at("x").dtype(), DType::float32);
  EXPECT_EQ(file.tensors.at("w").dtype(), DType::float64);
  EXPECT_EQ(values(file.tensors.at("x")), values(x));
  EXPECT_EQ(values(file.tensors.at("w")), values(w));
}

TEST(ReadmeExamples, ElementwiseMathWithTorchsEdges) {
  const Tensor y = from_vector<double>({0.0, -0.0, 1.0, -1.0});
  const Tensor x = from_vector<double>({-1.0, -1.0, 0.0, 0.0});
  Tensor logits = from_vector<double>({NAN, INFINITY, -INFINITY, 3.0});
  logits.set_requires_grad(true);
  const Tensor u = from_vector<double>({0.5, 0.8413447460685429});  // Φ(0), Φ(1)
  Tensor probs = from_vector<double>({0.5, 0.0, 4.0, 1.0, 2.0, 3.0}, {2, 3});
  probs.set_requires_grad(true);
  const Tensor loss = from_vector<double>({0.25, 1.5});
  // clang-format off
Tensor angle = atan2(y, x);                                  // [-pi, pi]: -pi for y = -0, signed zeros as torch
Tensor wrapped = remainder(angle, 2 * M_PI);                 // [0, 2pi): the divisor's sign
Tensor clean = nan_to_num(logits, 0.0, 1e4, -1e4);           // gradient 0 where replaced
Tensor z = erfinv(u * 2.0 - 1.0) * std::sqrt(2.0);           // u in (0, 1) -> standard normal
Tensor p = prod(probs, /*dim=*/1);                           // exact gradient with zeros
bool ok = all(isfinite(loss)).item<bool>();
  // clang-format on
  EXPECT_EQ(values(angle), (std::vector<double>{M_PI, -M_PI, M_PI / 2, -M_PI / 2}));
  EXPECT_EQ(values(wrapped), (std::vector<double>{M_PI, M_PI, M_PI / 2, 1.5 * M_PI}));
  EXPECT_EQ(values(clean), (std::vector<double>{0.0, 1e4, -1e4, 3.0}));
  sum(clean).backward();
  EXPECT_EQ(values(logits.grad()), (std::vector<double>{0.0, 0.0, 0.0, 1.0}));
  EXPECT_NEAR(values(z)[0], 0.0, 1e-12);
  EXPECT_NEAR(values(z)[1], 1.0, 1e-9);
  EXPECT_EQ(values(p), (std::vector<double>{0.0, 6.0}));
  sum(p).backward();  // d/dx_i of a product is the product of the others, zeros included
  EXPECT_EQ(values(probs.grad()), (std::vector<double>{0.0, 2.0, 0.0, 6.0, 3.0, 2.0}));
  EXPECT_TRUE(ok);
  EXPECT_FALSE(all(isfinite(from_vector<double>({1.0, NAN}))).item<bool>());
}

TEST(ReadmeExamples, AdaptivePoolingAndMaskedFill) {
  const Tensor conv_out = randn({2, 8, 5, 7});  // (N, C, H, W)
  const int64_t L = 4;
  const Tensor q_kt = randn({2, L, L});  // (N, L, L) scores
  // clang-format off
Tensor feats = adaptive_avg_pool2d(conv_out, {1, 1}).flatten(1);          // ResNet head
Tensor scores = masked_fill(q_kt, logical_not(causal_mask(L, L)), -INFINITY);
Tensor attn = softmax(scores, -1);
  // clang-format on
  EXPECT_EQ(feats.sizes(), (Shape{2, 8}));
  EXPECT_LT(max_abs_diff(feats, mean(conv_out, {2, 3})), 1e-5);
  EXPECT_EQ(attn.sizes(), (Shape{2, L, L}));
  const std::vector<double> a = values(attn);
  for (int64_t n = 0; n < 2; ++n) {
    for (int64_t i = 0; i < L; ++i) {
      double row = 0;
      for (int64_t j = 0; j < L; ++j) {
        const double v = a[size_t((n * L + i) * L + j)];
        if (j > i) EXPECT_EQ(v, 0.0) << "a query attends to a later key";
        row += v;
      }
      EXPECT_NEAR(row, 1.0, 1e-6);
    }
  }
}

TEST(ReadmeExamples, AdvancedIndexingAndScatterReduce) {
  // clang-format off
Tensor x = randn({2, 3, 4, 5});
Tensor i = from_vector<int64_t>({2, 0}), j = from_vector<int64_t>({1, 4});
Tensor a = index(x, {Tensor(), i, Tensor(), j});  // x[:, i, :, j] -> (2, 2, 4): index dims first
Tensor b = index(x, {Tensor(), i, from_vector<int64_t>({3, 3})});  // x[:, i, [3, 3]] -> (2, 2, 5)
Tensor y = index_put(x, {gt(x, 0.0)}, full({}, 0.0));  // x[x > 0] = 0
Tensor labels = from_vector<int64_t>({0, 2, 2}), scores = from_vector<float>({0.5f, 1.5f, -1.0f});
Tensor best = scatter_reduce(zeros({3}), 0, labels, scores, "amax", /*include_self=*/false);
// best = {0.5, 0, 1.5}: class 1 got no score and keeps its 0
  // clang-format on
  EXPECT_EQ(a.sizes(), (Shape{2, 2, 4}));
  // a[k, n, c] = x[n, i[k], c, j[k]]: the index dims first.
  EXPECT_EQ(values(a.select(0, 0).select(0, 1)), values(x[1][2].select(1, 1)));
  EXPECT_EQ(values(a.select(0, 1).select(0, 0)), values(x[0][0].select(1, 4)));
  EXPECT_EQ(b.sizes(), (Shape{2, 2, 5}));
  EXPECT_EQ(values(b[1][0]), values(x[1][2][3]));
  EXPECT_EQ(values(b[0][1]), values(x[0][0][3]));
  const std::vector<double> before = values(x), after = values(y);
  for (size_t k = 0; k < before.size(); ++k) EXPECT_EQ(after[k], before[k] > 0 ? 0.0 : before[k]);
  EXPECT_EQ(values(best), (std::vector<double>{0.5, 0.0, 1.5}));
}

TEST(ReadmeExamples, ResizingAndPadding) {
  const Tensor feat = randn({1, 3, 8, 8}), x = randn({1, 3, 6, 6}), lr = randn({1, 3, 5, 5});
  const Tensor w = randn({8, 3, 3, 3});  // 8 = 2 channels after pixel_shuffle(2)
  const Tensor img = randn({1, 3, 64, 64}), wave = randn({1, 2, 10}), field = randn({1, 1, 4, 4});
  // clang-format off
Tensor big = interpolate(feat, {}, {2.0}, "bilinear");                 // (N, C, 2H, 2W)
Tensor fit = interpolate(feat, {64, 64}, {}, "bilinear", /*align_corners=*/true);
Tensor same = conv2d(pad(x, {1, 1, 1, 1}, "reflect"), w);              // reflection padding
auto up = nn::make<nn::Upsample>({.scale_factor = {2}});               // Upsample(scale_factor=2.0, mode=nearest)
Tensor smooth = interpolate(img, {}, {2.0}, "bicubic", /*align_corners=*/false);
Tensor thumb = interpolate(img, {32, 32}, {}, "area");                 // anti-aliased shrink
Tensor sig = interpolate(wave, {}, {1.5}, "linear");                   // (N, C, L) -> (N, C, 1.5L)
Tensor wrap = pad(field, {1, 1, 1, 1}, "circular");                    // periodic boundaries
Tensor hr = pixel_shuffle(conv2d(lr, w), 2);                           // sub-pixel upsampling
auto pad3d = nn::make<nn::ReplicationPad3d>({.padding = {1}});         // ReplicationPad3d((1, 1, 1, 1, 1, 1))
  // clang-format on
  EXPECT_EQ(big.sizes(), (Shape{1, 3, 16, 16}));
  EXPECT_EQ(fit.sizes(), (Shape{1, 3, 64, 64}));
  // align_corners: the corner pixels are the input's.
  EXPECT_NEAR(values(fit)[0], values(feat)[0], 1e-6);
  EXPECT_EQ(same.sizes(), (Shape{1, 8, 6, 6}));
  EXPECT_EQ(up->str(), "Upsample(scale_factor=2.0, mode=nearest)");
  EXPECT_EQ(smooth.sizes(), (Shape{1, 3, 128, 128}));
  EXPECT_EQ(thumb.sizes(), (Shape{1, 3, 32, 32}));
  EXPECT_LT(max_abs_diff(thumb, avg_pool2d(img, {2, 2})), 1e-5);  // each output the mean of its 2x2
  EXPECT_EQ(sig.sizes(), (Shape{1, 2, 15}));
  EXPECT_EQ(wrap.sizes(), (Shape{1, 1, 6, 6}));
  EXPECT_EQ(values(wrap[0][0][0].narrow(0, 1, 4)), values(field[0][0][3]));  // the last row, above
  EXPECT_EQ(values(wrap[0][0].select(1, 5).narrow(0, 1, 4)), values(field[0][0].select(1, 0)));
  EXPECT_EQ(hr.sizes(), (Shape{1, 2, 6, 6}));
  EXPECT_EQ(pad3d->str(), "ReplicationPad3d((1, 1, 1, 1, 1, 1))");
}

TEST(ReadmeExamples, EinsumAddmmCdist) {
  // clang-format off
using namespace fabric;
Tensor q = randn({2, 8, 16}), k = randn({2, 10, 16});
Tensor scores = einsum("bqd,bkd->bqk", {q, k});       // (2, 8, 10): q @ kᵀ per batch
Tensor traces = einsum("...ii->...", {randn({4, 3, 3})});  // (4,)
Tensor x = randn({4, 16}), w = randn({16, 5}), bias_row = randn({5});
Tensor y = addmm(bias_row, x, w, /*beta=*/1, /*alpha=*/0.5);  // (4, 5): bias + 0.5 * x @ w
Tensor d = cdist(q, k, 2.0);                           // (2, 8, 10) Euclidean distances
  // clang-format on
  EXPECT_EQ(scores.sizes(), (Shape{2, 8, 10}));
  EXPECT_LT(max_abs_diff(scores, bmm(q, k.transpose(1, 2))), 1e-4);
  EXPECT_EQ(traces.sizes(), (Shape{4}));
  EXPECT_EQ(y.sizes(), (Shape{4, 5}));
  EXPECT_LT(max_abs_diff(y, bias_row + matmul(x, w) * 0.5), 1e-4);
  EXPECT_EQ(d.sizes(), (Shape{2, 8, 10}));
  const Tensor diff = q.unsqueeze(2) - k.unsqueeze(1);  // (2, 8, 10, 16)
  EXPECT_LT(max_abs_diff(d, sqrt(sum(diff * diff, {-1}))), 1e-4);
}

TEST(ReadmeExamples, NAdamAndAdadeltaGroups) {
  auto net = nn::make<nn::Linear>({.in_features = 4, .out_features = 3});
  auto enc = nn::make<nn::Linear>({.in_features = 4, .out_features = 4});
  auto hd = nn::make<nn::Linear>({.in_features = 4, .out_features = 2});
  nn::Module &model = *net, &encoder = *enc, &head = *hd;
  // clang-format off
optim::NAdam opt(model.parameters(), {.lr = 2e-3, .weight_decay = 1e-4});
optim::Adadelta ada({{.params = encoder.parameters(), .options = {.rho = 0.95}},
                     {.params = head.parameters(), .options = {.lr = 0.5}}});
  // clang-format on
  ASSERT_EQ(ada.param_groups().size(), 2u);
  EXPECT_EQ(ada.param_groups()[0].options.rho, 0.95);
  EXPECT_EQ(ada.param_groups()[0].options.lr, 1.0);  // torch's default
  EXPECT_EQ(ada.param_groups()[1].options.lr, 0.5);
  EXPECT_EQ(ada.param_groups()[1].options.rho, 0.9);
  EXPECT_EQ(opt.param_groups()[0].options.weight_decay, 1e-4);
  const Tensor x = randn({5, 4});
  const std::vector<double> before = values(net->parameters()[0]);
  sum(model(x)).backward();
  sum(head(encoder(x))).backward();
  opt.step();
  ada.step();
  EXPECT_NE(values(net->parameters()[0]), before);
  EXPECT_EQ(opt.state_dict().flatten().size() > 0, true);
}

TEST(ReadmeExamples, RpropAndAsgd) {
  auto net = nn::make<nn::Linear>({.in_features = 4, .out_features = 3});
  nn::Module& model = *net;
  // clang-format off
optim::Rprop rprop(model.parameters(), {.etas = {0.5, 1.2}, .step_sizes = {1e-6, 1.0}});
optim::ASGD asgd(model.parameters(), {.lr = 0.01, .t0 = 1000});
  // clang-format on
  EXPECT_EQ(rprop.param_groups()[0].options.lr, 1e-2);
  EXPECT_EQ(rprop.param_groups()[0].options.step_sizes, (std::array<double, 2>{1e-6, 1.0}));
  EXPECT_EQ(asgd.param_groups()[0].options.t0, 1000.0);
  EXPECT_EQ(asgd.param_groups()[0].options.lambd, 1e-4);
  // Rprop's first step moves every weight with a gradient by lr against its sign.
  const Tensor w = net->parameters()[0];
  const std::vector<double> before = values(w);
  sum(model(randn({5, 4}))).backward();
  const std::vector<double> g = values(w.grad());
  rprop.step();
  const std::vector<double> after = values(w);
  for (size_t k = 0; k < g.size(); ++k) {
    if (g[k] != 0) EXPECT_NEAR(after[k] - before[k], g[k] > 0 ? -1e-2 : 1e-2, 1e-7);
  }
}

TEST(ReadmeExamples, LbfgsWithAClosure) {
  // A least-squares fit that a linear model solves exactly.
  auto teacher = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  const Tensor x = randn({16, 3});
  Tensor y;
  {
    NoGradGuard no_grad;
    y = (*teacher)(x);
  }
  auto net = nn::make<nn::Linear>({.in_features = 3, .out_features = 2});
  nn::Module& model = *net;
  const double start = nn::mse_loss(model(x), y).item<double>();
  // clang-format off
optim::LBFGS opt(model.parameters(), {.history_size = 10, .line_search_fn = "strong_wolfe"});
for (int s = 0; s < 20; ++s) {
  Tensor loss = opt.step([&] {
    opt.zero_grad();
    Tensor l = nn::mse_loss(model(x), y);
    backward(l);
    return l;
  });
}
  // clang-format on
  EXPECT_GT(start, 1e-2);
  EXPECT_LT(nn::mse_loss(model(x), y).item<double>(), 1e-8);
}

TEST(ReadmeExamples, CyclicAndMultiplicativeLr) {
  auto net = nn::make<nn::Linear>({.in_features = 2, .out_features = 2});
  optim::SGD opt(net->parameters(), {.lr = 0.1, .momentum = 0.5});
  optim::SGD opt2(net->parameters(), {.lr = 0.1});
  // clang-format off
optim::CyclicLR clr(opt, {.base_lr = {1e-3}, .max_lr = {6e-3}, .step_size_up = 2000,
                          .mode = "exp_range", .gamma = 0.99994});
optim::MultiplicativeLR mlr(opt2, [](int64_t epoch) { return epoch < 10 ? 0.95 : 1.0; });
  // clang-format on
  EXPECT_DOUBLE_EQ(opt.lr(0), 1e-3);  // base_lr at step 0
  // The momentum runs against the lr: max_momentum (0.9) at base_lr.
  EXPECT_DOUBLE_EQ(opt.param_groups()[0].options.momentum, 0.9);
  for (int k = 0; k < 1000; ++k) clr.step();
  // exp_range: base + (max - base) · (x / step_size_up) · gamma^step, halfway up the first cycle.
  EXPECT_NEAR(opt.lr(0), 1e-3 + 5e-3 * 0.5 * std::pow(0.99994, 1000), 1e-12);
  EXPECT_DOUBLE_EQ(opt2.lr(0), 0.1);
  mlr.step();
  EXPECT_DOUBLE_EQ(opt2.lr(0), 0.1 * 0.95);
  for (int k = 0; k < 20; ++k) mlr.step();
  EXPECT_NEAR(opt2.lr(0), 0.1 * std::pow(0.95, 9), 1e-15);  // epochs 1..9 multiply, then 1.0
}

// The SWA example's model: a linear layer and a BatchNorm, built from its options.
struct NetConfig {
  int64_t features = 4;
};
class Net : public nn::Module {
 public:
  using Options = NetConfig;
  explicit Net(const NetConfig& c) {
    register_module<nn::Linear>("fc", {.in_features = c.features, .out_features = c.features});
    register_module<nn::BatchNorm1d>("bn", {.num_features = c.features});
  }
  Tensor forward(const Tensor& x) override { return child("bn")(child("fc")(x)); }
};
const NetConfig cfg{.features = 4};  // a global: the example's factory lambda captures nothing

TEST(ReadmeExamples, StochasticWeightAveraging) {
  auto model = nn::make<Net>(cfg);
  optim::SGD opt(model->parameters(), {.lr = 0.1});
  const std::vector<Tensor> train_batches = {randn({8, 4}) * 2.0 + 1.0, randn({8, 4}) * 2.0 + 1.0};
  // clang-format off
optim::AveragedModel swa(*model, [] { return nn::make<Net>(cfg); });
optim::SWALR swa_sched(opt, 0.05, /*anneal_epochs=*/5, "cos");
// ... each epoch after swa_start: swa.update_parameters(*model); swa_sched.step();
optim::update_bn(train_batches, swa);
  // clang-format on
  const std::vector<std::string> keys = swa.state_dict().keys();
  ASSERT_FALSE(keys.empty());
  EXPECT_EQ(keys.front(), "n_averaged");
  EXPECT_TRUE(std::find(keys.begin(), keys.end(), "module.fc.weight") != keys.end());
  EXPECT_EQ(swa.n_averaged(), 0);
  // update_bn: the running mean is the cumulative average of the batches' means of fc(x).
  const nn::Module& copy = swa.module();
  Tensor expected;
  {
    NoGradGuard no_grad;
    const Tensor m0 = mean(copy.child("fc")(train_batches[0]), {0});
    const Tensor m1 = mean(copy.child("fc")(train_batches[1]), {0});
    expected = (m0 + m1) * 0.5;
  }
  EXPECT_LT(max_abs_diff(copy.state_dict().at("bn.running_mean"), expected), 1e-5);
  EXPECT_EQ(copy.state_dict().at("bn.num_batches_tracked").item<int64_t>(), 2);
  // The loop of the comment: averaging counts, and the lr anneals to swa_lr in 5 steps.
  for (int epoch = 0; epoch < 5; ++epoch) {
    swa.update_parameters(*model);
    swa_sched.step();
  }
  EXPECT_EQ(swa.n_averaged(), 5);
  EXPECT_NEAR(opt.lr(0), 0.05, 1e-12);
}

TEST(ReadmeExamples, TransposedAndThreeDimensionalConvolutions) {
  // clang-format off
auto up = fabric::nn::make<fabric::nn::ConvTranspose2d>(
    {.in_channels = 16, .out_channels = 8, .kernel_size = 3, .stride = 2, .padding = 1,
     .output_padding = 1});  // (N, 16, H, W) -> (N, 8, 2H, 2W)
// ConvTranspose2d(16, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))
auto vol = fabric::nn::make<fabric::nn::Conv3d>(
    {.in_channels = 2, .out_channels = 4, .kernel_size = 3, .padding = 1});
// Conv3d(2, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1)): (N, 2, D, H, W) -> (N, 4, D, H, W)
  // clang-format on
  EXPECT_EQ(up->str(),
            "ConvTranspose2d(16, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), "
            "output_padding=(1, 1))");
  EXPECT_EQ((*up)(randn({2, 16, 5, 7})).sizes(), (Shape{2, 8, 10, 14}));
  EXPECT_EQ(vol->str(), "Conv3d(2, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))");
  EXPECT_EQ((*vol)(randn({2, 2, 3, 4, 5})).sizes(), (Shape{2, 4, 3, 4, 5}));
}

TEST(ReadmeExamples, GptForwardAndLoss) {
  const Tensor x = randint(0, 65, {2, 6}), y = randint(0, 65, {2, 6});  // (B, T) tokens
  // clang-format off
auto gpt = fabric::nn::make<fabric::nn::GPT>({.vocab_size = 65, .block_size = 256, .n_layer = 6,
                                               .n_head = 6, .n_embd = 384, .dropout = 0.2});
auto loss = fabric::nn::cross_entropy(gpt->forward(x).view({-1, 65}), y.view({-1}));
  // clang-format on
  EXPECT_EQ(gpt->forward(x).sizes(), (Shape{2, 6, 65}));
  EXPECT_EQ(loss.dim(), 0);
  // N(0, 0.02) weights: the logits start near zero, the loss near ln(65).
  EXPECT_NEAR(loss.item<double>(), std::log(65.0), 0.5);
}

TEST(ReadmeExamples, MarginAndLikelihoodLosses) {
  const int64_t N = 5, D = 3, C = 4;
  const Tensor anchor = randn({N, D}), positive = randn({N, D}), negative = randn({N, D});
  const Tensor mu = randn({N, D}), y = randn({N, D}), var = rand({N, 1}) + 0.5;
  const Tensor logits = randn({N, C});
  const Tensor classes = from_vector<int64_t>({0, 3, 1, 2, 3});
  // clang-format off
auto triplet = fabric::nn::make<fabric::nn::TripletMarginLoss>({.margin = 0.5, .swap = true});
Tensor loss = (*triplet)(anchor, positive, negative);        // (N, D) each: mean over N
auto nll = fabric::nn::make<fabric::nn::GaussianNLLLoss>({.full = true});
Tensor l2 = (*nll)(mu, y, var);                              // var (N, D), (N) or (N, 1)
Tensor l3 = fabric::nn::multi_margin_loss(logits, classes, /*p=*/2, /*margin=*/1.0);
  // clang-format on
  // torch's formulas, by hand. Triplet: pairwise distances ||a - b + 1e-6||, the negative's the
  // smaller of d(a, n) and d(p, n) (swap), mean over N of max(d(a, p) - d_neg + margin, 0).
  const auto dist = [](const Tensor& a, const Tensor& b, int64_t i) {
    const std::vector<double> u = values(a[i]), v = values(b[i]);
    double s = 0;
    for (size_t j = 0; j < u.size(); ++j) s += (u[j] - v[j] + 1e-6) * (u[j] - v[j] + 1e-6);
    return std::sqrt(s);
  };
  double triplet_sum = 0;
  for (int64_t i = 0; i < N; ++i) {
    const double d_neg = std::min(dist(anchor, negative, i), dist(positive, negative, i));
    triplet_sum += std::max(dist(anchor, positive, i) - d_neg + 0.5, 0.0);
  }
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_NEAR(loss.item<double>(), triplet_sum / N, 1e-5);
  // Gaussian NLL, full: 0.5 (log var + (mu - y)² / var) + 0.5 log 2π, var (N, 1) per sample.
  const std::vector<double> m = values(mu), t = values(y), s = values(var);
  double nll_sum = 0;
  for (int64_t i = 0; i < N * D; ++i) {
    const double v = s[size_t(i / D)];
    nll_sum +=
        0.5 * (std::log(v) + (m[size_t(i)] - t[size_t(i)]) * (m[size_t(i)] - t[size_t(i)]) / v) +
        0.5 * std::log(2 * std::numbers::pi);
  }
  EXPECT_NEAR(l2.item<double>(), nll_sum / double(N * D), 1e-5);
  // Multi-margin, p 2: per sample sum over j != y of max(0, margin - x_y + x_j)², over C, mean.
  const std::vector<double> x = values(logits);
  const std::vector<int64_t> c = classes.to_vector<int64_t>();
  double mm_sum = 0;
  for (int64_t i = 0; i < N; ++i) {
    const double xy = x[size_t(i * C + c[size_t(i)])];
    for (int64_t j = 0; j < C; ++j) {
      if (j == c[size_t(i)]) continue;
      const double h = std::max(0.0, 1.0 - xy + x[size_t(i * C + j)]);
      mm_sum += h * h / double(C);
    }
  }
  EXPECT_NEAR(l3.item<double>(), mm_sum / N, 1e-5);
}

TEST(ReadmeExamples, MultiheadAttentionAndTransformerEncoder) {
  // clang-format off
using namespace fabric;
auto mha = nn::make<nn::MultiheadAttention>({.embed_dim = 64, .num_heads = 4, .batch_first = true});
Tensor x = randn({8, 10, 64});                                   // (N, L, E)
Tensor padding = zeros({8, 10}, {.dtype = DType::bool_});        // true: a padded key
auto [y, weights] = (*mha)(x, x, x, padding);                   // (8, 10, 64), (8, 10, 10)

auto encoder = nn::make<nn::TransformerEncoder>(
    {.layer = {.d_model = 64, .nhead = 4, .dim_feedforward = 256, .dropout = 0.1,
               .activation = "gelu", .batch_first = true, .norm_first = true},
     .num_layers = 6,
     .norm = nn::make<nn::LayerNorm>({.normalized_shape = {64}})});
Tensor h = encoder->forward(x, logical_not(causal_mask(10, 10)), padding);  // (8, 10, 64), causal
  // clang-format on
  EXPECT_EQ(y.sizes(), (Shape{8, 10, 64}));
  EXPECT_EQ(weights.sizes(), (Shape{8, 10, 10}));
  EXPECT_LT(max_abs_diff(sum(weights, {-1}), ones({8, 10})), 1e-5);  // averaged probabilities
  EXPECT_EQ(h.sizes(), (Shape{8, 10, 64}));
  // Causal: without dropout, changing the last position leaves the others' outputs as they were.
  encoder->eval();
  const Tensor mask = logical_not(causal_mask(10, 10));
  const Tensor before = encoder->forward(x, mask, padding);
  Tensor x2 = x.clone();
  x2.select(1, 9).copy_(randn({8, 64}));
  const Tensor after = encoder->forward(x2, mask, padding);
  EXPECT_EQ(max_abs_diff(before.narrow(1, 0, 9), after.narrow(1, 0, 9)), 0.0);
  EXPECT_GT(max_abs_diff(before.narrow(1, 9, 1), after.narrow(1, 9, 1)), 0.0);
}

TEST(ReadmeExamples, TransformerAndDecoder) {
  // clang-format off
using namespace fabric;
auto model = nn::make<nn::Transformer>({.d_model = 64, .nhead = 4, .num_encoder_layers = 2,
                                        .num_decoder_layers = 2, .dim_feedforward = 256,
                                        .batch_first = true});
Tensor src = randn({8, 12, 64});                                       // (N, S, E)
Tensor tgt = randn({8, 10, 64});                                       // (N, T, E)
Tensor src_padding = zeros({8, 12}, {.dtype = DType::bool_});          // true: a padded position
Tensor causal = nn::Transformer::generate_square_subsequent_mask(10);  // (T, T), -inf above
Tensor out = model->forward(src, tgt, /*src_mask=*/Tensor(), /*tgt_mask=*/causal,
                            /*memory_mask=*/Tensor(), src_padding,
                            /*tgt_key_padding_mask=*/Tensor(),
                            /*memory_key_padding_mask=*/src_padding);  // (8, 10, 64)

// Or the decoder alone, over an encoder's output.
auto decoder = nn::make<nn::TransformerDecoder>(
    {.layer = {.d_model = 64, .nhead = 4, .dim_feedforward = 256, .batch_first = true},
     .num_layers = 2,
     .norm = nn::make<nn::LayerNorm>({.normalized_shape = {64}})});
Tensor memory = randn({8, 12, 64});
Tensor y = decoder->forward(tgt, memory, causal);  // (8, 10, 64)
  // clang-format on
  EXPECT_EQ(causal.sizes(), (Shape{10, 10}));
  const std::vector<double> c = values(causal);
  for (int64_t i = 0; i < 10; ++i) {
    for (int64_t j = 0; j < 10; ++j) {
      const double v = c[size_t(i * 10 + j)];
      if (j > i)
        EXPECT_TRUE(std::isinf(v) && v < 0) << i << ", " << j;
      else
        EXPECT_EQ(v, 0.0) << i << ", " << j;
    }
  }
  EXPECT_EQ(out.sizes(), (Shape{8, 10, 64}));
  EXPECT_EQ(y.sizes(), (Shape{8, 10, 64}));
}

TEST(ReadmeExamples, LstmWithStateAndGruCell) {
  // clang-format off
using namespace fabric;
auto lstm = nn::make<nn::LSTM>({.input_size = 10, .hidden_size = 20, .num_layers = 2,
                                .batch_first = true, .dropout = 0.1, .bidirectional = true});
Tensor x = randn({8, 35, 10});                               // (N, L, H_in)
auto [out, h_n, c_n] = lstm->forward_with_state(x);          // (8, 35, 40), (4, 8, 20), (4, 8, 20)
auto [out2, h2, c2] = lstm->forward_with_state(x, h_n, c_n); // carry the state on (detach to truncate)

auto cell = nn::make<nn::GRUCell>({.input_size = 10, .hidden_size = 20});
Tensor h = zeros({8, 20});
for (int64_t t = 0; t < 35; ++t) h = cell->forward_with_state(x.select(1, t), h);  // (8, 20)
  // clang-format on
  EXPECT_EQ(out.sizes(), (Shape{8, 35, 40}));
  EXPECT_EQ(h_n.sizes(), (Shape{4, 8, 20}));
  EXPECT_EQ(c_n.sizes(), (Shape{4, 8, 20}));
  EXPECT_EQ(out2.sizes(), (Shape{8, 35, 40}));
  EXPECT_EQ(h2.sizes(), (Shape{4, 8, 20}));
  EXPECT_EQ(c2.sizes(), (Shape{4, 8, 20}));
  EXPECT_GT(max_abs_diff(h2, h_n), 0.0);  // the carried state changes the result
  EXPECT_EQ(h.sizes(), (Shape{8, 20}));
}

TEST(ReadmeExamples, GruOverPackedSequences) {
  // clang-format off
using namespace fabric;
auto gru = nn::make<nn::GRU>({.input_size = 10, .hidden_size = 20, .bidirectional = true});
Tensor padded = nn::pad_sequence({randn({5, 10}), randn({2, 10}), randn({7, 10})});  // (7, 3, 10)
nn::PackedSequence packed = nn::pack_padded_sequence(padded, {5, 2, 7}, false,
                                                     /*enforce_sorted=*/false);
auto [out, h_n] = gru->forward_packed(packed);                  // h_n (2, 3, 20)
auto [out_padded, lengths] = nn::pad_packed_sequence(out);  // (7, 3, 40), {5, 2, 7}
  // clang-format on
  EXPECT_EQ(padded.sizes(), (Shape{7, 3, 10}));
  EXPECT_EQ(h_n.sizes(), (Shape{2, 3, 20}));
  EXPECT_EQ(out_padded.sizes(), (Shape{7, 3, 40}));
  EXPECT_EQ(lengths.to_vector<int64_t>(), (std::vector<int64_t>{5, 2, 7}));
  // Each sequence's output stops at its length: the padding rows are zeros.
  EXPECT_EQ(values(out_padded.narrow(0, 2, 5).select(1, 1)), std::vector<double>(5 * 40, 0.0));
}

TEST(ReadmeExamples, EverydayLayersInASequential) {
  const Tensor x = randn({3, 64, 9});  // (N, 64, L)
  // clang-format off
using namespace fabric;
auto head = nn::make<nn::Sequential>({
    nn::make<nn::Dropout1d>({.p = 0.1}),
    nn::make<nn::InstanceNorm1d>({.num_features = 64, .affine = true}),
    nn::make<nn::MaxPool1d>({.kernel_size = 3, .stride = 2, .padding = 1}),
    nn::make<nn::AdaptiveAvgPool1d>({.output_size = 1}), nn::make<nn::Flatten>()});
Tensor logits = (*head)(x);                               // (N, 64, L) -> (N, 64)
Tensor p = (*nn::make<nn::Softmax>({.dim = 1}))(logits);  // Softmax(dim=1)
  // clang-format on
  EXPECT_EQ(logits.sizes(), (Shape{3, 64}));
  EXPECT_EQ(p.sizes(), (Shape{3, 64}));
  EXPECT_LT(max_abs_diff(sum(p, {1}), ones({3})), 1e-5);
  EXPECT_EQ(nn::make<nn::Softmax>({.dim = 1})->str(), "Softmax(dim=1)");
}

TEST(ReadmeExamples, EmbeddingBagSpectralNormWeightNorm) {
  const Tensor tokens = from_vector<int64_t>({3, 999, 3, 0, 42, 7, 500});  // three bags
  const Tensor offsets = from_vector<int64_t>({0, 2, 4});
  // clang-format off
auto bag = nn::make<nn::EmbeddingBag>({.num_embeddings = 1000, .embedding_dim = 64, .mode = "sum"});
Tensor pooled = bag->forward(tokens, offsets);            // (num_bags, 64)
auto conv = nn::make<nn::Conv2d>({.in_channels = 3, .out_channels = 64, .kernel_size = 3});
nn::spectral_norm(*conv);                                 // weight_orig, weight_u, weight_v
auto fc = nn::make<nn::Linear>({.in_features = 64, .out_features = 10});
nn::weight_norm(*fc);                                     // weight_g (10, 1), weight_v (10, 64)
  // clang-format on
  EXPECT_EQ(pooled.sizes(), (Shape{3, 64}));
  const Tensor table = bag->state_dict().at("weight");
  EXPECT_LT(max_abs_diff(pooled[0], table[3] + table[999]), 1e-5);
  EXPECT_LT(max_abs_diff(pooled[2], table[42] + table[7] + table[500]), 1e-5);
  const nn::StateDict sn = conv->state_dict();
  EXPECT_TRUE(sn.contains("weight_orig") && sn.contains("weight_u") && sn.contains("weight_v"));
  EXPECT_FALSE(sn.contains("weight"));
  const nn::StateDict wn = fc->state_dict();
  ASSERT_TRUE(wn.contains("weight_g") && wn.contains("weight_v"));
  EXPECT_EQ(wn.at("weight_g").sizes(), (Shape{10, 1}));
  EXPECT_EQ(wn.at("weight_v").sizes(), (Shape{10, 64}));
  EXPECT_EQ((*fc)(randn({2, 64})).sizes(), (Shape{2, 10}));
}

TEST(ReadmeExamples, CtcLoss) {
  const Tensor logits = randn({6, 2, 5});  // (T, N, C)
  const Tensor targets = from_vector<int64_t>({1, 2, 2, 3, 1, 0}, {2, 3});
  const Tensor input_lengths = from_vector<int64_t>({6, 5}, {2});
  const Tensor target_lengths = from_vector<int64_t>({3, 2}, {2});
  // clang-format off
auto ctc = nn::make<nn::CTCLoss>({.blank = 0, .zero_infinity = true});
Tensor loss = (*ctc)(log_softmax(logits, 2), targets, input_lengths, target_lengths);  // (T, N, C)
  // clang-format on
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_TRUE(std::isfinite(loss.item<float>()));
  EXPECT_GT(loss.item<float>(), 0.0f);
}

TEST(ReadmeExamples, PoolsUnfoldAndFold) {
  const int64_t N = 2, C = 3, H = 6, W = 8;
  const Tensor x = randn({N, C, H, W}), img = randn({N, C, H, W});
  const Tensor video = randn({N, C, 4, 6, 8});  // (N, C, D, H, W)
  // clang-format off
auto [v, idx] = adaptive_max_pool2d(x, {3, 4});          // (N, C, 3, 4) values and int64 indices
Tensor cols = unfold(img, {3, 3}, {1, 1}, {1, 1});        // (N, C*9, H*W): im2col
Tensor back = fold(cols, {H, W}, {3, 3}, {1, 1}, {1, 1}); // each pixel times its block count
Tensor y = (*nn::make<nn::MaxPool3d>({.kernel_size = {2}}))(video);  // (N, C, D/2, H/2, W/2)
auto [p, where] = max_pool2d_with_indices(img, {2});     // values and int64 indices
Tensor back2 = (*nn::make<nn::MaxUnpool2d>({.kernel_size = {2}}))(p, where, std::vector<int64_t>{H, W});
// clang-format on
// Each window's maximum back in its place.
EXPECT_EQ(back2.sizes(), img.sizes());
EXPECT_EQ(gather(back2.flatten(2), 2, where.flatten(2)).to_vector<float>(), p.to_vector<float>());
EXPECT_EQ(v.sizes(), (Shape{N, C, 3, 4}));
EXPECT_EQ(idx.sizes(), (Shape{N, C, 3, 4}));
EXPECT_EQ(idx.dtype(), DType::int64);
EXPECT_EQ(cols.sizes(), (Shape{N, C * 9, H * W}));
// The block count: 9 inside, 6 on an edge, 4 in a corner (3x3 blocks, padding 1).
const Tensor count =
    fold(unfold(ones({1, 1, H, W}), {3, 3}, {1, 1}, {1, 1}), {H, W}, {3, 3}, {1, 1}, {1, 1});
EXPECT_EQ(values(count)[size_t(1 * W + 1)], 9.0);
EXPECT_EQ(values(count)[size_t(1)], 6.0);
EXPECT_EQ(values(count)[0], 4.0);
EXPECT_LT(max_abs_diff(back, img * count), 1e-5);
EXPECT_EQ(y.sizes(), (Shape{N, C, 2, 3, 4}));
}

TEST(ReadmeExamples, TrainingWithFabric) {
  InTempDir dir("readme_training");
  const Tensor x = randint(0, 81, {1, 8}), y = randint(0, 81, {1, 8});  // (B, T) tokens
  // clang-format off
using namespace fabric;

Fabric fab({.accelerator = "cpu", .precision = "bf16-mixed"});
Fabric::seed_everything(0);
auto gpt = nn::make<nn::GPT>({.vocab_size = 81, .block_size = 128, .n_layer = 4, .n_head = 4, .n_embd = 256});
optim::AdamW adamw(gpt->parameters(), {.lr = 3e-4, .betas = {0.9, 0.95}, .weight_decay = 0.1});
auto [model, opt] = fab.setup(gpt, adamw);          // FabricModule, FabricOptimizer
for (int step = 0; step < 100; ++step) {
  opt.zero_grad();
  Tensor logits = model(x);                            // convert_input -> autocast forward -> float32 out
  Tensor loss = cross_entropy(logits.view({-1, 81}), y.view({-1}));
  fab.backward(loss);                                  // scales the loss under 16-mixed
  fab.clip_gradients(model, opt, {.max_norm = 1.0});   // unscales first; returns the total norm
  opt.step();                                          // a loss scaler may skip it (.stepped false;
                                                       // converts to bool); .loss: the closure's loss
}
fab.save("checkpoints/step-100", {{"model", model}, {"optimizer", opt}, {"step", 100}});
  // clang-format on
  EXPECT_EQ(fab.precision_name(), "bf16-mixed");
  const Tensor logits = model(x);
  EXPECT_EQ(logits.dtype(), DType::float32);
  EXPECT_EQ(logits.sizes(), (Shape{1, 8, 81}));
  // 100 steps on one batch: the loss is well below its start, ln(81) = 4.39.
  EXPECT_LT(cross_entropy(logits.view({-1, 81}), y.view({-1})).item<double>(), 3.0);
  Fabric reader;
  const Checkpoint saved = reader.load("checkpoints/step-100");
  ASSERT_TRUE(saved.contains("model") && saved.contains("optimizer") && saved.contains("step"));
  EXPECT_EQ(saved.at("step").value->get<int64_t>(), 100);
  EXPECT_EQ(saved.at("model").tensors.size(), gpt->state_dict().size());
  EXPECT_EQ(saved.at("optimizer").name, "AdamW");
  ASSERT_TRUE(saved.at("optimizer").tensors.contains("state.0.step"));
  EXPECT_EQ(saved.at("optimizer").tensors.at("state.0.step").item<double>(), 100.0);
  unsetenv("PL_GLOBAL_SEED");  // seed_everything's, for the tests that follow in this process
  unsetenv("PL_SEED_WORKERS");
}

// The plugin README's registration example selects (any Precision subclass).
struct MyPrecision : precision::Precision {
  std::string name() const override { return "my-precision"; }
};

TEST(ReadmeExamples, RegisteringACustomPrecision) {
  // clang-format off
precision::register_precision("my-precision", [](DeviceType) { return std::make_shared<MyPrecision>(); });
Fabric fab({.precision = "my-precision"});
  // clang-format on
  EXPECT_EQ(fab.precision_name(), "my-precision");
  EXPECT_NE(dynamic_cast<MyPrecision*>(&fab.precision()), nullptr);
  EXPECT_TRUE(precision::unregister_precision("my-precision"));
}

TEST(ReadmeExamples, SetupDataloaders) {
  Fabric fab({.accelerator = "cpu"});
  data::TensorDataset dataset(randn({70, 4}), randint(0, 3, {70}));
  // clang-format off
data::DataLoader train = fab.setup_dataloaders(data::DataLoader(dataset, {.batch_size = 32, .shuffle = true}));
for (auto& [x, y] : train) { /* train on x, y */ }   // this rank's batches, on the device
  // clang-format on
  EXPECT_EQ(train.batches_per_epoch(), 3);    // 32 + 32 + 6
  EXPECT_EQ(train.state().batches_drawn, 3);  // the loop visited the epoch
  EXPECT_EQ(train.options().batch_size, 32);
  EXPECT_TRUE(train.options().shuffle);
  EXPECT_EQ(train.options().device, fab.device());
}

// torch: [len(s) for s in parts], list(parts[0])[:5], list(parts[1])[:5] of
//   parts = random_split(range(100), [0.8, 0.2], generator=torch.Generator().manual_seed(42))
//   -> [80, 20] [42, 96, 62, 98, 46] [2, 91, 8, 53, 30]
TEST(ReadmeExamples, RandomSplitSubsetAndConcat) {
  const Tensor inputs = randn({100, 4}), targets = randint(0, 3, {100});
  // clang-format off
auto examples = std::make_shared<data::TensorDataset>(inputs, targets);  // 100 examples
auto parts = data::random_split(examples, {0.8, 0.2}, /*seed=*/42);      // torch's: 80 and 20 examples
data::DataLoader train(parts[0], {.batch_size = 16, .shuffle = true});
data::DataLoader val(parts[1], {.batch_size = 16});
data::Subset firsts(examples, {0, 1, 2});                                // examples 0, 1 and 2
data::ConcatDataset more({examples, std::make_shared<data::Subset>(firsts)});  // 103 examples
  // clang-format on
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].size(), 80);
  EXPECT_EQ(parts[1].size(), 20);
  EXPECT_EQ(std::vector<int64_t>(parts[0].indices().begin(), parts[0].indices().begin() + 5),
            (std::vector<int64_t>{42, 96, 62, 98, 46}));
  EXPECT_EQ(std::vector<int64_t>(parts[1].indices().begin(), parts[1].indices().begin() + 5),
            (std::vector<int64_t>{2, 91, 8, 53, 30}));
  EXPECT_EQ(train.batches_per_epoch(), 5);
  EXPECT_EQ(val.batches_per_epoch(), 2);
  EXPECT_EQ(firsts.size(), 3);
  EXPECT_EQ(more.size(), 103);
  const std::vector<int64_t> rows = {101, 42};
  const data::Batch b = more.get(rows);
  EXPECT_EQ(max_abs_diff(b.inputs, index_select(inputs, 0, from_vector<int64_t>({1, 42}))), 0.0);
  const std::vector<int64_t> all_targets = targets.to_vector<int64_t>();
  EXPECT_EQ(b.targets.to_vector<int64_t>(),
            (std::vector<int64_t>{all_targets[1], all_targets[42]}));
}

// torch 1.13:
//   s = RandomSampler(range(100), generator=torch.Generator().manual_seed(7))
//   list(s)[:16] -> [15, 59, 71, 57, 2, 27, 87, 54, 36, 96, 98, 76, 28, 43, 8, 80]
//   list(s)[:4] (its second epoch) -> [35, 39, 79, 85]
//   len(BatchSampler(s, 16, False)) -> 7
//   ws = list(WeightedRandomSampler([1.0] * 50 + [3.0] * 50, 200, True,
//                                   generator=torch.Generator().manual_seed(0)))
//   ws[:8] -> [98, 80, 63, 94, 76, 86, 35, 56]; sum(i >= 50 for i in ws) -> 149
TEST(ReadmeExamples, Samplers) {
  using Ints = std::vector<int64_t>;
  const Tensor inputs = randn({100, 4}), targets = randint(0, 3, {100});
  std::vector<double> weights(100, 1.0);
  std::fill(weights.begin() + 50, weights.end(), 3.0);
  // clang-format off
auto examples = std::make_shared<data::TensorDataset>(inputs, targets);  // 100 examples
auto order = std::make_shared<data::RandomSampler>(100, data::RandomSamplerOptions{.seed = 7});
data::DataLoader train(examples, {.batch_size = 16, .sampler = order});   // torch's DataLoader(sampler=...)
auto rare_first = std::make_shared<data::WeightedRandomSampler>(weights, 200, /*replacement=*/true, /*seed=*/0);
data::DataLoader weighted(examples, {.batch_size = 16, .sampler = rare_first});
data::BatchSampler batches(order, 16, /*drop_last=*/false);              // 7 batches of indices
std::vector<std::vector<int64_t>> first = batches.epoch_batches(0);      // torch's list(BatchSampler)
  // clang-format on
  const Ints epoch0 = {15, 59, 71, 57, 2, 27, 87, 54, 36, 96, 98, 76, 28, 43, 8, 80};
  EXPECT_EQ(first.size(), 7u);
  EXPECT_EQ(batches.size(), 7);
  EXPECT_EQ(first[0], epoch0);
  EXPECT_EQ(first[6].size(), 4u);
  EXPECT_EQ(train.batches_per_epoch(), 7);
  const data::Batch b0 = train.next();
  EXPECT_EQ(b0.inputs.to_vector<float>(),
            index_select(inputs, 0, from_vector<int64_t>(epoch0)).to_vector<float>());
  const Ints epoch1 = order->epoch_indices(1);
  EXPECT_EQ(Ints(epoch1.begin(), epoch1.begin() + 4), (Ints{35, 39, 79, 85}));
  EXPECT_EQ(weighted.batches_per_epoch(), 13);  // 200 / 16, rounded up
  const Ints ws = rare_first->epoch_indices(0);
  EXPECT_EQ(Ints(ws.begin(), ws.begin() + 8), (Ints{98, 80, 63, 94, 76, 86, 35, 56}));
  EXPECT_EQ(std::count_if(ws.begin(), ws.end(), [](int64_t i) { return i >= 50; }), 149);
}

std::map<std::string, std::vector<double>> values_of(const std::map<std::string, Tensor>& m) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [k, t] : m) out[k] = values(t);
  return out;
}

std::map<std::string, Tensor> as_map(const nn::StateDict& sd) {
  std::map<std::string, Tensor> out;
  for (const auto& [k, t] : sd) out[k] = t.clone();
  return out;
}

TEST(ReadmeExamples, SaveFilterLoadAndLoadRaw) {
  InTempDir dir("readme_checkpoint_files");
  Fabric fab({.accelerator = "cpu"});
  // An MLP whose first layer carries LoRA adapters (the only trainable parameters).
  auto net = nn::make<nn::MLP>({.sizes = {4, 8, 3}});
  nn::apply_lora(*net, {.rank = 2, .target = {"0"}});
  optim::AdamW adamw(net->parameters(), {.lr = 1e-2});
  auto [model, opt] = fab.setup(net, adamw);
  const auto train_step = [&, &model = model, &opt = opt] {
    opt.zero_grad();
    fab.backward(sum(model(randn({5, 4})) * randn({5, 3})));
    opt.step();
  };
  // After one step: ckpt/last, the whole state dict as a plain file, and one tensor of it.
  train_step();
  const int64_t step = 7;
  fab.save("ckpt/last", {{"model", model}, {"optimizer", opt}, {"step", step}});
  const std::map<std::string, Tensor> first = as_map(net->state_dict());
  save_safetensors("pytorch_model.safetensors",
                   std::vector<std::pair<std::string, Tensor>>(first.begin(), first.end()));
  const Tensor zero_head = zeros({3, 8});
  save_safetensors("partial.safetensors", {{"layers.1.weight", zero_head}});
  std::map<std::string, Tensor> first_opt;
  for (const auto& [k, t] : adamw.state_dict().flatten()) first_opt[k] = t.clone();
  train_step();  // the adapters and the optimizer's state move on
  ASSERT_NE(values_of(as_map(net->state_dict())), values_of(first));
  // clang-format off
// Only the LoRA adapters: a filter per module or optimizer key sees each tensor's name (a
// state_dict name; for an optimizer "state.<i>.<name>" / "param_groups.<g>.<name>") and the tensor.
fab.save("ckpt/lora", {{"model", model}, {"step", step}},
         {{"model", [](const std::string& name, const fabric::Tensor&) { return name.find("lora_") != std::string::npos; }}});
// The base weights come from elsewhere: a strict load names the missing keys, a non-strict one
// restores what the checkpoint holds.
fabric::State state{{"model", model}, {"step", int64_t(0)}};
fab.load("ckpt/lora", state, /*strict=*/false);

fabric::Checkpoint all = fab.load("ckpt/last");              // no state: every entry, nothing restored
auto& weights = all.at("model").tensors;                     // name -> tensor (optimizers likewise)
int64_t s = all.at("step").value->get<int64_t>();            // plain values; .precision_state for the plugin

fab.load_raw("pytorch_model.safetensors", model);           // safetensors save_file(model.state_dict())
fab.load_raw("ckpt/last/optimizer.safetensors", opt);       // one optimizer's file from a checkpoint
fab.load_raw("partial.safetensors", model, /*strict=*/false);  // loads the keys both have
  // clang-format on
  const Checkpoint lora = Fabric().load("ckpt/lora");
  std::vector<std::string> lora_keys;
  for (const auto& [k, t] : lora.at("model").tensors) lora_keys.push_back(k);
  EXPECT_EQ(lora_keys,
            (std::vector<std::string>{"layers.0.lora_A.weight", "layers.0.lora_B.weight"}));
  EXPECT_EQ(state.at("step").get<int64_t>(), 7);  // written back by the load
  EXPECT_THROW(fab.load("ckpt/lora", state, /*strict=*/true), Error);
  EXPECT_EQ(s, 7);
  EXPECT_EQ(values_of(weights), values_of(first));
  // The model holds the first step's weights again, but for the head that partial.safetensors set.
  std::map<std::string, Tensor> expected = first;
  expected["layers.1.weight"] = zero_head;
  EXPECT_EQ(values_of(as_map(net->state_dict())), values_of(expected));
  std::map<std::string, Tensor> opt_now;
  for (const auto& [k, t] : adamw.state_dict().flatten()) opt_now[k] = t;
  EXPECT_EQ(values_of(opt_now), values_of(first_opt));
}

TEST(ReadmeExamples, CallbacksAndSpikeDetection) {
  InTempDir dir("readme_callbacks");  // a spike would write skip_batches.json here
  auto net = nn::make<nn::Linear>({.in_features = 4, .out_features = 3});
  optim::SGD sgd(net->parameters(), {.lr = 0.1});
  const Tensor x = randn({8, 4}), y = randint(0, 3, {8});
  const int64_t steps = 12;
  ::testing::internal::CaptureStdout();
  // clang-format off
struct EpochPrinter : Callback {
  EpochPrinter() {
    define_hook("on_train_epoch_end", [](const HookArgs& a) {
      std::cout << "epoch " << a.integer("epoch") << " loss " << a.number("loss") << "\n";
    });
  }
  void on_after_optimizer_step(distributed::Strategy&, optim::Optimizer&) override { ++steps; }
  int64_t steps = 0;
};

auto spikes = std::make_shared<SpikeDetection>(SpikeDetectionOptions{.window = 10, .rtol = 2.0});
Fabric fab({.accelerator = "cpu", .callbacks = {std::make_shared<EpochPrinter>(), spikes}});
auto [model, opt] = fab.setup(net, sgd);
Tensor loss;
for (int64_t i = 0; i < steps; ++i) {
  opt.zero_grad();
  loss = cross_entropy(model(x), y);
  fab.backward(loss);
  opt.step();
  fab.call("on_train_batch_end", {{"fabric", fab}, {"loss", loss}, {"batch_idx", i}});  // may throw
}
fab.call("on_train_epoch_end", {{"epoch", 0}, {"loss", loss.item<double>()}});
  // clang-format on
  const std::string printed = ::testing::internal::GetCapturedStdout();
  std::ostringstream want;
  want << "epoch 0 loss " << loss.item<double>() << "\n";
  EXPECT_NE(printed.find(want.str()), std::string::npos) << printed;
  const auto* printer = dynamic_cast<const EpochPrinter*>(fab.callbacks().at(0).get());
  ASSERT_NE(printer, nullptr);
  EXPECT_EQ(printer->steps, steps);
  EXPECT_TRUE(spikes->bad_batches().empty());  // a falling loss has no spike
  EXPECT_DOUBLE_EQ(spikes->last_value(), loss.item<double>());
  // A loss that jumps past rtol times the running mean throws TrainingSpikeException.
  EXPECT_THROW(fab.call("on_train_batch_end",
                        {{"fabric", fab}, {"loss", loss * 100.0}, {"batch_idx", steps}}),
               TrainingSpikeException);
}

// Keeps what Fabric logs.
struct MemoryLogger : Logger {
  std::string name() const override { return "memory"; }
  void log_metrics(const Metrics& metrics, std::optional<int64_t> step) override {
    rows.emplace_back(metrics, step);
  }
  std::vector<std::pair<Metrics, std::optional<int64_t>>> rows;
};

double metric(const Metrics& m, const std::string& name) {
  for (const auto& [k, v] : m)
    if (k == name) return v;
  ADD_FAILURE() << "no metric " << name;
  return std::nan("");
}

TEST(ReadmeExamples, ThroughputMonitor) {
  auto logger = std::make_shared<MemoryLogger>();
  Fabric fab({.accelerator = "cpu", .loggers = {logger}});
  const int64_t steps = 100, B = 4, T = 16;
  const double n_params = 1e6;
  const Tensor a = randn({16, 16});
  const auto train_step = [&] { return matmul(a, a); };
  // clang-format off
ThroughputMonitor throughput(fab, {.window_size = 50});
const auto t0 = std::chrono::steady_clock::now();
for (int64_t i = 1; i <= steps; ++i) {
  train_step();
  synchronize(fab.device());  // tensor/device_control.h: on CUDA the time then includes the work
  const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  throughput.update({.time = t, .batches = i, .samples = i * B, .lengths = i * B * T,
                     .flops = 6.0 * n_params * B * T});
  if (i % 50 == 0) throughput.compute_and_log(i);  // device/samples_per_sec, device/mfu, ... to the loggers
}
  // clang-format on
  ASSERT_EQ(logger->rows.size(), 2u);
  EXPECT_EQ(logger->rows[0].second, 50);
  EXPECT_EQ(logger->rows[1].second, 100);
  const Metrics& m = logger->rows[1].first;
  EXPECT_EQ(metric(m, "samples"), 400.0);
  EXPECT_EQ(metric(m, "lengths"), 6400.0);
  // Over the window: samples B and items B·T per batch, 6·n·B·T FLOPs per batch.
  const double batches_per_sec = metric(m, "device/batches_per_sec");
  EXPECT_GT(batches_per_sec, 0.0);
  EXPECT_NEAR(metric(m, "device/samples_per_sec") / batches_per_sec, double(B), 1e-9);
  EXPECT_NEAR(metric(m, "device/items_per_sec") / batches_per_sec, double(B * T), 1e-9);
  EXPECT_NEAR(metric(m, "device/flops_per_sec") / batches_per_sec / (6.0 * n_params * B * T), 1.0,
              1e-9);
}

TEST(ReadmeExamples, CountingFlops) {
  const int64_t B = 2, T = 8, V = 50, C = 16, L = 2;
  auto gpt =
      nn::make<nn::GPT>({.vocab_size = V, .block_size = T, .n_layer = L, .n_head = 2, .n_embd = C});
  nn::GPT& model = *gpt;
  const Tensor x = randint(0, V, {B, T}), y = randint(0, V, {B, T});
  const Tensor img = randn({2, 4, 6, 6});  // (N, C_in, H, W)
  const Tensor w = randn({6, 2, 3, 3});    // (C_out, C_in / groups, kH, kW)
  Fabric fab({.accelerator = "cpu"});
  ThroughputMonitor throughput(fab, {.window_size = 2});
  const double t = 0.5;
  const int64_t i = 1;
  // clang-format off
// One training step of a GPT: 6 · parameters · tokens, plus the attention's products.
const int64_t flops_per_batch = measure_flops(
    model, [&] { return model(x); },
    [&](const Tensor& logits) { return cross_entropy(logits.view({-1, V}), y.reshape({-1})); });
throughput.update({.time = t, .batches = i, .samples = i * B, .flops = double(flops_per_batch)});

FlopCounter counter;  // or count any code directly
Tensor out = conv2d(img, w, Tensor(), {2, 2}, {1, 1}, {1, 1}, /*groups=*/2);
counter.flops_of("convolution");  // 2 · out.numel() · (C_in / 2) · kH · kW
  // clang-format on
  // The linear layers' weights (12·C² per block, the tied lm_head V·C): 6 · those · B·T; the
  // attention's q·kᵀ and p·v, 4·B·T²·C per block forward, 10·B·T²·C backward.
  const int64_t linear_weights = L * 12 * C * C + V * C;
  EXPECT_EQ(flops_per_batch, 6 * linear_weights * B * T + L * 14 * B * T * T * C);
  EXPECT_EQ(metric(throughput.compute(), "samples"), double(B));
  EXPECT_EQ(out.sizes(), (Shape{2, 6, 3, 3}));
  EXPECT_EQ(counter.flops_of("convolution"), 2 * out.numel() * (4 / 2) * 3 * 3);
}

// The DDP example runs in a process of its own, started by the test below: launch() re-runs this
// process's command line for rank 1, which must name this test alone. The ranks share a directory
// (FABRIC_README_DDP_DIR), where each writes its weights before and after for the test to compare.
TEST(ReadmeExamples, DISABLED_DdpTrainingWorker) {
  const char* shared = std::getenv("FABRIC_README_DDP_DIR");
  ASSERT_NE(shared, nullptr);
  fs::current_path(shared);
  const char* local_rank = std::getenv("LOCAL_RANK");
  const std::string rank = local_rank ? local_rank : "0";
  manual_seed(std::stoull(rank));  // each rank starts from other weights and has its own data
  auto mlp = nn::make<nn::MLP>({.sizes = {4, 8, 3}});
  optim::SGD sgd(mlp->parameters(), {.lr = 0.1});
  std::vector<std::pair<Tensor, Tensor>> my_shard_of_the_data;
  for (int b = 0; b < 3; ++b) my_shard_of_the_data.emplace_back(randn({6, 4}), randint(0, 3, {6}));
  const auto write_weights = [&](const std::string& file) {
    const std::map<std::string, Tensor> w = as_map(mlp->state_dict());
    save_safetensors(file, std::vector<std::pair<std::string, Tensor>>(w.begin(), w.end()));
  };
  write_weights("rank" + rank + "_initial.safetensors");
  // clang-format off
Fabric fab({.accelerator = "cpu", .strategy = "ddp", .devices = 2});
fab.launch([&](Fabric& fab) {                // every rank runs this and returns its own result
  auto [model, opt] = fab.setup(mlp, sgd);   // rank 0's weights are broadcast to all
  for (auto& [x, y] : my_shard_of_the_data) {
    opt.zero_grad();
    fab.backward(cross_entropy(model(x), y)); // gradients averaged across ranks, overlapped with backward
    opt.step();
  }
  fab.save("ckpt", {{"model", model}});      // rank 0 writes, the others wait
});
  // clang-format on
  EXPECT_EQ(std::to_string(fab.global_rank()), rank);
  EXPECT_EQ(fab.world_size(), 2);
  write_weights("rank" + rank + "_trained.safetensors");
}

TEST(ReadmeExamples, DdpTrainingOnTwoProcesses) {
  InTempDir dir("readme_ddp");
  const dist_test::ChildResult r = dist_test::run_test_in_child(
      "ReadmeExamples.DISABLED_DdpTrainingWorker", {{"FABRIC_README_DDP_DIR", dir.path().string()}},
      std::chrono::seconds(120));
  ASSERT_FALSE(r.timed_out);
  ASSERT_EQ(r.status, 0);
  const auto weights = [](const std::string& file) {
    return values_of(load_safetensors(file).tensors);
  };
  const auto initial0 = weights("rank0_initial.safetensors");
  const auto initial1 = weights("rank1_initial.safetensors");
  const auto trained0 = weights("rank0_trained.safetensors");
  EXPECT_NE(initial0, initial1);
  EXPECT_NE(trained0, initial0);
  // Rank 0's start, averaged gradients of different data: both ranks end with the same weights,
  // which rank 0 saved.
  EXPECT_EQ(weights("rank1_trained.safetensors"), trained0);
  EXPECT_EQ(weights("ckpt/model.safetensors"), trained0);
}

// Records the type of every submodule of the module set up (the SyncBatchNorm example's net).
struct SetUpTypes : Callback {
  void on_after_setup(Fabric&, nn::Module& module) override {
    for (const auto& [name, child] : module.named_modules()) types[name] = child->type_name();
  }
  std::map<std::string, std::string> types;
};

TEST(ReadmeExamples, SyncBatchNormOnTwoProcesses) {
  auto set_up = std::make_shared<SetUpTypes>();
  Fabric fab({.accelerator = "cpu",
              .strategy = "ddp",
              .devices = 2,
              .callbacks = {set_up},
              .timeout = std::chrono::seconds(60),
              .launch_argv = dist_test::self_argv()});
  // clang-format off
fab.launch([](fabric::Fabric& fab) {
  auto net = fabric::nn::make<fabric::nn::CNN>({.batch_norm = true});
  fabric::distributed::convert_sync_batchnorm(net);  // features.1 and features.5 are synced now
  fabric::optim::SGD sgd(net->parameters(), {.lr = 0.05});
  auto [model, opt] = fab.setup(net, sgd);
  // ... each rank's batch is normalised with the global batch's mean and variance
});
  // clang-format on
  EXPECT_EQ(fab.world_size(), 2);
  EXPECT_EQ(set_up->types["features.1"], "SyncBatchNorm");
  EXPECT_EQ(set_up->types["features.5"], "SyncBatchNorm");
  EXPECT_EQ(set_up->types["features.0"], "Conv2d");
  EXPECT_EQ(set_up->types["features.4"], "Conv2d");
}

}  // namespace
}  // namespace fabric
