// dropout: inverted dropout with a mask drawn from a Generator (see ops_backward_random.h for
// what is returned and recorded).
#include <tuple>

#include "tensor/autocast.h"
#include "tensor/factory.h"
#include "tensor/op_attrs.h"
#include "tensor/op_record.h"
#include "tensor/ops.h"
#include "tensor/ops_backward_random.h"
#include "tensor/random.h"
#include "tensor/random_kernels.h"
#include "tensor/torch_cpu_fill.h"

namespace fabric {

std::tuple<Tensor, Tensor> dropout_with_mask(const Tensor& a_in, double p, bool train, Generator* gen) {
  Tensor a = a_in;
  apply_autocast(OpId::dropout, {&a});
  FABRIC_CHECK(a.defined(), ValueError, "dropout: got an undefined tensor");
  FABRIC_CHECK(p >= 0 && p <= 1, ValueError, "dropout: probability has to be between 0 and 1, but got ", p);
  // torch's _dropout_impl returns before looking at the dtype: the input itself, or for p == 1
  // the input times a 0-dim zero (an integer input gives integer zeros).
  if (!train || p == 0 || a.numel() == 0) return {a, Tensor()};
  if (p == 1 && !(is_floating(a.dtype()) && !is_fp8(a.dtype())))
    return {mul(a, zeros({}, {.dtype = a.dtype(), .device = a.device()})), Tensor()};
  FABRIC_CHECK(is_floating(a.dtype()) && !is_fp8(a.dtype()), DTypeError,
               "dropout: expects a float64, float32, float16 or bfloat16 input, got ", dtype_name(a.dtype()),
               " of shape ", shape_str(a.sizes()));
  DropoutAttrs attrs{p};
  Generator& g = gen ? *gen : default_generator();
  if (g.torch_cpu() && a.device().is_cpu() && p < 1) {
    // torch's CPU dropout: a bernoulli_(1 - p) mask drawn from its generator, then input * mask.
    Tensor mask = torch_cpu_dropout_mask(a, p, g.torch_cpu_for_draw());
    Tensor out = mul(a.detach(), mask);
    record_op(OpId::dropout, {a, mask}, {&out}, &attrs);
    return {out, mask};
  }
  Tensor out = empty(a.sizes(), {.dtype = a.dtype(), .device = a.device()});
  Tensor mask = empty(a.sizes(), {.dtype = a.dtype(), .device = a.device()});
  const int64_t n = a.numel();
  if (n > 0) {
    // p == 1 drops everything whatever the words say: no need to consume the stream.
    const uint64_t offset = p == 1 ? g.offset() : g.reserve(random_blocks_for(n, kDropoutValuesPerBlock));
    // Detached so making a non-contiguous input contiguous is not itself recorded.
    const Tensor src = a.is_contiguous() ? a : a.detach().contiguous();
    dropout_stub(a.device())(src.data_ptr(), out.data_ptr(), mask.data_ptr(), a.dtype(), n, p, g.seed(), offset);
  }
  record_op(OpId::dropout, {a, mask}, {&out}, &attrs);
  return {out, mask};
}

Tensor dropout(const Tensor& a, double p, bool train, Generator* gen) {
  return std::get<0>(dropout_with_mask(a, p, train, gen));
}

}  // namespace fabric
