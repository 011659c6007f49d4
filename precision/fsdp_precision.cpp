// FSDPPrecision: the mode checks and the choice of the plugin it delegates to.
#include "precision/fsdp_precision.h"

#include "precision/mixed_precision.h"
#include "precision/true_precision.h"
#include "tensor/error.h"

namespace fabric::precision {
namespace {

std::string mode_list() {
  std::string out;
  for (const auto& m : FSDPPrecision::modes()) out += (out.empty() ? "'" : ", '") + m + "'";
  return out;
}

}  // namespace

const std::vector<std::string>& FSDPPrecision::modes() {
  static const std::vector<std::string> v = {"32-true", "16-true", "bf16-true", "16-mixed",
                                             "bf16-mixed"};
  return v;
}

FSDPPrecision::FSDPPrecision(const std::string& precision, DeviceType device,
                             std::shared_ptr<GradScaler> scaler)
    : precision_(precision), scaler_(std::move(scaler)) {
  bool known = false;
  for (const auto& m : modes()) known = known || m == precision;
  FABRIC_CHECK(known, ValueError, "FSDPPrecision: `precision='", precision,
               "'` is not supported in FSDP. `precision` must be one of: ", mode_list());
  FABRIC_CHECK(!scaler_ || precision == "16-mixed", ValueError, "FSDPPrecision: `precision='",
               precision,
               "'` does not use a scaler, found a GradScaler (only '16-mixed' scales the loss)");
  mixed_ = precision == "16-mixed" || precision == "bf16-mixed";
  dtype_ = precision.rfind("bf16-", 0) == 0 ? DType::bfloat16
           : precision.rfind("16-", 0) == 0 ? DType::float16
                                            : DType::float32;
  if (precision == "16-mixed") {
    // The sharded scaler: allow_fp16_grads, as ShardedGradScaler (gradients of a module whose
    // shards are half are unscaled in place instead of rejected).
    if (!scaler_)
      scaler_ = std::make_shared<GradScaler>(GradScalerOptions{.allow_fp16_grads = true});
    impl_ = std::make_shared<MixedPrecision>(precision, device, scaler_);
  } else if (precision == "bf16-mixed") {
    impl_ = std::make_shared<MixedPrecision>(precision, device);
  } else if (precision == "32-true") {
    impl_ = std::make_shared<Precision>();
  } else {
    impl_ = std::make_shared<HalfPrecision>(precision);
  }
}

Tensor FSDPPrecision::convert_input(const Tensor& input) const {
  return cast_floating(input, dtype_);
}

Tensor FSDPPrecision::convert_output(const Tensor& output) const {
  return cast_floating(output, default_float_dtype());
}

}  // namespace fabric::precision
