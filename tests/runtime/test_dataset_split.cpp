// Subset, random_split and ConcatDataset against torch.utils.data of PyTorch 1.13: the split
// lengths and permutations, the warnings and errors, indexing (negative indices included) and
// DataLoader batches over them.
#include <gtest/gtest.h>

#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "runtime/concat_dataset.h"
#include "runtime/data_loader.h"
#include "runtime/dataset_split.h"
#include "runtime_test_util.h"
#include "tensor/factory.h"
#include "tensor/warning.h"

namespace fabric::data {
namespace {

using testing_util::error_of;
using Lists = std::vector<std::vector<int64_t>>;

// Examples base, base+1, ..., base+n-1: input i is [base + i], target -(base + i), so a batch
// shows which examples it holds (as torch's range(base, base + n) does).
std::shared_ptr<const Dataset> counting(int64_t n, int64_t base = 0) {
  std::vector<int64_t> x(static_cast<size_t>(n)), y;
  std::iota(x.begin(), x.end(), base);
  for (int64_t v : x) y.push_back(-v);
  return std::make_shared<TensorDataset>(from_vector<int64_t>(x, {n, 1}),
                                         from_vector<int64_t>(y, {n}));
}

std::vector<int64_t> values(const Batch& b) {
  std::vector<int64_t> x = b.inputs.to_vector<int64_t>(), y = b.targets.to_vector<int64_t>();
  EXPECT_EQ(b.inputs.sizes(), (Shape{static_cast<int64_t>(x.size()), 1}));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], -x[i]) << "row " << i;
  return x;
}

// Every example of `d`, in order.
std::vector<int64_t> all_of(const Dataset& d) {
  std::vector<int64_t> idx(static_cast<size_t>(d.size()));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  return values(d.get(idx));
}

Lists indices_of(const std::vector<Subset>& parts) {
  Lists out;
  for (const Subset& s : parts) out.push_back(s.indices());
  return out;
}

// Collects the warnings raised while it lives.
struct WarningCapture {
  std::vector<std::string> messages;
  WarningCapture() {
    set_warning_handler([this](const Warning& w) { messages.push_back(w.message); });
  }
  ~WarningCapture() { set_warning_handler({}); }
};

// ---- random_split
// --------------------------------------------------------------------------------

// [[list(s) for s in random_split(range(n), lengths,
// generator=torch.Generator().manual_seed(seed))] in torch 1.13:
//   (10, [0.3, 0.3, 0.4], 5)  -> [[1, 4, 9], [6, 3, 5], [0, 2, 8, 7]]
//   (30, [0.3, 0.3, 0.4], 42) -> [[12, 0, 6, 25, 8, 15, 10, 18, 16],
//                                 [23, 28, 26, 20, 7, 21, 22, 29, 13],
//                                 [14, 2, 4, 1, 9, 11, 17, 19, 27, 5, 24, 3]]
//   (7, [0.5, 0.5], 0)        -> [[4, 0, 5, 3], [2, 6, 1]]          (remainder to split 0)
//   (4, [1/3, 1/3, 1/3], 123) -> [[2, 0], [1], [3]]
//   (11, [0.1] * 10, 2)       -> [[3, 8], [10], [0], [1], [4], [5], [2], [7], [6], [9]]
//                                (the fractions sum to 0.9999999999999999: still fractions)
TEST(RandomSplit, FractionsAsTorch) {
  struct Case {
    int64_t n;
    std::vector<double> fractions;
    uint64_t seed;
    Lists want;
  };
  const std::vector<Case> cases = {
      {10, {0.3, 0.3, 0.4}, 5, {{1, 4, 9}, {6, 3, 5}, {0, 2, 8, 7}}},
      {30,
       {0.3, 0.3, 0.4},
       42,
       {{12, 0, 6, 25, 8, 15, 10, 18, 16},
        {23, 28, 26, 20, 7, 21, 22, 29, 13},
        {14, 2, 4, 1, 9, 11, 17, 19, 27, 5, 24, 3}}},
      {7, {0.5, 0.5}, 0, {{4, 0, 5, 3}, {2, 6, 1}}},
      {4, {1.0 / 3, 1.0 / 3, 1.0 / 3}, 123, {{2, 0}, {1}, {3}}},
      {11, std::vector<double>(10, 0.1), 2, {{3, 8}, {10}, {0}, {1}, {4}, {5}, {2}, {7}, {6}, {9}}},
  };
  for (const Case& c : cases) {
    WarningCapture warnings;
    const auto data = counting(c.n, 100);
    const std::vector<Subset> parts = random_split(data, c.fractions, c.seed);
    EXPECT_EQ(indices_of(parts), c.want) << "n=" << c.n << " seed=" << c.seed;
    EXPECT_TRUE(warnings.messages.empty());
    for (size_t i = 0; i < parts.size(); ++i) {
      EXPECT_EQ(parts[i].dataset_ptr(), data);  // shared, not copied
      std::vector<int64_t> want;
      for (int64_t j : c.want[i]) want.push_back(100 + j);
      EXPECT_EQ(all_of(parts[i]), want) << "n=" << c.n << " split " << i;
    }
  }
}

