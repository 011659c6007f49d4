// Activation checkpointing: gradients of inputs and closed-over parameters equal the plain run
// (elementwise/matmul, a GPT Block with dropout, nesting, reuse, autocast, autograd::grad), memory
// held after a checkpointed forward, and the error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "autograd/autograd.h"
#include "autograd/checkpoint.h"
#include "nn/nn.h"
#include "nn/transformer.h"
#include "tensor/allocator.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric {
namespace {

Tensor randn64(const Shape& s, uint64_t seed, bool requires_grad = true) {
  Generator gen(seed);
  return randn(s, {.dtype = DType::float64, .requires_grad = requires_grad}, &gen);
}

// Elementwise |a - b| <= tol * (1 + |b|).
void expect_close(const Tensor& a, const Tensor& b, double tol, const std::string& what) {
  ASSERT_TRUE(a.defined()) << what << ": undefined";
  ASSERT_TRUE(b.defined()) << what << ": reference undefined";
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i)
    worst = std::max(worst, std::abs(va[i] - vb[i]) / (1 + std::abs(vb[i])));
  EXPECT_LE(worst, tol) << what;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::abs(va[i] - vb[i]));
  return worst;
}

std::vector<Tensor> grads_of(const std::vector<Tensor>& ts) {
  std::vector<Tensor> g;
  for (const Tensor& t : ts) g.push_back(t.grad().defined() ? t.grad().clone() : Tensor());
  return g;
}

void clear_grads(const std::vector<Tensor>& ts) {
  for (const Tensor& t : ts) zero_grad(t);
}

// (a) Two inputs, two outputs, a weight and a bias closed over.
struct SmallSegment {
  Tensor w = randn64({5, 3}, 11);
  Tensor b = randn64({3}, 12);
  int calls = 0;
  std::vector<Tensor> operator()(const std::vector<Tensor>& xs) {
    ++calls;
    Tensor h = tanh(add(matmul(xs[0], w), b));               // (4, 3)
    Tensor o1 = mul(h, xs[1]);                               // (4, 3)
    Tensor o2 = add(sum(mul(sin(xs[0]), xs[0]), {1}), 1.0);  // (4)
    return {o1, o2};
  }
};

Tensor small_loss(const std::vector<Tensor>& outs) {
  return add(sum(mul(outs[0], outs[0])), sum(mul(outs[1], 3.0)));
}

TEST(Checkpoint, ElementwiseMatmulMatchesPlain) {
  SmallSegment seg;
  Tensor x = randn64({4, 5}, 1), y = randn64({4, 3}, 2);
  std::vector<Tensor> all = {x, y, seg.w, seg.b};

  std::vector<Tensor> plain_out = seg({x, y});
  small_loss(plain_out).backward();
  std::vector<Tensor> ref = grads_of(all);
  clear_grads(all);
  seg.calls = 0;

  std::vector<Tensor> outs = checkpoint(std::ref(seg), {x, y});
  EXPECT_EQ(seg.calls, 1);
  ASSERT_EQ(outs.size(), 2u);
  EXPECT_TRUE(outs[0].requires_grad());
  EXPECT_EQ(grad_fn_name(outs[0]), "CheckpointBackward0");
  EXPECT_EQ(max_abs_diff(outs[0], plain_out[0]), 0.0);
  EXPECT_EQ(max_abs_diff(outs[1], plain_out[1]), 0.0);
  small_loss(outs).backward();
  EXPECT_EQ(seg.calls, 2);  // one recompute
  const char* names[] = {"x", "y", "w", "b"};
  for (size_t i = 0; i < all.size(); ++i) expect_close(all[i].grad(), ref[i], 1e-14, names[i]);
}

TEST(Checkpoint, InputsWithoutGradStillGiveParameterGrads) {
  // The first segment of a network reads data that requires no grad; its weights still train.
  SmallSegment seg;
  Tensor x = randn64({4, 5}, 3, /*requires_grad=*/false), y = randn64({4, 3}, 4, false);
  small_loss(seg({x, y})).backward();
  std::vector<Tensor> ref = grads_of({seg.w, seg.b});
  clear_grads({seg.w, seg.b});
  small_loss(checkpoint(std::ref(seg), {x, y})).backward();
  expect_close(seg.w.grad(), ref[0], 1e-14, "w");
  expect_close(seg.b.grad(), ref[1], 1e-14, "b");
  EXPECT_FALSE(x.grad().defined());
}

