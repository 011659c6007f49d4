// GEMM throughput on the CPU: fabric::cpu::gemm against oneDNN matmul and Eigen called directly,
// and against PyTorch's torch.matmul (tools/bench/torch_gemm.py), all measured in the same run.
// Prints a table of median GFLOP/s and ratios; never asserts anything.
#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

// GCC 12 flags its own AVX-512 intrinsics (_mm512_undefined_*) as uninitialised once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace {

using fabric::DType;
using Clock = std::chrono::steady_clock;

struct Options {
  std::vector<int64_t> sizes{256, 512, 1024, 2048};
  std::vector<int> threads{1, 2};
  int runs = 7;         // samples per measurement; the median is reported
  double min_ms = 60;   // each sample repeats the call until it lasts this long
  bool torch = true;
  bool f64 = true;
};

std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) if (!item.empty()) out.push_back(std::stoll(item));
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) { std::fprintf(stderr, "bench_gemm: %s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--sizes") o.sizes = parse_list(next());
    else if (a == "--threads") { o.threads.clear(); for (int64_t t : parse_list(next())) o.threads.push_back(int(t)); }
    else if (a == "--runs") o.runs = std::max(1, std::atoi(next()));
    else if (a == "--min-ms") o.min_ms = std::atof(next());
    else if (a == "--no-torch") o.torch = false;
    else if (a == "--no-f64") o.f64 = false;
    else {
      std::printf("usage: bench_gemm [--sizes 256,512,1024,2048] [--threads 1,2] [--runs 7] [--min-ms 60] [--no-torch] [--no-f64]\n");
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  return o;
}

uint16_t to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  x += 0x7fffu + ((x >> 16) & 1u);
  return uint16_t(x >> 16);
}

std::string read_first(const char* path, const char* key) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (key == nullptr || line.rfind(key, 0) == 0) return line;
  return "?";
}

// Median GFLOP/s of each callable, sampled round-robin so that a burst of load from other
// processes hits all of them alike.
std::vector<double> measure(const std::vector<std::function<void()>>& fns, double flop, const Options& o) {
  std::vector<int> iters(fns.size(), 1);
  for (size_t i = 0; i < fns.size(); ++i) {
    fns[i]();  // warm-up: JIT, caches, page faults
    fns[i]();
    auto t0 = Clock::now();
    fns[i]();
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    iters[i] = std::max(1, int(o.min_ms / std::max(ms, 1e-3)));
  }
  std::vector<std::vector<double>> rates(fns.size());
  for (int r = 0; r < o.runs; ++r) {
    for (size_t i = 0; i < fns.size(); ++i) {
      auto t0 = Clock::now();
      for (int k = 0; k < iters[i]; ++k) fns[i]();
      double s = std::chrono::duration<double>(Clock::now() - t0).count();
      rates[i].push_back(flop * iters[i] / s / 1e9);
    }
  }
  std::vector<double> med;
  for (auto& v : rates) {
    std::sort(v.begin(), v.end());
    med.push_back(v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
  }
  return med;
}

// oneDNN matmul called the plain way: primitive created once, default attributes.
struct DirectOnednn {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  std::unordered_map<int, dnnl::memory> args;
  std::string impl;
  DirectOnednn(int64_t n, dnnl::memory::data_type ab, dnnl::memory::data_type c, void* A, void* B, void* C) {
    using tag = dnnl::memory::format_tag;
    dnnl::memory::desc a_md({n, n}, ab, tag::ab), b_md({n, n}, ab, tag::ab), c_md({n, n}, c, tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), eng);
    impl = pd.impl_info_str();
    prim = dnnl::matmul(pd);
    args = {{DNNL_ARG_SRC, dnnl::memory(a_md, eng, A)},
            {DNNL_ARG_WEIGHTS, dnnl::memory(b_md, eng, B)},
            {DNNL_ARG_DST, dnnl::memory(c_md, eng, C)}};
  }
  void operator()() {
    prim.execute(strm, args);
    strm.wait();
  }
};

// torch results keyed by (dtype name, n, threads).
using TorchTable = std::map<std::tuple<std::string, int64_t, int>, double>;

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

