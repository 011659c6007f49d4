// torch.nn.utils.rnn's rules where fabric's differed: pad_sequence keeps sequence 0's dtype; a
// PackedSequence given only sorted_indices goes back to the original order through their inverse
// (torch's PackedSequence computes unsorted_indices); pad_packed_sequence refuses batch_sizes that
// packing never makes (it dropped rows). The recurrent layers print dropout as Python does.
#include <gtest/gtest.h>

#include <vector>

#include "nn/recurrent.h"
#include "nn/rnn_utils.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

TEST(RnnUtilsTorchRules, PadSequenceTakesTheFirstSequencesDtype) {
  const Tensor p = pad_sequence({ones({1, 2}), ones({2, 2}, {.dtype = DType::float64})});
  EXPECT_EQ(p.dtype(), DType::float32);
  EXPECT_EQ(p.sizes(), (Shape{2, 2, 2}));
  EXPECT_EQ(p.to_vector<float>(), (std::vector<float>{1, 1, 1, 1, 0, 0, 1, 1}));
}

TEST(RnnUtilsTorchRules, SortedIndicesAloneRestoreTheOriginalOrder) {
  // Lengths {1, 3}: sorted order is (1, 0).
  const PackedSequence a = pack_padded_sequence(arange(0, 6).to(DType::float32).reshape({3, 2, 1}),
                                                std::vector<int64_t>{1, 3}, false, false);
  const PackedSequence b{mul(a.data, 10.0), a.batch_sizes, a.sorted_indices};
  EXPECT_EQ(unsorted_indices_of(b).to_vector<int64_t>(), a.unsorted_indices.to_vector<int64_t>());
  auto [padded, lengths] = pad_packed_sequence(b);
  EXPECT_EQ(padded.flatten().to_vector<float>(), (std::vector<float>{0, 10, 0, 30, 0, 50}));
  EXPECT_EQ(lengths.to_vector<int64_t>(), (std::vector<int64_t>{1, 3}));
  manual_seed(0);
  GRU gru({.input_size = 1, .hidden_size = 1});
  const Tensor h0 = from_vector(std::vector<float>{100.f, -100.f}).reshape({1, 2, 1});
  const PackedSequence a_same_data{a.data, a.batch_sizes, a.sorted_indices};
  EXPECT_EQ(gru.forward_packed(a_same_data, h0).h_n.to_vector<float>(),
            gru.forward_packed(a, h0).h_n.to_vector<float>());
  const PackedSequence not_a_permutation{a.data, a.batch_sizes,
                                         from_vector(std::vector<int64_t>{1, 1})};
  EXPECT_CONTAINS(thrown<ValueError>([&] { pad_packed_sequence(not_a_permutation); }),
                  "sorted_indices must be a permutation of 0..1");
}

TEST(RnnUtilsTorchRules, PadPackedSequenceRefusesBatchSizesPackingNeverMakes) {
  const PackedSequence bad{arange(0, 5).to(DType::float32).reshape({5, 1}),
                           from_vector(std::vector<int64_t>{2, 3})};
  EXPECT_CONTAINS(thrown<ValueError>([&] { pad_packed_sequence(bad); }),
                  "pad_packed_sequence: a PackedSequence's batch_sizes must be positive and "
                  "non-increasing, got (2, 3)");
}

TEST(RnnUtilsTorchRules, DropoutIsPrintedAsPythonPrintsAFloat) {
  EXPECT_EQ(LSTM({.input_size = 3, .hidden_size = 4, .num_layers = 2, .dropout = 1.0}).str(),
            "LSTM(3, 4, num_layers=2, dropout=1.0)");
  EXPECT_EQ(GRU({.input_size = 3, .hidden_size = 4, .num_layers = 2, .dropout = 0.123456789}).str(),
            "GRU(3, 4, num_layers=2, dropout=0.123456789)");
  EXPECT_EQ(RNN({.input_size = 3, .hidden_size = 4, .num_layers = 2, .dropout = 0.1 + 0.2}).str(),
            "RNN(3, 4, num_layers=2, dropout=0.30000000000000004)");
}

}  // namespace
}  // namespace fabric::nn
