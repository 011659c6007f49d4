// multinomial (multinomial.h): torch 1.13's checks and its two CPU algorithms, on the host.
#include "tensor/multinomial.h"

#include <cmath>
#include <vector>

#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/torch_cpu_rng.h"

namespace fabric {
namespace {

// k float64 uniforms in [0, 1): torch's stream for a torch_cpu generator, else Philox's.
std::vector<double> uniforms(Generator& g, int64_t k) {
  if (k == 0) return {};
  if (g.torch_cpu()) {
    TorchCpuRng& rng = g.torch_cpu_for_draw();
    auto lock = rng.lock();
    std::vector<double> u(static_cast<size_t>(k));
    for (double& x : u) x = rng.uniform_double(0.0, 1.0);
    return u;
  }
  return rand({k}, {.dtype = DType::float64}, &g).to_vector<double>();
}

// Per row: cumulative sums in T, normalised, last = 1; each sample the first slot whose
// cumulative probability is not below a float64 uniform.
template <typename T>
Tensor with_replacement(const Tensor& probs, int64_t samples, Generator& g) {
  const int64_t n = probs.size(-1), rows = probs.numel() / n;
  const std::vector<T> p = probs.contiguous().to_vector<T>();
  std::vector<int64_t> out(static_cast<size_t>(rows * samples));
  std::vector<T> cum(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    T sum = 0;
    for (int64_t j = 0; j < n; ++j) {
      const T v = p[static_cast<size_t>(r * n + j)];
      FABRIC_CHECK(
          v >= 0, ValueError,
          "multinomial: invalid multinomial distribution (encountering probability entry < 0)");
      FABRIC_CHECK(
          std::isfinite(v), ValueError,
          "multinomial: invalid multinomial distribution (encountering probability entry = "
          "infinity or NaN)");
      sum += v;
      cum[static_cast<size_t>(j)] = sum;
    }
    FABRIC_CHECK(sum > 0, ValueError,
                 "multinomial: invalid multinomial distribution (sum of probabilities <= 0)");
    for (T& c : cum) c /= sum;
    cum[static_cast<size_t>(n - 1)] = 1;
    const std::vector<double> u = uniforms(g, samples);
    for (int64_t s = 0; s < samples; ++s) {
      int64_t lo = 0, hi = n;
      while (hi > lo) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (static_cast<double>(cum[static_cast<size_t>(mid)]) < u[static_cast<size_t>(s)])
          lo = mid + 1;
        else
          hi = mid;
      }
      out[static_cast<size_t>(r * samples + s)] = lo;
    }
  }
  Shape shape = probs.sizes();
  shape.back() = samples;
  return from_vector(out, shape);
}

}  // namespace

Tensor multinomial(const Tensor& probs_in, int64_t num_samples, bool replacement, Generator* gen) {
  FABRIC_CHECK(probs_in.defined(), ValueError, "multinomial: got an undefined tensor");
  FABRIC_CHECK(probs_in.dim() == 1 || probs_in.dim() == 2, ShapeError,
               "multinomial: prob_dist must be 1 or 2 dim, got shape ",
               shape_str(probs_in.sizes()));
  FABRIC_CHECK(is_floating(probs_in.dtype()) && !is_fp8(probs_in.dtype()), DTypeError,
               "multinomial only supports floating-point dtypes for input, got: ",
               dtype_name(probs_in.dtype()));
  FABRIC_CHECK(num_samples > 0, ValueError, "multinomial: cannot sample n_sample <= 0 samples");
  const int64_t n = probs_in.size(-1);
  FABRIC_CHECK(
      replacement || num_samples <= n, ValueError,
      "multinomial: cannot sample n_sample > prob_dist.size(-1) samples without replacement");
  FABRIC_CHECK(n <= (int64_t{1} << 24), ValueError,
               "multinomial: number of categories cannot exceed 2^24");
  const Device device = probs_in.device();
  const Tensor probs = probs_in.detach().to(Device::cpu());
  Generator& g = gen ? *gen : default_generator();
  Shape out_shape = probs.sizes();
  out_shape.back() = num_samples;
  if (probs.numel() == 0) return zeros(out_shape, {.dtype = DType::int64, .device = device});

  Tensor result;
  if (!replacement || num_samples == 1) {
    const bool valid = amax(probs).item<double>() < INFINITY && amin(probs).item<double>() >= 0;
    FABRIC_CHECK(valid, ValueError,
                 "multinomial: probability tensor contains either `inf`, `nan` or element < 0");
    const Tensor row_sums = probs.dim() == 1 ? sum(probs) : sum(probs, {1});
    FABRIC_CHECK(!any(eq(row_sums, Scalar(0.0))).item<bool>(), ValueError,
                 "multinomial: invalid multinomial distribution (sum of probabilities <= 0)");
    // Gumbel-max as exponentials: argmax of p / q with q ~ Exp(1) (torch's CPU kernel draws
    // -1/lambda * log(1 - u) in float64 and rounds it to the dtype).
    const std::vector<double> u = uniforms(g, probs.numel());
    std::vector<double> q(u.size());
    for (size_t i = 0; i < u.size(); ++i) q[i] = -1.0 / 1.0 * std::log(1.0 - u[i]);
    const Tensor ratio = div(probs.contiguous(), from_vector(q, probs.sizes()).to(probs.dtype()));
    result = num_samples == 1
                 ? argmax(ratio, -1, /*keepdim=*/true)
                 : std::get<1>(topk(ratio, num_samples, -1, /*largest=*/true, /*sorted=*/true));
  } else if (probs.dtype() == DType::float64) {
    result = with_replacement<double>(probs, num_samples, g);
  } else {
    result = with_replacement<float>(probs.to(DType::float32), num_samples, g);
  }
  return result.to(device);
}

}  // namespace fabric
