// From-scratch convergence: a small character-level GPT learns the first chapter of Pride and
// Prejudice (tests/nn/data/pride_and_prejudice_ch1.txt, public domain) to a loss well below the
// text's unigram entropy -- the best any model can do without looking at context -- within a fixed
// number of AdamW steps, and generalises to held-out text below that entropy too.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "nn/gpt.h"
#include "optim/optim.h"
#include "tensor/factory.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace fabric::nn {
namespace {

std::string read_text() {
  std::ifstream in(std::string(FABRIC_TEST_DATA_DIR) + "/pride_and_prejudice_ch1.txt");
  EXPECT_TRUE(in.good()) << "missing pride_and_prejudice_ch1.txt";
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Entropy (nats) of the character frequencies of `ids`.
double unigram_entropy(const std::vector<int64_t>& ids, int64_t vocab) {
  std::vector<double> count(static_cast<size_t>(vocab), 0.0);
  for (int64_t id : ids) count[static_cast<size_t>(id)] += 1;
  double h = 0;
  for (double c : count) {
    if (c > 0) {
      const double p = c / static_cast<double>(ids.size());
      h -= p * std::log(p);
    }
  }
  return h;
}

TEST(Convergence, CharGptLearnsBelowUnigramEntropy) {
  const std::string text = read_text();
  ASSERT_GT(text.size(), 4000u);
  std::map<char, int64_t> vocab_index;
  for (char ch : text) vocab_index.emplace(ch, 0);
  int64_t vocab = 0;
  for (auto& [ch, id] : vocab_index) id = vocab++;
  std::vector<int64_t> ids;
  for (char ch : text) ids.push_back(vocab_index[ch]);
  const size_t n_train = ids.size() * 9 / 10;
  const std::vector<int64_t> train(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n_train));
  const std::vector<int64_t> held_out(ids.begin() + static_cast<std::ptrdiff_t>(n_train), ids.end());
  const double entropy = unigram_entropy(train, vocab);

  constexpr int64_t B = 16, T = 32, kSteps = 300;
  manual_seed(7);
  GPT gpt({.vocab_size = vocab, .block_size = T, .n_layer = 2, .n_head = 4, .n_embd = 64});
  optim::AdamW opt(gpt.parameters(), {.lr = 3e-3, .betas = {0.9, 0.95}, .weight_decay = 0.01});
  Generator gen(11);
  // A batch of B windows starting at random offsets of `src`; targets are the next characters.
  auto batch = [&](const std::vector<int64_t>& src, std::vector<int64_t> starts) {
    std::vector<int64_t> x, y;
    for (int64_t s : starts) {
      x.insert(x.end(), src.begin() + s, src.begin() + s + T);
      y.insert(y.end(), src.begin() + s + 1, src.begin() + s + T + 1);
    }
    const auto b = static_cast<int64_t>(starts.size());
    return std::array<Tensor, 2>{from_vector(x, {b, T}), from_vector(y, {b, T})};
  };
  double recent = 0;  // mean training loss of the last 20 steps
  for (int64_t step = 0; step < kSteps; ++step) {
    const Tensor offsets =
        randint(0, static_cast<int64_t>(train.size()) - T - 1, {B}, {.dtype = DType::int64}, &gen);
    const auto [x, y] = batch(train, offsets.to_vector<int64_t>());
    opt.zero_grad();
    Tensor loss = gpt.loss(x, y);
    loss.backward();
    optim::clip_grad_norm_(gpt.parameters(), 1.0);
    opt.step();
    if (step >= kSteps - 20) recent += loss.item<double>() / 20.0;
  }
  // Held-out loss over every non-overlapping window of the last 10% of the text.
  gpt.eval();
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + T + 1 <= static_cast<int64_t>(held_out.size()); s += T) starts.push_back(s);
  NoGradGuard no_grad;
  const auto [hx, hy] = batch(held_out, starts);
  const double held_out_loss = gpt.loss(hx, hy).item<double>();
  std::printf("unigram entropy %.3f nats, training loss (last 20 steps) %.3f, held-out %.3f\n",
              entropy, recent, held_out_loss);
  EXPECT_LT(recent, 0.75 * entropy);
  EXPECT_LT(held_out_loss, entropy);
}

}  // namespace
}  // namespace fabric::nn
