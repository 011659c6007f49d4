// The CNN model.
#include "nn/cnn.h"

#include "nn/activation.h"
#include "nn/conv.h"
#include "nn/normalization.h"

namespace fabric::nn {

CNN::CNN(const CNNConfig& c) : config_(c) {
  FABRIC_CHECK(c.in_channels > 0 && c.num_classes > 0 && c.channels1 > 0 && c.channels2 > 0,
               ValueError,
               "CNN: in_channels, num_classes, channels1 and channels2 must be positive");
  FABRIC_CHECK(c.image_size >= 4 && c.image_size % 4 == 0, ValueError,
               "CNN: image_size must be a positive multiple of 4 (two 2x2 poolings), got ",
               c.image_size);
  std::vector<std::shared_ptr<Module>> layers;
  for (const auto& [in, out] :
       {std::pair{c.in_channels, c.channels1}, {c.channels1, c.channels2}}) {
    layers.push_back(
        make<Conv2d>({.in_channels = in, .out_channels = out, .kernel_size = 5, .padding = 2}));
    if (c.batch_norm) layers.push_back(make<BatchNorm2d>({.num_features = out}));
    layers.push_back(make<ReLU>());
    layers.push_back(make<MaxPool2d>({.kernel_size = 2}));
  }
  features = register_module("features", std::make_shared<Sequential>(layers));
  flatten = register_module("flatten", make<Flatten>());
  const int64_t side = c.image_size / 4;
  const int64_t flat = checked_size_mul(checked_size_mul(c.channels2, side, "CNN"), side, "CNN");
  classifier =
      register_module<Linear>("classifier", {.in_features = flat, .out_features = c.num_classes});
}

Tensor CNN::forward(const Tensor& x) {
  FABRIC_CHECK(x.defined(), ValueError, "CNN: got an undefined tensor");
  FABRIC_CHECK(x.dim() == 4 && x.size(1) == config_.in_channels &&
                   x.size(2) == config_.image_size && x.size(3) == config_.image_size,
               ShapeError, "CNN: expected input (N, ", config_.in_channels, ", ",
               config_.image_size, ", ", config_.image_size, "), got ", shape_str(x.sizes()));
  // Through child(): a precision plugin or LoRA replaces the classifier by registering another
  // layer under its name, which the typed member does not see.
  return child("classifier")(child("flatten")(child("features")(x)));
}

void CNN::child_replaced(const std::string& name, const std::shared_ptr<Module>& now) {
  if (name == "classifier") classifier = std::dynamic_pointer_cast<Linear>(now);
  if (name == "features") features = std::dynamic_pointer_cast<Sequential>(now);
  if (name == "flatten") flatten = now;
}

}  // namespace fabric::nn
