// Index and class-target range checks (and binary_cross_entropy's input check) made inside the
// kernels of an asynchronous device (CUDA): the op layer hands the device its error message and
// gets an id back; the kernels check every value and report the first failure under that id, and
// the device raises it at its next synchronisation (as PyTorch's device-side asserts, but
// recoverable), so no op waits for it.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/dispatch_stub.h"

namespace fabric {

// The op's error text around the offending value: head + value + tail, e.g.
// "embedding: index " + "7" + " is out of range for ... (valid: 0 to 4)". Built by the op, so a
// deferred error reads as the op's immediate one on the CPU. `kind` says what goes between them
// and what is raised: the offending value and an IndexError (the index checks), or the count of
// elements that failed and a ValueError (a check of values: binary_cross_entropy's input in
// [0, 1]).
struct RangeErrorText {
  enum class Kind { index, value_count };
  std::string head, tail;
  Kind kind = Kind::index;
};

// Registers `text` for a check that kernels on CUDA device `device_index` are about to make, and
// returns the nonzero id they report a failure under. Only devices that check inside their
// kernels register one; where the slot is empty (the CPU) the op checks before launching.
using ArmRangeCheckFn = uint64_t (*)(int device_index, RangeErrorText text);
FABRIC_DECLARE_STUB(arm_range_check_stub, ArmRangeCheckFn);

}  // namespace fabric
