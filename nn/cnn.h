// CNN: a small LeNet-style classifier for (N, C, H, W) images (MNIST: 1x28x28).
//   features:   0 Conv2d(C, c1, 5, padding 2)  1 ReLU  2 MaxPool2d(2)
//               3 Conv2d(c1, c2, 5, padding 2) 4 ReLU  5 MaxPool2d(2)
//   flatten:    Flatten
//   classifier: Linear(c2 * (H/4) * (W/4), num_classes)
// Keys: features.0.weight/bias, features.3.weight/bias, classifier.weight/bias.
// With batch_norm each stage is Conv2d → BatchNorm2d → ReLU → MaxPool2d (as torchvision's VGG
// _bn models): features.0 and features.4 are the convs, features.1 and features.5 the
// BatchNorm2d layers (weight, bias, running_mean, running_var, num_batches_tracked).
#pragma once
#include <string>

#include "nn/containers.h"
#include "nn/linear.h"

namespace fabric::nn {

struct CNNConfig {
  int64_t in_channels = 1;
  int64_t image_size = 28;  // square input, divisible by 4
  int64_t num_classes = 10;
  int64_t channels1 = 16;
  int64_t channels2 = 32;
  bool batch_norm = false;
};

class CNN : public Module {
 public:
  using Options = CNNConfig;
  explicit CNN(const CNNConfig& config = {});
  // (N, in_channels, image_size, image_size) -> (N, num_classes) logits
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "CNN"; }
  const CNNConfig& config() const { return config_; }

  // classifier becomes null when replaced by something that is not an nn::Linear (a quantized or
  // LoRA layer); the forward calls the registered children.
  void child_replaced(const std::string& name, const std::shared_ptr<Module>& now) override;

  std::shared_ptr<Sequential> features;
  std::shared_ptr<Module> flatten;
  std::shared_ptr<Linear> classifier;

 private:
  CNNConfig config_;
};

}  // namespace fabric::nn
