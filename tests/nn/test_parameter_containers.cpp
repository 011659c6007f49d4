// ParameterList and ParameterDict as torch 1.13's: entries registered as parameters named "0",
// "1", ... or by key (state_dict "plist.0", "pdict.weight"), parameters() in the container's
// order, torch's Parameter(t) rules (requires_grad, non-leaf detached, None entries), index and key
// errors with torch's messages, and torch's reprs (expected strings printed by torch 1.13).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "nn/parameter_containers.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric::nn {
namespace {

std::vector<std::string> names(const Module::NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [n, t] : named) out.push_back(n);
  return out;
}

using Keys = std::vector<std::string>;

// torch's `class M(nn.Module)` holding the two containers as children.
struct Holder : Module {
  std::string type_name() const override { return "M"; }
};

TEST(ParameterList, RegistersEntriesByIndex) {
  const Tensor a = zeros({2, 3}), b = zeros({3});
  auto plist = make<ParameterList>({a, b});
  ASSERT_EQ(plist->size(), 2u);
  // torch's Parameter(t) of a plain tensor: a new leaf over its storage that requires grad.
  EXPECT_EQ((*plist)[0].data_ptr(), a.data_ptr());
  EXPECT_EQ((*plist)[-1].data_ptr(), b.data_ptr());
  EXPECT_TRUE((*plist)[0].requires_grad());
  EXPECT_FALSE(a.requires_grad());
  EXPECT_EQ(names(plist->named_parameters()), (Keys{"0", "1"}));
  plist->append(ones({4})).extend({ones({1}), ones({5})});
  EXPECT_EQ(plist->size(), 5u);
  EXPECT_EQ(plist->state_dict().keys(), (Keys{"0", "1", "2", "3", "4"}));
  std::vector<int64_t> numels;
  for (const Tensor& t : *plist) numels.push_back(t.numel());
  EXPECT_EQ(numels, (std::vector<int64_t>{6, 3, 4, 1, 5}));
  const std::vector<Tensor> params = plist->parameters();
  ASSERT_EQ(params.size(), 5u);
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(params[i].is_same((*plist)[i]));
}

TEST(ParameterList, IndexErrorsAndSet) {
  auto plist = make<ParameterList>({zeros({2}), zeros({3})});
  // torch: IndexError "index 5 is out of range" / "index -3 is out of range".
  EXPECT_EQ(thrown<IndexError>([&] { (*plist)[5]; }), "index 5 is out of range");
  EXPECT_EQ(thrown<IndexError>([&] { (*plist)[-3]; }), "index -3 is out of range");
  EXPECT_EQ(thrown<IndexError>([&] { plist->set(2, ones({4})); }), "index 2 is out of range");
  // torch's plist[0] = t: replaced in place.
  const Tensor c = ones({4});
  plist->set(0, c);
  plist->set(-1, ones({1}));
  EXPECT_EQ((*plist)[0].data_ptr(), c.data_ptr());
  EXPECT_EQ(names(plist->named_parameters()), (Keys{"0", "1"}));
  EXPECT_EQ(plist->get_parameter("0").numel(), 4);
  EXPECT_EQ(plist->get_parameter("1").numel(), 1);
  EXPECT_EQ(plist->str(),
            "ParameterList(\n    (0): Parameter containing: [torch.float32 of size 4]\n"
            "    (1): Parameter containing: [torch.float32 of size 1]\n)");
}

