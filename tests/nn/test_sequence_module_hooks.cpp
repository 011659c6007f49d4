// The sequence layers' entry points of several inputs or outputs run the forward hooks and
// activation checkpointing, as torch's lstm(x, (h0, c0)), lstm(packed), cell(x, hx) and
// mha(q, k, v) do: RNN/LSTM/GRU::forward_with_state and forward_packed, the cells'
// forward_with_state and MultiheadAttention's operator()(q, k, v, ...). They used to call the
// computation directly, so weight_norm / spectral_norm (whose forward pre-hook recomputes the
// weight) left the weight stale there, FSDP's gathers were skipped and checkpointing ignored.
// Torch values: tools/fixtures/make_sequence_hook_rows.py.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/nn/mha_test_helpers.h"

namespace fabric::nn {
namespace {

using mha_testing::expect_close;

// What the forward hooks of one module saw.
struct Seen {
  int pre = 0, post = 0;
  Tensor input, output;
};

std::shared_ptr<Seen> watch(Module& m) {
  auto seen = std::make_shared<Seen>();
  m.register_forward_pre_hook([seen](Module&, const Tensor& x) {
    ++seen->pre;
    seen->input = x;
    return Tensor();
  });
  m.register_forward_hook([seen](Module&, const Tensor&, const Tensor& y) {
    ++seen->post;
    seen->output = y;
    return Tensor();
  });
  return seen;
}

void expect_one_call(const Seen& s, const Tensor& input, const Tensor& output,
                     const std::string& what) {
  EXPECT_EQ(s.pre, 1) << what;
  EXPECT_EQ(s.post, 1) << what;
  EXPECT_TRUE(s.input.is_same(input)) << what << ": the pre-hook saw another input";
  EXPECT_TRUE(s.output.is_same(output)) << what << ": the hook saw another output";
}

std::vector<double> values(const Tensor& t) {
  return t.to(DType::float64).contiguous().to_vector<double>();
}

// scale * sin(a * (j + 1) + b), j = 0..numel-1: the generator script's values.
Tensor pattern(const Shape& shape, double a, double b, double scale) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) v[size_t(j)] = scale * std::sin(a * double(j + 1) + b);
  return from_vector<double>(v, shape);
}

TEST(SequenceModuleHooks, RecurrentLayersRunTheHooksOnEveryEntryPoint) {
  manual_seed(0);
  const Tensor x = randn({5, 2, 3}), h0 = randn({1, 2, 4}), c0 = randn({1, 2, 4});
  const PackedSequence packed = pack_padded_sequence(x, std::vector<int64_t>{5, 3});
  {
    auto lstm = make<LSTM>({.input_size = 3, .hidden_size = 4});
    auto seen = watch(*lstm);
    const LSTMOutput r = lstm->forward_with_state(x, h0, c0);
    expect_one_call(*seen, x, r.output, "LSTM::forward_with_state");
    *seen = Seen{};
    const PackedLSTMOutput p = lstm->forward_packed(packed, h0, c0);
    expect_one_call(*seen, packed.data, p.output.data, "LSTM::forward_packed");
    *seen = Seen{};
    const Tensor y = (*lstm)(x);
    expect_one_call(*seen, x, y, "LSTM::operator()");
  }
  auto gru = make<GRU>({.input_size = 3, .hidden_size = 4});
  auto rnn = make<RNN>({.input_size = 3, .hidden_size = 4, .nonlinearity = "relu"});
  for (RecurrentBase* m : {static_cast<RecurrentBase*>(gru.get()), (RecurrentBase*)rnn.get()}) {
    auto seen = watch(*m);
    const RNNOutput r =
        m == gru.get() ? gru->forward_with_state(x, h0) : rnn->forward_with_state(x, h0);
    expect_one_call(*seen, x, r.output, m->type_name() + "::forward_with_state");
    *seen = Seen{};
    const PackedRNNOutput p =
        m == gru.get() ? gru->forward_packed(packed, h0) : rnn->forward_packed(packed, h0);
    expect_one_call(*seen, packed.data, p.output.data, m->type_name() + "::forward_packed");
  }
}