// (1048579, [0.5, 0.5], 7): [s[:5] for s in splits] and their lengths
//   -> [[584967, 187775, 570785, 535033, 761162], 524290], [[109282, 259226, 922322, 932794,
//   580286], 524289]
TEST(RandomSplit, LargeDatasetAsTorch) {
  const std::vector<Subset> parts = random_split(counting(1048579), {0.5, 0.5}, 7);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].size(), 524290);
  EXPECT_EQ(parts[1].size(), 524289);
  auto head = [](const Subset& s) {
    return std::vector<int64_t>(s.indices().begin(), s.indices().begin() + 5);
  };
  EXPECT_EQ(head(parts[0]), (std::vector<int64_t>{584967, 187775, 570785, 535033, 761162}));
  EXPECT_EQ(head(parts[1]), (std::vector<int64_t>{109282, 259226, 922322, 932794, 580286}));
}

// (10, [3, 7], 42) -> [[2, 6, 1], [8, 4, 5, 0, 9, 3, 7]]
// (10, [0, 10], 3) -> [[], [6, 0, 3, 7, 8, 5, 1, 9, 2, 4]]   (counts: no warning)
TEST(RandomSplit, CountsAsTorch) {
  WarningCapture warnings;
  const auto data = counting(10);
  const Lists want = {{2, 6, 1}, {8, 4, 5, 0, 9, 3, 7}};
  EXPECT_EQ(indices_of(random_split(data, {3, 7}, 42)), want);
  const std::vector<int64_t> counts = {3, 7};
  EXPECT_EQ(indices_of(random_split(data, counts, 42)), want);
  EXPECT_EQ(indices_of(random_split(data, {0, 10}, 3)),
            (Lists{{}, {6, 0, 3, 7, 8, 5, 1, 9, 2, 4}}));
  EXPECT_TRUE(warnings.messages.empty());
}

// Fractions leaving a split empty warn, as torch's UserWarning:
//   (5, [0.1, 0.1, 0.8], 3)      -> [[1], [], [0, 3, 4, 2]]          warns for index 1
//   (3, [0.25] * 4, 1)           -> [[1], [2], [0], []]              warns for index 3
//   (10, [1, 0], 3)              -> [[6, 0, 3, 7, 8, 5, 1, 9, 2, 4], []]  (counts summing to 1
//                                    are fractions too) warns for index 1
//   (10, [0.999999999, 0], 0)    -> [[4, 1, 7, 5, 3, 9, 0, 8, 6, 2], []]  (isclose to 1)
TEST(RandomSplit, EmptySplitsWarnAsTorch) {
  const std::string warning1 =
      "Length of split at index 1 is 0. This might result in an empty dataset.";
  {
    WarningCapture warnings;
    EXPECT_EQ(indices_of(random_split(counting(5), {0.1, 0.1, 0.8}, 3)),
              (Lists{{1}, {}, {0, 3, 4, 2}}));
    EXPECT_EQ(warnings.messages, std::vector<std::string>{warning1});
  }
  {
    WarningCapture warnings;
    EXPECT_EQ(indices_of(random_split(counting(3), {0.25, 0.25, 0.25, 0.25}, 1)),
              (Lists{{1}, {2}, {0}, {}}));
    EXPECT_EQ(warnings.messages,
              std::vector<std::string>{
                  "Length of split at index 3 is 0. This might result in an empty dataset."});
  }
  {
    WarningCapture warnings;
    const std::vector<int64_t> counts = {1, 0};
    EXPECT_EQ(indices_of(random_split(counting(10), counts, 3)),
              (Lists{{6, 0, 3, 7, 8, 5, 1, 9, 2, 4}, {}}));
    EXPECT_EQ(warnings.messages, std::vector<std::string>{warning1});
  }
  {
    WarningCapture warnings;
    EXPECT_EQ(indices_of(random_split(counting(10), {0.999999999, 0}, 0)),
              (Lists{{4, 1, 7, 5, 3, 9, 0, 8, 6, 2}, {}}));
    EXPECT_EQ(warnings.messages, std::vector<std::string>{warning1});
  }
}

