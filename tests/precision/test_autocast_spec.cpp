// Autocast against spec §3: the policy table for every op on both devices, the listed test cases,
// the weight-cast cache, nesting and untouched float64 arguments.
//
// What executes here and what does not (this machine has no GPU):
// - CPU bf16 autocast runs for real: mm -> bf16, softmax(bf16) -> bf16, cat([bf16, fp32]) -> fp32,
//   plus the other CPU-listed ops fabric has.
// - CPU fp16 autocast (allowed by the spec) runs for real: mm -> fp16.
// - The CUDA fp16 cases are asserted through autocast_policy(op, DeviceType::cuda). Where the CPU
//   list gives the op the same policy (mm: lower; add: none; mm(fp64): lower with fp64 ignored;
//   the cache, which belongs to the policy function rather than the device) the same case also
//   runs on CPU tensors under CPU fp16 autocast. softmax / sum / layer_norm (CUDA fp32_out or
//   fp32, CPU none) and addcmul (CUDA promote, CPU none) are NOT executed under CUDA semantics:
//   only their table entries are checked, and their CPU behaviour (no cast) is executed instead.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

using P = AutocastPolicy;

// A scoped autocast region on one device type (the tensor-level switch; precision/ wraps it).
struct Region {
  DeviceType device;
  Region(DeviceType d, bool enabled, DType dt, bool cache = true) : device(d) {
    autocast_enter(d, enabled, dt, cache);
  }
  ~Region() { autocast_exit(device); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;
};

Tensor rnd(const Shape& s, DType dt = DType::float32) { return randn(s).to(dt); }

Tensor weight(const Shape& s) {
  Tensor w = randn(s);
  w.set_requires_grad(true);
  return w;
}

// ---- the table
// -------------------------------------------------------------------------------------

// Spec §3's lists applied to fabric's ops, {cpu, cuda}. fp32_out = FP32_SET_OPT_DTYPE (and, for
// norm, FP32_APPEND_DTYPE: both compute and return float32 without casting the input).
const std::map<std::string_view, std::pair<P, P>>& spec_table() {
  const std::pair<P, P> none{P::none, P::none}, cuda_fp32{P::none, P::fp32},
      cuda_fp32_out{P::none, P::fp32_out}, cuda_promote{P::none, P::promote},
      cpu_promote{P::promote, P::none}, lower{P::lower, P::lower}, fp32{P::fp32, P::fp32};
  // clang-format off
  static const std::map<std::string_view, std::pair<P, P>> t = {
      // Unlisted on both: conversions, views, plain elementwise, most reductions, indexing.
      {"to_dtype", none}, {"to_device", none}, {"clone", none}, {"view", none},
      {"transpose", none}, {"permute", none}, {"slice", none}, {"select", none},
      {"expand", none}, {"detach", none}, {"add", none}, {"sub", none}, {"mul", none},
      {"div", none}, {"maximum", none}, {"minimum", none}, {"eq", none}, {"ne", none},
      {"lt", none}, {"le", none}, {"gt", none}, {"ge", none}, {"logical_and", none},
      {"logical_or", none}, {"where", none}, {"neg", none}, {"abs", none}, {"sqrt", none},
      {"tanh", none}, {"sigmoid", none}, {"relu", none}, {"gelu", none}, {"silu", none},
      {"sin", none}, {"cos", none}, {"logical_not", none}, {"clamp", none}, {"mean", none},
      {"erf", none}, {"floor", none}, {"ceil", none}, {"round", none}, {"trunc", none},
      {"sign", none},
      {"max", none}, {"min", none}, {"amax", none}, {"amin", none}, {"argmax", none},
      {"argmin", none}, {"var", none}, {"rms_norm", none}, {"batch_norm", none},
      {"embedding", none},
      {"index_select", none}, {"gather", none}, {"tril", none}, {"triu", none},
      {"one_hot", none}, {"dropout", none}, {"masked_fill", none},
      {"sort", none}, {"topk", none}, {"flip", none}, {"roll", none}, {"repeat", none},
      {"unbind", none},
      // max_pool3d and adaptive_avg_pool3d are on the CPU list, the 2-d pools on neither.
      {"max_pool2d", none}, {"avg_pool2d", none}, {"adaptive_avg_pool2d", none},
      // Constant pad is on neither list; reflection/replication padding on CPU's FP32 list only,
      // upsampling (nearest, bilinear) on CUDA's.
      {"pad", none}, {"reflection_pad", {P::fp32, P::none}},
      {"replication_pad", {P::fp32, P::none}},
      {"upsample_nearest2d", cuda_fp32}, {"upsample_bilinear2d", cuda_fp32},
      // The parameterised activations other than softplus are on neither list.
      {"leaky_relu", none}, {"elu", none}, {"hardtanh", none}, {"mish", none},
      {"hardswish", none}, {"hardsigmoid", none},
      // Gradients recorded for double backward: autograd's, never entered by a user under autocast.
      {"conv2d_backward_input", none}, {"conv2d_backward_weight", none},
      {"max_pool2d_backward", none}, {"avg_pool2d_backward", none},
      {"adaptive_avg_pool2d_backward", none},
      // CUDA FP32 list only.
      {"pow", cuda_fp32}, {"exp", cuda_fp32}, {"log", cuda_fp32}, {"rsqrt", cuda_fp32},
      {"reciprocal", cuda_fp32}, {"logsumexp", cuda_fp32}, {"layer_norm", cuda_fp32},
      {"softplus", cuda_fp32}, {"group_norm", cuda_fp32}, {"log1p", cuda_fp32},
      {"expm1", cuda_fp32},
      // CUDA FP32_SET_OPT_DTYPE / FP32_APPEND_DTYPE only.
      {"sum", cuda_fp32_out}, {"cumsum", cuda_fp32_out}, {"norm", cuda_fp32_out},
      {"softmax", cuda_fp32_out}, {"log_softmax", cuda_fp32_out},
      // PROMOTE: CUDA's list vs CPU's (cat, stack, index_copy).
      {"addcmul", cuda_promote}, {"scatter_add", cuda_promote},
      {"cat", cpu_promote}, {"stack", cpu_promote},
      // Lower precision on both.
      {"matmul", lower}, {"mm", lower}, {"bmm", lower}, {"linear", lower}, {"conv2d", lower},
      {"gelu_mlp", lower}, {"scaled_dot_product_attention", lower}, {"conv1d", lower}, {"conv_transpose2d", lower},
      // Losses: FP32 on both (CUDA's cross_entropy is log_softmax + nll_loss: fp32 too).
      {"cross_entropy", fp32}, {"nll_loss", fp32}, {"mse_loss", fp32},
      {"l1_loss", fp32}, {"huber_loss", fp32}, {"kl_div", fp32},
      {"binary_cross_entropy_with_logits", fp32},
      // smooth_l1_loss: the spec's CPU list leaves it out, torch 1.13's CPU autocast has it (and
      // huber_loss, l1_loss beside it) as float32; binary_cross_entropy is on CPU's list, and
      // banned under CUDA autocast (the op raises: tests/ops/test_loss_elementwise.cpp).
      {"smooth_l1_loss", fp32}, {"binary_cross_entropy", {P::fp32, P::none}},
      // Elementwise math, masks and reductions added with the trigonometric family: CUDA's FP32
      // list has tan asin acos sinh cosh log2 log10 erfinv; atan2 is on its PROMOTE list, cumprod
      // on its FP32_SET_OPT_DTYPE list, prod there and on CPU's FP32 list; the rest on neither.
      {"tan", cuda_fp32}, {"asin", cuda_fp32}, {"acos", cuda_fp32}, {"sinh", cuda_fp32},
      {"cosh", cuda_fp32}, {"log2", cuda_fp32}, {"log10", cuda_fp32}, {"erfinv", cuda_fp32},
      {"atan", none}, {"asinh", none}, {"acosh", none}, {"atanh", none},
      {"isnan", none}, {"isinf", none}, {"isfinite", none}, {"nan_to_num", none},
      {"atan2", cuda_promote}, {"fmod", none}, {"remainder", none}, {"logical_xor", none},
      {"prod", {P::fp32, P::fp32_out}}, {"cumprod", cuda_fp32_out}, {"all", none}, {"any", none},
      // Upsampling in 1-d and bicubic: CUDA's FP32 list; pixel (un)shuffle on neither.
      {"upsample_nearest1d", cuda_fp32}, {"upsample_linear1d", cuda_fp32},
      {"upsample_bicubic2d", cuda_fp32}, {"pixel_shuffle", none}, {"pixel_unshuffle", none},
      // 3-d nearest and trilinear: CUDA's FP32 list; torch 1.13's CPU autocast keeps a bfloat16
      // input's dtype for them (checked against it: tests/ops/test_upsample_5d_torch.cpp).
      {"upsample_nearest3d", cuda_fp32}, {"upsample_trilinear3d", cuda_fp32},
      // Recurrent cells: CUDA's lower-precision list (lstm_cell, gru_cell, rnn_*_cell); on the
      // CPU their linear parts lower themselves.
      {"lstm_cell", {P::none, P::lower}}, {"gru_cell", {P::none, P::lower}},
      {"rnn_tanh_cell", {P::none, P::lower}}, {"rnn_relu_cell", {P::none, P::lower}},
      // Margin/embedding/likelihood losses: FP32 on both lists; cosine_similarity on CUDA's only;
      // multilabel_soft_margin_loss, gaussian_nll_loss and pairwise_distance on neither (Python
      // compositions in torch).
      {"margin_ranking_loss", fp32}, {"hinge_embedding_loss", fp32}, {"soft_margin_loss", fp32},
      {"cosine_embedding_loss", fp32}, {"triplet_margin_loss", fp32}, {"poisson_nll_loss", fp32},
      {"multi_margin_loss", fp32}, {"multilabel_margin_loss", fp32},
      {"cosine_similarity", cuda_fp32}, {"multilabel_soft_margin_loss", none},
      {"gaussian_nll_loss", none}, {"pairwise_distance", none},
      // ctc_loss: on CPU's FP32 list only (CUDA's lists leave it out).
      {"ctc_loss", {P::fp32, P::none}},
      // Activations added with prelu: prelu is on both lower-precision lists, the rest on neither.
      {"prelu", lower}, {"glu", none}, {"log_sigmoid", none}, {"hardshrink", none},
      {"softshrink", none}, {"threshold", none}, {"rrelu", none},
      // Products: addmm/baddbmm/addbmm lower on both lists, einsum on CUDA's only; dot, tensordot,
      // cross, bilinear and addcdiv on CUDA's PROMOTE list; tensordot lower on the CPU (torch's
      // composition reaches the CPU-listed mm); trace on CPU's FP32 list, cdist on both FP32
      // lists, dist on CUDA's; diagonal/diag on neither.
      {"addmm", lower}, {"baddbmm", lower}, {"addbmm", lower}, {"einsum", {P::none, P::lower}},
      {"dot", cuda_promote}, {"tensordot", {P::lower, P::promote}}, {"cross", cuda_promote},
      {"bilinear", cuda_promote}, {"addcdiv", cuda_promote}, {"trace", {P::fp32, P::none}},
      {"cdist", fp32}, {"dist", cuda_fp32}, {"diagonal", none}, {"diag", none},
      // Index writes: index_copy on CPU's PROMOTE list, index_put on CUDA's; the rest on neither
      // (split is the one autograd node of split/chunk).
      {"index_add", none}, {"index_copy", cpu_promote}, {"index_fill", none}, {"scatter", none},
      {"scatter_reduce", none}, {"masked_select", none}, {"masked_scatter", none},
      {"nonzero", none}, {"index", none}, {"index_put", cuda_promote}, {"split", none},
      // 3-d convolutions and conv_transpose1d: lower on both; the 3-d pools on CPU's FP32 list;
      // adaptive_max_pool2d, unfold (im2col) and fold (col2im) on neither.
      {"conv3d", lower}, {"conv_transpose1d", lower}, {"conv_transpose3d", lower},
      {"max_pool3d", {P::fp32, P::none}}, {"avg_pool3d", {P::fp32, P::none}},
      {"adaptive_avg_pool3d", {P::fp32, P::none}}, {"adaptive_max_pool2d", none},
      {"adaptive_max_pool3d", {P::fp32, P::none}}, {"max_unpool2d", {P::fp32, P::none}},
      {"max_unpool3d", {P::fp32, P::none}},
      // fractional_max_pool2d/3d: CPU's FP32 list (a bfloat16 input pools in float32 there).
      {"fractional_max_pool2d", {P::fp32, P::none}}, {"fractional_max_pool3d", {P::fp32, P::none}},
      {"unfold", none}, {"fold", none},
      {"conv3d_backward_input", none}, {"conv3d_backward_weight", none},
      {"max_pool3d_backward", none}, {"avg_pool3d_backward", none},
      {"adaptive_avg_pool3d_backward", none},
  };
  // clang-format on
  return t;
}

TEST(AutocastSpec, PolicyTableMatchesTheSpecListsForEveryOp) {
  const auto& t = spec_table();
  for (size_t i = 0; i < static_cast<size_t>(OpId::num_ops); ++i) {
    const OpId op = static_cast<OpId>(i);
    const std::string_view name = op_name(op);
    auto it = t.find(name);
    if (it == t.end()) {
      ADD_FAILURE() << "op '" << name
                    << "' is not classified against spec §3 in this test; add it to spec_table()";
      continue;
    }
    EXPECT_EQ(autocast_policy(op, DeviceType::cpu), it->second.first) << name << " on CPU";
    EXPECT_EQ(autocast_policy(op, DeviceType::cuda), it->second.second) << name << " on CUDA";
  }
}

TEST(AutocastSpec, DefaultState) {
  EXPECT_EQ(autocast_state(DeviceType::cpu).dtype, DType::bfloat16);
  EXPECT_EQ(autocast_state(DeviceType::cuda).dtype, DType::float16);
  EXPECT_FALSE(autocast_enabled(DeviceType::cpu));
  EXPECT_TRUE(autocast_state(DeviceType::cpu).cache_enabled);
  EXPECT_EQ(autocast_state(DeviceType::cpu).nesting, 0);
  EXPECT_THROW(autocast_enter(DeviceType::cpu, true, DType::float32, true), DTypeError);
  EXPECT_EQ(autocast_state(DeviceType::cpu).nesting, 0);
}

// ---- CPU bf16, executed
// -------------------------------------------------------------------------------

TEST(AutocastSpec, CpuBf16Cases) {
  Region r(DeviceType::cpu, true, DType::bfloat16);
  EXPECT_EQ(mm(rnd({4, 8}), rnd({8, 3})).dtype(), DType::bfloat16);
  EXPECT_EQ(softmax(rnd({4, 8}, DType::bfloat16), -1).dtype(),
            DType::bfloat16);  // not on the CPU list
  EXPECT_EQ(cat({rnd({2, 3}, DType::bfloat16), rnd({2, 3})}).dtype(), DType::float32);
  // The other CPU-listed ops fabric has.
  EXPECT_EQ(matmul(rnd({2, 4, 8}), rnd({8, 3})).dtype(), DType::bfloat16);
  EXPECT_EQ(bmm(rnd({2, 4, 8}), rnd({2, 8, 3})).dtype(), DType::bfloat16);
  EXPECT_EQ(linear(rnd({4, 8}), rnd({3, 8}), rnd({3})).dtype(), DType::bfloat16);
  EXPECT_EQ(conv2d(rnd({1, 2, 5, 5}), rnd({3, 2, 3, 3})).dtype(), DType::bfloat16);
  EXPECT_EQ(conv1d(rnd({1, 2, 7}), rnd({3, 2, 3})).dtype(), DType::bfloat16);
  EXPECT_EQ(conv_transpose2d(rnd({1, 2, 4, 4}), rnd({2, 3, 3, 3})).dtype(), DType::bfloat16);
  EXPECT_EQ(scaled_dot_product_attention(rnd({2, 4, 8}), rnd({2, 5, 8}), rnd({2, 5, 3})).dtype(),
            DType::bfloat16);
  EXPECT_EQ(mse_loss(rnd({4}, DType::bfloat16), rnd({4}, DType::bfloat16)).dtype(), DType::float32);
  EXPECT_EQ(cross_entropy(rnd({4, 5}, DType::bfloat16), from_vector<int64_t>({0, 1, 2, 3})).dtype(),
            DType::float32);
  EXPECT_EQ(stack({rnd({3}, DType::bfloat16), rnd({3})}).dtype(), DType::float32);
  // Unlisted on CPU: run in the inputs' dtype.
  EXPECT_EQ(sum(rnd({4, 8}, DType::bfloat16)).dtype(), DType::bfloat16);
  EXPECT_EQ(layer_norm(rnd({4, 8}, DType::bfloat16), {8}).dtype(), DType::bfloat16);
  EXPECT_EQ(exp(rnd({4}, DType::bfloat16)).dtype(), DType::bfloat16);
  EXPECT_EQ(softmax(rnd({4, 8}), -1).dtype(), DType::float32);
  EXPECT_EQ(add(rnd({4}, DType::bfloat16), rnd({4})).dtype(), DType::float32);  // native promotion
  // Padding: reflection 1d/2d and replication 1d/2d/3d are on the FP32 list, reflection_pad3d is
  // not (torch's autocast_mode.cpp lists the same).
  EXPECT_EQ(pad(rnd({1, 2, 5, 5}, DType::bfloat16), {1, 1, 1, 1}, "reflect").dtype(),
            DType::float32);
  EXPECT_EQ(pad(rnd({1, 2, 4, 5, 5}, DType::bfloat16), {1, 1, 1, 1, 1, 1}, "replicate").dtype(),
            DType::float32);
  EXPECT_EQ(pad(rnd({1, 2, 4, 5, 5}, DType::bfloat16), {1, 1, 1, 1, 1, 1}, "reflect").dtype(),
            DType::bfloat16);
  // The lower-precision op computes from the rounded inputs.
  Tensor a = rnd({3, 5}), b = rnd({5, 2});
  Tensor want;
  {
    Region off(DeviceType::cpu, false, DType::bfloat16);
    want = mm(a.to(DType::bfloat16), b.to(DType::bfloat16));
  }
  EXPECT_EQ(mm(a, b).to_vector<float>(), want.to_vector<float>());
}

// Where torch 1.13's CPU autocast goes beyond the spec's lists, or casts an argument the op's
// entry must not forget.
TEST(AutocastSpec, CpuBf16FollowsTorchWhereTheSpecIsSilent) {
  Tensor x4 = rnd({2, 4, 5, 5}, DType::bfloat16), x3 = rnd({2, 4, 5}, DType::bfloat16);
  Tensor q = rnd({1, 2, 4, 8}), k = rnd({1, 2, 4, 8}), v = rnd({1, 2, 4, 8}), mask = rnd({4, 4});
  Tensor want_sdpa;
  {
    Region off(DeviceType::cpu, false, DType::bfloat16);
    // The mask is cast with q, k and v: the scores are bfloat16 before the softmax.
    want_sdpa = scaled_dot_product_attention(q.to(DType::bfloat16), k.to(DType::bfloat16),
                                             v.to(DType::bfloat16), mask.to(DType::bfloat16));
    // Outside a region, a float32 mask beside bfloat16 q, k, v is added in q's dtype (torch's
    // attn_bias += attn_mask), not refused by the product after the softmax.
    EXPECT_EQ(scaled_dot_product_attention(q.to(DType::bfloat16), k.to(DType::bfloat16),
                                           v.to(DType::bfloat16), mask)
                  .to_vector<float>(),
              want_sdpa.to_vector<float>());
  }
  Region r(DeviceType::cpu, true, DType::bfloat16);
  EXPECT_EQ(smooth_l1_loss(rnd({4}, DType::bfloat16), rnd({4}, DType::bfloat16)).dtype(),
            DType::float32);
  // torch pools a 4-D input with avg_pool3d (float32 on the CPU list), a 3-D one with avg_pool2d.
  EXPECT_EQ(local_response_norm(x4, 2).dtype(), DType::float32);
  EXPECT_EQ(local_response_norm(x3, 2).dtype(), DType::bfloat16);
  const Tensor got = scaled_dot_product_attention(q, k, v, mask);
  EXPECT_EQ(got.dtype(), DType::bfloat16);
  EXPECT_EQ(got.to_vector<float>(), want_sdpa.to_vector<float>());
}

// torch's einsum and tensordot are compositions on the CPU: no autocast class of their own, but
// the bmm/mm they contract with is lower precision there. So a contraction is bfloat16 (torch's
// values), a pair that only multiplies stays float32, and tensordot is bfloat16 even for dims 0.
TEST(AutocastSpec, CpuEinsumAndTensordotContractInTheLowerDtypeAsTorch) {
  const Tensor A = rnd({3, 4}), B = rnd({4, 5});
  const Tensor Ab = A.to(DType::bfloat16), Bb = B.to(DType::bfloat16);
  Tensor want, want_chain;
  {
    Region off(DeviceType::cpu, false, DType::bfloat16);
    want = einsum("ij,jk->ik", {Ab, Bb});
    // The chain: the first pair's bfloat16 result, then the next contraction in bfloat16.
    want_chain = einsum("ik,kl->il", {want, Bb.t()});
  }
  Region r(DeviceType::cpu, true, DType::bfloat16);
  const Tensor e = einsum("ij,jk->ik", {A, B});
  EXPECT_EQ(e.dtype(), DType::bfloat16);
  EXPECT_EQ(e.to_vector<float>(), want.to_vector<float>());
  EXPECT_EQ(einsum("i,j->ij", {A.select(0, 0), B.select(0, 0)}).dtype(), DType::float32);
  EXPECT_EQ(einsum("ij,ij->ij", {A, A}).dtype(), DType::float32);
  const Tensor chain = einsum("ij,jk,kl->il", {A, B, B.t()});
  EXPECT_EQ(chain.dtype(), DType::bfloat16);
  EXPECT_EQ(chain.to_vector<float>(), want_chain.to_vector<float>());
  EXPECT_EQ(tensordot(A, B, 1).to_vector<float>(), want.to_vector<float>());
  EXPECT_EQ(tensordot(A, B, 0).dtype(), DType::bfloat16);
}

// PROMOTE is torch's prioritize: from the autocast dtype, float32 wins and float64 is ignored;
// another 16-bit dtype raises, even when every operand has it.
TEST(AutocastSpec, PromoteRefusesAnotherSixteenBitDtypeAsTorch) {
  Region r(DeviceType::cpu, true, DType::bfloat16);
  const Tensor h = rnd({2, 3}, DType::float16), f = rnd({2, 3}), b = rnd({2, 3}, DType::bfloat16);
  for (const std::vector<Tensor>& args :
       {std::vector<Tensor>{h, h}, std::vector<Tensor>{h, f}, std::vector<Tensor>{b, h}}) {
    const std::string msg = thrown<DTypeError>([&] { stack(args); });
    EXPECT_CONTAINS(msg, "stack");
    EXPECT_CONTAINS(msg, "float16");
    EXPECT_CONTAINS(msg, "prioritize");
  }
  EXPECT_CONTAINS(thrown<DTypeError>([&] {
                    index_copy(rnd({3, 2}, DType::float16), 0, from_vector<int64_t>({1}),
                               rnd({1, 2}, DType::float16));
                  }),
                  "index_copy");
  EXPECT_EQ(stack({rnd({2, 3}, DType::float64), b}).dtype(), DType::float64);
  EXPECT_EQ(stack({b, f}).dtype(), DType::float32);
  EXPECT_EQ(stack({b, b}).dtype(), DType::bfloat16);
}

// A disabled region takes any dtype, as torch's (which warns): nothing is cast to it.
TEST(AutocastSpec, ADisabledRegionTakesAnyDtype) {
  Region off(DeviceType::cpu, false, DType::float32);
  EXPECT_FALSE(autocast_enabled(DeviceType::cpu));
  EXPECT_EQ(mm(rnd({2, 3}), rnd({3, 2})).dtype(), DType::float32);
  EXPECT_THROW(autocast_enter(DeviceType::cpu, true, DType::float32, true), DTypeError);
}

TEST(AutocastSpec, OutsideARegionNothingIsCast) {
  EXPECT_EQ(mm(rnd({4, 8}), rnd({8, 3})).dtype(), DType::float32);
  EXPECT_EQ(mse_loss(rnd({4}, DType::bfloat16), rnd({4}, DType::bfloat16)).dtype(),
            DType::bfloat16);
}

// ---- CPU fp16, executed, and the CUDA fp16 cases
// ------------------------------------------------------

TEST(AutocastSpec, CpuFp16UsesTheSameLists) {
  Region r(DeviceType::cpu, true, DType::float16);
  EXPECT_EQ(mm(rnd({4, 8}), rnd({8, 3})).dtype(), DType::float16);
  EXPECT_EQ(mm(rnd({4, 8}, DType::bfloat16), rnd({8, 3}, DType::bfloat16)).dtype(), DType::float16);
  EXPECT_EQ(linear(rnd({4, 8}), rnd({3, 8})).dtype(), DType::float16);
  EXPECT_EQ(cat({rnd({2}, DType::float16), rnd({2})}).dtype(), DType::float32);
}

TEST(AutocastSpec, CudaFp16Cases) {
  const DeviceType cuda = DeviceType::cuda, cpu = DeviceType::cpu;
  // mm(fp32, fp32) -> fp16: lower on CUDA; the CPU list agrees, so it also runs under CPU fp16.
  EXPECT_EQ(autocast_policy(OpId::mm, cuda), P::lower);
  EXPECT_EQ(autocast_policy(OpId::mm, cpu), P::lower);
  // add(fp16, fp32) -> fp32 by native promotion: unlisted on both.
  EXPECT_EQ(autocast_policy(OpId::add, cuda), P::none);
  EXPECT_EQ(autocast_policy(OpId::add, cpu), P::none);
  // softmax(fp16), sum(fp16) -> fp32 (FP32_SET_OPT_DTYPE); layer_norm(fp16) -> fp32 (FP32);
  // addcmul(fp32, fp16, fp16) -> fp32 (PROMOTE). Table only: the CPU lists differ (checked below).
  EXPECT_EQ(autocast_policy(OpId::softmax, cuda), P::fp32_out);
  EXPECT_EQ(autocast_policy(OpId::sum, cuda), P::fp32_out);
  EXPECT_EQ(autocast_policy(OpId::layer_norm, cuda), P::fp32);
  EXPECT_EQ(autocast_policy(OpId::addcmul, cuda), P::promote);
  {
    Region r(cpu, true, DType::float16);
    EXPECT_EQ(mm(rnd({4, 8}), rnd({8, 3})).dtype(), DType::float16);
    EXPECT_EQ(add(rnd({4}, DType::float16), rnd({4})).dtype(), DType::float32);
    EXPECT_EQ(mm(rnd({4, 8}, DType::float64), rnd({8, 3}, DType::float64)).dtype(), DType::float64);
    // On CPU these four are unlisted and keep the input dtype, unlike CUDA.
    EXPECT_EQ(softmax(rnd({4, 8}, DType::float16), -1).dtype(), DType::float16);
    EXPECT_EQ(sum(rnd({4, 8}, DType::float16)).dtype(), DType::float16);
    EXPECT_EQ(layer_norm(rnd({4, 8}, DType::float16), {8}).dtype(), DType::float16);
    // addcmul's native promotion already gives fp32 here (policy none on CPU).
    EXPECT_EQ(addcmul(rnd({4}), rnd({4}, DType::float16), rnd({4}, DType::float16)).dtype(),
              DType::float32);
  }
}

// ---- the policy function on CPU tensors (device independent)
// -------------------------------------

TEST(AutocastSpec, PolicyFunctionCastsOnlyAffectedArguments) {
  Region r(DeviceType::cpu, true, DType::bfloat16);
  Tensor f32 = rnd({2}), f64 = rnd({2}, DType::float64), b16 = rnd({2}, DType::bfloat16);
  Tensor i64 = from_vector<int64_t>({1, 2});
  // lower: fp32 -> bf16; fp64 and integers untouched (the same tensors).
  Tensor x = f32, y = f64, z = i64;
  EXPECT_FALSE(apply_autocast(OpId::mm, {&x, &y, &z}));
  EXPECT_EQ(x.dtype(), DType::bfloat16);
  EXPECT_TRUE(y.is_same(f64));
  EXPECT_TRUE(z.is_same(i64));
  // fp32: bf16 -> fp32, fp64 untouched.
  x = b16, y = f64;
  apply_autocast(OpId::mse_loss, {&x, &y});
  EXPECT_EQ(x.dtype(), DType::float32);
  EXPECT_TRUE(y.is_same(f64));
  // promote: the widest affected dtype wins, fp64 is ignored.
  x = b16, y = f32;
  apply_autocast(OpId::cat, {&x, &y});
  EXPECT_EQ(x.dtype(), DType::float32);
  EXPECT_TRUE(y.is_same(f32));
  x = b16, y = f64;
  apply_autocast(OpId::cat, {&x, &y});
  EXPECT_TRUE(x.is_same(b16));
  EXPECT_TRUE(y.is_same(f64));
  // An undefined optional input is skipped.
  Tensor none;
  x = f32;
  apply_autocast(OpId::linear, {&x, &none});
  EXPECT_FALSE(none.defined());
}

TEST(AutocastSpec, Float64ArgumentsAreUntouched) {
  Region r(DeviceType::cpu, true, DType::bfloat16);
  Tensor a = rnd({3, 4}, DType::float64), b = rnd({4, 2}, DType::float64);
  Tensor out = mm(a, b);
  EXPECT_EQ(out.dtype(), DType::float64);
  Tensor want;
  {
    Region off(DeviceType::cpu, false, DType::bfloat16);
    want = mm(a, b);
  }
  EXPECT_EQ(out.to_vector<double>(), want.to_vector<double>());
  EXPECT_EQ(linear(rnd({2, 4}, DType::float64), rnd({3, 4}, DType::float64)).dtype(),
            DType::float64);
  EXPECT_EQ(cat({rnd({2}, DType::float64), rnd({2}, DType::bfloat16)}).dtype(), DType::float64);
}

// ---- the cast cache
// ------------------------------------------------------------------------------------

TEST(AutocastSpec, LeafWeightIsCastOncePerRegion) {
  Tensor w = weight({8, 3});
  Tensor first, second;
  {
    // CPU fp16 here stands for the CUDA case ("an fp32 weight used twice -> the same cached fp16
    // tensor"): the cache is part of the policy function, not of the device.
    Region r(DeviceType::cpu, true, DType::float16);
    Tensor x1 = rnd({2, 8}), w1 = w;
    apply_autocast(OpId::mm, {&x1, &w1});
    Tensor x2 = rnd({2, 8}), w2 = w;
    apply_autocast(OpId::linear, {&x2, &w2});
    EXPECT_EQ(w1.dtype(), DType::float16);
    EXPECT_TRUE(w1.is_same(w2));
    EXPECT_FALSE(x1.is_same(x2));
    first = w1;
  }
  {
    Region r(DeviceType::cpu, true, DType::float16);
    Tensor w3 = w;
    apply_autocast(OpId::mm, {&w3});
    EXPECT_FALSE(w3.is_same(first)) << "the cache must be cleared when the outermost region exits";
    second = w3;
  }
  EXPECT_EQ(first.to_vector<float>(), second.to_vector<float>());
}

TEST(AutocastSpec, CacheOnlyForFp32LeavesThatRequireGradAndAreNotViews) {
  Region r(DeviceType::cpu, true, DType::bfloat16);
  auto cast_twice_same = [](const Tensor& t, OpId op = OpId::mm) {
    Tensor a = t, b = t;
    apply_autocast(op, {&a});
    apply_autocast(op, {&b});
    return a.is_same(b);
  };
  Tensor w = weight({4, 4});
  EXPECT_TRUE(cast_twice_same(w));
  EXPECT_FALSE(cast_twice_same(mul(w, 2.0)));    // non-leaf
  EXPECT_FALSE(cast_twice_same(w.t()));          // a view of the leaf
  EXPECT_FALSE(cast_twice_same(w.view({16})));   // likewise
  EXPECT_FALSE(cast_twice_same(randn({4, 4})));  // does not require grad
  Tensor wb = randn({4, 4}).to(DType::bfloat16);
  wb.set_requires_grad(true);
  EXPECT_FALSE(cast_twice_same(wb, OpId::mse_loss));  // a cast to fp32 is not to the autocast dtype
  Tensor w64 = randn({4, 4}).to(DType::float64);
  w64.set_requires_grad(true);
  Tensor a = w64;
  apply_autocast(OpId::mm, {&a});
  EXPECT_TRUE(a.is_same(w64));
  {
    Region nocache(DeviceType::cpu, true, DType::bfloat16, /*cache=*/false);
    EXPECT_FALSE(cast_twice_same(w));
  }
}

TEST(AutocastSpec, CachedCastsStayOnTheAutogradGraph) {
  Tensor w = weight({3, 2});
  const std::vector<float> wv = w.to_vector<float>();
  Tensor loss;
  {
    Region r(DeviceType::cpu, true, DType::bfloat16);
    Tensor x = ones({1, 3});
    loss = add(sum(mm(x, w)), sum(mm(x, w)));  // the weight used twice: one cached cast
  }
  EXPECT_EQ(loss.dtype(), DType::bfloat16);
  loss.backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().dtype(), DType::float32);  // through the recorded cast back to fp32
  EXPECT_EQ(w.grad().to_vector<float>(), std::vector<float>(6, 2.0f));
  EXPECT_EQ(w.to_vector<float>(), wv);
}

