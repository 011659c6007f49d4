// interpolate (nearest, bilinear) and pad (constant, reflect, replicate) against torch 1.13
// itself: values and input gradients (tools/fixtures/make_upsample_rows.py), torch's argument
// errors, and the CPU autocast policy of the padding ops. The naive-reference and
// finite-difference checks are the harness rows of op_cases_index.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

// One torch 1.13 CPU call on x = ((arange(n) * 5) % 11) / 4 of shape `x` in `dtype`, then
// y.backward(arange(y.numel()) + 1): y and x.grad as printed by make_upsample_rows.py.
struct UpsampleRow {
  const char* name;
  DType dtype;
  Shape x, y_shape;
  std::function<Tensor(const Tensor&)> call;
  std::vector<double> y, grad;
};

// clang-format off
const std::vector<UpsampleRow>& torch_rows() {
  static const std::vector<UpsampleRow> rows = {
      {"bilinear_up_3x4_to_5x7", DType::float64, {1, 1, 3, 4}, {1, 1, 5, 7},
       [](const Tensor& x) { return interpolate(x, {5, 7}, {}, "bilinear"); },
       {0.0, 0.4464285714285714, 1.1607142857142856, 1.875, 2.3928571428571432, 1.5357142857142858, 1.0, 0.8999999999999999, 0.9535714285714285, 1.0392857142857144, 1.675, 2.1928571428571435, 1.3357142857142859, 0.8000000000000002, 2.25, 1.7142857142857144, 0.8571428571428573, 1.375, 1.8928571428571432, 1.0357142857142858, 0.5, 1.9500000000000002, 1.4142857142857144, 0.5571428571428574, 1.075, 1.5928571428571434, 0.7357142857142859, 0.20000000000000007, 1.75, 1.2142857142857142, 0.3571428571428572, 0.8749999999999999, 1.3928571428571432, 0.5357142857142858, 0.0},
       {11.200000000000001, 16.3, 21.557142857142868, 25.142857142857142, 47.70000000000001, 54.9, 60.81428571428573, 63.38571428571428, 73.59999999999998, 81.29999999999998, 86.55714285714286, 87.54285714285714}},
      {"bilinear_up_3x4_to_5x7", DType::float32, {1, 1, 3, 4}, {1, 1, 5, 7},
       [](const Tensor& x) { return interpolate(x, {5, 7}, {}, "bilinear"); },
       {0.0, 0.4464286267757416, 1.1607143878936768, 1.8750001192092896, 2.392857074737549, 1.535714030265808, 1.0, 0.9000000953674316, 0.9535714387893677, 1.039285659790039, 1.6750000715255737, 2.192857027053833, 1.3357139825820923, 0.800000011920929, 2.25, 1.7142854928970337, 0.8571427464485168, 1.3750001192092896, 1.8928569555282593, 1.035714030265808, 0.4999999701976776, 1.9499999284744263, 1.4142855405807495, 0.5571427941322327, 1.0750000476837158, 1.5928568840026855, 0.7357139587402344, 0.19999997317790985, 1.75, 1.2142854928970337, 0.3571428060531616, 0.8750001192092896, 1.3928570747375488, 0.5357140302658081, 0.0},
       {11.199997901916504, 16.299999237060547, 21.557140350341797, 25.142860412597656, 47.69999694824219, 54.89999008178711, 60.814273834228516, 63.385719299316406, 73.60000610351562, 81.30001068115234, 86.55713653564453, 87.54287719726562}},
      {"bilinear_down_5x7_to_3x4", DType::float64, {1, 2, 5, 7}, {1, 2, 3, 4},
       [](const Tensor& x) { return interpolate(x, {3, 4}, {}, "bilinear"); },
       {0.6354166666666666, 1.6770833333333333, 1.4583333333333333, 1.6979166666666667, 1.46875, 0.90625, 0.6875, 0.8125, 1.2708333333333335, 1.5104166666666667, 1.2916666666666667, 0.9583333333333333, 1.53125, 1.4270833333333333, 2.0104166666666665, 1.4479166666666667, 1.21875, 0.65625, 0.4375, 0.5625, 1.364583333333333, 1.2604166666666667, 1.0416666666666667, 1.3958333333333335},
       {0.41666666666666663, 0.25, 1.1666666666666665, 0.41666666666666663, 1.7499999999999998, 1.0, 1.6666666666666665, 0.20833333333333337, 0.125, 0.5833333333333334, 0.20833333333333337, 0.875, 0.5, 0.8333333333333335, 3.125, 1.875, 5.25, 1.625, 6.125, 3.0, 5.0, 1.8749999999999982, 1.1249999999999991, 2.9166666666666643, 0.8749999999999992, 3.2083333333333304, 1.4999999999999987, 2.499999999999998, 3.7500000000000018, 2.250000000000001, 5.833333333333336, 1.7500000000000009, 6.41666666666667, 3.0000000000000013, 5.000000000000002, 5.416666666666666, 3.25, 8.166666666666666, 2.4166666666666665, 8.749999999999998, 4.0, 6.666666666666666, 2.708333333333334, 1.625, 4.083333333333334, 1.2083333333333335, 4.375, 2.0, 3.333333333333334, 10.625, 6.375, 15.75, 4.625, 16.625, 7.5, 12.5, 4.3749999999999964, 2.624999999999998, 6.416666666666661, 1.8749999999999982, 6.708333333333328, 2.9999999999999973, 4.999999999999996, 8.750000000000004, 5.250000000000003, 12.83333333333334, 3.7500000000000018, 13.416666666666673, 6.000000000000003, 10.000000000000004}},
      {"bilinear_down_5x7_to_3x4", DType::float32, {1, 2, 5, 7}, {1, 2, 3, 4},
       [](const Tensor& x) { return interpolate(x, {3, 4}, {}, "bilinear"); },
       {0.6354166865348816, 1.6770833730697632, 1.4583333730697632, 1.6979166269302368, 1.4687498807907104, 0.9062499403953552, 0.6874999403953552, 0.8125000596046448, 1.2708332538604736, 1.5104166269302368, 1.2916666269302368, 0.9583333730697632, 1.53125, 1.4270833730697632, 2.0104167461395264, 1.4479166269302368, 1.2187498807907104, 0.6562499403953552, 0.43750011920928955, 0.5625000596046448, 1.3645833730697632, 1.2604166269302368, 1.0416666269302368, 1.3958332538604736},
       {0.4166666865348816, 0.25, 1.1666667461395264, 0.4166666865348816, 1.7500001192092896, 1.0, 1.6666667461395264, 0.20833349227905273, 0.12500010430812836, 0.5833336114883423, 0.20833340287208557, 0.8750003576278687, 0.5000001192092896, 0.8333335518836975, 3.124999761581421, 1.8749998807907104, 5.249999523162842, 1.6249998807907104, 6.124999523162842, 2.999999761581421, 4.999999523162842, 1.8750005960464478, 1.125000238418579, 2.9166674613952637, 0.8750002980232239, 3.20833420753479, 1.5000003576278687, 2.5000009536743164, 3.7499992847442627, 2.249999761581421, 5.833332538604736, 1.749999761581421, 6.416666030883789, 2.999999523162842, 4.999999046325684, 5.4166669845581055, 3.25, 8.166666984558105, 2.4166667461395264, 8.750000953674316, 4.0, 6.6666669845581055, 2.708333730697632, 1.625000238418579, 4.083333969116211, 1.2083334922790527, 4.375000953674316, 2.000000238418579, 3.333333730697632, 10.624999046325684, 6.374999523162842, 15.749999046325684, 4.624999523162842, 16.624998092651367, 7.499999523162842, 12.499999046325684, 4.375001430511475, 2.6250007152557373, 6.41666841506958, 1.8750005960464478, 6.708334922790527, 3.0000007152557373, 5.000001907348633, 8.749998092651367, 5.249999523162842, 12.833332061767578, 3.7499992847442627, 13.416665077209473, 5.999999046325684, 9.999998092651367}},
      {"bilinear_align_corners_3x4_to_5x7", DType::float64, {1, 1, 3, 4}, {1, 1, 5, 7},
       [](const Tensor& x) { return interpolate(x, {5, 7}, {}, "bilinear", true); },
       {0.0, 0.625, 1.25, 1.875, 2.5, 1.75, 1.0, 1.125, 1.0625, 1.0, 1.625, 2.25, 1.5, 0.75, 2.25, 1.5, 0.75, 1.375, 2.0, 1.25, 0.5, 2.0, 1.25, 0.5, 1.125, 1.75, 1.0, 0.25, 1.75, 1.0, 0.25, 0.875, 1.5, 0.75, 0.0},
       {8.25, 16.0, 22.0, 20.25, 46.0, 68.0, 76.0, 62.0, 60.75, 86.0, 92.0, 72.75}},
      {"bilinear_align_corners_3x4_to_5x7", DType::float32, {1, 1, 3, 4}, {1, 1, 5, 7},
       [](const Tensor& x) { return interpolate(x, {5, 7}, {}, "bilinear", true); },
       {0.0, 0.625, 1.25, 1.875, 2.5, 1.75, 1.0, 1.125, 1.0625, 1.0, 1.625, 2.25, 1.5, 0.75, 2.25, 1.5, 0.75, 1.375, 2.0, 1.25, 0.5, 2.0, 1.25, 0.5, 1.125, 1.75, 1.0, 0.25, 1.75, 1.0, 0.25, 0.875, 1.5, 0.75, 0.0},
       {8.25, 16.0, 22.0, 20.25, 46.0, 68.0, 76.0, 62.0, 60.75, 86.0, 92.0, 72.75}},
      {"bilinear_align_corners_to_1x3", DType::float64, {2, 1, 4, 4}, {2, 1, 1, 3},
       [](const Tensor& x) { return interpolate(x, {1, 3}, {}, "bilinear", true); },
       {0.0, 1.875, 1.0, 0.75, 1.25, 1.75},
       {1.0, 1.0, 1.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 2.5, 2.5, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {"bilinear_align_corners_to_1x3", DType::float32, {2, 1, 4, 4}, {2, 1, 1, 3},
       [](const Tensor& x) { return interpolate(x, {1, 3}, {}, "bilinear", true); },
       {0.0, 1.875, 1.0, 0.75, 1.25, 1.75},
       {1.0, 1.0, 1.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 2.5, 2.5, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {"nearest_3x4_to_5x7", DType::float64, {1, 1, 3, 4}, {1, 1, 5, 7},
       [](const Tensor& x) { return interpolate(x, {5, 7}); },
       {0.0, 0.0, 1.25, 1.25, 2.5, 2.5, 1.0, 0.0, 0.0, 1.25, 1.25, 2.5, 2.5, 1.0, 2.25, 2.25, 0.75, 0.75, 2.0, 2.0, 0.5, 2.25, 2.25, 0.75, 0.75, 2.0, 2.0, 0.5, 1.75, 1.75, 0.25, 0.25, 1.5, 1.5, 0.0},
       {20.0, 28.0, 36.0, 21.0, 76.0, 84.0, 92.0, 49.0, 59.0, 63.0, 67.0, 35.0}},
      {"nearest_3x4_to_5x7", DType::float32, {1, 1, 3, 4}, {1, 1, 5, 7},
       [](const Tensor& x) { return interpolate(x, {5, 7}); },
       {0.0, 0.0, 1.25, 1.25, 2.5, 2.5, 1.0, 0.0, 0.0, 1.25, 1.25, 2.5, 2.5, 1.0, 2.25, 2.25, 0.75, 0.75, 2.0, 2.0, 0.5, 2.25, 2.25, 0.75, 0.75, 2.0, 2.0, 0.5, 1.75, 1.75, 0.25, 0.25, 1.5, 1.5, 0.0},
       {20.0, 28.0, 36.0, 21.0, 76.0, 84.0, 92.0, 49.0, 59.0, 63.0, 67.0, 35.0}},
      {"nearest_5x7_to_3x4", DType::float64, {1, 1, 5, 7}, {1, 1, 3, 4},
       [](const Tensor& x) { return interpolate(x, {3, 4}, {}, "nearest"); },
       {0.0, 1.25, 1.0, 0.75, 0.5, 1.75, 1.5, 1.25, 1.5, 0.0, 2.5, 2.25},
       {1.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0, 5.0, 6.0, 0.0, 7.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 10.0, 0.0, 11.0, 0.0, 12.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {"nearest_5x7_to_3x4", DType::float32, {1, 1, 5, 7}, {1, 1, 3, 4},
       [](const Tensor& x) { return interpolate(x, {3, 4}, {}, "nearest"); },
       {0.0, 1.25, 1.0, 0.75, 0.5, 1.75, 1.5, 1.25, 1.5, 0.0, 2.5, 2.25},
       {1.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0, 5.0, 6.0, 0.0, 7.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0, 10.0, 0.0, 11.0, 0.0, 12.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}},
      {"nearest_scale_1.7", DType::float64, {1, 1, 3, 4}, {1, 1, 5, 6},
       [](const Tensor& x) { return interpolate(x, {}, {1.7}); },
       {0.0, 0.0, 1.25, 1.25, 2.5, 2.5, 0.0, 0.0, 1.25, 1.25, 2.5, 2.5, 2.25, 2.25, 0.75, 0.75, 2.0, 2.0, 2.25, 2.25, 0.75, 0.75, 2.0, 2.0, 1.75, 1.75, 0.25, 0.25, 1.5, 1.5},
       {18.0, 26.0, 34.0, 0.0, 66.0, 74.0, 82.0, 0.0, 51.0, 55.0, 59.0, 0.0}},
      {"nearest_scale_1.7", DType::float32, {1, 1, 3, 4}, {1, 1, 5, 6},
       [](const Tensor& x) { return interpolate(x, {}, {1.7}); },
       {0.0, 0.0, 1.25, 1.25, 2.5, 2.5, 0.0, 0.0, 1.25, 1.25, 2.5, 2.5, 2.25, 2.25, 0.75, 0.75, 2.0, 2.0, 2.25, 2.25, 0.75, 0.75, 2.0, 2.0, 1.75, 1.75, 0.25, 0.25, 1.5, 1.5},
       {18.0, 26.0, 34.0, 0.0, 66.0, 74.0, 82.0, 0.0, 51.0, 55.0, 59.0, 0.0}},
      {"nearest_scale_2x3", DType::float64, {1, 1, 2, 3}, {1, 1, 4, 9},
       [](const Tensor& x) { return interpolate(x, {}, {2.0, 3.0}); },
       {0.0, 0.0, 0.0, 1.25, 1.25, 1.25, 2.5, 2.5, 2.5, 0.0, 0.0, 0.0, 1.25, 1.25, 1.25, 2.5, 2.5, 2.5, 1.0, 1.0, 1.0, 2.25, 2.25, 2.25, 0.75, 0.75, 0.75, 1.0, 1.0, 1.0, 2.25, 2.25, 2.25, 0.75, 0.75, 0.75},
       {39.0, 57.0, 75.0, 147.0, 165.0, 183.0}},
      {"nearest_scale_2x3", DType::float32, {1, 1, 2, 3}, {1, 1, 4, 9},
       [](const Tensor& x) { return interpolate(x, {}, {2.0, 3.0}); },
       {0.0, 0.0, 0.0, 1.25, 1.25, 1.25, 2.5, 2.5, 2.5, 0.0, 0.0, 0.0, 1.25, 1.25, 1.25, 2.5, 2.5, 2.5, 1.0, 1.0, 1.0, 2.25, 2.25, 2.25, 0.75, 0.75, 0.75, 1.0, 1.0, 1.0, 2.25, 2.25, 2.25, 0.75, 0.75, 0.75},
       {39.0, 57.0, 75.0, 147.0, 165.0, 183.0}},
      {"nearest_scale_1.3_on_1x5", DType::float64, {1, 1, 1, 5}, {1, 1, 1, 6},
       [](const Tensor& x) { return interpolate(x, {}, {1.3}); },
       {0.0, 0.0, 1.25, 2.5, 1.0, 1.0},
       {3.0, 3.0, 4.0, 11.0, 0.0}},
      {"nearest_scale_1.3_on_1x5", DType::float32, {1, 1, 1, 5}, {1, 1, 1, 6},
       [](const Tensor& x) { return interpolate(x, {}, {1.3}); },
       {0.0, 0.0, 1.25, 2.5, 1.0, 1.0},
       {3.0, 3.0, 4.0, 11.0, 0.0}},
      {"bilinear_scale_0.6", DType::float64, {1, 1, 5, 7}, {1, 1, 3, 4},
       [](const Tensor& x) { return interpolate(x, {}, {0.6}, "bilinear"); },
       {0.5833333333333334, 1.7499999999999998, 1.388888888888889, 1.3333333333333341, 1.4166666666666667, 0.75, 0.9999999999999996, 1.2499999999999991, 1.3333333333333335, 1.5833333333333335, 1.2222222222222223, 0.8611111111111108},
       {0.4444444444444444, 0.22222222222222224, 1.3333333333333333, 0.6666666666666661, 1.333333333333334, 1.7777777777777761, 0.8888888888888904, 0.22222222222222224, 0.11111111111111113, 0.6666666666666667, 0.33333333333333304, 0.6666666666666671, 0.8888888888888882, 0.4444444444444453, 3.333333333333333, 1.666666666666667, 6.0, 2.3333333333333313, 4.666666666666669, 5.333333333333329, 2.6666666666666714, 1.9999999999999982, 0.9999999999999992, 3.3333333333333304, 1.22222222222222, 2.4444444444444433, 2.6666666666666616, 1.3333333333333346, 4.000000000000002, 2.0000000000000013, 6.66666666666667, 2.4444444444444433, 4.888888888888894, 5.333333333333331, 2.6666666666666723}},
      {"bilinear_scale_0.6", DType::float32, {1, 1, 5, 7}, {1, 1, 3, 4},
       [](const Tensor& x) { return interpolate(x, {}, {0.6}, "bilinear"); },
       {0.5833333134651184, 1.75, 1.3888888359069824, 1.333333134651184, 1.4166666269302368, 0.7500000596046448, 1.0000001192092896, 1.250000238418579, 1.3333332538604736, 1.583333134651184, 1.2222222089767456, 0.8611111640930176},
       {0.444444477558136, 0.22222228348255157, 1.3333332538604736, 0.6666668653488159, 1.333333134651184, 1.777778148651123, 0.8888885378837585, 0.22222240269184113, 0.11111123114824295, 0.6666669249534607, 0.3333335518836975, 0.6666668057441711, 0.8888893127441406, 0.4444443881511688, 3.3333330154418945, 1.6666667461395264, 5.999999046325684, 2.333333730697632, 4.666665554046631, 5.333333969116211, 2.6666653156280518, 2.0000007152557373, 1.0000004768371582, 3.333333969116211, 1.222222924232483, 2.4444448947906494, 2.666667938232422, 1.333333134651184, 3.999999523162842, 2.0, 6.666665077209473, 2.4444448947906494, 4.888887405395508, 5.333333969116211, 2.6666650772094727}},
      {"bilinear_scale_1.5x2.5", DType::float64, {1, 1, 3, 4}, {1, 1, 4, 10},
       [](const Tensor& x) { return interpolate(x, {}, {1.5, 2.5}, "bilinear"); },
       {0.0, 0.12500000000000006, 0.625, 1.1250000000000002, 1.625, 2.125, 2.3499999999999996, 1.75, 1.1499999999999995, 1.0, 1.1249999999999998, 1.1124999999999998, 1.0624999999999998, 1.0125, 1.375, 1.875, 2.0999999999999996, 1.5, 0.8999999999999995, 0.75, 2.166666666666667, 2.016666666666667, 1.4166666666666667, 0.8166666666666665, 1.0416666666666667, 1.541666666666667, 1.7666666666666668, 1.166666666666667, 0.5666666666666662, 0.41666666666666674, 1.8333333333333335, 1.6833333333333331, 1.0833333333333335, 0.48333333333333317, 0.7083333333333334, 1.2083333333333337, 1.4333333333333333, 0.8333333333333334, 0.23333333333333284, 0.08333333333333337},
       {19.549999999999997, 28.4, 37.849999999999994, 46.70000000000001, 73.71666666666667, 82.56666666666668, 92.01666666666665, 100.86666666666673, 75.53333333333332, 81.43333333333332, 87.7333333333333, 93.63333333333334}},
      {"bilinear_scale_1.5x2.5", DType::float32, {1, 1, 3, 4}, {1, 1, 4, 10},
       [](const Tensor& x) { return interpolate(x, {}, {1.5, 2.5}, "bilinear"); },
       {0.0, 0.1250000149011612, 0.625, 1.125, 1.625, 2.125, 2.3499999046325684, 1.7499998807907104, 1.149999976158142, 1.0, 1.125, 1.1124999523162842, 1.0625, 1.0125000476837158, 1.375, 1.875, 2.0999999046325684, 1.4999998807907104, 0.8999999761581421, 0.75, 2.1666665077209473, 2.0166664123535156, 1.4166666269302368, 0.8166665434837341, 1.0416666269302368, 1.5416666269302368, 1.7666665315628052, 1.1666665077209473, 0.5666665434837341, 0.4166666269302368, 1.8333332538604736, 1.6833332777023315, 1.0833332538604736, 0.4833332598209381, 0.7083333730697632, 1.2083333730697632, 1.4333332777023315, 0.8333331942558289, 0.2333332598209381, 0.08333331346511841},
       {19.549997329711914, 28.400001525878906, 37.85000228881836, 46.70000076293945, 73.7166519165039, 82.56665802001953, 92.01664733886719, 100.86666107177734, 75.53334045410156, 81.43334197998047, 87.73333740234375, 93.63334655761719}},
      {"bilinear_scale_1.1_same_size", DType::float64, {1, 1, 1, 5}, {1, 1, 1, 5},
       [](const Tensor& x) { return interpolate(x, {}, {1.1}, "bilinear"); },
       {0.0, 1.25, 2.5, 1.0, 2.25},
       {1.0, 2.0, 3.0, 4.0, 5.0}},
      {"bilinear_scale_1.1_same_size", DType::float32, {1, 1, 1, 5}, {1, 1, 1, 5},
       [](const Tensor& x) { return interpolate(x, {}, {1.1}, "bilinear"); },
       {0.0, 1.25, 2.5, 1.0, 2.25},
       {1.0, 2.0, 3.0, 4.0, 5.0}},
      {"reflect_1d_batched", DType::float64, {2, 2, 4}, {2, 2, 8},
       [](const Tensor& x) { return pad(x, {1, 3}, "reflect"); },
       {1.25, 0.0, 1.25, 2.5, 1.0, 2.5, 1.25, 0.0, 0.75, 2.25, 0.75, 2.0, 0.5, 2.0, 0.75, 2.25, 0.25, 1.75, 0.25, 1.5, 0.0, 1.5, 0.25, 1.75, 2.5, 1.25, 2.5, 1.0, 2.25, 1.0, 2.5, 1.25},
       {10.0, 11.0, 10.0, 5.0, 26.0, 35.0, 26.0, 13.0, 42.0, 59.0, 42.0, 21.0, 58.0, 83.0, 58.0, 29.0}},
      {"reflect_1d_batched", DType::float32, {2, 2, 4}, {2, 2, 8},
       [](const Tensor& x) { return pad(x, {1, 3}, "reflect"); },
       {1.25, 0.0, 1.25, 2.5, 1.0, 2.5, 1.25, 0.0, 0.75, 2.25, 0.75, 2.0, 0.5, 2.0, 0.75, 2.25, 0.25, 1.75, 0.25, 1.5, 0.0, 1.5, 0.25, 1.75, 2.5, 1.25, 2.5, 1.0, 2.25, 1.0, 2.5, 1.25},
       {10.0, 11.0, 10.0, 5.0, 26.0, 35.0, 26.0, 13.0, 42.0, 59.0, 42.0, 21.0, 58.0, 83.0, 58.0, 29.0}},
      {"reflect_2d", DType::float64, {1, 1, 3, 4}, {1, 1, 6, 7},
       [](const Tensor& x) { return pad(x, {1, 2, 2, 1}, "reflect"); },
       {0.25, 1.75, 0.25, 1.5, 0.0, 1.5, 0.25, 0.75, 2.25, 0.75, 2.0, 0.5, 2.0, 0.75, 1.25, 0.0, 1.25, 2.5, 1.0, 2.5, 1.25, 0.75, 2.25, 0.75, 2.0, 0.5, 2.0, 0.75, 0.25, 1.75, 0.25, 1.5, 0.0, 1.5, 0.25, 0.75, 2.25, 0.75, 2.0, 0.5, 2.0, 0.75},
       {16.0, 53.0, 38.0, 19.0, 69.0, 222.0, 156.0, 78.0, 32.0, 106.0, 76.0, 38.0}},
      {"reflect_2d", DType::float32, {1, 1, 3, 4}, {1, 1, 6, 7},
       [](const Tensor& x) { return pad(x, {1, 2, 2, 1}, "reflect"); },
       {0.25, 1.75, 0.25, 1.5, 0.0, 1.5, 0.25, 0.75, 2.25, 0.75, 2.0, 0.5, 2.0, 0.75, 1.25, 0.0, 1.25, 2.5, 1.0, 2.5, 1.25, 0.75, 2.25, 0.75, 2.0, 0.5, 2.0, 0.75, 0.25, 1.75, 0.25, 1.5, 0.0, 1.5, 0.25, 0.75, 2.25, 0.75, 2.0, 0.5, 2.0, 0.75},
       {16.0, 53.0, 38.0, 19.0, 69.0, 222.0, 156.0, 78.0, 32.0, 106.0, 76.0, 38.0}},
      {"reflect_2d_negative", DType::float64, {1, 3, 4}, {1, 3, 5},
       [](const Tensor& x) { return pad(x, {-1, 2, 1, -1}, "reflect"); },
       {0.75, 2.0, 0.5, 2.0, 0.75, 1.25, 2.5, 1.0, 2.5, 1.25, 0.75, 2.0, 0.5, 2.0, 0.75},
       {0.0, 16.0, 16.0, 8.0, 0.0, 32.0, 32.0, 16.0, 0.0, 0.0, 0.0, 0.0}},
      {"reflect_2d_negative", DType::float32, {1, 3, 4}, {1, 3, 5},
       [](const Tensor& x) { return pad(x, {-1, 2, 1, -1}, "reflect"); },
       {0.75, 2.0, 0.5, 2.0, 0.75, 1.25, 2.5, 1.0, 2.5, 1.25, 0.75, 2.0, 0.5, 2.0, 0.75},
       {0.0, 16.0, 16.0, 8.0, 0.0, 32.0, 32.0, 16.0, 0.0, 0.0, 0.0, 0.0}},
      {"replicate_1d", DType::float64, {3, 4}, {3, 11},
       [](const Tensor& x) { return pad(x, {2, 5}, "replicate"); },
       {0.0, 0.0, 0.0, 1.25, 2.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.25, 2.25, 2.25, 0.75, 2.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.75, 1.75, 1.75, 0.25, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0},
       {6.0, 4.0, 5.0, 51.0, 39.0, 15.0, 16.0, 117.0, 72.0, 26.0, 27.0, 183.0}},
      {"replicate_1d", DType::float32, {3, 4}, {3, 11},
       [](const Tensor& x) { return pad(x, {2, 5}, "replicate"); },
       {0.0, 0.0, 0.0, 1.25, 2.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.25, 2.25, 2.25, 0.75, 2.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.75, 1.75, 1.75, 0.25, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0},
       {6.0, 4.0, 5.0, 51.0, 39.0, 15.0, 16.0, 117.0, 72.0, 26.0, 27.0, 183.0}},
      {"replicate_2d", DType::float64, {2, 1, 2, 3}, {2, 1, 6, 7},
       [](const Tensor& x) { return pad(x, {3, 1, 0, 4}, "replicate"); },
       {0.0, 0.0, 0.0, 0.0, 1.25, 2.5, 2.5, 1.0, 1.0, 1.0, 1.0, 2.25, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0, 2.25, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0, 2.25, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0, 2.25, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0, 2.25, 0.75, 0.75, 2.0, 2.0, 2.0, 2.0, 0.5, 1.75, 1.75, 0.25, 0.25, 0.25, 0.25, 1.5, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25, 1.5, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25, 1.5, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25, 1.5, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25, 1.5, 0.0, 0.0},
       {10.0, 5.0, 13.0, 470.0, 130.0, 275.0, 178.0, 47.0, 97.0, 1310.0, 340.0, 695.0}},
      {"replicate_2d", DType::float32, {2, 1, 2, 3}, {2, 1, 6, 7},
       [](const Tensor& x) { return pad(x, {3, 1, 0, 4}, "replicate"); },
       {0.0, 0.0, 0.0, 0.0, 1.25, 2.5, 2.5, 1.0, 1.0, 1.0, 1.0, 2.25, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0, 2.25, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0, 2.25, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0, 2.25, 0.75, 0.75, 1.0, 1.0, 1.0, 1.0, 2.25, 0.75, 0.75, 2.0, 2.0, 2.0, 2.0, 0.5, 1.75, 1.75, 0.25, 0.25, 0.25, 0.25, 1.5, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25, 1.5, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25, 1.5, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25, 1.5, 0.0, 0.0, 0.25, 0.25, 0.25, 0.25, 1.5, 0.0, 0.0},
       {10.0, 5.0, 13.0, 470.0, 130.0, 275.0, 178.0, 47.0, 97.0, 1310.0, 340.0, 695.0}},
      {"replicate_2d_negative", DType::float64, {1, 3, 4}, {1, 4, 3},
       [](const Tensor& x) { return pad(x, {-2, 1, 2, -1}, "replicate"); },
       {2.5, 1.0, 1.0, 2.5, 1.0, 1.0, 2.5, 1.0, 1.0, 2.0, 0.5, 0.5},
       {0.0, 0.0, 12.0, 33.0, 0.0, 0.0, 10.0, 23.0, 0.0, 0.0, 0.0, 0.0}},
      {"replicate_2d_negative", DType::float32, {1, 3, 4}, {1, 4, 3},
       [](const Tensor& x) { return pad(x, {-2, 1, 2, -1}, "replicate"); },
       {2.5, 1.0, 1.0, 2.5, 1.0, 1.0, 2.5, 1.0, 1.0, 2.0, 0.5, 0.5},
       {0.0, 0.0, 12.0, 33.0, 0.0, 0.0, 10.0, 23.0, 0.0, 0.0, 0.0, 0.0}},
      {"constant_crop_and_pad", DType::float64, {2, 3, 4}, {3, 5, 4},
       [](const Tensor& x) { return pad(x, {1, -1, 0, 2, 1, 0}, "constant", 1.5); },
       {1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 0.0, 1.25, 2.5, 1.5, 2.25, 0.75, 2.0, 1.5, 1.75, 0.25, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.25, 2.5, 1.0, 1.5, 0.75, 2.0, 0.5, 1.5, 0.25, 1.5, 0.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5},
       {22.0, 23.0, 24.0, 0.0, 26.0, 27.0, 28.0, 0.0, 30.0, 31.0, 32.0, 0.0, 42.0, 43.0, 44.0, 0.0, 46.0, 47.0, 48.0, 0.0, 50.0, 51.0, 52.0, 0.0}},
      {"constant_crop_and_pad", DType::float32, {2, 3, 4}, {3, 5, 4},
       [](const Tensor& x) { return pad(x, {1, -1, 0, 2, 1, 0}, "constant", 1.5); },
       {1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 0.0, 1.25, 2.5, 1.5, 2.25, 0.75, 2.0, 1.5, 1.75, 0.25, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.25, 2.5, 1.0, 1.5, 0.75, 2.0, 0.5, 1.5, 0.25, 1.5, 0.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5},
       {22.0, 23.0, 24.0, 0.0, 26.0, 27.0, 28.0, 0.0, 30.0, 31.0, 32.0, 0.0, 42.0, 43.0, 44.0, 0.0, 46.0, 47.0, 48.0, 0.0, 50.0, 51.0, 52.0, 0.0}},
  };
  return rows;
}
// clang-format on

std::vector<double> iota_values(int64_t n, double first) {
  std::vector<double> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

TEST(UpsampleTorch, ValuesAndGradientsMatchTorch113) {
  for (const UpsampleRow& r : torch_rows()) {
    SCOPED_TRACE(::testing::Message() << r.name << " " << dtype_name(r.dtype));
    const int64_t n = std::accumulate(r.x.begin(), r.x.end(), int64_t{1}, std::multiplies<>());
    std::vector<double> xs(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) xs[i] = static_cast<double>((i * 5) % 11) / 4;
    Tensor x = from_vector(xs, r.x, {.dtype = DType::float64}).to(r.dtype);
    x.set_requires_grad(true);
    const Tensor y = r.call(x);
    ASSERT_EQ(y.sizes(), r.y_shape);
    ASSERT_EQ(y.dtype(), r.dtype);
    y.backward(
        from_vector(iota_values(y.numel(), 1), y.sizes(), {.dtype = DType::float64}).to(r.dtype));
    // Weighted sums of a few terms: within a few ulps of torch's order of operations.
    const double tol = r.dtype == DType::float64 ? 1e-14 : 2e-6;
    const std::vector<double> got_y = y.to_vector<double>(), got_g = x.grad().to_vector<double>();
    ASSERT_EQ(got_y.size(), r.y.size());
    ASSERT_EQ(got_g.size(), r.grad.size());
    for (size_t i = 0; i < got_y.size(); ++i)
      EXPECT_LE(std::abs(got_y[i] - r.y[i]), tol * std::max(1.0, std::abs(r.y[i])))
          << "output " << i << ": " << got_y[i] << " vs torch " << r.y[i];
    for (size_t i = 0; i < got_g.size(); ++i)
      EXPECT_LE(std::abs(got_g[i] - r.grad[i]), tol * std::max(1.0, std::abs(r.grad[i])))
          << "input gradient " << i << ": " << got_g[i] << " vs torch " << r.grad[i];
  }
}

// Each bad call, the error type and the part of torch's message it must carry.
struct ErrorRow {
  const char* name;
  std::function<void()> call;
  std::function<std::string(const std::function<void()>&)> thrown_as;
  std::string message;
};

template <typename E>
std::string thrown_as(const std::function<void()>& f) {
  return thrown<E>(f);
}

TEST(UpsampleTorch, ErrorsAsTorch) {
  const Tensor x = zeros({1, 1, 2, 3});
  const std::vector<ErrorRow> rows = {
      {"size_and_scale",
       [&] {
         interpolate(x, {2, 2}, {2.0});
       },
       thrown_as<ValueError>, "only one of size or scale_factor should be defined"},
      {"neither", [&] { interpolate(x, {}); }, thrown_as<ValueError>,
       "either size or scale_factor should be defined"},
      {"size_rank",
       [&] {
         interpolate(x, {2, 2, 2});
       },
       thrown_as<ValueError>,
       "Input and output must have the same number of spatial dimensions, but got input with "
       "spatial dimensions of [2, 3] and output size of (2, 2, 2)"},
      {"scale_rank",
       [&] {
         interpolate(x, {}, {2.0, 2.0, 2.0});
       },
       thrown_as<ValueError>,
       "Input and scale_factor must have the same number of spatial dimensions, but got input "
       "with spatial dimensions of [2, 3] and scale_factor of shape (2.0, 2.0, 2.0)"},
      {"nearest_align_corners",
       [&] {
         interpolate(x, {2, 2}, {}, "nearest", true);
       },
       thrown_as<ValueError>,
       "align_corners option can only be set with the interpolating modes: linear | bilinear | "
       "bicubic | trilinear"},
      {"unknown_mode",
       [&] {
         interpolate(x, {2, 2}, {}, "bogus");
       },
       thrown_as<NotImplementedError>,
       "Input Error: Only 3D, 4D and 5D input Tensors supported (got 4D) for the modes: nearest "
       "| linear | bilinear | bicubic | trilinear | area | nearest-exact (got bogus)"},
      {"zero_size",
       [&] {
         interpolate(x, {0, 2});
       },
       thrown_as<ValueError>,
       "Input and output sizes should be greater than 0, but got input (H: 2, W: 3) output (H: "
       "0, W: 2)"},
      {"small_scale", [&] { interpolate(x, {}, {0.1}); }, thrown_as<ValueError>,
       "output (H: 0, W: 0)"},
      {"bilinear_3d",
       [&] {
         interpolate(zeros({1, 2, 3}), {2}, {}, "bilinear");
       },
       thrown_as<NotImplementedError>, "Got 3D input, but bilinear mode needs 4D input"},
      {"integer_input",
       [&] {
         interpolate(zeros({1, 1, 2, 2}, {.dtype = DType::int64}), {3, 3});
       },
       thrown_as<DTypeError>, "interpolate: input (1, 1, 2, 2) int64 has an unsupported dtype"},
      {"pad_odd", [&] { pad(x, {1}); }, thrown_as<ValueError>,
       "Padding length must be divisible by 2"},
      {"pad_too_long",
       [&] {
         pad(x, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
       },
       thrown_as<ValueError>, "Padding length too large"},
      {"pad_bad_mode",
       [&] {
         pad(x, {1, 1}, "bogus");
       },
       thrown_as<NotImplementedError>, "Unrecognised padding mode bogus"},
      {"reflect_value",
       [&] {
         pad(x, {1, 1, 1, 1}, "reflect", 1.0);
       },
       thrown_as<ValueError>, "Padding mode \"reflect\" doesn't take in value argument"},
      {"reflect_1d_on_4d",
       [&] {
         pad(x, {1, 1}, "reflect");
       },
       thrown_as<NotImplementedError>,
       "Only 2D, 3D, 4D, 5D padding with non-constant padding are supported for now"},
      {"replicate_2d_on_2d",
       [&] {
         pad(zeros({2, 3}), {1, 1, 1, 1}, "replicate");
       },
       thrown_as<NotImplementedError>,
       "Only 2D, 3D, 4D, 5D padding with non-constant padding are supported for now"},
      {"reflect_too_wide",
       [&] {
         pad(x, {1, 1, 2, 2}, "reflect");
       },
       thrown_as<ValueError>,
       "Padding size should be less than the corresponding input dimension, but got: padding (2, "
       "2) at dimension 2 of input (1, 1, 2, 3)"},
      {"replicate_too_small",
       [&] {
         pad(zeros({2, 3}), {-2, -1}, "replicate");
       },
       thrown_as<ShapeError>, "input (W: 3) is too small. Calculated output W: 0"},
      {"replicate_empty",
       [&] {
         pad(zeros({2, 0}), {1, 1}, "replicate");
       },
       thrown_as<ShapeError>,
       "Expected 2D or 3D (batch mode) tensor with possibly 0 batch size and other non-zero "
       "dimensions for input, but got: [2, 0]"},
      {"constant_negative_size",
       [&] {
         pad(x, {-2, -2});
       },
       thrown_as<ShapeError>,
       "The input size 3, plus negative padding -2 and -2 resulted in a negative output size"},
      // torch crops each negative side in turn and, with any positive pad, wants every padded
      // dim above 0: these shapes it refuses were (2, 3) zeros, (2, 1) and (4, 0).
      {"constant_crop_past_the_input",
       [&] {
         pad(zeros({2, 3}), {3, -5});
       },
       thrown_as<ShapeError>, "crops more than dimension 1"},
      {"constant_empty_and_grown",
       [&] {
         pad(zeros({2, 3}), {-4, 1});
       },
       thrown_as<ShapeError>, "The input size 3, plus negative padding -4 and 1"},
      {"constant_empty_dim_beside_a_pad",
       [&] {
         pad(zeros({2, 3}), {-3, 0, 1, 1});
       },
       thrown_as<ShapeError>, "The input size 3, plus negative padding -3 and 0"},
  };
  for (const ErrorRow& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_CONTAINS(r.thrown_as(r.call), r.message);
  }
}

TEST(UpsampleTorch, ShapesAsTorch) {
  struct Row {
    const char* name;
    std::function<Tensor()> call;
    Shape want;
  };
  const Tensor x = zeros({2, 3, 5, 7});
  const std::vector<Row> rows = {
      {"size_scalar", [&] { return interpolate(x, {4}); }, {2, 3, 4, 4}},
      {"scale_floor", [&] { return interpolate(x, {}, {1.5}, "bilinear"); }, {2, 3, 7, 10}},
      {"zero_batch",
       [&] {
         return interpolate(zeros({0, 3, 5, 7}), {2, 2});
       },
       {0, 3, 2, 2}},
      {"constant_zero_size",
       [&] {
         return pad(zeros({2, 3}), {-1, -2});
       },
       {2, 0}},
      {"constant_leading_dims",
       [&] {
         return pad(zeros({2, 3}), {0, 0, 1, 2});
       },
       {5, 3}},
      {"replicate_zero_batch",
       [&] {
         return pad(zeros({0, 2, 3}), {1, 1}, "replicate");
       },
       {0, 2, 5}},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    EXPECT_EQ(r.call().sizes(), r.want);
  }
}

TEST(UpsampleTorch, NodeNamesAreTorchs) {
  Tensor x = zeros({1, 2, 4, 4});
  x.set_requires_grad(true);
  EXPECT_EQ(grad_fn_name(interpolate(x, {2, 3})), "UpsampleNearest2DBackward1");
  EXPECT_EQ(grad_fn_name(interpolate(x, {}, {2.0}, "bilinear")), "UpsampleBilinear2DBackward1");
}

// reflection_pad and replication_pad are on CPU autocast's fp32 list, constant pad and the
// upsampling ops on no CPU list (upsample_* are CUDA fp32: their table rows in
// tests/precision/test_autocast_spec.cpp).
TEST(UpsampleTorch, CpuAutocastRunsThePaddingOpsInFloat32) {
  struct Row {
    const char* name;
    std::function<Tensor(const Tensor&)> call;
    DType want;
  };
  const std::vector<Row> rows = {
      {"reflect",
       [](const Tensor& t) {
         return pad(t, {1, 1}, "reflect");
       },
       DType::float32},
      {"replicate",
       [](const Tensor& t) {
         return pad(t, {1, 1}, "replicate");
       },
       DType::float32},
      {"constant",
       [](const Tensor& t) {
         return pad(t, {1, 1});
       },
       DType::bfloat16},
      {"bilinear",
       [](const Tensor& t) {
         return interpolate(t, {3, 4}, {}, "bilinear");
       },
       DType::bfloat16},
  };
  const Tensor x = randn({1, 1, 2, 3}).to(DType::bfloat16);
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    autocast_enter(DeviceType::cpu, true, DType::bfloat16, true);
    const DType got = r.call(r.name[0] == 'b' ? x : x.view({1, 2, 3})).dtype();
    autocast_exit(DeviceType::cpu);
    EXPECT_EQ(got, r.want);
  }
}

}  // namespace
}  // namespace fabric