// torch 1.13's errors: (10, [4, 4]), (10, [0.5, 0.6]), (10, [2.5, 7.6]) and (10, [0.9999999989,
// 0]) (not isclose to 1) -> ValueError: Sum of input lengths does not equal the length of the
// input dataset!; (10, [-0.5, 1.5]) and (10, [1.5, -0.5]) -> ValueError: Fraction at index 0 is
// not between 0 and 1. Where torch goes on and fails later ((10, [2.5, 7.5]): TypeError from
// randperm) or slices oddly ((10, [-1, 11]): splits of 9 and 1), fabric raises a ValueError.
TEST(RandomSplit, ErrorsAsTorch) {
  const auto data = counting(10);
  const std::string sum = "Sum of input lengths does not equal the length of the input dataset!";
  EXPECT_EQ(error_of<ValueError>([&] { random_split(data, {4, 4}, 0); }), sum);
  EXPECT_EQ(error_of<ValueError>([&] { random_split(data, {0.5, 0.6}, 0); }), sum);
  EXPECT_EQ(error_of<ValueError>([&] { random_split(data, {2.5, 7.6}, 0); }), sum);
  EXPECT_EQ(error_of<ValueError>([&] { random_split(data, {0.9999999989, 0}, 0); }), sum);
  const std::vector<int64_t> four_four = {4, 4};
  EXPECT_EQ(error_of<ValueError>([&] { random_split(data, four_four, 0); }), sum);
  const std::string frac = "Fraction at index 0 is not between 0 and 1";
  EXPECT_EQ(error_of<ValueError>([&] { random_split(data, {-0.5, 1.5}, 0); }), frac);
  EXPECT_EQ(error_of<ValueError>([&] { random_split(data, {1.5, -0.5}, 0); }), frac);
  EXPECT_EQ(error_of<ValueError>([&] {
              random_split(data, {2.5, 7.5}, 0);
            }),
            "random_split: length at index 0 is 2.5; expected a whole number >= 0 (a count) or "
            "fractions summing to 1");
  const std::vector<int64_t> negative = {-1, 11};
  EXPECT_EQ(error_of<ValueError>([&] { random_split(data, negative, 0); }),
            "random_split: length at index 0 is -1; expected a whole number >= 0 (a count) or "
            "fractions summing to 1");
  EXPECT_EQ(error_of<ValueError>([&] { random_split(nullptr, {1.0}, 0); }),
            "random_split: the dataset is null");
}

// ---- Subset ------------------------------------------------------------------------------------

// s = Subset(range(100, 110), [7, 2, 2, 9, 0]):
//   [s[i] for i in range(5)] -> [107, 102, 102, 109, 100];  s[-1] -> 100;  s[-5] -> 107
//   s[5], s[-6] -> IndexError: list index out of range
//   [b.tolist() for b in DataLoader(s, batch_size=2)] -> [[107, 102], [102, 109], [100]]
//   [b.tolist() for b in DataLoader(s, batch_size=2,
//        sampler=DistributedSampler(s, 1, 0, shuffle=True, seed=7))] -> [[107, 102], [109, 102],
//        [100]]
TEST(Subset, IndexesThroughItsIndicesAsTorch) {
  const Subset s(counting(10, 100), {7, 2, 2, 9, 0});
  EXPECT_EQ(s.size(), 5);
  EXPECT_EQ(s.access(), Access::indexed);
  EXPECT_EQ(all_of(s), (std::vector<int64_t>{107, 102, 102, 109, 100}));
  const std::vector<int64_t> negative = {-1, -5};
  EXPECT_EQ(values(s.get(negative)), (std::vector<int64_t>{100, 107}));
  for (int64_t bad : {5, -6}) {
    const std::vector<int64_t> idx = {0, bad};
    EXPECT_EQ(error_of<IndexError>([&] { s.get(idx); }),
              "Subset: index " + std::to_string(bad) +
                  " out of range for 5 indices (list index out of range); expected one in [-5, 5)");
  }
  DataLoader plain(s, {.batch_size = 2});
  Lists got;
  for (const Batch& b : plain) got.push_back(values(b));
  EXPECT_EQ(got, (Lists{{107, 102}, {102, 109}, {100}}));
  DataLoader shuffled(s, {.batch_size = 2, .shuffle = true, .seed = 7});
  got.clear();
  for (const Batch& b : shuffled) got.push_back(values(b));
  EXPECT_EQ(got, (Lists{{107, 102}, {109, 102}, {100}}));
}

// An index past the underlying dataset fails when read, by that dataset, as in torch.
TEST(Subset, TheDatasetChecksTheIndicesWhenRead) {
  const Subset s(counting(3), {0, 3});
  EXPECT_EQ(values(s.get(std::vector<int64_t>{0})), (std::vector<int64_t>{0}));
  EXPECT_EQ(error_of<IndexError>([&] { s.get(std::vector<int64_t>{1}); }),
            "TensorDataset: example 3 out of range [0, 3)");
  EXPECT_EQ(error_of<ValueError>([] { Subset(std::shared_ptr<const Dataset>(), {0}); }),
            "Subset: the dataset is null");
}

