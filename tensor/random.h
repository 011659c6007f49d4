// Seeded, counter-based random numbers (Philox4x32-10): element i of a draw depends only on the
// seed, the generator's offset and i, so results do not depend on the thread count or device.
#pragma once
#include <atomic>
#include <cstdint>

namespace fabric {

// What a checkpoint saves to resume a random stream exactly: the seed and the counter offset.
struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;
  friend bool operator==(const GeneratorState&, const GeneratorState&) = default;
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
