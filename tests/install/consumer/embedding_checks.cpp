// What an app that embeds fabric relies on beyond a training loop: the library's exceptions
// caught by their documented types across the shared-library boundary, two Fabric objects
// training in two threads as they would alone, a Fabric destroyed and made again, and objects
// of the library alive in static storage until exit.
#include <fabric/fabric.h>

#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <typeinfo>

namespace {

using namespace fabric;

int failures = 0;

void fail(const std::string& what) {
  std::printf("FAIL: %s\n", what.c_str());
  ++failures;
}

// Only an exception of type E (or derived) passes: another type, or none, is a failure.
template <class E, class F>
void expect_throws(const char* what, F&& f) {
  try {
    f();
    fail(std::string(what) + ": nothing thrown");
  } catch (const E&) {
  } catch (const std::exception& e) {
    fail(std::string(what) + ": caught " + typeid(e).name() + " (" + e.what() + "), not " +
         typeid(E).name());
  }
}

// Destroyed after main returns, after the library's own statics were constructed.
const Tensor static_tensor = randn({3});
Fabric static_fabric(FabricOptions{.accelerator = "cpu"});

struct Job {
  std::shared_ptr<nn::GPT> gpt;
  Tensor x, y;
};

// Made on the calling thread with a fixed seed: identical jobs whichever thread trains them.
Job make_job() {
  manual_seed(0);
  return {nn::make<nn::GPT>(
              {.vocab_size = 32, .block_size = 16, .n_layer = 1, .n_head = 2, .n_embd = 32}),
          randint(0, 32, {4, 16}), randint(0, 32, {4, 16})};
}

// Trains the job's model under `precision` with a Fabric of its own; returns the last loss.
double train(const Job& job, const std::string& precision) {
  optim::AdamW adamw(job.gpt->parameters(), {.lr = 1e-2});
  Fabric fab(FabricOptions{.accelerator = "cpu", .precision = precision});
  auto [model, opt] = fab.setup(job.gpt, adamw);
  double loss_value = 0;
  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    const Tensor loss = cross_entropy(model(job.x).view({-1, 32}), job.y.view({-1}));
    fab.backward(loss);
    opt.step();
    loss_value = loss.item<double>();
  }
  return loss_value;
}

}  // namespace

int main() {
  expect_throws<ShapeError>("matmul of (2, 3) and (4, 5)", [] {
    (void)matmul(randn({2, 3}), randn({4, 5}));
  });
  expect_throws<DTypeError>("matmul of float32 and int64", [] {
    (void)matmul(randn({2, 2}), ones({2, 2}, {.dtype = DType::int64}));
  });
  expect_throws<ValueError>("an unknown precision",
                            [] { Fabric f(FabricOptions{.precision = "17-odd"}); });
  expect_throws<IOError>("load_raw of a missing file", [] {
    auto net = nn::make<nn::Linear>(nn::LinearOptions{.in_features = 2, .out_features = 2});
    static_fabric.load_raw("/nonexistent/model.safetensors", *net);
  });
  expect_throws<Error>("fabric::Error as the base", [] {
    (void)matmul(randn({2, 3}), randn({4, 5}));
  });

  // bf16-mixed beside 32-true: autocast and grad mode are per thread, neither disturbs the other.
  const double alone_32 = train(make_job(), "32-true");
  const double alone_bf16 = train(make_job(), "bf16-mixed");
  for (int round = 0; round < 2; ++round) {
    const Job a = make_job(), b = make_job();
    double loss_32 = 0, loss_bf16 = 0;
    std::thread ta([&] { loss_32 = train(a, "32-true"); });
    std::thread tb([&] { loss_bf16 = train(b, "bf16-mixed"); });
    ta.join();
    tb.join();
    if (loss_32 != alone_32 || loss_bf16 != alone_bf16) {
      fail("two threads: 32-true " + std::to_string(loss_32) + " (alone " +
           std::to_string(alone_32) + "), bf16-mixed " + std::to_string(loss_bf16) + " (alone " +
           std::to_string(alone_bf16) + ")");
    }
  }
  // A Fabric made again after one was destroyed (train() makes and destroys one per call).
  if (train(make_job(), "32-true") != alone_32) fail("a Fabric made again trains differently");

  std::printf("embedding checks: %d failure(s); 32-true %.6f, bf16-mixed %.6f\n", failures,
              alone_32, alone_bf16);
  return failures == 0 ? 0 : 1;
}
