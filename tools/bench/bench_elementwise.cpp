// Elementwise bandwidth: add, mul-by-scalar, GELU (erf, tanh; both backwards), exp, log1p, erf,
// relu and the parameterised activations (leaky_relu, elu, softplus, mish, hardswish; default
// parameters) on 16M-element float32/bfloat16 tensors at 1 and 2 threads, in GB/s (bytes read +
// written), next to a memcpy of the same bytes and PyTorch (tools/bench/torch_elementwise.py)
// measured in the same run.
//   bench_elementwise [n] [reps] [ops]
// ops: a comma-separated list of row names to run (e.g. gelu_tanh,gelu_tanh_backward); all if
// absent.
// g++ 12's AVX-512 headers trip -W(maybe-)uninitialized (GCC PR105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
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
#include <tuple>
#include <vector>

#include "kernels/cpu/x86_simd.h"
#include "tensor/activation_backward.h"
#include "tensor/activation_kernels.h"
#include "tensor/elementwise_kernels.h"
#include "tensor/factory.h"
#include "tensor/math_kernels.h"
#include "tensor/ops.h"

using namespace fabric;

namespace {

int g_reps = 11;

double seconds(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Copies of total_bytes/2 (so read + written = total_bytes), split over the OpenMP threads:
// glibc's memcpy, and one with AVX-512 non-temporal stores (the streaming peak; glibc streams
// only above a threshold it derives from the cache size the machine reports).
struct CopyBuffers {
  int64_t half;
  char* src;
  char* dst;
  explicit CopyBuffers(int64_t total_bytes) : half((total_bytes / 2) & ~int64_t{63}) {
    src = static_cast<char*>(std::aligned_alloc(64, half));
    dst = static_cast<char*>(std::aligned_alloc(64, half));
    std::memset(src, 1, half);
    std::memset(dst, 0, half);
  }
  ~CopyBuffers() {
    std::free(src);
    std::free(dst);
  }
  void memcpy_split() const {
#pragma omp parallel
    {
      const int nt = omp_get_num_threads(), id = omp_get_thread_num();
      const int64_t b = half * id / nt, e = half * (id + 1) / nt;
      std::memcpy(dst + b, src + b, e - b);
    }
  }
  void stream_copy() const {
#pragma omp parallel
    {
      const int nt = omp_get_num_threads(), id = omp_get_thread_num();
      const int64_t b = (half / 64 * id / nt) * 64, e = (half / 64 * (id + 1) / nt) * 64;
      for (int64_t i = b; i < e; i += 64) {
        _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + i), _mm512_load_si512(src + i));
      }
      _mm_sfence();
    }
  }
};

// "op dtype threads" -> (alloc GB/s, out= GB/s) from the PyTorch script.
using TorchKey = std::tuple<std::string, std::string, int>;
std::map<TorchKey, std::pair<double, double>> run_torch(int64_t n, const std::string& ops,
                                                        std::string& status) {
  std::map<TorchKey, std::pair<double, double>> res;
  std::string script = __FILE__;
  script = script.substr(0, script.find_last_of('/') + 1) + "torch_elementwise.py";
  const char* py = std::getenv("FABRIC_TORCH_PYTHON");
  const std::string cmd = std::string(py ? py : "/usr/bin/python3") + " " + script + " " +
                          std::to_string(n) + " " + std::to_string(g_reps) + " 1,2" +
                          (ops.empty() ? "" : " " + ops) + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) {
    status = "torch: not available (popen failed)";
    return res;
  }
  char line[512];
  status = "torch: not available (no output from " + script + ")";
  while (std::fgets(line, sizeof line, f)) {
    char op[64], dt[64];
    int thr;
    double ga, go;
    if (std::sscanf(line, "%63s %63s %d %lf %lf", op, dt, &thr, &ga, &go) == 5) {
      res[{op, dt, thr}] = {ga, go};
    } else if (std::strncmp(line, "torch:", 6) == 0) {
      status = line;
      if (!status.empty() && status.back() == '\n') status.pop_back();
    }
  }
  pclose(f);
  return res;
}