TorchTable run_torch(const Options& o, std::vector<std::string>& notes) {
  TorchTable table;
  const char* env_dir = std::getenv("FABRIC_BENCH_DIR");
  std::filesystem::path dir = env_dir ? std::filesystem::path(env_dir) : std::filesystem::path(__FILE__).parent_path();
  if (!std::filesystem::exists(dir / "torch_gemm.py")) {
    notes.push_back("torch: script not found in " + dir.string() + " (set FABRIC_BENCH_DIR)");
    return table;
  }
  std::vector<int64_t> threads(o.threads.begin(), o.threads.end());
  // torch_env.sh unpacks Debian's OpenBLAS and exports its path; /usr/bin/python3 is the
  // interpreter that has Debian's python3-torch.
  std::string cmd = "eval \"$(bash '" + (dir / "torch_env.sh").string() + "')\"; /usr/bin/python3 '" +
                    (dir / "torch_gemm.py").string() + "' --sizes " + join(o.sizes) + " --threads " + join(threads) +
                    " --dtypes " + (o.f64 ? "f32,bf16,f64" : "f32,bf16") + " --runs " + std::to_string(o.runs) +
                    " --min-time " + std::to_string(o.min_ms / 1000.0) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    notes.push_back("torch: could not start /usr/bin/python3");
    return table;
  }
  char buf[4096];
  bool any = false;
  while (std::fgets(buf, sizeof buf, p)) {
    std::string line(buf);
    if (!line.empty() && line.back() == '\n') line.pop_back();
    std::istringstream ls(line);
    std::string tag;
    ls >> tag;
    if (tag == "torch_gemm") {
      std::string dt;
      int64_t n;
      int t;
      double g;
      if (ls >> dt >> n >> t >> g) table[{dt, n, t}] = g, any = true;
    } else if (!line.empty()) {
      notes.push_back(line);
    }
  }
  int rc = pclose(p);
  if (!any && rc != 0) notes.push_back("torch: not installed or failed (exit " + std::to_string(rc) + ")");
  return table;
}