TEST(ParameterList, TorchParameterRules) {
  // A frozen entry stays frozen; an integer one must be.
  auto plist = make<ParameterList>();
  plist->append(zeros({2}), /*requires_grad=*/false);
  EXPECT_FALSE((*plist)[0].requires_grad());
  EXPECT_THROW(plist->append(zeros({2}, {.dtype = DType::int64})), DTypeError);
  EXPECT_EQ(plist->size(), 1u);  // the refused entry is not listed
  plist->append(zeros({2}, {.dtype = DType::int64}), false);
  // A non-leaf becomes a leaf over the same storage, as torch's Parameter(x * 2).
  Tensor x = ones({2});
  x.set_requires_grad(true);
  const Tensor y = mul(x, 2.0);
  plist->append(y);
  EXPECT_TRUE(is_leaf((*plist)[2]));
  EXPECT_TRUE((*plist)[2].requires_grad());
  EXPECT_EQ((*plist)[2].data_ptr(), y.data_ptr());
  // An undefined tensor is torch's None: listed, not a parameter.
  plist->append(Tensor());
  EXPECT_EQ(plist->size(), 4u);
  EXPECT_FALSE((*plist)[3].defined());
  EXPECT_EQ(names(plist->named_parameters()), (Keys{"0", "1", "2"}));
  EXPECT_EQ(thrown<NotImplementedError>([&] { (*plist)(zeros({1})); }),
            "ParameterList should not be called.");
}

TEST(ParameterList, PlainTensorsStayTheCallersOwn) {
  // torch: t = torch.zeros(3); pl = ParameterList([t]) leaves t.requires_grad False, t.add_(1)
  // works and pl[0] shows it (one storage).
  Tensor t = zeros({3});
  auto plist = make<ParameterList>(std::vector<Tensor>{t});
  EXPECT_FALSE(t.requires_grad());
  EXPECT_TRUE((*plist)[0].requires_grad());
  t.add_(1.0);
  EXPECT_EQ((*plist)[0].detach().to_vector<float>(), (std::vector<float>{1, 1, 1}));
  auto pdict = make<ParameterDict>();
  pdict->insert("w", t);
  EXPECT_FALSE(t.requires_grad());
  EXPECT_EQ((*pdict)["w"].data_ptr(), t.data_ptr());
  // A parameter (a leaf that requires grad) is registered itself, shared as torch's Parameter.
  const Tensor& w = (*plist)[0];
  auto other = make<ParameterList>(std::vector<Tensor>{w});
  EXPECT_TRUE((*other)[0].is_same(w));
}

TEST(ParameterList, ReprAsTorch) {
  EXPECT_EQ(make<ParameterList>()->str(), "ParameterList()");
  EXPECT_EQ(make<ParameterList>({zeros({2, 3})})->str(),
            "ParameterList(  (0): Parameter containing: [torch.float32 of size 2x3])");
  EXPECT_EQ(make<ParameterList>({zeros({})})->str(),
            "ParameterList(  (0): Parameter containing: [torch.float32 of size ])");
  EXPECT_EQ(make<ParameterList>({zeros({2}, {.dtype = DType::bfloat16})})->str(),
            "ParameterList(  (0): Parameter containing: [torch.bfloat16 of size 2])");
  // torch: nn.ParameterList([torch.zeros(2), None, torch.zeros(1, 3, dtype=torch.float64)])
  EXPECT_EQ(
      make<ParameterList>({zeros({2}), Tensor(), zeros({1, 3}, {.dtype = DType::float64})})->str(),
      "ParameterList(\n"
      "    (0): Parameter containing: [torch.float32 of size 2]\n"
      "    (1): Object of type: NoneType\n"
      "    (2): Parameter containing: [torch.float64 of size 1x3]\n"
      ")");
}

TEST(ParameterDict, InsertLookupAndOrder) {
  auto pdict = make<ParameterDict>({{"weight", zeros({2, 3})}, {"bias", zeros({3})}});
  EXPECT_EQ(pdict->keys(), (Keys{"weight", "bias"}));
  EXPECT_TRUE(pdict->contains("bias"));
  EXPECT_FALSE(pdict->contains("nope"));
  EXPECT_EQ(pdict->at("weight").numel(), 6);
  EXPECT_TRUE(pdict->at("weight").requires_grad());
  EXPECT_EQ(names(pdict->named_parameters()), (Keys{"weight", "bias"}));
  // An existing key is replaced in place; a new one goes last. w requires grad, as a torch
  // Parameter: registered itself.
  Tensor w = ones({4});
  w.set_requires_grad(true);
  pdict->insert("weight", w);
  pdict->insert("scale", ones({1}));
  EXPECT_TRUE((*pdict)["weight"].is_same(w));
  EXPECT_EQ(pdict->keys(), (Keys{"weight", "bias", "scale"}));
  EXPECT_EQ(pdict->state_dict().keys(), (Keys{"weight", "bias", "scale"}));
  Keys iterated;
  for (const std::string& k : *pdict) iterated.push_back(k);
  EXPECT_EQ(iterated, pdict->keys());
  const auto items = pdict->items();
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[2].first, "scale");
  EXPECT_TRUE(pdict->values()[0].is_same(w));
  EXPECT_FALSE(pdict->get("nope").defined());
  EXPECT_TRUE(pdict->get("nope", w).is_same(w));
  EXPECT_TRUE(pdict->setdefault("weight", ones({9})).is_same(w));
  EXPECT_EQ(pdict->setdefault("extra", ones({9})).numel(), 9);
  EXPECT_EQ(pdict->size(), 4u);
}

