// Modules with no single-input forward (the decoder stack and the full Transformer: they always
// need memory, or src and tgt). Their forward(x) from Module is hidden by design: a direct call
// does not compile, and a call through Module (forward or operator(), as a container or a strategy
// makes it) throws a NotImplementedError naming the type instead of running anything.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "nn/transformer_decoder.h"
#include "nn/transformer_model.h"
#include "tensor/factory.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

template <class M>
concept HasSingleInputForward = requires(M& m, const Tensor& x) {
  m.forward(x);
};
template <class M>
concept HasTwoInputForward = requires(M& m, const Tensor& x) {
  m.forward(x, x);
};

// Hidden, not merely unimplemented: the mistake is caught where it is written.
static_assert(!HasSingleInputForward<TransformerDecoderLayer>);
static_assert(!HasSingleInputForward<TransformerDecoder>);
static_assert(!HasSingleInputForward<Transformer>);
static_assert(HasTwoInputForward<TransformerDecoderLayer>);
static_assert(HasTwoInputForward<TransformerDecoder>);
static_assert(HasTwoInputForward<Transformer>);
static_assert(HasSingleInputForward<Module>);

TransformerDecoderLayerOptions small_layer() {
  return {.d_model = 4, .nhead = 1, .dim_feedforward = 8, .dropout = 0.0};
}

void expect_no_single_input_forward(Module& m, const std::string& type) {
  const Tensor x = randn({3, 2, 4});
  const std::string want = type + " has no single-input forward(x)";
  EXPECT_CONTAINS(thrown<NotImplementedError>([&] { m.forward(x); }), want);
  EXPECT_CONTAINS(thrown<NotImplementedError>([&] { m(x); }), want);
}

TEST(MultiInputForward, DecoderLayerThroughModuleThrowsNotImplemented) {
  TransformerDecoderLayer layer(small_layer());
  expect_no_single_input_forward(layer, "TransformerDecoderLayer");
}

TEST(MultiInputForward, DecoderThroughModuleThrowsNotImplemented) {
  TransformerDecoder decoder({.layer = small_layer(), .num_layers = 2});
  expect_no_single_input_forward(decoder, "TransformerDecoder");
}

TEST(MultiInputForward, TransformerThroughModuleThrowsNotImplemented) {
  Transformer transformer({.d_model = 4,
                           .nhead = 1,
                           .num_encoder_layers = 1,
                           .num_decoder_layers = 1,
                           .dim_feedforward = 8,
                           .dropout = 0.0});
  expect_no_single_input_forward(transformer, "Transformer");
}

// The private using-declaration leaves the real forward as it was: two inputs run.
TEST(MultiInputForward, TwoInputForwardStillRuns) {
  TransformerDecoderLayer layer(small_layer());
  EXPECT_EQ(layer.forward(randn({3, 2, 4}), randn({5, 2, 4})).sizes(),
            (std::vector<int64_t>{3, 2, 4}));
}

}  // namespace
}  // namespace fabric::nn
