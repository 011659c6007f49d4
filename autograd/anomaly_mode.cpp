#include "autograd/anomaly_mode.h"

#include <atomic>

#include "autograd/node.h"
#include "tensor/ops.h"

namespace fabric {
namespace {
std::atomic<bool> g_detect_anomaly{false};
}  // namespace

bool anomaly_detection_enabled() { return g_detect_anomaly.load(std::memory_order_relaxed); }
void set_detect_anomaly(bool enabled) { g_detect_anomaly.store(enabled); }

DetectAnomalyGuard::DetectAnomalyGuard(bool enabled) : prev_(anomaly_detection_enabled()) {
  set_detect_anomaly(enabled);
}
DetectAnomalyGuard::~DetectAnomalyGuard() { set_detect_anomaly(prev_); }

void check_finite_gradients(const Node& node, const std::vector<Tensor>& grads) {
  for (size_t i = 0; i < grads.size(); ++i) {
    const Tensor& g = grads[i];
    if (!g.defined() || !is_floating(g.dtype()) || g.numel() == 0) continue;
    if (!any(isnan(g)).item<bool>()) continue;
    // torch's words, "th" whatever the number.
    throw Error(
        detail::cat("Function '", node.name(), "' returned nan values in its ", i, "th output."));
  }
}

}  // namespace fabric
