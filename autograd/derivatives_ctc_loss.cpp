// ctc_loss's derivative: torch's _ctc_loss_backward kernel (tensor/ctc_loss.h) from the forward's
// log_alpha and losses. Not built of recorded ops, so the node refuses double backward, as torch's
// _ctc_loss_backward has no derivative either.
#include "autograd/derivatives.h"
#include "autograd/saved.h"
#include "tensor/ctc_loss.h"

namespace fabric {
namespace {

FABRIC_DERIVATIVE(ctc_loss) {
  const CtcLossAttrs& a = attrs_of<CtcLossAttrs>(rec);
  const Tensor log_probs = saved(rec.inputs[0]), targets = saved(rec.inputs[1]);
  const Tensor nll = saved(rec.outputs[0]);
  return [log_probs, targets, nll, a](const Grads& g) {
    return Grads{ctc_loss_backward(g[0], log_probs, targets, nll, a), Tensor()};
  };
}

}  // namespace
}  // namespace fabric
