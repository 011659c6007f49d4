// movedim, swapaxes, tensor_split, hsplit/vsplit/dsplit, the stacks, atleast_nd and rot90
// (tensor/shape_extra.h) against torch 1.13: the rows of shape_extra_torch_rows.h (values, views'
// strides and offsets, gradients, errors), then what rows cannot show (which pieces share one
// autograd node, views writing through to their input).
#include <gtest/gtest.h>

#include "tensor/counting.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/shape_extra.h"
#include "tests/tensor/shape_extra_check.h"

namespace fabric {
namespace {

using shape_extra_check::Call;
using shape_extra_check::CallTable;
using V = std::vector<Tensor>;

std::vector<int64_t> tail(const std::vector<int64_t>& v, size_t from) {
  return {v.begin() + static_cast<std::ptrdiff_t>(from), v.end()};
}

// The fixture's run() for this group, call for call.
CallTable calls() {
  CallTable t;
  t["movedim"] = [](const Call& c) -> V { return {movedim(c.in[0], c.ints[0], c.ints[1])}; };
  auto halves = [](const Call& c) {
    const size_t n = c.ints.size() / 2;
    return std::pair{std::vector<int64_t>(c.ints.begin(), c.ints.begin() + n), tail(c.ints, n)};
  };
  t["movedim_list"] = [halves](const Call& c) -> V {
    const auto [s, d] = halves(c);
    return {movedim(c.in[0], s, d)};
  };
  t["moveaxis"] = [halves](const Call& c) -> V {
    const auto [s, d] = halves(c);
    return {moveaxis(c.in[0], s, d)};
  };
  t["swapaxes"] = [](const Call& c) -> V { return {swapaxes(c.in[0], c.ints[0], c.ints[1])}; };
  t["swapdims"] = [](const Call& c) -> V { return {swapdims(c.in[0], c.ints[0], c.ints[1])}; };
  t["tensor_split"] = [](const Call& c) { return tensor_split(c.in[0], c.ints[0], c.ints[1]); };
  t["tensor_split_indices"] = [](const Call& c) {
    return tensor_split(c.in[0], tail(c.ints, 1), c.ints[0]);
  };
  t["hsplit"] = [](const Call& c) { return hsplit(c.in[0], c.ints[0]); };
  t["vsplit"] = [](const Call& c) { return vsplit(c.in[0], c.ints[0]); };
  t["dsplit"] = [](const Call& c) { return dsplit(c.in[0], c.ints[0]); };
  t["hsplit_indices"] = [](const Call& c) { return hsplit(c.in[0], c.ints); };
  t["vsplit_indices"] = [](const Call& c) { return vsplit(c.in[0], c.ints); };
  t["dsplit_indices"] = [](const Call& c) { return dsplit(c.in[0], c.ints); };
  t["hstack"] = [](const Call& c) -> V { return {hstack(c.in)}; };
  t["vstack"] = [](const Call& c) -> V { return {vstack(c.in)}; };
  t["row_stack"] = [](const Call& c) -> V { return {row_stack(c.in)}; };
  t["dstack"] = [](const Call& c) -> V { return {dstack(c.in)}; };
  t["column_stack"] = [](const Call& c) -> V { return {column_stack(c.in)}; };
  t["atleast_1d"] = [](const Call& c) -> V { return {atleast_1d(c.in[0])}; };
  t["atleast_2d"] = [](const Call& c) -> V { return {atleast_2d(c.in[0])}; };
  t["atleast_3d"] = [](const Call& c) -> V { return {atleast_3d(c.in[0])}; };
  t["atleast_1d_list"] = [](const Call& c) { return atleast_1d(c.in); };
  t["atleast_2d_list"] = [](const Call& c) { return atleast_2d(c.in); };
  t["atleast_3d_list"] = [](const Call& c) { return atleast_3d(c.in); };
  t["rot90"] = [](const Call& c) -> V { return {rot90(c.in[0], c.ints[0], tail(c.ints, 1))}; };
  return t;
}

TEST(ShapeExtraTorch, RowsMatchTorch) { shape_extra_check::check_rows("shape_extra", calls()); }

TEST(ShapeExtraTorch, ErrorsCarryTorchMessages) {
  shape_extra_check::check_error_rows("shape_extra", calls());
}

// Pieces that tile the input come from one node (split's), whose backward concatenates; unsorted
// indices fall back to slices (overlapping pieces add up).
TEST(ShapeExtra, TensorSplitPiecesShareOneNodeWhenTheyTile) {
  const Tensor x = arange(7.0).set_requires_grad(true);
  const std::vector<Tensor> tiled = tensor_split(x, std::vector<int64_t>{2, 5});
  ASSERT_EQ(tiled.size(), 3u);
  EXPECT_EQ(tiled[0].to_vector<double>(), (std::vector<double>{0, 1}));
  const Tensor loss = add(add(sum(tiled[0]), mul(sum(tiled[1]), 2)), mul(sum(tiled[2]), 3));
  loss.backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{1, 1, 2, 2, 2, 3, 3}));
  const Tensor y = arange(7.0).set_requires_grad(true);
  const std::vector<Tensor> overlapping = tensor_split(y, std::vector<int64_t>{5, 3});
  ASSERT_EQ(overlapping.size(), 3u);
  EXPECT_EQ(overlapping[1].numel(), 0);
  EXPECT_EQ(overlapping[2].to_vector<double>(), (std::vector<double>{3, 4, 5, 6}));
  add(sum(overlapping[0]), sum(overlapping[2])).backward();
  EXPECT_EQ(y.grad().to_vector<double>(), (std::vector<double>{1, 1, 1, 2, 2, 1, 1}));
}

