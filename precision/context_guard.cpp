// The default-dtype and autocast contexts.
#include "precision/context_guard.h"

#include "tensor/autocast.h"

namespace fabric::precision {

ContextGuard default_dtype_context(DType dtype) {
  const DType previous = default_float_dtype();
  set_default_float_dtype(dtype);
  return ContextGuard([previous] { set_default_float_dtype(previous); });
}

ContextGuard autocast_context(DeviceType device, DType dtype, bool enabled, bool cache_enabled) {
  autocast_enter(device, enabled, dtype, cache_enabled);
  return ContextGuard([device] { autocast_exit(device); });
}

}  // namespace fabric::precision
