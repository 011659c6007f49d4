// fabric::linalg on the CPU (Eigen, kernels/cpu/linalg_eigen.h) next to torch.linalg
// (tools/bench/torch_linalg.py, run first in the same run): inv, det, solve (16 right-hand sides),
// cholesky, qr, eigh, svd, lstsq (gelsy) and pinv, float32 and float64, on 8x8 matrices batched
// 4096, 64x64 batched 256, one 256x256 and one 1024x1024, at 1 and 2 threads; forward (no grad)
// and forward + backward of a loss, in ms (medians). Run it after `eval
// "$(tools/bench/torch_env.sh)"`: Debian's torch links the generic libblas.so.3/liblapack.so.3,
// the netlib reference unless that points them at OpenBLAS; the header names the BLAS/LAPACK the
// torch process mapped (and OpenBLAS's configuration).
// Inputs, the same on both sides (a Weyl sequence, built in float64, then cast):
// A = I + 0.25 G / sqrt(n) with G of unit variance (singular values within about [0.5, 1.5], so det
// stays finite in float32 at n = 1024); cholesky and eigh take S = A A^T; B is (*, n, 16).
// Losses: the sum of the outputs; for eigh and svd the vectors enter as sum(|V|), invariant to
// their signs (which LAPACK and Eigen may choose differently).
// Repeats: one warm-up call, then as many as fit in --budget seconds (3 to --max-reps), median; a
// case whose warm-up call takes longer than --cap seconds is skipped ("skip") on that side.
//   bench_linalg [--budget=0.3] [--cap=3] [--max-reps=21] [--threads=1,2] [--ops=inv,det,...]
//                [--dtypes=f32,f64] [--sizes=8,64,256,1024] [--no-torch] [--fwd-only]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/linalg.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tools/bench/torch_rows.h"

using namespace fabric;

namespace {

constexpr int64_t kRhs = 16;

struct Options {
  double budget = 0.3, cap = 3.0;
  int max_reps = 21;
  std::string threads = "1,2";
  std::string ops = "inv,det,solve,cholesky,qr,eigh,svd,lstsq,pinv";
  std::string dtypes = "f32,f64";
  std::string sizes = "8,64,256,1024";
  bool torch = true;
  bool backward = true;  // --fwd-only: skip the forward + backward timing (for profiling)
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(',', start), s.size());
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&](const char* key) -> const char* {
      const size_t len = std::strlen(key);
      return a.compare(0, len, key) == 0 ? argv[i] + len : nullptr;
    };
    if (const char* v = value("--budget="))
      o.budget = std::atof(v);
    else if (const char* v = value("--cap="))
      o.cap = std::atof(v);
    else if (const char* v = value("--max-reps="))
      o.max_reps = std::max(3, std::atoi(v));
    else if (const char* v = value("--threads="))
      o.threads = v;
    else if (const char* v = value("--ops="))
      o.ops = v;
    else if (const char* v = value("--dtypes="))
      o.dtypes = v;
    else if (const char* v = value("--sizes="))
      o.sizes = v;
    else if (a == "--no-torch")
      o.torch = false;
    else if (a == "--fwd-only")
      o.backward = false;
    else {
      std::fprintf(stderr, "bench_linalg: unknown argument %s\n", argv[i]);
      std::exit(2);
    }
  }
  return o;
}

// u_i in [-1, 1) for i = offset + 1 .. offset + count: torch_linalg.py's weyl_uniform.
std::vector<double> weyl_uniform(int64_t count, uint64_t offset) {
  std::vector<double> v(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t u = (offset + static_cast<uint64_t>(i) + 1) * 0x9E3779B97F4A7C15ull >> 11;
    v[static_cast<size_t>(i)] =
        static_cast<double>(static_cast<int64_t>(u) - (int64_t{1} << 52)) / 4503599627370496.0;
  }
  return v;
}

struct Inputs {
  Tensor A, S, B;
};

