// GEMM throughput on the CPU: fabric::cpu::gemm against oneDNN matmul and Eigen called directly,
// and against PyTorch's torch.matmul (tools/bench/torch_gemm.py), all measured in the same run.
// Prints a table of median GFLOP/s and ratios; never asserts anything.
#include <omp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <oneapi/dnnl/dnnl.hpp>

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
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/gemm.h"

namespace {

using fabric::DType;
using Clock = std::chrono::steady_clock;

// Operand buffers on 64-byte boundaries, as fabric's tensors and PyTorch's are. malloc's 16-byte
// alignment (a std::vector of 2 MiB starts 16 bytes into its page) cost oneDNN's AMX bf16 kernels
// 15-25 % at n = 1024 (611-632 against 780-880 GFLOP/s on one thread, oneDNN alone), which read
// as fabric and oneDNN falling behind PyTorch.
template <typename T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <typename U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) {
    void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) { std::free(p); }
  bool operator==(const CacheLineAllocator&) const { return true; }
};
template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

struct Options {
  std::vector<int64_t> sizes{256, 512, 1024, 2048};
  std::vector<int> threads{1, 2};
  int runs = 7;        // samples per measurement; the median is reported
  double min_ms = 60;  // each sample repeats the call until it lasts this long
  bool torch = true;
  bool f64 = true;
};

