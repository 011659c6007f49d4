// The CPU 3-D convolution kernels: oneDNN (2.x API) convolution primitives on 5-D NCDHW tensors
// for float32 and bfloat16 (forward, backward data, backward weights), cached per problem like
// the 2-D ones (conv_onednn.cpp); float16 widened exactly to float32 and rounded once on the way
// out; float64, and anything oneDNN refuses, through the direct loops (conv3d_direct.cpp).
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/conv3d_direct.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/plan_cache.h"
#include "tensor/conv3d_kernels.h"
#include "tensor/error.h"

namespace fabric::cpu {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using dims = dnnl::memory::dims;

enum class Kind : uint8_t { forward, backward_data, backward_weights };

// The problem as flat integers: geometry, dtype, pass, bias flag and thread count.
struct Key {
  std::array<int64_t, 26> v{};
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

Key make_key(const Conv3dDesc& d, Kind kind, bool with_bias) {
  Key k;
  size_t i = 0;
  for (int64_t x : {d.N, d.C, d.OC, d.groups}) k.v[i++] = x;
  for (const auto* a : {&d.in, &d.k, &d.out, &d.stride, &d.pad, &d.dil})
    for (int64_t x : *a) k.v[i++] = x;
  k.v[i++] = static_cast<int64_t>(d.dtype) | static_cast<int64_t>(kind) << 8 |
             static_cast<int64_t>(with_bias) << 16;
  k.v[i++] = omp_get_max_threads();
  return k;
}

// How one primitive argument meets the caller's plain NCDHW/OIDHW buffer: directly, or through a
// reorder into/out of the blocked layout (e.g. nCdhw16c) the primitive chose.
struct ArgPlan {
  int arg = 0;
  bool output = false;
  dnnl::memory::desc user, prim;
  bool reorder = false;
  dnnl::reorder r;  // user -> prim for inputs, prim -> user for outputs
};

// A cached primitive, or the decision that oneDNN cannot run this problem (the caller then takes
// the direct loops, chosen once rather than per call).
struct Plan {
  bool usable = false;
  dnnl::primitive prim;
  std::vector<ArgPlan> args;
  dnnl::memory::desc scratch;
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
void* thread_buffer(size_t slot, size_t bytes) {
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
          fabric::detail::cat("conv3d: could not allocate ", n, " bytes of oneDNN buffers"));
    }
    buf.n = n;
  }
  return buf.p;
}

dims to_dims(const std::array<int64_t, 3>& a) { return {a[0], a[1], a[2]}; }

std::shared_ptr<Plan> make_plan(const Conv3dDesc& d, Kind kind, bool with_bias) {
  auto plan = std::make_shared<Plan>();
  const dt t = d.dtype == DType::bfloat16 ? dt::bf16 : dt::f32;
  const int64_t G = d.groups;
  const dnnl::memory::desc src({d.N, d.C, d.in[0], d.in[1], d.in[2]}, t, tag::ncdhw);
  const dnnl::memory::desc dst({d.N, d.OC, d.out[0], d.out[1], d.out[2]}, t, tag::ncdhw);
  const dims wdims = G == 1 ? dims{d.OC, d.C, d.k[0], d.k[1], d.k[2]}
                            : dims{G, d.OC / G, d.C / G, d.k[0], d.k[1], d.k[2]};
  const dnnl::memory::desc wei(wdims, t, G == 1 ? tag::oidhw : tag::goidhw);
  const dnnl::memory::desc bias({d.OC}, t, tag::x);
  // Blocked layouts (format any + reorders), as the 2-D path: 3-D problems are compute-heavy.
  const dnnl::memory::desc src_a(src.dims(), t, tag::any), dst_a(dst.dims(), t, tag::any),
      wei_a(wdims, t, tag::any);
  std::array<int64_t, 3> dil_m1{d.dil[0] - 1, d.dil[1] - 1, d.dil[2] - 1};  // oneDNN: 0 = dense
  const dims strides = to_dims(d.stride), dil = to_dims(dil_m1), pad = to_dims(d.pad);
  const auto algo = dnnl::algorithm::convolution_direct;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
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
      plan->prim = dnnl::convolution_forward(fwd_pd);
      plan->scratch = fwd_pd.scratchpad_desc();
      io = {{DNNL_ARG_SRC, src, fwd_pd.src_desc(), false},
            {DNNL_ARG_WEIGHTS, wei, fwd_pd.weights_desc(), false},
            {DNNL_ARG_DST, dst, fwd_pd.dst_desc(), true}};
      if (fwd_bias) io.push_back({DNNL_ARG_BIAS, bias, bias, false});
    } else if (kind == Kind::backward_data) {
      dnnl::convolution_backward_data::desc bd(algo, src_a, wei_a, dst_a, strides, dil, pad, pad);
      dnnl::convolution_backward_data::primitive_desc pd(bd, attr, engine(), fwd_pd);
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
    return plan;  // no primitive (e.g. bf16 on a CPU without it): the caller's fallback
  }
  plan->usable = true;
  return plan;
}

