// The CPU convolution kernels: oneDNN (2.x API) convolution primitives for float32 and bfloat16
// (forward, backward data, backward weights), kept in a thread-safe LRU primitive cache; float64
// through im2col + GEMM; float16 widened exactly to float32 and rounded once on the way out.
#include <omp.h>

#include <cstdlib>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/conv_im2col.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/plan_cache.h"
#include "tensor/conv_kernels.h"
#include "tensor/error.h"

namespace fabric::cpu {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using dims = dnnl::memory::dims;

enum class Kind : uint8_t { forward, backward_data, backward_weights };

struct Key {
  Conv2dDesc d;
  Kind kind;
  bool with_bias;     // forward: bias given; backward_weights: db wanted
  bool with_weights;  // backward_weights: dw wanted
  int nthr;

  auto tie() const {
    return std::tie(d.N, d.C, d.H, d.W, d.OC, d.KH, d.KW, d.OH, d.OW, d.stride_h, d.stride_w,
                    d.pad_h, d.pad_w, d.dil_h, d.dil_w, d.groups, d.dtype, kind, with_bias,
                    with_weights, nthr);
  }
  bool operator==(const Key& o) const { return tie() == o.tie(); }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](uint64_t v) {
      h = (h ^ v) * 1099511628211ull;
      h ^= h >> 29;
    };
    const Conv2dDesc& d = k.d;
    for (int64_t v : {d.N, d.C, d.H, d.W, d.OC, d.KH, d.KW, d.OH, d.OW, d.stride_h, d.stride_w,
                      d.pad_h, d.pad_w, d.dil_h, d.dil_w, d.groups})
      mix(static_cast<uint64_t>(v));
    mix(uint64_t(d.dtype) | uint64_t(k.kind) << 8 | uint64_t(k.with_bias) << 16 |
        uint64_t(k.with_weights) << 17 | uint64_t(k.nthr) << 24);
    return h;
  }
};

// How one primitive argument meets the caller's plain NCHW/OIHW buffer: directly, or through a
// reorder into/out of the layout (blocked, e.g. nChw16c) the primitive chose.
struct ArgPlan {
  int arg = 0;
  bool output = false;
  dnnl::memory::desc user, prim;
  bool reorder = false;
  dnnl::reorder r;  // user -> prim for inputs, prim -> user for outputs
};

// A cached primitive, or the decision that oneDNN has nothing better than its reference code
// for this problem (the caller then takes the im2col path, chosen once rather than per call).
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
          fabric::detail::cat("conv2d: could not allocate ", n, " bytes of oneDNN buffers"));
    }
    buf.n = n;
  }
  return buf.p;
}

dt to_dnnl(DType t) { return t == DType::bfloat16 ? dt::bf16 : dt::f32; }

// Blocked layouts (format any + reorders) win on compute-heavy problems; the plain layouts avoid
// the reorder passes. FABRIC_CONV_PLAIN=1 forces plain layouts (for measurements).
bool use_blocked_layouts() {
  static const bool blocked = [] {
    const char* e = std::getenv("FABRIC_CONV_PLAIN");
    return !(e && e[0] == '1');
  }();
  return blocked;
}

