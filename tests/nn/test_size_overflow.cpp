// Layer constructors with sizes whose element counts (or derived widths) overflow int64: a
// ShapeError naming the layer or shape, never a wrapped size, a crash or a model that "works".
#include <gtest/gtest.h>

#include "nn/nn.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

TEST(NNSizeOverflow, LinearAndEmbeddingWithHugeShapes) {
  // (2^62, 8) float32: 2^65 elements; the bias alone (2^62 float32) is 2^64 bytes. Was a SIGSEGV.
  EXPECT_THROW(Linear({.in_features = 8, .out_features = int64_t{1} << 62}), ShapeError);
  EXPECT_THROW(Linear({.in_features = int64_t{1} << 40, .out_features = int64_t{1} << 40}),
               ShapeError);
  EXPECT_THROW(Embedding({.num_embeddings = int64_t{1} << 40, .embedding_dim = int64_t{1} << 40}),
               ShapeError);
}

TEST(NNSizeOverflow, DerivedWidthsAreChecked) {
  // channels2 * side * side = 2^4 * 2^38 * 2^38 wrapped to 0: a Linear(0, 10) classifier.
  EXPECT_CONTAINS(
      thrown<ShapeError>([] { CNN({.image_size = int64_t{1} << 40, .channels2 = 16}); }), "CNN");
  // 4 * n_embd wrapped to 0 (c_fc) before the (2^62,) bias of c_proj was sized.
  EXPECT_CONTAINS(thrown<ShapeError>(
                      [] { BlockMLP({.n_embd = int64_t{1} << 62, .n_head = 1, .bias = false}); }),
                  "BlockMLP");
  EXPECT_CONTAINS(
      thrown<ShapeError>([] {
        CausalSelfAttention({.n_embd = (int64_t{1} << 62) + 2, .n_head = 1, .bias = false});
      }),
      "CausalSelfAttention");
}

}  // namespace
}  // namespace fabric::nn