std::string fmt(double v, int prec = 1) {
  if (v <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::printf("bench_gemm: C = A * B, square n x n, row-major; GFLOP/s = 2 n^3 / time, median of %d samples "
              "(each >= %.0f ms, after warm-up), implementations sampled round-robin.\n", o.runs, o.min_ms);
  std::printf("machine: %s, %d logical CPUs; load average at start: %s\n",
              read_first("/proc/cpuinfo", "model name").c_str(), omp_get_num_procs(),
              read_first("/proc/loadavg", nullptr).c_str());
  std::printf("CAVEAT: a shared, noisy machine; figures vary by up to 2x between runs. Compare the ratios "
              "(measured in the same run), not the absolute numbers.\n");
  const dnnl_version_t* v = dnnl::version();
  std::printf("oneDNN %d.%d.%d, effective ISA %d; Eigen %d.%d.%d\n", v->major, v->minor, v->patch,
              int(dnnl::get_effective_cpu_isa()), EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);

  std::vector<std::string> torch_notes;
  TorchTable torch;
  if (o.torch) {
    std::printf("running the PyTorch peer (tools/bench/torch_gemm.py) first...\n");
    std::fflush(stdout);
    torch = run_torch(o, torch_notes);
  } else {
    torch_notes.push_back("torch: skipped (--no-torch)");
  }
  for (const auto& n : torch_notes) std::printf("  %s\n", n.c_str());

  std::printf("\n%-10s %5s %3s | %8s %8s %8s %8s | %14s %10s | %s\n", "dtype", "n", "thr", "ours", "oneDNN",
              "Eigen", "torch", "ours/max(d,E)", "ours/torch", "oneDNN impl");
  std::printf("%s\n", std::string(110, '-').c_str());

  std::mt19937 rng(0);
  std::normal_distribution<float> nd;
  for (int nt : o.threads) {
    omp_set_num_threads(nt);
    Eigen::setNbThreads(nt);
    for (int64_t n : o.sizes) {
      const double flop = 2.0 * double(n) * double(n) * double(n);
      std::vector<float> a(size_t(n * n)), b(size_t(n * n)), c(size_t(n * n)), c2(size_t(n * n));
      for (auto& x : a) x = nd(rng);
      for (auto& x : b) x = nd(rng);
      std::vector<uint16_t> ah(a.size()), bh(b.size()), ch(c.size()), ch2(c.size());
      for (size_t i = 0; i < a.size(); ++i) ah[i] = to_bf16(a[i]), bh[i] = to_bf16(b[i]);

      struct Row {
        const char* name;
        DType ab, c;
      };
      for (Row row : {Row{"f32", DType::float32, DType::float32}, Row{"bf16->f32", DType::bfloat16, DType::float32},
                      Row{"bf16->bf16", DType::bfloat16, DType::bfloat16}}) {
        const bool bf = row.ab == DType::bfloat16;
        void* A = bf ? static_cast<void*>(ah.data()) : a.data();
        void* B = bf ? static_cast<void*>(bh.data()) : b.data();
        void* C = row.c == DType::bfloat16 ? static_cast<void*>(ch.data()) : c.data();
        void* C2 = row.c == DType::bfloat16 ? static_cast<void*>(ch2.data()) : c2.data();
        fabric::cpu::GemmArgs g{.M = n, .N = n, .K = n, .a_dtype = row.ab, .b_dtype = row.ab, .c_dtype = row.c,
                                .A = A, .lda = n, .B = B, .ldb = n, .C = C, .ldc = n};
        using dt = dnnl::memory::data_type;
        DirectOnednn dn(n, bf ? dt::bf16 : dt::f32, row.c == DType::bfloat16 ? dt::bf16 : dt::f32, A, B, C2);
        std::vector<std::function<void()>> fns{[&] { fabric::cpu::gemm(g); }, [&] { dn(); }};
        Eigen::Map<const Eigen::Matrix<float, -1, -1, Eigen::RowMajor>> ea(a.data(), n, n), eb(b.data(), n, n);
        Eigen::Map<Eigen::Matrix<float, -1, -1, Eigen::RowMajor>> ec(c2.data(), n, n);
        if (!bf) fns.push_back([&] { ec.noalias() = ea * eb; });  // Eigen bf16 is no peer
        std::vector<double> r = measure(fns, flop, o);
        const double ours = r[0], dnnl_g = r[1], eigen = bf ? 0 : r[2];
        // torch has no bf16 x bf16 -> f32 matmul; its bf16 row is bf16 -> bf16.
        double th = 0;
        if (!bf) th = torch.count({"f32", n, nt}) ? torch[{"f32", n, nt}] : 0;
        else if (row.c == DType::bfloat16) th = torch.count({"bf16", n, nt}) ? torch[{"bf16", n, nt}] : 0;
        std::printf("%-10s %5lld %3d | %8s %8s %8s %8s | %14s %10s | %s\n", row.name, (long long)n, nt,
                    fmt(ours).c_str(), fmt(dnnl_g).c_str(), fmt(eigen).c_str(), fmt(th).c_str(),
                    fmt(ours / std::max(dnnl_g, eigen), 3).c_str(), th > 0 ? fmt(ours / th, 3).c_str() : "-",
                    dn.impl.c_str());
        std::fflush(stdout);
      }
      if (o.f64) {
        // float64 has no oneDNN matmul: ours is Eigen underneath, so the peers are Eigen and torch.
        std::vector<double> da(a.begin(), a.end()), db(b.begin(), b.end()), dc(a.size()), dc2(a.size());
        fabric::cpu::GemmArgs g{.M = n, .N = n, .K = n, .a_dtype = DType::float64, .b_dtype = DType::float64,
                                .c_dtype = DType::float64, .A = da.data(), .lda = n, .B = db.data(), .ldb = n,
                                .C = dc.data(), .ldc = n};
        Eigen::Map<const Eigen::Matrix<double, -1, -1, Eigen::RowMajor>> ea(da.data(), n, n), eb(db.data(), n, n);
        Eigen::Map<Eigen::Matrix<double, -1, -1, Eigen::RowMajor>> ec(dc2.data(), n, n);
        std::vector<double> r = measure({[&] { fabric::cpu::gemm(g); }, [&] { ec.noalias() = ea * eb; }}, flop, o);
        const double th = torch.count({"f64", n, nt}) ? torch[{"f64", n, nt}] : 0;
        std::printf("%-10s %5lld %3d | %8s %8s %8s %8s | %14s %10s | %s\n", "f64", (long long)n, nt, fmt(r[0]).c_str(),
                    "-", fmt(r[1]).c_str(), fmt(th).c_str(), fmt(r[0] / r[1], 3).c_str(),
                    th > 0 ? fmt(r[0] / th, 3).c_str() : "-", "(Eigen)");
        std::fflush(stdout);
      }
    }
  }
  std::printf("\ngoal: ours >= 0.95x max(oneDNN, Eigen) and >= 1.0x torch. load average at end: %s\n",
              read_first("/proc/loadavg", nullptr).c_str());
  const auto st = fabric::cpu::gemm_cache_stats();
  std::printf("fabric gemm primitive cache: %llu hits, %llu misses\n", (unsigned long long)st.hits,
              (unsigned long long)st.misses);
  return 0;
}
