// measure_flops: Lightning's, on the op-level FLOP counter, leaving the model's gradients alone.
#include "runtime/measure_flops.h"

#include <utility>
#include <vector>

#include "autograd/autograd.h"
#include "tensor/error.h"
#include "tensor/flop_counter.h"

namespace fabric {
namespace {

// Takes each parameter's .grad aside for the measurement and puts it back after it, exception or
// not: the backward then accumulates into fresh gradients that are dropped, and the ones held
// (mid-accumulation, say) are never written.
class GradsSetAside {
 public:
  explicit GradsSetAside(const std::vector<Tensor>& params) {
    saved_.reserve(params.size());
    for (const Tensor& p : params) {
      saved_.emplace_back(p, p.grad());
      set_grad_unchecked(p, Tensor());
    }
  }
  ~GradsSetAside() {
    for (auto& [param, grad] : saved_) set_grad_unchecked(param, grad);
  }
  GradsSetAside(const GradsSetAside&) = delete;
  GradsSetAside& operator=(const GradsSetAside&) = delete;

 private:
  std::vector<std::pair<Tensor, Tensor>> saved_;
};

}  // namespace

int64_t measure_flops(nn::Module& model, const std::function<Tensor()>& forward_fn,
                      const std::function<Tensor(const Tensor&)>& loss_fn) {
  FABRIC_CHECK(static_cast<bool>(forward_fn), ValueError,
               "measure_flops: forward_fn is empty; expected a callable running the model's "
               "forward pass");
  GradsSetAside grads(model.parameters());
  FlopCounter counter;
  Tensor out = forward_fn();
  if (loss_fn) {
    Tensor loss = loss_fn(out);
    FABRIC_CHECK(loss.defined(), ValueError,
                 "measure_flops: loss_fn returned an undefined tensor; expected the loss to "
                 "backpropagate from");
    loss.backward();
  }
  return counter.total();
}

}  // namespace fabric