// A = I + 0.25 G / sqrt(n), S = A A^T symmetrised, B (batch, n, 16); batch 1 drops the batch dim.
Inputs make_inputs(int64_t n, int64_t batch, DType dtype) {
  const Tensor g =
      mul(from_vector<double>(weyl_uniform(batch * n * n, 0), {batch, n, n}), std::sqrt(3.0));
  const Tensor a = add(eye(n, std::nullopt, {.dtype = DType::float64}),
                       mul(g, 0.25 / std::sqrt(static_cast<double>(n))));
  Tensor s = matmul(a, a.transpose(-2, -1));
  s = mul(add(s, s.transpose(-2, -1)), 0.5);
  const Tensor b =
      from_vector<double>(weyl_uniform(batch * n * kRhs, uint64_t{1} << 40), {batch, n, kRhs});
  const auto cast = [&](const Tensor& t) {
    const Tensor c = t.to(dtype).contiguous();
    return batch == 1 ? c.select(0, 0).contiguous() : c;
  };
  return {cast(a), cast(s), cast(b)};
}

struct Case {
  const char* name;
  bool spd;  // takes S rather than A
  // The op's forward and the loss over its outputs (both on M, with B as the right-hand side).
  std::function<void(const Tensor& M, const Tensor& B)> forward;
  std::function<Tensor(const Tensor& M, const Tensor& B)> loss;
};

std::vector<Case> cases() {
  return {
      {"inv", false, [](auto& m, auto&) { linalg::inv(m); },
       [](auto& m, auto&) { return sum(linalg::inv(m)); }},
      {"det", false, [](auto& m, auto&) { linalg::det(m); },
       [](auto& m, auto&) { return sum(linalg::det(m)); }},
      {"solve", false, [](auto& m, auto& b) { linalg::solve(m, b); },
       [](auto& m, auto& b) { return sum(linalg::solve(m, b)); }},
      {"cholesky", true, [](auto& m, auto&) { linalg::cholesky(m); },
       [](auto& m, auto&) { return sum(linalg::cholesky(m)); }},
      {"qr", false, [](auto& m, auto&) { linalg::qr(m); },
       [](auto& m, auto&) {
         auto [q, r] = linalg::qr(m);
         return add(sum(q), sum(r));
       }},
      {"eigh", true, [](auto& m, auto&) { linalg::eigh(m); },
       [](auto& m, auto&) {
         auto [l, v] = linalg::eigh(m);
         return add(sum(l), sum(abs(v)));
       }},
      {"svd", false, [](auto& m, auto&) { linalg::svd(m); },
       [](auto& m, auto&) {
         auto [u, s, vh] = linalg::svd(m);
         return add(add(sum(s), sum(abs(u))), sum(abs(vh)));
       }},
      {"lstsq", false, [](auto& m, auto& b) { linalg::lstsq(m, b); },
       [](auto& m, auto& b) { return sum(std::get<0>(linalg::lstsq(m, b))); }},
      {"pinv", false, [](auto& m, auto&) { linalg::pinv(m); },
       [](auto& m, auto&) { return sum(linalg::pinv(m)); }},
  };
}

