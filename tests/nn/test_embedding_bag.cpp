// nn::EmbeddingBag against torch 1.13 (tests/nn/embedding_bag_torch_rows.h, from
// tools/fixtures/make_embedding_bag_rows.py): every mode's output and the gradients of the weight
// and of per_sample_weights in float64, with empty bags, padding_idx and include_last_offset; plus
// key, init, printout and the argument errors; and that sum/mean add rows into bags row-wise.
#include <gtest/gtest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"
#include "tests/nn/embedding_bag_torch_rows.h"
#include "tests/nn/mha_test_helpers.h"

namespace fabric::nn {
namespace {

using mha_testing::expect_close;
using mha_testing::f64;

TEST(EmbeddingBag, MatchesTorch) {
  for (const testing::EmbeddingBagRow& r : testing::embedding_bag_rows()) {
    SCOPED_TRACE(r.name);
    auto bag = make<EmbeddingBag>(
        {.num_embeddings = r.num_embeddings,
         .embedding_dim = r.embedding_dim,
         .mode = r.mode,
         .padding_idx = r.padding_idx < 0 ? std::nullopt : std::optional<int64_t>(r.padding_idx),
         .include_last_offset = r.include_last_offset});
    bag->to(DType::float64);
    {
      NoGradGuard no_grad;
      bag->weight.copy_(f64(r.weight, bag->weight.sizes()));
    }
    const Tensor input = from_vector(r.input, r.input_shape);
    const Tensor offsets =
        r.has_offsets ? from_vector(r.offsets, {static_cast<int64_t>(r.offsets.size())}) : Tensor();
    const Tensor psw = r.per_sample_weights.empty()
                           ? Tensor()
                           : f64(r.per_sample_weights, r.input_shape).set_requires_grad(true);
    const Tensor out = bag->forward(input, offsets, psw);
    expect_close(out, r.out, "output");
    sum(mul(out, f64(r.g_out, out.sizes()))).backward();
    expect_close(bag->weight.grad(), r.weight_grad, "weight grad");
    if (psw.defined())
      expect_close(psw.grad(), r.per_sample_weights_grad, "per_sample_weights grad");
  }
}

// On the CPU every mode reduces each bag's rows in place (the fused kernel): no (lookups, dim)
// gather nor a bag index at its shape is made, and the output's history is one node, torch's.
TEST(EmbeddingBag, BagsReduceInPlaceUnderOneNode) {
  struct Row {
    const char* mode;
    const char* node;
  };
  constexpr int64_t kBags = 64, kPerBag = 32, kDim = 64;
  const int64_t rows_bytes = kBags * kPerBag * kDim * 4;  // the gathered float32 rows
  const Tensor weight = randn({1000, kDim}).set_requires_grad(true);
  const Tensor input = randint(0, 1000, {kBags, kPerBag});
  for (const Row& r : std::vector<Row>{{"sum", "EmbeddingBagBackward0"},
                                       {"mean", "EmbeddingBagBackward0"},
                                       {"max", "EmbeddingBagBackward0"}}) {
    SCOPED_TRACE(r.mode);
    cpu_allocator().reset_peak();
    const int64_t before = cpu_allocator().stats().allocated_bytes;
    const Tensor out = embedding_bag(weight, input, Tensor(), r.mode);
    const int64_t scratch = cpu_allocator().stats().peak_allocated_bytes - before;
    EXPECT_EQ(grad_fn_name(out), r.node);
    EXPECT_LT(scratch, rows_bytes / 2) << "bytes allocated beyond the inputs";
  }
}

// Without a graph to record, sum and mean never hold all the gathered rows at once; the rows of a
// bag are added in the same order either way, so the result is the same bits as the recorded
// forward's, across many bags, padding and per_sample_weights.
TEST(EmbeddingBag, InferenceBlocksMatchTheRecordedForward) {
  constexpr int64_t kLookups = 40000;
  const int64_t rows_bytes = kLookups * 16 * 4;  // all the gathered float32 rows
  const Tensor weight = randn({300, 16}).set_requires_grad(true);
  const Tensor input = randint(0, 300, {kLookups});
  const Tensor offsets = arange(Scalar(0), Scalar(kLookups), Scalar(7), DType::int64);
  const Tensor psw = randn({kLookups});
  struct Row {
    const char* mode;
    Tensor per_sample_weights;
    std::optional<int64_t> padding_idx;
  };
  for (const Row& r : std::vector<Row>{{"sum", psw, std::nullopt}, {"mean", Tensor(), 5}}) {
    SCOPED_TRACE(r.mode);
    const Tensor recorded =
        embedding_bag(weight, input, offsets, r.mode, r.per_sample_weights, false, r.padding_idx);
    ASSERT_TRUE(recorded.requires_grad());
    NoGradGuard no_grad;
    cpu_allocator().reset_peak();
    const int64_t before = cpu_allocator().stats().allocated_bytes;
    const Tensor blocked =
        embedding_bag(weight, input, offsets, r.mode, r.per_sample_weights, false, r.padding_idx);
    const int64_t scratch = cpu_allocator().stats().peak_allocated_bytes - before;
    EXPECT_LT(scratch, rows_bytes * 7 / 5) << "bytes allocated beyond the inputs";
    EXPECT_EQ(blocked.to_vector<float>(), recorded.detach().to_vector<float>());
  }
}

TEST(EmbeddingBag, KeyInitAndRepr) {
  auto bag = make<EmbeddingBag>(
      {.num_embeddings = 50, .embedding_dim = 40, .mode = "sum", .padding_idx = -2});
  EXPECT_EQ(bag->state_dict().keys(), (std::vector<std::string>{"weight"}));
  EXPECT_EQ(bag->str(), "EmbeddingBag(50, 40, mode=sum, padding_idx=48)");
  EXPECT_EQ(make<EmbeddingBag>({.num_embeddings = 10, .embedding_dim = 3})->str(),
            "EmbeddingBag(10, 3, mode=mean)");
  // N(0, 1), the padding row zeroed.
  EXPECT_EQ(max(abs(bag->weight.select(0, 48))).item<float>(), 0.f);
  const Tensor rest = bag->weight.narrow(0, 0, 48);
  EXPECT_NEAR(mean(rest).item<float>(), 0.f, 0.1f);
  EXPECT_NEAR(var(rest).item<float>(), 1.f, 0.2f);
  // 2-D input through operator(): one bag per row.
  EXPECT_EQ((*bag)(from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {3, 2})).sizes(), (Shape{3, 40}));
}

TEST(EmbeddingBag, Errors) {
  auto bag = make<EmbeddingBag>({.num_embeddings = 10, .embedding_dim = 3, .mode = "sum"});
  auto max_bag = make<EmbeddingBag>({.num_embeddings = 10, .embedding_dim = 3, .mode = "max"});
  const Tensor idx = from_vector<int64_t>({1, 2, 3}, {3});
  auto offs = [](std::vector<int64_t> v) {
    return from_vector(v, {static_cast<int64_t>(v.size())});
  };
  struct Row {
    const char* name;
    std::function<void()> call;
    const char* message;
  };
  const std::vector<Row> value_rows = {
      {"mode", [] { EmbeddingBag m({.num_embeddings = 3, .embedding_dim = 2, .mode = "min"}); },
       "EmbeddingBag: mode has to be one of sum, mean or max, got 'min'"},
      {"offsets_with_2d",
       [&] {
         bag->forward(idx.view({1, 3}), offs({0}));
       },
       "if input is 2D, then offsets has to be None"},
      {"1d_without_offsets", [&] { (*bag)(idx); }, "offsets has to be a 1D Tensor but got None"},
      {"first_offset", [&] { bag->forward(idx, offs({1})); },
       "offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from "
       "position 0. However, got 1"},
      {"offsets_past_end",
       [&] {
         bag->forward(idx, offs({0, 4}));
       },
       "offsets[-1] can not be greater than input's length 3 but got offsets[-1] of 4"},
      {"offsets_decrease",
       [&] {
         bag->forward(idx, offs({0, 2, 1}));
       },
       "offsets must not decrease, got offsets[1] = 2 and offsets[2] = 1"},
      {"per_sample_weights_shape", [&] { bag->forward(idx, offs({0}), zeros({2})); },
       "If per_sample_weights ((2,)) is not None, then it must have the same shape as the input "
       "((3,))"},
  };
  for (const Row& r : value_rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(thrown<ValueError>(r.call), r.message);
  }
  EXPECT_CONTAINS(
      thrown<NotImplementedError>([&] { max_bag->forward(idx, offs({0}), zeros({3})); }),
      "per_sample_weights is only supported for mode='sum' (got mode='max')");
  EXPECT_CONTAINS(thrown<IndexError>([&] {
                    bag->forward(offs({1, 12}), offs({0}));
                  }),
                  "Expected idx >= 0 && idx < num_embeddings (10) but found idx to be 12");
  EXPECT_CONTAINS(thrown<IndexError>([] {
                    EmbeddingBag m({.num_embeddings = 3, .embedding_dim = 2, .padding_idx = 3});
                  }),
                  "padding_idx 3 must be within num_embeddings 3");
  EXPECT_CONTAINS(thrown<ShapeError>([&] {
                    (*bag)(zeros({2, 2, 2}, {.dtype = DType::int64}));
                  }),
                  "input has to be 1D or 2D Tensor");
  EXPECT_CONTAINS(thrown<DTypeError>([&] { bag->forward(zeros({3}), offs({0})); }),
                  "expected int64 or int32 indices, got float32");
}

}  // namespace
}  // namespace fabric::nn
