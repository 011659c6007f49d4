// The CPU convolution kernels, 2-D (NCHW) and 3-D (NCDHW) alike: oneDNN (2.x API) convolution
// primitives for float32 and bfloat16 (forward, backward data, backward weights), kept in a
// thread-safe LRU primitive cache; float16 widened exactly to float32 and rounded once on the way
// out. What oneDNN does not run (float64: oneDNN 2.x has no f64 convolution; empty problems)
// takes the rank's own loops: im2col + GEMM for 2-D (conv_im2col.h), direct loops for 3-D
// (conv3d_direct.h).
#include <omp.h>

#include <array>
#include <cstdlib>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/conv3d_direct.h"
#include "kernels/cpu/conv_im2col.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/plan_cache.h"
#include "tensor/conv3d_kernels.h"
#include "tensor/conv_kernels.h"
#include "tensor/error.h"

namespace fabric::cpu {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using dims = dnnl::memory::dims;

// A 2-D or 3-D problem with its spatial sizes as arrays (the first `rank` entries used, the rest
// 0): one shape for the primitive setup, the cache key and the messages of both ranks.
struct Geometry {
  int rank = 2;
  int64_t N = 0, C = 0, OC = 0, groups = 1;
  std::array<int64_t, 3> in{}, k{}, out{}, stride{}, pad{}, dil{};
  DType dtype = DType::float32;

  const char* name() const { return rank == 2 ? "conv2d" : "conv3d"; }
  int64_t spatial(const std::array<int64_t, 3>& a) const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= a[i];
    return n;
  }
  int64_t x_numel() const { return N * C * spatial(in); }
  int64_t w_numel() const { return OC * (C / groups) * spatial(k); }
  int64_t y_numel() const { return N * OC * spatial(out); }
};

Geometry geometry(const Conv2dDesc& d) {
  return {2,        d.N,          d.C,      d.OC,        d.groups, {d.H, d.W},     {d.KH, d.KW},
          {d.OH, d.OW}, {d.stride_h, d.stride_w}, {d.pad_h, d.pad_w}, {d.dil_h, d.dil_w}, d.dtype};
}

Geometry geometry(const Conv3dDesc& d) {
  return {3, d.N, d.C, d.OC, d.groups, d.in, d.k, d.out, d.stride, d.pad, d.dil, d.dtype};
}

enum class Kind : uint8_t { forward, backward_data, backward_weights };

// The problem as flat integers: geometry, dtype, pass, bias flag and thread count.
struct Key {
  std::array<int64_t, 24> v{};
  bool operator==(const Key& o) const { return v == o.v; }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;
    for (int64_t x : k.v) {
      h = (h ^ static_cast<uint64_t>(x)) * 1099511628211ull;
      h ^= h >> 29;
    }
    return h;
  }
};

Key make_key(const Geometry& g, Kind kind, bool with_bias) {
  Key k;
  size_t i = 0;
  for (int64_t x : {g.N, g.C, g.OC, g.groups}) k.v[i++] = x;
  for (const auto* a : {&g.in, &g.k, &g.out, &g.stride, &g.pad, &g.dil})
    for (int64_t x : *a) k.v[i++] = x;
  k.v[i++] = static_cast<int64_t>(g.dtype) | static_cast<int64_t>(kind) << 8 |
             static_cast<int64_t>(with_bias) << 16 | static_cast<int64_t>(g.rank) << 24;
  k.v[i++] = omp_get_max_threads();
  return k;
}

// How one primitive argument meets the caller's plain NC(D)HW/OI(D)HW buffer: directly, or
// through a reorder into/out of the layout (blocked, e.g. nChw16c) the primitive chose.
struct ArgPlan {
  int arg = 0;
  bool output = false;
  dnnl::memory::desc user, prim;
  bool reorder = false;
  dnnl::reorder r;  // user -> prim for inputs, prim -> user for outputs
};

// A cached primitive, or the decision that the rank's own loops run this problem (chosen once
// rather than per call).
struct Plan {
  bool usable = false;
  dnnl::primitive prim;
  std::vector<ArgPlan> args;
  dnnl::memory::desc scratch;
  size_t scratch_bytes = 0;
};

