// cuDNN's fused flash attention through the backend graph API (contract: attention_cudnn.h).
//
// cuDNN has no "attention" call before 9.13 and no causal mask in its single SDPA operation before
// 9.21: its flash-attention engines are found by matching an operation graph of matmuls,
// pointwise ops and reductions against the pattern those engines implement. Those graphs are
// built in attention_cudnn_graph.{h,cpp}; this file decides what cuDNN is offered, caches plans
// and runs them.
//
// Plans are built once per problem (device, dtype, causal, sizes, the strides of q, k, v, out and
// of the backward's grad_out and gradients; the scale is a by-value scalar supplied at each run,
// so it is not part of the key) and cached, declines too.
// Building runs every cuDNN call checked: a failing call becomes a DeviceError naming it, which
// the builder turns into a cached decline with that message (cudnn_attention_stats says why).
// Running a plan: every call checked, errors thrown. The handle (one per device, bound to the
// compute stream) and workspace come from cudnn_common.h, as the convolution's do.
#include "kernels/cuda/attention_cudnn.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/alignment.h"
#include "kernels/cuda/attention_cudnn_graph.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cudnn_common.h"
#include "kernels/cuda/stream.h"

namespace fabric::cuda {
namespace {

using fabric::detail::cat;
using namespace sdpa;  // the graphs, their builder and descriptors

constexpr const char* kWhat = "scaled_dot_product_attention (cuDNN)";
constexpr int64_t kMaxHead = 128;  // our backward must take what cuDNN's forward takes
// Workspaces beyond this are not worth an engine's speed (and could starve the model).
constexpr int64_t kMaxWorkspaceBytes = int64_t{1} << 30;

// ---- problems, plans, the cache -----------------------------------------------------------------

Strides3 canonical(const AttentionOperand& o, int64_t batch, int64_t heads, int64_t rows,
                   int64_t cols) {
  Strides3 s{o.batch_stride, o.head_stride, o.row_stride};
  if (rows == 1) s.r = cols;
  if (heads == 1) s.h = rows * s.r;
  if (batch == 1) s.b = std::max(heads * s.h, rows * s.r);  // outermost, as a layout has it
  return s;
}

// A (b, h, rows, cols) tensor's strides: the given ones canonicalised, or packed when none are.
Strides3 canonical(const std::optional<AttentionStrides>& given, int64_t batch, int64_t heads,
                   int64_t rows, int64_t cols) {
  if (!given) return {heads * rows * cols, rows * cols, cols};
  return canonical(AttentionOperand{nullptr, given->batch, given->head, given->row}, batch, heads,
                   rows, cols);
}

using Key = std::array<int64_t, 33>;

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint64_t h = 1469598103934665603ull;
    for (int64_t x : k) {
      h = (h ^ static_cast<uint64_t>(x)) * 1099511628211ull;
      h ^= h >> 29;
    }
    return h;
  }
};

Key key_of(const Problem& p) {
  return {static_cast<int64_t>(p.pass),
          p.device,
          static_cast<int64_t>(p.dtype),
          p.causal,
          p.b,
          p.h,
          p.L,
          p.S,
          p.E,
          p.q.b,
          p.q.h,
          p.q.r,
          p.k.b,
          p.k.h,
          p.k.r,
          p.v.b,
          p.v.h,
          p.v.r,
          p.o.b,
          p.o.h,
          p.o.r,
          p.d_o.b,
          p.d_o.h,
          p.d_o.r,
          p.dq.b,
          p.dq.h,
          p.dq.r,
          p.dk.b,
          p.dk.h,
          p.dk.r,
          p.dv.b,
          p.dv.h,
          p.dv.r};
}

struct Plan {
  std::unique_ptr<GraphBuilder> graph;  // the descriptors the plan was built from
  std::vector<std::unique_ptr<Desc>> configs;
  std::unique_ptr<Desc> plan;
  int64_t workspace = 0;  // cuDNN's own, before ours (backward: dQ accumulator, softmax_sum)
  std::string declined;   // non-empty: no plan, and why
  // Declined for a failure of the moment (cudnn_status_is_transient): not cached, asked again.
  bool transient = false;
};