// ---- ConcatDataset
// -------------------------------------------------------------------------------

// c = ConcatDataset([range(0, 3), range(0), range(100, 105), range(200, 202)]):
//   c.cumulative_sizes -> [3, 3, 8, 10];  [c[i] for i in range(10)] -> [0, 1, 2, 100, 101, 102,
//   103, 104, 200, 201];  c[-1] -> 201;  c[-10] -> 0;  c[3] -> 100;  c[-7] -> 100
//   c[10] -> IndexError: list index out of range
//   c[-11] -> ValueError: absolute value of index should not exceed dataset length
//   ConcatDataset([]) -> AssertionError: datasets should not be an empty iterable
//   [b.tolist() for b in DataLoader(c, batch_size=4,
//        sampler=DistributedSampler(c, 1, 0, shuffle=True, seed=4))]
//     -> [[0, 101, 201, 103], [104, 100, 2, 200], [1, 102]]
TEST(ConcatDataset, IndexesAcrossDatasetsAsTorch) {
  const auto empty = std::make_shared<Subset>(counting(1), std::vector<int64_t>{});
  const ConcatDataset c({counting(3), empty, counting(5, 100), counting(2, 200)});
  EXPECT_EQ(c.cumulative_sizes(), (std::vector<int64_t>{3, 3, 8, 10}));
  EXPECT_EQ(c.size(), 10);
  EXPECT_EQ(all_of(c), (std::vector<int64_t>{0, 1, 2, 100, 101, 102, 103, 104, 200, 201}));
  EXPECT_EQ(values(c.get(std::vector<int64_t>{-1, -10, 3, -7})),
            (std::vector<int64_t>{201, 0, 100, 100}));
  EXPECT_EQ(values(c.get(std::vector<int64_t>{104 - 100 + 3})), (std::vector<int64_t>{104}));
  EXPECT_EQ(error_of<IndexError>([&] { c.get(std::vector<int64_t>{10}); }),
            "ConcatDataset: index 10 out of range for 10 examples (list index out of range); "
            "expected one in [-10, 10)");
  EXPECT_EQ(error_of<ValueError>([&] { c.get(std::vector<int64_t>{-11}); }),
            "ConcatDataset: index -11: absolute value of index should not exceed dataset length "
            "(10)");
  EXPECT_EQ(error_of<ValueError>([] { ConcatDataset({}); }),
            "ConcatDataset: datasets should not be an empty iterable");
  EXPECT_EQ(error_of<ValueError>([] {
              ConcatDataset({counting(2), nullptr});
            }),
            "ConcatDataset: dataset 1 is null");
  // No examples asked for: an empty batch of the examples' shape.
  const Batch none = c.get({});
  EXPECT_EQ(none.inputs.sizes(), (Shape{0, 1}));
  EXPECT_EQ(none.targets.sizes(), (Shape{0}));

  DataLoader loader(std::make_shared<ConcatDataset>(c),
                    {.batch_size = 4, .shuffle = true, .seed = 4});
  Lists got;
  for (const Batch& b : loader) got.push_back(values(b));
  EXPECT_EQ(got, (Lists{{0, 101, 201, 103}, {104, 100, 2, 200}, {1, 102}}));
}

// parts = random_split(range(50, 60), [0.3, 0.3, 0.4], generator=torch.Generator().manual_seed(5))
// cc = ConcatDataset([parts[2], parts[0]])
//   len(cc) -> 7;  [b.tolist() for b in DataLoader(cc, batch_size=3)]
//     -> [[50, 52, 58], [57, 51, 54], [59]]
TEST(ConcatDataset, OfRandomSplitsThroughADataLoader) {
  const std::vector<Subset> parts = random_split(counting(10, 50), {0.3, 0.3, 0.4}, 5);
  const auto c = std::make_shared<ConcatDataset>(std::vector<std::shared_ptr<const Dataset>>{
      std::make_shared<Subset>(parts[2]), std::make_shared<Subset>(parts[0])});
  EXPECT_EQ(c->size(), 7);
  DataLoader loader(c, {.batch_size = 3});
  Lists got;
  for (const Batch& b : loader) got.push_back(values(b));
  EXPECT_EQ(got, (Lists{{50, 52, 58}, {57, 51, 54}, {59}}));
  EXPECT_EQ(
      c->describe().rfind("concatenation of 2 datasets (7 examples): subset of 4 examples of", 0),
      0u)
      << c->describe();
}

}  // namespace
}  // namespace fabric::data