// (b) A GPT Block with dropout, training mode: the recompute draws the same masks.
TEST(Checkpoint, TransformerBlockWithDropoutMatchesPlain) {
  manual_seed(123);
  auto block = std::make_shared<nn::Block>(
      nn::BlockOptions{.n_embd = 16, .n_head = 2, .block_size = 8, .dropout = 0.25});
  block->to(DType::float64);
  block->train();
  std::vector<Tensor> params = block->parameters();
  Tensor x = randn64({2, 8, 16}, 5);
  Tensor r = randn64({2, 8, 16}, 6, false);  // a random linear loss, so every element matters
  auto loss_of = [&](const Tensor& out) { return sum(mul(out, r)); };

  manual_seed(2024);
  Tensor plain = block->forward(x);
  loss_of(plain).backward();
  const GeneratorState after_plain = default_generator().state();
  std::vector<Tensor> ref = grads_of(params);
  Tensor ref_x = x.grad().clone();
  block->zero_grad();
  zero_grad(x);

  manual_seed(2024);
  Tensor out =
      checkpoint([&](auto& xs) { return std::vector<Tensor>{block->forward(xs[0])}; }, {x})[0];
  EXPECT_EQ(max_abs_diff(out, plain), 0.0);
  loss_of(out).backward();
  // The recompute replays the forward's stream and puts it back: the state is as after the plain
  // run.
  EXPECT_EQ(default_generator().state(), after_plain);
  expect_close(x.grad(), ref_x, 1e-13, "x");
  auto named = block->named_parameters();
  for (size_t i = 0; i < params.size(); ++i)
    expect_close(params[i].grad(), ref[i], 1e-13, named[i].first);

  // Without preserving the RNG state the recompute draws other masks and the gradients differ:
  // what the check above relies on really is exercised.
  block->zero_grad();
  zero_grad(x);
  manual_seed(2024);
  Tensor out2 = checkpoint([&](const Tensor& v) { return block->forward(v); }, x,
                           {.preserve_rng_state = false});
  loss_of(out2).backward();
  EXPECT_GT(max_abs_diff(x.grad(), ref_x), 1e-6);
}

// A dropout drawing from its own generator gets the forward's mask in the recompute, whether the
// generator is listed in the options or only found by its draw in the forward, in a nested
// segment too (the outer segment notes the inner one's draws); a torch_cpu generator's state is
// its Mersenne Twister, replayed the same way.
class CheckpointDropout : public ::testing::TestWithParam<RngAlgorithm> {};
INSTANTIATE_TEST_SUITE_P(Algorithms, CheckpointDropout,
                         ::testing::Values(RngAlgorithm::philox, RngAlgorithm::torch_cpu));

TEST_P(CheckpointDropout, WithItsOwnGenerator) {
  Generator gen(99, GetParam());
  Tensor x = randn64({64}, 7);
  auto fn = [&](const Tensor& v) { return dropout(mul(v, v), 0.5, true, &gen); };
  const GeneratorState start = gen.state();
  sum(fn(x)).backward();
  Tensor ref = x.grad().clone();
  const GeneratorState after = gen.state();
  for (const char* how : {"listed", "unlisted", "nested"}) {
    SCOPED_TRACE(how);
    zero_grad(x);
    gen.set_state(start);
    const std::string h = how;
    Tensor y = h == "listed" ? checkpoint(fn, x, {.generators = {&gen}})
               : h == "unlisted"
                   ? checkpoint(fn, x)
                   : checkpoint([&](const Tensor& v) { return checkpoint(fn, v); }, x);
    sum(y).backward();
    EXPECT_EQ(gen.state(), after);
    expect_close(x.grad(), ref, 0, "x");
  }
}

