// MaxUnpool1d/2d/3d against torch 1.13: reprs (every size a tuple, stride defaulting to the
// kernel), forward as the functional with the layer's sizes and an optional output_size, hooks,
// no parameters or buffers, and MaxPool -> MaxUnpool round trips restoring each window's maximum.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/conv.h"
#include "nn/max_unpool.h"
#include "nn/pooling.h"
#include "nn/pooling3d.h"
#include "tensor/factory.h"
#include "tensor/max_unpool.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_linalg.h"
#include "tensor/ops_pooling3d.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

// torch: print(nn.MaxUnpool2d(2)) and the others.
TEST(MaxUnpoolLayers, ReprAsTorch) {
  EXPECT_EQ(nn::MaxUnpool2d({.kernel_size = 2}).str(),
            "MaxUnpool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))");
  EXPECT_EQ(nn::MaxUnpool2d({.kernel_size = {2, 3}, .stride = 1, .padding = {1, 0}}).str(),
            "MaxUnpool2d(kernel_size=(2, 3), stride=(1, 1), padding=(1, 0))");
  EXPECT_EQ(nn::MaxUnpool1d({.kernel_size = 2}).str(),
            "MaxUnpool1d(kernel_size=(2,), stride=(2,), padding=(0,))");
  EXPECT_EQ(nn::MaxUnpool1d({.kernel_size = 3, .stride = 2, .padding = 1}).str(),
            "MaxUnpool1d(kernel_size=(3,), stride=(2,), padding=(1,))");
  EXPECT_EQ(nn::MaxUnpool3d({.kernel_size = 2}).str(),
            "MaxUnpool3d(kernel_size=(2, 2, 2), stride=(2, 2, 2), padding=(0, 0, 0))");
  EXPECT_EQ(nn::MaxUnpool3d({.kernel_size = {2, 3, 1}, .stride = nn::Int3{1, 2, 1}}).str(),
            "MaxUnpool3d(kernel_size=(2, 3, 1), stride=(1, 2, 1), padding=(0, 0, 0))");
}

TEST(MaxUnpoolLayers, NoStateAndNoSingleInputForward) {
  auto m = nn::make<nn::MaxUnpool2d>({.kernel_size = 2});
  EXPECT_TRUE(m->state_dict().empty());
  EXPECT_TRUE(m->named_modules().empty());
  EXPECT_CONTAINS(thrown<NotImplementedError>([&] {
                    (*m)(ones({1, 1, 2, 2}));
                  }),
                  "MaxUnpool2d has no single-input forward(x)");
}

// MaxPool2d(2, return_indices=True) then MaxUnpool2d(2) on torch's docs example:
// [[1..4], [5..8], [9..12], [13..16]] -> 6, 8, 14, 16 kept in place, the rest 0.
TEST(MaxUnpoolLayers, RoundTripRestoresTheMaxima) {
  const Tensor x = arange(1, 17, 1, DType::float32).view({1, 1, 4, 4});
  nn::MaxPool2d pool({.kernel_size = 2, .return_indices = true});
  const auto [p, idx] = pool.forward_with_indices(x);
  EXPECT_EQ(idx.dtype(), DType::int64);
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{5, 7, 13, 15}));
  nn::MaxUnpool2d unpool({.kernel_size = 2});
  EXPECT_EQ(unpool(p, idx).to_vector<float>(),
            (std::vector<float>{0, 0, 0, 0, 0, 6, 0, 8, 0, 0, 0, 0, 0, 14, 0, 16}));
  // torch's docs: a 5x5 input pools to 2x2; output_size asks for 5x5 back.
  const Tensor x5 = arange(1, 26, 1, DType::float32).view({1, 1, 5, 5});
  const auto [p5, i5] = max_pool2d_with_indices(x5, {2});
  const Tensor y5 = unpool(p5, i5, std::vector<int64_t>{1, 1, 5, 5});
  EXPECT_EQ(y5.sizes(), (Shape{1, 1, 5, 5}));
  EXPECT_EQ(y5.to_vector<float>(), (std::vector<float>{0, 0, 0, 0,  0, 0,  7, 0, 9, 0, 0, 0, 0,
                                                       0, 0, 0, 17, 0, 19, 0, 0, 0, 0, 0, 0}));
  // Without it the default 4x4 is too small for indices 16 and 18: torch names the last one.
  EXPECT_CONTAINS(thrown<IndexError>([&] { unpool(p5, i5); }),
                  "Found an invalid max index: 18 (output volumes are of size 4x4");
  // The tuple is forward_with_indices(): forward() refuses rather than drop the indices.
  EXPECT_CONTAINS(thrown<ValueError>([&] { pool(x); }),
                  "MaxPool2d: return_indices=true returns (values, indices)");
}