int64_t align_up(int64_t n) { return (n + 255) / 256 * 256; }

// The backward's workspace tensors after cuDNN's: (offset of dQacc, of softmax_sum, total).
struct BackwardWorkspace {
  int64_t dq_accum, softmax_sum, total;
};
BackwardWorkspace backward_workspace(const Problem& p, int64_t cudnn_bytes) {
  const int64_t rows = p.b * p.h * p.L;
  BackwardWorkspace w;
  w.dq_accum = align_up(cudnn_bytes);
  w.softmax_sum = w.dq_accum + align_up(rows * p.E * static_cast<int64_t>(sizeof(float)));
  w.total = w.softmax_sum + align_up(rows * static_cast<int64_t>(sizeof(float)));
  return w;
}

// The execution plan of the first engine configuration of `mode` that finalizes within the
// workspace cap, or null (the statuses of the ones that did not, in `why`).
std::unique_ptr<Desc> plan_from_heuristics(cudnnHandle_t handle, cudnnBackendDescriptor_t graph,
                                           cudnnBackendHeurMode_t mode, Plan& out,
                                           std::string& why) {
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR,
            "cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR)");
  FABRIC_SET_ATTR(heur.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                  1, &graph);
  FABRIC_SET_ATTR(heur.get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  finalize(heur.get(), "cudnnBackendFinalize(engine heuristics)");
  std::vector<std::unique_ptr<Desc>> configs = heuristic_configs(heur.get());
  if (configs.empty()) {
    why += cat(mode == CUDNN_HEUR_MODE_A ? "heuristics A" : "fallback heuristics",
               " offer no engine; ");
    return nullptr;
  }
  // The plan keeps the configuration it was built from alive (Plan::configs).
  for (size_t i = 0; i < configs.size(); ++i) {
    cudnnBackendDescriptor_t config = configs[i]->get();
    auto plan = std::make_unique<Desc>(
        CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR,
        "cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR)");
    FABRIC_SET_ATTR(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle);
    FABRIC_SET_ATTR(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                    CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &config);
    const cudnnStatus_t st = cudnnBackendFinalize(plan->get());
    if (cudnn_status_is_transient(st)) out.transient = true;
    if (st != CUDNN_STATUS_SUCCESS) {  // this engine does not take the graph: try the next
      why += cat("engine config ", i, ": ", cudnnGetErrorString(st), "; ");
      continue;
    }
    int64_t workspace = 0, got = 0;
    cudnn_check(cudnnBackendGetAttribute(plan->get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                         CUDNN_TYPE_INT64, 1, &got, &workspace),
                "cudnnBackendGetAttribute(CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)");
    if (workspace < 0 || workspace > kMaxWorkspaceBytes) {
      why += cat("engine config ", i, ": workspace ", workspace, " bytes; ");
      continue;
    }
    out.workspace = workspace;
    out.configs = std::move(configs);  // holds configs[i], which the plan refers to
    return plan;
  }
  why += cat(mode == CUDNN_HEUR_MODE_A ? "heuristics A: " : "fallback heuristics: ", configs.size(),
             " engine configs tried, none taken; ");
  return nullptr;
}

