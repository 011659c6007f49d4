// The CUDA reductions against the CPU through the public ops: sum/mean/amax/amin/max/min with
// indices/argmax/argmin/var/std/norm/logsumexp/cumsum over rows, columns, several dims and all
// elements, in fp32/fp16/bf16/fp64 and the integer dtypes, on odd shapes, rows longer than a
// block, non-contiguous views, empty reductions and NaN. Sums may differ by the order of the
// additions: fp32 within ~1e-5 relative, fp16/bf16 within two units of the output's rounding.
#include <gtest/gtest.h>

#include <functional>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/cuda/cuda_test_util.h"

namespace fabric {
namespace {

using test::kGpu;
using test::Tolerance;

constexpr DType kFloatTypes[] = {DType::float32, DType::float16, DType::bfloat16, DType::float64};

using test::check_op;

std::string name_of(const std::string& op, DType t) {
  return op + " " + std::string(dtype_name(t));
}

// Folded sums: a few rounding units of the output dtype, with an absolute floor `scale` times
// that for results that cancel towards zero.
Tolerance sum_tolerance(DType t, double scale = 1) { return test::rounding_tolerance(t, scale); }

// Extremes are exact; a tiny atol only lets -0.0 and +0.0 compare equal (the order of equal
// zeros is not part of the contract).
constexpr Tolerance kExtreme{1e-300, 0};

// The shapes and dims every reduction is run over: (shape, dims) with rows, columns, middle
// dims, several dims, all dims and rows longer than a block.
struct Layout {
  Shape shape;
  std::vector<int64_t> dims;
};
const std::vector<Layout> kLayouts = {
    {{37, 29}, {1}},   {{37, 29}, {0}},     {{37, 29}, {}},       {{6, 3001}, {1}},
    {{3001, 5}, {0}},  {{4, 33, 5}, {1}},   {{4, 33, 5}, {0, 2}}, {{3, 4, 5, 6}, {1, 3}},
    {{2, 70000}, {1}}, {{1, 1, 9}, {0, 1}}, {{7}, {0}},
};

std::string layout_name(const std::string& op, DType t, const Layout& l) {
  std::string s = op + " " + std::string(dtype_name(t)) + " " + shape_str(l.shape) + " dims [";
  for (size_t i = 0; i < l.dims.size(); ++i) s += (i ? "," : "") + std::to_string(l.dims[i]);
  return s + "]";
}

TEST(CudaReduce, SumAndMeanOverEveryLayout) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (const Layout& l : kLayouts) {
      // Positive values: the sums do not cancel, so a relative tolerance holds.
      const Tensor a = test::uniform_tensor(l.shape, dt, 0.5f, 1.5f, 3);
      check_op(
          layout_name("sum", dt, l), {a},
          [&](const std::vector<Tensor>& x) { return sum(x[0], l.dims); }, sum_tolerance(dt));
      check_op(
          layout_name("mean keepdim", dt, l), {a},
          [&](const std::vector<Tensor>& x) { return mean(x[0], l.dims, true); },
          sum_tolerance(dt));
    }
  }
}

TEST(CudaReduce, SumIntoWiderDtypesAndIntegers) {
  FABRIC_REQUIRE_CUDA();
  const Tensor h = test::uniform_tensor({9, 1000}, DType::float16, -1, 1, 5);
  check_op(
      "sum fp16 -> fp32", {h},
      [](const std::vector<Tensor>& x) { return sum(x[0], {1}, false, DType::float32); },
      sum_tolerance(DType::float32, 10));
  check_op(
      "sum fp32 -> fp64", {h.to(DType::float32)},
      [](const std::vector<Tensor>& x) { return sum(x[0], {0}, false, DType::float64); },
      sum_tolerance(DType::float64));
  // Integers accumulate in int64 and are exact (wrapping included).
  for (DType dt : {DType::int64, DType::int32, DType::int8, DType::uint8, DType::bool_}) {
    const Tensor a = test::random_ints({13, 517}, DType::int64, -100, 100, 7).to(dt);
    check_op(name_of("sum rows", dt), {a},
             [](const std::vector<Tensor>& x) { return sum(x[0], {1}); }, {});
    check_op(name_of("sum cols", dt), {a},
             [](const std::vector<Tensor>& x) { return sum(x[0], {0}); }, {});
    check_op(name_of("sum all", dt), {a}, [](const std::vector<Tensor>& x) { return sum(x[0]); },
             {});
    check_op(name_of("amax", dt), {a}, [](const std::vector<Tensor>& x) { return amax(x[0], {1}); },
             {});
    check_op(name_of("amin cols", dt), {a},
             [](const std::vector<Tensor>& x) { return amin(x[0], {0}); }, {});
    check_op(name_of("cumsum", dt), {a},
             [](const std::vector<Tensor>& x) { return cumsum(x[0], 1); }, {});
  }
  const Tensor big = from_vector<int64_t>({INT64_MAX, 1, 5}, {3});
  check_op("sum int64 wraps", {big}, [](const std::vector<Tensor>& x) { return sum(x[0]); }, {});
}

