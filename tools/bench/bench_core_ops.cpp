// The everyday ops of training on the CPU (softmax, log_softmax, cross_entropy, nll_loss, the
// reductions over the last dim and over dim 0, cumsum, sort, topk, embedding, dropout, where,
// masked_fill, cat, stack, index_select, 2x upsampling, mse_loss and pointwise clamp/pow/div),
// float32, forward and forward + backward of sum(out * g), in ms, next to PyTorch
// (tools/bench/torch_core_ops.py) on the same shapes at the same thread count, measured in the same
// run. Most inputs hold 4M elements (16 MiB): from 32 MiB on, glibc maps each of torch's fresh
// tensors afresh (its mmap threshold cannot go higher), and those page faults, not the kernels,
// would set torch's times. copy_4M (clone) is the floor for them. layer_norm has its own benchmark
// (bench_norm). Run it after `eval "$(tools/bench/torch_env.sh)"`. The driver, shared with
// bench_new_ops, is tools/bench/op_case_bench.h.
//   bench_core_ops [reps] [threads, e.g. 1 or 1,2] [cases, e.g. softmax_last,sum_dim0]
#include <tuple>

#include "tensor/ops.h"
#include "tools/bench/op_case_bench.h"

using namespace fabric;
using bench::Inputs;
using bench::leaf;
using bench::OpCase;
using bench::rows;

