// Strategy (one process, or the launch and collectives of several) and DDPStrategy.
#include "distributed/strategy.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <thread>

#include "autograd/grad_mode.h"
#include "distributed/collective_staging.h"
#include "distributed/default_group.h"
#include "distributed/fsdp_strategy.h"
#include "distributed/gloo_process_group.h"
#include "distributed/launcher.h"
#include "distributed/nccl_process_group.h"
#include "distributed/tcp_store.h"
#include "distributed/world_handshake.h"
#include "distributed/zero.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::distributed {

namespace {

// The address other ranks reach this process's Gloo device on.
std::string local_address(const std::string& main_address) {
  if (main_address == "127.0.0.1" || main_address == "localhost" || main_address == "::1") return "127.0.0.1";
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host) != 0) return "127.0.0.1";
  return host;
}

Shape with_leading(int64_t n, const Shape& rest) {
  Shape s{n};
  s.insert(s.end(), rest.begin(), rest.end());
  return s;
}

// A tensor's dtype and shape as one small int64 record, [dtype, ndim, size 0, ..., size 31], for
// the collectives that must know other ranks' tensors before moving any data. ndim is recorded as
// it is (so that every rank refuses a tensor of more dims alike, after the exchange: a rank that
// refused before it would leave the others waiting); only the first sizes fit.
constexpr int64_t kMaxDims = 32;
constexpr int64_t kRecordLength = kMaxDims + 2;

Tensor shape_record(const Tensor& t) {
  Tensor meta = zeros({kRecordLength}, {.dtype = DType::int64});
  int64_t* m = meta.data<int64_t>();
  m[0] = int64_t(t.dtype());
  m[1] = t.dim();
  for (int64_t d = 0; d < std::min(t.dim(), kMaxDims); ++d) m[2 + d] = t.size(d);
  return meta;
}

// Whether torchrun (WORLD_SIZE with RANK and LOCAL_RANK) or mpirun (OMPI_COMM_WORLD_SIZE) started
// this process as one of several.
bool launched_as_several_processes() {
  const auto above_one = [](const char* var) {
    const char* v = std::getenv(var);
    return v != nullptr && std::atoi(v) > 1;
  };
  return (above_one("WORLD_SIZE") && std::getenv("RANK") && std::getenv("LOCAL_RANK")) ||
         above_one("OMPI_COMM_WORLD_SIZE");
}

}  // namespace

Strategy::Strategy(StrategyOptions options) : options_(std::move(options)) {
  FABRIC_CHECK(options_.devices >= 1, ValueError, "strategy '", options_.name, "': devices must be >= 1, got ",
               options_.devices);
  FABRIC_CHECK(options_.num_nodes >= 1, ValueError, "strategy '", options_.name, "': num_nodes must be >= 1, got ",
               options_.num_nodes);
  FABRIC_CHECK(options_.timeout.count() > 0, ValueError, "strategy '", options_.name,
               "': the timeout must be positive, got ", options_.timeout.count(), " ms");
  if (options_.devices * options_.num_nodes == 1 && options_.name == "single_device" &&
      !launched_as_several_processes()) {
    env_ = ClusterEnvironment{.name = "lightning"};
  } else {
    // Under a launcher that started several processes a one-device run is refused here (each
    // process would train alone, all writing the same files), as Lightning's validate_settings
    // refuses devices x num_nodes unlike the launcher's world size.
    env_ = detect_cluster_environment(options_.devices, options_.num_nodes);
  }
}

Strategy::~Strategy() {
  if (launcher_ && !joined_) {
    // Reached without join(): rank 0 is unwinding from an error. Its children cannot finish
    // without it, so stop them instead of leaving them to time out.
    launcher_->kill_all();
  }
}

