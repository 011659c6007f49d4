// Transformer Engine's DelayedScaling recipe (spec §8): the FP8 formats per direction, the amax
// history length and reduction, and parsing it from strings / key-value maps / saved state.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "precision/precision_state.h"
#include "tensor/dtype.h"

namespace fabric::precision {

// TE's `Format`: E4M3 and E5M2 name element formats as well; HYBRID is E4M3 forward, E5M2
// backward.
enum class Fp8Format : uint8_t { E4M3, E5M2, HYBRID };
enum class AmaxComputeAlgo : uint8_t { max, most_recent };
// Forward metas hold input/weight/output slots; backward metas grad_output/grad_input.
enum class Fp8Direction : uint8_t { forward, backward };

std::string_view fp8_format_name(Fp8Format f);  // "E4M3", "E5M2", "HYBRID"
// Case-insensitive; "Format.HYBRID" (the reference's repr) is accepted too. ValueError otherwise.
Fp8Format fp8_format_from_name(std::string_view name);
std::string_view amax_compute_algo_name(AmaxComputeAlgo a);          // "max", "most_recent"
AmaxComputeAlgo amax_compute_algo_from_name(std::string_view name);  // ValueError if unknown
std::string_view fp8_direction_name(Fp8Direction d);                 // "forward", "backward"

// The largest finite value of an element format (448 or 57344). ValueError for HYBRID.
float fp8_max(Fp8Format element_format);
// float8_e4m3fn or float8_e5m2. ValueError for HYBRID.
DType fp8_dtype(Fp8Format element_format);

struct DelayedScaling {
  int64_t margin = 0;  // scale = fp8_max * 2^-margin / amax
  Fp8Format fp8_format = Fp8Format::HYBRID;
  int64_t amax_history_len = 1024;
  AmaxComputeAlgo amax_compute_algo = AmaxComputeAlgo::max;
  bool reduce_amax = true;  // all-reduce MAX of the current amaxes before an update (world > 1)

  // ValueError: pure E5M2 (the reference rejects it), amax_history_len < 1, margin outside
  // [-126, 126] (2^-margin must stay a normal float).
  void validate() const;

  // The element format tensors of a direction are cast to.
  Fp8Format format_for(Fp8Direction d) const;
  float fp8_max_for(Fp8Direction d) const { return fp8_max(format_for(d)); }
  // fp8_max * 2^-margin as the reference computes it (in double, handed to the kernel as float).
  float scaled_max_for(Fp8Direction d) const;

  // Keys margin, fp8_format, amax_history_len, amax_compute_algo, reduce_amax; each value either
  // of its natural type or a string ("HYBRID", "most_recent", "16", "true"). Missing keys keep
  // their defaults; unknown keys and bad values are ValueErrors naming the key. Validated.
  static DelayedScaling from_map(const PrecisionState& kv);
  static DelayedScaling from_map(const std::map<std::string, std::string>& kv);
  // The same five keys with natural types; from_map(to_state()) round-trips.
  PrecisionState to_state() const;
  // "margin=0, format=HYBRID, amax_history_len=1024, amax_compute_algo=max, reduce_amax=True",
  // the reference's repr fields.
  std::string str() const;

  friend bool operator==(const DelayedScaling&, const DelayedScaling&) = default;
};

}  // namespace fabric::precision