TEST(SequenceModuleHooks, CellsRunTheHooksOnceWithOrWithoutAState) {
  manual_seed(1);
  const Tensor x = randn({2, 3}), h = randn({2, 4}), c = randn({2, 4});
  auto rnn = make<RNNCell>({.input_size = 3, .hidden_size = 4});
  auto gru = make<GRUCell>({.input_size = 3, .hidden_size = 4});
  auto lstm = make<LSTMCell>({.input_size = 3, .hidden_size = 4});
  auto s_rnn = watch(*rnn), s_gru = watch(*gru), s_lstm = watch(*lstm);
  expect_one_call(*s_rnn, x, rnn->forward_with_state(x, h), "RNNCell::forward_with_state");
  expect_one_call(*s_gru, x, gru->forward_with_state(x, h), "GRUCell::forward_with_state");
  expect_one_call(*s_lstm, x, lstm->forward_with_state(x, h, c).first,
                  "LSTMCell::forward_with_state");
  // operator() runs forward, which no longer goes through forward_with_state's hooks again.
  *s_rnn = Seen{}, *s_gru = Seen{}, *s_lstm = Seen{};
  expect_one_call(*s_rnn, x, (*rnn)(x), "RNNCell::operator()");
  expect_one_call(*s_gru, x, (*gru)(x), "GRUCell::operator()");
  expect_one_call(*s_lstm, x, (*lstm)(x), "LSTMCell::operator()");
}

TEST(SequenceModuleHooks, MultiheadAttentionCallRunsTheHooksAndThePreHookSeesTheQuery) {
  manual_seed(2);
  auto mha = make<MultiheadAttention>({.embed_dim = 4, .num_heads = 2});
  auto seen = watch(*mha);
  const Tensor q = randn({3, 2, 4}), k = randn({5, 2, 4}), v = randn({5, 2, 4});
  const auto [y, weights] = (*mha)(q, k, v);
  expect_one_call(*seen, q, y, "MultiheadAttention::operator()(q, k, v)");
  EXPECT_TRUE(weights.defined());
  // forward itself is torch's mha.forward(...): no hooks.
  *seen = Seen{};
  mha->forward(q, k, v);
  EXPECT_EQ(seen->pre, 0);
  EXPECT_EQ(seen->post, 0);
}

// A pre-hook's replacement of the first input is what the layer computes on (for attention on
// the same tensor, key and value follow the query); a hook's replacement of the output is returned.
TEST(SequenceModuleHooks, HookReplacementsReachTheComputationAndTheCaller) {
  manual_seed(3);
  const Tensor x = randn({5, 2, 3}), h0 = randn({1, 2, 4}), c0 = randn({1, 2, 4});
  auto lstm = make<LSTM>({.input_size = 3, .hidden_size = 4});
  const LSTMOutput direct = lstm->forward_with_state(mul(x, 2.0), h0, c0);
  lstm->register_forward_pre_hook([](Module&, const Tensor& in) { return mul(in, 2.0); });
  const LSTMOutput hooked = lstm->forward_with_state(x, h0, c0);
  EXPECT_EQ(values(hooked.output), values(direct.output));
  EXPECT_EQ(values(hooked.h_n), values(direct.h_n));
  EXPECT_EQ(values(hooked.c_n), values(direct.c_n));
  lstm->register_forward_hook([](Module&, const Tensor&, const Tensor& y) { return neg(y); });
  EXPECT_EQ(values(lstm->forward_with_state(x, h0, c0).output), values(neg(direct.output)));

  auto mha = make<MultiheadAttention>({.embed_dim = 4, .num_heads = 2});
  const Tensor s = randn({3, 2, 4}), t = randn({3, 2, 4});
  const auto [want, want_weights] = mha->forward(t, t, t);
  mha->register_forward_pre_hook([t](Module&, const Tensor&) { return t; });
  const auto [got, got_weights] = (*mha)(s, s, s);
  EXPECT_EQ(values(got), values(want));
  EXPECT_EQ(values(got_weights), values(want_weights));
}