// Views write through to their input, as torch's.
TEST(ShapeExtra, ViewsAliasTheirInput) {
  Tensor x = zeros({2, 3, 4});
  movedim(x, 0, -1).select(0, 1).fill_(1.0);  // x[:, 1, :] through a (3, 4, 2) view
  EXPECT_EQ(sum(x).item<double>(), 8.0);
  tensor_split(x, 2, 2)[1].fill_(2.0);  // x[..., 2:]
  EXPECT_EQ(x.select(2, 3).select(1, 0).to_vector<double>(), (std::vector<double>{2, 2}));
  swapaxes(x, 0, 2).select(0, 0).fill_(-1.0);
  EXPECT_EQ(x.select(2, 0).to_vector<double>(), std::vector<double>(6, -1.0));
}

// Tensors that already have enough dims come back as themselves; the stacks promote as cat does.
TEST(ShapeExtra, AtleastKeepsTensorsAndStacksPromote) {
  const Tensor m = zeros({2, 2});
  EXPECT_TRUE(atleast_2d(m).is_same(m));
  EXPECT_TRUE(atleast_1d(m).is_same(m));
  EXPECT_FALSE(atleast_3d(m).is_same(m));
  const Tensor h = hstack({arange(2), full({1}, 0.5, {.dtype = DType::float64})});
  EXPECT_EQ(h.dtype(), DType::float64);
  EXPECT_EQ(h.to_vector<double>(), (std::vector<double>{0, 1, 0.5}));
}

// rot90 by k and by k + 4 agree, and four quarter turns give the input back.
TEST(ShapeExtra, Rot90Periodicity) {
  const Tensor x = arange(24.0).reshape({2, 3, 4});
  EXPECT_TRUE(equal(rot90(x, 1, {1, 2}), rot90(x, 5, {1, 2})));
  EXPECT_TRUE(equal(rot90(x, -1, {1, 2}), rot90(x, 3, {1, 2})));
  EXPECT_TRUE(equal(rot90(rot90(x, 2, {0, 2}), 2, {0, 2}), x));
  EXPECT_TRUE(equal(rot90(x, 1, {0, 1}), rot90(x, -1, {1, 0})));
}

}  // namespace
}  // namespace fabric
