// The host side of training on the CUDA backend, checked without a GPU: these tests run against the
// null CUDA runtime (tools/null_cuda; ctest puts it first on LD_LIBRARY_PATH), which answers as
// one H200, runs nothing and counts what the host asks of CUDA. A steady training step must queue
// its work and return: no host wait (a wait stalls the host until the GPU drains, and the next
// step's launches start late), no cudaMalloc (the caching allocator serves it), no GEMM plan made
// again (cuBLASLt's heuristic is asked once per shape), and the same launches every step. And
// fabric-train's fit gets through on cuda:0, alone and as two DDP ranks over the null NCCL.
// Elsewhere (the real runtime loaded) they skip.
#include <dlfcn.h>
#include <gtest/gtest.h>

// CUDA builds only (it counts what the CUDA backend asks of the runtime).
#ifdef FABRIC_WITH_CUDA
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/gemm_cublaslt.h"
#include "nn/gpt.h"
#include "nn/transformer.h"
#include "optim/optim.h"
#include "precision/linear_8bit.h"
#include "runtime/fabric.h"
#include "runtime/train_config.h"
#include "runtime/trainer.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/safetensors.h"
#include "tools/null_cuda/null_cuda.h"

namespace fabric {
namespace {

NullCudaCounts counts_now() {
  const auto fn = reinterpret_cast<NullCudaCountsFn>(dlsym(RTLD_DEFAULT, "null_cuda_counts"));
  NullCudaCounts c{};
  if (fn) fn(&c);
  return c;
}

bool under_null_runtime() { return dlsym(RTLD_DEFAULT, "null_cuda_counts") != nullptr; }

NullCudaCounts since(const NullCudaCounts& before) { return counts_now() - before; }

struct StepOptions {
  std::string precision;
  bool clip = false;
  // ClipOptions::error_if_nonfinite (true by default there, as in Lightning)
  bool clip_checks_finite = false;
  int* int8_layers = nullptr;  // receives the number of Linear8bitLt layers after setup
};

// A small GPT trained through Fabric on cuda:0; returns what each of `measured` steps asked of
// CUDA after `warmup` steps that fill the allocator's pools and the plan caches.
std::vector<NullCudaCounts> step_counts(const StepOptions& s, int warmup, int measured,
                                        Tensor* last_loss = nullptr) {
  Fabric fab({.accelerator = "cuda", .precision = s.precision});
  manual_seed(3);
  auto gpt = nn::make<nn::GPT>(
      {.vocab_size = 96, .block_size = 32, .n_layer = 2, .n_head = 4, .n_embd = 64});
  optim::AdamW adamw(gpt->parameters(), {.lr = 1e-3, .weight_decay = 0.1});
  auto [model, opt] = fab.setup(gpt, adamw);
  if (s.int8_layers) {
    *s.int8_layers = 0;
    for (const auto& [name, m] : gpt->named_modules()) {
      if (dynamic_cast<const precision::Linear8bitLt*>(m.get())) ++*s.int8_layers;
    }
  }
  const Tensor x = fab.to_device(randint(0, 96, {4, 32}, {.dtype = DType::int64}));
  const Tensor y = fab.to_device(randint(0, 96, {4, 32}, {.dtype = DType::int64}));
  std::vector<NullCudaCounts> out;
  Tensor loss;
  for (int i = 0; i < warmup + measured; ++i) {
    const NullCudaCounts before = counts_now();
    opt.zero_grad();
    loss = model.run([&] { return gpt->loss(x, y); });
    fab.backward(loss);
    if (s.clip) {
      fab.clip_gradients(model, opt, {.max_norm = 1.0, .error_if_nonfinite = s.clip_checks_finite});
    }
    opt.step();
    if (i >= warmup) out.push_back(since(before));
  }
  if (last_loss) *last_loss = loss;
  return out;
}

void expect_steady(const std::vector<NullCudaCounts>& steps, const std::string& what,
                   long waits = 0) {
  ASSERT_FALSE(steps.empty());
  for (size_t i = 0; i < steps.size(); ++i) {
    const NullCudaCounts& c = steps[i];
    SCOPED_TRACE(what + ", measured step " + std::to_string(i));
    EXPECT_EQ(c.host_waits, waits) << "the step waited for the device";
    EXPECT_EQ(c.device_mallocs, 0) << "the caching allocator went to cudaMalloc";
    EXPECT_EQ(c.matmul_heuristics, 0) << "a GEMM plan was made again, not found in the cache";
    EXPECT_GT(c.launches, 0);
    EXPECT_GT(c.matmuls, 0);
    EXPECT_EQ(c.launches, steps[0].launches) << "the launches differ from step to step";
    EXPECT_EQ(c.matmuls, steps[0].matmuls);
  }
}

// ctest's CudaHostPath.StepsOnTheNullRuntime sets FABRIC_EXPECT_NULL_CUDA: there the null
// runtime not loading is a failure, not a reason to skip.
#define SKIP_UNLESS_NULL_RUNTIME()                                                          \
  if (!under_null_runtime()) {                                                              \
    if (std::getenv("FABRIC_EXPECT_NULL_CUDA"))                                             \
      FAIL() << "FABRIC_EXPECT_NULL_CUDA is set but the real CUDA runtime was loaded: is "  \
                "build/tools/null_cuda first on LD_LIBRARY_PATH?";                          \
    GTEST_SKIP() << "runs under the null CUDA runtime (ctest's CudaHostPath.StepsOnTheNull" \
                    "Runtime puts build/tools/null_cuda first on LD_LIBRARY_PATH)";         \
  }

TEST(CudaHostPath, TheCountersSeeAWait) {
  SKIP_UNLESS_NULL_RUNTIME();
  Tensor loss;
  step_counts({.precision = "32-true"}, 1, 1, &loss);
  const NullCudaCounts before = counts_now();
  (void)loss.item<double>();  // a device-to-host read waits for the stream
  EXPECT_GE(since(before).host_waits, 1);
}

TEST(CudaHostPath, Float32StepNeverWaits) {
  SKIP_UNLESS_NULL_RUNTIME();
  expect_steady(step_counts({.precision = "32-true"}, 2, 3), "32-true");
}

TEST(CudaHostPath, Bf16MixedStepNeverWaits) {
  SKIP_UNLESS_NULL_RUNTIME();
  expect_steady(step_counts({.precision = "bf16-mixed"}, 2, 3), "bf16-mixed");
}

TEST(CudaHostPath, Fp16MixedStepWaitsOnlyForTheScalersVerdict) {
  SKIP_UNLESS_NULL_RUNTIME();
  // The GradScaler's step reads found_inf back to decide whether the optimizer steps, as
  // torch.amp.GradScaler.step does: one wait a step, and only that one.
  expect_steady(step_counts({.precision = "16-mixed"}, 2, 3), "16-mixed", /*waits=*/1);
}

TEST(CudaHostPath, Fp8StepWaitsOncePerDirection) {
  SKIP_UNLESS_NULL_RUNTIME();
  // Delayed scaling needs the step's amaxes on the host for the scale update: they stay on the
  // device as the GEMMs record them and come back in one read at the fp8 region's exit (the
  // forward's update) and one after backward -- not one wait per FP8 GEMM.
  expect_steady(step_counts({.precision = "transformer-engine"}, 2, 3), "transformer-engine",
                /*waits=*/2);
}

TEST(CudaHostPath, Nf4DoubleQuantStepNeverWaits) {
  SKIP_UNLESS_NULL_RUNTIME();
  // Each layer's forward recovers its blocks' absmax from the 8-bit statistics on the device
  // (it went through the CPU's kernel, a wait per layer, until 2026-12-05).
  expect_steady(step_counts({.precision = "nf4-dq"}, 2, 3), "nf4-dq");
}

TEST(CudaHostPath, Int8StepWaitsOncePerLayerForItsOutlierColumns) {
  SKIP_UNLESS_NULL_RUNTIME();
  // LLM.int8 with its threshold reads the outlier columns back to the host once per layer's
  // forward, as bitsandbytes' argwhere of the outlier mask does; int8-training's column-wise
  // quantization of X for dW reuses them (bitsandbytes' int8_double_quant reads them once too).
  int layers = 0;
  const auto frozen = step_counts({.precision = "int8", .int8_layers = &layers}, 2, 3);
  ASSERT_GT(layers, 0);
  expect_steady(frozen, "int8", /*waits=*/layers);
  const auto trained = step_counts({.precision = "int8-training", .int8_layers = &layers}, 2, 3);
  expect_steady(trained, "int8-training", /*waits=*/layers);
}

// AdamW updates a device's parameters in multi-tensor launches (24 tensors a launch at most,
// multi_tensor_plan.h), not one launch per parameter as until 2026-12-05; its second step (the
// first creates the state) neither waits nor allocates.
TEST(CudaHostPath, AdamWUpdatesEveryParameterInAFewLaunches) {
  SKIP_UNLESS_NULL_RUNTIME();
  Fabric fab({.accelerator = "cuda", .precision = "32-true"});
  manual_seed(3);
  auto gpt = nn::make<nn::GPT>(
      {.vocab_size = 96, .block_size = 32, .n_layer = 2, .n_head = 4, .n_embd = 64});
  optim::AdamW adamw(gpt->parameters(), {.lr = 1e-3, .weight_decay = 0.1});
  auto [model, opt] = fab.setup(gpt, adamw);
  const Tensor x = fab.to_device(randint(0, 96, {4, 32}, {.dtype = DType::int64}));
  const long params = static_cast<long>(gpt->parameters().size());
  for (int step = 0; step < 2; ++step) {
    opt.zero_grad();
    fab.backward(model.run([&] { return gpt->loss(x, x); }));
    const NullCudaCounts before = counts_now();
    opt.step();
    if (step == 0) continue;
    const NullCudaCounts c = since(before);
    EXPECT_GT(params, 24);
    EXPECT_GE(c.launches, 1);
    EXPECT_LE(c.launches, (params + 23) / 24) << params << " parameters";
    EXPECT_EQ(c.host_waits, 0);
    EXPECT_EQ(c.device_mallocs, 0);
  }
}

// What a module's forward and the backward of the sum of its output ask of CUDA, on the second of
// two runs (the first fills the plan cache and the allocator's pools). `forward` takes a fresh
// leaf made from x0 (the module's gradients set to none first) and returns the output.
struct Phases {
  NullCudaCounts forward, backward;
};
Phases forward_backward_counts(nn::Module& m, const Tensor& x0,
                               const std::function<Tensor(const Tensor&)>& forward) {
  Phases last{};
  for (int i = 0; i < 2; ++i) {
    const Tensor x = x0.detach().set_requires_grad(true);
    m.zero_grad();
    NullCudaCounts before = counts_now();
    const Tensor y = forward(x);
    last.forward = since(before);
    const Tensor loss = sum(y);
    before = counts_now();
    loss.backward();
    last.backward = since(before);
  }
  return last;
}

// GPT's MLP block as gelu_mlp: its GELU rides in cuBLASLt's epilogues (the null cuBLASLt offers
// an algorithm for every epilogue), so the forward launches nothing but its two GEMMs and the
// backward one kernel fewer than the three layers called one by one (the GELU backward).
TEST(CudaHostPath, GeluMlpRunsItsGeluInTheGemmEpilogues) {
  SKIP_UNLESS_NULL_RUNTIME();
  manual_seed(3);
  auto mlp = nn::make<nn::BlockMLP>(nn::BlockOptions{.n_embd = 64, .n_head = 4});
  mlp->to(Device::cuda(0));
  mlp->to(DType::bfloat16);
  ASSERT_TRUE(mlp->fused());
  const Tensor x0 = randn({4, 32, 64}).to(DType::bfloat16).to(Device::cuda(0));
  const cuda::GemmPlanStats before = cuda::gemm_plan_stats();
  const Phases fused =
      forward_backward_counts(*mlp, x0, [&](const Tensor& x) { return mlp->forward(x); });
  const cuda::GemmPlanStats after = cuda::gemm_plan_stats();
  // GELU_AUX_BIAS forward; DGELU and two BGRADB backward (forward_backward_counts runs twice).
  EXPECT_EQ(after.fused_epilogues - before.fused_epilogues, 8u);
  EXPECT_EQ(after.declined_epilogues, before.declined_epilogues);
  const Phases composed = forward_backward_counts(*mlp, x0, [&](const Tensor& x) {
    return mlp->c_proj->forward(mlp->gelu->forward(mlp->c_fc->forward(x)));
  });
  EXPECT_EQ(fused.forward.matmuls, 2);
  EXPECT_EQ(fused.forward.launches, 0) << "the GELU ran as a kernel of its own";
  EXPECT_EQ(composed.forward.matmuls, 2);
  EXPECT_EQ(composed.forward.launches, 1);
  EXPECT_EQ(fused.backward.matmuls, 4);
  EXPECT_EQ(composed.backward.matmuls, 4);
  EXPECT_EQ(fused.backward.launches, composed.backward.launches - 1);
  EXPECT_EQ(fused.forward.host_waits + fused.backward.host_waits, 0);
}

// Under CUDA autocast a GPT block's norms hand their linear layers bf16 (layer_norm's out_dtype):
// the forward makes no float32 → bf16 cast of their outputs and the backward no bf16 → float32
// cast of the gradients coming back, two launches fewer each way than with the fusion off (a
// hook on each norm).
TEST(CudaHostPath, NormsHandTheirLinearsTheAutocastDtype) {
  SKIP_UNLESS_NULL_RUNTIME();
  manual_seed(3);
  auto block = nn::make<nn::Block>(nn::BlockOptions{.n_embd = 64, .n_head = 4, .block_size = 32});
  block->to(Device::cuda(0));
  const Tensor x0 = randn({4, 32, 64}).to(Device::cuda(0));
  const auto measure = [&] {
    return forward_backward_counts(*block, x0, [&](const Tensor& x) {
      autocast_enter(DeviceType::cuda, true, DType::bfloat16, true);
      const Tensor y = (*block)(x);
      autocast_exit(DeviceType::cuda);
      return y;
    });
  };
  const Phases fused = measure();
  for (auto& ln : {block->ln_1, block->ln_2})
    ln->register_forward_pre_hook([](nn::Module&, const Tensor& t) { return t; });
  const Phases unfused = measure();
  EXPECT_EQ(fused.forward.launches, unfused.forward.launches - 2);
  EXPECT_EQ(fused.backward.launches, unfused.backward.launches - 2);
  EXPECT_EQ(fused.forward.matmuls, unfused.forward.matmuls);
  EXPECT_EQ(fused.forward.host_waits + fused.backward.host_waits, 0);
}

// With cuDNN as the attention backend the op lays out the attention's out and gradients for
// cuDNN's strided graphs; where cuDNN declines (the null runtime has none) our kernels take them
// through contiguous copies, and the step still never waits and repeats its launches.
TEST(CudaHostPath, CudnnBackendStepNeverWaits) {
  SKIP_UNLESS_NULL_RUNTIME();
  const AttentionBackend before = attention_backend();
  set_attention_backend(AttentionBackend::cudnn);
  const std::vector<NullCudaCounts> steps = step_counts({.precision = "bf16-mixed"}, 2, 3);
  set_attention_backend(before);
  expect_steady(steps, "bf16-mixed, cuDNN attention backend");
}

// A bf16 linear layer's bias gradient rides in the epilogue of its weight-gradient GEMM (the null
// cuBLASLt offers an algorithm for it): its backward launches what the layer without a bias does.
TEST(CudaHostPath, LinearBiasGradientCostsNoLaunch) {
  SKIP_UNLESS_NULL_RUNTIME();
  const TensorOptions opts{.dtype = DType::bfloat16, .device = Device::cuda(0)};
  const Tensor x0 = randn({4, 32, 64}).to(DType::bfloat16).to(Device::cuda(0));
  const Tensor w0 = randn({96, 64}).to(opts.dtype).to(opts.device), b0 = zeros({96}, opts);
  const auto backward_launches = [&](bool with_bias) {
    long launches = 0;
    for (int i = 0; i < 2; ++i) {  // the first fills the plan cache
      // Fresh leaves: a gradient accumulated into an existing .grad would add a launch.
      const Tensor x = x0.detach().set_requires_grad(true);
      const Tensor w = w0.detach().set_requires_grad(true), b = b0.detach().set_requires_grad(true);
      const Tensor y = linear(x, w, with_bias ? b : Tensor());
      const Tensor g = ones_like(y);
      const NullCudaCounts before = counts_now();
      y.backward(g);
      launches = since(before).launches;
      EXPECT_EQ(since(before).host_waits, 0);
    }
    return launches;
  };
  EXPECT_EQ(backward_launches(true), backward_launches(false));
}

TEST(CudaHostPath, GradientClippingWaitsOnlyToCheckTheNorm) {
  SKIP_UNLESS_NULL_RUNTIME();
  expect_steady(step_counts({.precision = "bf16-mixed", .clip = true}, 2, 3), "bf16-mixed, clip");
  // error_if_nonfinite (Lightning's default) reads the total norm back to raise on NaN/inf, as
  // torch.nn.utils.clip_grad_norm_ does: one wait a step, and only that one.
  expect_steady(
      step_counts({.precision = "bf16-mixed", .clip = true, .clip_checks_finite = true}, 2, 3),
      "bf16-mixed, clip with error_if_nonfinite", /*waits=*/1);
}

// A text file and a small GPT's config in a fresh folder, removed with it.
struct TextRun {
  std::filesystem::path dir;
  explicit TextRun(const std::string& name) {
    dir = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    std::ofstream text(dir / "text.txt");
    for (int i = 0; i < 200; ++i) text << "It is a truth universally acknowledged. ";
  }
  ~TextRun() { std::filesystem::remove_all(dir); }
  std::string yaml() const {
    return "fabric: {accelerator: cuda, precision: bf16-mixed}\n"
           "model: {name: gpt, block_size: 16, n_layer: 1, n_head: 2, n_embd: 32}\n"
           "data: {kind: text, path: " +
           (dir / "text.txt").string() +
           ", val_fraction: 0.1}\n"
           "optimizer: {name: adamw, lr: 0.001}\n"
           "trainer: {max_steps: 4, batch_size: 2, val_every: 2, val_batches: 1,\n"
           "          checkpoint_every: 2, log_every: 1, run_dir: " +
           (dir / "run").string() + ", sample_tokens: 4}\n";
  }
};

TEST(CudaHostPath, FabricTrainFitsOnCuda) {
  SKIP_UNLESS_NULL_RUNTIME();
  // fabric-train with accelerator: cuda -- its loaders hand the batches out on the device and its
  // config check runs the example there (both stayed on the CPU: the run stopped at the config
  // check with "weight on cuda:0, indices on cpu" until 2026-12-05). Values are meaningless on
  // the null runtime; the run's steps, validation, checkpoints and sample are what is checked.
  const TextRun run("fabric_null_cuda_fit");
  std::ostringstream out;
  const FitResult r = fit(parse_train_config(run.yaml(), "null-cuda.yaml"), {.out = &out});
  EXPECT_EQ(r.step, 4);
  EXPECT_TRUE(
      std::filesystem::exists(run.dir / "run" / "checkpoints" / "last" / "model.safetensors"));
  EXPECT_NE(out.str().find("--- sample ---"), std::string::npos) << out.str();
}

#ifdef FABRIC_TRAIN_EXE
// Runs fabric-train on two null GPUs with `args` appended; returns the exit status and the log.
std::pair<int, std::string> run_on_two_gpus(const TextRun& run, const std::string& args) {
  const std::string log = (run.dir / "log.txt").string();
  const std::string cmd = std::string("NULL_CUDA_DEVICES=2 '") + FABRIC_TRAIN_EXE + "' " + args +
                          " --devices 2 > '" + log + "' 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(log);
  return {status,
          std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>())};
}
#endif

class CudaHostPathStrategies : public ::testing::TestWithParam<const char*> {};

TEST_P(CudaHostPathStrategies, FitAndResumeOnTwoGpus) {
  SKIP_UNLESS_NULL_RUNTIME();
#ifndef FABRIC_TRAIN_EXE
  GTEST_SKIP() << "fabric-train was not built";
#else
  // fabric-train --devices 2 on two (null) GPUs: two ranks, a communicator each from the null
  // NCCL, the strategy's collectives, its checkpoints (rank 0's, or every rank's shard), then a
  // resume from them. The null NCCL exchanges collectives of up to 64 KiB for real (what the ranks
  // say about sizes and checkpoint pieces is true) and larger ones not at all; no kernel runs, so
  // this checks that the multi-GPU host path gets through, not what it computes. Found on
  // 2026-12-05: FSDP and ZeRO-3 with CPU offload refused a CUDA run at the optimizer's setup.
  const std::string strategy = GetParam();
  const TextRun run("fabric_null_cuda_" + strategy);
  { std::ofstream(run.dir / "two.yaml") << run.yaml(); }
  const std::string set = " --set fabric.strategy=" + strategy + " trainer.sample_tokens=0";
  const auto [fit_status, fit_log] =
      run_on_two_gpus(run, "fit '" + (run.dir / "two.yaml").string() + "'" + set);
  ASSERT_EQ(fit_status, 0) << fit_log;
  EXPECT_NE(fit_log.find("over 2 processes"), std::string::npos) << fit_log;
  const std::filesystem::path last = run.dir / "run" / "checkpoints" / "last";
  EXPECT_TRUE(std::filesystem::exists(last / "model.safetensors") ||
              std::filesystem::exists(last / "rank-1-of-2.safetensors"))
      << fit_log;
  const auto [resume_status, resume_log] =
      run_on_two_gpus(run, "resume '" + (run.dir / "run").string() + "' --set trainer.max_steps=6");
  EXPECT_EQ(resume_status, 0) << resume_log;
  EXPECT_NE(resume_log.find("step 6/6"), std::string::npos) << resume_log;
#endif
}

// A CNN with BatchNorm layers made SyncBatchNorm (trainer.sync_batchnorm) under DDP: cuDNN's
// convolutions (the null cuDNN) and the statistics' all-gathers over the null NCCL. Until
// 2026-12-05 SyncBatchNorm read the ranks' counts back to the host at every layer (on a GPU, a
// wait for the stream each time); they stay on the device now, as in torch.
TEST(CudaHostPath, SyncBatchNormCnnOnTwoGpus) {
  SKIP_UNLESS_NULL_RUNTIME();
#ifndef FABRIC_TRAIN_EXE
  GTEST_SKIP() << "fabric-train was not built";
#else
  const TextRun run("fabric_null_cuda_cnn");
  save_safetensors((run.dir / "images.safetensors").string(),
                   {{"inputs", randn({32, 1, 8, 8})},
                    {"targets", randint(0, 4, {32}, {.dtype = DType::int64})}});
  {
    std::ofstream(run.dir / "cnn.yaml")
        << "fabric: {accelerator: cuda, precision: bf16-mixed, strategy: ddp}\n"
           "model: {name: cnn, in_channels: 1, image_size: 8, num_classes: 4, channels1: 4,\n"
           "        channels2: 8, batch_norm: true}\n"
           "data: {kind: tensors, path: "
        << (run.dir / "images.safetensors").string()
        << "}\n"
           "loss: cross_entropy\n"
           "optimizer: {name: adamw, lr: 0.001}\n"
           "trainer: {max_steps: 3, batch_size: 4, sync_batchnorm: true, run_dir: "
        << (run.dir / "run").string() << "}\n";
  }
  const auto [status, log] = run_on_two_gpus(run, "fit '" + (run.dir / "cnn.yaml").string() + "'");
  EXPECT_EQ(status, 0) << log;
  EXPECT_NE(log.find("ddp over 2 processes"), std::string::npos) << log;
#endif
}

INSTANTIATE_TEST_SUITE_P(Strategies, CudaHostPathStrategies,
                         ::testing::Values("ddp", "fsdp", "fsdp_cpu_offload", "deepspeed_stage_1",
                                           "deepspeed_stage_2", "deepspeed_stage_2_offload",
                                           "deepspeed_stage_3", "deepspeed_stage_3_offload"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace fabric

#endif  // FABRIC_WITH_CUDA
