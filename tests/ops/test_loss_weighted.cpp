// cross_entropy / nll_loss with a per-class weight and cross_entropy with class-probability
// targets, against torch 1.13 itself (values and gradients of fixed inputs), against the fused
// unweighted path, and their argument errors and autocast class. The naive-reference and
// finite-difference checks are the harness rows of op_cases_loss_weighted.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <iostream>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/grad_mode.h"
#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tests/common/cpu_autocast.h"
#include "tests/common/expect_error.h"

namespace fabric {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

using LossFn = std::function<Tensor(const Tensor& x, const Tensor& t, const Tensor& w)>;

// One torch 1.13 CPU call: F.cross_entropy / F.nll_loss(x, t, weight=w, ...) on these values in
// `dtype`, then loss.sum().backward(); values and gradients pasted with 17 significant digits
// (generator: x, probabilities and w built from the same doubles). torch has a weight gradient
// only with probabilities (nll_loss refuses a weight that requires grad).
struct TorchRow {
  const char* name;
  DType dtype;
  Shape x_shape;
  std::vector<double> x;
  Shape t_shape;
  std::vector<double> t;  // class indices (int64), or probabilities (in `dtype`) when `probs`
  bool probs;
  std::vector<double> w;  // (C) in `dtype`; empty: no weight
  LossFn loss;
  std::vector<double> value;                   // row-major: one element unless reduction "none"
  std::vector<double> grad_x, grad_t, grad_w;  // grad_t / grad_w: probability rows only
};

// clang-format off
const std::vector<TorchRow>& torch_rows() {
  static const std::vector<TorchRow> rows = {
      {"cross_entropy/weight_mean", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, 2.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.0, w); },
       {2.1405440230081103}, {-0.074834528899323252, 0.0027933400296760395, 0.072041188869647207, 0.007885067184480574, 0.26111756353872773, -0.26900263072320829, 0.27617206767162988, -0.28451174148964464, 0.0083396738180147, 0.030397492104600746, 0.13623210813087677, -0.16662960023547757}, {}, {}},
      {"cross_entropy/weight_mean", DType::float32, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, 2.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.0, w); },
       {2.1405439376831055}, {-0.074834533035755157, 0.0027933402452617884, 0.072041191160678864, 0.0078850667923688889, 0.26111757755279541, -0.26900264620780945, 0.27617207169532776, -0.2845117449760437, 0.008339674212038517, 0.030397489666938782, 0.13623210787773132, -0.1666296124458313}, {}, {}},
      {"cross_entropy/weight_ignore_mean", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, -100.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.0, w); },
       {1.3331849489122898}, {-0.10289747723656946, 0.003840842540804554, 0.099056634695764909, 0.0, 0.0, 0.0, 0.37973659304849111, -0.3912036445482614, 0.011467051499770212, 0.041796551643826028, 0.18731914867995558, -0.2291157003237817}, {}, {}},
      {"cross_entropy/weight_ignore_mean", DType::float32, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, -100.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.0, w); },
       {1.3331849575042725}, {-0.10289748013019562, 0.0038408427499234676, 0.099056631326675415, 0.0, 0.0, 0.0, 0.37973660230636597, -0.39120364189147949, 0.011467051692306995, 0.041796546429395676, 0.18731915950775146, -0.22911569476127625}, {}, {}},
      {"cross_entropy/weight_ignore1_sum", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, 1.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, 1, "sum", 0.0, w); },
       {2.2824792711538882}, {-0.41158990894627784, 0.015363370163218216, 0.39622653878305963, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.16718620657530411, 0.74927659471982233, -0.91646280129512681}, {}, {}},
      {"cross_entropy/weight_ignore_none", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, -100.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "none", 0.0, w); },
       {0.86631099155101632, 0.0, 3.050260524495271, 1.4161682796028716}, {-0.41158990894627784, 0.015363370163218216, 0.39622653878305963, 0.0, 0.0, 0.0, 1.5189463721939644, -1.5648145781930456, 0.045868205999080848, 0.16718620657530411, 0.74927659471982233, -0.91646280129512681}, {}, {}},
      {"cross_entropy/weight_smooth_mean", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, -100.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.20000000000000001, w); },
       {1.4154222545799375}, {-0.078863302982092626, -0.028212209945593928, 0.10707551292768654, 0.0, 0.0, 0.0, 0.34608748684525842, -0.33179006824504398, -0.014297418600214469, 0.032534406051741016, 0.14982316759817885, -0.18235757364991992}, {}, {}},
      {"cross_entropy/weight_smooth_mean", DType::float32, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, -100.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.20000000000000001, w); },
       {1.4154223203659058}, {-0.07886330783367157, -0.028212212026119232, 0.10707551240921021, 0.0, 0.0, 0.0, 0.34608748555183411, -0.33179005980491638, -0.014297420158982277, 0.0325344018638134, 0.14982317388057709, -0.18235759437084198}, {}, {}},
      {"cross_entropy/weight_smooth_sum", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, -100.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "sum", 0.20000000000000001, w); },
       {5.6616890183197501}, {-0.3154532119283705, -0.11284883978237571, 0.42830205171074615, 0.0, 0.0, 0.0, 1.3843499473810337, -1.3271602729801759, -0.057189674400857878, 0.13013762420696406, 0.59929267039271539, -0.72943029459967967}, {}, {}},
      {"cross_entropy/weight_smooth_ignore2_none", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {2.0, 0.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, 2, "none", 0.29999999999999999, w); },
       {0.0, 2.0701261654477237, 3.0202344720457437, 0.0}, {0.0, 0.0, 0.0, -0.37831606524267841, 0.51807329973150129, -0.13975723448882293, 1.3170517349745678, -1.2083331203737409, -0.10871861460082724, 0.0, 0.0, 0.0}, {}, {}},
      {"cross_entropy/spatial_weight_smooth_mean", DType::float64, {2, 3, 2}, {0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.25, 0.0, -2.0, 0.5, 0.75, -0.5}, {2, 2}, {0.0, 2.0, -100.0, 1.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.10000000000000001, w); },
       {0.73716809995712906}, {-0.091384344905146547, 0.018075099096021542, 0.096640838444708263, 0.060964723824648022, -0.0052564935395617157, -0.07903982292066962, 0.0, 0.14431134476394089, 0.0, -0.22186781098976724, 0.0, 0.07755646622582632}, {}, {}},
      {"cross_entropy/spatial_weight_smooth_mean", DType::float32, {2, 3, 2}, {0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.25, 0.0, -2.0, 0.5, 0.75, -0.5}, {2, 2}, {0.0, 2.0, -100.0, 1.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.10000000000000001, w); },
       {0.73716813325881958}, {-0.091384351253509521, 0.018075093626976013, 0.096640832722187042, 0.060964711010456085, -0.00525649543851614, -0.079039819538593292, 0.0, 0.1443113386631012, 0.0, -0.22186781466007233, 0.0, 0.077556461095809937}, {}, {}},
      {"cross_entropy/spatial_weight_none", DType::float64, {2, 3, 2}, {0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.25, 0.0, -2.0, 0.5, 0.75, -0.5}, {2, 2}, {0.0, 2.0, -100.0, 1.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "none", 0.0, w); },
       {0.87617950511791121, 0.47067129500588695, 0.0, 1.3605393412834692}, {-0.41331775396050247, 0.089966692972671403, 0.38848287466757114, 0.31401461322329538, 0.02483487929293126, -0.40398130619596689, 0.0, 0.61439177143699675, 0.0, -0.98703921788869198, 0.0, 0.37264744645169512}, {}, {}},
      {"cross_entropy/unbatched_weight_smooth_mean", DType::float64, {3}, {0.5, -1.25, 2.0}, {}, {1.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.20000000000000001, w); },
       {3.0587805175618974}, {0.14836550330028137, -0.83798837569532603, 0.68962287239504472}, {}, {}},
      {"cross_entropy/weight_all_ignored_mean", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {-100.0, -100.0, -100.0, -100.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.0, w); },
       {kNaN}, {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}, {}, {}},
      {"nll_loss/weight_ignore_mean", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, -100.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return nll_loss(x, t, -100, "mean", w); },
       {-0.46875}, {-0.125, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.5, 0.0, 0.0, 0.0, -0.375}, {}, {}},
      {"nll_loss/weight_ignore_mean", DType::float32, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, -100.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return nll_loss(x, t, -100, "mean", w); },
       {-0.46875}, {-0.125, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.5, 0.0, 0.0, 0.0, -0.375}, {}, {}},
      {"nll_loss/weight_sum", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4}, {0.0, 2.0, 1.0, 2.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return nll_loss(x, t, -100, "sum", w); },
       {-0.75}, {-0.5, 0.0, 0.0, 0.0, 0.0, -1.5, 0.0, -2.0, 0.0, 0.0, 0.0, -1.5}, {}, {}},
      {"nll_loss/spatial_weight_mean", DType::float64, {2, 3, 2}, {0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.25, 0.0, -2.0, 0.5, 0.75, -0.5}, {2, 2}, {0.0, 2.0, -100.0, 1.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return nll_loss(x, t, -100, "mean", w); },
       {-0.875}, {-0.125, 0.0, 0.0, 0.0, 0.0, -0.375, 0.0, 0.0, 0.0, -0.5, 0.0, 0.0}, {}, {}},
      {"nll_loss/spatial_weight_ignore0_none", DType::float64, {2, 3, 2}, {0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.25, 0.0, -2.0, 0.5, 0.75, -0.5}, {2, 2}, {0.0, 2.0, 0.0, 1.0}, false, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return nll_loss(x, t, 0, "none", w); },
       {0.0, -2.25, 0.0, -1.0}, {0.0, 0.0, 0.0, 0.0, 0.0, -1.5, 0.0, 0.0, 0.0, -2.0, 0.0, 0.0}, {}, {}},
      {"cross_entropy/probs_mean", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4, 3}, {0.20000000000000001, 0.5, 0.29999999999999999, 1.0, 0.0, 0.0, 0.10000000000000001, 0.10000000000000001, 0.80000000000000004, 0.25, 0.25, 0.5}, true, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.0, Tensor()); },
       {2.5238414964204701}, {-0.0057949544731389288, -0.1173183149183909, 0.12311326939152982, -0.24277202174755946, 0.23935776657716709, 0.0034142551703923566, 0.16486829652424556, 0.029398177725869307, -0.1942664742501149, -0.03463563223744931, 0.062379432453303726, -0.027743800215854458}, {0.43315549577550816, 0.87065549577550816, 0.058155495775508166, 0.88587538848257463, 0.010875388482574622, 1.0733753884825745, 0.068782565561908857, 0.38128256556190887, 0.94378256556190887, 0.5485280466004786, 0.1735280466004786, 0.2360280466004786}, {}},
      {"cross_entropy/probs_mean", DType::float32, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4, 3}, {0.20000000000000001, 0.5, 0.29999999999999999, 1.0, 0.0, 0.0, 0.10000000000000001, 0.10000000000000001, 0.80000000000000004, 0.25, 0.25, 0.5}, true, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.0, Tensor()); },
       {2.523841381072998}, {-0.0057949572801589966, -0.11731831729412079, 0.12311325967311859, -0.24277202785015106, 0.23935776948928833, 0.0034142557997256517, 0.16486829519271851, 0.029398178681731224, -0.19426648318767548, -0.034635633230209351, 0.062379434704780579, -0.027743801474571228}, {0.43315550684928894, 0.87065547704696655, 0.058155495673418045, 0.885875403881073, 0.01087538618594408, 1.0733753442764282, 0.06878255307674408, 0.38128256797790527, 0.94378256797790527, 0.54852807521820068, 0.1735280454158783, 0.2360280454158783}, {}},
      {"cross_entropy/probs_weight_mean", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4, 3}, {0.20000000000000001, 0.5, 0.29999999999999999, 1.0, 0.0, 0.0, 0.10000000000000001, 0.10000000000000001, 0.80000000000000004, 0.25, 0.25, 0.5}, true, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.0, w); },
       {2.9276644968337511}, {0.043517820566634668, -0.23809338812350589, 0.19457556755687125, -0.12138601087377973, 0.11967888328858355, 0.0017071275851961783, 0.26280902996015609, 0.028877357702510504, -0.29168638766266664, 0.0070635056735071939, 0.046709219623292622, -0.053772725296799884}, {0.21657774788775408, 1.7413109915510163, 0.087233243663262253, 0.44293769424128732, 0.021750776965149245, 1.6100630827238618, 0.034391282780954428, 0.76256513112381774, 1.4156738483428633, 0.2742640233002393, 0.34705609320095721, 0.3540420699007179}, {1.1165167558439868, 0.51683801609406466, 0.89048672448241883}},
      {"cross_entropy/probs_weight_mean", DType::float32, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4, 3}, {0.20000000000000001, 0.5, 0.29999999999999999, 1.0, 0.0, 0.0, 0.10000000000000001, 0.10000000000000001, 0.80000000000000004, 0.25, 0.25, 0.5}, true, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.0, w); },
       {2.9276642799377441}, {0.043517820537090302, -0.23809339106082916, 0.19457556307315826, -0.12138601392507553, 0.11967888474464417, 0.0017071278998628259, 0.26280903816223145, 0.028877360746264458, -0.29168638586997986, 0.0070635015144944191, 0.046709224581718445, -0.053772725164890289}, {0.21657775342464447, 1.7413109540939331, 0.087233245372772217, 0.4429377019405365, 0.021750772371888161, 1.6100630760192871, 0.03439127653837204, 0.76256513595581055, 1.4156738519668579, 0.27426403760910034, 0.34705609083175659, 0.35404205322265625}, {1.1165168285369873, 0.51683801412582397, 0.89048671722412109}},
      {"cross_entropy/probs_weight_smooth_sum", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4, 3}, {0.20000000000000001, 0.5, 0.29999999999999999, 1.0, 0.0, 0.0, 0.10000000000000001, 0.10000000000000001, 0.80000000000000004, 0.25, 0.25, 0.5}, true, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "sum", 0.25, w); },
       {11.218948819061879}, {0.14782685573571872, -0.87070458426170549, 0.72287772852598664, -0.39618739495141853, 0.51151367196864017, -0.11532627701722166, 0.99991815191279565, -0.0075036899246427383, -0.99241446198815308, 0.016676340703922498, 0.13996690214094951, -0.15664324284487227}, {0.64973324366326224, 5.2239329746530494, 0.26169973098978677, 1.328813082723862, 0.065252330895447741, 4.8301892481715853, 0.10317384834286328, 2.287695393371453, 4.2470215450285895, 0.82279206990071785, 1.0411682796028716, 1.0621262097021538}, {3.9949974330054503, 2.0292945470890174, 3.4419073389207471}},
      {"cross_entropy/probs_smooth_none", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4, 3}, {0.20000000000000001, 0.5, 0.29999999999999999, 1.0, 0.0, 0.0, 0.10000000000000001, 0.10000000000000001, 0.80000000000000004, 0.25, 0.25, 0.5}, true, {},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "none", 0.10000000000000001, Tensor()); },
       {2.1234553164353662, 3.4518348872636317, 3.065963595580969, 1.2024455197352479}, {-0.036513151225889051, -0.45260659300689693, 0.48911974423278592, -0.9044214203235712, 0.92409773297533504, -0.019676312651763908, 0.63613985276364882, 0.094259377570143882, -0.73039923033379295, -0.1468758622831306, 0.24118439647988155, -0.09430853419675117}, {1.5593597847918295, 3.1343597847918296, 0.2093597847918294, 3.1891513985372688, 0.039151398537268643, 3.8641513985372682, 0.24761723602287189, 1.3726172360228719, 3.3976172360228718, 1.9747009677617231, 0.62470096776172301, 0.84970096776172299}, {}},
      {"cross_entropy/probs_weight_none", DType::float64, {4, 3}, {0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.5, 0.25, -2.0, -0.5, 1.0, 0.75}, {4, 3}, {0.20000000000000001, 0.5, 0.29999999999999999, 1.0, 0.0, 0.0, 0.10000000000000001, 0.10000000000000001, 0.80000000000000004, 0.25, 0.25, 0.5}, true, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "none", 0.0, w); },
       {3.7605640738081503, 1.7717507769651493, 4.8489388802590714, 1.3294042563026323}, {0.17407128226653867, -0.95237355249402356, 0.77830227022748499, -0.48554404349511893, 0.47871553315433418, 0.0068285103407847133, 1.0512361198406244, 0.11550943081004202, -1.1667455506506665, 0.028254022694028776, 0.18683687849317049, -0.21509090118719953}, {0.86631099155101632, 6.9652439662040653, 0.34893297465304901, 1.7717507769651493, 0.087003107860596979, 6.4402523308954471, 0.13756513112381771, 3.050260524495271, 5.662695393371453, 1.0970560932009572, 1.3882243728038288, 1.4161682796028716}, {4.4660670233759472, 2.0673520643762586, 3.5619468979296753}},
      {"cross_entropy/probs_spatial_weight_smooth_mean", DType::float64, {2, 3, 2}, {0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.25, 0.0, -2.0, 0.5, 0.75, -0.5}, {2, 3, 2}, {0.20000000000000001, 0.59999999999999998, 0.5, 0.29999999999999999, 0.29999999999999999, 0.10000000000000001, 0.0, 0.25, 1.0, 0.25, 0.0, 0.5}, true, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.20000000000000001, w); },
       {2.9804087287161005}, {0.036967292016421481, -0.051739476629485047, 0.05932376558290358, -0.095415082449925512, -0.096291057599325103, 0.14715455907941055, 0.27530204383732709, 0.071625260953820283, -0.42233559627048928, 0.039714133610681795, 0.14703355243316227, -0.11133939456450208}, {0.17523590102358225, 0.2813780863337258, 0.100943604094329, 0.6255123453349033, 0.90070770307074677, 0.094134259001177389, 0.049792569686008453, 0.11802696706417347, 1.499170278744034, 0.27210786825669386, 0.29937770905802535, 0.50408090119252036}, {0.5708338015599056, 1.0067336297458365, 0.45434971229631627}},
      {"cross_entropy/probs_spatial_weight_smooth_mean", DType::float32, {2, 3, 2}, {0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 1.25, 0.0, -2.0, 0.5, 0.75, -0.5}, {2, 3, 2}, {0.20000000000000001, 0.59999999999999998, 0.5, 0.29999999999999999, 0.29999999999999999, 0.10000000000000001, 0.0, 0.25, 1.0, 0.25, 0.0, 0.5}, true, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.20000000000000001, w); },
       {2.9804091453552246}, {0.036967277526855469, -0.051739480346441269, 0.059323735535144806, -0.095415085554122925, -0.096291065216064453, 0.1471545547246933, 0.27530202269554138, 0.071625255048274994, -0.42233559489250183, 0.039714127779006958, 0.14703354239463806, -0.11133939027786255}, {0.17523591220378876, 0.2813781201839447, 0.10094363987445831, 0.62551236152648926, 0.90070772171020508, 0.094134286046028137, 0.049792572855949402, 0.1180269718170166, 1.4991703033447266, 0.27210786938667297, 0.29937773942947388, 0.50408095121383667}, {0.57083386182785034, 1.0067336559295654, 0.45434975624084473}},
      {"cross_entropy/probs_unbatched_weight_mean", DType::float64, {3}, {0.0, 3.5, -0.75}, {3}, {0.20000000000000001, 0.5, 0.29999999999999999}, true, {0.5, 2.0, 1.5},
       [](const Tensor& x, const Tensor& t, const Tensor& w) { return cross_entropy(x, t, -100, "mean", 0.0, w); },
       {2.3299274085919626}, {-0.055186534834868739, 0.48401815277843602, -0.42883161794356733}, {1.7717507769651493, 0.087003107860596979, 6.4402523308954471}, {0.70870031078605977, 0.021750776965149245, 1.2880504661790895}},

  };
  return rows;
}
// clang-format on