void Strategy::launch() {
  if (launched_) return;
  FABRIC_CHECK(env_.rendezvous_problem.empty(), ValueError, "launch: ", env_.rendezvous_problem);
  if (is_distributed()) {
    const bool server = env_.global_rank == 0;
    auto store_options = [&] {
      return TCPStoreOptions{
          .host = env_.main_address, .port = env_.main_port, .is_server = server, .timeout = options_.timeout};
    };
    if (server && !env_.creates_processes_externally && std::getenv("MASTER_PORT") == nullptr &&
        std::getenv("STANDALONE_PORT") == nullptr && options_.num_nodes == 1) {
      // No port was given: bind the store on any free port first and hand that one to the ranks we
      // start, instead of a port probed earlier that another process may take in between.
      env_.main_port = 0;
      auto store = std::make_shared<TCPStore>(store_options());
      env_.main_port = store->port();
      store_ = store;
    }
    if (!env_.creates_processes_externally) {
      LaunchOptions lo;
      lo.nprocs = options_.devices;
      lo.num_nodes = options_.num_nodes;
      lo.node_rank = env_.node_rank;
      lo.main_address = env_.main_address;
      lo.main_port = env_.main_port;
      lo.argv = options_.launch_argv;
      launcher_ = std::make_unique<SubprocessLauncher>(lo);
      launcher_->launch();
    }
    if (!store_) store_ = std::make_shared<TCPStore>(store_options());
    const std::string how =
        env_.creates_processes_externally
            ? "world size " + std::to_string(env_.world_size) + " from the environment"
            : "devices " + std::to_string(options_.devices) + " x num_nodes " +
                  std::to_string(options_.num_nodes) + ", node_rank " +
                  std::to_string(env_.node_rank);
    agree_on_world(*store_, env_.global_rank, env_.world_size, how, options_.timeout);
    auto prefixed = std::make_shared<PrefixStore>("default_pg", store_);
    if (options_.accelerator == "cuda") {
      const int device = options_.device_ids.at(size_t(env_.local_rank) % options_.device_ids.size());
      pg_ = make_nccl_process_group(prefixed, env_.global_rank, env_.world_size, device,
                                    NcclOptions{.timeout = options_.timeout});
    } else {
      pg_ = make_gloo_process_group(prefixed, env_.global_rank, env_.world_size,
                                    GlooOptions{.timeout = options_.timeout,
                                                .hostname = local_address(env_.main_address)});
    }
    set_default_process_group(pg_);  // what SyncBatchNorm without a group of its own uses
  }
  launched_ = true;
}

std::shared_ptr<ProcessGroup> Strategy::new_group(const std::string& name, int rank, int size) const {
  FABRIC_CHECK(store_, ValueError, "new_group('", name, "'): the strategy is not launched");
  auto prefixed = std::make_shared<PrefixStore>(name, store_);
  if (options_.accelerator == "cuda") {
    const int device = options_.device_ids.at(size_t(env_.local_rank) % options_.device_ids.size());
    return make_nccl_process_group(prefixed, rank, size, device, NcclOptions{.timeout = options_.timeout});
  }
  return make_gloo_process_group(prefixed, rank, size,
                                 GlooOptions{.timeout = options_.timeout, .hostname = local_address(env_.main_address)});
}

int Strategy::join() {
  if (!launcher_ || joined_) return 0;
  joined_ = true;
  return launcher_->join();  // also puts back the environment launch() exported
}

void Strategy::abort(bool after_peer_failure) {
  if (!launcher_ || joined_) return;
  if (after_peer_failure) std::this_thread::sleep_for(std::chrono::seconds(2));
  joined_ = true;
  launcher_->kill_all();
}

Tensor Strategy::all_reduce(const Tensor& t, ReduceOp op) const {
  FABRIC_CHECK(t.defined(), ValueError, "all_reduce: the tensor is undefined");
  NoGradGuard no_grad;
  Tensor buf = t.contiguous().clone();
  if (!pg_) return op == ReduceOp::avg && !is_floating(buf.dtype()) ? buf.to(DType::float32) : buf;
  if (op == ReduceOp::avg && !is_floating(buf.dtype())) {
    // Gloo has no integer average: sum, then divide in float32 (what the reference does on gloo).
    staged_all_reduce(*pg_, buf, ReduceOp::sum);
    return buf.to(DType::float32) * (1.0 / double(world_size()));
  }
  staged_all_reduce(*pg_, buf, op);
  return buf;
}

