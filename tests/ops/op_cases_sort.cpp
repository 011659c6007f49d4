// Harness cases for sort, argsort and topk (values against a float64 reference sort, gradients by
// finite differences on random inputs, which have no ties) and flip, roll and repeat (naive
// index-mapping references), and unbind (stacked back reversed: a flip through its backward).
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <tuple>

#include "tests/ops/op_harness.h"

namespace fabric::harness {
namespace {

const std::vector<DType> kAllFloat = {DType::float64, DType::float32, DType::bfloat16,
                                      DType::float16};
const std::vector<DType> kOne = {DType::float64};

using V = std::vector<Tensor>;
using R = std::vector<RefTensor>;

template <typename F>
void for_each_index(const Shape& shape, F&& f) {
  const int64_t n = numel_of(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    f(idx);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

int64_t wrap(int64_t d, size_t n) { return d < 0 ? d + static_cast<int64_t>(n) : d; }

// The first k of each slice along dim, sorted (descending: largest first), and their positions;
// ties keep input order (stable_sort).
std::pair<RefTensor, RefTensor> ref_sorted(const RefTensor& a, int64_t dim, int64_t k, bool desc) {
  dim = wrap(dim, a.shape.size());
  Shape os = a.shape;
  os[dim] = k;
  RefTensor values{os, std::vector<double>(numel_of(os))};
  RefTensor indices = values;
  Shape slices = a.shape;
  slices[dim] = 1;
  const int64_t n = a.shape[dim];
  for_each_index(slices, [&](std::vector<int64_t> i) {
    std::vector<int64_t> order(n);
    for (int64_t j = 0; j < n; ++j) order[j] = j;
    auto value = [&](int64_t j) {
      i[dim] = j;
      return a.at(i);
    };
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
      return desc ? value(x) > value(y) : value(x) < value(y);
    });
    for (int64_t j = 0; j < k; ++j) {
      const double v = value(order[j]);
      i[dim] = j;
      values.v[values.index(i)] = v;
      indices.v[indices.index(i)] = static_cast<double>(order[j]);
    }
  });
  return {values, indices};
}

// out[i] = a[source(i)] over the output shape `os`.
RefTensor ref_remap(const RefTensor& a, const Shape& os,
                    const std::function<std::vector<int64_t>(std::vector<int64_t>)>& source) {
  RefTensor out{os, {}};
  for_each_index(os, [&](const std::vector<int64_t>& i) { out.v.push_back(a.at(source(i))); });
  return out;
}

std::vector<OpCase> sort_op_cases() {
  std::vector<OpCase> c;
  for (auto [name, shape, dim, desc] : std::vector<std::tuple<std::string, Shape, int64_t, bool>>{
           {"last", {4, 7}, -1, false},
           {"last_desc", {4, 7}, -1, true},
           {"dim0", {6, 3, 2}, 0, false},
           {"middle_desc", {2, 5, 3}, 1, true},
           {"1d", {9}, 0, false}}) {
    c.push_back({"sort/" + name,
                 {F(shape)},
                 [dim, desc](const V& t) { return std::get<0>(sort(t[0], dim, desc)); },
                 [dim, desc, shape](const R& t) {
                   return ref_sorted(t[0], dim, shape[wrap(dim, shape.size())], desc).first;
                 }});
    c.push_back({"sort/indices_" + name,
                 {F(shape)},
                 [dim, desc](const V& t) { return std::get<1>(sort(t[0], dim, desc)); },
                 [dim, desc, shape](const R& t) {
                   return ref_sorted(t[0], dim, shape[wrap(dim, shape.size())], desc).second;
                 },
                 kOne,
                 1,
                 true,
                 true,
                 false});
    c.push_back({"argsort/" + name,
                 {F(shape)},
                 [dim, desc](const V& t) { return argsort(t[0], dim, desc); },
                 [dim, desc, shape](const R& t) {
                   return ref_sorted(t[0], dim, shape[wrap(dim, shape.size())], desc).second;
                 },
                 kOne,
                 1,
                 true,
                 true,
                 false});
  }
  c.push_back({"sort/0d",
               {F({})},
               [](const V& t) { return std::get<0>(sort(t[0])); },
               [](const R& t) { return t[0]; }});
  c.push_back({"sort/int",
               {I({3, 8}, -5, 5)},
               [](const V& t) { return std::get<0>(sort(t[0], 1, true)); },
               [](const R& t) { return ref_sorted(t[0], 1, 8, true).first; },
               kOne,
               1,
               true,
               true});
  for (auto [name, shape, k, dim, largest] :
       std::vector<std::tuple<std::string, Shape, int64_t, int64_t, bool>>{
           {"largest", {4, 9}, 3, -1, true},
           {"smallest", {4, 9}, 3, -1, false},
           {"dim0", {7, 3}, 2, 0, true},
           {"k_all", {3, 5}, 5, 1, true},
           {"k0", {3, 5}, 0, 1, true},
           {"middle", {2, 6, 3}, 4, -2, false}}) {
    c.push_back(
        {"topk/" + name,
         {F(shape)},
         [k, dim, largest](const V& t) { return std::get<0>(topk(t[0], k, dim, largest)); },
         [k, dim, largest](const R& t) { return ref_sorted(t[0], dim, k, largest).first; }});
    c.push_back({"topk/indices_" + name,
                 {F(shape)},
                 [k, dim, largest](const V& t) { return std::get<1>(topk(t[0], k, dim, largest)); },
                 [k, dim, largest](const R& t) { return ref_sorted(t[0], dim, k, largest).second; },
                 kOne,
                 1,
                 true,
                 true,
                 false});
  }

  for (auto [name, shape, dims] : std::vector<std::tuple<std::string, Shape, std::vector<int64_t>>>{
           {"last", {3, 4}, {-1}},
           {"both", {3, 4}, {0, 1}},
           {"outer_inner", {2, 3, 4}, {2, 0}},
           {"none", {2, 3}, {}},
           {"0d", {}, {0}}}) {
    c.push_back({"flip/" + name,
                 {F(shape)},
                 [dims](const V& t) { return flip(t[0], dims); },
                 [dims, shape](const R& t) {
                   return ref_remap(t[0], shape, [&](std::vector<int64_t> i) {
                     if (!shape.empty()) {
                       for (int64_t d : dims) {
                         d = wrap(d, shape.size());
                         i[d] = shape[d] - 1 - i[d];
                       }
                     }
                     return i;
                   });
                 }});
  }
  // unbind, stacked back in reverse order: flip along that dim, through unbind's own backward.
  for (auto [name, shape, dim] : std::vector<std::tuple<std::string, Shape, int64_t>>{
           {"rows", {3, 4}, 0}, {"inner", {2, 3, 4}, 1}, {"last", {2, 5}, -1}}) {
    c.push_back({"unbind/" + name,
                 {F(shape)},
                 [dim](const V& t) {
                   std::vector<Tensor> s = unbind(t[0], dim);
                   std::reverse(s.begin(), s.end());
                   return stack(s, dim);
                 },
                 [dim, shape](const R& t) {
                   return ref_remap(t[0], shape, [&](std::vector<int64_t> i) {
                     const int64_t d = wrap(dim, shape.size());
                     i[d] = shape[d] - 1 - i[d];
                     return i;
                   });
                 }});
  }
  for (auto [name, shape, shifts, dims] :
       std::vector<std::tuple<std::string, Shape, std::vector<int64_t>, std::vector<int64_t>>>{
           {"one_dim", {3, 5}, {2}, {1}},
           {"negative", {3, 5}, {-7}, {-1}},
           {"two_dims", {4, 3, 2}, {1, 5}, {0, 1}},
           {"large", {6}, {6 * 3 + 1}, {0}}}) {
    c.push_back({"roll/" + name,
                 {F(shape)},
                 [shifts, dims](const V& t) { return roll(t[0], shifts, dims); },
                 [shifts, dims, shape](const R& t) {
                   return ref_remap(t[0], shape, [&](std::vector<int64_t> i) {
                     for (size_t j = 0; j < dims.size(); ++j) {
                       const int64_t d = wrap(dims[j], shape.size()), n = shape[d];
                       i[d] = (((i[d] - shifts[j]) % n) + n) % n;
                     }
                     return i;
                   });
                 }});
  }
  c.push_back({"roll/flattened",
               {F({3, 4})},
               [](const V& t) { return roll(t[0], {5}); },
               [](const R& t) {
                 return ref_remap(t[0], {3, 4}, [](std::vector<int64_t> i) {
                   const int64_t flat = ((i[0] * 4 + i[1] - 5) % 12 + 12) % 12;
                   return std::vector<int64_t>{flat / 4, flat % 4};
                 });
               }});
  for (auto [name, shape, reps] : std::vector<std::tuple<std::string, Shape, std::vector<int64_t>>>{
           {"same_rank", {2, 3}, {2, 3}},
           {"new_dims", {3}, {2, 1, 2}},
           {"ones", {2, 3}, {1, 1}},
           {"zero", {2, 3}, {0, 2}},
           {"0d", {}, {3, 2}}}) {
    Shape os;
    const size_t lead = reps.size() - shape.size();
    for (size_t i = 0; i < reps.size(); ++i)
      os.push_back(reps[i] * (i < lead ? 1 : shape[i - lead]));
    c.push_back({"repeat/" + name,
                 {F(shape)},
                 [reps](const V& t) { return repeat(t[0], reps); },
                 [os, shape, lead](const R& t) {
                   return ref_remap(t[0], os, [&](const std::vector<int64_t>& i) {
                     std::vector<int64_t> src;
                     for (size_t d = lead; d < i.size(); ++d) src.push_back(i[d] % shape[d - lead]);
                     return src;
                   });
                 }});
  }
  c.push_back({"repeat/bool",
               {B({2, 2})},
               [](const V& t) {
                 return repeat(t[0], {1, 3});
               },
               [](const R& t) {
                 return ref_remap(t[0], {2, 6}, [](const std::vector<int64_t>& i) {
                   return std::vector<int64_t>{i[0], i[1] % 2};
                 });
               },
               kOne,
               1,
               true,
               true});
  return c;
}

TEST(OpHarness, Sort) { run_cases(sort_op_cases()); }
TEST(OpHarnessCuda, Sort) { run_cases_on_cuda(sort_op_cases()); }

}  // namespace
}  // namespace fabric::harness
