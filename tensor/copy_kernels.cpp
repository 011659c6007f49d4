// The dispatch stubs for copies and fills (declared in copy_kernels.h).
#include "tensor/copy_kernels.h"

namespace fabric {
FABRIC_DEFINE_STUB(copy_stub, CopyFn);
FABRIC_DEFINE_STUB(fill_stub, FillFn);
FABRIC_DEFINE_STUB(cross_device_copy_stub, CrossDeviceCopyFn);
}  // namespace fabric
