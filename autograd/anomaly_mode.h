// Anomaly detection (torch.autograd.detect_anomaly / set_detect_anomaly): while on, every node a
// backward pass runs has its gradients checked, and the first one that produces a NaN raises an
// error naming the node and the forward op that made it, instead of letting the NaN spread into
// every parameter. (torch also prints the forward's Python traceback; the node's name, which
// names the forward op, is what there is here.)
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace fabric {

class Node;

// Process-wide, as torch's flag.
bool anomaly_detection_enabled();
void set_detect_anomaly(bool enabled);

// Turns anomaly detection on (or off) for a scope: torch's `with torch.autograd.detect_anomaly()`
// and `set_detect_anomaly(mode)` context manager.
class DetectAnomalyGuard {
 public:
  explicit DetectAnomalyGuard(bool enabled = true);
  ~DetectAnomalyGuard();
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool prev_;
};

// Raises Error ("Function 'MulBackward0' returned nan values in its 0th output.", as torch) when a
// gradient the node returned holds a NaN.
void check_finite_gradients(const Node& node, const std::vector<Tensor>& grads);

}  // namespace fabric