// A module checkpointed as a whole (set_activation_checkpointing, FSDP's policy) whose Dropout
// has its own generator: the recompute draws the forward's mask, so the weight gradient is the
// plain run's.
TEST(Checkpoint, ModuleWithItsOwnDropoutGeneratorMatchesPlain) {
  Generator gen(5);
  auto linear = nn::make<nn::Linear>(nn::LinearOptions{.in_features = 4, .out_features = 6});
  auto seq = nn::make<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      linear, nn::make<nn::Dropout>(nn::DropoutOptions{.p = 0.5, .generator = &gen})});
  const Tensor x = randn({3, 4});
  std::vector<Tensor> grads;
  for (bool ckpt : {false, true}) {
    seq->set_activation_checkpointing(ckpt);
    gen.manual_seed(5);
    zero_grad(linear->weight);
    const Tensor y = (*seq)(x);
    sum(mul(y, y)).backward();
    grads.push_back(linear->weight.grad().clone());
  }
  expect_close(grads[1], grads[0], 0, "weight");
}

// (c) Nested checkpoints: the outer recompute creates the inner checkpoint, whose own recompute
// runs inside the outer one's backward.
TEST(Checkpoint, NestedCheckpointsMatchPlain) {
  Tensor w1 = randn64({6, 6}, 21), w2 = randn64({6, 6}, 22);
  Tensor x = randn64({3, 6}, 23);
  int inner_calls = 0, outer_calls = 0;
  auto inner = [&](const std::vector<Tensor>& xs) {
    ++inner_calls;
    return std::vector<Tensor>{tanh(matmul(xs[0], w1))};
  };
  auto plain_outer = [&](const Tensor& v) { return sigmoid(matmul(inner({v})[0], w2)); };
  sum(mul(plain_outer(x), plain_outer(x))).backward();
  std::vector<Tensor> ref = grads_of({x, w1, w2});
  clear_grads({x, w1, w2});
  inner_calls = 0;

  auto outer = [&](const std::vector<Tensor>& xs) {
    ++outer_calls;
    Tensor a = checkpoint(inner, {xs[0]})[0];
    return std::vector<Tensor>{sigmoid(matmul(a, w2))};
  };
  Tensor o1 = checkpoint(outer, {x})[0];
  Tensor o2 = checkpoint(outer, {x})[0];
  EXPECT_EQ(outer_calls, 2);
  EXPECT_EQ(inner_calls, 2);  // under the outer no-grad forward the inner checkpoint just runs
  sum(mul(o1, o2)).backward();
  EXPECT_EQ(outer_calls, 4);
  EXPECT_EQ(inner_calls, 6);  // once in each outer recompute, once in each inner recompute
  expect_close(x.grad(), ref[0], 1e-14, "x");
  expect_close(w1.grad(), ref[1], 1e-14, "w1");
  expect_close(w2.grad(), ref[2], 1e-14, "w2");
}

// (d) A checkpointed output used twice: its gradients from both uses sum before the recompute.
TEST(Checkpoint, OutputUsedTwice) {
  Tensor w = randn64({4, 4}, 31);
  Tensor x = randn64({5, 4}, 32);
  int calls = 0;
  auto fn = [&](const Tensor& v) {
    ++calls;
    return gelu(matmul(v, w), "tanh");
  };
  auto loss_of = [](const Tensor& y) { return add(sum(mul(y, y)), sum(sin(mul(y, 2.0)))); };
  loss_of(fn(x)).backward();
  std::vector<Tensor> ref = grads_of({x, w});
  clear_grads({x, w});
  calls = 0;
  loss_of(checkpoint(fn, x)).backward();
  EXPECT_EQ(calls, 2);  // the node runs once, after both uses delivered their gradients
  expect_close(x.grad(), ref[0], 1e-14, "x");
  expect_close(w.grad(), ref[1], 1e-14, "w");
}

