// exponential_(lambd): the argument checks, then the generator's way of drawing (see
// exponential.h).
#include "tensor/exponential.h"

#include <cmath>

#include "tensor/factory.h"
#include "tensor/inplace_graph.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/torch_cpu_fill.h"

namespace fabric {

Tensor& exponential_(Tensor& t, double lambd, Generator* gen) {
  FABRIC_CHECK(t.defined(), ValueError, "exponential_: got an undefined tensor");
  FABRIC_CHECK(lambd >= 0.0, ValueError,
               "exponential_ expects lambda >= 0.0, but found lambda=", lambd);
  FABRIC_CHECK(is_floating(t.dtype()) && !is_fp8(t.dtype()), DTypeError,
               "\"exponential_cpu\" not implemented for '", dtype_name(t.dtype()),
               "' (expected a float64, float32, float16 or bfloat16 tensor)");
  check_no_internal_overlap("exponential_", t);
  const Tensor history =
      inplace_joins_graph("exponential_", t, {}) ? overwritten_history(t) : Tensor();
  Generator& g = gen ? *gen : default_generator();
  if (g.torch_cpu() && t.device().is_cpu()) {
    torch_cpu_exponential_fill(t, lambd, g.torch_cpu_for_draw());
  } else if (t.numel() > 0) {
    const Tensor u = rand(t.sizes(), {.dtype = DType::float64, .device = t.device()}, &g);
    write_values(t, mul(log(add(neg(u), 1.0)), -1.0 / lambd));
  }
  if (history.defined()) rebase_history(t, history);
  return t;
}

}  // namespace fabric