using Conv3dPlanCache = PlanCache<Key, Plan, KeyHash>;

Conv3dPlanCache& plan_cache() {
  // Leaked: kernels may run during static destruction.
  static Conv3dPlanCache* cache = new Conv3dPlanCache(256);
  return *cache;
}

// Runs the cached oneDNN primitive (with its reorders); false when there is none.
bool run_onednn(const Conv3dDesc& d, Kind kind, bool with_bias,
                const std::unordered_map<int, void*>& ptrs) {
  std::shared_ptr<Plan> plan = plan_cache().get(
      make_key(d, kind, with_bias), [&](const Key&) { return make_plan(d, kind, with_bias); });
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
      dnnl::memory staged(a.prim, eng, thread_buffer(slot++, a.prim.get_size()));
      if (a.output)
        pending_out.emplace_back(&a, user);
      else
        a.r.execute(s, {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, staged}});
      args[a.arg] = staged;
    }
    if (const size_t bytes = plan->scratch.get_size())
      args[DNNL_ARG_SCRATCHPAD] = dnnl::memory(plan->scratch, eng, thread_buffer(0, bytes));
    plan->prim.execute(s, args);
    for (auto& [a, user] : pending_out)
      a->r.execute(s, {{DNNL_ARG_FROM, args[a->arg]}, {DNNL_ARG_TO, user}});
    s.wait();
  } catch (const dnnl::error& e) {
    throw ValueError(fabric::detail::cat("conv3d: oneDNN convolution failed (", e.what(),
                                         ") for N=", d.N, " C=", d.C, " OC=", d.OC, " input ",
                                         d.in[0], "x", d.in[1], "x", d.in[2], " kernel ", d.k[0],
                                         "x", d.k[1], "x", d.k[2]));
  }
  return true;
}

// float16, and bfloat16 where oneDNN has no primitive: exact widening to float32 scratch, the
// float32 kernel, one rounding of each output.
struct F32Buf {
  std::vector<float> v;
  F32Buf(DType t, const void* src, int64_t n) : v(static_cast<size_t>(n)) {
    if (src && n) convert(t, src, DType::float32, v.data(), n);
  }
  float* data() { return v.empty() ? nullptr : v.data(); }
};

Conv3dDesc as_f32(const Conv3dDesc& d) {
  Conv3dDesc f = d;
  f.dtype = DType::float32;
  return f;
}

bool onednn_dtype(DType t) { return t == DType::float32 || t == DType::bfloat16; }

// oneDNN rejects empty problems; the direct loops handle them.
bool nonempty(const Conv3dDesc& d) { return d.x_numel() > 0 && d.w_numel() > 0 && d.y_numel() > 0; }

void check_dtype(const Conv3dDesc& d, const char* what) {
  FABRIC_CHECK(d.dtype == DType::float32 || d.dtype == DType::float64 ||
                   d.dtype == DType::bfloat16 || d.dtype == DType::float16,
               DTypeError, what, " kernel: unsupported dtype ", dtype_name(d.dtype));
}