// weight_norm on weight_hh_l0, the layer called only as lstm(x, (h0, c0)) for two SGD steps: the
// second step's output, states and gradients are torch's. Before, the weight stayed the one
// weight_norm computed at installation (a stale value after the step) and the second backward
// failed ("backward through MulBackward0 a second time").
TEST(SequenceModuleHooks, WeightNormOnLstmForwardWithStateMatchesTorchAfterAStep) {
  // tools/fixtures/make_sequence_hook_rows.py
  const std::vector<double> kOut = {
      -0.05336809197680419,   -0.09688195959557756, -0.020025313014401715, 0.008397374800668867,
      -0.1706544148599223,    -0.3383517079241879,  -0.07368956179105375,  0.03542280407095185,
      -0.1271621490885958,    -0.2640905028230466,  -0.05199709396892217,  0.03481006241590247,
      -0.11642519756276515,   -0.1294846580107976,  0.017969294633618956,  0.1006429009974871,
      -0.04715290133481999,   0.03353293491272665,  0.13015554325231035,   0.08283979238506124,
      -0.02610786302448652,   0.03642685317089698,  0.1711359531323565,    -0.0564483070791712,
      -0.0024561568703052694, 0.0573552167456348,   0.1619214944431444,    -0.20769422533507093,
      -0.003122684346711523,  0.07100703665050787,  0.16633908584301635,   -0.1766428985857868,
      -0.0072732420177462325, 0.12504922398045776,  0.16282769735926214,   -0.061965991894423554,
      -0.0463357084086617,    0.11226162116670192,  0.11611725814142795,   -0.0009759602208494722};
  const std::vector<double> kHn = {
      -0.0072732420177462325, 0.12504922398045776, 0.16282769735926214, -0.061965991894423554,
      -0.0463357084086617,    0.11226162116670192, 0.11611725814142795, -0.0009759602208494722};
  const std::vector<double> kCn = {-0.0134203096668924,  0.21938830988660055,   0.2504988566321452,
                                   -0.09410207284884438, -0.062390211094484144, 0.1670317022595574,
                                   0.2148791254123295,   -0.0021629064571273837};
  const std::vector<double> kGrad_weight_ih_l0 = {
      0.034641767995662626,  0.029959816051002813,  0.023961484598996392,  -0.06656599132286078,
      -0.024263567368462177, 0.019104953347164708,  -0.29102164063025954,  -0.25186163202446255,
      -0.2016352840753442,   -0.06761981492257638,  -0.062340865134624425, -0.0543227717820466,
      0.014954355748029212,  0.01419913612737746,   0.012820032441874143,  0.002402073226496168,
      0.016958766087640024,  0.030770321792078687,  -0.07009893576384213,  -0.04326518875794885,
      -0.014530448509457158, 0.02395925540198383,   0.016497112549801525,  0.00831011675279539,
      -0.5613757076013791,   -0.49278922593697394,  -0.40255048721730813,  -0.5234289592367308,
      -0.4380500836662823,   -0.33342408880951646,  -0.14539470942455762,  -0.08164189126712079,
      -0.014301877767025531, 0.18240310535788193,   0.23470077115919694,   0.27668611444870284,
      0.01656103579923145,   0.012145709664655172,  0.007196723267361801,  0.05347312554409454,
      0.0734078867038154,    0.09011723961770393,   -0.05142356740548812,  -0.028215929154322004,
      -0.003768534595698498, -0.026853262578361622, -0.03237072712672569,  -0.036465881145713};
  const std::vector<double> kGrad_bias_ih_l0 = {
      0.0406189682652049,    0.49241526458529467, 0.5258751172061721,  0.12330182031944577,
      -0.005925373358227758, 0.09251306847596379, 0.14871493492620888, -0.06109908879069146,
      0.04436912854311198,   0.00873816351940404, 0.545992571114831,   -0.09250725647575819,
      0.008052118542373315,  0.21980533694512402, 0.18566994653704316, 0.04457081376366781};
  const std::vector<double> kGrad_bias_hh_l0 = {
      0.040618968265204905,  0.49241526458529467, 0.5258751172061721,  0.12330182031944578,
      -0.005925373358227757, 0.09251306847596379, 0.14871493492620885, -0.06109908879069146,
      0.04436912854311209,   0.00873816351940393, 0.5459925711148309,  -0.0925072564757582,
      0.008052118542373317,  0.219805336945124,   0.1856699465370432,  0.04457081376366781};
  const std::vector<double> kGrad_weight_hh_l0_g = {
      -0.006161101132099074,  -0.0007125469746204987, -0.009620018675958197, 0.007951981970149395,
      -0.0020457791457248347, 0.0028077374554473854,  -0.009279551267673396, 0.002547313122861989,
      0.038906509022349524,   0.0824355786328092,     0.0015169517245245921, -0.029886006067124955,
      -0.00251005433077607,   -0.0038326952266498544, 0.0007338173889274852, 0.003521283575946744};
  const std::vector<double> kGrad_weight_hh_l0_v = {
      -0.0002547417508344495, -0.0026885922523007823, 0.00017104171661793725, 0.007514784179693069,
      -0.01632806999354173,   0.001300414588714243,   0.050613350991916904,   -0.03868139194443885,
      -0.02392699942866924,   -0.001098049378829529,  0.0635335830075765,     -0.04912952799558641,
      -0.0033849503543353374, 0.0008260703271887381,  0.011553502553011078,   -0.008634257926569982,
      0.00017912115709136302, -0.0006353863658162325, -0.0005936671332855204, 0.0014951949388163663,
      -0.004419492610316848,  0.0021089951399200215,  0.013834696869905263,   -0.009856294662607725,
      -0.004984225528786815,  0.006442397390125304,   0.02116371672083607,    -0.028103810560676144,
      0.0029958164029957744,  -0.001755850034005543,  -0.009137647969000467,  0.005668390044207279,
      0.0009054536982550713,  0.033686547529039705,   0.05589141725055341,    -0.10298557904605221,
      -0.04677613370752888,   0.027503826341069414,   0.08838563140678189,    -0.06255392212650829,
      -0.015161197716760874,  0.00672350001060647,    0.07392962618945409,    -0.07226759019957463,
      -0.006955523031705655,  0.00016098618425792978, -0.006633763458889803,  -0.05265989301872453,
      -0.001424280968982154,  -0.003379268285356172,  -0.0014480403948509831, 0.00498070470847379,
      -0.006170991046490431,  -0.0018416185991937846, 0.01833627186537363,    -0.017023772175033168,
      -0.004293733884457718,  0.004434526163495805,   0.02481171814902163,    -0.02396532393947615,
      -0.0016629362975226225, -0.0020426357202577676, 0.0043515568680924785,  0.005934919397698732};
  auto lstm = make<LSTM>({.input_size = 3, .hidden_size = 4});
  lstm->to(DType::float64);
  {
    NoGradGuard no_grad;
    int i = 0;
    for (const char* name : {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}) {
      Tensor p = lstm->get_parameter(name);
      p.copy_(pattern(p.sizes(), 0.37, 1.3 * i++, 0.5));
    }
  }
  weight_norm(*lstm, "weight_hh_l0");
  const Tensor x = pattern({5, 2, 3}, 0.21, 0.4, 1.0);
  const Tensor h0 = pattern({1, 2, 4}, 0.9, 0.0, 0.1), c0 = pattern({1, 2, 4}, 0.7, 1.0, 0.2);
  LSTMOutput r;
  for (int step = 0; step < 2; ++step) {
    r = lstm->forward_with_state(x, h0, c0);
    backward(add(add(sum(mul(r.output, r.output)), sum(r.h_n)), sum(mul(r.c_n, r.c_n))));
    if (step == 1) break;
    NoGradGuard no_grad;
    for (Tensor& p : lstm->parameters()) {
      p.sub_(mul(p.grad(), 0.1));
      zero_grad(p);
    }
  }
  expect_close(r.output, kOut, "output");
  expect_close(r.h_n, kHn, "h_n");
  expect_close(r.c_n, kCn, "c_n");
  const std::vector<std::pair<std::string, const std::vector<double>*>> grads = {
      {"weight_ih_l0", &kGrad_weight_ih_l0},
      {"bias_ih_l0", &kGrad_bias_ih_l0},
      {"bias_hh_l0", &kGrad_bias_hh_l0},
      {"weight_hh_l0_g", &kGrad_weight_hh_l0_g},
      {"weight_hh_l0_v", &kGrad_weight_hh_l0_v}};
  for (const auto& [name, want] : grads)
    expect_close(lstm->get_parameter(name).grad(), *want, name);
}