Tensor make(const std::vector<double>& v, const Shape& shape, DType dt, bool grad) {
  // (reshaped: from_vector reads an empty shape as 1-D)
  Tensor t = from_vector(v, {}, {.dtype = DType::float64}).reshape(shape).to(dt);
  if (grad) t.set_requires_grad(true);
  return t;
}

// |got - want| relative to max(1, |want|); NaN against NaN is exact.
double rel_err(double got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0.0 : std::numeric_limits<double>::infinity();
  return std::abs(got - want) / std::max(1.0, std::abs(want));
}

TEST(LossWeighted, ValuesAndGradientsMatchTorch113) {
  double worst64 = 0, worst32 = 0;
  for (const TorchRow& r : torch_rows()) {
    SCOPED_TRACE(::testing::Message() << r.name << " " << dtype_name(r.dtype));
    const Tensor x = make(r.x, r.x_shape, r.dtype, true);
    const Tensor t = r.probs ? make(r.t, r.t_shape, r.dtype, true)
                             : make(r.t, r.t_shape, DType::float64, false).to(DType::int64);
    const Tensor w =
        r.w.empty() ? Tensor() : make(r.w, {static_cast<int64_t>(r.w.size())}, r.dtype, r.probs);
    const Tensor loss = r.loss(x, t, w);
    EXPECT_EQ(loss.dtype(), r.dtype);
    // float64: a few units in the last place (sums in another order); float32: torch's CPU
    // kernels keep some intermediates in double.
    const double tol = r.dtype == DType::float64 ? 1e-15 : 3e-7;
    double worst = 0;
    const std::vector<double> value = loss.to_vector<double>();
    ASSERT_EQ(value.size(), r.value.size());
    for (size_t i = 0; i < value.size(); ++i) {
      const double e = rel_err(value[i], r.value[i]);
      EXPECT_LE(e, tol) << "loss[" << i << "] " << value[i] << " vs torch " << r.value[i];
      worst = std::max(worst, e);
    }
    sum(loss).backward();
    std::vector<std::tuple<const char*, Tensor, std::vector<double>>> grads = {
        {"x", x.grad(), r.grad_x}};
    if (r.probs) grads.emplace_back("t", t.grad(), r.grad_t);
    if (!r.grad_w.empty()) grads.emplace_back("w", w.grad(), r.grad_w);
    for (const auto& [name, got_t, want] : grads) {
      ASSERT_TRUE(got_t.defined()) << "no gradient for " << name;
      const std::vector<double> got = got_t.to_vector<double>();
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        const double e = rel_err(got[i], want[i]);
        EXPECT_LE(e, tol) << "d/d" << name << "[" << i << "] " << got[i] << " vs torch " << want[i];
        worst = std::max(worst, e);
      }
    }
    double& w_all = r.dtype == DType::float64 ? worst64 : worst32;
    w_all = std::max(w_all, worst);
  }
  std::cout << "[ parity  ] worst relative difference vs torch 1.13: float64 " << worst64
            << ", float32 " << worst32 << "\n";
}

