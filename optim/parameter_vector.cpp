// parameters_to_vector / vector_to_parameters with torch's device check.
#include "optim/parameter_vector.h"

#include "autograd/grad_mode.h"
#include "tensor/ops.h"

namespace fabric::optim {

namespace {

// torch's _check_param_device: every parameter on the first one's device.
void check_same_device(const char* fn, const std::vector<Tensor>& parameters) {
  for (size_t i = 0; i < parameters.size(); ++i) {
    FABRIC_CHECK(parameters[i].defined(), ValueError, fn, ": parameter ", i, " is undefined");
    FABRIC_CHECK(parameters[i].device() == parameters[0].device(), DeviceError, fn,
                 ": found two parameters on different devices (parameter 0 on ",
                 parameters[0].device().str(), ", parameter ", i, " on ",
                 parameters[i].device().str(), "), which is not supported");
  }
}

}  // namespace

Tensor parameters_to_vector(const std::vector<Tensor>& parameters) {
  FABRIC_CHECK(!parameters.empty(), ValueError,
               "parameters_to_vector: expects at least one parameter, got none");
  check_same_device("parameters_to_vector", parameters);
  std::vector<Tensor> flat;
  flat.reserve(parameters.size());
  for (const Tensor& p : parameters) flat.push_back(p.reshape({-1}));
  return cat(flat, 0);
}

void vector_to_parameters(const Tensor& vec, const std::vector<Tensor>& parameters) {
  FABRIC_CHECK(vec.defined(), ValueError, "vector_to_parameters: vec is undefined");
  FABRIC_CHECK(vec.dim() == 1, ValueError, "vector_to_parameters: vec must be 1-D, got shape ",
               shape_str(vec.sizes()));
  check_same_device("vector_to_parameters", parameters);
  int64_t total = 0;
  for (const Tensor& p : parameters) total += p.numel();
  FABRIC_CHECK(vec.numel() >= total, ValueError, "vector_to_parameters: vec has ", vec.numel(),
               " elements but the parameters hold ", total);
  const Tensor data = vec.detach();  // torch assigns .data: no autograd link to vec
  int64_t offset = 0;
  for (const Tensor& p : parameters) {
    const int64_t n = p.numel();
    p.set_data(data.narrow(0, offset, n).view(p.sizes()));
    offset += n;
  }
}

}  // namespace fabric::optim
