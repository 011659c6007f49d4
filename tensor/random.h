// Seeded random numbers. By default counter-based (Philox4x32-10): element i of a draw depends only
// on the seed, the generator's offset and i, so results do not depend on the thread count or
// device. A generator switched to RngAlgorithm::torch_cpu draws CPU tensors' numbers as PyTorch's
// CPU generator does (its Mersenne Twister and its transforms, tensor/torch_cpu_rng.h), so a seed
// gives torch's values.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace fabric {

class TorchCpuRng;

enum class RngAlgorithm : uint8_t {
  philox,     // counter-based, the same numbers on every device and thread count
  torch_cpu,  // PyTorch's CPU generator (mt19937) for CPU tensors; CUDA tensors still draw Philox
};

// What a checkpoint saves to resume a random stream exactly: the seed and the counter offset, and
// for a torch_cpu generator a copy of its Mersenne Twister (null for Philox ones).
struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;
  std::shared_ptr<const TorchCpuRng> torch_cpu;
  // Compares the Mersenne Twisters' contents, not their addresses.
  friend bool operator==(const GeneratorState& a, const GeneratorState& b);
};

class Generator;

// The generators drawn from on this thread while a capture is open (a checkpointed segment's
// forward), each with its state before its first draw there, so the recompute can replay a
// generator nobody listed (a Dropout built with its own). Captures nest: a draw is noted in the
// open one and in every one it is nested in.
struct GeneratorCapture {
  struct Entry {
    Generator* generator;
    GeneratorState before;
  };
  std::vector<Entry> drawn;
  GeneratorCapture* outer = nullptr;
};

namespace detail {
inline thread_local GeneratorCapture* open_generator_capture = nullptr;
void note_generator_draw(Generator* g);
}  // namespace detail

// Opens a capture on this thread for its lifetime.
class GeneratorCaptureScope {
 public:
  explicit GeneratorCaptureScope(GeneratorCapture& c) : capture_(c) {
    c.outer = detail::open_generator_capture;
    detail::open_generator_capture = &c;
  }
  ~GeneratorCaptureScope() { detail::open_generator_capture = capture_.outer; }
  GeneratorCaptureScope(const GeneratorCaptureScope&) = delete;
  GeneratorCaptureScope& operator=(const GeneratorCaptureScope&) = delete;

 private:
  GeneratorCapture& capture_;
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 67280421310721ULL,
                     RngAlgorithm algorithm = RngAlgorithm::philox);
  // A copy continues the same stream independently (a torch_cpu stream is copied, not shared).
  Generator(const Generator& other);
  Generator& operator=(const Generator& other);
  Generator(Generator&&) noexcept = default;
  Generator& operator=(Generator&&) noexcept = default;
  // Restarts the stream: offset 0, and a torch_cpu generator's Mersenne Twister seeded as torch's.
  void manual_seed(uint64_t seed);
  uint64_t seed() const { return seed_; }
  RngAlgorithm algorithm() const {
    return torch_cpu_ ? RngAlgorithm::torch_cpu : RngAlgorithm::philox;
  }
  // Switches the algorithm and restarts the stream from the current seed (as manual_seed(seed())).
  void set_algorithm(RngAlgorithm algorithm);
  // The torch_cpu stream, or null for a Philox generator. Draws hold its lock().
  TorchCpuRng* torch_cpu() const { return torch_cpu_.get(); }
  // Counter offset (in 128-bit Philox blocks) consumed so far; saved with RNG state.
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }
  GeneratorState state() const;
  // Takes the whole state, the algorithm included: a state without a Mersenne Twister makes the
  // generator a Philox one.
  void set_state(const GeneratorState& s);
  // Reserves `blocks` Philox blocks for one draw and returns the offset of the first. Atomic, so
  // draws from several threads on one generator get disjoint counter ranges (their order, and
  // hence which thread gets which numbers, is up to the scheduler).
  uint64_t reserve(uint64_t blocks) {
    if (detail::open_generator_capture) detail::note_generator_draw(this);
    return std::atomic_ref<uint64_t>(offset_).fetch_add(blocks, std::memory_order_relaxed);
  }
  // For a torch_cpu draw: notes it in an open capture (as reserve does) and returns the stream.
  TorchCpuRng& torch_cpu_for_draw() {
    if (detail::open_generator_capture) detail::note_generator_draw(this);
    return *torch_cpu_;
  }

 private:
  uint64_t seed_ = 0;
  alignas(8) uint64_t offset_ = 0;
  std::shared_ptr<TorchCpuRng> torch_cpu_;
};

// The process default generator (what manual_seed seeds).
Generator& default_generator();
void manual_seed(uint64_t seed);

// One Philox4x32-10 block: 4 uniformly distributed 32-bit words for (seed, counter).
// The standard algorithm (Salmon et al., Random123): key = {low, high} 32-bit halves of `seed`,
// counter words = {low(counter_lo), high(counter_lo), low(counter_hi), high(counter_hi)}.
struct PhiloxBlock {
  uint32_t v[4];
};
PhiloxBlock philox4x32(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo);

}  // namespace fabric
