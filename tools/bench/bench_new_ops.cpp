// This session's new ops on the CPU (einsum, baddbmm, cdist, conv3d, max_pool3d, unfold/fold,
// scatter_reduce, gather, index_add, advanced indexing, index_put, masked_select, log_sigmoid, glu,
// prelu, chunk as one autograd node, embedding_bag), float32, forward and forward + backward of
// sum(out * g), in ms, next to PyTorch (tools/bench/torch_new_ops.py) on the same shapes at the
// same thread count, measured in the same run. copy_16M (clone) and a raw memcpy are the floor for
// the 16M-element pointwise rows. Run it after `eval "$(tools/bench/torch_env.sh)"`, or torch's
// matmuls run on the reference BLAS. PyTorch gets bench_train's GLIBC_TUNABLES (its best
// configuration here) unless the environment sets them: without them every fresh tensor above
// glibc's mmap threshold is a new mapping whose page faults dominate torch's times on this VM.
// Tensors of 32 MiB and more are mapped afresh either way (copy_16M shows what that costs).
//   bench_new_ops [reps] [threads, e.g. 1 or 1,2] [cases, e.g. copy_16M,transpose_copy_2048]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/embedding_bag.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tools/bench/torch_rows.h"

using namespace fabric;

namespace {

int g_reps = 5;

constexpr const char* kGlibcTunables =
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824";

using Inputs = std::vector<Tensor>;

struct Case {
  const char* name;
  // Fresh inputs: the floating ones to differentiate come back with requires_grad set, index
  // tensors without it. Made per case so that only one case's tensors are alive at a time.
  std::function<Inputs()> make;
  std::function<Tensor(const Inputs&)> fn;
  bool backward = true;
};

Tensor leaf(const Shape& shape) { return randn(shape).set_requires_grad(true); }
Tensor rows(int64_t high, const Shape& shape) { return randint(0, high, shape); }

constexpr int64_t k16M = int64_t{16} << 20;

std::vector<Case> make_cases() {
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
      {"transpose_copy_2048", [] { return Inputs{leaf({2048, 2048})}; },
       [](const Inputs& in) { return in[0].t().contiguous(); }},
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
      {"embedding_bag_mean",
       [] {
         return Inputs{leaf({50000, 128}), rows(50000, {4096, 20})};
       },
       [](const Inputs& in) { return nn::embedding_bag(in[0], in[1], Tensor(), "mean"); }},
  };
}

std::vector<int> parse_threads(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    out.push_back(std::max(1, std::atoi(item.c_str())));
  return out;
}

double memcpy_ms(int64_t n) {
  std::vector<float> src(n, 1.0f), dst(n);
  return bench::median_ms([&] { std::memcpy(dst.data(), src.data(), n * sizeof(float)); }, g_reps);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) g_reps = std::max(1, std::atoi(argv[1]));
  const std::string threads_arg = argc > 2 ? argv[2] : "1";
  const std::string only = argc > 3 ? argv[3] : "";  // comma-separated case names; empty: all
  const auto selected = [&](const std::string& name) {
    return only.empty() || ("," + only + ",").find("," + name + ",") != std::string::npos;
  };
  setenv("GLIBC_TUNABLES", kGlibcTunables, /*overwrite=*/0);  // for the torch child only
  std::string torch_status;
  const auto torch = bench::run_torch_rows(__FILE__, "torch_new_ops.py", g_reps, torch_status,
                                           threads_arg, only);
  std::printf(
      "bench_new_ops: medians of %d runs after 2 warm-up runs, ms\n%s (GLIBC_TUNABLES=%s)\n",
      g_reps, torch_status.c_str(), std::getenv("GLIBC_TUNABLES"));
  std::printf("memcpy of 16M floats (64 MiB): %.3f ms\n\n", memcpy_ms(k16M));
  std::printf("%-20s %3s %9s %9s %7s %9s %9s %7s\n", "case", "thr", "fwd", "torch", "/torch",
              "fwd+bwd", "torch", "/torch");
  manual_seed(0);
  for (const Case& c : make_cases()) {
    if (!selected(c.name)) continue;
    try {
      const Inputs in = c.make();
      Tensor g;
      {
        NoGradGuard no_grad;
        g = randn(c.fn(in).sizes());
      }
      for (int thr : parse_threads(threads_arg)) {
        omp_set_num_threads(thr);
        const double fwd = bench::median_ms(
            [&] {
              NoGradGuard no_grad;
              Tensor y = c.fn(in);
            },
            g_reps);
        double both = 0;
        if (c.backward) {
          both = bench::median_ms(
              [&] {
                for (const Tensor& t : in)
                  if (t.requires_grad()) zero_grad(t);
                c.fn(in).backward(g);
              },
              g_reps);
        }
        std::printf("%-20s %3d %9.3f", c.name, thr, fwd);
        const auto it = torch.find({c.name, thr});
        const double tf = it == torch.end() ? 0 : it->second.first;
        const double tb = it == torch.end() ? 0 : it->second.second;
        // /torch > 1: we are faster.
        if (tf > 0)
          std::printf(" %9.3f %7.2f", tf, tf / fwd);
        else
          std::printf(" %9s %7s", "-", "-");
        if (!c.backward)
          std::printf(" %9s", "-");
        else
          std::printf(" %9.3f", both);
        if (c.backward && tb > 0)
          std::printf(" %9.3f %7.2f\n", tb, tb / both);
        else
          std::printf(" %9s %7s\n", "-", "-");
        std::fflush(stdout);
      }
    } catch (const std::exception& e) {
      std::printf("%-20s error: %s\n", c.name, e.what());
      std::fflush(stdout);
    }
  }
  std::printf("\n/torch: PyTorch's time over ours (above 1: ours is faster).\n");
  return 0;
}