std::shared_ptr<Plan> make_plan(const Key& k) {
  auto plan = std::make_shared<Plan>();
  const Conv2dDesc& d = k.d;
  const dt t = to_dnnl(d.dtype);
  const int64_t G = d.groups;
  const dnnl::memory::desc src({d.N, d.C, d.H, d.W}, t, tag::nchw);
  const dnnl::memory::desc dst({d.N, d.OC, d.OH, d.OW}, t, tag::nchw);
  const dims wdims = G == 1 ? dims{d.OC, d.C, d.KH, d.KW} : dims{G, d.OC / G, d.C / G, d.KH, d.KW};
  const dnnl::memory::desc wei(wdims, t, G == 1 ? tag::oihw : tag::goihw);
  const dnnl::memory::desc bias({d.OC}, t, tag::x);
  const bool blocked = use_blocked_layouts();
  const dnnl::memory::desc src_a = blocked ? dnnl::memory::desc(src.dims(), t, tag::any) : src;
  const dnnl::memory::desc dst_a = blocked ? dnnl::memory::desc(dst.dims(), t, tag::any) : dst;
  const dnnl::memory::desc wei_a = blocked ? dnnl::memory::desc(wdims, t, tag::any) : wei;
  const dims strides{d.stride_h, d.stride_w}, dil{d.dil_h - 1, d.dil_w - 1}, pad{d.pad_h, d.pad_w};
  const auto algo = dnnl::algorithm::convolution_direct;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto is_ref = [](const auto& pd) { return std::string(pd.impl_info_str()).rfind("ref", 0) == 0; };
  // (arg, user layout, the primitive's layout, is an output)
  std::vector<std::tuple<int, dnnl::memory::desc, dnnl::memory::desc, bool>> io;
  try {
    const bool fwd_bias = k.kind == Kind::forward && k.with_bias;
    auto fwd_desc =
        fwd_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, src_a,
                                                   wei_a, bias, dst_a, strides, dil, pad, pad)
                 : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, src_a,
                                                   wei_a, dst_a, strides, dil, pad, pad);
    dnnl::convolution_forward::primitive_desc fwd_pd(fwd_desc, attr, engine());
    if (k.kind == Kind::forward) {
      if (is_ref(fwd_pd)) return plan;
      plan->prim = dnnl::convolution_forward(fwd_pd);
      plan->scratch = fwd_pd.scratchpad_desc();
      io = {{DNNL_ARG_SRC, src, fwd_pd.src_desc(), false},
            {DNNL_ARG_WEIGHTS, wei, fwd_pd.weights_desc(), false},
            {DNNL_ARG_DST, dst, fwd_pd.dst_desc(), true}};
      if (fwd_bias) io.emplace_back(DNNL_ARG_BIAS, bias, bias, false);
    } else if (k.kind == Kind::backward_data) {
      dnnl::convolution_backward_data::desc bd(algo, src_a, wei_a, dst_a, strides, dil, pad, pad);
      dnnl::convolution_backward_data::primitive_desc pd(bd, attr, engine(), fwd_pd);
      if (is_ref(pd)) return plan;
      plan->prim = dnnl::convolution_backward_data(pd);
      plan->scratch = pd.scratchpad_desc();
      io = {{DNNL_ARG_DIFF_DST, dst, pd.diff_dst_desc(), false},
            {DNNL_ARG_WEIGHTS, wei, pd.weights_desc(), false},
            {DNNL_ARG_DIFF_SRC, src, pd.diff_src_desc(), true}};
    } else {
      auto bd = k.with_bias ? dnnl::convolution_backward_weights::desc(
                                  algo, src_a, wei_a, bias, dst_a, strides, dil, pad, pad)
                            : dnnl::convolution_backward_weights::desc(algo, src_a, wei_a, dst_a,
                                                                       strides, dil, pad, pad);
      dnnl::convolution_backward_weights::primitive_desc pd(bd, attr, engine(), fwd_pd);
      if (is_ref(pd)) return plan;
      plan->prim = dnnl::convolution_backward_weights(pd);
      plan->scratch = pd.scratchpad_desc();
      io = {{DNNL_ARG_DIFF_DST, dst, pd.diff_dst_desc(), false},
            {DNNL_ARG_SRC, src, pd.src_desc(), false},
            {DNNL_ARG_DIFF_WEIGHTS, wei, pd.diff_weights_desc(), true}};
      if (k.with_bias) io.emplace_back(DNNL_ARG_DIFF_BIAS, bias, pd.diff_bias_desc(), true);
    }
    for (auto& [arg, user, prim, output] : io) {
      ArgPlan a;
      a.arg = arg;
      a.output = output;
      a.user = user;
      a.prim = prim;
      a.reorder = user != prim;
      if (a.reorder) {
        a.r = output ? dnnl::reorder(dnnl::reorder::primitive_desc(engine(), prim, engine(), user))
                     : dnnl::reorder(dnnl::reorder::primitive_desc(engine(), user, engine(), prim));
      }
      plan->args.push_back(a);
    }
  } catch (const dnnl::error&) {
    return plan;  // no primitive: the im2col path
  }
  plan->scratch_bytes = plan->scratch.get_size();
  plan->usable = true;
  return plan;
}

