// The dispatch stub of the in-kernel [0, 1] input check (declared in unit_interval_check.h).
#include "tensor/unit_interval_check.h"

namespace fabric {
FABRIC_DEFINE_STUB(check_unit_interval_stub, CheckUnitIntervalFn);
}  // namespace fabric
