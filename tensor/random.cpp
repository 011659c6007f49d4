// The default generator, the scalar Philox block, and the random factories/fills: argument
// checks, reserving the generator's counter range, then one dispatch to the device's kernel.
#include "tensor/random.h"

#include <cmath>
#include <limits>

#include "tensor/factory.h"
#include "tensor/inplace_graph.h"
#include "tensor/op_record.h"
#include "tensor/promotion.h"
#include "tensor/random_kernels.h"
#include "tensor/torch_cpu_fill.h"
#include "tensor/torch_cpu_rng.h"
#include "tensor/warning.h"

namespace fabric {

Generator& default_generator() {
  static Generator gen;
  return gen;
}

void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

bool operator==(const GeneratorState& a, const GeneratorState& b) {
  if (a.seed != b.seed || a.offset != b.offset || !a.torch_cpu != !b.torch_cpu) return false;
  return !a.torch_cpu || *a.torch_cpu == *b.torch_cpu;
}

Generator::Generator(uint64_t seed, RngAlgorithm algorithm) : seed_(seed) {
  set_algorithm(algorithm);
}

Generator::Generator(const Generator& other) { *this = other; }

Generator& Generator::operator=(const Generator& other) {
  if (this != &other) set_state(other.state());
  return *this;
}

void Generator::manual_seed(uint64_t seed) {
  seed_ = seed;
  offset_ = 0;
  if (torch_cpu_) torch_cpu_->reseed(seed);
}

void Generator::set_algorithm(RngAlgorithm algorithm) {
  torch_cpu_ =
      algorithm == RngAlgorithm::torch_cpu ? std::make_shared<TorchCpuRng>(seed_) : nullptr;
  offset_ = 0;
}

GeneratorState Generator::state() const {
  GeneratorState s{seed_, offset_, nullptr};
  if (torch_cpu_) {
    auto lock = torch_cpu_->lock();
    s.torch_cpu = std::make_shared<const TorchCpuRng>(*torch_cpu_);
  }
  return s;
}

void Generator::set_state(const GeneratorState& s) {
  seed_ = s.seed;
  offset_ = s.offset;
  torch_cpu_ = s.torch_cpu ? std::make_shared<TorchCpuRng>(*s.torch_cpu) : nullptr;
}

PhiloxBlock philox4x32(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo) {
  const uint32_t ctr[4] = {static_cast<uint32_t>(counter_lo), static_cast<uint32_t>(counter_lo >> 32),
                           static_cast<uint32_t>(counter_hi), static_cast<uint32_t>(counter_hi >> 32)};
  PhiloxBlock b;
  philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), b.v);
  return b;
}

namespace detail {

void note_generator_draw(Generator* g) {
  for (GeneratorCapture* c = open_generator_capture; c; c = c->outer) {
    bool known = false;
    for (const GeneratorCapture::Entry& e : c->drawn) known |= e.generator == g;
    if (!known) c->drawn.push_back({g, g->state()});
  }
}

}  // namespace detail

namespace {

void check_random_float_dtype(const char* op, DType dt) {
  FABRIC_CHECK(is_floating(dt) && !is_fp8(dt), DTypeError, op, ": expects a float64, float32, float16 or bfloat16 ",
               "tensor, got ", dtype_name(dt));
}

// Draws into t (any layout): straight into its memory when contiguous, else through a
// contiguous temporary, so element i of the draw is always the i-th element in row-major order.
void fill_random(Tensor& t, const RandomParams& params, Generator* gen) {
  const int64_t n = t.numel();
  if (n == 0) return;
  Generator& g = gen ? *gen : default_generator();
  if (g.torch_cpu() && t.device().is_cpu()) {
    torch_cpu_random_fill(t, params, g.torch_cpu_for_draw());
    return;
  }
  const uint64_t blocks = random_blocks_for(n, random_values_per_block(params, t.dtype()));
  const uint64_t offset = g.reserve(blocks);
  if (t.is_contiguous()) {
    random_fill_stub(t.device())(t.data_ptr(), t.dtype(), n, g.seed(), offset, params);
    t.storage()->bump_version();
  } else {
    Tensor tmp = empty(t.sizes(), {.dtype = t.dtype(), .device = t.device()});
    random_fill_stub(t.device())(tmp.data_ptr(), t.dtype(), n, g.seed(), offset, params);
    write_values(t, tmp);
  }
}

Tensor fresh(const char* op, const Shape& shape, const TensorOptions& opts) {
  for (int64_t d : shape)
    FABRIC_CHECK(d >= 0, ShapeError, op, ": negative dimension ", d, " in shape ", shape_str(shape));
  return empty(shape, {.dtype = opts.dtype, .device = opts.device});
}

}  // namespace