// Every rank's dtype and shape, so that mismatches become clear errors instead of garbage.
std::vector<std::pair<int64_t, Shape>> Strategy::gather_shapes(const Tensor& t,
                                                               const char* op) const {
  const Tensor meta = shape_record(t);
  Tensor all = empty({world_size() * kRecordLength}, {.dtype = DType::int64});
  staged_all_gather(*pg_, all, meta);
  std::vector<std::pair<int64_t, Shape>> out;
  for (int r = 0; r < world_size(); ++r) {
    const int64_t* a = all.data<int64_t>() + r * kRecordLength;
    FABRIC_CHECK(a[1] <= kMaxDims, ValueError, op, ": rank ", r, "'s tensor has ", a[1],
                 " dims; at most ", kMaxDims, " are supported");
    FABRIC_CHECK(a[0] == int64_t(t.dtype()), DTypeError, op, ": rank ", r, " sent a different dtype than rank ",
                 global_rank(), " (", dtype_name(t.dtype()), ")");
    out.emplace_back(a[0], Shape(a + 2, a + 2 + a[1]));
  }
  return out;
}

Tensor Strategy::all_gather(const Tensor& t) const {
  FABRIC_CHECK(t.defined(), ValueError, "all_gather: the tensor is undefined");
  NoGradGuard no_grad;
  const Tensor in = t.contiguous();
  if (!pg_) return in.clone().unsqueeze(0);
  const auto shapes = gather_shapes(t, "all_gather");
  for (int r = 0; r < world_size(); ++r)
    FABRIC_CHECK(shapes[size_t(r)].second == t.sizes(), ShapeError, "all_gather: rank ", r, " has shape ",
                 shape_str(shapes[size_t(r)].second), " but rank ", global_rank(), " has ", shape_str(t.sizes()),
                 "; shapes must agree (all_gather_uneven takes different dim-0 sizes)");
  Tensor out =
      empty(with_leading(world_size(), t.sizes()), {.dtype = t.dtype(), .device = t.device()});
  Tensor flat = out.view({-1});
  staged_all_gather(*pg_, flat, in.reshape({-1}));
  return out;
}

Tensor Strategy::all_gather_uneven(const Tensor& t) const {
  FABRIC_CHECK(t.defined() && t.dim() >= 1, ValueError,
               "all_gather_uneven: expected a tensor with at least one dimension");
  NoGradGuard no_grad;
  const Tensor in = t.contiguous();
  if (!pg_) return in.clone();
  const auto shapes = gather_shapes(t, "all_gather_uneven");
  const Shape rest(t.sizes().begin() + 1, t.sizes().end());
  std::vector<int64_t> counts;
  int64_t rows = 0;
  for (int r = 0; r < world_size(); ++r) {
    const Shape& s = shapes[size_t(r)].second;
    FABRIC_CHECK(!s.empty() && Shape(s.begin() + 1, s.end()) == rest, ShapeError, "all_gather_uneven: rank ", r,
                 " has shape ", shape_str(s), " but rank ", global_rank(), " has ", shape_str(t.sizes()),
                 "; only dim 0 may differ");
    counts.push_back(numel_of(s));
    rows += s[0];
  }
  Tensor out = empty(with_leading(rows, rest), {.dtype = t.dtype(), .device = t.device()});
  Tensor flat = out.view({-1});
  staged_all_gather_v(*pg_, flat, in.reshape({-1}), counts);
  return out;
}