const dnnl::engine& engine() {
  static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

// Grow-only per-thread buffers: slot 0 is the scratchpad (user scratchpad mode lets one cached
// primitive run on many threads at once), the others hold reordered arguments.
void* thread_buffer(const Geometry& g, size_t slot, size_t bytes) {
  struct Buf {
    void* p = nullptr;
    size_t n = 0;
    ~Buf() { std::free(p); }
  };
  thread_local std::vector<Buf> bufs(8);
  Buf& buf = bufs.at(slot);
  if (bytes > buf.n) {
    std::free(buf.p);
    const size_t n = (bytes + 4095) / 4096 * 4096;
    buf.p = std::aligned_alloc(64, n);
    if (!buf.p) {
      buf.n = 0;
      throw ValueError(
          fabric::detail::cat(g.name(), ": could not allocate ", n, " bytes of oneDNN buffers"));
    }
    buf.n = n;
  }
  return buf.p;
}

// Blocked layouts (format any + reorders) win on compute-heavy problems; the plain layouts avoid
// the reorder passes. FABRIC_CONV_PLAIN=1 forces plain layouts for 2-D (for measurements); 3-D
// problems are compute-heavy enough to always take blocked ones.
bool use_blocked_layouts(const Geometry& g) {
  static const bool blocked = [] {
    const char* e = std::getenv("FABRIC_CONV_PLAIN");
    return !(e && e[0] == '1');
  }();
  return g.rank == 3 || blocked;
}

// The first `rank` entries of a, minus `minus` (oneDNN's dilation counts from 0 = dense).
dims spatial_dims(const Geometry& g, const std::array<int64_t, 3>& a, int64_t minus = 0) {
  dims r;
  for (int i = 0; i < g.rank; ++i) r.push_back(a[i] - minus);
  return r;
}

dims concat(dims head, const dims& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

std::shared_ptr<Plan> make_plan(const Geometry& g, Kind kind, bool with_bias) {
  auto plan = std::make_shared<Plan>();
  const bool is3d = g.rank == 3;
  const dt t = g.dtype == DType::bfloat16 ? dt::bf16 : dt::f32;
  const int64_t G = g.groups;
  const dnnl::memory::desc src(concat({g.N, g.C}, spatial_dims(g, g.in)), t,
                               is3d ? tag::ncdhw : tag::nchw);
  const dnnl::memory::desc dst(concat({g.N, g.OC}, spatial_dims(g, g.out)), t,
                               is3d ? tag::ncdhw : tag::nchw);
  const dims wdims = G == 1 ? concat({g.OC, g.C}, spatial_dims(g, g.k))
                            : concat({G, g.OC / G, g.C / G}, spatial_dims(g, g.k));
  const tag wtag = G == 1 ? (is3d ? tag::oidhw : tag::oihw) : (is3d ? tag::goidhw : tag::goihw);
  const dnnl::memory::desc wei(wdims, t, wtag);
  const dnnl::memory::desc bias({g.OC}, t, tag::x);
  const bool blocked = use_blocked_layouts(g);
  const dnnl::memory::desc src_a = blocked ? dnnl::memory::desc(src.dims(), t, tag::any) : src;
  const dnnl::memory::desc dst_a = blocked ? dnnl::memory::desc(dst.dims(), t, tag::any) : dst;
  const dnnl::memory::desc wei_a = blocked ? dnnl::memory::desc(wdims, t, tag::any) : wei;
  const dims strides = spatial_dims(g, g.stride), dil = spatial_dims(g, g.dil, 1),
             pad = spatial_dims(g, g.pad);
  const auto algo = dnnl::algorithm::convolution_direct;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  // 2-D: oneDNN's reference code loses to im2col + GEMM, so a problem it only has reference code
  // for takes im2col. 3-D keeps it: its own loops are plain direct ones.
  auto fallback_wins = [is3d](const auto& pd) {
    return !is3d && std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
  };
  // (arg, user layout, the primitive's layout, is an output)
  struct Io {
    int arg;
    dnnl::memory::desc user, prim;
    bool output;
  };
  std::vector<Io> io;
  try {
    const bool fwd_bias = kind == Kind::forward && with_bias;
    auto fwd_desc =
        fwd_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, src_a,
                                                   wei_a, bias, dst_a, strides, dil, pad, pad)
                 : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, src_a,
                                                   wei_a, dst_a, strides, dil, pad, pad);
    dnnl::convolution_forward::primitive_desc fwd_pd(fwd_desc, attr, engine());
    if (kind == Kind::forward) {
      if (fallback_wins(fwd_pd)) return plan;
      plan->prim = dnnl::convolution_forward(fwd_pd);
      plan->scratch = fwd_pd.scratchpad_desc();
      io = {{DNNL_ARG_SRC, src, fwd_pd.src_desc(), false},
            {DNNL_ARG_WEIGHTS, wei, fwd_pd.weights_desc(), false},
            {DNNL_ARG_DST, dst, fwd_pd.dst_desc(), true}};
      if (fwd_bias) io.push_back({DNNL_ARG_BIAS, bias, bias, false});
    } else if (kind == Kind::backward_data) {
      dnnl::convolution_backward_data::desc bd(algo, src_a, wei_a, dst_a, strides, dil, pad, pad);
      dnnl::convolution_backward_data::primitive_desc pd(bd, attr, engine(), fwd_pd);
      if (fallback_wins(pd)) return plan;
      plan->prim = dnnl::convolution_backward_data(pd);
      plan->scratch = pd.scratchpad_desc();
      io = {{DNNL_ARG_DIFF_DST, dst, pd.diff_dst_desc(), false},
            {DNNL_ARG_WEIGHTS, wei, pd.weights_desc(), false},
            {DNNL_ARG_DIFF_SRC, src, pd.diff_src_desc(), true}};
    } else {
      auto bd = with_bias ? dnnl::convolution_backward_weights::desc(algo, src_a, wei_a, bias,
                                                                     dst_a, strides, dil, pad, pad)
                          : dnnl::convolution_backward_weights::desc(algo, src_a, wei_a, dst_a,
                                                                     strides, dil, pad, pad);
      dnnl::convolution_backward_weights::primitive_desc pd(bd, attr, engine(), fwd_pd);
      if (fallback_wins(pd)) return plan;
      plan->prim = dnnl::convolution_backward_weights(pd);
      plan->scratch = pd.scratchpad_desc();
      io = {{DNNL_ARG_DIFF_DST, dst, pd.diff_dst_desc(), false},
            {DNNL_ARG_SRC, src, pd.src_desc(), false},
            {DNNL_ARG_DIFF_WEIGHTS, wei, pd.diff_weights_desc(), true}};
      if (with_bias) io.push_back({DNNL_ARG_DIFF_BIAS, bias, pd.diff_bias_desc(), true});
    }
    for (const Io& e : io) {
      ArgPlan a;
      a.arg = e.arg;
      a.output = e.output;
      a.user = e.user;
      a.prim = e.prim;
      a.reorder = e.user != e.prim;
      if (a.reorder) {
        a.r =
            e.output
                ? dnnl::reorder(dnnl::reorder::primitive_desc(engine(), e.prim, engine(), e.user))
                : dnnl::reorder(dnnl::reorder::primitive_desc(engine(), e.user, engine(), e.prim));
      }
      plan->args.push_back(a);
    }
  } catch (const dnnl::error&) {
    return plan;  // no primitive (e.g. bf16 on a CPU without it): the rank's own loops
  }
  plan->scratch_bytes = plan->scratch.get_size();
  plan->usable = true;
  return plan;
}