namespace {

// 4M elements: (2048, 2048) for the row-wise ops, (16, 64, 64, 64) where dim 1 is reduced.
const Shape kRows{2048, 2048};
const Shape k4d{16, 64, 64, 64};

Tensor bool_mask(const Shape& shape) {
  NoGradGuard no_grad;
  return gt(randn(shape), 0.0);
}

// One input of kRows through fn.
OpCase rowwise(const char* name, std::function<Tensor(const Tensor&)> fn, bool backward = true) {
  return {name, [] { return Inputs{leaf(kRows)}; }, [fn](const Inputs& in) { return fn(in[0]); },
          backward};
}

std::vector<OpCase> make_cases() {
  return {
      rowwise("copy_4M", [](const Tensor& x) { return x.clone(); }),
      rowwise("softmax_last", [](const Tensor& x) { return softmax(x, -1); }),
      {"softmax_dim1_4d", [] { return Inputs{leaf(k4d)}; },
       [](const Inputs& in) { return softmax(in[0], 1); }},
      rowwise("log_softmax_last", [](const Tensor& x) { return log_softmax(x, -1); }),
      {"log_softmax_dim1_4d", [] { return Inputs{leaf(k4d)}; },
       [](const Inputs& in) { return log_softmax(in[0], 1); }},
      // A language model's loss over 4096 positions of an 8192-token vocabulary (128 MiB of
      // logits: torch maps them afresh, see above), and a small classifier's over 64K rows of 65
      // classes.
      {"xent_4096x8192",
       [] {
         return Inputs{leaf({4096, 8192}), rows(8192, {4096})};
       },
       [](const Inputs& in) { return cross_entropy(in[0], in[1]); }},
      {"xent_64Kx65",
       [] {
         return Inputs{leaf({65536, 65}), rows(65, {65536})};
       },
       [](const Inputs& in) { return cross_entropy(in[0], in[1]); }},
      {"nll_4096x1024",
       [] {
         return Inputs{leaf({4096, 1024}), rows(1024, {4096})};
       },
       [](const Inputs& in) { return nll_loss(in[0], in[1]); }},
      rowwise("sum_last", [](const Tensor& x) { return sum(x, {-1}); }),
      rowwise("sum_dim0", [](const Tensor& x) { return sum(x, {0}); }),
      rowwise("mean_last", [](const Tensor& x) { return mean(x, {-1}); }),
      rowwise("mean_dim0", [](const Tensor& x) { return mean(x, {0}); }),
      rowwise("amax_last", [](const Tensor& x) { return amax(x, {-1}); }),
      rowwise("amax_dim0", [](const Tensor& x) { return amax(x, {0}); }),
      rowwise(
          "argmax_last", [](const Tensor& x) { return argmax(x, -1); }, false),
      rowwise(
          "argmax_dim0", [](const Tensor& x) { return argmax(x, 0); }, false),
      rowwise("var_last", [](const Tensor& x) { return var(x, {-1}); }),
      rowwise("var_dim0", [](const Tensor& x) { return var(x, {0}); }),
      rowwise("cumsum_last", [](const Tensor& x) { return cumsum(x, -1); }),
      // 4M elements: sorting is ~20x the work of a pass over the data.
      {"sort_last_8192x512",
       [] {
         return Inputs{leaf({8192, 512})};
       },
       [](const Inputs& in) { return std::get<0>(sort(in[0], -1)); }},
      {"topk8_1024x4096",
       [] {
         return Inputs{leaf({1024, 4096})};
       },
       [](const Inputs& in) { return std::get<0>(topk(in[0], 8, -1)); }},
      // GPT-2's token table (147 MiB), 8 sequences of 1024 ids; the backward is dense, as torch's
      // default.
      {"embedding_50304x768",
       [] {
         return Inputs{leaf({50304, 768}), rows(50304, {8, 1024})};
       },
       [](const Inputs& in) { return embedding(in[0], in[1]); }},
      rowwise("dropout_p0.1", [](const Tensor& x) { return dropout(x, 0.1, /*train=*/true); }),
      {"where_4M",
       [] {
         return Inputs{leaf(kRows), leaf(kRows), bool_mask(kRows)};
       },
       [](const Inputs& in) { return where(in[2], in[0], in[1]); }},
      {"masked_fill_4M",
       [] {
         return Inputs{leaf(kRows), bool_mask(kRows)};
       },
       [](const Inputs& in) { return masked_fill(in[0], in[1], 0.0); }},
      // 8 pieces of (2048, 256) side by side, and 8 of (512, 1024) stacked in front.
      {"cat8_dim1",
       [] {
         Inputs in;
         for (int i = 0; i < 8; ++i) in.push_back(leaf({2048, 256}));
         return in;
       },
       [](const Inputs& in) { return cat(in, 1); }},
      {"stack8_dim0",
       [] {
         Inputs in;
         for (int i = 0; i < 8; ++i) in.push_back(leaf({512, 1024}));
         return in;
       },
       [](const Inputs& in) { return stack(in, 0); }},
      {"index_select_dim0",
       [] {
         return Inputs{leaf({8192, 512}), rows(8192, {8192})};
       },
       [](const Inputs& in) { return index_select(in[0], 0, in[1]); }},
      // (4, 64, 64, 64) -> (4, 64, 128, 128): 4M output elements.
      {"upsample_nearest_2x",
       [] {
         return Inputs{leaf({4, 64, 64, 64})};
       },
       [](const Inputs& in) {
         return interpolate(in[0], {}, {2.0, 2.0}, "nearest");
       }},
      {"upsample_bilinear_2x",
       [] {
         return Inputs{leaf({4, 64, 64, 64})};
       },
       [](const Inputs& in) {
         return interpolate(in[0], {}, {2.0, 2.0}, "bilinear", false);
       }},
      {"mse_loss_4M",
       [] {
         return Inputs{leaf(kRows), leaf(kRows)};
       },
       [](const Inputs& in) { return mse_loss(in[0], in[1]); }},
      rowwise("clamp_4M", [](const Tensor& x) { return clamp(x, -0.5, 0.5); }),
      rowwise("pow2_4M", [](const Tensor& x) { return pow(x, 2); }),
      {"div_4M",
       [] {
         return Inputs{leaf(kRows), leaf(kRows)};
       },
       [](const Inputs& in) { return div(in[0], in[1]); }},
  };
}

}  // namespace

int main(int argc, char** argv) {
  return bench::run_op_cases(argc, argv, "bench_core_ops", __FILE__, "torch_core_ops.py",
                             make_cases());
}