// (e) Eight checkpointed Blocks hold far less memory after the forward than eight plain ones.
TEST(Checkpoint, StackOfBlocksHoldsLessMemory) {
  manual_seed(1);
  const nn::BlockOptions o{.n_embd = 64, .n_head = 4, .block_size = 64, .dropout = 0.1};
  std::vector<std::shared_ptr<nn::Block>> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(std::make_shared<nn::Block>(o));
  Tensor x = randn({8, 64, 64}, {.requires_grad = true});
  Allocator& alloc = cpu_allocator();

  struct Usage {
    int64_t held = 0, peak = 0;
  };
  auto run = [&](bool use_checkpoint) {
    for (auto& b : blocks) b->zero_grad();
    zero_grad(x);
    const int64_t base = alloc.stats().allocated_bytes;
    alloc.reset_peak();
    Usage u;
    {
      Tensor h = x;
      for (auto& b : blocks)
        h = use_checkpoint ? checkpoint([&](const Tensor& v) { return b->forward(v); }, h)
                           : b->forward(h);
      u.held = alloc.stats().allocated_bytes - base;
      u.peak = alloc.stats().peak_allocated_bytes - base;
      sum(h).backward();
    }
    return u;
  };
  manual_seed(5);
  Usage plain = run(false);
  Tensor ref = x.grad().clone();
  Tensor ref_w = blocks[0]->mlp->c_fc->weight.grad().clone();
  manual_seed(5);
  Usage ckpt = run(true);
  std::printf(
      "[ checkpoint ] 8 Blocks (B=8, T=64, C=64): held after forward %.2f MiB plain, %.2f MiB "
      "checkpointed "
      "(%.3f); forward peak %.2f vs %.2f MiB (%.3f)\n",
      plain.held / 1048576.0, ckpt.held / 1048576.0, double(ckpt.held) / plain.held,
      plain.peak / 1048576.0, ckpt.peak / 1048576.0, double(ckpt.peak) / plain.peak);
  EXPECT_GT(plain.held, 0);
  EXPECT_LT(double(ckpt.held), 0.6 * double(plain.held));
  EXPECT_LT(double(ckpt.peak), 0.6 * double(plain.peak));
  // Same gradients (float32: the recompute is the same computation, so agreement is tight).
  expect_close(x.grad(), ref, 1e-5, "x");
  expect_close(blocks[0]->mlp->c_fc->weight.grad(), ref_w, 1e-5, "blocks[0].mlp.c_fc.weight");
}

// (f) Under no-grad, checkpoint is just a call.
TEST(Checkpoint, NoGradJustRunsFn) {
  Tensor x = randn64({3}, 41);
  Tensor returned;
  int calls = 0;
  auto fn = [&](const std::vector<Tensor>& xs) {
    ++calls;
    returned = mul(xs[0], 2.0);
    return std::vector<Tensor>{returned};
  };
  NoGradGuard no_grad;
  std::vector<Tensor> outs = checkpoint(fn, {x});
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(outs[0].is_same(returned));
  EXPECT_FALSE(outs[0].requires_grad());
  EXPECT_TRUE(is_leaf(outs[0]));
}

TEST(Checkpoint, AutogradGradThroughCheckpoint) {
  SmallSegment seg;
  Tensor x = randn64({4, 5}, 51), y = randn64({4, 3}, 52);
  Tensor loss = small_loss(seg({x, y}));
  std::vector<Tensor> ref = grad({loss}, {x, seg.w});
  std::vector<Tensor> g = grad({small_loss(checkpoint(std::ref(seg), {x, y}))}, {x, seg.w});
  expect_close(g[0], ref[0], 1e-14, "x");
  expect_close(g[1], ref[1], 1e-14, "w (closed over)");
  // autograd::grad accumulates into no .grad, inside the recompute either.
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(seg.w.grad().defined());
  EXPECT_FALSE(seg.b.grad().defined());
}

// autograd::grad runs only the nodes on a path to its inputs; a checkpoint reaches the tensors it
// closes over only through its recompute, so it always runs: the gradient of a closed-over
// parameter alone, and of one reached both through the segment and outside it.
TEST(Checkpoint, AutogradGradOfClosedOverTensorsOnly) {
  SmallSegment seg;
  Tensor x = randn64({4, 5}, 53), y = randn64({4, 3}, 54);
  const Tensor ref = grad({small_loss(seg({x, y}))}, {seg.w})[0];
  const Tensor g = grad({small_loss(checkpoint(std::ref(seg), {x, y}))}, {seg.w})[0];
  expect_close(g, ref, 1e-14, "w (closed over, alone)");

  Tensor w = randn64({4}, 63), v = randn64({4}, 64);
  Tensor w2 = mul(w, 2.0);
  auto fn = [&](const Tensor& t) { return mul(sin(t), w2); };
  const Tensor want = grad({sum(add(fn(v), mul(w2, w2)))}, {w})[0];
  w2 = mul(w, 2.0);
  const Tensor got = grad({sum(add(checkpoint(fn, v), mul(w2, w2)))}, {w})[0];
  expect_close(got, want, 1e-14, "w (inside the segment and outside)");
}