TEST(ParameterDict, EraseAndPop) {
  auto pdict = make<ParameterDict>({{"a", zeros({1})}, {"b", zeros({2})}, {"c", zeros({3})}});
  pdict->erase("a");
  EXPECT_EQ(pdict->keys(), (Keys{"b", "c"}));
  EXPECT_EQ(names(pdict->named_parameters()), (Keys{"b", "c"}));
  EXPECT_EQ(pdict->state_dict().keys(), (Keys{"b", "c"}));
  EXPECT_EQ(pdict->parameters().size(), 2u);
  pdict->insert("a", zeros({4}));
  EXPECT_EQ(pdict->keys(), (Keys{"b", "c", "a"}));  // torch's order
  EXPECT_EQ(pdict->at("a").numel(), 4);
  // torch: del pdict['nope'] -> KeyError('nope'); pdict['nope'] and pop -> AttributeError.
  EXPECT_EQ(thrown<KeyError>([&] { pdict->erase("nope"); }), "'nope'");
  EXPECT_EQ(thrown<KeyError>([&] { (*pdict)["nope"]; }),
            "'ParameterDict' object has no attribute 'nope'");
  EXPECT_EQ(thrown<KeyError>([&] { pdict->pop("nope"); }),
            "'ParameterDict' object has no attribute 'nope'");
  EXPECT_EQ(pdict->pop("b").numel(), 2);
  const auto [key, t] = pdict->popitem();  // the last inserted
  EXPECT_EQ(key, "a");
  EXPECT_EQ(t.numel(), 4);
  EXPECT_EQ(pdict->keys(), (Keys{"c"}));
  pdict->clear();
  EXPECT_TRUE(pdict->empty());
  EXPECT_TRUE(pdict->parameters().empty());
  EXPECT_TRUE(pdict->state_dict().empty());
  EXPECT_EQ(thrown<KeyError>([&] { pdict->popitem(); }), "'popitem(): dictionary is empty'");
}

TEST(ParameterDict, UpdateAndKeyChecks) {
  auto pdict = make<ParameterDict>();
  pdict->update({{"z", zeros({1})}, {"y", zeros({2})}});
  auto other = make<ParameterDict>({{"y", ones({3})}, {"x", ones({4})}});
  other->at("x").set_requires_grad(false);
  pdict->update(*other);
  EXPECT_EQ(pdict->keys(), (Keys{"z", "y", "x"}));
  EXPECT_TRUE(pdict->at("y").is_same(other->at("y")));  // shared, as torch's Parameters
  EXPECT_FALSE(pdict->at("x").requires_grad());         // kept as it was
  // torch: KeyError 'parameter name can\'t contain "."' / 'parameter name can\'t be empty
  // string ""'.
  EXPECT_CONTAINS(thrown<KeyError>([&] { pdict->insert("a.b", zeros({1})); }),
                  "parameter name \"a.b\" can't contain \".\"");
  EXPECT_CONTAINS(thrown<KeyError>([&] { pdict->insert("", zeros({1})); }),
                  "parameter name can't be empty string \"\"");
  EXPECT_THROW(pdict->insert("i", zeros({1}, {.dtype = DType::int64})), DTypeError);
  EXPECT_FALSE(pdict->contains("i"));
  EXPECT_EQ(thrown<NotImplementedError>([&] { (*pdict)(zeros({1})); }),
            "ParameterDict should not be called.");
}

