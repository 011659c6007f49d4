// The dispatch stub of the deferred range checks (declared in deferred_check.h).
#include "tensor/deferred_check.h"

namespace fabric {
FABRIC_DEFINE_STUB(arm_range_check_stub, ArmRangeCheckFn);
}  // namespace fabric