using ConvPlanCache = PlanCache<Key, Plan, KeyHash>;

ConvPlanCache& plan_cache() {
  // Leaked: kernels may run during static destruction. Room for 1024 2-D and 256 3-D problems.
  static ConvPlanCache* cache = new ConvPlanCache(1024 + 256);
  return *cache;
}

// "N=.. C=.. H=.. W=.. OC=.. kernel KHxKW" (2-D) or "N=.. C=.. OC=.. input DxHxW kernel ..." (3-D)
std::string describe(const Geometry& g) {
  using fabric::detail::cat;
  if (g.rank == 2)
    return cat("N=", g.N, " C=", g.C, " H=", g.in[0], " W=", g.in[1], " OC=", g.OC, " kernel ",
               g.k[0], "x", g.k[1]);
  return cat("N=", g.N, " C=", g.C, " OC=", g.OC, " input ", g.in[0], "x", g.in[1], "x", g.in[2],
             " kernel ", g.k[0], "x", g.k[1], "x", g.k[2]);
}

// Runs the cached oneDNN primitive (with its reorders); false when there is none.
bool run_onednn(const Geometry& g, Kind kind, bool with_bias,
                const std::unordered_map<int, void*>& ptrs) {
  std::shared_ptr<Plan> plan = plan_cache().get(
      make_key(g, kind, with_bias), [&](const Key&) { return make_plan(g, kind, with_bias); });
  if (!plan->usable) return false;
  const dnnl::engine& eng = engine();
  dnnl::stream& s = thread_stream();
  try {
    std::unordered_map<int, dnnl::memory> args;
    std::vector<std::pair<const ArgPlan*, dnnl::memory>> pending_out;
    size_t slot = 1;
    for (const ArgPlan& a : plan->args) {
      dnnl::memory user(a.user, eng, ptrs.at(a.arg));
      if (!a.reorder) {
        args[a.arg] = user;
        continue;
      }
      dnnl::memory staged(a.prim, eng, thread_buffer(g, slot++, a.prim.get_size()));
      if (a.output)
        pending_out.emplace_back(&a, user);
      else
        a.r.execute(s, {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, staged}});
      args[a.arg] = staged;
    }
    if (plan->scratch_bytes)
      args[DNNL_ARG_SCRATCHPAD] =
          dnnl::memory(plan->scratch, eng, thread_buffer(g, 0, plan->scratch_bytes));
    plan->prim.execute(s, args);
    for (auto& [a, user] : pending_out)
      a->r.execute(s, {{DNNL_ARG_FROM, args[a->arg]}, {DNNL_ARG_TO, user}});
    s.wait();
  } catch (const dnnl::error& e) {
    throw ValueError(fabric::detail::cat(g.name(), ": oneDNN convolution failed (", e.what(),
                                         ") for ", describe(g)));
  }
  return true;
}