// A weight of ones is the unweighted loss, and one-hot probabilities are class indices (without
// ignored targets): the composed path against the fused kernels, every reduction and smoothing.
TEST(LossWeighted, ComposedPathAgreesWithTheFusedKernels) {
  const Tensor x = randn({6, 4, 3}, {.dtype = DType::float64});
  const Tensor t = randint(0, 4, {6, 3});
  const Tensor ones4 = ones({4}, {.dtype = DType::float64});
  const Tensor onehot = one_hot(t, 4).permute({0, 2, 1}).to(DType::float64);  // (6, 4, 3)
  Tensor ignored = t.clone();
  ignored.select(0, 2).fill_(-100);
  for (const std::string red : {"mean", "sum", "none"})
    for (double ls : {0.0, 0.15}) {
      SCOPED_TRACE(::testing::Message() << red << " label_smoothing=" << ls);
      auto close = [](const Tensor& a, const Tensor& b) {
        ASSERT_EQ(a.sizes(), b.sizes());
        const std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
        for (size_t i = 0; i < av.size(); ++i) EXPECT_NEAR(av[i], bv[i], 1e-13) << i;
      };
      close(cross_entropy(x, ignored, -100, red, ls, ones4),
            cross_entropy(x, ignored, -100, red, ls));
      close(cross_entropy(x, onehot, -100, red, ls), cross_entropy(x, t, -100, red, ls));
      if (ls == 0.0) close(nll_loss(x, ignored, -100, red, ones4), nll_loss(x, ignored, -100, red));
    }
}

