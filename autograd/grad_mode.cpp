// The thread-local grad-mode flag.
#include "autograd/grad_mode.h"

#include "tensor/op_record.h"

namespace fabric {
namespace {
thread_local bool g_grad_enabled = true;
}
bool grad_enabled() { return g_grad_enabled; }
void set_grad_enabled(bool enabled) { g_grad_enabled = enabled; }

namespace {
// The op layer asks through this whether it may refuse an argument (op_record.h).
[[maybe_unused]] const bool g_installed = [] {
  set_grad_mode_query(&grad_enabled);
  return true;
}();
}  // namespace
}  // namespace fabric