// The 1-d and 3-d pools' indices (torch: F.max_pool1d(torch.tensor([[[3., 1, 4, 1, 5, 9, 2,
// 6]]]), 2, return_indices=True) gives [0, 2, 5, 7]; the 3-d one's index the flat D*H*W offset),
// and the values' gradient is the pool's.
TEST(MaxUnpoolLayers, MaxPool1dAnd3dIndicesFeedTheUnpools) {
  Tensor x1 = from_vector<float>({3, 1, 4, 1, 5, 9, 2, 6}, {1, 1, 8});
  x1.set_requires_grad(true);
  nn::MaxPool1d pool1({.kernel_size = 2, .return_indices = true});
  const auto [v1, i1] = pool1.forward_with_indices(x1);
  EXPECT_EQ(i1.to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 5, 7}));
  EXPECT_EQ(nn::MaxUnpool1d({.kernel_size = 2})(v1, i1).to_vector<float>(),
            (std::vector<float>{3, 0, 4, 0, 0, 9, 0, 6}));
  sum(v1).backward();
  EXPECT_EQ(x1.grad().to_vector<float>(), (std::vector<float>{1, 0, 1, 0, 0, 1, 0, 1}));
  const Tensor x3 = arange(0, 8, 1, DType::float32).view({1, 1, 2, 2, 2});
  nn::MaxPool3d pool3({.kernel_size = {2}, .return_indices = true});
  const auto [v3, i3] = pool3.forward_with_indices(x3);
  EXPECT_EQ(v3.to_vector<float>(), (std::vector<float>{7}));
  EXPECT_EQ(i3.to_vector<int64_t>(), (std::vector<int64_t>{7}));
  EXPECT_EQ(nn::MaxUnpool3d({.kernel_size = 2})(v3, i3).to_vector<float>(),
            (std::vector<float>{0, 0, 0, 0, 0, 0, 0, 7}));
}

// Each layer's forward is its functional with the layer's sizes (stride unset: the kernel).
TEST(MaxUnpoolLayers, ForwardIsTheFunctional) {
  const Tensor v1 = randn({2, 3, 4});
  const Tensor i1 =
      from_vector<int64_t>(std::vector<int64_t>(24, 5), {2, 3, 4}, {.dtype = DType::int64});
  nn::MaxUnpool1d u1({.kernel_size = 3, .stride = 2, .padding = 1});
  EXPECT_EQ(u1(v1, i1).to_vector<float>(), max_unpool1d(v1, i1, 3, 2, 1).to_vector<float>());
  EXPECT_EQ(u1(v1, i1).sizes(), (Shape{2, 3, 7}));
  const Tensor v3 = randn({2, 1, 2, 2});
  const Tensor i3 = zeros({2, 1, 2, 2}, {.dtype = DType::int64});
  nn::MaxUnpool3d u3({.kernel_size = {1, 2, 2}});
  EXPECT_EQ(u3(v3, i3).sizes(), (Shape{2, 1, 4, 4}));  // unbatched (C, D, H, W)
  EXPECT_EQ(u3(v3, i3).to_vector<float>(), max_unpool3d(v3, i3, {1, 2, 2}).to_vector<float>());
  EXPECT_CONTAINS(thrown<ValueError>([&] {
                    u3(v3, i3, std::vector<int64_t>{1, 4});
                  }),
                  "output_size should be a sequence containing 3 or 5 elements");
}

TEST(MaxUnpoolLayers, ForwardHooksSeeTheValues) {
  auto m = nn::make<nn::MaxUnpool2d>({.kernel_size = 2});
  int calls = 0;
  m->register_forward_hook([&](nn::Module&, const Tensor& in, const Tensor& out) {
    ++calls;
    EXPECT_EQ(in.sizes(), (Shape{1, 2, 2}));
    EXPECT_EQ(out.sizes(), (Shape{1, 4, 4}));
    return Tensor();
  });
  (*m)(ones({1, 2, 2}), zeros({1, 2, 2}, {.dtype = DType::int64}));
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace fabric
