// The fixed cost of an op apart from its kernel: per-call times, in µs, of everyday ops on tiny
// float32 tensors of 1, 64 and 4096 elements ((1,1), (8,8) and (64,64)), where dispatch,
// allocation, shape checks and autograd recording weigh more than the arithmetic. Each case runs
//   nograd: forward under NoGradGuard,
//   rec:    forward with inputs that require grad (the graph is recorded, then dropped),
//   fb:     forward + backward(g), the leaves' grads reset to none first,
// next to PyTorch (tools/bench/torch_op_overhead.py, the same cases, run in the same process run).
// A rep times enough calls to last ~20 ms; the table shows the median rep. Run it at one thread
// after `eval "$(tools/bench/torch_env.sh)"`:
//   OMP_NUM_THREADS=1 bench_op_overhead [reps] [cases, e.g. add_64,matmul_8x8]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tools/bench/torch_rows.h"

using namespace fabric;

namespace {

using Inputs = std::vector<Tensor>;

struct Case {
  std::string name;
  std::function<Inputs()> make;  // floating inputs to differentiate require grad
  std::function<Tensor(const Inputs&)> fn;
};

Tensor leaf(const Shape& s) { return randn(s).set_requires_grad(true); }

// Microseconds per call of fn: the median over `reps` reps of enough calls to last ~20 ms.
double median_us_per_call(const std::function<void()>& fn, int reps) {
  using clock = std::chrono::steady_clock;
  for (int i = 0; i < 10; ++i) fn();
  const auto t0 = clock::now();
  for (int i = 0; i < 10; ++i) fn();
  const double one = std::chrono::duration<double>(clock::now() - t0).count() / 10;
  const int calls = std::clamp(static_cast<int>(0.02 / std::max(one, 1e-9)), 10, 200000);
  std::vector<double> us;
  for (int r = 0; r < reps; ++r) {
    const auto s = clock::now();
    for (int i = 0; i < calls; ++i) fn();
    us.push_back(std::chrono::duration<double, std::micro>(clock::now() - s).count() / calls);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

std::vector<Case> make_cases() {
  std::vector<Case> cases;
  const int64_t sides[][2] = {{1, 1}, {8, 8}, {64, 64}};
  for (const auto& rc : sides) {
    const int64_t r = rc[0], c = rc[1];
    const std::string n = std::to_string(r * c);
    const Shape s{r, c};
    const auto one = [s] { return Inputs{leaf(s)}; };
    const auto two = [s] { return Inputs{leaf(s), leaf(s)}; };
    const auto with_target = [s, r, c] { return Inputs{leaf(s), randint(0, c, {r})}; };
    cases.push_back({"add_" + n, two, [](const Inputs& in) { return add(in[0], in[1]); }});
    cases.push_back({"mul_scalar_" + n, one, [](const Inputs& in) { return mul(in[0], 2.0); }});
    cases.push_back({"relu_" + n, one, [](const Inputs& in) { return relu(in[0]); }});
    cases.push_back({"sum_" + n, one, [](const Inputs& in) { return sum(in[0]); }});
    cases.push_back({"reshape_" + n, one, [](const Inputs& in) { return in[0].reshape({-1}); }});
    cases.push_back({"transpose_contig_" + n, one,
                     [](const Inputs& in) { return in[0].transpose(0, 1).contiguous(); }});
    cases.push_back({"index_select_" + n,
                     [s, r] {
                       return Inputs{leaf(s), randint(0, r, {r})};
                     },
                     [](const Inputs& in) { return index_select(in[0], 0, in[1]); }});
    cases.push_back({"cat2_" + n, two, [](const Inputs& in) { return cat({in[0], in[1]}, 0); }});
    cases.push_back(
        {"nll_loss_" + n, with_target, [](const Inputs& in) { return nll_loss(in[0], in[1]); }});
    cases.push_back({"cross_entropy_" + n, with_target,
                     [](const Inputs& in) { return cross_entropy(in[0], in[1]); }});
    cases.push_back({"layer_norm_" + n,
                     [s, c] {
                       return Inputs{leaf(s), leaf({c}), leaf({c})};
                     },
                     [c](const Inputs& in) { return layer_norm(in[0], {c}, in[1], in[2]); }});
    cases.push_back({"softmax_" + n, one, [](const Inputs& in) { return softmax(in[0], -1); }});
  }
  cases.push_back({"matmul_8x8",
                   [] {
                     return Inputs{leaf({8, 8}), leaf({8, 8})};
                   },
                   [](const Inputs& in) { return matmul(in[0], in[1]); }});
  return cases;
}

// case -> {nograd, rec, fb} µs from tools/bench/torch_op_overhead.py.
std::map<std::string, std::vector<double>> run_torch(int reps, const std::string& only,
                                                     std::string& status) {
  std::map<std::string, std::vector<double>> rows;
  const std::string args = std::to_string(reps) + (only.empty() ? "" : " " + only);
  bench::run_torch_script(__FILE__, "torch_op_overhead.py", args, status, [&](const char* line) {
    char name[64];
    double a, b, c;
    if (std::sscanf(line, "%63s %lf %lf %lf", name, &a, &b, &c) == 4) rows[name] = {a, b, c};
  });
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  const std::string only = argc > 2 ? argv[2] : "";
  const auto selected = [&](const std::string& name) {
    return only.empty() || ("," + only + ",").find("," + name + ",") != std::string::npos;
  };
  std::string status;
  const auto torch = run_torch(reps, only, status);
  std::printf("bench_op_overhead: µs per call, median of %d reps, %d OpenMP thread(s)\n%s\n\n",
              reps, omp_get_max_threads(), status.c_str());
  std::printf("%-22s %8s %8s %8s %8s %8s %8s\n", "case", "nograd", "torch", "rec", "torch", "fb",
              "torch");
  manual_seed(0);
  for (const Case& c : make_cases()) {
    if (!selected(c.name)) continue;
    const Inputs in = c.make();
    Tensor g;
    {
      NoGradGuard no_grad;
      g = randn(c.fn(in).sizes());
    }
    const double nograd = median_us_per_call(
        [&] {
          NoGradGuard no_grad;
          Tensor y = c.fn(in);
        },
        reps);
    const double rec = median_us_per_call([&] { Tensor y = c.fn(in); }, reps);
    const double fb = median_us_per_call(
        [&] {
          for (const Tensor& t : in)
            if (t.requires_grad()) zero_grad(t);
          c.fn(in).backward(g);
        },
        reps);
    const auto it = torch.find(c.name);
    const auto peer = [&](int i) { return it == torch.end() ? 0.0 : it->second[i]; };
    std::printf("%-22s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f\n", c.name.c_str(), nograd, peer(0), rec,
                peer(1), fb, peer(2));
    std::fflush(stdout);
  }
  return 0;
}
