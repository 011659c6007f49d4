// This session's new ops on the CPU (einsum, baddbmm, cdist, conv3d, max_pool3d, unfold/fold,
// scatter_reduce, gather, index_add, advanced indexing, index_put, masked_select, log_sigmoid, glu,
// prelu, chunk as one autograd node, embedding_bag; torch's random numbers), float32, forward and
// forward + backward of sum(out * g), in ms, next to PyTorch (tools/bench/torch_new_ops.py) on the
// same shapes at the same thread count, measured in the same run. copy_16M (clone) and a raw memcpy
// are the floor for the 16M-element pointwise rows. Run it after `eval
// "$(tools/bench/torch_env.sh)"`, or torch's matmuls run on the reference BLAS. The driver, shared
// with bench_core_ops, is tools/bench/op_case_bench.h.
//   bench_new_ops [reps] [threads, e.g. 1 or 1,2] [cases, e.g. copy_16M,transpose_copy_2048]
#include "nn/embedding_bag.h"
#include "tensor/ops.h"
#include "tools/bench/op_case_bench.h"

using namespace fabric;
using bench::Inputs;
using bench::k16M;
using bench::leaf;
using bench::rows;

namespace {

Generator& torch_generator() {
  static Generator gen(0, RngAlgorithm::torch_cpu);
  return gen;
}

std::vector<bench::OpCase> make_cases() {
  return {
      {"einsum_bhqd_bhkd",
       [] {
         return Inputs{leaf({8, 8, 256, 64}), leaf({8, 8, 256, 64})};
       },
       [](const Inputs& in) { return einsum("bhqd,bhkd->bhqk", in); }},
      {"einsum_ij_jk_1024",
       [] {
         return Inputs{leaf({1024, 1024}), leaf({1024, 1024})};
       },
       [](const Inputs& in) { return einsum("ij,jk->ik", in); }},
      {"baddbmm_32x256",
       [] {
         return Inputs{leaf({32, 256, 256}), leaf({32, 256, 256}), leaf({32, 256, 256})};
       },
       [](const Inputs& in) { return baddbmm(in[0], in[1], in[2]); }},
      {"cdist_p2_2048x64",
       [] {
         return Inputs{leaf({2048, 64}), leaf({2048, 64})};
       },
       [](const Inputs& in) { return cdist(in[0], in[1], 2.0); }},
      {"cdist_p1_2048x64",
       [] {
         return Inputs{leaf({2048, 64}), leaf({2048, 64})};
       },
       [](const Inputs& in) { return cdist(in[0], in[1], 1.0); }},
      {"conv3d_8to16_k3",
       [] {
         return Inputs{leaf({2, 8, 16, 32, 32}), leaf({16, 8, 3, 3, 3}), leaf({16})};
       },
       [](const Inputs& in) { return conv3d(in[0], in[1], in[2]); }},
      {"max_pool3d_2",
       [] {
         return Inputs{leaf({4, 16, 16, 32, 32})};
       },
       [](const Inputs& in) {
         return max_pool3d(in[0], {2, 2, 2});
       }},
      {"unfold_3x3_p1",
       [] {
         return Inputs{leaf({8, 64, 56, 56})};
       },
       [](const Inputs& in) {
         return unfold(in[0], {3, 3}, {1, 1}, {1, 1});
       }},
      {"fold_3x3_p1",
       [] {
         return Inputs{leaf({8, 64 * 9, 56 * 56})};
       },
       [](const Inputs& in) {
         return fold(in[0], {56, 56}, {3, 3}, {1, 1}, {1, 1});
       }},
      // 1M source elements into 10k rows of 64.
      {"scatter_reduce_amax",
       [] {
         return Inputs{leaf({10000, 64}), rows(10000, {16384, 64}), leaf({16384, 64})};
       },
       [](const Inputs& in) { return scatter_reduce(in[0], 0, in[1], in[2], "amax"); }},
      {"index_add_1M",
       [] {
         return Inputs{leaf({10000, 64}), rows(10000, {16384}), leaf({16384, 64})};
       },
       [](const Inputs& in) { return index_add(in[0], 0, in[1], in[2]); }},
      {"index_gather_1M",
       [] {
         return Inputs{leaf({10000, 64}), rows(10000, {16384})};
       },
       [](const Inputs& in) { return index(in[0], {in[1]}); }},
      // torch.gather along dim 0: 1M elements picked from 10k rows of 64.
      {"gather_dim0_1M",
       [] {
         return Inputs{leaf({10000, 64}), rows(10000, {16384, 64})};
       },
       [](const Inputs& in) { return gather(in[0], 0, in[1]); }},
      {"index_put_acc_1M",
       [] {
         return Inputs{leaf({10000, 64}), rows(10000, {16384}), leaf({16384, 64})};
       },
       [](const Inputs& in) { return index_put(in[0], {in[1]}, in[2], /*accumulate=*/true); }},
      {"masked_select_4M",
       [] {
         Tensor x = leaf({4 << 20});
         Tensor mask;
         {
           NoGradGuard no_grad;
           mask = gt(randn({4 << 20}), 0.0);
         }
         return Inputs{x, mask};
       },
       [](const Inputs& in) { return masked_select(in[0], in[1]); }},
      {"copy_16M", [] { return Inputs{leaf({k16M})}; },
       [](const Inputs& in) { return in[0].clone(); }},
      // A transposed view made contiguous: the strided copy behind .contiguous(), permute-then-
      // reshape and the backward of every transposed matmul operand.
      {"transpose_copy_2048",
       [] {
         return Inputs{leaf({2048, 2048})};
       },
       [](const Inputs& in) { return in[0].t().contiguous(); }},
      // Elementwise ops over transposed operands: torch gives the result their layout; ours is
      // row-major, so the kernel's result is transposed on the way out.
      {"relu_t_2048",
       [] {
         return Inputs{leaf({2048, 2048})};
       },
       [](const Inputs& in) { return relu(in[0].t()); }},
      {"add_tt_2048",
       [] {
         return Inputs{leaf({2048, 2048}), leaf({2048, 2048})};
       },
       [](const Inputs& in) { return add(in[0].t(), in[1].t()); }},
      {"log_sigmoid_16M", [] { return Inputs{leaf({k16M})}; },
       [](const Inputs& in) { return log_sigmoid(in[0]); }},
      {"glu_16M",
       [] {
         return Inputs{leaf({4096, 4096})};
       },
       [](const Inputs& in) { return glu(in[0], -1); }},
      {"prelu_16M_c64",
       [] {
         Tensor w = full({64}, 0.25, {}).set_requires_grad(true);
         return Inputs{leaf({16, 64, 128, 128}), w};
       },
       [](const Inputs& in) { return prelu(in[0], in[1]); }},
      // A time loop over the chunks of one input: split/chunk is one autograd node whose backward
      // assembles all 256 gradients at once.
      {"chunk256_loop",
       [] {
         return Inputs{leaf({256 * 256, 1024})};
       },
       [](const Inputs& in) {
         Tensor acc;
         for (const Tensor& c : chunk(in[0], 256, 0)) acc = acc.defined() ? add(acc, c) : c;
         return acc;
       }},
      // Draws from a torch_cpu generator (torch's numbers, RngAlgorithm::torch_cpu) against
      // torch's own CPU generator: serial Mersenne Twister draws on both sides.
      {"rand_4M_torch_rng", [] { return Inputs{}; },
       [](const Inputs&) { return rand({4 << 20}, {}, &torch_generator()); }, false},
      {"randn_4M_torch_rng", [] { return Inputs{}; },
       [](const Inputs&) { return randn({4 << 20}, {}, &torch_generator()); }, false},
      {"dropout_4M_torch_rng", [] { return Inputs{leaf({4 << 20})}; },
       [](const Inputs& in) { return dropout(in[0], 0.1, true, &torch_generator()); }},
      {"embedding_bag_mean",
       [] {
         return Inputs{leaf({50000, 128}), rows(50000, {4096, 20})};
       },
       [](const Inputs& in) { return nn::embedding_bag(in[0], in[1], Tensor(), "mean"); }},
  };
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_op_cases(argc, argv, "bench_new_ops", __FILE__, "torch_new_ops.py",
                             make_cases());
}
