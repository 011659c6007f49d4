// Seeded, counter-based random numbers (Philox4x32-10): element i of a draw depends only on the
// seed, the generator's offset and i, so results do not depend on the thread count or device.
#pragma once
#include <cstdint>

namespace fabric {

class Generator {
 public:
  explicit Generator(uint64_t seed = 67280421310721ULL) : seed_(seed) {}
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  uint64_t seed() const { return seed_; }
  // Counter offset (in 128-bit Philox blocks) consumed so far; saved with RNG state.
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }
  // Reserves `blocks` Philox blocks for one draw and returns the offset of the first.
  uint64_t reserve(uint64_t blocks) {
    uint64_t start = offset_;
    offset_ += blocks;
    return start;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The process default generator (what manual_seed seeds).
Generator& default_generator();
void manual_seed(uint64_t seed);

// One Philox4x32-10 block: 4 uniformly distributed 32-bit words for (seed, counter).
struct PhiloxBlock {
  uint32_t v[4];
};
PhiloxBlock philox4x32(uint64_t seed, uint64_t counter_hi, uint64_t counter_lo);

}  // namespace fabric
