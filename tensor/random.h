// Seeded, counter-based random numbers (Philox4x32-10): element i of a draw depends only on the
// seed, the generator's offset and i, so results do not depend on the thread count or device.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

namespace fabric {

// What a checkpoint saves to resume a random stream exactly: the seed and the counter offset.
struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;
  friend bool operator==(const GeneratorState&, const GeneratorState&) = default;
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
  explicit Generator(uint64_t seed = 67280421310721ULL) : seed_(seed) {}
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  uint64_t seed() const { return seed_; }
  // Counter offset (in 128-bit Philox blocks) consumed so far; saved with RNG state.
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }
  GeneratorState state() const { return {seed_, offset_}; }
  void set_state(const GeneratorState& s) { seed_ = s.seed; offset_ = s.offset; }
  // Reserves `blocks` Philox blocks for one draw and returns the offset of the first. Atomic, so
  // draws from several threads on one generator get disjoint counter ranges (their order, and
  // hence which thread gets which numbers, is up to the scheduler).
  uint64_t reserve(uint64_t blocks) {
    if (detail::open_generator_capture) detail::note_generator_draw(this);
    return std::atomic_ref<uint64_t>(offset_).fetch_add(blocks, std::memory_order_relaxed);
  }

 private:
  uint64_t seed_;
  alignas(8) uint64_t offset_ = 0;
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