// ---- errors ------------------------------------------------------------------------------------

template <class E>
void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  const std::string msg = thrown<E>(fn);
  for (const std::string& p : parts) EXPECT_CONTAINS(msg, p);
}

TEST(LossWeighted, BadArgumentsRaiseNamingWhatWasExpected) {
  const Tensor x = zeros({4, 3}), t = zeros({4}, {.dtype = DType::int64});
  const Tensor w = ones({3}), p = full({4, 3}, 1.0 / 3);
  // A weight of another size than C, or not 1-D (torch: "weight tensor should be defined either
  // for all 3 classes or no classes").
  expect_error<ShapeError>([&] { cross_entropy(x, t, -100, "mean", 0.0, ones({2})); },
                           {"cross_entropy", "one value per class", "(3,)", "(4, 3)", "(2,)"});
  expect_error<ShapeError>(
      [&] {
        nll_loss(x, t, -100, "mean", ones({1, 3}));
      },
      {"nll_loss", "one value per class", "(3,)", "(1, 3)"});
  expect_error<ShapeError>([&] { cross_entropy(x, p, -100, "mean", 0.0, ones({4})); },
                           {"cross_entropy", "(3,)", "(4,)"});
  expect_error<ShapeError>([&] { cross_entropy(x, t, -100, "sum", 0.2, ones({2})); },
                           {"cross_entropy", "(2,)"});
  // Class indices need the weight in the input's dtype, as torch's nll_loss ("expected scalar
  // type Float but found Double"); integer weights are refused.
  expect_error<DTypeError>([&] { cross_entropy(x, t, -100, "mean", 0.0, w.to(DType::float64)); },
                           {"cross_entropy", "weight of the input's dtype float32", "got float64"});
  expect_error<DTypeError>([&] { nll_loss(x, t, -100, "mean", w.to(DType::float64)); },
                           {"nll_loss", "input's dtype float32"});
  expect_error<DTypeError>(
      [&] { cross_entropy(x, p, -100, "mean", 0.0, ones({3}, {.dtype = DType::int64})); },
      {"cross_entropy", "floating-point weight", "int64"});
  // Probabilities: the input's shape, floating, no ignore_index >= 0, smoothing in [0, 1].
  expect_error<ShapeError>(
      [&] {
        cross_entropy(x, zeros({4, 2}));
      },
      {"cross_entropy", "class probabilities", "input's shape (4, 3)", "got (4, 2)"});
  // A floating target shaped as class indices is the dtype's mistake (torch: "expected scalar
  // type Long but found Float").
  expect_error<DTypeError>([&] { cross_entropy(x, zeros({4})); },
                           {"cross_entropy", "class indices with dtype int64", "float32",
                            "class probabilities need the input's shape (4, 3)"});
  expect_error<ValueError>(
      [&] { cross_entropy(x, p, 1); },
      {"cross_entropy", "ignore_index is not supported", "class-probability", "ignore_index=1"});
  expect_error<ValueError>([&] { cross_entropy(x, p, -100, "mean", 1.5); },
                           {"cross_entropy", "label_smoothing must be in [0, 1]", "1.5"});
  expect_error<ValueError>([&] { cross_entropy(x, p, -100, "avg"); },
                           {"cross_entropy", "reduction must be", "\"avg\""});
  // Class indices with a weight: bounds and shapes as the fused path names them.
  expect_error<IndexError>(
      [&] {
        cross_entropy(x, from_vector<int64_t>({0, 3, 1, 2}), -100, "mean", 0.1, w);
      },
      {"cross_entropy", "target 3 is out of bounds for 3 classes", "ignore_index=-100"});
  expect_error<IndexError>(
      [&] {
        nll_loss(x, from_vector<int64_t>({0, -1, 1, 2}), -100, "sum", w);
      },
      {"nll_loss", "target -1 is out of bounds"});
  expect_error<ShapeError>(
      [&] { nll_loss(x, zeros({3}, {.dtype = DType::int64}), -100, "mean", w); },
      {"nll_loss", "expected target of shape (4,)", "got target of shape (3,)"});
  expect_error<DTypeError>([&] { nll_loss(x, p, -100, "mean", w); },
                           {"nll_loss", "class indices", "float32"});
  expect_error<ValueError>([&] { nll_loss(x, t, -100, "avg", w); }, {"nll_loss", "\"avg\""});
}