// The rank's own loops: float32 and float64 problems oneDNN does not run.
void own_forward(const Conv2dDesc& d, const void* x, const void* w, const void* b, void* y) {
  conv2d_forward_im2col(d, x, w, b, y);
}
void own_forward(const Conv3dDesc& d, const void* x, const void* w, const void* b, void* y) {
  conv3d_forward_direct(d, x, w, b, y);
}
void own_backward_data(const Conv2dDesc& d, const void* dy, const void* w, void* dx) {
  conv2d_backward_data_im2col(d, dy, w, dx);
}
void own_backward_data(const Conv3dDesc& d, const void* dy, const void* w, void* dx) {
  conv3d_backward_data_direct(d, dy, w, dx);
}
void own_backward_weights(const Conv2dDesc& d, const void* dy, const void* x, void* dw, void* db) {
  conv2d_backward_weights_im2col(d, dy, x, dw, db);
}
void own_backward_weights(const Conv3dDesc& d, const void* dy, const void* x, void* dw, void* db) {
  conv3d_backward_weights_direct(d, dy, x, dw, db);
}

// float16 (and bfloat16 when oneDNN has no primitive): exact widening to float32 scratch, the
// float32 kernel, one rounding of each output.
struct F32Buf {
  std::vector<float> v;
  F32Buf(DType t, const void* src, int64_t n) : v(static_cast<size_t>(n)) {
    if (src && n) convert(t, src, DType::float32, v.data(), n);
  }
  float* data() { return v.empty() ? nullptr : v.data(); }
};

template <class Desc>
Desc as_f32(const Desc& d) {
  Desc f = d;
  f.dtype = DType::float32;
  return f;
}

bool onednn_dtype(DType t) { return t == DType::float32 || t == DType::bfloat16; }

// oneDNN rejects empty problems; the rank's own loops handle them.
bool nonempty(const Geometry& g) { return g.x_numel() > 0 && g.w_numel() > 0 && g.y_numel() > 0; }

void check_dtype(const Geometry& g, const char* pass) {
  FABRIC_CHECK(g.dtype == DType::float32 || g.dtype == DType::float64 ||
                   g.dtype == DType::bfloat16 || g.dtype == DType::float16,
               DTypeError, g.name(), pass, " kernel: unsupported dtype ", dtype_name(g.dtype));
}