// autograd::grad cannot see what a checkpoint's segment closes over. A checkpoint below every
// requested tensor (each computed from its output) is left alone, as torch does; one that a
// requested tensor could be closed over by runs, and when no edge shows it is needed it keeps its
// saved tensors, as do the nodes above it, so a later backward still works.
TEST(Checkpoint, AutogradGradBesideACheckpointKeepsItUsable) {
  Tensor x = randn64({3}, 65);
  int calls = 0;
  const Tensor y = checkpoint(
      [&](const Tensor& t) {
        ++calls;
        return sin(t);
      },
      x);
  const Tensor a = exp(y);
  const Tensor g = grad({sum(mul(a, a))}, {a})[0];
  expect_close(g, mul(a, 2.0), 1e-15, "d/da");
  EXPECT_EQ(calls, 1);  // a was computed from the checkpoint's output: not recomputed
  sum(a).backward();  // exp's saved output and the checkpoint are still there
  expect_close(x.grad(), mul(cos(x), exp(sin(x))), 1e-14, "x");
  EXPECT_EQ(calls, 2);

  // A leaf beside it could be closed over: the checkpoint runs, and keeps what backward needs.
  Tensor w = randn64({3}, 68);
  set_grad(x, Tensor());
  const Tensor y2 = checkpoint(
      [&](const Tensor& t) {
        ++calls;
        return sin(t);
      },
      x);
  const Tensor e = sum(exp(y2));
  const Tensor loss = add(e, sum(mul(w, w)));
  expect_close(grad({loss}, {w})[0], mul(w, 2.0), 1e-15, "d/dw");
  EXPECT_EQ(calls, 4);
  e.backward();  // (w * w's node ran towards w and freed its inputs, as torch's would)
  expect_close(x.grad(), mul(cos(x), exp(sin(x))), 1e-14, "x after grad beside");
}

// A closed-over view whose history was rebuilt after an in-place write to its base (a node newer
// than the checkpoint) still gets the segment's share (torch 1.13: [4, 21]).
TEST(Checkpoint, AutogradGradOfAClosedOverViewRebuiltAfterAWrite) {
  Tensor w = from_vector(std::vector<double>{1, 2, 3, 4}, {4}, {.dtype = DType::float64});
  w.set_requires_grad(true);
  Tensor x = from_vector(std::vector<double>{0.5, -1.5}, {2}, {.dtype = DType::float64});
  x.set_requires_grad(true);
  Tensor h = mul(w, 1.0);
  const Tensor hv = h.narrow(0, 0, 2);
  h.mul_(2.0);
  const Tensor y = checkpoint([&](const Tensor& t) { return mul(t, hv); }, x);
  const Tensor loss = add(sum(mul(y, y)), sum(mul(hv, 3.0)));
  EXPECT_EQ(grad({loss}, {hv})[0].to_vector<double>(), (std::vector<double>{4, 21}));
}

