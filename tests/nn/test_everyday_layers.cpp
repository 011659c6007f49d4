// The everyday layers (AvgPool2d, MaxPool1d/AvgPool1d/AdaptiveAvgPool1d, InstanceNorm1d/2d,
// Softmax/LogSoftmax/Softmin, Unflatten, Dropout1d/2d): outputs and gradients against torch 1.13
// in float64 (tests/nn/everyday_layer_rows.h), reprs and state_dict keys as torch prints them,
// torch's errors and warnings, and channel dropout's masks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/capture_warnings.h"
#include "tests/common/expect_error.h"
#include "tests/nn/everyday_layer_rows.h"

namespace fabric::nn {
namespace {

using LayerFactory = std::function<std::shared_ptr<Module>()>;

// The layer of each fixture row, built as the fixture script builds torch's.
const std::map<std::string, LayerFactory>& fixture_layers() {
  static const std::map<std::string, LayerFactory> layers = {
      {"avg_pool2d/k2", [] { return make<AvgPool2d>({.kernel_size = 2}); }},
      {"avg_pool2d/k2x3_s1_p1_unbatched",
       [] {
         return make<AvgPool2d>({.kernel_size = {2, 3}, .stride = Int2(1), .padding = 1});
       }},
      {"max_pool1d/k3", [] { return make<MaxPool1d>({.kernel_size = 3}); }},
      {"max_pool1d/k3_s2_p1_unbatched",
       [] { return make<MaxPool1d>({.kernel_size = 3, .stride = 2, .padding = 1}); }},
      {"avg_pool1d/k3", [] { return make<AvgPool1d>({.kernel_size = 3}); }},
      {"avg_pool1d/k4_s2_p2",
       [] { return make<AvgPool1d>({.kernel_size = 4, .stride = 2, .padding = 2}); }},
      {"adaptive_avg_pool1d/3_of_7", [] { return make<AdaptiveAvgPool1d>({.output_size = 3}); }},
      {"adaptive_avg_pool1d/5_of_4_unbatched",
       [] { return make<AdaptiveAvgPool1d>({.output_size = 5}); }},
      {"instance_norm1d/default", [] { return make<InstanceNorm1d>({.num_features = 3}); }},
      {"instance_norm1d/unbatched", [] { return make<InstanceNorm1d>({.num_features = 3}); }},
      {"instance_norm2d/affine",
       [] { return make<InstanceNorm2d>({.num_features = 3, .affine = true}); }},
      {"instance_norm1d/affine_tracked_momentum0.2",
       [] {
         return make<InstanceNorm1d>(
             {.num_features = 3, .momentum = 0.2, .affine = true, .track_running_stats = true});
       }},
      {"instance_norm2d/tracked_eps1e-3",
       [] {
         return make<InstanceNorm2d>({.num_features = 2, .eps = 1e-3, .track_running_stats = true});
       }},
      {"softmax/dim1", [] { return make<Softmax>({.dim = 1}); }},
      {"log_softmax/dim-1", [] { return make<LogSoftmax>({.dim = -1}); }},
      {"softmin/dim0", [] { return make<Softmin>({.dim = 0}); }},
      {"unflatten/dim1_2x-1",
       [] {
         return make<Unflatten>({.dim = 1, .unflattened_size = {2, -1}});
       }},
  };
  return layers;
}

void expect_close(const Tensor& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  const std::vector<double> g = got.to(DType::float64).to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_NEAR(g[i], want[i], 1e-10 * std::max(1.0, std::abs(want[i])))
        << what << " element " << i;
}

Tensor f64(const std::vector<double>& v, const Shape& shape) {
  return from_vector(v, shape, {.dtype = DType::float64});
}

TEST(EverydayLayers, MatchTorchInFloat64) {
  for (const fixture::EverydayLayerRow& row : fixture::everyday_layer_rows()) {
    SCOPED_TRACE(row.name);
    auto it = fixture_layers().find(row.name);
    ASSERT_NE(it, fixture_layers().end()) << "no layer for fixture row " << row.name;
    std::shared_ptr<Module> layer = it->second();
    layer->to(DType::float64);
    auto* norm = dynamic_cast<InstanceNorm*>(layer.get());
    if (!row.weight.empty()) {
      ASSERT_NE(norm, nullptr);
      NoGradGuard no_grad;
      norm->weight.copy_(f64(row.weight, {static_cast<int64_t>(row.weight.size())}));
      norm->bias.copy_(f64(row.bias, {static_cast<int64_t>(row.bias.size())}));
    }
    Tensor x = f64(row.x, row.x_shape);
    x.set_requires_grad(true);
    Tensor y = (*layer)(x);
    expect_close(y, row.y, "output");
    y.backward(f64(row.g, y.sizes()));
    expect_close(x.grad(), row.dx, "input gradient");
    if (!row.dweight.empty()) {
      expect_close(norm->weight.grad(), row.dweight, "weight gradient");
      expect_close(norm->bias.grad(), row.dbias, "bias gradient");
    }
    if (!row.running_mean.empty()) {
      expect_close(norm->running_mean, row.running_mean, "running_mean after train");
      expect_close(norm->running_var, row.running_var, "running_var after train");
      // torch's _InstanceNorm never counts batches, though it keeps the buffer.
      EXPECT_EQ(norm->num_batches_tracked.item<int64_t>(), 0);
      layer->eval();
      expect_close((*layer)(x.detach()), row.eval_y, "eval output");
    }
  }
}

TEST(EverydayLayers, ReprsAndStateDictKeysAsTorch) {
  struct Row {
    std::shared_ptr<Module> layer;
    std::string repr;
    std::vector<std::string> keys;
  };
  const std::vector<Row> rows = {
      {make<AvgPool2d>({.kernel_size = 2}), "AvgPool2d(kernel_size=2, stride=2, padding=0)", {}},
      {make<AvgPool2d>({.kernel_size = {2, 3}, .stride = Int2(1), .padding = 1}),
       "AvgPool2d(kernel_size=(2, 3), stride=1, padding=1)",
       {}},
      {make<MaxPool1d>({.kernel_size = 3}),
       "MaxPool1d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=False)",
       {}},
      {make<MaxPool1d>({.kernel_size = 3, .stride = 2, .padding = 1}),
       "MaxPool1d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)",
       {}},
      {make<AvgPool1d>({.kernel_size = 3}),
       "AvgPool1d(kernel_size=(3,), stride=(3,), padding=(0,))",
       {}},
      {make<AvgPool1d>({.kernel_size = 3, .stride = 2, .padding = 1}),
       "AvgPool1d(kernel_size=(3,), stride=(2,), padding=(1,))",
       {}},
      {make<AdaptiveAvgPool1d>({.output_size = 5}), "AdaptiveAvgPool1d(output_size=5)", {}},
      {make<InstanceNorm1d>({.num_features = 3}),
       "InstanceNorm1d(3, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False)",
       {}},
      {make<InstanceNorm2d>({.num_features = 4,
                             .eps = 1e-3,
                             .momentum = 0.2,
                             .affine = true,
                             .track_running_stats = true}),
       "InstanceNorm2d(4, eps=0.001, momentum=0.2, affine=True, track_running_stats=True)",
       {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}},
      {make<InstanceNorm1d>({.num_features = 2, .affine = true}),
       "InstanceNorm1d(2, eps=1e-05, momentum=0.1, affine=True, track_running_stats=False)",
       {"weight", "bias"}},
      {make<Softmax>({.dim = 1}), "Softmax(dim=1)", {}},
      {make<Softmax>(), "Softmax(dim=None)", {}},
      {make<LogSoftmax>({.dim = -1}), "LogSoftmax(dim=-1)", {}},
      {make<Softmin>({.dim = 0}), "Softmin(dim=0)", {}},
      {make<Unflatten>({.dim = 1, .unflattened_size = {2, 5}}),
       "Unflatten(dim=1, unflattened_size=(2, 5))",
       {}},
      {make<Unflatten>({.dim = -1, .unflattened_size = {5}}),
       "Unflatten(dim=-1, unflattened_size=(5,))",
       {}},
      {make<Dropout1d>(), "Dropout1d(p=0.5, inplace=False)", {}},
      {make<Dropout2d>({.p = 0.3}), "Dropout2d(p=0.3, inplace=False)", {}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.repr);
    EXPECT_EQ(r.layer->str(), r.repr);
    EXPECT_EQ(r.layer->state_dict().keys(), r.keys);
  }
}

// A call that must throw: the error type is checked by the lambda, the message by a fragment.
struct ErrorRow {
  std::string name;
  std::function<void()> call;
  std::string fragment;
};

template <class E>
std::function<void()> throws(std::function<void()> f, std::string* message) {
  return [f, message] {
    try {
      f();
    } catch (const E& e) {
      *message = e.what();
      return;
    }
    *message = "<no " + std::string(typeid(E).name()) + " thrown>";
  };
}

TEST(EverydayLayers, ErrorsNameTheProblem) {
  std::string msg;
  const std::vector<ErrorRow> rows = {
      {"AvgPool2d ceil_mode",
       throws<ValueError>([] { make<AvgPool2d>({.kernel_size = 2, .ceil_mode = true}); }, &msg),
       "ceil_mode=True is not supported"},
      {"AvgPool2d count_include_pad",
       throws<ValueError>([] { make<AvgPool2d>({.kernel_size = 2, .count_include_pad = false}); },
                          &msg),
       "count_include_pad=False is not supported"},
      {"AvgPool2d divisor_override",
       throws<ValueError>([] { make<AvgPool2d>({.kernel_size = 2, .divisor_override = 3}); }, &msg),
       "divisor_override=3 is not supported"},
      {"AvgPool2d padding",
       throws<ValueError>([] { make<AvgPool2d>({.kernel_size = 2, .padding = 2}); }, &msg),
       "padding 2 should be at most half of kernel_size 2"},
      {"MaxPool1d dilation",
       throws<ValueError>([] { make<MaxPool1d>({.kernel_size = 2, .dilation = 2}); }, &msg),
       "dilation=2 is not supported"},
      {"AvgPool1d kernel", throws<ValueError>([] { make<AvgPool1d>({.kernel_size = 0}); }, &msg),
       "kernel_size 0 and stride 0 must be positive"},
      {"max_pool1d 4-D input",
       throws<ShapeError>(
           [] {
             max_pool1d(zeros({1, 2, 3, 4}), 2);
           },
           &msg),
       "max_pool1d: expected a 2D (C, L) or 3D (N, C, L) input, got shape (1, 2, 3, 4)"},
      {"avg_pool1d padding",
       throws<ValueError>(
           [] {
             avg_pool1d(zeros({1, 2, 8}), 2, 1, 2);
           },
           &msg),
       "avg_pool1d: pad should be at most half of kernel size, got padding 2 and kernel_size 2"},
      {"adaptive_avg_pool1d negative size",
       throws<ValueError>(
           [] {
             adaptive_avg_pool1d(zeros({1, 2, 8}), -1);
           },
           &msg),
       "adaptive_avg_pool1d: output_size must be >= 0, got -1"},
      {"InstanceNorm1d 4-D input",
       throws<ValueError>(
           [] {
             (*make<InstanceNorm1d>({.num_features = 2}))(zeros({1, 2, 3, 4}));
           },
           &msg),
       "InstanceNorm1d: expected 2D or 3D input (got 4D input"},
      {"InstanceNorm2d 2-D input",
       throws<ValueError>(
           [] {
             (*make<InstanceNorm2d>({.num_features = 2}))(zeros({2, 3}));
           },
           &msg),
       "InstanceNorm2d: expected 3D or 4D input (got 2D input"},
      {"InstanceNorm affine num_features",
       throws<ShapeError>(
           [] {
             (*make<InstanceNorm1d>({.num_features = 2, .affine = true}))(zeros({1, 3, 4}));
           },
           &msg),
       "expected input's size at dim=1 to match num_features (2), but got: 3 (the weight"},
      {"instance_norm one spatial element",
       throws<ValueError>(
           [] {
             instance_norm(zeros({2, 3, 1}));
           },
           &msg),
       "expected more than 1 spatial element when training, got input size (2, 3, 1)"},
      {"instance_norm eval without running stats",
       throws<ValueError>(
           [] {
             instance_norm(zeros({2, 3, 4}), {}, {}, {}, {}, false);
           },
           &msg),
       "expected running_mean and running_var to be defined when use_input_stats is false"},
      {"instance_norm weight shape",
       throws<ShapeError>(
           [] {
             instance_norm(zeros({2, 3, 4}), {}, {}, ones({2}));
           },
           &msg),
       "weight must have shape (3,) for input (2, 3, 4), got (2,)"},
      {"Unflatten sizes",
       throws<ShapeError>(
           [] {
             (*make<Unflatten>({.dim = 1, .unflattened_size = {2, 4}}))(zeros({2, 10}));
           },
           &msg),
       "unflatten: Provided sizes (2, 4) don't multiply up to the size of dim 1 (10)"},
      {"Unflatten two -1",
       throws<ValueError>(
           [] {
             make<Unflatten>({.dim = 1, .unflattened_size = {-1, -1}});
           },
           &msg),
       "only one dimension can be inferred"},
      {"Unflatten empty", throws<ValueError>([] { make<Unflatten>({.dim = 1}); }, &msg),
       "unflattened_size must be non-empty"},
      {"Dropout2d p", throws<ValueError>([] { make<Dropout2d>({.p = 1.5}); }, &msg),
       "dropout probability has to be between 0 and 1, but got 1.5"},
      {"Dropout1d 4-D input",
       throws<ShapeError>(
           [] {
             (*make<Dropout1d>())(zeros({1, 2, 3, 4}));
           },
           &msg),
       "dropout1d: Expected 2D or 3D input, but received a 4D input"},
      {"Dropout2d 1-D input", throws<ShapeError>([] { (*make<Dropout2d>())(zeros({4})); }, &msg),
       "feature dropout requires at least 2 dimensions in the input, got shape (4,)"},
      // As torch, whose float mask cannot be cast into an integer input (it returned float32).
      {"Dropout1d int64",
       throws<DTypeError>(
           [] {
             (*make<Dropout1d>())(zeros({2, 2, 3}, {.dtype = DType::int64}));
           },
           &msg),
       "Dropout1d: expects a float64, float32, float16 or bfloat16 input, got int64"},
      {"Dropout2d bool",
       throws<DTypeError>(
           [] {
             (*make<Dropout2d>())(zeros({1, 2, 3, 3}, {.dtype = DType::bool_}));
           },
           &msg),
       "Dropout2d: expects a float64, float32, float16 or bfloat16 input, got bool"},
      {"Dropout1d undefined", throws<ValueError>([] { (*make<Dropout1d>())(Tensor()); }, &msg),
       "Dropout1d: got an undefined tensor"},
  };
  test::CapturedWarnings quiet;  // Dropout2d warns about a 1-D input before refusing it
  for (const ErrorRow& r : rows) {
    SCOPED_TRACE(r.name);
    msg.clear();
    r.call();
    EXPECT_NE(msg.find(r.fragment), std::string::npos) << msg;
  }
}

// The 1-d pools run as the 2-d ones over a unit height; a non-float input is refused in the 1-d
// op's name and the caller's shape, not max_pool2d's unsqueezed (1, 2, 1, 4).
TEST(EverydayLayers, OneDimPoolsRefuseNonFloatInputsInTheirOwnShapes) {
  const Tensor i = zeros({1, 2, 4}, {.dtype = DType::int64});
  const Tensor b = zeros({2, 4}, {.dtype = DType::bool_});
  const std::string supported =
      " has an unsupported dtype; supported: float64, float32, bfloat16, float16";
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] { max_pool1d(i, 2); }, "max_pool1d: input (1, 2, 4) int64" + supported},
      {[&] { avg_pool1d(i, 2); }, "avg_pool1d: input (1, 2, 4) int64" + supported},
      {[&] { adaptive_avg_pool1d(i, 1); },
       "adaptive_avg_pool1d: input (1, 2, 4) int64" + supported},
      {[&] { adaptive_max_pool1d(i, 1); },
       "adaptive_max_pool1d: input (1, 2, 4) int64" + supported},
      {[&] { max_pool1d(b, 2); }, "max_pool1d: input (2, 4) bool" + supported},
      {[&] { (*make<MaxPool1d>({.kernel_size = 2}))(i); },
       "max_pool1d: input (1, 2, 4) int64" + supported},
      {[&] { (*make<AvgPool1d>({.kernel_size = 2}))(i); },
       "avg_pool1d: input (1, 2, 4) int64" + supported},
      {[&] { (*make<AdaptiveAvgPool1d>({.output_size = 1}))(i); },
       "adaptive_avg_pool1d: input (1, 2, 4) int64" + supported},
  };
  for (const auto& [call, message] : cases) {
    SCOPED_TRACE(message);
    EXPECT_CONTAINS(thrown<DTypeError>(call), message);
  }
}