template <class Desc>
void forward(const Desc& d, const void* x, const void* w, const void* bias, void* y) {
  const Geometry g = geometry(d);
  check_dtype(g, "");
  if (onednn_dtype(d.dtype) && nonempty(g)) {
    std::unordered_map<int, void*> p{{DNNL_ARG_SRC, const_cast<void*>(x)},
                                     {DNNL_ARG_WEIGHTS, const_cast<void*>(w)},
                                     {DNNL_ARG_DST, y}};
    if (bias) p[DNNL_ARG_BIAS] = const_cast<void*>(bias);
    if (run_onednn(g, Kind::forward, bias != nullptr, p)) return;
  }
  if (d.dtype == DType::float64 || d.dtype == DType::float32)
    return own_forward(d, x, w, bias, y);
  F32Buf xf(d.dtype, x, g.x_numel()), wf(d.dtype, w, g.w_numel()),
      bf(d.dtype, bias, bias ? d.OC : 0), yf(d.dtype, nullptr, g.y_numel());
  forward(as_f32(d), xf.data(), wf.data(), bias ? bf.data() : nullptr, yf.data());
  convert(DType::float32, yf.data(), d.dtype, y, g.y_numel());
}

template <class Desc>
void backward_data(const Desc& d, const void* dy, const void* w, void* dx) {
  const Geometry g = geometry(d);
  check_dtype(g, "_backward_data");
  if (onednn_dtype(d.dtype) && nonempty(g)) {
    std::unordered_map<int, void*> p{{DNNL_ARG_DIFF_DST, const_cast<void*>(dy)},
                                     {DNNL_ARG_WEIGHTS, const_cast<void*>(w)},
                                     {DNNL_ARG_DIFF_SRC, dx}};
    if (run_onednn(g, Kind::backward_data, false, p)) return;
  }
  if (d.dtype == DType::float64 || d.dtype == DType::float32)
    return own_backward_data(d, dy, w, dx);
  F32Buf dyf(d.dtype, dy, g.y_numel()), wf(d.dtype, w, g.w_numel()),
      dxf(d.dtype, nullptr, g.x_numel());
  backward_data(as_f32(d), dyf.data(), wf.data(), dxf.data());
  convert(DType::float32, dxf.data(), d.dtype, dx, g.x_numel());
}

template <class Desc>
void backward_weights(const Desc& d, const void* dy, const void* x, void* dw, void* db) {
  const Geometry g = geometry(d);
  check_dtype(g, "_backward_weights");
  if (!dw && !db) return;
  // oneDNN's backward-weights primitive always produces weights; a bias-only request is a plain
  // sum (the rank's own loops', or float32's for the narrow dtypes).
  if (onednn_dtype(d.dtype) && nonempty(g) && dw) {
    std::unordered_map<int, void*> p{{DNNL_ARG_DIFF_DST, const_cast<void*>(dy)},
                                     {DNNL_ARG_SRC, const_cast<void*>(x)},
                                     {DNNL_ARG_DIFF_WEIGHTS, dw}};
    if (db) p[DNNL_ARG_DIFF_BIAS] = db;
    if (run_onednn(g, Kind::backward_weights, db != nullptr, p)) return;
  }
  if (d.dtype == DType::float64 || d.dtype == DType::float32)
    return own_backward_weights(d, dy, x, dw, db);
  F32Buf dyf(d.dtype, dy, g.y_numel()), xf(d.dtype, x, g.x_numel()),
      dwf(d.dtype, nullptr, dw ? g.w_numel() : 0), dbf(d.dtype, nullptr, db ? d.OC : 0);
  backward_weights(as_f32(d), dyf.data(), xf.data(), dw ? dwf.data() : nullptr,
                   db ? dbf.data() : nullptr);
  if (dw) convert(DType::float32, dwf.data(), d.dtype, dw, g.w_numel());
  if (db) convert(DType::float32, dbf.data(), d.dtype, db, d.OC);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(conv2d_forward_stub, cpu, &cpu::forward<Conv2dDesc>);
FABRIC_REGISTER_KERNEL(conv2d_backward_data_stub, cpu, &cpu::backward_data<Conv2dDesc>);
FABRIC_REGISTER_KERNEL(conv2d_backward_weights_stub, cpu, &cpu::backward_weights<Conv2dDesc>);
FABRIC_REGISTER_KERNEL(conv3d_forward_stub, cpu, &cpu::forward<Conv3dDesc>);
FABRIC_REGISTER_KERNEL(conv3d_backward_data_stub, cpu, &cpu::backward_data<Conv3dDesc>);
FABRIC_REGISTER_KERNEL(conv3d_backward_weights_stub, cpu, &cpu::backward_weights<Conv3dDesc>);
}  // namespace fabric
