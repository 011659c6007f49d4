#include "runtime/model_memory.h"

#include <sys/resource.h>
#include <sys/sysinfo.h>

#include <algorithm>
#include <cstdio>
#include <string>

namespace fabric {

namespace {

std::string gib(double bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

}  // namespace

double model_parameter_lower_bound(const TrainConfig::Model& m, int64_t vocab_size) {
  if (m.name == "gpt") {
    // Token and position embeddings, and each block's c_attn (C x 3C), attn c_proj (C x C),
    // c_fc (C x 4C) and mlp c_proj (4C x C): 12 C^2 per layer.
    const double c = double(m.n_embd);
    return double(std::max<int64_t>(vocab_size, 0)) * c + double(m.block_size) * c +
           double(m.n_layer) * 12.0 * c * c;
  }
  if (m.name == "mlp") {
    double n = 0;
    for (size_t i = 0; i + 1 < m.sizes.size(); ++i)
      n += double(m.sizes[i]) * double(m.sizes[i + 1]);
    return n;
  }
  if (m.name == "cnn") {
    // The classifier, Linear(c2 * (H/4)^2, num_classes), and the two 5x5 convolutions.
    const double side = double(m.image_size / 4);
    return double(m.channels2) * side * side * double(m.num_classes) +
           25.0 * (double(m.in_channels) * double(m.channels1) +
                   double(m.channels1) * double(m.channels2));
  }
  return 0;
}

void check_model_fits_memory(const TrainConfig::Model& m, int64_t vocab_size, double memory_bytes) {
  const double params = model_parameter_lower_bound(m, vocab_size);
  const double bytes = params * 4.0;
  if (!(bytes > memory_bytes)) return;
  std::string sized_by;
  if (m.name == "gpt")
    sized_by = "model.n_layer, model.n_embd, model.block_size and the vocabulary";
  else if (m.name == "mlp")
    sized_by = "model.sizes";
  else
    sized_by = "model.image_size, model.channels2 and model.num_classes";
  char count[64];
  std::snprintf(count, sizeof count, "%.3g", params);
  throw ConfigError(
      "model (" + m.name + "): at least " + count + " parameters (sized by " + sized_by + "), " +
      gib(bytes) + " as float32 before gradients and optimizer state, more than this machine's " +
      gib(memory_bytes) + " of memory (RAM and swap, or ulimit -v); expected a model that fits");
}

double usable_memory_bytes() {
  double bytes = 0;
  struct sysinfo si {};
  if (::sysinfo(&si) == 0)
    bytes = (double(si.totalram) + double(si.totalswap)) * double(si.mem_unit);
  struct rlimit as {};
  if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY)
    bytes = bytes > 0 ? std::min(bytes, double(as.rlim_cur)) : double(as.rlim_cur);
  return bytes > 0 ? bytes : 1e300;  // unknown: nothing is refused
}

}  // namespace fabric