// The same layer called only through forward_with_state / forward_packed / a cell's
// forward_with_state trains weight_norm's g: a second step's backward works and reaches g.
TEST(SequenceModuleHooks, WeightNormTrainsThroughEveryStatefulEntryPoint) {
  manual_seed(4);
  const Tensor x = randn({5, 2, 3}), h0 = zeros({1, 2, 4});
  const PackedSequence packed = pack_padded_sequence(x, std::vector<int64_t>{5, 3});
  auto gru = make<GRU>({.input_size = 3, .hidden_size = 4});
  auto cell = make<LSTMCell>({.input_size = 3, .hidden_size = 4});
  weight_norm(*gru, "weight_hh_l0");
  weight_norm(*cell, "weight_hh");
  const std::vector<std::pair<std::string, std::function<Tensor()>>> calls = {
      {"GRU::forward_with_state", [&] { return gru->forward_with_state(x, h0).output; }},
      {"GRU::forward_packed", [&] { return gru->forward_packed(packed, h0).output.data; }},
      {"LSTMCell::forward_with_state",
       [&] { return cell->forward_with_state(x.select(0, 0)).second; }}};
  for (const auto& [what, call] : calls) {
    Module& m = what.rfind("GRU", 0) == 0 ? static_cast<Module&>(*gru) : *cell;
    Tensor g = m.get_parameter(what.rfind("GRU", 0) == 0 ? "weight_hh_l0_g" : "weight_hh_g");
    for (int step = 0; step < 2; ++step) {
      const Tensor before = call();
      ASSERT_NO_THROW(backward(sum(before))) << what << " step " << step;
      ASSERT_TRUE(g.grad().defined()) << what << " step " << step;
      NoGradGuard no_grad;
      g.mul_(Scalar(2.0));  // a step: the next call must see the new weight
      zero_grad(g);
    }
    // After the last step: the output is the layer's on the recomputed weight, which
    // operator() (zero states, like h0 here) computes too.
    NoGradGuard no_grad;
    if (what == "GRU::forward_with_state")
      EXPECT_EQ(values(gru->forward_with_state(x, h0).output), values((*gru)(x))) << what;
    if (what == "LSTMCell::forward_with_state")
      EXPECT_EQ(values(cell->forward_with_state(x.select(0, 0)).first),
                values((*cell)(x.select(0, 0))))
          << what;
  }
}