// Differentiating a checkpoint's gradient again raises, also towards a tensor its segment closes
// over (the stand-in history depends on it; it used to be treated as a constant, silently).
TEST(Checkpoint, SecondOrderTowardsAClosedOverTensorRaises) {
  Tensor p = randn64({3}, 66), v = randn64({3}, 67);
  const Tensor out = checkpoint([&](const Tensor& t) { return tanh(mul(t, p)); }, v);
  const Tensor loss = add(sum(out), sum(mul(mul(p, v), v)));
  const Tensor gv = grad({loss}, {v}, {}, std::nullopt, /*create_graph=*/true)[0];
  EXPECT_THROW(grad({sum(gv)}, {p}), NotImplementedError);
  EXPECT_THROW(grad({sum(gv)}, {v}), NotImplementedError);
  // The gradient of the closed-over tensor itself, taken with create_graph: its segment share
  // was computed without a graph and is not differentiated as a constant either.
  const Tensor out2 = checkpoint([&](const Tensor& t) { return tanh(mul(t, p)); }, v);
  const Tensor loss2 = add(sum(mul(mul(p, p), p)), sum(out2));
  const Tensor gp = grad({loss2}, {p}, {}, std::nullopt, /*create_graph=*/true)[0];
  EXPECT_THROW(grad({sum(gp)}, {p}), NotImplementedError);
  // Two levels: the inner segment closes over b = 2 w2; the outer one over w1.
  Tensor w1 = randn64({4}, 69), w2 = randn64({4}, 70), x = randn64({4}, 71);
  const Tensor b = mul(w2, 2.0);
  const auto inner = [&](const Tensor& t) { return sin(mul(t, b)); };
  const auto outer = [&](const Tensor& t) { return mul(checkpoint(inner, tanh(mul(t, w1))), w1); };
  const Tensor y = checkpoint(outer, mul(x, 1.0));
  const Tensor loss3 = add(sum(exp(y)), sum(mul(b, b)));
  const std::vector<Tensor> g3 =
      grad({loss3}, {x, w1, w2}, {}, std::nullopt, /*create_graph=*/true);
  EXPECT_THROW(grad({sum(g3[2])}, {w2}), NotImplementedError);
  EXPECT_THROW(grad({sum(g3[1])}, {w2}), NotImplementedError);
  // backward(create_graph): the .grad of a closed-over parameter arrives along the checkpoint's
  // edge, so it has the same refusing history (it used to have none: a silent constant).
  Tensor q = randn64({3}, 74);
  const Tensor out4 = checkpoint([&](const Tensor& t) { return tanh(mul(t, q)); }, v);
  backward(sum(out4), Tensor(), std::nullopt, /*create_graph=*/true);
  ASSERT_TRUE(q.grad().defined());
  EXPECT_TRUE(q.grad().requires_grad());
  EXPECT_THROW(grad({sum(q.grad())}, {q}), NotImplementedError);
}

// A closed-over tensor rewritten in place from the checkpoint's own output makes the recompute's
// backward lead back to the checkpoint: an error naming the cause, not endless recursion.
TEST(Checkpoint, AClosureRewrittenFromItsOwnOutputIsAnError) {
  Tensor x = randn64({3}, 72), p = randn64({2}, 73);
  const Tensor b = mul(x, 1.0);
  const Tensor v = b.narrow(0, 0, 2);
  const Tensor y = checkpoint([&](const Tensor& t) { return tanh(mul(t, v)); }, p);
  Tensor bn = b.narrow(0, 0, 2);
  bn.add_(y);
  const Tensor loss = add(sum(mul(v, v)), sum(y));
  EXPECT_THROW(grad({loss}, {x}), Error);
}

TEST(Checkpoint, ClosureOverNonLeafUsedOutsideToo) {
  // w2 is a non-leaf the segment closes over and the loss also uses directly: both paths reach w.
  Tensor w = randn64({4}, 61);
  Tensor x = randn64({4}, 62);
  Tensor w2 = mul(w, 2.0);
  auto fn = [&](const Tensor& v) { return mul(sin(v), w2); };
  sum(add(fn(x), mul(w2, w2))).backward();
  std::vector<Tensor> ref = grads_of({x, w});
  clear_grads({x, w});
  w2 = mul(w, 2.0);
  sum(add(checkpoint(fn, x), mul(w2, w2))).backward();
  expect_close(x.grad(), ref[0], 1e-14, "x");
  expect_close(w.grad(), ref[1], 1e-14, "w");
}