TEST(CudaReduce, MaxMinAndArgReductions) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (const Layout& l : kLayouts) {
      // Narrow range: many ties, so "first index wins" is exercised.
      const Tensor a =
          test::uniform_tensor(l.shape, DType::float32, -4, 4, 9).to(DType::int32).to(dt);
      check_op(
          layout_name("amax", dt, l), {a},
          [&](const std::vector<Tensor>& x) { return amax(x[0], l.dims); }, kExtreme);
      check_op(
          layout_name("amin", dt, l), {a},
          [&](const std::vector<Tensor>& x) { return amin(x[0], l.dims); }, kExtreme);
      if (l.dims.size() != 1) continue;
      const int64_t d = l.dims[0];
      for (bool is_max : {true, false}) {
        const std::string n = is_max ? "max" : "min";
        check_op(
            layout_name(n + " values", dt, l), {a},
            [&](const std::vector<Tensor>& x) {
              return std::get<0>(is_max ? max(x[0], d) : min(x[0], d));
            },
            kExtreme);
        check_op(layout_name(n + " indices", dt, l), {a},
                 [&](const std::vector<Tensor>& x) {
                   return std::get<1>(is_max ? max(x[0], d, true) : min(x[0], d, true));
                 },
                 {});
        check_op(layout_name("arg" + n, dt, l), {a},
                 [&](const std::vector<Tensor>& x) {
                   return is_max ? argmax(x[0], d) : argmin(x[0], d);
                 },
                 {});
      }
    }
    const Tensor flat =
        test::uniform_tensor({5000}, DType::float32, -3, 3, 10).to(DType::int32).to(dt);
    check_op(name_of("argmax flat", dt), {flat},
             [](const std::vector<Tensor>& x) { return argmax(x[0]); }, {});
    check_op(name_of("argmin flat", dt), {flat},
             [](const std::vector<Tensor>& x) { return argmin(x[0]); }, {});
  }
}

TEST(CudaReduce, NaNPropagatesAndItsFirstIndexWins) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    Tensor a = test::uniform_tensor({8, 700}, DType::float32, -1, 1, 11);
    float* p = a.data<float>();
    p[1 * 700 + 650] = NAN;  // row 1: a late NaN
    p[3 * 700 + 5] = NAN;    // row 3: two NaNs, the first at 5
    p[3 * 700 + 400] = NAN;
    p[5 * 700 + 0] = INFINITY;
    p[6 * 700 + 699] = -INFINITY;
    const Tensor t = a.to(dt);
    check_op(
        name_of("amax NaN", dt), {t}, [](const std::vector<Tensor>& x) { return amax(x[0], {1}); },
        kExtreme);
    check_op(
        name_of("amin NaN cols", dt), {t},
        [](const std::vector<Tensor>& x) { return amin(x[0], {0}); }, kExtreme);
    check_op(name_of("argmax NaN", dt), {t},
             [](const std::vector<Tensor>& x) { return argmax(x[0], 1); }, {});
    check_op(name_of("argmin NaN", dt), {t},
             [](const std::vector<Tensor>& x) { return argmin(x[0], 1); }, {});
    check_op(name_of("argmax NaN cols", dt), {t},
             [](const std::vector<Tensor>& x) { return argmax(x[0], 0); }, {});
    check_op(
        name_of("sum NaN", dt), {t}, [](const std::vector<Tensor>& x) { return sum(x[0], {1}); },
        sum_tolerance(dt, 30));
    check_op(
        name_of("logsumexp inf", dt), {t},
        [](const std::vector<Tensor>& x) { return logsumexp(x[0], {1}); }, sum_tolerance(dt, 10));
  }
}