// What one run of a layer gives: its outputs and every gradient, exactly.
struct Grads {
  std::vector<std::vector<double>> outputs, inputs, params;
  std::vector<std::string> grad_fns;
};

Grads run_and_backward(Module& m, const std::vector<Tensor>& inputs,
                       const std::function<std::vector<Tensor>()>& call) {
  Grads g;
  for (const Tensor& p : m.parameters()) zero_grad(p);
  for (const Tensor& x : inputs) zero_grad(x);
  const std::vector<Tensor> outs = call();
  Tensor loss;
  for (size_t i = 0; i < outs.size(); ++i) {
    const Tensor term = sum(mul(outs[i], double(i + 1)));
    loss = loss.defined() ? add(loss, mul(term, term)) : mul(term, term);
    g.outputs.push_back(values(outs[i]));
    g.grad_fns.push_back(grad_fn_name(outs[i]));
  }
  backward(loss);
  for (const Tensor& x : inputs) g.inputs.push_back(values(x.grad()));
  for (const Tensor& p : m.parameters()) g.params.push_back(values(p.grad()));
  return g;
}

void expect_checkpointing_changes_nothing(Module& m, const std::vector<Tensor>& inputs,
                                          const std::function<std::vector<Tensor>()>& call,
                                          const std::string& what) {
  manual_seed(11);
  const Grads plain = run_and_backward(m, inputs, call);
  m.set_activation_checkpointing(true);
  manual_seed(11);
  const Grads checkpointed = run_and_backward(m, inputs, call);
  EXPECT_TRUE(m.activation_checkpointing()) << what << ": the setting was not restored";
  m.set_activation_checkpointing(false);
  for (const std::string& fn : checkpointed.grad_fns)
    EXPECT_EQ(fn, "CheckpointBackward0")
        << what << ": an output did not come out of the checkpoint";
  EXPECT_EQ(checkpointed.outputs, plain.outputs) << what;
  EXPECT_EQ(checkpointed.inputs, plain.inputs) << what;
  EXPECT_EQ(checkpointed.params, plain.params) << what;
}

