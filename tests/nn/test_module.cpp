// Module mechanics: registration order and dotted names, deduplication of tied tensors,
// train/eval propagation, dtype moves that keep handle identity, and state_dict loading.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "nn/nn.h"
#include "tensor/factory.h"
#include "tensor/ops.h"

namespace fabric::nn {
namespace {

std::vector<std::string> names_of(const Module::NamedTensors& v) {
  std::vector<std::string> out;
  for (const auto& [n, t] : v) out.push_back(n);
  return out;
}

// A module whose own parameter is registered after its child: torch still lists own entries
// first, then the children's.
class Inner : public Module {
 public:
  Inner() {
    fc = register_module<Linear>("fc", {.in_features = 3, .out_features = 2});
    scale = register_parameter("scale", ones({2}));
    register_buffer("steps", zeros({1}, {.dtype = DType::int64}));
    register_buffer("cache", zeros({2}), /*persistent=*/false);
  }
  Tensor forward(const Tensor& x) override { return mul(fc->forward(x), scale); }
  std::string type_name() const override { return "Inner"; }
  std::shared_ptr<Linear> fc;
  Tensor scale;
};

class Outer : public Module {
 public:
  Outer() {
    first = register_module("first", std::make_shared<Inner>());
    bias = register_parameter("bias", zeros({2}));
    second = register_module("second", std::make_shared<Inner>());
    drop = register_module<Dropout>("drop", {.p = 0.5});
  }
  Tensor forward(const Tensor& x) override {
    return add(second->forward(drop->forward(x)), first->forward(x));
  }
  std::string type_name() const override { return "Outer"; }
  std::shared_ptr<Inner> first, second;
  std::shared_ptr<Dropout> drop;
  Tensor bias;
};

TEST(Module, RegistrationOrderAndDottedNames) {
  Outer m;
  EXPECT_EQ(names_of(m.named_parameters()),
            (std::vector<std::string>{"bias", "first.scale", "first.fc.weight", "first.fc.bias",
                                      "second.scale", "second.fc.weight", "second.fc.bias"}));
  EXPECT_EQ(names_of(m.named_parameters(/*recurse=*/false)), (std::vector<std::string>{"bias"}));
  EXPECT_EQ(
      names_of(m.named_buffers()),
      (std::vector<std::string>{"first.steps", "first.cache", "second.steps", "second.cache"}));
  std::vector<std::string> mods;
  for (const auto& [n, c] : m.named_modules()) mods.push_back(n + ":" + c->type_name());
  EXPECT_EQ(mods, (std::vector<std::string>{"first:Inner", "first.fc:Linear", "second:Inner",
                                            "second.fc:Linear", "drop:Dropout"}));
  ASSERT_EQ(m.named_children().size(), 3u);
  EXPECT_EQ(m.named_children()[2].first, "drop");
  EXPECT_EQ(m.num_parameters(), 2 + 2 * (2 + 6 + 2));
  EXPECT_TRUE(m.get_parameter("second.fc.weight").is_same(m.second->fc->weight));
  EXPECT_EQ(m.get_submodule("first.fc"), m.first->fc);
  for (const Tensor& p : m.parameters()) EXPECT_TRUE(p.requires_grad());
  // state_dict: parameters and persistent buffers in module order; non-persistent ones left out.
  EXPECT_EQ(m.state_dict().keys(),
            (std::vector<std::string>{"bias", "first.scale", "first.steps", "first.fc.weight",
                                      "first.fc.bias", "second.scale", "second.steps",
                                      "second.fc.weight", "second.fc.bias"}));
  const std::string printed = m.str();
  EXPECT_NE(printed.find("(fc): Linear(in_features=3, out_features=2, bias=True)"),
            std::string::npos)
      << printed;
}

TEST(Module, RegistrationErrors) {
  Outer m;
  try {
    m.first->register_parameter("fc", zeros({1}));
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("\"fc\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(m.register_parameter("a.b", zeros({1})), ValueError);
  EXPECT_THROW(m.register_parameter("", zeros({1})), ValueError);
  EXPECT_THROW(m.register_module("n", std::shared_ptr<Module>()), ValueError);
  EXPECT_THROW(m.register_parameter("idx", zeros({1}, {.dtype = DType::int64})), DTypeError);
  Tensor x = ones({2}, {.requires_grad = true});
  EXPECT_THROW(m.register_parameter("nonleaf", mul(x, x)), ValueError);
  EXPECT_THROW(m.get_parameter("first.nope"), ValueError);
  EXPECT_THROW(m.get_submodule("first.missing"), ValueError);
  EXPECT_THROW(m.forward(ones({1})), Error);
  Module plain;
  EXPECT_THROW(plain.forward(ones({1})), NotImplementedError);
}

TEST(Module, TiedParametersAppearOnceButStateDictHasBoth) {
  class Tied : public Module {
   public:
    Tied() {
      emb = register_module<Embedding>("emb", {.num_embeddings = 5, .embedding_dim = 3});
      head = register_module<Linear>("head", {.in_features = 3, .out_features = 5, .bias = false});
      head->weight = head->register_parameter("weight", emb->weight);
    }
    std::shared_ptr<Embedding> emb;
    std::shared_ptr<Linear> head;
  };
  Tied m;
  EXPECT_EQ(names_of(m.named_parameters()), (std::vector<std::string>{"emb.weight"}));
  EXPECT_EQ(m.num_parameters(), 15);
  StateDict sd = m.state_dict();
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{"emb.weight", "head.weight"}));
  EXPECT_EQ(sd.at("emb.weight").data_ptr(), sd.at("head.weight").data_ptr());
  // A shared submodule is also listed once by named_modules.
  class Shared : public Module {
   public:
    Shared() {
      auto l = std::make_shared<Linear>(LinearOptions{.in_features = 2, .out_features = 2});
      register_module("a", l);
      register_module("b", l);
    }
  };
  Shared s;
  EXPECT_EQ(s.named_modules().size(), 1u);
  EXPECT_EQ(names_of(s.named_parameters()), (std::vector<std::string>{"a.weight", "a.bias"}));
  EXPECT_EQ(s.state_dict().size(), 4u);
}

TEST(Module, TrainEvalPropagatesAndDropoutIsIdentityInEval) {
  Outer m;
  EXPECT_TRUE(m.is_training());
  EXPECT_TRUE(m.drop->is_training());
  m.eval();
  EXPECT_FALSE(m.is_training());
  EXPECT_FALSE(m.first->fc->is_training());
  EXPECT_FALSE(m.drop->is_training());
  Tensor x = ones({1000});
  EXPECT_EQ(m.drop->forward(x).to_vector<float>(), x.to_vector<float>());
  m.train();
  EXPECT_TRUE(m.second->fc->is_training());
  std::vector<float> y = m.drop->forward(x).to_vector<float>();
  int zeros_seen = 0, twos_seen = 0;
  for (float v : y) {
    zeros_seen += v == 0.0f;
    twos_seen += v == 2.0f;
  }
  EXPECT_EQ(zeros_seen + twos_seen, 1000);
  EXPECT_GT(zeros_seen, 400);
  EXPECT_GT(twos_seen, 400);
  // apply visits children before parents.
  std::vector<std::string> order;
  m.apply([&](Module& mod) { order.push_back(mod.type_name()); });
  EXPECT_EQ(order,
            (std::vector<std::string>{"Linear", "Inner", "Linear", "Inner", "Dropout", "Outer"}));
}

TEST(Module, ToDTypeKeepsIdentityOfHandles) {
  Outer m;
  std::vector<Tensor> held = m.parameters();  // what an optimizer holds
  Tensor w = m.first->fc->weight;
  const std::vector<float> before = w.to_vector<float>();
  set_grad(w, full_like(w, 0.5));
  m.to(DType::bfloat16);
  for (const Tensor& p : held) {
    EXPECT_EQ(p.dtype(), DType::bfloat16);
    EXPECT_TRUE(p.requires_grad());
  }
  EXPECT_TRUE(held[2].is_same(m.first->fc->weight));
  EXPECT_EQ(m.first->fc->weight.dtype(), DType::bfloat16);
  EXPECT_EQ(w.grad().dtype(), DType::bfloat16);
  // Integer buffers are left alone; floating ones follow.
  for (const auto& [n, b] : m.named_buffers()) {
    EXPECT_EQ(b.dtype(), n.ends_with("steps") ? DType::int64 : DType::bfloat16) << n;
  }
  std::vector<float> after = w.to_vector<float>();
  for (size_t i = 0; i < before.size(); ++i)
    EXPECT_NEAR(after[i], before[i], std::abs(before[i]) * 1e-2 + 1e-6);
  Tensor y = m.first->forward(ones({4, 3}, {.dtype = DType::bfloat16}));
  EXPECT_EQ(y.dtype(), DType::bfloat16);
  EXPECT_EQ(y.sizes(), (Shape{4, 2}));
  m.to(DType::float32);
  EXPECT_EQ(held[0].dtype(), DType::float32);
  EXPECT_THROW(m.to(DType::int32), DTypeError);
  m.to(Device::cpu());
  EXPECT_TRUE(held[2].is_same(m.first->fc->weight));
}

TEST(Module, ZeroGradAndRequiresGrad) {
  Outer m;
  for (const Tensor& p : m.parameters()) set_grad(p, ones_like(p));
  m.zero_grad(/*set_to_none=*/false);
  for (const Tensor& p : m.parameters()) {
    ASSERT_TRUE(p.grad().defined());
    for (float v : p.grad().to_vector<float>()) EXPECT_EQ(v, 0.0f);
  }
  m.zero_grad();
  for (const Tensor& p : m.parameters()) EXPECT_FALSE(p.grad().defined());
  m.requires_grad_(false);
  for (const Tensor& p : m.parameters()) EXPECT_FALSE(p.requires_grad());
}

TEST(Module, StateDictRoundTrip) {
  MLP a({.sizes = {4, 6, 3}});
  MLP b({.sizes = {4, 6, 3}});
  Tensor x = randn({5, 4});
  NoGradGuard no_grad;
  ASSERT_NE(a.forward(x).to_vector<float>(), b.forward(x).to_vector<float>());
  Tensor held = b.layers->at<Linear>(0)->weight;
  LoadResult r = b.load_state_dict(a.state_dict());
  EXPECT_TRUE(r.missing_keys.empty());
  EXPECT_TRUE(r.unexpected_keys.empty());
  EXPECT_EQ(a.forward(x).to_vector<float>(), b.forward(x).to_vector<float>());
  EXPECT_TRUE(held.is_same(b.layers->at<Linear>(0)->weight));  // loaded in place
  // The state_dict aliases the module (like torch): later updates show through.
  StateDict sd = a.state_dict();
  a.layers->at<Linear>(1)->bias.fill_(7.0);
  EXPECT_EQ(sd.at("layers.1.bias").to_vector<float>(), std::vector<float>(3, 7.0f));
  // dtype is converted on load.
  StateDict d64;
  for (const auto& [k, t] : a.state_dict()) d64.insert(k, t.to(DType::float64));
  b.load_state_dict(d64);
  EXPECT_EQ(b.layers->at<Linear>(1)->bias.dtype(), DType::float32);
  EXPECT_EQ(b.layers->at<Linear>(1)->bias.to_vector<float>(), std::vector<float>(3, 7.0f));
}

TEST(Module, LoadStateDictListsEveryProblem) {
  MLP m({.sizes = {4, 6, 3}});
  StateDict sd = m.state_dict();
  const std::vector<float> keep = m.layers->at<Linear>(0)->weight.to_vector<float>();
  StateDict bad;
  bad.insert("layers.0.weight", zeros({6, 4}));
  bad.insert("layers.0.bias", zeros({5}));       // wrong shape
  bad.insert("layers.1.weight", zeros({2, 6}));  // wrong shape
  bad.insert("layers.2.weight", zeros({1}));     // unexpected
  bad.insert("head.bias", zeros({1}));           // unexpected
  // missing: layers.1.bias
  try {
    m.load_state_dict(bad);
    FAIL() << "expected a ValueError";
  } catch (const ValueError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("MLP"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Missing key(s)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"layers.1.bias\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("Unexpected key(s)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"layers.2.weight\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("\"head.bias\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("layers.0.bias: expected shape (6,) (in the model), got (5,)"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("layers.1.weight: expected shape (3, 6) (in the model), got (2, 6)"),
              std::string::npos)
        << msg;
    EXPECT_EQ(msg.find("layers.0.weight"), std::string::npos) << msg;
  }
  // Nothing was copied by the failed load.
  EXPECT_EQ(m.layers->at<Linear>(0)->weight.to_vector<float>(), keep);

  // Non-strict: missing/unexpected keys are reported, the rest is loaded.
  StateDict partial;
  partial.insert("layers.0.weight", full({6, 4}, 1.5));
  partial.insert("extra", zeros({1}));
  LoadResult r = m.load_state_dict(partial, /*strict=*/false);
  EXPECT_EQ(r.missing_keys,
            (std::vector<std::string>{"layers.0.bias", "layers.1.weight", "layers.1.bias"}));
  EXPECT_EQ(r.unexpected_keys, (std::vector<std::string>{"extra"}));
  EXPECT_EQ(m.layers->at<Linear>(0)->weight.to_vector<float>(), std::vector<float>(24, 1.5f));
  // A shape mismatch raises even when not strict (as torch).
  StateDict wrong;
  wrong.insert("layers.0.weight", zeros({4, 6}));
  EXPECT_THROW(m.load_state_dict(wrong, false), ValueError);
}

// A 0-dim parameter and buffer, and a (1,) one, for torch's rule on checkpoints from before
// 0-dim tensors.
class Scalars : public Module {
 public:
  Scalars() {
    scale = register_parameter("scale", full({}, 1.0));
    register_buffer("step", full({}, 2.0));
    register_parameter("vec", full({1}, 3.0));
  }
  Tensor scale;
};

// torch 1.13's Module._load_from_state_dict loads a 1-dim tensor into a 0-dim one; here only one
// of a single element (torch would take element 0 of any length and drop the rest).
TEST(Module, OneElementTensorsLoadIntoZeroDimParametersAndBuffers) {
  struct Row {
    const char* what;
    Tensor scale, step, vec;
    std::string mismatch;  // empty: loads
  };
  const std::vector<Row> rows = {
      {"(1,) into 0-dim", full({1}, 5.0), full({1}, 6.0), full({1}, 7.0), ""},
      {"(1,) float64 into 0-dim float32", full({1}, 5.0, {.dtype = DType::float64}), full({1}, 6.0),
       full({1}, 7.0), ""},
      {"0-dim as it is", full({}, 5.0), full({}, 6.0), full({1}, 7.0), ""},
      {"(3,)", full({3}, 5.0), full({1}, 6.0), full({1}, 7.0),
       "scale: expected shape () (in the model), got (3,)"},
      {"(0,)", zeros({0}), full({1}, 6.0), full({1}, 7.0),
       "scale: expected shape () (in the model), got (0,)"},
      {"(1, 1)", full({1, 1}, 5.0), full({1}, 6.0), full({1}, 7.0),
       "scale: expected shape () (in the model), got (1, 1)"},
      {"0-dim into (1,): no rule", full({1}, 5.0), full({1}, 6.0), full({}, 7.0),
       "vec: expected shape (1,) (in the model), got ()"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.what);
    Scalars m;
    StateDict sd;
    sd.insert("scale", r.scale);
    sd.insert("step", r.step);
    sd.insert("vec", r.vec);
    if (!r.mismatch.empty()) {
      try {
        m.load_state_dict(sd);
        ADD_FAILURE() << "expected a size mismatch";
      } catch (const ValueError& e) {
        EXPECT_NE(std::string(e.what()).find(r.mismatch), std::string::npos) << e.what();
      }
      EXPECT_EQ(m.scale.item<float>(), 1.0f);  // nothing loaded
      continue;
    }
    m.load_state_dict(sd);
    EXPECT_EQ(m.scale.dim(), 0);
    EXPECT_EQ(m.scale.dtype(), DType::float32);
    EXPECT_EQ(m.scale.item<float>(), 5.0f);
    EXPECT_EQ(m.named_buffers()[0].second.dim(), 0);
    EXPECT_EQ(m.named_buffers()[0].second.item<float>(), 6.0f);
    EXPECT_EQ(m.state_dict().at("vec").item<float>(), 7.0f);
  }
}

TEST(Module, StateDictContainer) {
  StateDict sd;
  sd.insert("a", zeros({1}));
  sd.insert("b", ones({2}));
  sd.insert("a", ones({3}));  // replaces, keeps position
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(sd.at("a").numel(), 3);
  EXPECT_TRUE(sd.erase("a"));
  EXPECT_FALSE(sd.contains("a"));
  EXPECT_EQ(sd.at("b").numel(), 2);
  EXPECT_THROW(sd.at("zzz"), ValueError);
}

TEST(Containers, SequentialModuleListModuleDict) {
  auto seq = make<Sequential>({make<Linear>({.in_features = 3, .out_features = 4}), make<ReLU>(),
                               make<Linear>({.in_features = 4, .out_features = 2})});
  EXPECT_EQ(names_of(seq->named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  Tensor x = randn({5, 3});
  Tensor expect = seq->at<Linear>(2)->forward(relu(seq->at<Linear>(0)->forward(x)));
  EXPECT_EQ((*seq)(x).to_vector<float>(), expect.to_vector<float>());
  EXPECT_EQ((*seq)[-1], (*seq)[2]);
  EXPECT_THROW((*seq)[3], IndexError);
  EXPECT_THROW(seq->at<Linear>(1), ValueError);
  ModuleList list;
  list.push_back(make<Tanh>());
  list.push_back(make<GELU>({.approximate = "tanh"}));
  int n = 0;
  for (const auto& m : list) n += m != nullptr;
  EXPECT_EQ(n, 2);
  EXPECT_THROW(list.forward(x), NotImplementedError);
  ModuleDict dict(
      {{"enc", make<Linear>({.in_features = 2, .out_features = 2})}, {"act", make<SiLU>()}});
  EXPECT_TRUE(dict.contains("enc"));
  EXPECT_EQ(dict["act"]->type_name(), "SiLU");
  EXPECT_THROW(dict["dec"], ValueError);
  EXPECT_EQ(names_of(dict.named_parameters()),
            (std::vector<std::string>{"enc.weight", "enc.bias"}));
  EXPECT_THROW(make<GELU>({.approximate = "fast"}), ValueError);
  EXPECT_THROW(make<Dropout>({.p = 1.5}), ValueError);
  EXPECT_THROW(make_activation("swish"), ValueError);
}

}  // namespace
}  // namespace fabric::nn