TEST(CudaReduce, VarStdNormLogsumexp) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (const Layout& l : kLayouts) {
      const Tensor a = test::uniform_tensor(l.shape, dt, -2, 2, 13);
      const Tolerance t = sum_tolerance(dt, 4);
      check_op(
          layout_name("var", dt, l), {a},
          [&](const std::vector<Tensor>& x) { return var(x[0], l.dims); }, t);
      check_op(
          layout_name("std unbiased=0", dt, l), {a},
          [&](const std::vector<Tensor>& x) { return fabric::std(x[0], l.dims, 0.0); }, t);
      check_op(
          layout_name("logsumexp", dt, l), {a},
          [&](const std::vector<Tensor>& x) { return logsumexp(x[0], l.dims, true); }, t);
      for (double p : {2.0, 1.0, 3.0, 0.0}) {
        check_op(
            layout_name("norm p=" + std::to_string(p), dt, l), {a},
            [&](const std::vector<Tensor>& x) { return norm(x[0], p, l.dims); }, t);
      }
      for (double p : {INFINITY, -INFINITY}) {
        check_op(
            layout_name("norm p=" + std::to_string(p), dt, l), {a},
            [&](const std::vector<Tensor>& x) { return norm(x[0], p, l.dims); }, kExtreme);
      }
    }
  }
}

TEST(CudaReduce, NonContiguousViews) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    const Tensor m = test::uniform_tensor({300, 41}, dt, 0.5f, 1.5f, 15);
    const Tolerance t = sum_tolerance(dt);
    check_op(
        name_of("sum transposed rows", dt), {m},
        [](const std::vector<Tensor>& x) { return sum(x[0].t(), {1}); }, t);
    check_op(
        name_of("sum transposed cols", dt), {m},
        [](const std::vector<Tensor>& x) { return sum(x[0].t(), {0}); }, t);
    check_op(
        name_of("mean sliced", dt), {m},
        [](const std::vector<Tensor>& x) {
          return mean(x[0].slice(0, 1, 300, 3).slice(1, 0, 41, 2), {0});
        },
        t);
    const Tensor p = test::uniform_tensor({5, 6, 7, 8}, dt, 0.5f, 1.5f, 16);
    check_op(
        name_of("sum permuted", dt), {p},
        [](const std::vector<Tensor>& x) {
          return sum(x[0].permute({2, 0, 3, 1}), {1, 3});
        },
        t);
    check_op(
        name_of("amax permuted", dt), {p},
        [](const std::vector<Tensor>& x) {
          return amax(x[0].permute({3, 1, 0, 2}), {0, 2});
        },
        kExtreme);
    check_op(name_of("argmax strided", dt), {m},
             [](const std::vector<Tensor>& x) { return argmax(x[0].slice(1, 1, 41, 4), 0); }, {});
    check_op(
        name_of("sum expanded", dt), {test::uniform_tensor({1, 37}, dt, 0.5f, 1.5f, 17)},
        [](const std::vector<Tensor>& x) {
          return sum(x[0].expand({500, 37}), {0});
        },
        t);
  }
}

TEST(CudaReduce, EmptyReductionsGiveTheIdentity) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    const Tensor e = empty({0, 5}, {.dtype = dt});
    check_op(name_of("sum empty", dt), {e},
             [](const std::vector<Tensor>& x) { return sum(x[0], {0}); }, {});
    check_op(name_of("mean empty", dt), {e},
             [](const std::vector<Tensor>& x) { return mean(x[0], {0}); }, {});
    check_op(name_of("logsumexp empty", dt), {e},
             [](const std::vector<Tensor>& x) { return logsumexp(x[0], {0}); }, {});
    check_op(name_of("norm empty", dt), {e},
             [](const std::vector<Tensor>& x) { return norm(x[0], 2.0, {0}); }, {});
    check_op(name_of("sum of no outputs", dt), {e},
             [](const std::vector<Tensor>& x) { return sum(x[0], {1}); }, {});
  }
}