struct Case {
  std::string name;
  int streams;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  // The same computation into a preallocated output through the kernel stub (no allocation).
  std::function<void(const Tensor&, const Tensor&, Tensor&)> into;
};

}  // namespace

int main(int argc, char** argv) {
  int64_t n = int64_t{16} << 20;
  if (argc > 1) n = std::atoll(argv[1]);
  if (argc > 2) g_reps = std::max(1, std::atoi(argv[2]));
  const std::string ops = argc > 3 ? argv[3] : "";
  auto selected = [&](const std::string& name) {
    return ops.empty() || ("," + ops + ",").find("," + name + ",") != std::string::npos;
  };
  std::printf(
      "bench_elementwise: n = %lld elements; GB/s = bytes read + written, median of %d rounds "
      "after a\n"
      "warm-up round. Each round times the op, the op into a preallocated output, memcpy and "
      "nt-copy back\n"
      "to back, and /memcpy is the median of the per-round ratios, so slow drifts of a shared "
      "machine's\n"
      "load cancel out.\n",
      static_cast<long long>(n), g_reps);

  auto unary_into = [](UnaryOp u) {
    return [u](const Tensor& a, const Tensor&, Tensor& out) {
      const StridedLoop loop = make_strided_loop("bench", out, {&a});
      unary_stub(Device::cpu())(u, loop);
    };
  };
  auto math_into = [](MathUnaryOp m) {
    return [m](const Tensor& a, const Tensor&, Tensor& out) {
      const StridedLoop loop = make_strided_loop("bench", out, {&a});
      math_unary_stub(Device::cpu())(m, loop);
    };
  };
  auto activation_into = [](ActivationOp op) {
    return [op](const Tensor& a, const Tensor&, Tensor& out) {
      const StridedLoop loop = make_strided_loop("bench", out, {&a});
      activation_stub(Device::cpu())(op, ActivationParams{}, loop);
    };
  };
  const std::vector<Case> cases = {
      {"add", 3, [](const Tensor& a, const Tensor& b) { return a + b; },
       [](const Tensor& a, const Tensor& b, Tensor& out) {
         const StridedLoop loop = make_strided_loop("bench", out, {&a, &b});
         binary_stub(Device::cpu())(BinaryOp::add, loop, 1, nullptr);
       }},
      {"mul_scalar", 2, [](const Tensor& a, const Tensor&) { return a * 2.5; },
       [](const Tensor& a, const Tensor&, Tensor& out) {
         const StridedLoop loop = make_strided_loop("bench", out, {&a});
         const Scalar s = 2.5;
         binary_stub(Device::cpu())(BinaryOp::mul, loop, 1, &s);
       }},
      {"gelu", 2, [](const Tensor& a, const Tensor&) { return gelu(a); },
       unary_into(UnaryOp::gelu_erf)},
      {"gelu_tanh", 2, [](const Tensor& a, const Tensor&) { return gelu(a, "tanh"); },
       unary_into(UnaryOp::gelu_tanh)},
      // GELU's backward (erf form): grad b at saved input a, as autograd calls it.
      {"gelu_backward", 3,
       [](const Tensor& a, const Tensor& b) {
         return activation_backward(ActGrad::gelu_erf, b, a);
       },
       [](const Tensor& a, const Tensor& b, Tensor& out) {
         const StridedLoop loop = make_strided_loop("bench", out, {&b, &a});
         activation_backward_stub(Device::cpu())(ActGrad::gelu_erf, ActivationParams{}, loop);
       }},
      {"gelu_tanh_backward", 3,
       [](const Tensor& a, const Tensor& b) {
         return activation_backward(ActGrad::gelu_tanh, b, a);
       },
       [](const Tensor& a, const Tensor& b, Tensor& out) {
         const StridedLoop loop = make_strided_loop("bench", out, {&b, &a});
         activation_backward_stub(Device::cpu())(ActGrad::gelu_tanh, ActivationParams{}, loop);
       }},
      {"exp", 2, [](const Tensor& a, const Tensor&) { return exp(a); }, unary_into(UnaryOp::exp)},
      {"log", 2, [](const Tensor& a, const Tensor&) { return log(a); }, unary_into(UnaryOp::log)},
      {"log1p", 2, [](const Tensor& a, const Tensor&) { return log1p(a); },
       unary_into(UnaryOp::log1p)},
      {"erf", 2, [](const Tensor& a, const Tensor&) { return erf(a); }, unary_into(UnaryOp::erf)},
      // SLEEF-exact unary ops (vec_sleef_sincos.h, vec_sleef_exp_family.h)
      {"tanh", 2, [](const Tensor& a, const Tensor&) { return tanh(a); },
       unary_into(UnaryOp::tanh)},
      {"sin", 2, [](const Tensor& a, const Tensor&) { return sin(a); }, unary_into(UnaryOp::sin)},
      {"cos", 2, [](const Tensor& a, const Tensor&) { return cos(a); }, unary_into(UnaryOp::cos)},
      {"expm1", 2, [](const Tensor& a, const Tensor&) { return expm1(a); },
       unary_into(UnaryOp::expm1)},
      // SLEEF-exact math ops (vec_sleef_log2.h, vec_sleef_trig.h, vec_sleef_hyp.h)
      {"tan", 2, [](const Tensor& a, const Tensor&) { return tan(a); },
       math_into(MathUnaryOp::tan)},
      {"asin", 2, [](const Tensor& a, const Tensor&) { return asin(a); },
       math_into(MathUnaryOp::asin)},
      {"acos", 2, [](const Tensor& a, const Tensor&) { return acos(a); },
       math_into(MathUnaryOp::acos)},
      {"atan", 2, [](const Tensor& a, const Tensor&) { return atan(a); },
       math_into(MathUnaryOp::atan)},
      {"log2", 2, [](const Tensor& a, const Tensor&) { return log2(a); },
       math_into(MathUnaryOp::log2)},
      {"log10", 2, [](const Tensor& a, const Tensor&) { return log10(a); },
       math_into(MathUnaryOp::log10)},
      {"sinh", 2, [](const Tensor& a, const Tensor&) { return sinh(a); },
       math_into(MathUnaryOp::sinh)},
      {"cosh", 2, [](const Tensor& a, const Tensor&) { return cosh(a); },
       math_into(MathUnaryOp::cosh)},
      {"relu", 2, [](const Tensor& a, const Tensor&) { return relu(a); },
       unary_into(UnaryOp::relu)},
      {"leaky_relu", 2, [](const Tensor& a, const Tensor&) { return leaky_relu(a); },
       activation_into(ActivationOp::leaky_relu)},
      {"elu", 2, [](const Tensor& a, const Tensor&) { return elu(a); },
       activation_into(ActivationOp::elu)},
      {"softplus", 2, [](const Tensor& a, const Tensor&) { return softplus(a); },
       activation_into(ActivationOp::softplus)},
      {"mish", 2, [](const Tensor& a, const Tensor&) { return mish(a); },
       activation_into(ActivationOp::mish)},
      {"hardswish", 2, [](const Tensor& a, const Tensor&) { return hardswish(a); },
       activation_into(ActivationOp::hardswish)},
  };

  std::string torch_status;
  const auto torch = run_torch(n, ops, torch_status);
  std::printf("%s\n\n", torch_status.c_str());
  std::printf("%-18s %-9s %3s %8s %8s %7s %8s %8s %8s %9s %7s %7s\n", "op", "dtype", "thr", "ours",
              "memcpy", "/memcpy", "nt-copy", "ours-out", "torch", "torch-out", "/torch", "/t-out");

  for (DType dt : {DType::float32, DType::bfloat16}) {
    const Tensor a = randn({n}).to(dt), b = randn({n}).to(dt);
    Tensor out = empty({n}, {.dtype = dt});
    const char* dname = dt == DType::float32 ? "float32" : "bfloat16";
    for (int thr : {1, 2}) {
      omp_set_num_threads(thr);
      for (const Case& c : cases) {
        if (!selected(c.name)) continue;
        const int64_t bytes = c.streams * n * itemsize(dt);
        const CopyBuffers copy(bytes);
        auto op = [&] { Tensor r = c.op(a, b); };
        auto into = [&] { c.into(a, b, out); };
        auto mc = [&] { copy.memcpy_split(); };
        auto nt = [&] { copy.stream_copy(); };
        op(), into(), mc(), nt();  // warm-up: first touch, the allocator's cache, OpenMP's pool
        std::vector<double> t_op, t_into, t_mc, t_nt, ratio;
        for (int r = 0; r < g_reps; ++r) {
          t_op.push_back(seconds(op));
          t_into.push_back(seconds(into));
          t_mc.push_back(seconds(mc));
          t_nt.push_back(seconds(nt));
          ratio.push_back(t_mc.back() / t_op.back());
        }
        const double gb = static_cast<double>(bytes) / 1e9, cb = 2.0 * copy.half / 1e9;
        const double ours = gb / median(t_op), ours_out = gb / median(t_into);
        std::printf("%-18s %-9s %3d %8.2f %8.2f %7.2f %8.2f %8.2f", c.name.c_str(), dname, thr,
                    ours, cb / median(t_mc), median(ratio), cb / median(t_nt), ours_out);
        auto it = torch.find({c.name, dname, thr});
        if (it != torch.end()) {
          const auto [ta, to] = it->second;
          std::printf(" %8.2f %9.2f %7.2f %7.2f\n", ta, to, ours / ta, ours_out / to);
        } else {
          std::printf(" %8s %9s %7s %7s\n", "-", "-", "-", "-");
        }
        std::fflush(stdout);
      }
    }
  }
  // ---- mixed float dtypes: an f32 tensor with a bf16 one, as bf16-mixed training's residual
  // adds (f32 + bf16) and gradient accumulation (f32 += bf16) meet them. GB/s count 4 + 2 bytes
  // read and 4 written an element. No ours-out: the kernel's mixed-input loops are newer than
  // the libraries this bench is A/B'd against.
  {
    const Tensor a = randn({n}), b = randn({n}).to(DType::bfloat16);
    Tensor acc = randn({n});
    const std::vector<std::pair<std::string, std::function<void()>>> mixed = {
        {"add_f32_bf16", [&] { Tensor r = a + b; }},
        {"add_inplace_f32_bf16", [&] { acc.add_(b); }},
    };
    for (int thr : {1, 2}) {
      omp_set_num_threads(thr);
      for (const auto& [name, op] : mixed) {
        if (!selected(name)) continue;
        const int64_t bytes = 10 * n;
        const CopyBuffers copy(bytes);
        auto mc = [&] { copy.memcpy_split(); };
        auto nt = [&] { copy.stream_copy(); };
        op(), mc(), nt();
        std::vector<double> t_op, t_mc, t_nt, ratio;
        for (int r = 0; r < g_reps; ++r) {
          t_op.push_back(seconds(op));
          t_mc.push_back(seconds(mc));
          t_nt.push_back(seconds(nt));
          ratio.push_back(t_mc.back() / t_op.back());
        }
        const double ours = static_cast<double>(bytes) / 1e9 / median(t_op),
                     cb = 2.0 * copy.half / 1e9;
        std::printf("%-18s %-9s %3d %8.2f %8.2f %7.2f %8.2f %8s", name.c_str(), "f32+bf16", thr,
                    ours, cb / median(t_mc), median(ratio), cb / median(t_nt), "-");
        auto it = torch.find({name, "f32+bf16", thr});
        if (it != torch.end())
          std::printf(" %8.2f %9.2f %7.2f %7s\n", it->second.first, it->second.second,
                      ours / it->second.first, "-");
        else
          std::printf(" %8s %9s %7s %7s\n", "-", "-", "-", "-");
        std::fflush(stdout);
      }
    }
  }

  std::printf(
      "\nours: the op as users call it (allocating its output; the caching allocator reuses the "
      "block);\n"
      "ours-out: the kernel into a preallocated output; torch: its allocating call, torch-out: "
      "with out=;\n"
      "/torch: ours vs torch's allocating call; /t-out: ours-out vs torch-out.\n");
  return 0;
}