void forward(const Conv3dDesc& d, const void* x, const void* w, const void* bias, void* y) {
  check_dtype(d, "conv3d");
  if (onednn_dtype(d.dtype) && nonempty(d)) {
    std::unordered_map<int, void*> p{{DNNL_ARG_SRC, const_cast<void*>(x)},
                                     {DNNL_ARG_WEIGHTS, const_cast<void*>(w)},
                                     {DNNL_ARG_DST, y}};
    if (bias) p[DNNL_ARG_BIAS] = const_cast<void*>(bias);
    if (run_onednn(d, Kind::forward, bias != nullptr, p)) return;
  }
  if (d.dtype == DType::float64 || d.dtype == DType::float32)
    return conv3d_forward_direct(d, x, w, bias, y);
  F32Buf xf(d.dtype, x, d.x_numel()), wf(d.dtype, w, d.w_numel()),
      bf(d.dtype, bias, bias ? d.OC : 0), yf(d.dtype, nullptr, d.y_numel());
  forward(as_f32(d), xf.data(), wf.data(), bias ? bf.data() : nullptr, yf.data());
  convert(DType::float32, yf.data(), d.dtype, y, d.y_numel());
}

void backward_data(const Conv3dDesc& d, const void* dy, const void* w, void* dx) {
  check_dtype(d, "conv3d_backward_data");
  if (onednn_dtype(d.dtype) && nonempty(d)) {
    std::unordered_map<int, void*> p{{DNNL_ARG_DIFF_DST, const_cast<void*>(dy)},
                                     {DNNL_ARG_WEIGHTS, const_cast<void*>(w)},
                                     {DNNL_ARG_DIFF_SRC, dx}};
    if (run_onednn(d, Kind::backward_data, false, p)) return;
  }
  if (d.dtype == DType::float64 || d.dtype == DType::float32)
    return conv3d_backward_data_direct(d, dy, w, dx);
  F32Buf dyf(d.dtype, dy, d.y_numel()), wf(d.dtype, w, d.w_numel()),
      dxf(d.dtype, nullptr, d.x_numel());
  backward_data(as_f32(d), dyf.data(), wf.data(), dxf.data());
  convert(DType::float32, dxf.data(), d.dtype, dx, d.x_numel());
}

void backward_weights(const Conv3dDesc& d, const void* dy, const void* x, void* dw, void* db) {
  check_dtype(d, "conv3d_backward_weights");
  if (!dw && !db) return;
  // oneDNN's backward-weights primitive always produces weights; a bias-only request is a plain
  // sum (the direct loops', or float32's for the narrow dtypes).
  if (onednn_dtype(d.dtype) && nonempty(d) && dw) {
    std::unordered_map<int, void*> p{{DNNL_ARG_DIFF_DST, const_cast<void*>(dy)},
                                     {DNNL_ARG_SRC, const_cast<void*>(x)},
                                     {DNNL_ARG_DIFF_WEIGHTS, dw}};
    if (db) p[DNNL_ARG_DIFF_BIAS] = db;
    if (run_onednn(d, Kind::backward_weights, db != nullptr, p)) return;
  }
  if (d.dtype == DType::float64 || d.dtype == DType::float32)
    return conv3d_backward_weights_direct(d, dy, x, dw, db);
  F32Buf dyf(d.dtype, dy, d.y_numel()), xf(d.dtype, x, d.x_numel()),
      dwf(d.dtype, nullptr, dw ? d.w_numel() : 0), dbf(d.dtype, nullptr, db ? d.OC : 0);
  backward_weights(as_f32(d), dyf.data(), xf.data(), dw ? dwf.data() : nullptr,
                   db ? dbf.data() : nullptr);
  if (dw) convert(DType::float32, dwf.data(), d.dtype, dw, d.w_numel());
  if (db) convert(DType::float32, dbf.data(), d.dtype, db, d.OC);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(conv3d_forward_stub, cpu, &cpu::forward);
FABRIC_REGISTER_KERNEL(conv3d_backward_data_stub, cpu, &cpu::backward_data);
FABRIC_REGISTER_KERNEL(conv3d_backward_weights_stub, cpu, &cpu::backward_weights);
}  // namespace fabric
