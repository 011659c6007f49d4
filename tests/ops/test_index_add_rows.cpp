// index_add and index_put(accumulate) write whole rows with the index_add kernel: one autograd
// node (IndexAddBackward0, as torch), and no index materialised at the source's shape. The old
// composition, a scatter_add over the 1-D index expanded and copied to the source's shape (8 bytes
// per source element), recorded ScatterAddBackward0 and needed twice the source's bytes of scratch.
// Values and gradients are checked by the harness rows (op_cases_index_write.cpp) and the torch
// fixture (test_index_write_torch.cpp).
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/allocator.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

struct RowWriteCase {
  const char* name;
  int64_t dim;  // the written dim: self is (rows, cols) or (cols, rows), source likewise
  std::function<Tensor(const Tensor& self, const Tensor& source, const Tensor& index)> write;
  // Scratch copies of the source the op may make (alpha scales the source first).
  int64_t source_copies;
};

std::vector<RowWriteCase> row_write_cases() {
  using T = const Tensor&;
  return {
      {"index_add", 0, [](T a, T s, T i) { return index_add(a, 0, i, s); }, 0},
      {"index_add_alpha", 0, [](T a, T s, T i) { return index_add(a, 0, i, s, 0.5); }, 1},
      {"index_add_dim1", 1, [](T a, T s, T i) { return index_add(a, 1, i, s); }, 0},
      {"index_put_accumulate", 0, [](T a, T s, T i) { return index_put(a, {i}, s, true); }, 0},
      // a[:, i] += s: the one indexed dim is written along a itself, not through permuted copies.
      {"index_put_accumulate_dim1", 1,
       [](T a, T s, T i) {
         return index_put(a, {Tensor(), i}, s, true);
       },
       0},
  };
}

TEST(IndexAddRows, OneNodeAndNoSourceSizedIndex) {
  constexpr int64_t kRows = 16, kSource = 4096, kCols = 64;
  constexpr int64_t kSourceBytes = kSource * kCols * 4;
  manual_seed(0);
  const Tensor index = randint(0, kRows, {kSource});
  for (const RowWriteCase& c : row_write_cases()) {
    SCOPED_TRACE(c.name);
    const Shape self_shape = c.dim == 0 ? Shape{kRows, kCols} : Shape{kCols, kRows};
    const Shape source_shape = c.dim == 0 ? Shape{kSource, kCols} : Shape{kCols, kSource};
    const Tensor a = randn(self_shape).set_requires_grad(true);
    const Tensor s = randn(source_shape).set_requires_grad(true);
    cpu_allocator().reset_peak();
    const int64_t before = cpu_allocator().stats().allocated_bytes;
    const Tensor out = c.write(a, s, index);
    const int64_t scratch = cpu_allocator().stats().peak_allocated_bytes - before;
    EXPECT_EQ(grad_fn_name(out), "IndexAddBackward0");
    EXPECT_LT(scratch, c.source_copies * kSourceBytes + kSourceBytes / 2)
        << "bytes allocated beyond the inputs";
  }
}

}  // namespace
}  // namespace fabric