std::shared_ptr<Plan> build_plan(cudnnHandle_t handle, const Problem& p) {
  auto plan = std::make_shared<Plan>();
  take_last_failed_cudnn_status();  // a failure before this plan says nothing about it
  try {
    plan->graph = std::make_unique<GraphBuilder>(handle);
    if (p.pass == Pass::forward) {
      build_forward_graph(*plan->graph, p);
    } else {
      build_backward_graph(*plan->graph, p);
    }
    cudnnBackendDescriptor_t graph = plan->graph->graph();
    std::string why;
    for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
      try {
        plan->plan = plan_from_heuristics(handle, graph, mode, *plan, why);
      } catch (const Error& e) {  // these heuristics refuse the graph: the next may not
        why += cat(e.what(), "; ");
        if (cudnn_status_is_transient(take_last_failed_cudnn_status())) plan->transient = true;
      }
      if (plan->plan) break;
    }
    if (!plan->plan) plan->declined = "no cuDNN engine takes the graph (" + why + ")";
  } catch (const Error& e) {
    plan->plan.reset();
    plan->declined = cat("building the cuDNN graph failed: ", e.what());
    if (cudnn_status_is_transient(take_last_failed_cudnn_status())) plan->transient = true;
  }
  if (!plan->declined.empty()) {  // keep only the reason
    plan->plan.reset();
    plan->configs.clear();
    plan->graph.reset();
  }
  return plan;
}

std::mutex g_plan_mu;
std::unordered_map<Key, std::shared_ptr<Plan>, KeyHash>& plans() {
  static auto* m = new std::unordered_map<Key, std::shared_ptr<Plan>, KeyHash>();
  return *m;
}

// The cached plan of `p`, built on a miss. The caller holds the device's handle, so one device
// builds once per problem.
std::shared_ptr<Plan> cached_plan(cudnnHandle_t handle, const Problem& p) {
  const Key key = key_of(p);
  {
    std::lock_guard<std::mutex> lock(g_plan_mu);
    auto it = plans().find(key);
    if (it != plans().end()) return it->second;
  }
  std::shared_ptr<Plan> plan = build_plan(handle, p);
  // A plan declined for a failure of the moment (memory short while cuDNN compiled or finalized
  // it) would keep this problem on our kernels for the rest of the process: asked again instead.
  if (!plan->plan && plan->transient) return plan;
  std::lock_guard<std::mutex> lock(g_plan_mu);
  return plans().emplace(key, std::move(plan)).first->second;
}

// ---- statistics ---------------------------------------------------------------------------------

std::atomic<int64_t> g_forward_taken{0}, g_forward_declined{0}, g_backward_taken{0},
    g_backward_declined{0};
std::mutex g_decline_mu;
std::string g_last_decline;

bool decline(Pass pass, const std::string& why) {
  (pass == Pass::forward ? g_forward_declined : g_backward_declined)
      .fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(g_decline_mu);
  g_last_decline = cat(pass == Pass::forward ? "forward" : "backward", ": ", why);
  return false;
}

// ---- what cuDNN is offered ----------------------------------------------------------------------

int64_t runtime_version() {
  static const int64_t v = static_cast<int64_t>(cudnnGetVersion());
  return v;
}

bool aligned(const void* p) { return aligned_to(p, kAlignment); }
bool aligned(const Strides3& s) { return s.b % 8 == 0 && s.h % 8 == 0 && s.r % 8 == 0; }

