// nn::MultiheadAttention against torch 1.13 (tests/nn/mha_fixture.h, from
// tools/fixtures/make_mha_rows.py): outputs, attention weights and every gradient in float64;
// plus keys, init, shapes, the printout and the argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/multihead_attention.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"
#include "tests/nn/mha_fixture.h"
#include "tests/nn/mha_test_helpers.h"

namespace fabric::nn {
namespace {

using namespace mha_testing;
using testing::MhaFixture;

TEST(MultiheadAttention, MatchesTorch) {
  for (const MhaFixture& f : testing::mha_fixtures()) {
    SCOPED_TRACE(f.name);
    auto mha = make<MultiheadAttention>({.embed_dim = f.embed_dim,
                                         .num_heads = f.num_heads,
                                         .bias = f.bias,
                                         .batch_first = f.batch_first});
    load_params(*mha, f.param_names, f.params);
    std::vector<Tensor> xs;
    for (size_t i = 0; i < f.inputs_values.size(); ++i)
      xs.push_back(
          f64(f.inputs_values[i], i == 0 ? f.query_shape : f.key_shape).set_requires_grad(true));
    // The same handle for shared inputs, as torch's fixture passes the same tensor.
    const Tensor& q = xs[0];
    const Tensor& k = f.inputs == 1 ? xs[0] : xs[1];
    const Tensor& v = f.inputs == 3 ? xs[2] : k;
    auto [out, weights] = mha->forward(q, k, v, mask_of(f.key_padding_mask), f.need_weights,
                                       mask_of(f.attn_mask), f.average_attn_weights);
    expect_close(out, f.out, "output");
    if (f.need_weights) {
      expect_close(weights, f.weights, "weights");
    } else {
      EXPECT_FALSE(weights.defined());
    }
    Tensor loss = sum(mul(out, f64(f.g_out, out.sizes())));
    if (weights.defined()) loss = add(loss, sum(mul(weights, f64(f.g_weights, weights.sizes()))));
    backward(loss);
    for (size_t i = 0; i < xs.size(); ++i)
      expect_close(xs[i].grad(), f.input_grads[i], "input " + std::to_string(i) + " grad");
    const Module::NamedTensors params = mha->named_parameters();
    for (size_t i = 0; i < params.size(); ++i)
      expect_close(params[i].second.grad(), f.param_grads[i], params[i].first + " grad");
  }
}

TEST(MultiheadAttention, KeysInitAndRepr) {
  auto mha = make<MultiheadAttention>({.embed_dim = 8, .num_heads = 2});
  EXPECT_EQ(mha->state_dict().keys(),
            (std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight",
                                      "out_proj.bias"}));
  EXPECT_EQ(mha->in_proj_weight.sizes(), (Shape{24, 8}));
  // torch's _reset_parameters: xavier_uniform_ over (3E, E), zero biases.
  const double bound = std::sqrt(6.0 / (8 + 24));
  EXPECT_LE(max(abs(mha->in_proj_weight)).item<float>(), bound);
  EXPECT_EQ(max(abs(mha->in_proj_bias)).item<float>(), 0.0f);
  EXPECT_EQ(max(abs(mha->out_proj->bias)).item<float>(), 0.0f);
  EXPECT_EQ(mha->str(),
            "MultiheadAttention(\n"
            "  (out_proj): NonDynamicallyQuantizableLinear(in_features=8, out_features=8, "
            "bias=True)\n"
            ")");
  auto no_bias = make<MultiheadAttention>({.embed_dim = 4, .num_heads = 4, .bias = false});
  EXPECT_EQ(no_bias->state_dict().keys(),
            (std::vector<std::string>{"in_proj_weight", "out_proj.weight"}));
}

TEST(MultiheadAttention, Shapes) {
  struct Row {
    const char* name;
    MultiheadAttentionOptions options;
    Shape query, key;
    bool average;
    Shape out, weights;
  };
  const std::vector<Row> rows = {
      {"seq_first",
       {.embed_dim = 8, .num_heads = 2},
       {5, 3, 8},
       {7, 3, 8},
       true,
       {5, 3, 8},
       {3, 5, 7}},
      {"batch_first",
       {.embed_dim = 8, .num_heads = 2, .batch_first = true},
       {3, 5, 8},
       {3, 7, 8},
       true,
       {3, 5, 8},
       {3, 5, 7}},
      {"per_head",
       {.embed_dim = 8, .num_heads = 4},
       {5, 3, 8},
       {7, 3, 8},
       false,
       {5, 3, 8},
       {3, 4, 5, 7}},
      {"unbatched", {.embed_dim = 8, .num_heads = 2}, {5, 8}, {7, 8}, true, {5, 8}, {5, 7}},
      {"unbatched_per_head",
       {.embed_dim = 8, .num_heads = 2},
       {5, 8},
       {7, 8},
       false,
       {5, 8},
       {2, 5, 7}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    auto mha = make<MultiheadAttention>(r.options);
    Tensor q = randn(r.query), kv = randn(r.key);
    auto [out, weights] = mha->forward(q, kv, kv, Tensor(), true, Tensor(), r.average);
    EXPECT_EQ(out.sizes(), r.out);
    EXPECT_EQ(weights.sizes(), r.weights);
    // Without weights the attention runs through scaled_dot_product_attention: same output.
    auto [fast, none] = mha->forward(q, kv, kv, Tensor(), false);
    EXPECT_FALSE(none.defined());
    EXPECT_LT(max(abs(sub(fast, out))).item<float>(), 1e-5f);
  }
  // forward(x): self-attention, the output only, so the layer fits a Sequential.
  auto mha = make<MultiheadAttention>({.embed_dim = 8, .num_heads = 2});
  Tensor x = randn({4, 2, 8});
  EXPECT_LT(max(abs(sub((*mha)(x), mha->forward(x, x, x).first))).item<float>(), 1e-6f);
}

TEST(MultiheadAttention, DropoutOnlyWhileTraining) {
  auto mha = make<MultiheadAttention>({.embed_dim = 8, .num_heads = 2, .dropout = 0.5});
  Tensor x = randn({6, 2, 8});
  mha->eval();
  Tensor a = mha->forward(x, x, x).second, b = mha->forward(x, x, x).second;
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  mha->train();
  // Dropped weights: some exact zeros among the per-head probabilities.
  Tensor w = mha->forward(x, x, x, Tensor(), true, Tensor(), false).second;
  EXPECT_GT(sum(eq(w, Scalar(0.0)).to(DType::float32)).item<float>(), 0.0f);
}

TEST(MultiheadAttention, Errors) {
  struct Row {
    const char* name;
    std::function<void()> call;
    const char* message;
  };
  auto mha = make<MultiheadAttention>({.embed_dim = 8, .num_heads = 2});
  const Tensor q = randn({5, 3, 8}), kv = randn({7, 3, 8});
  const std::vector<Row> value_rows = {
      {"indivisible", [] { MultiheadAttention m({.embed_dim = 6, .num_heads = 4}); },
       "embed_dim (6) must be divisible by num_heads (4)"},
      {"zero_heads", [] { MultiheadAttention m({.embed_dim = 6, .num_heads = 0}); },
       "must be positive"},
      {"bad_dropout",
       [] { MultiheadAttention m({.embed_dim = 6, .num_heads = 2, .dropout = 1.5}); },
       "dropout must be in [0, 1]"},
  };
  for (const Row& r : value_rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(thrown<ValueError>(r.call), r.message);
  }
  const std::vector<Row> shape_rows = {
      {"query_4d",
       [&] {
         mha->forward(randn({1, 5, 3, 8}), kv, kv);
       },
       "query must be"},
      {"key_2d",
       [&] {
         mha->forward(q, randn({7, 8}), randn({7, 8}));
       },
       "key and value must be 3-D"},
      {"key_value_differ",
       [&] {
         mha->forward(q, kv, randn({6, 3, 8}));
       },
       "does not match value"},
      {"embed_dim",
       [&] {
         mha->forward(randn({5, 3, 6}), kv, kv);
       },
       "expected embedding dimension 8"},
      {"batch",
       [&] {
         mha->forward(q, randn({7, 2, 8}), randn({7, 2, 8}));
       },
       "different batch sizes"},
      {"attn_mask_2d",
       [&] {
         mha->forward(q, kv, kv, Tensor(), true, zeros({5, 6}, {.dtype = DType::bool_}));
       },
       "2-D attn_mask is (5, 6), but should be (5, 7)"},
      {"attn_mask_3d",
       [&] {
         mha->forward(q, kv, kv, Tensor(), true, zeros({3, 5, 7}, {.dtype = DType::bool_}));
       },
       "should be (6, 5, 7)"},
      {"attn_mask_4d",
       [&] {
         mha->forward(q, kv, kv, Tensor(), true, zeros({1, 6, 5, 7}));
       },
       "attn_mask must be 2-D (L, S) or 3-D"},
      {"padding_1d", [&] { mha->forward(q, kv, kv, zeros({7}, {.dtype = DType::bool_})); },
       "key_padding_mask must be 2-D (N, S)"},
      {"padding_shape",
       [&] {
         mha->forward(q, kv, kv, zeros({3, 6}, {.dtype = DType::bool_}));
       },
       "expected key_padding_mask of shape (3, 7)"},
  };
  for (const Row& r : shape_rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(thrown<ShapeError>(r.call), r.message);
  }
  const std::vector<Row> dtype_rows = {
      {"int_padding",
       [&] {
         mha->forward(q, kv, kv, zeros({3, 7}, {.dtype = DType::int64}));
       },
       "key_padding_mask must be bool or floating, got int64"},
      {"int_attn_mask",
       [&] {
         mha->forward(q, kv, kv, Tensor(), true, zeros({5, 7}, {.dtype = DType::int32}));
       },
       "attn_mask must be bool or floating, got int32"},
      // In the layer's own name and shapes (it named linear and a reshaped input).
      {"int_query", [&] { mha->forward(q.to(DType::int64), kv, kv); },
       "MultiheadAttention: query must be float64, float32, float16 or bfloat16, got int64 of "
       "shape"},
  };
  for (const Row& r : dtype_rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(thrown<DTypeError>(r.call), r.message);
  }
}

}  // namespace
}  // namespace fabric::nn
