// bernoulli_(p): the argument checks, then the generator's way of drawing (see bernoulli.h).
#include "tensor/bernoulli.h"

#include "tensor/factory.h"
#include "tensor/inplace_graph.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/torch_cpu_fill.h"

namespace fabric {

Tensor& bernoulli_(Tensor& t, double p, Generator* gen) {
  FABRIC_CHECK(t.defined(), ValueError, "bernoulli_: got an undefined tensor");
  FABRIC_CHECK(!is_fp8(t.dtype()), DTypeError, "bernoulli_: ", dtype_name(t.dtype()),
               " is not supported");
  FABRIC_CHECK(p >= 0 && p <= 1, ValueError, "bernoulli_ expects p to be in [0, 1], but got p=", p);
  check_no_internal_overlap("bernoulli_", t);
  const Tensor history =
      inplace_joins_graph("bernoulli_", t, {}) ? overwritten_history(t) : Tensor();
  Generator& g = gen ? *gen : default_generator();
  if (g.torch_cpu() && t.device().is_cpu()) {
    torch_cpu_bernoulli_fill(t, p, g.torch_cpu_for_draw());
  } else if (t.numel() > 0) {
    const Tensor u = rand(t.sizes(), {.dtype = DType::float32, .device = t.device()}, &g);
    write_values(t, lt(u, Scalar(p)));
  }
  if (history.defined()) rebase_history(t, history);
  return t;
}

}  // namespace fabric