TEST(Checkpoint, AutocastStateIsReplayed) {
  // bf16 autocast on the CPU; the weight is used inside the segment and again after it, in the
  // same autocast region (the no-grad forward must not leave a history-less cast in the cache).
  Tensor w =
      from_vector<float>({0.5f, -1.25f, 2.f, 0.75f, 1.5f, -0.5f}, {3, 2}, {.requires_grad = true});
  Tensor x =
      from_vector<float>({1.f, 2.f, -3.f, 0.5f, 0.25f, -1.f}, {2, 3}, {.requires_grad = true});
  auto fn = [&](const Tensor& v) { return matmul(v, w); };  // (2, 3) x (3, 2)
  auto run = [&](bool use_checkpoint) {
    clear_grads({x, w});
    autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
    Tensor h = use_checkpoint ? checkpoint(fn, x) : fn(x);
    Tensor out =
        matmul(w, h.to(DType::float32));  // w again (not a view, so cacheable): (3, 2) x (2, 2)
    autocast_exit(DeviceType::cpu);
    EXPECT_EQ(h.dtype(), DType::bfloat16);
    sum(out).backward();
  };
  run(false);
  std::vector<Tensor> ref = grads_of({x, w});
  run(true);
  expect_close(x.grad(), ref[0], 0, "x");
  expect_close(w.grad(), ref[1], 1e-2, "w");  // bf16 partial sums are rounded in another order
}

TEST(Checkpoint, AWeightUsedTwiceInTheSegmentIsCastOnceInTheRecompute) {
  // Without checkpointing both uses share one cached bf16 cast of w, so their gradients (256 and 1
  // per element) meet in bf16: 257 rounds to 256. The recompute must do the same (torch: 256, as
  // without checkpointing); a recompute that cast w once per use summed them in float32 (257).
  auto run = [](bool use_checkpoint) {
    Tensor a = full({1, 3}, 256.0), b = ones({1, 3});
    Tensor w = ones({2, 3});
    w.set_requires_grad(true);
    CheckpointFn fn = [&](const std::vector<Tensor>& in) {
      return std::vector<Tensor>{linear(in[0], w), linear(in[1], w)};
    };
    std::vector<Tensor> y;
    autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
    y = use_checkpoint ? checkpoint(fn, {a, b}) : fn({a, b});
    autocast_exit(DeviceType::cpu);
    add(sum(y[0].to(DType::float32)), sum(y[1].to(DType::float32))).backward();
    return w.grad().to_vector<float>();
  };
  const std::vector<float> plain = run(false);
  EXPECT_EQ(plain, std::vector<float>(6, 256.f));
  EXPECT_EQ(run(true), plain);
}

