// bfloat16 heads cut from a packed qkv (strided rows, as nanoGPT's and MultiheadAttention's
// projections give them) are read by the CPU attention kernels through dense per-thread copies of
// their rows (kernels/cpu/attention.cpp, heads_made_dense), so every GEMM runs on oneDNN's brgemm
// (AMX) as for contiguous heads, not on gemm:jit, which rounds differently. The packed path then
// gives the bits of the same values as contiguous leaves, forward and backward, causal or not.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

// bench_train's GPT heads (D = 64, T = 128: two query blocks), where oneDNN's choice between
// brgemm and gemm:jit shows in the bits (dK's sums over the query blocks; at B = H = 2, T = 96 the
// two happened to agree).
constexpr int64_t B = 4, T = 128, H = 4, D = 64, C = H * D;

std::vector<float> values(const Tensor& t) { return t.to(DType::float32).to_vector<float>(); }

Tensor heads_of(const Tensor& piece) { return piece.view({B, T, H, D}).transpose(1, 2); }
Tensor heads_back(const Tensor& y) { return y.transpose(1, 2).contiguous().view({B, T, C}); }

struct Result {
  std::vector<float> out, grad_q, grad_k, grad_v;
};

Result packed_run(const Tensor& qkv_values, const Tensor& g, bool causal) {
  Tensor qkv = qkv_values.clone().set_requires_grad(true);
  const std::vector<Tensor> parts = split(qkv, C, -1);
  Tensor y = scaled_dot_product_attention(heads_of(parts[0]), heads_of(parts[1]),
                                          heads_of(parts[2]), Tensor(), 0.0, causal);
  Tensor flat = heads_back(y);
  flat.backward(g);
  const Tensor grad = qkv.grad();
  return {values(flat), values(grad.narrow(-1, 0, C)), values(grad.narrow(-1, C, C)),
          values(grad.narrow(-1, 2 * C, C))};
}

Result contiguous_run(const Tensor& qkv_values, const Tensor& g, bool causal) {
  const std::vector<Tensor> parts = split(qkv_values, C, -1);
  std::vector<Tensor> leaves;
  for (const Tensor& p : parts) leaves.push_back(heads_of(p).contiguous().set_requires_grad(true));
  for (const Tensor& l : leaves) EXPECT_TRUE(l.is_contiguous());
  Tensor y = scaled_dot_product_attention(leaves[0], leaves[1], leaves[2], Tensor(), 0.0, causal);
  y.backward(heads_of(g).contiguous());
  return {values(heads_back(y)), values(heads_back(leaves[0].grad())),
          values(heads_back(leaves[1].grad())), values(heads_back(leaves[2].grad()))};
}

TEST(AttentionDenseHeads, PackedBfloat16HeadsGiveTheBitsOfContiguousHeads) {
  manual_seed(7);
  for (const bool causal : {true, false}) {
    const std::string what = causal ? "causal" : "not causal";
    const Tensor qkv = randn({B, T, 3 * C}).to(DType::bfloat16);
    const Tensor g = randn({B, T, C}).to(DType::bfloat16);
    const Result packed = packed_run(qkv, g, causal);
    const Result contiguous = contiguous_run(qkv, g, causal);
    EXPECT_EQ(packed.out, contiguous.out) << what;
    EXPECT_EQ(packed.grad_q, contiguous.grad_q) << what;
    EXPECT_EQ(packed.grad_k, contiguous.grad_k) << what;
    EXPECT_EQ(packed.grad_v, contiguous.grad_v) << what;
  }
}

}  // namespace
}  // namespace fabric