// ---- nesting
// -------------------------------------------------------------------------------------------

TEST(AutocastSpec, NestedRegionsRestoreTheOuterState) {
  Tensor a = rnd({2, 3}), b = rnd({3, 2});
  Tensor w = weight({3, 2});
  Tensor cached;
  {
    Region outer(DeviceType::cpu, true, DType::bfloat16);
    EXPECT_EQ(autocast_state(DeviceType::cpu).nesting, 1);
    {
      Region off(DeviceType::cpu, false, DType::bfloat16);
      EXPECT_EQ(autocast_state(DeviceType::cpu).nesting, 2);
      EXPECT_EQ(mm(a, b).dtype(), DType::float32);
    }
    EXPECT_EQ(mm(a, b).dtype(), DType::bfloat16);
    {
      Region half(DeviceType::cpu, true, DType::float16);
      EXPECT_EQ(mm(a, b).dtype(), DType::float16);
    }
    {
      Region inner(DeviceType::cpu, true, DType::bfloat16);
      Tensor w1 = w;
      apply_autocast(OpId::mm, {&w1});
      cached = w1;
    }
    // An inner region's exit does not clear the cache: the outer region is still open.
    Tensor w2 = w;
    apply_autocast(OpId::mm, {&w2});
    EXPECT_TRUE(w2.is_same(cached));
    EXPECT_EQ(mm(a, b).dtype(), DType::bfloat16);
  }
  EXPECT_EQ(autocast_state(DeviceType::cpu).nesting, 0);
  EXPECT_FALSE(autocast_enabled(DeviceType::cpu));
  EXPECT_EQ(mm(a, b).dtype(), DType::float32);
  EXPECT_THROW(autocast_exit(DeviceType::cpu), ValueError);
}

}  // namespace
}  // namespace fabric