// torch 1.13's nll_loss has no derivative for the weight and refuses one that requires grad while
// autograd records (class indices, with or without smoothing); probabilities do differentiate it.
TEST(LossWeighted, AClassIndexWeightThatRequiresGradIsRefusedWhileRecording) {
  const Tensor x = full({4, 3}, 0.5, {.requires_grad = true});
  const Tensor t = from_vector<int64_t>({0, 1, 2, 1}), p = full({4, 3}, 1.0 / 3);
  const Tensor w = full({3}, 2.0, {.requires_grad = true});
  struct Row {
    const char* what;
    const char* op;
    std::function<Tensor(const Tensor& x)> call;
    bool refused;
  };
  const std::vector<Row> rows = {
      {"cross_entropy", "cross_entropy",
       [&](const Tensor& in) { return cross_entropy(in, t, -100, "mean", 0.0, w); }, true},
      {"cross_entropy smoothed", "cross_entropy",
       [&](const Tensor& in) { return cross_entropy(in, t, -100, "none", 0.1, w); }, true},
      {"nll_loss", "nll_loss", [&](const Tensor& in) { return nll_loss(in, t, -100, "sum", w); },
       true},
      {"cross_entropy probabilities", "cross_entropy",
       [&](const Tensor& in) { return cross_entropy(in, p, -100, "mean", 0.0, w); }, false},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.what);
    for (const Tensor& in : {x, x.detach()}) {
      if (r.refused) {
        expect_error<NotImplementedError>(
            [&] { r.call(in); },
            {r.op, "derivative for 'weight' is not implemented", "weight.detach()"});
      } else {
        EXPECT_TRUE(r.call(in).requires_grad());
      }
    }
    NoGradGuard no_grad;
    EXPECT_FALSE(r.call(x).requires_grad());
  }
}