// A comma-separated list of positive integers; anything else is a usage error (exit 2).
std::vector<int64_t> parse_list(const char* s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (*end != '\0' || v < 1) {
      std::fprintf(stderr, "bench_gemm: '%s' in '%s' is not a positive integer\n", item.c_str(), s);
      std::exit(2);
    }
    out.push_back(v);
  }
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_gemm: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--sizes") {
      o.sizes = parse_list(next());
    } else if (a == "--threads") {
      o.threads.clear();
      for (int64_t t : parse_list(next())) o.threads.push_back(int(t));
    } else if (a == "--runs") {
      o.runs = std::max(1, std::atoi(next()));
    } else if (a == "--min-ms") {
      o.min_ms = std::atof(next());
    } else if (a == "--no-torch") {
      o.torch = false;
    } else if (a == "--no-f64") {
      o.f64 = false;
    } else {
      std::printf(
          "usage: bench_gemm [--sizes 256,512,1024,2048] [--threads 1,2] [--runs 7] [--min-ms 60] "
          "[--no-torch] [--no-f64]\n");
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

// The PyTorch peer: tools/bench/torch_gemm.py --serve in a child process, asked for one sample
// at a time so that its samples interleave with ours under the same machine load.
class TorchPeer {
 public:
  TorchPeer(const Options& o, std::vector<std::string>& notes) {
    const char* env_dir = std::getenv("FABRIC_BENCH_DIR");
    namespace fs = std::filesystem;
    fs::path dir = env_dir ? fs::path(env_dir) : fs::path(__FILE__).parent_path();
    if (!fs::exists(dir / "torch_gemm.py")) {
      notes.push_back("torch: script not found in " + dir.string() + " (set FABRIC_BENCH_DIR)");
      return;
    }
    // torch_env.sh unpacks Debian's OpenBLAS and exports its path; /usr/bin/python3 is the
    // interpreter that has Debian's python3-torch.
    const std::string cmd = "eval \"$(bash '" + (dir / "torch_env.sh").string() +
                            "')\"; exec /usr/bin/python3 '" + (dir / "torch_gemm.py").string() +
                            "' --serve --min-time " + std::to_string(o.min_ms / 1000.0);
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0 || pipe(from_child) != 0) {
      notes.push_back("torch: could not create pipes");
      return;
    }
    signal(SIGPIPE, SIG_IGN);  // a dead child must not kill the benchmark
    pid_ = fork();
    if (pid_ == 0) {
      dup2(to_child[0], 0);
      dup2(from_child[1], 1);
      close(to_child[0]), close(to_child[1]), close(from_child[0]), close(from_child[1]);
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    if (pid_ < 0) {
      close(to_child[1]), close(from_child[0]);
      notes.push_back("torch: could not start /usr/bin/python3");
      return;
    }
    to_ = fdopen(to_child[1], "w");
    from_ = fdopen(from_child[0], "r");
    std::string line;
    while (read_line(line)) {
      if (line == "ready") {
        ok_ = true;
        return;
      }
      notes.push_back(line);  // "torch: <version>", "torch_blas: ...", or "torch: not installed"
    }
    notes.push_back("torch: not installed or failed to start (no answer from torch_gemm.py)");
  }
  ~TorchPeer() {
    if (to_) {
      std::fputs("quit\n", to_);
      std::fclose(to_);
    }
    if (from_) std::fclose(from_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  bool ok() const { return ok_; }

  // One sample of torch.matmul (dtype "f32", "bf16", "f64"), GFLOP/s; 0 after a failure.
  double sample(const char* dtype, int64_t n, int threads, double seconds) {
    if (!ok_ || failed_dtypes_.count(dtype)) return 0;
    std::fprintf(to_, "sample %s %lld %d %.4f\n", dtype, (long long)n, threads, seconds);
    std::fflush(to_);
    std::string line;
    const bool answered = read_line(line);
    if (answered && line.rfind("gflops ", 0) == 0) return std::atof(line.c_str() + 7);
    if (answered && line.rfind("error ", 0) == 0) {
      // The peer keeps serving after an error (e.g. torch's bf16 matmul, which needs oneDNN's
      // AVX-512 kernels, under ONEDNN_MAX_CPU_ISA=AVX2): skip this dtype, keep the others.
      std::fprintf(stderr, "bench_gemm: torch peer answered '%s'; no torch %s column\n",
                   line.c_str(), dtype);
      failed_dtypes_.insert(dtype);
      return 0;
    }
    std::fprintf(stderr, "bench_gemm: torch peer answered '%s'; dropping it\n", line.c_str());
    ok_ = false;
    return 0;
  }

 private:
  bool read_line(std::string& line) {
    char buf[4096];
    if (!from_ || !std::fgets(buf, sizeof buf, from_)) return false;
    line = buf;
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    return true;
  }
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  bool ok_ = false;
  std::set<std::string> failed_dtypes_;
};

// Median GFLOP/s of each callable (and of the torch peer, last, when `torch_dtype` is set). The
// samples are taken round-robin, starting one later each round, so that a burst of load from other
// processes (or the torch child's threads still spinning after its sample) hits all alike.
std::vector<double> measure(const std::vector<std::function<void()>>& fns, double flop,
                            const Options& o, TorchPeer* torch, const char* torch_dtype, int64_t n,
                            int threads) {
  std::vector<std::function<double()>> samplers;
  for (const auto& fn : fns) {
    fn();  // warm-up: JIT, caches, page faults
    fn();
    auto t0 = Clock::now();
    fn();
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    const int iters = std::max(1, int(o.min_ms / std::max(ms, 1e-3)));
    samplers.push_back([&fn, iters, flop] {
      auto t0 = Clock::now();
      for (int k = 0; k < iters; ++k) fn();
      return flop * iters / std::chrono::duration<double>(Clock::now() - t0).count() / 1e9;
    });
  }
  const bool with_torch = torch && torch->ok() && torch_dtype;
  if (with_torch) {
    samplers.push_back([&] {
      const double g = torch->sample(torch_dtype, n, threads, o.min_ms / 1e3);
      // Let the child's OpenMP threads stop spinning before our next sample.
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      return g;
    });
  }
  std::vector<std::vector<double>> rates(samplers.size());
  for (int r = 0; r < o.runs; ++r)
    for (size_t j = 0; j < samplers.size(); ++j) {
      const size_t i = (j + size_t(r)) % samplers.size();
      rates[i].push_back(samplers[i]());
    }
  std::vector<double> med;
  for (auto& v : rates) {
    std::sort(v.begin(), v.end());
    med.push_back(v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
  }
  if (!with_torch) med.push_back(0);
  return med;
}

// oneDNN matmul called the plain way: primitive created once, default attributes.
struct DirectOnednn {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  std::unordered_map<int, dnnl::memory> args;
  std::string impl;
  bool available = false;
  DirectOnednn(int64_t n, dnnl::memory::data_type ab, dnnl::memory::data_type c, void* A, void* B,
               void* C) {
    using tag = dnnl::memory::format_tag;
    dnnl::memory::desc a_md({n, n}, ab, tag::ab), b_md({n, n}, ab, tag::ab),
        c_md({n, n}, c, tag::ab);
    try {
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), eng);
      impl = pd.impl_info_str();
      prim = dnnl::matmul(pd);
    } catch (const dnnl::error&) {
      // oneDNN 2.6 has no bf16 matmul below AVX-512 (an AVX2 CPU, or ONEDNN_MAX_CPU_ISA=AVX2):
      // the row then has no oneDNN peer rather than ending the benchmark.
      impl = "none on this CPU";
      return;
    }
    available = true;
    args = {{DNNL_ARG_SRC, dnnl::memory(a_md, eng, A)},
            {DNNL_ARG_WEIGHTS, dnnl::memory(b_md, eng, B)},
            {DNNL_ARG_DST, dnnl::memory(c_md, eng, C)}};
  }
  void operator()() {
    prim.execute(strm, args);
    strm.wait();
  }
};

std::string fmt(double v, int prec = 1) {
  if (v <= 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

void print_row(const char* name, int64_t n, int nt, double ours, double dn, double eigen, double th,
               const char* impl) {
  std::printf("%-10s %5lld %3d | %8s %8s %8s %8s | %14s %10s | %s\n", name, (long long)n, nt,
              fmt(ours).c_str(), fmt(dn).c_str(), fmt(eigen).c_str(), fmt(th).c_str(),
              fmt(std::max(dn, eigen) > 0 ? ours / std::max(dn, eigen) : 0, 3).c_str(),
              th > 0 ? fmt(ours / th, 3).c_str() : "-", impl);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::printf(
      "bench_gemm: C = A * B, square n x n, row-major; GFLOP/s = 2 n^3 / time, median of %d "
      "samples (each >= %.0f ms, after warm-up); all implementations, torch included, sampled "
      "round-robin in a rotating order.\n",
      o.runs, o.min_ms);
  std::printf("machine: %s, %d logical CPUs; load average at start: %s\n",
              read_first("/proc/cpuinfo", "model name").c_str(), omp_get_num_procs(),
              read_first("/proc/loadavg", nullptr).c_str());
  std::printf(
      "CAVEAT: a shared, noisy machine; figures vary by up to 2x between runs, and 2-thread runs "
      "suffer most when other jobs hold a core. Compare the ratios (measured in the same run), not "
      "the absolute numbers.\n");
  // libgomp's spinning at barriers decides 2-thread speed on a shared VM: print the policy in use.
  auto env = [](const char* k) { return std::getenv(k) ? std::getenv(k) : "unset"; };
  std::printf("OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s (the torch child inherits them)\n",
              env("OMP_WAIT_POLICY"), env("GOMP_SPINCOUNT"));
  const dnnl_version_t* v = dnnl::version();
  std::printf("oneDNN %d.%d.%d, effective ISA %d; Eigen %d.%d.%d\n", v->major, v->minor, v->patch,
              int(dnnl::get_effective_cpu_isa()), EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION,
              EIGEN_MINOR_VERSION);

  std::vector<std::string> torch_notes;
  std::unique_ptr<TorchPeer> torch;
  if (o.torch)
    torch = std::make_unique<TorchPeer>(o, torch_notes);
  else
    torch_notes.push_back("torch: skipped (--no-torch)");
  for (const auto& n : torch_notes) std::printf("  %s\n", n.c_str());

  std::printf("\n%-10s %5s %3s | %8s %8s %8s %8s | %14s %10s | %s\n", "dtype", "n", "thr", "ours",
              "oneDNN", "Eigen", "torch", "ours/max(d,E)", "ours/torch", "oneDNN impl");
  std::printf("%s\n", std::string(110, '-').c_str());

  std::mt19937 rng(0);
  std::normal_distribution<float> nd;
  using RowMatF = Eigen::Matrix<float, -1, -1, Eigen::RowMajor>;
  using RowMatD = Eigen::Matrix<double, -1, -1, Eigen::RowMajor>;
  for (int nt : o.threads) {
    omp_set_num_threads(nt);
    Eigen::setNbThreads(nt);
    for (int64_t n : o.sizes) {
      const double flop = 2.0 * double(n) * double(n) * double(n);
      const size_t nn = size_t(n * n);
      AlignedVector<float> a(nn), b(nn), c(nn), c2(nn);
      for (auto& x : a) x = nd(rng);
      for (auto& x : b) x = nd(rng);
      AlignedVector<uint16_t> ah(nn), bh(nn), ch(nn), ch2(nn);
      for (size_t i = 0; i < nn; ++i) ah[i] = to_bf16(a[i]), bh[i] = to_bf16(b[i]);

      struct Row {
        const char* name;
        DType ab, c;
        const char* torch;  // the torch dtype of this row; torch has no bf16 x bf16 -> f32 matmul
      };
      for (Row row : {Row{"f32", DType::float32, DType::float32, "f32"},
                      Row{"bf16->f32", DType::bfloat16, DType::float32, nullptr},
                      Row{"bf16->bf16", DType::bfloat16, DType::bfloat16, "bf16"}}) {
        const bool bf = row.ab == DType::bfloat16, bf_out = row.c == DType::bfloat16;
        void* A = bf ? static_cast<void*>(ah.data()) : a.data();
        void* B = bf ? static_cast<void*>(bh.data()) : b.data();
        void* C = bf_out ? static_cast<void*>(ch.data()) : c.data();
        void* C2 = bf_out ? static_cast<void*>(ch2.data()) : c2.data();
        fabric::cpu::GemmArgs g{.M = n,
                                .N = n,
                                .K = n,
                                .a_dtype = row.ab,
                                .b_dtype = row.ab,
                                .c_dtype = row.c,
                                .A = A,
                                .lda = n,
                                .B = B,
                                .ldb = n,
                                .C = C,
                                .ldc = n};
        using dt = dnnl::memory::data_type;
        DirectOnednn dn(n, bf ? dt::bf16 : dt::f32, bf_out ? dt::bf16 : dt::f32, A, B, C2);
        std::vector<std::function<void()>> fns{[&] { fabric::cpu::gemm(g); }};
        if (dn.available) fns.push_back([&] { dn(); });
        Eigen::Map<const RowMatF> ea(a.data(), n, n), eb(b.data(), n, n);
        Eigen::Map<RowMatF> ec(c2.data(), n, n);
        if (!bf) fns.push_back([&] { ec.noalias() = ea * eb; });  // Eigen bf16 is no peer
        std::vector<double> r = measure(fns, flop, o, torch.get(), row.torch, n, nt);
        if (!dn.available) r.insert(r.begin() + 1, 0.0);  // printed as "-"
        print_row(row.name, n, nt, r[0], r[1], bf ? 0 : r[2], r.back(), dn.impl.c_str());
      }
      {
        // float16: oneDNN 2.6 has no f16 matmul. Ours takes the exact bf16 hi/lo split on AMX
        // where it was measured faster (kernels/cpu/gemm_f16_split.cpp), else the exact widening
        // to f32; the "oneDNN" column of these rows is that widening path (gemm_via_f32) called
        // directly, i.e. ours before the split. torch 1.13 has no f16 matmul on the CPU.
        AlignedVector<_Float16> fa(nn), fb(nn), fc(nn), fc2(nn);
        for (size_t i = 0; i < nn; ++i) fa[i] = _Float16(a[i]), fb[i] = _Float16(b[i]);
        for (DType out : {DType::float32, DType::float16}) {
          const bool f16_out = out == DType::float16;
          fabric::cpu::GemmArgs g{.M = n,
                                  .N = n,
                                  .K = n,
                                  .a_dtype = DType::float16,
                                  .b_dtype = DType::float16,
                                  .c_dtype = out,
                                  .A = fa.data(),
                                  .lda = n,
                                  .B = fb.data(),
                                  .ldb = n,
                                  .C = f16_out ? static_cast<void*>(fc.data()) : c.data(),
                                  .ldc = n};
          fabric::cpu::GemmArgs w = g;
          w.C = f16_out ? static_cast<void*>(fc2.data()) : c2.data();
          const uint64_t before = fabric::cpu::detail::f16_split_stats().split;
          fabric::cpu::gemm(g);
          const bool split = fabric::cpu::detail::f16_split_stats().split != before;
          std::vector<double> r = measure(
              {[&] { fabric::cpu::gemm(g); }, [&] { fabric::cpu::detail::gemm_via_f32(w); }}, flop,
              o, nullptr, nullptr, n, nt);
          print_row(f16_out ? "f16->f16" : "f16->f32", n, nt, r[0], r[1], 0, 0,
                    split ? "ours: bf16 split (AMX); oneDNN col: f32 widening"
                          : "ours: f32 widening (= oneDNN col)");
        }
      }
      if (o.f64) {
        // float64 has no oneDNN matmul: ours is Eigen underneath, so the peers are Eigen and torch.
        AlignedVector<double> da(a.begin(), a.end()), db(b.begin(), b.end()), dc(nn), dc2(nn);
        fabric::cpu::GemmArgs g{.M = n,
                                .N = n,
                                .K = n,
                                .a_dtype = DType::float64,
                                .b_dtype = DType::float64,
                                .c_dtype = DType::float64,
                                .A = da.data(),
                                .lda = n,
                                .B = db.data(),
                                .ldb = n,
                                .C = dc.data(),
                                .ldc = n};
        Eigen::Map<const RowMatD> ea(da.data(), n, n), eb(db.data(), n, n);
        Eigen::Map<RowMatD> ec(dc2.data(), n, n);
        std::vector<double> r =
            measure({[&] { fabric::cpu::gemm(g); }, [&] { ec.noalias() = ea * eb; }}, flop, o,
                    torch.get(), "f64", n, nt);
        print_row("f64", n, nt, r[0], 0, r[1], r.back(), "(ours is Eigen)");
      }
    }
  }
  std::printf(
      "\ngoal: ours >= 0.95x max(oneDNN, Eigen) and >= 1.0x torch (f64: ours is Eigen, so the "
      "first ratio is ours/Eigen). load average at end: %s\n",
      read_first("/proc/loadavg", nullptr).c_str());
  const auto st = fabric::cpu::gemm_cache_stats();
  std::printf("fabric gemm primitive cache: %llu hits, %llu misses\n", (unsigned long long)st.hits,
              (unsigned long long)st.misses);
  return 0;
}