// torch_linalg.py's timed(): median ms after one warm-up call, reps fitting in budget seconds
// (3..max_reps); -1 when the warm-up call took longer than cap seconds.
double timed(const std::function<void()>& fn, const Options& o) {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  fn();
  const double first = std::chrono::duration<double>(clock::now() - t0).count();
  if (first > o.cap) return -1.0;
  const int reps =
      std::max(3, std::min(o.max_reps, static_cast<int>(o.budget / std::max(first, 1e-9))));
  std::vector<double> ts;
  for (int r = 0; r < reps; ++r) {
    t0 = clock::now();
    fn();
    ts.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

// ms, "skip" for a skipped case (< 0), "-" for none measured (absent).
void print_ms(double ms, bool absent = false) {
  if (absent) {
    std::printf(" %9s", "-");
  } else if (ms < 0) {
    std::printf(" %9s", "skip");
  } else {
    std::printf(" %9.3f", ms);
  }
}

// torch's time over ours (above 1: ours is faster).
void print_ratio(double torch_ms, double ours) {
  if (torch_ms > 0 && ours > 0) {
    std::printf(" %7.2f", torch_ms / ours);
  } else {
    std::printf(" %7s", "-");
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::string status = o.torch ? "torch: not run" : "torch: not run (--no-torch)";
  std::string blas = "unknown";
  std::map<std::pair<std::string, int>, std::pair<double, double>> torch;
  if (o.torch) {
    const std::string args = std::to_string(o.budget) + " " + std::to_string(o.cap) + " " +
                             std::to_string(o.max_reps) + " " + o.threads + " " + o.ops + " " +
                             o.dtypes + " " + o.sizes;
    bench::run_torch_script(__FILE__, "torch_linalg.py", args, status, [&](const char* line) {
      char name[64];
      int thr;
      double fwd, both;
      if (std::strncmp(line, "blas: ", 6) == 0) {
        blas = line + 6;
        if (!blas.empty() && blas.back() == '\n') blas.pop_back();
      } else if (std::sscanf(line, "%63s %d %lf %lf", name, &thr, &fwd, &both) == 4) {
        torch[{name, thr}] = {fwd, both};
      }
    });
  }
  std::printf(
      "bench_linalg: fabric::linalg (Eigen) vs torch.linalg, ms per call, medians (budget %.2f s, "
      "3..%d reps, skip past %.1f s)\n%s; torch's BLAS/LAPACK: %s\n\n",
      o.budget, o.max_reps, o.cap, status.c_str(), blas.c_str());
  std::printf("%-20s %3s %9s %9s %7s %9s %9s %7s\n", "case", "thr", "fwd", "torch", "/torch",
              "fwd+bwd", "torch", "/torch");
  const std::map<std::string, std::pair<int64_t, int64_t>> shapes = {
      {"8", {8, 4096}}, {"64", {64, 256}}, {"256", {256, 1}}, {"1024", {1024, 1}}};
  const std::vector<Case> all = cases();
  for (const std::string& dt : split(o.dtypes)) {
    for (const std::string& size : split(o.sizes)) {
      const auto [n, batch] = shapes.at(size);
      const Inputs in = make_inputs(n, batch, dt == "f64" ? DType::float64 : DType::float32);
      for (const std::string& op : split(o.ops)) {
        const auto c =
            std::find_if(all.begin(), all.end(), [&](const Case& x) { return op == x.name; });
        if (c == all.end()) continue;
        Tensor m = (c->spd ? in.S : in.A).clone();
        m.set_requires_grad(true);
        const std::string name = op + "_" + dt + "_" + size;
        for (const std::string& t : split(o.threads)) {
          const int thr = std::atoi(t.c_str());
          omp_set_num_threads(thr);
          const double fwd = timed(
              [&] {
                NoGradGuard no_grad;
                c->forward(m, in.B);
              },
              o);
          const double both = fwd < 0 || !o.backward ? -1.0
                                                     : timed(
                                                           [&] {
                                                             zero_grad(m);
                                                             c->loss(m, in.B).backward();
                                                           },
                                                           o);
          const auto it = torch.find({name, thr});
          const auto [tf, tb] = it == torch.end() ? std::pair{0.0, 0.0} : it->second;
          std::printf("%-20s %3d", name.c_str(), thr);
          print_ms(fwd);
          print_ms(it == torch.end() ? 0.0 : tf, it == torch.end());
          print_ratio(tf, fwd);
          print_ms(both);
          print_ms(it == torch.end() ? 0.0 : tb, it == torch.end());
          print_ratio(tb, both);
          std::printf("\n");
          std::fflush(stdout);
        }
      }
    }
  }
  std::printf("\n/torch: PyTorch's time over ours (above 1: ours is faster).\n");
  return 0;
}