TEST(Checkpoint, BackwardTwiceNeedsRetainGraph) {
  Tensor x = randn64({3}, 71);
  Tensor w = randn64({3}, 72);
  auto fn = [&](const Tensor& v) { return mul(exp(v), w); };
  // The checkpoint output is the root, so its node is the first to meet a released graph.
  Tensor loss = checkpoint(fn, x);
  Tensor seed = full({3}, 1.0, {.dtype = DType::float64});
  loss.backward(seed, /*retain_graph=*/true);
  Tensor once = x.grad().clone();
  Tensor once_w = w.grad().clone();
  loss.backward(seed);  // recomputes again
  expect_close(x.grad(), mul(once, 2.0), 1e-15, "x after two backwards");
  expect_close(w.grad(), mul(once_w, 2.0), 1e-15, "w after two backwards");
  try {
    loss.backward(seed);
    FAIL() << "a third backward without retain_graph must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CheckpointBackward0"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, Errors) {
  Tensor x = randn64({3}, 81);
  auto none = [](const std::vector<Tensor>&) { return std::vector<Tensor>{}; };
  auto undefined = [](const std::vector<Tensor>&) { return std::vector<Tensor>{Tensor()}; };
  EXPECT_THROW(checkpoint(none, {x}), ValueError);
  EXPECT_THROW(checkpoint(undefined, {x}), ValueError);
  {
    NoGradGuard no_grad;
    EXPECT_THROW(checkpoint(none, {x}), ValueError);
  }
  EXPECT_THROW(checkpoint(CheckpointFn(), {x}), ValueError);

  // An input modified in place between forward and backward.
  Tensor a = randn64({3}, 82, false);
  Tensor w = randn64({3}, 83);
  Tensor out = checkpoint([&](const Tensor& v) { return mul(v, w); }, a);
  a.fill_(1.0);
  EXPECT_THROW(sum(out).backward(), Error);

  // A segment that computes something else the second time.
  int calls = 0;
  auto unstable = [&](const Tensor& v) { return ++calls == 1 ? mul(v, w) : sum(mul(v, w)); };
  EXPECT_THROW(sum(checkpoint(unstable, x)).backward(), Error);
}

TEST(Checkpoint, IntegerOutputsPassThrough) {
  Tensor x = randn64({4}, 91);
  auto fn = [](const std::vector<Tensor>& xs) {
    return std::vector<Tensor>{mul(xs[0], xs[0]), argmax(xs[0]), Tensor()};
  };
  std::vector<Tensor> outs = checkpoint(fn, {x});
  ASSERT_EQ(outs.size(), 3u);
  EXPECT_TRUE(outs[0].requires_grad());
  EXPECT_FALSE(outs[1].requires_grad());
  EXPECT_EQ(outs[1].dtype(), DType::int64);
  EXPECT_FALSE(outs[2].defined());
  sum(outs[0]).backward();
  expect_close(x.grad(), mul(x.detach(), 2.0), 1e-15, "x");
}

TEST(Checkpoint, IdentitySegmentDoesNotTouchItsInput) {
  Tensor x = randn64({3}, 95);
  Tensor y = mul(x, 3.0);
  Tensor out = checkpoint([](const Tensor& v) { return v; }, y);
  EXPECT_EQ(grad_fn_name(y), "MulBackward0");  // y keeps its own history
  EXPECT_EQ(grad_fn_name(out), "CheckpointBackward0");
  sum(out).backward();
  expect_close(x.grad(), full({3}, 3.0, {.dtype = DType::float64}), 0, "x");
}

// A parameter read by two checkpointed segments and outside them accumulates once, after both
// recomputes, with its whole gradient: its hooks (where DDP and FSDP reduce) run once and see it,
// as without checkpointing.
TEST(Checkpoint, ClosedOverLeafAccumulatesOnceWithItsWholeGradient) {
  Tensor w = randn64({4}, 101), x = randn64({4}, 102);
  auto seg = [&](const Tensor& v) { return sin(mul(v, w)); };
  auto loss_of = [&](bool ckpt) {
    Tensor h = ckpt ? checkpoint(seg, x) : seg(x);
    h = ckpt ? checkpoint(seg, h) : seg(h);
    return sum(mul(h, w));
  };
  loss_of(false).backward();
  const Tensor ref = w.grad().clone();
  clear_grads({w, x});

  int hook_calls = 0, post_calls = 0;
  Tensor hook_saw, post_saw;
  register_hook(w, [&](const Tensor& g) {
    ++hook_calls;
    hook_saw = g.clone();
    return Tensor();
  });
  register_post_accumulate_grad_hook(w, [&](Tensor& p) {
    ++post_calls;
    post_saw = p.grad().clone();
  });
  loss_of(true).backward();
  EXPECT_EQ(hook_calls, 1);
  EXPECT_EQ(post_calls, 1);
  expect_close(w.grad(), ref, 1e-14, "w.grad");
  expect_close(hook_saw, ref, 1e-14, "the hook's gradient");
  expect_close(post_saw, ref, 1e-14, "the post-accumulate hook's .grad");
}

// A non-leaf the segment closes over runs its node once too: its hook fires once and its
// retain_grad sees the total.
TEST(Checkpoint, ClosedOverNonLeafRunsOnce) {
  Tensor w = randn64({4}, 103), x = randn64({4}, 104);
  int hook_calls = 0;
  auto run = [&](bool ckpt) {
    Tensor w2 = mul(w, 2.0);
    retain_grad(w2);
    register_hook(w2, [&](const Tensor&) {
      ++hook_calls;
      return Tensor();
    });
    auto seg = [&](const Tensor& v) { return mul(sin(v), w2); };
    Tensor h = ckpt ? checkpoint(seg, x) : seg(x);
    sum(add(h, mul(w2, w2))).backward();
    return w2.grad().clone();
  };
  const Tensor ref_w2 = run(false), ref_w = w.grad().clone();
  clear_grads({w, x});
  hook_calls = 0;
  expect_close(run(true), ref_w2, 1e-14, "w2.grad");
  expect_close(w.grad(), ref_w, 1e-14, "w.grad");
  EXPECT_EQ(hook_calls, 1);
}

}  // namespace
}  // namespace fabric