// An undefined Tensor() given to a layer names the layer (or the op it is, for the ones named
// after their functional op), not the Tensor accessor that first reads it.
TEST(EverydayLayers, UndefinedInputNamesTheLayer) {
  test::CapturedWarnings quiet;  // Softmax without a dim warns before it looks at the input
  const Tensor U;
  const BlockOptions tiny{.n_embd = 4, .n_head = 1, .block_size = 4};
  auto dropout_eval = make<Dropout>();
  dropout_eval->eval();
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] { (*make<Flatten>())(U); }, "Flatten: got an undefined tensor"},
      {[&] { (*make<Softmax>())(U); }, "softmax: got an undefined tensor"},
      {[&] { (*make<Softmax>({.dim = 1}))(U); }, "softmax: got an undefined tensor"},
      {[&] { (*make<LogSoftmax>())(U); }, "log_softmax: got an undefined tensor"},
      {[&] { (*make<Softmin>({.dim = 0}))(U); }, "softmin: got an undefined tensor"},
      {[&] { (*make<LayerNorm>({.normalized_shape = {3}}))(U); },
       "layer_norm: got an undefined tensor"},
      {[&] { (*make<RMSNorm>({.normalized_shape = {3}}))(U); },
       "rms_norm: got an undefined tensor"},
      {[&] { (*make<Dropout>())(U); }, "dropout: got an undefined tensor"},
      {[&] { (*dropout_eval)(U); }, "dropout: got an undefined tensor"},
      {[&] { make<MSELoss>()->forward(zeros({2}), U); },
       "mse_loss: got an undefined tensor (target)"},
      {[&] { (*make<CausalSelfAttention>(tiny))(U); },
       "CausalSelfAttention: got an undefined tensor"},
      {[&] { (*make<Block>(tiny))(U); }, "Block: got an undefined tensor"},
      {[&] { (*make<CNN>({.image_size = 4, .channels1 = 2, .channels2 = 2}))(U); },
       "CNN: got an undefined tensor"},
      {[&] {
         (*make<GPT>({.vocab_size = 8, .block_size = 4, .n_layer = 1, .n_head = 1, .n_embd = 4}))(
             U);
       },
       "GPT.forward: got an undefined tensor"},
      {[&] { init::calculate_fan_in_and_fan_out(U); },
       "nn::init::calculate_fan_in_and_fan_out: got an undefined tensor"},
  };
  for (const auto& [call, message] : cases) {
    SCOPED_TRACE(message);
    EXPECT_CONTAINS(thrown<ValueError>(call), message);
  }
}