Tensor Strategy::broadcast(const Tensor& t, int src) const {
  NoGradGuard no_grad;
  if (!pg_) {
    FABRIC_CHECK(t.defined(), ValueError, "broadcast: the tensor is undefined");
    return t.contiguous().clone();
  }
  FABRIC_CHECK(src >= 0 && src < world_size(), ValueError, "broadcast: src ", src, " is not a rank in [0, ",
               world_size(), ")");
  // src's dtype and shape first (one small broadcast), so that the other ranks receive into a
  // buffer of src's kind instead of reinterpreting src's bytes in their own placeholder (or
  // overrunning a smaller one: Gloo aborts the process on a size mismatch). Only src's tensor is
  // read: the others may pass none (`x if rank == 0 else None`); an undefined one at src is said
  // on every rank (dtype -1 in the record), so that none waits for a collective that never comes.
  const bool sending = global_rank() == src;
  Tensor meta = t.defined() ? shape_record(t) : zeros({kRecordLength}, {.dtype = DType::int64});
  if (sending && !t.defined()) meta.data<int64_t>()[0] = -1;
  staged_broadcast(*pg_, meta, src);
  const int64_t* m = meta.data<int64_t>();
  FABRIC_CHECK(m[0] >= 0, ValueError, "broadcast: the tensor of the source rank ", src,
               " is undefined (the source must pass one; the other ranks may pass none)");
  FABRIC_CHECK(m[1] <= kMaxDims, ValueError, "broadcast: rank ", src, "'s tensor has ", m[1], " dims; at most ",
               kMaxDims, " are supported");
  Tensor buf =
      sending ? t.contiguous().clone()
              : empty(Shape(m + 2, m + 2 + m[1]),
                      {.dtype = DType(m[0]), .device = t.defined() ? t.device() : Device::cpu()});
  if (buf.numel() > 0) staged_broadcast(*pg_, buf, src);
  return buf;
}

Bytes Strategy::broadcast(const Bytes& bytes, int src) const {
  if (!pg_) return bytes;
  Tensor n = from_vector<int64_t>({int64_t(bytes.size())});
  staged_broadcast(*pg_, n, src);
  Tensor buf = empty({n.data<int64_t>()[0]}, {.dtype = DType::uint8});
  if (global_rank() == src && !bytes.empty()) std::copy(bytes.begin(), bytes.end(), buf.data<uint8_t>());
  if (buf.numel() > 0) staged_broadcast(*pg_, buf, src);
  return Bytes(buf.data<uint8_t>(), buf.data<uint8_t>() + buf.numel());
}

void Strategy::barrier() const {
  if (pg_) pg_->barrier()->wait();
}

DDPStrategy::DDPStrategy(StrategyOptions options) : Strategy(std::move(options)) {}

void DDPStrategy::forget_destroyed_modules() {
  // SPMD: every rank destroys its module at the same point, so all drop the reducer together.
  std::erase_if(reducers_, [](const Reducer& r) { return r.lifetime.expired(); });
}

void DDPStrategy::setup_module(nn::Module& module) {
  if (!pg_) return;
  forget_destroyed_modules();
  reducers_.push_back({&module, module.lifetime(), std::make_unique<GradientReducer>(module, pg_, options_.ddp)});
}

void DDPStrategy::post_backward() {
  forget_destroyed_modules();
  for (auto& r : reducers_) r.reducer->finalize();
}

void DDPStrategy::abandon_backward() {
  forget_destroyed_modules();
  for (auto& r : reducers_) r.reducer->abandon();
}

void DDPStrategy::set_backward_sync(nn::Module& module, bool enabled) {
  forget_destroyed_modules();
  for (auto& r : reducers_)
    if (r.module == &module) r.reducer->set_sync(enabled);
}

std::unique_ptr<Strategy> make_strategy(const StrategyOptions& options) {
  if (options.name == "single_device") return std::make_unique<Strategy>(options);
  if (options.name == "ddp") return std::make_unique<DDPStrategy>(options);
  if (options.name == "deepspeed" && options.zero_stage == 3) return std::make_unique<FSDPStrategy>(options);
  if (options.name == "deepspeed") return std::make_unique<ZeroStrategy>(options);
  if (options.name == "fsdp") return std::make_unique<FSDPStrategy>(options);
  throw NotImplementedError("strategy '" + options.name + "' is not available in this build yet");
}

}  // namespace fabric::distributed
