// Arguments torch refuses and fabric took silently: embedding_bag's padding_idx outside
// [-num_embeddings, num_embeddings) (the padding entry was just never matched), per_sample_weights
// of another dtype than the weight (a float64 result, or integer weights), an integer weight table;
// lp_pool's norm_type 0 (all inf; torch divides by it). And LPPool1d's size message in one dim.
#include <gtest/gtest.h>

#include <vector>

#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

TEST(EmbeddingBagArguments, PaddingIdxAndDtypesAreCheckedAsTorchDoes) {
  const Tensor w = arange(30, DType::float32).reshape({10, 3});
  const Tensor idx = from_vector<int64_t>({1, 9}), off = from_vector<int64_t>({0});
  for (int64_t p : {10, -11})
    EXPECT_CONTAINS(
        thrown<ValueError>([&] { embedding_bag(w, idx, off, "sum", Tensor(), false, p); }),
        "embedding_bag: padding_idx must be within the number of embeddings, -10 through 9, but "
        "got " +
            std::to_string(p));
  // -1 is the last entry, 9: left out of the bag.
  EXPECT_EQ(embedding_bag(w, idx, off, "sum", Tensor(), false, -1).to_vector<float>(),
            (std::vector<float>{3, 4, 5}));
  EXPECT_CONTAINS(
      thrown<DTypeError>(
          [&] { embedding_bag(w, idx, off, "sum", ones({2}, {.dtype = DType::float64})); }),
      "embedding_bag: per_sample_weights must have weight's dtype float32, got float64");
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    embedding_bag(w, idx, off, "sum", from_vector<int64_t>({2, 3}));
                  }),
                  "got int64");
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    embedding_bag(zeros({10, 3}, {.dtype = DType::int64}), idx, off, "sum");
                  }),
                  "embedding_bag: weight must be float16, bfloat16, float32 or float64, got int64");
}

TEST(LPPoolArguments, NormTypeZeroIsRefused) {
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    lp_pool1d(ones({1, 1, 4}), 0.0, 2);
                  }),
                  "lp_pool1d: norm_type must be non-zero");
  EXPECT_CONTAINS(thrown<ValueError>([] {
                    lp_pool2d(ones({1, 1, 4, 4}), 0.0, {2});
                  }),
                  "lp_pool2d: norm_type must be non-zero");
  EXPECT_CONTAINS(thrown<ValueError>([] { make<LPPool2d>({.norm_type = 0, .kernel_size = {2}}); }),
                  "LPPool2d: norm_type must be non-zero");
  EXPECT_CONTAINS(thrown<ValueError>([] { make<LPPool1d>({.norm_type = 2, .kernel_size = 0}); }),
                  "LPPool1d: kernel_size must be one size >= 1, got (0,)");
  EXPECT_CONTAINS(thrown<ValueError>([] { make<LPPool2d>({.norm_type = 2, .kernel_size = {0}}); }),
                  "LPPool2d: kernel_size must be 1 or 2 sizes >= 1");
}

// A norm_type that is not whole prints as Python prints the float (it printed 6 digits).
TEST(LPPoolArguments, NormTypePrintsAsPython) {
  EXPECT_EQ(make<LPPool1d>({.norm_type = 0.1 + 0.2, .kernel_size = 2})->str(),
            "LPPool1d(norm_type=0.30000000000000004, kernel_size=2, stride=None, ceil_mode=False)");
  EXPECT_EQ(make<LPPool2d>({.norm_type = 1.23456789, .kernel_size = {2}})->str(),
            "LPPool2d(norm_type=1.23456789, kernel_size=2, stride=None, ceil_mode=False)");
}

}  // namespace
}  // namespace fabric::nn