// Why cuDNN is not offered `a` at all, or nothing. `device` owns the output.
std::optional<std::string> static_decline(const AttentionArgs& a, Pass pass, int device) {
  if (a.dtype != DType::bfloat16 && a.dtype != DType::float16)
    return cat("dtype ", dtype_name(a.dtype), " (cuDNN's flash attention takes bfloat16, float16)");
  if (a.dropout_p != 0.0) return cat("dropout_p ", a.dropout_p, " (no dropout on this path)");
  if (a.E != a.Ev) return cat("E ", a.E, " != Ev ", a.Ev);
  if (a.E < 8 || a.E % 8 != 0 || a.E > kMaxHead)
    return cat("head size ", a.E, " (a multiple of 8 up to ", kMaxHead, ")");
  if (a.L < 1 || a.S < 1 || a.batch < 1 || a.heads < 1)
    return cat("an empty problem (batch ", a.batch, ", heads ", a.heads, ", L ", a.L, ", S ", a.S,
               ")");
  if (a.L > std::numeric_limits<int32_t>::max() || a.S > std::numeric_limits<int32_t>::max())
    return std::string("L or S past 2^31");
  // NVIDIA's frontend refuses this backward ("s_q = s_kv = 1 is not supported"): its engines may
  // still finalize a plan for the graph, so the check is ours to make.
  if (pass == Pass::backward && a.L == 1 && a.S == 1)
    return std::string("L = S = 1 (cuDNN's SDPA backward does not support it)");
  const int64_t v = runtime_version();
  if (v < 90000) return cat("cuDNN runtime ", v, " (needs 9.0 or newer)");
  // NVIDIA's frontend refuses these releases for fp16/bf16 SDPA (known bugs).
  if (v == 91000 || v == 91001) return cat("cuDNN runtime ", v, " (9.10.0/9.10.1 have SDPA bugs)");
  // NVIDIA's frontend: a single query row (decode mode) takes no mask on 9.9 and older.
  if (pass == Pass::forward && a.causal && a.L == 1 && v <= 90900)
    return cat("causal with L = 1 on cuDNN runtime ", v, " (needs 9.10 or newer)");
  // Before 9.16 the backward needs a padding-mask workaround for S not a multiple of 128.
  if (pass == Pass::backward && v <= 91500 && a.S % 128 != 0)
    return cat("S ", a.S, " not a multiple of 128 on cuDNN runtime ", v, " (needs 9.15.1+)");
  const int major = compute_capability(device) / 10;
  if (major < 8) return cat("compute capability ", major, ".x (needs 8.0 or newer)");
  return std::nullopt;
}

// The problem of a forward (`b` null) or of backward `b` (whose fwd is `a`).
Problem problem_of(const AttentionArgs& a, Pass pass, int device,
                   const AttentionBackwardArgs* b = nullptr) {
  Problem p;
  p.pass = pass;
  p.device = device;
  p.dtype = a.dtype;
  p.causal = a.causal;
  p.b = a.batch, p.h = a.heads, p.L = a.L, p.S = a.S, p.E = a.E;
  p.q = canonical(a.q, a.batch, a.heads, a.L, a.E);
  p.k = canonical(a.k, a.batch, a.heads, a.S, a.E);
  p.v = canonical(a.v, a.batch, a.heads, a.S, a.Ev);
  p.o = canonical(a.out_strides, a.batch, a.heads, a.L, a.Ev);
  const AttentionBackwardArgs none;
  const AttentionBackwardArgs& g = b ? *b : none;
  p.d_o = canonical(g.grad_out_strides, a.batch, a.heads, a.L, a.Ev);
  p.dq = canonical(g.grad_q_strides, a.batch, a.heads, a.L, a.E);
  p.dk = canonical(g.grad_k_strides, a.batch, a.heads, a.S, a.E);
  p.dv = canonical(g.grad_v_strides, a.batch, a.heads, a.S, a.Ev);
  return p;
}

std::optional<std::string> layout_decline(const Problem& p, const AttentionArgs& a) {
  if (!aligned(a.q.data) || !aligned(a.k.data) || !aligned(a.v.data))
    return std::string("q, k or v not 16-byte aligned");
  if (!aligned(p.q) || !aligned(p.k) || !aligned(p.v))
    return std::string("q, k or v strides not multiples of 8 elements");
  if (!aligned(p.o) || !aligned(p.d_o) || !aligned(p.dq) || !aligned(p.dk) || !aligned(p.dv))
    return std::string("out, grad_out or a gradient's strides not multiples of 8 elements");
  return std::nullopt;
}

// The device's cuDNN handle, or null (the problem declined) when cuDNN cannot make one: a
// broken cuDNN install costs the speed of this path, not the op.
CudnnHandle* usable_handle(int device, Pass pass) {
  try {
    return &cudnn_handle(device, kWhat);
  } catch (const Error& e) {
    decline(pass, cat("no cuDNN handle: ", e.what()));
    return nullptr;
  }
}