TEST(CudaReduce, CumsumAlongEachDim) {
  FABRIC_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    const Tensor a = test::uniform_tensor({5, 1030, 3}, dt, 0.5f, 1.5f, 19);
    for (int64_t d : {0, 1, 2}) {
      check_op(
          name_of("cumsum dim " + std::to_string(d), dt), {a},
          [d](const std::vector<Tensor>& x) { return cumsum(x[0], d); }, sum_tolerance(dt));
    }
    check_op(
        name_of("cumsum rows", dt), {test::uniform_tensor({3, 2500}, dt, 0.5f, 1.5f, 20)},
        [](const std::vector<Tensor>& x) { return cumsum(x[0], 1); }, sum_tolerance(dt));
    check_op(
        name_of("cumsum transposed", dt), {test::uniform_tensor({40, 30}, dt, 0.5f, 1.5f, 21)},
        [](const std::vector<Tensor>& x) { return cumsum(x[0].t(), 1); }, sum_tolerance(dt));
  }
  check_op(
      "cumsum fp16 -> fp32", {test::uniform_tensor({4, 999}, DType::float16, -1, 1, 22)},
      [](const std::vector<Tensor>& x) { return cumsum(x[0], 1, DType::float32); },
      sum_tolerance(DType::float32, 10));
}

// Column sums the 16-byte kernel takes (kernels/cuda/col_sum_wide.h: contiguous rows, a multiple
// of 8 columns): GPT-2's bias-gradient shapes and small ones, single and split rows, a (B, T, C)
// summed over B and T, and a float32 output of bfloat16 rows.
TEST(CudaReduce, WideColumnSums) {
  FABRIC_REQUIRE_CUDA();
  const std::vector<Layout> layouts = {{{8192, 768}, {0}},      {{8192, 2304}, {0}},
                                       {{1000, 264}, {0}},      {{3, 8}, {0}},
                                       {{100000, 256}, {0}},  // rows split across blocks
                                       {{8, 128, 3072}, {0, 1}}};
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16}) {
    for (const Layout& l : layouts) {
      const Tensor a = test::uniform_tensor(l.shape, dt, 0.5f, 1.5f, 31);
      check_op(
          layout_name("wide column sum", dt, l), {a},
          [&](const std::vector<Tensor>& x) { return sum(x[0], l.dims); }, sum_tolerance(dt));
    }
  }
  // An output dtype wider than the input's: bf16 rows summed into float32 stay bf16 to the kernel
  // (float32 into float64 would be cast before it and take the general kernel).
  const Tensor f = test::uniform_tensor({4096, 512}, DType::bfloat16, -1.f, 1.f, 32);
  check_op(
      "wide column sum of bfloat16 into float32", {f},
      [](const std::vector<Tensor>& x) { return sum(x[0], {0}, false, DType::float32); },
      sum_tolerance(DType::float32, 64));
}

TEST(CudaReduce, LongReductionsSplitAcrossBlocks) {
  FABRIC_REQUIRE_CUDA();
  // One output over 2M elements, and a few columns over many rows: both split each output's
  // reduced range across blocks and fold the partials.
  const Tensor a = test::uniform_tensor({1 << 21}, DType::float32, 0.5f, 1.5f, 23);
  check_op(
      "sum 2M", {a}, [](const std::vector<Tensor>& x) { return sum(x[0]); },
      sum_tolerance(DType::float32));
  check_op(
      "amax 2M", {a}, [](const std::vector<Tensor>& x) { return amax(x[0]); }, kExtreme);
  check_op("argmin 2M", {a}, [](const std::vector<Tensor>& x) { return argmin(x[0]); }, {});
  check_op(
      "var 2M", {a}, [](const std::vector<Tensor>& x) { return var(x[0]); },
      sum_tolerance(DType::float32, 4));
  const Tensor c = test::uniform_tensor({65536, 3}, DType::bfloat16, 0.5f, 1.5f, 24);
  check_op(
      "sum columns bf16", {c}, [](const std::vector<Tensor>& x) { return sum(x[0], {0}); },
      sum_tolerance(DType::bfloat16));
  check_op("argmax columns bf16", {c}, [](const std::vector<Tensor>& x) { return argmax(x[0], 0); },
           {});
}

}  // namespace
}  // namespace fabric