using ConvPlanCache = PlanCache<Key, Plan, KeyHash>;

ConvPlanCache& plan_cache() {
  static ConvPlanCache* cache = new ConvPlanCache(1024);  // leaked: kernels may run during static destruction
  return *cache;
}

// Runs the cached oneDNN primitive (with its reorders); false when there is none.
bool run_onednn(const Key& k, const std::unordered_map<int, void*>& ptrs) {
  std::shared_ptr<Plan> plan = plan_cache().get(k, make_plan);
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
    if (plan->scratch_bytes)
      args[DNNL_ARG_SCRATCHPAD] =
          dnnl::memory(plan->scratch, eng, thread_buffer(0, plan->scratch_bytes));
    plan->prim.execute(s, args);
    for (auto& [a, user] : pending_out)
      a->r.execute(s, {{DNNL_ARG_FROM, args[a->arg]}, {DNNL_ARG_TO, user}});
    s.wait();
  } catch (const dnnl::error& e) {
    throw ValueError(fabric::detail::cat(
        "conv2d: oneDNN convolution failed (", e.what(), ") for N=", k.d.N, " C=", k.d.C,
        " H=", k.d.H, " W=", k.d.W, " OC=", k.d.OC, " kernel ", k.d.KH, "x", k.d.KW));
  }
  return true;
}

Key make_key(const Conv2dDesc& d, Kind kind, bool with_bias, bool with_weights) {
  return Key{d, kind, with_bias, with_weights, omp_get_max_threads()};
}

// float16 (and bfloat16 when oneDNN has nothing fast): exact widening to float32 scratch, the
// float32 kernel, one rounding of each output.
struct F32Buf {
  std::vector<float> v;
  F32Buf(DType t, const void* src, int64_t n) : v(static_cast<size_t>(n)) {
    if (src && n) convert(t, src, DType::float32, v.data(), n);
  }
  float* data() { return v.empty() ? nullptr : v.data(); }
};

int64_t x_numel(const Conv2dDesc& d) { return d.N * d.C * d.H * d.W; }
int64_t w_numel(const Conv2dDesc& d) { return d.OC * (d.C / d.groups) * d.KH * d.KW; }
int64_t y_numel(const Conv2dDesc& d) { return d.N * d.OC * d.OH * d.OW; }

void forward(const Conv2dDesc& d, const void* x, const void* w, const void* bias, void* y);
void backward_data(const Conv2dDesc& d, const void* dy, const void* w, void* dx);
void backward_weights(const Conv2dDesc& d, const void* dy, const void* x, void* dw, void* db);

void forward_via_f32(const Conv2dDesc& d, const void* x, const void* w, const void* bias, void* y) {
  Conv2dDesc f = d;
  f.dtype = DType::float32;
  F32Buf xf(d.dtype, x, x_numel(d)), wf(d.dtype, w, w_numel(d)), bf(d.dtype, bias, bias ? d.OC : 0),
      yf(d.dtype, nullptr, y_numel(d));
  forward(f, xf.data(), wf.data(), bias ? bf.data() : nullptr, yf.data());
  convert(DType::float32, yf.data(), d.dtype, y, y_numel(d));
}

void backward_data_via_f32(const Conv2dDesc& d, const void* dy, const void* w, void* dx) {
  Conv2dDesc f = d;
  f.dtype = DType::float32;
  F32Buf dyf(d.dtype, dy, y_numel(d)), wf(d.dtype, w, w_numel(d)),
      dxf(d.dtype, nullptr, x_numel(d));
  backward_data(f, dyf.data(), wf.data(), dxf.data());
  convert(DType::float32, dxf.data(), d.dtype, dx, x_numel(d));
}

void backward_weights_via_f32(const Conv2dDesc& d, const void* dy, const void* x, void* dw,
                              void* db) {
  Conv2dDesc f = d;
  f.dtype = DType::float32;
  F32Buf dyf(d.dtype, dy, y_numel(d)), xf(d.dtype, x, x_numel(d)),
      dwf(d.dtype, nullptr, dw ? w_numel(d) : 0), dbf(d.dtype, nullptr, db ? d.OC : 0);
  backward_weights(f, dyf.data(), xf.data(), dw ? dwf.data() : nullptr, db ? dbf.data() : nullptr);
  if (dw) convert(DType::float32, dwf.data(), d.dtype, dw, w_numel(d));
  if (db) convert(DType::float32, dbf.data(), d.dtype, db, d.OC);
}