Tensor& uniform_(Tensor& t, double low, double high, Generator* gen) {
  FABRIC_CHECK(t.defined(), ValueError, "uniform_: got an undefined tensor");
  check_random_float_dtype("uniform_", t.dtype());
  check_no_internal_overlap("uniform_", t);  // an expanded view: torch refuses it, as copy_
  FABRIC_CHECK(std::isfinite(low) && std::isfinite(high) && low <= high, ValueError,
               "uniform_: expects a finite range [from, to) with from <= to, got from=", low, ", to=", high);
  // torch's bounds: both ends and the width representable in the dtype (a wider range filled
  // infinities and NaNs).
  const double top = max_finite(t.dtype());
  FABRIC_CHECK(low >= -top && high <= top, ValueError, "uniform_: ", low < -top ? "from" : "to",
               " is out of bounds for ", dtype_name(t.dtype()), " (from=", low, ", to=", high,
               "; the dtype holds [", -top, ", ", top, "])");
  FABRIC_CHECK(high - low <= top, ValueError, "uniform_: expects to-from <= the largest ",
               dtype_name(t.dtype()), " (", top, "), but found to=", high, " and from=", low,
               " which result in to-from to exceed the limit");
  const Tensor history = inplace_joins_graph("uniform_", t, {}) ? overwritten_history(t) : Tensor();
  fill_random(t, {.dist = RandomDist::uniform, .a = low, .b = high}, gen);
  if (history.defined()) rebase_history(t, history);
  return t;
}

Tensor& normal_(Tensor& t, double mean, double std, Generator* gen) {
  FABRIC_CHECK(t.defined(), ValueError, "normal_: got an undefined tensor");
  check_random_float_dtype("normal_", t.dtype());
  check_no_internal_overlap("normal_", t);
  // torch checks only std >= 0 (a NaN std fails it): an infinite or NaN mean, or an infinite std,
  // fill with what mean + std * z gives.
  FABRIC_CHECK(std >= 0, ValueError, "normal_: expects std >= 0.0, got std=", std);
  const Tensor history = inplace_joins_graph("normal_", t, {}) ? overwritten_history(t) : Tensor();
  fill_random(t, {.dist = RandomDist::normal, .a = mean, .b = std}, gen);
  if (history.defined()) rebase_history(t, history);
  return t;
}

Tensor rand(const Shape& shape, const TensorOptions& opts, Generator* gen) {
  check_random_float_dtype("rand", opts.dtype);
  Tensor t = fresh("rand", shape, opts);
  uniform_(t, 0, 1, gen);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor randn(const Shape& shape, const TensorOptions& opts, Generator* gen) {
  check_random_float_dtype("randn", opts.dtype);
  Tensor t = fresh("randn", shape, opts);
  normal_(t, 0, 1, gen);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, const TensorOptions& opts, Generator* gen) {
  const DType dt = opts.dtype;
  FABRIC_CHECK(!is_fp8(dt), DTypeError, "randint: ", dtype_name(dt), " is not supported");
  FABRIC_CHECK(low < high, ValueError, "randint: expects low < high, got low=", low, ", high=", high);
  // Both ends of [low, high - 1] must be representable in the dtype, as in PyTorch's check.
  int64_t min_v = std::numeric_limits<int64_t>::min(), max_v = std::numeric_limits<int64_t>::max();
  switch (dt) {
    case DType::int32: min_v = INT32_MIN; max_v = INT32_MAX; break;
    case DType::int8: min_v = INT8_MIN; max_v = INT8_MAX; break;
    case DType::uint8: min_v = 0; max_v = UINT8_MAX; break;
    case DType::bool_: min_v = 0; max_v = 1; break;
    case DType::float64: min_v = -(int64_t{1} << 53); max_v = int64_t{1} << 53; break;
    case DType::float32: min_v = -(int64_t{1} << 24); max_v = int64_t{1} << 24; break;
    case DType::float16: min_v = -(int64_t{1} << 11); max_v = int64_t{1} << 11; break;
    case DType::bfloat16: min_v = -(int64_t{1} << 8); max_v = int64_t{1} << 8; break;
    default: break;
  }
  const bool representable = low >= min_v && high - 1 <= max_v;
  // torch 1.13 refuses an integer dtype's overflow but only warns for a floating one, whose draws
  // then round to the dtype's grid.
  if (!representable && is_floating(dt))
    warn(detail::cat("randint: [", low, ", ", high, ") is out of the exactly representable range [",
                     min_v, ", ", max_v, "] of ", dtype_name(dt),
                     ": the values drawn are rounded to ", dtype_name(dt)));
  FABRIC_CHECK(representable || is_floating(dt), ValueError, "randint: [", low, ", ", high,
               ") is out of the exactly representable range [", min_v, ", ", max_v, "] of ",
               dtype_name(dt));
  Tensor t = fresh("randint", shape, opts);
  const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  fill_random(t, {.dist = RandomDist::randint, .low = low, .range = range}, gen);
  if (opts.requires_grad) t.set_requires_grad(true);
  return t;
}

}  // namespace fabric