// ---- dtypes and autocast -----------------------------------------------------------------------

TEST(LossWeighted, ResultDtypesFollowTorch) {
  const Tensor x32 = zeros({2, 3}), p64 = full({2, 3}, 0.5, {.dtype = DType::float64});
  const Tensor t = zeros({2}, {.dtype = DType::int64});
  // torch multiplies log-probabilities, probabilities and weight: their promoted dtype.
  EXPECT_EQ(cross_entropy(x32, p64).dtype(), DType::float64);
  EXPECT_EQ(cross_entropy(x32, p64.to(DType::float32), -100, "mean", 0.0,
                          ones({3}, {.dtype = DType::float64}))
                .dtype(),
            DType::float64);
  // Half precision computes in float32 and returns the input's dtype.
  const Tensor xh = x32.to(DType::bfloat16), wh = ones({3}, {.dtype = DType::bfloat16});
  EXPECT_EQ(cross_entropy(xh, t, -100, "mean", 0.1, wh).dtype(), DType::bfloat16);
  EXPECT_EQ(nll_loss(xh, t, -100, "none", wh).dtype(), DType::bfloat16);
  EXPECT_EQ(cross_entropy(xh, p64.to(DType::bfloat16)).dtype(), DType::bfloat16);
}

// Large logits keep their precision: -log p is (max - x) + log(sum), as torch's log_softmax then
// nll_loss compute it; (max + log(sum)) - x lost log(sum)'s low bits (0.60413361 for torch's
// 0.60413063 at logits near 100; -0.6933594 for -0.6931472 at 1e4). Row and tiled layouts.
TEST(LossWeighted, LargeLogitsKeepTheirPrecision) {
  const Tensor x = from_vector(std::vector<float>{100.5f, 100.f, 99.f}, {1, 3});
  const Tensor t = zeros({1}, {.dtype = DType::int64});
  EXPECT_NEAR(cross_entropy(x, t).item<float>(), 0.6041306257247925, 1e-7);
  EXPECT_NEAR(cross_entropy(x, t, -100, "mean", 0.1).item<float>(), 0.6707972884178162, 1e-7);
  const std::vector<float> row =
      log_softmax(from_vector(std::vector<float>{1e4f, -1e4f, 0.f, 1e4f, -1e4f}, {5}), 0)
          .to_vector<float>();
  EXPECT_NEAR(row[0], -0.6931471824645996, 1e-7);
  EXPECT_EQ(row[1], -20000.693359375f);
  EXPECT_NEAR(row[3], -0.6931471824645996, 1e-7);
  const std::vector<float> cols =
      log_softmax(from_vector(std::vector<float>{1e4f, 100.5f, -1e4f, 100.f, 1e4f, 99.f}, {3, 2}),
                  0)
          .to_vector<float>();
  const std::vector<double> torch_cols = {-0.6931471824645996, -0.6041306257247925,
                                          -20000.693359375,    -1.1041306257247925,
                                          -0.6931471824645996, -2.104130744934082};
  for (size_t i = 0; i < cols.size(); ++i) EXPECT_NEAR(cols[i], torch_cols[i], 2e-7) << i;
}

// cross_entropy and nll_loss are float32 ops under autocast (spec §3): the weight and the
// probabilities are cast with the input, so a float32 weight with bfloat16 logits is fine there.
TEST(LossWeighted, CpuAutocastRunsInFloat32) {
  const Tensor x = full({2, 3}, 0.5, {.dtype = DType::bfloat16});
  const Tensor p = full({2, 3}, 0.25, {.dtype = DType::bfloat16});
  const Tensor t = zeros({2}, {.dtype = DType::int64});
  const Tensor w = ones({3});
  CpuAutocast region(DType::bfloat16);
  EXPECT_EQ(cross_entropy(x, t, -100, "mean", 0.0, w).dtype(), DType::float32);
  EXPECT_EQ(cross_entropy(x, t, -100, "mean", 0.0, w.to(DType::bfloat16)).dtype(), DType::float32);
  EXPECT_EQ(nll_loss(x, t, -100, "sum", w).dtype(), DType::float32);
  EXPECT_EQ(cross_entropy(x, p).dtype(), DType::float32);
  EXPECT_EQ(cross_entropy(x, p, -100, "mean", 0.1, w).dtype(), DType::float32);
}

}  // namespace
}  // namespace fabric