TEST(ParameterDict, ReprAsTorch) {
  EXPECT_EQ(make<ParameterDict>()->str(), "ParameterDict()");
  // torch: nn.ParameterDict({'h': bfloat16 (2), 'f16': float16 (2), 's': float32 0-dim}), whose
  // plain dict it sorts.
  EXPECT_EQ(make<ParameterDict>({{"f16", zeros({2}, {.dtype = DType::float16})},
                                 {"h", zeros({2}, {.dtype = DType::bfloat16})},
                                 {"s", zeros({})}})
                ->str(),
            "ParameterDict(\n"
            "    (f16): Parameter containing: [torch.HalfTensor of size 2]\n"
            "    (h): Parameter containing: [torch.BFloat16Tensor of size 2]\n"
            "    (s): Parameter containing: [torch.FloatTensor of size ]\n"
            ")");
  // torch: OrderedDict([('w', torch.zeros(2)), ('n', None), ('a', torch.zeros(()))])
  auto with_none = make<ParameterDict>({{"w", zeros({2})}, {"n", Tensor()}, {"a", zeros({})}});
  EXPECT_EQ(with_none->str(),
            "ParameterDict(\n"
            "    (w): Parameter containing: [torch.FloatTensor of size 2]\n"
            "    (n): Object of type: NoneType\n"
            "    (a): Parameter containing: [torch.FloatTensor of size ]\n"
            ")");
  EXPECT_EQ(names(with_none->named_parameters()), (Keys{"w", "a"}));
  EXPECT_EQ(with_none->keys(), (Keys{"w", "n", "a"}));
  EXPECT_EQ(make<ParameterDict>({{"w", zeros({1}, {.dtype = DType::float64})}})->str(),
            "ParameterDict(  (w): Parameter containing: [torch.DoubleTensor of size 1])");
}

TEST(ParameterContainers, AsChildrenOfAModel) {
  Holder m;
  auto plist = m.register_module("plist", make<ParameterList>({zeros({2, 3}), zeros({3})}));
  // torch sorts the plain dict {'weight': ..., 'b': ...}: "b" first.
  auto pdict =
      m.register_module("pdict", make<ParameterDict>({{"b", zeros({3}, {.dtype = DType::float64})},
                                                      {"weight", zeros({2, 3})}}));
  const Keys want{"plist.0", "plist.1", "pdict.b", "pdict.weight"};
  EXPECT_EQ(m.state_dict().keys(), want);
  EXPECT_EQ(names(m.named_parameters()), want);
  EXPECT_EQ(m.str(),
            "M(\n"
            "  (plist): ParameterList(\n"
            "      (0): Parameter containing: [torch.float32 of size 2x3]\n"
            "      (1): Parameter containing: [torch.float32 of size 3]\n"
            "  )\n"
            "  (pdict): ParameterDict(\n"
            "      (b): Parameter containing: [torch.DoubleTensor of size 3]\n"
            "      (weight): Parameter containing: [torch.FloatTensor of size 2x3]\n"
            "  )\n"
            ")");
  // The entries are the model's: moves and loads reach them through the containers' handles.
  m.to(DType::float64);
  EXPECT_EQ((*plist)[0].dtype(), DType::float64);
  EXPECT_EQ(pdict->at("weight").dtype(), DType::float64);
  StateDict state = m.state_dict();
  StateDict loaded;
  for (const auto& [k, t] : state) loaded.insert(k, add(t, 1.0));
  m.load_state_dict(loaded);
  EXPECT_EQ((*plist)[1].to_vector<double>(), (std::vector<double>{1.0, 1.0, 1.0}));
  EXPECT_EQ(pdict->at("b").to_vector<double>(), (std::vector<double>{1.0, 1.0, 1.0}));
}

}  // namespace
}  // namespace fabric::nn