TEST(EverydayLayers, WarningsAsTorch) {
  struct Row {
    std::string name;
    std::function<void()> call;
    std::string fragment;  // of the one warning expected
  };
  const std::vector<Row> rows = {
      {"Softmax implicit dim",
       [] {
         (*make<Softmax>())(randn({2, 3}));
       },
       "Implicit dimension choice for softmax has been deprecated"},
      {"Dropout2d 3-D input",
       [] {
         (*make<Dropout2d>())(randn({2, 3, 4}));
       },
       "dropout2d: Received a 3D input to dropout2d"},
      {"Dropout2d 5-D input",
       [] {
         (*make<Dropout2d>())(randn({1, 2, 2, 2, 2}));
       },
       "dropout2d: Received a 5-D input to dropout2d, which is deprecated"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    test::CapturedWarnings warnings;
    r.call();
    const auto messages = warnings.messages();
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_NE(messages[0].find(r.fragment), std::string::npos) << messages[0];
  }
}

TEST(EverydayLayers, SoftmaxImplicitDimIsTorchs) {
  test::CapturedWarnings quiet;
  struct Row {
    Shape x;
    int64_t dim;
  };
  for (const Row& r : std::vector<Row>{{{5}, 0}, {{2, 3}, 1}, {{2, 3, 4}, 0}, {{2, 3, 4, 5}, 1}}) {
    Tensor x = randn(r.x);
    EXPECT_EQ((*make<Softmax>())(x).to_vector<float>(), softmax(x, r.dim).to_vector<float>());
  }
}

// Per (sample, channel): every element zero, or every element x / (1 - p).
void expect_whole_channels(const Tensor& x, const Tensor& y, double p, int64_t* dropped,
                           int64_t* kept) {
  const int64_t planes = x.size(0) * x.size(1), plane = x.numel() / planes;
  const auto xv = x.to_vector<double>(), yv = y.to_vector<double>();
  for (int64_t c = 0; c < planes; ++c) {
    const bool zero = yv[c * plane] == 0.0;
    (zero ? *dropped : *kept) += 1;
    for (int64_t i = c * plane; i < (c + 1) * plane; ++i)
      EXPECT_NEAR(yv[i], zero ? 0.0 : xv[i] / (1.0 - p), 1e-12) << "channel " << c;
  }
}

TEST(EverydayLayers, ChannelDropoutZeroesWholeChannels) {
  struct Row {
    std::string name;
    std::function<std::shared_ptr<ChannelDropout>(Generator*)> make_layer;
    double p;
    Shape x;
  };
  const std::vector<Row> rows = {
      {"Dropout1d p=0.5",
       [](Generator* g) { return make<Dropout1d>({.p = 0.5, .generator = g}); },
       0.5,
       {40, 16, 5}},
      {"Dropout2d p=0.3",
       [](Generator* g) { return make<Dropout2d>({.p = 0.3, .generator = g}); },
       0.3,
       {40, 16, 3, 4}},
      {"Dropout1d p=0",
       [](Generator* g) { return make<Dropout1d>({.p = 0.0, .generator = g}); },
       0.0,
       {4, 3, 5}},
      {"Dropout2d p=1",
       [](Generator* g) { return make<Dropout2d>({.p = 1.0, .generator = g}); },
       1.0,
       {4, 3, 2, 2}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    Generator gen(1234);
    auto layer = r.make_layer(&gen);
    layer->to(DType::float64);
    Tensor x = randn(r.x, {.dtype = DType::float64}) + Scalar(10.0);  // no element is 0
    x.set_requires_grad(true);
    Tensor y = (*layer)(x);
    if (r.p == 1.0) {
      EXPECT_EQ(y.to_vector<double>(), std::vector<double>(x.numel(), 0.0));
    } else {
      int64_t dropped = 0, kept = 0;
      expect_whole_channels(x.detach(), y.detach(), r.p, &dropped, &kept);
      const double rate = static_cast<double>(dropped) / static_cast<double>(dropped + kept);
      EXPECT_NEAR(rate, r.p, 0.1) << dropped << " of " << dropped + kept << " dropped";
    }
    // The gradient is the mask: 1 / (1 - p) on kept channels, 0 on dropped ones.
    sum(y).backward();
    const auto gx = x.grad().to_vector<double>(), yv = y.to_vector<double>();
    for (size_t i = 0; i < gx.size(); ++i)
      EXPECT_NEAR(gx[i], yv[i] == 0.0 ? 0.0 : 1.0 / (1.0 - r.p), 1e-12);
    // The same seed draws the same mask; eval mode is the identity.
    Generator again(1234);
    EXPECT_EQ((*r.make_layer(&again))(x.detach()).to_vector<double>(), y.to_vector<double>());
    layer->eval();
    EXPECT_EQ((*layer)(x.detach()).to_vector<double>(), x.to_vector<double>());
  }
}

TEST(EverydayLayers, Dropout1dUnbatchedMasksChannels) {
  Generator gen(7);
  auto layer = make<Dropout1d>({.p = 0.5, .generator = &gen});
  Tensor x = randn({32, 6}, {.dtype = DType::float64}) + Scalar(10.0);  // (C, L)
  Tensor y = (*layer)(x);
  ASSERT_EQ(y.sizes(), x.sizes());
  int64_t dropped = 0, kept = 0;
  expect_whole_channels(x.unsqueeze(0), y.unsqueeze(0), 0.5, &dropped, &kept);
  EXPECT_GT(dropped, 0);
  EXPECT_GT(kept, 0);
}

}  // namespace
}  // namespace fabric::nn