// Checkpointing recomputes the layer in backward and gives the plain run's gradients, h0's and
// c0's included (the states are checkpoint inputs, h_n and c_n checkpoint outputs); dropout
// between layers draws the same masks again.
TEST(SequenceModuleHooks, CheckpointedLstmWithStatesGivesThePlainGradients) {
  manual_seed(5);
  auto lstm = make<LSTM>(
      {.input_size = 3, .hidden_size = 4, .num_layers = 2, .dropout = 0.25, .bidirectional = true});
  lstm->to(DType::float64);
  const Tensor x = randn({5, 2, 3}, {.dtype = DType::float64}).set_requires_grad(true);
  const Tensor h0 = randn({4, 2, 4}, {.dtype = DType::float64}).set_requires_grad(true);
  const Tensor c0 = randn({4, 2, 4}, {.dtype = DType::float64}).set_requires_grad(true);
  expect_checkpointing_changes_nothing(
      *lstm, {x, h0, c0},
      [&] {
        const LSTMOutput r = lstm->forward_with_state(x, h0, c0);
        return std::vector<Tensor>{r.output, r.h_n, r.c_n};
      },
      "LSTM::forward_with_state");
  const PackedSequence packed = pack_padded_sequence(x, std::vector<int64_t>{5, 3});
  expect_checkpointing_changes_nothing(
      *lstm, {x, h0, c0},
      [&] {
        const PackedLSTMOutput r = lstm->forward_packed(packed, h0, c0);
        return std::vector<Tensor>{r.output.data, r.h_n, r.c_n};
      },
      "LSTM::forward_packed");
}

TEST(SequenceModuleHooks, CheckpointedCellsAndAttentionGiveThePlainGradients) {
  manual_seed(6);
  const auto f64 = TensorOptions{.dtype = DType::float64};
  const Tensor x = randn({2, 3}, f64).set_requires_grad(true);
  const Tensor h = randn({2, 4}, f64).set_requires_grad(true);
  const Tensor c = randn({2, 4}, f64).set_requires_grad(true);
  auto lstm = make<LSTMCell>({.input_size = 3, .hidden_size = 4});
  auto gru = make<GRUCell>({.input_size = 3, .hidden_size = 4});
  lstm->to(DType::float64), gru->to(DType::float64);
  expect_checkpointing_changes_nothing(
      *lstm, {x, h, c},
      [&] {
        auto [hy, cy] = lstm->forward_with_state(x, h, c);
        return std::vector<Tensor>{hy, cy};
      },
      "LSTMCell::forward_with_state");
  expect_checkpointing_changes_nothing(
      *gru, {x, h}, [&] { return std::vector<Tensor>{gru->forward_with_state(x, h)}; },
      "GRUCell::forward_with_state");

  auto mha = make<MultiheadAttention>({.embed_dim = 4, .num_heads = 2, .dropout = 0.3});
  mha->to(DType::float64);
  const Tensor q = randn({3, 2, 4}, f64).set_requires_grad(true);
  const Tensor kv = randn({5, 2, 4}, f64).set_requires_grad(true);
  const Tensor mask = randn({3, 5}, f64).set_requires_grad(true);
  expect_checkpointing_changes_nothing(
      *mha, {q, kv, mask},
      [&] {
        auto [y, weights] = (*mha)(q, kv, kv, Tensor(), true, mask);
        return std::vector<Tensor>{y, weights};
      },
      "MultiheadAttention::operator()");
}

// The backward hooks see one gradient per input of the call: {input, h0} for RNN and GRU,
// {input, h0, c0} for LSTM (torch, whose LSTM takes (h0, c0) as one tuple argument, hands its
// hooks (grad_input, None) there).
TEST(SequenceModuleHooks, BackwardHooksSeeEveryStateInput) {
  manual_seed(7);
  const Tensor x = randn({5, 2, 3}).set_requires_grad(true);
  const Tensor h0 = randn({1, 2, 4}).set_requires_grad(true);
  const Tensor c0 = randn({1, 2, 4}).set_requires_grad(true);
  auto lstm = make<LSTM>({.input_size = 3, .hidden_size = 4});
  auto gru = make<GRU>({.input_size = 3, .hidden_size = 4});
  std::vector<size_t> sizes;
  auto hook = [&sizes](Module&, const std::vector<Tensor>& grad_input, const std::vector<Tensor>&) {
    sizes.push_back(grad_input.size());
    return std::vector<Tensor>{};
  };
  lstm->register_full_backward_hook(hook);
  gru->register_full_backward_hook(hook);
  backward(sum(lstm->forward_with_state(x, h0, c0).output));
  backward(sum(gru->forward_with_state(x, h0).output));
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 2}));
}

}  // namespace
}  // namespace fabric::nn
