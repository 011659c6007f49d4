// The host side of the deferred range checks (tensor/deferred_check.h), free of CUDA so that it is
// tested without a device: the record the kernels fill, the texts of the armed checks, and the
// error a failed record becomes at a synchronisation point.
#pragma once
#include <climits>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "tensor/deferred_check.h"

namespace fabric::cuda {

// The first failed check on a device, as its kernels leave it in device memory. Only the check
// that failed first (`site`) is kept; each of its failures folds in with atomics, so the record
// does not depend on thread order. Plain integer types: the kernels use them with atomics.
struct DeferredCheckRecord {
  unsigned long long site;      // 0: nothing failed; else the id of the check that failed first
  long long lowest, highest;    // its smallest and largest offending values
  unsigned long long position;  // its lowest offending position (element of the index/input)
  long long bound;              // its valid values: 0 .. bound - 1
  unsigned long long count;     // how many elements failed it
};
inline constexpr DeferredCheckRecord kNoFailure = {0, LLONG_MAX, LLONG_MIN, ULLONG_MAX, 0, 0};

// The value an error names: the most negative offending one if any, else the largest, which is
// what the op's host-side check (by the indices' min and max) names.
int64_t offending_value(const DeferredCheckRecord& r);

// The error text of a failed record: the op's own (`text`) around the value (an index check) or
// the count of failed elements (a value check), or a generic one naming the value and bound when
// the check's text is no longer known; then where it came from.
std::string deferred_check_message(const DeferredCheckRecord& r, const RangeErrorText* text);

// The armed checks of one device and their texts, and which of them a read of the record covers.
// A read needs to happen only when a check was armed since the one before the last read began
// (a thread may arm, then launch after another thread's read was queued: one read later covers
// it), and drops the texts of checks that a finished read covered the same way. Thread-safe.
class DeferredCheckSites {
 public:
  // Past this many texts, the oldest are dropped (a program that never synchronises): their
  // failures get the generic text.
  static constexpr size_t kMaxTexts = 4096;

  uint64_t arm(RangeErrorText text);  // the check's id: 1, 2, ...

  struct Read {
    bool needed = false;      // false: no check could have failed since the last read
    uint64_t armed_upto = 0;  // the last id armed when the read was queued
  };
  Read begin_read() const;
  // After the read of `r` (queued at `begin_read`) has completed: the error text if a check
  // failed (the caller clears the record and raises it as IndexError, or as ValueError where
  // `kind` comes back value_count), and the covered texts go. A check whose text was dropped
  // reads as an index check.
  std::optional<std::string> finish_read(const Read& read, const DeferredCheckRecord& r,
                                         RangeErrorText::Kind* kind = nullptr);

  size_t texts() const;

 private:
  mutable std::mutex mu_;
  uint64_t last_id_ = 0;
  uint64_t covered_ = 0;    // ids up to here were armed before the previous read began
  uint64_t last_upto_ = 0;  // armed_upto of the last finished read
  std::map<uint64_t, RangeErrorText> texts_;
};

}  // namespace fabric::cuda