// Runs `plan` with the (uid, pointer) pairs and `workspace`, on the handle's stream.
void execute(CudnnHandle& handle, const Plan& plan, const std::vector<int64_t>& uids,
             const std::vector<void*>& pointers, void* workspace) {
  Desc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR,
            "cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)");
  FABRIC_SET_ATTR(pack.get(), CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64,
                  static_cast<int64_t>(uids.size()), uids.data());
  FABRIC_SET_ATTR(pack.get(), CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR,
                  static_cast<int64_t>(pointers.size()), pointers.data());
  FABRIC_SET_ATTR(pack.get(), CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1,
                  &workspace);
  finalize(pack.get(), "cudnnBackendFinalize(variant pack)");
  cudnn_check(cudnnBackendExecute(handle.h, plan.plan->get(), pack.get()),
              "cudnnBackendExecute(scaled_dot_product_attention plan, variant pack)");
}

}  // namespace

bool attention_forward_cudnn(const AttentionArgs& a, void* out, void* lse) {
  const int device = device_of_pointer(out);
  if (auto why = static_decline(a, Pass::forward, device)) return decline(Pass::forward, *why);
  const Problem p = problem_of(a, Pass::forward, device);
  if (auto why = layout_decline(p, a)) return decline(Pass::forward, *why);
  if (!aligned(out) || !aligned(lse)) return decline(Pass::forward, "out or lse not aligned");

  DeviceGuard guard(device);
  CudnnHandle* handle_ptr = usable_handle(device, Pass::forward);
  if (!handle_ptr) return false;
  CudnnHandle& handle = *handle_ptr;
  std::lock_guard<std::mutex> lock(handle.mu);
  const std::shared_ptr<Plan> plan = cached_plan(handle.h, p);
  if (!plan->plan) return decline(Pass::forward, plan->declined);

  // By-value scalars: cuDNN reads them from host memory during the call.
  float scale = static_cast<float>(a.scale);
  float mask_value = std::numeric_limits<float>::lowest();
  std::vector<int64_t> uids{kQ, kK, kV, kO, kStats, kScale};
  std::vector<void*> pointers{const_cast<void*>(a.q.data),
                              const_cast<void*>(a.k.data),
                              const_cast<void*>(a.v.data),
                              out,
                              lse,
                              &scale};
  if (p.causal) {
    uids.push_back(kMaskValue);
    pointers.push_back(&mask_value);
  }
  CudnnWorkspace workspace(device, static_cast<size_t>(plan->workspace));
  execute(handle, *plan, uids, pointers, workspace.get());
  g_forward_taken.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool attention_backward_cudnn(const AttentionBackwardArgs& args) {
  const AttentionArgs& a = args.fwd;
  const int device = device_of_pointer(args.grad_q);
  if (auto why = static_decline(a, Pass::backward, device)) return decline(Pass::backward, *why);
  const Problem p = problem_of(a, Pass::backward, device, &args);
  if (auto why = layout_decline(p, a)) return decline(Pass::backward, *why);
  for (const void* ptr :
       {args.out, args.grad_out, args.lse, static_cast<const void*>(args.grad_q),
        static_cast<const void*>(args.grad_k), static_cast<const void*>(args.grad_v)})
    if (!aligned(ptr)) return decline(Pass::backward, "out, grad_out, lse or a gradient unaligned");

  DeviceGuard guard(device);
  CudnnHandle* handle_ptr = usable_handle(device, Pass::backward);
  if (!handle_ptr) return false;
  CudnnHandle& handle = *handle_ptr;
  std::lock_guard<std::mutex> lock(handle.mu);
  const std::shared_ptr<Plan> plan = cached_plan(handle.h, p);
  if (!plan->plan) return decline(Pass::backward, plan->declined);

  const BackwardWorkspace w = backward_workspace(p, plan->workspace);
  CudnnWorkspace workspace(device, static_cast<size_t>(w.total));
  char* base = static_cast<char*>(workspace.get());
  void* dq_accum = base + w.dq_accum;
  void* softmax_sum = base + w.softmax_sum;
  // cuDNN zeroes the dQ accumulator itself from 9.6 on; before, the caller does.
  if (runtime_version() < 90600)
    FABRIC_CUDA_CHECK(cudaMemsetAsync(dq_accum, 0, static_cast<size_t>(w.softmax_sum - w.dq_accum),
                                      compute_stream(device)));
  float scale = static_cast<float>(a.scale);
  float one = 1.0f;
  float mask_value = std::numeric_limits<float>::lowest();
  std::vector<int64_t> uids{kQ,  kK,  kV,     kO,   kStats,   kDO,        kDQ,
                            kDK, kDV, kScale, kOne, kDQAccum, kSoftmaxSum};
  std::vector<void*> pointers{const_cast<void*>(a.q.data),
                              const_cast<void*>(a.k.data),
                              const_cast<void*>(a.v.data),
                              const_cast<void*>(args.out),
                              const_cast<void*>(args.lse),
                              const_cast<void*>(args.grad_out),
                              args.grad_q,
                              args.grad_k,
                              args.grad_v,
                              &scale,
                              &one,
                              dq_accum,
                              softmax_sum};
  if (p.causal) {
    uids.push_back(kMaskValue);
    pointers.push_back(&mask_value);
  }
  execute(handle, *plan, uids, pointers, base);
  g_backward_taken.fetch_add(1, std::memory_order_relaxed);
  return true;
}

int64_t cudnn_runtime_version() { return runtime_version(); }

int64_t cudnn_attention_engines_for(const AttentionArgs& a, bool backward,
                                    const std::string& device_json) {
  AttentionBackwardArgs b;
  b.fwd = a;
  return cudnn_attention_engines_for(b, backward, device_json);
}

int64_t cudnn_attention_engines_for(const AttentionBackwardArgs& args, bool backward,
                                    const std::string& device_json) {
  const AttentionArgs& a = args.fwd;
  const Pass pass = backward ? Pass::backward : Pass::forward;
  FABRIC_CHECK(a.dtype == DType::bfloat16 || a.dtype == DType::float16, DTypeError, kWhat,
               ": engines_for takes bfloat16 or float16, got ", dtype_name(a.dtype));
  FABRIC_CHECK(a.E == a.Ev, ValueError, kWhat, ": engines_for needs E == Ev, got ", a.E, ", ",
               a.Ev);
  Desc prop(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR,
            "cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR)");
  FABRIC_SET_ATTR(prop.get(), CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION, CUDNN_TYPE_CHAR,
                  static_cast<int64_t>(device_json.size()), device_json.data());
  finalize(prop.get(), "cudnnBackendFinalize(device properties)");
  GraphBuilder g(nullptr);
  const Problem p = problem_of(a, pass, 0, &args);
  if (backward) {
    build_backward_graph(g, p);
  } else {
    build_forward_graph(g, p);
  }
  cudnnBackendDescriptor_t graph = g.graph();
  Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR,
            "cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR)");
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  cudnnBackendDescriptor_t prop_desc = prop.get();
  FABRIC_SET_ATTR(heur.get(), CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                  1, &graph);
  FABRIC_SET_ATTR(heur.get(), CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
  FABRIC_SET_ATTR(heur.get(), CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                  &prop_desc);
  finalize(heur.get(), "cudnnBackendFinalize(engine heuristics)");
  // The count query can exceed what the results query then returns (configurations of engines
  // that turn the graph down are left out): only the second is an answer.
  return static_cast<int64_t>(heuristic_configs(heur.get()).size());
}

CudnnAttentionStats cudnn_attention_stats() {
  CudnnAttentionStats s;
  s.forward_taken = g_forward_taken.load(std::memory_order_relaxed);
  s.forward_declined = g_forward_declined.load(std::memory_order_relaxed);
  s.backward_taken = g_backward_taken.load(std::memory_order_relaxed);
  s.backward_declined = g_backward_declined.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(g_decline_mu);
  s.last_decline = g_last_decline;
  return s;
}

}  // namespace fabric::cuda
