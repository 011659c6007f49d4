// demo-train: the main job until fabric-train exists. Trains a small character-level GPT on a
// text file (default data/austen.txt) through the C++ API — model, autograd, AdamW — prints the
// loss as it goes, then a generated sample.
//   usage: demo-train [--steps N] [TEXT_FILE [STEPS]]
// Without TEXT_FILE it reads data/austen.txt from the current directory, else from fabric's home
// (runtime/fabric_home.h: $FABRIC_HOME, the source tree, the installed <prefix>/share/fabric), as
// fabric-train finds its bundled data. A TEXT_FILE given is read as it is.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "nn/gpt.h"
#include "optim/adam.h"
#include "optim/clip_grad.h"
#include "runtime/fabric_home.h"
#include "runtime/measure_flops.h"
#include "tensor/error.h"
#include "tensor/factory.h"
#include "tensor/random.h"

using namespace fabric;
namespace fs = std::filesystem;

namespace {

constexpr const char* kUsage = "usage: demo-train [--steps N] [TEXT_FILE [STEPS]]";

// Where data/austen.txt may be, in the order it is looked for: the current directory (the
// repository root, where tools/demo.sh runs it), then fabric's home as fabric-train finds its
// bundled data ($FABRIC_HOME, the source tree, the installed <prefix>/share/fabric).
std::vector<fs::path> default_text_candidates() {
  const fs::path rel = "data/austen.txt";
  std::vector<fs::path> c = {rel};
  if (const std::string home = fabric_home(); !home.empty()) c.push_back(fs::path(home) / rel);
  return c;
}

// The text file to train on: `given` as it is, or the first default candidate that is a file.
// IOError naming every path tried when there is none.
std::string text_path(const std::string& given) {
  std::error_code ec;
  if (!given.empty()) {
    if (!fs::is_regular_file(given, ec))
      throw IOError("demo-train: cannot open " + given +
                    (fs::exists(given, ec) ? " (not a regular file)" : " (it does not exist)"));
    return given;
  }
  std::string tried;
  for (const fs::path& p : default_text_candidates()) {
    if (fs::is_regular_file(p, ec)) return p.string();
    tried += "\n  " + fs::absolute(p, ec).string();
  }
  throw IOError(
      "demo-train: cannot open data/austen.txt; looked for it at:" + tried +
      "\n(run tools/install-deps.sh and tools/build.sh, which extracts it, or give a text file: " +
      kUsage + ")");
}

// A step count: digits only, at least 1.
int parse_steps(const std::string& s) {
  const bool digits =
      !s.empty() && s.size() <= 9 &&
      std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
  if (!digits || std::stoi(s) < 1)
    throw ValueError("demo-train: STEPS must be a whole number from 1 to 999999999, got '" + s +
                     "'; " + kUsage);
  return std::stoi(s);
}

}  // namespace

int main(int argc, char** argv) try {
  std::vector<std::string> positional;
  int steps = 300;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage << "\n";
      return 0;
    }
    if (a == "--steps") {
      if (i + 1 == argc)
        throw ValueError(std::string("demo-train: --steps needs a number; ") + kUsage);
      steps = parse_steps(argv[++i]);
    } else if (a.rfind("--", 0) == 0) {
      throw ValueError("demo-train: unknown option " + a + "; " + kUsage);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() > 2)
    throw ValueError(std::string("demo-train: too many arguments; ") + kUsage);
  if (positional.size() == 2) steps = parse_steps(positional[1]);
  const std::string path = text_path(positional.empty() ? "" : positional[0]);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError("demo-train: cannot open " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();

  // Byte-level vocabulary of the characters that occur.
  std::vector<int> id_of(256, -1);
  std::vector<char> char_of;
  for (unsigned char c : text) {
    if (id_of[c] < 0) {
      id_of[c] = static_cast<int>(char_of.size());
      char_of.push_back(static_cast<char>(c));
    }
  }
  std::vector<int64_t> tokens(text.size());
  for (size_t i = 0; i < text.size(); ++i) tokens[i] = id_of[static_cast<unsigned char>(text[i])];

  manual_seed(1337);
  const int64_t T = 64, B = 16;
  if (int64_t(text.size()) < T + 2)  // a window of T inputs and their T next-token targets
    throw ValueError("demo-train: " + path + " holds " + std::to_string(text.size()) +
                     " bytes; training needs at least " + std::to_string(T + 2));
  auto model = nn::make<nn::GPT>({.vocab_size = static_cast<int64_t>(char_of.size()), .block_size = T,
                                  .n_layer = 2, .n_head = 4, .n_embd = 128});
  optim::AdamW opt(model->parameters(), {.lr = 2e-3, .weight_decay = 0.01});
  std::printf("demo-train: %s, %zu bytes, vocab %zu; GPT %lld parameters; %d steps of batch %lld x %lld\n",
              path.c_str(), text.size(), char_of.size(), static_cast<long long>(model->get_num_params()), steps,
              static_cast<long long>(B), static_cast<long long>(T));

  // The FLOPs of one training step (forward and backward), as Lightning's measure_flops counts
  // them: they depend on the shapes only, so a batch of zeros measures them.
  const Tensor zero_batch = zeros({B, T}, {.dtype = DType::int64});
  const int64_t step_flops = measure_flops(
      *model, [&] { return model->loss(zero_batch, zero_batch); },
      [](const Tensor& loss) { return loss; });
  std::printf("demo-train: %.3f GFLOP per step (forward and backward)\n", step_flops / 1e9);

  Generator gen(42);
  const auto start = std::chrono::steady_clock::now();
  for (int step = 1; step <= steps; ++step) {
    // Random windows of T+1 tokens: inputs and next-token targets.
    Tensor offs = randint(0, static_cast<int64_t>(tokens.size()) - T - 1, {B}, {.dtype = DType::int64}, &gen);
    std::vector<int64_t> xs(B * T), ys(B * T);
    auto ov = offs.to_vector<int64_t>();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        xs[b * T + t] = tokens[ov[b] + t];
        ys[b * T + t] = tokens[ov[b] + t + 1];
      }
    Tensor x = from_vector(xs, {B, T}), y = from_vector(ys, {B, T});
    opt.zero_grad();
    Tensor loss = model->loss(x, y);
    loss.backward();
    optim::clip_grad_norm_(model->parameters(), 1.0);
    opt.step();
    if (step == 1 || step % 25 == 0 || step == steps) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("step %4d  loss %.4f  %.0f tokens/s  %.2f GFLOP/s\n", step, loss.item<double>(),
                  step * B * T / secs, step * (step_flops / 1e9) / secs);
      std::fflush(stdout);
    }
  }

  model->eval();
  Tensor prompt = from_vector(std::vector<int64_t>{id_of[static_cast<unsigned char>('\n')] < 0 ? 0 : id_of['\n']},
                              {1, 1});
  Tensor sample = model->generate(prompt, 200, 0.8, std::nullopt, &gen);
  std::string out;
  for (int64_t t : sample.to_vector<int64_t>()) out += char_of[t];
  std::printf("--- sample ---\n%s\n--------------\n", out.c_str());
  return 0;
} catch (const Error& e) {
  std::cerr << e.what() << "\n";
  return 1;
}