bool onednn_dtype(DType t) { return t == DType::float32 || t == DType::bfloat16; }

// oneDNN rejects empty problems; the im2col path handles them.
bool nonempty(const Conv2dDesc& d) { return x_numel(d) > 0 && w_numel(d) > 0 && y_numel(d) > 0; }

void check_dtype(const Conv2dDesc& d, const char* what) {
  FABRIC_CHECK(d.dtype == DType::float32 || d.dtype == DType::float64 ||
                   d.dtype == DType::bfloat16 || d.dtype == DType::float16,
               DTypeError, what, " kernel: unsupported dtype ", dtype_name(d.dtype));
}

void forward(const Conv2dDesc& d, const void* x, const void* w, const void* bias, void* y) {
  check_dtype(d, "conv2d");
  if (onednn_dtype(d.dtype) && nonempty(d)) {
    std::unordered_map<int, void*> p{{DNNL_ARG_SRC, const_cast<void*>(x)},
                                     {DNNL_ARG_WEIGHTS, const_cast<void*>(w)},
                                     {DNNL_ARG_DST, y}};
    if (bias) p[DNNL_ARG_BIAS] = const_cast<void*>(bias);
    if (run_onednn(make_key(d, Kind::forward, bias != nullptr, false), p)) return;
  }
  if (d.dtype == DType::float64 || d.dtype == DType::float32)
    conv2d_forward_im2col(d, x, w, bias, y);
  else
    forward_via_f32(d, x, w, bias, y);
}

void backward_data(const Conv2dDesc& d, const void* dy, const void* w, void* dx) {
  check_dtype(d, "conv2d_backward_data");
  if (onednn_dtype(d.dtype) && nonempty(d)) {
    std::unordered_map<int, void*> p{{DNNL_ARG_DIFF_DST, const_cast<void*>(dy)},
                                     {DNNL_ARG_WEIGHTS, const_cast<void*>(w)},
                                     {DNNL_ARG_DIFF_SRC, dx}};
    if (run_onednn(make_key(d, Kind::backward_data, false, false), p)) return;
  }
  if (d.dtype == DType::float64 || d.dtype == DType::float32)
    conv2d_backward_data_im2col(d, dy, w, dx);
  else
    backward_data_via_f32(d, dy, w, dx);
}

void backward_weights(const Conv2dDesc& d, const void* dy, const void* x, void* dw, void* db) {
  check_dtype(d, "conv2d_backward_weights");
  if (!dw && !db) return;
  // oneDNN's backward-weights primitive always produces weights; a bias-only request is a plain
  // sum.
  if (onednn_dtype(d.dtype) && nonempty(d) && dw) {
    std::unordered_map<int, void*> p{{DNNL_ARG_DIFF_DST, const_cast<void*>(dy)},
                                     {DNNL_ARG_SRC, const_cast<void*>(x)},
                                     {DNNL_ARG_DIFF_WEIGHTS, dw}};
    if (db) p[DNNL_ARG_DIFF_BIAS] = db;
    if (run_onednn(make_key(d, Kind::backward_weights, db != nullptr, true), p)) return;
  }
  if (d.dtype == DType::float64 || d.dtype == DType::float32)
    conv2d_backward_weights_im2col(d, dy, x, dw, db);
  else
    backward_weights_via_f32(d, dy, x, dw, db);
}

}  // namespace
}  // namespace fabric::cpu

namespace fabric {
FABRIC_REGISTER_KERNEL(conv2d_forward_stub, cpu, &cpu::forward);
FABRIC_REGISTER_KERNEL(conv2d_backward_data_stub, cpu, &cpu::backward_data);
FABRIC_REGISTER_KERNEL(conv2d_backward_weights_stub, cpu, &cpu::backward_weights);
}  // namespace fabric
