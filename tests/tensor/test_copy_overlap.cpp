// copy_ between tensors that share memory: torch 1.13 refuses a partial overlap ("some elements
// of the input tensor and the written-to tensor refer to a single memory location") and allows
// an identical one (a no-op) or disjoint ranges. An elementwise copy over a partial overlap reads
// values it has already overwritten (memcpy and cudaMemcpyAsync are undefined there), so the
// result would depend on the kernel's order.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tensor/factory.h"
#include "tensor/memory_overlap.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

// Each case copies between views of x = arange(6) (float32); `after` is x afterwards, empty for a
// refused copy (which must leave x as it was).
struct OverlapCase {
  const char* name;
  std::function<void(Tensor& x)> copy;
  std::vector<float> after;
};

const std::vector<float> kUntouched{0, 1, 2, 3, 4, 5};

TEST(CopyOverlap, PartialOverlapIsRefusedIdenticalAndDisjointAreAllowed) {
  const OverlapCase cases[] = {
      {"shift right: x[1:] <- x[:-1]",
       [](Tensor& x) { x.narrow(0, 1, 5).copy_(x.narrow(0, 0, 5)); }},
      {"shift left: x[:-1] <- x[1:]",
       [](Tensor& x) { x.narrow(0, 0, 5).copy_(x.narrow(0, 1, 5)); }},
      {"2-D windows two apart",
       [](Tensor& x) {
         x.narrow(0, 0, 4).view({2, 2}).copy_(x.narrow(0, 2, 4).view({2, 2}));
       }},
      {"square transpose: same bytes, other order",
       [](Tensor& x) {
         x.narrow(0, 0, 4).view({2, 2}).copy_(x.narrow(0, 0, 4).view({2, 2}).t());
       }},
      {"broadcast of its own first row",
       [](Tensor& x) {
         x.view({3, 2}).copy_(x.view({3, 2})[0]);
       }},
      {"x <- x", [](Tensor& x) { x.copy_(x); }, kUntouched},
      // torch 1.13 compares whole stride lists and refuses this one; its elements are x's, in x's
      // order, so the copy is a no-op here.
      {"x as (1, 6) <- x",
       [](Tensor& x) {
         x.view({1, 6}).copy_(x);
       },
       kUntouched},
      {"x[0:3] <- another view of x[0:3]",
       [](Tensor& x) {
         x.narrow(0, 0, 3).copy_(x.view({2, 3})[0]);
       },
       kUntouched},
      {"disjoint halves: x[3:] <- x[:3]",
       [](Tensor& x) { x.narrow(0, 3, 3).copy_(x.narrow(0, 0, 3)); },
       {0, 1, 2, 0, 1, 2}},
      {"from a clone",
       [](Tensor& x) { x.narrow(0, 1, 5).copy_(x.narrow(0, 0, 5).clone()); },
       {0, 0, 1, 2, 3, 4}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Tensor x = arange(0, 6, 1, DType::float32);
    if (c.after.empty()) {
      const std::string msg = thrown<ValueError>([&] { c.copy(x); });
      EXPECT_CONTAINS(msg, "copy_: unsupported operation: some elements of the input tensor");
      EXPECT_CONTAINS(msg, "Please clone() the tensor");
      EXPECT_EQ(x.to_vector<float>(), kUntouched) << "a refused copy writes nothing";
    } else {
      EXPECT_NO_THROW(c.copy(x));
      EXPECT_EQ(x.to_vector<float>(), c.after);
    }
  }
}

// In-place arithmetic follows copy_'s rule, as torch's: an operand partly overlapping the written
// tensor is refused before anything is written (it was read as a copy, giving values where torch
// raises); the tensor itself, a disjoint part and an operand needing grad behave as before.
TEST(CopyOverlap, InPlaceArithmeticRefusesAPartlyOverlappingOperand) {
  const OverlapCase cases[] = {
      {"x.add_(x.t())",
       [](Tensor& x) {
         x.narrow(0, 0, 4).view({2, 2}).add_(x.narrow(0, 0, 4).view({2, 2}).t());
       }},
      {"x.div_(x[0])",
       [](Tensor& x) {
         x.view({2, 3}).div_(x.view({2, 3})[0]);
       }},
      {"x.add_(x[0][0])", [](Tensor& x) { x.add_(x[0]); }},
      {"x[1:4].sub_(x[0:3])", [](Tensor& x) { x.narrow(0, 1, 3).sub_(x.narrow(0, 0, 3)); }},
      {"x[1:].mul_(x[:2]) broadcast",
       [](Tensor& x) {
         x.narrow(0, 1, 4).view({2, 2}).mul_(x.narrow(0, 0, 2));
       }},
      {"x.mul_(x)", [](Tensor& x) { x.mul_(x); }, {0, 1, 4, 9, 16, 25}},
      {"x[3:].add_(x[:3])",
       [](Tensor& x) { x.narrow(0, 3, 3).add_(x.narrow(0, 0, 3)); },
       {0, 1, 2, 3, 5, 7}},
  };
  for (bool needs_grad : {false, true}) {
    for (const auto& c : cases) {
      SCOPED_TRACE(std::string(c.name) + (needs_grad ? " (x needs grad)" : ""));
      Tensor leaf = arange(0, 6, 1, DType::float32).set_requires_grad(needs_grad);
      Tensor x = needs_grad ? mul(leaf, 1.0) : leaf;
      if (c.after.empty()) {
        const std::string msg = thrown<ValueError>([&] { c.copy(x); });
        EXPECT_CONTAINS(msg, "unsupported operation: some elements of the input tensor");
        EXPECT_EQ(x.detach().to_vector<float>(), kUntouched) << "a refused op writes nothing";
      } else {
        EXPECT_NO_THROW(c.copy(x));
        EXPECT_EQ(x.detach().to_vector<float>(), c.after);
      }
    }
  }
}

// PyTorch decides overlap only for dense tensors; a view with gaps (x[:, 1:] of a 2x3 x) is
// "too hard" and passes, as it does in torch.
TEST(CopyOverlap, ViewsWithGapsAreNotDecided) {
  Tensor x = arange(0, 6, 1, DType::float32).view({2, 3});
  EXPECT_EQ(memory_overlap(x.narrow(1, 1, 2), x.narrow(1, 0, 2)), MemOverlap::too_hard);
  EXPECT_NO_THROW(x.narrow(1, 1, 2).copy_(x.narrow(1, 0, 2)));
  EXPECT_TRUE(is_non_overlapping_and_dense(x.t()));
  EXPECT_TRUE(is_non_overlapping_and_dense(x.narrow(0, 1, 1)));
  EXPECT_FALSE(is_non_overlapping_and_dense(x.narrow(1, 0, 2)));
}

// An in-place copy of a tensor onto itself still counts as a write: autograd's saved-tensor check
// must see it.
TEST(CopyOverlap, IdenticalCopyBumpsTheVersion) {
  Tensor x = arange(0, 6, 1, DType::float32);
  const uint64_t before = x.storage()->version();
  x.copy_(x);
  EXPECT_GT(x.storage()->version(), before);
}

}  // namespace
}  // namespace fabric
